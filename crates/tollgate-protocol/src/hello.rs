//! `IOCTL_TOLLGATE_HELLO`: version negotiation and the driver's limits.
//!
//! The service sends the range of protocol versions it speaks; the driver answers with the version
//! it chose (the highest both speak, or 0 for none) and its own range and limits. The exchange
//! succeeds even when there is no common version — the reply is how the service learns what the
//! driver speaks (a failed `METHOD_BUFFERED` IOCTL returns no output bytes) — and every later
//! message of an unsupported version is rejected with [`ProtocolError::UnsupportedVersion`]
//! (`STATUS_REVISION_MISMATCH`). Both HELLO kinds are frozen at header version
//! [`HELLO_VERSION`](crate::HELLO_VERSION) = 1, whatever the protocol version becomes.
//!
//! # Request body (8 bytes, kind [`MessageKind::HelloRequest`], count 1)
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 2 | min version (u16 LE) | the oldest protocol version the service speaks; ≥ 1 |
//! | 2 | 2 | max version (u16 LE) | the newest; ≥ min |
//! | 4 | 4 | reserved | zero |
//!
//! # Reply body (24 bytes, kind [`MessageKind::HelloReply`], count 1)
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 2 | selected version (u16 LE) | the version both will use; 0 = no common version |
//! | 2 | 2 | driver min version (u16 LE) | so a service can tell the user which side to upgrade |
//! | 4 | 2 | driver max version (u16 LE) | as above |
//! | 6 | 2 | max app path units (u16 LE) | the longest path a pended record holds (≤ [`MAX_APP_PATH_UNITS`]), to size path buffers |
//! | 8 | 4 | max batch records (u32 LE) | most records per GET_PENDED reply and per SUBMIT_VERDICTS request (≤ [`MAX_BATCH_RECORDS`]) |
//! | 12 | 4 | max message length (u32 LE) | the largest message the driver produces or accepts, to size buffers |
//! | 16 | 4 | capabilities (u32 LE) | optional features ([`CAP_STREAM_EVENTS`], [`CAP_DOMAIN_BLOCKLIST`]; none before protocol version 2). A service ignores bits it does not know |
//! | 20 | 4 | reserved | zero |
//!
//! The reply's layout is frozen, so limits added later are not in it: the stream events' and the
//! blocklist's bounds are constants of the protocol version ([`MIN_GET_STREAM_EVENTS_OUTPUT`],
//! [`MAX_STREAM_EVENT_RECORD_LEN`], [`MAX_BLOCKLIST_PATTERNS`], [`MAX_BLOCKLIST_MESSAGE_LEN`]);
//! a service knows them from the version it negotiated.

use crate::MAX_BATCH_RECORDS;
use crate::blocklist::{MAX_BLOCKLIST_MESSAGE_LEN, MAX_BLOCKLIST_PATTERNS};
use crate::error::ProtocolError;
use crate::header::{HEADER_LEN, MessageKind, PROTOCOL_VERSION, read_single, write_single};
use crate::pended::{MAX_APP_PATH_UNITS, MAX_PENDED_RECORD_LEN};
use crate::stream::{MAX_STREAM_EVENT_RECORD_LEN, MIN_GET_STREAM_EVENTS_OUTPUT};

/// Size of the HELLO request body.
pub const HELLO_REQUEST_BODY_LEN: usize = 8;
/// Size of the whole HELLO request.
pub const HELLO_REQUEST_LEN: usize = HEADER_LEN + HELLO_REQUEST_BODY_LEN;
/// Size of the HELLO reply body.
pub const HELLO_REPLY_BODY_LEN: usize = 24;
/// Size of the whole HELLO reply (the smallest HELLO output buffer).
pub const HELLO_REPLY_LEN: usize = HEADER_LEN + HELLO_REPLY_BODY_LEN;

/// Capability bit: the driver reports stream events (TLS SNI / HTTP Host per flow) through
/// `IOCTL_TOLLGATE_GET_STREAM_EVENTS` ([`crate::stream`]). Since protocol version 2.
pub const CAP_STREAM_EVENTS: u32 = 1 << 0;
/// Capability bit: the driver accepts a domain blocklist through `IOCTL_TOLLGATE_PUSH_BLOCKLIST`
/// ([`crate::blocklist`]). Since protocol version 2.
pub const CAP_DOMAIN_BLOCKLIST: u32 = 1 << 1;
/// Every capability this protocol version defines: what [`HelloReply::answer`] advertises.
pub const CAP_ALL: u32 = CAP_STREAM_EVENTS | CAP_DOMAIN_BLOCKLIST;

