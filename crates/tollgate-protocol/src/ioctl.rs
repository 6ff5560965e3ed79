//! The control codes of Tollgate's control device, and what each one carries.
//!
//! Codes are built like `CTL_CODE` in `devioctl.h`
//! (<https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/defining-i-o-control-codes>):
//! `(DeviceType << 16) | (RequiredAccess << 14) | (FunctionCode << 2) | TransferType`.
//! - Device type [`FILE_DEVICE_TOLLGATE`] = 0x8A7E: "values of 0x8000 and higher can be used by
//!   vendors", so it cannot collide with a Microsoft device type.
//! - Function codes from 0x800: "values of 0x800 and higher can be used by vendors".
//! - `METHOD_BUFFERED` for all: the I/O manager copies the buffers, so the driver never touches a
//!   user-mode address (S9) and needs no probing or MDL; the messages are small.
//! - Required access `FILE_READ_DATA | FILE_WRITE_DATA`: the I/O manager checks it against the
//!   handle's granted access before the driver sees the request, so a handle opened without both
//!   rights (e.g. by a process that only queried the device) cannot drive it. The device's SDDL
//!   already admits only SYSTEM and Administrators (S9).
//!
//! | IOCTL | function | input | output |
//! |---|---|---|---|
//! | `HELLO` | 0x800 | HELLO request | HELLO reply (≥ [`HELLO_REPLY_LEN`]) |
//! | `GET_PENDED` | 0x801 | none | pended batch (≥ [`MIN_GET_PENDED_OUTPUT`]); the inverted call: the driver parks the request until a connection is pended, or until stream events are queued (then the batch may be empty: read `GET_STREAM_EVENTS`) |
//! | `SUBMIT_VERDICTS` | 0x802 | verdict batch | verdict results (≥ the input length) |
//! | `GET_STATS` | 0x803 | none | stats (≥ [`STATS_MESSAGE_LEN`]) |
//! | `SET_CONFIG` | 0x804 | config | none |
//! | `GET_CONFIG` | 0x805 | none | config (≥ [`CONFIG_MESSAGE_LEN`]) |
//! | `GET_STREAM_EVENTS` | 0x806 | none | stream events (≥ [`MIN_GET_STREAM_EVENTS_OUTPUT`]); polled: completes at once, with 0 events if there are none |
//! | `PUSH_BLOCKLIST` | 0x807 | domain blocklist (≤ [`MAX_BLOCKLIST_MESSAGE_LEN`]) | none |
//!
//! `GET_STREAM_EVENTS` and `PUSH_BLOCKLIST` exist since protocol version 2; a driver advertises them
//! with [`CAP_STREAM_EVENTS`](crate::CAP_STREAM_EVENTS) and
//! [`CAP_DOMAIN_BLOCKLIST`](crate::CAP_DOMAIN_BLOCKLIST) in its HELLO reply.

use crate::blocklist::MAX_BLOCKLIST_MESSAGE_LEN;
use crate::config::CONFIG_MESSAGE_LEN;
use crate::error::ProtocolError;
use crate::header::MessageKind;
use crate::hello::HELLO_REPLY_LEN;
use crate::pended::MIN_GET_PENDED_OUTPUT;
use crate::stats::STATS_MESSAGE_LEN;
use crate::stream::MIN_GET_STREAM_EVENTS_OUTPUT;

/// Tollgate's device type (vendor range, ≥ 0x8000).
pub const FILE_DEVICE_TOLLGATE: u32 = 0x8A7E;
/// `METHOD_BUFFERED` (devioctl.h).
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_ANY_ACCESS` (devioctl.h).
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_READ_DATA` / `FILE_READ_ACCESS` (devioctl.h).
pub const FILE_READ_DATA: u32 = 0x0001;
/// `FILE_WRITE_DATA` / `FILE_WRITE_ACCESS` (devioctl.h).
pub const FILE_WRITE_DATA: u32 = 0x0002;

/// `CTL_CODE(DeviceType, Function, Method, Access)` from devioctl.h. Each argument is masked to
/// its field width (16, 12, 2 and 2 bits), so an out-of-range argument cannot spill into another
/// field; the codes below are checked at compile time to be unaffected.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    ((device_type & 0xFFFF) << 16) | ((access & 0x3) << 14) | ((function & 0xFFF) << 2) | (method & 0x3)
}

