//! `IOCTL_TOLLGATE_GET_PENDED` output: a batch of pended connections (kind
//! [`MessageKind::PendedBatch`]).
//!
//! The header's count is the number of records; records follow back to back, each padded to a
//! multiple of 8 bytes so every record (and its u64 fields) starts 8-aligned relative to the
//! message — the I/O manager's system buffer is itself 8-aligned, so a reader that wants to
//! overlay a struct may. The total length is the header plus the records, exactly.
//!
//! # A pended-connection record
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 8 | id (u64 LE) | the [`PendId`] the verdict must name; slot + generation, never a pointer (S9) |
//! | 8 | 1 | layer | 0 = ALE_RESOURCE_ASSIGNMENT (bind), 1 = ALE_AUTH_CONNECT |
//! | 9 | 1 | IP protocol | 6 TCP, 17 UDP, …, as WFP reports it |
//! | 10 | 1 | direction | 0 = outbound, 1 = inbound |
//! | 11 | 1 | address family | 4 or 6; applies to both addresses (one WFP layer is one family) |
//! | 12 | 16 | local address | network byte order (the octets as written: `1.2.3.4` is `01 02 03 04`); IPv4 in the first 4 bytes, the other 12 zero |
//! | 28 | 16 | remote address | as above; unspecified at resource assignment |
//! | 44 | 2 | local port (u16 LE) | the port *number* (not network order); 0 where the layer has none |
//! | 46 | 2 | remote port (u16 LE) | as above |
//! | 48 | 8 | process id (u64 LE) | `FWPS_METADATA_FIELD_PROCESS_ID`, for the service's policy and its UI |
//! | 56 | 8 | pended at (u64 LE) | interrupt time in 100 ns ticks, so the service can see how close a pend is to its timeout |
//! | 64 | 2 | app path length *n* (u16 LE) | in UTF-16 units, ≤ [`MAX_APP_PATH_UNITS`] |
//! | 66 | 1 | flags | bit 0 [`FLAG_PATH_TRUNCATED`]; other bits zero |
//! | 67 | 5 | reserved | zero |
//! | 72 | 2*n* | app path | UTF-16LE, no terminator: the NT device path (`\device\harddiskvolume3\…\app.exe`) |
//! | 72 + 2*n* | 0–6 | padding | zero, up to a multiple of 8 |
//!
//! Why addresses are in network byte order: WFP hands IPv4 addresses to classifyFn as a host-order
//! `UINT32` but IPv6 ones as a byte array; one order for both keeps the record a plain copy of
//! [`core::net::IpAddr`]'s octets, and the shim does the one conversion where it reads the value.
//!
//! Encoding never fails for a connection's *content*, only for lack of room, because a connection
//! the driver cannot deliver would block every younger one behind it
//! ([`tollgate_core::Core::deliver_pending`] delivers in age order):
//! - an app path longer than [`MAX_APP_PATH_UNITS`] is cut to its *last* `MAX_APP_PATH_UNITS` units
//!   (the executable name is at the end) and the record says so with [`FLAG_PATH_TRUNCATED`];
//! - a connection whose two addresses have different families (the core's types allow it, WFP
//!   does not produce it) is sent as family 6 with the IPv4 address IPv4-mapped (`::ffff:a.b.c.d`).

use core::char::{DecodeUtf16, decode_utf16};
use core::fmt;
use core::iter::Map;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::slice::ChunksExact;

use tollgate_core::{ConnectionFacts, Direction, PendId, PendLayer, PendedConnection, Ticks};

use crate::MAX_BATCH_RECORDS;
use crate::batch::{RawBatchWriter, RecordIter, Records, impl_record};
use crate::error::{EnumField, ProtocolError};
use crate::header::{HEADER_LEN, MessageKind};
use crate::wire::{Reader, Writer, align8, padding8};

/// The longest app path a record carries, in UTF-16 units. Longer paths are truncated (keeping
/// the end) when encoded and rejected when decoded. 1024 units covers any realistic install path
/// while bounding a record at [`MAX_PENDED_RECORD_LEN`] bytes.
pub const MAX_APP_PATH_UNITS: u16 = 1024;

/// Size of a record without its app path.
pub const PENDED_FIXED_LEN: usize = 72;

