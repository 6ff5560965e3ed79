//! The verdict service: reads batches of pended connections through the IOCTL protocol, decides
//! each with the rules, answers in batches.
//!
//! The same code serves the real driver (`\\.\Tollgate` on Windows) and the WFP model: it only
//! sees a [`ControlDevice`].

use std::fmt;
use std::net::SocketAddr;

use tollgate_core::stream::{FlowEvent, StreamStats};
use tollgate_core::{Direction, PendLayer, RuntimeConfig, StatsSnapshot, Ticks, Verdict};
use tollgate_protocol::{
    CAP_DOMAIN_BLOCKLIST, CAP_STREAM_EVENTS, CONFIG_MESSAGE_LEN, DeviceStats, HelloRequest, IOCTL_TOLLGATE_GET_CONFIG,
    IOCTL_TOLLGATE_GET_PENDED, IOCTL_TOLLGATE_GET_STATS, IOCTL_TOLLGATE_GET_STREAM_EVENTS, IOCTL_TOLLGATE_HELLO,
    IOCTL_TOLLGATE_PUSH_BLOCKLIST, IOCTL_TOLLGATE_SET_CONFIG, IOCTL_TOLLGATE_SUBMIT_VERDICTS, MAX_BATCH_RECORDS,
    ProtocolError, STATS_MESSAGE_LEN, VerdictEntry, VerdictResult, decode_config, decode_hello_reply,
    decode_pended_batch, decode_stats, decode_stream_events, decode_verdict_results, encode_blocklist_to_vec,
    encode_config, encode_hello_request, encode_verdict_batch,
};
use tollgate_rules::{Action, ConnectionQuery, RuleSet};

use crate::device::ControlDevice;

/// Bytes the service offers for one `GET_PENDED` or `GET_STREAM_EVENTS` (room for a full batch of
/// typical records).
const READ_BUFFER_LEN: usize = 256 * 1024;

/// `STATUS_DEVICE_BUSY`: the driver could not swap its blocklist right now (a classify was still
/// reading the one before); trying again shortly succeeds.
const STATUS_DEVICE_BUSY: i32 = 0x8000_0011_u32 as i32;

/// How many times a busy blocklist push is retried, 1 ms apart.
const BLOCKLIST_ATTEMPTS: u32 = 20;

/// Why a service operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// The device completed the request with this NTSTATUS.
    Device(i32),
    /// The driver's reply did not parse.
    Protocol(ProtocolError),
    /// The driver speaks no protocol version this service speaks.
    NoCommonVersion,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Device(status) => write!(f, "the driver answered NTSTATUS 0x{:08X}", *status as u32),
            ServiceError::Protocol(error) => write!(f, "malformed reply from the driver: {error}"),
            ServiceError::NoCommonVersion => write!(f, "the driver speaks no protocol version this service speaks"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<ProtocolError> for ServiceError {
    fn from(error: ProtocolError) -> Self {
        ServiceError::Protocol(error)
    }
}

/// One decided connection, ready to be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The id to answer.
    pub id: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// When the driver pended it (100 ns ticks of the driver's clock).
    pub pended_at: u64,
    /// The rule that matched (index), or `None` for the default.
    pub rule: Option<usize>,
    /// The layer.
    pub layer: PendLayer,
    /// The application's path as the driver reported it (lossy UTF-16 → UTF-8).
    pub app: String,
    /// The process id.
    pub process_id: u64,
    /// The IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// The remote end (unspecified for a bind).
    pub remote: SocketAddr,
}

/// What the driver said to a batch of verdicts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// Per verdict, in order: accepted or not.
    pub accepted: Vec<bool>,
    /// How many were rejected (late, unknown, being resolved, unloading).
    pub rejected: u64,
    /// Per verdict, in order: the driver's answer.
    pub results: Vec<VerdictResult>,
}

/// `STATUS_INVALID_PARAMETER`: the driver refused a configuration (e.g. a cap above its table).
const STATUS_INVALID_PARAMETER: i32 = tollgate_protocol::error::STATUS_INVALID_PARAMETER;

