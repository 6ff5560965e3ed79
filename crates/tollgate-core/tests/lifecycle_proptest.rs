//! Property test of the lifecycle as a state machine: random sequences of pend, verdict (live,
//! late, forged), endpoint closure / resource release / flow delete, clock advance + timer,
//! service exit and re-attach, reauthorization, configuration changes and failing pends, ending in
//! unload, run against a reference model of what each step must do.
//!
//! Checked at every step: each decision equals the model's; no completion is lost, doubled (the
//! host oracle panics on a double completion) or late (it panics on a completion after the
//! endpoint's teardown notification returned); every reauthorization is answered from the cache
//! with the verdict the connection got. At the end: unload leaves nothing pended or allocated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tollgate_core::Platform as _;
use tollgate_core::host::{AtomicRundown, HostCompletionHandle, HostPlatform};
use tollgate_core::{
    ClassifyDecision, ClassifyRequest, ConnectionFacts, Core, CoreConfig, DecisionReason, Direction, EndpointHandle,
    PendId, PendLayer, RuntimeConfig, TeardownOutcome, TeardownSource, Ticks, Verdict, VerdictError,
};

const CAPACITY: u32 = 6;

#[derive(Clone, Debug)]
enum Op {
    Pend { endpoint: u8, remote: u8 },
    Verdict { pick: usize, verdict: Verdict },
    ForgedVerdict { raw: u64 },
    Teardown { endpoint: u8, source: TeardownSource },
    Advance { millis: u64 },
    Timer,
    ServiceExit,
    ServiceAttach,
    Reauth { endpoint: u8, remote: u8 },
    SetRuntime { default_verdict: Verdict, timeout_ms: u64, max_pended: u32 },
    FailPends(bool),
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Verdict::Permit), Just(Verdict::Block)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 0u8..3).prop_map(|(endpoint, remote)| Op::Pend { endpoint, remote }),
        5 => (any::<usize>(), verdict()).prop_map(|(pick, verdict)| Op::Verdict { pick, verdict }),
        1 => any::<u64>().prop_map(|raw| Op::ForgedVerdict { raw }),
        3 => (0u8..4, prop_oneof![
            Just(TeardownSource::EndpointClosure),
            Just(TeardownSource::ResourceRelease),
            Just(TeardownSource::FlowDelete)
        ]).prop_map(|(endpoint, source)| Op::Teardown { endpoint, source }),
        2 => (0u64..4_000).prop_map(|millis| Op::Advance { millis }),
        2 => Just(Op::Timer),
        1 => Just(Op::ServiceExit),
        2 => Just(Op::ServiceAttach),
        3 => (0u8..4, 0u8..3).prop_map(|(endpoint, remote)| Op::Reauth { endpoint, remote }),
        1 => (verdict(), 500u64..5_000, 0u32..=CAPACITY)
            .prop_map(|(default_verdict, timeout_ms, max_pended)| Op::SetRuntime { default_verdict, timeout_ms, max_pended }),
        1 => any::<bool>().prop_map(Op::FailPends),
    ]
}

fn endpoint(n: u8) -> EndpointHandle {
    EndpointHandle(0xffff_a000_0000_0000 + u64::from(n) * 0x40)
}

fn request(endpoint_no: u8, remote: u8, reauth: bool) -> ClassifyRequest<'static, HostCompletionHandle> {
    ClassifyRequest {
        endpoint: endpoint(endpoint_no),
        completion_handle: HostCompletionHandle { endpoint: endpoint(endpoint_no) },
        is_reauthorization: reauth,
        can_write_action: true,
        facts: ConnectionFacts {
            layer: PendLayer::AuthConnect,
            protocol: 17,
            direction: Direction::Outbound,
            local_address: [10, 0, 0, 1].into(),
            local_port: 40_000 + u16::from(endpoint_no),
            remote_address: [198, 51, 100, remote].into(),
            remote_port: 53,
            process_id: 100 + u64::from(endpoint_no),
            app_path: &[0x5c, 0x61, 0x70, 0x70],
        },
    }
}

