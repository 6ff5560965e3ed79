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
//!    connections ([`pended`], written by [`BatchWriter`]) when there are some.
//! 3. The service answers with [`IOCTL_TOLLGATE_SUBMIT_VERDICTS`] ([`verdict`]); the reply holds one
//!    result per verdict (accepted, unknown id, late, being resolved, unloading).
//! 4. [`IOCTL_TOLLGATE_GET_STATS`] ([`stats`]), [`IOCTL_TOLLGATE_SET_CONFIG`] and
//!    [`IOCTL_TOLLGATE_GET_CONFIG`] ([`config`]) at any time.
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
//! | stats | 0x0006 | 160 bytes ([`stats`]) |
//! | config | 0x0007 | 16 bytes ([`config`]) |
//! | stream events | 0x0008 | reserved for a later version (SNI / Host per flow) |
//! | domain blocklist | 0x0009 | reserved for a later version |
//!
//! # Versioning
//! Each message kind has a layout version (header offset 4); a parser accepts exactly the version
//! this build speaks for that kind and rejects any other with
//! [`ProtocolError::UnsupportedVersion`] (`STATUS_REVISION_MISMATCH`). A later version that
//! changes a layout bumps [`PROTOCOL_VERSION`]; HELLO's own layout never changes, so negotiation
//! always works. New features get new kinds and capability bits (the reserved ones above), never
//! new meanings for old bytes.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod batch;
pub mod config;
pub mod error;
pub mod header;
pub mod hello;
pub mod ioctl;
pub mod pended;
pub mod stats;
pub mod verdict;
mod wire;

/// The most records one batch (pended connections, verdicts or results) may hold. Bounds the
/// driver's work per IOCTL and the size of a reply (≈ 2 MiB of pended records at most).
pub const MAX_BATCH_RECORDS: u32 = 1024;

pub use config::{
    CONFIG_BODY_LEN, CONFIG_MESSAGE_LEN, MAX_PEND_TIMEOUT, MIN_PEND_TIMEOUT, decode_config, encode_config,
    validate_config,
};
pub use error::{ConfigIssue, EnumField, ProtocolError};
pub use header::{HEADER_LEN, HELLO_VERSION, Header, MAGIC, MessageKind, PROTOCOL_VERSION, peek_header};
pub use hello::{
    CAP_DOMAIN_BLOCKLIST, CAP_STREAM_EVENTS, DriverLimits, HELLO_REPLY_LEN, HELLO_REQUEST_LEN, HelloReply,
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
pub use stats::{STATS_BODY_LEN, STATS_MESSAGE_LEN, decode_stats, encode_stats};
pub use verdict::{
    RESULT_RECORD_LEN, VERDICT_RECORD_LEN, VerdictBatch, VerdictEntry, VerdictOutcome, VerdictResult,
    VerdictResultWriter, VerdictResults, VerdictWriter, decode_verdict_batch, decode_verdict_results,
    encode_verdict_batch, respond_to_verdicts, verdict_from_u8, verdict_to_u8,
};
