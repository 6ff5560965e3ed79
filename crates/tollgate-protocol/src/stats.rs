//! `IOCTL_TOLLGATE_GET_STATS` output (kind [`MessageKind::Stats`], count 1): the driver's
//! counters, a copy of [`StatsSnapshot`] and of the stream callout's [`StreamStats`].
//!
//! Layout version 2 (protocol version 2): version 1 was the first 160 bytes alone; version 2
//! appends the stream callout's counters. Body (240 bytes), every field little-endian, in the order
//! of [`StatsSnapshot`]'s fields, then [`StreamStats`]'s. The 64-bit counters of the snapshot come
//! first so that they are all 8-aligned; its 32-bit gauges follow (16 bytes, so the stream counters
//! are 8-aligned too).
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
//! | 160 | 8 | flows_tracked | stream flows whose context was associated (ever) |
//! | 168 | 8 | flows_live | stream flows tracked now |
//! | 176 | 8 | flows_untracked | flows not tracked: the flow table was full |
//! | 184 | 8 | flows_named | flows whose inspection read at least one name |
//! | 192 | 8 | flows_dropped | flows dropped by the domain blocklist |
//! | 200 | 8 | flows_no_buffer | flows not inspected: no reassembly buffer free |
//! | 208 | 8 | flows_bounded | flows whose first message went past the byte or segment bound |
//! | 216 | 8 | events_lost | stream events dropped: the event queue was full |
//! | 224 | 8 | blocklist_patterns | patterns in the domain blocklist now |
//! | 232 | 8 | blocklist_generation | blocklist replacements since the driver started |
//! | 240 | 8 | rejected_ioctls | requests the control device refused (malformed, wrong role, unknown code) (S9) |
//!
//! Every bit pattern is a valid snapshot, so there is nothing to validate beyond the header.

use tollgate_core::StatsSnapshot;
use tollgate_core::stream::StreamStats;

use crate::error::ProtocolError;
use crate::header::{HEADER_LEN, MessageKind, read_single, write_single};

/// The control device's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceStats {
    /// Requests the control device completed with an error status: malformed buffers, a service
    /// IOCTL from a handle that is not the service, unknown codes (S9).
    pub rejected_ioctls: u64,
}

/// Size of the stats body: the core's snapshot (18 counters, 4 gauges), then the stream callout's
/// 10 counters, then the control device's 1.
pub const STATS_BODY_LEN: usize = 18 * 8 + 4 * 4 + 10 * 8 + 8;
/// Size of the whole stats message (the smallest `GET_STATS` output buffer).
pub const STATS_MESSAGE_LEN: usize = HEADER_LEN + STATS_BODY_LEN;

/// Encodes a stats reply into `out`; returns its length.
///
/// # Errors
/// [`ProtocolError::BufferTooSmall`] if `out` is shorter than [`STATS_MESSAGE_LEN`]; nothing is
/// written.
pub fn encode_stats(
    stats: &StatsSnapshot,
    stream: &StreamStats,
    device: &DeviceStats,
    out: &mut [u8],
) -> Result<usize, ProtocolError> {
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
        for counter in [
            stream.flows_tracked,
            stream.flows_live,
            stream.flows_untracked,
            stream.flows_named,
            stream.flows_dropped,
            stream.flows_no_buffer,
            stream.flows_bounded,
            stream.events_lost,
            stream.blocklist_patterns,
            stream.blocklist_generation,
            device.rejected_ioctls,
        ] {
            w.u64(counter)?;
        }
        Ok(())
    })
}

/// Decodes a stats reply: the core's snapshot, the stream callout's counters and the control
/// device's.
///
/// # Errors
/// Any header error; [`ProtocolError::CountMismatch`]; [`ProtocolError::LengthMismatch`] unless the
/// message is exactly [`STATS_MESSAGE_LEN`] bytes.
pub fn decode_stats(buf: &[u8]) -> Result<(StatsSnapshot, StreamStats, DeviceStats), ProtocolError> {
    let mut r = read_single(buf, MessageKind::Stats, STATS_BODY_LEN)?;
    let snapshot = StatsSnapshot {
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
    };
    let stream = StreamStats {
        flows_tracked: r.u64()?,
        flows_live: r.u64()?,
        flows_untracked: r.u64()?,
        flows_named: r.u64()?,
        flows_dropped: r.u64()?,
        flows_no_buffer: r.u64()?,
        flows_bounded: r.u64()?,
        events_lost: r.u64()?,
        blocklist_patterns: r.u64()?,
        blocklist_generation: r.u64()?,
    };
    let device = DeviceStats { rejected_ioctls: r.u64()? };
    Ok((snapshot, stream, device))
}
