//! The real [`FilterEngine`]: each step is one call into fwpkclnt.sys (the kernel-mode `Fwpm*`
//! functions and `FwpsCalloutRegister3`/`FwpsCalloutUnregisterById0`, declared in
//! `tollgate-wfp-sys`; never windows-sys's user-mode `Fwpm*`, ARCHITECTURE.md §4).
//!
//! Windows targets only: the functions are declared for every target but only linked on Windows,
//! so host test binaries must not reference them.
//!
//! Every function here runs at IRQL `PASSIVE_LEVEL` (the `_IRQL_requires_max_(PASSIVE_LEVEL)`
//! annotation of every function it calls; see the IRQL notes in `tollgate-wfp-sys`).

use core::ffi::c_void;
use core::ptr;

use tollgate_wfp_sys::{
    FwpmCalloutAdd0, FwpmEngineClose0, FwpmEngineOpen0, FwpmFilterAdd0, FwpmFilterDeleteById0, FwpmProviderAdd0,
    FwpmSubLayerAdd0, FwpmTransactionAbort0, FwpmTransactionBegin0, FwpmTransactionCommit0, FwpsCalloutRegister3,
    FwpsCalloutUnregisterById0, GUID, HANDLE, NTSTATUS, RPC_C_AUTHN_WINNT,
};

use super::fwpm::{self, CalloutFunctionTable};
use super::sequencer::FilterEngine;
use super::spec::{CalloutSpec, FilterSpec, ProviderSpec, SessionSpec, SublayerSpec};

/// `NT_SUCCESS`: success and informational statuses are `Ok`.
const fn check(status: NTSTATUS) -> Result<(), NTSTATUS> {
    if status >= 0 { Ok(()) } else { Err(status) }
}

/// An open dynamic session to the filter engine (the handle `FwpmEngineOpen0` returned).
///
/// # Invariants
/// `handle` is open until it is passed back to [`FilterEngine::engine_close`], which consumes
/// the session. Dropping a session without closing it leaks the session, and with it every
/// filter added in it: hand it back through [`unregister`](super::unregister).
#[derive(Debug)]
pub struct KernelSession {
    handle: HANDLE,
}

impl KernelSession {
    /// The raw engine handle, e.g. for other Fwpm calls of the shell.
    #[must_use]
    pub const fn handle(&self) -> HANDLE {
        self.handle
    }
}

/// The kernel [`FilterEngine`]: registers callouts with the driver's device object and the
/// shims' callout functions.
///
/// # Invariants
/// Established by [`KernelFilterEngine::new`]: `device_object` is the driver's live device
/// object and every function in `functions` stays callable while any callout registered through
/// this engine is registered; every method is called at `PASSIVE_LEVEL`.
pub struct KernelFilterEngine {
    device_object: *mut c_void,
    functions: CalloutFunctionTable,
}

impl KernelFilterEngine {
    /// An engine that registers callouts with `device_object` and the functions of `functions`
    /// (chosen per callout by its [`ClassifyKind`](super::ClassifyKind)).
    ///
    /// IRQL: any (it only stores its arguments); the engine's methods: `PASSIVE_LEVEL`.
    ///
    /// # Safety
    /// - `device_object` must be the driver's `DEVICE_OBJECT*` (cast to `*mut c_void`; for KMDF,
    ///   `WdfDeviceWdmGetDeviceObject` of its control device) and stay valid until every callout
    ///   registered through this engine has been unregistered;
    /// - every function in `functions` must implement its `FWPS_CALLOUT_*` contract (DISPATCH-safe,
    ///   ARCHITECTURE.md S4) and stay loaded until every callout registered through this engine
    ///   has been unregistered ([`unregister`](super::unregister) returned `Ok`, or its error
    ///   [`is_safe_to_unload`](super::UnregisterError::is_safe_to_unload));
    /// - every method of the returned engine must be called at IRQL `PASSIVE_LEVEL`.
    #[must_use]
    pub const unsafe fn new(device_object: *mut c_void, functions: CalloutFunctionTable) -> Self {
        Self { device_object, functions }
    }
}

impl FilterEngine for KernelFilterEngine {
    type Session = KernelSession;

    /// `FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, {flags: FWPM_SESSION_FLAG_DYNAMIC}, &h)`.
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmengineopen0>
    fn engine_open_dynamic_session(&mut self, spec: &SessionSpec) -> Result<KernelSession, NTSTATUS> {
        let session = fwpm::session(spec);
        let mut handle: HANDLE = ptr::null_mut();
        // SAFETY: kernel-mode contract of FwpmEngineOpen0: serverName and authIdentity are NULL,
        // authnService is RPC_C_AUTHN_WINNT; `session` is a valid FWPM_SESSION0 whose strings are
        // 'static and NUL-terminated (WideStr); `handle` is writable; PASSIVE_LEVEL (invariant).
        let status = unsafe { FwpmEngineOpen0(ptr::null(), RPC_C_AUTHN_WINNT, ptr::null_mut(), &session, &mut handle) };
        check(status)?;
        Ok(KernelSession { handle })
    }

    /// `FwpmTransactionBegin0(h, 0)` (read/write). IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactionbegin0>
    fn transaction_begin(&mut self, session: &KernelSession) -> Result<(), NTSTATUS> {
        // SAFETY: the handle is open (KernelSession invariant); the sequencer ends every begun
        // transaction with a commit or an abort; PASSIVE_LEVEL (invariant).
        check(unsafe { FwpmTransactionBegin0(session.handle, 0) })
    }

