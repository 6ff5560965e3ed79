//! The current IRQL ([`current_irql`]), and [`DispatchGuard`]: DISPATCH_LEVEL for a scope. How and
//! why raising and lowering are done the way they are is documented on [`DispatchGuard`].
//!
//! The asm is compiled for `x86_64` Windows only. On the Linux host (which builds this crate only
//! so that `cargo clippy --workspace` covers it, and never calls it) the IRQL is reported as
//! PASSIVE_LEVEL and [`DispatchGuard`] changes nothing.

use core::marker::PhantomData;

use crate::ntoskrnl::KIRQL;

/// The current IRQL: wdm.h's inline `KeGetCurrentIrql` on AMD64, a read of CR8.
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kegetcurrentirql>
///
/// IRQL: any. On the host, always PASSIVE_LEVEL.
#[must_use]
#[inline]
pub fn current_irql() -> KIRQL {
    imp::current_irql()
}

/// Keeps the current thread at DISPATCH_LEVEL while it lives, then restores the IRQL it found.
///
/// Created by [`DispatchGuard::raise`] (the core gets one from
/// [`tollgate_core::Platform::raise_to_dispatch`]). If the thread is already at DISPATCH_LEVEL or
/// above, the guard changes nothing and restores nothing: it never lowers the IRQL below the one it
/// was created at. Drop guards in the reverse order of creation (as scopes do); forgetting one
/// (`mem::forget`) leaves the CPU at DISPATCH_LEVEL, which the kernel punishes with a bug check
/// later.
///
/// Not `Send`: an IRQL belongs to the processor the thread runs on, and must be restored there.
///
/// # How raising and lowering work on x64 (and why not a bare CR8 write by default)
/// On AMD64 the IRQL *is* the task-priority register, CR8. wdm.h reads it inline in every
/// configuration (`KeGetCurrentIrql` is `CFORCEINLINE` `(KIRQL)ReadCR8()`), and [`current_irql`]
/// does the same with one `mov` from CR8.
///
/// Raising and lowering are different: for `NTDDI_VERSION >= NTDDI_WIN8` driver builds (`_NTDDK_`,
/// `_NTIFS_`, ... defined), wdm.h declares `KfRaiseIrql` and `KeLowerIrql` as `NTKERNELAPI`
/// imports from ntoskrnl.exe, and `KeRaiseIrqlToDpcLevel()` is an inline call of
/// `KfRaiseIrql(DISPATCH_LEVEL)`. Only for older targets, or when the driver defines
/// `NT_INLINE_IRQL`, are they the inline CR8 writes `KzRaiseIrql` / `KzLowerIrql`. So a C driver
/// built today with the WDK calls the exports, which is also where Driver Verifier can watch the
/// IRQL changes (the IrqlKeRaiseLower DDI compliance rules). This crate does the same by default
/// ([`crate::ntoskrnl::KfRaiseIrql`], [`crate::ntoskrnl::KeLowerIrql`]); the `inline-irql`
/// feature switches to the inline CR8 writes, the header's `NT_INLINE_IRQL` behaviour.
#[must_use = "the IRQL is restored when the guard is dropped"]
pub struct DispatchGuard {
    /// The IRQL to restore on drop; `None` when nothing was raised.
    restore: Option<KIRQL>,
    /// Neither `Send` nor `Sync`.
    _not_send: PhantomData<*const ()>,
}

impl DispatchGuard {
    /// Raises to DISPATCH_LEVEL unless the thread is already there or above
    /// (`KeRaiseIrqlToDpcLevel`, which wdm.h defines as `KfRaiseIrql(DISPATCH_LEVEL)`).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keraiseirqltodpclevel>
    ///
    /// IRQL: any (`KeRaiseIrqlToDpcLevel` itself requires <= DISPATCH_LEVEL; above that this does
    /// nothing instead of bug-checking).
    pub fn raise() -> DispatchGuard {
        let restore = imp::raise_to_dispatch();
        DispatchGuard { restore, _not_send: PhantomData }
    }

    /// Whether this guard raised the IRQL (and will lower it again on drop).
    ///
    /// IRQL: any.
    #[must_use]
    pub fn raised(&self) -> bool {
        self.restore.is_some()
    }
}

impl Drop for DispatchGuard {
    /// Restores the IRQL the guard found (`KeLowerIrql`). IRQL: DISPATCH_LEVEL (the guard's).
    fn drop(&mut self) {
        if let Some(previous) = self.restore.take() {
            imp::lower(previous);
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "windows"))]
mod imp {
    use core::arch::asm;

