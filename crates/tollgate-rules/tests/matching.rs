//! `RuleSet::decide`: every condition matching and not matching, first match wins, the default,
//! `ask`, and the example policy.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use common::{FIREFOX, SVCHOST, UNKNOWN_APP, addr, allow_if, parse, query};
use tollgate_rules::{Action, ConnectionQuery, Decision, Direction, DomainPattern, RuleSet, Verdict};

/// Whether the one-rule policy `allow_if(conditions)` allows `q`.
fn allows(conditions: &str, q: &ConnectionQuery<'_>) -> bool {
    let rules = allow_if(conditions);
    match rules.decide(q) {
        Decision { action: Action::Allow, rule: Some(0) } => true,
        Decision { action: Action::Block, rule: None } => false,
        other => panic!("unexpected decision {other:?}"),
    }
}

#[test]
fn a_rule_without_conditions_matches_everything() {
    assert!(allows("", &query()));
    assert!(allows("", &ConnectionQuery { app_path: "", domain: None, ..query() }));
}

#[test]
fn app_glob() {
    let q = query();
    assert!(allows(r"app = '**\firefox.exe'", &q));
    assert!(allows(r#"app = "**\\firefox.exe""#, &q), "basic string with an escaped backslash");
    assert!(allows(r"app = '**/firefox.exe'", &q), "`/` is a separator too");
    assert!(allows(r"app = '**\FireFox.EXE'", &q), "case-insensitive");
    assert!(allows(r"app = 'firefox.exe'", &q), "no separator: the file name in any folder");
    assert!(allows(r"app = '\device\harddiskvolume*\program files\**\*.exe'", &q));
    assert!(allows(r"app = ['**\chrome.exe', '**\firefox.exe']", &q), "any element of a list");
    assert!(allows(r"app = '**\{chrome,firefox}.exe'", &q), "alternation");
    assert!(!allows(r"app = '**\chrome.exe'", &q));
    assert!(!allows(r"app = 'fox.exe'", &q), "the file name must match entirely");
    assert!(!allows(r"app = '\device\harddiskvolume3\*.exe'", &q), "`*` stays within one component");
    assert!(!allows(r"app = 'C:\Program Files\**\firefox.exe'", &q), "a DOS glob does not match an NT path");

    // The service may also pass a DOS path, in any case.
    let dos = ConnectionQuery { app_path: r"C:\Program Files\Mozilla Firefox\FIREFOX.EXE", ..q };
    assert!(allows(r"app = '**\firefox.exe'", &dos));
    assert!(allows(r"app = 'c:\program files\**\firefox.exe'", &dos));

    // Non-ASCII paths fold case too (Unicode, not just ASCII).
    let unicode = ConnectionQuery { app_path: r"C:\Users\ÉMILE\app.exe", ..q };
    assert!(allows(r"app = 'c:\users\émile\app.exe'", &unicode));

    // A path longer than the on-stack buffer still matches (through the heap fallback).
    let long_path = format!(r"\device\harddiskvolume3\{}\firefox.exe", "deep\\".repeat(1000));
    assert!(long_path.len() > 4096);
    let long = ConnectionQuery { app_path: &long_path, ..q };
    assert!(allows(r"app = '**\firefox.exe'", &long));
    assert!(!allows(r"app = '**\chrome.exe'", &long));
}

#[test]
fn direction() {
    let q = query();
    assert!(allows(r#"direction = "outbound""#, &q));
    assert!(!allows(r#"direction = "inbound""#, &q));
    let inbound = ConnectionQuery { direction: Direction::Inbound, ..q };
    assert!(allows(r#"direction = "inbound""#, &inbound));
    assert!(!allows(r#"direction = "outbound""#, &inbound));
}

#[test]
fn protocol() {
    let q = query();
    assert!(allows(r#"protocol = "tcp""#, &q));
    assert!(allows("protocol = 6", &q));
    assert!(allows(r#"protocol = ["udp", "tcp"]"#, &q));
    assert!(!allows(r#"protocol = "udp""#, &q));
    assert!(!allows("protocol = [17, 1]", &q));
    let udp = ConnectionQuery { protocol: 17, ..q };
    assert!(allows(r#"protocol = "udp""#, &udp));
    for icmp in [1, 58] {
        assert!(allows(r#"protocol = "icmp""#, &ConnectionQuery { protocol: icmp, ..q }), "icmp covers {icmp}");
    }
    assert!(allows("protocol = 255", &ConnectionQuery { protocol: 255, ..q }));
    assert!(allows("protocol = 0", &ConnectionQuery { protocol: 0, ..q }));
    assert!(!allows(r#"protocol = "icmp""#, &q));
}

#[test]
fn remote_and_local_addresses() {
    let q = query(); // 192.168.1.10:50000 -> 93.184.216.34:443
    assert!(allows(r#"remote = ["93.184.216.0/24"]"#, &q));
    assert!(allows(r#"remote = "93.184.216.34""#, &q), "a bare address is a /32");
    assert!(allows(r#"remote = ["10.0.0.0/8", "93.0.0.0/8"]"#, &q));
    assert!(allows(r#"remote = ["0.0.0.0/0"]"#, &q));
    assert!(!allows(r#"remote = ["10.0.0.0/8"]"#, &q));
    assert!(!allows(r#"remote = ["::/0"]"#, &q), "an IPv6 network never contains an IPv4 address");
    assert!(allows(r#"local = ["192.168.0.0/16"]"#, &q));
    assert!(!allows(r#"local = ["192.168.2.0/24"]"#, &q));
    assert!(!allows(r#"local = ["93.184.216.0/24"]"#, &q), "local is not remote");

    let v6 = ConnectionQuery { remote: addr("[2001:db8::1]:443"), local: addr("[fe80::1]:5000"), ..q };
    assert!(allows(r#"remote = ["2001:db8::/32"]"#, &v6));
    assert!(!allows(r#"remote = ["2001:db9::/32"]"#, &v6));
    assert!(!allows(r#"remote = ["0.0.0.0/0"]"#, &v6));
    assert!(allows(r#"local = ["fe80::/10"]"#, &v6));

    // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses.
    let mapped = ConnectionQuery { remote: addr("[::ffff:10.1.2.3]:443"), ..q };
    assert!(allows(r#"remote = ["10.0.0.0/8"]"#, &mapped));
    assert!(!allows(r#"remote = ["11.0.0.0/8"]"#, &mapped));
}

#[test]
fn ports() {
    let q = query(); // local 50000, remote 443
    assert!(allows("remote_port = [443]", &q));
    assert!(allows("remote_port = 443", &q));
    assert!(allows(r#"remote_port = ["443"]"#, &q));
    assert!(allows(r#"remote_port = [80, "400-500"]"#, &q));
    assert!(allows(r#"remote_port = ["443-443"]"#, &q));
    assert!(allows(r#"remote_port = ["0-65535"]"#, &q));
    assert!(!allows(r#"remote_port = [80, "444-500", "1-442"]"#, &q));
    assert!(allows(r#"local_port = ["49152-65535"]"#, &q));
    assert!(!allows("local_port = [443]", &q), "local is not remote");
    assert!(allows("remote_port = 65535", &ConnectionQuery { remote: addr("1.2.3.4:65535"), ..q }));
    assert!(allows("remote_port = 0", &ConnectionQuery { remote: addr("1.2.3.4:0"), ..q }));
}

#[test]
fn process_id() {
    let q = query();
    assert!(allows("pid = [4242]", &q));
    assert!(allows("pid = [1, 4242]", &q));
    assert!(allows("pid = 4242", &q));
    assert!(!allows("pid = [4243]", &q));
    let big = ConnectionQuery { process_id: u64::from(u32::MAX), ..q };
    assert!(allows("pid = 4294967295", &big));
}

#[test]
fn domain() {
    let q = query(); // www.example.com
    assert!(allows(r#"domain = ["www.example.com"]"#, &q));
    assert!(allows(r#"domain = ["WWW.Example.COM."]"#, &q), "pattern case and trailing dot are normalized");
    assert!(allows(r#"domain = ["*.example.com"]"#, &q));
    assert!(allows(r#"domain = ["*.com"]"#, &q));
    assert!(allows(r#"domain = ["other.org", "*.example.com"]"#, &q));
    assert!(!allows(r#"domain = ["example.com"]"#, &q), "exact means exact");
    assert!(!allows(r#"domain = ["*.www.example.com"]"#, &q), "a suffix pattern does not match its apex");
    assert!(!allows(r#"domain = ["*.ample.com"]"#, &q), "suffixes match whole labels");
    assert!(!allows(r#"domain = ["*.example.org"]"#, &q));

    for host in ["WWW.EXAMPLE.COM", "www.example.com.", "Www.Example.Com."] {
        assert!(allows(r#"domain = ["www.example.com"]"#, &ConnectionQuery { domain: Some(host), ..q }), "{host}");
    }
    let deep = ConnectionQuery { domain: Some("a.b.c.example.com"), ..q };
    assert!(allows(r#"domain = "*.example.com""#, &deep));
    assert!(!allows(r#"domain = "*.example.com""#, &ConnectionQuery { domain: Some("badexample.com"), ..q }));

    // Without a known domain, a domain condition never matches, whatever the pattern.
    let unknown = ConnectionQuery { domain: None, ..q };
    assert!(!allows(r#"domain = ["*.com", "www.example.com"]"#, &unknown));
    assert!(!allows(r#"domain = ["www.example.com"]"#, &ConnectionQuery { domain: Some(""), ..q }));
}

#[test]
fn every_present_condition_must_match() {
    let all = r#"
        app = '**\firefox.exe'
        direction = "outbound"
        protocol = "tcp"
        remote = ["93.184.216.0/24"]
        local = ["192.168.0.0/16"]
        remote_port = [443]
        local_port = ["50000-50010"]
        pid = [4242]
        domain = ["*.example.com"]
    "#;
    let q = query();
    assert!(allows(all, &q));
    // Breaking any one condition breaks the rule.
    let misses = [
        ConnectionQuery { app_path: SVCHOST, ..q },
        ConnectionQuery { direction: Direction::Inbound, ..q },
        ConnectionQuery { protocol: 17, ..q },
        ConnectionQuery { remote: addr("93.184.217.34:443"), ..q },
        ConnectionQuery { local: addr("10.0.0.1:50000"), ..q },
        ConnectionQuery { remote: addr("93.184.216.34:444"), ..q },
        ConnectionQuery { local: addr("192.168.1.10:50011"), ..q },
        ConnectionQuery { process_id: 1, ..q },
        ConnectionQuery { domain: Some("example.org"), ..q },
        ConnectionQuery { domain: None, ..q },
    ];
    for miss in misses {
        assert!(!allows(all, &miss), "{miss:?}");
    }
}

const ORDERED: &str = r#"
default = "allow"
ask_fallback = "allow"

[[rule]]
name = "block-ads"
action = "block"
domain = "*.ads.example"

[[rule]]
name = "allow-https"
action = "allow"
remote_port = 443

[[rule]]
name = "block-tcp"
action = "block"
protocol = "tcp"

[[rule]]
name = "ask-udp"
action = "ask"
protocol = "udp"
"#;

#[test]
fn first_match_wins_then_default() {
    let rules = parse(ORDERED);
    assert_eq!(rules.len(), 4);
    assert!(!rules.is_empty());
    let q = query();

    let ad = ConnectionQuery { domain: Some("x.ads.example"), ..q };
    assert_eq!(rules.decide(&ad), Decision { action: Action::Block, rule: Some(0) }, "earlier block beats later allow");
    assert_eq!(rules.decide(&q), Decision { action: Action::Allow, rule: Some(1) }, "earlier allow beats later block");
    let http = ConnectionQuery { remote: addr("93.184.216.34:80"), ..q };
    assert_eq!(rules.decide(&http), Decision { action: Action::Block, rule: Some(2) });
    let dns = ConnectionQuery { protocol: 17, remote: addr("9.9.9.9:53"), ..q };
    assert_eq!(rules.decide(&dns), Decision { action: Action::Ask, rule: Some(3) });
    let ping = ConnectionQuery { protocol: 1, remote: addr("9.9.9.9:0"), ..q };
    assert_eq!(rules.decide(&ping), Decision { action: Action::Allow, rule: None }, "nothing matched: default");

    assert_eq!(rules.rule_name(0), Some("block-ads"));
    assert_eq!(rules.rule_name(3), Some("ask-udp"));
    assert_eq!(rules.rule_name(4), None);
    assert_eq!(rules.rule_line(0), Some(5), "the [[rule]] header line");
    assert_eq!(rules.rule_line(3), Some(20));
    assert_eq!(rules.rule_action(3), Some(Action::Ask));
    assert_eq!(rules.default_action(), Verdict::Allow);
    assert_eq!(rules.ask_fallback(), Verdict::Allow);
}

#[test]
fn default_and_ask_fallback() {
    let empty = parse("");
    assert!(empty.is_empty());
    assert_eq!(empty.default_action(), Verdict::Block, "fail closed when unspecified");
    assert_eq!(empty.ask_fallback(), Verdict::Block);
    assert_eq!(empty.decide(&query()), Decision { action: Action::Block, rule: None });

    let allow = parse(r#"default = "allow""#);
    assert_eq!(allow.decide(&query()), Decision { action: Action::Allow, rule: None });

    let ask = r#"
        ask_fallback = "allow"
        [[rule]]
        name = "ask"
        action = "ask"
    "#;
    let rules = parse(ask);
    assert_eq!(rules.decide(&query()).action, Action::Ask, "ask is surfaced, not resolved");
    assert_eq!(rules.verdict(&query()), Verdict::Allow, "resolved with ask_fallback");
    let strict = parse(&ask.replace(r#"ask_fallback = "allow""#, r#"ask_fallback = "block""#));
    assert_eq!(strict.verdict(&query()), Verdict::Block);

    assert_eq!(Action::Ask.resolve(Verdict::Allow), Verdict::Allow);
    assert_eq!(Action::Ask.resolve(Verdict::Block), Verdict::Block);
    assert_eq!(Action::Allow.resolve(Verdict::Block), Verdict::Allow);
    assert_eq!(Action::Block.resolve(Verdict::Allow), Verdict::Block);
    assert_eq!(Action::from(Verdict::Allow), Action::Allow);
    assert_eq!(Action::from(Verdict::Block), Action::Block);
}

#[test]
fn crlf_and_byte_order_mark_are_accepted() {
    let text = "\u{feff}default = \"allow\"\r\n[[rule]]\r\nname = \"r\"\r\naction = \"block\"\r\nremote_port = 443\r\n";
    let rules = parse(text);
    assert_eq!(rules.default_action(), Verdict::Allow);
    assert_eq!(rules.decide(&query()), Decision { action: Action::Block, rule: Some(0) });
    assert_eq!(rules.rule_line(0), Some(2));
}

#[test]
fn example_policy() {
    let rules = RuleSet::load(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rules.toml")).unwrap();
    assert_eq!(rules.default_action(), Verdict::Block);
    assert_eq!(rules.ask_fallback(), Verdict::Block);
    let q = query();
    let name = |q: &ConnectionQuery<'_>| {
        let d = rules.decide(q);
        (d.action, d.rule.and_then(|i| rules.rule_name(i)))
    };

    assert_eq!(name(&q), (Action::Allow, Some("browsers")));
    assert_eq!(name(&ConnectionQuery { remote: addr("93.184.216.34:80"), ..q }), (Action::Allow, Some("browsers")));
    assert_eq!(name(&ConnectionQuery { protocol: 17, ..q }), (Action::Allow, Some("browsers-quic")));
    let chrome = r"\device\harddiskvolume3\program files\google\chrome\application\chrome.exe";
    assert_eq!(name(&ConnectionQuery { app_path: chrome, ..q }), (Action::Allow, Some("browsers")));
    // A browser on another port is not covered by the browser rules: ask.
    assert_eq!(
        name(&ConnectionQuery { remote: addr("93.184.216.34:8080"), ..q }),
        (Action::Ask, Some("ask-unknown-apps"))
    );

    let dns = ConnectionQuery { app_path: SVCHOST, protocol: 17, remote: addr("192.168.1.1:53"), domain: None, ..q };
    assert_eq!(name(&dns), (Action::Allow, Some("dns")));
    assert_eq!(name(&ConnectionQuery { protocol: 6, ..dns }), (Action::Ask, Some("ask-unknown-apps")));

    for host in ["v10.events.data.microsoft.com", "vortex.data.microsoft.com", "incoming.telemetry.mozilla.org"] {
        assert_eq!(name(&ConnectionQuery { domain: Some(host), ..q }), (Action::Block, Some("telemetry")), "{host}");
    }
    assert_eq!(name(&ConnectionQuery { app_path: UNKNOWN_APP, ..q }), (Action::Ask, Some("ask-unknown-apps")));

    let inbound = ConnectionQuery { direction: Direction::Inbound, domain: None, ..q };
    assert_eq!(name(&inbound), (Action::Block, Some("no-inbound")));
    let loopback_in = ConnectionQuery { remote: addr("127.0.0.1:60000"), ..inbound };
    assert_eq!(name(&loopback_in), (Action::Allow, Some("loopback")));
    let loopback6 = ConnectionQuery { remote: addr("[::1]:8080"), app_path: UNKNOWN_APP, ..q };
    assert_eq!(name(&loopback6), (Action::Allow, Some("loopback")));

    // The telemetry rule comes first, so the driver may enforce all of its patterns.
    let blocked = rules.blocked_domains();
    assert_eq!(blocked.len(), 6);
    assert!(blocked.iter().any(|p| p.matches("v10.events.data.microsoft.com")));
    assert!(!blocked.iter().any(|p| p.matches("www.example.com")));

    // The built-in default is the example, and the documented constant is the file.
    let builtin = RuleSet::builtin_default();
    assert_eq!(builtin.len(), rules.len());
    assert_eq!(builtin.blocked_domains(), blocked);
    assert_eq!(
        RuleSet::EXAMPLE,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rules.toml")).unwrap()
    );
    for i in 0..rules.len() {
        assert_eq!(builtin.rule_name(i), rules.rule_name(i));
    }
    assert_eq!(builtin.decide(&ConnectionQuery { app_path: FIREFOX, ..q }), rules.decide(&q));
}

#[test]
fn blocked_domains_takes_only_unshadowed_domain_only_block_rules() {
    let rules = parse(
        r#"
        [[rule]]
        name = "ads"
        action = "block"
        domain = ["*.ads.example", "Tracker.Example.", "*.ads.example"]

        [[rule]]
        name = "not-domain-only"
        action = "block"
        domain = ["a.example"]
        protocol = "tcp"

        [[rule]]
        name = "allow-some"
        action = "allow"
        domain = ["*.cdn.example", "good.example"]

        [[rule]]
        name = "ask-some"
        action = "ask"
        domain = "*.maybe.example"

        [[rule]]
        name = "allowed-first"
        action = "block"
        domain = ["x.cdn.example", "cdn.example", "good.example", "*.example", "y.maybe.example", "other.test"]

        [[rule]]
        name = "allow-all-firefox"
        action = "allow"
        app = '**\firefox.exe'

        [[rule]]
        name = "after-a-catch-all"
        action = "block"
        domain = "late.test"
        "#,
    );
    assert_eq!(
        rules.blocked_domains(),
        vec![
            DomainPattern::Suffix("ads.example".into()),
            DomainPattern::Exact("tracker.example".into()),
            // x.cdn.example, good.example and *.example overlap the allow rule, y.maybe.example the
            // ask rule; cdn.example does not match *.cdn.example.
            DomainPattern::Exact("cdn.example".into()),
            DomainPattern::Exact("other.test".into()),
        ]
    );
}

#[test]
fn domain_patterns() {
    let exact: DomainPattern = "Example.COM.".parse().unwrap();
    assert_eq!(exact, DomainPattern::Exact("example.com".into()));
    assert_eq!(exact.to_string(), "example.com");
    assert_eq!(exact.name(), "example.com");
    let suffix: DomainPattern = "*.Example.com".parse().unwrap();
    assert_eq!(suffix, DomainPattern::Suffix("example.com".into()));
    assert_eq!(suffix.to_string(), "*.example.com");
    assert!(suffix.matches("A.EXAMPLE.COM..."));
    assert!(!suffix.matches("example.com"));
    assert!(!suffix.matches("com"));
    assert!(!suffix.matches(""));
    assert!(exact.matches("EXAMPLE.com"));
    assert!(!exact.matches("www.example.com"));
    assert!(!exact.matches("exämple.com"));
    for ok in ["localhost", "_dmarc.example.com", "xn--bcher-kva.example", "a-b.c", "1.2.3.4", "*.a"] {
        assert!(ok.parse::<DomainPattern>().is_ok(), "{ok}");
    }
    let long_label = format!("{}.com", "a".repeat(64));
    let long_name = vec!["abcdefghi"; 26].join(".");
    for bad in
        ["", ".", "*", "*.", "*foo", "foo*", "a.*.b", "**.a", "a..b", ".a", "a b", "-a.com", "a-.com", "bücher.de"]
            .into_iter()
            .chain([long_label.as_str(), long_name.as_str()])
    {
        assert!(bad.parse::<DomainPattern>().is_err(), "{bad:?}");
    }
}

#[test]
fn rule_set_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<RuleSet>();
    let rules = std::sync::Arc::new(parse(ORDERED));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let rules = std::sync::Arc::clone(&rules);
            std::thread::spawn(move || rules.decide(&query()))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), Decision { action: Action::Allow, rule: Some(1) });
    }
}

#[test]
fn binds_ignore_remote_conditions_and_skip_destination_blocks() {
    let rules = parse(
        r#"
default = "block"
[[rule]]
name = "no-firefox-to-lan"
action = "block"
app = "firefox.exe"
remote = ["10.0.0.0/8"]
[[rule]]
name = "firefox-web"
action = "allow"
app = "firefox.exe"
remote_port = [443]
[[rule]]
name = "no-unknown-apps"
action = "block"
app = "**\\downloads\\**"
"#,
    );
    let bind = ConnectionQuery { remote: addr("0.0.0.0:0"), domain: None, ..query() };
    // The destination block does not stop the bind; the allow rule (port unknown yet) does allow it.
    assert_eq!(rules.decide_bind(&bind), Decision { action: Action::Allow, rule: Some(1) });
    // The connect is still decided on the full rules.
    let lan = ConnectionQuery { remote: addr("10.1.2.3:443"), ..query() };
    assert_eq!(rules.decide(&lan).action, Action::Block);
    // A block rule with local-side conditions only still blocks the bind.
    let unknown = ConnectionQuery { app_path: UNKNOWN_APP, ..bind };
    assert_eq!(rules.decide_bind(&unknown), Decision { action: Action::Block, rule: Some(2) });
    // No rule for the app: the default.
    let svchost = ConnectionQuery { app_path: SVCHOST, ..bind };
    assert_eq!(rules.decide_bind(&svchost), Decision { action: Action::Block, rule: None });
}
