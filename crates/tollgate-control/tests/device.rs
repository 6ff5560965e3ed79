//! The control device over the real core (host platform): every request gets its documented
//! status, and a malformed or hostile request changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use tollgate_control::{Completion, ControlDevice, FileId, STATUS_SHARING_VIOLATION, ServiceSlot};
use tollgate_core::host::{AtomicRundown, HostCompletionHandle, HostPlatform};
use tollgate_core::{
    ClassifyDecision, ClassifyRequest, ConnectionFacts, Core, CoreConfig, Direction, EndpointHandle, PendId, PendLayer,
    RuntimeConfig, TeardownSource, Ticks, Verdict,
};
use tollgate_protocol::error::{
    STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_REVISION_MISMATCH,
};
use tollgate_protocol::{
    HELLO_REPLY_LEN, HelloRequest, IOCTL_TOLLGATE_GET_CONFIG, IOCTL_TOLLGATE_GET_PENDED, IOCTL_TOLLGATE_GET_STATS,
    IOCTL_TOLLGATE_HELLO, IOCTL_TOLLGATE_SET_CONFIG, IOCTL_TOLLGATE_SUBMIT_VERDICTS, MIN_GET_PENDED_OUTPUT,
    STATS_MESSAGE_LEN, VerdictEntry, VerdictResult, decode_config, decode_hello_reply, decode_pended_batch,
    decode_stats, decode_verdict_results, encode_config, encode_hello_request, encode_verdict_batch,
};

const SERVICE: FileId = FileId(0x1000);
const OTHER: FileId = FileId(0x2000);

fn core() -> Core<HostPlatform> {
    Core::new(
        HostPlatform::new(),
        AtomicRundown::default(),
        CoreConfig {
            capacity: 64,
            runtime: RuntimeConfig { max_pended: 64, ..RuntimeConfig::default() },
            ..CoreConfig::default()
        },
    )
    .unwrap()
}

fn pend(core: &Core<HostPlatform>, endpoint: u64) -> PendId {
    core.platform().endpoint_created(EndpointHandle(endpoint));
    let path: Vec<u16> = r"\device\app.exe".encode_utf16().collect();
    let decision = core.classify(ClassifyRequest {
        endpoint: EndpointHandle(endpoint),
        completion_handle: HostCompletionHandle { endpoint: EndpointHandle(endpoint) },
        is_reauthorization: false,
        can_write_action: true,
        facts: ConnectionFacts {
            layer: PendLayer::AuthConnect,
            protocol: 6,
            direction: Direction::Outbound,
            local_address: [10, 0, 0, 1].into(),
            local_port: 5000,
            remote_address: [203, 0, 113, 9].into(),
            remote_port: 443,
            process_id: 7,
            app_path: &path,
        },
    });
    match decision {
        ClassifyDecision::Pended(id) => id,
        other => panic!("not pended: {other:?}"),
    }
}

/// One METHOD_BUFFERED request: input copied into a system buffer of max(in, out) bytes.
fn call(
    device: &ControlDevice<'_, HostPlatform>,
    file: FileId,
    code: u32,
    input: &[u8],
    output_len: usize,
) -> Result<Vec<u8>, i32> {
    let mut buffer = vec![0_u8; input.len().max(output_len)];
    buffer[..input.len()].copy_from_slice(input);
    match device.device_control(file, code, &mut buffer, input.len(), output_len)? {
        Completion::Bytes(n) => Ok(buffer[..n].to_vec()),
        Completion::Park => Ok(Vec::new()),
    }
}

fn verdicts(entries: &[(PendId, Verdict)]) -> Vec<u8> {
    let entries: Vec<VerdictEntry> = entries.iter().map(|&(id, verdict)| VerdictEntry { id, verdict }).collect();
    let mut buf = vec![0_u8; 16 + 16 * entries.len()];
    let n = encode_verdict_batch(&entries, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn results(reply: &[u8]) -> Vec<VerdictResult> {
    decode_verdict_results(reply).unwrap().iter().map(|o| o.result).collect()
}

#[test]
fn hello_negotiates_and_rejects_a_future_only_client() {
    let core = core();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, &slot);
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
    let core = core();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, &slot);
    // Nothing pends before a service exists (default verdict inline); claim the role first.
    assert_eq!(call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT), Ok(Vec::new()));
    let a = pend(&core, 0xA0);
    let b = pend(&core, 0xB0);
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
    let core = core();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, &slot);
    call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).unwrap();
    let id = pend(&core, 0xA0);
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
    assert!(!slot.is_claimed());
    // Now the other handle may become the service.
    assert!(call(&device, OTHER, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).is_ok());
}

#[test]
fn malformed_requests_get_their_status_and_change_nothing() {
    let core = core();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, &slot);
    call(&device, SERVICE, IOCTL_TOLLGATE_GET_PENDED, &[], MIN_GET_PENDED_OUTPUT).unwrap();
    let id = pend(&core, 0xA0);
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
    let core = core();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, &slot);
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
