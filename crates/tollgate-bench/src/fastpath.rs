//! Item 1: the classify fast path with N live entries (1, 1k, 100k, 1M), against the list
//! baseline holding the same N.
//!
//! Three lookups, each on the path of every connection:
//! - **reauthorization, decided** (the "already decided" cache hit): the reauthorization classify
//!   of a connection whose verdict is cached — the one `FwpsCompleteOperation0` triggers after
//!   every verdict, and the one WFP runs for every established connection on a policy change.
//!   Tollgate: [`Core::classify`] answered from the verdict cache holding N verdicts. Baseline: walk
//!   the list of N decided connects to the matching one (a random one: on average N/2 steps).
//! - **reauthorization, undecided**: the same classify for a connection nothing was decided for
//!   (connections older than the driver, on a policy change). Tollgate: a cache miss, default
//!   verdict. Baseline: the whole list is walked.
//! - **endpoint closure**: the ALE_ENDPOINT_CLOSURE classify every connection ends with, while N
//!   other connections are pended. Tollgate: [`Core::endpoint_teardown`] (endpoint index, cache
//!   purge). Baseline: the whole list is walked for the endpoint's entries.

use tollgate_core::host::AtomicRundown;
use tollgate_core::{ClassifyDecision, Core, TeardownOutcome, TeardownSource, Verdict};

use crate::baseline::ListDriver;
use crate::platform::BenchPlatform;
use crate::workload::{core_config, endpoint, key, request};

/// Which lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Reauthorization of a connection whose verdict is recorded.
    ReauthDecided,
    /// Reauthorization of a connection with nothing recorded.
    ReauthUndecided,
    /// Endpoint closure of an endpoint with nothing pended, among N pended connections.
    EndpointClosure,
}

impl Lookup {
    /// Every lookup, in report order.
    pub const ALL: [Lookup; 3] = [Lookup::ReauthDecided, Lookup::ReauthUndecided, Lookup::EndpointClosure];

    /// Short name for reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Lookup::ReauthDecided => "reauth decided (cache hit)",
            Lookup::ReauthUndecided => "reauth undecided (miss)",
            Lookup::EndpointClosure => "endpoint closure",
        }
    }
}

/// Connection numbers at or above this were never pended (misses and closures use them).
pub const ABSENT_BASE: u64 = 1 << 40;

/// Tollgate's core holding `n` live entries for `lookup`.
pub struct OursFastPath {
    core: Core<BenchPlatform>,
    lookup: Lookup,
}

impl OursFastPath {
    /// The core with `n` verdicts cached (reauthorizations) or `n` connections pended (closure).
    ///
    /// # Panics
    /// If the core cannot be created or does not pend (a broken benchmark, not a measurement).
    #[must_use]
    #[allow(clippy::panic, clippy::expect_used, reason = "benchmark set-up: failing loudly is the point")]
    pub fn new(lookup: Lookup, n: u32) -> Self {
        let (capacity, cache_capacity) = match lookup {
            Lookup::ReauthDecided | Lookup::ReauthUndecided => (1_024, n),
            Lookup::EndpointClosure => (n.max(1), 1_024),
        };
        let core = Core::new(BenchPlatform::new(), AtomicRundown::default(), core_config(capacity, cache_capacity))
            .expect("core");
        core.attach_service().expect("service");
        for i in 0..u64::from(n) {
            let ClassifyDecision::Pended(id) = core.classify(request(i, false, (), &[])) else {
                panic!("connection {i} was not pended");
            };
            if lookup != Lookup::EndpointClosure {
                core.apply_verdict(id, Verdict::Permit).expect("verdict");
            }
        }
        OursFastPath { core, lookup }
    }

    /// One lookup for connection number `i` (below `n`; absent ones are derived from it).
    pub fn lookup(&self, i: u64) -> u32 {
        match self.lookup {
            Lookup::ReauthDecided => decision_code(self.core.classify(request(i, true, (), &[]))),
            Lookup::ReauthUndecided => decision_code(self.core.classify(request(ABSENT_BASE + i, true, (), &[]))),
            Lookup::EndpointClosure => {
                match self.core.endpoint_teardown(endpoint(ABSENT_BASE + i), TeardownSource::EndpointClosure, Some(()))
                {
                    TeardownOutcome::Done { completed } => completed,
                    TeardownOutcome::NotificationPended { .. } | TeardownOutcome::GaveUpWaiting { .. } => u32::MAX,
                }
            }
        }
    }

    /// The core (for checks).
    pub fn core(&self) -> &Core<BenchPlatform> {
        &self.core
    }
}

/// 1 permit, 2 block, 0 anything else.
fn decision_code(decision: ClassifyDecision) -> u32 {
    match decision {
        ClassifyDecision::Decide { verdict: Verdict::Permit, .. } => 1,
        ClassifyDecision::Decide { verdict: Verdict::Block, .. } => 2,
        ClassifyDecision::NoRight | ClassifyDecision::Pended(_) => 0,
    }
}

/// The list baseline holding the same `n` entries.
pub struct BaselineFastPath {
    driver: ListDriver,
    lookup: Lookup,
}

impl BaselineFastPath {
    /// `n` decided connects (reauthorizations) or `n` pended ones (closure).
    #[must_use]
    pub fn new(lookup: Lookup, n: u32) -> Self {
        let driver = ListDriver::new(n as usize);
        for i in 0..u64::from(n) {
            match lookup {
                Lookup::ReauthDecided | Lookup::ReauthUndecided => driver.insert_decided(key(i), Verdict::Permit),
                Lookup::EndpointClosure => {
                    driver.pend(key(i), &[]);
                }
            }
        }
        BaselineFastPath { driver, lookup }
    }

    /// The same lookup as [`OursFastPath::lookup`], answered the same way.
    pub fn lookup(&self, i: u64) -> u32 {
        match self.lookup {
            Lookup::ReauthDecided => verdict_code(self.driver.reauthorization_verdict(&key(i))),
            Lookup::ReauthUndecided => verdict_code(self.driver.reauthorization_verdict(&key(ABSENT_BASE + i))),
            Lookup::EndpointClosure => self.driver.teardown(endpoint(ABSENT_BASE + i)) as u32,
        }
    }
}

fn verdict_code(verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Permit => 1,
        Verdict::Block => 2,
    }
}
