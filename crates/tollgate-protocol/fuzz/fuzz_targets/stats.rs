//! The GET_STATS reply parser: never panics; accepted replies re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{decode_stats, encode_stats};

fuzz_target!(|data: &[u8]| {
    let Ok((stats, stream, device)) = decode_stats(data) else { return };
    let mut out = vec![0u8; data.len()];
    let len = encode_stats(&stats, &stream, &device, &mut out).expect("same size");
    assert_eq!(&out[..len], data);
});
