//! The rules engine of Tollgate's verdict service (`tollgatectl`): it parses a policy written in
//! TOML and decides, for each connection the driver pends, whether to allow it, block it or ask
//! the user.
//!
//! User mode only (std). The crate knows nothing of the driver: the service maps the driver's
//! connection facts to a [`ConnectionQuery`] and acts on the [`Decision`].
//!
//! # The rules file
//!
//! ```toml
//! default = "block"        # allow | block: the verdict when no rule matches (default: block)
//! ask_fallback = "block"   # allow | block: what `ask` becomes when nobody answers (default: block)
//!
//! [driver]                 # optional: the driver settings the service keeps in sync
//! default_verdict = "block"   # allow | block: when the driver cannot ask (timeout, no service, cap)
//! pend_timeout = "5s"         # how long a connection may wait for a verdict (10ms .. 10m)
//! max_pended = 1024           # how many may wait at once (at most the driver's table capacity)
//!
//! [[rule]]
//! name = "browsers"                 # required, unique, non-empty: shown in logs and prompts
//! action = "allow"                  # required: allow | block | ask
//! app = "**\\firefox.exe"           # application path glob(s)
//! direction = "outbound"            # outbound | inbound
//! protocol = "tcp"                  # tcp | udp | icmp | 0-255
//! remote = ["10.0.0.0/8", "::1/128"]   # CIDRs (or bare addresses) of the remote end
//! local = ["192.168.0.0/16"]           # ... of the local end
//! remote_port = [443, "8000-8100"]     # ports or inclusive ranges, as integers or strings
//! local_port = [50000]
//! pid = [1234]                         # process ids
//! domain = ["example.com", "*.ads.example"]  # the connection's domain (SNI / HTTP Host)
//! ```
//!
//! Rules are tried in file order and **the first rule whose conditions all match wins**; if none
//! matches, `default` applies. Every condition key is optional, and an absent key matches any
//! value. Every list-valued key also accepts a single value (`remote_port = 443`), and a list
//! matches if any element does. An empty list is an error (it could never match, which is never
//! what was meant).
//!
//! - `app`: globs matched against the whole application path, case-insensitively (Windows paths
//!   are; both sides are folded with Unicode's lowercase mapping). The path is what the driver
//!   reports, usually an NT device path such as
//!   `\device\harddiskvolume3\program files\mozilla firefox\firefox.exe`, so start globs with `**\`
//!   rather than a drive letter. `\` and `/` are both separators (there is no escape character:
//!   use `[[]` for a literal `[`), `*` and `?` stay within one path component, `**` spans
//!   components, `{a,b}` is an alternation, and a glob with no separator at all (`firefox.exe`)
//!   matches that file name in any folder. In TOML, write globs as literal strings
//!   (`'**\firefox.exe'`) or double the backslashes in basic strings (`"**\\firefox.exe"`).
//! - `protocol`: `icmp` covers both ICMP (1) and ICMPv6 (58).
//! - `remote`, `local`: an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is matched as the IPv4
//!   address it carries.
//! - `remote_port`, `local_port`: 0-65535; `"low-high"` is inclusive and `low` may not exceed
//!   `high`. For ICMP, Windows reports the type and code in the port fields.
//! - `domain`: `name` matches exactly that name, `*.name` matches every name below it at any
//!   depth (but not `name` itself: list both for both). Matching is ASCII case-insensitive and
//!   ignores trailing dots. Patterns must be valid DNS names (letters, digits, `-`, `_`; no empty
//!   labels; punycode for internationalized names). A rule with a `domain` condition only matches
//!   connections whose domain is known.
//!
//! Unknown keys anywhere are errors, so a misspelt condition cannot silently widen a rule.
//!
//! `ask` is its own [`Action`]: the service asks the user and, when it cannot, applies
//! [`RuleSet::ask_fallback`] ([`Action::resolve`] does that).
//!
//! # Errors
//!
//! [`RuleSet::parse`] and [`RuleSet::load`] report the first error in the file as a
//! [`RulesError`] pointing at the offending key or value: `rules.toml:5:1: unknown field
//! `acton`, ...`, or with `{:#}` a rustc-style snippet with carets.
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use tollgate_rules::{Action, ConnectionQuery, Direction, RuleSet};
//!
//! let rules = RuleSet::parse(
//!     r#"
//!     default = "block"
//!     [[rule]]
//!     name = "web"
//!     action = "allow"
//!     app = '**\firefox.exe'
//!     remote_port = [80, 443]
//!     "#,
//!     "rules.toml",
//! )?;
//! let remote: SocketAddr = "93.184.216.34:443".parse()?;
//! let local: SocketAddr = "192.168.1.10:50000".parse()?;
//! let query = ConnectionQuery {
//!     app_path: r"\device\harddiskvolume3\program files\mozilla firefox\firefox.exe",
//!     process_id: 4242,
//!     direction: Direction::Outbound,
//!     protocol: 6,
//!     local,
//!     remote,
//!     domain: Some("example.com"),
//! };
//! let decision = rules.decide(&query);
//! assert_eq!(decision.action, Action::Allow);
//! assert_eq!(decision.rule.and_then(|i| rules.rule_name(i)), Some("web"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod domain;
mod error;
mod raw;
mod rule;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use globset::Candidate;

