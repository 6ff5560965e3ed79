//! `inspect` on arbitrary bytes: never panics, and keeps its contract on the whole input and on a
//! prefix of it: `at_least` beyond the bytes given, at most two names, names of the prefix a prefix
//! of the names of the whole, a prefix that is done reads exactly like the whole, and one byte
//! short of the `at_least` the prefix asked for reads like the prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_inspect::{Inspection, Progress, inspect};

fn checked(data: &[u8]) -> Inspection {
    let inspection = inspect(data);
    if let Progress::NeedMore { at_least } = inspection.progress {
        assert!(at_least > data.len(), "at_least {at_least} for {} bytes", data.len());
    }
    assert!(inspection.identity.names.len() <= 2);
    inspection
}

fuzz_target!(|data: &[u8]| {
    let whole = checked(data);
    // A cut derived from the input, so the fuzzer can steer it.
    let cut = match data.last() {
        Some(last) => data.len() * usize::from(*last) / 256,
        None => 0,
    };
    let prefix = checked(&data[..cut]);
    assert!(whole.identity.names.iter().zip(prefix.identity.names.iter()).all(|(a, b)| a == b));
    assert!(prefix.identity.names.len() <= whole.identity.names.len());
    match prefix.progress {
        Progress::Done => assert_eq!(prefix, whole, "more bytes changed a result that was done"),
        // Fewer bytes than asked for cannot make progress.
        Progress::NeedMore { at_least } => {
            let short = at_least - 1;
            if short > cut && short <= data.len() {
                let almost = checked(&data[..short]);
                assert_eq!(almost.identity, prefix.identity);
                assert!(matches!(almost.progress, Progress::NeedMore { .. }));
            }
        }
    }
});
