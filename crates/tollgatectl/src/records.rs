//! What the verdict service reports: one [`Record`] per decision, per flow event and per notable
//! change in its own state, as a text line (stdout, `watch` on a pipe) or a JSON object (`--json`,
//! the control channel).
//!
//! The text forms are documented in `serve`'s module docs; every field is also in the JSON form,
//! whose keys are the struct fields below.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tollgate_core::stream::{FlowEvent, FlowEventKind, InspectionEnd, StreamVerdict};
use tollgate_core::{PendLayer, Verdict};
use tollgate_inspect::identity::{AppProtocol, NameSource};
use tollgate_protocol::VerdictResult;
use tollgate_rules::RuleSet;

use crate::service::Decided;

/// One thing the service reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The service read a pended connection (on the control channel only: stdout has the
    /// decision).
    Pended(ConnectionRecord),
    /// A pended connection was decided.
    Decision(DecisionRecord),
    /// The stream callout reported a flow.
    Flow(FlowRecord),
    /// The service's own state changed (connected, lost the driver, rules reloaded, ...).
    Notice(NoticeRecord),
    /// On a `watch` stream only: this many records were dropped because the watcher read too
    /// slowly (the service never waits for a watcher).
    Dropped {
        /// How many.
        count: u64,
    },
}

/// A pended connection, as the driver reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// When the service read it (pended) or the driver answered (decision): RFC 3339, UTC,
    /// milliseconds.
    pub time: String,
    /// The pend id.
    pub id: u64,
    /// `connect` (ALE_AUTH_CONNECT) or `bind` (ALE_RESOURCE_ASSIGNMENT).
    pub layer: String,
    /// The application's path as the driver reported it.
    pub app: String,
    /// The process id.
    pub pid: u64,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or the protocol number.
    pub protocol: String,
    /// The remote end, or `*` for a bind.
    pub remote: String,
}

impl ConnectionRecord {
    /// `time id layer "app" remote/protocol`, the start of a decision line.
    #[must_use]
    pub fn text(&self) -> String {
        format!("{} {} {} \"{}\" {}/{}", self.time, self.id, self.layer, self.app, self.remote, self.protocol)
    }

    /// The application's file name (the last component of its path).
    #[must_use]
    pub fn app_name(&self) -> &str {
        self.app.rsplit(['\\', '/']).next().unwrap_or(&self.app)
    }
}

/// A decision: the connection and what was done with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The connection.
    #[serde(flatten)]
    pub connection: ConnectionRecord,
    /// `allow` or `block`.
    pub verdict: String,
    /// The rule that matched, or `default`.
    pub rule: String,
    /// What the driver said when it did not apply the verdict: `late`, `unknown-id`,
    /// `being-resolved`, `unloading`, `unanswered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// A flow event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// When the service read it.
    pub time: String,
    /// The flow id (slot + generation).
    pub flow: u64,
    /// `identified` or `closed`.
    pub event: String,
    /// `tls`, `http`, `other` or `-`.
    pub protocol: String,
    /// `sni`, `host`, `authority` or `-`.
    pub source: String,
    /// The name as seen on the wire (lowercased), or `-`.
    pub name: String,
    /// The first ALPN id, or `-`.
    pub alpn: String,
    /// `allowed` or `dropped` (the domain blocklist).
    pub verdict: String,
    /// How inspection ended.
    pub end: String,
    /// The process id.
    pub pid: u64,
    /// The remote end and protocol.
    pub remote: String,
    /// Bytes and segments each way.
    pub bytes_out: u64,
    /// See `bytes_out`.
    pub segments_out: u64,
    /// See `bytes_out`.
    pub bytes_in: u64,
    /// See `bytes_out`.
    pub segments_in: u64,
}

/// A change in the service's own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// When.
    pub time: String,
    /// What happened, in words.
    pub message: String,
}

/// `time` as the records write it.
#[must_use]
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// The name of an IP protocol number.
#[must_use]
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        other => other.to_string(),
    }
}

fn result_name(result: Option<VerdictResult>) -> Option<String> {
    match result {
        None | Some(VerdictResult::Accepted) => None,
        Some(VerdictResult::LateVerdict) => Some("late".to_owned()),
        Some(VerdictResult::UnknownId) => Some("unknown-id".to_owned()),
        Some(VerdictResult::BeingResolved) => Some("being-resolved".to_owned()),
        Some(VerdictResult::Unloading) => Some("unloading".to_owned()),
    }
}

fn layer_name(layer: PendLayer) -> String {
    match layer {
        PendLayer::AuthConnect => "connect",
        PendLayer::ResourceAssignment => "bind",
    }
    .to_owned()
}

