//! Fault injection: the engine can make the Nth fallible `Fwps*` call a driver makes fail, with a
//! status the call's documentation gives, and can run a teardown "on another processor" at two
//! moments a single simulated processor never reaches by itself.
//!
//! # Which calls, and how they fail
//!
//! Every `Fwps*` call that returns an NTSTATUS is counted, in the order the driver makes it, from
//! the engine's creation on; [`Engine::set_fault_plan`](crate::Engine::set_fault_plan) picks which
//! of them fail. A failed call has no effect at all (nothing pended, acquired, associated or
//! removed), as its documentation implies for an error. The `void` calls
//! (`FwpsCompleteOperation0`, `FwpsCompleteClassify0`, `FwpsReleaseClassifyHandle0`,
//! `FwpsCopyStreamDataToBuffer0`) cannot fail, so they are not counted.
//!
//! | call | status of an injected failure | documented return values |
//! |---|---|---|
//! | `FwpsCalloutRegister3` | `STATUS_INSUFFICIENT_RESOURCES` | SUCCESS, `STATUS_FWP_ALREADY_EXISTS`, "other status codes: an error occurred" ([FwpsCalloutRegister3](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutregister3)) |
//! | `FwpsPendOperation0` | `STATUS_FWP_TCPIP_NOT_READY` | SUCCESS, `STATUS_FWP_CANNOT_PEND`, `STATUS_FWP_NULL_POINTER`, `STATUS_FWP_TCPIP_NOT_READY` ("the TCP/IP network stack is not ready"), other ([FwpsPendOperation0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0)) |
//! | `FwpsAcquireClassifyHandle0` | `STATUS_INSUFFICIENT_RESOURCES` | SUCCESS, "other status codes: an error occurred" ([FwpsAcquireClassifyHandle0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsacquireclassifyhandle0)) |
//! | `FwpsPendClassify0` | `STATUS_INSUFFICIENT_RESOURCES` | SUCCESS, "other status codes: an error occurred" ([FwpsPendClassify0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendclassify0)) |
//! | `FwpsFlowAssociateContext0` | `STATUS_INSUFFICIENT_RESOURCES` | SUCCESS, `STATUS_INVALID_PARAMETER`, `STATUS_OBJECT_NAME_EXISTS`, other ([FwpsFlowAssociateContext0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0)) |
//! | `FwpsFlowRemoveContext0` | `STATUS_INSUFFICIENT_RESOURCES` (the context stays associated) | SUCCESS, `STATUS_UNSUCCESSFUL`, `STATUS_PENDING`, other ([FwpsFlowRemoveContext0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowremovecontext0)) |
//!
//! The Fwpm* calls of the kernel's registration (engine open, transaction, provider, sublayer,
//! callouts, filters: 41 calls) are failed one by one by the fake engine of
//! `crates/tollgate-callouts/tests/registration.rs`; the model's registration is the six
//! `FwpsCalloutRegister3` calls above.
//!
//! # The second processor
//!
//! The model runs every callout on one simulated processor, so two moments that need a second one
//! never happen by themselves; a test can ask for them:
//! - [`Engine::race_close_during_completion`](crate::Engine::race_close_during_completion): the
//!   connection is torn down while the driver's `FwpsCompleteOperation0` for it is returning (after
//!   WFP took the completion, before the driver's completion path finished). Tollgate's closure
//!   classify then finds the pend *Completing* and pends the notification with
//!   `FwpsAcquireClassifyHandle0` + `FwpsPendClassify0` — the only way those calls are reached.
//! - [`Engine::race_close_after_filter_deletes`](crate::Engine::race_close_after_filter_deletes):
//!   the connection is torn down right after the driver's Nth `FwpmFilterDeleteById0`, i.e. in
//!   the middle of its unload.

use tollgate_wfp_sys::{NTSTATUS, STATUS_FWP_TCPIP_NOT_READY, STATUS_INSUFFICIENT_RESOURCES};

