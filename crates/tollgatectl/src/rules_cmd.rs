//! `tollgatectl rules check FILE`: validates a rules file without applying it.

use std::io::Write;
use std::path::Path;

use tollgate_rules::RuleSet;

/// Checks `path`; prints a summary to `out` (exit 0) or the error with its file, line and column,
/// and the offending line, to `err` (exit 2).
pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match RuleSet::load(path) {
        Ok(rules) => {
            let _ = writeln!(
                out,
                "{}: OK: {} rule(s); default {:?}, ask falls back to {:?}",
                path.display(),
                rules.len(),
                rules.default_action(),
                rules.ask_fallback()
            );
            for index in 0..rules.len() {
                let name = rules.rule_name(index).unwrap_or("?");
                let line = rules.rule_line(index).unwrap_or(0);
                let action = rules.rule_action(index).map_or_else(String::new, |a| format!("{a:?}"));
                let _ = writeln!(out, "  {:>3}. {name} ({action}, line {line})", index + 1);
            }
            let domains = rules.blocked_domains();
            if !domains.is_empty() {
                let names: Vec<String> = domains.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "  blocked in the kernel by domain: {}", names.join(", "));
            }
            0
        }
        Err(error) => {
            let _ = writeln!(err, "{error:#}");
            2
        }
    }
}
