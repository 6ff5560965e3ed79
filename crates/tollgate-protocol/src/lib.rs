//! Tollgate's IOCTL protocol: the versioned messages between the driver and the user-mode verdict
//! service.
//!
//! The driver parses what user mode sends, so this crate is on the kernel's attack surface (S9):
//! it is `no_std`, allocation-free, has no `unsafe`, and never panics — every malformed buffer is
//! an error ([`ProtocolError`]) with a specific NTSTATUS ([`ProtocolError::ntstatus`]). The same
//! code encodes and decodes on both sides, so the two cannot drift apart.
//!
//! # The exchange
//! 1. The service opens the control device and sends [`IOCTL_TOLLGATE_HELLO`] with the versions it
//!    speaks ([`hello`]); the driver answers with the version to use and its limits.
//! 2. The service keeps one or more [`IOCTL_TOLLGATE_GET_PENDED`] requests outstanding (the
//!    *inverted call*): the driver parks them and completes one with a batch of pended
//!    connections ([`pended`], written by [`BatchWriter`]) when there are some — or with an empty
//!    batch when stream events are waiting (step 5), so that a service blocked in this read learns
//!    of them.
//! 3. The service answers with [`IOCTL_TOLLGATE_SUBMIT_VERDICTS`] ([`verdict`]); the reply holds one
//!    result per verdict (accepted, unknown id, late, being resolved, unloading).
//! 4. [`IOCTL_TOLLGATE_GET_STATS`] ([`stats`]), [`IOCTL_TOLLGATE_SET_CONFIG`] and
//!    [`IOCTL_TOLLGATE_GET_CONFIG`] ([`config`]) at any time.
//! 5. Since protocol version 2, when the HELLO reply advertises them ([`CAP_STREAM_EVENTS`],
//!    [`CAP_DOMAIN_BLOCKLIST`]): the service reads [`IOCTL_TOLLGATE_GET_STREAM_EVENTS`] for what
//!    the stream callout found out about flows ([`stream`], written by [`StreamEventWriter`]), and
//!    replaces the driver's domain blocklist with [`IOCTL_TOLLGATE_PUSH_BLOCKLIST`] ([`blocklist`]).
//!
//! # Wire format
//! Little-endian, fixed layouts, documented byte by byte in each module. Every message — input or
//! output — starts with the 16-byte [`header`] (magic, version, kind, total length, record count).
//! Batches are the header followed by `count` records, each a multiple of 8 bytes; the other
//! messages have one fixed body (count 1). All reserved and padding bytes must be zero, and every
//! length must match exactly, so one message has exactly one encoding: what a parser accepts
//! re-encodes to the same bytes (the tests check this for every single-byte mutation).
//!
//! | message | kind | body |
//! |---|---|---|
//! | HELLO request | 0x0001 | 8 bytes ([`hello`]) |
//! | HELLO reply | 0x0002 | 24 bytes ([`hello`]) |
//! | pended batch | 0x0003 | `count` × (72 + 2 × path units, padded to 8) ([`pended`]) |
//! | verdict batch | 0x0004 | `count` × 16 ([`verdict`]) |
//! | verdict results | 0x0005 | `count` × 16 ([`verdict`]) |
//! | stats | 0x0006 | 240 bytes ([`stats`]; layout version 2) |
//! | config | 0x0007 | 16 bytes ([`config`]) |
//! | stream events | 0x0008 | `count` × (176 + Σ (4 + name length) over ≤ 2 names, padded to 8) ([`stream`]; since version 2) |
//! | domain blocklist | 0x0009 | `count` × (2 + name length, padded to 8), sorted and unique ([`blocklist`]; since version 2) |
//!
//! # Versioning
//! Each message kind has a layout version (header offset 4); a parser accepts exactly the version
//! this build speaks for that kind ([`MessageKind::version`]) and rejects any other with
//! [`ProtocolError::UnsupportedVersion`] (`STATUS_REVISION_MISMATCH`). A later version that
//! changes a layout bumps [`PROTOCOL_VERSION`], and the changed kind's layout version becomes that
//! protocol version; HELLO's own layout never changes, so negotiation always works. New features
//! get new kinds and capability bits, never new meanings for old bytes.
//!
//! Protocol version 2 (this one): the stream events (kind 0x0008) and the domain blocklist (kind
//! 0x0009) with their IOCTLs and capability bits, and the stream callout's counters appended to
//! the stats (stats layout version 2). The other kinds keep layout version 1.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod batch;
pub mod blocklist;
pub mod config;
pub mod error;
pub mod header;
pub mod hello;
pub mod ioctl;
pub mod pended;
pub mod stats;
pub mod stream;
pub mod verdict;
mod wire;