/// The versions a service speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelloRequest {
    /// Oldest version spoken (≥ 1).
    pub min_version: u16,
    /// Newest version spoken (≥ `min_version`).
    pub max_version: u16,
}

impl HelloRequest {
    /// What this build speaks: exactly [`PROTOCOL_VERSION`].
    pub const CURRENT: HelloRequest = HelloRequest { min_version: PROTOCOL_VERSION, max_version: PROTOCOL_VERSION };

    /// The highest version in both this range and `driver_min..=driver_max`, if any.
    #[must_use]
    pub fn negotiate(&self, driver_min: u16, driver_max: u16) -> Option<u16> {
        let high = self.max_version.min(driver_max);
        let low = self.min_version.max(driver_min).max(1);
        (low <= high).then_some(high)
    }
}

/// Limits the driver announces in its HELLO reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DriverLimits {
    /// Longest app path in a pended record, in UTF-16 units (≤ [`MAX_APP_PATH_UNITS`]).
    pub max_app_path_units: u16,
    /// Most records per batch (≤ [`MAX_BATCH_RECORDS`]).
    pub max_batch_records: u32,
    /// Largest message produced or accepted, in bytes.
    pub max_message_len: u32,
}

impl DriverLimits {
    /// The protocol's own limits. The largest message is the largest blocklist (4 MiB); the largest
    /// reply is a full pended batch (≈ 2 MiB).
    pub const PROTOCOL: DriverLimits = DriverLimits {
        max_app_path_units: MAX_APP_PATH_UNITS,
        max_batch_records: MAX_BATCH_RECORDS,
        max_message_len: max(
            max(HEADER_LEN + MAX_BATCH_RECORDS as usize * MAX_PENDED_RECORD_LEN, MAX_BLOCKLIST_MESSAGE_LEN),
            HEADER_LEN + MAX_BATCH_RECORDS as usize * MAX_STREAM_EVENT_RECORD_LEN,
        ) as u32,
    };
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

const _: () = assert!(DriverLimits::PROTOCOL.max_message_len as usize == MAX_BLOCKLIST_MESSAGE_LEN);
const _: () = assert!(MIN_GET_STREAM_EVENTS_OUTPUT <= MAX_BLOCKLIST_MESSAGE_LEN);
const _: () = assert!(MAX_BLOCKLIST_PATTERNS > MAX_BATCH_RECORDS);

/// The driver's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelloReply {
    /// The version both sides will use; 0 = none in common.
    pub selected_version: u16,
    /// Oldest version the driver speaks.
    pub min_version: u16,
    /// Newest version the driver speaks.
    pub max_version: u16,
    /// The driver's limits.
    pub limits: DriverLimits,
    /// Capability bits ([`CAP_STREAM_EVENTS`], [`CAP_DOMAIN_BLOCKLIST`]; unknown bits are to be
    /// ignored).
    pub capabilities: u32,
}

impl HelloReply {
    /// The driver's answer to `request`, for a driver that speaks exactly [`PROTOCOL_VERSION`],
    /// advertising every capability of that version ([`CAP_ALL`]). A driver that has a feature
    /// turned off (e.g. its stream callout did not register) clears that bit before encoding.
    #[must_use]
    pub fn answer(request: &HelloRequest, limits: DriverLimits) -> HelloReply {
        HelloReply {
            selected_version: request.negotiate(PROTOCOL_VERSION, PROTOCOL_VERSION).unwrap_or(0),
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            limits,
            capabilities: CAP_ALL,
        }
    }

    /// The version to use, for the service.
    ///
    /// # Errors
    /// [`ProtocolError::UnsupportedVersion`] if there is no common version (`found` is the driver's
    /// newest, `supported` this build's).
    pub const fn negotiated(&self) -> Result<u16, ProtocolError> {
        if self.selected_version == 0 {
            Err(ProtocolError::UnsupportedVersion { found: self.max_version, supported: PROTOCOL_VERSION })
        } else {
            Ok(self.selected_version)
        }
    }
}

