//! [`KernelPlatform`]: [`tollgate_core::Platform`] over ntoskrnl and fwpkclnt.sys.

use core::ffi::c_void;
use core::ptr;

use tollgate_core::{Platform, PlatformError, Ticks};
use tollgate_wfp_sys::{self as wfp, FWPS_CLASSIFY_OUT0, HANDLE, NTSTATUS, STATUS_FWP_NULL_POINTER};

use crate::irql::DispatchGuard;
use crate::ntoskrnl::{self, FALSE, KernelMode};
use crate::sync::{KernelRundown, KernelSpinLock};

/// How long [`KernelPlatform::relax_at_passive`] sleeps: 10 ms.
pub const RELAX_INTERVAL: Ticks = Ticks::from_millis(10);

/// `KeDelayExecutionThread`'s `Interval` for a *relative* wait of `duration`: its negation in
/// 100 ns units (a negative interval is relative). Saturates at `-i64::MAX`; zero stays zero.
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kedelayexecutionthread>
///
/// IRQL: any.
#[must_use]
pub const fn relative_interval(duration: Ticks) -> i64 {
    let magnitude = if duration.0 > i64::MAX as u64 { i64::MAX } else { duration.0 as i64 };
    -magnitude
}

/// `NT_SUCCESS` (ntdef.h): success and informational statuses are non-negative.
const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

/// The completion handle as the `HANDLE` `FwpsPendOperation0` takes; `STATUS_FWP_NULL_POINTER`
/// when the metadata had none (`None`, or a zero address).
fn completion_handle(handle: Option<usize>) -> Result<HANDLE, PlatformError> {
    match handle {
        Some(address) if address != 0 => Ok(ptr::with_exposed_provenance_mut(address)),
        _ => Err(PlatformError(STATUS_FWP_NULL_POINTER)),
    }
}

/// What the KMDF shell supplies to make the core's deferred work run soon, from another context:
/// a plain function and its context, called by [`KernelPlatform::request_deferred_work`].
///
/// The shell's function typically queues a DPC (`KeInsertQueueDpc`) or a work item
/// (`WdfWorkItemEnqueue`) whose routine calls `Core::run_deferred_work`. It is called at
/// IRQL <= DISPATCH_LEVEL, possibly from a classifyFn, so it must not wait, must not allocate
/// pageable memory, and must not run the deferred work inline (the core asks precisely because
/// it cannot do that work where it is).
#[derive(Clone, Copy, Debug)]
pub struct DeferredWork {
    callback: fn(context: *mut c_void),
    /// The context's address, kept as an integer (exposed provenance) so the platform is
    /// `Send + Sync`; the pointer is rebuilt only to hand it back to `callback`.
    context: usize,
}

impl DeferredWork {
    /// `callback(context)` will be called for every request. The context is passed back as is and
    /// never dereferenced by this crate: what it points to is the shell's business (it must stay
    /// valid until the core is dropped).
    ///
    /// IRQL: any.
    #[must_use]
    pub fn new(callback: fn(context: *mut c_void), context: *mut c_void) -> DeferredWork {
        DeferredWork { callback, context: context.expose_provenance() }
    }

    /// Calls the callback with the context. IRQL: <= DISPATCH_LEVEL.
    fn request(&self) {
        (self.callback)(ptr::with_exposed_provenance_mut(self.context));
    }
}

/// What [`KernelPlatform::pend_closure`] needs to pend an ALE_ENDPOINT_CLOSURE (or
/// ALE_RESOURCE_RELEASE) classify: three arguments of the current classifyFn.
///
/// Valid only during the classifyFn that builds it; the core calls `pend_closure` within that
/// classifyFn (from `Core::endpoint_teardown`) or not at all, and keeps nothing of it.
#[derive(Debug)]
pub struct ClosureRequest {
    /// classifyFn's `classifyContext` (for `FwpsAcquireClassifyHandle0`); may be NULL.
    pub classify_context: *const c_void,
    /// `filter->filterId` of the classify (for `FwpsPendClassify0`).
    pub filter_id: u64,
    /// classifyFn's `classifyOut` (for `FwpsPendClassify0`); may be NULL.
    pub classify_out: *mut FWPS_CLASSIFY_OUT0,
}

