//! The stream callout's flow table on the host: identification, the domain blocklist, the
//! reassembly pool, the bounds, the events, and the defensive paths (stale ids, a flow deleted or
//! classified again while its bytes are being copied).
//!
//! The copy closure stands for `FwpsCopyStreamDataToBuffer0`: each test checks what the table asked
//! it to copy, because that is the only place segment bytes are read (S6).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use tollgate_core::host::AtomicSpinLock;
use tollgate_core::stream::{
    AfterInspection, DomainBlocklist, DomainSet, FlowEndpoints, FlowEvent, FlowEventKind, FlowId, FlowOwner, FlowTable,
    FlowTableConfig, InspectionEnd, MAX_INSPECTED_SEGMENTS, REASSEMBLY_CAPACITY, StreamAction, StreamSegment,
    StreamVerdict,
};
use tollgate_core::{Direction, EndpointHandle, Ticks};
use tollgate_inspect::identity::AppProtocol;
use tollgate_inspect::name::PatternKind;

type Table = FlowTable<AtomicSpinLock>;

fn table(config: FlowTableConfig) -> Table {
    FlowTable::new(config).unwrap()
}

fn small() -> FlowTableConfig {
    FlowTableConfig { flows: 8, reassembly_buffers: 4, events: 16, after_inspection: AfterInspection::AllowConnection }
}

fn endpoints(direction: Direction) -> FlowEndpoints {
    FlowEndpoints {
        ip_protocol: 6,
        direction,
        local_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        local_port: 50_000,
        remote_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        remote_port: 80,
        process_id: 4242,
    }
}

fn attach(table: &Table, n: u64, direction: Direction) -> FlowId {
    let owner = FlowOwner { flow_handle: 0x9000 + n, layer_id: 20, callout_id: 7 };
    table.attach(EndpointHandle(0x1000 + n), owner, endpoints(direction), Ticks(1)).unwrap()
}

fn out(length: usize) -> StreamSegment {
    StreamSegment { outbound: true, length, disconnect: false }
}

fn inbound(length: usize) -> StreamSegment {
    StreamSegment { outbound: false, length, disconnect: false }
}

/// One classify of `bytes`, copying like `FwpsCopyStreamDataToBuffer0` (from the segment's start).
/// Returns the action and how many bytes the table asked to copy (None: the closure never ran).
fn send(
    table: &Table,
    id: FlowId,
    segment: StreamSegment,
    bytes: &[u8],
    list: &DomainBlocklist,
) -> (StreamAction, Option<usize>) {
    let asked = Cell::new(None);
    let action = table.on_segment(id, segment, Ticks(2), list, |buffer| {
        asked.set(Some(buffer.len()));
        let n = buffer.len().min(bytes.len());
        buffer[..n].copy_from_slice(&bytes[..n]);
        n
    });
    (action, asked.get())
}

fn events(table: &Table) -> Vec<FlowEvent> {
    let mut out = Vec::new();
    table.drain_events(usize::MAX, |event| {
        out.push(*event);
        true
    });
    out
}

fn blocklist(patterns: &[(PatternKind, &str)]) -> DomainBlocklist {
    let list = DomainBlocklist::new();
    list.replace(DomainSet::build(patterns.iter().map(|(k, n)| (*k, n.as_bytes()))).unwrap()).unwrap();
    list
}

const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nUser-Agent: test\r\nHost: WWW.Example.COM.:8080\r\n\r\n";

#[test]
fn a_request_in_one_segment_is_identified_then_allowed_through() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let (action, asked) = send(&table, id, out(REQUEST.len()), REQUEST, &none);
    assert_eq!(action, StreamAction::AllowConnection);
    assert_eq!(asked, Some(REQUEST.len()), "the whole segment is copied, nothing more");
    let facts = table.facts(id).unwrap();
    assert_eq!(
        (facts.inspecting, facts.end, facts.verdict),
        (false, InspectionEnd::Complete, StreamVerdict::Permitted)
    );
    assert_eq!(table.free_buffers(), 4, "the buffer went back to the pool in the same classify");
    let events = events(&table);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!((event.kind, event.flow, event.identity.protocol), (FlowEventKind::Identified, id, AppProtocol::Http));
    assert_eq!(event.identity.names.primary().unwrap().1.as_bytes(), b"www.example.com");
    assert_eq!((event.counters.bytes_out, event.counters.segments_out), (REQUEST.len() as u64, 1));
    assert_eq!(event.counters.first_data_at, Some(Ticks(2)));
    // After ALLOW_CONNECTION WFP stops calling; if it did call, nothing would be copied.
    assert_eq!(send(&table, id, out(10), b"0123456789", &none), (StreamAction::AllowConnection, None));
}

