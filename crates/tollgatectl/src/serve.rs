//! `tollgatectl serve`: the verdict service's loop over the driver's control device.
//!
//! ```text
//! tollgatectl serve [--rules FILE] [--model] [--verdict-delay DURATION]
//! ```
//!
//! - On Windows it opens `\\.\Tollgate` (`WindowsDevice`), negotiates the protocol, claims the
//!   verdict-service role and loops: read a batch of pended connections (`GET_PENDED` blocks in
//!   the driver until something pends), decide each with the rules, answer the batch. It prints
//!   one line per decision to stdout, and its status messages to stderr.
//! - When the device fails (the driver was stopped or restarted, a request was cancelled), it says
//!   so, closes its handle (the driver then gives everything it still holds the default verdict),
//!   waits a short backoff and reconnects; while the driver is not loaded it keeps retrying and
//!   says so once.
//! - Rules come from `--rules FILE` ([`RuleSet::load`]; a bad file is rejected with its
//!   `file:line:col` message, exit 2) or the built-in default ([`RuleSet::builtin_default`]).
//! - Anywhere but Windows there is no driver: `serve` says so, points to `tollgatectl simulate`,
//!   and exits 2. `--model` (serving against the WFP model) is a later issue and exits 2 too.
//!
//! # Output
//! One line per decision, after the driver answered the batch, space-separated:
//!
//! ```text
//! time id layer app remote verdict rule [result]
//! 2025-01-01T12:00:00.123Z 4294967297 connect "\device\harddiskvolume3\windows\system32\curl.exe" 1.1.1.1:443/tcp allow allow-https
//! ```
//!
//! `time` is UTC (RFC 3339, milliseconds); `layer` is `connect` (ALE_AUTH_CONNECT) or `bind`
//! (ALE_RESOURCE_ASSIGNMENT, whose remote end is not known yet: `*/tcp`); `app` is quoted (paths
//! contain spaces; Windows paths cannot contain `"`); `rule` is the matching rule's name or
//! `default`. A verdict the driver did not apply gets a last column: `[late]` (already resolved:
//! timed out, torn down, or cleaned up), `[unknown-id]`, `[being-resolved]`, `[unloading]`, or
//! `[unanswered]` when the whole batch could not be submitted.
//!
//! When the driver reports what its stream callout found out about TCP flows, one line per event,
//! marked `flow`:
//!
//! ```text
//! time flow id event protocol name alpn verdict end pid remote out=bytes/segments in=bytes/segments
//! 2025-01-01T12:00:00.456Z flow 4294967296 identified tls sni:www.example.com h2 allowed complete 4242 93.184.216.34:443/tcp out=1820/1 in=0/0
//! ```
//!
//! `event` is `identified` (inspection ended: the name, ALPN and what was done) or `closed` (the
//! flow is gone: final counts); `name` is `sni:`, `host:` or `authority:` and the name as seen on
//! the wire (lowercased), or `-`; `verdict` is `dropped` when the name matched the domain blocklist
//! the service pushed (the rules' domain-only block rules).
//!
//! # Exit codes
//! 0: the test limits in [`ServeConfig`] were reached (never in normal use: the service runs until
//! it is stopped); 1: a fatal error (not elevated, no common protocol version); 2: bad rules, no
//! driver on this platform, or `--model`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tollgate_core::{PendLayer, Verdict};
use tollgate_protocol::VerdictResult;
use tollgate_rules::RuleSet;

use crate::device::ControlDevice;
use crate::device::status::{self, STATUS_ACCESS_DENIED};
use crate::service::{Decided, ServiceError, VerdictService};

/// What the `serve` command was asked to do.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// The rules file, or `None` for the built-in default.
    pub rules: Option<PathBuf>,
    /// Serve against the WFP model instead of the driver (not implemented yet).
    pub model: bool,
    /// Hold every batch this long before answering it (testing: lets a test kill the service
    /// while connections are pended). Keep it below the driver's pend timeout (5 s by default).
    pub verdict_delay: Duration,
}

