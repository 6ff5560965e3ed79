//! `tollgatectl serve`: the loop over a scripted control device (decisions, output lines,
//! reconnects, fatal errors), and the command line off Windows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use tollgate_core::RuntimeConfig;
use tollgate_core::stream::FlowEvent;
use tollgate_core::{ConnectionFacts, Direction, PendId, PendLayer, PendedConnection, Ticks};
use tollgate_inspect::name::PatternKind;
use tollgate_protocol::{
    BatchWriter, DriverLimits, HelloReply, Ioctl, MAX_BATCH_RECORDS, StreamEventWriter, VerdictResult,
    decode_blocklist, decode_hello_request, encode_config, encode_hello_reply, respond_to_verdicts,
};
use tollgate_rules::RuleSet;
use tollgatectl::device::ControlDevice;
use tollgatectl::device::status::{STATUS_CANCELLED, status_from_win32};
use tollgatectl::serve::{ServeConfig, ServeEnd, serve};
use tollgatectl::service::VerdictService;

mod common;

const RULES: &str = r#"
default = "block"

[[rule]]
name = "ads"
action = "block"
domain = ["*.ads.example", "tracker.example"]

[[rule]]
name = "allow-https"
action = "allow"
protocol = "tcp"
remote = "1.1.1.1"
remote_port = 443

[[rule]]
name = "block-http"
action = "block"
remote_port = 80
"#;

#[derive(Clone)]
struct Conn {
    id: u64,
    layer: PendLayer,
    remote: (&'static str, u16),
    app: &'static str,
}

/// A pushed blocklist, decoded: (kind, name) in wire order.
type Blocklist = Vec<(PatternKind, Vec<u8>)>;

/// A control device that answers HELLO and SET_CONFIG like the driver, serves scripted
/// `GET_PENDED` results, and accepts every verdict except for the ids in `late`.
#[derive(Default)]
struct ScriptedDevice {
    opens: RefCell<VecDeque<Result<(), i32>>>,
    reads: RefCell<VecDeque<Result<Vec<Conn>, i32>>>,
    late: HashSet<u64>,
    submitted: RefCell<Vec<u64>>,
    /// Batches of stream events, one per `GET_STREAM_EVENTS`.
    events: RefCell<VecDeque<Vec<FlowEvent>>>,
    /// Every `PUSH_BLOCKLIST` message, decoded.
    pushed: RefCell<Vec<Blocklist>>,
    open_calls: Cell<u32>,
    close_calls: Cell<u32>,
    is_open: Cell<bool>,
}

impl ControlDevice for ScriptedDevice {
    fn open(&self) -> Result<(), i32> {
        self.open_calls.set(self.open_calls.get() + 1);
        let result = self.opens.borrow_mut().pop_front().unwrap_or(Ok(()));
        self.is_open.set(result.is_ok());
        result
    }

