//! What a simulation saw, and how it is printed.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use tollgate_core::stream::{FlowEvent, FlowEventKind, StreamStats, StreamVerdict};
use tollgate_core::{StatsSnapshot, Ticks};
use tollgate_inspect::identity::{AppProtocol, Ech};
use tollgate_wfp_model::EngineReport;
use tollgate_wfp_model::drivers::tollgate::UnloadReport;

use super::SimConfig;
use crate::machine::TrafficCounts;

/// Verdict latency (pend → verdict applied), in model microseconds.
#[derive(Clone, Debug)]
pub struct LatencySummary {
    histogram: Option<Histogram<u64>>,
}

impl LatencySummary {
    fn new() -> LatencySummary {
        // 1 µs .. 1 h at 3 significant digits.
        LatencySummary { histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3).ok() }
    }

    pub(super) fn record(&mut self, latency: Ticks) {
        if let Some(histogram) = self.histogram.as_mut() {
            let micros = (latency.0 / 10).max(1);
            let _ = histogram.record(micros.min(histogram.high()));
        }
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.histogram.as_ref().map_or(0, Histogram::len)
    }

    /// The latency at `quantile` (0.0..=1.0), in microseconds.
    #[must_use]
    pub fn micros_at(&self, quantile: f64) -> u64 {
        self.histogram.as_ref().map_or(0, |h| h.value_at_quantile(quantile))
    }
}

/// What the stream callout reported, as the verdict service received it, and the driver's own
/// stream counters at the end.
#[derive(Clone, Debug, Default)]
pub struct StreamReport {
    /// `identified` events received.
    pub identified: u64,
    /// `closed` events received.
    pub closed: u64,
    /// Identified flows by protocol: TLS, HTTP, other (including unrecognised).
    pub tls: u64,
    /// See `tls`.
    pub http: u64,
    /// See `tls`.
    pub other: u64,
    /// Identified TLS flows that offered ECH (the SNI is then the public name).
    pub ech: u64,
    /// Identified flows with a name.
    pub named: u64,
    /// Flows dropped by the domain blocklist, by name.
    pub dropped_names: BTreeMap<String, u64>,
    /// The driver's stream counters at the end.
    pub driver: Option<StreamStats>,
    /// Reassembly buffers back in the pool at the end.
    pub free_buffers: usize,
    /// Reassembly buffers the driver has.
    pub total_buffers: usize,
}

impl StreamReport {
    pub(super) fn record_events(&mut self, events: &[FlowEvent]) {
        for event in events {
            match event.kind {
                FlowEventKind::Closed => self.closed = self.closed.saturating_add(1),
                FlowEventKind::Identified => {
                    self.identified = self.identified.saturating_add(1);
                    let identity = &event.identity;
                    let counter = match identity.protocol {
                        AppProtocol::Tls => &mut self.tls,
                        AppProtocol::Http => &mut self.http,
                        AppProtocol::Other | AppProtocol::Unknown => &mut self.other,
                    };
                    *counter = counter.saturating_add(1);
                    if identity.tls.ech == Ech::Outer {
                        self.ech = self.ech.saturating_add(1);
                    }
                    if let Some((_, name)) = identity.names.primary() {
                        self.named = self.named.saturating_add(1);
                        if event.verdict == StreamVerdict::Dropped {
                            *self.dropped_names.entry(format!("{name:?}")).or_insert(0) += 1;
                        }
                    }
                }
            }
        }
    }
}

/// The result of one simulation.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Whether the naive driver ran.
    pub naive: bool,
    /// What the simulated apps did: connections opened (TCP, UDP), closes, process kills, stream
    /// indications sent.
    pub traffic: TrafficCounts,
    /// Batches the service read.
    pub batches: u64,
    /// Verdicts the driver accepted.
    pub verdicts_accepted: u64,
    /// Verdicts the driver rejected (late, unknown: the connection was already resolved).
    pub verdicts_rejected: u64,
    /// Verdicts decided by a service that crashed before sending them.
    pub answers_lost_in_crash: u64,
    /// Service crashes.
    pub service_crashes: u64,
    /// Errors the service saw (other than device statuses).
    pub service_errors: Vec<String>,
    /// Device statuses the service saw, by NTSTATUS.
    pub device_errors: BTreeMap<i32, u64>,
    /// Verdict latency.
    pub latency: LatencySummary,
    /// Most table entries alive at once.
    pub peak_entries: u64,
    /// Model time at the end.
    pub model_millis: u64,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// What the driver's unload did.
    pub unload: Option<UnloadReport>,
    /// The model's own report: counters, bugcheck, hazards, leaks.
    pub engine: EngineReport,
    /// The driver's counters.
    pub core: Option<StatsSnapshot>,
    /// The stream callout.
    pub stream: StreamReport,
}

