//! `IOCTL_TOLLGATE_GET_STREAM_EVENTS` output: a batch of stream events (kind
//! [`MessageKind::StreamEvents`]), what the stream callout found out about flows
//! ([`FlowEvent`]: TLS SNI / HTTP Host, ALPN, counters, what it did).
//!
//! The request is polled, not parked: the driver fills as many queued events as fit (at most
//! [`MAX_BATCH_RECORDS`]) and completes at once, with **0 records** when there are none (unlike
//! `GET_PENDED`, an empty reply is valid here). The output buffer must hold at least
//! [`MIN_GET_STREAM_EVENTS_OUTPUT`] bytes, so that the oldest event always fits.
//!
//! The header's count is the number of records; records follow back to back, each padded to a
//! multiple of 8 bytes, as in the pended batch ([`crate::pended`]).
//!
//! # A stream-event record
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 8 | flow id (u64 LE) | the [`FlowId`] (slot + generation, never a pointer, S9); the same in both of a flow's events |
//! | 8 | 1 | event kind | 0 = identified, 1 = closed ([`FlowEventKind`]) |
//! | 9 | 1 | inspection end | 0 unfinished, 1 complete, 2 bounded, 3 disconnected, 4 no buffer, 5 overlapped ([`InspectionEnd`]) |
//! | 10 | 1 | verdict | 0 = permitted, 1 = dropped ([`StreamVerdict`]) |
//! | 11 | 1 | app protocol | 0 unknown, 1 TLS, 2 HTTP, 3 other ([`AppProtocol`]) |
//! | 12 | 1 | IP protocol | 6 TCP, … as WFP reports it |
//! | 13 | 1 | direction | 0 = outbound, 1 = inbound |
//! | 14 | 1 | address family | 4 or 6; applies to both addresses |
//! | 15 | 1 | flags | bit 0 [`EVENT_FLAG_FIRST_DATA`], bit 1 [`EVENT_FLAG_TLS13`], bit 2 [`EVENT_FLAG_GREASE`], bit 3 [`EVENT_FLAG_ALPN_TRUNCATED`]; other bits zero |
//! | 16 | 16 | local address | network byte order; IPv4 in the first 4 bytes, the other 12 zero (as in a pended record) |
//! | 32 | 16 | remote address | as above |
//! | 48 | 2 | local port (u16 LE) | the port number |
//! | 50 | 2 | remote port (u16 LE) | as above |
//! | 52 | 2 | TLS legacy version (u16 LE) | the ClientHello's `legacy_version`; 0 unless TLS |
//! | 54 | 1 | ECH | 0 none, 1 outer, 2 inner, 3 unknown ([`Ech`]) |
//! | 55 | 1 | malformed | 0 = none; 1 TLS record, 2 TLS handshake, 3 TLS ClientHello, 4 TLS extension, 5 TLS duplicate extension, 6 TLS server name, 7 HTTP request line, 8 HTTP header, 9 HTTP conflicting Host ([`Malformed`]) |
//! | 56 | 8 | process id (u64 LE) | `FWPS_METADATA_FIELD_PROCESS_ID`, 0 when absent |
//! | 64 | 8 | event time (u64 LE) | when the event was raised, interrupt time in 100 ns ticks |
//! | 72 | 8 | established at (u64 LE) | when the flow's context was associated |
//! | 80 | 8 | first data at (u64 LE) | when the first non-empty indication came, if [`EVENT_FLAG_FIRST_DATA`]; zero otherwise |
//! | 88 | 8 | bytes out (u64 LE) | outbound bytes |
//! | 96 | 8 | bytes in (u64 LE) | inbound bytes |
//! | 104 | 8 | segments out (u64 LE) | outbound indications, empty ones included |
//! | 112 | 8 | segments in (u64 LE) | inbound indications |
//! | 120 | 15 | HTTP method | the first *m* bytes; the rest zero |
//! | 135 | 1 | HTTP method length *m* | ≤ 15; 0 unless HTTP |
//! | 136 | 1 | HTTP minor version | `HTTP/1.1` → 1 |
//! | 137 | 1 | ALPN length *a* | ≤ [`Alpn::CAPACITY`] (32) |
//! | 138 | 1 | ALPN offered | how many protocol ids the client offered |
//! | 139 | 1 | name count *k* | ≤ [`MAX_EVENT_NAMES`] (2) |
//! | 140 | 4 | reserved | zero |
//! | 144 | 32 | ALPN first id | the first *a* bytes; the rest zero |
//! | 176 | … | *k* names | back to back, each as below |
//! | … | 0–7 | padding | zero, up to a multiple of 8 (the whole record) |
//!
//! A name (4 + *n* bytes):
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 1 | source | 0 none, 1 TLS SNI, 2 HTTP Host, 3 HTTP authority ([`NameSource`]) |
//! | 1 | 1 | flags | bit 0 [`NAME_FLAG_TRUNCATED`]: the name was longer than 255 bytes and this is its tail; other bits zero |
//! | 2 | 2 | length *n* (u16 LE) | 1 to 255 ([`HOST_CAPACITY`]); exactly 255 when truncated |
//! | 4 | *n* | name | normalized as the driver keeps it ([`HostName::from_wire`]): ASCII lowercase, no trailing dot, any other byte as it came |
//!
//! The record is [`STREAM_EVENT_FIXED_LEN`] bytes plus its names, padded: at most
//! [`MAX_STREAM_EVENT_RECORD_LEN`].
//!
//! Encoding never fails for an event's content, only for lack of room (an event the driver could
//! not deliver would block the queue behind it). Decoding checks every field: codes defined,
//! lengths within their fields, bytes after a length zero, reserved and padding zero, names in the
//! normalized form — so a decoded event re-encodes to the same bytes. Two things are written in
//! one form only, so the decoded event can differ from the pushed one there:
//! - mixed address families (not produced by WFP) are sent as family 6, the IPv4 address
//!   IPv4-mapped, as in a pended record;
//! - an [`HttpFacts`] whose `method_len` is over 15 is sent as 15, and method bytes after the
//!   length as zero (the parsers never produce either).

