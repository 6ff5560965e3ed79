//! The control device over the real core (host platform): every request gets its documented
//! status, and a malformed or hostile request changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use tollgate_control::{Completion, STATUS_SHARING_VIOLATION};
use tollgate_core::host::HostPlatform;
use tollgate_core::stream::{FlowEventKind, StreamVerdict};
use tollgate_core::{ClassifyDecision, Core, PendId, RuntimeConfig, TeardownSource, Ticks, Verdict};
use tollgate_inspect::name::PatternKind;
use tollgate_protocol::error::{
    STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_OBJECT_NAME_INVALID,
    STATUS_REVISION_MISMATCH,
};
use tollgate_protocol::{
    HELLO_REPLY_LEN, HelloRequest, IOCTL_TOLLGATE_GET_CONFIG, IOCTL_TOLLGATE_GET_PENDED, IOCTL_TOLLGATE_GET_STATS,
    IOCTL_TOLLGATE_GET_STREAM_EVENTS, IOCTL_TOLLGATE_HELLO, IOCTL_TOLLGATE_PUSH_BLOCKLIST, IOCTL_TOLLGATE_SET_CONFIG,
    IOCTL_TOLLGATE_SUBMIT_VERDICTS, MIN_GET_PENDED_OUTPUT, MIN_GET_STREAM_EVENTS_OUTPUT, STATS_MESSAGE_LEN,
    VerdictResult, decode_config, decode_hello_reply, decode_pended_batch, decode_stats, decode_stream_events,
    decode_verdict_results, encode_config, encode_hello_request,
};

mod common;
use common::{Fixture, OTHER, SERVICE, blocklist, call, classify_new, identify, verdicts};

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_runtime(RuntimeConfig { max_pended: 64, ..RuntimeConfig::default() })
    }
}

fn pend(core: &Core<HostPlatform>, endpoint: u64) -> PendId {
    let path: Vec<u16> = r"\device\app.exe".encode_utf16().collect();
    match classify_new(core, endpoint, &path) {
        ClassifyDecision::Pended(id) => id,
        other => panic!("not pended: {other:?}"),
    }
}

fn results(reply: &[u8]) -> Vec<VerdictResult> {
    decode_verdict_results(reply).unwrap().iter().map(|o| o.result).collect()
}

#[test]
fn hello_negotiates_and_rejects_a_future_only_client() {
    let fixture = Fixture::new();
    let device = fixture.device();
    let mut request = vec![0_u8; 64];
    let n = encode_hello_request(&HelloRequest::CURRENT, &mut request).unwrap();
    let reply = call(&device, OTHER, IOCTL_TOLLGATE_HELLO, &request[..n], HELLO_REPLY_LEN).unwrap();
    assert_eq!(decode_hello_reply(&reply).unwrap().negotiated(), Ok(tollgate_protocol::PROTOCOL_VERSION));
    let future = HelloRequest { min_version: 7, max_version: 9 };
    let n = encode_hello_request(&future, &mut request).unwrap();
    let reply = call(&device, OTHER, IOCTL_TOLLGATE_HELLO, &request[..n], HELLO_REPLY_LEN).unwrap();
    assert_eq!(
        decode_hello_reply(&reply).unwrap().negotiated().map_err(|e| e.ntstatus()),
        Err(STATUS_REVISION_MISMATCH)
    );
}

#[test]
fn the_inverted_call_delivers_then_parks_and_verdicts_get_per_id_results() {
    let fixture = Fixture::new();
    let (core, device) = (&fixture.core, fixture.device());
    // Nothing pends before a service exists (default verdict inline); claim the role first.
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT), Ok(Vec::new()));
    let a = pend(core, 0xA0);
    let b = pend(core, 0xB0);
    let batch = call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], 64 * 1024).unwrap();
    let ids: Vec<PendId> = decode_pended_batch(&batch).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![a, b]);
    // Already delivered: the next read parks.
    assert_eq!(
        device.device_control(
            SERVICE,
            IOCTL_TOLLGATE_GET_PENDED,
            &mut vec![0; MIN_GET_PENDED_OUTPUT],
            0,
            MIN_GET_PENDED_OUTPUT
        ),
        Ok(Completion::Park)
    );
    let forged = PendId::from_raw(0xDEAD_0000_0003);
    let input = verdicts(&[(a, Verdict::Permit), (a, Verdict::Block), (forged, Verdict::Permit), (b, Verdict::Block)]);
    let reply = call(&device, SERVICE, IOCTL_TOLLGATE_SUBMIT_VERDICTS, &input, input.len()).unwrap();
    assert_eq!(
        results(&reply),
        vec![VerdictResult::Accepted, VerdictResult::LateVerdict, VerdictResult::UnknownId, VerdictResult::Accepted]
    );
    assert_eq!(core.stats().completed_by_verdict, 2);
}

