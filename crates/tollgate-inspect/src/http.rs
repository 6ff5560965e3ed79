//! The HTTP/1.x request head parser: the names a request carries in its request-target
//! (absolute form, authority form) and in its `Host` header fields.
//!
//! A request head (RFC 9112 §2.1) is a request line, header field lines and an empty line:
//!
//! ```text
//! method SP request-target SP HTTP-version CRLF
//! *( field-name ":" OWS field-value OWS CRLF )
//! CRLF
//! ```
//!
//! The parser is lenient where a server might be: a block rule must not be dodged by a request
//! that a real server accepts. It accepts bare LF line ends (RFC 9112 §2.2), reads the `Host` field
//! even with whitespace before its colon (which RFC 9112 §5.1 says to reject, but some servers
//! accept), and keeps both names when the request target and `Host` disagree, so that the driver can
//! check each against its blocklist. Such oddities are noted in [`Identity::malformed`] (the first
//! one found) and reading goes on. Only a request line that cannot be read as one stops the parser.
//!
//! A name is reported as soon as it has ended (the authority of an absolute-form target at its
//! `/`, `?`, `#` or SP; a `Host` value at its line end), so that the names reported for a prefix
//! of the bytes are always a prefix of the names reported for all of them.

use crate::Inspection;
use crate::identity::{AppProtocol, HttpFacts, Identity, Malformed, NameSource};
use crate::name::HostName;

/// The longest method token read (`VERSION-CONTROL`, the longest registered method that is not
/// obscure, has 15 bytes; see [`HttpFacts::method`]).
pub const MAX_METHOD_LEN: usize = 15;

/// What the first bytes of a stream look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// A method token and SP: an HTTP request line (RFC 9112 §3).
    Http,
    /// Too few bytes to tell.
    NeedMore,
    /// Not an HTTP/1.x request.
    NotHttp,
}

/// Whether `data` starts like an HTTP request: 1 to [`MAX_METHOD_LEN`] bytes of uppercase letters,
/// `-` or `_` (starting with a letter), then SP.
///
/// RFC 9110 §9.1: "The method token is case-sensitive"; every registered method is uppercase
/// letters and `-`, so requiring that keeps other text protocols (`SSH-2.0-…`, a lowercase
/// greeting) out while admitting every real method.
#[must_use]
pub fn sniff(data: &[u8]) -> Sniff {
    for (index, byte) in data.iter().enumerate() {
        if *byte == b' ' {
            return if index > 0 { Sniff::Http } else { Sniff::NotHttp };
        }
        let allowed = byte.is_ascii_uppercase() || (index > 0 && (*byte == b'-' || *byte == b'_'));
        if !allowed || index >= MAX_METHOD_LEN {
            return Sniff::NotHttp;
        }
    }
    Sniff::NeedMore
}

/// Reads an HTTP/1.x request head from the first bytes of a stream (`data` starts with what
/// [`sniff`] calls [`Sniff::Http`]).
///
/// [`Progress::Done`](crate::Progress::Done) once the empty line that ends the head has been read,
/// or the request line cannot be read; otherwise
/// [`Progress::NeedMore`](crate::Progress::NeedMore) for one more byte (a line ends at any byte).
/// The HTTP/2 connection preface (`PRI * HTTP/2.0`, RFC 9113 §3.4) is [`AppProtocol::Other`].
#[must_use]
pub fn inspect_http(data: &[u8]) -> Inspection {
    let mut identity = Identity { protocol: AppProtocol::Http, ..Identity::default() };
    match read_request_head(data, &mut identity) {
        Ok(Head::Complete) => Inspection::done(identity),
        Ok(Head::Http2Preface) => Inspection::done(Identity { protocol: AppProtocol::Other, ..Identity::default() }),
        Err(Stop::NeedMore) => Inspection::need_more(data.len().saturating_add(1), data.len(), identity),
        Err(Stop::Malformed(problem)) => {
            note(&mut identity, problem);
            Inspection::done(identity)
        }
    }
}

/// How a head that was read to its end turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    /// Request line, fields, empty line.
    Complete,
    /// `PRI * HTTP/2.0`: HTTP/2 with prior knowledge, not HTTP/1.x.
    Http2Preface,
}

/// Why reading stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The bytes end before the head does.
    NeedMore,
    /// The request line cannot be read.
    Malformed(Malformed),
}

/// Records `problem` unless an earlier one is recorded.
fn note(identity: &mut Identity, problem: Malformed) {
    if identity.malformed.is_none() {
        identity.malformed = Some(problem);
    }
}

