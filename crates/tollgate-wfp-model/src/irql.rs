//! IRQL tracking for the simulated processor.
//!
//! Each OS thread that runs model code is one simulated processor with its own IRQL. The engine
//! raises to DISPATCH_LEVEL around every callout invocation (classifyFn and flowDeleteFn may run at
//! DISPATCH_LEVEL: <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_classify_fn3>,
//! <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_flow_delete_notify_fn0>);
//! the model always uses the highest documented IRQL, so a driver that would wait there is caught
//! on every run, not only on the runs where Windows happens to call it at DISPATCH.

use std::cell::Cell;

/// An interrupt request level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Irql {
    /// PASSIVE_LEVEL (0).
    Passive,
    /// APC_LEVEL (1).
    Apc,
    /// DISPATCH_LEVEL (2).
    Dispatch,
}

thread_local! {
    static CURRENT: Cell<Irql> = const { Cell::new(Irql::Passive) };
}

/// The IRQL of the calling simulated processor.
#[must_use]
pub fn current() -> Irql {
    CURRENT.with(Cell::get)
}

/// Raises (never lowers) the IRQL until the guard drops (`KeRaiseIrql` / `KeLowerIrql`).
#[must_use = "the IRQL is restored when the guard drops"]
pub fn raise(to: Irql) -> IrqlGuard {
    let previous = current();
    CURRENT.with(|cell| cell.set(previous.max(to)));
    IrqlGuard { previous }
}

/// Restores the previous IRQL on drop.
#[derive(Debug)]
pub struct IrqlGuard {
    previous: Irql,
}

impl Drop for IrqlGuard {
    fn drop(&mut self) {
        CURRENT.with(|cell| cell.set(self.previous));
    }
}