pub(super) fn millis_as_seconds(millis: u64) -> String {
    format!("{}.{:01}", millis / 1_000, (millis % 1_000) / 100)
}

fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{}.{:02} s", us / 1_000_000, (us % 1_000_000) / 10_000)
    } else if us >= 1_000 {
        format!("{}.{:01} ms", us / 1_000, (us % 1_000) / 100)
    } else {
        format!("{us} µs")
    }
}

impl SimReport {
    pub(super) fn new(config: &SimConfig) -> SimReport {
        SimReport {
            seed: config.seed,
            naive: config.naive.is_some(),
            traffic: TrafficCounts::default(),
            batches: 0,
            verdicts_accepted: 0,
            verdicts_rejected: 0,
            answers_lost_in_crash: 0,
            service_crashes: 0,
            service_errors: Vec::new(),
            device_errors: BTreeMap::new(),
            latency: LatencySummary::new(),
            peak_entries: 0,
            model_millis: 0,
            wall: Duration::ZERO,
            unload: None,
            engine: EngineReport::default(),
            core: None,
            stream: StreamReport::default(),
        }
    }

    pub(super) fn count_device_error(&mut self, status: i32) {
        *self.device_errors.entry(status).or_insert(0) += 1;
    }

    /// No bugcheck, no hazard, no leak (every reassembly buffer back in the pool included).
    #[must_use]
    pub fn passed(&self) -> bool {
        self.engine.bugcheck.is_none()
            && self.engine.hazards.is_empty()
            && self.engine.leaks.is_empty()
            && self.stream.free_buffers == self.stream.total_buffers
    }

