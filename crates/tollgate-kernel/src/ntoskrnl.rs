//! `extern "system"` declarations of the few ntoskrnl.exe exports [`crate::KernelPlatform`] calls,
//! and the wdm.h types they take.
//!
//! Declared by hand because wdk-sys cannot be built on our Linux machines (ARCHITECTURE.md §5). The
//! import is `raw-dylib` with `+verbatim`, exactly like tollgate-wfp-sys's fwpkclnt.sys imports: no
//! import library is needed and the import names `ntoskrnl.exe` (not `ntoskrnl.exe.dll`). It is
//! attached on Windows targets only, so host builds (which never call these) need nothing.
//!
//! Prototypes and IRQL annotations are transcribed from the x64 branch of wdm.h (WDK 10); every
//! function names its Microsoft documentation page. NTAPI and FASTCALL are both the one x64 calling
//! convention, which `extern "system"` is on x86_64 Windows (the crate refuses other Windows
//! architectures, see the crate documentation).
//!
//! # Functions that are *not* declared here
//! - `KeGetCurrentIrql`: on AMD64 wdm.h defines it `CFORCEINLINE` as `(KIRQL)ReadCR8()` in every
//!   configuration, so a C driver never imports it; [`crate::current_irql`] does the same read.
//! - `KeInitializeSpinLock` / `ExInitializeRundownProtection`: both set the value to zero (wdm.h's
//!   inline `KzInitializeSpinLock` is `*SpinLock = 0`; the ExInitializeRundownProtection page says
//!   it "initializes this count to zero"), so the wrappers are created zeroed.
//! - `KeQueryInterruptTime`: on AMD64 a macro reading `KUSER_SHARED_DATA`, not a function.
//!   [`KeQueryInterruptTimePrecise`] is used instead.

use core::ffi::c_void;
use core::mem::{align_of, size_of};

use tollgate_wfp_sys::NTSTATUS;

/// `KIRQL` (wdm.h: `typedef UCHAR KIRQL`): an interrupt request level.
pub type KIRQL = u8;

/// `KSPIN_LOCK` (wdm.h: `typedef ULONG_PTR KSPIN_LOCK`).
pub type KSPIN_LOCK = usize;

/// `KPROCESSOR_MODE` (wdm.h: `typedef CCHAR KPROCESSOR_MODE`).
pub type KPROCESSOR_MODE = i8;

/// `BOOLEAN` (ntdef.h: `typedef UCHAR BOOLEAN`). Non-zero is true.
pub type BOOLEAN = u8;

/// `FALSE` (ntdef.h).
pub const FALSE: BOOLEAN = 0;

/// `KernelMode` (wdm.h `MODE` enumeration).
pub const KernelMode: KPROCESSOR_MODE = 0;

/// `PASSIVE_LEVEL` (wdm.h, AMD64).
pub const PASSIVE_LEVEL: KIRQL = 0;
/// `APC_LEVEL` (wdm.h, AMD64).
pub const APC_LEVEL: KIRQL = 1;
/// `DISPATCH_LEVEL` (wdm.h, AMD64).
pub const DISPATCH_LEVEL: KIRQL = 2;

/// `EX_RUNDOWN_REF` (wdm.h): `struct { union { volatile ULONG_PTR Count; volatile PVOID Ptr; }; }`.
///
/// Opaque to drivers (only the `Ex*RundownProtection` routines touch it); zero is the initialised,
/// not-run-down state. Must be in nonpaged memory to be used at DISPATCH_LEVEL, and 8-byte aligned
/// on x64 (<https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exinitializerundownprotection>).
#[repr(C)]
#[derive(Clone, Copy)]
pub union EX_RUNDOWN_REF {
    /// `Count`: the reference count, shifted left by one, with bit 0 = `EX_RUNDOWN_ACTIVE`.
    pub Count: usize,
    /// `Ptr`: the wait block while a rundown is waiting.
    pub Ptr: *mut c_void,
}

impl EX_RUNDOWN_REF {
    /// The state `ExInitializeRundownProtection` leaves: a count of zero.
    pub const INITIALIZED: EX_RUNDOWN_REF = EX_RUNDOWN_REF { Count: 0 };
}

// Layout of the x64 header definitions (ULONG_PTR/PVOID are 8 bytes, UCHAR/CCHAR 1 byte).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<EX_RUNDOWN_REF>() == 8);
    assert!(align_of::<EX_RUNDOWN_REF>() == 8);
    assert!(size_of::<KSPIN_LOCK>() == 8);
    assert!(align_of::<KSPIN_LOCK>() == 8);
    assert!(size_of::<KIRQL>() == 1);
    assert!(size_of::<KPROCESSOR_MODE>() == 1);
    assert!(size_of::<BOOLEAN>() == 1);
    assert!(size_of::<NTSTATUS>() == 4);
};

