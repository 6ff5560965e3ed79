//! Driver counters, exported to user mode by the stats IOCTL.
//!
//! Counters are relaxed `core` atomics even under loom on purpose: their values never decide
//! anything, and keeping them out of loom's exploration keeps the models about the protocol.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use crate::lifecycle::DecisionReason;
use crate::types::Resolution;

/// One relaxed counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) pended: Counter,
    completed_verdict: Counter,
    completed_teardown: Counter,
    completed_timeout: Counter,
    completed_cleanup: Counter,
    completed_unload: Counter,
    pub(crate) reauth_hits: Counter,
    pub(crate) reauth_misses: Counter,
    inline_no_service: Counter,
    inline_unloading: Counter,
    inline_cap: Counter,
    inline_alloc_failed: Counter,
    inline_pend_failed: Counter,
    pub(crate) rejected_verdicts: Counter,
    pub(crate) teardowns_waited: Counter,
    pub(crate) teardown_spins: Counter,
    pub(crate) teardown_gave_up: Counter,
    pub(crate) closures_completed: Counter,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Successful `FwpsPendOperation0` calls.
    pub pended: u64,
    /// Completions by user-mode verdict.
    pub completed_by_verdict: u64,
    /// Completions by endpoint teardown.
    pub completed_by_teardown: u64,
    /// Completions by timeout (default verdict).
    pub completed_by_timeout: u64,
    /// Completions by verdict-service cleanup (default verdict).
    pub completed_by_cleanup: u64,
    /// Completions by unload (default verdict).
    pub completed_by_unload: u64,
    /// Reauthorizations answered from the cache.
    pub reauth_hits: u64,
    /// Reauthorizations without a cached verdict (default verdict).
    pub reauth_misses: u64,
    /// Decided inline because no verdict service was attached.
    pub inline_no_service: u64,
    /// Decided inline during unload.
    pub inline_unloading: u64,
    /// Decided inline because the pend cap was reached.
    pub inline_cap_reached: u64,
    /// Decided inline because an allocation failed.
    pub inline_alloc_failed: u64,
    /// Decided inline because `FwpsPendOperation0` failed.
    pub inline_pend_failed: u64,
    /// Verdicts rejected (unknown, late, duplicate id).
    pub rejected_verdicts: u64,
    /// Teardowns that had to wait for an in-flight completion.
    pub teardowns_waited: u64,
    /// …of which could not pend their notification and re-checked instead.
    pub teardown_spins: u64,
    /// …of which gave up at the spin bound.
    pub teardown_gave_up: u64,
    /// Pended teardown notifications completed.
    pub closures_completed: u64,
    /// Most entries in use at once.
    pub peak_entries: u32,
    /// Entries in use now.
    pub live_entries: u32,
    /// Entries waiting for a verdict now.
    pub pended_now: u32,
    /// Verdicts in the reauthorization cache now.
    pub cached_verdicts: u32,
}

impl StatsSnapshot {
    /// All completions, whatever their cause.
    #[must_use]
    pub fn completed(&self) -> u64 {
        self.completed_by_verdict
            + self.completed_by_teardown
            + self.completed_by_timeout
            + self.completed_by_cleanup
            + self.completed_by_unload
    }
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn count_completion(&self, resolution: Resolution) {
        match resolution {
            Resolution::Verdict => self.completed_verdict.bump(),
            Resolution::Teardown => self.completed_teardown.bump(),
            Resolution::Timeout => self.completed_timeout.bump(),
            Resolution::ServiceCleanup => self.completed_cleanup.bump(),
            Resolution::Unload => self.completed_unload.bump(),
        }
    }

    pub(crate) fn count_inline(&self, reason: DecisionReason) {
        match reason {
            DecisionReason::ReauthCached => self.reauth_hits.bump(),
            DecisionReason::ReauthMiss => self.reauth_misses.bump(),
            DecisionReason::NoService => self.inline_no_service.bump(),
            DecisionReason::Unloading => self.inline_unloading.bump(),
            DecisionReason::CapReached => self.inline_cap.bump(),
            DecisionReason::AllocationFailed => self.inline_alloc_failed.bump(),
            DecisionReason::PendFailed(_) | DecisionReason::Unreadable => self.inline_pend_failed.bump(),
        }
    }

    pub(crate) fn snapshot(&self, peak: u32, live: u32, pended_now: u32, cached: u32) -> StatsSnapshot {
        StatsSnapshot {
            pended: self.pended.get(),
            completed_by_verdict: self.completed_verdict.get(),
            completed_by_teardown: self.completed_teardown.get(),
            completed_by_timeout: self.completed_timeout.get(),
            completed_by_cleanup: self.completed_cleanup.get(),
            completed_by_unload: self.completed_unload.get(),
            reauth_hits: self.reauth_hits.get(),
            reauth_misses: self.reauth_misses.get(),
            inline_no_service: self.inline_no_service.get(),
            inline_unloading: self.inline_unloading.get(),
            inline_cap_reached: self.inline_cap.get(),
            inline_alloc_failed: self.inline_alloc_failed.get(),
            inline_pend_failed: self.inline_pend_failed.get(),
            rejected_verdicts: self.rejected_verdicts.get(),
            teardowns_waited: self.teardowns_waited.get(),
            teardown_spins: self.teardown_spins.get(),
            teardown_gave_up: self.teardown_gave_up.get(),
            closures_completed: self.closures_completed.get(),
            peak_entries: peak,
            live_entries: live,
            pended_now,
            cached_verdicts: cached,
        }
    }
}