/// The largest record: fixed part + the longest path, padded.
pub const MAX_PENDED_RECORD_LEN: usize = align8(PENDED_FIXED_LEN + 2 * MAX_APP_PATH_UNITS as usize);

/// The smallest output buffer `IOCTL_TOLLGATE_GET_PENDED` accepts: the header and one record of
/// the largest size. With less, the oldest connection might never fit, and the service would poll
/// forever for a record that cannot be delivered; with this much, every request makes progress.
pub const MIN_GET_PENDED_OUTPUT: usize = HEADER_LEN + MAX_PENDED_RECORD_LEN;

/// Record flag: the app path was longer than [`MAX_APP_PATH_UNITS`]; the record holds its end.
pub const FLAG_PATH_TRUNCATED: u8 = 0x01;

const DEFINED_FLAGS: u8 = FLAG_PATH_TRUNCATED;

/// The app path of a record: UTF-16LE bytes borrowed from the message (no copy, no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppPath<'a> {
    /// Always an even number of bytes (checked when the record was decoded).
    bytes: &'a [u8],
}

/// The UTF-16 units of an [`AppPath`].
pub type Units<'a> = Map<ChunksExact<'a, u8>, fn(&[u8]) -> u16>;

fn unit_from_pair(pair: &[u8]) -> u16 {
    match *pair {
        [lo, hi] => u16::from_le_bytes([lo, hi]),
        // `chunks_exact(2)` only yields pairs.
        _ => 0,
    }
}

impl<'a> AppPath<'a> {
    /// The raw UTF-16LE bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length in UTF-16 units.
    #[must_use]
    pub const fn len_units(&self) -> usize {
        self.bytes.len() / 2
    }

    /// No path (WFP reported none).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The UTF-16 units.
    pub fn units(&self) -> Units<'a> {
        self.bytes.chunks_exact(2).map(unit_from_pair as fn(&[u8]) -> u16)
    }

    /// The characters, `Err` for each unpaired surrogate (NT paths are not guaranteed valid UTF-16).
    #[must_use]
    pub fn chars(&self) -> DecodeUtf16<Units<'a>> {
        decode_utf16(self.units())
    }

    /// Copies the units into `out` and returns the filled prefix.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `out` is shorter than [`AppPath::len_units`].
    pub fn copy_to<'b>(&self, out: &'b mut [u16]) -> Result<&'b [u16], ProtocolError> {
        let available = out.len();
        let dest = out
            .get_mut(..self.len_units())
            .ok_or(ProtocolError::BufferTooSmall { needed: self.len_units(), available })?;
        for (slot, unit) in dest.iter_mut().zip(self.units()) {
            *slot = unit;
        }
        Ok(dest)
    }

    /// Whether the path is exactly `units`.
    #[must_use]
    pub fn eq_units(&self, units: &[u16]) -> bool {
        self.len_units() == units.len() && self.units().eq(units.iter().copied())
    }

    /// The path as a `String`, with U+FFFD for unpaired surrogates.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn to_string_lossy(&self) -> std::string::String {
        std::string::ToString::to_string(self)
    }
}

/// Lossy: unpaired surrogates are shown as U+FFFD.
impl fmt::Display for AppPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.chars() {
            fmt::Write::write_char(f, c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        Ok(())
    }
}

/// One decoded record, borrowing its app path from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendedRecord<'a> {
    /// The id to answer.
    pub id: PendId,
    /// The layer.
    pub layer: PendLayer,
    /// IP protocol number.
    pub protocol: u8,
    /// Direction.
    pub direction: Direction,
    /// Local address (same family as the remote one).
    pub local_address: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address.
    pub remote_address: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// Process id.
    pub process_id: u64,
    /// When it was pended (100 ns ticks of interrupt time).
    pub pended_at: Ticks,
    /// The app path (its end, if [`PendedRecord::path_truncated`]).
    pub app_path: AppPath<'a>,
    /// The driver cut the app path to its last [`MAX_APP_PATH_UNITS`] units.
    pub path_truncated: bool,
}