use core::net::IpAddr;

use tollgate_core::Ticks;
use tollgate_core::stream::{
    FlowCounters, FlowEndpoints, FlowEvent, FlowEventKind, FlowId, InspectionEnd, StreamVerdict,
};
use tollgate_inspect::identity::{Alpn, AppProtocol, Ech, HttpFacts, Identity, Malformed, NameSource, Names, TlsFacts};
use tollgate_inspect::name::{HOST_CAPACITY, HostName};

use crate::MAX_BATCH_RECORDS;
use crate::batch::{RawBatchWriter, RecordIter, Records, impl_record};
use crate::error::{EnumField, LengthField, ProtocolError};
use crate::header::{HEADER_LEN, MessageKind};
use crate::pended::{addresses, addresses_from, direction_from_u8, direction_to_u8};
use crate::wire::{Reader, Writer, align8, padding8};

/// Size of a record without its names.
pub const STREAM_EVENT_FIXED_LEN: usize = 176;
/// Size of a name's header (source, flags, length).
pub const STREAM_EVENT_NAME_HEADER_LEN: usize = 4;
/// The most names a record holds ([`Names::CAPACITY`]).
pub const MAX_EVENT_NAMES: usize = 2;
/// The largest record: the fixed part and two names of 255 bytes, padded.
pub const MAX_STREAM_EVENT_RECORD_LEN: usize =
    align8(STREAM_EVENT_FIXED_LEN + MAX_EVENT_NAMES * (STREAM_EVENT_NAME_HEADER_LEN + HOST_CAPACITY));
/// The smallest output buffer `IOCTL_TOLLGATE_GET_STREAM_EVENTS` accepts: the header and one record
/// of the largest size, so that every request can deliver the oldest event.
pub const MIN_GET_STREAM_EVENTS_OUTPUT: usize = HEADER_LEN + MAX_STREAM_EVENT_RECORD_LEN;

