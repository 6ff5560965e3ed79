//! The kernel implementation of Tollgate's [`tollgate_core::Platform`]: [`KernelPlatform`] over
//! ntoskrnl.exe (spin lock, rundown, clock, IRQL, delay) and fwpkclnt.sys (pend and complete).
//!
//! - [`KernelSpinLock`]: `KSPIN_LOCK` with `KeAcquireSpinLockRaiseToDpc` / `KeReleaseSpinLock`;
//! - [`KernelRundown`]: `EX_RUNDOWN_REF` with the `Ex*RundownProtection` routines;
//! - [`KernelPlatform`]: `KeQueryInterruptTimePrecise`, `FwpsPendOperation0` /
//!   `FwpsCompleteOperation0`, `FwpsAcquireClassifyHandle0` + `FwpsPendClassify0` /
//!   `FwpsCompleteClassify0` + `FwpsReleaseClassifyHandle0`, the shell's [`DeferredWork`],
//!   [`DispatchGuard`] and `KeDelayExecutionThread`;
//! - [`ntoskrnl`]: the ntoskrnl.exe imports, declared by hand (`raw-dylib`, like tollgate-wfp-sys).
//!
//! The crate is `no_std`, allocates nothing and has no wdk dependency, so it is checked, linted and
//! documented for `x86_64-pc-windows-msvc` on our Linux machines (ARCHITECTURE.md §5), where its
//! layout assertions are evaluated. It also builds for the Linux host, only so that workspace-wide
//! host builds stay green: there the imports are declared but not linked, the IRQL is reported as
//! PASSIVE_LEVEL and [`DispatchGuard`] does nothing. Nothing may call it on the host except the
//! unit tests of the parts that need no kernel.
//!
//! Only x86_64 Windows is supported: the IRQL code reads CR8 and the FASTCALL imports rely on the
//! single x64 calling convention.
//!
//! # Features
//! - `inline-irql`: raise and lower the IRQL by writing CR8 inline, as wdm.h does when a driver
//!   defines `NT_INLINE_IRQL` (or targets Windows 7 or older), instead of calling the
//!   `KfRaiseIrql` / `KeLowerIrql` exports, which is what wdm.h does for Windows 8+ driver builds
//!   and is the default here. [`DispatchGuard`] documents why.
#![no_std]

#[cfg(all(windows, not(target_arch = "x86_64")))]
compile_error!("tollgate-kernel supports x86_64 Windows only (CR8 IRQL access, x64 calling convention and layouts)");

mod irql;
// The raw bindings keep the C names (types, parameters, constants) so that they can be compared
// with wdm.h and the documentation line by line.
#[allow(non_snake_case, non_camel_case_types, non_upper_case_globals)]
pub mod ntoskrnl;
mod platform;
mod sync;

pub use irql::{DispatchGuard, current_irql};
pub use platform::{ClosureRequest, DeferredWork, KernelPlatform, PendedClassify, RELAX_INTERVAL, relative_interval};
pub use sync::{KernelRundown, KernelSpinLock};