impl PendedRecord<'_> {
    /// The connection's facts, with the app path copied into `path_buf` (which must hold
    /// [`AppPath::len_units`] units; [`MAX_APP_PATH_UNITS`] always suffices).
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `path_buf` is too short.
    pub fn facts<'b>(&self, path_buf: &'b mut [u16]) -> Result<ConnectionFacts<'b>, ProtocolError> {
        Ok(ConnectionFacts {
            layer: self.layer,
            protocol: self.protocol,
            direction: self.direction,
            local_address: self.local_address,
            local_port: self.local_port,
            remote_address: self.remote_address,
            remote_port: self.remote_port,
            process_id: self.process_id,
            app_path: self.app_path.copy_to(path_buf)?,
        })
    }

    /// The record as the core's [`PendedConnection`], with the app path copied into `path_buf`.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `path_buf` is too short.
    pub fn to_pended_connection<'b>(&self, path_buf: &'b mut [u16]) -> Result<PendedConnection<'b>, ProtocolError> {
        Ok(PendedConnection { id: self.id, facts: self.facts(path_buf)?, pended_at: self.pended_at })
    }

    /// The encoded length of this record.
    #[must_use]
    pub const fn encoded_len(&self) -> usize {
        align8(PENDED_FIXED_LEN + self.app_path.as_bytes().len())
    }
}

const fn layer_to_u8(layer: PendLayer) -> u8 {
    match layer {
        PendLayer::ResourceAssignment => 0,
        PendLayer::AuthConnect => 1,
    }
}

pub(crate) const fn direction_to_u8(direction: Direction) -> u8 {
    match direction {
        Direction::Outbound => 0,
        Direction::Inbound => 1,
    }
}

/// The direction of a wire byte (0 outbound, 1 inbound).
pub(crate) const fn direction_from_u8(value: u8) -> Result<Direction, ProtocolError> {
    match value {
        0 => Ok(Direction::Outbound),
        1 => Ok(Direction::Inbound),
        value => Err(ProtocolError::BadEnum { field: EnumField::Direction, value }),
    }
}

/// The address bytes and family byte for a pair of addresses (see the module docs on mixed
/// families).
pub(crate) fn addresses(local: IpAddr, remote: IpAddr) -> (u8, [u8; 16], [u8; 16]) {
    fn v4(a: Ipv4Addr) -> [u8; 16] {
        let [a0, a1, a2, a3] = a.octets();
        [a0, a1, a2, a3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }
    fn v6(a: IpAddr) -> [u8; 16] {
        match a {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        }
    }
    match (local, remote) {
        (IpAddr::V4(l), IpAddr::V4(r)) => (4, v4(l), v4(r)),
        (l, r) => (6, v6(l), v6(r)),
    }
}

/// The path source of an encode: the core's units or a decoded record's bytes.
#[derive(Clone, Copy)]
enum PathSource<'a> {
    Units(&'a [u16]),
    Bytes(&'a [u8]),
}

struct RecordHead {
    id: u64,
    layer: u8,
    protocol: u8,
    direction: u8,
    family: u8,
    local: [u8; 16],
    remote: [u8; 16],
    local_port: u16,
    remote_port: u16,
    process_id: u64,
    pended_at: u64,
    flags: u8,
}

fn encode_record(w: &mut Writer<'_>, head: &RecordHead, path: PathSource<'_>) -> Result<(), ProtocolError> {
    let units = match path {
        PathSource::Units(units) => units.len(),
        PathSource::Bytes(bytes) => bytes.len() / 2,
    };
    let units16 = u16::try_from(units).map_err(|_| ProtocolError::PathTooLong { units: u16::MAX })?;
    w.u64(head.id)?;
    w.u8(head.layer)?;
    w.u8(head.protocol)?;
    w.u8(head.direction)?;
    w.u8(head.family)?;
    w.bytes(&head.local)?;
    w.bytes(&head.remote)?;
    w.u16(head.local_port)?;
    w.u16(head.remote_port)?;
    w.u64(head.process_id)?;
    w.u64(head.pended_at)?;
    w.u16(units16)?;
    w.u8(head.flags)?;
    w.zeros(5)?;
    match path {
        PathSource::Units(units) => w.u16s(units)?,
        PathSource::Bytes(bytes) => w.bytes(bytes)?,
    }
    let end = PENDED_FIXED_LEN + 2 * units;
    w.zeros(padding8(end))
}

/// Reads one record. The reader is positioned at its first byte; on success it is positioned
/// after its padding.
fn decode_record<'a>(r: &mut Reader<'a>) -> Result<PendedRecord<'a>, ProtocolError> {
    let id = PendId::from_raw(r.u64()?);
    let layer = match r.u8()? {
        0 => PendLayer::ResourceAssignment,
        1 => PendLayer::AuthConnect,
        value => return Err(ProtocolError::BadEnum { field: EnumField::Layer, value }),
    };
    let protocol = r.u8()?;
    let direction = direction_from_u8(r.u8()?)?;
    let family = r.u8()?;
    let local = r.array::<16>()?;
    let remote = r.array::<16>()?;
    let (local_address, remote_address) = addresses_from(family, local, remote)?;
    let local_port = r.u16()?;
    let remote_port = r.u16()?;
    let process_id = r.u64()?;
    let pended_at = Ticks(r.u64()?);
    let units = r.u16()?;
    if units > MAX_APP_PATH_UNITS {
        return Err(ProtocolError::PathTooLong { units });
    }
    let flags = r.u8()?;
    if flags & !DEFINED_FLAGS != 0 {
        return Err(ProtocolError::BadEnum { field: EnumField::RecordFlags, value: flags });
    }
    r.zeros(5)?;
    let path_len = 2 * usize::from(units);
    let bytes = r.bytes(path_len)?;
    let end = PENDED_FIXED_LEN + path_len;
    r.zeros(padding8(end))?;
    Ok(PendedRecord {
        id,
        layer,
        protocol,
        direction,
        local_address,
        local_port,
        remote_address,
        remote_port,
        process_id,
        pended_at,
        app_path: AppPath { bytes },
        path_truncated: flags & FLAG_PATH_TRUNCATED != 0,
    })
}

