//! The KMDF shell proper: the control device, its queues, the timer and DPC, WFP registration,
//! and the unload sequence. Windows only; every decision is made by the workspace crates.
//!
//! # Objects
//! - `\Device\Tollgate` (`\\.\Tollgate` through `\DosDevices\Tollgate`): a control device with the
//!   SDDL `D:P(A;;GA;;;SY)(A;;GA;;;BA)` (SYSTEM and Administrators only) and
//!   `FILE_DEVICE_SECURE_OPEN`, so the ACL also guards opens of names below the device (S9).
//!   <https://learn.microsoft.com/en-us/windows-hardware/drivers/wdf/using-control-device-objects>
//! - a parallel default queue for `IRP_MJ_DEVICE_CONTROL`: each request goes straight to
//!   [`tollgate_control::ControlDevice::device_control`];
//! - a manual queue holding parked `GET_PENDED` requests (the inverted call), filled by the DPC
//!   when a classify pends a connection and by the timer;
//! - a DPC (the core's "deferred work": pended notifications to complete, parked reads to fill)
//!   and a 100 ms periodic timer (pend timeouts, S7);
//! - `EvtFileCleanup`: when the verdict service's handle goes away, every pend gets the default
//!   verdict (S7) and its parked reads are cancelled.
//!
//! # Lifetime
//! The shell's state is reached from WDF callbacks through one pointer behind a gate (the same
//! pattern as the callout shims): unload closes the gate and waits at PASSIVE_LEVEL until no
//! callback is inside before it frees anything (S3, S5).
//!
//! This file has never been compiled: the wdk crates do not build off Windows (ARCHITECTURE.md
//! §5). It is written against wdk-sys 0.5 and the Windows-rust-driver-samples usage of it; the
//! README lists it as "run on Windows".

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use tollgate_callouts::registration::{
    self, CalloutFunctionTable, CalloutFunctions, KernelFilterEngine, KernelSession, Registration, TOLLGATE_PLAN,
    TollgateLayer,
};
use tollgate_callouts::shims::{self, DriverState};
use tollgate_control::{Completion, ControlDevice, FileId, STATUS_DELETE_PENDING, ServiceSlot, StreamParts};
use tollgate_core::stream::{AfterInspection, FlowTable, FlowTableConfig};
use tollgate_core::{Core, CoreConfig, Platform};
use tollgate_kernel::{DeferredWork, KernelPlatform, KernelRundown};
use tollgate_protocol::{IOCTL_TOLLGATE_GET_PENDED, Ioctl, MIN_GET_PENDED_OUTPUT};
use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS, _WDF_IO_QUEUE_DISPATCH_TYPE, _WDF_SYNCHRONIZATION_SCOPE,
    _WDF_TRI_STATE, FILE_DEVICE_SECURE_OPEN, NTSTATUS, PWDFDEVICE_INIT, STATUS_CANCELLED,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS, ULONG, ULONG_PTR, UNICODE_STRING,
    WDF_DPC_CONFIG, WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG, WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES,
    WDF_TIMER_CONFIG, WDFDEVICE, WDFDPC, WDFDRIVER, WDFFILEOBJECT, WDFOBJECT, WDFQUEUE, WDFREQUEST, WDFTIMER,
    call_unsafe_wdf_function_binding,
};

// ---------------------------------------------------------------- constants

