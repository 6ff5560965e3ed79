//! The 16-byte header every message starts with.
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 4 | magic `b"TLGT"` | rejects a buffer that is not a Tollgate message at all (a stray handle, a wrong struct) before anything in it is trusted |
//! | 4 | 2 | version (u16 LE) | the layout version of *this kind* of message; a mismatch is [`ProtocolError::UnsupportedVersion`], never a misparse |
//! | 6 | 2 | kind (u16 LE) | which message this is; each IOCTL accepts exactly one kind per direction, so a buffer meant for another IOCTL is caught |
//! | 8 | 4 | total length (u32 LE) | header included; must equal the buffer length the I/O manager reports, so trailing garbage and short copies are both caught |
//! | 12 | 4 | record count (u32 LE) | batches: how many records follow; single-body messages: always 1 |
//!
//! Kinds are never reused: a kind number keeps its meaning across versions, and a message's
//! version is checked after its kind. The HELLO kinds are frozen at version 1 forever, because
//! they are how two sides that speak different versions find out which one to use.
//!
//! A kind's layout version is the [`PROTOCOL_VERSION`] that introduced its current layout
//! ([`MessageKind::version`]):
//!
//! | kind | layout version | since |
//! |---|---:|---|
//! | HELLO request / reply | 1 | frozen |
//! | pended batch, verdict batch, verdict results, config | 1 | protocol 1 |
//! | stats | 2 | protocol 2: the stream callout's counters appended |
//! | stream events, domain blocklist | 2 | protocol 2: first defined |

use crate::error::ProtocolError;
use crate::wire::Reader;

/// The first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"TLGT";

/// The protocol version this build speaks (what HELLO negotiates): the set of message kinds and
/// their layouts. Version 2 added the stream events and the domain blocklist, and the stream
/// callout's counters to the stats. Each kind's own layout version is [`MessageKind::version`].
pub const PROTOCOL_VERSION: u16 = 2;

/// The layout version of the HELLO request and reply: frozen at 1, whatever
/// [`PROTOCOL_VERSION`] becomes, so that negotiation always works.
pub const HELLO_VERSION: u16 = 1;

/// Size of the header.
pub const HEADER_LEN: usize = 16;

/// The kind of a message (header offset 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageKind {
    /// Service → driver, `IOCTL_TOLLGATE_HELLO` input: the versions the service speaks.
    HelloRequest = 0x0001,
    /// Driver → service, `IOCTL_TOLLGATE_HELLO` output: the chosen version and the driver's limits.
    HelloReply = 0x0002,
    /// Driver → service, `IOCTL_TOLLGATE_GET_PENDED` output: a batch of pended connections.
    PendedBatch = 0x0003,
    /// Service → driver, `IOCTL_TOLLGATE_SUBMIT_VERDICTS` input: a batch of verdicts.
    VerdictBatch = 0x0004,
    /// Driver → service, `IOCTL_TOLLGATE_SUBMIT_VERDICTS` output: one result per verdict.
    VerdictResults = 0x0005,
    /// Driver → service, `IOCTL_TOLLGATE_GET_STATS` output.
    Stats = 0x0006,
    /// Both ways: `IOCTL_TOLLGATE_SET_CONFIG` input, `IOCTL_TOLLGATE_GET_CONFIG` output.
    Config = 0x0007,
    /// Driver → service, `IOCTL_TOLLGATE_GET_STREAM_EVENTS` output: a batch of stream events (TLS
    /// SNI / HTTP Host per flow). Since protocol version 2.
    StreamEvents = 0x0008,
    /// Service → driver, `IOCTL_TOLLGATE_PUSH_BLOCKLIST` input: the domain blocklist. Since
    /// protocol version 2.
    DomainBlocklist = 0x0009,
}

impl MessageKind {
    /// The kind for a header value, if it is defined (reserved kinds included).
    #[must_use]
    pub const fn from_u16(value: u16) -> Option<MessageKind> {
        Some(match value {
            0x0001 => MessageKind::HelloRequest,
            0x0002 => MessageKind::HelloReply,
            0x0003 => MessageKind::PendedBatch,
            0x0004 => MessageKind::VerdictBatch,
            0x0005 => MessageKind::VerdictResults,
            0x0006 => MessageKind::Stats,
            0x0007 => MessageKind::Config,
            0x0008 => MessageKind::StreamEvents,
            0x0009 => MessageKind::DomainBlocklist,
            _ => return None,
        })
    }

    /// The header value.
    #[must_use]
    pub const fn to_u16(self) -> u16 {
        self as u16
    }

    /// Kept for a later version: no layout is defined yet. No kind is reserved since protocol
    /// version 2 (the parsers still reject undefined kinds with [`ProtocolError::UnsupportedKind`]).
    #[must_use]
    pub const fn is_reserved(self) -> bool {
        false
    }

    /// The layout version this build speaks for this kind: the protocol version that introduced
    /// its current layout (see the module docs).
    #[must_use]
    pub const fn version(self) -> u16 {
        match self {
            MessageKind::HelloRequest | MessageKind::HelloReply => HELLO_VERSION,
            MessageKind::PendedBatch
            | MessageKind::VerdictBatch
            | MessageKind::VerdictResults
            | MessageKind::Config => 1,
            MessageKind::Stats | MessageKind::StreamEvents | MessageKind::DomainBlocklist => 2,
        }
    }
}

