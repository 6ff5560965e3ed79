//! Writes the `parse` fuzz target's seed corpus (`fuzz/corpus/parse/`): the example policy, a
//! rule using every key in every form, and a few files with one mistake each, so that the fuzzer
//! starts inside the TOML grammar and the rule checks. Run on purpose only:
//! `cargo test -p tollgate-rules --test seeds -- --ignored`.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::Path;

use tollgate_rules::RuleSet;

const EXAMPLE: &str = include_str!("../examples/rules.toml");

/// Every condition key, with lists, single values, ranges, IPv6, mapped addresses and globs.
const EVERY_KEY: &str = r#"default = "allow"
ask_fallback = "block"

[[rule]]
name = "everything"
action = "ask"
app = ['**\firefox.exe', "**\\{chrome,msedge}.exe", 'svchost.exe', '[[]x].exe']
direction = "outbound"
protocol = "tcp"
remote = ["10.0.0.0/8", "::1/128", "::ffff:192.0.2.1", "2001:db8::/32"]
local = "192.168.0.0/16"
remote_port = [443, "8000-8100", 80]
local_port = 50000
pid = [4, 1234]
domain = ["example.com", "*.ads.example", "xn--bcher-kva.example"]

[[rule]]
name = "icmp"
action = "block"
protocol = "icmp"
direction = "inbound"

[[rule]]
name = "raw"
action = "allow"
protocol = 47
"#;

/// One mistake each: the error paths.
const MISTAKES: [(&str, &str); 6] = [
    ("typo", "default = \"block\"\n\n[[rule]]\nname = \"web\"\nacton = \"allow\"\n"),
    ("bad-cidr", "[[rule]]\nname = \"lan\"\naction = \"allow\"\nremote = [\"10.0.0.0/33\"]\n"),
    ("reversed-range", "[[rule]]\nname = \"r\"\naction = \"allow\"\nremote_port = [\"9-8\"]\n"),
    ("duplicate-name", "[[rule]]\nname = \"a\"\naction = \"allow\"\n[[rule]]\nname = \"a\"\naction = \"block\"\n"),
    ("bad-domain", "[[rule]]\nname = \"d\"\naction = \"block\"\ndomain = [\"a..b\", \"*.\"]\n"),
    ("empty-list", "[[rule]]\nname = \"e\"\naction = \"block\"\npid = []\n"),
];

#[test]
fn valid_seeds_parse_and_mistakes_do_not() {
    for text in [EXAMPLE, EVERY_KEY] {
        RuleSet::parse(text, "seed.toml").unwrap();
    }
    for (name, text) in MISTAKES {
        assert!(RuleSet::parse(text, "seed.toml").is_err(), "{name} was accepted");
    }
}

#[test]
#[ignore = "writes files into fuzz/corpus; run on purpose"]
fn write_fuzz_seed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("example"), EXAMPLE).unwrap();
    std::fs::write(dir.join("every-key"), EVERY_KEY).unwrap();
    for (name, text) in MISTAKES {
        std::fs::write(dir.join(name), text).unwrap();
    }
}