/// Event flag: the flow had data ([`FlowCounters::first_data_at`] is present).
pub const EVENT_FLAG_FIRST_DATA: u8 = 0x01;
/// Event flag: `supported_versions` offers TLS 1.3 ([`TlsFacts::offers_tls13`]).
pub const EVENT_FLAG_TLS13: u8 = 0x02;
/// Event flag: a GREASE value was seen ([`TlsFacts::grease`]).
pub const EVENT_FLAG_GREASE: u8 = 0x04;
/// Event flag: the first ALPN id was longer than [`Alpn::CAPACITY`] and is cut ([`Alpn::truncated`]).
pub const EVENT_FLAG_ALPN_TRUNCATED: u8 = 0x08;
/// Name flag: the name was longer than [`HOST_CAPACITY`]; the record holds its tail
/// ([`HostName::is_truncated`]).
pub const NAME_FLAG_TRUNCATED: u8 = 0x01;

const DEFINED_EVENT_FLAGS: u8 =
    EVENT_FLAG_FIRST_DATA | EVENT_FLAG_TLS13 | EVENT_FLAG_GREASE | EVENT_FLAG_ALPN_TRUNCATED;
const DEFINED_NAME_FLAGS: u8 = NAME_FLAG_TRUNCATED;

/// Longest HTTP method a record holds (the size of [`HttpFacts::method`]).
const METHOD_CAPACITY: usize = 15;

// The layout above is sized for these; a change in `tollgate-inspect` must change the layout (and
// its version) too, not silently cut what is sent.
const _: () = assert!(Names::CAPACITY == MAX_EVENT_NAMES);
const _: () = assert!(HOST_CAPACITY == 255);
const _: () = assert!(Alpn::CAPACITY == 32);
const _: () = assert!(MAX_STREAM_EVENT_RECORD_LEN == 696);

// ------------------------------------------------------------------ codes

const fn kind_to_u8(kind: FlowEventKind) -> u8 {
    match kind {
        FlowEventKind::Identified => 0,
        FlowEventKind::Closed => 1,
    }
}

const fn kind_from_u8(value: u8) -> Result<FlowEventKind, ProtocolError> {
    match value {
        0 => Ok(FlowEventKind::Identified),
        1 => Ok(FlowEventKind::Closed),
        value => Err(ProtocolError::BadEnum { field: EnumField::FlowEventKind, value }),
    }
}

const fn end_to_u8(end: InspectionEnd) -> u8 {
    match end {
        InspectionEnd::Unfinished => 0,
        InspectionEnd::Complete => 1,
        InspectionEnd::Bounded => 2,
        InspectionEnd::Disconnected => 3,
        InspectionEnd::NoBuffer => 4,
        InspectionEnd::Overlapped => 5,
    }
}

const fn end_from_u8(value: u8) -> Result<InspectionEnd, ProtocolError> {
    match value {
        0 => Ok(InspectionEnd::Unfinished),
        1 => Ok(InspectionEnd::Complete),
        2 => Ok(InspectionEnd::Bounded),
        3 => Ok(InspectionEnd::Disconnected),
        4 => Ok(InspectionEnd::NoBuffer),
        5 => Ok(InspectionEnd::Overlapped),
        value => Err(ProtocolError::BadEnum { field: EnumField::InspectionEnd, value }),
    }
}

const fn verdict_to_u8(verdict: StreamVerdict) -> u8 {
    match verdict {
        StreamVerdict::Permitted => 0,
        StreamVerdict::Dropped => 1,
    }
}

const fn verdict_from_u8(value: u8) -> Result<StreamVerdict, ProtocolError> {
    match value {
        0 => Ok(StreamVerdict::Permitted),
        1 => Ok(StreamVerdict::Dropped),
        value => Err(ProtocolError::BadEnum { field: EnumField::StreamVerdict, value }),
    }
}

const fn protocol_to_u8(protocol: AppProtocol) -> u8 {
    match protocol {
        AppProtocol::Unknown => 0,
        AppProtocol::Tls => 1,
        AppProtocol::Http => 2,
        AppProtocol::Other => 3,
    }
}

