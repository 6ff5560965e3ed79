//! The probe image: the allocator, panic handler and CRT symbols a `/NODEFAULTLIB` kernel image
//! needs, and a `DriverEntry` shaped like the shell's: the real driver logic (`tollgate-kernel`'s
//! [`KernelPlatform`], `tollgate-callouts`' shims and Fwpm registration, the control device and
//! the protocol parsers) wired together as `src/shell.rs` does, minus KMDF. Never run (see the
//! crate documentation); the code is realistic only so that the linker sees what the driver will
//! link.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::hint::black_box;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use tollgate_callouts::registration::{
    self, CalloutFunctionTable, CalloutFunctions, KernelFilterEngine, RegisteredCallout, TOLLGATE_PLAN, TollgateLayer,
};
use tollgate_callouts::shims::{self, DriverState};
use tollgate_control::{ControlDevice, FileId, ServiceSlot, StreamParts};
use tollgate_core::stream::{FlowTable, FlowTableConfig};
use tollgate_core::{Core, CoreConfig, Platform};
use tollgate_kernel::{DeferredWork, KernelPlatform, KernelRundown, KernelSpinLock};
use tollgate_protocol::{
    HELLO_REQUEST_LEN, HelloRequest, IOCTL_TOLLGATE_GET_CONFIG, IOCTL_TOLLGATE_GET_PENDED, IOCTL_TOLLGATE_GET_STATS,
    IOCTL_TOLLGATE_GET_STREAM_EVENTS, IOCTL_TOLLGATE_HELLO, IOCTL_TOLLGATE_PUSH_BLOCKLIST, IOCTL_TOLLGATE_SET_CONFIG,
    IOCTL_TOLLGATE_SUBMIT_VERDICTS, decode_config, decode_pended_batch, decode_stats, decode_verdict_batch,
    decode_verdict_results, encode_hello_request, peek_header,
};
use tollgate_wfp_sys as wfp;

extern crate alloc;

// ---- ntoskrnl.exe imports -----------------------------------------------------------------------

/// The ntoskrnl exports the probe calls, declared here (the shell gets them from wdk-sys).
///
/// `raw-dylib` + `+verbatim`, like tollgate-wfp-sys's fwpkclnt.sys imports: no import library is
/// needed and the import names `ntoskrnl.exe`, not `ntoskrnl.exe.dll` (ARCHITECTURE.md §5).
mod ntoskrnl {
    use core::ffi::c_void;

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        /// `ExAllocatePool2` (wdm.h, Windows 10 2004+). IRQL ≤ DISPATCH_LEVEL for non-paged pool.
        pub(super) fn ExAllocatePool2(flags: u64, number_of_bytes: usize, tag: u32) -> *mut c_void;
        /// `ExFreePool` (wdm.h).
        pub(super) fn ExFreePool(p: *mut c_void);
        /// `KeBugCheckEx` (wdm.h): never returns.
        pub(super) fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    }

    // The C runtime functions the compiler emits calls to. With /NODEFAULTLIB there is no CRT, and
    // the stable x86_64-pc-windows-msvc `compiler_builtins` does not define them (its `mem`
    // feature is off for targets with a C library), so they come from ntoskrnl, which exports them
    // (as the WDK's ntoskrnl.lib does). Declaring them makes rustc's raw-dylib import library
    // provide the symbols; the image imports only the ones the code actually references.
    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    #[allow(dead_code, reason = "referenced by compiler-generated code, never by name from Rust")]
    unsafe extern "C" {
        pub(super) fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
        pub(super) fn memmove(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
        pub(super) fn memset(dest: *mut c_void, c: i32, n: usize) -> *mut c_void;
        pub(super) fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> i32;
        /// Referenced by the precompiled `alloc` (`CString::from_raw`) in unoptimised builds.
        pub(super) fn strlen(s: *const u8) -> usize;
        /// The stack probe for frames larger than a page (its calling convention is special;
        /// never called from Rust, only by compiler-generated code).
        pub(super) fn __chkstk();
    }
}

