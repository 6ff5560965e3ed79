//! Item 2: pend → verdict → complete, through the real protocol and control device, with the
//! verdict service in another thread.
//!
//! Two threads, pinned to CPUs 0 and 1 and started together:
//! - **the driver's classify side** pends connection after connection ([`Core::classify`], which
//!   copies the app path and calls `FwpsPendOperation0`), keeping at most `window` of them waiting
//!   for a verdict (a closed loop: a new connection arrives when an old one is answered);
//! - **the verdict service** waits for work (the parked `GET_PENDED` that the shell completes when a
//!   classify pends), reads what is pended with one IOCTL, decodes it, encodes one verdict per
//!   connection, submits them with one IOCTL (the control device applies them: claim, cache,
//!   `FwpsCompleteOperation0`), decodes the results, and runs the reauthorization classify each
//!   completion triggers (WFP runs it inside `FwpsCompleteOperation0`, so in this thread).
//!
//! The batch a read returns is whatever is pended, so at most `window`: batch size 1, 16 and 256 are
//! windows of 1, 16 and 256. The baseline ([`Service::OnePerIoctl`]) serves the same windows with
//! one read IOCTL per connection and one write IOCTL per verdict (Portmaster's pattern). Each IOCTL
//! is modelled by [`crate::ioctl::device_io_control`].
//!
//! Latency is from `FwpsPendOperation0` to `FwpsCompleteOperation0` of the same connection.
//!
//! Waiting is by spinning (then yielding, if another process holds the CPU): the service polls a
//! counter the classify side bumps after each published pend, which is when the shell's DPC would
//! complete the parked read. A real service would sleep in `DeviceIoControl` and pay a wake-up per
//! read; batching amortizes that too, so leaving it out favours the baseline.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_control::{ControlDevice, FileId, ServiceSlot, StreamParts};
use tollgate_core::host::AtomicRundown;
use tollgate_core::stream::{DomainBlocklist, FlowTable, FlowTableConfig};
use tollgate_core::{ClassifyDecision, Core, DecisionReason, Verdict};
use tollgate_protocol::{
    HEADER_LEN, IOCTL_TOLLGATE_GET_PENDED, IOCTL_TOLLGATE_SUBMIT_VERDICTS, MAX_BATCH_RECORDS, PENDED_FIXED_LEN,
    VERDICT_RECORD_LEN, VerdictEntry, VerdictResult, VerdictWriter, decode_pended_batch, decode_verdict_results,
};

use crate::ioctl::{OnePerIoctlDevice, Outcome, READ_BUFFER_MIN, tollgate_ioctl};
use crate::platform::{BenchPlatform, pin_to_cpu, wait_until};
use crate::workload::{app_path, core_config, number_of, request};

/// How the verdict service talks to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Tollgate: one `GET_PENDED` for everything pended, one `SUBMIT_VERDICTS` for all its verdicts.
    Batched,
    /// Baseline: one read IOCTL per connection, one write IOCTL per verdict.
    OnePerIoctl,
}