const SP: u8 = b' ';
const HTAB: u8 = b'\t';
const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// Whether `byte` is optional whitespace (RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`).
const fn is_ows(byte: u8) -> bool {
    byte == SP || byte == HTAB
}

/// The next line of `data` from `start`: its bytes without the line end, and where the line after
/// it starts; `None` while the line has not ended. RFC 9112 §2.2: "a recipient MAY recognize a
/// single LF as a line terminator and ignore any preceding CR".
fn line_at(data: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(start..)?;
    let lf = find_lf(rest)?;
    let line = rest.get(..lf)?;
    let line = line.strip_suffix(&[CR]).unwrap_or(line);
    Some((line, start.saturating_add(lf).saturating_add(1)))
}

/// The index of the first LF in `bytes`, looked for eight bytes at a time (a request head is mostly
/// field values that only need their line end found).
///
/// For each 8-byte word `w`, `x = w ^ 0x0a0a…0a` has a zero byte exactly where `w` has a LF, and
/// `(x - 0x0101…01) & !x & 0x8080…80` is non-zero exactly when `x` has a zero byte, its lowest set
/// bit in the first one (bytes above a zero byte may be set too, by the borrow, but never below).
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([LF; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut base = 0_usize;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else { break };
        let x = u64::from_le_bytes(word) ^ LFS;
        let zero_bytes = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero_bytes != 0 {
            // Little-endian: the first byte is the lowest; `trailing_zeros` / 8 is its index (< 8).
            return Some(base.saturating_add(usize::try_from(zero_bytes.trailing_zeros() / 8).unwrap_or(0)));
        }
        base = base.saturating_add(8);
    }
    let tail = words.remainder().iter().position(|byte| *byte == LF)?;
    Some(base.saturating_add(tail))
}

/// Whether `byte` may be part of a token such as a field name (RFC 9110 §5.6.2: `tchar`).
fn is_tchar(byte: u8) -> bool {
    TCHAR.get(usize::from(byte)).copied().unwrap_or(false)
}

/// [`is_tchar`] as a table (a lookup per byte of every field name is cheaper than the comparisons).
// Built at compile time: an index out of bounds here fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0_u8;
    loop {
        table[byte as usize] = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};

/// Reads the request line and the header field lines.
fn read_request_head(data: &[u8], identity: &mut Identity) -> Result<Head, Stop> {
    let fields_start = match read_request_line(data, identity)? {
        RequestLine::Http1 { next_line } => next_line,
        RequestLine::Http2Preface => return Ok(Head::Http2Preface),
    };
    let mut fields = FieldState::default();
    let mut start = fields_start;
    loop {
        let (line, next) = line_at(data, start).ok_or(Stop::NeedMore)?;
        if line.is_empty() {
            return Ok(Head::Complete);
        }
        read_field_line(line, &mut fields, identity);
        start = next;
    }
}

/// How the request line ended.
enum RequestLine {
    /// An HTTP/1.x request line; the field lines start at `next_line`.
    Http1 { next_line: usize },
    /// The HTTP/2 connection preface's first line.
    Http2Preface,
}

/// Reads `method SP request-target SP HTTP-version` (RFC 9112 §3), recording the method, the
/// target's authority (as soon as it has ended, before the line has) and the version.
fn read_request_line(data: &[u8], identity: &mut Identity) -> Result<RequestLine, Stop> {
    // The method: `sniff` found SP within MAX_METHOD_LEN + 1 bytes.
    let method_len = data.iter().position(|byte| *byte == SP).ok_or(Stop::Malformed(Malformed::HttpRequestLine))?;
    let method = data.get(..method_len).unwrap_or_default();
    identity.http = http_facts(method);

    // RFC 9112 §3: "recipients MAY instead parse on whitespace-delimited word boundaries": some
    // servers accept several SPs, so accept them and note it.
    let target_start = skip_spaces(data, method_len, identity).ok_or(Stop::NeedMore)?;
    let rest = data.get(target_start..).unwrap_or_default();
    let target_len = rest.iter().position(|byte| *byte == SP || *byte == CR || *byte == LF);
    let target = rest.get(..target_len.unwrap_or(rest.len())).unwrap_or_default();
    let complete = target_len.is_some();
    match request_target(method, target, complete) {
        Target::Authority(host) => record_authority(host, identity),
        Target::Incomplete => return Err(Stop::NeedMore),
        Target::Invalid => note(identity, Malformed::HttpRequestLine),
        Target::NoAuthority => {}
    }
    let Some(target_len) = target_len else { return Err(Stop::NeedMore) };
    let after_target = target_start.saturating_add(target_len);
    if data.get(after_target) != Some(&SP) {
        // The line ends after the target: an HTTP/0.9 request, which has no header section.
        return Err(Stop::Malformed(Malformed::HttpRequestLine));
    }

    let version_start = skip_spaces(data, after_target, identity).ok_or(Stop::NeedMore)?;
    let version_part = data.get(version_start..).unwrap_or_default();
    let h2_preface = method == b"PRI" && target == b"*";
    let (minor, next_line) = read_version(version_part, h2_preface)?;
    match minor {
        Version::Http1(minor) => {
            identity.http.minor_version = minor;
            if version_part.get(VERSION_LEN).is_some_and(|byte| is_ows(*byte)) {
                note(identity, Malformed::HttpRequestLine);
            }
            Ok(RequestLine::Http1 { next_line: version_start.saturating_add(next_line) })
        }
        Version::Http2 => Ok(RequestLine::Http2Preface),
    }
}

