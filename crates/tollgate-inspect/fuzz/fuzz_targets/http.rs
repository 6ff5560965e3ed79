//! The request head parser on arbitrary text after a method: never panics, asks for one more byte
//! while not done, keeps at most two names, and every prefix of the input reports a prefix of the
//! names (checked at a cut the input chooses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_inspect::Progress;
use tollgate_inspect::http::{Sniff, inspect_http, sniff};

fuzz_target!(|data: &[u8]| {
    let mut request = Vec::with_capacity(data.len() + 4);
    if sniff(data) != Sniff::Http {
        request.extend_from_slice(b"GET ");
    }
    request.extend_from_slice(data);

    let whole = inspect_http(&request);
    if let Progress::NeedMore { at_least } = whole.progress {
        assert_eq!(at_least, request.len() + 1);
    }
    assert!(whole.identity.names.len() <= 2);

    let cut = match data.first() {
        Some(first) => request.len() * usize::from(*first) / 256,
        None => 0,
    };
    if sniff(&request[..cut]) == Sniff::Http {
        let prefix = inspect_http(&request[..cut]);
        assert!(prefix.identity.names.iter().zip(whole.identity.names.iter()).all(|(a, b)| a == b));
        assert!(prefix.identity.names.len() <= whole.identity.names.len());
        if prefix.progress == Progress::Done {
            assert_eq!(prefix, whole);
        }
    }
});
