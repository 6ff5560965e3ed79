//! `tollgatectl simulate`: Tollgate's real driver logic and the real verdict service, run against
//! the WFP model under a realistic workload, ending with a report.
//!
//! A discrete-event simulation on the model's clock, seeded so that a run is reproducible:
//! processes open TCP and UDP connections (short- and long-lived, IPv4 and IPv6); endpoints are
//! torn down at random moments, including while their classify is pended; TCP flows carry stream
//! data of every shape the stream callout must survive; the verdict service reads batches through
//! the IOCTL protocol, decides with its rules, and answers after a latency that is usually short,
//! sometimes slow, now and then longer than the pend timeout; it also crashes and restarts. At the
//! end the service disconnects, the driver unloads (S5), and the model reports what it saw:
//! leaks and hazards must be zero.
//!
//! `--naive` runs the same workload on the naive driver: it ends in the simulated bugcheck.

mod report;
pub mod workload;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tollgate_core::{CoreConfig, Ticks, Verdict};
use tollgate_rules::RuleSet;
use tollgate_wfp_model::drivers::naive::NaiveDriver;
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;
use tollgate_wfp_model::{CloseKind, ConnId, Engine, EngineConfig, Phase, Protocol, StreamShape, connection_values};

pub use report::{LatencySummary, SimReport};

use crate::device::ControlDevice;
use crate::device::model::{NaiveModelDevice, TollgateModelDevice};
use crate::service::{ServiceError, VerdictService};
use workload::{APPS, ConnectionPlan, Process};

/// How long the machine runs on after the workload stops opening connections, in milliseconds
/// (longer than the pend timeout, so every pend is answered or timed out before the service stops).
const DRAIN_MS: u64 = 10_000;

/// The rules the simulated machine runs with (a realistic policy for the workload's apps).
pub const SIMULATION_RULES: &str = include_str!("rules.toml");

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds every random choice (workload, service, model).
    pub seed: u64,
    /// Connections to open.
    pub connections: u64,
    /// Model time over which they are opened, in milliseconds.
    pub duration_ms: u64,
    /// Processes running.
    pub processes: usize,
    /// Run the naive driver instead of Tollgate's (and which of its two bugs).
    pub naive: Option<NaiveMode>,
    /// Percentage of connections torn down at a random moment (RST, kill, abandon).
    pub early_teardown_percent: u32,
    /// Service crashes over the run (each followed by a restart).
    pub service_crashes: u32,
    /// Print progress lines to stderr.
    pub progress: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            connections: 20_000,
            duration_ms: 60_000,
            processes: 32,
            naive: None,
            early_teardown_percent: 15,
            service_crashes: 3,
            progress: true,
        }
    }
}

/// Which of the naive driver's callouts run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NaiveMode {
    /// Both: whichever crash the workload reaches first.
    Both,
    /// Only the pend-and-complete-later connect callout (the 0x50 crash).
    Connect,
    /// Only the stream callout that keeps `streamData` (the 0xD1 crash); connections are permitted.
    Stream,
}