/// The two addresses of a record from its family byte and 16-byte fields.
pub(crate) fn addresses_from(family: u8, local: [u8; 16], remote: [u8; 16]) -> Result<(IpAddr, IpAddr), ProtocolError> {
    match family {
        4 => Ok((v4_from(local)?, v4_from(remote)?)),
        6 => Ok((IpAddr::V6(Ipv6Addr::from(local)), IpAddr::V6(Ipv6Addr::from(remote)))),
        value => Err(ProtocolError::BadAddressFamily { value }),
    }
}

/// An IPv4 address from the 16-byte field; the last 12 bytes must be zero.
fn v4_from(field: [u8; 16]) -> Result<IpAddr, ProtocolError> {
    match field {
        [a0, a1, a2, a3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] => Ok(IpAddr::V4(Ipv4Addr::new(a0, a1, a2, a3))),
        _ => Err(ProtocolError::NonZeroReserved),
    }
}

/// Builds a `GET_PENDED` reply in a caller's buffer (the driver's output buffer).
///
/// ```
/// # use tollgate_protocol::{BatchWriter, decode_pended_batch, MIN_GET_PENDED_OUTPUT};
/// let mut buf = [0u8; MIN_GET_PENDED_OUTPUT];
/// let writer = BatchWriter::new(&mut buf)?;
/// // driver: core.deliver_pending(max, |c| writer.push(c).is_ok());
/// let len = writer.finish();
/// assert_eq!(decode_pended_batch(&buf[..len])?.len(), 0);
/// # Ok::<(), tollgate_protocol::ProtocolError>(())
/// ```
pub struct BatchWriter<'b> {
    raw: RawBatchWriter<'b>,
}

impl<'b> BatchWriter<'b> {
    /// A writer that accepts up to [`MAX_BATCH_RECORDS`] records.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `buf` cannot even hold the header.
    pub fn new(buf: &'b mut [u8]) -> Result<Self, ProtocolError> {
        Self::with_max_records(buf, MAX_BATCH_RECORDS)
    }

    /// A writer that accepts up to `max_records` records (clamped to [`MAX_BATCH_RECORDS`]).
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `buf` cannot even hold the header.
    pub fn with_max_records(buf: &'b mut [u8], max_records: u32) -> Result<Self, ProtocolError> {
        Ok(BatchWriter { raw: RawBatchWriter::new(buf, MessageKind::PendedBatch, max_records.min(MAX_BATCH_RECORDS))? })
    }