impl ClosureRequest {
    /// `STATUS_FWP_NULL_POINTER` if the classify context or classifyOut is NULL (WFP is then not
    /// called at all).
    fn check(&self) -> Result<(), PlatformError> {
        if self.classify_context.is_null() || self.classify_out.is_null() {
            Err(PlatformError(STATUS_FWP_NULL_POINTER))
        } else {
            Ok(())
        }
    }
}

/// A pended closure classify: its classify handle and the copy of classifyOut it will be completed
/// with.
///
/// Made only by [`KernelPlatform::pend_closure`] and consumed by
/// [`KernelPlatform::complete_closure`] (not `Clone`), so each pended classify is completed and its
/// handle released at most once. Dropping one instead leaves the classify pended and its handle
/// acquired: the endpoint's teardown then never finishes.
///
/// # Invariants
/// `handle` was acquired with `FwpsAcquireClassifyHandle0`, pended with `FwpsPendClassify0`
/// (`filter_id`), and neither completed nor released yet. `classify_out` is the deep copy of the
/// classify's `FWPS_CLASSIFY_OUT0` taken right after the pend: `FwpsCompleteClassify0` takes it as
/// the callout's final decision.
pub struct PendedClassify {
    handle: u64,
    filter_id: u64,
    classify_out: FWPS_CLASSIFY_OUT0,
}

impl PendedClassify {
    /// The classify handle (for tracing). IRQL: any.
    #[must_use]
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The filter the classify was pended for (for tracing). IRQL: any.
    #[must_use]
    pub fn filter_id(&self) -> u64 {
        self.filter_id
    }
}

impl core::fmt::Debug for PendedClassify {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendedClassify")
            .field("handle", &self.handle)
            .field("filter_id", &self.filter_id)
            .field("action_type", &self.classify_out.actionType)
            .finish_non_exhaustive()
    }
}

/// The kernel implementation of [`tollgate_core::Platform`].
///
/// Holds nothing but the shell's [`DeferredWork`] (a function pointer and an address), so it is
/// `Send + Sync` without any `unsafe impl`. Every method is callable at IRQL <= DISPATCH_LEVEL
/// except [`Platform::relax_at_passive`] (PASSIVE_LEVEL).
#[derive(Clone, Copy, Debug)]
pub struct KernelPlatform {
    deferred: DeferredWork,
}

impl KernelPlatform {
    /// The platform; `deferred` is called for every [`Platform::request_deferred_work`].
    ///
    /// IRQL: any.
    #[must_use]
    pub const fn new(deferred: DeferredWork) -> KernelPlatform {
        KernelPlatform { deferred }
    }
}

impl Platform for KernelPlatform {
    type Lock = KernelSpinLock;
    type Rundown = KernelRundown;
    /// `FWPS_INCOMING_METADATA_VALUES0::completionHandle` as an address; `None` (or 0) when the
    /// metadata has none.
    type CompletionHandle = Option<usize>;
    /// The `completionContext` `FwpsPendOperation0` returned, as an address.
    type PendContext = usize;
    type ClosureRequest = ClosureRequest;
    type ClosurePend = PendedClassify;
    type DispatchGuard = DispatchGuard;

    /// `KeQueryInterruptTimePrecise`: 100 ns units since boot, monotonic. IRQL: any.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kequeryinterrupttimeprecise>
    fn now(&self) -> Ticks {
        let mut qpc_time_stamp = 0_u64;
        // SAFETY: `qpc_time_stamp` is a local, valid for the write; callable at any IRQL.
        Ticks(unsafe { ntoskrnl::KeQueryInterruptTimePrecise(&mut qpc_time_stamp) })
    }