/// How the loop behaves; the defaults are the command's.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The device's name in messages.
    pub device_name: String,
    /// The first wait before reconnecting; doubled after each failed attempt.
    pub backoff_initial: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// See [`ServeOptions::verdict_delay`].
    pub verdict_delay: Duration,
    /// Wait after a read that returned nothing (only a device that does not park reads, like the
    /// model's, does that; the driver's `GET_PENDED` blocks instead).
    pub idle_wait: Duration,
    /// Tests: return after this many batches.
    pub max_batches: Option<u64>,
    /// Tests: return after this many connection attempts.
    pub max_connects: Option<u64>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            device_name: r"\\.\Tollgate".to_owned(),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            verdict_delay: Duration::ZERO,
            idle_wait: Duration::from_millis(10),
            max_batches: None,
            max_connects: None,
        }
    }
}

/// Why [`serve`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// A test limit of [`ServeConfig`] was reached.
    LimitReached,
    /// An error that retrying cannot fix; the message says what to do.
    Fatal(String),
}

/// Exit code: bad rules, no driver here, or `--model`.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a fatal error while serving.
pub const EXIT_FATAL: u8 = 1;

/// The rules to serve with: `path`, or the built-in default.
///
/// # Errors
/// The rules error, shown as `file:line:col: message` (or `file: message` for an I/O error).
pub fn load_rules(path: Option<&Path>) -> Result<(RuleSet, String), String> {
    match path {
        Some(path) => match RuleSet::load(path) {
            Ok(rules) => Ok((rules, path.display().to_string())),
            Err(error) => Err(error.to_string()),
        },
        None => Ok((RuleSet::builtin_default(), "the built-in default rules".to_owned())),
    }
}

/// The `serve` command: returns the process exit code.
pub fn run(options: &ServeOptions, out: &mut dyn Write, log: &mut dyn Write) -> u8 {
    let (rules, origin) = match load_rules(options.rules.as_deref()) {
        Ok(loaded) => loaded,
        Err(message) => {
            let _ = writeln!(log, "tollgatectl serve: invalid rules: {message}");
            return EXIT_USAGE;
        }
    };
    let summary = format!(
        "{origin}: {} rules, default {}",
        rules.len(),
        match rules.default_action() {
            tollgate_rules::Verdict::Allow => "allow",
            tollgate_rules::Verdict::Block => "block",
        }
    );
    if options.model {
        let _ = writeln!(
            log,
            "tollgatectl serve --model: serving against the WFP model is not implemented yet (a later issue).\n\
             `tollgatectl simulate` runs this verdict service and its rules against Tollgate's driver logic on the \
             WFP model today."
        );
        return EXIT_USAGE;
    }
    run_on_platform(rules, &summary, options, out, log)
}