/// Why a simulation could not run.
#[derive(Debug)]
pub enum SimError {
    /// The driver could not load on the model.
    Load(String),
    /// The simulation's rules did not parse.
    Rules(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Load(e) => write!(f, "the driver did not load on the model: {e}"),
            SimError::Rules(e) => write!(f, "the simulation rules are invalid: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

#[derive(Debug)]
enum Event {
    Open,
    Close(ConnId, CloseKind),
    Data { conn: ConnId, port: u16, index: u32 },
    ServicePoll,
    ServiceAnswer { incarnation: u32, verdicts: Vec<(u64, Verdict, u64)> },
    ServiceCrash,
    ServiceRestart,
    Timer,
    ProcessKill(usize),
}

/// The driver under test, as the simulation drives it.
enum Driver {
    Tollgate { driver: Arc<TollgateDriver>, device: TollgateModelDevice },
    Naive { device: NaiveModelDevice },
}

impl Driver {
    fn device(&self) -> &dyn ControlDevice {
        match self {
            Driver::Tollgate { device, .. } => device,
            Driver::Naive { device } => device,
        }
    }

    /// The timer DPC / work item (timeouts and deferred notifications).
    fn tick(&self) {
        if let Driver::Tollgate { driver, .. } = self {
            driver.run_timer();
        }
    }

    fn live_entries(&self) -> u64 {
        match self {
            Driver::Tollgate { driver, .. } => u64::from(driver.core().live_entries()),
            Driver::Naive { device } => device.outstanding() as u64,
        }
    }
}

struct Scheduler {
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    sequence: u64,
}

impl Scheduler {
    fn at(&mut self, time: Ticks, event: Event) {
        self.sequence = self.sequence.wrapping_add(1);
        self.queue.push(Reverse((time.0, self.sequence)));
        self.events.insert(self.sequence, event);
    }

    fn next(&mut self) -> Option<(Ticks, Event)> {
        let Reverse((time, sequence)) = self.queue.pop()?;
        let event = self.events.remove(&sequence)?;
        Some((Ticks(time), event))
    }
}

struct Sim<'a> {
    config: &'a SimConfig,
    rng: ChaCha8Rng,
    engine: Arc<Engine>,
    driver: Driver,
    service: VerdictService,
    service_up: bool,
    incarnation: u32,
    scheduler: Scheduler,
    processes: Vec<Process>,
    by_process: HashMap<usize, Vec<ConnId>>,
    plans: HashMap<ConnId, ConnectionPlan>,
    opened: u64,
    workload_over: bool,
    /// Set when the last connection is opened: the run stops `DRAIN_MS` later.
    stop_at: Option<Ticks>,
    report: SimReport,
    started: Instant,
    next_progress: u64,
}

/// Runs a simulation; progress goes to `progress` (stderr in the CLI).
///
/// # Errors
/// [`SimError`] when the driver cannot load or the rules do not parse.
pub fn run(config: &SimConfig, progress: &mut dyn Write) -> Result<SimReport, SimError> {
    let rules = RuleSet::parse(SIMULATION_RULES, "simulate/rules.toml").map_err(|e| SimError::Rules(e.to_string()))?;
    let engine = Engine::new(EngineConfig { seed: config.seed, deferred_flow_delete_percent: 50 });
    let driver = if let Some(mode) = config.naive {
        let naive = NaiveDriver::load_with(&engine, mode != NaiveMode::Stream, mode != NaiveMode::Connect);
        Driver::Naive { device: NaiveModelDevice::new(engine.clone(), naive) }
    } else {
        let driver =
            TollgateDriver::load(&engine, CoreConfig::default()).map_err(|e| SimError::Load(format!("{e:?}")))?;
        Driver::Tollgate { device: TollgateModelDevice::new(driver.clone()), driver }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let processes = (0..config.processes.max(1))
        .map(|i| Process { app: workload::pick_app(&mut rng), pid: 1_000 + 4 * i as u64 })
        .collect();
    let mut sim = Sim {
        config,
        rng,
        engine,
        driver,
        service: VerdictService::new(rules),
        service_up: false,
        incarnation: 0,
        scheduler: Scheduler { queue: BinaryHeap::new(), events: HashMap::new(), sequence: 0 },
        processes,
        by_process: HashMap::new(),
        plans: HashMap::new(),
        opened: 0,
        workload_over: false,
        stop_at: None,
        report: SimReport::new(config),
        started: Instant::now(),
        next_progress: 1,
    };
    sim.start();
    sim.run_events(progress);
    sim.finish();
    Ok(sim.report)
}

impl Sim<'_> {
    fn now(&self) -> Ticks {
        self.engine.now()
    }

    fn after_ms(&self, ms: u64) -> Ticks {
        self.now().saturating_add(Ticks::from_millis(ms))
    }

    fn after_us(&self, us: u64) -> Ticks {
        self.now().saturating_add(Ticks(us.saturating_mul(10)))
    }

    fn start(&mut self) {
        self.connect_service();
        let duration = self.config.duration_ms.max(1);
        self.scheduler.at(Ticks(0), Event::Open);
        self.scheduler.at(Ticks::from_millis(1), Event::ServicePoll);
        self.scheduler.at(Ticks::from_millis(50), Event::Timer);
        for _ in 0..self.config.service_crashes {
            let at = self.rng.random_range(duration / 10..duration.max(2));
            self.scheduler.at(Ticks::from_millis(at), Event::ServiceCrash);
        }
        // A few processes are killed outright during the run.
        for _ in 0..(self.config.processes / 8).max(1) {
            let at = self.rng.random_range(0..duration);
            let process = self.rng.random_range(0..self.processes.len());
            self.scheduler.at(Ticks::from_millis(at), Event::ProcessKill(process));
        }
    }

    fn connect_service(&mut self) {
        match self.service.connect(self.driver.device()) {
            Ok(()) => {
                self.service_up = true;
                self.incarnation = self.incarnation.wrapping_add(1);
            }
            Err(error) => self.report.service_errors.push(error.to_string()),
        }
    }

    fn run_events(&mut self, progress: &mut dyn Write) {
        // After the last connection is opened the machine runs on for a while (answers, timeouts,
        // closes), then the service stops and the driver unloads with connections still open.
        while let Some((time, event)) = self.scheduler.next() {
            if let Some(stop_at) = self.stop_at
                && time > stop_at
            {
                self.engine.advance_to(stop_at);
                return;
            }
            self.engine.advance_to(time);
            self.handle(event);
            self.engine.pump();
            self.driver.tick();
            self.engine.pump();
            self.report.peak_entries = self.report.peak_entries.max(self.driver.live_entries());
            if self.engine.halted() {
                return;
            }
            if self.config.progress {
                self.progress(progress);
            }
        }
    }

    fn progress(&mut self, out: &mut dyn Write) {
        let total = self.config.connections.max(1);
        let percent = self.opened.saturating_mul(10) / total;
        if percent >= self.next_progress {
            self.next_progress = percent.saturating_add(1);
            let _ = writeln!(
                out,
                "[{:>3}%] model t={:>6}s  opened {:>7}  live {:>6}  pended now {:>5}  verdicts {:>7}  timeouts {:>5}",
                percent * 10,
                report::millis_as_seconds(self.now().as_millis()),
                self.opened,
                self.engine.live_connections(),
                self.driver.live_entries(),
                self.report.verdicts_accepted,
                self.timeouts(),
            );
        }
    }

    fn timeouts(&self) -> u64 {
        match &self.driver {
            Driver::Tollgate { driver, .. } => driver.core().stats().completed_by_timeout,
            Driver::Naive { .. } => 0,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Open => self.open(),
            Event::Close(conn, kind) => {
                if self.engine.close(conn, kind) {
                    self.report.closes = self.report.closes.saturating_add(1);
                }
            }
            Event::Data { conn, port, index } => self.data(conn, port, index),
            Event::ServicePoll => self.service_poll(),
            Event::ServiceAnswer { incarnation, verdicts } => self.service_answer(incarnation, &verdicts),
            Event::ServiceCrash => {
                if self.service_up {
                    // The process dies: its handle is cleaned up, every pend gets the default.
                    self.service.disconnect(self.driver.device());
                    self.service_up = false;
                    self.report.service_crashes = self.report.service_crashes.saturating_add(1);
                    let restart = self.rng.random_range(300..2_000);
                    self.scheduler.at(self.after_ms(restart), Event::ServiceRestart);
                }
            }
            Event::ServiceRestart => self.connect_service(),
            Event::Timer => self.scheduler.at(self.after_ms(50), Event::Timer),
            Event::ProcessKill(process) => {
                let conns = self.by_process.remove(&process).unwrap_or_default();
                for conn in conns {
                    if self.engine.close(conn, CloseKind::ProcessKill) {
                        self.report.process_kill_teardowns = self.report.process_kill_teardowns.saturating_add(1);
                    }
                }
            }
        }
    }

    fn open(&mut self) {
        if self.workload_over {
            return;
        }
        let process_index = self.rng.random_range(0..self.processes.len());
        let Some(process) = self.processes.get(process_index).copied() else {
            return;
        };
        let plan = workload::plan(&mut self.rng, process_index, &process, self.config.early_teardown_percent);
        let app = APPS.get(process.app).map_or("?", |a| a.path);
        let values = connection_values(plan.protocol, plan.local, plan.remote, app, process.pid);
        let conn = self.engine.open(values);
        self.opened = self.opened.saturating_add(1);
        match plan.protocol {
            Protocol::Tcp => self.report.tcp = self.report.tcp.saturating_add(1),
            Protocol::Udp => self.report.udp = self.report.udp.saturating_add(1),
        }
        self.by_process.entry(process_index).or_default().push(conn);
        if let Some(ms) = plan.early_teardown_ms {
            let kind = if self.rng.random_bool(0.5) { CloseKind::Reset } else { CloseKind::ProcessKill };
            self.scheduler.at(self.after_ms(ms), Event::Close(conn, kind));
        }
        // The app closes it after its lifetime (counted from now: a pended connect waits too).
        self.scheduler.at(self.after_ms(plan.lifetime_ms), Event::Close(conn, CloseKind::Graceful));
        if plan.segments > 0 {
            self.scheduler.at(self.after_ms(2), Event::Data { conn, port: plan.remote.port(), index: 0 });
        }
        self.plans.insert(conn, plan);
        if self.opened >= self.config.connections {
            self.workload_over = true;
            self.stop_at = Some(self.after_ms(DRAIN_MS));
            return;
        }
        // Arrivals spread over the duration (uniform gaps around the mean).
        let mean_us = self.config.duration_ms.saturating_mul(1_000) / self.config.connections.max(1);
        let gap = self.rng.random_range(0..mean_us.saturating_mul(2).max(1));
        self.scheduler.at(self.after_us(gap), Event::Open);
    }

    fn data(&mut self, conn: ConnId, port: u16, index: u32) {
        let Some(plan) = self.plans.get(&conn).copied() else {
            return;
        };
        match self.engine.phase(conn) {
            Some(Phase::Established) => {}
            Some(Phase::BindPended | Phase::ConnectPended) => {
                // Not connected yet: the app waits.
                self.scheduler.at(self.after_ms(20), Event::Data { conn, port, index });
                return;
            }
            _ => {
                self.plans.remove(&conn);
                return;
            }
        }
        let outbound = index.is_multiple_of(2);
        if index == 0 {
            self.first_bytes(conn, &plan);
        } else {
            let length = self.rng.random_range(0..3_000_usize);
            let payload: Vec<u8> = (0..length).map(|_| self.rng.random::<u8>()).collect();
            let roll = self.rng.random_range(0..100);
            let (chain, shape) = match roll {
                0..=2 => (vec![payload], StreamShape::NullLayerData),
                3..=5 => (vec![payload], StreamShape::NullStreamData),
                6..=15 => {
                    // A chain of NBLs, some empty.
                    let split = payload.len() / 2;
                    let (a, b) = payload.split_at(split);
                    (vec![Vec::new(), a.to_vec(), Vec::new(), b.to_vec()], StreamShape::Normal)
                }
                16..=20 => (vec![Vec::new()], StreamShape::Normal),
                _ => (vec![payload], StreamShape::Normal),
            };
            self.engine.send(conn, outbound, chain, shape);
        }
        self.report.stream_indications = self.report.stream_indications.saturating_add(1);
        if index.saturating_add(1) < plan.segments {
            let gap = self.rng.random_range(1..200);
            self.scheduler.at(self.after_ms(gap), Event::Data { conn, port, index: index.saturating_add(1) });
        } else {
            self.plans.remove(&conn);
        }
    }

    fn service_poll(&mut self) {
        if self.service_up {
            match self.service.read_and_decide(self.driver.device()) {
                Ok(decided) if !decided.is_empty() => {
                    self.report.batches = self.report.batches.saturating_add(1);
                    let latency_us = self.service_latency_us();
                    let verdicts = decided.iter().map(|d| (d.id, d.verdict, d.pended_at)).collect();
                    let incarnation = self.incarnation;
                    self.scheduler.at(self.after_us(latency_us), Event::ServiceAnswer { incarnation, verdicts });
                }
                Ok(_) => {}
                Err(ServiceError::Device(status)) => self.report.count_device_error(status),
                Err(error) => self.report.service_errors.push(error.to_string()),
            }
            match self.service.read_stream_events(self.driver.device()) {
                Ok(events) => self.report.stream.record_events(&events),
                Err(ServiceError::Device(status)) => self.report.count_device_error(status),
                Err(error) => self.report.service_errors.push(error.to_string()),
            }
        }
        self.scheduler.at(self.after_us(500), Event::ServicePoll);
    }

    /// The client's first bytes (a ClientHello, a request head, a banner), cut at the MSS the way
    /// TCP sends them: in one indication whose NET_BUFFER_LIST chain holds the segments, or in one
    /// indication per segment; now and then after an empty or NULL indication.
    fn first_bytes(&mut self, conn: ConnId, plan: &ConnectionPlan) {
        const MSS: usize = 1_460;
        let app = self.processes.get(plan.process).and_then(|p| APPS.get(p.app)).copied().unwrap_or(APPS[0]);
        let payload = workload::first_payload(&mut self.rng, &app, plan.remote.port());
        match self.rng.random_range(0..100) {
            0..=3 => self.engine.send(conn, true, vec![b"lost".to_vec()], StreamShape::NullLayerData),
            4..=7 => self.engine.send(conn, true, vec![b"lost".to_vec()], StreamShape::NullStreamData),
            8..=11 => self.engine.send(conn, true, vec![Vec::new()], StreamShape::Normal),
            _ => {}
        }
        let segments: Vec<Vec<u8>> = payload.chunks(MSS).map(<[u8]>::to_vec).collect();
        if segments.len() > 1 && self.rng.random_bool(0.5) {
            for segment in segments {
                self.engine.send(conn, true, vec![segment], StreamShape::Normal);
            }
        } else {
            self.engine.send(conn, true, segments, StreamShape::Normal);
        }
    }

    /// Usually fast, sometimes slow, now and then past the pend timeout.
    fn service_latency_us(&mut self) -> u64 {
        match self.rng.random_range(0..1_000) {
            0..=799 => self.rng.random_range(50..3_000),
            800..=989 => self.rng.random_range(10_000..500_000),
            _ => self.rng.random_range(5_500_000..9_000_000),
        }
    }

    fn service_answer(&mut self, incarnation: u32, verdicts: &[(u64, Verdict, u64)]) {
        if !self.service_up || incarnation != self.incarnation {
            // The service that decided these crashed before answering.
            self.report.answers_lost_in_crash = self.report.answers_lost_in_crash.saturating_add(verdicts.len() as u64);
            return;
        }
        let answers: Vec<(u64, Verdict)> = verdicts.iter().map(|(id, v, _)| (*id, *v)).collect();
        match self.service.submit(self.driver.device(), &answers) {
            Ok(outcome) => {
                let now = self.now();
                for ((_, _, pended_at), accepted) in verdicts.iter().zip(outcome.accepted.iter()) {
                    if *accepted {
                        self.report.latency.record(now.saturating_sub(Ticks(*pended_at)));
                    }
                }
                self.report.verdicts_accepted = self
                    .report
                    .verdicts_accepted
                    .saturating_add(outcome.accepted.iter().filter(|a| **a).count() as u64);
                self.report.verdicts_rejected = self.report.verdicts_rejected.saturating_add(outcome.rejected);
            }
            Err(ServiceError::Device(status)) => self.report.count_device_error(status),
            Err(error) => self.report.service_errors.push(error.to_string()),
        }
    }

    fn finish(&mut self) {
        if !self.engine.halted() {
            // The service stops first (its handle must be closed before the driver can unload),
            // then the driver unloads with connections still open, then the machine's remaining
            // connections close.
            if self.service_up {
                self.service.disconnect(self.driver.device());
                self.service_up = false;
            }
            self.engine.pump();
            self.driver.tick();
            if let Driver::Tollgate { driver, .. } = &self.driver {
                self.report.unload = Some(driver.unload(&self.engine));
            }
            self.engine.pump();
            self.engine.driver_unloaded();
            let remaining: Vec<ConnId> = self.by_process.values().flatten().copied().collect();
            for conn in remaining {
                self.engine.close(conn, CloseKind::Graceful);
            }
            self.engine.pump();
        }
        self.report.model_millis = self.now().as_millis();
        self.report.wall = self.started.elapsed();
        self.report.opened = self.opened;
        self.report.engine = self.engine.report();
        if let Driver::Tollgate { driver, .. } = &self.driver {
            self.report.core = Some(driver.core().stats());
            self.report.stream.driver = Some(driver.flows().stats(driver.blocklist()));
            self.report.stream.free_buffers = driver.flows().free_buffers();
            self.report.stream.total_buffers = driver.flows().total_buffers();
        }
    }
}
