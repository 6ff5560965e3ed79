//! `tollgate_core::Platform` over the model: what the kernel shell does with `KSPIN_LOCK`,
//! `EX_RUNDOWN_REF`, `FwpsPendOperation0`/`FwpsCompleteOperation0` and the classify-handle calls,
//! done against the [`Engine`], with IRQL tracked so an illegal wait stops the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tollgate_core::host::{AtomicRundown, AtomicSpinLock};
use tollgate_core::{Platform, PlatformError, RawSpinLock, Rundown, Ticks};
use tollgate_wfp_sys::{STATUS_FWP_NULL_POINTER, STATUS_SUCCESS};

use crate::callout::{ClassifyContext, ClassifyHandle, CompletionContext, CompletionHandle};
use crate::engine::Engine;
use crate::irql::{self, Irql, IrqlGuard};

/// A spin lock that raises the simulated processor to DISPATCH_LEVEL while held
/// (`KeAcquireSpinLockRaiseToDpc`).
#[derive(Debug)]
pub struct ModelSpinLock(AtomicSpinLock);

// SAFETY: mutual exclusion is the inner `AtomicSpinLock`'s (whose contract this forwards
// unchanged); the IRQL bookkeeping around it does not affect exclusion.
unsafe impl RawSpinLock for ModelSpinLock {
    type Token = IrqlGuard;

    fn new() -> Self {
        ModelSpinLock(AtomicSpinLock::new())
    }

    fn lock(&self) -> IrqlGuard {
        let guard = irql::raise(Irql::Dispatch);
        self.0.lock();
        guard
    }

    unsafe fn unlock(&self, token: IrqlGuard) {
        // SAFETY: the caller holds the lock (this function's contract), which is the inner lock's.
        unsafe { self.0.unlock(()) };
        drop(token);
    }
}

/// Driver-wide rundown whose wait is checked for IRQL (`ExWaitForRundownProtectionRelease` is
/// ≤ APC_LEVEL only: <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exwaitforrundownprotectionrelease>).
pub struct ModelRundown {
    inner: AtomicRundown,
    engine: Arc<Engine>,
}

impl ModelRundown {
    /// A rundown on `engine`'s machine.
    #[must_use]
    pub fn new(engine: Arc<Engine>) -> ModelRundown {
        ModelRundown { inner: AtomicRundown::default(), engine }
    }
}

impl Rundown for ModelRundown {
    fn try_acquire(&self) -> bool {
        self.inner.try_acquire()
    }

    fn release(&self) {
        self.inner.release();
    }

    fn wait_for_release(&self) {
        self.engine.wait("nt!ExWaitForRundownProtectionRelease");
        if !self.engine.halted() {
            self.inner.wait_for_release();
        }
    }
}

/// What the core needs to pend a teardown notification: the classify's context and filter.
#[derive(Clone, Copy, Debug)]
pub struct NotificationRequest {
    /// classifyFn's classifyContext.
    pub classify_context: ClassifyContext,
    /// The filter that matched.
    pub filter_id: u64,
}

/// A pended teardown notification.
#[derive(Debug)]
pub struct PendedNotification {
    handle: ClassifyHandle,
    filter_id: u64,
}

/// The core's platform on the model.
pub struct ModelPlatform {
    engine: Arc<Engine>,
    deferred_requested: AtomicBool,
    /// A known bug planted on purpose: the classify handle is not released when
    /// `FwpsPendClassify0` fails.
    #[cfg(feature = "planted-bugs")]
    leak_handle_on_failed_pend: AtomicBool,
}

impl ModelPlatform {
    /// A platform on `engine`'s machine.
    #[must_use]
    pub fn new(engine: Arc<Engine>) -> ModelPlatform {
        ModelPlatform {
            engine,
            deferred_requested: AtomicBool::new(false),
            #[cfg(feature = "planted-bugs")]
            leak_handle_on_failed_pend: AtomicBool::new(false),
        }
    }

    /// Plants a leak: when `FwpsPendClassify0` fails, the handle `FwpsAcquireClassifyHandle0`
    /// returned is not released.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_leak_classify_handle(&self) {
        self.leak_handle_on_failed_pend.store(true, Ordering::Relaxed);
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Whether deferred work was requested since the last call (the DPC/work item is queued).
    pub fn take_deferred_request(&self) -> bool {
        self.deferred_requested.swap(false, Ordering::AcqRel)
    }
}

impl Platform for ModelPlatform {
    type Lock = ModelSpinLock;
    type Rundown = ModelRundown;
    type CompletionHandle = Option<CompletionHandle>;
    type PendContext = CompletionContext;
    type ClosureRequest = NotificationRequest;
    type ClosurePend = PendedNotification;
    type DispatchGuard = IrqlGuard;

    fn now(&self) -> Ticks {
        self.engine.now()
    }

    fn pend_operation(&self, handle: Option<CompletionHandle>) -> Result<CompletionContext, PlatformError> {
        let handle = handle.ok_or(PlatformError(STATUS_FWP_NULL_POINTER))?;
        self.engine.fwps_pend_operation0(handle).map_err(PlatformError)
    }

    fn complete_operation(&self, context: CompletionContext) {
        self.engine.fwps_complete_operation0(context);
    }

    fn pend_closure(&self, request: NotificationRequest) -> Result<PendedNotification, PlatformError> {
        let handle = self.engine.fwps_acquire_classify_handle0(request.classify_context).map_err(PlatformError)?;
        let status = self.engine.fwps_pend_classify0(handle, request.filter_id);
        if status != STATUS_SUCCESS {
            #[cfg(feature = "planted-bugs")]
            if self.leak_handle_on_failed_pend.load(Ordering::Relaxed) {
                return Err(PlatformError(status));
            }
            // Documented contract of `pend_closure`: on failure the handle is already released.
            // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsreleaseclassifyhandle0
            self.engine.fwps_release_classify_handle0(handle);
            return Err(PlatformError(status));
        }
        Ok(PendedNotification { handle, filter_id: request.filter_id })
    }

    fn complete_closure(&self, pend: PendedNotification) {
        self.engine.fwps_complete_classify0(pend.handle, pend.filter_id);
        self.engine.fwps_release_classify_handle0(pend.handle);
    }

    fn request_deferred_work(&self) {
        self.deferred_requested.store(true, Ordering::Release);
    }

    fn raise_to_dispatch(&self) -> IrqlGuard {
        irql::raise(Irql::Dispatch)
    }

    fn relax_at_passive(&self) {
        self.engine.wait("nt!KeDelayExecutionThread");
        std::thread::yield_now();
    }
}