/// `_fltused`: the MSVC toolchain's marker that floating point is used; any object that touches a
/// float references it and the CRT normally defines it. With /NODEFAULTLIB the image must.
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;

/// The MSVC C++ personality routine. The precompiled `core`/`alloc` of the stable
/// x86_64-pc-windows-msvc target are built with `panic=unwind`, so their unwind tables (`.xdata`)
/// name it, and ntoskrnl does not export it. Tollgate is built with `panic=abort`: no Rust code
/// ever unwinds, and nothing in the image catches exceptions. If a kernel SEH exception ever
/// walked a Rust frame, the only right answer is `ExceptionContinueSearch` (1): this frame has no
/// handler (its drop glue is skipped, as with an abort).
#[unsafe(no_mangle)]
pub extern "C" fn __CxxFrameHandler3(
    _exception_record: *mut c_void,
    _establisher_frame: *mut c_void,
    _context_record: *mut c_void,
    _dispatcher_context: *mut c_void,
) -> i32 {
    1
}

// ---- allocator and panic handler ----------------------------------------------------------------

/// `POOL_FLAG_NON_PAGED` (wdm.h).
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Pool tag `Tlgp`, little-endian as tags are.
const POOL_TAG: u32 = u32::from_le_bytes(*b"Tlgp");
/// `MEMORY_ALLOCATION_ALIGNMENT` on x64: what pool allocations are aligned to.
const POOL_ALIGNMENT: usize = 16;

/// Non-paged pool, as wdk-alloc does it.
struct PoolAllocator;

// SAFETY: `alloc` returns a fresh pool block of at least `layout.size()` bytes aligned to 16 (the
// pool's guarantee on x64), or null; larger alignments are refused with null. `dealloc` frees only
// what `alloc` returned.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > POOL_ALIGNMENT {
            return ptr::null_mut();
        }
        // SAFETY: plain FFI call; non-paged pool may be allocated at IRQL ≤ DISPATCH_LEVEL.
        unsafe { ntoskrnl::ExAllocatePool2(POOL_FLAG_NON_PAGED, layout.size(), POOL_TAG) }.cast()
    }

    unsafe fn dealloc(&self, block: *mut u8, _layout: Layout) {
        // SAFETY: `block` came from `alloc` above (GlobalAlloc's contract), so from ExAllocatePool2.
        unsafe { ntoskrnl::ExFreePool(block.cast()) }
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;

/// `MANUALLY_INITIATED_CRASH`: the probe's panics (there are none in practice: the image never runs).
const BUGCHECK_CODE: u32 = 0xE2;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let line = info.location().map_or(0, |location| location.line() as usize);
    // SAFETY: KeBugCheckEx may be called at any IRQL and never returns.
    unsafe { ntoskrnl::KeBugCheckEx(BUGCHECK_CODE, line, 0, 0, 0) }
}

// ---- every fwpkclnt.sys function the bindings declare -------------------------------------------

/// The address of every function tollgate-wfp-sys declares, so the image imports all of them (not
/// only the ones the core's platform calls) and the gate checks every declared DLL name.
struct ImportTable([*const (); 29]);

// SAFETY: immutable function addresses, never dereferenced or called through this table.
unsafe impl Sync for ImportTable {}

