//! The control device (`\Device\Tollgate`, `\\.\Tollgate`) as the driver sees it, FFI-free.
//!
//! The KMDF shell's `EvtDeviceFileCreate`, `EvtFileCleanup` and `EvtIoDeviceControl` are thin
//! calls into [`ControlDevice`]; the WFP model's device in `tollgatectl` makes the same calls, so
//! the code that turns IOCTL bytes into core operations is the code that is tested here.
//!
//! # Roles
//! Any handle the device ACL admits (SYSTEM and Administrators only, S9) may say HELLO, read the
//! statistics and read the configuration. One handle at a time is **the verdict service**: the
//! first one that reads pended connections, submits verdicts, sets the configuration, reads stream
//! events or pushes the domain blocklist claims the role, and keeps it until its cleanup. Another
//! handle asking for those gets `STATUS_SHARING_VIOLATION`. When the service's handle is cleaned up
//! (the process exited or crashed), every pend gets the default verdict at once (S7); the domain
//! blocklist stays as it was (blocking what the last service asked to block is the fail-closed
//! choice), and the next service replaces it.
//!
//! # Stream events and the blocklist
//! `GET_STREAM_EVENTS` is polled, never parked: it drains what the stream callout queued (possibly
//! nothing). `PUSH_BLOCKLIST` builds the whole new set first (allocation may fail:
//! `STATUS_INSUFFICIENT_RESOURCES`, nothing changed), then swaps it in without waiting for any
//! classify; if a classify is still reading the list from two pushes ago, the push answers
//! [`STATUS_DEVICE_BUSY`] and the service tries again.
//!
//! # The inverted call
//! `GET_PENDED` with nothing to deliver returns [`Completion::Park`]: the shell keeps the request
//! in its manual queue and retries it when a classify pends a new connection, or when the stream
//! callout has queued events ([`ControlDevice::has_work`]; the read then completes with an empty
//! batch, and the service reads the events). Nothing here blocks.
//!
//! # IRQL
//! Every method runs at PASSIVE_LEVEL in the shell (I/O callbacks of a control device), and is
//! DISPATCH-safe anyway (it only calls the core and the stream table, which are; the blocklist
//! push allocates from nonpaged pool and frees the list it replaces).
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use tollgate_core::stream::{BlocklistError, DomainBlocklist, DomainSet, FlowTable};
use tollgate_core::{Core, CoreError, Platform};
use tollgate_protocol::error::{STATUS_IMPLEMENTATION_LIMIT, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER};
use tollgate_protocol::{
    BatchWriter, DeviceStats, DriverLimits, HelloReply, Ioctl, MAX_BATCH_RECORDS, ProtocolError, StreamEventWriter,
    VerdictResult, decode_blocklist, decode_config, decode_hello_request, encode_config, encode_hello_reply,
    encode_stats, respond_to_verdicts,
};

/// `STATUS_SHARING_VIOLATION`: another handle is the verdict service (ntstatus.h).
pub const STATUS_SHARING_VIOLATION: i32 = 0xC000_0043_u32 as i32;
/// `STATUS_DELETE_PENDING`: the driver is unloading (ntstatus.h).
pub const STATUS_DELETE_PENDING: i32 = 0xC000_0056_u32 as i32;
/// `STATUS_INSUFFICIENT_RESOURCES`: an allocation failed (ntstatus.h).
pub const STATUS_INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32 as i32;
/// `STATUS_DEVICE_BUSY`: the blocklist could not be swapped right now; try again (ntstatus.h).
/// A warning status (severity 2): user mode sees `ERROR_BUSY`.
pub const STATUS_DEVICE_BUSY: i32 = 0x8000_0011_u32 as i32;

/// Identifies one open handle (the shell passes its `WDFFILEOBJECT` value; it never leaves the
/// kernel). Must not be 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId(pub u64);

/// How to complete a device-control request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Complete with `STATUS_SUCCESS` and `Information` = this many bytes.
    Bytes(usize),
    /// `GET_PENDED` with nothing to deliver: keep the request queued and retry later.
    Park,
}

/// The stream callout's state that the control device serves: its events and its blocklist.
pub struct StreamParts<'a, P: Platform> {
    /// The flow table (events, counters).
    pub flows: &'a FlowTable<P::Lock>,
    /// The domain blocklist (`PUSH_BLOCKLIST` replaces it).
    pub blocklist: &'a DomainBlocklist,
}