/// ASCII → NUL-terminated UTF-16 at compile time (device names, SDDL).
const fn wide<const N: usize>(ascii: &str) -> [u16; N] {
    let bytes = ascii.as_bytes();
    assert!(bytes.len() + 1 == N, "N must be the length plus the terminator");
    let mut out = [0_u16; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii(), "ASCII only");
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

static DEVICE_NAME: [u16; 17] = wide(r"\Device\Tollgate");
static LINK_NAME: [u16; 21] = wide(r"\DosDevices\Tollgate");
/// `SDDL_DEVOBJ_SYS_ALL_ADM_ALL` (wdmsec.h): SYSTEM and Administrators, all access.
static SDDL: [u16; 28] = wide("D:P(A;;GA;;;SY)(A;;GA;;;BA)");

/// A `UNICODE_STRING` over a static NUL-terminated buffer (the terminator is not counted).
fn unicode(buffer: &'static [u16]) -> UNICODE_STRING {
    let bytes = buffer.len().saturating_sub(1).saturating_mul(2);
    let length = u16::try_from(bytes).unwrap_or(0);
    UNICODE_STRING {
        Length: length,
        MaximumLength: length,
        // The framework only reads these strings; the field is a mutable pointer in the C type.
        Buffer: buffer.as_ptr().cast_mut(),
    }
}

/// `Size` of a WDF configuration structure (what the `*_INIT` macros set).
const fn wdf_size<T>() -> ULONG {
    let size = core::mem::size_of::<T>();
    assert!(size <= u32::MAX as usize);
    #[allow(clippy::cast_possible_truncation, reason = "asserted to fit just above")]
    let size = size as ULONG;
    size
}

/// The timer's period: 100 ms (pend timeouts are seconds; this bounds their lateness).
const TIMER_PERIOD_MS: ULONG = 100;
/// `WDF_REL_TIMEOUT_IN_MS(100)`: relative, in 100-ns units.
const TIMER_DUE_TIME: i64 = -(TIMER_PERIOD_MS as i64) * 10_000;
/// The stream callout's table: 4096 flows tracked at once (more are simply not inspected), 64
/// reassembly buffers of 4 KiB (flows being identified at once), 512 queued events, and
/// `FWPS_STREAM_ACTION_ALLOW_CONNECTION` once a flow is identified (the rest of the stream costs
/// nothing). About 1.4 MiB of nonpaged pool, allocated once at DriverEntry.
const STREAM_CONFIG: FlowTableConfig = FlowTableConfig {
    flows: 4_096,
    reassembly_buffers: 64,
    events: 512,
    after_inspection: AfterInspection::AllowConnection,
};
/// How many `STATUS_DEVICE_BUSY` answers unload tolerates per callout before it gives up.
const MAX_BUSY_RETRIES: u32 = 1_000;

// ---------------------------------------------------------------- shell state and its gate

/// Everything the shell owns between DriverEntry and unload.
struct Shell {
    state: &'static DriverState,
    slot: ServiceSlot,
    device: WDFDEVICE,
    parked: WDFQUEUE,
    dpc: WDFDPC,
    timer: WDFTIMER,
    engine: KernelFilterEngine,
    registration: Option<Registration<KernelSession>>,
}

impl Shell {
    /// The control logic over the driver's state (what every I/O callback calls).
    fn control_device(&self) -> ControlDevice<'_, KernelPlatform> {
        let stream = StreamParts { flows: &self.state.flows, blocklist: &self.state.blocklist };
        ControlDevice::new(&self.state.core, stream, &self.slot)
    }
}

static SHELL: AtomicPtr<Shell> = AtomicPtr::new(core::ptr::null_mut());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static CLOSING: AtomicBool = AtomicBool::new(false);
/// The DPC, for the core's deferred-work callback (which has no other way to find it).
static DPC: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

struct Entered {
    shell: &'static Shell,
}