    /// `FwpmProviderAdd0(h, provider, NULL)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmprovideradd0>
    fn provider_add(&mut self, session: &KernelSession, spec: &ProviderSpec) -> Result<(), NTSTATUS> {
        let provider = fwpm::provider(spec);
        // SAFETY: open handle; `provider` is a valid FWPM_PROVIDER0 with 'static NUL-terminated
        // strings and a NULL serviceName; NULL security descriptor is allowed; PASSIVE_LEVEL.
        check(unsafe { FwpmProviderAdd0(session.handle, &provider, ptr::null_mut()) })
    }

    /// `FwpmSubLayerAdd0(h, sublayer, NULL)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmsublayeradd0>
    fn sublayer_add(&mut self, session: &KernelSession, spec: &SublayerSpec) -> Result<(), NTSTATUS> {
        let mut provider_key = GUID::default();
        let sublayer = fwpm::sublayer(spec, &mut provider_key);
        // SAFETY: open handle; `sublayer` is a valid FWPM_SUBLAYER0 whose providerKey points to
        // `provider_key`, alive until the end of this function; 'static strings; NULL security
        // descriptor allowed; PASSIVE_LEVEL.
        check(unsafe { FwpmSubLayerAdd0(session.handle, &sublayer, ptr::null_mut()) })
    }

    /// `FwpsCalloutRegister3(device, callout, &id)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutregister3>
    fn callout_register(&mut self, spec: &CalloutSpec) -> Result<u32, NTSTATUS> {
        let callout = fwpm::runtime_callout(spec, &self.functions)?;
        let mut callout_id = 0_u32;
        // SAFETY: `device_object` is the driver's live device object and the callout's functions
        // stay loaded until it is unregistered (invariants from `new`); `callout` is a valid
        // FWPS_CALLOUT3 with classifyFn and notifyFn set (checked by `runtime_callout`);
        // `callout_id` is writable; PASSIVE_LEVEL.
        let status = unsafe { FwpsCalloutRegister3(self.device_object, &callout, &mut callout_id) };
        check(status)?;
        Ok(callout_id)
    }

    /// `FwpmCalloutAdd0(h, callout, NULL, &id)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutadd0>
    fn callout_add(&mut self, session: &KernelSession, spec: &CalloutSpec) -> Result<u32, NTSTATUS> {
        let mut provider_key = GUID::default();
        let callout = fwpm::callout(spec, &mut provider_key);
        let mut callout_id = 0_u32;
        // SAFETY: open handle; `callout` is a valid FWPM_CALLOUT0 whose providerKey points to the
        // live local `provider_key`; 'static strings; NULL security descriptor allowed;
        // `callout_id` is writable; PASSIVE_LEVEL.
        let status = unsafe { FwpmCalloutAdd0(session.handle, &callout, ptr::null_mut(), &mut callout_id) };
        check(status)?;
        Ok(callout_id)
    }

    /// `FwpmFilterAdd0(h, filter, NULL, &id)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmfilteradd0>
    fn filter_add(&mut self, session: &KernelSession, spec: &FilterSpec) -> Result<u64, NTSTATUS> {
        let mut provider_key = GUID::default();
        let filter = fwpm::filter(spec, &mut provider_key);
        let mut filter_id = 0_u64;
        // SAFETY: open handle; `filter` is a valid FWPM_FILTER0 with numFilterConditions 0 and a
        // NULL filterCondition, a callout action, and a providerKey pointing to the live local
        // `provider_key`; 'static strings; NULL security descriptor allowed; `filter_id` is
        // writable; PASSIVE_LEVEL.
        let status = unsafe { FwpmFilterAdd0(session.handle, &filter, ptr::null_mut(), &mut filter_id) };
        check(status)?;
        Ok(filter_id)
    }

    /// `FwpmTransactionCommit0(h)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactioncommit0>
    fn transaction_commit(&mut self, session: &KernelSession) -> Result<(), NTSTATUS> {
        // SAFETY: open handle with a transaction in progress (the sequencer begun it);
        // PASSIVE_LEVEL.
        check(unsafe { FwpmTransactionCommit0(session.handle) })
    }

    /// `FwpmTransactionAbort0(h)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactionabort0>
    fn transaction_abort(&mut self, session: &KernelSession) -> Result<(), NTSTATUS> {
        // SAFETY: open handle; without a transaction in progress the call fails with
        // FWP_E_NO_TXN_IN_PROGRESS, which is reported, not undefined; PASSIVE_LEVEL.
        check(unsafe { FwpmTransactionAbort0(session.handle) })
    }

    /// `FwpmFilterDeleteById0(h, id)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmfilterdeletebyid0>
    fn filter_delete_by_id(&mut self, session: &KernelSession, filter_id: u64) -> Result<(), NTSTATUS> {
        // SAFETY: open handle; any id is accepted (an unknown one fails with
        // STATUS_FWP_FILTER_NOT_FOUND); PASSIVE_LEVEL.
        check(unsafe { FwpmFilterDeleteById0(session.handle, filter_id) })
    }

    /// `FwpsCalloutUnregisterById0(id)`. IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0>
    fn callout_unregister_by_id(&mut self, callout_id: u32) -> Result<(), NTSTATUS> {
        // SAFETY: `callout_id` came from FwpsCalloutRegister3 (the sequencer only passes ids it
        // recorded from `callout_register`); PASSIVE_LEVEL.
        check(unsafe { FwpsCalloutUnregisterById0(callout_id) })
    }

    /// `FwpmEngineClose0(h)`: ends the dynamic session, deleting every object added in it.
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmengineclose0>
    fn engine_close(&mut self, session: KernelSession) -> Result<(), NTSTATUS> {
        // SAFETY: the handle is open and, the session being consumed, never used again;
        // PASSIVE_LEVEL.
        check(unsafe { FwpmEngineClose0(session.handle) })
    }
}
