//! The verdict service, `watch` and `stats` against a live simulated machine (Tollgate's driver
//! logic on the WFP model), end to end: decisions, live rules reloads (a bad file keeps the old
//! rules), a driver that goes away and comes back, a full pend queue, and a watcher too slow to
//! keep up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tollgate_core::{CoreConfig, RuntimeConfig};
use tollgate_rules::{ConnectionQuery, Direction, RuleSet};
use tollgatectl::device::live_model::{Clock, LiveConfig, LiveModel};
use tollgatectl::hub::{self, Hub, Request, SocketName};
use tollgatectl::records::Record;
use tollgatectl::serve::{OutputFormat, ServeConfig, ServeEnd, serve};
use tollgatectl::service::VerdictService;

mod common;

/// Decisions depend only on what a decision record shows (app, protocol, remote port), so the
/// test can recompute each one.
const RULES: &str = r#"
default = "block"

[[rule]]
name = "ads"
action = "block"
domain = ["*.ads.example", "telemetry.mozilla.org", "*.telemetry.mozilla.org"]

[[rule]]
name = "web"
action = "allow"
app = ['**\firefox.exe', '**\chrome.exe']
remote_port = [80, 443]

[[rule]]
name = "dns"
action = "allow"
protocol = "udp"
remote_port = 53
"#;

/// The same policy, blocking the web instead.
const RULES_NO_WEB: &str = r#"
default = "block"

[[rule]]
name = "dns"
action = "allow"
protocol = "udp"
remote_port = 53
"#;

struct Running {
    thread: JoinHandle<(ServeEnd, String, String)>,
    hub: Arc<Hub>,
    _listening: hub::Listening,
    socket: SocketName,
}

fn socket(name: &str) -> SocketName {
    let path = std::env::temp_dir().join(format!("tollgate-{name}-{}.sock", std::process::id()));
    SocketName::new(path.display().to_string())
}

fn live(rate: u32) -> Arc<LiveModel> {
    Arc::new(LiveModel::new(LiveConfig { connections_per_second: rate, clock: Clock::Wall, ..LiveConfig::default() }))
}

fn config(run_for: Duration) -> ServeConfig {
    ServeConfig {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        idle_wait: Duration::from_millis(2),
        format: OutputFormat::Json,
        reload_interval: Duration::from_millis(50),
        stats_interval: Duration::from_millis(50),
        run_for: Some(run_for),
        ..ServeConfig::default()
    }
}

/// Runs `serve` on `model` in a thread, with the control channel at `socket`.
fn start(model: Arc<LiveModel>, rules: RuleSet, config: ServeConfig, socket: SocketName) -> Running {
    let hub = Hub::new(hub::WATCH_QUEUE);
    let listening = hub::listen(hub.clone(), &socket).unwrap();
    let shared = hub.clone();
    let thread = std::thread::spawn(move || {
        let mut service = VerdictService::new(rules);
        let mut out = Vec::new();
        let (end, log) = common::capture_log(|| serve(&mut service, model.as_ref(), &config, Some(&shared), &mut out));
        service.disconnect(model.as_ref());
        (end, String::from_utf8(out).unwrap(), log)
    });
    Running { thread, hub, _listening: listening, socket }
}

