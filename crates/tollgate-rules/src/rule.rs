//! Compiled rules: validation of the raw file (every error pointing at its value) and matching.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;
use toml::Spanned;

use crate::domain::DomainPattern;
use crate::error::RulesError;
use crate::raw::{Item, List, RawDriver, RawFile, RawRule, Scalar};
use crate::{Action, ConnectionQuery, Direction, DriverSettings, MAX_PEND_TIMEOUT, MIN_PEND_TIMEOUT, Verdict};

/// One compiled rule. Every `Option` is a condition; `None` means "any value". Lists are never
/// empty (the parser refuses empty lists), so a present condition can always match something.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) action: Action,
    pub(crate) app: Option<GlobSet>,
    pub(crate) direction: Option<Direction>,
    pub(crate) protocol: Option<ProtocolSet>,
    pub(crate) remote: Option<Box<[IpNet]>>,
    pub(crate) local: Option<Box<[IpNet]>>,
    pub(crate) remote_port: Option<Box<[(u16, u16)]>>,
    pub(crate) local_port: Option<Box<[(u16, u16)]>>,
    pub(crate) pid: Option<Box<[u64]>>,
    pub(crate) domain: Option<Box<[DomainPattern]>>,
}

/// A set of IP protocol numbers as a 256-bit bitmap: membership is one load and a mask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProtocolSet([u64; 4]);

impl ProtocolSet {
    fn insert(&mut self, protocol: u8) {
        if let Some(word) = self.0.get_mut(usize::from(protocol >> 6)) {
            *word |= 1 << (protocol & 63);
        }
    }

    fn contains(&self, protocol: u8) -> bool {
        self.0.get(usize::from(protocol >> 6)).is_some_and(|word| word & (1 << (protocol & 63)) != 0)
    }
}

impl Rule {
    /// Whether every present condition matches. `app` is the query's application path, already
    /// normalized for globset (see `RuleSet::decide`). The cheap scalar checks come first so most
    /// non-matching rules are rejected before the glob runs.
    pub(crate) fn matches(&self, q: &ConnectionQuery<'_>, app: &Candidate<'_>) -> bool {
        self.direction.is_none_or(|d| d == q.direction)
            && self.protocol.as_ref().is_none_or(|set| set.contains(q.protocol))
            && self.pid.as_deref().is_none_or(|pids| pids.contains(&q.process_id))
            && ports_match(self.remote_port.as_deref(), q.remote.port())
            && ports_match(self.local_port.as_deref(), q.local.port())
            && nets_match(self.remote.as_deref(), q.remote.ip())
            && nets_match(self.local.as_deref(), q.local.ip())
            // A domain condition needs a known domain: a connection without SNI/Host must not
            // match "block *.ads.example", nor "allow *.example.com".
            && self.domain.as_deref().is_none_or(|patterns| {
                q.domain.is_some_and(|host| patterns.iter().any(|p| p.matches(host)))
            })
            && self.app.as_ref().is_none_or(|globs| globs.is_match_candidate(app))
    }

    /// [`Rule::matches`] without the conditions a bind cannot know yet (remote address, remote
    /// port, domain): used for ALE_RESOURCE_ASSIGNMENT, where only the local side exists.
    pub(crate) fn matches_local_side(&self, q: &ConnectionQuery<'_>, app: &Candidate<'_>) -> bool {
        self.direction.is_none_or(|d| d == q.direction)
            && self.protocol.as_ref().is_none_or(|set| set.contains(q.protocol))
            && self.pid.as_deref().is_none_or(|pids| pids.contains(&q.process_id))
            && ports_match(self.local_port.as_deref(), q.local.port())
            && nets_match(self.local.as_deref(), q.local.ip())
            && self.app.as_ref().is_none_or(|globs| globs.is_match_candidate(app))
    }

    /// Whether the rule has a condition on the remote side (address, port or domain).
    pub(crate) fn has_remote_conditions(&self) -> bool {
        self.remote.is_some() || self.remote_port.is_some() || self.domain.is_some()
    }