pub use domain::{DomainPattern, InvalidDomainPattern};
pub use error::RulesError;

use rule::Rule;

/// What a rule (or the default) says to do with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let the connection through.
    Allow,
    /// Refuse the connection.
    Block,
    /// Ask the user; the service falls back to [`RuleSet::ask_fallback`] when it cannot.
    Ask,
}

impl Action {
    /// The final verdict: `Ask` becomes `ask_fallback`.
    pub fn resolve(self, ask_fallback: Verdict) -> Verdict {
        match self {
            Action::Allow => Verdict::Allow,
            Action::Block => Verdict::Block,
            Action::Ask => ask_fallback,
        }
    }
}

/// A final verdict: what `default` and `ask_fallback` may be (asking cannot be a fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the connection through.
    Allow,
    /// Refuse the connection.
    Block,
}

impl From<Verdict> for Action {
    fn from(verdict: Verdict) -> Action {
        match verdict {
            Verdict::Allow => Action::Allow,
            Verdict::Block => Action::Block,
        }
    }
}

/// Which side opened the connection, from the local host's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A local application connects out (ALE connect).
    Outbound,
    /// A remote host connects in (ALE receive/accept).
    Inbound,
}

/// The facts about one connection that rules can test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionQuery<'a> {
    /// The application's path as the driver reports it (NT device path or DOS path, any case).
    pub app_path: &'a str,
    /// The owning process id.
    pub process_id: u64,
    /// Who opened the connection.
    pub direction: Direction,
    /// IP protocol number (6 = TCP, 17 = UDP, 1 = ICMP, 58 = ICMPv6).
    pub protocol: u8,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The connection's domain (TLS SNI or HTTP Host) when known, in any case, with or without a
    /// trailing dot.
    pub domain: Option<&'a str>,
}

/// The outcome of [`RuleSet::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Index of the rule that matched (see [`RuleSet::rule_name`]); `None` when the default applied.
    pub rule: Option<usize>,
}

/// The shortest `pend_timeout` the driver accepts (the protocol's `MIN_PEND_TIMEOUT`).
pub const MIN_PEND_TIMEOUT: Duration = Duration::from_millis(10);
/// The longest `pend_timeout` the driver accepts (the protocol's `MAX_PEND_TIMEOUT`).
pub const MAX_PEND_TIMEOUT: Duration = Duration::from_secs(600);

/// The `[driver]` table: the driver settings the service keeps in sync (each `None` leaves the
/// driver's own default: block, 5 s, its table's capacity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DriverSettings {
    /// What the driver does with a connection it cannot ask about (timeout, no service, the cap
    /// reached, a reauthorization it has no verdict for).
    pub default_verdict: Option<Verdict>,
    /// How long a connection may wait for a verdict.
    pub pend_timeout: Option<Duration>,
    /// How many connections may wait at once.
    pub max_pended: Option<u32>,
}

/// A compiled, immutable policy. Cheap to share (`Arc<RuleSet>`) and safe to use from any number
/// of threads; a reload builds a new one.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Verdict,
    ask_fallback: Verdict,
    driver: DriverSettings,
}

/// Application paths up to this many bytes (after case folding) are normalized on the stack, so
/// `decide` does not allocate for any realistic path (`MAX_PATH`-style paths are far shorter;
/// longer ones still work, through one heap copy).
const APP_PATH_STACK: usize = 2048;

impl RuleSet {
    /// The documented example policy, `examples/rules.toml`, as text: a starting point for users.
    pub const EXAMPLE: &'static str = include_str!("../examples/rules.toml");

    /// Parses and validates a rules file. `origin` names the source in errors (usually the path).
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RulesError> {
        // Notepad saves UTF-8 with a byte order mark; it is not part of the TOML text.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let raw: raw::RawFile =
            toml::from_str(text).map_err(|e| RulesError::at(origin, text, e.span(), e.message()))?;
        let compiled = rule::compile(raw, text, origin)?;
        Ok(RuleSet {
            rules: compiled.rules,
            default: compiled.default,
            ask_fallback: compiled.ask_fallback,
            driver: compiled.driver,
        })
    }