#[test]
fn a_second_client_cannot_take_the_service_role_and_cleanup_resolves_every_pend() {
    let fixture = Fixture::new();
    let (core, device) = (&fixture.core, fixture.device());
    call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).unwrap();
    let id = pend(core, 0xA0);
    assert_eq!(
        call(&device, OTHER, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT),
        Err(STATUS_SHARING_VIOLATION)
    );
    let input = verdicts(&[(id, Verdict::Permit)]);
    assert_eq!(
        call(&device, OTHER, IOCTL_TOLLGATE_SUBMIT_VERDICTS, &input, input.len()),
        Err(STATUS_SHARING_VIOLATION)
    );
    // Anyone may read statistics.
    let stats = call(&device, OTHER, IOCTL_TOLLGATE_GET_STATS, &[], STATS_MESSAGE_LEN).unwrap();
    assert_eq!(decode_stats(&stats).unwrap().0.pended, 1);
    // The other handle's cleanup changes nothing; the service's resolves the pend (default).
    assert_eq!(device.cleanup(OTHER), 0);
    assert_eq!(device.cleanup(SERVICE), 1);
    assert_eq!(core.stats().completed_by_cleanup, 1);
    assert!(!fixture.slot.is_claimed());
    // Now the other handle may become the service.
    assert!(call(&device, OTHER, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).is_ok());
}

#[test]
fn malformed_requests_get_their_status_and_change_nothing() {
    let fixture = Fixture::new();
    let (core, device) = (&fixture.core, fixture.device());
    call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).unwrap();
    let id = pend(core, 0xA0);
    assert_eq!(call(&device, SERVICE, 0x0022_0000, &[], 0), Err(STATUS_INVALID_DEVICE_REQUEST));
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], 100), Err(STATUS_BUFFER_TOO_SMALL));
    let mut input = verdicts(&[(id, Verdict::Permit)]);
    // A verdict byte that is neither block nor permit: the whole batch is rejected, nothing applied.
    input[16 + 8] = 9;
    assert_eq!(
        call(&device, SERVICE, IOCTL_TOLLGATE_SUBMIT_VERDICTS, &input, input.len()),
        Err(STATUS_INVALID_PARAMETER)
    );
    // Truncated batch.
    let input = verdicts(&[(id, Verdict::Permit)]);
    assert!(call(&device, SERVICE, IOCTL_TOLLGATE_SUBMIT_VERDICTS, &input[..20], 20).is_err());
    assert_eq!(core.stats().completed_by_verdict, 0);
    assert_eq!(core.live_entries(), 1);
}

#[test]
fn configuration_round_trips_and_invalid_values_are_refused() {
    let fixture = Fixture::new();
    let (core, device) = (&fixture.core, fixture.device());
    let wanted =
        RuntimeConfig { default_verdict: Verdict::Permit, pend_timeout: Ticks::from_millis(750), max_pended: 32 };
    let mut input = vec![0_u8; 64];
    let n = encode_config(&wanted, &mut input).unwrap();
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_SET_CONFIG, &input[..n], 0), Ok(Vec::new()));
    let reply = call(&device, OTHER, IOCTL_TOLLGATE_GET_CONFIG, &[], 64).unwrap();
    assert_eq!(decode_config(&reply).unwrap(), wanted);
    // A cap above the table's capacity is refused by the core.
    let too_big = RuntimeConfig { max_pended: 1_000_000, ..wanted };
    let n = encode_config(&too_big, &mut input).unwrap();
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_SET_CONFIG, &input[..n], 0), Err(STATUS_INVALID_PARAMETER));
    assert_eq!(core.runtime_config(), wanted);
    let _ = TeardownSource::EndpointClosure;
}

#[test]
fn stream_events_are_drained_by_the_service_only_and_never_park() {
    let fixture = Fixture::new();
    let device = fixture.device();
    // Nothing queued: an empty batch, at once.
    let reply = call(&device, SERVICE, IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], MIN_GET_STREAM_EVENTS_OUTPUT).unwrap();
    assert_eq!(decode_stream_events(&reply).unwrap().iter().count(), 0);
    let flows: Vec<_> = (1..=4).map(|n| identify(&fixture, n, &format!("host{n}.example"))).collect();
    assert_eq!(
        call(&device, OTHER, IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], MIN_GET_STREAM_EVENTS_OUTPUT),
        Err(STATUS_SHARING_VIOLATION),
        "reading consumes events: the service's alone"
    );
    // The smallest buffer holds three of these records: the fourth stays queued, nothing is lost.
    let reply = call(&device, SERVICE, IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], MIN_GET_STREAM_EVENTS_OUTPUT).unwrap();
    let first: Vec<_> = decode_stream_events(&reply).unwrap().iter().map(|e| e.flow).collect();
    assert_eq!(first, flows[..3]);
    let reply = call(&device, SERVICE, IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], 64 * 1024).unwrap();
    let events: Vec<_> = decode_stream_events(&reply).unwrap().iter().collect();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].flow, events[0].kind), (flows[3], FlowEventKind::Identified));
    assert_eq!(events[0].identity.names.primary().unwrap().1.as_bytes(), b"host4.example");
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], 100), Err(STATUS_BUFFER_TOO_SMALL));
}

