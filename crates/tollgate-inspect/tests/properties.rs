//! Properties of `inspect` on arbitrary and on damaged inputs: it never panics, `at_least` is
//! always beyond the bytes given, at most two names, prefix-monotonic names, and the same result
//! however a valid hello or head is split into records or segments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::{HelloBuilder, Xorshift, alpn_body, ext, names, records, server_name_body};
use proptest::prelude::*;
use tollgate_inspect::identity::{Identity, NameSource};
use tollgate_inspect::name::HostName;
use tollgate_inspect::{Inspection, Progress, inspect};

/// The contract every call keeps, whatever the bytes.
fn check_contract(data: &[u8]) -> Inspection {
    let inspection = inspect(data);
    if let Progress::NeedMore { at_least } = inspection.progress {
        assert!(at_least > data.len(), "at_least {at_least} for {} bytes", data.len());
    }
    assert!(inspection.identity.names.len() <= 2);
    inspection
}

/// Names of `data[..cut]` are a prefix of the names of `data`, for each cut given; a prefix that
/// is done reads exactly like the whole (done means more bytes change nothing); and one byte short
/// of the `at_least` a prefix asked for reads like that prefix (fewer bytes cannot make progress).
fn check_prefix_monotonic(data: &[u8], cuts: impl Iterator<Item = usize>) {
    let whole = check_contract(data);
    let full = names(&whole.identity);
    for cut in cuts {
        let cut = cut.min(data.len());
        let prefix = check_contract(&data[..cut]);
        let prefix_names = names(&prefix.identity);
        assert!(full.starts_with(&prefix_names), "after {cut} bytes: {prefix_names:?}, in all: {full:?}");
        match prefix.progress {
            Progress::Done => assert_eq!(prefix, whole, "done after {cut} bytes, but more bytes changed the result"),
            Progress::NeedMore { at_least } => {
                let short = at_least - 1;
                if short > cut && short <= data.len() {
                    let almost = inspect(&data[..short]);
                    assert_eq!(almost.identity, prefix.identity, "{short} bytes changed what {cut} bytes read");
                    assert!(matches!(almost.progress, Progress::NeedMore { .. }), "done at {short} < {at_least}");
                }
            }
        }
    }
}

/// Inputs that reach deep into the parsers: valid hellos and heads with a few random edits.
fn damaged(valid: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    let mut data = valid;
    for (at, byte) in edits {
        if !data.is_empty() {
            let index = at % data.len();
            data[index] = *byte;
        }
    }
    data
}

fn hello_with(sni: &[u8], alpn: &[u8], seed: u64) -> HelloBuilder {
    let mut rng = Xorshift(seed | 1);
    let mut hello = HelloBuilder::minimal();
    let key_share_len = rng.below(1300);
    let padding_len = rng.below(200);
    let mut extensions = vec![
        (ext::SERVER_NAME, server_name_body(&[sni])),
        (ext::ALPN, alpn_body(&[alpn, b"h2"])),
        (ext::SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3]),
        (ext::KEY_SHARE, rng.bytes(key_share_len)),
        (ext::PADDING, vec![0; padding_len]),
        (rng.grease(), Vec::new()),
    ];
    for index in (1..extensions.len()).rev() {
        let other = rng.below(index + 1);
        extensions.swap(index, other);
    }
    hello.extensions = Some(extensions);
    hello
}

fn http_head(host: &str, target_host: Option<&str>, lf_only: bool, filler: usize) -> Vec<u8> {
    let end = if lf_only { "\n" } else { "\r\n" };
    let target = match target_host {
        Some(authority) => format!("http://{authority}/p"),
        None => "/p".to_owned(),
    };
    let mut head = format!("GET {target} HTTP/1.1{end}");
    for index in 0..filler {
        head.push_str(&format!("X-{index}: value{end}"));
    }
    head.push_str(&format!("Host: {host}{end}Accept: */*{end}{end}"));
    head.into_bytes()
}

