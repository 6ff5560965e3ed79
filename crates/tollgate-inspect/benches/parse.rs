//! Parse throughput of `inspect` against two common parsers doing the same job, in the same run:
//! - TLS: `tls-parser` (rusticata) parses the record, the ClientHello and its extensions, and the
//!   SNI is taken from them;
//! - HTTP: `httparse` parses the request head, and `Host` is looked up.
//!
//! The baselines allocate (tls-parser builds `Vec`s of cipher suites and extensions) or need a
//! header array; `inspect` does neither and also reads ALPN, versions, GREASE and ECH, or the
//! request-target's authority. After criterion's report, `cargo bench` prints one summary line per
//! case from a plain timing loop of its own: our throughput, the baseline's and the ratio.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::HelloBuilder;
use criterion::{BenchmarkId, Criterion, Throughput};
use tls_parser::{SNIType, TlsExtension, TlsMessage, TlsMessageHandshake};
use tollgate_inspect::inspect;

/// What is parsed, and by which baseline.
struct Case {
    name: &'static str,
    data: Vec<u8>,
    baseline_name: &'static str,
    baseline: fn(&[u8]) -> Option<&[u8]>,
}

/// Ours: the first name's length (a name is a copy, so return something derived from it).
fn ours(data: &[u8]) -> usize {
    inspect(data).identity.names.primary().map_or(0, |(_, name)| name.as_bytes().len())
}

/// tls-parser: record → ClientHello → extensions → first host_name.
fn tls_parser_sni(data: &[u8]) -> Option<&[u8]> {
    let (_, record) = tls_parser::parse_tls_plaintext(data).ok()?;
    let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello))) = record.msg.first() else {
        return None;
    };
    let (_, extensions) = tls_parser::parse_tls_client_hello_extensions(hello.ext?).ok()?;
    extensions.iter().find_map(|extension| match extension {
        TlsExtension::SNI(names) => {
            names.iter().find(|(name_type, _)| *name_type == SNIType::HostName).map(|(_, name)| *name)
        }
        _ => None,
    })
}

/// httparse: request head → `Host` value.
fn httparse_host(data: &[u8]) -> Option<&[u8]> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    request.parse(data).ok()?;
    request.headers.iter().find(|header| header.name.eq_ignore_ascii_case("host")).map(|header| header.value)
}

fn browser_request() -> Vec<u8> {
    let request = "GET /search?q=tollgate+wfp+callout&source=hp HTTP/1.1\r\n\
        Host: www.example.com\r\n\
        User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
        Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Connection: keep-alive\r\n\
        Upgrade-Insecure-Requests: 1\r\n\
        Cookie: session=3f9a1c2b7d4e5f60718293a4b5c6d7e8; prefs=dark; consent=yes\r\n\
        Sec-Fetch-Dest: document\r\n\
        Sec-Fetch-Mode: navigate\r\n\
        Sec-Fetch-Site: none\r\n\
        \r\n";
    request.as_bytes().to_vec()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "chrome-like ClientHello",
            data: HelloBuilder::chrome_like(b"www.google.com", 1).record(),
            baseline_name: "tls-parser",
            baseline: tls_parser_sni,
        },
        Case {
            name: "rustls ClientHello",
            data: common::rustls_tls13_hello("www.example.com"),
            baseline_name: "tls-parser",
            baseline: tls_parser_sni,
        },
        Case { name: "HTTP request head", data: browser_request(), baseline_name: "httparse", baseline: httparse_host },
    ]
}

fn criterion_benches(criterion: &mut Criterion, cases: &[Case]) {
    let mut group = criterion.benchmark_group("parse");
    for case in cases {
        group.throughput(Throughput::Bytes(case.data.len() as u64));
        group.bench_with_input(BenchmarkId::new("tollgate-inspect", case.name), &case.data, |bencher, data| {
            bencher.iter(|| ours(black_box(data)));
        });
        group.bench_with_input(BenchmarkId::new(case.baseline_name, case.name), &case.data, |bencher, data| {
            bencher.iter(|| (case.baseline)(black_box(data)).map(<[u8]>::len));
        });
    }
    group.finish();
}

/// Bytes per second of `parse` on `data`, from as many calls as fit in `budget` (after a warm-up).
fn throughput(data: &[u8], budget: Duration, parse: impl Fn(&[u8]) -> usize) -> u128 {
    for _ in 0..1000 {
        black_box(parse(black_box(data)));
    }
    let start = Instant::now();
    let mut calls: u128 = 0;
    while start.elapsed() < budget {
        for _ in 0..100 {
            black_box(parse(black_box(data)));
        }
        calls += 100;
    }
    let nanos = start.elapsed().as_nanos().max(1);
    calls * data.len() as u128 * 1_000_000_000 / nanos
}

/// One line per case: ours, the baseline's and the ratio, from interleaved plain timing loops.
fn summary(cases: &[Case]) {
    println!("\nsummary (plain timing loop, 3 x 300 ms per parser and case, best of 3; MB = 10^6 bytes)");
    for case in cases {
        let (mut best_ours, mut best_baseline) = (0, 0);
        for _ in 0..3 {
            let budget = Duration::from_millis(300);
            best_ours = best_ours.max(throughput(&case.data, budget, ours));
            best_baseline =
                best_baseline.max(throughput(&case.data, budget, |data| (case.baseline)(data).map_or(0, <[u8]>::len)));
        }
        let ratio_hundredths = best_ours * 100 / best_baseline.max(1);
        println!(
            "{:<24} {:>5} bytes: tollgate-inspect {:>6} MB/s, {:<10} {:>6} MB/s, ratio {}.{:02}x",
            case.name,
            case.data.len(),
            best_ours / 1_000_000,
            case.baseline_name,
            best_baseline / 1_000_000,
            ratio_hundredths / 100,
            ratio_hundredths % 100,
        );
    }
}

fn main() {
    let cases = cases();
    // Both sides must find the same name, or the comparison is meaningless.
    for case in &cases {
        let theirs = (case.baseline)(&case.data).expect("the baseline finds a name");
        let ours = inspect(&case.data).identity;
        let (_, name) = ours.names.primary().expect("inspect finds a name");
        assert_eq!(name.as_bytes(), theirs.to_ascii_lowercase(), "{}", case.name);
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &cases);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests. Under
    // `--profile-time` (for a profiler) only the selected criterion benchmark runs.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--bench") && !args.iter().any(|arg| arg == "--profile-time") {
        summary(&cases);
    }
}