    use crate::ntoskrnl::{DISPATCH_LEVEL, KIRQL};

    /// CR8 bits 3:0 are the task-priority class, i.e. the IRQL; bits 63:4 are reserved (zero).
    const CR8_TPR_MASK: u64 = 0xF;

    /// `KeGetCurrentIrql` on AMD64: `(KIRQL)ReadCR8()`.
    #[inline]
    pub(super) fn current_irql() -> KIRQL {
        let cr8: u64;
        // SAFETY: reading CR8 is allowed at CPL 0, where a kernel driver always runs; it has no
        // side effects and touches no memory or stack, and leaves the flags alone. (No `nomem`, so
        // the compiler also treats it as a barrier, as MSVC does `__readcr8`.)
        unsafe { asm!("mov {}, cr8", out(reg) cr8, options(nostack, preserves_flags)) };
        // Lossless: the mask leaves 4 bits.
        (cr8 & CR8_TPR_MASK) as KIRQL
    }

    /// Raises to DISPATCH_LEVEL if below it; returns the IRQL to restore, or `None` if nothing was
    /// raised.
    pub(super) fn raise_to_dispatch() -> Option<KIRQL> {
        let current = current_irql();
        if current >= DISPATCH_LEVEL {
            return None;
        }
        Some(raise_from_below_dispatch(current))
    }

    /// `KfRaiseIrql(DISPATCH_LEVEL)`, the ntoskrnl export (wdm.h, Win8+ driver builds).
    #[cfg(not(feature = "inline-irql"))]
    fn raise_from_below_dispatch(_current: KIRQL) -> KIRQL {
        // SAFETY: the caller saw the IRQL below DISPATCH_LEVEL, and nothing can change this thread's
        // IRQL in between (an interrupt restores it before returning; a preempted thread resumes at
        // its own), so DISPATCH_LEVEL >= current IRQL, KfRaiseIrql's precondition. The
        // returned IRQL goes into a `DispatchGuard`, which is not `Send` and lowers back to it on
        // this thread.
        unsafe { crate::ntoskrnl::KfRaiseIrql(DISPATCH_LEVEL) }
    }

    /// `KzRaiseIrql(DISPATCH_LEVEL)` inline (wdm.h with `NT_INLINE_IRQL`): write CR8.
    #[cfg(feature = "inline-irql")]
    fn raise_from_below_dispatch(current: KIRQL) -> KIRQL {
        // SAFETY: writing CR8 is allowed at CPL 0. The value (DISPATCH_LEVEL) is above `current`,
        // so this only raises: it masks DPC/dispatch interrupts on this CPU, which is the intent,
        // and the `DispatchGuard` holding `current` writes it back on this thread. No `nomem`: the
        // asm is a compiler barrier, so no memory access moves across the raise.
        unsafe { asm!("mov cr8, {}", in(reg) u64::from(DISPATCH_LEVEL), options(nostack, preserves_flags)) };
        current
    }

    /// `KeLowerIrql(previous)`, the ntoskrnl export (wdm.h, Win8+ driver builds).
    #[cfg(not(feature = "inline-irql"))]
    pub(super) fn lower(previous: KIRQL) {
        // SAFETY: `previous` is what the matching `KfRaiseIrql` returned on this thread (the guard
        // that holds it is not `Send`), and it is below DISPATCH_LEVEL, the IRQL that raise set.
        unsafe { crate::ntoskrnl::KeLowerIrql(previous) }
    }

    /// `KzLowerIrql(previous)` inline (wdm.h with `NT_INLINE_IRQL`): write CR8.
    #[cfg(feature = "inline-irql")]
    pub(super) fn lower(previous: KIRQL) {
        // SAFETY: writing CR8 is allowed at CPL 0. `previous` is the IRQL this thread had before
        // the matching raise (the guard is not `Send`), so this restores it and never goes below
        // it. A DPC requested while raised is delivered by the local APIC once the priority drops.
        // No `nomem`: the asm is a compiler barrier.
        unsafe { asm!("mov cr8, {}", in(reg) u64::from(previous), options(nostack, preserves_flags)) };
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "windows")))]
mod imp {
    //! Host stand-in: no kernel, no IRQL. Exists only so host builds of the workspace compile.

    use crate::ntoskrnl::{KIRQL, PASSIVE_LEVEL};

    #[inline]
    pub(super) fn current_irql() -> KIRQL {
        PASSIVE_LEVEL
    }

    #[inline]
    pub(super) fn raise_to_dispatch() -> Option<KIRQL> {
        None
    }

    #[inline]
    pub(super) fn lower(_previous: KIRQL) {}
}
