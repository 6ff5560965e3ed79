//! `extern "system"` declarations of the kernel-mode WFP functions Tollgate calls.
//!
//! All of them are imported from `fwpkclnt.sys`, the module the WDK's `fwpkclnt.lib` names and the
//! one every page cited below gives as "Library: Fwpkclnt.lib". The header names without a version
//! suffix (`FwpsCalloutRegister`, `FwpmEngineOpen`, ...) are macros over these versioned exports,
//! so only the versioned names are declared. The import is `raw-dylib` with `+verbatim`
//! (ARCHITECTURE.md §5), so no import library is needed, and it is only attached on Windows targets,
//! so host builds (which never call these) need nothing either.
//!
//! These are the *kernel* Fwpm functions of fwpmk.h. The same-named functions in windows-sys import
//! user-mode `fwpuclnt.dll` and must never be used by the driver; this crate does not re-export them.
//!
//! IRQL values are the `_IRQL_requires_max_` annotations of fwpsk.h / fwpmk.h (WDK 10.0.22621.0).
//! NTAPI is `__stdcall`, which is the C calling convention on x86_64; `extern "system"` is right on
//! every Windows target.

use core::ffi::c_void;

use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FWPM_CALLOUT0, FWPM_FILTER0, FWPM_PROVIDER0, FWPM_SESSION0, FWPM_SUBLAYER0,
};
use windows_sys::Win32::Security::PSECURITY_DESCRIPTOR;
use windows_sys::core::GUID;

use crate::types::{FWPS_CALLOUT3, FWPS_CLASSIFY_OUT0, FWPS_STREAM_DATA0, NET_BUFFER_LIST};

