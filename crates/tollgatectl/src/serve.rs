//! `tollgatectl serve`: the verdict service's loop over the driver's control device.
//!
//! ```text
//! tollgatectl serve [--rules FILE] [--model | --driver] [--json] [--control NAME]
//!                   [--verdict-delay DURATION] [--for DURATION] [--rate N]
//! ```
//!
//! - It opens the control device (`\\.\Tollgate` on Windows; with `--model`, the default
//!   anywhere else, a live simulated machine running Tollgate's driver logic on the WFP model,
//!   [`crate::device::live_model`]), negotiates the protocol, brings the driver's configuration
//!   (the rules' `[driver]` table) and its domain blocklist (the rules' domain-only block rules) in
//!   line with the rules, claims the verdict-service role and loops: read a batch of pended
//!   connections (`GET_PENDED` waits in the driver until something pends, or until the stream
//!   callout has events), decide each with the rules, answer the batch, read the stream events.
//! - Every decision and every flow event is a [`Record`]: a line on stdout (text, or JSON with
//!   `--json`), and on the control channel for `tollgatectl watch` ([`crate::hub`]). The service's
//!   own messages (connected, lost the driver, rules reloaded or refused) go to the log (`tracing`,
//!   on stderr: text, or JSON lines with `--log-format json`).
//! - When the device fails (the driver was stopped or restarted, a request was cancelled), it
//!   says so, closes its handle (the driver then gives everything it still holds the default
//!   verdict), waits a short backoff and reconnects; while the driver is not loaded it keeps
//!   retrying and says so once.
//! - Rules come from `--rules FILE` ([`RuleSet::load`]; a bad file at start is rejected with its
//!   `file:line:col` message, exit 2) or the built-in default ([`RuleSet::builtin_default`]). The
//!   file is watched: a change is applied within a second; a changed file with a mistake is
//!   refused with its `file:line:col` message and the service keeps the rules it had.
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
//! With `--json`, each record is one JSON object per line instead (`"type"`: `decision` or `flow`,
//! and the fields of [`crate::records`]).
//!
//! # Exit codes
//! 0: `--for` elapsed or a test limit of [`ServeConfig`] was reached (in normal use the service
//! runs until it is stopped); 1: a fatal error (not elevated, no common protocol version, the
//! control channel could not be opened); 2: bad rules at start, or no driver on this platform.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tollgate_core::Verdict;
use tollgate_rules::RuleSet;

use crate::device::ControlDevice;
use crate::device::live_model::{Clock, LiveConfig, LiveModel};
use crate::device::status::{self, STATUS_ACCESS_DENIED};
use crate::hub::{self, Hub, ServiceState, SocketName, StatsView};
use crate::records::Record;
use crate::service::{ServiceError, VerdictService};

/// How records are written to stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// The text lines of the module docs.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What the `serve` command was asked to do.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// The rules file, or `None` for the built-in default.
    pub rules: Option<PathBuf>,
    /// Serve the live WFP model (`Some(true)`), the driver (`Some(false)`), or the platform's
    /// default (`None`: the driver on Windows, the model elsewhere).
    pub model: Option<bool>,
    /// Hold every batch this long before answering it (testing: lets a test kill the service
    /// while connections are pended). Keep it below the driver's pend timeout (5 s by default).
    pub verdict_delay: Duration,
    /// Records on stdout as JSON lines.
    pub json: bool,
    /// The control channel's name; `None` for the platform's default.
    pub control: Option<SocketName>,
    /// Stop after this long (and, on the model, print its report).
    pub run_for: Option<Duration>,
    /// The model: new connections per second.
    pub rate: u32,
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
    /// How records are written.
    pub format: OutputFormat,
    /// The rules file to watch for changes (`None`: the rules never change).
    pub rules_file: Option<PathBuf>,
    /// How often the rules file is checked.
    pub reload_interval: Duration,
    /// How often the driver's counters are read for `stats`.
    pub stats_interval: Duration,
    /// Stop after this long.
    pub run_for: Option<Duration>,
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
            format: OutputFormat::Text,
            rules_file: None,
            reload_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(1),
            run_for: None,
            max_batches: None,
            max_connects: None,
        }
    }
}

/// Why [`serve`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// `--for` elapsed, or a test limit of [`ServeConfig`] was reached.
    LimitReached,
    /// An error that retrying cannot fix; the message says what to do.
    Fatal(String),
}

