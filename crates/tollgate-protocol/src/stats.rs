//! `IOCTL_TOLLGATE_GET_STATS` output (kind [`MessageKind::Stats`], count 1): the driver's
//! counters, a copy of [`StatsSnapshot`].
//!
//! Body (160 bytes), every field little-endian, in the order of [`StatsSnapshot`]'s fields. The
//! 64-bit counters come first so that they are all 8-aligned; the 32-bit gauges follow.
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 8 | pended | successful `FwpsPendOperation0` calls |
//! | 8 | 8 | completed_by_verdict | completions by a user-mode verdict |
//! | 16 | 8 | completed_by_teardown | completions by endpoint teardown (S2) |
//! | 24 | 8 | completed_by_timeout | completions by timeout (S7) |
//! | 32 | 8 | completed_by_cleanup | completions by service-handle cleanup (S7) |
//! | 40 | 8 | completed_by_unload | completions by unload (S5) |
//! | 48 | 8 | reauth_hits | reauthorizations answered from the cache (S8) |
//! | 56 | 8 | reauth_misses | reauthorizations without a cached verdict |
//! | 64 | 8 | inline_no_service | decided inline: no service attached |
//! | 72 | 8 | inline_unloading | decided inline: unloading |
//! | 80 | 8 | inline_cap_reached | decided inline: pend cap reached (S9) |
//! | 88 | 8 | inline_alloc_failed | decided inline: allocation failed (S4) |
//! | 96 | 8 | inline_pend_failed | decided inline: `FwpsPendOperation0` failed |
//! | 104 | 8 | rejected_verdicts | unknown/late/duplicate verdicts (S9) |
//! | 112 | 8 | teardowns_waited | teardowns that waited for an in-flight completion |
//! | 120 | 8 | teardown_spins | …that re-checked instead of pending the notification |
//! | 128 | 8 | teardown_gave_up | …that gave up at the spin bound |
//! | 136 | 8 | closures_completed | pended teardown notifications completed |
//! | 144 | 4 | peak_entries | most table entries in use at once |
//! | 148 | 4 | live_entries | entries in use now |
//! | 152 | 4 | pended_now | entries waiting for a verdict now |
//! | 156 | 4 | cached_verdicts | verdicts in the reauthorization cache now |
//!
//! Every bit pattern is a valid snapshot, so there is nothing to validate beyond the header.

use tollgate_core::StatsSnapshot;

use crate::error::ProtocolError;
use crate::header::{HEADER_LEN, MessageKind, read_single, write_single};

/// Size of the stats body.
pub const STATS_BODY_LEN: usize = 18 * 8 + 4 * 4;
/// Size of the whole stats message (the smallest `GET_STATS` output buffer).
pub const STATS_MESSAGE_LEN: usize = HEADER_LEN + STATS_BODY_LEN;

/// Encodes a stats reply into `out`; returns its length.
///
/// # Errors
/// [`ProtocolError::BufferTooSmall`] if `out` is shorter than [`STATS_MESSAGE_LEN`]; nothing is
/// written.
pub fn encode_stats(stats: &StatsSnapshot, out: &mut [u8]) -> Result<usize, ProtocolError> {
    write_single(out, MessageKind::Stats, STATS_BODY_LEN, |w| {
        for counter in [
            stats.pended,
            stats.completed_by_verdict,
            stats.completed_by_teardown,
            stats.completed_by_timeout,
            stats.completed_by_cleanup,
            stats.completed_by_unload,
            stats.reauth_hits,
            stats.reauth_misses,
            stats.inline_no_service,
            stats.inline_unloading,
            stats.inline_cap_reached,
            stats.inline_alloc_failed,
            stats.inline_pend_failed,
            stats.rejected_verdicts,
            stats.teardowns_waited,
            stats.teardown_spins,
            stats.teardown_gave_up,
            stats.closures_completed,
        ] {
            w.u64(counter)?;
        }
        for gauge in [stats.peak_entries, stats.live_entries, stats.pended_now, stats.cached_verdicts] {
            w.u32(gauge)?;
        }
        Ok(())
    })
}

/// Decodes a stats reply.
///
/// # Errors
/// Any header error; [`ProtocolError::CountMismatch`]; [`ProtocolError::LengthMismatch`] unless the
/// message is exactly [`STATS_MESSAGE_LEN`] bytes.
pub fn decode_stats(buf: &[u8]) -> Result<StatsSnapshot, ProtocolError> {
    let mut r = read_single(buf, MessageKind::Stats, STATS_BODY_LEN)?;
    Ok(StatsSnapshot {
        pended: r.u64()?,
        completed_by_verdict: r.u64()?,
        completed_by_teardown: r.u64()?,
        completed_by_timeout: r.u64()?,
        completed_by_cleanup: r.u64()?,
        completed_by_unload: r.u64()?,
        reauth_hits: r.u64()?,
        reauth_misses: r.u64()?,
        inline_no_service: r.u64()?,
        inline_unloading: r.u64()?,
        inline_cap_reached: r.u64()?,
        inline_alloc_failed: r.u64()?,
        inline_pend_failed: r.u64()?,
        rejected_verdicts: r.u64()?,
        teardowns_waited: r.u64()?,
        teardown_spins: r.u64()?,
        teardown_gave_up: r.u64()?,
        closures_completed: r.u64()?,
        peak_entries: r.u32()?,
        live_entries: r.u32()?,
        pended_now: r.u32()?,
        cached_verdicts: r.u32()?,
    })
}
