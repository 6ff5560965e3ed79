//! What the control-device tests share: the driver's state as the shell owns it, one
//! METHOD_BUFFERED request, and the builders of pends, verdicts, blocklists and identified flows.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use tollgate_control::{Completion, ControlDevice, FileId, ServiceSlot, StreamParts};
use tollgate_core::host::{AtomicRundown, AtomicSpinLock, HostCompletionHandle, HostPlatform};
use tollgate_core::stream::{
    DomainBlocklist, FlowEndpoints, FlowId, FlowOwner, FlowTable, FlowTableConfig, StreamSegment,
};
use tollgate_core::{
    ClassifyDecision, ClassifyRequest, ConnectionFacts, Core, CoreConfig, Direction, EndpointHandle, PendId, PendLayer,
    RuntimeConfig, Ticks, Verdict,
};
use tollgate_inspect::name::PatternKind;
use tollgate_protocol::{VerdictEntry, encode_blocklist_to_vec, encode_verdict_batch};

/// The verdict service's handle.
pub const SERVICE: FileId = FileId(0x1000);
/// Any other handle.
pub const OTHER: FileId = FileId(0x2000);

/// The driver's state as the shell owns it: the core, the stream table, the blocklist, the slot.
pub struct Fixture {
    pub core: Core<HostPlatform>,
    pub flows: FlowTable<AtomicSpinLock>,
    pub blocklist: DomainBlocklist,
    pub slot: ServiceSlot,
}

impl Fixture {
    /// A core of 64 entries with `runtime`, and a small stream table.
    pub fn with_runtime(runtime: RuntimeConfig) -> Fixture {
        let core = Core::new(
            HostPlatform::new(),
            AtomicRundown::default(),
            CoreConfig { capacity: 64, runtime, ..CoreConfig::default() },
        )
        .unwrap();
        let flows = FlowTable::new(FlowTableConfig {
            flows: 16,
            reassembly_buffers: 2,
            events: 8,
            ..FlowTableConfig::default()
        })
        .unwrap();
        Fixture { core, flows, blocklist: DomainBlocklist::new(), slot: ServiceSlot::new() }
    }

    /// The control device over this state, as the shell builds it per request.
    pub fn device(&self) -> ControlDevice<'_, HostPlatform> {
        ControlDevice::new(&self.core, StreamParts { flows: &self.flows, blocklist: &self.blocklist }, &self.slot)
    }
}

/// A first classify at ALE_AUTH_CONNECT on a new endpoint, from `path`.
pub fn classify_new(core: &Core<HostPlatform>, endpoint: u64, path: &[u16]) -> ClassifyDecision {
    core.platform().endpoint_created(EndpointHandle(endpoint));
    core.classify(ClassifyRequest {
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
            app_path: path,
        },
    })
}

/// One METHOD_BUFFERED request: input copied into a system buffer of max(in, out) bytes.
pub fn call(
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

/// A `SUBMIT_VERDICTS` request.
pub fn verdicts(entries: &[(PendId, Verdict)]) -> Vec<u8> {
    let entries: Vec<VerdictEntry> = entries.iter().map(|&(id, verdict)| VerdictEntry { id, verdict }).collect();
    let mut buf = vec![0_u8; 16 + 16 * entries.len()];
    let n = encode_verdict_batch(&entries, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A `PUSH_BLOCKLIST` message.
pub fn blocklist(patterns: &[(PatternKind, &str)]) -> Vec<u8> {
    encode_blocklist_to_vec(patterns.iter().map(|(kind, name)| (*kind, name.as_bytes()))).unwrap()
}

/// A flow the stream callout identified from an HTTP request to `host` (its Identified event is
/// queued, and the blocklist was consulted).
pub fn identify(fixture: &Fixture, n: u64, host: &str) -> FlowId {
    let endpoints = FlowEndpoints {
        ip_protocol: 6,
        direction: Direction::Outbound,
        local_address: [10, 0, 0, 1].into(),
        local_port: 5000,
        remote_address: [203, 0, 113, 9].into(),
        remote_port: 80,
        process_id: 7,
    };
    let owner = FlowOwner { flow_handle: n, layer_id: 20, callout_id: 3 };
    let id = fixture.flows.attach(EndpointHandle(n), owner, endpoints, Ticks(1)).unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let segment = StreamSegment { outbound: true, length: request.len(), disconnect: false };
    fixture.flows.on_segment(id, segment, Ticks(2), &fixture.blocklist, |buffer| {
        buffer[..request.len()].copy_from_slice(request.as_bytes());
        request.len()
    });
    id
}