/// Exit code: bad rules, no driver here.
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

fn summary(rules: &RuleSet, origin: &str) -> String {
    format!(
        "{origin}: {} rules, default {}",
        rules.len(),
        match rules.default_action() {
            tollgate_rules::Verdict::Allow => "allow",
            tollgate_rules::Verdict::Block => "block",
        }
    )
}

/// The `serve` command: returns the process exit code.
pub fn run(options: &ServeOptions, out: &mut dyn Write) -> u8 {
    let (rules, origin) = match load_rules(options.rules.as_deref()) {
        Ok(loaded) => loaded,
        Err(message) => {
            tracing::error!("invalid rules: {message}");
            return EXIT_USAGE;
        }
    };
    let summary = summary(&rules, &origin);
    let config = ServeConfig {
        verdict_delay: options.verdict_delay,
        format: if options.json { OutputFormat::Json } else { OutputFormat::Text },
        rules_file: options.rules.clone(),
        run_for: options.run_for,
        ..ServeConfig::default()
    };
    let control = options.control.clone().unwrap_or_else(SocketName::default_for_platform);
    let hub = Hub::new(hub::WATCH_QUEUE);
    let _listening = match hub::listen(hub.clone(), &control) {
        Ok(listening) => listening,
        Err(error) => {
            tracing::error!("cannot open the control channel {}: {error}", control.display());
            return EXIT_FATAL;
        }
    };
    tracing::info!("rules from {summary}; control channel {} (for `tollgatectl watch` and `stats`)", control.display());
    if !config.verdict_delay.is_zero() {
        tracing::info!(
            "holding every batch {} before answering (--verdict-delay)",
            humantime::format_duration(config.verdict_delay)
        );
    }
    let mut service = VerdictService::new(rules);
    hub.set_stats(StatsView {
        service: ServiceState { rules: summary, ..ServiceState::default() },
        counters: Vec::new(),
    });
    let model = options.model.unwrap_or(!cfg!(windows));
    if model {
        return run_on_model(&mut service, options, config, &hub, out);
    }
    run_on_driver(&mut service, config, &hub, out)
}

fn finish(end: ServeEnd) -> u8 {
    match end {
        ServeEnd::LimitReached => 0,
        ServeEnd::Fatal(message) => {
            tracing::error!("{message}");
            EXIT_FATAL
        }
    }
}

/// Serves a live simulated machine (Tollgate's driver logic on the WFP model, apps connecting at
/// `--rate` per second); with `--for`, prints the model's verdict (bugcheck, hazards, leaks) at
/// the end.
fn run_on_model(
    service: &mut VerdictService,
    options: &ServeOptions,
    config: ServeConfig,
    hub: &Hub,
    out: &mut dyn Write,
) -> u8 {
    let live = LiveModel::new(LiveConfig {
        connections_per_second: if options.rate == 0 { 20 } else { options.rate },
        clock: Clock::Wall,
        ..LiveConfig::default()
    });
    let config = ServeConfig { device_name: "the WFP model's \\\\.\\Tollgate".to_owned(), ..config };
    tracing::info!(
        "serving the WFP model: Tollgate's driver logic on a simulated machine whose apps open {} connections/s",
        if options.rate == 0 { 20 } else { options.rate }
    );
    let end = serve(service, &live, &config, Some(hub), out);
    service.disconnect(&live);
    live.unload_driver();
    let reports = live.reports();
    let hazards: usize = reports.iter().map(|r| r.hazards.len()).sum();
    let leaks: usize = reports.iter().map(|r| r.leaks.len()).sum();
    let bugcheck = reports.iter().find_map(|r| r.bugcheck.clone());
    match &bugcheck {
        Some(bugcheck) => tracing::error!("the model machine stopped: {bugcheck}"),
        None => tracing::info!("the model machine: {hazards} hazard(s), {leaks} leak(s), no bugcheck"),
    }
    if bugcheck.is_some() || hazards > 0 || leaks > 0 {
        return EXIT_FATAL;
    }
    finish(end)
}

#[cfg(windows)]
fn run_on_driver(service: &mut VerdictService, config: ServeConfig, hub: &Hub, out: &mut dyn Write) -> u8 {
    let device = crate::device::windows::WindowsDevice::new();
    finish(serve(service, &device, &config, Some(hub), out))
}

