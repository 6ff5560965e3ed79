//! The SUBMIT_VERDICTS request parser (the driver's side): never panics; accepted batches re-encode
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{decode_verdict_batch, encode_verdict_batch};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = decode_verdict_batch(data) else { return };
    let entries: Vec<_> = batch.iter().collect();
    assert_eq!(entries.len(), batch.len());
    let mut out = vec![0u8; data.len()];
    let len = encode_verdict_batch(&entries, &mut out).expect("same size");
    assert_eq!(&out[..len], data);
});
