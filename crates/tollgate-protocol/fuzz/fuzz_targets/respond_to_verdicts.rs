//! The driver's in-place SUBMIT_VERDICTS exchange over one METHOD_BUFFERED system buffer, with
//! fuzzed buffer lengths: never panics, applies nothing unless the whole request is valid, and
//! otherwise applies each verdict once and leaves a valid reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::VerdictError;
use tollgate_protocol::{VerdictResult, decode_verdict_batch, decode_verdict_results, respond_to_verdicts};

fuzz_target!(|input: (u16, u16, u8, Vec<u8>)| {
    let (input_len, output_len, seed, mut buffer) = input;
    let (input_len, output_len) = (usize::from(input_len), usize::from(output_len));
    let expected = buffer.get(..input_len).and_then(|request| decode_verdict_batch(request).ok()).map(|b| b.len());
    let mut calls = 0usize;
    let outcome = respond_to_verdicts(&mut buffer, input_len, output_len, |_, _| {
        calls += 1;
        VerdictResult::from(match (usize::from(seed) + calls) % 3 {
            0 => Ok(()),
            1 => Err(VerdictError::LateVerdict),
            _ => Err(VerdictError::UnknownId),
        })
    });
    match outcome {
        Ok(len) => {
            assert_eq!(Some(calls), expected);
            let results = decode_verdict_results(&buffer[..len]).expect("a valid reply");
            assert_eq!(results.len(), calls);
        }
        Err(_) => assert_eq!(calls, 0),
    }
});