/// One run.
#[derive(Clone, Copy, Debug)]
pub struct RoundTrip {
    /// The service's pattern.
    pub service: Service,
    /// Connections waiting for a verdict at most (the largest batch a read can return).
    pub window: usize,
    /// Connections to pend and answer.
    pub connections: u64,
    /// Stamp every pend and record its latency.
    pub record_latency: bool,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct RoundTripResult {
    /// Verdicts applied (= connections).
    pub verdicts: u64,
    /// From the start signal to the last reauthorization.
    pub elapsed: Duration,
    /// IOCTLs the service issued (reads that found nothing are not counted: a parked read costs
    /// no IOCTL of its own).
    pub ioctls: u64,
    /// Pend → completion latencies in nanoseconds (empty unless recorded).
    pub latencies_ns: Vec<u64>,
}

impl RoundTripResult {
    /// Verdicts per second.
    #[must_use]
    pub fn verdicts_per_second(&self) -> u64 {
        let nanos = self.elapsed.as_nanos().max(1);
        u64::try_from(u128::from(self.verdicts) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
    }

    /// Latency percentiles in nanoseconds (`quantiles` in parts per 10,000), or `None` if none
    /// was recorded.
    #[must_use]
    pub fn percentiles(&self, quantiles_per_10k: &[u64]) -> Option<Vec<u64>> {
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).ok()?;
        for &latency in &self.latencies_ns {
            histogram.saturating_record(latency.max(1));
        }
        if histogram.is_empty() {
            return None;
        }
        Some(quantiles_per_10k.iter().map(|&q| histogram.value_at_quantile(u64_to_quantile(q))).collect())
    }
}

#[allow(clippy::float_arithmetic, reason = "hdrhistogram takes the quantile as an f64")]
fn u64_to_quantile(per_10k: u64) -> f64 {
    (per_10k.min(10_000) as f64) / 10_000.0
}

const SERVICE_FILE: FileId = FileId(0x5e41);

/// Runs the round trip.
///
/// # Panics
/// If anything is answered other than as expected (a broken benchmark, not a measurement).
#[must_use]
#[allow(clippy::panic, clippy::expect_used, reason = "benchmark harness: failing loudly is the point")]
pub fn run(run: RoundTrip) -> RoundTripResult {
    let window = run.window.clamp(1, MAX_BATCH_RECORDS as usize);
    let platform = if run.record_latency {
        BenchPlatform::with_latency(usize::try_from(run.connections).unwrap_or(usize::MAX))
    } else {
        BenchPlatform::new()
    };
    let capacity = u32::try_from(window * 2).unwrap_or(u32::MAX).max(64);
    let core = Core::new(platform, AtomicRundown::default(), core_config(capacity, 16_384)).expect("core");
    let flows = FlowTable::new(FlowTableConfig { flows: 16, reassembly_buffers: 1, events: 8, ..Default::default() })
        .expect("flow table");
    let blocklist = DomainBlocklist::new();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, StreamParts { flows: &flows, blocklist: &blocklist }, &slot);
    let one_per_ioctl = OnePerIoctlDevice::new(&core);
    match run.service {
        Service::Batched => {
            // The service's first read claims the role (and parks: nothing is pended yet).
            let mut buffer = vec![0_u8; READ_BUFFER_MIN];
            let first = tollgate_ioctl(&device, SERVICE_FILE, IOCTL_TOLLGATE_GET_PENDED, &[], &mut buffer);
            assert_eq!(first, Ok(Outcome::Nothing));
        }
        Service::OnePerIoctl => core.attach_service().expect("attach"),
    }

    // Pool-like frees for the cross-thread frees of the app-path copies (see `CountingAllocator`).
    let lookaside = crate::memory::set_lookaside(true);
    let go = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    // Connections the classify side has pended and published: what the shell's DPC, queued at the
    // end of a classify that pended, completes a parked read for.
    let published = AtomicU64::new(0);
    let path = app_path();
    let (elapsed, ioctls) = std::thread::scope(|scope| {
        scope.spawn(|| {
            pin_to_cpu(0);
            ready.fetch_add(1, Ordering::AcqRel);
            wait_until(|| go.load(Ordering::Acquire));
            produce(&core, &published, window, run.connections, &path);
        });
        let service = scope.spawn(|| {
            pin_to_cpu(1);
            ready.fetch_add(1, Ordering::AcqRel);
            wait_until(|| go.load(Ordering::Acquire));
            match run.service {
                Service::Batched => serve_batched(&device, &core, &published, window, run.connections),
                Service::OnePerIoctl => serve_one_per_ioctl(&one_per_ioctl, &core, &published, run.connections),
            }
        });
        // Both threads are waiting for the signal: thread start-up is not timed.
        wait_until(|| ready.load(Ordering::Acquire) == 2);
        let start = Instant::now();
        go.store(true, Ordering::Release);
        let ioctls = service.join().expect("service thread");
        (start.elapsed(), ioctls)
    });
    crate::memory::set_lookaside(lookaside);
    assert_eq!(core.platform().completed(), run.connections, "every connection was completed");
    RoundTripResult { verdicts: run.connections, elapsed, ioctls, latencies_ns: core.platform().latencies() }
}

/// The classify side: pends connections, keeping at most `window` unanswered.
#[allow(clippy::panic, reason = "benchmark harness")]
fn produce(core: &Core<BenchPlatform>, published: &AtomicU64, window: usize, connections: u64, path: &[u16]) {
    let window = window as u64;
    for n in 0..connections {
        wait_until(|| core.platform().pended() - core.platform().completed() < window);
        if !matches!(core.classify(request(n, false, (), path)), ClassifyDecision::Pended(_)) {
            panic!("connection {n} was not pended");
        }
        published.fetch_add(1, Ordering::Release);
    }
}

/// The reauthorization `FwpsCompleteOperation0` triggers for connection `n`.
#[allow(clippy::panic, reason = "benchmark harness")]
fn reauthorize(core: &Core<BenchPlatform>, n: u64) {
    match core.classify(request(n, true, (), &[])) {
        ClassifyDecision::Decide { verdict: Verdict::Permit, reason: DecisionReason::ReauthCached } => {}
        other => panic!("reauthorization of {n} answered {other:?}"),
    }
}