#[cfg(not(windows))]
fn run_on_driver(_service: &mut VerdictService, _config: ServeConfig, _hub: &Hub, _out: &mut dyn Write) -> u8 {
    tracing::error!(
        "there is no Tollgate driver on this machine: `serve --driver` answers tollgate.sys through \\\\.\\Tollgate, \
         which exists only on Windows with the driver loaded. Without --driver, `serve` answers the WFP model here."
    );
    EXIT_USAGE
}

/// The rules file as last seen, to notice a change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp { modified: metadata.modified().ok(), len: metadata.len() })
}

/// What the loop keeps between iterations.
struct Loop<'a> {
    config: &'a ServeConfig,
    hub: Option<&'a Hub>,
    out: &'a mut dyn Write,
    started: Instant,
    rules_stamp: Option<FileStamp>,
    next_reload: Instant,
    next_stats: Instant,
    decisions: u64,
    flow_events: u64,
    reloads: u64,
    connected: bool,
}

impl Loop<'_> {
    fn over(&self) -> bool {
        self.config.run_for.is_some_and(|limit| self.started.elapsed() >= limit)
    }

    /// Writes a record to stdout and to the watchers (and, at debug level, to the log).
    fn emit(&mut self, record: &Record) {
        let line = match self.config.format {
            OutputFormat::Text => record.text(),
            OutputFormat::Json => record.json(),
        };
        tracing::debug!(target: "tollgate::record", "{line}");
        let _ = writeln!(self.out, "{line}");
        if let Some(hub) = self.hub {
            hub.publish(record);
        }
    }

    /// Logs a change in the service's state, and tells the watchers.
    fn notice(&mut self, level: tracing::Level, message: String) {
        match level {
            tracing::Level::ERROR => tracing::error!("{message}"),
            tracing::Level::WARN => tracing::warn!("{message}"),
            _ => tracing::info!("{message}"),
        }
        if let Some(hub) = self.hub {
            hub.publish(&Record::notice(SystemTime::now(), message));
        }
    }

    fn warnings(&mut self, service: &mut VerdictService) {
        for warning in service.take_warnings() {
            self.notice(tracing::Level::WARN, warning);
        }
    }

    /// Applies a changed rules file; a file with a mistake is refused and the rules stay.
    /// `Err` only when the driver could not be updated (the loop then reconnects).
    fn reload(&mut self, service: &mut VerdictService, device: &dyn ControlDevice) -> Result<(), ServiceError> {
        let Some(path) = self.config.rules_file.as_deref() else {
            return Ok(());
        };
        if Instant::now() < self.next_reload {
            return Ok(());
        }
        self.next_reload = Instant::now() + self.config.reload_interval;
        let now = stamp(path);
        if now == self.rules_stamp {
            return Ok(());
        }
        self.rules_stamp = now;
        match RuleSet::load(path) {
            Ok(rules) => {
                let summary = summary(&rules, &path.display().to_string());
                let result = service.set_rules(self.connected.then_some(device), rules);
                self.reloads = self.reloads.saturating_add(1);
                self.notice(tracing::Level::INFO, format!("rules reloaded: {summary}"));
                self.warnings(service);
                if let Some(hub) = self.hub {
                    let mut view = hub.stats();
                    view.service.rules = summary;
                    hub.set_stats(view);
                }
                result
            }
            Err(error) => {
                self.notice(
                    tracing::Level::WARN,
                    format!("rules file changed but not applied (the previous rules stay in force): {error}"),
                );
                Ok(())
            }
        }
    }

    /// Refreshes what `stats` answers.
    fn refresh_stats(&mut self, device: &dyn ControlDevice) {
        let Some(hub) = self.hub else {
            return;
        };
        if Instant::now() < self.next_stats {
            return;
        }
        self.next_stats = Instant::now() + self.config.stats_interval;
        let mut view = hub.stats();
        view.service.connected = self.connected;
        view.service.decisions = self.decisions;
        view.service.flow_events = self.flow_events;
        view.service.reloads = self.reloads;
        if self.connected
            && let Ok((stats, stream, refused)) = crate::service::read_stats(device)
        {
            view.counters = hub::counters(&stats, &stream, &refused);
        }
        hub.set_stats(view);
    }
}

