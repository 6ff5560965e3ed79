//! The pend lifecycle: who may complete a pended connection, and when.
//!
//! # The state machine of one entry
//!
//! ```text
//!            reserve (classify, under lock)
//!   Free ───────────────────────────────► Reserved ──(FwpsPendOperation0 failed)──► Free
//!                                             │
//!                                             │ publish (FwpsPendOperation0 succeeded)
//!                                             ▼
//!   ┌─────────────────────────────────── Pended ◄── delivered to user mode (no state change)
//!   │ claim (under lock; exactly one of:       │
//!   │  verdict, teardown, timeout,             │
//!   │  service cleanup, unload)                │
//!   ▼                                          │
//! Completing ──(FwpsCompleteOperation0 returned; finish, under lock)──► Free (generation + 1)
//! ```
//!
//! | path | entry point | IRQL | on Pended | on Completing (someone else's) |
//! |---|---|---|---|---|
//! | verdict | [`Core::apply_verdict`] | ≤ DISPATCH | claim, cache verdict, complete | `BeingResolved` |
//! | endpoint closure / resource release | [`Core::endpoint_teardown`] | ≤ DISPATCH | claim, complete inside the notification | pend the notification until that completion finishes |
//! | flowDeleteFn | [`Core::endpoint_teardown`] | ≤ DISPATCH | as above | bounded re-check (cannot pend) |
//! | timeout | [`Core::run_deferred_work`] | ≤ DISPATCH | claim, default verdict | skip |
//! | service cleanup | [`Core::detach_service`] | ≤ DISPATCH | claim, default verdict | skip |
//! | unload | [`Core::begin_unload`], [`Core::wait_for_callbacks`] | PASSIVE | claim, default verdict | skip (its owner finishes it) |
//! | reauthorization | [`Core::classify`] | ≤ DISPATCH | — (answers from the verdict cache, never pends) | — |
//!
//! # Why it is safe
//! - **S1 exactly once.** A completion happens only after a successful claim, the claim is a
//!   Pended → Completing transition made under the table lock, and a slot leaves Completing only
//!   by `finish` after its completion returned. Every path that finds an entry Completing does nothing
//!   to it. A Pended entry is claimed by one of five paths, and unload claims every one that is left.
//! - **S2 never after teardown.** Teardown claims every Pended entry of its endpoint and completes it
//!   itself, while the notification is still being indicated (the endpoint is alive). Entries that are
//!   Completing on another CPU were claimed, so their completion has *started*; the notification does
//!   not return to WFP until they have *finished*: it is pended with `FwpsPendClassify0` and completed
//!   by the last of those completions (or, where it cannot be pended, re-checked up to a bound). After
//!   detaching the endpoint no verdict can reach its entries (they are no longer Pended), and its
//!   cached verdicts are purged so a reused handle value starts clean.
//! - **S3 no use after free.** Nothing holds a pointer to an entry: user mode and every path name it
//!   by slot index + generation and re-check both under the lock; an entry's id dies only when the
//!   owner of its claim finishes it, which bumps the generation so every older id is rejected. The
//!   slot is then free — or, if it anchors a teardown's wait (see `table`), retired until that
//!   wait is resolved, and only then free.
//! - **S4 IRQL.** Every entry point except [`Core::wait_for_callbacks`] and [`Core::begin_unload`]
//!   runs at ≤ DISPATCH_LEVEL and never waits: it takes the spin lock for short, allocation-free
//!   critical sections; memory is preallocated at start, except the app path, which is copied with a
//!   fallible allocation before the lock (failure ⇒ default verdict). The only wait is the rundown
//!   wait at PASSIVE_LEVEL in unload.
//! - **Lock order.** The core never calls into WFP (pend, complete, pend/complete classify) with its
//!   lock held. WFP may hold its own locks while it calls our classifyFn, which takes our lock; calling
//!   WFP under our lock would create the opposite order and a deadlock across CPUs.
//! - **S5 clean unload.** [`Core::begin_unload`] closes the gate under the lock (no new pends),
//!   waits for classifies that are between reserve and publish, and claims every Pended entry; the
//!   shell then removes filters and unregisters callouts, and [`Core::wait_for_callbacks`] waits the
//!   rundown at PASSIVE_LEVEL, after which the table is empty and can be freed.
//! - **S7 liveness.** Every Pended entry ends by verdict, timeout, teardown, service cleanup or unload;
//!   if no verdict service is attached nothing is pended at all.
//! - **S8 reauthorization.** The verdict is cached under the same lock acquisition as its claim,
//!   *before* the completion starts, so the reauthorization classify that `FwpsCompleteOperation0`
//!   triggers finds it; a reauthorization never pends.
//! - **S9 hostile user mode.** Ids are checked (unknown, late, duplicate); the number of pends is
//!   capped; nothing delivered to user mode is a pointer.
//!
//! The completion window (claim → `FwpsCompleteOperation0` → finish) runs at DISPATCH_LEVEL
//! ([`Platform::raise_to_dispatch`]) so that it cannot be preempted on its CPU by a DPC that is
//! waiting for it.
#![deny(unsafe_code)]