const fn protocol_from_u8(value: u8) -> Result<AppProtocol, ProtocolError> {
    match value {
        0 => Ok(AppProtocol::Unknown),
        1 => Ok(AppProtocol::Tls),
        2 => Ok(AppProtocol::Http),
        3 => Ok(AppProtocol::Other),
        value => Err(ProtocolError::BadEnum { field: EnumField::AppProtocol, value }),
    }
}

const fn ech_to_u8(ech: Ech) -> u8 {
    match ech {
        Ech::None => 0,
        Ech::Outer => 1,
        Ech::Inner => 2,
        Ech::Unknown => 3,
    }
}

const fn ech_from_u8(value: u8) -> Result<Ech, ProtocolError> {
    match value {
        0 => Ok(Ech::None),
        1 => Ok(Ech::Outer),
        2 => Ok(Ech::Inner),
        3 => Ok(Ech::Unknown),
        value => Err(ProtocolError::BadEnum { field: EnumField::Ech, value }),
    }
}

const fn malformed_to_u8(malformed: Option<Malformed>) -> u8 {
    match malformed {
        None => 0,
        Some(Malformed::TlsRecord) => 1,
        Some(Malformed::TlsHandshake) => 2,
        Some(Malformed::TlsClientHello) => 3,
        Some(Malformed::TlsExtension) => 4,
        Some(Malformed::TlsDuplicateExtension) => 5,
        Some(Malformed::TlsServerName) => 6,
        Some(Malformed::HttpRequestLine) => 7,
        Some(Malformed::HttpHeader) => 8,
        Some(Malformed::HttpConflictingHost) => 9,
    }
}

const fn malformed_from_u8(value: u8) -> Result<Option<Malformed>, ProtocolError> {
    Ok(Some(match value {
        0 => return Ok(None),
        1 => Malformed::TlsRecord,
        2 => Malformed::TlsHandshake,
        3 => Malformed::TlsClientHello,
        4 => Malformed::TlsExtension,
        5 => Malformed::TlsDuplicateExtension,
        6 => Malformed::TlsServerName,
        7 => Malformed::HttpRequestLine,
        8 => Malformed::HttpHeader,
        9 => Malformed::HttpConflictingHost,
        value => return Err(ProtocolError::BadEnum { field: EnumField::Malformed, value }),
    }))
}

const fn source_to_u8(source: NameSource) -> u8 {
    match source {
        NameSource::None => 0,
        NameSource::TlsSni => 1,
        NameSource::HttpHost => 2,
        NameSource::HttpAuthority => 3,
    }
}

const fn source_from_u8(value: u8) -> Result<NameSource, ProtocolError> {
    match value {
        0 => Ok(NameSource::None),
        1 => Ok(NameSource::TlsSni),
        2 => Ok(NameSource::HttpHost),
        3 => Ok(NameSource::HttpAuthority),
        value => Err(ProtocolError::BadEnum { field: EnumField::NameSource, value }),
    }
}

// ------------------------------------------------------------------ records

/// The encoded length of `event`'s record.
#[must_use]
pub fn stream_event_len(event: &FlowEvent) -> usize {
    let names: usize = event
        .identity
        .names
        .iter()
        .take(MAX_EVENT_NAMES)
        .map(|(_, name)| STREAM_EVENT_NAME_HEADER_LEN.saturating_add(name.as_bytes().len()))
        .sum();
    align8(STREAM_EVENT_FIXED_LEN.saturating_add(names))
}

/// Writes `bytes` and zeros after them, `width` bytes in all (`bytes` is never longer).
fn padded_field(w: &mut Writer<'_>, bytes: &[u8], width: usize) -> Result<(), ProtocolError> {
    let kept = bytes.get(..width).unwrap_or(bytes);
    w.bytes(kept)?;
    w.zeros(width.saturating_sub(kept.len()))
}

