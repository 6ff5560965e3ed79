//! The small platform trait the core is generic over.
//!
//! The driver implements it over the kernel (`KSPIN_LOCK`, `EX_RUNDOWN_REF`, `KeQueryInterruptTime`,
//! `FwpsPendOperation0`/`FwpsCompleteOperation0`, `FwpsAcquireClassifyHandle0` +
//! `FwpsPendClassify0`/`FwpsCompleteClassify0` + `FwpsReleaseClassifyHandle0`); host tests, loom
//! models and the WFP model implement it in Rust (see [`crate::host`]). The core never calls any of
//! the WFP operations while it holds its own lock (see [`crate::lifecycle`] for why).

/// Monotonic time in 100-nanosecond units, the unit of `KeQueryInterruptTime`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticks(pub u64);

impl Ticks {
    /// One millisecond.
    pub const MILLISECOND: Ticks = Ticks(10_000);
    /// One second.
    pub const SECOND: Ticks = Ticks(10_000_000);

    /// `n` milliseconds.
    #[must_use]
    pub const fn from_millis(n: u64) -> Ticks {
        Ticks(n.saturating_mul(10_000))
    }

    /// Whole milliseconds, rounded down.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0 / 10_000
    }

    /// `self + other`, saturating (a deadline can never wrap into the past).
    #[must_use]
    pub const fn saturating_add(self, other: Ticks) -> Ticks {
        Ticks(self.0.saturating_add(other.0))
    }

    /// `self - other`, saturating at zero.
    #[must_use]
    pub const fn saturating_sub(self, other: Ticks) -> Ticks {
        Ticks(self.0.saturating_sub(other.0))
    }
}

/// Why a fallible platform operation failed: the NTSTATUS it returned, kept opaque here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformError(pub i32);

/// A raw spin lock without data (`KSPIN_LOCK` with `KeAcquireSpinLockRaiseToDpc` in the driver).
///
/// # Safety
/// Implementations must provide mutual exclusion: between `lock` returning on one thread and the
/// matching `unlock`, no other `lock` on the same value returns. `lock` must be callable at
/// IRQL ≤ DISPATCH_LEVEL and must not wait in a way that is illegal there (spinning is legal).
pub unsafe trait RawSpinLock: Send + Sync {
    /// What `lock` hands to `unlock` (the previous IRQL in the driver).
    type Token;
    /// A new, unlocked lock.
    fn new() -> Self;
    /// Acquires the lock, spinning. IRQL: ≤ DISPATCH_LEVEL; raises to DISPATCH_LEVEL in the driver.
    fn lock(&self) -> Self::Token;
    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock, acquired by the `lock` call that returned `token`.
    unsafe fn unlock(&self, token: Self::Token);
}

/// Driver-wide rundown protection (`EX_RUNDOWN_REF`).
///
/// Every callback and worker holds it while it runs; unload waits for it at PASSIVE_LEVEL before any
/// memory is freed (S5). Acquire and release never wait, so they are legal in classifyFn and
/// flowDeleteFn; only [`Rundown::wait_for_release`] waits, and it is called only at PASSIVE_LEVEL.
pub trait Rundown: Send + Sync {
    /// `ExAcquireRundownProtection`: false once the wait has begun. IRQL: ≤ DISPATCH_LEVEL.
    fn try_acquire(&self) -> bool;
    /// `ExReleaseRundownProtection`. IRQL: ≤ DISPATCH_LEVEL.
    fn release(&self);
    /// `ExWaitForRundownProtectionRelease`: refuses new acquisitions, then waits until every holder
    /// has released. IRQL: PASSIVE_LEVEL (≤ APC_LEVEL) only.
    fn wait_for_release(&self);
}

/// What the core needs from its host.
///
/// The associated handle types are opaque to the core: it stores and hands them back, never looks
/// inside. None of the methods is called with the core's lock held.
pub trait Platform: Send + Sync {
    /// The raw lock for the core's table.
    type Lock: RawSpinLock;
    /// The driver-wide rundown.
    type Rundown: Rundown;
    /// `FWPS_INCOMING_METADATA_VALUES0::completionHandle` of the classify being pended.
    type CompletionHandle;
    /// The `completionContext` that `FwpsPendOperation0` returned.
    type PendContext: Copy + Send;
    /// What `pend_closure` needs to pend an ALE_ENDPOINT_CLOSURE classify (classify context,
    /// filter id, classifyOut).
    type ClosureRequest;
    /// A pended closure classify (its classify handle and classifyOut copy).
    type ClosurePend: Send;
    /// Keeps the current thread at DISPATCH_LEVEL while it lives (`KeRaiseIrqlToDpcLevel` /
    /// `KeLowerIrql` in the driver), so a completion in flight cannot be preempted on its CPU by a
    /// DPC that waits for it.
    type DispatchGuard;

    /// Monotonic now (`KeQueryInterruptTime`). IRQL: any.
    fn now(&self) -> Ticks;

    /// `FwpsPendOperation0(completionHandle, &completionContext)`. IRQL: ≤ DISPATCH_LEVEL.
    ///
    /// # Errors
    /// The NTSTATUS of a failed pend, e.g. `STATUS_FWP_CANNOT_PEND` in a reauthorization classify.
    fn pend_operation(&self, handle: Self::CompletionHandle) -> Result<Self::PendContext, PlatformError>;

    /// `FwpsCompleteOperation0(completionContext, NULL)`. IRQL: ≤ DISPATCH_LEVEL. The core calls it
    /// exactly once per successful `pend_operation` (S1), and never after the endpoint's teardown
    /// notification has returned (S2).
    fn complete_operation(&self, context: Self::PendContext);

    /// `FwpsAcquireClassifyHandle0` + `FwpsPendClassify0` on an endpoint-closure classify, so the
    /// teardown waits (without blocking) for a completion already in flight. IRQL: ≤ DISPATCH_LEVEL.
    ///
    /// # Errors
    /// The NTSTATUS of the failed acquire or pend; the handle, if acquired, is already released.
    fn pend_closure(&self, request: Self::ClosureRequest) -> Result<Self::ClosurePend, PlatformError>;

    /// `FwpsCompleteClassify0` + `FwpsReleaseClassifyHandle0` for a pended closure. Called
    /// asynchronously (never from the classifyFn that pended it). IRQL: ≤ DISPATCH_LEVEL.
    fn complete_closure(&self, pend: Self::ClosurePend);

    /// Asks the host to call [`crate::Core::run_deferred_work`] soon from another context
    /// (`KeInsertQueueDpc` / `WdfWorkItemEnqueue` in the driver). IRQL: ≤ DISPATCH_LEVEL.
    fn request_deferred_work(&self);

    /// Raises to DISPATCH_LEVEL for a completion window. IRQL: ≤ DISPATCH_LEVEL.
    fn raise_to_dispatch(&self) -> Self::DispatchGuard;

    /// Waits briefly during unload. IRQL: PASSIVE_LEVEL only (`KeDelayExecutionThread`).
    fn relax_at_passive(&self);
}