const fn check_range(min: u16, max: u16) -> Result<(), ProtocolError> {
    if min == 0 || min > max { Err(ProtocolError::BadVersionRange { min, max }) } else { Ok(()) }
}

/// Encodes a HELLO request.
///
/// # Errors
/// [`ProtocolError::BadVersionRange`]; [`ProtocolError::BufferTooSmall`] below [`HELLO_REQUEST_LEN`].
pub fn encode_hello_request(request: &HelloRequest, out: &mut [u8]) -> Result<usize, ProtocolError> {
    check_range(request.min_version, request.max_version)?;
    write_single(out, MessageKind::HelloRequest, HELLO_REQUEST_BODY_LEN, |w| {
        w.u16(request.min_version)?;
        w.u16(request.max_version)?;
        w.zeros(4)
    })
}

/// Decodes a HELLO request.
///
/// # Errors
/// Any header error; [`ProtocolError::CountMismatch`]; [`ProtocolError::LengthMismatch`];
/// [`ProtocolError::BadVersionRange`]; [`ProtocolError::NonZeroReserved`].
pub fn decode_hello_request(buf: &[u8]) -> Result<HelloRequest, ProtocolError> {
    let mut r = read_single(buf, MessageKind::HelloRequest, HELLO_REQUEST_BODY_LEN)?;
    let min_version = r.u16()?;
    let max_version = r.u16()?;
    r.zeros(4)?;
    check_range(min_version, max_version)?;
    Ok(HelloRequest { min_version, max_version })
}

fn check_reply(reply: &HelloReply) -> Result<(), ProtocolError> {
    check_range(reply.min_version, reply.max_version)?;
    if reply.selected_version != 0
        && (reply.selected_version < reply.min_version || reply.selected_version > reply.max_version)
    {
        return Err(ProtocolError::BadVersionRange { min: reply.min_version, max: reply.max_version });
    }
    if reply.limits.max_app_path_units > MAX_APP_PATH_UNITS {
        return Err(ProtocolError::PathTooLong { units: reply.limits.max_app_path_units });
    }
    if reply.limits.max_batch_records > MAX_BATCH_RECORDS {
        return Err(ProtocolError::TooManyRecords { count: reply.limits.max_batch_records, max: MAX_BATCH_RECORDS });
    }
    Ok(())
}

/// Encodes a HELLO reply.
///
/// # Errors
/// [`ProtocolError::BadVersionRange`] (a selected version outside the driver's range included),
/// [`ProtocolError::PathTooLong`] / [`ProtocolError::TooManyRecords`] for limits above the
/// protocol's, [`ProtocolError::BufferTooSmall`] below [`HELLO_REPLY_LEN`].
pub fn encode_hello_reply(reply: &HelloReply, out: &mut [u8]) -> Result<usize, ProtocolError> {
    check_reply(reply)?;
    write_single(out, MessageKind::HelloReply, HELLO_REPLY_BODY_LEN, |w| {
        w.u16(reply.selected_version)?;
        w.u16(reply.min_version)?;
        w.u16(reply.max_version)?;
        w.u16(reply.limits.max_app_path_units)?;
        w.u32(reply.limits.max_batch_records)?;
        w.u32(reply.limits.max_message_len)?;
        w.u32(reply.capabilities)?;
        w.zeros(4)
    })
}

/// Decodes a HELLO reply.
///
/// # Errors
/// Any header error; [`ProtocolError::CountMismatch`]; [`ProtocolError::LengthMismatch`]; the
/// errors of [`encode_hello_reply`]'s checks; [`ProtocolError::NonZeroReserved`].
pub fn decode_hello_reply(buf: &[u8]) -> Result<HelloReply, ProtocolError> {
    let mut r = read_single(buf, MessageKind::HelloReply, HELLO_REPLY_BODY_LEN)?;
    let selected_version = r.u16()?;
    let min_version = r.u16()?;
    let max_version = r.u16()?;
    let max_app_path_units = r.u16()?;
    let max_batch_records = r.u32()?;
    let max_message_len = r.u32()?;
    let capabilities = r.u32()?;
    r.zeros(4)?;
    let reply = HelloReply {
        selected_version,
        min_version,
        max_version,
        limits: DriverLimits { max_app_path_units, max_batch_records, max_message_len },
        capabilities,
    };
    check_reply(&reply)?;
    Ok(reply)
}
