//! Parses arbitrary UTF-8 as a rules file: it must never panic, and an accepted policy must be
//! usable (decide, blocked domains) and an error must render in both forms.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use tollgate_rules::{ConnectionQuery, Direction, RuleSet};

fuzz_target!(|text: &str| {
    match RuleSet::parse(text, "fuzz.toml") {
        Ok(rules) => {
            let query = ConnectionQuery {
                app_path: r"\device\harddiskvolume3\program files\mozilla firefox\firefox.exe",
                process_id: 4242,
                direction: Direction::Outbound,
                protocol: 6,
                local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), 50000),
                remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)), 443),
                domain: Some("www.example.com"),
            };
            let decision = rules.decide(&query);
            if let Some(index) = decision.rule {
                assert!(rules.rule_name(index).is_some());
            }
            let _ = rules.blocked_domains();
        }
        Err(error) => {
            let _ = error.to_string();
            let _ = format!("{error:#}");
        }
    }
});
