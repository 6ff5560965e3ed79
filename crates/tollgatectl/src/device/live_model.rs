//! A live simulated machine for `serve --model`: Tollgate's driver logic on the WFP model, with
//! the simulated apps opening connections paced by a clock, behind the same [`ControlDevice`]
//! `serve` uses for `\\.\Tollgate`.
//!
//! The machine runs lazily: every call on the device first brings the model up to the clock's
//! now (opening the connections, delivering the data, closing what is due, running the driver's
//! timer DPC every 50 ms of model time), then does what was asked. The clock is the wall clock for
//! the command, or a manual one that tests move on, which makes a run reproducible.
//!
//! The driver can be unloaded and loaded again ([`LiveModel::unload_driver`],
//! [`LiveModel::load_driver`]), as `sc stop` and `sc start` would: while it is away the device
//! cannot be opened (`STATUS_OBJECT_NAME_NOT_FOUND`) and a handle opened before answers
//! `STATUS_DEVICE_REMOVED`, exactly what the service must survive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tollgate_core::{CoreConfig, RuntimeConfig, Ticks};
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;
use tollgate_wfp_model::{Engine, EngineConfig, EngineReport};

use super::model::TollgateModelDevice;
use super::status::STATUS_OBJECT_NAME_NOT_FOUND;
use super::{ControlDevice, STATUS_INVALID_HANDLE};
use crate::machine::{Scheduler, Traffic, TrafficEvent};

/// `STATUS_DEVICE_REMOVED` (ntstatus.h): the handle's device is gone (the driver was unloaded).
pub const STATUS_DEVICE_REMOVED: i32 = 0xC000_02B6_u32 as i32;

/// Where the model's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock since the machine started.
    Wall,
    /// A clock that only [`LiveModel::advance`] moves (tests).
    Manual,
}

/// How the live machine behaves.
#[derive(Clone, Copy, Debug)]
pub struct LiveConfig {
    /// Seeds the apps' choices.
    pub seed: u64,
    /// New connections per second of model time.
    pub connections_per_second: u32,
    /// Processes running.
    pub processes: usize,
    /// Percentage of connections torn down at a random moment.
    pub early_teardown_percent: u32,
    /// The driver's pend table (its `max_pended` is the cap the service may lower).
    pub core: CoreConfig,
    /// Where time comes from.
    pub clock: Clock,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            seed: 1,
            connections_per_second: 20,
            processes: 16,
            early_teardown_percent: 10,
            core: CoreConfig::default(),
            clock: Clock::Wall,
        }
    }
}

#[derive(Debug)]
enum LiveEvent {
    Open,
    Traffic(TrafficEvent),
    Timer,
}

struct Loaded {
    driver: Arc<TollgateDriver>,
    device: TollgateModelDevice,
    /// Which load this is: a handle opened on an earlier one is stale.
    generation: u64,
}

struct Machine {
    engine: Arc<Engine>,
    /// The apps of the current boot (none before the first).
    traffic: Option<Traffic>,
    scheduler: Scheduler<LiveEvent>,
    rng: ChaCha8Rng,
    loaded: Option<Loaded>,
    /// The load the open handle belongs to, if a handle is open.
    handle: Option<u64>,
    loads: u64,
    /// Reports of the engines of earlier loads (each load starts a fresh machine).
    previous: Vec<EngineReport>,
}

/// The live machine (see the module docs).
pub struct LiveModel {
    config: LiveConfig,
    machine: Mutex<Machine>,
    started: Instant,
    manual_ms: AtomicU64,
}

