//! Tollgate's KMDF shell: the `tollgate.sys` driver image.
//!
//! On Windows this crate is a `no_std` kernel-mode driver built with the windows-drivers-rs crates
//! (`wdk-build` in `build.rs`, `wdk-sys` for the WDF bindings, `wdk-alloc` for the pool allocator,
//! `wdk-panic` for the panic handler). Everywhere else it compiles to an empty library: the logic of
//! the driver lives in the workspace crates under `crates/`, which build and test on any host (see
//! `ARCHITECTURE.md` §5).
//!
//! # What the shell does
//!
//! `DriverEntry` creates a framework driver object for a *non-PnP* KMDF driver (no
//! `EvtDriverDeviceAdd`, the `WdfDriverInitNonPnpDriver` flag and an `EvtDriverUnload` callback, as
//! the KMDF rules for non-PnP drivers require), then `shell::initialize` creates the control device
//! `\Device\Tollgate` (SYSTEM and Administrators only, `FILE_DEVICE_SECURE_OPEN`) with its IOCTL
//! queue, the manual queue of the inverted call, a DPC and a timer; allocates the core; and
//! registers the callouts and filters in one Fwpm transaction on a dynamic session.
//! `EvtDriverUnload` runs `shell::unload`: filters and callouts first, then every pend completed,
//! the timer and DPC stopped, the device deleted, every callback waited for, memory freed (S5).
//!
//! Everything except the calls into the framework lives in the workspace crates
//! (`tollgate-core`, `tollgate-control`, `tollgate-protocol`, `tollgate-callouts`,
//! `tollgate-kernel`), which are compiled and checked for `x86_64-pc-windows-msvc` on Linux. This
//! crate's Windows code has never been compiled (the wdk crates need the WDK).
//!
//! The shell stays thin: every decision is made in the FFI-free workspace crates.
#![cfg_attr(windows, no_std)]

// The panic handler. From wdk-panic 0.5 a panic in a WDM/KMDF driver bugchecks the machine with
// the code "RPNC" and the panic location in the bugcheck parameters (breaking into the debugger
// first when debug assertions are on). The workspace lints forbid the constructs that panic, so a
// panic is a bug that must be loud. `not(test)` follows the windows-drivers-rs template, so that a
// test build (which has std's handler) never links a second one.
#[cfg(all(windows, not(test)))]
extern crate wdk_panic;

#[cfg(windows)]
extern crate alloc;

#[cfg(windows)]
mod shell;

/// The global allocator: non-paged pool (`ExAllocatePool2` with `POOL_FLAG_NON_PAGED`, tag
/// `"rust"`), so an allocation is usable at `DISPATCH_LEVEL`. Allocation failure returns null to
/// the `alloc` crate; the driver code only uses fallible allocation (`try_reserve` and friends).
#[cfg(all(windows, not(test)))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

#[cfg(windows)]
mod driver {
    //! `DriverEntry` and the framework driver object.

    use wdk_sys::{
        _WDF_DRIVER_INIT_FLAGS, NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT, ULONG, WDF_DRIVER_CONFIG, WDF_NO_HANDLE,
        WDF_NO_OBJECT_ATTRIBUTES, WDFDRIVER, call_unsafe_wdf_function_binding,
    };

    /// `WDF_DRIVER_CONFIG::Size`: the size of the structure this driver was compiled against, which
    /// is how the framework recognises the structure's version (what `WDF_DRIVER_CONFIG_INIT` sets).
    const DRIVER_CONFIG_SIZE: ULONG = {
        let size = core::mem::size_of::<WDF_DRIVER_CONFIG>();
        assert!(size <= ULONG::MAX as usize, "WDF_DRIVER_CONFIG must fit a ULONG size field");
        #[allow(clippy::cast_possible_truncation, reason = "the assertion above proves that the size fits")]
        let size = size as ULONG;
        size
    };