impl Drop for Entered {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Enters the gate (any IRQL; never waits). `None` once unload has begun.
fn enter() -> Option<Entered> {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let pointer = SHELL.load(Ordering::SeqCst);
    if CLOSING.load(Ordering::SeqCst) || pointer.is_null() {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    // SAFETY: non-NULL SHELL is the leaked `Shell` of `initialize`; unload frees it only after it
    // has seen ACTIVE at zero with CLOSING set, and we hold a count until `Entered` drops.
    let shell = unsafe { pointer.cast_const().as_ref() }?;
    Some(Entered { shell })
}

/// Moves `value` to nonpaged pool without panicking on allocation failure (`Box::new` would call
/// the allocation-error handler, which in the kernel is a bugcheck). Freed with [`free_leaked`].
fn try_leak<T>(value: T) -> Result<&'static mut T, T> {
    let layout = core::alloc::Layout::new::<T>();
    // SAFETY: `layout` is T's, which is not zero-sized for the shell's types (DriverState, Shell).
    let pointer = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if pointer.is_null() {
        return Err(value);
    }
    // SAFETY: `pointer` is a fresh, aligned, writable allocation of T's layout.
    unsafe { pointer.write(value) };
    // SAFETY: initialized just above; the allocation is never freed except by `free_leaked`.
    Ok(unsafe { &mut *pointer })
}

/// Frees what `try_leak` leaked (dropping the value).
///
/// # Safety
/// `value` came from `try_leak` and nothing refers to it any more.
unsafe fn free_leaked<T>(value: *mut T) {
    // SAFETY: `value` was allocated by the global allocator with `Layout::new::<T>()` and holds an
    // initialized T (try_leak), which is what `Box::from_raw` requires; the caller guarantees it
    // is no longer referenced.
    drop(unsafe { Box::from_raw(value) });
}

// ---------------------------------------------------------------- DriverEntry

/// The core's deferred-work callback: queue the DPC. IRQL ≤ DISPATCH_LEVEL; never waits.
fn kick(_context: *mut c_void) {
    let dpc = DPC.load(Ordering::Acquire);
    if !dpc.is_null() {
        // SAFETY: DPC holds the shell's WDFDPC while it exists (cleared before it is cancelled
        // and deleted at unload); WdfDpcEnqueue is callable at ≤ DISPATCH_LEVEL.
        let _ = unsafe { call_unsafe_wdf_function_binding!(WdfDpcEnqueue, dpc.cast()) };
    }
}

/// Creates the control device, the core and its tables, registers with WFP, and starts the
/// timer. IRQL: PASSIVE_LEVEL (DriverEntry).
///
/// # Errors
/// The status of the first step that failed; everything before it is undone.
pub(crate) fn initialize(driver: WDFDRIVER) -> NTSTATUS {
    let platform = KernelPlatform::new(DeferredWork::new(kick, core::ptr::null_mut()));
    let core = match Core::new(platform, KernelRundown::new(), CoreConfig::default()) {
        Ok(core) => core,
        Err(error) => return tollgate_control::core_error_status(error),
    };
    let Ok(flows) = FlowTable::new(STREAM_CONFIG) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let Ok(state) = try_leak(DriverState::new(core, flows)) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let state: &'static DriverState = state;

    let objects = match create_device(driver) {
        Ok(objects) => objects,
        Err(status) => {
            // SAFETY: nothing else refers to `state` yet (it was never published).
            unsafe { free_leaked(core::ptr::from_ref(state).cast_mut()) };
            return status;
        }
    };
    DPC.store(objects.dpc.cast(), Ordering::Release);

    // The callouts find the core through the shims' published pointer: publish before any callout
    // is registered.
    shims::publish(state);
    // SAFETY: WdfDeviceWdmGetDeviceObject on the live control device; PASSIVE_LEVEL.
    let device_object = unsafe { call_unsafe_wdf_function_binding!(WdfDeviceWdmGetDeviceObject, objects.device) };
    let functions = CalloutFunctions {
        classify: Some(shims::classify),
        notify: Some(shims::notify),
        flow_delete: Some(shims::flow_delete),
    };
    let table = CalloutFunctionTable {
        auth_connect: functions,
        resource_assignment: functions,
        endpoint_closure: functions,
        resource_release: functions,
        flow_established: functions,
        stream: functions,
    };
    // SAFETY: `device_object` is the control device's, which lives until unload deletes it after
    // every callout is unregistered; the shims implement the FWPS_CALLOUT contracts and are part
    // of this image; every engine method is called at PASSIVE_LEVEL (DriverEntry, unload).
    let mut engine = unsafe { KernelFilterEngine::new(device_object.cast(), table) };
    let registration = match registration::register(&mut engine, &TOLLGATE_PLAN) {
        Ok(registration) => registration,
        Err(error) => {
            // register() already unwound WFP; undo the rest.
            let status = error.status;
            let _ = shims::retire(relax);
            delete_device(&objects);
            // SAFETY: retired: no callout can reach `state` any more.
            unsafe { free_leaked(core::ptr::from_ref(state).cast_mut()) };
            return status;
        }
    };
    let stream_id = |layer| registration.callout(layer).map_or(0, |callout| callout.runtime_id);
    state.set_stream_callout_ids(stream_id(TollgateLayer::StreamV4), stream_id(TollgateLayer::StreamV6));

    let shell = Shell {
        state,
        slot: ServiceSlot::new(),
        device: objects.device,
        parked: objects.parked,
        dpc: objects.dpc,
        timer: objects.timer,
        engine,
        registration: Some(registration),
    };
    let shell = match try_leak(shell) {
        Ok(shell) => shell,
        Err(mut shell) => {
            teardown(&mut shell);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    };
    CLOSING.store(false, Ordering::SeqCst);
    SHELL.store(shell, Ordering::SeqCst);
    // SAFETY: the timer was created above with the device as parent; PASSIVE_LEVEL.
    let _ = unsafe { call_unsafe_wdf_function_binding!(WdfTimerStart, objects.timer, TIMER_DUE_TIME) };
    STATUS_SUCCESS
}

struct DeviceObjects {
    device: WDFDEVICE,
    parked: WDFQUEUE,
    dpc: WDFDPC,
    timer: WDFTIMER,
}

fn child_attributes(parent: WDFDEVICE) -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        Size: wdf_size::<WDF_OBJECT_ATTRIBUTES>(),
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ParentObject: parent.cast(),
        ..WDF_OBJECT_ATTRIBUTES::default()
    }
}

