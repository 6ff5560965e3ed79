//! Every kind of invalid rules file is refused with an error that points at the offending text.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::error::Error as _;

use tollgate_rules::{RuleSet, RulesError};

fn error(text: &str) -> RulesError {
    match RuleSet::parse(text, "rules.toml") {
        Ok(rules) => panic!("accepted a policy with {} rules:\n{text}", rules.len()),
        Err(e) => e,
    }
}

/// Asserts the error's position and that its message contains `needle`.
#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, needle: &str) {
    let e = error(text);
    assert_eq!((e.line(), e.column()), (Some(line), Some(column)), "{e:#}");
    assert!(e.message().contains(needle), "expected {needle:?} in {:?}", e.message());
    assert_eq!(e.to_string(), format!("rules.toml:{line}:{column}: {}", e.message()));
    assert_eq!(e.origin(), "rules.toml");
    assert!(!e.is_io());
    assert!(e.source().is_none());
}

/// A rule named `r` whose body is `lines` (the first body line is line 4).
fn rule(lines: &str) -> String {
    format!("default = \"block\"\n[[rule]]\nname = \"r\"\n{lines}\n")
}

#[test]
fn unknown_field_typo() {
    let text = "default = \"block\"\n\n[[rule]]\nname = \"web\"\nacton = \"allow\"\n";
    assert_error(text, 5, 1, "unknown field `acton`");
    assert_eq!(error(text).source_line(), Some("acton = \"allow\""));
}

#[test]
fn invalid_cidr_points_at_the_element() {
    let text = "default = \"block\"\n\n[[rule]]\nname = \"lan\"\naction = \"allow\"\nprotocol = \"tcp\"\nremote = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n";
    assert_error(text, 7, 25, "`10.0.0.0/33`");
    for bad in ["10.0.0/8", "10.0.0.0/", "host.example", "::1/129", "", "10.0.0.0/8/8"] {
        assert_error(&rule(&format!("action = \"allow\"\nlocal = [\"{bad}\"]")), 5, 10, "invalid address or CIDR");
    }
}