/// A fallible `Fwps*` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FwpsCall {
    /// `FwpsCalloutRegister3`.
    CalloutRegister,
    /// `FwpsPendOperation0`.
    PendOperation,
    /// `FwpsAcquireClassifyHandle0`.
    AcquireClassifyHandle,
    /// `FwpsPendClassify0`.
    PendClassify,
    /// `FwpsFlowAssociateContext0`.
    FlowAssociateContext,
    /// `FwpsFlowRemoveContext0`.
    FlowRemoveContext,
}

impl FwpsCall {
    /// Every fallible call.
    pub const ALL: [FwpsCall; 6] = [
        FwpsCall::CalloutRegister,
        FwpsCall::PendOperation,
        FwpsCall::AcquireClassifyHandle,
        FwpsCall::PendClassify,
        FwpsCall::FlowAssociateContext,
        FwpsCall::FlowRemoveContext,
    ];

    /// The status an injected failure returns (see the module docs for the source of each).
    #[must_use]
    pub const fn failure_status(self) -> NTSTATUS {
        match self {
            FwpsCall::PendOperation => STATUS_FWP_TCPIP_NOT_READY,
            FwpsCall::CalloutRegister
            | FwpsCall::AcquireClassifyHandle
            | FwpsCall::PendClassify
            | FwpsCall::FlowAssociateContext
            | FwpsCall::FlowRemoveContext => STATUS_INSUFFICIENT_RESOURCES,
        }
    }

    /// The function's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            FwpsCall::CalloutRegister => "FwpsCalloutRegister3",
            FwpsCall::PendOperation => "FwpsPendOperation0",
            FwpsCall::AcquireClassifyHandle => "FwpsAcquireClassifyHandle0",
            FwpsCall::PendClassify => "FwpsPendClassify0",
            FwpsCall::FlowAssociateContext => "FwpsFlowAssociateContext0",
            FwpsCall::FlowRemoveContext => "FwpsFlowRemoveContext0",
        }
    }
}

/// Which fallible calls fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultPlan {
    /// None (the default).
    #[default]
    Never,
    /// The Nth fallible call (1-based, counted from the engine's creation) and no other.
    Nth(u64),
    /// The Nth fallible call and every one after it (resources stay short).
    FromNth(u64),
    /// As `FromNth`, except calls of one kind, which succeed (e.g. `FwpsFlowRemoveContext0`:
    /// nothing can unload cleanly if it never succeeds again).
    FromNthExcept(u64, FwpsCall),
    /// The Nth call of one kind (1-based, counting only that kind) and no other.
    NthOf(FwpsCall, u64),
}

/// One injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectedFault {
    /// Its position among all fallible calls (1-based).
    pub index: u64,
    /// Which call.
    pub call: FwpsCall,
    /// What it returned.
    pub status: NTSTATUS,
}

/// The engine's record of fallible calls and the plan.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) plan: FaultPlan,
    /// Fallible calls so far.
    pub(crate) total: u64,
    /// Per kind, in the order of [`FwpsCall::ALL`].
    pub(crate) per_kind: [u64; 6],
    /// Every fallible call in order, once a plan was set (a long simulation keeps none).
    pub(crate) log: Option<Vec<FwpsCall>>,
    pub(crate) injected: Vec<InjectedFault>,
}

impl Faults {
    /// Records a call of `call`; `Some(status)` if the plan makes it fail.
    pub(crate) fn on_call(&mut self, call: FwpsCall) -> Option<NTSTATUS> {
        self.total = self.total.saturating_add(1);
        let index = self.total;
        let kind_index = FwpsCall::ALL.iter().position(|c| *c == call).unwrap_or(0);
        let of_kind = match self.per_kind.get_mut(kind_index) {
            Some(count) => {
                *count = count.saturating_add(1);
                *count
            }
            None => 0,
        };
        if let Some(log) = self.log.as_mut() {
            log.push(call);
        }
        let fail = match self.plan {
            FaultPlan::Never => false,
            FaultPlan::Nth(n) => index == n,
            FaultPlan::FromNth(n) => index >= n,
            FaultPlan::FromNthExcept(n, spared) => index >= n && call != spared,
            FaultPlan::NthOf(kind, n) => kind == call && of_kind == n,
        };
        fail.then(|| {
            let status = call.failure_status();
            self.injected.push(InjectedFault { index, call, status });
            status
        })
    }
}