impl<P: Platform> Clone for StreamParts<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Platform> Copy for StreamParts<'_, P> {}

/// The control device's state over the core and the stream callout.
pub struct ControlDevice<'a, P: Platform> {
    core: &'a Core<P>,
    stream: StreamParts<'a, P>,
    /// The service role and the device's counters.
    slot: &'a ServiceSlot,
}

/// Where a [`ControlDevice`] keeps the service role (lives in the driver's device context).
#[derive(Debug, Default)]
pub struct ServiceSlot {
    /// The verdict service's handle, or 0.
    holder: AtomicU64,
    /// Requests completed with an error status (for `GET_STATS`).
    rejected: AtomicU64,
}

impl ServiceSlot {
    /// No service yet.
    #[must_use]
    pub const fn new() -> ServiceSlot {
        ServiceSlot { holder: AtomicU64::new(0), rejected: AtomicU64::new(0) }
    }

    /// Whether a handle holds the service role.
    #[must_use]
    pub fn is_claimed(&self) -> bool {
        self.holder.load(Ordering::Acquire) != 0
    }

    /// Requests the device refused so far (malformed, wrong role, unknown code).
    #[must_use]
    pub fn rejected_ioctls(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

fn status(error: ProtocolError) -> i32 {
    error.ntstatus()
}

impl<'a, P: Platform> ControlDevice<'a, P> {
    /// The device over `core` and the stream callout's `stream` state, with its service role kept
    /// in `slot`.
    pub fn new(core: &'a Core<P>, stream: StreamParts<'a, P>, slot: &'a ServiceSlot) -> Self {
        ControlDevice { core, stream, slot }
    }

    /// Whether a parked `GET_PENDED` would complete now: a connection is waiting to be delivered,
    /// or stream events are. The shell's DPC and timer fill parked reads while this holds.
    /// IRQL: ≤ DISPATCH_LEVEL.
    #[must_use]
    pub fn has_work(&self) -> bool {
        self.core.has_undelivered() || self.stream.flows.queued_events() > 0
    }

    /// `EvtFileCleanup`: if `file` is the verdict service, it is gone: every pend gets the default
    /// verdict. Returns how many pends that resolved.
    pub fn cleanup(&self, file: FileId) -> u32 {
        if self.slot.holder.compare_exchange(file.0, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.core.detach_service()
        } else {
            0
        }
    }

    /// Claims the service role for `file`, or confirms it holds it.
    fn claim(&self, file: FileId) -> Result<(), i32> {
        if file.0 == 0 {
            return Err(STATUS_INVALID_PARAMETER);
        }
        match self.slot.holder.compare_exchange(0, file.0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => match self.core.attach_service() {
                Ok(()) => Ok(()),
                Err(error) => {
                    self.slot.holder.store(0, Ordering::Release);
                    Err(match error {
                        CoreError::Unloading => STATUS_DELETE_PENDING,
                        _ => STATUS_SHARING_VIOLATION,
                    })
                }
            },
            Err(holder) if holder == file.0 => Ok(()),
            Err(_) => Err(STATUS_SHARING_VIOLATION),
        }
    }

    /// `EvtIoDeviceControl` for a `METHOD_BUFFERED` request: `buffer` is the system buffer
    /// (`max(input, output)` bytes), the first `input_len` of which hold the input.
    ///
    /// # Errors
    /// The NTSTATUS to complete the request with: the protocol error's specific status for a
    /// malformed request, [`STATUS_SHARING_VIOLATION`] for a verdict-service IOCTL from another
    /// handle, [`STATUS_DELETE_PENDING`] while unloading. Nothing is changed on error.
    pub fn device_control(
        &self,
        file: FileId,
        code: u32,
        buffer: &mut [u8],
        input_len: usize,
        output_len: usize,
    ) -> Result<Completion, i32> {
        let result = self.dispatch(file, code, buffer, input_len, output_len);
        if result.is_err() {
            self.slot.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn dispatch(
        &self,
        file: FileId,
        code: u32,
        buffer: &mut [u8],
        input_len: usize,
        output_len: usize,
    ) -> Result<Completion, i32> {
        let ioctl = Ioctl::from_code(code).map_err(status)?;
        ioctl.check_lengths(input_len, output_len).map_err(status)?;
        if input_len > buffer.len() || output_len > buffer.len() {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        match ioctl {
            Ioctl::Hello => {
                let request = decode_hello_request(buffer.get(..input_len).unwrap_or_default()).map_err(status)?;
                let reply = HelloReply::answer(&request, DriverLimits::PROTOCOL);
                let out = buffer.get_mut(..output_len).unwrap_or_default();
                encode_hello_reply(&reply, out).map(Completion::Bytes).map_err(status)
            }
            Ioctl::GetPended => {
                self.claim(file)?;
                let out = buffer.get_mut(..output_len).unwrap_or_default();
                let mut writer = BatchWriter::with_max_records(out, MAX_BATCH_RECORDS).map_err(status)?;
                // A connection that does not fit stays undelivered for the next read.
                self.core.deliver_pending(MAX_BATCH_RECORDS as usize, |connection| writer.push(connection).is_ok());
                // Stream events waiting also end the wait, with an empty batch: the service then
                // reads them with GET_STREAM_EVENTS (its handle is synchronous, so this parked
                // read is the only thing that can wake it).
                if writer.is_empty() && self.stream.flows.queued_events() == 0 {
                    Ok(Completion::Park)
                } else {
                    Ok(Completion::Bytes(writer.finish()))
                }
            }
            Ioctl::SubmitVerdicts => {
                self.claim(file)?;
                respond_to_verdicts(buffer, input_len, output_len, |id, verdict| {
                    VerdictResult::from(self.core.apply_verdict(id, verdict))
                })
                .map(Completion::Bytes)
                .map_err(status)
            }
            Ioctl::GetStats => {
                let out = buffer.get_mut(..output_len).unwrap_or_default();
                let stream = self.stream.flows.stats(self.stream.blocklist);
                let device = DeviceStats { rejected_ioctls: self.slot.rejected_ioctls() };
                encode_stats(&self.core.stats(), &stream, &device, out).map(Completion::Bytes).map_err(status)
            }
            Ioctl::SetConfig => {
                let config = decode_config(buffer.get(..input_len).unwrap_or_default()).map_err(status)?;
                self.claim(file)?;
                match self.core.set_runtime_config(config) {
                    Ok(()) => Ok(Completion::Bytes(0)),
                    Err(CoreError::Unloading) => Err(STATUS_DELETE_PENDING),
                    Err(_) => Err(STATUS_INVALID_PARAMETER),
                }
            }
            Ioctl::GetConfig => {
                let out = buffer.get_mut(..output_len).unwrap_or_default();
                encode_config(&self.core.runtime_config(), out).map(Completion::Bytes).map_err(status)
            }
            Ioctl::GetStreamEvents => {
                // Reading consumes the events, so it belongs to the verdict service alone.
                self.claim(file)?;
                let out = buffer.get_mut(..output_len).unwrap_or_default();
                let mut writer = StreamEventWriter::with_max_records(out, MAX_BATCH_RECORDS).map_err(status)?;
                // Polled, never parked: an empty batch is a valid answer. An event that does not
                // fit stays first in the queue for the next read.
                self.stream.flows.drain_events(MAX_BATCH_RECORDS as usize, |event| writer.push(event).is_ok());
                Ok(Completion::Bytes(writer.finish()))
            }
            Ioctl::PushBlocklist => {
                let list = decode_blocklist(buffer.get(..input_len).unwrap_or_default()).map_err(status)?;
                self.claim(file)?;
                // Built completely (fallible allocation, PASSIVE_LEVEL) before anything changes;
                // the swap itself never waits for a classify.
                let set = DomainSet::build(list.iter()).map_err(|error| match error {
                    BlocklistError::OutOfMemory => STATUS_INSUFFICIENT_RESOURCES,
                    BlocklistError::TooLarge => STATUS_IMPLEMENTATION_LIMIT,
                    // The decoder already checked every name.
                    BlocklistError::InvalidPattern { .. } => STATUS_INVALID_PARAMETER,
                })?;
                self.stream.blocklist.replace(set).map_err(|_| STATUS_DEVICE_BUSY)?;
                Ok(Completion::Bytes(0))
            }
        }
    }
}

/// `CoreError` → NTSTATUS, for the shell's DriverEntry messages.
#[must_use]
pub const fn core_error_status(error: CoreError) -> i32 {
    match error {
        CoreError::OutOfMemory => STATUS_INSUFFICIENT_RESOURCES,
        CoreError::InvalidConfig => STATUS_INVALID_PARAMETER,
        CoreError::ServiceBusy => STATUS_SHARING_VIOLATION,
        CoreError::Unloading => STATUS_DELETE_PENDING,
    }
}
