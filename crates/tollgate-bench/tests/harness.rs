//! The harnesses measure what they claim: both sides of each comparison give the same answers, the
//! round trip completes every connection through the real device (both service patterns), and the
//! contention runs leave the tables as they found them.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs, reason = "test")]

use tollgate_bench::contention;
use tollgate_bench::fastpath::{ABSENT_BASE, BaselineFastPath, Lookup, OursFastPath};
use tollgate_bench::roundtrip::{self, RoundTrip, Service};
use tollgate_bench::workload::{Picker, local_port, number_of, remote_address};

#[test]
fn fast_path_answers_agree() {
    for lookup in Lookup::ALL {
        for n in [1, 100, 2_000] {
            let ours = OursFastPath::new(lookup, n);
            let baseline = BaselineFastPath::new(lookup, n);
            let mut picker = Picker::new(u64::from(n));
            for _ in 0..200 {
                let i = picker.next_index();
                let expected = match lookup {
                    Lookup::ReauthDecided => 1,
                    Lookup::ReauthUndecided => 2,
                    Lookup::EndpointClosure => 0,
                };
                assert_eq!(ours.lookup(i), expected, "{} at {n}", lookup.name());
                assert_eq!(baseline.lookup(i), expected, "{} at {n} (baseline)", lookup.name());
            }
            let stats = ours.core().stats();
            match lookup {
                Lookup::EndpointClosure => assert_eq!(stats.pended_now, n),
                _ => assert_eq!(stats.cached_verdicts, n),
            }
        }
    }
}

#[test]
fn connection_numbers_survive_the_wire() {
    for n in [0, 1, 0xffff_ffff, 1 << 32, ABSENT_BASE + 7] {
        assert_eq!(number_of(local_port(n), remote_address(n)), Some(n));
    }
}

#[test]
fn round_trip_completes_every_connection() {
    for service in [Service::Batched, Service::OnePerIoctl] {
        for window in [1, 16, 256] {
            let result = roundtrip::run(RoundTrip { service, window, connections: 3_000, record_latency: true });
            assert_eq!(result.verdicts, 3_000);
            assert_eq!(result.latencies_ns.len(), 3_000);
            let per = result.percentiles(&[5_000, 10_000]).unwrap();
            assert!(per[0] <= per[1]);
            match service {
                // Reads and submits in pairs, each pair answering at most the window.
                Service::Batched => assert!(result.ioctls >= 2 * 3_000 / window as u64),
                Service::OnePerIoctl => assert_eq!(result.ioctls, 2 * 3_000),
            }
        }
    }
}

#[test]
fn contention_runs_leave_the_background() {
    for threads in [1, 2] {
        for background in [0, 50] {
            let _ = contention::ours(threads, 500, background);
            let _ = contention::baseline(threads, 500, background);
        }
    }
}