    fn close(&self) {
        self.close_calls.set(self.close_calls.get() + 1);
        self.is_open.set(false);
    }

    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        assert!(self.is_open.get(), "ioctl on a closed handle");
        match Ioctl::from_code(code).unwrap() {
            Ioctl::Hello => {
                let request = decode_hello_request(input).unwrap();
                Ok(encode_hello_reply(&HelloReply::answer(&request, DriverLimits::PROTOCOL), output).unwrap())
            }
            Ioctl::SetConfig => Ok(0),
            Ioctl::GetPended => {
                let Some(next) = self.reads.borrow_mut().pop_front() else { return Ok(0) };
                let batch = next?;
                let mut writer = BatchWriter::with_max_records(output, MAX_BATCH_RECORDS).unwrap();
                for conn in &batch {
                    let app: Vec<u16> = conn.app.encode_utf16().collect();
                    let remote: IpAddr = conn.remote.0.parse().unwrap();
                    writer
                        .push(&PendedConnection {
                            id: PendId::from_raw(conn.id),
                            facts: ConnectionFacts {
                                layer: conn.layer,
                                protocol: 6,
                                direction: Direction::Outbound,
                                local_address: "10.0.0.5".parse().unwrap(),
                                local_port: 50_000,
                                remote_address: remote,
                                remote_port: conn.remote.1,
                                process_id: 4242,
                                app_path: &app,
                            },
                            pended_at: Ticks(1),
                        })
                        .unwrap();
                }
                Ok(writer.finish())
            }
            Ioctl::SubmitVerdicts => {
                // METHOD_BUFFERED: one system buffer holding the input, the output copied back.
                let mut buffer = vec![0_u8; input.len().max(output.len())];
                buffer[..input.len()].copy_from_slice(input);
                let written = respond_to_verdicts(&mut buffer, input.len(), output.len(), |id, _| {
                    self.submitted.borrow_mut().push(id.to_raw());
                    if self.late.contains(&id.to_raw()) { VerdictResult::LateVerdict } else { VerdictResult::Accepted }
                })
                .unwrap();
                output[..written].copy_from_slice(&buffer[..written]);
                Ok(written)
            }
            Ioctl::GetStreamEvents => {
                let mut writer = StreamEventWriter::with_max_records(output, MAX_BATCH_RECORDS).unwrap();
                for event in self.events.borrow_mut().pop_front().unwrap_or_default() {
                    writer.push(&event).unwrap();
                }
                Ok(writer.finish())
            }
            Ioctl::PushBlocklist => {
                let list = decode_blocklist(input).unwrap();
                self.pushed.borrow_mut().push(list.iter().map(|(kind, name)| (kind, name.to_vec())).collect());
                Ok(0)
            }
            Ioctl::GetConfig => Ok(encode_config(&RuntimeConfig::default(), output).unwrap()),
            Ioctl::GetStats => Ok(0),
        }
    }
}

fn config() -> ServeConfig {
    ServeConfig {
        backoff_initial: Duration::ZERO,
        backoff_max: Duration::from_millis(1),
        idle_wait: Duration::ZERO,
        ..ServeConfig::default()
    }
}

fn run(device: &ScriptedDevice, config: &ServeConfig) -> (ServeEnd, String, String) {
    let mut service = VerdictService::new(RuleSet::parse(RULES, "rules.toml").unwrap());
    let mut out = Vec::new();
    let (end, log) = common::capture_log(|| serve(&mut service, device, config, None, &mut out));
    (end, String::from_utf8(out).unwrap(), log)
}

const CURL: &str = r"\device\harddiskvolume3\program files\curl\curl.exe";

#[test]
fn decides_prints_one_line_per_decision_and_reconnects_after_a_device_error() {
    let device = ScriptedDevice {
        reads: RefCell::new(VecDeque::from([
            Ok(vec![
                Conn { id: 11, layer: PendLayer::AuthConnect, remote: ("1.1.1.1", 443), app: CURL },
                Conn { id: 12, layer: PendLayer::AuthConnect, remote: ("1.1.1.1", 80), app: CURL },
                Conn { id: 13, layer: PendLayer::ResourceAssignment, remote: ("0.0.0.0", 0), app: CURL },
            ]),
            // The driver cancelled the parked read (restart): the service must reconnect.
            Err(STATUS_CANCELLED),
            Ok(vec![Conn { id: 21, layer: PendLayer::AuthConnect, remote: ("9.9.9.9", 22), app: CURL }]),
        ])),
        late: HashSet::from([21]),
        ..ScriptedDevice::default()
    };
    let (end, out, log) = run(&device, &ServeConfig { max_batches: Some(2), ..config() });
    assert_eq!(end, ServeEnd::LimitReached);
    assert_eq!(*device.submitted.borrow(), vec![11, 12, 13, 21]);
    assert_eq!(device.open_calls.get(), 2, "{log}");
    assert!(device.close_calls.get() >= 2, "closed after the error and at the end");

    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(lines[0], "# time id layer app remote verdict rule [result]");
    assert!(lines[1].starts_with("# time flow id event"), "{out}");
    let expect = [
        format!("11 connect \"{CURL}\" 1.1.1.1:443/tcp allow allow-https"),
        format!("12 connect \"{CURL}\" 1.1.1.1:80/tcp block block-http"),
        // A bind: the first allow rule's local side matches (decide_bind).
        format!("13 bind \"{CURL}\" */tcp allow allow-https"),
        format!("21 connect \"{CURL}\" 9.9.9.9:22/tcp block default [late]"),
    ];
    for (line, expected) in lines[2..].iter().zip(expect.iter()) {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.len() == "2025-01-01T00:00:00.000Z".len(), "{line}");
        assert_eq!(rest, expected);
    }
    assert_eq!(log.matches("connected to \\\\.\\Tollgate").count(), 2, "{log}");
    assert!(log.contains("lost \\\\.\\Tollgate: the driver cancelled the request"), "{log}");
    assert!(log.contains("reconnecting"), "{log}");
}