/// The verdict service's state.
pub struct VerdictService {
    rules: RuleSet,
    read_buffer: Vec<u8>,
    /// The capability bits of the driver connected to (0 when not connected).
    capabilities: u32,
    /// Things worth telling the operator that did not stop the service (taken by the loop).
    warnings: Vec<String>,
}

/// The driver's counters (`GET_STATS`; any handle may read them).
///
/// # Errors
/// [`ServiceError`] when the read fails or the reply is malformed.
pub fn read_stats(device: &dyn ControlDevice) -> Result<(StatsSnapshot, StreamStats, DeviceStats), ServiceError> {
    let mut reply = [0_u8; STATS_MESSAGE_LEN];
    let written = device.ioctl(IOCTL_TOLLGATE_GET_STATS, &[], &mut reply).map_err(ServiceError::Device)?;
    Ok(decode_stats(reply.get(..written).unwrap_or_default())?)
}

/// The driver configuration `rules` ask for, over what the driver has now: each `[driver]` value
/// the rules set replaces the driver's; the others stay as they are.
#[must_use]
pub fn desired_config(rules: &RuleSet, current: RuntimeConfig) -> RuntimeConfig {
    let settings = rules.driver();
    RuntimeConfig {
        default_verdict: settings.default_verdict.map_or(current.default_verdict, |verdict| match verdict {
            tollgate_rules::Verdict::Allow => Verdict::Permit,
            tollgate_rules::Verdict::Block => Verdict::Block,
        }),
        pend_timeout: settings
            .pend_timeout
            .map_or(current.pend_timeout, |timeout| Ticks(u64::try_from(timeout.as_nanos() / 100).unwrap_or(u64::MAX))),
        max_pended: settings.max_pended.unwrap_or(current.max_pended),
    }
}

fn rule_verdict(action: Action, rules: &RuleSet) -> Verdict {
    match action.resolve(rules.ask_fallback()) {
        tollgate_rules::Verdict::Allow => Verdict::Permit,
        tollgate_rules::Verdict::Block => Verdict::Block,
    }
}

impl VerdictService {
    /// A service deciding with `rules`, keeping the driver at its default configuration.
    #[must_use]
    pub fn new(rules: RuleSet) -> VerdictService {
        VerdictService { rules, read_buffer: vec![0; READ_BUFFER_LEN], capabilities: 0, warnings: Vec::new() }
    }

    /// The rules in force.
    #[must_use]
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Whether the connected driver reports what its stream callout finds out about flows.
    #[must_use]
    pub fn has_stream_events(&self) -> bool {
        self.capabilities & CAP_STREAM_EVENTS != 0
    }

    /// Whether the connected driver enforces a domain blocklist.
    #[must_use]
    pub fn has_domain_blocklist(&self) -> bool {
        self.capabilities & CAP_DOMAIN_BLOCKLIST != 0
    }

    /// What went wrong without stopping the service since the last call (a `[driver]` setting
    /// the driver refused, say).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Opens the device, negotiates the protocol version, brings the driver's configuration in
    /// line with the rules' `[driver]` table (which claims the verdict-service role) and, if the
    /// driver enforces one, pushes the domain blocklist the rules imply
    /// ([`RuleSet::blocked_domains`]).
    ///
    /// # Errors
    /// [`ServiceError`] from any step; the handle is closed again on failure.
    pub fn connect(&mut self, device: &dyn ControlDevice) -> Result<(), ServiceError> {
        device.open().map_err(ServiceError::Device)?;
        let result = self.handshake(device);
        if result.is_err() {
            device.close();
        }
        result
    }

    fn handshake(&mut self, device: &dyn ControlDevice) -> Result<(), ServiceError> {
        let mut request = [0_u8; 64];
        let length = encode_hello_request(&HelloRequest::CURRENT, &mut request)?;
        let mut reply = [0_u8; 128];
        let written = device
            .ioctl(IOCTL_TOLLGATE_HELLO, request.get(..length).unwrap_or_default(), &mut reply)
            .map_err(ServiceError::Device)?;
        let hello = decode_hello_reply(reply.get(..written).unwrap_or_default())?;
        hello.negotiated().map_err(|_| ServiceError::NoCommonVersion)?;
        self.capabilities = hello.capabilities;
        self.sync_config(device)?;
        if self.has_domain_blocklist() {
            self.push_blocklist(device)?;
        }
        Ok(())
    }