fn encode_event(w: &mut Writer<'_>, event: &FlowEvent) -> Result<(), ProtocolError> {
    let endpoints = &event.endpoints;
    let counters = &event.counters;
    let identity = &event.identity;
    let (family, local, remote) = addresses(endpoints.local_address, endpoints.remote_address);
    let mut flags = 0;
    if counters.first_data_at.is_some() {
        flags |= EVENT_FLAG_FIRST_DATA;
    }
    if identity.tls.offers_tls13 {
        flags |= EVENT_FLAG_TLS13;
    }
    if identity.tls.grease {
        flags |= EVENT_FLAG_GREASE;
    }
    if identity.alpn.truncated {
        flags |= EVENT_FLAG_ALPN_TRUNCATED;
    }
    let method_len = usize::from(identity.http.method_len).min(METHOD_CAPACITY);
    let method = identity.http.method.get(..method_len).unwrap_or_default();
    let alpn = identity.alpn.first();
    let name_count = identity.names.len().min(MAX_EVENT_NAMES);

    w.u64(event.flow.to_raw())?;
    w.u8(kind_to_u8(event.kind))?;
    w.u8(end_to_u8(event.end))?;
    w.u8(verdict_to_u8(event.verdict))?;
    w.u8(protocol_to_u8(identity.protocol))?;
    w.u8(endpoints.ip_protocol)?;
    w.u8(direction_to_u8(endpoints.direction))?;
    w.u8(family)?;
    w.u8(flags)?;
    w.bytes(&local)?;
    w.bytes(&remote)?;
    w.u16(endpoints.local_port)?;
    w.u16(endpoints.remote_port)?;
    w.u16(identity.tls.legacy_version)?;
    w.u8(ech_to_u8(identity.tls.ech))?;
    w.u8(malformed_to_u8(identity.malformed))?;
    w.u64(endpoints.process_id)?;
    w.u64(event.at.0)?;
    w.u64(counters.established_at.0)?;
    w.u64(counters.first_data_at.map_or(0, |at| at.0))?;
    w.u64(counters.bytes_out)?;
    w.u64(counters.bytes_in)?;
    w.u64(counters.segments_out)?;
    w.u64(counters.segments_in)?;
    padded_field(w, method, METHOD_CAPACITY)?;
    // Each is at most its capacity (15, 32, 2), so the conversions cannot fail.
    w.u8(u8::try_from(method.len()).unwrap_or(0))?;
    w.u8(identity.http.minor_version)?;
    w.u8(u8::try_from(alpn.len()).unwrap_or(0))?;
    w.u8(identity.alpn.offered)?;
    w.u8(u8::try_from(name_count).unwrap_or(0))?;
    w.zeros(4)?;
    padded_field(w, alpn, Alpn::CAPACITY)?;
    let mut end = STREAM_EVENT_FIXED_LEN;
    for (source, name) in identity.names.iter().take(MAX_EVENT_NAMES) {
        let bytes = name.as_bytes();
        w.u8(source_to_u8(*source))?;
        w.u8(if name.is_truncated() { NAME_FLAG_TRUNCATED } else { 0 })?;
        // At most HOST_CAPACITY (255) bytes.
        w.u16(u16::try_from(bytes.len()).unwrap_or(0))?;
        w.bytes(bytes)?;
        end = end.saturating_add(STREAM_EVENT_NAME_HEADER_LEN).saturating_add(bytes.len());
    }
    w.zeros(padding8(end))
}

/// The [`HostName`] whose bytes and truncation flag are exactly these, or
/// [`ProtocolError::BadHostName`] if the driver cannot have sent them (see the module docs).
///
/// `HostName` has no constructor from its parts, only [`HostName::from_wire`], which normalizes;
/// normalizing bytes that are already normalized gives them back, and a truncated name (always
/// [`HOST_CAPACITY`] bytes, the tail of a longer one) is rebuilt from one more byte in front of it.
fn host_name(bytes: &[u8], truncated: bool) -> Result<HostName, ProtocolError> {
    let name = if truncated {
        let mut raw = [b'x'; HOST_CAPACITY + 1];
        let len = bytes.len().min(HOST_CAPACITY);
        let dest = raw.get_mut(1..=len).ok_or(ProtocolError::BadHostName)?;
        for (slot, byte) in dest.iter_mut().zip(bytes) {
            *slot = *byte;
        }
        HostName::from_wire(raw.get(..=len).ok_or(ProtocolError::BadHostName)?)
    } else {
        HostName::from_wire(bytes)
    };
    if name.is_empty() || name.as_bytes() != bytes || name.is_truncated() != truncated {
        return Err(ProtocolError::BadHostName);
    }
    Ok(name)
}

