//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/`): a handful of valid hellos and
//! request heads, so that the fuzzers start deep inside the parsers. Run on purpose only:
//! `cargo test -p tollgate-inspect --test seeds -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use std::path::Path;

use common::{
    HelloBuilder, ext, rfc8448_record, rustls_tls12_hello, rustls_tls13_hello, server_name_body, unwrap_records,
};

const HEADS: [(&str, &[u8]); 5] = [
    ("get", b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: seed\r\nAccept: */*\r\n\r\n"),
    ("connect", b"CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n"),
    ("absolute", b"GET http://user@proxy.example:8080/a?b HTTP/1.1\r\nHost: other.example\r\nHost : x\r\n\r\n"),
    ("lf-fold", b"POST /p HTTP/1.0\nHost: [2001:db8::1]:80\nX: a\n b\n\nbody"),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
];

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes files into fuzz/corpus; run on purpose"]
fn write_fuzz_seed_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let hellos = [
        ("rustls-tls13", rustls_tls13_hello("www.example.com")),
        ("rustls-tls12", rustls_tls12_hello("Upper.Example.COM")),
        ("rfc8448", rfc8448_record()),
        ("chrome-like", HelloBuilder::chrome_like(b"www.google.com", 1).record()),
        (
            "duplicate-sni",
            HelloBuilder::minimal()
                .with(ext::SERVER_NAME, server_name_body(&[b"a.example", b"b.example"]))
                .with(ext::SERVER_NAME, server_name_body(&[b"c.example"]))
                .record(),
        ),
    ];
    for (name, record) in &hellos {
        write(&corpus.join("inspect"), name, record);
        // The tls target: one byte choosing the fragment size, then the handshake message.
        let mut tls_input = vec![name.len() as u8 * 7];
        tls_input.extend_from_slice(&unwrap_records(record));
        write(&corpus.join("tls"), name, &tls_input);
    }
    for (name, head) in HEADS {
        write(&corpus.join("inspect"), name, head);
        write(&corpus.join("http"), name, head);
    }
}