    /// The driver's configuration now (`GET_CONFIG`).
    ///
    /// # Errors
    /// [`ServiceError`] when the read fails or the reply is malformed.
    pub fn read_config(&self, device: &dyn ControlDevice) -> Result<RuntimeConfig, ServiceError> {
        let mut reply = [0_u8; CONFIG_MESSAGE_LEN];
        let written = device.ioctl(IOCTL_TOLLGATE_GET_CONFIG, &[], &mut reply).map_err(ServiceError::Device)?;
        Ok(decode_config(reply.get(..written).unwrap_or_default())?)
    }

    /// Sets the driver's configuration to what the rules ask for (`SET_CONFIG`, which also claims
    /// the verdict-service role). If the driver refuses it (a cap above its table's capacity), the
    /// service says so and keeps the driver's own configuration.
    ///
    /// # Errors
    /// [`ServiceError`] when the driver cannot be read or written at all.
    pub fn sync_config(&mut self, device: &dyn ControlDevice) -> Result<RuntimeConfig, ServiceError> {
        let current = self.read_config(device)?;
        let wanted = desired_config(&self.rules, current);
        match self.set_config(device, &wanted) {
            Ok(()) => Ok(wanted),
            Err(ServiceError::Device(STATUS_INVALID_PARAMETER)) => {
                self.warnings.push(format!(
                    "the driver refused the rules' [driver] settings (default {:?}, timeout {} ms, max_pended {}); \
                     it keeps its own (default {:?}, timeout {} ms, max_pended {})",
                    wanted.default_verdict,
                    wanted.pend_timeout.as_millis(),
                    wanted.max_pended,
                    current.default_verdict,
                    current.pend_timeout.as_millis(),
                    current.max_pended
                ));
                self.set_config(device, &current)?;
                Ok(current)
            }
            Err(error) => Err(error),
        }
    }

    fn set_config(&self, device: &dyn ControlDevice, config: &RuntimeConfig) -> Result<(), ServiceError> {
        let mut message = [0_u8; CONFIG_MESSAGE_LEN];
        let length = encode_config(config, &mut message)?;
        device
            .ioctl(IOCTL_TOLLGATE_SET_CONFIG, message.get(..length).unwrap_or_default(), &mut [])
            .map_err(ServiceError::Device)?;
        Ok(())
    }

    /// Replaces the driver's domain blocklist with the patterns of the rules' domain-only block
    /// rules; returns how many. A busy driver (`STATUS_DEVICE_BUSY`) is asked again a few times.
    ///
    /// # Errors
    /// [`ServiceError`] when the push fails (the driver keeps its previous list).
    pub fn push_blocklist(&mut self, device: &dyn ControlDevice) -> Result<usize, ServiceError> {
        let patterns = self.rules.blocked_domains();
        let message = encode_blocklist_to_vec(patterns.iter().map(|p| (p.kind(), p.name().as_bytes())))?;
        let mut attempt = 0;
        loop {
            match device.ioctl(IOCTL_TOLLGATE_PUSH_BLOCKLIST, &message, &mut []) {
                Ok(_) => return Ok(patterns.len()),
                Err(STATUS_DEVICE_BUSY) if attempt < BLOCKLIST_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(status) => return Err(ServiceError::Device(status)),
            }
        }
    }

    /// Replaces the rules; if connected, brings the driver's configuration and domain blocklist in
    /// line with the new ones.
    ///
    /// # Errors
    /// [`ServiceError`] when the driver could not be updated: the new rules are in force in the
    /// service anyway, and the next connection pushes them.
    pub fn set_rules(&mut self, device: Option<&dyn ControlDevice>, rules: RuleSet) -> Result<(), ServiceError> {
        self.rules = rules;
        let Some(device) = device else {
            return Ok(());
        };
        self.sync_config(device)?;
        if self.has_domain_blocklist() {
            self.push_blocklist(device)?;
        }
        Ok(())
    }