use alloc::vec::Vec;

use crate::cache::VerdictCache;
use crate::platform::{Platform, PlatformError, Rundown, Ticks};
use crate::stats::{Stats, StatsSnapshot};
use crate::sync::SpinLock;
use crate::table::{Claimed, EntryFacts, PendTable, Registration, SlotState, VerdictError};
use crate::types::{
    ConnectionFacts, CoreConfig, EndpointHandle, PendId, Resolution, RuntimeConfig, TeardownSource, Verdict,
};

/// What classifyFn must write into `classifyOut`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifyDecision {
    /// `FWPS_RIGHT_ACTION_WRITE` was clear: another callout owns the decision; leave it alone.
    NoRight,
    /// Decide inline.
    Decide {
        /// The action.
        verdict: Verdict,
        /// Why (for statistics and tracing).
        reason: DecisionReason,
    },
    /// The operation was pended: `FWP_ACTION_BLOCK` + `FWPS_CLASSIFY_OUT_FLAG_ABSORB`, clear
    /// `FWPS_RIGHT_ACTION_WRITE`. User mode answers `id`.
    Pended(PendId),
}

/// Exactly what a callout shim writes into `FWPS_CLASSIFY_OUT0` for a [`ClassifyDecision`]: the
/// one place this mapping lives, shared by the kernel shims and the WFP model's driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifyOutWrite {
    /// `actionType`: `FWP_ACTION_PERMIT` or `FWP_ACTION_BLOCK`.
    pub action: Verdict,
    /// Set `FWPS_CLASSIFY_OUT_FLAG_ABSORB` (a pended operation).
    pub absorb: bool,
    /// Clear `FWPS_RIGHT_ACTION_WRITE`, so a lower-weight filter cannot override a block or a pend.
    pub clear_write_right: bool,
}

impl ClassifyDecision {
    /// What to write into classifyOut; `None`: leave it exactly as it is (no write right).
    ///
    /// - pended: BLOCK + ABSORB + clear the write right, as
    ///   <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0>
    ///   and Microsoft's inspect sample do;
    /// - block: BLOCK + clear the write right (a veto), permit: PERMIT and keep it, per
    ///   <https://learn.microsoft.com/en-us/windows-hardware/drivers/network/processing-classify-callouts>.
    #[must_use]
    pub const fn classify_out(&self) -> Option<ClassifyOutWrite> {
        match *self {
            ClassifyDecision::NoRight => None,
            ClassifyDecision::Decide { verdict: Verdict::Permit, .. } => {
                Some(ClassifyOutWrite { action: Verdict::Permit, absorb: false, clear_write_right: false })
            }
            ClassifyDecision::Decide { verdict: Verdict::Block, .. } => {
                Some(ClassifyOutWrite { action: Verdict::Block, absorb: false, clear_write_right: true })
            }
            ClassifyDecision::Pended(_) => {
                Some(ClassifyOutWrite { action: Verdict::Block, absorb: true, clear_write_right: true })
            }
        }
    }
}

/// Why a classify was decided inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionReason {
    /// Reauthorization answered from the verdict cache.
    ReauthCached,
    /// Reauthorization with no cached verdict: default verdict.
    ReauthMiss,
    /// No verdict service attached: default verdict.
    NoService,
    /// The driver is unloading: default verdict.
    Unloading,
    /// The pend cap is reached: default verdict.
    CapReached,
    /// The app path could not be copied: default verdict.
    AllocationFailed,
    /// `FwpsPendOperation0` failed: default verdict.
    PendFailed(PlatformError),
    /// The shim could not read the classify (a field or the endpoint handle missing): default
    /// verdict. Counted with the failed pends (the stats layout is part of the IOCTL protocol).
    Unreadable,
}

