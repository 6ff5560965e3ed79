//! The simulated machine's traffic: processes of the workload's apps opening connections on the
//! WFP model, sending their first bytes and later data, closing them, being killed.
//!
//! Shared by `simulate` (a discrete-event run on the model's clock) and the live model that
//! `serve --model` answers (the same traffic, paced by the wall clock). Neither the verdict service
//! nor the driver is in here: the traffic only uses the model engine, the way applications only use
//! sockets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tollgate_core::Ticks;
use tollgate_wfp_model::{CloseKind, ConnId, Engine, Phase, Protocol, StreamShape, connection_values};

use crate::simulate::workload::{self, APPS, ConnectionPlan, Process};

/// Events of the model's clock, in time order (ties in insertion order).
pub struct Scheduler<E> {
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, E>,
    sequence: u64,
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Scheduler { queue: BinaryHeap::new(), events: HashMap::new(), sequence: 0 }
    }
}

impl<E> Scheduler<E> {
    /// Schedules `event` at `time`.
    pub fn at(&mut self, time: Ticks, event: E) {
        self.sequence = self.sequence.wrapping_add(1);
        self.queue.push(Reverse((time.0, self.sequence)));
        self.events.insert(self.sequence, event);
    }

    /// The earliest event, removed.
    pub fn pop(&mut self) -> Option<(Ticks, E)> {
        let Reverse((time, sequence)) = self.queue.pop()?;
        let event = self.events.remove(&sequence)?;
        Some((Ticks(time), event))
    }

    /// When the earliest event is due.
    #[must_use]
    pub fn next_time(&self) -> Option<Ticks> {
        self.queue.peek().map(|Reverse((time, _))| Ticks(*time))
    }
}

/// Something an app does later.
#[derive(Debug)]
pub enum TrafficEvent {
    /// The app closes the connection (or it is torn down).
    Close(ConnId, CloseKind),
    /// The `index`-th segment of the connection's data.
    Data {
        /// The connection.
        conn: ConnId,
        /// Its remote port (what the first bytes look like).
        port: u16,
        /// Which segment.
        index: u32,
    },
}

/// What the traffic did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Connections opened.
    pub opened: u64,
    /// TCP connections.
    pub tcp: u64,
    /// UDP connections.
    pub udp: u64,
    /// Closes the apps made (that found the connection still open).
    pub closes: u64,
    /// Endpoints torn down by process kills.
    pub process_kill_teardowns: u64,
    /// Stream indications sent.
    pub stream_indications: u64,
}

/// The processes of the simulated machine and their connections.
pub struct Traffic {
    engine: Arc<Engine>,
    rng: ChaCha8Rng,
    processes: Vec<Process>,
    by_process: HashMap<usize, Vec<ConnId>>,
    plans: HashMap<ConnId, ConnectionPlan>,
    early_teardown_percent: u32,
    counts: TrafficCounts,
}

/// The maximum segment size the apps' first bytes are cut at.
const MSS: usize = 1_460;

impl Traffic {
    /// `processes` processes of apps picked by weight (`seed` picks them, and everything the apps
    /// do); `early_teardown_percent` of connections are torn down at a random moment.
    #[must_use]
    pub fn new(engine: Arc<Engine>, seed: u64, processes: usize, early_teardown_percent: u32) -> Traffic {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let processes = (0..processes.max(1))
            .map(|i| Process { app: workload::pick_app(&mut rng), pid: 1_000 + 4 * i as u64 })
            .collect();
        Traffic {
            engine,
            rng,
            processes,
            by_process: HashMap::new(),
            plans: HashMap::new(),
            early_teardown_percent,
            counts: TrafficCounts::default(),
        }
    }

    /// What the traffic did so far.
    #[must_use]
    pub fn counts(&self) -> TrafficCounts {
        self.counts
    }

    /// How many processes there are.
    #[must_use]
    pub fn process_count(&self) -> usize {
        self.processes.len()
    }

