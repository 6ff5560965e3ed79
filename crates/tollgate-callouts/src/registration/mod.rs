//! Tollgate's WFP registration: provider, sublayer, twelve callouts and twelve filters, added in
//! **one** Fwpm transaction on a **dynamic** session, unwound completely on any failure, and torn
//! down in the order ARCHITECTURE.md S5 requires.
//!
//! The module has two halves:
//! - an FFI-free description and sequencer: [`Plan`] (what to add, as plain Rust data; the fixed
//!   plan is [`TOLLGATE_PLAN`]), the [`FilterEngine`] trait (one method per Fwpm/Fwps step) and the
//!   two algorithms [`register`] and [`unregister`], which run against any engine (the host tests
//!   use a recording fake);
//! - the kernel engine, `KernelFilterEngine` (Windows targets only), which performs each step with
//!   the fwpkclnt.sys functions declared in `tollgate-wfp-sys`.
//!
//! All of it runs at **IRQL `PASSIVE_LEVEL`** only: every Fwpm function and `FwpsCalloutRegister3`
//! / `FwpsCalloutUnregisterById0` is `PASSIVE_LEVEL` (see the IRQL notes in `tollgate-wfp-sys`).
//!
//! # Order of operations ([`register`])
//! 1. `FwpmEngineOpen0` with `FWPM_SESSION_FLAG_DYNAMIC`. "Any objects added during a dynamic
//!    session are automatically deleted when the session ends", and a transaction still in
//!    progress when a session ends is aborted
//!    (<https://learn.microsoft.com/windows/win32/fwp/object-management>;
//!    <https://learn.microsoft.com/windows/win32/api/fwpmtypes/ns-fwpmtypes-fwpm_session0>).
//!    So nothing Tollgate adds can outlive the session: closing it (unload) or losing it removes
//!    every filter, and no filter of ours is ever left orphaned in the engine.
//! 2. `FwpmTransactionBegin0(0)` (read/write). The transaction is ACID: nothing added in it is
//!    visible to classification before the commit, and a failed call inside it "does not affect
//!    the overall state of the transaction" — the caller must abort it explicitly (same page).
//! 3. `FwpmProviderAdd0`, then `FwpmSubLayerAdd0` (the sublayer names the provider).
//! 4. For each of the twelve callouts, in plan order: `FwpsCalloutRegister3` (run-time
//!    registration with the device object) immediately followed by `FwpmCalloutAdd0` (the
//!    management object, same GUID).
//! 5. For each of the twelve filters: `FwpmFilterAdd0` (a filter can only name a callout that was
//!    already added with `FwpmCalloutAdd0`).
//! 6. `FwpmTransactionCommit0`. The session stays open for the driver's lifetime, in the returned
//!    [`Registration`].
//!
//! ## Why `FwpsCalloutRegister3` runs *inside* the transaction, before the commit
//! - `FwpsCalloutRegister3` is not a management (BFE) call: it is not part of the Fwpm transaction
//!   and an abort does not undo it. A callout driver "can register its callouts with the filter
//!   engine at any time, even if the filter engine is currently not running"
//!   (<https://learn.microsoft.com/windows-hardware/drivers/network/registering-callouts-with-the-filter-engine>).
//! - A callout object and filters that name it may be added *before* the run-time callout is
//!   registered, but until it is, "filters with an action type of `FWP_ACTION_CALLOUT_TERMINATING`
//!   or `FWP_ACTION_CALLOUT_UNKNOWN` are treated as `FWP_ACTION_BLOCK` and filters with an action
//!   type of `FWP_ACTION_CALLOUT_INSPECTION` are ignored"
//!   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutadd0>,
//!   Remarks). A committed terminating filter at ALE_AUTH_CONNECT or STREAM without its callout
//!   would block every outbound connection or every TCP stream of the machine.
//! - So every run-time registration completes before the commit makes any filter live: there is
//!   no instant at which a live filter of ours names an unregistered callout. Registering right
//!   before the matching `FwpmCalloutAdd0` (rather than all of them before the engine is opened)
//!   keeps each run-time callout paired with its management object and lets one unwind path
//!   handle every failure; Microsoft's `inspect` and `stmedit` samples register inside their
//!   transaction the same way (and call `FwpsCalloutUnregisterById` themselves when a later add
//!   fails: the abort does not do it for them).
//! - Because the abort does not undo run-time registrations, the unwind unregisters every callout
//!   that `FwpsCalloutRegister3` accepted, in reverse order, after the abort. None of them can
//!   have a flow context then (no filter of ours was ever committed, so no classify ran), so
//!   `STATUS_DEVICE_BUSY` is not expected there; any failure is reported in the error's
//!   [`UnwindReport`], because "a callout driver cannot be unloaded until all of the callouts that
//!   were previously registered with the filter engine have been successfully unregistered"
//!   (<https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0>).
//!
//! ## Unwinding a failed registration
//! Whatever step fails, exactly what was done is undone, newest first: `FwpmTransactionAbort0`
//! (if the transaction was begun; also after a failed commit, whose state the documentation
//! leaves open — an abort without a transaction just fails with `FWP_E_NO_TXN_IN_PROGRESS`,
//! <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmtransactionabort0>),
//! then `FwpsCalloutUnregisterById0` for every registered callout in reverse order, then
//! `FwpmEngineClose0` (if the engine was opened; closing a dynamic session also deletes anything
//! an unsuccessful abort might have left, see step 1).
//!
//! # Teardown ([`unregister`], ARCHITECTURE.md S5)
//! 1. `FwpmFilterDeleteById0` for every filter, newest first: filters go first because
//!    `FwpsCalloutUnregisterById0` "succeeds even if there are filters in the filter engine that
//!    specify the callout", after which terminating filters act as BLOCK (its Remarks, cited
//!    above). `STATUS_FWP_FILTER_NOT_FOUND` counts as deleted.
//! 2. `FwpmEngineClose0`: ends the dynamic session, which deletes whatever step 1 could not plus
//!    the callout objects, the sublayer and the provider.
//! 3. `FwpsCalloutUnregisterById0` for every callout, newest first. `STATUS_DEVICE_BUSY` means
//!    flows still carry contexts of this callout: "A callout driver must call the
//!    `FwpsFlowRemoveContext0` function for each of these data flows to remove the associated
//!    context. After the context has been successfully removed from each of these data flows,
//!    the callout driver must call the `FwpsCalloutUnregisterById0` function again" (same page).
//!    [`unregister`] calls the caller's
//!    `remove_flow_contexts` closure and retries, at most `max_busy_retries` times per callout.
//!    `STATUS_FWP_CALLOUT_NOT_FOUND` counts as unregistered.
//!
//! Pending operations (S1/S7) and the driver-wide rundown wait are the shell's job, around this.
//!
//! # The plan ([`TOLLGATE_PLAN`]) and why
//! - **Layers:** ALE_AUTH_CONNECT, ALE_RESOURCE_ASSIGNMENT (pend and decide), ALE_ENDPOINT_CLOSURE,
//!   ALE_RESOURCE_RELEASE (teardown signals, ARCHITECTURE.md §3), ALE_FLOW_ESTABLISHED (associates
//!   the stream flow context) and STREAM, each for IPv4 and IPv6: twelve callouts, one filter each.
//! - **Filter actions** (meaning of each type:
//!   <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_action0>: a
//!   terminating callout must return PERMIT or BLOCK, anything else counts as BLOCK; an inspection
//!   callout must return CONTINUE, anything else counts as CONTINUE):
//!   - `FWP_ACTION_CALLOUT_TERMINATING` at ALE_AUTH_CONNECT and ALE_RESOURCE_ASSIGNMENT: these
//!     callouts decide (pend, then permit/block);
//!   - `FWP_ACTION_CALLOUT_INSPECTION` at ALE_ENDPOINT_CLOSURE, ALE_RESOURCE_RELEASE and
//!     ALE_FLOW_ESTABLISHED: they only observe (teardown signals, flow-context association) and
//!     must never be able to block traffic by mistake;
//!   - `FWP_ACTION_CALLOUT_TERMINATING` at STREAM: the stream shim always sets `actionType`
//!     explicitly (S6) and may drop a connection by policy, which an inspection callout could not
//!     express. Microsoft's `stmedit` sample uses the same combination (terminating stream filter
//!     without conditions + `FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW`); its comments state that the
//!     conditional flag keeps the callout from being invoked for flows without a context.
//! - **Callout flags** (<https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_callout3>):
//!   - `FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW` on the STREAM callouts only: "the filter engine calls
//!     the callout driver's classifyFn3 callout function only if there is a context associated
//!     with the data flow". The ALE_FLOW_ESTABLISHED callout associates that context with
//!     `FwpsFlowAssociateContext0(flowHandle, FWPS_LAYER_STREAM_Vx, <stream callout id>, ctx)`,
//!     so only flows Tollgate chose reach the stream classify. The ALE callouts must see every
//!     connection and carry no flags.
//!   - A flowDeleteFn on the STREAM callouts only: `FwpsFlowAssociateContext0` returns
//!     `STATUS_INVALID_PARAMETER` unless "the callout specified by the calloutID parameter" has a
//!     flowDeleteFn registered
//!     (<https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0>).
//!     The flow-established callout associates no context with its own layer, so it needs none;
//!     [`Plan::validate`] rejects `CONDITIONAL_ON_FLOW` without a flowDeleteFn (such a callout
//!     could never be invoked).
//!   - `FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION` on none: it lets a callout "perform dynamic
//!     stream inspection of data flows at stream level", i.e. join streams already flowing when it
//!     was added. Tollgate's stream callout is conditional on a flow context that only the
//!     flow-established classify of a *new* flow creates, so pre-existing streams never reach it
//!     anyway, and the core's stream parser expects to see a stream from its first byte.
//! - **Weights:** Tollgate uses its own sublayer, so that its filters are never skipped by a
//!   higher-weight filter of another provider in a shared sublayer (within a sublayer only the
//!   first matching terminating filter decides; every sublayer is evaluated:
//!   <https://learn.microsoft.com/windows/win32/fwp/filter-arbitration>; same-weight filters of
//!   different callouts in one sublayer "may" cause problems:
//!   <https://learn.microsoft.com/windows/win32/fwp/filter-weight-assignment>). The sublayer
//!   weight [`TOLLGATE_SUBLAYER_WEIGHT`] is low (0x0100): "higher-weighted sublayers are invoked
//!   first" (<https://learn.microsoft.com/windows/win32/api/fwpmtypes/ns-fwpmtypes-fwpm_sublayer0>),
//!   so hard permits/blocks of the system's and other providers' sublayers arrive first (as a
//!   cleared `FWPS_RIGHT_ACTION_WRITE`) and Tollgate does not ask the user about traffic whose fate
//!   is already sealed. Each filter's weight is `FWP_EMPTY` (BFE generates it,
//!   filter-weight-assignment page): every layer has exactly one Tollgate filter, so the weight
//!   inside the sublayer decides nothing.
//! - **Keys:** fixed GUIDs (generated once, see `plan.rs`), so that the objects can be recognised
//!   with `netsh wfp show state` and a second instance fails cleanly with
//!   `STATUS_FWP_ALREADY_EXISTS` instead of registering twice.