/// The control device and its children. IRQL: PASSIVE_LEVEL.
fn create_device(driver: WDFDRIVER) -> Result<DeviceObjects, NTSTATUS> {
    let sddl = unicode(&SDDL);
    // SAFETY: `driver` is the framework driver object; `sddl` is a valid UNICODE_STRING over a
    // static buffer; PASSIVE_LEVEL.
    let mut init: PWDFDEVICE_INIT =
        unsafe { call_unsafe_wdf_function_binding!(WdfControlDeviceInitAllocate, driver, &sddl) };
    if init.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `init` is the live WDFDEVICE_INIT just allocated.
    unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitSetCharacteristics, init, FILE_DEVICE_SECURE_OPEN, 1) };
    let name = unicode(&DEVICE_NAME);
    // SAFETY: as above; `name` is a valid UNICODE_STRING the framework copies.
    let status = unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitAssignName, init, &name) };
    if status != STATUS_SUCCESS {
        // SAFETY: `init` was not consumed by WdfDeviceCreate; it must be freed by us.
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init) };
        return Err(status);
    }
    let mut file_config = WDF_FILEOBJECT_CONFIG {
        Size: wdf_size::<WDF_FILEOBJECT_CONFIG>(),
        EvtDeviceFileCreate: None,
        EvtFileClose: None,
        EvtFileCleanup: Some(evt_file_cleanup),
        AutoForwardCleanupClose: _WDF_TRI_STATE::WdfUseDefault,
        FileObjectClass: _WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCannotUseFsContexts,
        ..WDF_FILEOBJECT_CONFIG::default()
    };
    // SAFETY: `init` is live; `file_config` is a valid WDF_FILEOBJECT_CONFIG the framework copies.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetFileObjectConfig,
            init,
            &raw mut file_config,
            WDF_NO_OBJECT_ATTRIBUTES
        )
    };
    let mut device: WDFDEVICE = core::ptr::null_mut();
    // SAFETY: `init` is live; on success the framework takes it and sets it to NULL.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceCreate, &raw mut init, WDF_NO_OBJECT_ATTRIBUTES, &raw mut device)
    };
    if status != STATUS_SUCCESS {
        if !init.is_null() {
            // SAFETY: WdfDeviceCreate failed and left `init` to us.
            unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init) };
        }
        return Err(status);
    }
    match create_children(device) {
        Ok(objects) => Ok(objects),
        Err(status) => {
            // SAFETY: the device was created above and nothing else refers to it yet.
            unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, device as WDFOBJECT) };
            Err(status)
        }
    }
}