#[test]
fn a_blocked_name_drops_the_connection() {
    let table = table(small());
    let list = blocklist(&[(PatternKind::Below, "example.com")]);
    let id = attach(&table, 1, Direction::Outbound);
    let (action, _) = send(&table, id, out(REQUEST.len()), REQUEST, &list);
    assert_eq!(action, StreamAction::DropConnection);
    let event = events(&table)[0];
    assert_eq!(event.verdict, StreamVerdict::Dropped);
    let stats = table.stats(&list);
    assert_eq!((stats.flows_dropped, stats.flows_named, stats.blocklist_patterns), (1, 1, 1));
    // Any later indication gets the same answer.
    assert_eq!(send(&table, id, inbound(5), b"HTTP/", &list).0, StreamAction::DropConnection);
}

#[test]
fn a_split_request_is_reassembled_from_where_each_segment_starts() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let (first, rest) = REQUEST.split_at(20);
    let (second, third) = rest.split_at(30);
    assert_eq!(send(&table, id, out(first.len()), first, &none), (StreamAction::Permit, Some(first.len())));
    assert_eq!(table.free_buffers(), 3, "the flow holds one buffer while its head is incomplete");
    // Server bytes in between are counted, not copied.
    assert_eq!(send(&table, id, inbound(3), b"xyz", &none), (StreamAction::Permit, None));
    assert_eq!(send(&table, id, out(second.len()), second, &none), (StreamAction::Permit, Some(second.len())));
    assert_eq!(send(&table, id, out(third.len()), third, &none).0, StreamAction::AllowConnection);
    assert_eq!(table.free_buffers(), 4);
    let facts = table.facts(id).unwrap();
    assert_eq!((facts.client_bytes_read, facts.end), (REQUEST.len(), InspectionEnd::Complete));
    assert_eq!((facts.counters.segments_out, facts.counters.segments_in, facts.counters.bytes_in), (3, 1, 3));
    assert_eq!(events(&table)[0].identity.names.primary().unwrap().1.as_bytes(), b"www.example.com");
}

#[test]
fn an_accepted_flow_reads_the_inbound_side_and_is_never_dropped() {
    let table = table(small());
    let list = blocklist(&[(PatternKind::Exact, "www.example.com")]);
    let id = attach(&table, 1, Direction::Inbound);
    // Our outbound bytes are the server's: counted only.
    assert_eq!(send(&table, id, out(5), b"hello", &list), (StreamAction::Permit, None));
    let (action, asked) = send(&table, id, inbound(REQUEST.len()), REQUEST, &list);
    assert_eq!((action, asked), (StreamAction::AllowConnection, Some(REQUEST.len())));
    let event = events(&table)[0];
    assert_eq!(event.verdict, StreamVerdict::Permitted, "the blocklist is about where this machine connects to");
    assert!(!event.identity.names.is_empty());
}

#[test]
fn with_no_buffer_free_a_flow_is_not_inspected_and_says_so() {
    let table = table(FlowTableConfig { reassembly_buffers: 1, ..small() });
    let none = DomainBlocklist::new();
    let a = attach(&table, 1, Direction::Outbound);
    let b = attach(&table, 2, Direction::Outbound);
    assert_eq!(send(&table, a, out(10), &REQUEST[..10], &none).0, StreamAction::Permit);
    assert_eq!(send(&table, b, out(REQUEST.len()), REQUEST, &none), (StreamAction::AllowConnection, None));
    assert_eq!(table.facts(b).unwrap().end, InspectionEnd::NoBuffer);
    assert_eq!(send(&table, a, out(REQUEST.len() - 10), &REQUEST[10..], &none).0, StreamAction::AllowConnection);
    assert_eq!(table.free_buffers(), 1);
    let ends: Vec<_> = events(&table).iter().map(|e| (e.flow, e.end)).collect();
    assert_eq!(ends, [(b, InspectionEnd::NoBuffer), (a, InspectionEnd::Complete)]);
    assert_eq!(table.stats(&none).flows_no_buffer, 1);
}