/// One classify at a pendable layer, as the shim read it.
pub struct ClassifyRequest<'a, H> {
    /// `FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE`.
    pub endpoint: EndpointHandle,
    /// `FWPS_METADATA_FIELD_COMPLETION_HANDLE`.
    pub completion_handle: H,
    /// `FWP_CONDITION_FLAG_IS_REAUTHORIZE` is set in the layer's flags field.
    pub is_reauthorization: bool,
    /// `FWPS_RIGHT_ACTION_WRITE` is set in `classifyOut->rights`.
    pub can_write_action: bool,
    /// The connection.
    pub facts: ConnectionFacts<'a>,
}

/// What a teardown notification must do when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeardownOutcome {
    /// Return normally. `completed` pends were completed by this notification.
    Done {
        /// How many pended connections this notification completed itself.
        completed: u32,
    },
    /// The notification was pended (`FwpsPendClassify0` succeeded); it is completed when the
    /// completions in flight finish. Return with the classify pended.
    NotificationPended {
        /// How many pended connections this notification completed itself.
        completed: u32,
    },
    /// Completions were in flight, the notification could not be pended, and they did not finish
    /// within the spin bound. Return normally (counted in statistics).
    GaveUpWaiting {
        /// How many pended connections this notification completed itself.
        completed: u32,
    },
}

/// A pended connection as delivered to user mode: no kernel pointer in it.
#[derive(Clone, Copy, Debug)]
pub struct PendedConnection<'a> {
    /// The id to answer.
    pub id: PendId,
    /// The facts, as at pend time (the app path borrowed from the entry).
    pub facts: ConnectionFacts<'a>,
    /// When it was pended.
    pub pended_at: Ticks,
}

/// Why the core could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// The preallocated memory could not be allocated.
    OutOfMemory,
    /// The configuration is inconsistent (e.g. `max_pended` > `capacity`).
    InvalidConfig,
    /// A verdict service is already attached (one at a time).
    ServiceBusy,
    /// The driver is unloading.
    Unloading,
}

/// Everything behind the lock.
struct State<P: Platform> {
    /// The pend table; it also keeps the teardowns waiting for completions in flight, and the
    /// pended notifications whose completions all finished before they were pended (completed
    /// asynchronously by [`Core::run_deferred_work`], never from the classifyFn that pended them).
    table: PendTable<P::PendContext, P::ClosurePend>,
    cache: VerdictCache,
    runtime: RuntimeConfig,
    service_attached: bool,
    closing: bool,
}

/// The pend-lifecycle core. One per driver; lives from DriverEntry to the end of unload.
pub struct Core<P: Platform> {
    platform: P,
    rundown: P::Rundown,
    state: SpinLock<P::Lock, State<P>>,
    stats: Stats,
    teardown_spin_limit: u32,
    #[cfg(any(loom, feature = "planted-bugs"))]
    planted: crate::planted::PlantedBug,
}

/// Holds driver-wide rundown protection for the duration of one callback.
struct RundownGuard<'a, R: Rundown>(&'a R);

