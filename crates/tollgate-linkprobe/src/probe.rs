//! The probe image: kernel imports, a pool allocator, a panic handler, a [`Platform`] over the real
//! `Fwps*` imports, and a `DriverEntry` that reaches into every crate. Never run (see the crate
//! documentation); the code is realistic only so that the linker sees what the driver will link.

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use tollgate_control::{Completion, ControlDevice, FileId, ServiceSlot};
use tollgate_core::{
    ClassifyRequest, ConnectionFacts, Core, CoreConfig, Direction, EndpointHandle, PendLayer, Platform, PlatformError,
    RawSpinLock, Rundown, TeardownSource, Ticks, Verdict,
};
use tollgate_protocol::{
    HELLO_REQUEST_LEN, HelloRequest, IOCTL_TOLLGATE_GET_STATS, IOCTL_TOLLGATE_HELLO, decode_config,
    decode_pended_batch, decode_stats, decode_verdict_batch, decode_verdict_results, encode_hello_request, peek_header,
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
        /// `KeAcquireSpinLockRaiseToDpc` (wdm.h, exported on amd64): returns the old IRQL.
        pub(super) fn KeAcquireSpinLockRaiseToDpc(lock: *mut usize) -> u8;
        /// `KeReleaseSpinLock` (wdm.h, exported on amd64).
        pub(super) fn KeReleaseSpinLock(lock: *mut usize, old_irql: u8);
        /// `ExAcquireRundownProtection` (wdm.h, FASTCALL = the x64 convention).
        pub(super) fn ExAcquireRundownProtection(rundown: *mut usize) -> u8;
        /// `ExReleaseRundownProtection` (wdm.h).
        pub(super) fn ExReleaseRundownProtection(rundown: *mut usize);
        /// `ExWaitForRundownProtectionRelease` (wdm.h).
        pub(super) fn ExWaitForRundownProtectionRelease(rundown: *mut usize);
        /// `KeQueryInterruptTimePrecise` (wdm.h, Windows 8.1+). `KeQueryInterruptTime` itself is an
        /// inline read of KUSER_SHARED_DATA on x64, not an export.
        pub(super) fn KeQueryInterruptTimePrecise(qpc_time_stamp: *mut u64) -> u64;
        /// `KeDelayExecutionThread` (wdm.h). `wait_mode` 0 is `KernelMode`.
        pub(super) fn KeDelayExecutionThread(wait_mode: i8, alertable: u8, interval: *const i64) -> i32;
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

// ---- the platform -------------------------------------------------------------------------------

/// A `KSPIN_LOCK`.
struct ProbeLock(UnsafeCell<usize>);

// SAFETY: a KSPIN_LOCK is meant to be shared between CPUs; only the kernel touches its value.
unsafe impl Sync for ProbeLock {}
// SAFETY: an unheld KSPIN_LOCK is a plain value and may move between threads.
unsafe impl Send for ProbeLock {}

// SAFETY: KeAcquireSpinLockRaiseToDpc / KeReleaseSpinLock provide mutual exclusion and spin at
// DISPATCH_LEVEL.
unsafe impl RawSpinLock for ProbeLock {
    type Token = u8;

    fn new() -> Self {
        ProbeLock(UnsafeCell::new(0))
    }

    fn lock(&self) -> u8 {
        // SAFETY: the lock is initialised (0) and lives as long as `self`.
        unsafe { ntoskrnl::KeAcquireSpinLockRaiseToDpc(self.0.get()) }
    }

    unsafe fn unlock(&self, token: u8) {
        // SAFETY: the caller holds the lock and `token` is the IRQL its acquisition returned.
        unsafe { ntoskrnl::KeReleaseSpinLock(self.0.get(), token) }
    }
}

/// An `EX_RUNDOWN_REF` (initialised by zeroing, as ExInitializeRundownProtection does).
struct ProbeRundown(UnsafeCell<usize>);

// SAFETY: an EX_RUNDOWN_REF is shared between threads by design; only the kernel touches it.
unsafe impl Sync for ProbeRundown {}
// SAFETY: as above; it is a plain value until first used.
unsafe impl Send for ProbeRundown {}

impl Rundown for ProbeRundown {
    fn try_acquire(&self) -> bool {
        // SAFETY: a valid, initialised EX_RUNDOWN_REF that outlives the call.
        unsafe { ntoskrnl::ExAcquireRundownProtection(self.0.get()) != 0 }
    }

    fn release(&self) {
        // SAFETY: as above; the core releases only what it acquired.
        unsafe { ntoskrnl::ExReleaseRundownProtection(self.0.get()) }
    }

    fn wait_for_release(&self) {
        // SAFETY: as above; the core calls this at PASSIVE_LEVEL only.
        unsafe { ntoskrnl::ExWaitForRundownProtectionRelease(self.0.get()) }
    }
}

/// A `completionContext` from `FwpsPendOperation0`, kept as an address so it is `Send`.
#[derive(Clone, Copy)]
struct PendContext(usize);

/// What `FwpsAcquireClassifyHandle0` + `FwpsPendClassify0` need (addresses, so it is `Send`).
struct ClosureRequest {
    classify_context: usize,
    filter_id: u64,
    classify_out: usize,
}

/// A pended closure classify: its handle and the classifyOut to complete it with.
struct ClosurePend {
    handle: u64,
    classify_out: wfp::FWPS_CLASSIFY_OUT0,
}

/// The probe's platform: the same WFP calls the shell's platform makes.
struct ProbePlatform {
    deferred: AtomicBool,
}

impl Platform for ProbePlatform {
    type Lock = ProbeLock;
    type Rundown = ProbeRundown;
    type CompletionHandle = usize;
    type PendContext = PendContext;
    type ClosureRequest = ClosureRequest;
    type ClosurePend = ClosurePend;
    // The shell raises with wdm.h's KeRaiseIrqlToDpcLevel, an inline CR8 write on x64: no import.
    type DispatchGuard = ();

    fn now(&self) -> Ticks {
        let mut qpc = 0_u64;
        // SAFETY: `qpc` is writable for the call.
        Ticks(unsafe { ntoskrnl::KeQueryInterruptTimePrecise(&mut qpc) })
    }

    fn pend_operation(&self, handle: usize) -> Result<PendContext, PlatformError> {
        let mut context: wfp::HANDLE = ptr::null_mut();
        // SAFETY: `handle` is the classify's completionHandle; `context` is writable.
        let status = unsafe { wfp::FwpsPendOperation0(ptr::with_exposed_provenance_mut(handle), &mut context) };
        if status < 0 { Err(PlatformError(status)) } else { Ok(PendContext(context.expose_provenance())) }
    }

    fn complete_operation(&self, context: PendContext) {
        // SAFETY: the core completes each successful pend exactly once, before the endpoint's
        // teardown returns (S1, S2).
        unsafe { wfp::FwpsCompleteOperation0(ptr::with_exposed_provenance_mut(context.0), ptr::null_mut()) }
    }

    fn pend_closure(&self, request: ClosureRequest) -> Result<ClosurePend, PlatformError> {
        let mut handle = 0_u64;
        let classify_context = ptr::with_exposed_provenance_mut(request.classify_context);
        // SAFETY: `classify_context` is the current classifyFn's; `handle` is writable.
        let status = unsafe { wfp::FwpsAcquireClassifyHandle0(classify_context, 0, &mut handle) };
        if status < 0 {
            return Err(PlatformError(status));
        }
        let classify_out: *mut wfp::FWPS_CLASSIFY_OUT0 = ptr::with_exposed_provenance_mut(request.classify_out);
        // SAFETY: `handle` was just acquired for this classify; `classify_out` is its classifyOut.
        let status = unsafe { wfp::FwpsPendClassify0(handle, request.filter_id, 0, classify_out) };
        if status < 0 {
            // SAFETY: acquired above and not released yet.
            unsafe { wfp::FwpsReleaseClassifyHandle0(handle) };
            return Err(PlatformError(status));
        }
        // SAFETY: `classify_out` points to the classify's valid FWPS_CLASSIFY_OUT0.
        let classify_out = unsafe { classify_out.read() };
        Ok(ClosurePend { handle, classify_out })
    }

    fn complete_closure(&self, pend: ClosurePend) {
        // SAFETY: `pend.handle` is a pended, not yet completed classify.
        unsafe { wfp::FwpsCompleteClassify0(pend.handle, 0, &pend.classify_out) };
        // SAFETY: acquired by `pend_closure`, released exactly once here.
        unsafe { wfp::FwpsReleaseClassifyHandle0(pend.handle) };
    }

    fn request_deferred_work(&self) {
        self.deferred.store(true, Ordering::Release);
    }

    fn raise_to_dispatch(&self) {}

    fn relax_at_passive(&self) {
        let interval = -10_000_i64; // 1 ms, relative.
        // SAFETY: called at PASSIVE_LEVEL only (Platform's contract); `interval` outlives the call.
        let _ = unsafe { ntoskrnl::KeDelayExecutionThread(0, 0, &interval) };
    }
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

/// The IOCTL system buffer of the probe's device-control calls.
const BUFFER_LEN: usize = 512;

// ---- DriverEntry --------------------------------------------------------------------------------

/// The probe's entry point (`/ENTRY:DriverEntry`), shaped like the real one. Never called: it only
/// makes every crate reachable from the image's entry, so nothing is dead-stripped.
#[unsafe(no_mangle)]
pub extern "system" fn DriverEntry(driver_object: *mut c_void, registry_path: *const c_void) -> i32 {
    let opaque = black_box(driver_object.expose_provenance() ^ registry_path.expose_provenance());
    black_box(&WFP_IMPORTS.0);
    black_box(&_fltused);
    #[cfg(tollgate_linkprobe_user_imports)]
    black_box(user_mode::call(opaque));

    let platform = ProbePlatform { deferred: AtomicBool::new(false) };
    let rundown = ProbeRundown(UnsafeCell::new(0));
    let core = match Core::new(platform, rundown, CoreConfig::default()) {
        Ok(core) => core,
        Err(error) => return tollgate_control::core_error_status(error),
    };

    // A classify that pends, a verdict, a teardown with a pendable notification, deferred work.
    let app_path: Vec<u16> = "\\device\\harddiskvolume1\\probe.exe".encode_utf16().collect();
    let facts = ConnectionFacts {
        layer: PendLayer::AuthConnect,
        protocol: 6,
        direction: Direction::Outbound,
        local_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        local_port: 49_152,
        remote_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        remote_port: 443,
        process_id: black_box(4),
        app_path: &app_path,
    };
    let endpoint = EndpointHandle(black_box(opaque as u64));
    let request = ClassifyRequest {
        endpoint,
        completion_handle: opaque,
        is_reauthorization: false,
        can_write_action: true,
        facts,
    };
    if let tollgate_core::ClassifyDecision::Pended(id) = core.classify(request) {
        black_box(core.apply_verdict(id, Verdict::Permit).is_ok());
    }
    let notification = ClosureRequest { classify_context: opaque, filter_id: 1, classify_out: opaque };
    black_box(core.endpoint_teardown(endpoint, TeardownSource::EndpointClosure, Some(notification)));
    black_box(core.run_deferred_work());

    // The flow-context imports the stream callout uses.
    // SAFETY: never run; shaped like the stream callout's call in classifyFn.
    let status = unsafe { wfp::FwpsFlowAssociateContext0(opaque as u64, 20, 1, 0) };
    black_box(status);

    // The control device over the core: HELLO, then statistics.
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, &slot);
    let mut buffer = [0_u8; BUFFER_LEN];
    let written = encode_hello_request(&HelloRequest::CURRENT, &mut buffer).unwrap_or(HELLO_REQUEST_LEN);
    let reply = device.device_control(FileId(1), IOCTL_TOLLGATE_HELLO, &mut buffer, written, BUFFER_LEN);
    black_box(matches!(reply, Ok(Completion::Bytes(_))));
    let stats = device.device_control(FileId(1), IOCTL_TOLLGATE_GET_STATS, &mut buffer, 0, BUFFER_LEN);
    black_box(stats.is_ok());

    // Every parser of what user mode sends, over bytes the compiler cannot see through.
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

    black_box(device.cleanup(FileId(1)));
    black_box(core.begin_unload());
    core.wait_for_callbacks();
    0
}