    /// `FwpsPendOperation0(completionHandle, &completionContext)`. IRQL: <= DISPATCH_LEVEL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0>
    ///
    /// # Errors
    /// `STATUS_FWP_NULL_POINTER` without calling WFP when there is no completion handle; otherwise
    /// the failure status of `FwpsPendOperation0` (e.g. `STATUS_FWP_CANNOT_PEND` in a
    /// reauthorization).
    fn pend_operation(&self, handle: Option<usize>) -> Result<usize, PlatformError> {
        let completion_handle = completion_handle(handle)?;
        let mut completion_context: HANDLE = ptr::null_mut();
        // SAFETY: `completion_handle` is the completionHandle metadata of the classify the core is
        // handling right now (the core calls `pend_operation` from within that classifyFn), and
        // `completion_context` is a local, valid for the write. On success the core completes the
        // context exactly once (S1).
        let status = unsafe { wfp::FwpsPendOperation0(completion_handle, &mut completion_context) };
        if nt_success(status) { Ok(completion_context.expose_provenance()) } else { Err(PlatformError(status)) }
    }

    /// `FwpsCompleteOperation0(completionContext, NULL)`. IRQL: <= DISPATCH_LEVEL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0>
    fn complete_operation(&self, context: usize) {
        let completion_context: HANDLE = ptr::with_exposed_provenance_mut(context);
        // SAFETY: `context` came from a successful `pend_operation`, and the core calls this
        // exactly once per such context (S1) and never after the endpoint's teardown notification
        // has returned to WFP (S2), which is everything FwpsCompleteOperation0 needs; a NULL
        // netBufferList is allowed.
        unsafe { wfp::FwpsCompleteOperation0(completion_context, ptr::null_mut()) }
    }

    /// `FwpsAcquireClassifyHandle0(classifyContext, 0, &handle)`, then
    /// `FwpsPendClassify0(handle, filterId, 0, classifyOut)`, then a copy of classifyOut.
    /// IRQL: <= DISPATCH_LEVEL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsacquireclassifyhandle0>,
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendclassify0>
    ///
    /// # Errors
    /// `STATUS_FWP_NULL_POINTER` without calling WFP when the classify context or classifyOut is
    /// NULL; otherwise the failure status of the acquire or the pend. A handle acquired before a
    /// failed pend is released before returning ("Any time FwpsAcquireClassifyHandle0 is called, a
    /// corresponding call to FwpsReleaseClassifyHandle0 must be made").
    fn pend_closure(&self, request: ClosureRequest) -> Result<PendedClassify, PlatformError> {
        request.check()?;
        let mut handle = 0_u64;
        // SAFETY: `classify_context` is the non-NULL classifyContext of the classifyFn running
        // now (ClosureRequest is valid only during it), `flags` is 0 as required, and `handle` is
        // a local, valid for the write.
        let status = unsafe { wfp::FwpsAcquireClassifyHandle0(request.classify_context.cast_mut(), 0, &mut handle) };
        if !nt_success(status) {
            return Err(PlatformError(status));
        }
        // SAFETY: `handle` was just acquired for this classify, `filter_id` is its filter's id,
        // `flags` is 0 as required, and `classify_out` is the classify's non-NULL classifyOut.
        let status = unsafe { wfp::FwpsPendClassify0(handle, request.filter_id, 0, request.classify_out) };
        if !nt_success(status) {
            // SAFETY: `handle` was acquired above and has not been released.
            unsafe { wfp::FwpsReleaseClassifyHandle0(handle) };
            return Err(PlatformError(status));
        }
        // SAFETY: `classify_out` is the classify's non-NULL classifyOut, valid and aligned for the
        // duration of classifyFn; FWPS_CLASSIFY_OUT0 is plain integers, so a bitwise copy is the
        // deep copy FwpsCompleteClassify0 asks for.
        let classify_out = unsafe { request.classify_out.read() };
        Ok(PendedClassify { handle, filter_id: request.filter_id, classify_out })
    }

    /// `FwpsCompleteClassify0(handle, 0, &copy)`, then `FwpsReleaseClassifyHandle0(handle)`.
    /// IRQL: <= DISPATCH_LEVEL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteclassify0>,
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsreleaseclassifyhandle0>
    fn complete_closure(&self, pend: PendedClassify) {
        // SAFETY: by PendedClassify's invariants `pend.handle` is pended and not yet completed
        // (`pend` is consumed here, so this happens once), `flags` is 0 as required, and
        // `pend.classify_out` is a valid FWPS_CLASSIFY_OUT0 that outlives the call.
        unsafe { wfp::FwpsCompleteClassify0(pend.handle, 0, &pend.classify_out) };
        // SAFETY: the handle was acquired by `pend_closure`, is completed now ("After calling this
        // function, FwpsReleaseClassifyHandle0 must be called"), and is released only here.
        unsafe { wfp::FwpsReleaseClassifyHandle0(pend.handle) };
    }

