//! The SET_CONFIG / GET_CONFIG parser (the driver's side for SET_CONFIG): never panics; whatever it
//! accepts is within bounds and re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{decode_config, encode_config, validate_config};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = decode_config(data) else { return };
    validate_config(&config).expect("decoded configs are valid");
    let mut out = vec![0u8; data.len()];
    let len = encode_config(&config, &mut out).expect("same size");
    assert_eq!(&out[..len], data);
});