fn expected_name(raw: &str) -> Vec<u8> {
    HostName::from_wire(raw.as_bytes()).as_bytes().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_prefix_monotonic(&data, [0, 1, 5, 9, 100, data.len() / 2, data.len().saturating_sub(1)].into_iter());
    }

    #[test]
    fn arbitrary_bytes_behind_a_tls_record_header(
        length in 0_u16..0x4900,
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut data = vec![22, 3, 1];
        data.extend_from_slice(&length.to_be_bytes());
        data.push(1);
        data.extend_from_slice(&body);
        check_prefix_monotonic(&data, 0..data.len().min(300));
    }

    #[test]
    fn arbitrary_bytes_behind_a_request_line(text in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut data = b"GET ".to_vec();
        data.extend_from_slice(&text);
        check_prefix_monotonic(&data, 0..data.len().min(300));
    }

    #[test]
    fn damaged_hellos(
        sni in "[a-zA-Z0-9.-]{1,40}",
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cuts in proptest::collection::vec(any::<usize>(), 16),
    ) {
        let data = damaged(hello_with(sni.as_bytes(), b"http/1.1", seed).record(), &edits);
        check_prefix_monotonic(&data, cuts.into_iter());
    }

    #[test]
    fn damaged_heads(
        host in "[a-zA-Z0-9.:\\[\\] -]{0,30}",
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let data = damaged(http_head(&host, Some("a.example"), false, 2), &edits);
        check_prefix_monotonic(&data, 0..=data.len());
    }

    #[test]
    fn hellos_read_the_same_however_fragmented_and_cut(
        sni in "[a-zA-Z0-9-]{1,20}(\\.[a-zA-Z0-9-]{1,20}){0,3}\\.?",
        alpn in proptest::collection::vec(any::<u8>(), 1..60),
        seed in any::<u64>(),
        splits in proptest::collection::btree_set(1_usize..2000, 0..5),
        cut in any::<usize>(),
    ) {
        let hello = hello_with(sni.as_bytes(), &alpn, seed);
        let message = hello.message();
        let whole = inspect(&hello.record());
        prop_assert_eq!(whole.progress, Progress::Done);
        let identity: Identity = whole.identity;
        prop_assert_eq!(names(&identity), vec![(NameSource::TlsSni, expected_name(&sni))]);
        prop_assert_eq!(identity.alpn.first(), &alpn[..alpn.len().min(32)]);
        prop_assert!(identity.tls.grease && identity.tls.offers_tls13);

        let splits: Vec<usize> = splits.into_iter().filter(|split| *split < message.len()).collect();
        let fragmented = records(&message, &splits);
        prop_assert_eq!(inspect(&fragmented), whole);

        let cut = cut % fragmented.len();
        let partial = check_contract(&fragmented[..cut]);
        let within = matches!(partial.progress, Progress::NeedMore { at_least } if at_least <= fragmented.len());
        prop_assert!(within, "{:?}", partial.progress);
        prop_assert!(names(&identity).starts_with(&names(&partial.identity)));
    }

    #[test]
    fn heads_read_the_same_however_cut(
        host in "[a-zA-Z0-9-]{1,20}(\\.[a-zA-Z0-9-]{1,20}){0,3}\\.?(:[0-9]{1,5})?",
        target_host in proptest::option::of("[a-z0-9]{1,10}\\.example"),
        lf_only in any::<bool>(),
        filler in 0_usize..20,
        cut in any::<usize>(),
    ) {
        let data = http_head(&host, target_host.as_deref(), lf_only, filler);
        let whole = check_contract(&data);
        prop_assert_eq!(whole.progress, Progress::Done);
        let host_name = expected_name(host.split(':').next().unwrap());
        let expected = match &target_host {
            Some(authority) if expected_name(authority) == host_name => vec![(NameSource::HttpAuthority, host_name)],
            Some(authority) => {
                vec![(NameSource::HttpAuthority, expected_name(authority)), (NameSource::HttpHost, host_name)]
            }
            None => vec![(NameSource::HttpHost, host_name)],
        };
        prop_assert_eq!(names(&whole.identity), expected);
        let cut = cut % data.len();
        let partial = check_contract(&data[..cut]);
        prop_assert_eq!(partial.progress, Progress::NeedMore { at_least: cut + 1 });
        prop_assert!(names(&whole.identity).starts_with(&names(&partial.identity)));
    }

    #[test]
    fn sni_split_anywhere_over_records_is_from_wire(
        name in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'A'), any::<u8>()], 1..400),
        splits in proptest::collection::btree_set(0_usize..400, 0..6),
    ) {
        let message = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[&name])).message();
        let name_at = message.len() - name.len();
        let splits: Vec<usize> =
            splits.into_iter().map(|split| name_at + split).filter(|split| *split < message.len()).collect();
        let identity = inspect(&records(&message, &splits)).identity;
        let expected = HostName::from_wire(&name);
        prop_assert_eq!(identity.names.primary().map(|(_, host)| *host), (!expected.is_empty()).then_some(expected));
    }
}
