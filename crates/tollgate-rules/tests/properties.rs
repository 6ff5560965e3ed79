//! Property tests: `decide` never panics and is consistent on arbitrary queries; parsing
//! arbitrary (and almost-valid) text never panics and every error points inside the text.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use proptest::prelude::*;
use tollgate_rules::{Action, ConnectionQuery, Direction, DomainPattern, RuleSet};

/// A policy that uses every condition, so arbitrary queries reach every matcher.
const EVERY_FIELD: &str = r#"
default = "allow"
[[rule]]
name = "domains"
action = "block"
domain = ["*.ads.example", "exact.example", "*.x"]
[[rule]]
name = "everything"
action = "ask"
app = ['**\*.exe', 'c:\windows\**', '**\{a,b}?.dll', 'plain']
direction = "inbound"
protocol = ["tcp", "icmp", 200]
remote = ["10.0.0.0/8", "::/0", "::ffff:0:0/96"]
local = ["0.0.0.0/0", "fe80::/10"]
remote_port = [0, "1-1024", "65535"]
local_port = ["1000-65535"]
pid = [0, 4, 18446744073709551615]
[[rule]]
name = "apps"
action = "allow"
app = ['**\firefox.exe', '\device\**\svchost.exe']
[[rule]]
name = "udp"
action = "block"
protocol = "udp"
"#;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        Just(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
    ]
}

fn socket() -> impl Strategy<Value = SocketAddr> {
    (ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

/// Paths: arbitrary Unicode, Windows-looking paths, and paths longer than the stack buffer.
fn app_path() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z\\\\/.:*?\\[\\]{}é ]{0,80}",
        "(\\\\device\\\\harddiskvolume[0-9]|[cC]:)(\\\\[a-zA-Z0-9 ]{1,12}){0,6}\\\\[a-z]{1,8}\\.(exe|dll)",
        ("[a-z\\\\]{1,8}", 200usize..800).prop_map(|(part, n)| part.repeat(n)),
    ]
}

fn domain() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9.\\-_é]{0,40}",
        "([a-z]{1,5}\\.){0,3}(ads\\.example|x|exact\\.example)\\.{0,2}"
    ])
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Outbound), Just(Direction::Inbound)]
}

/// Parsed once: the property runs many cases.
fn rule_sets() -> &'static [RuleSet; 2] {
    static SETS: OnceLock<[RuleSet; 2]> = OnceLock::new();
    SETS.get_or_init(|| [common::parse(EVERY_FIELD), RuleSet::builtin_default()])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn decide_never_panics_and_is_consistent(
        app in app_path(),
        pid in any::<u64>(),
        dir in direction(),
        protocol in any::<u8>(),
        local in socket(),
        remote in socket(),
        domain in domain(),
    ) {
        let q = ConnectionQuery {
            app_path: &app,
            process_id: pid,
            direction: dir,
            protocol,
            local,
            remote,
            domain: domain.as_deref(),
        };
        for rules in rule_sets() {
            let d = rules.decide(&q);
            prop_assert_eq!(d, rules.decide(&q), "deterministic");
            match d.rule {
                Some(i) => {
                    prop_assert!(i < rules.len());
                    prop_assert_eq!(Some(d.action), rules.rule_action(i));
                }
                None => prop_assert_eq!(d.action, Action::from(rules.default_action())),
            }
            prop_assert_eq!(rules.verdict(&q), d.action.resolve(rules.ask_fallback()));
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        check_parse(&text)?;
    }

    #[test]
    fn parsing_almost_valid_files_never_panics(text in almost_valid_file()) {
        check_parse(&text)?;
    }

    /// The allocation-free matcher agrees with the obvious allocating one.
    #[test]
    fn domain_matching_agrees_with_a_reference(
        pattern in "(\\*\\.)?([a-zA-Z0-9]{1,4}\\.){0,2}[a-zA-Z]{1,3}",
        host in "([a-zA-Z0-9]{1,4}\\.){0,3}[a-zA-Z]{1,3}\\.?",
    ) {
        let parsed: DomainPattern = pattern.parse().unwrap();
        let host_norm = host.trim_end_matches('.').to_ascii_lowercase();
        let expected = match pattern.to_ascii_lowercase().strip_prefix("*.") {
            Some(suffix) => host_norm.ends_with(&format!(".{suffix}")),
            None => host_norm == pattern.to_ascii_lowercase(),
        };
        prop_assert_eq!(parsed.matches(&host), expected);
    }
}

/// Parse; on success decide one query; on failure check that the position is inside the text.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match RuleSet::parse(text, "fuzz.toml") {
        Ok(rules) => {
            let _ = rules.decide(&common::query());
            let _ = rules.blocked_domains();
        }
        Err(e) => {
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            let lines = text.split('\n').count();
            if let (Some(line), Some(column)) = (e.line(), e.column()) {
                prop_assert!(line >= 1 && line <= lines, "line {} of {}", line, lines);
                prop_assert!(column >= 1);
                let source_line = e.source_line().unwrap();
                prop_assert!(column <= source_line.chars().count() + 1, "column {} in {:?}", column, source_line);
            } else {
                prop_assert!(false, "a parse error without a position: {}", e);
            }
            prop_assert!(!e.to_string().is_empty());
            let alternate = format!("{e:#}");
            prop_assert!(alternate.contains('^'));
        }
    }
    Ok(())
}

/// Files assembled from valid and invalid pieces, to get past the TOML parser into validation.
fn almost_valid_file() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"allow\"".to_owned()),
        Just("\"block\"".to_owned()),
        Just("\"ask\"".to_owned()),
        Just("\"inbound\"".to_owned()),
        Just("\"tcp\"".to_owned()),
        Just("[]".to_owned()),
        Just("'**\\a.exe'".to_owned()),
        Just("['**\\[x', 'ok']".to_owned()),
        Just("[\"10.0.0.0/8\", \"::1/128\", \"1.2.3.4/40\"]".to_owned()),
        Just("[80, \"8000-8100\", \"9-8\", 70000, -1]".to_owned()),
        Just("[\"*.a.example\", \"a..b\", \"*x\"]".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "\"[ -~é]{0,12}\"",
        "\\[(\"[0-9a-z.*:/\\-]{0,10}\", ){0,3}\\]",
    ];
    let key = prop_oneof![
        Just("name"),
        Just("action"),
        Just("app"),
        Just("direction"),
        Just("protocol"),
        Just("remote"),
        Just("local"),
        Just("remote_port"),
        Just("local_port"),
        Just("pid"),
        Just("domain"),
        Just("acton"),
    ];
    let line = (key, value).prop_map(|(k, v)| format!("{k} = {v}"));
    let rule = (any::<u8>(), prop::collection::vec(line, 0..8))
        .prop_map(|(n, lines)| format!("[[rule]]\nname = \"r{}\"\n{}\n", n % 4, lines.join("\n")));
    (prop::option::of(Just("default = \"block\"\n")), prop::collection::vec(rule, 0..5), any::<bool>()).prop_map(
        |(default, rules, crlf)| {
            let text = format!("{}{}", default.unwrap_or_default(), rules.concat());
            if crlf { text.replace('\n', "\r\n") } else { text }
        },
    )
}