fn create_children(device: WDFDEVICE) -> Result<DeviceObjects, NTSTATUS> {
    let link = unicode(&LINK_NAME);
    // SAFETY: live device; valid UNICODE_STRING; PASSIVE_LEVEL.
    let status = unsafe { call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, &link) };
    if status != STATUS_SUCCESS {
        return Err(status);
    }

    // The default queue: parallel, not power-managed (a control device has no power policy).
    let mut config = WDF_IO_QUEUE_CONFIG {
        Size: wdf_size::<WDF_IO_QUEUE_CONFIG>(),
        PowerManaged: _WDF_TRI_STATE::WdfFalse,
        DefaultQueue: 1,
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel,
        EvtIoDeviceControl: Some(evt_io_device_control),
        ..WDF_IO_QUEUE_CONFIG::default()
    };
    // What WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE sets for a parallel queue: no limit.
    config.Settings.Parallel.NumberOfPresentedRequests = ULONG::MAX;
    let mut default_queue: WDFQUEUE = core::ptr::null_mut();
    // SAFETY: live device; valid config; PASSIVE_LEVEL.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &raw mut config,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut default_queue
        )
    };
    if status != STATUS_SUCCESS {
        return Err(status);
    }

    // The manual queue of parked GET_PENDED requests.
    let mut config = WDF_IO_QUEUE_CONFIG {
        Size: wdf_size::<WDF_IO_QUEUE_CONFIG>(),
        PowerManaged: _WDF_TRI_STATE::WdfFalse,
        DefaultQueue: 0,
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchManual,
        ..WDF_IO_QUEUE_CONFIG::default()
    };
    let mut parked: WDFQUEUE = core::ptr::null_mut();
    // SAFETY: as above.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &raw mut config,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut parked
        )
    };
    if status != STATUS_SUCCESS {
        return Err(status);
    }

    let mut dpc_config = WDF_DPC_CONFIG {
        Size: wdf_size::<WDF_DPC_CONFIG>(),
        EvtDpcFunc: Some(evt_dpc),
        AutomaticSerialization: 0,
        ..WDF_DPC_CONFIG::default()
    };
    let mut attributes = child_attributes(device);
    let mut dpc: WDFDPC = core::ptr::null_mut();
    // SAFETY: valid config and attributes (parent: the live device); PASSIVE_LEVEL.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfDpcCreate, &raw mut dpc_config, &raw mut attributes, &raw mut dpc)
    };
    if status != STATUS_SUCCESS {
        return Err(status);
    }

    let mut timer_config = WDF_TIMER_CONFIG {
        Size: wdf_size::<WDF_TIMER_CONFIG>(),
        EvtTimerFunc: Some(evt_timer),
        Period: TIMER_PERIOD_MS,
        AutomaticSerialization: 0,
        TolerableDelay: 0,
        ..WDF_TIMER_CONFIG::default()
    };
    let mut attributes = child_attributes(device);
    let mut timer: WDFTIMER = core::ptr::null_mut();
    // SAFETY: as above.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfTimerCreate, &raw mut timer_config, &raw mut attributes, &raw mut timer)
    };
    if status != STATUS_SUCCESS {
        return Err(status);
    }

    // SAFETY: the control device is fully set up; required once for a control device.
    unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
    Ok(DeviceObjects { device, parked, dpc, timer })
}

