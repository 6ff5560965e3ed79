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

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tollgate_core::{CoreConfig, Ticks, Verdict};
use tollgate_rules::RuleSet;
use tollgate_wfp_model::drivers::naive::NaiveDriver;
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;
use tollgate_wfp_model::{Engine, EngineConfig};

pub use report::{LatencySummary, SimReport};

use crate::device::ControlDevice;
use crate::device::model::{NaiveModelDevice, TollgateModelDevice};
use crate::machine::{Scheduler, Traffic, TrafficEvent};
use crate::service::{ServiceError, VerdictService};

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
    /// Per mille of batches the service answers later than the pend timeout (default 10: 1%).
    pub late_answer_permille: u32,
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
            late_answer_permille: 10,
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
    Traffic(TrafficEvent),
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

struct Sim<'a> {
    config: &'a SimConfig,
    rng: ChaCha8Rng,
    engine: Arc<Engine>,
    driver: Driver,
    service: VerdictService,
    service_up: bool,
    incarnation: u32,
    scheduler: Scheduler<Event>,
    traffic: Traffic,
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
    let mut sim = Sim {
        config,
        rng: ChaCha8Rng::seed_from_u64(config.seed),
        traffic: Traffic::new(
            engine.clone(),
            config.seed.rotate_left(17),
            config.processes,
            config.early_teardown_percent,
        ),
        engine,
        driver,
        service: VerdictService::new(rules),
        service_up: false,
        incarnation: 0,
        scheduler: Scheduler::default(),
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
            let process = self.rng.random_range(0..self.traffic.process_count());
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
        while let Some((time, event)) = self.scheduler.pop() {
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
        let opened = self.traffic.counts().opened;
        let percent = opened.saturating_mul(10) / total;
        if percent >= self.next_progress {
            self.next_progress = percent.saturating_add(1);
            let _ = writeln!(
                out,
                "[{:>3}%] model t={:>6}s  opened {:>7}  live {:>6}  pended now {:>5}  verdicts {:>7}  timeouts {:>5}",
                percent * 10,
                report::millis_as_seconds(self.now().as_millis()),
                opened,
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
            Event::Traffic(event) => {
                let scheduler = &mut self.scheduler;
                self.traffic.handle(event, &mut |at, event| scheduler.at(at, Event::Traffic(event)));
            }
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
            Event::ProcessKill(process) => self.traffic.kill_process(process),
        }
    }

    fn open(&mut self) {
        if self.workload_over {
            return;
        }
        let scheduler = &mut self.scheduler;
        self.traffic.open(&mut |at, event| scheduler.at(at, Event::Traffic(event)));
        if self.traffic.counts().opened >= self.config.connections {
            self.workload_over = true;
            self.stop_at = Some(self.after_ms(DRAIN_MS));
            return;
        }
        // Arrivals spread over the duration (uniform gaps around the mean).
        let mean_us = self.config.duration_ms.saturating_mul(1_000) / self.config.connections.max(1);
        let gap = self.rng.random_range(0..mean_us.saturating_mul(2).max(1));
        self.scheduler.at(self.after_us(gap), Event::Open);
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

    /// Usually fast, sometimes slow, now and then past the pend timeout.
    fn service_latency_us(&mut self) -> u64 {
        let late = self.config.late_answer_permille.min(1_000);
        let roll = self.rng.random_range(0..1_000);
        if roll < late {
            self.rng.random_range(5_500_000..9_000_000)
        } else if roll < late + (1_000 - late) / 5 {
            self.rng.random_range(10_000..500_000)
        } else {
            self.rng.random_range(50..3_000)
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
            self.traffic.close_all();
            self.engine.pump();
        }
        self.report.model_millis = self.now().as_millis();
        self.report.wall = self.started.elapsed();
        self.report.traffic = self.traffic.counts();
        self.report.engine = self.engine.report();
        if let Driver::Tollgate { driver, .. } = &self.driver {
            self.report.core = Some(driver.core().stats());
            self.report.stream.driver = Some(driver.flows().stats(driver.blocklist()));
            self.report.stream.free_buffers = driver.flows().free_buffers();
            self.report.stream.total_buffers = driver.flows().total_buffers();
        }
    }
}