/// Read buffer for a window: room for `window` records with the benchmark's app path.
fn read_buffer_len(window: usize) -> usize {
    let record = (PENDED_FIXED_LEN + 2 * crate::workload::APP_PATH.len()).next_multiple_of(8);
    (HEADER_LEN + window * record).max(READ_BUFFER_MIN)
}

/// Tollgate's service: one read and one submit per batch. Returns the IOCTLs it issued.
#[allow(clippy::panic, clippy::expect_used, reason = "benchmark harness")]
fn serve_batched(
    device: &ControlDevice<'_, BenchPlatform>,
    core: &Core<BenchPlatform>,
    published: &AtomicU64,
    window: usize,
    connections: u64,
) -> u64 {
    let mut read = vec![0_u8; read_buffer_len(window)];
    let mut verdicts = vec![0_u8; HEADER_LEN + window * VERDICT_RECORD_LEN];
    let mut results = vec![0_u8; verdicts.len()];
    let mut numbers = Vec::with_capacity(window);
    let (mut answered, mut ioctls) = (0, 0);
    while answered < connections {
        // The parked read: the shell completes it when a classify has pended something (its DPC
        // is queued after the pend is published). Everything read before was answered.
        wait_until(|| published.load(Ordering::Acquire) > answered);
        let Outcome::Bytes(len) =
            tollgate_ioctl(device, SERVICE_FILE, IOCTL_TOLLGATE_GET_PENDED, &[], &mut read).expect("GET_PENDED")
        else {
            continue;
        };
        let batch = decode_pended_batch(read.get(..len).expect("read length")).expect("pended batch");
        let mut writer = VerdictWriter::new(&mut verdicts, MAX_BATCH_RECORDS).expect("verdict writer");
        numbers.clear();
        for record in &batch {
            writer.push(VerdictEntry { id: record.id, verdict: Verdict::Permit }).expect("verdict");
            numbers.push(number_of(record.local_port, record.remote_address).expect("connection number"));
        }
        let len = writer.finish();
        let input = verdicts.get(..len).expect("verdict length");
        let output = results.get_mut(..len).expect("result length");
        let Outcome::Bytes(out) =
            tollgate_ioctl(device, SERVICE_FILE, IOCTL_TOLLGATE_SUBMIT_VERDICTS, input, output).expect("SUBMIT")
        else {
            panic!("SUBMIT_VERDICTS parked");
        };
        let replies = decode_verdict_results(results.get(..out).expect("reply")).expect("results");
        assert!(replies.iter().all(|reply| reply.result == VerdictResult::Accepted), "every verdict accepted");
        for &n in &numbers {
            reauthorize(core, n);
        }
        answered += numbers.len() as u64;
        ioctls += 2;
    }
    ioctls
}

/// The baseline service: one read per connection, one write per verdict.
#[allow(clippy::panic, clippy::expect_used, reason = "benchmark harness")]
fn serve_one_per_ioctl(
    device: &OnePerIoctlDevice<'_, BenchPlatform>,
    core: &Core<BenchPlatform>,
    published: &AtomicU64,
    connections: u64,
) -> u64 {
    let mut read = vec![0_u8; READ_BUFFER_MIN];
    let mut verdict = [0_u8; HEADER_LEN + VERDICT_RECORD_LEN];
    let mut result = [0_u8; HEADER_LEN + VERDICT_RECORD_LEN];
    let (mut answered, mut ioctls) = (0, 0);
    while answered < connections {
        wait_until(|| published.load(Ordering::Acquire) > answered);
        let Outcome::Bytes(len) = device.read(&mut read).expect("read") else { continue };
        let batch = decode_pended_batch(read.get(..len).expect("read length")).expect("pended record");
        let record = batch.iter().next().expect("one record");
        let n = number_of(record.local_port, record.remote_address).expect("connection number");
        let mut writer = VerdictWriter::new(&mut verdict, 1).expect("verdict writer");
        writer.push(VerdictEntry { id: record.id, verdict: Verdict::Permit }).expect("verdict");
        let len = writer.finish();
        let Outcome::Bytes(out) = device.write(verdict.get(..len).expect("verdict"), &mut result).expect("write")
        else {
            panic!("write parked");
        };
        let replies = decode_verdict_results(result.get(..out).expect("reply")).expect("result");
        assert!(replies.iter().all(|reply| reply.result == VerdictResult::Accepted), "verdict accepted");
        reauthorize(core, n);
        answered += 1;
        ioctls += 2;
    }
    ioctls
}
