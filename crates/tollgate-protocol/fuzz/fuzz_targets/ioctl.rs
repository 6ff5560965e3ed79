//! The driver's dispatch front: control code and buffer-length checks, then the header peek, on
//! fuzzed values; every rejection has an error-severity NTSTATUS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::{Ioctl, peek_header};

fuzz_target!(|input: (u32, u32, u32, Vec<u8>)| {
    let (code, input_len, output_len, data) = input;
    match Ioctl::from_code(code) {
        Ok(ioctl) => {
            assert_eq!(ioctl.code(), code);
            if let Err(e) = ioctl.check_lengths(input_len as usize, output_len as usize) {
                assert_eq!((e.ntstatus() as u32) >> 30, 3);
            }
        }
        Err(e) => assert_eq!((e.ntstatus() as u32) >> 30, 3),
    }
    if let Err(e) = peek_header(&data) {
        assert_eq!((e.ntstatus() as u32) >> 30, 3);
    }
});