fn delete_device(objects: &DeviceObjects) {
    DPC.store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: PASSIVE_LEVEL; waits for a running timer callback / DPC to return.
    unsafe { call_unsafe_wdf_function_binding!(WdfTimerStop, objects.timer, 1) };
    // SAFETY: as above.
    let _ = unsafe { call_unsafe_wdf_function_binding!(WdfDpcCancel, objects.dpc, 1) };
    // SAFETY: PASSIVE_LEVEL; completes every parked request (STATUS_CANCELLED) and waits.
    unsafe { call_unsafe_wdf_function_binding!(WdfIoQueuePurgeSynchronously, objects.parked) };
    // SAFETY: the control device must be deleted by its driver; its children go with it.
    unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, objects.device as WDFOBJECT) };
}

/// `KeDelayExecutionThread` for 10 ms, through the core's platform. PASSIVE_LEVEL only.
fn relax() {
    KernelPlatform::new(DeferredWork::new(kick, core::ptr::null_mut())).relax_at_passive();
}

// ---------------------------------------------------------------- unload (S5)

/// EvtDriverUnload: the S5 order. PASSIVE_LEVEL.
pub(crate) fn unload() {
    CLOSING.store(true, Ordering::SeqCst);
    while ACTIVE.load(Ordering::SeqCst) != 0 {
        relax();
    }
    let shell = SHELL.swap(core::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: SHELL held the leaked Shell; the gate is closed and empty, so nothing else refers
    // to it.
    if let Some(shell) = unsafe { shell.as_mut() } {
        teardown(shell);
        // SAFETY: leaked by `initialize`; no callback can reach it (gate closed, device deleted).
        unsafe { free_leaked(core::ptr::from_mut(shell)) };
    }
}

fn teardown(shell: &mut Shell) {
    let state = shell.state;
    // 1. Every pend completed with the default verdict; new classifies decided inline. First,
    //    while the closure and release filters still deliver teardown notifications: a pend
    //    swept after they are gone may belong to an endpoint torn down in between, unseen, and
    //    completing it is the 0x50 of ARCHITECTURE.md §1 (the model's
    //    `a_teardown_at_any_point_of_unload_is_survived` shows it).
    let _ = state.core.begin_unload();
    // 2. Filters, session, callouts (flow contexts removed when a callout is busy).
    let mut safe_to_unload = true;
    if let Some(registration) = shell.registration.take() {
        let remove_flow_contexts = |_callout: &registration::RegisteredCallout| remove_all_flow_contexts(state);
        if let Err(error) =
            registration::unregister(&mut shell.engine, registration, remove_flow_contexts, MAX_BUSY_RETRIES)
        {
            safe_to_unload = error.is_safe_to_unload();
        }
    }
    // 3. No more timer/DPC callbacks; parked reads cancelled; device (and queues) deleted.
    delete_device(&DeviceObjects { device: shell.device, parked: shell.parked, dpc: shell.dpc, timer: shell.timer });
    // 4. Wait for every callback still inside the core, then for every shim.
    state.core.wait_for_callbacks();
    if !safe_to_unload {
        // A callout is still registered (FwpsFlowRemoveContext0 kept failing, so unregistering
        // stayed STATUS_DEVICE_BUSY): WFP may still call the shims, so the state they reach is
        // never freed (the link probe does the same). docs/security.md lists this residual risk.
        return;
    }
    if let Some(state) = shims::retire(relax) {
        // SAFETY: retired: no callout can reach the state, and the shell's gate is closed.
        unsafe { free_leaked(core::ptr::from_ref(state).cast_mut()) };
    }
}

/// `FwpsFlowRemoveContext0` for every flow the stream callout is inspecting. PASSIVE_LEVEL.
fn remove_all_flow_contexts(state: &DriverState) {
    let mut flows = Vec::new();
    if flows.try_reserve_exact(state.flows.live_count()).is_err() {
        return;
    }
    state.flows.live_flows(&mut flows);
    for (_, owner) in flows {
        // SUCCESS: flowDeleteFn already ran; PENDING: it will run. Either way the context is
        // being removed. https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowremovecontext0
        // SAFETY: plain values; PASSIVE_LEVEL.
        let _ =
            unsafe { tollgate_wfp_sys::FwpsFlowRemoveContext0(owner.flow_handle, owner.layer_id, owner.callout_id) };
    }
}

// ---------------------------------------------------------------- I/O callbacks

fn file_id(file: WDFFILEOBJECT) -> FileId {
    FileId(file as usize as u64)
}

/// EvtIoDeviceControl of the default queue. IRQL ≤ DISPATCH_LEVEL (PASSIVE in practice).
extern "C" fn evt_io_device_control(
    _queue: WDFQUEUE,
    request: WDFREQUEST,
    output_length: usize,
    input_length: usize,
    code: ULONG,
) {
    let Some(entered) = enter() else {
        complete(request, STATUS_DELETE_PENDING, 0);
        return;
    };
    let shell = entered.shell;
    // Only our METHOD_BUFFERED codes get their buffers touched: anything else (METHOD_NEITHER user
    // pointers included) is refused before a byte is read (S9).
    if Ioctl::from_code(code).is_err() {
        complete(request, STATUS_INVALID_DEVICE_REQUEST, 0);
        return;
    }
    let buffer = match system_buffer(request, input_length, output_length) {
        Ok(buffer) => buffer,
        Err(status) => {
            complete(request, status, 0);
            return;
        }
    };
    // SAFETY: live request of this callback.
    let file = file_id(unsafe { call_unsafe_wdf_function_binding!(WdfRequestGetFileObject, request) });
    let device = shell.control_device();
    match device.device_control(file, code, buffer, input_length, output_length) {
        Ok(Completion::Bytes(written)) => complete(request, STATUS_SUCCESS, written),
        Ok(Completion::Park) => {
            // SAFETY: live request; the manual queue is the shell's.
            let status =
                unsafe { call_unsafe_wdf_function_binding!(WdfRequestForwardToIoQueue, request, shell.parked) };
            if status == STATUS_SUCCESS {
                // A connection may have pended between the check and the forward.
                kick(core::ptr::null_mut());
            } else {
                complete(request, status, 0);
            }
        }
        Err(status) => complete(request, status, 0),
    }
}

/// The METHOD_BUFFERED system buffer: one buffer of `max(input, output)` bytes holding the input.
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/buffer-descriptions-for-i-o-control-codes>
fn system_buffer<'request>(request: WDFREQUEST, input: usize, output: usize) -> Result<&'request mut [u8], NTSTATUS> {
    let length = input.max(output);
    if length == 0 {
        return Ok(&mut []);
    }
    let mut pointer: *mut c_void = core::ptr::null_mut();
    let mut actual: usize = 0;
    let status = if input >= output {
        // SAFETY: live request; out-pointers are locals.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveInputBuffer,
                request,
                0,
                &raw mut pointer,
                &raw mut actual
            )
        }
    } else {
        // SAFETY: as above.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputBuffer,
                request,
                0,
                &raw mut pointer,
                &raw mut actual
            )
        }
    };
    if status != STATUS_SUCCESS || pointer.is_null() || actual < length {
        return Err(if status == STATUS_SUCCESS { STATUS_INVALID_DEVICE_REQUEST } else { status });
    }
    // SAFETY: for METHOD_BUFFERED both retrieve calls return the I/O manager's system buffer of
    // max(input, output) bytes (checked: `actual >= length`), nonpaged, exclusively ours until
    // the request completes; the caller drops the slice before it completes the request.
    Ok(unsafe { core::slice::from_raw_parts_mut(pointer.cast::<u8>(), length) })
}

