//! HELLO request and reply parsers: never panic; whatever they accept re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{decode_hello_reply, decode_hello_request, encode_hello_reply, encode_hello_request};

fuzz_target!(|data: &[u8]| {
    let mut out = [0u8; 64];
    if let Ok(request) = decode_hello_request(data) {
        let len = encode_hello_request(&request, &mut out).expect("a decoded request encodes");
        assert_eq!(&out[..len], data);
    }
    if let Ok(reply) = decode_hello_reply(data) {
        let len = encode_hello_reply(&reply, &mut out).expect("a decoded reply encodes");
        assert_eq!(&out[..len], data);
    }
});