/// The method as [`HttpFacts`].
fn http_facts(method: &[u8]) -> HttpFacts {
    let mut facts = HttpFacts::default();
    for (slot, byte) in facts.method.iter_mut().zip(method) {
        *slot = *byte;
    }
    facts.method_len = u8::try_from(method.len().min(MAX_METHOD_LEN)).unwrap_or(0);
    facts
}

/// The index of the first byte after the SP at `data[at]` and any SPs that follow it (more than
/// one is noted); `None` while the bytes end in the spaces.
fn skip_spaces(data: &[u8], at: usize, identity: &mut Identity) -> Option<usize> {
    let rest = data.get(at..)?;
    let spaces = rest.iter().position(|byte| *byte != SP)?;
    if spaces > 1 {
        note(identity, Malformed::HttpRequestLine);
    }
    Some(at.saturating_add(spaces))
}

/// The length of `HTTP/x.y`.
const VERSION_LEN: usize = 8;

/// A version that was read.
enum Version {
    /// `HTTP/1.minor`.
    Http1(u8),
    /// `HTTP/2.0` after `PRI *`.
    Http2,
}

/// Reads `HTTP-version = "HTTP" "/" DIGIT "." DIGIT` (RFC 9112 §2.3) with major version 1 (or the
/// HTTP/2 preface's `HTTP/2.0`), optional trailing whitespace, and the line end; returns the
/// version and the index after the line end. Fails as soon as the bytes there cannot become that.
fn read_version(part: &[u8], h2_preface: bool) -> Result<(Version, usize), Stop> {
    // Compare what is there with the pattern first, so that a stream of garbage is rejected at
    // once rather than read until a LF that may never come.
    for (index, byte) in part.iter().take(VERSION_LEN).enumerate() {
        let fits = match index {
            0..=4 => Some(byte) == b"HTTP/".get(index),
            5 => *byte == b'1' || (h2_preface && *byte == b'2'),
            6 => *byte == b'.',
            _ => byte.is_ascii_digit(),
        };
        if !fits {
            return Err(Stop::Malformed(Malformed::HttpRequestLine));
        }
    }
    let (Some(major), Some(minor)) = (part.get(5), part.get(7)) else { return Err(Stop::NeedMore) };
    // After the version: OWS (lenient, noted by the caller), then CR LF or LF.
    let after = part.get(VERSION_LEN..).unwrap_or_default();
    let spaces = after.iter().position(|byte| !is_ows(*byte)).ok_or(Stop::NeedMore)?;
    let line_end = after.get(spaces..).unwrap_or_default();
    let end_len = match line_end {
        [LF, ..] => 1,
        [CR, LF, ..] => 2,
        [CR] => return Err(Stop::NeedMore),
        _ => return Err(Stop::Malformed(Malformed::HttpRequestLine)),
    };
    let next_line = VERSION_LEN.saturating_add(spaces).saturating_add(end_len);
    match (major, minor) {
        (b'1', _) => Ok((Version::Http1(minor.saturating_sub(b'0')), next_line)),
        (b'2', b'0') => Ok((Version::Http2, next_line)),
        _ => Err(Stop::Malformed(Malformed::HttpRequestLine)),
    }
}