#[test]
fn a_pushed_blocklist_drops_matching_flows_and_shows_in_the_stats() {
    let fixture = Fixture::new();
    let device = fixture.device();
    let message = blocklist(&[(PatternKind::Below, "ads.example"), (PatternKind::Exact, "tracker.example")]);
    assert_eq!(
        call(&device, OTHER, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).map(|_| ()),
        Ok(()),
        "OTHER becomes the service"
    );
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &message, 0), Err(STATUS_SHARING_VIOLATION));
    assert_eq!(call(&device, OTHER, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &message, 0), Ok(Vec::new()));
    let blocked = identify(&fixture, 1, "x.ads.example");
    let fine = identify(&fixture, 2, "ads.example");
    assert_eq!(fixture.flows.facts(blocked).unwrap().verdict, StreamVerdict::Dropped);
    assert_eq!(fixture.flows.facts(fine).unwrap().verdict, StreamVerdict::Permitted);
    let stats = call(&device, SERVICE, IOCTL_TOLLGATE_GET_STATS, &[], STATS_MESSAGE_LEN).unwrap();
    let (_, stream, _) = decode_stats(&stats).unwrap();
    assert_eq!((stream.blocklist_patterns, stream.blocklist_generation, stream.flows_dropped), (2, 1, 1));
    // An empty list clears it.
    assert_eq!(call(&device, OTHER, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &blocklist(&[]), 0), Ok(Vec::new()));
    assert!(fixture.blocklist.is_empty());
    // The service going away leaves the list as it was (nothing here to restore).
    assert_eq!(device.cleanup(OTHER), 0);
}

#[test]
fn a_malformed_blocklist_is_refused_with_its_status_and_the_old_list_stays() {
    let fixture = Fixture::new();
    let device = fixture.device();
    let good = blocklist(&[(PatternKind::Exact, "keep.example")]);
    call(&device, SERVICE, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &good, 0).unwrap();
    // Uppercase in a name: not the canonical form.
    let mut bad = blocklist(&[(PatternKind::Exact, "drop.example")]);
    bad[16 + 2] = b'D';
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &bad, 0), Err(STATUS_OBJECT_NAME_INVALID));
    // Cut short.
    assert!(call(&device, SERVICE, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &good[..good.len() - 8], 0).is_err());
    // Output where none is taken.
    assert!(call(&device, SERVICE, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &good, 64).is_ok(), "output room is ignored");
    assert_eq!((fixture.blocklist.len(), fixture.blocklist.generation()), (1, 2));
    let kept = identify(&fixture, 1, "keep.example");
    assert_eq!(fixture.flows.facts(kept).unwrap().verdict, StreamVerdict::Dropped);
}

#[test]
fn a_parked_read_wakes_with_an_empty_batch_when_stream_events_wait() {
    let fixture = Fixture::new();
    let device = fixture.device();
    let mut buffer = vec![0_u8; MIN_GET_PENDED_OUTPUT];
    assert_eq!(
        device.device_control(SERVICE, IOCTL_TOLLGATE_GET_PENDED, &mut buffer, 0, MIN_GET_PENDED_OUTPUT),
        Ok(Completion::Park)
    );
    assert!(!device.has_work());
    identify(&fixture, 1, "a.example");
    assert!(device.has_work(), "the shell's DPC and timer fill parked reads while this holds");
    let Ok(Completion::Bytes(written)) =
        device.device_control(SERVICE, IOCTL_TOLLGATE_GET_PENDED, &mut buffer, 0, MIN_GET_PENDED_OUTPUT)
    else {
        panic!("the read must complete");
    };
    assert!(decode_pended_batch(&buffer[..written]).unwrap().is_empty());
    call(&device, SERVICE, IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], MIN_GET_STREAM_EVENTS_OUTPUT).unwrap();
    assert!(!device.has_work());
}

#[test]
fn refused_requests_are_counted_in_the_stats() {
    let fixture = Fixture::new();
    let device = fixture.device();
    assert!(call(&device, SERVICE, 0x0022_0000, &[], 0).is_err());
    assert!(call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], 100).is_err());
    call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).unwrap();
    assert!(call(&device, OTHER, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).is_err());
    assert_eq!(fixture.slot.rejected_ioctls(), 3);
    let stats = call(&device, OTHER, IOCTL_TOLLGATE_GET_STATS, &[], STATS_MESSAGE_LEN).unwrap();
    assert_eq!(decode_stats(&stats).unwrap().2.rejected_ioctls, 3);
}
