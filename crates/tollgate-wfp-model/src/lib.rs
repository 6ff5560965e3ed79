//! A model of the Windows Filtering Platform engine, for running Tollgate's real driver logic (and
//! a deliberately naive driver) on a Linux host.
//!
//! We cannot boot Windows here, so this model is how every test and `tollgatectl simulate`
//! exercise the driver. It follows the documented semantics and, where Windows would crash, it
//! stops with a simulated [`BugCheck`] naming the stop code, the faulting routine and the cause.
//!
//! # The rules it follows (each cited again beside the code that implements it)
//!
//! | Rule | Source |
//! |---|---|
//! | A connection is classified at ALE_RESOURCE_ASSIGNMENT (bind), then ALE_AUTH_CONNECT, then ALE_FLOW_ESTABLISHED; TCP data then reaches the STREAM layer; teardown indicates ALE_ENDPOINT_CLOSURE (for an endpoint that had ALE_AUTH_CONNECT) and ALE_RESOURCE_RELEASE (for one that had ALE_RESOURCE_ASSIGNMENT), matched by `FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE` | [ALE endpoint lifetime management](https://learn.microsoft.com/en-us/windows-hardware/drivers/network/ale-endpoint-lifetime-management), [ALE layers](https://learn.microsoft.com/en-us/windows/win32/fwp/ale-layers) |
//! | `FwpsPendOperation0` only at pendable ALE layers, only within the classify whose completion handle it gets; `STATUS_FWP_CANNOT_PEND` in a reauthorization | [FwpsPendOperation0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0) |
//! | A pending classify sets BLOCK + ABSORB; completion with `FwpsCompleteOperation0` makes the engine reauthorize the connection (`FWP_CONDITION_FLAG_IS_REAUTHORIZE`) | [FwpsCompleteOperation0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0), [Pending a classify](https://learn.microsoft.com/en-us/windows-hardware/drivers/network/pending-a-classify) |
//! | `FwpsAcquireClassifyHandle0` / `FwpsPendClassify0` / `FwpsCompleteClassify0` / `FwpsReleaseClassifyHandle0`: a pended classify is completed asynchronously and every handle released | [FwpsPendClassify0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendclassify0), [FwpsCompleteClassify0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteclassify0) |
//! | `FwpsFlowAssociateContext0` needs a flowDeleteFn and returns `STATUS_OBJECT_NAME_EXISTS` for a second context; `FwpsFlowRemoveContext0` returns SUCCESS (flowDeleteFn ran) or PENDING (it will run later); flowDeleteFn fires at teardown, with or without a classify first | [FwpsFlowAssociateContext0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0), [FwpsFlowRemoveContext0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowremovecontext0), [flowDeleteFn](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_flow_delete_notify_fn0) |
//! | `FwpsCalloutUnregisterById0` returns `STATUS_DEVICE_BUSY` while flow contexts exist; a filter whose callout is unregistered acts as BLOCK | [FwpsCalloutUnregisterById0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0) |
//! | classifyFn and flowDeleteFn run at IRQL ≤ DISPATCH_LEVEL (the model always uses DISPATCH); waits are legal only at ≤ APC_LEVEL | [classifyFn](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_classify_fn3), [ExWaitForRundownProtectionRelease](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exwaitforrundownprotectionrelease) |
//! | Stream: `layerData` / `streamData` may be NULL, the NBL chain may be empty or chained; the data is valid only during classifyFn; a conditional-on-flow callout is called only for flows with its context; `actionType` and `streamAction` must be set; no NEED_MORE_DATA with `NO_MORE_DATA` | [FWPS_STREAM_CALLOUT_IO_PACKET0](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_), [Stream inspection](https://learn.microsoft.com/en-us/windows-hardware/drivers/network/stream-inspection), [FWPS_CALLOUT3](https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_callout3_) |
//!
//! # The hazard oracles (where the model stops the machine)
//!
//! | Driver bug | Stop code | Faulting routine |
//! |---|---|---|
//! | `FwpsCompleteOperation0` after the endpoint's teardown freed it | 0x50 PAGE_FAULT_IN_NONPAGED_AREA | `tcpip!TcpCompletePendedConnect` |
//! | `FwpsCompleteOperation0` twice on one context | 0x139 KERNEL_SECURITY_CHECK_FAILURE | `NETIO!FwppCompleteOperation` |
//! | stream data touched after classifyFn returned | 0xD1 DRIVER_IRQL_NOT_LESS_OR_EQUAL | `NETIO!StreamInvokeCalloutAndNormalizeAction` |
//! | a wait at DISPATCH_LEVEL | 0x0A IRQL_NOT_LESS_OR_EQUAL | the waiting routine |
//! | unload with pends outstanding; a classify or flowDeleteFn into an unloaded driver | 0xCE DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS | `nt!MiUnloadSystemImage`, `NETIO!ProcessCallout` |
//!
//! Contract violations that would not crash at once (pend without ABSORB, stream classify without
//! an action, NEED_MORE_DATA with NO_MORE_DATA, a classify handle released while pended) are
//! recorded as [`Hazard`]s; what is still held at the end (pends, classify handles, flow contexts,
//! registered callouts) is reported as a leak.
//!
//! # What is our assumption, not documented
//!
//! - **The endpoint is freed right after its last teardown notification returns**, and WFP does
//!   not cancel a pended connect by itself at teardown. Both are the worst case the crash report
//!   describes (ARCHITECTURE.md §1): nothing documents either way.
//! - **Endpoint handle values are reused** once their endpoint is freed (they are pool addresses).
//! - **`FwpsPendClassify0` is legal at ALE_RESOURCE_RELEASE** as at ALE_ENDPOINT_CLOSURE.
//! - **Completing a pended ALE_RESOURCE_ASSIGNMENT reauthorizes it** as for ALE_AUTH_CONNECT.
//! - **Teardown order**: closure, then flowDeleteFn (synchronous or deferred, seeded), then
//!   resource release. A graceful close first indicates a disconnect on the stream.
//! - **Stop codes** for double completion (0x139) and for completing an unknown context (0x50) are
//!   our reading of what corrupting the engine's list and dereferencing garbage would give.
//! - **A single simulated processor** runs the callouts; races at instruction granularity are the
//!   loom models' job (`crates/tollgate-core/tests/loom_claim.rs`), not this model's. Two moments
//!   that need a second processor can be asked for explicitly ([`faults`]: a teardown while a
//!   completion returns, a teardown in the middle of unload).
//!
//! # Fault injection
//!
//! [`Engine::set_fault_plan`] makes the Nth fallible `Fwps*` call fail with a status its
//! documentation gives; [`faults`] lists the calls and statuses.

pub mod bugcheck;
pub mod callout;
pub mod drivers;
pub mod engine;
pub mod faults;
pub mod irql;
pub mod platform;

pub use bugcheck::{BugCheck, Hazard, StopCode};
pub use callout::{
    Action, CalloutDriver, ClassifyCall, ClassifyOut, ConnectionValues, FilterAction, Layer, Protocol, StreamAction,
    StreamPacket,
};
pub use engine::{
    CloseKind, ConnId, Engine, EngineConfig, EngineCounters, EngineReport, Outcome, Phase, StreamShape,
    connection_values,
};
pub use faults::{FaultPlan, FwpsCall, InjectedFault};