impl LiveModel {
    /// A machine with the driver loaded and the apps about to start.
    #[must_use]
    pub fn new(config: LiveConfig) -> LiveModel {
        let machine = Machine {
            engine: Engine::new(EngineConfig { seed: config.seed, deferred_flow_delete_percent: 50 }),
            traffic: None,
            scheduler: Scheduler::default(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            loaded: None,
            handle: None,
            loads: 0,
            previous: Vec::new(),
        };
        let model =
            LiveModel { config, machine: Mutex::new(machine), started: Instant::now(), manual_ms: AtomicU64::new(0) };
        model.load_driver();
        model
    }

    fn machine(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The model's now.
    #[must_use]
    pub fn now(&self) -> Ticks {
        match self.config.clock {
            Clock::Wall => Ticks(u64::try_from(self.started.elapsed().as_nanos() / 100).unwrap_or(u64::MAX)),
            Clock::Manual => Ticks::from_millis(self.manual_ms.load(Ordering::Relaxed)),
        }
    }

    /// Moves the manual clock on by `ms` milliseconds (no effect on a wall clock) and runs the
    /// machine up to it.
    pub fn advance(&self, ms: u64) {
        self.manual_ms.fetch_add(ms, Ordering::Relaxed);
        self.catch_up(&mut self.machine());
    }

    /// Runs everything due up to now.
    fn catch_up(&self, machine: &mut Machine) {
        let now = self.now();
        let Some(loaded) = machine.loaded.as_ref() else {
            return;
        };
        let driver = loaded.driver.clone();
        while let Some(due) = machine.scheduler.next_time() {
            if due > now || machine.engine.halted() {
                break;
            }
            let Some((time, event)) = machine.scheduler.pop() else {
                break;
            };
            machine.engine.advance_to(time.max(machine.engine.now()));
            let Machine { traffic, scheduler, rng, .. } = machine;
            let Some(traffic) = traffic.as_mut() else {
                break;
            };
            match event {
                LiveEvent::Open => {
                    traffic.open(&mut |at, event| scheduler.at(at, LiveEvent::Traffic(event)));
                    let mean_us = 1_000_000 / u64::from(self.config.connections_per_second.max(1));
                    let gap = rng.random_range(0..mean_us.saturating_mul(2).max(1));
                    scheduler.at(time.saturating_add(Ticks(gap.saturating_mul(10))), LiveEvent::Open);
                }
                LiveEvent::Traffic(event) => {
                    traffic.handle(event, &mut |at, event| scheduler.at(at, LiveEvent::Traffic(event)));
                }
                LiveEvent::Timer => {
                    driver.run_timer();
                    scheduler.at(time.saturating_add(Ticks::from_millis(50)), LiveEvent::Timer);
                }
            }
            machine.engine.pump();
        }
        if now > machine.engine.now() {
            machine.engine.advance_to(now);
        }
    }

    /// Loads the driver (`sc start`): a fresh machine boots with it, and the apps start.
    /// Does nothing if it is loaded.
    pub fn load_driver(&self) {
        let mut machine = self.machine();
        if machine.loaded.is_some() {
            return;
        }
        machine.loads = machine.loads.saturating_add(1);
        let seed = self.config.seed.wrapping_add(machine.loads);
        let engine = Engine::new(EngineConfig { seed, deferred_flow_delete_percent: 50 });
        engine.advance_to(self.now());
        let Ok(driver) = TollgateDriver::load(&engine, self.config.core) else {
            return;
        };
        // The machine that ran until now (if any) is over: keep its report.
        let first_boot = machine.traffic.is_none();
        let old = std::mem::replace(&mut machine.engine, engine.clone());
        if !first_boot {
            machine.previous.push(old.report());
        }
        machine.traffic =
            Some(Traffic::new(engine.clone(), seed, self.config.processes, self.config.early_teardown_percent));
        machine.scheduler = Scheduler::default();
        let now = engine.now();
        machine.scheduler.at(now, LiveEvent::Open);
        machine.scheduler.at(now.saturating_add(Ticks::from_millis(50)), LiveEvent::Timer);
        let generation = machine.loads;
        machine.loaded = Some(Loaded { device: TollgateModelDevice::new(driver.clone()), driver, generation });
    }

    /// Unloads the driver (`sc stop`): an open handle is cleaned up first (every pend gets the
    /// default verdict) and then answers `STATUS_DEVICE_REMOVED`; the driver's S5 unload runs and
    /// the machine's connections close.
    pub fn unload_driver(&self) {
        let mut machine = self.machine();
        self.catch_up(&mut machine);
        let Some(loaded) = machine.loaded.take() else {
            return;
        };
        loaded.device.close();
        machine.engine.pump();
        let _ = loaded.driver.unload(&machine.engine);
        machine.engine.pump();
        machine.engine.driver_unloaded();
        if let Some(traffic) = machine.traffic.as_mut() {
            traffic.close_all();
        }
        machine.engine.pump();
    }

    /// The driver, while it is loaded (tests and the report).
    #[must_use]
    pub fn driver(&self) -> Option<Arc<TollgateDriver>> {
        self.machine().loaded.as_ref().map(|loaded| loaded.driver.clone())
    }

    /// Runs the machine up to now and returns the model's report for the current machine and
    /// every earlier one (one per driver load).
    #[must_use]
    pub fn reports(&self) -> Vec<EngineReport> {
        let mut machine = self.machine();
        self.catch_up(&mut machine);
        let mut reports = machine.previous.clone();
        reports.push(machine.engine.report());
        reports
    }

    /// Connections the apps opened on the current machine.
    #[must_use]
    pub fn opened(&self) -> u64 {
        self.machine().traffic.as_ref().map_or(0, |traffic| traffic.counts().opened)
    }

    /// The configuration the driver runs with now (what the service last set).
    #[must_use]
    pub fn runtime_config(&self) -> Option<RuntimeConfig> {
        self.machine().loaded.as_ref().map(|loaded| loaded.driver.core().runtime_config())
    }
}

impl ControlDevice for LiveModel {
    fn open(&self) -> Result<(), i32> {
        let mut machine = self.machine();
        self.catch_up(&mut machine);
        let Some(loaded) = machine.loaded.as_ref() else {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        };
        loaded.device.open()?;
        let generation = loaded.generation;
        machine.handle = Some(generation);
        Ok(())
    }

    fn close(&self) {
        let mut machine = self.machine();
        let handle = machine.handle.take();
        if let (Some(handle), Some(loaded)) = (handle, machine.loaded.as_ref())
            && handle == loaded.generation
        {
            loaded.device.close();
        }
        machine.engine.pump();
    }

    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        let mut machine = self.machine();
        self.catch_up(&mut machine);
        let handle = machine.handle.ok_or(STATUS_INVALID_HANDLE)?;
        let loaded =
            machine.loaded.as_ref().filter(|loaded| loaded.generation == handle).ok_or(STATUS_DEVICE_REMOVED)?;
        let result = loaded.device.ioctl(code, input, output);
        machine.engine.pump();
        result
    }
}