/// What a request-target says about the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target<'a> {
    /// The host of an absolute-form or authority-form target (userinfo and port removed).
    Authority(&'a [u8]),
    /// Origin form (`/path`), asterisk form (`*`), or an absolute URI without an authority.
    NoAuthority,
    /// The bytes end before the form or the authority has ended.
    Incomplete,
    /// None of the four forms.
    Invalid,
}

/// Reads the request-target's form (RFC 9112 §3.2) and, for the absolute and authority forms, the
/// host. `target` is the target's bytes so far; `complete` says whether it has ended.
fn request_target<'a>(method: &[u8], target: &'a [u8], complete: bool) -> Target<'a> {
    // RFC 9112 §3.2.3: "authority-form = uri-host ":" port", used only for CONNECT.
    if method == b"CONNECT" {
        return if complete { Target::Authority(host_of(target)) } else { Target::Incomplete };
    }
    match target.first() {
        // §3.2.1 origin-form = absolute-path [ "?" query ].
        Some(b'/') => return Target::NoAuthority,
        // §3.2.4 asterisk-form = "*", for a server-wide OPTIONS.
        Some(b'*') if complete => {
            return if target.len() == 1 { Target::NoAuthority } else { Target::Invalid };
        }
        None if complete => return Target::Invalid,
        None | Some(b'*') => return Target::Incomplete,
        Some(_) => {}
    }
    // §3.2.2 absolute-form = absolute-URI (RFC 3986 §4.3): scheme ":" hier-part, where the scheme
    // is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) and an authority follows "//".
    let Some(colon) = target.iter().position(|byte| !(byte.is_ascii_alphanumeric() || b"+-.".contains(byte))) else {
        return if complete { Target::Invalid } else { Target::Incomplete };
    };
    let scheme_ok = colon > 0 && target.first().is_some_and(u8::is_ascii_alphabetic);
    if !scheme_ok || target.get(colon) != Some(&b':') {
        return Target::Invalid;
    }
    let after_scheme = target.get(colon.saturating_add(1)..).unwrap_or_default();
    match after_scheme {
        [b'/', b'/', ..] => {}
        [] | [b'/'] if !complete => return Target::Incomplete,
        // An absolute URI without an authority (`urn:…`, `mailto:…`) names no host.
        _ => return Target::NoAuthority,
    }
    // RFC 3986 §3.2: the authority "is terminated by the next slash ("/"), question mark ("?"),
    // or number sign ("#") character, or by the end of the URI".
    let authority_and_rest = after_scheme.get(2..).unwrap_or_default();
    let end = authority_and_rest.iter().position(|byte| matches!(byte, b'/' | b'?' | b'#'));
    let Some(authority) = authority_and_rest.get(..end.unwrap_or(authority_and_rest.len())) else {
        return Target::Invalid;
    };
    if end.is_none() && !complete {
        return Target::Incomplete;
    }
    // RFC 3986 §3.2.1: userinfo "@" before the host. The last `@` is the separator (browsers and
    // most servers take it so), so `http://good.example@evil.example/` names evil.example.
    let host_and_port = match authority.iter().rposition(|byte| *byte == b'@') {
        Some(at) => authority.get(at.saturating_add(1)..).unwrap_or_default(),
        None => authority,
    };
    Target::Authority(host_of(host_and_port))
}

/// The host of `host [":" port]` (RFC 3986 §3.2.2, §3.2.3): an IPv6 literal is kept with its
/// brackets (`[::1]`), anything else is cut at the first `:`.
fn host_of(host_and_port: &[u8]) -> &[u8] {
    if host_and_port.first() == Some(&b'[') {
        return match host_and_port.iter().position(|byte| *byte == b']') {
            Some(close) => host_and_port.get(..=close).unwrap_or(host_and_port),
            None => host_and_port,
        };
    }
    match host_and_port.iter().position(|byte| *byte == b':') {
        Some(colon) => host_and_port.get(..colon).unwrap_or(host_and_port),
        None => host_and_port,
    }
}

/// Records the request-target's host.
fn record_authority(host: &[u8], identity: &mut Identity) {
    identity.names.push(NameSource::HttpAuthority, HostName::from_wire(host));
}

/// What the field lines have shown so far.
#[derive(Clone, Copy, Debug, Default)]
struct FieldState {
    /// How many `Host` fields there were.
    hosts: usize,
}

