//! The ClientHello parser on arbitrary handshake bytes in well-formed records: the first input byte
//! chooses how the bytes are fragmented, and every fragmentation must read exactly like one record
//! (record boundaries are invisible to the handshake layer, RFC 8446 §5.1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_inspect::Progress;
use tollgate_inspect::tls::inspect_tls;

/// `message` in handshake records of at most `fragment` bytes each.
fn records(message: &[u8], fragment: usize, out: &mut Vec<u8>) {
    out.clear();
    for chunk in message.chunks(fragment.max(1)) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((fragment, message)) = data.split_first() else { return };
    let message = &message[..message.len().min(16384)];
    let mut whole = Vec::new();
    records(message, 16384, &mut whole);
    let mut fragmented = Vec::new();
    records(message, usize::from(*fragment), &mut fragmented);

    let one = inspect_tls(&whole);
    let many = inspect_tls(&fragmented);
    for (inspection, len) in [(one, whole.len()), (many, fragmented.len())] {
        if let Progress::NeedMore { at_least } = inspection.progress {
            assert!(at_least > len);
        }
        assert!(inspection.identity.names.len() <= 1);
    }
    assert_eq!(one.identity, many.identity, "fragmentation changed what was read");
    assert_eq!(one.progress == Progress::Done, many.progress == Progress::Done);
});
