//! `DeviceIoControl` as the benchmarks model it, and the baseline's one-record-per-IOCTL device.
//!
//! Every IOCTL in the round trip goes through [`device_io_control`], which does what the I/O
//! manager does around a `METHOD_BUFFERED` dispatch routine: one user → kernel transition (one real
//! system call here), a system buffer of `max(input, output)` bytes with the input copied in, the
//! dispatch routine, and the `Information` bytes copied back out. A real `DeviceIoControl` on
//! Windows also builds an IRP and passes the WDF queue, so it costs more than this; the model is a
//! floor, which favours the one-per-IOCTL baseline.

use tollgate_control::{Completion, ControlDevice, FileId};
use tollgate_core::{Core, Platform};
use tollgate_protocol::{
    BatchWriter, HEADER_LEN, MIN_GET_PENDED_OUTPUT, VERDICT_RECORD_LEN, VerdictResult, respond_to_verdicts,
};

/// What one modelled IOCTL returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed with this many output bytes.
    Bytes(usize),
    /// Nothing to return yet (a parked read).
    Nothing,
}

/// The user → kernel transition: one real system call (`getpid`, uncached by glibc since 2.25).
pub fn kernel_transition() {
    core::hint::black_box(std::process::id());
}

/// One `METHOD_BUFFERED` IOCTL: transition, system buffer, dispatch, copy-out.
///
/// # Errors
/// The dispatch routine's NTSTATUS.
pub fn device_io_control(
    input: &[u8],
    output: &mut [u8],
    dispatch: impl FnOnce(&mut [u8], usize, usize) -> Result<Outcome, i32>,
) -> Result<Outcome, i32> {
    kernel_transition();
    let mut system = vec![0_u8; input.len().max(output.len())];
    if let Some(dest) = system.get_mut(..input.len()) {
        dest.copy_from_slice(input);
    }
    let outcome = dispatch(&mut system, input.len(), output.len())?;
    if let Outcome::Bytes(n) = outcome
        && let (Some(dest), Some(src)) = (output.get_mut(..n), system.get(..n))
    {
        dest.copy_from_slice(src);
    }
    Ok(outcome)
}

/// One IOCTL to Tollgate's real control device.
///
/// # Errors
/// The device's NTSTATUS.
pub fn tollgate_ioctl<P: Platform>(
    device: &ControlDevice<'_, P>,
    file: FileId,
    code: u32,
    input: &[u8],
    output: &mut [u8],
) -> Result<Outcome, i32> {
    device_io_control(input, output, |buffer, input_len, output_len| {
        match device.device_control(file, code, buffer, input_len, output_len)? {
            Completion::Bytes(n) => Ok(Outcome::Bytes(n)),
            Completion::Park => Ok(Outcome::Nothing),
        }
    })
}

/// `STATUS_INVALID_PARAMETER`.
const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;

/// The baseline's device: a read returns one pended connection, a write takes one verdict
/// (Portmaster's read/write pattern), over the same core and the same record encodings.
pub struct OnePerIoctlDevice<'a, P: Platform> {
    core: &'a Core<P>,
}

impl<'a, P: Platform> OnePerIoctlDevice<'a, P> {
    /// The device over `core`; the verdict service must already be attached to it.
    pub const fn new(core: &'a Core<P>) -> Self {
        OnePerIoctlDevice { core }
    }

    /// Read: one pended connection (one record), or nothing.
    ///
    /// # Errors
    /// A protocol error's NTSTATUS.
    pub fn read(&self, output: &mut [u8]) -> Result<Outcome, i32> {
        device_io_control(&[], output, |buffer, _, output_len| {
            let out = buffer.get_mut(..output_len).ok_or(STATUS_INVALID_PARAMETER)?;
            let mut writer = BatchWriter::with_max_records(out, 1).map_err(|error| error.ntstatus())?;
            if self.core.deliver_pending(1, |connection| writer.push(connection).is_ok()) == 0 {
                return Ok(Outcome::Nothing);
            }
            Ok(Outcome::Bytes(writer.finish()))
        })
    }

    /// Write: one verdict; the reply holds its result.
    ///
    /// # Errors
    /// A protocol error's NTSTATUS (also for a batch of more than one verdict).
    pub fn write(&self, input: &[u8], output: &mut [u8]) -> Result<Outcome, i32> {
        if input.len() != HEADER_LEN + VERDICT_RECORD_LEN {
            return Err(STATUS_INVALID_PARAMETER);
        }
        device_io_control(input, output, |buffer, input_len, output_len| {
            respond_to_verdicts(buffer, input_len, output_len, |id, verdict| {
                VerdictResult::from(self.core.apply_verdict(id, verdict))
            })
            .map(Outcome::Bytes)
            .map_err(|error| error.ntstatus())
        })
    }
}

/// The smallest read buffer either device accepts.
pub const READ_BUFFER_MIN: usize = MIN_GET_PENDED_OUTPUT;