static WFP_IMPORTS: ImportTable = ImportTable([
    wfp::FwpsCalloutRegister3 as *const (),
    wfp::FwpsCalloutUnregisterById0 as *const (),
    wfp::FwpsCalloutUnregisterByKey0 as *const (),
    wfp::FwpsFlowAssociateContext0 as *const (),
    wfp::FwpsFlowRemoveContext0 as *const (),
    wfp::FwpsPendOperation0 as *const (),
    wfp::FwpsCompleteOperation0 as *const (),
    wfp::FwpsAcquireClassifyHandle0 as *const (),
    wfp::FwpsReleaseClassifyHandle0 as *const (),
    wfp::FwpsPendClassify0 as *const (),
    wfp::FwpsCompleteClassify0 as *const (),
    wfp::FwpsAcquireWritableLayerDataPointer0 as *const (),
    wfp::FwpsApplyModifiedLayerData0 as *const (),
    wfp::FwpsCopyStreamDataToBuffer0 as *const (),
    wfp::FwpmEngineOpen0 as *const (),
    wfp::FwpmEngineClose0 as *const (),
    wfp::FwpmTransactionBegin0 as *const (),
    wfp::FwpmTransactionCommit0 as *const (),
    wfp::FwpmTransactionAbort0 as *const (),
    wfp::FwpmProviderAdd0 as *const (),
    wfp::FwpmProviderDeleteByKey0 as *const (),
    wfp::FwpmSubLayerAdd0 as *const (),
    wfp::FwpmSubLayerDeleteByKey0 as *const (),
    wfp::FwpmCalloutAdd0 as *const (),
    wfp::FwpmCalloutDeleteById0 as *const (),
    wfp::FwpmCalloutDeleteByKey0 as *const (),
    wfp::FwpmFilterAdd0 as *const (),
    wfp::FwpmFilterDeleteById0 as *const (),
    wfp::FwpmFilterDeleteByKey0 as *const (),
]);

/// The gate's negative case: what a driver must never import (user-mode DLLs).
#[cfg(tollgate_linkprobe_user_imports)]
mod user_mode {
    #[link(name = "kernel32.dll", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        /// `GetTickCount` (kernel32.dll).
        pub(super) fn GetTickCount() -> u32;
    }

    /// Calls a user-mode function of each kind of mistake: a Win32 API, and a windows-sys `Fwpm*`
    /// function (user-mode `fwpuclnt.dll`) where the kernel one was meant.
    ///
    /// The windows-sys function is `FwpmFreeMemory0`, which tollgate-wfp-sys does not declare. A
    /// windows-sys function that tollgate-wfp-sys *also* declares (say `FwpmEngineClose0`) has the
    /// same symbol in both raw-dylib import libraries, and the linker binds it to the first one it
    /// sees, fwpkclnt.sys: that mistake is invisible in the image (and harmless, same export).
    pub(super) fn call(engine: usize) -> u32 {
        // SAFETY: never run; the call only has to be linked.
        let ticks = unsafe { GetTickCount() };
        let mut memory = core::ptr::with_exposed_provenance_mut(engine);
        // SAFETY: as above.
        unsafe { windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::FwpmFreeMemory0(&mut memory) };
        ticks ^ u32::from(memory.is_null())
    }
}

// ---- the driver's state, as the shell builds it --------------------------------------------------

/// The stream callout's table (the shell's `STREAM_CONFIG`).
const STREAM_CONFIG: FlowTableConfig = FlowTableConfig {
    flows: 4_096,
    reassembly_buffers: 64,
    events: 512,
    after_inspection: tollgate_core::stream::AfterInspection::AllowConnection,
};
/// How many `STATUS_DEVICE_BUSY` answers unload tolerates per callout (the shell's value).
const MAX_BUSY_RETRIES: u32 = 1_000;
/// The IOCTL system buffer of the probe's device-control calls.
const BUFFER_LEN: usize = 512;

/// Every IOCTL the control device dispatches; each passes through `black_box`, so no branch of
/// `ControlDevice::device_control` is folded away.
const IOCTLS: [u32; 8] = [
    IOCTL_TOLLGATE_HELLO,
    IOCTL_TOLLGATE_GET_PENDED,
    IOCTL_TOLLGATE_SUBMIT_VERDICTS,
    IOCTL_TOLLGATE_GET_STATS,
    IOCTL_TOLLGATE_SET_CONFIG,
    IOCTL_TOLLGATE_GET_CONFIG,
    IOCTL_TOLLGATE_GET_STREAM_EVENTS,
    IOCTL_TOLLGATE_PUSH_BLOCKLIST,
];

