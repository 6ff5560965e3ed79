//! Helpers shared by the test binaries.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use tollgate_rules::{ConnectionQuery, Direction, RuleSet};

pub const FIREFOX: &str = r"\device\harddiskvolume3\program files\mozilla firefox\firefox.exe";
pub const SVCHOST: &str = r"\device\harddiskvolume3\windows\system32\svchost.exe";
pub const UNKNOWN_APP: &str = r"\device\harddiskvolume3\users\me\downloads\tool.exe";

/// An outbound HTTPS connection from Firefox to example.com.
pub fn query() -> ConnectionQuery<'static> {
    ConnectionQuery {
        app_path: FIREFOX,
        process_id: 4242,
        direction: Direction::Outbound,
        protocol: 6,
        local: addr("192.168.1.10:50000"),
        remote: addr("93.184.216.34:443"),
        domain: Some("www.example.com"),
    }
}

pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

pub fn parse(text: &str) -> RuleSet {
    match RuleSet::parse(text, "rules.toml") {
        Ok(rules) => rules,
        Err(e) => panic!("{e:#}"),
    }
}

/// A policy of one `allow` rule with the given condition lines, default block.
pub fn allow_if(conditions: &str) -> RuleSet {
    parse(&format!("default = \"block\"\n[[rule]]\nname = \"r\"\naction = \"allow\"\n{conditions}\n"))
}