#[cfg_attr(windows, link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
unsafe extern "system" {
    /// Acquires a spin lock, raising to DISPATCH_LEVEL; returns the IRQL before the call.
    ///
    /// IRQL: `<= DISPATCH_LEVEL` (wdm.h `_IRQL_requires_max_(DISPATCH_LEVEL)`, `_IRQL_raises_`).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquirespinlockraisetodpc>
    ///
    /// # Safety
    /// `SpinLock` must point to an initialised (zeroed) `KSPIN_LOCK` in nonpaged memory that the
    /// caller does not already hold, and stays valid until the matching [`KeReleaseSpinLock`].
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;

    /// Releases a spin lock and restores the IRQL its acquisition returned.
    ///
    /// IRQL: `DISPATCH_LEVEL` (wdm.h `_IRQL_requires_(DISPATCH_LEVEL)`), returns at `NewIrql`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kereleasespinlock>
    ///
    /// # Safety
    /// The caller holds `*SpinLock`, and `NewIrql` is what the [`KeAcquireSpinLockRaiseToDpc`] that
    /// acquired it returned.
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);

    /// Tries to take run-down protection: `TRUE` (non-zero) on success, `FALSE` once a wait for
    /// rundown has begun. Never waits (FASTCALL, which is the x64 convention).
    ///
    /// IRQL: `<= DISPATCH_LEVEL` as long as the `EX_RUNDOWN_REF` is nonpaged (page Remarks).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exacquirerundownprotection>
    ///
    /// # Safety
    /// `RunRef` must point to an initialised `EX_RUNDOWN_REF` (nonpaged if called at
    /// DISPATCH_LEVEL) that stays at the same address and valid until the protection is released.
    pub fn ExAcquireRundownProtection(RunRef: *mut EX_RUNDOWN_REF) -> BOOLEAN;

    /// Releases run-down protection taken by [`ExAcquireRundownProtection`] (FASTCALL).
    ///
    /// IRQL: `<= DISPATCH_LEVEL` (nonpaged `EX_RUNDOWN_REF`).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exreleaserundownprotection>
    ///
    /// # Safety
    /// The caller holds a protection acquired on `*RunRef` and releases it once.
    pub fn ExReleaseRundownProtection(RunRef: *mut EX_RUNDOWN_REF);

    /// Refuses further acquisitions, then waits until every holder has released (FASTCALL).
    /// Returns at once if nothing is held or the object is already run down.
    ///
    /// IRQL: `<= APC_LEVEL` only (wdm.h `_IRQL_requires_max_(APC_LEVEL)`): it waits.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exwaitforrundownprotectionrelease>
    ///
    /// # Safety
    /// Must be called at IRQL <= APC_LEVEL by a thread that holds no protection on `*RunRef`
    /// (or it waits for itself); `RunRef` points to an initialised `EX_RUNDOWN_REF` that stays valid
    /// and in place until the call returns.
    pub fn ExWaitForRundownProtectionRelease(RunRef: *mut EX_RUNDOWN_REF);

    /// The interrupt time (100 ns units since boot, monotonic) to within a microsecond; writes the
    /// performance-counter value it interpolated from to `*QpcTimeStamp`. Windows 8.1+.
    ///
    /// IRQL: any level.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kequeryinterrupttimeprecise>
    ///
    /// # Safety
    /// `QpcTimeStamp` must be valid for a write of a `u64`.
    pub fn KeQueryInterruptTimePrecise(QpcTimeStamp: *mut u64) -> u64;

    /// Puts the current thread into a wait for `*Interval` (100 ns units; negative = relative).
    ///
    /// IRQL: `PASSIVE_LEVEL` to `APC_LEVEL` (wdm.h `_IRQL_requires_min_(PASSIVE_LEVEL)`,
    /// `_IRQL_requires_max_(APC_LEVEL)`).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kedelayexecutionthread>
    ///
    /// # Safety
    /// Must be called at IRQL <= APC_LEVEL; `Interval` must point to a valid `LARGE_INTEGER`
    /// (an `i64`) for the duration of the call.
    pub fn KeDelayExecutionThread(WaitMode: KPROCESSOR_MODE, Alertable: BOOLEAN, Interval: *const i64) -> NTSTATUS;

    /// Raises the IRQL to `NewIrql` and returns the previous one: the function wdm.h's
    /// `KeRaiseIrql(a, b)` macro and `KeRaiseIrqlToDpcLevel()` inline call on AMD64.
    ///
    /// On AMD64, for `NTDDI_VERSION >= NTDDI_WIN8` driver builds (`_NTDDK_`/`_NTIFS_`/... defined) and
    /// without `NT_INLINE_IRQL`, wdm.h declares this `NTKERNELAPI` (an ntoskrnl import); otherwise it
    /// becomes the inline CR8 write `KzRaiseIrql`. It is used unless the `inline-irql` feature is on.
    ///
    /// IRQL: any, with `NewIrql >= ` the current IRQL (otherwise a bug check).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keraiseirql>
    ///
    /// # Safety
    /// `NewIrql` must be at least the current IRQL, and the caller must restore the returned IRQL
    /// with [`KeLowerIrql`] on the same thread as soon as possible.
    pub fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL;

    /// Lowers the IRQL back to `NewIrql` (an ntoskrnl import on AMD64 for Win8+ driver builds, see
    /// [`KfRaiseIrql`]).
    ///
    /// IRQL: any; `NewIrql` must be the value the immediately preceding raise returned.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-kelowerirql>
    ///
    /// # Safety
    /// `NewIrql` must be the IRQL returned by the matching [`KfRaiseIrql`] on this thread ("It is a
    /// fatal error to call KeLowerIrql using an input NewIrql that was not returned by the
    /// immediately preceding call to KeRaiseIrql or KeRaiseIrqlToDpcLevel").
    pub fn KeLowerIrql(NewIrql: KIRQL);
}