#[test]
fn waits_for_the_driver_and_says_so_once() {
    let not_found = status_from_win32(2); // ERROR_FILE_NOT_FOUND
    let device = ScriptedDevice {
        opens: RefCell::new(VecDeque::from([Err(not_found), Err(not_found), Err(not_found), Ok(())])),
        reads: RefCell::new(VecDeque::from([Ok(vec![Conn {
            id: 1,
            layer: PendLayer::AuthConnect,
            remote: ("1.1.1.1", 443),
            app: CURL,
        }])])),
        ..ScriptedDevice::default()
    };
    let (end, out, log) = run(&device, &ServeConfig { max_batches: Some(1), ..config() });
    assert_eq!(end, ServeEnd::LimitReached);
    assert_eq!(device.open_calls.get(), 4);
    assert_eq!(log.matches("driver not loaded").count(), 1, "{log}");
    assert!(log.contains("sc.exe start tollgate"), "{log}");
    assert!(out.contains("allow allow-https"), "{out}");
}

#[test]
fn access_denied_before_the_first_connection_is_fatal() {
    let device = ScriptedDevice {
        opens: RefCell::new(VecDeque::from([Err(status_from_win32(5))])), // ERROR_ACCESS_DENIED
        ..ScriptedDevice::default()
    };
    let (end, _, _) = run(&device, &ServeConfig { max_connects: Some(3), ..config() });
    let ServeEnd::Fatal(message) = end else { panic!("{end:?}") };
    assert!(message.contains("access denied") && message.contains("elevated"), "{message}");
    assert_eq!(device.open_calls.get(), 1);
}

#[test]
fn access_denied_after_a_connection_is_retried() {
    let device = ScriptedDevice {
        opens: RefCell::new(VecDeque::from([Ok(()), Err(status_from_win32(5)), Err(status_from_win32(5))])),
        reads: RefCell::new(VecDeque::from([Err(STATUS_CANCELLED)])),
        ..ScriptedDevice::default()
    };
    let (end, _, log) = run(&device, &ServeConfig { max_connects: Some(3), ..config() });
    assert_eq!(end, ServeEnd::LimitReached, "{log}");
    assert_eq!(device.open_calls.get(), 3);
}

