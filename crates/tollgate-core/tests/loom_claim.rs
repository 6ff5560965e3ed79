//! Loom models of the claim protocol: every interleaving (up to loom's preemption bound, see
//! `check`) of the races that crash real WFP drivers, with the host platform's oracle asserting
//! S1 (exactly one completion), S2 (no completion after the teardown notification returned), S3
//! (stale ids rejected, slots freed only when unreferenced) and S5 (unload leaves nothing).
//!
//! Each model also runs once with a bug planted in the core, and must fail: that is the proof
//! that the model can see the bug it is for.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p tollgate-core --release --test loom_claim`
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use loom::sync::Arc;
use loom::thread;
use tollgate_core::host::{AtomicRundown, HostCompletionHandle, HostPlatform};
use tollgate_core::planted::PlantedBug;
use tollgate_core::{
    ClassifyDecision, ClassifyRequest, ConnectionFacts, Core, CoreConfig, Direction, EndpointHandle, PendId, PendLayer,
    RuntimeConfig, TeardownOutcome, TeardownSource, Ticks, Verdict, VerdictError,
};

const E1: EndpointHandle = EndpointHandle(0x1000);
const E2: EndpointHandle = EndpointHandle(0x2000);

fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        // Bounded-exhaustive: every interleaving with at most this many preemptions. Races in this
        // protocol need one or two; LOOM_MAX_PREEMPTIONS overrides.
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn new_core(bug: PlantedBug) -> Arc<Core<HostPlatform>> {
    let config = CoreConfig {
        capacity: 4,
        cache_capacity: 4,
        cache_ttl: Ticks::SECOND,
        teardown_spin_limit: u32::MAX,
        runtime: RuntimeConfig {
            default_verdict: Verdict::Block,
            pend_timeout: Ticks::from_millis(100),
            max_pended: 4,
        },
    };
    let mut core = Core::new(HostPlatform::new(), AtomicRundown::default(), config).unwrap();
    core.plant_bug(bug);
    core.attach_service().unwrap();
    Arc::new(core)
}

fn request(endpoint: EndpointHandle, reauth: bool) -> ClassifyRequest<'static, HostCompletionHandle> {
    ClassifyRequest {
        endpoint,
        completion_handle: HostCompletionHandle { endpoint },
        is_reauthorization: reauth,
        can_write_action: true,
        facts: ConnectionFacts {
            layer: PendLayer::AuthConnect,
            protocol: 6,
            direction: Direction::Outbound,
            local_address: [10, 0, 0, 1].into(),
            local_port: 50_000,
            remote_address: [192, 0, 2, 7].into(),
            remote_port: 443,
            process_id: 4242,
            app_path: &[],
        },
    }
}

fn pend(core: &Core<HostPlatform>, endpoint: EndpointHandle) -> Option<PendId> {
    core.platform().endpoint_created(endpoint);
    match core.classify(request(endpoint, false)) {
        ClassifyDecision::Pended(id) => Some(id),
        ClassifyDecision::Decide { .. } => None,
        ClassifyDecision::NoRight => panic!("write right was set"),
    }
}

/// A teardown notification as WFP delivers it: returns to WFP unless it was pended.
fn teardown(core: &Core<HostPlatform>, endpoint: EndpointHandle, source: TeardownSource) -> TeardownOutcome {
    let notification = (source != TeardownSource::FlowDelete).then_some(endpoint);
    let outcome = core.endpoint_teardown(endpoint, source, notification);
    match outcome {
        TeardownOutcome::NotificationPended { .. } => {}
        TeardownOutcome::Done { .. } => core.platform().notification_returned(endpoint),
        TeardownOutcome::GaveUpWaiting { .. } => panic!("teardown gave up waiting with an unbounded spin limit"),
    }
    outcome
}

/// After every thread joined: the timer DPC runs once, then nothing may be left (S1, S3, S5).
fn assert_settled(core: &Core<HostPlatform>, expected_completions: usize) {
    core.run_deferred_work();
    core.platform().assert_quiescent();
    let (completed, outstanding) = core.platform().completion_counts();
    assert_eq!((completed, outstanding), (expected_completions, 0), "S1 violated: wrong number of completions");
    assert_eq!(core.live_entries(), 0, "S3 violated: a slot was never freed");
}

/// Which paths the explored interleavings took, so a model can prove it reached the race it is
/// about rather than passing because the race never happened.
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<&'static str>>>);