/// Reads one field line (RFC 9112 §5): `field-name ":" OWS field-value OWS`. Only `Host` is
/// interpreted; every line is checked for the problems a server might treat in different ways.
fn read_field_line(line: &[u8], fields: &mut FieldState, identity: &mut Identity) {
    // RFC 9112 §5.2: obsolete line folding (a line starting with SP or HTAB continues the previous
    // field) "MUST either reject the message … or replace each received obs-fold with one or more SP
    // octets". RFC 9112 §2.2: the same whitespace-preceded line right after the request line is to
    // be rejected or ignored. Either way the line names nothing here.
    if line.first().is_some_and(|byte| is_ows(*byte)) {
        note(identity, Malformed::HttpHeader);
        return;
    }
    // The field name is a token (RFC 9110 §5.1), so it ends at the first byte that is not a tchar:
    // only the name is scanned, not the value.
    let name_len = line.iter().position(|byte| !is_tchar(*byte)).unwrap_or(line.len());
    let name = line.get(..name_len).unwrap_or_default();
    let after_name = line.get(name_len..).unwrap_or_default();
    // RFC 9112 §5.1: "No whitespace is allowed between the field name and colon … A server MUST
    // reject" such a request, but some do not, so read the field anyway.
    let whitespace = after_name.iter().position(|byte| !is_ows(*byte)).unwrap_or(after_name.len());
    if after_name.get(whitespace) != Some(&b':') || name.is_empty() {
        // No colon after the name: not a field line.
        note(identity, Malformed::HttpHeader);
        return;
    }
    if whitespace > 0 {
        note(identity, Malformed::HttpHeader);
    }
    if !name.eq_ignore_ascii_case(b"host") {
        return;
    }
    let value = after_name.get(whitespace.saturating_add(1)..).unwrap_or_default();
    let value = value.trim_ascii();
    read_host(value, fields, identity);
}