/// The first `len` bytes of a fixed-size field whose other bytes must be zero.
fn read_padded(field: &[u8], len: usize) -> Result<&[u8], ProtocolError> {
    let (kept, rest) = field.split_at_checked(len).ok_or(ProtocolError::NonZeroReserved)?;
    if rest.iter().any(|&b| b != 0) {
        return Err(ProtocolError::NonZeroReserved);
    }
    Ok(kept)
}

fn too_long(field: LengthField, len: usize, max: usize) -> ProtocolError {
    ProtocolError::FieldTooLong {
        field,
        len: u16::try_from(len).unwrap_or(u16::MAX),
        max: u16::try_from(max).unwrap_or(u16::MAX),
    }
}

/// Reads one record. The reader is positioned at its first byte; on success it is positioned
/// after its padding.
fn decode_event(r: &mut Reader<'_>) -> Result<FlowEvent, ProtocolError> {
    let flow = FlowId::from_raw(r.u64()?);
    let kind = kind_from_u8(r.u8()?)?;
    let end = end_from_u8(r.u8()?)?;
    let verdict = verdict_from_u8(r.u8()?)?;
    let protocol = protocol_from_u8(r.u8()?)?;
    let ip_protocol = r.u8()?;
    let direction = direction_from_u8(r.u8()?)?;
    let family = r.u8()?;
    let flags = r.u8()?;
    if flags & !DEFINED_EVENT_FLAGS != 0 {
        return Err(ProtocolError::BadEnum { field: EnumField::EventFlags, value: flags });
    }
    let local = r.array::<16>()?;
    let remote = r.array::<16>()?;
    let (local_address, remote_address): (IpAddr, IpAddr) = addresses_from(family, local, remote)?;
    let local_port = r.u16()?;
    let remote_port = r.u16()?;
    let legacy_version = r.u16()?;
    let ech = ech_from_u8(r.u8()?)?;
    let malformed = malformed_from_u8(r.u8()?)?;
    let process_id = r.u64()?;
    let at = Ticks(r.u64()?);
    let established_at = Ticks(r.u64()?);
    let first_data_raw = r.u64()?;
    let first_data_at = if flags & EVENT_FLAG_FIRST_DATA != 0 {
        Some(Ticks(first_data_raw))
    } else if first_data_raw == 0 {
        None
    } else {
        return Err(ProtocolError::NonZeroReserved);
    };
    let bytes_out = r.u64()?;
    let bytes_in = r.u64()?;
    let segments_out = r.u64()?;
    let segments_in = r.u64()?;
    let method_field = r.array::<METHOD_CAPACITY>()?;
    let method_len = r.u8()?;
    if usize::from(method_len) > METHOD_CAPACITY {
        return Err(too_long(LengthField::HttpMethod, usize::from(method_len), METHOD_CAPACITY));
    }
    read_padded(&method_field, usize::from(method_len))?;
    let minor_version = r.u8()?;
    let alpn_len = r.u8()?;
    if usize::from(alpn_len) > Alpn::CAPACITY {
        return Err(too_long(LengthField::Alpn, usize::from(alpn_len), Alpn::CAPACITY));
    }
    let offered = r.u8()?;
    let name_count = r.u8()?;
    if usize::from(name_count) > MAX_EVENT_NAMES {
        return Err(too_long(LengthField::NameCount, usize::from(name_count), MAX_EVENT_NAMES));
    }
    r.zeros(4)?;
    let alpn_field = r.bytes(Alpn::CAPACITY)?;
    let mut alpn = Alpn::new(read_padded(alpn_field, usize::from(alpn_len))?, offered);
    alpn.truncated = flags & EVENT_FLAG_ALPN_TRUNCATED != 0;

    let mut names = Names::default();
    let mut record_end = STREAM_EVENT_FIXED_LEN;
    for _ in 0..name_count {
        let source = source_from_u8(r.u8()?)?;
        let name_flags = r.u8()?;
        if name_flags & !DEFINED_NAME_FLAGS != 0 {
            return Err(ProtocolError::BadEnum { field: EnumField::NameFlags, value: name_flags });
        }
        let len = r.u16()?;
        if usize::from(len) > HOST_CAPACITY {
            return Err(too_long(LengthField::HostName, usize::from(len), HOST_CAPACITY));
        }
        let bytes = r.bytes(usize::from(len))?;
        let name = host_name(bytes, name_flags & NAME_FLAG_TRUNCATED != 0)?;
        if !names.push(source, name) {
            // Not reachable: the count is at most the capacity and the name is not empty.
            return Err(ProtocolError::BadHostName);
        }
        record_end = record_end.saturating_add(STREAM_EVENT_NAME_HEADER_LEN).saturating_add(bytes.len());
    }
    r.zeros(padding8(record_end))?;

    Ok(FlowEvent {
        kind,
        flow,
        at,
        endpoints: FlowEndpoints {
            ip_protocol,
            direction,
            local_address,
            local_port,
            remote_address,
            remote_port,
            process_id,
        },
        identity: Identity {
            protocol,
            names,
            alpn,
            tls: TlsFacts {
                legacy_version,
                offers_tls13: flags & EVENT_FLAG_TLS13 != 0,
                grease: flags & EVENT_FLAG_GREASE != 0,
                ech,
            },
            http: HttpFacts { method: method_field, method_len, minor_version },
            malformed,
        },
        end,
        verdict,
        counters: FlowCounters { bytes_out, bytes_in, segments_out, segments_in, established_at, first_data_at },
    })
}

