//! The SUBMIT_VERDICTS reply parser: never panics; accepted replies re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{VerdictResultWriter, decode_verdict_results};

fuzz_target!(|data: &[u8]| {
    let Ok(results) = decode_verdict_results(data) else { return };
    let mut out = vec![0u8; data.len()];
    let mut writer = VerdictResultWriter::new(&mut out).expect("room for the header");
    for outcome in &results {
        writer.push(outcome).expect("same size");
    }
    let len = writer.finish();
    assert_eq!(&out[..len], data);
});