/// Encodes an ASCII string literal as a NUL-terminated UTF-16 [`WideStr`] at compile time.
///
/// A non-ASCII or NUL byte in the literal is a compile-time error (the `const` assertion fails),
/// never a run-time one.
macro_rules! wide {
    ($s:literal) => {{
        const UNITS: [u16; $s.len() + 1] = $crate::registration::spec::ascii_to_utf16z($s);
        const _: () = assert!(
            $crate::registration::WideStr::new(&UNITS).is_some(),
            "wide!: the literal must be ASCII without NUL"
        );
        const WIDE: $crate::registration::WideStr = match $crate::registration::WideStr::new(&UNITS) {
            Some(wide) => wide,
            None => $crate::registration::WideStr::EMPTY,
        };
        WIDE
    }};
}

mod fwpm;
#[cfg(windows)]
mod kernel;
mod plan;
mod sequencer;
mod spec;

pub use fwpm::{CalloutFunctionTable, CalloutFunctions};
#[cfg(windows)]
pub use kernel::{KernelFilterEngine, KernelSession};
pub use plan::{TOLLGATE_PLAN, TOLLGATE_PROVIDER_KEY, TOLLGATE_SUBLAYER_KEY, TOLLGATE_SUBLAYER_WEIGHT};
pub use sequencer::{
    CalloutFailure, CalloutFailures, FilterEngine, RegisteredCallout, Registration, RegistrationError,
    RegistrationStep, UnregisterError, UnwindReport, register, unregister,
};
pub use spec::{
    CALLOUT_COUNT, CalloutSpec, ClassifyKind, FilterAction, FilterSpec, FilterWeight, Guid, Plan, PlanError,
    ProviderSpec, SessionSpec, SublayerSpec, TollgateLayer, WideStr,
};