#[cfg(windows)]
fn run_on_platform(
    rules: RuleSet,
    summary: &str,
    options: &ServeOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> u8 {
    let device = crate::device::windows::WindowsDevice::new();
    let config = ServeConfig { verdict_delay: options.verdict_delay, ..ServeConfig::default() };
    let _ = writeln!(log, "tollgatectl serve: rules from {summary}; device {}", config.device_name);
    if !config.verdict_delay.is_zero() {
        let _ = writeln!(
            log,
            "tollgatectl serve: holding every batch {} before answering (--verdict-delay)",
            humantime::format_duration(config.verdict_delay)
        );
    }
    let mut service = VerdictService::new(rules);
    match serve(&mut service, &device, &config, out, log) {
        ServeEnd::LimitReached => 0,
        ServeEnd::Fatal(message) => {
            let _ = writeln!(log, "tollgatectl serve: {message}");
            EXIT_FATAL
        }
    }
}

#[cfg(not(windows))]
fn run_on_platform(
    _rules: RuleSet,
    summary: &str,
    _options: &ServeOptions,
    _out: &mut dyn Write,
    log: &mut dyn Write,
) -> u8 {
    let _ = writeln!(
        log,
        "tollgatectl serve: there is no Tollgate driver on this machine. `serve` answers tollgate.sys through \
         \\\\.\\Tollgate, which exists only on Windows with the driver loaded.\n\
         To run the verdict service against Tollgate's driver logic here, use `tollgatectl simulate` (the WFP model).\n\
         (The rules are valid: {summary}.)"
    );
    EXIT_USAGE
}

/// The loop: connect, then read, decide and answer until the device fails; then reconnect.
/// Returns only on a fatal error or a test limit.
pub fn serve(
    service: &mut VerdictService,
    device: &dyn ControlDevice,
    config: &ServeConfig,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> ServeEnd {
    let name = config.device_name.as_str();
    let _ = writeln!(out, "# time id layer app remote verdict rule [result]");
    let _ = writeln!(
        out,
        "# time flow id event protocol name alpn verdict end pid remote out=bytes/segments in=bytes/segments"
    );
    let _ = out.flush();
    let mut backoff = config.backoff_initial;
    let mut connected_once = false;
    let mut last_failure: Option<String> = None;
    let mut connects = 0_u64;
    let mut batches = 0_u64;
    loop {
        if config.max_connects.is_some_and(|max| connects >= max) {
            return ServeEnd::LimitReached;
        }
        connects = connects.saturating_add(1);
        if let Err(error) = service.connect(device) {
            if let Some(message) = fatal_connect_error(&error, connected_once, name) {
                return ServeEnd::Fatal(message);
            }
            let message = describe_error(&error);
            if last_failure.as_deref() != Some(message.as_str()) {
                let _ = writeln!(
                    log,
                    "tollgatectl serve: cannot connect to {name}: {message}; retrying (up to every {})",
                    humantime::format_duration(config.backoff_max)
                );
                last_failure = Some(message);
            }
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(config.backoff_max);
            continue;
        }
        let _ = writeln!(
            log,
            "tollgatectl serve: connected to {name}; serving verdicts{}",
            if service.has_domain_blocklist() {
                format!("; {} domain pattern(s) blocked in the driver", service.rules().blocked_domains().len())
            } else {
                String::new()
            }
        );
        let _ = log.flush();
        connected_once = true;
        last_failure = None;
        backoff = config.backoff_initial;

        let error = loop {
            if config.max_batches.is_some_and(|max| batches >= max) {
                service.disconnect(device);
                return ServeEnd::LimitReached;
            }
            let decided = match service.read_and_decide(device) {
                Ok(decided) => decided,
                Err(error) => break error,
            };
            // The driver ends a parked read early when the stream callout queued events.
            match service.read_stream_events(device) {
                Ok(events) => {
                    let now = SystemTime::now();
                    for event in &events {
                        let _ = writeln!(out, "{}", flow_line(now, event));
                    }
                    if !events.is_empty() {
                        let _ = out.flush();
                    }
                }
                Err(error) => break error,
            }
            if decided.is_empty() {
                std::thread::sleep(config.idle_wait);
                continue;
            }
            batches = batches.saturating_add(1);
            if !config.verdict_delay.is_zero() {
                std::thread::sleep(config.verdict_delay);
            }
            let verdicts: Vec<(u64, Verdict)> = decided.iter().map(|d| (d.id, d.verdict)).collect();
            match service.submit(device, &verdicts) {
                Ok(outcome) => {
                    let now = SystemTime::now();
                    for (index, decision) in decided.iter().enumerate() {
                        let result = outcome.results.get(index).copied();
                        let _ = writeln!(out, "{}", decision_line(now, decision, service.rules(), result));
                    }
                    let _ = out.flush();
                }
                Err(error) => {
                    let now = SystemTime::now();
                    for decision in &decided {
                        let _ = writeln!(out, "{} [unanswered]", decision_line(now, decision, service.rules(), None));
                    }
                    let _ = out.flush();
                    break error;
                }
            }
        };
        let _ = writeln!(
            log,
            "tollgatectl serve: lost {name}: {}; closing the handle (the driver gives what it still holds its default \
             verdict) and reconnecting in {}",
            describe_error(&error),
            humantime::format_duration(backoff)
        );
        let _ = log.flush();
        service.disconnect(device);
        std::thread::sleep(backoff);
    }
}

/// `Some(message)` if retrying the connection cannot help.
fn fatal_connect_error(error: &ServiceError, connected_once: bool, name: &str) -> Option<String> {
    match error {
        ServiceError::NoCommonVersion => Some(format!(
            "{name} speaks no protocol version this tollgatectl speaks: install a tollgatectl built with this driver"
        )),
        // Before the first connection, access denied means "not elevated" (the device admits
        // SYSTEM and Administrators only). Later it can be an unloading driver: retry.
        ServiceError::Device(code) if *code == STATUS_ACCESS_DENIED && !connected_once => Some(format!(
            "cannot open {name}: {}. Run tollgatectl serve from an elevated prompt (or as a SYSTEM service).",
            status::describe(*code)
        )),
        _ => None,
    }
}

/// A service error for messages, with the device status explained.
#[must_use]
pub fn describe_error(error: &ServiceError) -> String {
    match error {
        ServiceError::Device(code) => status::describe(*code),
        other => other.to_string(),
    }
}

fn layer_name(layer: PendLayer) -> &'static str {
    match layer {
        PendLayer::AuthConnect => "connect",
        PendLayer::ResourceAssignment => "bind",
    }
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        other => other.to_string(),
    }
}