    /// A random process opens a connection now; its close, early teardown and data are scheduled
    /// through `schedule`.
    pub fn open(&mut self, schedule: &mut dyn FnMut(Ticks, TrafficEvent)) -> ConnId {
        let now = self.engine.now();
        let process_index = self.rng.random_range(0..self.processes.len());
        let process = self.processes.get(process_index).copied().unwrap_or(Process { app: 0, pid: 4 });
        let plan = workload::plan(&mut self.rng, process_index, &process, self.early_teardown_percent);
        let app = APPS.get(process.app).map_or("?", |a| a.path);
        let values = connection_values(plan.protocol, plan.local, plan.remote, app, process.pid);
        let conn = self.engine.open(values);
        self.counts.opened = self.counts.opened.saturating_add(1);
        match plan.protocol {
            Protocol::Tcp => self.counts.tcp = self.counts.tcp.saturating_add(1),
            Protocol::Udp => self.counts.udp = self.counts.udp.saturating_add(1),
        }
        self.by_process.entry(process_index).or_default().push(conn);
        if let Some(ms) = plan.early_teardown_ms {
            let kind = if self.rng.random_bool(0.5) { CloseKind::Reset } else { CloseKind::ProcessKill };
            schedule(now.saturating_add(Ticks::from_millis(ms)), TrafficEvent::Close(conn, kind));
        }
        // The app closes it after its lifetime (counted from now: a pended connect waits too).
        schedule(
            now.saturating_add(Ticks::from_millis(plan.lifetime_ms)),
            TrafficEvent::Close(conn, CloseKind::Graceful),
        );
        if plan.segments > 0 {
            let event = TrafficEvent::Data { conn, port: plan.remote.port(), index: 0 };
            schedule(now.saturating_add(Ticks::from_millis(2)), event);
        }
        self.plans.insert(conn, plan);
        conn
    }

    /// Carries out `event` now.
    pub fn handle(&mut self, event: TrafficEvent, schedule: &mut dyn FnMut(Ticks, TrafficEvent)) {
        match event {
            TrafficEvent::Close(conn, kind) => {
                if self.engine.close(conn, kind) {
                    self.counts.closes = self.counts.closes.saturating_add(1);
                }
            }
            TrafficEvent::Data { conn, port, index } => self.data(conn, port, index, schedule),
        }
    }

    /// Kills process `process`: tcpip tears down every endpoint it has.
    pub fn kill_process(&mut self, process: usize) {
        let conns = self.by_process.remove(&process).unwrap_or_default();
        for conn in conns {
            if self.engine.close(conn, CloseKind::ProcessKill) {
                self.counts.process_kill_teardowns = self.counts.process_kill_teardowns.saturating_add(1);
            }
        }
    }

    /// Closes every connection the processes still have (the machine shuts down).
    pub fn close_all(&mut self) {
        let remaining: Vec<ConnId> = self.by_process.values().flatten().copied().collect();
        for conn in remaining {
            self.engine.close(conn, CloseKind::Graceful);
        }
    }

    fn data(&mut self, conn: ConnId, port: u16, index: u32, schedule: &mut dyn FnMut(Ticks, TrafficEvent)) {
        let Some(plan) = self.plans.get(&conn).copied() else {
            return;
        };
        let now = self.engine.now();
        match self.engine.phase(conn) {
            Some(Phase::Established) => {}
            Some(Phase::BindPended | Phase::ConnectPended) => {
                // Not connected yet: the app waits.
                schedule(now.saturating_add(Ticks::from_millis(20)), TrafficEvent::Data { conn, port, index });
                return;
            }
            _ => {
                self.plans.remove(&conn);
                return;
            }
        }
        if index == 0 {
            self.first_bytes(conn, &plan);
        } else {
            self.later_bytes(conn, index.is_multiple_of(2));
        }
        self.counts.stream_indications = self.counts.stream_indications.saturating_add(1);
        if index.saturating_add(1) < plan.segments {
            let gap = self.rng.random_range(1..200);
            let event = TrafficEvent::Data { conn, port, index: index.saturating_add(1) };
            schedule(now.saturating_add(Ticks::from_millis(gap)), event);
        } else {
            self.plans.remove(&conn);
        }
    }

    /// The client's first bytes (a ClientHello, a request head, a banner), cut at the MSS the way
    /// TCP sends them: in one indication whose NET_BUFFER_LIST chain holds the segments, or in one
    /// indication per segment; now and then after an empty or NULL indication.
    fn first_bytes(&mut self, conn: ConnId, plan: &ConnectionPlan) {
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

    /// Later data, in every shape the stream callout must survive.
    fn later_bytes(&mut self, conn: ConnId, outbound: bool) {
        let length = self.rng.random_range(0..3_000_usize);
        let payload: Vec<u8> = (0..length).map(|_| self.rng.random::<u8>()).collect();
        let (chain, shape) = match self.rng.random_range(0..100) {
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
}
