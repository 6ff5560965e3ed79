//! The GET_PENDED reply parser (the service's side of the driver's largest message): never panics;
//! every accepted batch re-encodes to the same bytes, and its borrowed views are usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{BatchWriter, MAX_APP_PATH_UNITS, decode_pended_batch};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = decode_pended_batch(data) else { return };
    let mut out = vec![0u8; data.len()];
    let mut writer = BatchWriter::new(&mut out).expect("room for the header");
    let mut path = [0u16; MAX_APP_PATH_UNITS as usize];
    let mut seen = 0;
    for record in &batch {
        writer.push_record(&record).expect("a decoded record fits where it came from");
        let _ = record.to_pended_connection(&mut path).expect("a decoded path fits MAX_APP_PATH_UNITS");
        let _ = record.app_path.to_string_lossy();
        seen += 1;
    }
    assert_eq!(seen, batch.len());
    let len = writer.finish();
    assert_eq!(&out[..len], data);
});