    /// Reads and parses the rules file at `path`; the path (as displayed) is the error origin.
    pub fn load(path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        // read_to_string also refuses a file that is not UTF-8, with an io::Error of kind InvalidData.
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::io(&origin, e))?;
        RuleSet::parse(&text, &origin)
    }

    /// The policy of [`RuleSet::EXAMPLE`], for a service started without a rules file.
    ///
    /// The example is tested to parse; should it ever fail to, this returns the most restrictive
    /// policy (no rules, default block) rather than panicking.
    pub fn builtin_default() -> RuleSet {
        RuleSet::parse(RuleSet::EXAMPLE, "<builtin>").unwrap_or(RuleSet {
            rules: Vec::new(),
            default: Verdict::Block,
            ask_fallback: Verdict::Block,
            driver: DriverSettings::default(),
        })
    }

    /// Decides a connection: the first rule whose conditions all match, else the default.
    ///
    /// Does not allocate (for application paths up to 2 KiB) and does not panic.
    pub fn decide(&self, q: &ConnectionQuery<'_>) -> Decision {
        // Fold the path once per query (separators and case, as the globs were), on the stack
        // rather than per rule or on the heap.
        let mut stack = [0u8; APP_PATH_STACK];
        let heap: String;
        let path: &[u8] = match rule::fold_into(q.app_path, &mut stack) {
            Some(len) => stack.get(..len).unwrap_or_default(),
            None => {
                heap = q.app_path.chars().flat_map(rule::fold).collect();
                heap.as_bytes()
            }
        };
        let app = Candidate::from_bytes(path);
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.matches(q, &app) {
                return Decision { action: rule.action, rule: Some(index) };
            }
        }
        Decision { action: self.default.into(), rule: None }
    }

    /// Decides a bind (ALE_RESOURCE_ASSIGNMENT): only the local side is known, so conditions on
    /// the remote address, remote port and domain cannot be evaluated yet.
    ///
    /// The first rule whose local-side conditions match decides, except that a `block` rule with
    /// remote-side conditions is skipped: it blocks particular destinations, which the connect
    /// (ALE_AUTH_CONNECT) decision enforces. So an app may bind when a rule could allow some of
    /// its connections; an app that no rule allows gets the rule or default that would block it.
    /// `q.remote` is ignored. Does not allocate (for application paths up to 2 KiB).
    pub fn decide_bind(&self, q: &ConnectionQuery<'_>) -> Decision {
        let mut stack = [0u8; APP_PATH_STACK];
        let heap: String;
        let path: &[u8] = match rule::fold_into(q.app_path, &mut stack) {
            Some(len) => stack.get(..len).unwrap_or_default(),
            None => {
                heap = q.app_path.chars().flat_map(rule::fold).collect();
                heap.as_bytes()
            }
        };
        let app = Candidate::from_bytes(path);
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.action == Action::Block && rule.has_remote_conditions() {
                continue;
            }
            if rule.matches_local_side(q, &app) {
                return Decision { action: rule.action, rule: Some(index) };
            }
        }
        Decision { action: self.default.into(), rule: None }
    }

    /// The `[driver]` settings.
    pub fn driver(&self) -> DriverSettings {
        self.driver
    }

    /// `decide` resolved to a final verdict with [`RuleSet::ask_fallback`], for callers that cannot ask.
    pub fn verdict(&self, q: &ConnectionQuery<'_>) -> Verdict {
        self.decide(q).action.resolve(self.ask_fallback)
    }

    /// The name of rule `index`.
    pub fn rule_name(&self, index: usize) -> Option<&str> {
        self.rules.get(index).map(|r| r.name.as_str())
    }

    /// The 1-based line of rule `index`'s `[[rule]]` header, for messages like "rules.toml:12".
    pub fn rule_line(&self, index: usize) -> Option<usize> {
        self.rules.get(index).map(|r| r.line)
    }

    /// The action of rule `index`.
    pub fn rule_action(&self, index: usize) -> Option<Action> {
        self.rules.get(index).map(|r| r.action)
    }

    /// The verdict when no rule matches.
    pub fn default_action(&self) -> Verdict {
        self.default
    }

    /// What `ask` becomes when the user cannot be asked.
    pub fn ask_fallback(&self) -> Verdict {
        self.ask_fallback
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (every connection gets the default).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Domain patterns the driver may enforce on its own: those of `block` rules whose only
    /// condition is `domain`, in rule order, without duplicates.
    ///
    /// A pattern is left out when an earlier `allow` or `ask` rule could match a connection to
    /// such a domain (first match wins, so that rule would let it through): blocking it in the
    /// kernel would then contradict [`RuleSet::decide`]. Put domain blocks first to make them
    /// enforceable.
    pub fn blocked_domains(&self) -> Vec<DomainPattern> {
        let mut out: Vec<DomainPattern> = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.action != Action::Block || !rule.is_domain_only() {
                continue;
            }
            let earlier = self.rules.get(..index).unwrap_or_default();
            for pattern in rule.domain.iter().flatten() {
                let shadowed = earlier.iter().any(|e| {
                    e.action != Action::Block
                        && e.domain.as_deref().is_none_or(|domains| domains.iter().any(|d| d.overlaps(pattern)))
                });
                if !shadowed && !out.contains(pattern) {
                    out.push(pattern.clone());
                }
            }
        }
        out
    }
}
