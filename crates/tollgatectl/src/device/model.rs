//! The control device on the WFP model: Tollgate's real control logic
//! ([`tollgate_control::ControlDevice`], the code the KMDF shell calls), and the naive driver's
//! minimal equivalent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tollgate_control::{Completion, ControlDevice as DriverSide, FileId, ServiceSlot, StreamParts};
use tollgate_core::{ConnectionFacts, Direction, PendId, PendLayer, PendedConnection};
use tollgate_protocol::{
    BatchWriter, DriverLimits, HelloReply, Ioctl, MAX_BATCH_RECORDS, VerdictResult, decode_hello_request,
    encode_config, encode_hello_reply, respond_to_verdicts,
};
use tollgate_wfp_model::Engine;
use tollgate_wfp_model::drivers::naive::NaiveDriver;
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;

use super::{ControlDevice, STATUS_INVALID_HANDLE};

/// Runs one METHOD_BUFFERED request the way the I/O manager does: one system buffer of
/// `max(input, output)` bytes holding the input, the output copied back.
fn buffered(
    input: &[u8],
    output: &mut [u8],
    dispatch: impl FnOnce(&mut [u8], usize, usize) -> Result<usize, i32>,
) -> Result<usize, i32> {
    let mut system_buffer = vec![0_u8; input.len().max(output.len())];
    if let Some(head) = system_buffer.get_mut(..input.len()) {
        head.copy_from_slice(input);
    }
    let written = dispatch(&mut system_buffer, input.len(), output.len())?;
    let (Some(target), Some(source)) = (output.get_mut(..written), system_buffer.get(..written)) else {
        return Ok(0);
    };
    target.copy_from_slice(source);
    Ok(written)
}

/// `\\.\Tollgate` on the model, over Tollgate's driver.
pub struct TollgateModelDevice {
    driver: Arc<TollgateDriver>,
    slot: ServiceSlot,
    handle: Mutex<Option<FileId>>,
    next_file: AtomicU64,
}

impl TollgateModelDevice {
    /// The device of `driver`.
    #[must_use]
    pub fn new(driver: Arc<TollgateDriver>) -> TollgateModelDevice {
        TollgateModelDevice { driver, slot: ServiceSlot::new(), handle: Mutex::new(None), next_file: AtomicU64::new(0) }
    }
}

impl TollgateModelDevice {
    /// The driver side of the device: the control logic the KMDF shell calls.
    fn driver_side(&self) -> DriverSide<'_, tollgate_wfp_model::platform::ModelPlatform> {
        let stream = StreamParts { flows: self.driver.flows(), blocklist: self.driver.blocklist() };
        DriverSide::new(self.driver.core(), stream, &self.slot)
    }
}

impl ControlDevice for TollgateModelDevice {
    fn open(&self) -> Result<(), i32> {
        let file =
            FileId(0xFFFF_C000_0000_0000 | self.next_file.fetch_add(0x100, Ordering::Relaxed).wrapping_add(0x100));
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
        Ok(())
    }

    fn close(&self) {
        let file = self.handle.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(file) = file {
            self.driver_side().cleanup(file);
        }
    }

    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        let file = (*self.handle.lock().unwrap_or_else(PoisonError::into_inner)).ok_or(STATUS_INVALID_HANDLE)?;
        let device = self.driver_side();
        buffered(input, output, |buffer, input_len, output_len| {
            match device.device_control(file, code, buffer, input_len, output_len)? {
                Completion::Bytes(n) => Ok(n),
                // The shell would park the request; the model's service polls instead.
                Completion::Park => Ok(0),
            }
        })
    }
}

/// The naive driver's device: the same IOCTLs, answered with no checks at all.
pub struct NaiveModelDevice {
    engine: Arc<Engine>,
    naive: Arc<NaiveDriver>,
    delivered: Mutex<u64>,
}

impl NaiveModelDevice {
    /// The device of the naive driver.
    #[must_use]
    pub fn new(engine: Arc<Engine>, naive: Arc<NaiveDriver>) -> NaiveModelDevice {
        NaiveModelDevice { engine, naive, delivered: Mutex::new(0) }
    }

    /// Connections delivered to user mode and not answered yet.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        usize::try_from(*self.delivered.lock().unwrap_or_else(PoisonError::into_inner)).unwrap_or(usize::MAX)
    }
}

impl ControlDevice for NaiveModelDevice {
    fn open(&self) -> Result<(), i32> {
        Ok(())
    }

    fn close(&self) {}

    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        let ioctl = Ioctl::from_code(code).map_err(|e| e.ntstatus())?;
        buffered(input, output, |buffer, input_len, output_len| match ioctl {
            Ioctl::Hello => {
                let request =
                    decode_hello_request(buffer.get(..input_len).unwrap_or_default()).map_err(|e| e.ntstatus())?;
                // The naive driver has no stream events and no blocklist.
                let reply = HelloReply { capabilities: 0, ..HelloReply::answer(&request, DriverLimits::PROTOCOL) };
                encode_hello_reply(&reply, buffer.get_mut(..output_len).unwrap_or_default()).map_err(|e| e.ntstatus())
            }
            Ioctl::GetConfig => encode_config(
                &tollgate_core::RuntimeConfig::default(),
                buffer.get_mut(..output_len).unwrap_or_default(),
            )
            .map_err(|e| e.ntstatus()),
            Ioctl::GetPended => {
                let batch = self.naive.take_pended(64);
                let now = self.engine.now();
                let mut writer =
                    BatchWriter::with_max_records(buffer.get_mut(..output_len).unwrap_or_default(), MAX_BATCH_RECORDS)
                        .map_err(|e| e.ntstatus())?;
                let mut count = 0_u64;
                for pended in &batch {
                    let connection = PendedConnection {
                        id: PendId::from_raw(pended.id),
                        facts: ConnectionFacts {
                            layer: PendLayer::AuthConnect,
                            protocol: pended.values.protocol.number(),
                            direction: Direction::Outbound,
                            local_address: pended.values.local.ip(),
                            local_port: pended.values.local.port(),
                            remote_address: pended.values.remote.ip(),
                            remote_port: pended.values.remote.port(),
                            process_id: pended.values.process_id,
                            app_path: &pended.values.app_id,
                        },
                        pended_at: now,
                    };
                    if writer.push(&connection).is_ok() {
                        count = count.saturating_add(1);
                    }
                }
                *self.delivered.lock().unwrap_or_else(PoisonError::into_inner) += count;
                Ok(if writer.is_empty() { 0 } else { writer.finish() })
            }
            Ioctl::SubmitVerdicts => respond_to_verdicts(buffer, input_len, output_len, |id, verdict| {
                let answered = self.naive.answer(&self.engine, id.to_raw(), verdict == tollgate_core::Verdict::Permit);
                let mut delivered = self.delivered.lock().unwrap_or_else(PoisonError::into_inner);
                *delivered = delivered.saturating_sub(1);
                if answered { VerdictResult::Accepted } else { VerdictResult::UnknownId }
            })
            .map_err(|e| e.ntstatus()),
            Ioctl::SetConfig | Ioctl::GetStats | Ioctl::GetStreamEvents | Ioctl::PushBlocklist => Ok(0),
        })
    }
}