// ------------------------------------------------------------------ writer

/// Builds a `GET_STREAM_EVENTS` reply in a caller's buffer (the driver's output buffer).
///
/// ```
/// # use tollgate_protocol::{StreamEventWriter, decode_stream_events, MIN_GET_STREAM_EVENTS_OUTPUT};
/// let mut buf = [0u8; MIN_GET_STREAM_EVENTS_OUTPUT];
/// let writer = StreamEventWriter::new(&mut buf)?;
/// // driver: while let Some(event) = queue.peek() { if writer.push(event).is_err() { break } … }
/// let len = writer.finish(); // 0 events is a valid reply
/// assert_eq!(decode_stream_events(&buf[..len])?.len(), 0);
/// # Ok::<(), tollgate_protocol::ProtocolError>(())
/// ```
pub struct StreamEventWriter<'b> {
    raw: RawBatchWriter<'b>,
}

impl<'b> StreamEventWriter<'b> {
    /// A writer that accepts up to [`MAX_BATCH_RECORDS`] events.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `buf` cannot even hold the header.
    pub fn new(buf: &'b mut [u8]) -> Result<Self, ProtocolError> {
        Self::with_max_records(buf, MAX_BATCH_RECORDS)
    }

    /// A writer that accepts up to `max_records` events (clamped to [`MAX_BATCH_RECORDS`]).
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `buf` cannot even hold the header.
    pub fn with_max_records(buf: &'b mut [u8], max_records: u32) -> Result<Self, ProtocolError> {
        Ok(StreamEventWriter {
            raw: RawBatchWriter::new(buf, MessageKind::StreamEvents, max_records.min(MAX_BATCH_RECORDS))?,
        })
    }