/// The most records one batch (pended connections, verdicts or results) may hold. Bounds the
/// driver's work per IOCTL and the size of a reply (≈ 2 MiB of pended records at most).
pub const MAX_BATCH_RECORDS: u32 = 1024;

pub use batch::{Record, RecordIter, Records};
#[cfg(feature = "std")]
pub use blocklist::encode_blocklist_to_vec;
pub use blocklist::{
    BLOCKLIST_RECORD_HEADER_LEN, Blocklist, BlocklistIter, MAX_BLOCKLIST_MESSAGE_LEN, MAX_BLOCKLIST_PATTERNS,
    MAX_BLOCKLIST_RECORD_LEN, blocklist_len, decode_blocklist, encode_blocklist, pattern_kind_from_u8,
    pattern_kind_to_u8,
};
pub use config::{
    CONFIG_BODY_LEN, CONFIG_MESSAGE_LEN, MAX_PEND_TIMEOUT, MIN_PEND_TIMEOUT, decode_config, encode_config,
    validate_config,
};
pub use error::{ConfigIssue, EnumField, LengthField, ProtocolError};
pub use header::{HEADER_LEN, HELLO_VERSION, Header, MAGIC, MessageKind, PROTOCOL_VERSION, peek_header};
pub use hello::{
    CAP_ALL, CAP_DOMAIN_BLOCKLIST, CAP_STREAM_EVENTS, DriverLimits, HELLO_REPLY_LEN, HELLO_REQUEST_LEN, HelloReply,
    HelloRequest, decode_hello_reply, decode_hello_request, encode_hello_reply, encode_hello_request,
};
pub use ioctl::{
    FILE_DEVICE_TOLLGATE, IOCTL_TOLLGATE_GET_CONFIG, IOCTL_TOLLGATE_GET_PENDED, IOCTL_TOLLGATE_GET_STATS,
    IOCTL_TOLLGATE_GET_STREAM_EVENTS, IOCTL_TOLLGATE_HELLO, IOCTL_TOLLGATE_PUSH_BLOCKLIST, IOCTL_TOLLGATE_SET_CONFIG,
    IOCTL_TOLLGATE_SUBMIT_VERDICTS, Ioctl, ctl_code,
};
pub use pended::{
    AppPath, BatchWriter, FLAG_PATH_TRUNCATED, MAX_APP_PATH_UNITS, MAX_PENDED_RECORD_LEN, MIN_GET_PENDED_OUTPUT,
    PENDED_FIXED_LEN, PendedBatch, PendedIter, PendedRecord, decode_pended_batch,
};
pub use stats::{DeviceStats, STATS_BODY_LEN, STATS_MESSAGE_LEN, decode_stats, encode_stats};
pub use stream::{
    EVENT_FLAG_ALPN_TRUNCATED, EVENT_FLAG_FIRST_DATA, EVENT_FLAG_GREASE, EVENT_FLAG_TLS13, MAX_EVENT_NAMES,
    MAX_STREAM_EVENT_RECORD_LEN, MIN_GET_STREAM_EVENTS_OUTPUT, NAME_FLAG_TRUNCATED, STREAM_EVENT_FIXED_LEN,
    STREAM_EVENT_NAME_HEADER_LEN, StreamEventBatch, StreamEventIter, StreamEventWriter, decode_stream_events,
    stream_event_len,
};
pub use verdict::{
    RESULT_RECORD_LEN, VERDICT_RECORD_LEN, VerdictBatch, VerdictEntry, VerdictOutcome, VerdictResult,
    VerdictResultWriter, VerdictResults, VerdictWriter, decode_verdict_batch, decode_verdict_results,
    encode_verdict_batch, respond_to_verdicts, verdict_from_u8, verdict_to_u8,
};
