//! `IOCTL_TOLLGATE_SET_CONFIG` input and `IOCTL_TOLLGATE_GET_CONFIG` output (kind
//! [`MessageKind::Config`], count 1): the [`RuntimeConfig`] the service may change.
//!
//! Body (16 bytes):
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 8 | pend timeout (u64 LE, 100 ns ticks) | the core's own unit ([`Ticks`]), so a value round-trips exactly; within [[`MIN_PEND_TIMEOUT`], [`MAX_PEND_TIMEOUT`]] |
//! | 8 | 4 | max pended (u32 LE) | the soft cap on pended connections (S9); ≥ 1. The core further rejects a value above its table capacity |
//! | 12 | 1 | default verdict | 0 = block (fail-closed), 1 = permit (fail-open); applied on timeout, cleanup, unload, cap, … (S7) |
//! | 13 | 3 | reserved | zero |
//!
//! Why the bounds: a timeout under 10 ms would time out nearly every pend before a user-mode
//! service could possibly answer (turning the verdict service into the default verdict), and one
//! over 10 minutes would hold connections — and their applications — effectively forever, which is
//! what S7 forbids. A cap of 0 would make every connection a "cap reached" default verdict; the
//! way to stop pending is to close the service handle.

use tollgate_core::{RuntimeConfig, Ticks};

use crate::error::{ConfigIssue, ProtocolError};
use crate::header::{HEADER_LEN, MessageKind, read_single, write_single};
use crate::verdict::{verdict_from_u8, verdict_to_u8};

/// Size of the config body.
pub const CONFIG_BODY_LEN: usize = 16;
/// Size of the whole config message.
pub const CONFIG_MESSAGE_LEN: usize = HEADER_LEN + CONFIG_BODY_LEN;
/// The shortest pend timeout accepted: 10 ms.
pub const MIN_PEND_TIMEOUT: Ticks = Ticks::from_millis(10);
/// The longest pend timeout accepted: 10 minutes.
pub const MAX_PEND_TIMEOUT: Ticks = Ticks::from_millis(10 * 60 * 1000);

/// Checks a configuration against the bounds in the module docs.
///
/// # Errors
/// [`ProtocolError::InvalidConfig`] with the first issue found.
pub const fn validate_config(config: &RuntimeConfig) -> Result<(), ProtocolError> {
    if config.pend_timeout.0 < MIN_PEND_TIMEOUT.0 {
        Err(ProtocolError::InvalidConfig(ConfigIssue::TimeoutTooShort))
    } else if config.pend_timeout.0 > MAX_PEND_TIMEOUT.0 {
        Err(ProtocolError::InvalidConfig(ConfigIssue::TimeoutTooLong))
    } else if config.max_pended == 0 {
        Err(ProtocolError::InvalidConfig(ConfigIssue::ZeroCap))
    } else {
        Ok(())
    }
}

/// Encodes a configuration into `out`; returns its length. The configuration is validated first,
/// so the service cannot send one the driver would reject for its bounds.
///
/// # Errors
/// [`ProtocolError::InvalidConfig`]; [`ProtocolError::BufferTooSmall`] if `out` is shorter than
/// [`CONFIG_MESSAGE_LEN`]. Nothing is written on error.
pub fn encode_config(config: &RuntimeConfig, out: &mut [u8]) -> Result<usize, ProtocolError> {
    validate_config(config)?;
    write_single(out, MessageKind::Config, CONFIG_BODY_LEN, |w| {
        w.u64(config.pend_timeout.0)?;
        w.u32(config.max_pended)?;
        w.u8(verdict_to_u8(config.default_verdict))?;
        w.zeros(3)
    })
}

/// Decodes and validates a configuration.
///
/// # Errors
/// Any header error; [`ProtocolError::CountMismatch`]; [`ProtocolError::LengthMismatch`];
/// [`ProtocolError::BadEnum`] for the verdict byte; [`ProtocolError::NonZeroReserved`];
/// [`ProtocolError::InvalidConfig`].
pub fn decode_config(buf: &[u8]) -> Result<RuntimeConfig, ProtocolError> {
    let mut r = read_single(buf, MessageKind::Config, CONFIG_BODY_LEN)?;
    let pend_timeout = Ticks(r.u64()?);
    let max_pended = r.u32()?;
    let default_verdict = verdict_from_u8(r.u8()?)?;
    r.zeros(3)?;
    let config = RuntimeConfig { default_verdict, pend_timeout, max_pended };
    validate_config(&config)?;
    Ok(config)
}