fn complete(request: WDFREQUEST, status: NTSTATUS, information: usize) {
    // SAFETY: live request owned by this driver, completed exactly once on every path.
    unsafe {
        call_unsafe_wdf_function_binding!(WdfRequestCompleteWithInformation, request, status, information as ULONG_PTR)
    };
}

/// Fills parked GET_PENDED requests while there are undelivered connections or queued stream
/// events (the 100 ms timer bounds how late an event is noticed). IRQL ≤ DISPATCH.
fn fill_parked(shell: &Shell) {
    let device = shell.control_device();
    while device.has_work() {
        let mut request: WDFREQUEST = core::ptr::null_mut();
        // SAFETY: the shell's manual queue; out-pointer is a local; ≤ DISPATCH_LEVEL.
        let status =
            unsafe { call_unsafe_wdf_function_binding!(WdfIoQueueRetrieveNextRequest, shell.parked, &raw mut request) };
        if status != STATUS_SUCCESS {
            return;
        }
        let mut pointer: *mut c_void = core::ptr::null_mut();
        let mut length: usize = 0;
        // SAFETY: the request is ours (retrieved above); out-pointers are locals.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputBuffer,
                request,
                MIN_GET_PENDED_OUTPUT,
                &raw mut pointer,
                &raw mut length
            )
        };
        if status != STATUS_SUCCESS || pointer.is_null() {
            complete(request, status, 0);
            continue;
        }
        // SAFETY: the METHOD_BUFFERED system buffer of `length` bytes, ours until completion.
        let buffer = unsafe { core::slice::from_raw_parts_mut(pointer.cast::<u8>(), length) };
        // SAFETY: live request.
        let file = file_id(unsafe { call_unsafe_wdf_function_binding!(WdfRequestGetFileObject, request) });
        match device.device_control(file, IOCTL_TOLLGATE_GET_PENDED, buffer, 0, length) {
            Ok(Completion::Bytes(written)) => complete(request, STATUS_SUCCESS, written),
            Ok(Completion::Park) => {
                // Raced with another reader: back to the head of the queue.
                // SAFETY: the request came from this manual queue.
                let _ = unsafe { call_unsafe_wdf_function_binding!(WdfRequestRequeue, request) };
                return;
            }
            Err(status) => complete(request, status, 0),
        }
    }
}