    /// `WDF_DRIVER_CONFIG::DriverInitFlags` of a non-PnP driver. bindgen renders the C enum
    /// `WDF_DRIVER_INIT_FLAGS` as a module of `c_int` constants, while the field is a `ULONG`.
    #[allow(
        clippy::cast_sign_loss,
        clippy::unnecessary_cast,
        reason = "the flag is the positive constant 1; the cast only changes the integer type, which \
                  is `c_int` on the MSVC targets (an unsigned rendering would make the cast a no-op)"
    )]
    const NON_PNP_DRIVER_INIT_FLAGS: ULONG = _WDF_DRIVER_INIT_FLAGS::WdfDriverInitNonPnpDriver as ULONG;

    /// The driver's entry point: creates the framework driver object of a non-PnP KMDF driver.
    ///
    /// The image's real entry point is the framework stub `FxDriverEntry` (wdk-build links with
    /// `/ENTRY:FxDriverEntry`), which binds to the KMDF library and then calls this function.
    ///
    /// IRQL: `PASSIVE_LEVEL` (system thread, as for every `DriverEntry`).
    ///
    /// # Safety
    ///
    /// Only the kernel (through `FxDriverEntry`) may call this, once, with the `DRIVER_OBJECT` it
    /// created for this image and the driver's registry path, both valid for the whole call.
    ///
    /// # Errors
    ///
    /// Returns the failure status of `WdfDriverCreate` unchanged; the kernel then unloads the image
    /// without calling `EvtDriverUnload`.
    // SAFETY: "DriverEntry" is the symbol `FxDriverEntry` calls; no other item in this crate or in
    // its dependencies exports that name.
    #[unsafe(export_name = "DriverEntry")]
    pub unsafe extern "system" fn driver_entry(driver: PDRIVER_OBJECT, registry_path: PCUNICODE_STRING) -> NTSTATUS {
        // What WDF_DRIVER_CONFIG_INIT(&config, NULL) does, plus the two settings a non-PnP driver
        // must make: the WdfDriverInitNonPnpDriver flag and an EvtDriverUnload callback (without
        // one the driver could never be unloaded). EvtDriverDeviceAdd stays None: a non-PnP driver
        // has no AddDevice.
        let mut config = WDF_DRIVER_CONFIG {
            Size: DRIVER_CONFIG_SIZE,
            EvtDriverDeviceAdd: None,
            EvtDriverUnload: Some(evt_driver_unload),
            DriverInitFlags: NON_PNP_DRIVER_INIT_FLAGS,
            ..WDF_DRIVER_CONFIG::default()
        };

        let mut driver_handle: WDFDRIVER = WDF_NO_HANDLE.cast();
        // SAFETY: `driver` and `registry_path` are the kernel's arguments to DriverEntry, valid for
        // this call (the caller's contract). No object attributes are needed (a null
        // PWDF_OBJECT_ATTRIBUTES is allowed). `config` is a fully initialised WDF_DRIVER_CONFIG on
        // this stack frame, alive for the whole call; WdfDriverCreate copies what it keeps.
        // `driver_handle` receives the framework driver object. WdfDriverCreate is called at
        // PASSIVE_LEVEL, once, from DriverEntry, as the framework requires.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDriverCreate,
                driver,
                registry_path,
                WDF_NO_OBJECT_ATTRIBUTES,
                &raw mut config,
                &raw mut driver_handle,
            )
        };
        if status != wdk_sys::STATUS_SUCCESS {
            return status;
        }
        // The control device, the core, WFP registration, the timer. On failure everything is
        // undone and the status returned: the framework then deletes the driver object without
        // calling EvtDriverUnload.
        crate::shell::initialize(driver_handle)
    }

    /// `EvtDriverUnload`: the framework calls it when the service is stopped (`sc stop tollgate`),
    /// before it deletes the driver object. Tears WFP and the control device down in the S5 order
    /// (see `shell::unload`), waiting for every callback, which is allowed because this runs at
    /// `PASSIVE_LEVEL`.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
        crate::shell::unload();
    }
}
