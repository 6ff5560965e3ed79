//! `tollgatectl rules check`: a good file gets a summary, a file with a typo gets its position.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

fn write(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tollgatectl-rules-check-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_valid_file_is_summarised() {
    let path = write("good.toml", tollgate_rules::RuleSet::EXAMPLE);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(tollgatectl::rules_cmd::check(&path, &mut out, &mut err), 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(": OK: "), "{out}");
    assert!(err.is_empty());
}

#[test]
fn a_typo_is_reported_with_file_line_and_column() {
    let path = write("bad.toml", "default = \"block\"\n[[rule]]\nname = \"x\"\nacton = \"allow\"\n");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(tollgatectl::rules_cmd::check(&path, &mut out, &mut err), 2);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("bad.toml:4:1"), "{err}");
    assert!(err.contains("acton"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let missing = std::env::temp_dir().join("tollgatectl-no-such-rules-file.toml");
    assert_eq!(tollgatectl::rules_cmd::check(&missing, &mut out, &mut err), 2);
    assert!(!err.is_empty());
}
