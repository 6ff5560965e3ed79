//! The GET_STREAM_EVENTS reply parser (the service's side): never panics; every accepted batch
//! re-encodes to the same bytes, event by event, through the driver's writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{StreamEventWriter, decode_stream_events, stream_event_len};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = decode_stream_events(data) else { return };
    let mut out = vec![0u8; data.len()];
    let mut writer = StreamEventWriter::new(&mut out).expect("room for the header");
    let mut seen = 0;
    let mut total = 16;
    for event in &batch {
        total += stream_event_len(&event);
        writer.push(&event).expect("a decoded event fits where it came from");
        for (_, name) in event.identity.names.iter() {
            assert!(!name.is_empty());
            let _ = name.is_valid_dns();
        }
        seen += 1;
    }
    assert_eq!(seen, batch.len());
    assert_eq!(total, data.len());
    let len = writer.finish();
    assert_eq!(&out[..len], data);
});