const fn tollgate_code(function: u32) -> u32 {
    ctl_code(FILE_DEVICE_TOLLGATE, function, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA)
}

/// Version negotiation and limits.
pub const IOCTL_TOLLGATE_HELLO: u32 = tollgate_code(0x800);
/// Inverted call: completes with a batch of pended connections.
pub const IOCTL_TOLLGATE_GET_PENDED: u32 = tollgate_code(0x801);
/// A batch of verdicts in, one result per verdict out.
pub const IOCTL_TOLLGATE_SUBMIT_VERDICTS: u32 = tollgate_code(0x802);
/// The driver's counters.
pub const IOCTL_TOLLGATE_GET_STATS: u32 = tollgate_code(0x803);
/// Replace the runtime configuration.
pub const IOCTL_TOLLGATE_SET_CONFIG: u32 = tollgate_code(0x804);
/// Read the runtime configuration.
pub const IOCTL_TOLLGATE_GET_CONFIG: u32 = tollgate_code(0x805);
/// Polled: completes at once with the queued stream events (TLS SNI / HTTP Host per flow).
pub const IOCTL_TOLLGATE_GET_STREAM_EVENTS: u32 = tollgate_code(0x806);
/// Replace the domain blocklist.
pub const IOCTL_TOLLGATE_PUSH_BLOCKLIST: u32 = tollgate_code(0x807);

// The masking in `ctl_code` is a no-op for our arguments, and the codes are what CTL_CODE gives.
const _: () = assert!(IOCTL_TOLLGATE_HELLO == 0x8A7E_E000);
const _: () = assert!(IOCTL_TOLLGATE_PUSH_BLOCKLIST == 0x8A7E_E01C);

/// An implemented control code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ioctl {
    /// [`IOCTL_TOLLGATE_HELLO`].
    Hello,
    /// [`IOCTL_TOLLGATE_GET_PENDED`].
    GetPended,
    /// [`IOCTL_TOLLGATE_SUBMIT_VERDICTS`].
    SubmitVerdicts,
    /// [`IOCTL_TOLLGATE_GET_STATS`].
    GetStats,
    /// [`IOCTL_TOLLGATE_SET_CONFIG`].
    SetConfig,
    /// [`IOCTL_TOLLGATE_GET_CONFIG`].
    GetConfig,
    /// [`IOCTL_TOLLGATE_GET_STREAM_EVENTS`].
    GetStreamEvents,
    /// [`IOCTL_TOLLGATE_PUSH_BLOCKLIST`].
    PushBlocklist,
}

impl Ioctl {
    /// Every implemented control code.
    pub const ALL: [Ioctl; 8] = [
        Ioctl::Hello,
        Ioctl::GetPended,
        Ioctl::SubmitVerdicts,
        Ioctl::GetStats,
        Ioctl::SetConfig,
        Ioctl::GetConfig,
        Ioctl::GetStreamEvents,
        Ioctl::PushBlocklist,
    ];