/// How often the core asked for deferred work (the shell queues its DPC instead).
static DEFERRED_REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// The core's deferred-work callback ([`DeferredWork`]). IRQL ≤ DISPATCH_LEVEL; never waits.
fn request_deferred_work(_context: *mut c_void) {
    DEFERRED_REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// Moves `value` to nonpaged pool without the allocation-error handler (a bugcheck in the kernel),
/// as the shell does. Freed with [`free_leaked`].
fn try_leak<T>(value: T) -> Result<&'static mut T, T> {
    let layout = Layout::new::<T>();
    // SAFETY: `layout` is T's, which is not zero-sized for the probe's only use (DriverState).
    let pointer = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if pointer.is_null() {
        return Err(value);
    }
    // SAFETY: `pointer` is a fresh, aligned, writable allocation of T's layout.
    unsafe { pointer.write(value) };
    // SAFETY: initialised just above; the allocation is never freed except by `free_leaked`.
    Ok(unsafe { &mut *pointer })
}

/// Frees what [`try_leak`] leaked (dropping the value).
///
/// # Safety
/// `value` came from [`try_leak`] and nothing refers to it any more.
unsafe fn free_leaked<T>(value: *mut T) {
    // SAFETY: `value` was allocated by the global allocator with `Layout::new::<T>()` and holds an
    // initialised T (try_leak), which is what `Box::from_raw` requires; the caller guarantees it
    // is no longer referenced.
    drop(unsafe { Box::from_raw(value) });
}

/// The shims as the callouts' functions: classifyFn and notifyFn everywhere, flowDeleteFn only
/// where the plan asks for one (the stream callouts; `runtime_callout` ignores it elsewhere).
fn callout_table() -> CalloutFunctionTable {
    let functions =
        CalloutFunctions { classify: Some(shims::classify), notify: Some(shims::notify), flow_delete: None };
    let stream = CalloutFunctions { flow_delete: Some(shims::flow_delete), ..functions };
    CalloutFunctionTable {
        auth_connect: functions,
        resource_assignment: functions,
        endpoint_closure: functions,
        resource_release: functions,
        flow_established: functions,
        stream,
    }
}

/// `FwpsFlowRemoveContext0` for every flow the stream callout is inspecting (the shell's unload
/// step when a callout is busy). PASSIVE_LEVEL.
fn remove_all_flow_contexts(state: &DriverState) {
    let mut flows = Vec::new();
    if flows.try_reserve_exact(state.flows.live_count()).is_err() {
        return;
    }
    state.flows.live_flows(&mut flows);
    for (_, owner) in flows {
        // SAFETY: plain values; PASSIVE_LEVEL.
        let status = unsafe { wfp::FwpsFlowRemoveContext0(owner.flow_handle, owner.layer_id, owner.callout_id) };
        black_box(status);
    }
}

/// The control device over the real core: every IOCTL, then the handle's cleanup; and every
/// parser of what user mode sends, over bytes the compiler cannot see through.
fn exercise_control_device(state: &DriverState) {
    let slot = ServiceSlot::new();
    let stream = StreamParts { flows: &state.flows, blocklist: &state.blocklist };
    let device = ControlDevice::new(&state.core, stream, &slot);
    let file = FileId(black_box(1));
    let mut buffer = [0_u8; BUFFER_LEN];
    let written = encode_hello_request(&HelloRequest::CURRENT, &mut buffer).unwrap_or(HELLO_REQUEST_LEN);
    for code in IOCTLS {
        let input_len = black_box(written);
        let reply = device.device_control(file, black_box(code), &mut buffer, input_len, BUFFER_LEN);
        black_box(reply.is_ok());
    }

    let input = black_box(buffer.as_slice());
    black_box(peek_header(input).is_ok());
    black_box(decode_stats(input).is_ok());
    black_box(decode_config(input).is_ok());
    if let Ok(batch) = decode_pended_batch(input) {
        black_box((&batch).into_iter().count());
    }
    if let Ok(batch) = decode_verdict_batch(input) {
        black_box((&batch).into_iter().count());
    }
    if let Ok(results) = decode_verdict_results(input) {
        black_box((&results).into_iter().count());
    }

    black_box(device.cleanup(file));
}