/// What the driver must have done, step by step.
#[derive(Default)]
struct Model {
    /// Live pends: id → (endpoint, remote, pended at).
    pended: BTreeMap<u64, (u8, u8, Ticks)>,
    /// Every id ever issued.
    issued: Vec<PendId>,
    /// What a reauthorization of (endpoint, remote) must answer.
    cache: BTreeMap<(u8, u8), Verdict>,
    completions: usize,
    service: bool,
    failing_pends: bool,
    runtime: RuntimeConfig,
    torn_down: BTreeSet<u8>,
}

impl Model {
    fn resolve_all(&mut self, verdict: Verdict) {
        for (_, (endpoint, remote, _)) in std::mem::take(&mut self.pended) {
            self.cache.insert((endpoint, remote), verdict);
            self.completions += 1;
        }
    }
}

fn run(ops: &[Op]) {
    let runtime = RuntimeConfig {
        default_verdict: Verdict::Block,
        pend_timeout: Ticks::from_millis(2_000),
        max_pended: CAPACITY,
    };
    let config = CoreConfig {
        capacity: CAPACITY,
        cache_capacity: 1_024,
        cache_ttl: Ticks::from_millis(3_600_000),
        teardown_spin_limit: 10,
        runtime,
    };
    let core = Core::new(HostPlatform::new(), AtomicRundown::default(), config).unwrap();
    let platform = core.platform();
    let mut model = Model { runtime, ..Model::default() };
    core.attach_service().unwrap();
    model.service = true;

    for op in ops {
        match *op {
            Op::Pend { endpoint: e, remote } => {
                if model.torn_down.remove(&e) {
                    // A new endpoint reusing the handle value of a torn-down one.
                    platform.endpoint_created(endpoint(e));
                }
                let decision = core.classify(request(e, remote, false));
                let default = model.runtime.default_verdict;
                let expected_inline = if !model.service {
                    Some(DecisionReason::NoService)
                } else if model.pended.len() as u32 >= model.runtime.max_pended {
                    Some(DecisionReason::CapReached)
                } else if model.failing_pends {
                    Some(DecisionReason::PendFailed(tollgate_core::PlatformError(
                        tollgate_core::STATUS_FWP_CANNOT_PEND,
                    )))
                } else {
                    None
                };
                match (decision, expected_inline) {
                    (ClassifyDecision::Pended(id), None) => {
                        model.pended.insert(id.to_raw(), (e, remote, platform.now()));
                        model.issued.push(id);
                    }
                    (ClassifyDecision::Decide { verdict, reason }, Some(expected)) => {
                        assert_eq!((verdict, reason), (default, expected));
                    }
                    (decision, expected) => panic!("pend decided {decision:?}, model expected {expected:?}"),
                }
            }
            Op::Verdict { pick, verdict } => {
                if model.issued.is_empty() {
                    continue;
                }
                let id = model.issued[pick % model.issued.len()];
                let result = core.apply_verdict(id, verdict);
                match model.pended.remove(&id.to_raw()) {
                    Some((e, remote, _)) => {
                        assert_eq!(result, Ok(()));
                        model.cache.insert((e, remote), verdict);
                        model.completions += 1;
                    }
                    None => assert_eq!(result, Err(VerdictError::LateVerdict), "late verdict for {id:?}"),
                }
            }
            Op::ForgedVerdict { raw } => {
                let id = PendId::from_raw(raw);
                let result = core.apply_verdict(id, Verdict::Permit);
                if let Some((e, remote, _)) = model.pended.remove(&raw) {
                    // Astronomically unlikely, but a forged id equal to a live one is a valid verdict.
                    assert_eq!(result, Ok(()));
                    model.cache.insert((e, remote), Verdict::Permit);
                    model.completions += 1;
                } else {
                    assert!(result.is_err(), "forged id {raw:#x} accepted");
                }
            }
            Op::Teardown { endpoint: e, source } => {
                let notification = (source != TeardownSource::FlowDelete).then_some(endpoint(e));
                let outcome = core.endpoint_teardown(endpoint(e), source, notification);
                let mine: Vec<u64> =
                    model.pended.iter().filter(|(_, (pe, _, _))| *pe == e).map(|(&id, _)| id).collect();
                for id in &mine {
                    model.pended.remove(id);
                }
                model.completions += mine.len();
                model.cache.retain(|(ce, _), _| *ce != e);
                // Single-threaded: nothing is ever in flight, so the notification never waits.
                assert_eq!(outcome, TeardownOutcome::Done { completed: mine.len() as u32 });
                platform.notification_returned(endpoint(e));
                model.torn_down.insert(e);
            }
            Op::Advance { millis } => platform.advance(Ticks::from_millis(millis)),
            Op::Timer => {
                let now = platform.now();
                let timeout = model.runtime.pend_timeout;
                let due: Vec<u64> = model
                    .pended
                    .iter()
                    .filter(|(_, (_, _, at))| at.saturating_add(timeout) <= now)
                    .map(|(&id, _)| id)
                    .collect();
                let expired = core.run_deferred_work();
                assert_eq!(expired as usize, due.len(), "timeouts");
                for id in due {
                    let (e, remote, _) = model.pended.remove(&id).unwrap();
                    model.cache.insert((e, remote), model.runtime.default_verdict);
                    model.completions += 1;
                }
            }
            Op::ServiceExit => {
                let resolved = core.detach_service();
                assert_eq!(resolved as usize, model.pended.len());
                model.resolve_all(model.runtime.default_verdict);
                model.service = false;
            }
            Op::ServiceAttach => {
                let result = core.attach_service();
                assert_eq!(result.is_ok(), !model.service, "one verdict service at a time");
                model.service = true;
            }
            Op::Reauth { endpoint: e, remote } => {
                if model.torn_down.contains(&e) {
                    continue; // no classify on a torn-down endpoint
                }
                let decision = core.classify(request(e, remote, true));
                let expected = match model.cache.get(&(e, remote)) {
                    Some(&verdict) => ClassifyDecision::Decide { verdict, reason: DecisionReason::ReauthCached },
                    None => ClassifyDecision::Decide {
                        verdict: model.runtime.default_verdict,
                        reason: DecisionReason::ReauthMiss,
                    },
                };
                assert_eq!(decision, expected, "reauthorization of ({e}, {remote})");
            }
            Op::SetRuntime { default_verdict, timeout_ms, max_pended } => {
                let runtime =
                    RuntimeConfig { default_verdict, pend_timeout: Ticks::from_millis(timeout_ms), max_pended };
                core.set_runtime_config(runtime).unwrap();
                model.runtime = runtime;
            }
            Op::FailPends(fail) => {
                platform.set_fail_pends(fail);
                model.failing_pends = fail;
            }
        }
        let (completed, outstanding) = platform.completion_counts();
        assert_eq!(completed, model.completions, "completions after {op:?}");
        assert_eq!(outstanding, model.pended.len(), "outstanding pends after {op:?}");
        assert_eq!(core.live_entries() as usize, model.pended.len(), "live entries after {op:?}");
    }

    let resolved = core.begin_unload();
    assert_eq!(resolved as usize, model.pended.len());
    model.resolve_all(model.runtime.default_verdict);
    core.wait_for_callbacks();
    platform.assert_quiescent();
    assert_eq!(platform.completion_counts(), (model.completions, 0));
    assert_eq!(core.live_entries(), 0);
    let stats = core.stats();
    assert_eq!(stats.completed() as usize, model.completions);
    assert_eq!(stats.pended as usize, model.completions, "every pend completed exactly once");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(&ops);
    }
}

#[test]
fn a_pend_after_handle_reuse_is_a_new_connection() {
    run(&[
        Op::Pend { endpoint: 1, remote: 1 },
        Op::Verdict { pick: 0, verdict: Verdict::Permit },
        Op::Reauth { endpoint: 1, remote: 1 },
        Op::Teardown { endpoint: 1, source: TeardownSource::EndpointClosure },
        Op::Pend { endpoint: 1, remote: 1 },
        Op::Reauth { endpoint: 1, remote: 1 },
        Op::Verdict { pick: 0, verdict: Verdict::Permit },
    ]);
}