    /// Reads what the stream callout queued about flows (possibly nothing; never waits).
    ///
    /// # Errors
    /// [`ServiceError`] when the read fails or the reply is malformed.
    pub fn read_stream_events(&mut self, device: &dyn ControlDevice) -> Result<Vec<FlowEvent>, ServiceError> {
        if !self.has_stream_events() {
            return Ok(Vec::new());
        }
        let written =
            device.ioctl(IOCTL_TOLLGATE_GET_STREAM_EVENTS, &[], &mut self.read_buffer).map_err(ServiceError::Device)?;
        if written == 0 {
            return Ok(Vec::new());
        }
        let batch = decode_stream_events(self.read_buffer.get(..written).unwrap_or_default())?;
        Ok(batch.iter().collect())
    }

    /// Closes the handle: the driver applies the default verdict to everything still pended.
    pub fn disconnect(&mut self, device: &dyn ControlDevice) {
        device.close();
        self.capabilities = 0;
    }

    /// Reads one batch of pended connections and decides each.
    ///
    /// # Errors
    /// [`ServiceError`] when the read fails or the reply is malformed (nothing is decided then).
    pub fn read_and_decide(&mut self, device: &dyn ControlDevice) -> Result<Vec<Decided>, ServiceError> {
        let written =
            device.ioctl(IOCTL_TOLLGATE_GET_PENDED, &[], &mut self.read_buffer).map_err(ServiceError::Device)?;
        if written == 0 {
            return Ok(Vec::new());
        }
        let batch = decode_pended_batch(self.read_buffer.get(..written).unwrap_or_default())?;
        let mut decided = Vec::with_capacity(batch.len());
        for record in &batch {
            let app_path = record.app_path.to_string_lossy();
            let remote = SocketAddr::new(record.remote_address, record.remote_port);
            let query = ConnectionQuery {
                app_path: &app_path,
                process_id: record.process_id,
                direction: match record.direction {
                    Direction::Outbound => tollgate_rules::Direction::Outbound,
                    Direction::Inbound => tollgate_rules::Direction::Inbound,
                },
                protocol: record.protocol,
                local: SocketAddr::new(record.local_address, record.local_port),
                remote,
                domain: None,
            };
            let decision = match record.layer {
                PendLayer::ResourceAssignment => self.rules.decide_bind(&query),
                PendLayer::AuthConnect => self.rules.decide(&query),
            };
            decided.push(Decided {
                id: record.id.to_raw(),
                verdict: rule_verdict(decision.action, &self.rules),
                pended_at: record.pended_at.0,
                rule: decision.rule,
                layer: record.layer,
                app: app_path,
                process_id: record.process_id,
                protocol: record.protocol,
                remote,
            });
        }
        Ok(decided)
    }

    /// Answers `verdicts` in batches of at most `MAX_BATCH_RECORDS`.
    ///
    /// # Errors
    /// [`ServiceError`] when a submission fails as a whole (its verdicts were not applied).
    pub fn submit(
        &mut self,
        device: &dyn ControlDevice,
        verdicts: &[(u64, Verdict)],
    ) -> Result<SubmitOutcome, ServiceError> {
        let mut outcome = SubmitOutcome::default();
        for chunk in verdicts.chunks(MAX_BATCH_RECORDS as usize) {
            let entries: Vec<VerdictEntry> = chunk
                .iter()
                .map(|&(id, verdict)| VerdictEntry { id: tollgate_core::PendId::from_raw(id), verdict })
                .collect();
            let mut input = vec![0_u8; 16 + 16 * entries.len()];
            let length = encode_verdict_batch(&entries, &mut input)?;
            input.truncate(length);
            let mut output = vec![0_u8; length];
            let written =
                device.ioctl(IOCTL_TOLLGATE_SUBMIT_VERDICTS, &input, &mut output).map_err(ServiceError::Device)?;
            let results = decode_verdict_results(output.get(..written).unwrap_or_default())?;
            for result in results.iter() {
                let accepted = result.result == VerdictResult::Accepted;
                outcome.accepted.push(accepted);
                outcome.results.push(result.result);
                if !accepted {
                    outcome.rejected = outcome.rejected.saturating_add(1);
                }
            }
        }
        Ok(outcome)
    }
}