// ---- DriverEntry --------------------------------------------------------------------------------

/// The probe's entry point (`/ENTRY:DriverEntry`), shaped like the shell's `initialize` followed
/// by its unload. Never called: it only makes the real driver logic reachable from the image's
/// entry, so nothing is dead-stripped.
#[unsafe(no_mangle)]
pub extern "system" fn DriverEntry(driver_object: *mut c_void, registry_path: *const c_void) -> i32 {
    let opaque = black_box(driver_object.expose_provenance() ^ registry_path.expose_provenance());
    black_box(&WFP_IMPORTS.0);
    black_box(&_fltused);
    #[cfg(tollgate_linkprobe_user_imports)]
    black_box(user_mode::call(opaque));
    // The shims, also by address (they reach WFP only through FwpsCalloutRegister3 otherwise).
    black_box(shims::classify as *const ());
    black_box(shims::notify as *const ());
    black_box(shims::flow_delete as *const ());

    // The core, its flow table and the shims' state, as the shell's `initialize` builds them.
    let context = ptr::with_exposed_provenance_mut(opaque);
    let platform = KernelPlatform::new(DeferredWork::new(request_deferred_work, context));
    let core = match Core::new(platform, KernelRundown::new(), CoreConfig::default()) {
        Ok(core) => core,
        Err(error) => return tollgate_control::core_error_status(error),
    };
    let Ok(flows) = FlowTable::<KernelSpinLock>::new(STREAM_CONFIG) else {
        return wfp::STATUS_INSUFFICIENT_RESOURCES;
    };
    let Ok(state) = try_leak(DriverState::new(core, flows)) else {
        return wfp::STATUS_INSUFFICIENT_RESOURCES;
    };
    let state: &'static DriverState = state;
    shims::publish(state);

    // Registration with the filter engine: the shims as every callout's functions.
    // SAFETY: never run. The shell passes its control device's DEVICE_OBJECT, which outlives every
    // callout registered here; the shims implement the FWPS_CALLOUT contracts and are part of
    // this image; every engine method is called from DriverEntry / unload (PASSIVE_LEVEL).
    let mut engine = unsafe { KernelFilterEngine::new(driver_object, callout_table()) };
    let status = match registration::register(&mut engine, &TOLLGATE_PLAN) {
        Ok(registration) => {
            let stream_id = |layer| registration.callout(layer).map_or(0, |callout| callout.runtime_id);
            state.set_stream_callout_ids(stream_id(TollgateLayer::StreamV4), stream_id(TollgateLayer::StreamV6));

            exercise_control_device(state);
            black_box(state.core.run_deferred_work());
            black_box(state.core.next_deadline());

            // Unload, in the shell's S5 order: every pend completed while the teardown
            // notifications still reach the callouts, then filters, session and callouts.
            black_box(state.core.begin_unload());
            let remove_flow_contexts = |_callout: &RegisteredCallout| remove_all_flow_contexts(state);
            match registration::unregister(&mut engine, registration, remove_flow_contexts, MAX_BUSY_RETRIES) {
                Ok(()) => wfp::STATUS_SUCCESS,
                // Callouts still registered: the state must stay reachable and is never freed.
                Err(error) if !error.is_safe_to_unload() => return wfp::STATUS_UNSUCCESSFUL,
                Err(_) => wfp::STATUS_UNSUCCESSFUL,
            }
        }
        // register() already unwound WFP.
        Err(error) => error.status,
    };
    // Idempotent after a successful registration (the sweep above closed the gate).
    black_box(state.core.begin_unload());
    state.core.wait_for_callbacks();
    if let Some(state) = shims::retire(|| state.core.platform().relax_at_passive()) {
        // SAFETY: retired: no callout can reach the state any more, and nothing else refers to it.
        unsafe { free_leaked(ptr::from_ref(state).cast_mut()) };
    }
    status
}
