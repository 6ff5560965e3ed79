//! Domain patterns: `example.com` (exactly that name) and `*.example.com` (any name below it).

use std::fmt;
use std::str::FromStr;

/// Longest DNS name in its dotted text form, without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// A validated domain pattern, normalized to lowercase ASCII without a trailing dot.
///
/// Matching is ASCII case-insensitive and ignores trailing dots on the host, and never allocates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainPattern {
    /// `example.com`: matches `example.com` only.
    Exact(String),
    /// `*.example.com` (stored as `example.com`): matches every name *below* it, at any depth
    /// (`a.example.com`, `a.b.example.com`), but not `example.com` itself; list both to cover both.
    Suffix(String),
}

impl DomainPattern {
    /// Whether `host` (an SNI or HTTP `Host` name) matches the pattern.
    pub fn matches(&self, host: &str) -> bool {
        // "example.com." is the same name as "example.com"; trailing dots must not be a way around
        // a block rule.
        let host = host.trim_end_matches('.').as_bytes();
        match self {
            DomainPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            DomainPattern::Suffix(suffix) => is_below(host, suffix.as_bytes()),
        }
    }

    /// The normalized name: the exact name, or the suffix without its `*.`.
    pub fn name(&self) -> &str {
        match self {
            DomainPattern::Exact(name) | DomainPattern::Suffix(name) => name,
        }
    }

    /// Whether some host could match both patterns (used to decide whether a block rule is shadowed).
    pub(crate) fn overlaps(&self, other: &DomainPattern) -> bool {
        match (self, other) {
            (DomainPattern::Exact(a), DomainPattern::Exact(b)) => a == b,
            (DomainPattern::Exact(name), DomainPattern::Suffix(suffix))
            | (DomainPattern::Suffix(suffix), DomainPattern::Exact(name)) => {
                is_below(name.as_bytes(), suffix.as_bytes())
            }
            // Two subtrees intersect exactly when one contains the other (or they are the same).
            (DomainPattern::Suffix(a), DomainPattern::Suffix(b)) => {
                a == b || is_below(a.as_bytes(), b.as_bytes()) || is_below(b.as_bytes(), a.as_bytes())
            }
        }
    }
}

/// Whether `host` ends in `.<suffix>` (ASCII case-insensitively): a label boundary, so that
/// `*.example.com` does not match `badexample.com`.
fn is_below(host: &[u8], suffix: &[u8]) -> bool {
    let Some(dot) = host.len().checked_sub(suffix.len() + 1) else {
        return false;
    };
    host.get(dot) == Some(&b'.') && host.get(dot + 1..).is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => f.write_str(name),
            DomainPattern::Suffix(name) => write!(f, "*.{name}"),
        }
    }
}

/// Why a string is not a [`DomainPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDomainPattern {
    reason: String,
}

impl fmt::Display for InvalidDomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for InvalidDomainPattern {}

fn invalid(reason: impl Into<String>) -> InvalidDomainPattern {
    InvalidDomainPattern { reason: reason.into() }
}

impl FromStr for DomainPattern {
    type Err = InvalidDomainPattern;

    /// Parses `name` or `*.name`; one trailing dot is accepted and dropped, case is folded.
    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let trimmed = pattern.strip_suffix('.').unwrap_or(pattern);
        let (suffix, name) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if name.contains('*') {
            return Err(invalid("`*` is only allowed as a whole leading label, as in `*.example.com`"));
        }
        validate_name(name)?;
        let name = name.to_ascii_lowercase();
        Ok(if suffix { DomainPattern::Suffix(name) } else { DomainPattern::Exact(name) })
    }
}

/// Checks a DNS name in text form. Underscores are accepted because real names carry them
/// (`_dmarc`, some CDN hosts); non-ASCII is refused because the driver sees names on the wire,
/// where internationalized names are in their punycode (`xn--`) form.
fn validate_name(name: &str) -> Result<(), InvalidDomainPattern> {
    if name.is_empty() {
        return Err(invalid("the domain name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!("the domain name is longer than {MAX_NAME_LEN} characters")));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(invalid("empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(invalid(format!("label `{label}` is longer than {MAX_LABEL_LEN} characters")));
        }
        if let Some(bad) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(if bad.is_ascii() {
                invalid(format!("character {bad:?} is not allowed in a domain name"))
            } else {
                invalid(format!(
                    "non-ASCII character {bad:?}: write internationalized names in their punycode (`xn--`) form"
                ))
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(format!("label `{label}` starts or ends with `-`")));
        }
    }
    Ok(())
}
