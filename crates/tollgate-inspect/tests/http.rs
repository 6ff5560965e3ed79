//! The HTTP/1.x request head parser: every request-target form, `Host` in its spellings, the
//! conflicts a block rule must see through, every split point, and the driver's 4096-byte bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use common::{check_every_split, names};
use tollgate_inspect::identity::{AppProtocol, Identity, Malformed, NameSource};
use tollgate_inspect::{Progress, inspect};

use NameSource::{HttpAuthority, HttpHost};

fn named(pairs: &[(NameSource, &str)]) -> Vec<(NameSource, Vec<u8>)> {
    pairs.iter().map(|(source, name)| (*source, name.as_bytes().to_vec())).collect()
}

fn method(identity: &Identity) -> &[u8] {
    &identity.http.method[..usize::from(identity.http.method_len)]
}

/// A whole head, checked at every split point.
fn head(text: &str) -> Identity {
    let identity = check_every_split(text.as_bytes());
    assert_eq!(identity.protocol, AppProtocol::Http);
    identity
}

#[test]
fn get_origin_form() {
    let identity = head("GET /search?q=1 HTTP/1.1\r\nHost: www.Example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "www.example.com")]));
    assert_eq!(method(&identity), b"GET");
    assert_eq!(identity.http.minor_version, 1);
    assert_eq!(identity.malformed, None);
}

#[test]
fn post_head_ends_at_the_empty_line_and_the_body_is_not_read() {
    let request = b"POST /upload HTTP/1.1\r\nHost: up.example\r\nContent-Length: 11\r\n\r\nhello world";
    let inspection = inspect(request);
    assert_eq!(inspection.progress, Progress::Done);
    assert_eq!(names(&inspection.identity), named(&[(HttpHost, "up.example")]));
    assert_eq!(method(&inspection.identity), b"POST");
    let head_end = request.len() - b"hello world".len();
    assert_eq!(inspect(&request[..head_end]).progress, Progress::Done);
    assert_eq!(inspect(&request[..head_end - 1]).progress, Progress::NeedMore { at_least: head_end });
}

#[test]
fn connect_authority_form() {
    let identity = head("CONNECT Tunnel.Example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "tunnel.example")]));
    assert_eq!(method(&identity), b"CONNECT");
    assert_eq!(identity.malformed, None);
}

#[test]
fn absolute_form_strips_userinfo_and_port() {
    let identity = head("GET http://user:pw@Host.Example:80/path HTTP/1.1\r\nHost: host.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "host.example")]));
    assert_eq!(identity.malformed, None);
    // The last `@` ends the userinfo.
    let identity = head("GET https://good.example@evil.example/ HTTP/1.1\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "evil.example")]));
    // An authority ended by `?` or `#`, an IPv6 literal with a port.
    let identity = head("GET http://q.example?x HTTP/1.1\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "q.example")]));
    let identity = head("GET http://[2001:DB8::1]:8080/ HTTP/1.1\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "[2001:db8::1]")]));
}

#[test]
fn absolute_form_that_disagrees_with_host_keeps_both() {
    let identity = head("GET http://allowed.example/ HTTP/1.1\r\nHost: blocked.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "allowed.example"), (HttpHost, "blocked.example")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpConflictingHost));
}

#[test]
fn host_spellings() {
    let cases = [
        ("HOST: UPPER.Example.COM", "upper.example.com"),
        ("host: trailing.example.", "trailing.example"),
        ("Host: port.example:8443", "port.example"),
        ("Host:\t spaced.example \t", "spaced.example"),
        ("Host: [2001:db8::1]:443", "[2001:db8::1]"),
        ("Host: [::1]", "[::1]"),
        ("Host: 192.0.2.7:80", "192.0.2.7"),
        ("Host: xn--bcher-kva.example", "xn--bcher-kva.example"),
    ];
    for (line, expected) in cases {
        let identity = head(&format!("GET / HTTP/1.1\r\n{line}\r\nAccept: */*\r\n\r\n"));
        assert_eq!(names(&identity), named(&[(HttpHost, expected)]), "{line}");
        assert_eq!(identity.malformed, None, "{line}");
    }
}

#[test]
fn http10_without_host() {
    let identity = head("GET / HTTP/1.0\r\nUser-Agent: old\r\n\r\n");
    assert!(identity.names.is_empty());
    assert_eq!(identity.http.minor_version, 0);
    assert_eq!(identity.malformed, None);
}

#[test]
fn empty_host_names_nothing() {
    let identity = head("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n");
    assert!(identity.names.is_empty());
    assert_eq!(identity.malformed, None);
}

#[test]
fn duplicate_and_conflicting_hosts() {
    let same = head("GET / HTTP/1.1\r\nHost: a.example\r\nHost: A.example\r\n\r\n");
    assert_eq!(names(&same), named(&[(HttpHost, "a.example")]));
    assert_eq!(same.malformed, Some(Malformed::HttpConflictingHost));

    let different = head("GET / HTTP/1.1\r\nHost: a.example\r\nX: y\r\nhost: b.example\r\n\r\n");
    assert_eq!(names(&different), named(&[(HttpHost, "a.example"), (HttpHost, "b.example")]));
    assert_eq!(different.malformed, Some(Malformed::HttpConflictingHost));

    // A repeat of a kept name does not use up the second slot.
    let repeat =
        head("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nHost: c.example\r\n\r\n");
    assert_eq!(names(&repeat), named(&[(HttpAuthority, "a.example"), (HttpHost, "b.example")]));
    assert_eq!(repeat.malformed, Some(Malformed::HttpConflictingHost));
}

#[test]
fn whitespace_before_the_colon_still_names_the_host() {
    let identity = head("GET / HTTP/1.1\r\nHost : sneaky.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "sneaky.example")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpHeader));
    let identity = head("GET / HTTP/1.1\r\nHost\t: tab.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "tab.example")]));
}

#[test]
fn obsolete_line_folding_is_noted_and_names_nothing() {
    let identity = head("GET / HTTP/1.1\r\nHost: folded.example\r\n other.example\r\nX-Long: a\r\n\tb\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "folded.example")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpHeader));
    // A whitespace-preceded line right after the request line (RFC 9112 §2.2).
    let identity = head("GET / HTTP/1.1\r\n Host: hidden.example\r\nHost: real.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "real.example")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpHeader));
}

#[test]
fn a_line_without_colon_is_noted() {
    let identity = head("GET / HTTP/1.1\r\nNoColonHere\r\nHost: after.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "after.example")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpHeader));
}

#[test]
fn bare_lf_line_ends() {
    let identity = head("GET /x HTTP/1.1\nHost: lf.example\nAccept: */*\n\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "lf.example")]));
    assert_eq!(identity.malformed, None);
    let mixed = head("GET /x HTTP/1.1\r\nHost: mixed.example\n\r\n");
    assert_eq!(names(&mixed), named(&[(HttpHost, "mixed.example")]));
}

#[test]
fn several_spaces_in_the_request_line_are_read_and_noted() {
    let identity = head("GET  http://spaced.example/   HTTP/1.1 \r\nHost: spaced.example\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpAuthority, "spaced.example")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpRequestLine));
}

#[test]
fn request_lines_that_cannot_be_read() {
    for request in [
        &b"GET /\r\nHost: a.example\r\n\r\n"[..],
        b"GET / HTTP/1.1x\r\n",
        b"GET / HTTP/3.0\r\n",
        b"GET / http/1.1\r\n",
        b"EHLO mail.example\r\n",
    ] {
        let inspection = inspect(request);
        assert_eq!(inspection.progress, Progress::Done, "{:?}", request.escape_ascii());
        assert_eq!(inspection.identity.protocol, AppProtocol::Http);
        assert_eq!(inspection.identity.malformed, Some(Malformed::HttpRequestLine));
        assert!(inspection.identity.names.is_empty());
    }
    // A target in none of the four forms is noted, and the Host is still read.
    let identity = head("GET example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(names(&identity), named(&[(HttpHost, "example.com")]));
    assert_eq!(identity.malformed, Some(Malformed::HttpRequestLine));
}

#[test]
fn h2_prior_knowledge_preface_is_other() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let inspection = inspect(preface);
    assert_eq!(inspection.progress, Progress::Done);
    assert_eq!(inspection.identity, Identity { protocol: AppProtocol::Other, ..Identity::default() });
    for cut in 0..16 {
        assert!(matches!(inspect(&preface[..cut]).progress, Progress::NeedMore { .. }), "{cut}");
    }
}

#[test]
fn a_head_beyond_the_driver_bound_still_names_its_host() {
    let mut request = b"GET /big HTTP/1.1\r\nHost: big.example\r\n".to_vec();
    for index in 0..200 {
        request.extend_from_slice(format!("X-Filler-{index}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    assert!(request.len() > 4096);
    let bounded = inspect(&request[..4096]);
    assert_eq!(bounded.progress, Progress::NeedMore { at_least: 4097 });
    assert_eq!(names(&bounded.identity), named(&[(HttpHost, "big.example")]));
    assert_eq!(check_every_split(&request), bounded.identity);
}

#[test]
fn an_authority_early_in_a_long_target_is_reported_within_the_bound() {
    let mut request = b"GET http://long.example/".to_vec();
    request.extend_from_slice(&[b'a'; 5000]);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: long.example\r\n\r\n");
    let bounded = inspect(&request[..4096]);
    assert!(matches!(bounded.progress, Progress::NeedMore { .. }));
    assert_eq!(names(&bounded.identity), named(&[(HttpAuthority, "long.example")]));
}

#[test]
fn other_methods_and_versions() {
    for (request, expected_method) in [
        ("DELETE /x HTTP/1.1\r\nHost: d.example\r\n\r\n", &b"DELETE"[..]),
        ("VERSION-CONTROL /x HTTP/1.1\r\nHost: d.example\r\n\r\n", b"VERSION-CONTROL"),
        ("M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n", b"M-SEARCH"),
    ] {
        let identity = head(request);
        assert_eq!(method(&identity), expected_method);
        assert_eq!(identity.names.len(), 1);
    }
}
