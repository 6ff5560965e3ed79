//! The host platform: [`Platform`] in plain Rust for tests, loom models, the WFP model and
//! benchmarks, with an oracle that fails loudly where Windows would crash.
//!
//! The oracle checks the contract on every call: completing a context twice (S1), completing a
//! context whose endpoint's teardown notification has already returned (S2, the pend/teardown race),
//! and, at the end, contexts or notifications never completed (S1, S5). These are test oracles:
//! they panic, which is what a test wants. Nothing here is used by the driver.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use core::sync::atomic::{AtomicBool as PlainAtomicBool, AtomicU64 as PlainAtomicU64, Ordering as PlainOrdering};
#[cfg(loom)]
use loom::sync::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
#[cfg(not(loom))]
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

use crate::platform::{Platform, PlatformError, RawSpinLock, Rundown, Ticks};
use crate::sync::{AtomicBool, AtomicUsize, Ordering, spin_hint};
use crate::types::EndpointHandle;

/// A test-and-test-and-set spin lock over the facade's atomics (so loom sees it).
#[derive(Debug)]
pub struct AtomicSpinLock(AtomicBool);

// SAFETY: `lock` returns only after it swapped `false` → `true` with Acquire ordering, and `unlock`
// stores `false` with Release; so at most one thread is between them, and what one critical section
// wrote is visible to the next.
unsafe impl RawSpinLock for AtomicSpinLock {
    type Token = ();

    fn new() -> Self {
        AtomicSpinLock(AtomicBool::new(false))
    }

    fn lock(&self) {
        while self.0.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.0.load(Ordering::Relaxed) {
                spin_hint();
            }
        }
    }

    unsafe fn unlock(&self, (): ()) {
        self.0.store(false, Ordering::Release);
    }
}

/// Rundown protection over the facade's atomics: a holder count plus a "waiting" bit.
#[derive(Debug)]
pub struct AtomicRundown(AtomicUsize);

const RUNDOWN_ACTIVE: usize = 1 << (usize::BITS - 1);

impl Default for AtomicRundown {
    fn default() -> Self {
        AtomicRundown(AtomicUsize::new(0))
    }
}

impl Rundown for AtomicRundown {
    fn try_acquire(&self) -> bool {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            if current & RUNDOWN_ACTIVE != 0 {
                return false;
            }
            match self.0.compare_exchange_weak(current, current + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    fn release(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    fn wait_for_release(&self) {
        self.0.fetch_or(RUNDOWN_ACTIVE, Ordering::AcqRel);
        while self.0.load(Ordering::Acquire) != RUNDOWN_ACTIVE {
            spin_hint();
        }
    }
}

/// The completion handle a classify carries in its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostCompletionHandle {
    /// The endpoint being classified.
    pub endpoint: EndpointHandle,
}

/// What `pend_operation` returned: a serial number and the endpoint it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPendContext {
    /// Unique per successful pend.
    pub serial: u64,
    /// The endpoint.
    pub endpoint: EndpointHandle,
}

/// A pended teardown notification.
#[derive(Debug, PartialEq, Eq)]
pub struct HostClosurePend {
    /// Unique per pended notification.
    pub serial: u64,
    /// The endpoint.
    pub endpoint: EndpointHandle,
}

#[derive(Default)]
struct Oracle {
    next_serial: u64,
    outstanding: HashMap<u64, EndpointHandle>,
    completed: HashSet<u64>,
    torn_down: HashSet<EndpointHandle>,
    pended_notifications: HashMap<u64, EndpointHandle>,
    completion_log: Vec<(HostPendContext, bool)>,
}

/// The host platform with its oracle.
pub struct HostPlatform {
    clock: PlainAtomicU64,
    oracle: Mutex<Oracle>,
    fail_pends: PlainAtomicBool,
    fail_notification_pends: PlainAtomicBool,
    deferred_requests: PlainAtomicU64,
}

impl Default for HostPlatform {
    fn default() -> Self {
        HostPlatform {
            clock: PlainAtomicU64::new(1),
            oracle: Mutex::new(Oracle::default()),
            fail_pends: PlainAtomicBool::new(false),
            fail_notification_pends: PlainAtomicBool::new(false),
            deferred_requests: PlainAtomicU64::new(0),
        }
    }
}

impl HostPlatform {
    /// A new platform at time 1.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The oracle's lock is loom's under loom, so each completion is a point where loom may switch
    /// threads: the window between a claim and its completion is where the real race lives.
    fn oracle(&self) -> MutexGuard<'_, Oracle> {
        // A poisoned oracle means an earlier check already failed the test; keep its state.
        self.oracle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Ticks) {
        self.clock.fetch_add(by.0, PlainOrdering::SeqCst);
    }

    /// Makes every later `pend_operation` fail (as in a reauthorization, or low memory).
    pub fn set_fail_pends(&self, fail: bool) {
        self.fail_pends.store(fail, PlainOrdering::SeqCst);
    }

    /// Makes every later `pend_closure` fail.
    pub fn set_fail_notification_pends(&self, fail: bool) {
        self.fail_notification_pends.store(fail, PlainOrdering::SeqCst);
    }