    /// Whether the domain is the rule's only condition (so a kernel-side domain filter can enforce it).
    pub(crate) fn is_domain_only(&self) -> bool {
        self.domain.is_some()
            && self.app.is_none()
            && self.direction.is_none()
            && self.protocol.is_none()
            && self.remote.is_none()
            && self.local.is_none()
            && self.remote_port.is_none()
            && self.local_port.is_none()
            && self.pid.is_none()
    }
}

fn ports_match(ranges: Option<&[(u16, u16)]>, port: u16) -> bool {
    ranges.is_none_or(|ranges| ranges.iter().any(|&(low, high)| low <= port && port <= high))
}

fn nets_match(nets: Option<&[IpNet]>, ip: IpAddr) -> bool {
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d, from a dual-stack socket) is the IPv4 host, so
    // it must match IPv4 rules.
    let ip = ip.to_canonical();
    nets.is_none_or(|nets| nets.iter().any(|net| net.contains(&ip)))
}

/// The validated file.
pub(crate) struct Compiled {
    pub(crate) default: Verdict,
    pub(crate) ask_fallback: Verdict,
    pub(crate) driver: DriverSettings,
    pub(crate) rules: Vec<Rule>,
}

/// Validates the raw file. All semantic errors are collected and the one earliest in the file is
/// reported, so the user fixes the file top to bottom whatever order the checks run in.
pub(crate) fn compile(raw: RawFile, source: &str, origin: &str) -> Result<Compiled, RulesError> {
    let mut cx = Checker { source, origin, first: None };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.rule.len());
    for raw_rule in raw.rule {
        let rule_span = raw_rule.span();
        let line = cx.line_of(rule_span.start);
        let rule = cx.rule(raw_rule.into_inner(), line, &mut names);
        rules.extend(rule);
    }
    let driver = raw.driver.map(|driver| cx.driver(driver)).unwrap_or_default();
    match cx.first {
        Some((_, error)) => Err(error),
        None => Ok(Compiled {
            // Fail closed: a file that says nothing about the default blocks what it does not allow.
            default: raw.default.unwrap_or(Verdict::Block),
            ask_fallback: raw.ask_fallback.unwrap_or(Verdict::Block),
            driver,
            rules,
        }),
    }
}

struct Checker<'a> {
    source: &'a str,
    origin: &'a str,
    /// The earliest error so far, keyed by its byte offset.
    first: Option<(usize, RulesError)>,
}