fn connection(now: SystemTime, decision: &Decided) -> ConnectionRecord {
    ConnectionRecord {
        time: timestamp(now),
        id: decision.id,
        layer: layer_name(decision.layer),
        app: decision.app.clone(),
        pid: decision.process_id,
        protocol: protocol_name(decision.protocol),
        remote: match decision.layer {
            PendLayer::AuthConnect => decision.remote.to_string(),
            PendLayer::ResourceAssignment => "*".to_owned(),
        },
    }
}

impl Record {
    /// A connection read from the driver, before it is answered.
    #[must_use]
    pub fn pended(now: SystemTime, decision: &Decided) -> Record {
        Record::Pended(connection(now, decision))
    }

    /// A decision, once the driver answered (`result`), or `unanswered` when the batch could not
    /// be submitted (`answered` false).
    #[must_use]
    pub fn decision(
        now: SystemTime,
        decision: &Decided,
        rules: &RuleSet,
        answered: bool,
        result: Option<VerdictResult>,
    ) -> Record {
        Record::Decision(DecisionRecord {
            connection: connection(now, decision),
            verdict: match decision.verdict {
                Verdict::Permit => "allow",
                Verdict::Block => "block",
            }
            .to_owned(),
            rule: decision.rule.and_then(|index| rules.rule_name(index)).unwrap_or("default").to_owned(),
            result: if answered { result_name(result) } else { Some("unanswered".to_owned()) },
        })
    }

    /// A flow event.
    #[must_use]
    pub fn flow(now: SystemTime, event: &FlowEvent) -> Record {
        let identity = &event.identity;
        let (source, name) = identity.names.primary().map_or(("-", "-".to_owned()), |(source, name)| {
            let source = match source {
                NameSource::TlsSni => "sni",
                NameSource::HttpHost => "host",
                NameSource::HttpAuthority => "authority",
                NameSource::None => "-",
            };
            (source, format!("{name:?}"))
        });
        let alpn = identity.alpn.first();
        let counters = &event.counters;
        Record::Flow(FlowRecord {
            time: timestamp(now),
            flow: event.flow.to_raw(),
            event: match event.kind {
                FlowEventKind::Identified => "identified",
                FlowEventKind::Closed => "closed",
            }
            .to_owned(),
            protocol: match identity.protocol {
                AppProtocol::Unknown => "-",
                AppProtocol::Tls => "tls",
                AppProtocol::Http => "http",
                AppProtocol::Other => "other",
            }
            .to_owned(),
            source: source.to_owned(),
            name,
            alpn: if alpn.is_empty() { "-".to_owned() } else { alpn.escape_ascii().to_string() },
            verdict: match event.verdict {
                StreamVerdict::Permitted => "allowed",
                StreamVerdict::Dropped => "dropped",
            }
            .to_owned(),
            end: match event.end {
                InspectionEnd::Unfinished => "unfinished",
                InspectionEnd::Complete => "complete",
                InspectionEnd::Bounded => "bounded",
                InspectionEnd::Disconnected => "disconnected",
                InspectionEnd::NoBuffer => "no-buffer",
                InspectionEnd::Overlapped => "overlapped",
            }
            .to_owned(),
            pid: event.endpoints.process_id,
            remote: format!(
                "{}/{}",
                SocketAddr::new(event.endpoints.remote_address, event.endpoints.remote_port),
                protocol_name(event.endpoints.ip_protocol)
            ),
            bytes_out: counters.bytes_out,
            segments_out: counters.segments_out,
            bytes_in: counters.bytes_in,
            segments_in: counters.segments_in,
        })
    }

    /// A notice.
    #[must_use]
    pub fn notice(now: SystemTime, message: impl Into<String>) -> Record {
        Record::Notice(NoticeRecord { time: timestamp(now), message: message.into() })
    }

    /// The text line (no newline): the formats of `serve`'s module docs.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Record::Pended(c) => format!("{} pended", c.text()),
            Record::Decision(d) => format!(
                "{} {} {}{}",
                d.connection.text(),
                d.verdict,
                d.rule,
                d.result.as_ref().map(|r| format!(" [{r}]")).unwrap_or_default()
            ),
            Record::Flow(f) => format!(
                "{} flow {} {} {} {} {} {} {} {} {} out={}/{} in={}/{}",
                f.time,
                f.flow,
                f.event,
                f.protocol,
                if f.source == "-" { "-".to_owned() } else { format!("{}:{}", f.source, f.name) },
                f.alpn,
                f.verdict,
                f.end,
                f.pid,
                f.remote,
                f.bytes_out,
                f.segments_out,
                f.bytes_in,
                f.segments_in
            ),
            Record::Notice(n) => format!("{} # {}", n.time, n.message),
            Record::Dropped { count } => format!("# {count} record(s) dropped: this watcher read too slowly"),
        }
    }

    /// The JSON line (no newline).
    #[must_use]
    pub fn json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| "{\"type\":\"notice\",\"message\":\"unserializable\"}".to_owned())
    }
}