/// A `Host` field (RFC 9110 §7.2): `Host = uri-host [ ":" port ]`. RFC 9112 §3.2: "A server MUST
/// respond with a 400 … to any HTTP/1.1 request message that lacks a Host header field and to any
/// request message that contains more than one Host header field line or a Host header field with
/// an invalid field value"; and with an absolute-form target the target's authority wins
/// (§3.2.2). Servers differ in how they break such ties, so every name goes to the blocklist: a
/// second `Host`, or one that differs from the target's authority, is kept (up to
/// [`Names::CAPACITY`](crate::identity::Names::CAPACITY) names) and noted as
/// [`Malformed::HttpConflictingHost`]. A name already kept is not added twice, so that a repeat
/// cannot take the place of a third, different name.
fn read_host(value: &[u8], fields: &mut FieldState, identity: &mut Identity) {
    fields.hosts = fields.hosts.saturating_add(1);
    let host = HostName::from_wire(host_of(value));
    let authority = identity.names.iter().find(|(source, _)| *source == NameSource::HttpAuthority);
    let differs_from_authority = authority.is_some_and(|(_, name)| *name != host);
    if fields.hosts > 1 || differs_from_authority {
        note(identity, Malformed::HttpConflictingHost);
    }
    if !identity.names.iter().any(|(_, name)| *name == host) {
        identity.names.push(NameSource::HttpHost, host);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::Progress;

    fn names(identity: &Identity) -> [Option<(NameSource, &[u8])>; 2] {
        let mut out = [None, None];
        for (slot, (source, name)) in out.iter_mut().zip(identity.names.iter()) {
            *slot = Some((*source, name.as_bytes()));
        }
        out
    }

    #[test]
    fn sniff_tells_methods_from_other_text() {
        assert_eq!(sniff(b"GET "), Sniff::Http);
        assert_eq!(sniff(b"VERSION-CONTROL /"), Sniff::Http);
        assert_eq!(sniff(b"GE"), Sniff::NeedMore);
        assert_eq!(sniff(b"Get "), Sniff::NotHttp);
        assert_eq!(sniff(b" GET"), Sniff::NotHttp);
        assert_eq!(sniff(b"-GET "), Sniff::NotHttp);
        assert_eq!(sniff(b"ABCDEFGHIJKLMNOP "), Sniff::NotHttp);
    }

    #[test]
    fn origin_form_with_host() {
        let inspection = inspect_http(b"GET /index.html HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\n");
        assert_eq!(inspection.progress, Progress::Done);
        let identity = inspection.identity;
        assert_eq!(names(&identity), [Some((NameSource::HttpHost, &b"example.com"[..])), None]);
        assert_eq!(&identity.http.method[..3], b"GET");
        assert_eq!(identity.http.method_len, 3);
        assert_eq!(identity.http.minor_version, 1);
        assert_eq!(identity.malformed, None);
    }

    #[test]
    fn absolute_form_strips_userinfo_and_port() {
        let identity =
            inspect_http(b"GET http://user:pw@Good.example:80/x HTTP/1.1\r\nHost: good.example\r\n\r\n").identity;
        assert_eq!(names(&identity), [Some((NameSource::HttpAuthority, &b"good.example"[..])), None]);
        assert_eq!(identity.malformed, None);
    }

    #[test]
    fn authority_is_reported_before_the_target_ends() {
        let inspection = inspect_http(b"GET http://evil.example/aaaaaaaa");
        assert!(matches!(inspection.progress, Progress::NeedMore { .. }));
        assert_eq!(names(&inspection.identity)[0], Some((NameSource::HttpAuthority, &b"evil.example"[..])));
        assert!(inspect_http(b"GET http://evil.exam").identity.names.is_empty());
    }

    #[test]
    fn target_forms() {
        assert_eq!(request_target(b"GET", b"/a", true), Target::NoAuthority);
        assert_eq!(request_target(b"OPTIONS", b"*", true), Target::NoAuthority);
        assert_eq!(request_target(b"OPTIONS", b"*x", true), Target::Invalid);
        assert_eq!(request_target(b"GET", b"urn:x", true), Target::NoAuthority);
        assert_eq!(request_target(b"GET", b"http:/", false), Target::Incomplete);
        assert_eq!(request_target(b"GET", b"http", false), Target::Incomplete);
        assert_eq!(request_target(b"GET", b"example.com", true), Target::Invalid);
        assert_eq!(request_target(b"GET", b"http://[::1]:8080/", true), Target::Authority(b"[::1]"));
        assert_eq!(request_target(b"GET", b"http://a@b@c.example?q", true), Target::Authority(b"c.example"));
        assert_eq!(request_target(b"CONNECT", b"c.example:443", true), Target::Authority(b"c.example"));
        assert_eq!(request_target(b"CONNECT", b"c.example:4", false), Target::Incomplete);
    }

    #[test]
    fn h2_prior_knowledge_is_other() {
        let inspection = inspect_http(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(inspection.progress, Progress::Done);
        assert_eq!(inspection.identity.protocol, AppProtocol::Other);
        assert_eq!(inspect_http(b"GET / HTTP/2.0\r\n").identity.malformed, Some(Malformed::HttpRequestLine));
    }

    #[test]
    fn find_lf_finds_the_first_lf_in_every_position() {
        let mut bytes = [0_u8; 40];
        for (index, byte) in bytes.iter_mut().enumerate() {
            // Neighbours of LF in value, and bytes with the high bit set, to provoke false hits.
            *byte = [0x0b, 0x09, 0x8a, 0x00, 0x0a ^ 0x80, 0xff, 0x01][index % 7];
        }
        assert_eq!(find_lf(&bytes), None);
        for first in 0..bytes.len() {
            let mut with_lf = bytes;
            with_lf[first] = LF;
            if let Some(later) = with_lf.get_mut(first + 3) {
                *later = LF;
            }
            assert_eq!(find_lf(&with_lf), Some(first), "{first}");
            assert_eq!(find_lf(&with_lf[..first]), None);
        }
    }

    proptest::proptest! {
        // No failure file (Miri isolates the file system), and few cases under Miri (it is slow).
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            cases: if cfg!(miri) { 8 } else { 256 },
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn find_lf_is_position(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            proptest::prop_assert_eq!(find_lf(&bytes), bytes.iter().position(|byte| *byte == LF));
        }
    }

    #[test]
    fn field_names_are_tokens() {
        let identity = inspect_http(b"GET / HTTP/1.1\r\nBad Name: x\r\nHost: ok.example\r\n\r\n").identity;
        assert_eq!(identity.malformed, Some(Malformed::HttpHeader));
        assert_eq!(names(&identity)[0], Some((NameSource::HttpHost, &b"ok.example"[..])));
        let identity = inspect_http(b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n").identity;
        assert_eq!(identity.malformed, Some(Malformed::HttpHeader));
    }

    #[test]
    fn garbage_versions_are_rejected_at_once() {
        for data in [&b"GET / HTTX"[..], b"GET / HTTP/3", b"GET / HTTP/1.1x", b"GET /\r\n", b"GET / HTTP/1.1\rX"] {
            let inspection = inspect_http(data);
            assert_eq!(inspection.progress, Progress::Done, "{:?}", data.escape_ascii());
            assert_eq!(inspection.identity.malformed, Some(Malformed::HttpRequestLine));
        }
    }
}
