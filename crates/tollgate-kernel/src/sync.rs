//! [`KernelSpinLock`] (`KSPIN_LOCK`) and [`KernelRundown`] (`EX_RUNDOWN_REF`).

use core::cell::UnsafeCell;

use tollgate_core::{RawSpinLock, Rundown};

use crate::ntoskrnl::{self, EX_RUNDOWN_REF, KIRQL, KSPIN_LOCK};

/// An executive spin lock (`KSPIN_LOCK`) taken with `KeAcquireSpinLockRaiseToDpc` and released with
/// `KeReleaseSpinLock`.
///
/// Created unlocked and zeroed, which is what wdm.h's inline `KzInitializeSpinLock` does
/// (`*SpinLock = 0`). An unheld `KSPIN_LOCK` is a plain zero, so the value may move while nobody
/// holds it; while it is held, `&self` is borrowed and it cannot move. It must live in nonpaged
/// memory (it is taken at DISPATCH_LEVEL).
///
/// # Invariants
/// The cell is only ever passed to the two kernel routines above; Rust code never reads or writes
/// it after construction.
pub struct KernelSpinLock(UnsafeCell<KSPIN_LOCK>);

// SAFETY: a KSPIN_LOCK exists to be shared between processors: only the kernel's interlocked
// spin-lock routines touch the value behind the `UnsafeCell` (see # Invariants), never Rust code.
unsafe impl Sync for KernelSpinLock {}

// SAFETY: `KeAcquireSpinLockRaiseToDpc` spins until no other processor holds the lock and
// `KeReleaseSpinLock` releases it, so between `lock` returning and the matching `unlock` no other
// `lock` on the same lock returns (the kernel's guarantee). The acquire raises to DISPATCH_LEVEL
// and is callable at IRQL <= DISPATCH_LEVEL; it only spins, which is legal there.
unsafe impl RawSpinLock for KernelSpinLock {
    /// The IRQL before the acquire, which `unlock` restores.
    type Token = KIRQL;

    /// An unlocked lock (`KeInitializeSpinLock`'s zero). IRQL: any.
    fn new() -> Self {
        KernelSpinLock(UnsafeCell::new(0))
    }

    /// `KeAcquireSpinLockRaiseToDpc`: spins, returns at DISPATCH_LEVEL with the previous IRQL.
    /// IRQL: <= DISPATCH_LEVEL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquirespinlockraisetodpc>
    fn lock(&self) -> KIRQL {
        // SAFETY: the cell holds an initialised KSPIN_LOCK that lives (and cannot move) for as
        // long as `self` is borrowed; RawSpinLock's callers call `lock` at IRQL <= DISPATCH_LEVEL
        // and never while they hold this lock.
        unsafe { ntoskrnl::KeAcquireSpinLockRaiseToDpc(self.0.get()) }
    }

    /// `KeReleaseSpinLock`: releases and returns to `token`'s IRQL. IRQL: DISPATCH_LEVEL.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kereleasespinlock>
    unsafe fn unlock(&self, token: KIRQL) {
        // SAFETY: the caller holds the lock and `token` is the IRQL that the `lock` call which
        // acquired it returned (this method's contract), so we run at DISPATCH_LEVEL.
        unsafe { ntoskrnl::KeReleaseSpinLock(self.0.get(), token) }
    }
}

/// Driver-wide run-down protection over an `EX_RUNDOWN_REF`.
///
/// Created zeroed, which is the state `ExInitializeRundownProtection` leaves ("initializes this
/// count to zero"). It must not move after the first `try_acquire`: while a wait is in progress
/// the kernel keeps a pointer to a wait block in it, and holders find it by address. The core
/// receives it by value in `Core::new` and holds it in place from then on, and the shell keeps the
/// core in nonpaged pool (acquire and release happen at DISPATCH_LEVEL).
///
/// # Invariants
/// The cell is only ever passed to the `Ex*RundownProtection` routines; Rust code never reads or
/// writes it after construction.
pub struct KernelRundown(UnsafeCell<EX_RUNDOWN_REF>);

impl KernelRundown {
    /// A rundown in its initial state: nothing held, not run down. IRQL: any.
    #[must_use]
    pub const fn new() -> Self {
        KernelRundown(UnsafeCell::new(EX_RUNDOWN_REF::INITIALIZED))
    }
}

impl Default for KernelRundown {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: an EX_RUNDOWN_REF exists to be shared between threads: only the kernel's interlocked
// rundown routines touch the value behind the `UnsafeCell` (see # Invariants), never Rust code.
unsafe impl Sync for KernelRundown {}

// SAFETY: the `Ptr` member makes the union `!Send`, but it is never dereferenced by Rust code, and
// a value that can be moved (nothing held, no wait in progress: see the type's documentation) is
// just a count. The kernel routines may be called from any thread.
unsafe impl Send for KernelRundown {}

impl Rundown for KernelRundown {
    /// `ExAcquireRundownProtection`. IRQL: <= DISPATCH_LEVEL (nonpaged).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exacquirerundownprotection>
    fn try_acquire(&self) -> bool {
        // SAFETY: the cell holds an initialised EX_RUNDOWN_REF that stays in place (type docs);
        // the routine never waits, so it is legal at the core's IRQL (<= DISPATCH_LEVEL).
        unsafe { ntoskrnl::ExAcquireRundownProtection(self.0.get()) != 0 }
    }

    /// `ExReleaseRundownProtection`. IRQL: <= DISPATCH_LEVEL (nonpaged).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exreleaserundownprotection>
    fn release(&self) {
        // SAFETY: as in `try_acquire`; the core releases exactly the protections it acquired
        // (Rundown's contract).
        unsafe { ntoskrnl::ExReleaseRundownProtection(self.0.get()) }
    }

    /// `ExWaitForRundownProtectionRelease`. IRQL: PASSIVE_LEVEL (<= APC_LEVEL): it waits.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exwaitforrundownprotectionrelease>
    fn wait_for_release(&self) {
        // SAFETY: as in `try_acquire`; Rundown's contract has the core call this at PASSIVE_LEVEL
        // only, from the unload path, which holds no protection itself.
        unsafe { ntoskrnl::ExWaitForRundownProtectionRelease(self.0.get()) }
    }
}