#[test]
fn inspection_stops_at_the_segment_bound_with_what_it_has() {
    let table = table(small());
    let list = blocklist(&[(PatternKind::Exact, "bounded.example")]);
    let id = attach(&table, 1, Direction::Outbound);
    let head = b"GET / HTTP/1.1\r\nHost: bounded.example\r\nX: ";
    assert_eq!(send(&table, id, out(head.len()), head, &list).0, StreamAction::Permit);
    for _ in 1..MAX_INSPECTED_SEGMENTS - 1 {
        assert_eq!(send(&table, id, out(1), b"a", &list).0, StreamAction::Permit);
    }
    // The last inspected segment: the head is still open, but the Host already read is used.
    assert_eq!(send(&table, id, out(1), b"a", &list).0, StreamAction::DropConnection);
    assert_eq!(table.facts(id).unwrap().end, InspectionEnd::Bounded);
    assert_eq!(table.stats(&list).flows_bounded, 1);
}

#[test]
fn inspection_stops_at_the_byte_bound_with_what_it_has() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let mut big = b"POST /upload HTTP/1.1\r\nHost: big.example\r\nX-Pad: ".to_vec();
    big.resize(REASSEMBLY_CAPACITY + 1000, b'a');
    let (action, asked) = send(&table, id, out(big.len()), &big, &none);
    assert_eq!(
        (action, asked),
        (StreamAction::AllowConnection, Some(REASSEMBLY_CAPACITY)),
        "never more than the buffer"
    );
    let event = events(&table)[0];
    assert_eq!(event.end, InspectionEnd::Bounded);
    assert_eq!(event.identity.names.primary().unwrap().1.as_bytes(), b"big.example");
}

#[test]
fn a_disconnect_ends_inspection_with_the_names_read_so_far() {
    let table = table(small());
    let list = blocklist(&[(PatternKind::Exact, "half.example")]);
    let id = attach(&table, 1, Direction::Outbound);
    let partial = b"GET / HTTP/1.1\r\nHost: half.example\r\n";
    assert_eq!(send(&table, id, out(partial.len()), partial, &list).0, StreamAction::Permit);
    let fin = StreamSegment { outbound: true, length: 0, disconnect: true };
    assert_eq!(send(&table, id, fin, b"", &list), (StreamAction::DropConnection, None));
    assert_eq!(table.facts(id).unwrap().end, InspectionEnd::Disconnected);
}

#[test]
fn a_flow_that_closes_without_client_bytes_raises_only_its_closed_event() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let fin = StreamSegment { outbound: false, length: 0, disconnect: true };
    assert_eq!(send(&table, id, fin, b"", &none), (StreamAction::AllowConnection, None));
    let facts = table.remove(id, Ticks(9)).unwrap();
    assert_eq!(facts.end, InspectionEnd::Disconnected);
    let kinds: Vec<_> = events(&table).iter().map(|e| (e.kind, e.at)).collect();
    assert_eq!(kinds, [(FlowEventKind::Closed, Ticks(9))]);
    assert!(table.facts(id).is_none());
    assert_eq!(table.live_count(), 0);
}

#[test]
fn other_protocols_are_recognised_at_once_and_not_read_further() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let ssh = b"SSH-2.0-OpenSSH_9.6\r\n";
    assert_eq!(send(&table, id, out(ssh.len()), ssh, &none).0, StreamAction::AllowConnection);
    let event = events(&table)[0];
    assert_eq!((event.identity.protocol, event.end), (AppProtocol::Other, InspectionEnd::Complete));
    assert!(event.identity.names.is_empty());
}

#[test]
fn empty_and_null_indications_are_counted_and_permitted() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    assert_eq!(send(&table, id, out(0), b"", &none), (StreamAction::Permit, None));
    assert_eq!(send(&table, id, inbound(0), b"", &none), (StreamAction::Permit, None));
    let counters = table.facts(id).unwrap().counters;
    assert_eq!((counters.segments_out, counters.segments_in, counters.first_data_at), (1, 1, None));
}

