//! Simulated bugchecks (where Windows would crash) and contract hazards (where it would misbehave).

use std::fmt;

/// A Windows stop code the model can raise, with its documented number.
///
/// Pages: <https://learn.microsoft.com/en-us/windows-hardware/drivers/debugger/bug-check-code-reference2>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopCode {
    /// 0x0A: a wait (or pageable access) above the allowed IRQL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/debugger/bug-check-0xa--irql-not-less-or-equal>
    IrqlNotLessOrEqual,
    /// 0x50: a completion context whose TCP endpoint was already freed is dereferenced.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/debugger/bug-check-0x50--page-fault-in-nonpaged-area>
    PageFaultInNonpagedArea,
    /// 0xCE: the driver unloaded with pended operations, or WFP called into an unloaded driver.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/debugger/bug-check-0xce--driver-unloaded-without-cancelling-pending-operations>
    DriverUnloadedWithoutCancellingPendingOperations,
    /// 0xD1: stream data touched after classifyFn returned, in
    /// `NETIO!StreamInvokeCalloutAndNormalizeAction` (the crash of ARCHITECTURE.md §1).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/debugger/bug-check-0xd1--driver-irql-not-less-or-equal>
    DriverIrqlNotLessOrEqual,
    /// 0x139: a completion context completed twice (its list entry unlinked twice).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/debugger/bug-check-0x139--kernel-security-check-failure>
    KernelSecurityCheckFailure,
}

impl StopCode {
    /// The bugcheck code.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            StopCode::IrqlNotLessOrEqual => 0x0A,
            StopCode::PageFaultInNonpagedArea => 0x50,
            StopCode::DriverUnloadedWithoutCancellingPendingOperations => 0xCE,
            StopCode::DriverIrqlNotLessOrEqual => 0xD1,
            StopCode::KernelSecurityCheckFailure => 0x139,
        }
    }

    /// The symbolic name WinDbg prints.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            StopCode::IrqlNotLessOrEqual => "IRQL_NOT_LESS_OR_EQUAL",
            StopCode::PageFaultInNonpagedArea => "PAGE_FAULT_IN_NONPAGED_AREA",
            StopCode::DriverUnloadedWithoutCancellingPendingOperations => {
                "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS"
            }
            StopCode::DriverIrqlNotLessOrEqual => "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
            StopCode::KernelSecurityCheckFailure => "KERNEL_SECURITY_CHECK_FAILURE",
        }
    }
}

/// The machine stopped: what WinDbg's `!analyze` would show, in the model's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BugCheck {
    /// The stop code.
    pub stop: StopCode,
    /// The faulting routine as the crash dump names it.
    pub faulting_routine: &'static str,
    /// What the driver did.
    pub cause: String,
    /// Model time of the crash, in milliseconds.
    pub at_millis: u64,
}

impl fmt::Display for BugCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "*** STOP 0x{:08X} ({}) in {} at t={} ms: {}",
            self.stop.code(),
            self.stop.name(),
            self.faulting_routine,
            self.at_millis,
            self.cause
        )
    }
}

/// A documented contract the driver broke without crashing the machine (the kind of bug Driver
/// Verifier or a hung connection would reveal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hazard {
    /// Which contract (S1–S9 of ARCHITECTURE.md, or the documented rule).
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}
