//! Domain patterns: `example.com` (exactly that name) and `*.example.com` (any name below it).

use std::fmt;
use std::str::FromStr;

use tollgate_inspect::name::{self, HostName, NameError, PatternKind, is_below};

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
    ///
    /// The host is normalized exactly as the driver normalizes the names it reads off the wire
    /// ([`HostName::from_wire`]: ASCII case folded, trailing dots dropped — a trailing dot must not
    /// be a way around a block rule), so a rule and the driver's blocklist can never disagree.
    pub fn matches(&self, host: &str) -> bool {
        let host = HostName::from_wire(host.as_bytes());
        host.matches(self.kind(), self.name().as_bytes())
    }

    /// What the pattern matches: the name itself, or every name below it.
    pub fn kind(&self) -> PatternKind {
        match self {
            DomainPattern::Exact(_) => PatternKind::Exact,
            DomainPattern::Suffix(_) => PatternKind::Below,
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

/// Checks a DNS name in text form with the driver's own rule ([`name::validate`]: the blocklist
/// IOCTL applies the same one), and says what is wrong in the words of the rules file.
fn validate_name(text: &str) -> Result<(), InvalidDomainPattern> {
    name::validate(text.as_bytes()).map_err(|error| {
        let label = |start: usize, len: usize| text.get(start..start.saturating_add(len)).unwrap_or(text);
        let character = |at: usize| text.get(at..).and_then(|rest| rest.chars().next()).unwrap_or('?');
        invalid(match error {
            NameError::Empty => "the domain name is empty".to_string(),
            NameError::TooLong { .. } => {
                format!("the domain name is longer than {} characters", name::MAX_NAME_LEN)
            }
            NameError::EmptyLabel { .. } => "empty label (two dots in a row, or a leading dot)".to_string(),
            NameError::LabelTooLong { start, len } => {
                format!("label `{}` is longer than {} characters", label(start, len), name::MAX_LABEL_LEN)
            }
            NameError::BadCharacter { at, .. } => {
                format!("character {:?} is not allowed in a domain name", character(at))
            }
            NameError::NonAscii { at } => format!(
                "non-ASCII character {:?}: write internationalized names in their punycode (`xn--`) form",
                character(at)
            ),
            NameError::HyphenAtLabelEdge { start, len } => {
                format!("label `{}` starts or ends with `-`", label(start, len))
            }
            // `validate` accepts either case; the pattern is lowercased after it.
            NameError::Uppercase { .. } => error.describe().to_string(),
        })
    })
}