fn tollgatectl(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgatectl")).args(args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_bad_rules_file_is_rejected_with_its_position() {
    let dir = std::env::temp_dir().join(format!("tollgatectl-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "default = \"block\"\n\n[[rule]]\nname = \"x\"\nacton = \"allow\"\n").unwrap();
    let (code, _, stderr) = tollgatectl(&["serve", "--rules", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("{}:5:1: ", path.display())), "{stderr}");
    let (code, _, stderr) = tollgatectl(&["serve", "--rules", "/nonexistent/rules.toml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/rules.toml"), "{stderr}");
}

#[cfg(not(windows))]
#[test]
fn serve_driver_without_a_driver_says_so() {
    let (code, stdout, stderr) = tollgatectl(&["serve", "--driver"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("no Tollgate driver on this machine"), "{stderr}");
}

#[test]
fn serve_on_the_model_runs_for_the_time_asked_and_reports_a_clean_machine() {
    let socket = std::env::temp_dir().join(format!("tollgate-serve-cli-{}.sock", std::process::id()));
    let socket = socket.display().to_string();
    let (code, stdout, stderr) =
        tollgatectl(&["serve", "--model", "--for", "1500ms", "--rate", "100", "--control", &socket]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.lines().any(|line| line.contains(" connect \"")), "{stdout}");
    assert!(stderr.contains("connected to the WFP model"), "{stderr}");
    assert!(stderr.contains("0 hazard(s), 0 leak(s), no bugcheck"), "{stderr}");
}

/// An identified flow as the driver would report it.
fn flow_event(raw_id: u64, sni: &str, dropped: bool) -> FlowEvent {
    use tollgate_core::stream::{FlowCounters, FlowEndpoints, FlowEventKind, FlowId, InspectionEnd, StreamVerdict};
    use tollgate_inspect::identity::{Alpn, AppProtocol, Identity, NameSource};
    use tollgate_inspect::name::HostName;
    let mut identity = Identity { protocol: AppProtocol::Tls, alpn: Alpn::new(b"h2", 2), ..Identity::default() };
    identity.names.push(NameSource::TlsSni, HostName::from_wire(sni.as_bytes()));
    FlowEvent {
        kind: FlowEventKind::Identified,
        flow: FlowId::from_raw(raw_id),
        at: Ticks(5),
        endpoints: FlowEndpoints {
            ip_protocol: 6,
            direction: Direction::Outbound,
            local_address: "10.0.0.5".parse().unwrap(),
            local_port: 50_000,
            remote_address: "93.184.216.34".parse().unwrap(),
            remote_port: 443,
            process_id: 4242,
        },
        identity,
        end: InspectionEnd::Complete,
        verdict: if dropped { StreamVerdict::Dropped } else { StreamVerdict::Permitted },
        counters: FlowCounters { bytes_out: 1820, segments_out: 1, ..FlowCounters::default() },
    }
}

#[test]
fn pushes_the_rules_blocklist_on_connect_and_prints_one_line_per_flow_event() {
    let device = ScriptedDevice {
        reads: RefCell::new(VecDeque::from([Ok(vec![Conn {
            id: 1,
            layer: PendLayer::AuthConnect,
            remote: ("1.1.1.1", 443),
            app: CURL,
        }])])),
        events: RefCell::new(VecDeque::from([vec![
            flow_event(7, "www.Example.com", false),
            flow_event(8, "x.ads.example", true),
        ]])),
        ..ScriptedDevice::default()
    };
    let (end, out, log) = run(&device, &ServeConfig { max_batches: Some(1), ..config() });
    assert_eq!(end, ServeEnd::LimitReached);
    // The domain-only block rule, in the driver's canonical order.
    assert_eq!(
        *device.pushed.borrow(),
        vec![vec![(PatternKind::Exact, b"tracker.example".to_vec()), (PatternKind::Below, b"ads.example".to_vec())]]
    );
    assert!(log.contains("2 domain pattern(s) blocked in the driver"), "{log}");
    let flows: Vec<&str> = out.lines().filter(|line| !line.starts_with('#') && line.contains(" flow ")).collect();
    assert_eq!(flows.len(), 2, "{out}");
    assert!(
        flows[0].ends_with(
            "flow 7 identified tls sni:www.example.com h2 allowed complete 4242 93.184.216.34:443/tcp out=1820/1 in=0/0"
        ),
        "{}",
        flows[0]
    );
    assert!(flows[1].contains("flow 8 identified tls sni:x.ads.example h2 dropped complete"), "{}", flows[1]);
}