impl Seen {
    fn saw(&self, what: &'static str) {
        self.0.lock().unwrap().insert(what);
    }

    fn assert_saw(&self, expected: &[&'static str]) {
        let seen = self.0.lock().unwrap();
        for what in expected {
            assert!(seen.contains(what), "no explored interleaving reached `{what}`; saw {seen:?}");
        }
    }
}

fn verdict_vs_closure(bug: PlantedBug) -> Seen {
    let seen = Seen::default();
    let record = seen.clone();
    check(move || {
        let core = new_core(bug);
        let id = pend(&core, E1).unwrap();
        let verdict = {
            let core = core.clone();
            thread::spawn(move || core.apply_verdict(id, Verdict::Permit))
        };
        match teardown(&core, E1, TeardownSource::EndpointClosure) {
            TeardownOutcome::Done { completed: 1 } => record.saw("teardown completed the pend itself"),
            TeardownOutcome::Done { .. } => record.saw("teardown found nothing left"),
            TeardownOutcome::NotificationPended { .. } => record.saw("notification pended behind a completion"),
            TeardownOutcome::GaveUpWaiting { .. } => {}
        }
        let result = verdict.join().unwrap();
        assert!(matches!(result, Ok(()) | Err(VerdictError::LateVerdict | VerdictError::BeingResolved)), "{result:?}");
        if core.platform().deferred_requests() > 0 {
            record.saw("completion finished while the notification was being pended");
        }
        assert_settled(&core, 1);
        // S3: the id is dead now, whoever won.
        assert_eq!(core.apply_verdict(id, Verdict::Permit), Err(VerdictError::LateVerdict));
    });
    seen
}

#[test]
fn verdict_races_endpoint_closure() {
    verdict_vs_closure(PlantedBug::None).assert_saw(&[
        "teardown completed the pend itself",
        "teardown found nothing left",
        "notification pended behind a completion",
        "completion finished while the notification was being pended",
    ]);
}

#[test]
#[should_panic(expected = "S2 violated")]
fn planted_teardown_without_wait_is_caught() {
    let _ = verdict_vs_closure(PlantedBug::TeardownDoesNotWait);
}

#[test]
fn completion_in_flight_races_flow_delete_that_cannot_pend() {
    let seen = Seen::default();
    let record = seen.clone();
    check(move || {
        let core = new_core(PlantedBug::None);
        let id = pend(&core, E1).unwrap();
        let verdict = {
            let core = core.clone();
            thread::spawn(move || core.apply_verdict(id, Verdict::Block))
        };
        teardown(&core, E1, TeardownSource::FlowDelete);
        let _ = verdict.join().unwrap();
        if core.stats().teardown_spins > 0 {
            record.saw("flow delete waited for an in-flight completion");
        }
        assert_settled(&core, 1);
    });
    seen.assert_saw(&["flow delete waited for an in-flight completion"]);
}

#[test]
fn completion_in_flight_races_closure_whose_pend_fails() {
    check(|| {
        let core = new_core(PlantedBug::None);
        core.platform().set_fail_notification_pends(true);
        let id = pend(&core, E1).unwrap();
        let verdict = {
            let core = core.clone();
            thread::spawn(move || core.apply_verdict(id, Verdict::Permit))
        };
        teardown(&core, E1, TeardownSource::ResourceRelease);
        let _ = verdict.join().unwrap();
        assert_settled(&core, 1);
    });
}

fn verdict_timeout_cleanup(bug: PlantedBug, second_verdict: bool) {
    check(move || {
        let core = new_core(bug);
        let id = pend(&core, E1).unwrap();
        core.platform().advance(Ticks::SECOND);
        let verdict = {
            let core = core.clone();
            thread::spawn(move || core.apply_verdict(id, Verdict::Permit))
        };
        let timer = {
            let core = core.clone();
            thread::spawn(move || {
                if second_verdict {
                    let _ = core.apply_verdict(id, Verdict::Block);
                } else {
                    core.run_deferred_work();
                }
            })
        };
        core.detach_service();
        let _ = verdict.join().unwrap();
        timer.join().unwrap();
        assert_settled(&core, 1);
        let stats = core.stats();
        assert_eq!(stats.completed(), 1);
        assert_eq!(stats.pended, 1);
    });
}

#[test]
fn verdict_races_timeout_and_service_cleanup() {
    verdict_timeout_cleanup(PlantedBug::None, false);
}

#[test]
fn duplicate_verdicts_race_service_cleanup() {
    verdict_timeout_cleanup(PlantedBug::None, true);
}

#[test]
#[should_panic(expected = "S1 violated")]
fn planted_non_atomic_claim_is_caught() {
    verdict_timeout_cleanup(PlantedBug::NonAtomicClaim, true);
}

fn pend_vs_unload(bug: PlantedBug) -> Seen {
    let seen = Seen::default();
    let record = seen.clone();
    check(move || {
        let core = new_core(bug);
        let classify = {
            let core = core.clone();
            thread::spawn(move || pend(&core, E1))
        };
        core.begin_unload();
        let pended = classify.join().unwrap();
        if pended.is_some() {
            record.saw("a pend slipped in during unload");
        }
        core.wait_for_callbacks();
        // S5: nothing pended is left behind, and it was resolved by unload.
        let expected = usize::from(pended.is_some());
        assert_settled(&core, expected);
        assert_eq!(core.stats().completed_by_unload, expected as u64);
    });
    seen
}

#[test]
fn pend_races_unload() {
    pend_vs_unload(PlantedBug::None).assert_saw(&["a pend slipped in during unload"]);
}

#[test]
#[should_panic(expected = "S1 violated")]
fn planted_unload_that_ignores_reserved_is_caught() {
    let _ = pend_vs_unload(PlantedBug::UnloadIgnoresReserved);
}

/// Unload sweeps pends while teardown notifications still arrive (the shell's S5 order: pends
/// first, filters after, so that no endpoint can be torn down unseen between the two). A closure
/// that runs while the sweep's completion is in flight must wait for it (S2).
fn closure_vs_unload_sweep(bug: PlantedBug) -> Seen {
    let seen = Seen::default();
    let record = seen.clone();
    check(move || {
        let core = new_core(bug);
        pend(&core, E1).unwrap();
        let unload = {
            let core = core.clone();
            thread::spawn(move || core.begin_unload())
        };
        match teardown(&core, E1, TeardownSource::EndpointClosure) {
            TeardownOutcome::Done { completed: 1 } => record.saw("the closure completed the pend itself"),
            TeardownOutcome::Done { .. } => record.saw("the sweep had already finished it"),
            TeardownOutcome::NotificationPended { .. } => record.saw("the closure waited for the sweep's completion"),
            TeardownOutcome::GaveUpWaiting { .. } => {}
        }
        let swept = unload.join().unwrap();
        core.wait_for_callbacks();
        assert_settled(&core, 1);
        let stats = core.stats();
        assert_eq!(stats.completed_by_unload + stats.completed_by_teardown, 1);
        assert_eq!(u64::from(swept), stats.completed_by_unload);
    });
    seen
}

#[test]
fn endpoint_closure_races_the_unload_sweep() {
    closure_vs_unload_sweep(PlantedBug::None).assert_saw(&[
        "the closure completed the pend itself",
        "the sweep had already finished it",
        "the closure waited for the sweep's completion",
    ]);
}

#[test]
#[should_panic(expected = "S2 violated")]
fn planted_teardown_without_wait_is_caught_against_the_unload_sweep() {
    let _ = closure_vs_unload_sweep(PlantedBug::TeardownDoesNotWait);
}

#[test]
fn verdict_races_unload() {
    check(|| {
        let core = new_core(PlantedBug::None);
        let id = pend(&core, E1).unwrap();
        let verdict = {
            let core = core.clone();
            thread::spawn(move || core.apply_verdict(id, Verdict::Permit))
        };
        core.begin_unload();
        let _ = verdict.join().unwrap();
        core.wait_for_callbacks();
        assert_settled(&core, 1);
    });
}

#[test]
fn two_endpoints_share_the_table() {
    check(|| {
        let core = new_core(PlantedBug::None);
        let id1 = pend(&core, E1).unwrap();
        let id2 = pend(&core, E2).unwrap();
        let other = {
            let core = core.clone();
            thread::spawn(move || {
                let _ = core.apply_verdict(id1, Verdict::Permit);
                teardown(&core, E2, TeardownSource::EndpointClosure);
            })
        };
        teardown(&core, E1, TeardownSource::EndpointClosure);
        let _ = core.apply_verdict(id2, Verdict::Block);
        other.join().unwrap();
        assert_settled(&core, 2);
    });
}