/// EvtDpcFunc: the core's deferred work, then the inverted call. DISPATCH_LEVEL.
extern "C" fn evt_dpc(_dpc: WDFDPC) {
    if let Some(entered) = enter() {
        let _ = entered.shell.state.core.run_deferred_work();
        fill_parked(entered.shell);
    }
}

/// EvtTimerFunc: pend timeouts (S7) and any parked read left behind. DISPATCH_LEVEL.
extern "C" fn evt_timer(_timer: WDFTIMER) {
    if let Some(entered) = enter() {
        let _ = entered.shell.state.core.run_deferred_work();
        fill_parked(entered.shell);
    }
}

/// EvtFileCleanup: the last handle of a file object is closed. If it was the verdict service,
/// every pend gets the default verdict now (S7); its parked reads are cancelled. PASSIVE_LEVEL.
extern "C" fn evt_file_cleanup(file: WDFFILEOBJECT) {
    let Some(entered) = enter() else {
        return;
    };
    let shell = entered.shell;
    let _ = shell.control_device().cleanup(file_id(file));
    loop {
        let mut request: WDFREQUEST = core::ptr::null_mut();
        // SAFETY: the shell's manual queue and the file being cleaned up; out-pointer is a local.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfIoQueueRetrieveRequestByFileObject,
                shell.parked,
                file,
                &raw mut request
            )
        };
        if status != STATUS_SUCCESS {
            break;
        }
        complete(request, STATUS_CANCELLED, 0);
    }
}