    /// A (new) endpoint exists under this handle value; it may reuse a torn-down one's value.
    pub fn endpoint_created(&self, endpoint: EndpointHandle) {
        self.oracle().torn_down.remove(&endpoint);
    }

    /// The teardown notification for `endpoint` returned to WFP (call it after
    /// `Core::endpoint_teardown` returned anything but `NotificationPended`): from now on, completing
    /// one of its contexts is the pend/teardown bugcheck.
    pub fn notification_returned(&self, endpoint: EndpointHandle) {
        self.oracle().torn_down.insert(endpoint);
    }

    /// Number of completions so far, and how many pends are still outstanding.
    #[must_use]
    pub fn completion_counts(&self) -> (usize, usize) {
        let oracle = self.oracle();
        (oracle.completed.len(), oracle.outstanding.len())
    }

    /// Every completion in order, with whether the endpoint was alive at the time.
    #[must_use]
    pub fn completion_log(&self) -> Vec<(HostPendContext, bool)> {
        self.oracle().completion_log.clone()
    }

    /// Outstanding pended operations (pended, never completed).
    #[must_use]
    pub fn outstanding(&self) -> Vec<HostPendContext> {
        let oracle = self.oracle();
        oracle.outstanding.iter().map(|(&serial, &endpoint)| HostPendContext { serial, endpoint }).collect()
    }

    /// Times the core asked for deferred work.
    #[must_use]
    pub fn deferred_requests(&self) -> u64 {
        self.deferred_requests.load(PlainOrdering::SeqCst)
    }

    /// S1/S5 at the end: panics if any pended operation or notification was never completed.
    pub fn assert_quiescent(&self) {
        let oracle = self.oracle();
        assert!(
            oracle.outstanding.is_empty(),
            "S1 violated: {} pended operation(s) never completed (leak / hung connect / unload blocked): {:?}",
            oracle.outstanding.len(),
            oracle.outstanding
        );
        assert!(
            oracle.pended_notifications.is_empty(),
            "S1 violated: {} pended teardown notification(s) never completed: {:?}",
            oracle.pended_notifications.len(),
            oracle.pended_notifications
        );
    }
}

impl Platform for HostPlatform {
    type Lock = AtomicSpinLock;
    type Rundown = AtomicRundown;
    type CompletionHandle = HostCompletionHandle;
    type PendContext = HostPendContext;
    type ClosureRequest = EndpointHandle;
    type ClosurePend = HostClosurePend;
    type DispatchGuard = ();

    fn now(&self) -> Ticks {
        Ticks(self.clock.load(PlainOrdering::SeqCst))
    }

    fn pend_operation(&self, handle: HostCompletionHandle) -> Result<HostPendContext, PlatformError> {
        if self.fail_pends.load(PlainOrdering::SeqCst) {
            return Err(PlatformError(crate::STATUS_FWP_CANNOT_PEND));
        }
        let mut oracle = self.oracle();
        oracle.next_serial += 1;
        let serial = oracle.next_serial;
        oracle.outstanding.insert(serial, handle.endpoint);
        Ok(HostPendContext { serial, endpoint: handle.endpoint })
    }

    fn complete_operation(&self, context: HostPendContext) {
        let mut oracle = self.oracle();
        if oracle.completed.contains(&context.serial) {
            panic!(
                "S1 violated: completion context #{} completed twice (double FwpsCompleteOperation0)",
                context.serial
            );
        }
        assert!(
            oracle.outstanding.remove(&context.serial).is_some(),
            "completion of context #{} that was never pended",
            context.serial
        );
        oracle.completed.insert(context.serial);
        let alive = !oracle.torn_down.contains(&context.endpoint);
        oracle.completion_log.push((context, alive));
        if !alive {
            panic!(
                "S2 violated: FwpsCompleteOperation0 on context #{} after endpoint {:?}'s teardown notification \
                 returned (PAGE_FAULT_IN_NONPAGED_AREA on real Windows)",
                context.serial, context.endpoint
            );
        }
    }

    fn pend_closure(&self, endpoint: EndpointHandle) -> Result<HostClosurePend, PlatformError> {
        if self.fail_notification_pends.load(PlainOrdering::SeqCst) {
            return Err(PlatformError(crate::STATUS_FWP_CANNOT_PEND));
        }
        let mut oracle = self.oracle();
        oracle.next_serial += 1;
        let serial = oracle.next_serial;
        oracle.pended_notifications.insert(serial, endpoint);
        Ok(HostClosurePend { serial, endpoint })
    }

    fn complete_closure(&self, pend: HostClosurePend) {
        let mut oracle = self.oracle();
        assert!(
            oracle.pended_notifications.remove(&pend.serial).is_some(),
            "teardown notification #{} completed twice or never pended",
            pend.serial
        );
        // The pended notification returns to WFP now: the endpoint may be freed from here on.
        oracle.torn_down.insert(pend.endpoint);
    }

    fn request_deferred_work(&self) {
        self.deferred_requests.fetch_add(1, PlainOrdering::SeqCst);
    }

    fn raise_to_dispatch(&self) {}

    fn relax_at_passive(&self) {
        spin_hint();
    }
}