impl Checker<'_> {
    /// Checks the `[driver]` table; invalid values are recorded and left unset.
    fn driver(&mut self, raw: RawDriver) -> DriverSettings {
        let pend_timeout = raw.pend_timeout.and_then(|text| {
            let span = text.span();
            match humantime::parse_duration(text.get_ref()) {
                Ok(timeout) if (MIN_PEND_TIMEOUT..=MAX_PEND_TIMEOUT).contains(&timeout) => Some(timeout),
                Ok(_) => {
                    self.error(span, "`pend_timeout` must be between 10ms and 10m".to_owned());
                    None
                }
                Err(error) => {
                    self.error(span, format!("`pend_timeout`: {error} (write a duration such as \"5s\" or \"750ms\")"));
                    None
                }
            }
        });
        let max_pended = raw.max_pended.and_then(|value| {
            let span = value.span();
            match u32::try_from(*value.get_ref()) {
                Ok(max) if max >= 1 => Some(max),
                _ => {
                    self.error(span, "`max_pended` must be a positive integer".to_owned());
                    None
                }
            }
        });
        DriverSettings { default_verdict: raw.default_verdict, pend_timeout, max_pended }
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        if self.first.as_ref().is_none_or(|(start, _)| span.start < *start) {
            let start = span.start;
            self.first = Some((start, RulesError::at(self.origin, self.source, Some(span), message)));
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.source.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
    }

    /// Compiles one rule; `None` if it had an error (already recorded).
    fn rule(&mut self, raw: RawRule, line: usize, names: &mut HashMap<String, usize>) -> Option<Rule> {
        let name_span = raw.name.span();
        let name = raw.name.into_inner();
        let mut ok = true;
        if name.trim().is_empty() {
            self.error(name_span, "the rule name is empty".to_owned());
            ok = false;
        } else if let Some(first_line) = names.get(&name) {
            // Names identify rules in logs and prompts; two rules with one name would be ambiguous.
            self.error(
                name_span,
                format!("duplicate rule name `{name}` (first used by the rule on line {first_line})"),
            );
            ok = false;
        } else {
            names.insert(name.clone(), line);
        }

        let app = self.app(raw.app);
        let protocol = self.protocol(raw.protocol);
        let remote = self.list("remote", raw.remote, parse_net);
        let local = self.list("local", raw.local, parse_net);
        let remote_port = self.list("remote_port", raw.remote_port, parse_ports);
        let local_port = self.list("local_port", raw.local_port, parse_ports);
        let pid = self.list("pid", raw.pid, parse_pid);
        let domain = self.list("domain", raw.domain, |pattern| {
            pattern.parse::<DomainPattern>().map_err(|e| format!("invalid domain pattern `{pattern}`: {e}"))
        });
        let rule = Rule {
            name,
            line,
            action: raw.action,
            app: app?,
            direction: raw.direction,
            protocol: protocol?,
            remote: remote?,
            local: local?,
            remote_port: remote_port?,
            local_port: local_port?,
            pid: pid?,
            domain: domain?,
        };
        ok.then_some(rule)
    }

    /// Converts every element of a list condition. Outer `None`: an error was recorded; inner
    /// `None`: the key is absent (any value matches).
    fn list<T, U>(
        &mut self,
        key: &str,
        list: Option<Spanned<List<T>>>,
        mut convert: impl FnMut(T) -> Result<U, String>,
    ) -> Option<Option<Box<[U]>>> {
        let Some(list) = list else {
            return Some(None);
        };
        let span = list.span();
        let List(items) = list.into_inner();
        if items.is_empty() {
            // An empty list would match nothing, which is never what was meant (and reads as "any").
            self.error(
                span,
                format!("`{key}` is an empty list, which would never match; remove the key to match any value"),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for Item { span: item_span, value } in items {
            match convert(value) {
                Ok(value) => out.push(value),
                Err(message) => {
                    self.error(item_span.unwrap_or_else(|| span.clone()), message);
                    ok = false;
                }
            }
        }
        ok.then(|| Some(out.into_boxed_slice()))
    }

    fn app(&mut self, app: Option<Spanned<List<String>>>) -> Option<Option<GlobSet>> {
        let span = app.as_ref().map(Spanned::span);
        let Some(globs) = self.list("app", app, parse_glob)? else {
            return Some(None);
        };
        let mut set = GlobSetBuilder::new();
        for glob in globs {
            set.add(glob);
        }
        match set.build() {
            Ok(set) => Some(Some(set)),
            Err(e) => {
                // Each glob compiled on its own; only a combined regex over a size limit gets here.
                self.error(span.unwrap_or(0..0), format!("cannot compile the `app` globs: {}", e.kind()));
                None
            }
        }
    }

    fn protocol(&mut self, protocol: Option<Spanned<List<Scalar>>>) -> Option<Option<ProtocolSet>> {
        let Some(numbers) = self.list("protocol", protocol, parse_protocol)? else {
            return Some(None);
        };
        let mut set = ProtocolSet::default();
        for protocol in numbers.iter().flatten() {
            set.insert(*protocol);
        }
        Some(Some(set))
    }
}

/// An application glob. Backslashes are path separators, not escapes (these are Windows paths),
/// and the glob is folded exactly like the query's path (see [`fold`]): that makes `\` and `/`
/// the same separator on every platform and matching case-insensitive beyond ASCII, which
/// globset's own case-insensitive mode is not. `*` stays within one path component and `**`
/// crosses them, as in `.gitignore`; a glob with no separator at all matches the file name in
/// any folder.
fn parse_glob(pattern: String) -> Result<globset::Glob, String> {
    if pattern.is_empty() {
        return Err("the application glob is empty".to_owned());
    }
    let mut folded: String = pattern.chars().flat_map(fold).collect();
    if !folded.contains('/') {
        folded.insert_str(0, "**/");
    }
    GlobBuilder::new(&folded)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map_err(|e| format!("invalid application glob `{pattern}`: {}", e.kind()))
}

/// How application paths and globs are compared: `\` is `/` (globset's separator on every
/// platform) and case is folded with Unicode's lowercase mapping. Applied char by char to both
/// sides, so they always agree (even where whole-string lowercasing is context-dependent).
pub(crate) fn fold(c: char) -> std::char::ToLowercase {
    if c == '\\' { '/' } else { c }.to_lowercase()
}

/// Writes the folded `path` into `buf` and returns its length, or `None` if it does not fit.
pub(crate) fn fold_into(path: &str, buf: &mut [u8]) -> Option<usize> {
    let mut len = 0;
    for c in path.chars().flat_map(fold) {
        let dst = buf.get_mut(len..).filter(|dst| dst.len() >= c.len_utf8())?;
        len += c.encode_utf8(dst).len();
    }
    Some(len)
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
fn parse_net(text: String) -> Result<IpNet, String> {
    let trimmed = text.trim();
    if let Ok(net) = trimmed.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(addr) = trimmed.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "invalid address or CIDR `{text}`: expected a network such as `10.0.0.0/8` or `::1/128`, or an address"
    ))
}

/// `443`, `"443"` or `"8000-8100"` (inclusive).
fn parse_ports(value: Scalar) -> Result<(u16, u16), String> {
    match value {
        Scalar::Int(n) => port_number(n).map(|p| (p, p)),
        Scalar::Str(text) => {
            let (low, high) = match text.split_once('-') {
                Some((low, high)) => (port_text(low, &text)?, port_text(high, &text)?),
                None => {
                    let port = port_text(&text, &text)?;
                    (port, port)
                }
            };
            if low > high {
                return Err(format!("port range `{text}` is reversed: {low} is greater than {high}"));
            }
            Ok((low, high))
        }
    }
}

fn port_text(part: &str, whole: &str) -> Result<u16, String> {
    let part = part.trim();
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port `{whole}`: expected a number 0-65535 or a range such as `8000-8100`"));
    }
    // All digits: a parse failure can only be an overflow, i.e. out of range.
    part.parse::<u16>().map_err(|_| format!("port {part} is out of range 0-65535"))
}

fn port_number(n: i64) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("port {n} is out of range 0-65535"))
}

fn parse_pid(value: Scalar) -> Result<u64, String> {
    match value {
        Scalar::Int(pid) => u64::try_from(pid).map_err(|_| format!("process id {pid} is negative")),
        Scalar::Str(text) => Err(format!("invalid process id `{text}`: expected an integer")),
    }
}

/// `tcp`, `udp`, `icmp` or a protocol number 0-255. `icmp` covers ICMP (1) and ICMPv6 (58): a rule
/// about "ping" should not depend on the address family.
fn parse_protocol(value: Scalar) -> Result<Vec<u8>, String> {
    match value {
        Scalar::Int(n) => {
            u8::try_from(n).map(|p| vec![p]).map_err(|_| format!("protocol number {n} is out of range 0-255"))
        }
        Scalar::Str(name) => match name.as_str() {
            "tcp" => Ok(vec![6]),
            "udp" => Ok(vec![17]),
            "icmp" => Ok(vec![1, 58]),
            _ => Err(format!("unknown protocol `{name}`: expected `tcp`, `udp`, `icmp` or a number 0-255")),
        },
    }
}