#[test]
fn unknown_and_stale_flow_contexts_find_nothing_and_copy_nothing() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    table.remove(id, Ticks(3)).unwrap();
    let again = attach(&table, 2, Direction::Outbound);
    assert_ne!(id, again, "a reused slot has a new generation");
    assert_eq!(send(&table, id, out(REQUEST.len()), REQUEST, &none), (StreamAction::AllowConnection, None));
    assert_eq!(
        send(&table, FlowId::from_raw(0xDEAD_BEEF_0000_0007), out(4), b"abcd", &none).0,
        StreamAction::AllowConnection
    );
    assert!(table.remove(id, Ticks(4)).is_none(), "a stale flowDeleteFn frees nothing");
    assert_eq!(table.live_count(), 1);
}

#[test]
fn a_flow_deleted_while_its_bytes_are_copied_gives_its_buffer_back() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let action = table.on_segment(id, out(REQUEST.len()), Ticks(2), &none, |buffer| {
        // flowDeleteFn cannot run during a classify of its flow, but the table must not care.
        table.remove(id, Ticks(2)).unwrap();
        buffer[..REQUEST.len()].copy_from_slice(REQUEST);
        REQUEST.len()
    });
    assert_eq!(action, StreamAction::AllowConnection);
    assert_eq!(table.free_buffers(), 4, "no buffer lost");
    assert_eq!(table.live_count(), 0);
}

#[test]
fn overlapping_classifies_of_one_flow_give_up_rather_than_read_out_of_order() {
    let table = table(small());
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    let action = table.on_segment(id, out(10), Ticks(2), &none, |buffer| {
        let (inner, asked) = send(&table, id, out(REQUEST.len()), REQUEST, &none);
        assert_eq!((inner, asked), (StreamAction::AllowConnection, None));
        buffer[..10].copy_from_slice(&REQUEST[..10]);
        10
    });
    assert_eq!(action, StreamAction::AllowConnection);
    assert_eq!(table.facts(id).unwrap().end, InspectionEnd::Overlapped);
    assert_eq!(table.free_buffers(), 4);
}

#[test]
fn a_full_event_queue_drops_and_counts_and_an_unread_event_stays_first() {
    let table = table(FlowTableConfig { events: 2, ..small() });
    let none = DomainBlocklist::new();
    for n in 0..3 {
        let id = attach(&table, n, Direction::Outbound);
        send(&table, id, out(REQUEST.len()), REQUEST, &none);
    }
    assert_eq!(table.stats(&none).events_lost, 1);
    let mut first = None;
    assert_eq!(
        table.drain_events(5, |event| {
            first = Some(event.flow);
            false
        }),
        0
    );
    assert_eq!(table.queued_events(), 2, "the refused event went back to the front");
    let flows: Vec<_> = events(&table).iter().map(|e| e.flow).collect();
    assert_eq!(flows.first().copied(), first);
    assert_eq!(flows.len(), 2);
}

#[test]
fn keep_counting_counts_every_byte_after_identification() {
    let table = table(FlowTableConfig { after_inspection: AfterInspection::KeepCounting, ..small() });
    let none = DomainBlocklist::new();
    let id = attach(&table, 1, Direction::Outbound);
    assert_eq!(send(&table, id, out(REQUEST.len()), REQUEST, &none).0, StreamAction::Permit);
    for _ in 0..5 {
        assert_eq!(send(&table, id, inbound(1000), &[0; 1000], &none), (StreamAction::Permit, None));
    }
    let closed = table.remove(id, Ticks(5)).unwrap();
    assert_eq!((closed.counters.bytes_in, closed.counters.segments_in), (5000, 5));
}

#[test]
fn the_table_is_bounded_and_says_how_many_flows_it_missed() {
    let table = table(FlowTableConfig { flows: 2, ..small() });
    let none = DomainBlocklist::new();
    attach(&table, 1, Direction::Outbound);
    let b = attach(&table, 2, Direction::Outbound);
    let owner = FlowOwner::default();
    assert!(table.attach(EndpointHandle(3), owner, endpoints(Direction::Outbound), Ticks(1)).is_none());
    table.forget(b);
    let stats = table.stats(&none);
    assert_eq!((stats.flows_tracked, stats.flows_untracked, stats.flows_live), (1, 2, 1));
}