    /// Appends a pended connection, or nothing. Cannot fail for the connection's content (see the
    /// module docs), only for room: safe to use as the `visit` of `deliver_pending`, where a
    /// refusal leaves the connection undelivered for the next request.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] (the record does not fit) or
    /// [`ProtocolError::TooManyRecords`] (the batch is full); the buffer is unchanged.
    pub fn push(&mut self, connection: &PendedConnection<'_>) -> Result<(), ProtocolError> {
        let facts = &connection.facts;
        let max = usize::from(MAX_APP_PATH_UNITS);
        let (path, truncated) = match facts.app_path.len().checked_sub(max) {
            Some(skip) if skip > 0 => (facts.app_path.get(skip..).unwrap_or_default(), true),
            _ => (facts.app_path, false),
        };
        let (family, local, remote) = addresses(facts.local_address, facts.remote_address);
        let head = RecordHead {
            id: connection.id.to_raw(),
            layer: layer_to_u8(facts.layer),
            protocol: facts.protocol,
            direction: direction_to_u8(facts.direction),
            family,
            local,
            remote,
            local_port: facts.local_port,
            remote_port: facts.remote_port,
            process_id: facts.process_id,
            pended_at: connection.pended_at.0,
            flags: if truncated { FLAG_PATH_TRUNCATED } else { 0 },
        };
        let len = align8(PENDED_FIXED_LEN + 2 * path.len());
        self.raw.append(len, |w| encode_record(w, &head, PathSource::Units(path)))
    }

    /// Appends a decoded record exactly as it was received (a relay, or a test that re-encodes).
    ///
    /// # Errors
    /// [`ProtocolError::PathTooLong`] for a path over [`MAX_APP_PATH_UNITS`] (a decoded record never
    /// has one), otherwise as [`BatchWriter::push`].
    pub fn push_record(&mut self, record: &PendedRecord<'_>) -> Result<(), ProtocolError> {
        let bytes = record.app_path.as_bytes();
        if bytes.len() > 2 * usize::from(MAX_APP_PATH_UNITS) {
            return Err(ProtocolError::PathTooLong { units: u16::try_from(bytes.len() / 2).unwrap_or(u16::MAX) });
        }
        let (family, local, remote) = addresses(record.local_address, record.remote_address);
        let head = RecordHead {
            id: record.id.to_raw(),
            layer: layer_to_u8(record.layer),
            protocol: record.protocol,
            direction: direction_to_u8(record.direction),
            family,
            local,
            remote,
            local_port: record.local_port,
            remote_port: record.remote_port,
            process_id: record.process_id,
            pended_at: record.pended_at.0,
            flags: if record.path_truncated { FLAG_PATH_TRUNCATED } else { 0 },
        };
        self.raw.append(record.encoded_len(), |w| encode_record(w, &head, PathSource::Bytes(bytes)))
    }

    /// Records appended so far.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.raw.count()
    }

    /// No record appended yet.
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

/// A checked `GET_PENDED` reply: every record was validated when it was decoded. Its records come
/// in the driver's (age) order.
pub type PendedBatch<'a> = Records<'a, PendedRecord<'a>>;

/// The records of a [`PendedBatch`].
pub type PendedIter<'a> = RecordIter<'a, PendedRecord<'a>>;

impl_record!(PendedRecord<'a>, decode_record);

/// Decodes and validates a `GET_PENDED` reply (the whole message, exactly as many bytes as the
/// IOCTL returned).
///
/// # Errors
/// Any header error; [`ProtocolError::TooManyRecords`] over [`MAX_BATCH_RECORDS`]; any record error
/// ([`ProtocolError::BadEnum`], [`ProtocolError::BadAddressFamily`], [`ProtocolError::PathTooLong`],
/// [`ProtocolError::NonZeroReserved`], [`ProtocolError::TooShort`] for a record cut short);
/// [`ProtocolError::LengthMismatch`] for bytes after the last record.
pub fn decode_pended_batch(buf: &[u8]) -> Result<PendedBatch<'_>, ProtocolError> {
    Records::decode(buf, MessageKind::PendedBatch, MAX_BATCH_RECORDS, |_, _| Ok(()))
}