#[test]
fn alternate_display_shows_the_line_with_carets() {
    let text = "default = \"block\"\n\n[[rule]]\nname = \"web\"\nacton = \"allow\"\n";
    let expected = "error: unknown field `acton`, expected one of `name`, `action`, `app`, `direction`, `protocol`, `remote`, `local`, `remote_port`, `local_port`, `pid`, `domain`
 --> rules.toml:5:1
  |
5 | acton = \"allow\"
  | ^^^^^";
    assert_eq!(format!("{:#}", error(text)), expected);

    // A wide gutter for a two-digit line, and tabs kept so the carets line up.
    let text = format!("{}[[rule]]\nname = \"r\"\naction = \"allow\"\n\tremote_port =\t[\"9-8\"]\n", "\n".repeat(8));
    let expected = "error: port range `9-8` is reversed: 9 is greater than 8
  --> rules.toml:12:17
   |
12 | \tremote_port =\t[\"9-8\"]
   | \t             \t ^^^^^";
    assert_eq!(format!("{:#}", error(&text)), expected);
}

#[test]
fn toml_syntax_errors() {
    assert_error("default = \"block\"\n[[rule]]\nname = \"web\naction = \"allow\"\n", 3, 12, "");
    assert_error("default = \"block\"\ndefault = \"allow\"\n", 2, 1, "duplicate key");
    assert_error("[[rule]\n", 1, 8, "unclosed array table");
    assert_error("default = block\n", 1, 11, "");
}

#[test]
fn unknown_keys() {
    assert_error("defualt = \"block\"\n", 1, 1, "unknown field `defualt`");
    assert_error("[[rules]]\nname = \"a\"\naction = \"allow\"\n", 1, 3, "unknown field `rules`");
    assert_error(&rule("action = \"allow\"\nremote_ports = [1]"), 5, 1, "unknown field `remote_ports`");
}

#[test]
fn bad_enumerations() {
    assert_error(&rule("action = \"alow\""), 4, 10, "unknown variant `alow`");
    assert_error(&rule("action = \"Allow\""), 4, 10, "unknown variant `Allow`");
    assert_error("default = \"ask\"\n", 1, 11, "expected `allow` or `block`");
    assert_error("ask_fallback = \"ask\"\n", 1, 16, "expected `allow` or `block`");
    assert_error(&rule("action = \"allow\"\ndirection = \"out\""), 5, 13, "unknown variant `out`");
    assert_error(&rule("action = \"allow\"\nprotocol = \"tcpp\""), 5, 12, "unknown protocol `tcpp`");
    assert_error(&rule("action = \"allow\"\nprotocol = [6, 256]"), 5, 16, "protocol number 256 is out of range");
    assert_error(&rule("action = \"allow\"\nprotocol = -1"), 5, 12, "out of range");
}

#[test]
fn missing_and_wrongly_typed_values() {
    assert_error(&rule(""), 2, 1, "missing field `action`");
    assert_error("[[rule]]\naction = \"allow\"\n", 1, 1, "missing field `name`");
    assert_error(&rule("action = 1"), 4, 10, "invalid type");
    assert_error(&rule("action = \"allow\"\npid = [\"x\"]"), 5, 8, "invalid process id `x`");
    assert_error(&rule("action = \"allow\"\npid = [-1]"), 5, 8, "process id -1 is negative");
    assert_error(&rule("action = \"allow\"\nremote = [1]"), 5, 11, "invalid type: integer");
    assert_error(&rule("action = \"allow\"\nremote_port = [1.5]"), 5, 16, "invalid type: floating point");
    assert_error(&rule("action = \"allow\"\napp = true"), 5, 7, "invalid type: boolean");
    assert_error("rule = 3\n", 1, 8, "");
}

#[test]
fn duplicate_and_empty_rule_names() {
    let text = "[[rule]]\nname = \"a\"\naction = \"allow\"\n\n[[rule]]\nname = \"a\"\naction = \"block\"\n";
    assert_error(text, 6, 8, "duplicate rule name `a` (first used by the rule on line 1)");
    assert_error(&rule("action = \"allow\"").replace("name = \"r\"", "name = \"  \""), 3, 8, "the rule name is empty");
}

#[test]
fn empty_lists() {
    for key in ["app", "protocol", "remote", "local", "remote_port", "local_port", "pid", "domain"] {
        let text = rule(&format!("action = \"allow\"\n{key} = []"));
        assert_error(&text, 5, key.len() + 4, &format!("`{key}` is an empty list"));
    }
}

#[test]
fn bad_ports() {
    assert_error(
        &rule("action = \"allow\"\nremote_port = [\"9000-8000\"]"),
        5,
        16,
        "port range `9000-8000` is reversed",
    );
    assert_error(&rule("action = \"allow\"\nremote_port = [80, 65536]"), 5, 20, "port 65536 is out of range 0-65535");
    assert_error(&rule("action = \"allow\"\nlocal_port = [-1]"), 5, 15, "port -1 is out of range");
    assert_error(&rule("action = \"allow\"\nlocal_port = [\"70000\"]"), 5, 15, "port 70000 is out of range");
    assert_error(&rule("action = \"allow\"\nlocal_port = [\"1-99999999999999999999\"]"), 5, 15, "out of range");
    for bad in ["http", "", "-", "80-", "-80", "1-2-3", "+80", "8 0", "0x50"] {
        assert_error(&rule(&format!("action = \"allow\"\nremote_port = [\"{bad}\"]")), 5, 16, "invalid port");
    }
    // The single-value shorthand points at the value itself.
    assert_error(&rule("action = \"allow\"\nremote_port = \"9-8\""), 5, 15, "reversed");
}

#[test]
fn bad_globs() {
    assert_error(&rule("action = \"allow\"\napp = ['**\\ok.exe', '**\\[abc']"), 5, 21, "unclosed character class");
    assert_error(&rule("action = \"allow\"\napp = '**\\{a,b'"), 5, 7, "invalid application glob");
    assert_error(&rule("action = \"allow\"\napp = 'a}'"), 5, 7, "invalid application glob");
    assert_error(&rule("action = \"allow\"\napp = ''"), 5, 7, "the application glob is empty");
    assert_error(&rule("action = \"allow\"\napp = '[z-a]'"), 5, 7, "invalid application glob");
}

#[test]
fn bad_domain_patterns() {
    for bad in ["*foo", "a..b", "", "foo.*.com", "*", ".a", "-a.com", "a_b c", "bücher.de", "*.*.a"] {
        let text = rule(&format!("action = \"block\"\ndomain = [\"ok.example\", \"{bad}\"]"));
        assert_error(&text, 5, 25, &format!("invalid domain pattern `{bad}`"));
    }
    assert_error(&rule("action = \"block\"\ndomain = \"a..b\""), 5, 10, "empty label");
    assert_error(&rule("action = \"block\"\ndomain = \"*foo\""), 5, 10, "`*` is only allowed");
}

#[test]
fn the_earliest_error_in_the_file_is_reported() {
    // Checks run field by field, but the report follows the file.
    let text = rule("action = \"allow\"\ndomain = [\"a..b\"]\nremote = [\"nope\"]\nremote_port = [\"9-8\"]");
    assert_error(&text, 5, 11, "invalid domain pattern");
    let text =
        "[[rule]]\nname = \"a\"\naction = \"allow\"\nremote = [\"nope\"]\n[[rule]]\nname = \"a\"\naction = \"allow\"\n";
    assert_error(text, 4, 11, "invalid address");
}

#[test]
fn positions_count_characters_and_ignore_crlf_and_bom() {
    // Two-byte characters before the error: the column counts characters, not bytes.
    assert_error(&rule("action = \"allow\"\napp = ['**\\é.exe', '**\\[']"), 5, 20, "unclosed character class");
    let crlf = "default = \"block\"\r\n\r\n[[rule]]\r\nname = \"web\"\r\nacton = \"allow\"\r\n";
    assert_error(crlf, 5, 1, "unknown field `acton`");
    assert_eq!(error(crlf).source_line(), Some("acton = \"allow\""));
    // An error at the `\n` of a CRLF line is at the end of the visible line: the `\r` is no column.
    assert_error("[[rule]]\r\nname = \"r0\"\r\nname = \"\\\"\r\n", 3, 11, "");
    let bom = "\u{feff}default = \"block\"\n\n[[rule]]\nname = \"web\"\nacton = \"allow\"\n";
    assert_error(bom, 5, 1, "unknown field `acton`");
}

#[test]
fn io_errors_have_no_position() {
    let path = std::env::temp_dir().join("tollgate-rules-test-does-not-exist/rules.toml");
    let e = RuleSet::load(&path).unwrap_err();
    assert!(e.is_io());
    assert_eq!((e.line(), e.column(), e.source_line()), (None, None, None));
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(e.origin(), path.display().to_string());
    assert_eq!(e.to_string(), format!("{}: {}", path.display(), e.message()));
    assert_eq!(format!("{e:#}"), e.to_string());
}

#[test]
fn load_reports_the_path() {
    let dir = std::env::temp_dir().join(format!("tollgate-rules-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "default = \"block\"\n\n[[rule]]\nname = \"web\"\nacton = \"allow\"\n").unwrap();
    let e = RuleSet::load(&path).unwrap_err();
    assert_eq!(e.to_string(), format!("{}:5:1: {}", path.display(), e.message()));

    // Not UTF-8: an I/O error (InvalidData), not a panic.
    std::fs::write(&path, b"default = \"\xff\"\n").unwrap();
    assert!(RuleSet::load(&path).unwrap_err().is_io());

    std::fs::write(&path, "default = \"allow\"\n").unwrap();
    assert_eq!(RuleSet::load(&path).unwrap().default_action(), tollgate_rules::Verdict::Allow);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_driver_table_is_checked_value_by_value() {
    let ok =
        RuleSet::parse("[driver]\ndefault_verdict = \"allow\"\npend_timeout = \"750ms\"\nmax_pended = 64\n", "r.toml")
            .unwrap();
    let driver = ok.driver();
    assert_eq!(driver.default_verdict, Some(tollgate_rules::Verdict::Allow));
    assert_eq!(driver.pend_timeout, Some(std::time::Duration::from_millis(750)));
    assert_eq!(driver.max_pended, Some(64));
    assert_eq!(RuleSet::parse("", "r.toml").unwrap().driver(), tollgate_rules::DriverSettings::default());
    assert_error("[driver]\npend_timeout = \"5 parsecs\"\n", 2, 16, "`pend_timeout`");
    assert_error("[driver]\npend_timeout = \"1ms\"\n", 2, 16, "between 10ms and 10m");
    assert_error("[driver]\npend_timeout = \"11m\"\n", 2, 16, "between 10ms and 10m");
    assert_error("[driver]\nmax_pended = 0\n", 2, 14, "positive integer");
    assert_error("[driver]\nmax_pended = -5\n", 2, 14, "positive integer");
    assert_error("[driver]\ndefault_verdict = \"ask\"\n", 2, 19, "unknown variant");
    assert_error("[driver]\ntimeout = \"5s\"\n", 2, 1, "unknown field `timeout`");
}