/// A checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The kind (defined and not reserved).
    pub kind: MessageKind,
    /// The total length, header included; equal to the buffer's length.
    pub total_length: u32,
    /// The record count (not yet checked against the body).
    pub count: u32,
}

impl Header {
    /// Encodes a header for `kind` (at that kind's version).
    #[must_use]
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [m0, m1, m2, m3] = MAGIC;
        let [v0, v1] = self.kind.version().to_le_bytes();
        let [k0, k1] = self.kind.to_u16().to_le_bytes();
        let [l0, l1, l2, l3] = self.total_length.to_le_bytes();
        let [c0, c1, c2, c3] = self.count.to_le_bytes();
        [m0, m1, m2, m3, v0, v1, k0, k1, l0, l1, l2, l3, c0, c1, c2, c3]
    }
}

/// Reads and checks the header of `buf`, whatever its kind: magic, a defined and implemented kind,
/// that kind's version, and a total length equal to `buf.len()`. For a client that does not know
/// in advance what it is looking at (e.g. a capture); the message parsers check the kind they expect as well.
///
/// # Errors
/// [`ProtocolError::TooShort`], [`ProtocolError::BadMagic`], [`ProtocolError::UnsupportedKind`],
/// [`ProtocolError::UnsupportedVersion`], [`ProtocolError::LengthMismatch`].
pub fn peek_header(buf: &[u8]) -> Result<Header, ProtocolError> {
    parse(buf, None).map(|(header, _)| header)
}

/// Reads the header of a message that must be of kind `expected`, and returns it with a reader
/// positioned at the body.
pub(crate) fn read_header(buf: &[u8], expected: MessageKind) -> Result<(Header, Reader<'_>), ProtocolError> {
    parse(buf, Some(expected))
}

fn parse(buf: &[u8], expected: Option<MessageKind>) -> Result<(Header, Reader<'_>), ProtocolError> {
    if buf.len() < HEADER_LEN {
        return Err(ProtocolError::TooShort { needed: HEADER_LEN, actual: buf.len() });
    }
    let mut r = Reader::new(buf);
    if r.array::<4>()? != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    let version = r.u16()?;
    let raw_kind = r.u16()?;
    let total_length = r.u32()?;
    let count = r.u32()?;
    // Kind before version: kinds keep their meaning across versions, versions are per kind.
    let kind = match MessageKind::from_u16(raw_kind) {
        Some(kind) if !kind.is_reserved() => kind,
        _ => return Err(ProtocolError::UnsupportedKind { found: raw_kind }),
    };
    if let Some(expected) = expected
        && kind != expected
    {
        return Err(ProtocolError::WrongKind { expected: expected.to_u16(), found: raw_kind });
    }
    if version != kind.version() {
        return Err(ProtocolError::UnsupportedVersion { found: version, supported: kind.version() });
    }
    if total_length as usize != buf.len() {
        return Err(ProtocolError::LengthMismatch { declared: total_length as usize, actual: buf.len() });
    }
    Ok((Header { kind, total_length, count }, r))
}

/// `HEADER_LEN + count * record_len` as a u32, if it fits (it always does below the batch limits).
pub(crate) fn total_for(count: u32, record_len: usize) -> Option<u32> {
    (count as usize).checked_mul(record_len)?.checked_add(HEADER_LEN).and_then(|n| u32::try_from(n).ok())
}

/// Reads the header of a single-body message of kind `kind` whose body is `body_len` bytes, and
/// returns a reader positioned at the body.
pub(crate) fn read_single(buf: &[u8], kind: MessageKind, body_len: usize) -> Result<Reader<'_>, ProtocolError> {
    let (header, r) = read_header(buf, kind)?;
    if header.count != 1 {
        return Err(ProtocolError::CountMismatch { found: header.count });
    }
    let implied = HEADER_LEN + body_len;
    if buf.len() != implied {
        return Err(ProtocolError::LengthMismatch { declared: implied, actual: buf.len() });
    }
    Ok(r)
}

/// Writes a single-body message of kind `kind` whose body (`body_len` bytes) `encode` writes.
/// Nothing is written unless `out` holds the whole message.
pub(crate) fn write_single(
    out: &mut [u8],
    kind: MessageKind,
    body_len: usize,
    encode: impl FnOnce(&mut crate::wire::Writer<'_>) -> Result<(), ProtocolError>,
) -> Result<usize, ProtocolError> {
    let total = HEADER_LEN + body_len;
    let available = out.len();
    let dest = out.get_mut(..total).ok_or(ProtocolError::BufferTooSmall { needed: total, available })?;
    let total_length = u32::try_from(total).map_err(|_| ProtocolError::BufferTooSmall { needed: total, available })?;
    let mut w = crate::wire::Writer::new(dest);
    w.bytes(&Header { kind, total_length, count: 1 }.to_bytes())?;
    encode(&mut w)?;
    if w.position() != total {
        return Err(ProtocolError::LengthMismatch { declared: total, actual: w.position() });
    }
    Ok(total)
}