#[cfg_attr(windows, link(name = "fwpkclnt.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
unsafe extern "system" {
    // ---- fwpsk.h: callout registration -------------------------------------------------------

    /// Registers a version-3 callout with the filter engine (fwpsk.h, `NTDDI_WIN10_RS2`+).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutregister3>
    ///
    /// # Safety
    /// `deviceObject` must be the driver's live `DEVICE_OBJECT*` (a `void*` in the header, so the
    /// shell passes its wdk-sys pointer cast to `*mut c_void`); `callout` must point to a valid
    /// [`FWPS_CALLOUT3`] whose functions stay loaded until [`FwpsCalloutUnregisterById0`] succeeds;
    /// `calloutId` must be NULL or writable.
    pub fn FwpsCalloutRegister3(
        deviceObject: *mut c_void,
        callout: *const FWPS_CALLOUT3,
        calloutId: *mut u32,
    ) -> NTSTATUS;

    /// Unregisters a callout by its run-time id (fwpsk.h). Returns `STATUS_DEVICE_BUSY` while flow
    /// contexts associated by this callout exist (remove them with [`FwpsFlowRemoveContext0`] and
    /// retry); filters that still reference the callout then act as BLOCK (if terminating), so
    /// delete the filters first.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0>
    ///
    /// # Safety
    /// Must be called at PASSIVE_LEVEL with an id returned by [`FwpsCalloutRegister3`].
    pub fn FwpsCalloutUnregisterById0(calloutId: u32) -> NTSTATUS;

    /// Unregisters a callout by its key (fwpsk.h). Same contract as
    /// [`FwpsCalloutUnregisterById0`].
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbykey0>
    ///
    /// # Safety
    /// Must be called at PASSIVE_LEVEL; `calloutKey` must point to a valid GUID.
    pub fn FwpsCalloutUnregisterByKey0(calloutKey: *const GUID) -> NTSTATUS;

    // ---- fwpsk.h: flow contexts --------------------------------------------------------------

    /// Associates a callout-defined context with a data flow (fwpsk.h). The callout must have a
    /// flowDeleteFn. Returns `STATUS_OBJECT_NAME_EXISTS` if the flow already has a context from
    /// this callout at this layer.
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0>
    ///
    /// # Safety
    /// `flowId` must be the `flowHandle` metadata of a current classify; `flowContext` is handed
    /// back to classifyFn and flowDeleteFn and must stay valid until flowDeleteFn has run.
    pub fn FwpsFlowAssociateContext0(flowId: u64, layerId: u16, calloutId: u32, flowContext: u64) -> NTSTATUS;

    /// Removes a flow context added with [`FwpsFlowAssociateContext0`] (fwpsk.h).
    /// `STATUS_SUCCESS`: flowDeleteFn already ran, synchronously; `STATUS_PENDING`: it will run
    /// later.
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowremovecontext0>
    ///
    /// # Safety
    /// The caller must not hold a lock that its flowDeleteFn takes (it may run inside this call).
    pub fn FwpsFlowRemoveContext0(flowId: u64, layerId: u16, calloutId: u32) -> NTSTATUS;

    // ---- fwpsk.h: pending at the ALE layers --------------------------------------------------

    /// Pends the current ALE operation (fwpsk.h). Only at ALE_RESOURCE_ASSIGNMENT, ALE_AUTH_LISTEN,
    /// ALE_AUTH_CONNECT (and ALE_AUTH_RECV_ACCEPT with clone + reinject); returns
    /// `STATUS_FWP_CANNOT_PEND` in the reauthorization classify.
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0>
    ///
    /// # Safety
    /// `completionHandle` must be the `completionHandle` metadata of the current classify;
    /// `completionContext` must be writable. On success the context must be passed to
    /// [`FwpsCompleteOperation0`] exactly once (ARCHITECTURE.md S1).
    pub fn FwpsPendOperation0(completionHandle: HANDLE, completionContext: *mut HANDLE) -> NTSTATUS;

    /// Resumes an operation pended by [`FwpsPendOperation0`] (fwpsk.h). Returns nothing; there is
    /// no way to validate a completion context.
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0>
    ///
    /// # Safety
    /// `completionContext` must come from a successful [`FwpsPendOperation0`] and not have been
    /// completed before, and its endpoint must not have been torn down (ARCHITECTURE.md S1, S2);
    /// a stale context bugchecks. `netBufferList` may be NULL.
    pub fn FwpsCompleteOperation0(completionContext: HANDLE, netBufferList: *mut NET_BUFFER_LIST);

    // ---- fwpsk.h: asynchronous classify (NTDDI_WIN7+) ----------------------------------------

    /// Gets a classify handle for asynchronous processing of the current classify (fwpsk.h).
    /// Every acquired handle is released with [`FwpsReleaseClassifyHandle0`].
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsacquireclassifyhandle0>
    ///
    /// # Safety
    /// `classifyContext` must be the `classifyContext` argument of the current classifyFn;
    /// `flags` must be 0; `classifyHandle` must be writable.
    pub fn FwpsAcquireClassifyHandle0(classifyContext: *mut c_void, flags: u32, classifyHandle: *mut u64) -> NTSTATUS;

    /// Releases a handle from [`FwpsAcquireClassifyHandle0`] (fwpsk.h).
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsreleaseclassifyhandle0>
    ///
    /// # Safety
    /// `classifyHandle` must be an acquired, not yet released handle.
    pub fn FwpsReleaseClassifyHandle0(classifyHandle: u64);

    /// Pends the current classify (fwpsk.h); the classify is finished later with
    /// [`FwpsCompleteClassify0`]. The mechanism for ALE_ENDPOINT_CLOSURE and the redirect layers.
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendclassify0>
    ///
    /// # Safety
    /// `classifyHandle` must be acquired for the current classify; `filterId` must be the
    /// `filterId` of the classify's filter; `flags` must be 0; `classifyOut` must be the current
    /// classify's out structure.
    pub fn FwpsPendClassify0(
        classifyHandle: u64,
        filterId: u64,
        flags: u32,
        classifyOut: *mut FWPS_CLASSIFY_OUT0,
    ) -> NTSTATUS;

    /// Completes a classify pended with [`FwpsPendClassify0`] (fwpsk.h).
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteclassify0>
    ///
    /// # Safety
    /// `classifyHandle` must be a pended, not yet completed classify; `classifyOut` may be NULL
    /// or must point to a valid [`FWPS_CLASSIFY_OUT0`].
    pub fn FwpsCompleteClassify0(classifyHandle: u64, flags: u32, classifyOut: *const FWPS_CLASSIFY_OUT0);

    /// Gets a writable copy of the layer data of the current classify (fwpsk.h; redirect layers).
    /// Always paired with [`FwpsApplyModifiedLayerData0`].
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsacquirewritablelayerdatapointer0>
    ///
    /// # Safety
    /// As [`FwpsPendClassify0`]; `writableLayerData` must be writable; `classifyOut` may be NULL.
    pub fn FwpsAcquireWritableLayerDataPointer0(
        classifyHandle: u64,
        filterId: u64,
        flags: u32,
        writableLayerData: *mut *mut c_void,
        classifyOut: *mut FWPS_CLASSIFY_OUT0,
    ) -> NTSTATUS;

    /// Applies (and releases) layer data from [`FwpsAcquireWritableLayerDataPointer0`] (fwpsk.h).
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsapplymodifiedlayerdata0>
    ///
    /// # Safety
    /// `modifiedLayerData` must be the pointer the matching acquire returned, applied once.
    pub fn FwpsApplyModifiedLayerData0(classifyHandle: u64, modifiedLayerData: *mut c_void, flags: u32);

    // ---- fwpsk.h: stream data ----------------------------------------------------------------

    /// Copies stream data into a flat buffer (fwpsk.h).
    ///
    /// IRQL: `<= DISPATCH_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscopystreamdatatobuffer0>
    ///
    /// # Safety
    /// Only inside the classifyFn that received `calloutStreamData` (ARCHITECTURE.md S6);
    /// `buffer` must be writable for `bytesToCopy` bytes and `bytesToCopy` must not exceed
    /// `dataLength`; `bytesCopied` must be writable.
    pub fn FwpsCopyStreamDataToBuffer0(
        calloutStreamData: *const FWPS_STREAM_DATA0,
        buffer: *mut c_void,
        bytesToCopy: usize,
        bytesCopied: *mut usize,
    );

    // ---- fwpmk.h: kernel-mode management API -------------------------------------------------

    /// Opens a session to the filter engine (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmengineopen0>
    ///
    /// # Safety
    /// `serverName` and `authIdentity` (a `SEC_WINNT_AUTH_IDENTITY_W*`) must be NULL in kernel
    /// mode; `authnService` is `RPC_C_AUTHN_WINNT` or `RPC_C_AUTHN_DEFAULT`; `session` may be NULL
    /// or must point to a valid [`FWPM_SESSION0`]; `engineHandle` must be writable.
    pub fn FwpmEngineOpen0(
        serverName: *const u16,
        authnService: u32,
        authIdentity: *mut c_void,
        session: *const FWPM_SESSION0,
        engineHandle: *mut HANDLE,
    ) -> NTSTATUS;

    /// Closes a session opened with [`FwpmEngineOpen0`] (fwpmk.h). Objects added in a dynamic
    /// session are deleted.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmengineclose0>
    ///
    /// # Safety
    /// `engineHandle` must be open and not used afterwards.
    pub fn FwpmEngineClose0(engineHandle: HANDLE) -> NTSTATUS;

    /// Begins an explicit transaction in the session (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactionbegin0>
    ///
    /// # Safety
    /// `engineHandle` must be open; every successful begin is ended by a commit or an abort.
    pub fn FwpmTransactionBegin0(engineHandle: HANDLE, flags: u32) -> NTSTATUS;

    /// Commits the session's current transaction (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactioncommit0>
    ///
    /// # Safety
    /// `engineHandle` must be open with a transaction in progress.
    pub fn FwpmTransactionCommit0(engineHandle: HANDLE) -> NTSTATUS;

    /// Aborts the session's current transaction (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactionabort0>
    ///
    /// # Safety
    /// `engineHandle` must be open with a transaction in progress.
    pub fn FwpmTransactionAbort0(engineHandle: HANDLE) -> NTSTATUS;

    /// Adds a provider (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmprovideradd0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `provider` must point to a valid [`FWPM_PROVIDER0`] (its
    /// strings NUL-terminated); `sd` may be NULL.
    pub fn FwpmProviderAdd0(
        engineHandle: HANDLE,
        provider: *const FWPM_PROVIDER0,
        sd: PSECURITY_DESCRIPTOR,
    ) -> NTSTATUS;

    /// Deletes a provider (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmproviderdeletebykey0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `key` must point to a valid GUID.
    pub fn FwpmProviderDeleteByKey0(engineHandle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Adds a sublayer (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmsublayeradd0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `subLayer` must point to a valid [`FWPM_SUBLAYER0`]; `sd` may
    /// be NULL.
    pub fn FwpmSubLayerAdd0(
        engineHandle: HANDLE,
        subLayer: *const FWPM_SUBLAYER0,
        sd: PSECURITY_DESCRIPTOR,
    ) -> NTSTATUS;

    /// Deletes a sublayer (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmsublayerdeletebykey0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `key` must point to a valid GUID.
    pub fn FwpmSubLayerDeleteByKey0(engineHandle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Adds a callout object to the engine (fwpmk.h); pairs with [`FwpsCalloutRegister3`].
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutadd0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `callout` must point to a valid [`FWPM_CALLOUT0`]; `sd` may be
    /// NULL; `id` must be NULL or writable.
    pub fn FwpmCalloutAdd0(
        engineHandle: HANDLE,
        callout: *const FWPM_CALLOUT0,
        sd: PSECURITY_DESCRIPTOR,
        id: *mut u32,
    ) -> NTSTATUS;

    /// Deletes a callout object by run-time id (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutdeletebyid0>
    ///
    /// # Safety
    /// `engineHandle` must be open.
    pub fn FwpmCalloutDeleteById0(engineHandle: HANDLE, id: u32) -> NTSTATUS;

    /// Deletes a callout object by key (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutdeletebykey0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `key` must point to a valid GUID.
    pub fn FwpmCalloutDeleteByKey0(engineHandle: HANDLE, key: *const GUID) -> NTSTATUS;

    /// Adds a filter (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmfilteradd0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `filter` must point to a valid [`FWPM_FILTER0`] whose
    /// `filterCondition` points to `numFilterConditions` valid conditions; `sd` may be NULL; `id`
    /// must be NULL or writable.
    pub fn FwpmFilterAdd0(
        engineHandle: HANDLE,
        filter: *const FWPM_FILTER0,
        sd: PSECURITY_DESCRIPTOR,
        id: *mut u64,
    ) -> NTSTATUS;

    /// Deletes a filter by run-time id (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmfilterdeletebyid0>
    ///
    /// # Safety
    /// `engineHandle` must be open.
    pub fn FwpmFilterDeleteById0(engineHandle: HANDLE, id: u64) -> NTSTATUS;

    /// Deletes a filter by key (fwpmk.h).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmfilterdeletebykey0>
    ///
    /// # Safety
    /// `engineHandle` must be open; `key` must point to a valid GUID.
    pub fn FwpmFilterDeleteByKey0(engineHandle: HANDLE, key: *const GUID) -> NTSTATUS;
}