impl<R: Rundown> Drop for RundownGuard<'_, R> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl<P: Platform> Core<P> {
    /// Creates the core and allocates all of its memory. IRQL: PASSIVE_LEVEL (DriverEntry).
    ///
    /// # Errors
    /// [`CoreError::OutOfMemory`] if the preallocation fails, [`CoreError::InvalidConfig`] if
    /// `runtime.max_pended` exceeds `capacity`, or `capacity` or `cache_capacity` exceeds
    /// [`CoreConfig::MAX_CAPACITY`].
    pub fn new(platform: P, rundown: P::Rundown, config: CoreConfig) -> Result<Self, CoreError> {
        if config.runtime.max_pended > config.capacity
            || config.capacity > CoreConfig::MAX_CAPACITY
            || config.cache_capacity > CoreConfig::MAX_CAPACITY
        {
            return Err(CoreError::InvalidConfig);
        }
        let seed = platform.now().0 ^ 0x9e37_79b9_7f4a_7c15;
        let table = PendTable::try_new(config.capacity, seed).map_err(|_| CoreError::OutOfMemory)?;
        let cache = VerdictCache::try_new(config.cache_capacity, config.cache_ttl, seed.rotate_left(29))
            .map_err(|_| CoreError::OutOfMemory)?;
        Ok(Core {
            platform,
            rundown,
            state: SpinLock::new(State {
                table,
                cache,
                runtime: config.runtime,
                service_attached: false,
                closing: false,
            }),
            stats: Stats::new(),
            teardown_spin_limit: config.teardown_spin_limit,
            #[cfg(any(loom, feature = "planted-bugs"))]
            planted: crate::planted::PlantedBug::None,
        })
    }

    /// Plants a known bug (tests only).
    #[cfg(any(loom, feature = "planted-bugs"))]
    #[doc(hidden)]
    pub fn plant_bug(&mut self, bug: crate::planted::PlantedBug) {
        self.planted = bug;
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    fn enter(&self) -> Option<RundownGuard<'_, P::Rundown>> {
        self.rundown.try_acquire().then_some(RundownGuard(&self.rundown))
    }

    // ---------------------------------------------------------------- classify

    /// classifyFn at ALE_AUTH_CONNECT / ALE_RESOURCE_ASSIGNMENT. IRQL: ≤ DISPATCH_LEVEL.
    ///
    /// Decides inline (reauthorization, no service, cap, unload, allocation failure) or pends and
    /// queues the connection for user mode.
    pub fn classify(&self, request: ClassifyRequest<'_, P::CompletionHandle>) -> ClassifyDecision {
        if !request.can_write_action {
            // A higher-weight filter already decided and cleared our write right: leave classifyOut
            // alone. https://learn.microsoft.com/en-us/windows-hardware/drivers/network/processing-classify-callouts
            return ClassifyDecision::NoRight;
        }
        let Some(_guard) = self.enter() else {
            return self.decide_default(DecisionReason::Unloading);
        };
        let now = self.platform.now();
        let key = request.facts.key(request.endpoint);
        if request.is_reauthorization {
            // A reauthorization must never pend: FwpsPendOperation0 returns STATUS_FWP_CANNOT_PEND
            // there (https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0).
            let (cached, default) =
                self.state.with(|state| (state.cache.lookup(&key, now), state.runtime.default_verdict));
            return match cached {
                Some(verdict) => {
                    self.stats.reauth_hits.bump();
                    ClassifyDecision::Decide { verdict, reason: DecisionReason::ReauthCached }
                }
                None => {
                    self.stats.reauth_misses.bump();
                    ClassifyDecision::Decide { verdict: default, reason: DecisionReason::ReauthMiss }
                }
            };
        }

        // Copy the app path before taking the lock: the only allocation on this path, fallible.
        let mut app_path = Vec::new();
        if app_path.try_reserve_exact(request.facts.app_path.len()).is_err() {
            return self.decide_default(DecisionReason::AllocationFailed);
        }
        app_path.extend_from_slice(request.facts.app_path);

        let reserved = self.state.with(|state| {
            if state.closing {
                return Err((state.runtime.default_verdict, DecisionReason::Unloading));
            }
            if !state.service_attached {
                return Err((state.runtime.default_verdict, DecisionReason::NoService));
            }
            if state.table.in_use >= state.runtime.max_pended {
                return Err((state.runtime.default_verdict, DecisionReason::CapReached));
            }
            state.table.reserve().ok_or((state.runtime.default_verdict, DecisionReason::CapReached))
        });
        let id = match reserved {
            Ok(id) => id,
            Err((verdict, reason)) => return self.decided(verdict, reason),
        };

        // FwpsPendOperation0 outside the lock (lock-order rule in the module docs).
        match self.platform.pend_operation(request.completion_handle) {
            Ok(context) => {
                let facts = EntryFacts {
                    key,
                    direction: request.facts.direction,
                    local_address: request.facts.local_address,
                    local_port: request.facts.local_port,
                    process_id: request.facts.process_id,
                    app_path: app_path.into_boxed_slice(),
                    pended_at: now,
                };
                self.state.with(|state| state.table.publish(id, context, facts));
                self.stats.pended.bump();
                ClassifyDecision::Pended(id)
            }
            Err(status) => {
                let verdict = self.state.with(|state| {
                    state.table.unreserve(id);
                    state.runtime.default_verdict
                });
                self.decided(verdict, DecisionReason::PendFailed(status))
            }
        }
    }

    /// The decision for a classify the shim could not read: the default verdict (fail-closed
    /// unless configured otherwise). IRQL: ≤ DISPATCH_LEVEL.
    pub fn decide_unreadable(&self) -> ClassifyDecision {
        self.decide_default(DecisionReason::Unreadable)
    }

    fn decide_default(&self, reason: DecisionReason) -> ClassifyDecision {
        let verdict = self.state.with(|state| state.runtime.default_verdict);
        self.decided(verdict, reason)
    }

    fn decided(&self, verdict: Verdict, reason: DecisionReason) -> ClassifyDecision {
        self.stats.count_inline(reason);
        ClassifyDecision::Decide { verdict, reason }
    }

    // ---------------------------------------------------------------- completion

    /// The completion window: complete outside the lock, then free the slot and, if a teardown
    /// was waiting for this completion and it was the last one, complete that notification.
    fn complete_claimed(&self, claimed: Claimed<P::PendContext>) {
        let Claimed { id, context, resolution, app_path, key: _ } = claimed;
        // The entry's app-path copy is freed here, outside the lock (ExFreePool at ≤ DISPATCH).
        drop(app_path);
        // FwpsCompleteOperation0 at ≤ DISPATCH_LEVEL, never under our lock.
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0
        self.platform.complete_operation(context);
        self.stats.count_completion(resolution);
        let closure = self.state.with(|state| state.table.finish(id));
        if let Some(pend) = closure {
            // The endpoint's teardown notification was pended waiting for us; it may now return.
            self.release_notification(pend);
        }
    }

    /// Lets a pended teardown notification return to WFP. IRQL: ≤ DISPATCH_LEVEL; never from the
    /// classifyFn that pended it.
    fn release_notification(&self, pend: P::ClosurePend) {
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteclassify0
        self.platform.complete_closure(pend);
        self.stats.closures_completed.bump();
    }

    /// Completes the notifications queued because their completions finished while they were being
    /// pended. IRQL: ≤ DISPATCH_LEVEL.
    fn complete_ready_notifications(&self) {
        while let Some(pend) = self.state.with(|state| state.table.pop_ready()) {
            self.release_notification(pend);
        }
    }

    /// Applies user mode's verdict for `id`. IRQL: ≤ DISPATCH_LEVEL (PASSIVE in the IOCTL path).
    ///
    /// # Errors
    /// [`VerdictError`] when `id` does not name a pended connection: nothing is changed.
    pub fn apply_verdict(&self, id: PendId, verdict: Verdict) -> Result<(), VerdictError> {
        let Some(_guard) = self.enter() else {
            return Err(VerdictError::Unloading);
        };
        let _dispatch = self.platform.raise_to_dispatch();
        let now = self.platform.now();
        #[cfg(any(loom, feature = "planted-bugs"))]
        let claimed = if self.planted == crate::planted::PlantedBug::NonAtomicClaim {
            // Test-then-set across two critical sections: the bug the claim protocol prevents.
            match self.state.with(|state| state.table.peek_pended(id)) {
                Some((context, key)) => self.state.with(|state| {
                    state.cache.insert(key, verdict, now);
                    crate::planted::claim_after_peek(&mut state.table, id, context, key)
                }),
                None => Err(VerdictError::LateVerdict),
            }
        } else {
            self.claim_for_verdict(id, verdict, now)
        };
        #[cfg(not(any(loom, feature = "planted-bugs")))]
        let claimed = self.claim_for_verdict(id, verdict, now);
        match claimed {
            Ok(claimed) => {
                self.complete_claimed(claimed);
                Ok(())
            }
            Err(error) => {
                self.stats.rejected_verdicts.bump();
                Err(error)
            }
        }
    }

    /// The claim for a verdict, and the cache entry for its reauthorization, in one critical section.
    fn claim_for_verdict(
        &self,
        id: PendId,
        verdict: Verdict,
        now: Ticks,
    ) -> Result<Claimed<P::PendContext>, VerdictError> {
        self.state.with(|state| {
            let claimed = state.table.claim_by_id(id, Resolution::Verdict)?;
            // Cache before completing: the reauthorization classify may run inside
            // FwpsCompleteOperation0 and must find the verdict (S8).
            state.cache.insert(claimed.key, verdict, now);
            Ok(claimed)
        })
    }

    // ---------------------------------------------------------------- teardown

    /// An endpoint is going away: ALE_ENDPOINT_CLOSURE or ALE_RESOURCE_RELEASE classify, or a
    /// flowDeleteFn. IRQL: ≤ DISPATCH_LEVEL; never waits (see [`TeardownOutcome`]).
    ///
    /// `notification` is what [`Platform::pend_closure`] needs to pend this notification; `None`
    /// where it cannot be pended (flowDeleteFn).
    pub fn endpoint_teardown(
        &self,
        endpoint: EndpointHandle,
        source: TeardownSource,
        notification: Option<P::ClosureRequest>,
    ) -> TeardownOutcome {
        let _ = source;
        let Some(_guard) = self.enter() else {
            // Only possible if the shell unregistered callouts after waiting the rundown, which it
            // never does; nothing can be done without the table.
            return TeardownOutcome::Done { completed: 0 };
        };
        let _dispatch = self.platform.raise_to_dispatch();
        let mut completed = 0;
        // Claim and complete this endpoint's Pended entries one at a time, inside the notification,
        // while the endpoint is still alive.
        let anchor = loop {
            let step = self.state.with(|state| match state.table.scan_endpoint(endpoint) {
                (Some(index), _) => Ok(state.table.claim_slot(index, Resolution::Teardown)),
                (None, _) => {
                    state.cache.purge_endpoint(endpoint);
                    // Completions in flight on other CPUs: a wait for them, anchored in one of
                    // their slots.
                    Err(state.table.detach_endpoint(endpoint))
                }
            });
            match step {
                Ok(Some(claimed)) => {
                    self.complete_claimed(claimed);
                    completed += 1;
                }
                Ok(None) => {}
                Err(anchor) => break anchor,
            }
        };
        let Some(anchor) = anchor else {
            return TeardownOutcome::Done { completed };
        };
        self.stats.teardowns_waited.bump();

        #[cfg(any(loom, feature = "planted-bugs"))]
        if self.planted == crate::planted::PlantedBug::TeardownDoesNotWait {
            self.state.with(|state| state.table.abandon_wait(anchor));
            return TeardownOutcome::Done { completed };
        }

        // Completions are in flight on other CPUs. Pend the notification (outside the lock) so
        // WFP does not finish the teardown until they return. Until the wait is registered or
        // abandoned, only this teardown can free its anchor, so `anchor` stays valid.
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendclassify0
        let pended = match notification {
            Some(request) => self.platform.pend_closure(request).ok(),
            None => None,
        };
        if let Some(pend) = pended {
            match self.state.with(|state| state.table.register_wait(anchor, pend)) {
                // The last completion in flight completes the notification.
                Registration::Waiting => {}
                // They all finished while we were pending: complete asynchronously.
                Registration::Queued => self.platform.request_deferred_work(),
                // Unreachable by construction (the anchor stays a wait until it is registered);
                // if it ever happened, completing late beats leaking the classify handle.
                Registration::Unexpected(pend) => self.release_notification(pend),
            }
            return TeardownOutcome::NotificationPended { completed };
        }

        // Cannot pend: re-check, bounded. The completions in flight run at DISPATCH_LEVEL on other
        // CPUs (see `raise_to_dispatch`) and take only our short lock, so they finish promptly.
        self.stats.teardown_spins.bump();
        for _ in 0..self.teardown_spin_limit {
            let finished = self.state.with(|state| {
                let finished = state.table.wait_outstanding(anchor) == 0;
                if finished {
                    state.table.abandon_wait(anchor);
                }
                finished
            });
            if finished {
                return TeardownOutcome::Done { completed };
            }
            crate::sync::spin_hint();
        }
        self.state.with(|state| state.table.abandon_wait(anchor));
        self.stats.teardown_gave_up.bump();
        TeardownOutcome::GaveUpWaiting { completed }
    }

    // ---------------------------------------------------------------- sweeps

    /// Claims the oldest Pended entry if `due` says so, with the default verdict.
    fn claim_oldest(&self, resolution: Resolution, due: impl Fn(Ticks) -> bool) -> Option<Claimed<P::PendContext>> {
        let now = self.platform.now();
        self.state.with(|state| {
            let (index, pended_at) = state.table.oldest()?;
            if !due(pended_at) {
                return None;
            }
            let default = state.runtime.default_verdict;
            let claimed = state.table.claim_slot(index, resolution)?;
            // The connection is still alive: the reauthorization that follows the completion must
            // find the default verdict (S8).
            state.cache.insert(claimed.key, default, now);
            Some(claimed)
        })
    }

    fn sweep(&self, resolution: Resolution) -> u32 {
        let mut count = 0;
        while let Some(claimed) = self.claim_oldest(resolution, |_| true) {
            self.complete_claimed(claimed);
            count += 1;
        }
        count
    }

    /// Timer work: applies the default verdict to pends older than the timeout, and completes
    /// notifications queued by [`Core::endpoint_teardown`]. IRQL: ≤ DISPATCH_LEVEL (timer DPC).
    /// Returns how many pends timed out.
    pub fn run_deferred_work(&self) -> u32 {
        let Some(_guard) = self.enter() else { return 0 };
        let _dispatch = self.platform.raise_to_dispatch();
        self.complete_ready_notifications();
        let now = self.platform.now();
        let timeout = self.state.with(|state| state.runtime.pend_timeout);
        let mut expired = 0;
        while let Some(claimed) =
            self.claim_oldest(Resolution::Timeout, |pended_at| pended_at.saturating_add(timeout) <= now)
        {
            self.complete_claimed(claimed);
            expired += 1;
        }
        expired
    }

    /// The earliest time a pend will time out, for arming the timer. IRQL: ≤ DISPATCH_LEVEL.
    pub fn next_deadline(&self) -> Option<Ticks> {
        self.state.with(|state| {
            let (_, pended_at) = state.table.oldest()?;
            Some(pended_at.saturating_add(state.runtime.pend_timeout))
        })
    }

    // ---------------------------------------------------------------- service

    /// A verdict service opened the control device. IRQL: PASSIVE_LEVEL (EvtDeviceFileCreate).
    ///
    /// # Errors
    /// [`CoreError::ServiceBusy`] if one is attached already (one client at a time, S9);
    /// [`CoreError::Unloading`] during unload.
    pub fn attach_service(&self) -> Result<(), CoreError> {
        let Some(_guard) = self.enter() else { return Err(CoreError::Unloading) };
        self.state.with(|state| {
            if state.closing {
                Err(CoreError::Unloading)
            } else if state.service_attached {
                Err(CoreError::ServiceBusy)
            } else {
                state.service_attached = true;
                Ok(())
            }
        })
    }

    /// The verdict service's handle was cleaned up (EvtFileCleanup): nothing more will be pended for
    /// it, and every pend still waiting gets the default verdict (S7). IRQL: ≤ DISPATCH_LEVEL.
    /// Returns how many pends it resolved.
    pub fn detach_service(&self) -> u32 {
        let Some(_guard) = self.enter() else { return 0 };
        let _dispatch = self.platform.raise_to_dispatch();
        self.state.with(|state| state.service_attached = false);
        self.sweep(Resolution::ServiceCleanup)
    }

    /// Fills a read request: calls `visit` for up to `max` undelivered pended connections in age
    /// order; each one `visit` accepts (returns true) is marked delivered. IRQL: ≤ DISPATCH_LEVEL.
    /// `visit` runs under the lock: it must only copy (encode) the connection.
    pub fn deliver_pending(&self, max: usize, mut visit: impl FnMut(&PendedConnection<'_>) -> bool) -> usize {
        let Some(_guard) = self.enter() else { return 0 };
        self.state.with(|state| {
            state.table.deliver(max, |id, facts| {
                visit(&PendedConnection {
                    id,
                    facts: ConnectionFacts {
                        layer: facts.key.layer,
                        protocol: facts.key.protocol,
                        direction: facts.direction,
                        local_address: facts.local_address,
                        local_port: facts.local_port,
                        remote_address: facts.key.remote_address,
                        remote_port: facts.key.remote_port,
                        process_id: facts.process_id,
                        app_path: &facts.app_path,
                    },
                    pended_at: facts.pended_at,
                })
            })
        })
    }

    /// Whether pended connections wait for delivery (to complete a parked read). IRQL: ≤ DISPATCH.
    pub fn has_undelivered(&self) -> bool {
        self.state.with(|state| state.table.has_undelivered())
    }

    /// Replaces the runtime configuration. IRQL: ≤ DISPATCH_LEVEL.
    ///
    /// # Errors
    /// [`CoreError::InvalidConfig`] if `max_pended` exceeds the table's capacity; nothing changes.
    pub fn set_runtime_config(&self, runtime: RuntimeConfig) -> Result<(), CoreError> {
        self.state.with(|state| {
            if runtime.max_pended > state.table.capacity() {
                return Err(CoreError::InvalidConfig);
            }
            state.runtime = runtime;
            Ok(())
        })
    }

    /// The current runtime configuration. IRQL: ≤ DISPATCH_LEVEL.
    pub fn runtime_config(&self) -> RuntimeConfig {
        self.state.with(|state| state.runtime)
    }

    // ---------------------------------------------------------------- unload

    /// First half of unload (S5): closes the gate (no new pends), waits for classifies between
    /// reserve and publish, and resolves every pend with the default verdict. Call it *before*
    /// removing filters, while teardown notifications still arrive. IRQL: PASSIVE_LEVEL.
    /// Returns how many pends it resolved.
    pub fn begin_unload(&self) -> u32 {
        self.state.with(|state| state.closing = true);
        let mut resolved = 0;
        loop {
            resolved += self.sweep(Resolution::Unload);
            #[cfg(any(loom, feature = "planted-bugs"))]
            if self.planted == crate::planted::PlantedBug::UnloadIgnoresReserved {
                return resolved;
            }
            if self.state.with(|state| state.table.reserved == 0 && state.table.oldest().is_none()) {
                return resolved;
            }
            self.platform.relax_at_passive();
        }
    }

    /// Second half of unload: waits at PASSIVE_LEVEL until every callback and worker holding the
    /// rundown has returned, then completes notifications still queued. Call it after the
    /// callouts are unregistered. Afterwards the core may be dropped. IRQL: PASSIVE_LEVEL.
    pub fn wait_for_callbacks(&self) {
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exwaitforrundownprotectionrelease
        self.rundown.wait_for_release();
        self.complete_ready_notifications();
    }

    /// Pended + Completing + Reserved entries, plus retired ones still holding a teardown's wait.
    /// IRQL: ≤ DISPATCH_LEVEL.
    pub fn live_entries(&self) -> u32 {
        self.state.with(|state| state.table.in_use)
    }

    /// Counters. IRQL: ≤ DISPATCH_LEVEL.
    pub fn stats(&self) -> StatsSnapshot {
        let (peak, live, pended, cached) = self.state.with(|state| {
            (
                state.table.peak_in_use,
                state.table.in_use,
                state.table.count_in_state(SlotState::Pended),
                state.cache.len() as u32,
            )
        });
        self.stats.snapshot(peak, live, pended, cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{AtomicRundown, HostPlatform};

    fn new(capacity: u32, cache_capacity: u32, max_pended: u32) -> Result<Core<HostPlatform>, CoreError> {
        let runtime = RuntimeConfig { max_pended, ..RuntimeConfig::default() };
        Core::new(
            HostPlatform::new(),
            AtomicRundown::default(),
            CoreConfig { capacity, cache_capacity, runtime, ..CoreConfig::default() },
        )
    }

    #[test]
    fn capacities_are_checked() {
        const MAX: u32 = CoreConfig::MAX_CAPACITY;
        assert!(matches!(new(8, 8, 9), Err(CoreError::InvalidConfig)), "max_pended above capacity");
        assert!(matches!(new(MAX + 1, 8, 8), Err(CoreError::InvalidConfig)), "table above 24-bit indexes");
        assert!(matches!(new(8, MAX + 1, 8), Err(CoreError::InvalidConfig)), "cache above 24-bit indexes");
        assert!(matches!(new(u32::MAX, 8, 8), Err(CoreError::InvalidConfig)));
        assert!(new(8, 8, 8).is_ok());
        assert!(new(0, 0, 0).is_ok(), "an empty core decides everything inline");
    }
}
