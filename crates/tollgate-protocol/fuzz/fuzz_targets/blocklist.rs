//! The PUSH_BLOCKLIST parser (the driver's side, on whatever a service sends): never panics;
//! every accepted list is sorted, unique and canonical, iterates the same twice, and re-encodes
//! to the same bytes through both encoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_inspect::name::validate_canonical;
use tollgate_protocol::{blocklist_len, decode_blocklist, encode_blocklist, encode_blocklist_to_vec};

fuzz_target!(|data: &[u8]| {
    let Ok(list) = decode_blocklist(data) else { return };
    // The driver walks it twice: once to size its tables, once to fill them.
    assert_eq!(list.iter().count(), list.len());
    assert!(list.iter().eq(list.iter()));
    let mut previous: Option<(u8, &[u8])> = None;
    for (kind, name) in &list {
        assert!(validate_canonical(name).is_ok());
        let key = (tollgate_protocol::pattern_kind_to_u8(kind), name);
        assert!(previous.is_none_or(|p| p < key));
        previous = Some(key);
    }
    assert_eq!(blocklist_len(&list), data.len());
    let mut out = vec![0u8; data.len()];
    let len = encode_blocklist(&list, &mut out).expect("a decoded list re-encodes");
    assert_eq!(&out[..len], data);
    assert_eq!(encode_blocklist_to_vec(&list).expect("and through the convenience"), data);
});