    /// The report as the CLI prints it.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> fmt::Result {
        let counters = &self.engine.counters;
        let driver = if self.naive { "naive driver" } else { "Tollgate" };
        writeln!(out)?;
        writeln!(
            out,
            "Tollgate simulation — {driver} on the WFP model, seed {}: {} s of model time in {:.2?} wall",
            self.seed,
            millis_as_seconds(self.model_millis),
            self.wall
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "connections seen           {:>9}   (TCP {}, UDP {})",
            self.traffic.opened, self.traffic.tcp, self.traffic.udp
        )?;
        writeln!(out, "  allowed                  {:>9}", counters.established)?;
        writeln!(out, "  blocked                  {:>9}", counters.blocked)?;
        writeln!(out, "  torn down while pended   {:>9}", counters.torn_down_while_pended)?;
        writeln!(out, "  killed with their process{:>9}", self.traffic.process_kill_teardowns)?;
        if let Some(core) = &self.core {
            writeln!(out, "pends                      {:>9}", core.pended)?;
            writeln!(out, "  resolved by verdict      {:>9}", core.completed_by_verdict)?;
            writeln!(out, "  timed out (default)      {:>9}", core.completed_by_timeout)?;
            writeln!(out, "  by teardown              {:>9}", core.completed_by_teardown)?;
            writeln!(out, "  by service cleanup       {:>9}", core.completed_by_cleanup)?;
            writeln!(out, "  at unload                {:>9}", core.completed_by_unload)?;
            writeln!(
                out,
                "reauthorizations           {:>9}   (cache hits {}, misses {})",
                counters.reauthorizations, core.reauth_hits, core.reauth_misses
            )?;
            writeln!(
                out,
                "closure notifications pended {:>7}   (a completion was in flight; needs two CPUs: the loom models cover it)",
                counters.notifications_pended
            )?;
        }
        writeln!(
            out,
            "verdict service            {:>9} batches, {} verdicts accepted, {} rejected as late/unknown, \
             {} lost in {} crash(es)",
            self.batches,
            self.verdicts_accepted,
            self.verdicts_rejected,
            self.answers_lost_in_crash,
            self.service_crashes
        )?;
        for (status, count) in &self.device_errors {
            writeln!(out, "  device status 0x{:08X}    {count:>9}", *status as u32)?;
        }
        for error in self.service_errors.iter().take(5) {
            writeln!(out, "  service error: {error}")?;
        }
        writeln!(
            out,
            "verdict latency (model)    p50 {}  p90 {}  p99 {}  max {}   ({} samples)",
            micros(self.latency.micros_at(0.50)),
            micros(self.latency.micros_at(0.90)),
            micros(self.latency.micros_at(0.99)),
            micros(self.latency.micros_at(1.0)),
            self.latency.count()
        )?;
        writeln!(
            out,
            "entries at peak            {:>9}   (pended table; cap 4096), {} live connections at peak",
            self.peak_entries, counters.peak_live_connections
        )?;
        writeln!(
            out,
            "stream                     {:>9} indications, {} bytes, {} flows deleted",
            counters.stream_indications, counters.stream_bytes, counters.flow_deletes
        )?;
        if let Some(stream) = &self.stream.driver {
            let seen = &self.stream;
            writeln!(
                out,
                "stream inspection          {:>9} flows, {} named (TLS {}, HTTP {}, other {}; {} with ECH)",
                stream.flows_tracked, stream.flows_named, seen.tls, seen.http, seen.other, seen.ech
            )?;
            writeln!(
                out,
                "  dropped by blocklist     {:>9}   ({} patterns pushed by the service; {} connections reset)",
                stream.flows_dropped, stream.blocklist_patterns, counters.stream_drops
            )?;
            let mut dropped: Vec<(&String, &u64)> = seen.dropped_names.iter().collect();
            dropped.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (name, count) in dropped.iter().take(4) {
                writeln!(out, "    {name:<32} {count:>6}")?;
            }
            writeln!(
                out,
                "  not fully read           {:>9}   (no free buffer {}, byte/segment bound {}, table full {})",
                stream.flows_no_buffer + stream.flows_bounded + stream.flows_untracked,
                stream.flows_no_buffer,
                stream.flows_bounded,
                stream.flows_untracked
            )?;
            writeln!(
                out,
                "  events to the service    {:>9}   ({} identified, {} closed; {} lost while the queue was full)",
                seen.identified + seen.closed,
                seen.identified,
                seen.closed,
                stream.events_lost
            )?;
            writeln!(
                out,
                "  classifies saved         {:>9}   indications ({} bytes) passed without a classify after \
                 ALLOW_CONNECTION",
                counters.stream_indications_allowed_through, counters.stream_bytes_allowed_through
            )?;
            writeln!(
                out,
                "  buffers back in the pool {:>9}   of {} after unload{}",
                seen.free_buffers,
                seen.total_buffers,
                if seen.free_buffers == seen.total_buffers { "" } else { "   LEAK" }
            )?;
        }
        writeln!(out, "endpoint addresses reused  {:>9}", counters.endpoint_handles_reused)?;
        if let Some(unload) = &self.unload {
            writeln!(
                out,
                "unload                     {:>9} pends completed, {} flow contexts removed, {} busy retries",
                unload.pends_completed, unload.flow_contexts_removed, unload.unregister_retries
            )?;
        }
        writeln!(out)?;
        if self.engine.bugcheck.is_some() {
            writeln!(out, "leaks                            -   (not meaningful: the machine stopped)")?;
        } else {
            writeln!(out, "leaks                      {:>9}", self.engine.leaks.len())?;
            for leak in &self.engine.leaks {
                writeln!(out, "  {leak}")?;
            }
        }
        writeln!(out, "hazards                    {:>9}", self.engine.hazards.len())?;
        for hazard in self.engine.hazards.iter().take(10) {
            writeln!(out, "  {hazard}")?;
        }
        match &self.engine.bugcheck {
            Some(bugcheck) => {
                writeln!(out)?;
                writeln!(out, "The machine stopped (simulated bugcheck):")?;
                writeln!(out, "  {bugcheck}")?;
            }
            None if self.passed() => {
                writeln!(out)?;
                writeln!(out, "PASS: no bugcheck, no hazard, no leak.")?;
            }
            None => {
                writeln!(out)?;
                writeln!(out, "FAIL: see the hazards and leaks above.")?;
            }
        }
        Ok(())
    }
}