/// The loop: connect, then read, decide and answer until the device fails; then reconnect.
/// Returns only on a fatal error, at `run_for`, or at a test limit.
pub fn serve(
    service: &mut VerdictService,
    device: &dyn ControlDevice,
    config: &ServeConfig,
    hub: Option<&Hub>,
    out: &mut dyn Write,
) -> ServeEnd {
    let name = config.device_name.as_str();
    if config.format == OutputFormat::Text {
        let _ = writeln!(out, "# time id layer app remote verdict rule [result]");
        let _ = writeln!(
            out,
            "# time flow id event protocol name alpn verdict end pid remote out=bytes/segments in=bytes/segments"
        );
        let _ = out.flush();
    }
    let now = Instant::now();
    let mut state = Loop {
        config,
        hub,
        out,
        started: now,
        rules_stamp: config.rules_file.as_deref().and_then(stamp),
        next_reload: now + config.reload_interval,
        next_stats: now,
        decisions: 0,
        flow_events: 0,
        reloads: 0,
        connected: false,
    };
    let mut backoff = config.backoff_initial;
    let mut connected_once = false;
    let mut last_failure: Option<String> = None;
    let mut connects = 0_u64;
    let mut batches = 0_u64;
    loop {
        if config.max_connects.is_some_and(|max| connects >= max) || state.over() {
            return ServeEnd::LimitReached;
        }
        connects = connects.saturating_add(1);
        if let Err(error) = service.connect(device) {
            if let Some(message) = fatal_connect_error(&error, connected_once, name) {
                return ServeEnd::Fatal(message);
            }
            let message = describe_error(&error);
            if last_failure.as_deref() != Some(message.as_str()) {
                state.notice(
                    tracing::Level::WARN,
                    format!(
                        "cannot connect to {name}: {message}; retrying (up to every {})",
                        humantime::format_duration(config.backoff_max)
                    ),
                );
                last_failure = Some(message);
            }
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(config.backoff_max);
            continue;
        }
        state.connected = true;
        let blocklist = if service.has_domain_blocklist() {
            format!("; {} domain pattern(s) blocked in the driver", service.rules().blocked_domains().len())
        } else {
            String::new()
        };
        state.notice(tracing::Level::INFO, format!("connected to {name}; serving verdicts{blocklist}"));
        state.warnings(service);
        connected_once = true;
        last_failure = None;
        backoff = config.backoff_initial;

        let error = loop {
            if config.max_batches.is_some_and(|max| batches >= max) || state.over() {
                service.disconnect(device);
                return ServeEnd::LimitReached;
            }
            if let Err(error) = state.reload(service, device) {
                break error;
            }
            state.refresh_stats(device);
            let decided = match service.read_and_decide(device) {
                Ok(decided) => decided,
                Err(error) => break error,
            };
            // The driver ends a parked read early when the stream callout queued events.
            match service.read_stream_events(device) {
                Ok(events) => {
                    let now = SystemTime::now();
                    state.flow_events = state.flow_events.saturating_add(events.len() as u64);
                    for event in &events {
                        state.emit(&Record::flow(now, event));
                    }
                }
                Err(error) => break error,
            }
            if decided.is_empty() {
                let _ = state.out.flush();
                std::thread::sleep(config.idle_wait);
                continue;
            }
            batches = batches.saturating_add(1);
            if let Some(hub) = state.hub {
                let now = SystemTime::now();
                for decision in &decided {
                    hub.publish(&Record::pended(now, decision));
                }
            }
            if !config.verdict_delay.is_zero() {
                std::thread::sleep(config.verdict_delay);
            }
            let verdicts: Vec<(u64, Verdict)> = decided.iter().map(|d| (d.id, d.verdict)).collect();
            let submitted = service.submit(device, &verdicts);
            let now = SystemTime::now();
            state.decisions = state.decisions.saturating_add(decided.len() as u64);
            match submitted {
                Ok(outcome) => {
                    for (index, decision) in decided.iter().enumerate() {
                        let result = outcome.results.get(index).copied();
                        state.emit(&Record::decision(now, decision, service.rules(), true, result));
                    }
                    let _ = state.out.flush();
                }
                Err(error) => {
                    for decision in &decided {
                        state.emit(&Record::decision(now, decision, service.rules(), false, None));
                    }
                    let _ = state.out.flush();
                    break error;
                }
            }
        };
        state.connected = false;
        state.notice(
            tracing::Level::WARN,
            format!(
                "lost {name}: {}; closing the handle (the driver gives what it still holds its default verdict) and \
                 reconnecting in {}",
                describe_error(&error),
                humantime::format_duration(backoff)
            ),
        );
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