    /// Appends an event, or nothing. Cannot fail for the event's content (see the module docs),
    /// only for room, so a refused event can stay queued for the next request.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] (the record does not fit) or
    /// [`ProtocolError::TooManyRecords`] (the batch is full); the message is unchanged.
    pub fn push(&mut self, event: &FlowEvent) -> Result<(), ProtocolError> {
        self.raw.append(stream_event_len(event), |w| encode_event(w, event))
    }

    /// Events appended so far.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.raw.count()
    }

    /// No event appended yet.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.raw.count() == 0
    }

    /// The message length so far, header included.
    #[must_use]
    pub const fn message_len(&self) -> usize {
        self.raw.message_len()
    }

    /// Writes the header and returns the message length (the IOCTL's `Information`).
    #[must_use]
    pub fn finish(self) -> usize {
        self.raw.finish()
    }
}

// ------------------------------------------------------------------ reader

/// A checked `GET_STREAM_EVENTS` reply: every record was validated when it was decoded. Its events
/// come in the driver's (queue) order.
pub type StreamEventBatch<'a> = Records<'a, FlowEvent>;

/// The events of a [`StreamEventBatch`], decoded one at a time.
pub type StreamEventIter<'a> = RecordIter<'a, FlowEvent>;

impl_record!(FlowEvent, decode_event);

/// Decodes and validates a `GET_STREAM_EVENTS` reply (the whole message, exactly as many bytes as
/// the IOCTL returned). A reply of 0 events is valid.
///
/// # Errors
/// Any header error; [`ProtocolError::TooManyRecords`] over [`MAX_BATCH_RECORDS`]; any record error
/// ([`ProtocolError::BadEnum`] for an undefined code or flag, [`ProtocolError::BadAddressFamily`],
/// [`ProtocolError::FieldTooLong`], [`ProtocolError::BadHostName`],
/// [`ProtocolError::NonZeroReserved`], [`ProtocolError::TooShort`] for a record cut short);
/// [`ProtocolError::LengthMismatch`] for bytes after the last record.
pub fn decode_stream_events(buf: &[u8]) -> Result<StreamEventBatch<'_>, ProtocolError> {
    Records::decode(buf, MessageKind::StreamEvents, MAX_BATCH_RECORDS, |_, _| Ok(()))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn host_names_rebuild_exactly() {
        let short = HostName::from_wire(b"Www.Example.COM.");
        assert_eq!(host_name(short.as_bytes(), false), Ok(short));
        let mut long = [b'a'; 300];
        long[290..].copy_from_slice(b".evil.test");
        let long = HostName::from_wire(&long);
        assert!(long.is_truncated());
        assert_eq!(host_name(long.as_bytes(), true), Ok(long));
        // What the driver cannot have sent.
        for (bytes, truncated) in [
            (&b""[..], false),
            (b"Example.com", false),
            (b"example.com.", false),
            (b"example.com", true),
            (&[b'a'; 254][..], true),
        ] {
            assert_eq!(host_name(bytes, truncated), Err(ProtocolError::BadHostName), "{bytes:?} {truncated}");
        }
        assert_eq!(host_name(&[b'a'; 255], false).map(|n| n.is_truncated()), Ok(false));
    }

    #[test]
    fn codes_round_trip() {
        for value in 0..=u8::MAX {
            if let Ok(v) = kind_from_u8(value) {
                assert_eq!(kind_to_u8(v), value);
            }
            if let Ok(v) = end_from_u8(value) {
                assert_eq!(end_to_u8(v), value);
            }
            if let Ok(v) = verdict_from_u8(value) {
                assert_eq!(verdict_to_u8(v), value);
            }
            if let Ok(v) = protocol_from_u8(value) {
                assert_eq!(protocol_to_u8(v), value);
            }
            if let Ok(v) = ech_from_u8(value) {
                assert_eq!(ech_to_u8(v), value);
            }
            if let Ok(v) = malformed_from_u8(value) {
                assert_eq!(malformed_to_u8(v), value);
            }
            if let Ok(v) = source_from_u8(value) {
                assert_eq!(source_to_u8(v), value);
            }
        }
        assert!(malformed_from_u8(9).is_ok() && malformed_from_u8(10).is_err());
    }
}