fn result_tag(result: Option<VerdictResult>) -> &'static str {
    match result {
        None | Some(VerdictResult::Accepted) => "",
        Some(VerdictResult::LateVerdict) => " [late]",
        Some(VerdictResult::UnknownId) => " [unknown-id]",
        Some(VerdictResult::BeingResolved) => " [being-resolved]",
        Some(VerdictResult::Unloading) => " [unloading]",
    }
}

/// One output line (see the module docs), without the newline.
#[must_use]
pub fn decision_line(now: SystemTime, decision: &Decided, rules: &RuleSet, result: Option<VerdictResult>) -> String {
    let remote = match decision.layer {
        PendLayer::AuthConnect => decision.remote.to_string(),
        PendLayer::ResourceAssignment => "*".to_owned(),
    };
    let verdict = match decision.verdict {
        Verdict::Permit => "allow",
        Verdict::Block => "block",
    };
    let rule = decision.rule.and_then(|index| rules.rule_name(index)).unwrap_or("default");
    format!(
        "{} {} {} \"{}\" {}/{} {} {}{}",
        humantime::format_rfc3339_millis(now),
        decision.id,
        layer_name(decision.layer),
        decision.app,
        remote,
        protocol_name(decision.protocol),
        verdict,
        rule,
        result_tag(result)
    )
}

/// One line about a flow the stream callout inspected (see the module docs), without the newline.
#[must_use]
pub fn flow_line(now: SystemTime, event: &tollgate_core::stream::FlowEvent) -> String {
    use tollgate_core::stream::{FlowEventKind, InspectionEnd, StreamVerdict};
    use tollgate_inspect::identity::{AppProtocol, NameSource};
    let kind = match event.kind {
        FlowEventKind::Identified => "identified",
        FlowEventKind::Closed => "closed",
    };
    let protocol = match event.identity.protocol {
        AppProtocol::Unknown => "-",
        AppProtocol::Tls => "tls",
        AppProtocol::Http => "http",
        AppProtocol::Other => "other",
    };
    let name = event.identity.names.primary().map_or_else(
        || "-".to_owned(),
        |(source, name)| {
            let source = match source {
                NameSource::TlsSni => "sni",
                NameSource::HttpHost => "host",
                NameSource::HttpAuthority => "authority",
                NameSource::None => "-",
            };
            format!("{source}:{name:?}")
        },
    );
    let alpn = event.identity.alpn.first();
    let alpn = if alpn.is_empty() { "-".to_owned() } else { alpn.escape_ascii().to_string() };
    let verdict = match event.verdict {
        StreamVerdict::Permitted => "allowed",
        StreamVerdict::Dropped => "dropped",
    };
    let end = match event.end {
        InspectionEnd::Unfinished => "unfinished",
        InspectionEnd::Complete => "complete",
        InspectionEnd::Bounded => "bounded",
        InspectionEnd::Disconnected => "disconnected",
        InspectionEnd::NoBuffer => "no-buffer",
        InspectionEnd::Overlapped => "overlapped",
    };
    let remote = SocketAddr::new(event.endpoints.remote_address, event.endpoints.remote_port);
    let c = &event.counters;
    format!(
        "{} flow {} {kind} {protocol} {name} {alpn} {verdict} {end} {} {remote}/{} out={}/{} in={}/{}",
        humantime::format_rfc3339_millis(now),
        event.flow.to_raw(),
        event.endpoints.process_id,
        protocol_name(event.endpoints.ip_protocol),
        c.bytes_out,
        c.segments_out,
        c.bytes_in,
        c.segments_in,
    )
}