fn records(out: &str) -> Vec<Record> {
    out.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn decisions(records: &[Record]) -> Vec<&tollgatectl::records::DecisionRecord> {
    records
        .iter()
        .filter_map(|record| match record {
            Record::Decision(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// What `rules` say about a decision record's connection.
fn expected(rules: &RuleSet, d: &tollgatectl::records::DecisionRecord) -> String {
    let c = &d.connection;
    let protocol = match c.protocol.as_str() {
        "tcp" => 6,
        "udp" => 17,
        other => other.parse().unwrap(),
    };
    let remote: SocketAddr = if c.remote == "*" { "0.0.0.0:0".parse().unwrap() } else { c.remote.parse().unwrap() };
    let query = ConnectionQuery {
        app_path: &c.app,
        process_id: c.pid,
        direction: Direction::Outbound,
        protocol,
        local: "0.0.0.0:0".parse().unwrap(),
        remote,
        domain: None,
    };
    let decision = if c.layer == "bind" { rules.decide_bind(&query) } else { rules.decide(&query) };
    match decision.action.resolve(rules.ask_fallback()) {
        tollgate_rules::Verdict::Allow => "allow".to_owned(),
        tollgate_rules::Verdict::Block => "block".to_owned(),
    }
}

fn assert_clean(model: &LiveModel) {
    model.unload_driver();
    for report in model.reports() {
        assert_eq!(report.bugcheck, None, "{report:?}");
        assert!(report.hazards.is_empty(), "{:?}", report.hazards);
        assert!(report.leaks.is_empty(), "{:?}", report.leaks);
    }
}

#[test]
fn serve_decides_every_model_connection_by_the_rules_and_watch_and_stats_see_it() {
    let model = live(200);
    let rules = RuleSet::parse(RULES, "rules.toml").unwrap();
    let running = start(model.clone(), rules.clone(), config(Duration::from_millis(2_500)), socket("e2e"));

    // A watcher reads the records as they come.
    std::thread::sleep(Duration::from_millis(100));
    let watcher = hub::connect(&running.socket, &Request::Watch).unwrap();
    let mut watched = Vec::new();
    let shown = tollgatectl::watch::watch_lines(watcher, &mut watched, false, Some(50)).unwrap();
    assert_eq!(shown, 50);
    let watched = String::from_utf8(watched).unwrap();

    // stats from the running service: the driver's counters and the service's own.
    std::thread::sleep(Duration::from_millis(200));
    let stats = hub::request_stats(&running.socket).unwrap();
    assert!(stats.service.connected && stats.service.decisions > 0, "{stats:?}");
    let counter = |name: &str| stats.counters.iter().find(|c| c.name == name).map(|c| c.value).unwrap();
    assert!(counter("pended") > 0 && counter("completed by verdict") > 0, "{stats:?}");
    assert_eq!(counter("blocklist patterns"), 3);
    assert!(hub::render_stats(&stats).contains("completed by verdict"));

    let (end, out, log) = running.thread.join().unwrap();
    assert_eq!(end, ServeEnd::LimitReached, "{log}");
    assert!(log.contains("connected to"), "{log}");
    let all = records(&out);
    let decided = decisions(&all);
    assert!(decided.len() > 100, "{} decisions\n{log}", decided.len());
    for d in &decided {
        assert_eq!(d.verdict, expected(&rules, d), "{d:?}");
        assert!(d.result.is_none() || d.result.as_deref() == Some("late"), "{d:?}");
    }
    assert!(decided.iter().any(|d| d.verdict == "allow") && decided.iter().any(|d| d.verdict == "block"));
    // Flows were identified, and the blocked names dropped by the driver itself.
    let flows: Vec<_> = all
        .iter()
        .filter_map(|record| match record {
            Record::Flow(f) => Some(f),
            _ => None,
        })
        .collect();
    assert!(flows.iter().any(|f| f.event == "identified" && f.name != "-"), "no named flow");
    // (A `closed` event carries the counts, not the name: the identified event has it.)
    for f in flows.iter().filter(|f| f.verdict == "dropped" && f.event == "identified") {
        assert!(f.name.contains("ads.example") || f.name.contains("telemetry.mozilla.org"), "{f:?}");
    }
    // What the watcher showed are lines of the same records.
    assert!(watched.lines().count() >= 50);
    assert!(watched.lines().any(|line| line.contains(" connect \"") || line.contains(" flow ")), "{watched}");
    assert_clean(&model);
}

fn write_rules(path: &PathBuf, text: &str) {
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

/// Waits until `predicate` holds for the service's output so far (via the watcher) or times out.
fn wait_for_record(reader: &mut impl BufRead, mut predicate: impl FnMut(&Record) -> bool) -> Record {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let record: Record = serde_json::from_str(line.trim()).unwrap();
        if predicate(&record) {
            return record;
        }
    }
    panic!("no such record within 10 s");
}

#[test]
fn a_rules_file_is_reloaded_live_and_a_broken_one_keeps_the_old_rules() {
    let dir = std::env::temp_dir().join(format!("tollgate-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.toml");
    write_rules(&path, RULES);
    let model = live(200);
    let rules = RuleSet::load(&path).unwrap();
    let config = ServeConfig { rules_file: Some(path.clone()), ..config(Duration::from_secs(8)) };
    let running = start(model.clone(), rules, config, socket("reload"));
    std::thread::sleep(Duration::from_millis(100));
    let mut watcher = hub::connect(&running.socket, &Request::Watch).unwrap();
    let web_allowed =
        |record: &Record| matches!(record, Record::Decision(d) if d.rule == "web" && d.verdict == "allow");
    wait_for_record(&mut watcher, web_allowed);

    // A mistake: refused with its position, and the web stays allowed.
    std::thread::sleep(Duration::from_millis(1_100)); // a new modification time
    write_rules(&path, "default = \"block\"\n[[rule]]\nname = \"oops\"\nacton = \"allow\"\n");
    let refused = wait_for_record(
        &mut watcher,
        |record| matches!(record, Record::Notice(n) if n.message.contains("not applied")),
    );
    let Record::Notice(refused) = refused else { unreachable!() };
    assert!(refused.message.contains("rules.toml:4:1"), "{}", refused.message);
    wait_for_record(&mut watcher, web_allowed);

    // A good change: applied, and the web is blocked from then on.
    std::thread::sleep(Duration::from_millis(1_100));
    write_rules(&path, RULES_NO_WEB);
    wait_for_record(&mut watcher, |record| matches!(record, Record::Notice(n) if n.message.contains("rules reloaded")));
    let first_after = wait_for_record(
        &mut watcher,
        |record| matches!(record, Record::Decision(d) if d.connection.layer == "connect"),
    );
    let Record::Decision(first_after) = first_after else { unreachable!() };
    assert!(first_after.rule != "web", "{first_after:?}");
    drop(watcher);
    let (end, out, log) = running.thread.join().unwrap();
    assert_eq!(end, ServeEnd::LimitReached);
    assert!(log.contains("not applied") && log.contains("rules reloaded"), "{log}");
    // After the reload no decision names the old rule.
    let all = records(&out);
    let reload_at = all
        .iter()
        .position(|record| matches!(record, Record::Decision(d) if d.connection.id == first_after.connection.id))
        .unwrap();
    assert!(decisions(&all[reload_at..]).iter().all(|d| d.rule != "web"));
    assert_eq!(running.hub.stats().service.reloads, 1);
    assert_clean(&model);
}

#[test]
fn the_service_reconnects_when_the_driver_goes_away_and_comes_back() {
    let model = live(200);
    let rules = RuleSet::parse(RULES, "rules.toml").unwrap();
    let running = start(model.clone(), rules, config(Duration::from_secs(4)), socket("vanish"));
    std::thread::sleep(Duration::from_millis(600));
    let before = model.driver().unwrap().core().stats().completed_by_verdict;
    assert!(before > 0);
    model.unload_driver();
    std::thread::sleep(Duration::from_millis(600));
    model.load_driver();
    std::thread::sleep(Duration::from_millis(1_000));
    let after = model.driver().unwrap().core().stats().completed_by_verdict;
    assert!(after > 0, "the reloaded driver gets verdicts again");
    let (end, _, log) = running.thread.join().unwrap();
    assert_eq!(end, ServeEnd::LimitReached);
    assert!(log.matches("connected to").count() >= 2, "{log}");
    assert!(log.contains("lost") && log.contains("cannot connect"), "{log}");
    assert_clean(&model);
}

#[test]
fn a_full_pend_queue_gives_the_excess_the_default_verdict_and_counts_it() {
    let model = Arc::new(LiveModel::new(LiveConfig {
        connections_per_second: 400,
        clock: Clock::Wall,
        core: CoreConfig {
            runtime: RuntimeConfig { max_pended: 4, ..RuntimeConfig::default() },
            ..CoreConfig::default()
        },
        ..LiveConfig::default()
    }));
    // A slow service: every batch waits, so pends pile up past the cap of 4.
    let rules = RuleSet::parse(&format!("{RULES}\n[driver]\nmax_pended = 4\n"), "rules.toml").unwrap();
    let config = ServeConfig { verdict_delay: Duration::from_millis(100), ..config(Duration::from_secs(2)) };
    let running = start(model.clone(), rules, config, socket("full"));
    let (end, out, _) = running.thread.join().unwrap();
    assert_eq!(end, ServeEnd::LimitReached);
    let stats = model.driver().unwrap().core().stats();
    assert!(stats.inline_cap_reached > 0, "{stats:?}");
    assert!(stats.peak_entries <= 4 + 4, "pends held at once stay near the cap: {stats:?}");
    assert_eq!(model.runtime_config().unwrap().max_pended, 4);
    assert!(!decisions(&records(&out)).is_empty());
    assert_clean(&model);
}

#[test]
fn a_watcher_that_does_not_read_never_slows_the_service_and_is_told_what_it_missed() {
    let hub = Hub::new(8);
    let name = socket("slow");
    let _listening = hub::listen(hub.clone(), &name).unwrap();
    let mut watcher = hub::connect(&name, &Request::Watch).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.watchers() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(hub.watchers(), 1);
    // Far more than the queue and the socket's buffer hold, published without waiting.
    let record = Record::notice(std::time::SystemTime::now(), "x".repeat(200));
    let started = Instant::now();
    for _ in 0..100_000 {
        hub.publish(&record);
    }
    let publishing = started.elapsed();
    let stats = hub.stats();
    assert!(stats.service.dropped_for_watchers > 0, "{stats:?}");
    // The watcher, reading now, is told how many it missed.
    let missed = wait_for_record(&mut watcher, |record| matches!(record, Record::Dropped { .. }));
    let Record::Dropped { count } = missed else { unreachable!() };
    assert!(count > 0);
    // (Informative: 100,000 publishes never waited for the reader.)
    eprintln!("published 100000 records in {publishing:?}; {count} dropped for the slow watcher");
}

#[test]
fn watch_and_stats_without_a_service_say_so() {
    let name = socket("nobody");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let watch = tollgatectl::watch::WatchOptions { control: name.clone(), lines: true, json: false, count: Some(1) };
    assert_eq!(tollgatectl::watch::run(&watch, &mut out, &mut err), tollgatectl::watch::EXIT_NO_SERVICE);
    assert!(String::from_utf8_lossy(&err).contains("no service on"), "{}", String::from_utf8_lossy(&err));
    let stats = tollgatectl::stats_cmd::StatsOptions { control: name, driver: false, json: false };
    err.clear();
    assert_eq!(tollgatectl::stats_cmd::run(&stats, &mut out, &mut err), tollgatectl::stats_cmd::EXIT_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&err).contains("no service on"));
}

#[test]
fn a_watcher_sees_connections_while_they_are_decided_and_a_table_row_per_record() {
    let model = live(200);
    let rules = RuleSet::parse(RULES, "rules.toml").unwrap();
    let config = ServeConfig { verdict_delay: Duration::from_millis(20), ..config(Duration::from_millis(1_500)) };
    let running = start(model.clone(), rules, config, socket("pended"));
    std::thread::sleep(Duration::from_millis(50));
    let mut watcher = hub::connect(&running.socket, &Request::Watch).unwrap();
    let pended = wait_for_record(&mut watcher, |record| matches!(record, Record::Pended(_)));
    let Record::Pended(p) = &pended else { unreachable!() };
    let id = p.id;
    let decided =
        wait_for_record(&mut watcher, |record| matches!(record, Record::Decision(d) if d.connection.id == id));
    let mut totals = tollgatectl::watch::Totals::default();
    totals.add(&pended);
    totals.add(&decided);
    assert_eq!((totals.pended, totals.decisions), (1, 1));
    let row = tollgatectl::watch::row(&pended, 200);
    assert!(row.contains("wait") && row.contains("(deciding)"), "{row}");
    assert!(tollgatectl::watch::row(&decided, 200).contains(if let Record::Decision(d) = &decided {
        &d.rule
    } else {
        ""
    }));
    assert!(tollgatectl::watch::row(&decided, 10).chars().count() <= 10, "rows fit the terminal");
    drop(watcher);
    let (end, out, _) = running.thread.join().unwrap();
    assert_eq!(end, ServeEnd::LimitReached);
    // stdout has decisions and flows, never the pended records (those are for watchers).
    assert!(!records(&out).iter().any(|record| matches!(record, Record::Pended(_))));
    assert_clean(&model);
}