    /// The control code.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Ioctl::Hello => IOCTL_TOLLGATE_HELLO,
            Ioctl::GetPended => IOCTL_TOLLGATE_GET_PENDED,
            Ioctl::SubmitVerdicts => IOCTL_TOLLGATE_SUBMIT_VERDICTS,
            Ioctl::GetStats => IOCTL_TOLLGATE_GET_STATS,
            Ioctl::SetConfig => IOCTL_TOLLGATE_SET_CONFIG,
            Ioctl::GetConfig => IOCTL_TOLLGATE_GET_CONFIG,
            Ioctl::GetStreamEvents => IOCTL_TOLLGATE_GET_STREAM_EVENTS,
            Ioctl::PushBlocklist => IOCTL_TOLLGATE_PUSH_BLOCKLIST,
        }
    }

    /// The driver's dispatch: which IOCTL a control code is.
    ///
    /// # Errors
    /// [`ProtocolError::UnknownIoctl`] for any other code. ([`ProtocolError::ReservedIoctl`] is for
    /// codes kept for a later version; none is since protocol version 2.)
    pub const fn from_code(code: u32) -> Result<Ioctl, ProtocolError> {
        match code {
            IOCTL_TOLLGATE_HELLO => Ok(Ioctl::Hello),
            IOCTL_TOLLGATE_GET_PENDED => Ok(Ioctl::GetPended),
            IOCTL_TOLLGATE_SUBMIT_VERDICTS => Ok(Ioctl::SubmitVerdicts),
            IOCTL_TOLLGATE_GET_STATS => Ok(Ioctl::GetStats),
            IOCTL_TOLLGATE_SET_CONFIG => Ok(Ioctl::SetConfig),
            IOCTL_TOLLGATE_GET_CONFIG => Ok(Ioctl::GetConfig),
            IOCTL_TOLLGATE_GET_STREAM_EVENTS => Ok(Ioctl::GetStreamEvents),
            IOCTL_TOLLGATE_PUSH_BLOCKLIST => Ok(Ioctl::PushBlocklist),
            _ => Err(ProtocolError::UnknownIoctl { code }),
        }
    }

    /// The message kind of the input buffer, or `None` for an IOCTL that takes no input.
    #[must_use]
    pub const fn request_kind(self) -> Option<MessageKind> {
        match self {
            Ioctl::Hello => Some(MessageKind::HelloRequest),
            Ioctl::SubmitVerdicts => Some(MessageKind::VerdictBatch),
            Ioctl::SetConfig => Some(MessageKind::Config),
            Ioctl::PushBlocklist => Some(MessageKind::DomainBlocklist),
            Ioctl::GetPended | Ioctl::GetStats | Ioctl::GetConfig | Ioctl::GetStreamEvents => None,
        }
    }

    /// The message kind of the output buffer, or `None` for an IOCTL that returns nothing.
    #[must_use]
    pub const fn reply_kind(self) -> Option<MessageKind> {
        match self {
            Ioctl::Hello => Some(MessageKind::HelloReply),
            Ioctl::GetPended => Some(MessageKind::PendedBatch),
            Ioctl::SubmitVerdicts => Some(MessageKind::VerdictResults),
            Ioctl::GetStats => Some(MessageKind::Stats),
            Ioctl::GetConfig => Some(MessageKind::Config),
            Ioctl::GetStreamEvents => Some(MessageKind::StreamEvents),
            Ioctl::SetConfig | Ioctl::PushBlocklist => None,
        }
    }

    /// The driver's first check, before it reads a byte: the buffer lengths the I/O manager
    /// reports (`InputBufferLength`, `OutputBufferLength`). The message parsers check the input
    /// itself.
    ///
    /// # Errors
    /// [`ProtocolError::UnexpectedInput`] for input to an IOCTL that takes none;
    /// [`ProtocolError::MessageTooLong`] for a blocklist over [`MAX_BLOCKLIST_MESSAGE_LEN`];
    /// [`ProtocolError::BufferTooSmall`] for an output buffer below the IOCTL's minimum (see the
    /// module docs; for `SUBMIT_VERDICTS`, the input length).
    pub const fn check_lengths(self, input_len: usize, output_len: usize) -> Result<(), ProtocolError> {
        if self.request_kind().is_none() && input_len != 0 {
            return Err(ProtocolError::UnexpectedInput { len: input_len });
        }
        if matches!(self, Ioctl::PushBlocklist) && input_len > MAX_BLOCKLIST_MESSAGE_LEN {
            return Err(ProtocolError::MessageTooLong { len: input_len, max: MAX_BLOCKLIST_MESSAGE_LEN });
        }
        let needed = match self {
            Ioctl::Hello => HELLO_REPLY_LEN,
            Ioctl::GetPended => MIN_GET_PENDED_OUTPUT,
            Ioctl::SubmitVerdicts => input_len,
            Ioctl::GetStats => STATS_MESSAGE_LEN,
            Ioctl::GetConfig => CONFIG_MESSAGE_LEN,
            Ioctl::GetStreamEvents => MIN_GET_STREAM_EVENTS_OUTPUT,
            Ioctl::SetConfig | Ioctl::PushBlocklist => 0,
        };
        if output_len < needed {
            return Err(ProtocolError::BufferTooSmall { needed, available: output_len });
        }
        Ok(())
    }
}