    /// Calls the shell's [`DeferredWork`]. IRQL: <= DISPATCH_LEVEL.
    fn request_deferred_work(&self) {
        self.deferred.request();
    }

    /// [`DispatchGuard::raise`]. IRQL: <= DISPATCH_LEVEL.
    fn raise_to_dispatch(&self) -> DispatchGuard {
        DispatchGuard::raise()
    }

    /// `KeDelayExecutionThread(KernelMode, FALSE, -10 ms)`: sleeps [`RELAX_INTERVAL`].
    /// IRQL: PASSIVE_LEVEL (the routine allows <= APC_LEVEL).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kedelayexecutionthread>
    fn relax_at_passive(&self) {
        let interval = relative_interval(RELAX_INTERVAL);
        // SAFETY: the core calls this at PASSIVE_LEVEL only (Platform's contract), and `interval`
        // is a local that outlives the call. A non-alertable kernel-mode wait returns
        // STATUS_SUCCESS when the interval elapses; there is nothing to do with the status.
        let _status = unsafe { ntoskrnl::KeDelayExecutionThread(KernelMode, FALSE, &interval) };
    }
}

/// Compile-time proof of the auto traits the core and the shims rely on.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<KernelPlatform>();
    send_sync::<KernelSpinLock>();
    send_sync::<KernelRundown>();
    send::<PendedClassify>();
};

#[cfg(test)]
mod tests {
    //! Only the parts that run without a kernel: the interval arithmetic, the deferred-work
    //! callback and the refusals that happen before any WFP call.

    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn relax_interval_is_ten_milliseconds_relative() {
        assert_eq!(relative_interval(RELAX_INTERVAL), -100_000);
        assert_eq!(relative_interval(Ticks(0)), 0);
        assert_eq!(relative_interval(Ticks(u64::MAX)), -i64::MAX);
        assert_eq!(relative_interval(Ticks(i64::MAX as u64)), -i64::MAX);
    }

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static LAST_CONTEXT: AtomicUsize = AtomicUsize::new(0);

    fn record(context: *mut c_void) {
        CALLS.fetch_add(1, Ordering::SeqCst);
        LAST_CONTEXT.store(context.addr(), Ordering::SeqCst);
    }

    #[test]
    fn deferred_work_calls_the_shell_with_its_context() {
        let mut target = 0_u32;
        let context = ptr::from_mut(&mut target).cast::<c_void>();
        let platform = KernelPlatform::new(DeferredWork::new(record, context));
        platform.request_deferred_work();
        platform.request_deferred_work();
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
        assert_eq!(LAST_CONTEXT.load(Ordering::SeqCst), context.addr());
    }

    #[test]
    fn pend_without_completion_handle_is_refused_before_wfp() {
        assert_eq!(completion_handle(None), Err(PlatformError(STATUS_FWP_NULL_POINTER)));
        assert_eq!(completion_handle(Some(0)), Err(PlatformError(STATUS_FWP_NULL_POINTER)));
        assert_eq!(completion_handle(Some(0x1000)).map(<*mut c_void>::addr), Ok(0x1000));
    }

    #[test]
    fn closure_pend_with_null_pointers_is_refused_before_wfp() {
        let mut classify_out = FWPS_CLASSIFY_OUT0::default();
        let mut context = 0_u8;
        let context = ptr::from_mut(&mut context).cast_const().cast::<c_void>();
        let request = |classify_context, classify_out| ClosureRequest { classify_context, filter_id: 1, classify_out };
        let refused = Err(PlatformError(STATUS_FWP_NULL_POINTER));
        assert_eq!(request(ptr::null(), &raw mut classify_out).check(), refused);
        assert_eq!(request(context, ptr::null_mut()).check(), refused);
        assert_eq!(request(context, &raw mut classify_out).check(), Ok(()));
    }
}
