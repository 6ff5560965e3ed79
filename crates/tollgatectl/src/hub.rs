//! The verdict service's local control channel: `tollgatectl watch` and `tollgatectl stats` talk
//! to a running `serve` through it.
//!
//! A local socket (a named pipe `\\.\pipe\tollgate-service` on Windows, admitting only SYSTEM and
//! Administrators like the driver's device; a Unix-domain socket readable by its owner only
//! elsewhere). A client writes one request line, `{"op":"watch"}` or `{"op":"stats"}`, and reads
//! JSON lines back: for `stats` one [`StatsView`], for `watch` every [`Record`] the service
//! publishes from then on.
//!
//! The channel is read-only: nothing a client sends can change what the service or the driver
//! does. And it never slows the service down: each watcher has a bounded queue of records, filled
//! with `try_send`; when a watcher reads too slowly its queue fills, further records for it are
//! counted and dropped, and it is told how many ([`Record::Dropped`]) once it catches up. Its own
//! thread does the (blocking) writes.

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{ListenerNonblockingMode, ListenerOptions, Name, Stream};
use serde::{Deserialize, Serialize};
use tollgate_core::StatsSnapshot;
use tollgate_core::stream::StreamStats;
use tollgate_protocol::DeviceStats;

use crate::records::Record;

/// Records queued for one watcher before further ones are dropped for it.
pub const WATCH_QUEUE: usize = 1024;

/// A request on the control channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Stream every record from now on.
    Watch,
    /// The service's state and the driver's counters, once.
    Stats,
}

/// One of the driver's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// `pends`, `verdicts`, `inline` (decided in classifyFn), `teardown`, `table`, `stream` or
    /// `device`.
    pub group: String,
    /// The counter's name.
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// The service's own state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Where the rules come from.
    pub rules: String,
    /// Whether the service holds the driver's verdict-service role now.
    pub connected: bool,
    /// Connections decided since the service started.
    pub decisions: u64,
    /// Flow events read since the service started.
    pub flow_events: u64,
    /// Rules reloads applied (a file with a mistake is not applied and not counted).
    pub reloads: u64,
    /// Watchers connected now.
    pub watchers: u64,
    /// Records dropped for watchers that read too slowly.
    pub dropped_for_watchers: u64,
}

/// The answer to `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    /// The service.
    pub service: ServiceState,
    /// The driver's counters, as last read (empty if never read).
    pub counters: Vec<Counter>,
}

/// The driver's counters, named and grouped (what `stats` prints).
#[must_use]
pub fn counters(stats: &StatsSnapshot, stream: &StreamStats, device: &DeviceStats) -> Vec<Counter> {
    let rows: [(&str, &str, u64); 33] = [
        ("pends", "pended", stats.pended),
        ("pends", "pended now", u64::from(stats.pended_now)),
        ("pends", "completed by verdict", stats.completed_by_verdict),
        ("pends", "completed by timeout", stats.completed_by_timeout),
        ("pends", "completed by teardown", stats.completed_by_teardown),
        ("pends", "completed by service cleanup", stats.completed_by_cleanup),
        ("pends", "completed at unload", stats.completed_by_unload),
        ("verdicts", "rejected (late, unknown, duplicate)", stats.rejected_verdicts),
        ("verdicts", "reauthorizations answered from cache", stats.reauth_hits),
        ("verdicts", "reauthorizations without a cached verdict", stats.reauth_misses),
        ("verdicts", "verdicts cached now", u64::from(stats.cached_verdicts)),
        ("inline", "default verdict: no service", stats.inline_no_service),
        ("inline", "default verdict: cap reached", stats.inline_cap_reached),
        ("inline", "default verdict: unloading", stats.inline_unloading),
        ("inline", "default verdict: allocation failed", stats.inline_alloc_failed),
        ("inline", "default verdict: pend failed", stats.inline_pend_failed),
        ("teardown", "teardowns that waited for a completion", stats.teardowns_waited),
        ("teardown", "closure notifications completed", stats.closures_completed),
        ("teardown", "teardown spins", stats.teardown_spins),
        ("teardown", "teardowns that gave up waiting", stats.teardown_gave_up),
        ("table", "entries now", u64::from(stats.live_entries)),
        ("table", "entries at peak", u64::from(stats.peak_entries)),
        ("stream", "flows tracked", stream.flows_tracked),
        ("stream", "flows now", stream.flows_live),
        ("stream", "flows not tracked (table full)", stream.flows_untracked),
        ("stream", "flows named", stream.flows_named),
        ("stream", "flows dropped by the domain blocklist", stream.flows_dropped),
        ("stream", "flows not inspected (no buffer)", stream.flows_no_buffer),
        ("stream", "flows past the byte or segment bound", stream.flows_bounded),
        ("stream", "events lost (queue full)", stream.events_lost),
        ("stream", "blocklist patterns", stream.blocklist_patterns),
        ("stream", "blocklist replacements", stream.blocklist_generation),
        ("device", "requests refused (malformed, wrong role, unknown)", device.rejected_ioctls),
    ];
    rows.iter()
        .map(|(group, name, value)| Counter { group: (*group).to_owned(), name: (*name).to_owned(), value: *value })
        .collect()
}

/// The view as `stats` prints it.
#[must_use]
pub fn render_stats(view: &StatsView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let service = &view.service;
    let _ = writeln!(out, "service");
    let _ = writeln!(out, "  rules                                   {}", service.rules);
    let _ = writeln!(out, "  connected to the driver                 {}", if service.connected { "yes" } else { "no" });
    let _ = writeln!(out, "  decisions                               {:>12}", service.decisions);
    let _ = writeln!(out, "  flow events                             {:>12}", service.flow_events);
    let _ = writeln!(out, "  rules reloads                           {:>12}", service.reloads);
    let _ = writeln!(out, "  watchers now                            {:>12}", service.watchers);
    let _ = writeln!(out, "  records dropped for slow watchers       {:>12}", service.dropped_for_watchers);
    let mut group = "";
    for counter in &view.counters {
        if counter.group != group {
            group = &counter.group;
            let _ = writeln!(out, "{group}");
        }
        let _ = writeln!(out, "  {:<40}{:>12}", counter.name, counter.value);
    }
    if view.counters.is_empty() {
        let _ = writeln!(out, "driver\n  (no counters yet: the service has not read them)");
    }
    out
}

struct Watcher {
    queue: SyncSender<Arc<str>>,
    dropped: Arc<AtomicU64>,
}

/// The service's side of the channel: who watches, and the latest stats.
pub struct Hub {
    watchers: Mutex<Vec<Watcher>>,
    stats: Mutex<StatsView>,
    dropped_total: AtomicU64,
    queue_len: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub whose watchers each get a queue of `queue_len` records.
    #[must_use]
    pub fn new(queue_len: usize) -> Arc<Hub> {
        Arc::new(Hub {
            watchers: Mutex::new(Vec::new()),
            stats: Mutex::new(StatsView::default()),
            dropped_total: AtomicU64::new(0),
            queue_len: queue_len.max(1),
        })
    }

    /// Sends `record` to every watcher without waiting: a watcher whose queue is full misses it
    /// (counted), a watcher that went away is forgotten.
    pub fn publish(&self, record: &Record) {
        let mut watchers = lock(&self.watchers);
        if watchers.is_empty() {
            return;
        }
        let line: Arc<str> = Arc::from(record.json());
        watchers.retain(|watcher| match watcher.queue.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                watcher.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Replaces what `stats` answers (the watcher figures are filled in when asked).
    pub fn set_stats(&self, view: StatsView) {
        *lock(&self.stats) = view;
    }

    /// What `stats` answers now.
    #[must_use]
    pub fn stats(&self) -> StatsView {
        let mut view = lock(&self.stats).clone();
        view.service.watchers = u64::try_from(lock(&self.watchers).len()).unwrap_or(u64::MAX);
        view.service.dropped_for_watchers = self.dropped_total.load(Ordering::Relaxed);
        view
    }

    /// Watchers connected now.
    #[must_use]
    pub fn watchers(&self) -> usize {
        lock(&self.watchers).len()
    }

    /// Serves one client: reads its request line and answers it. A watcher's records are written
    /// by this (the client's own) thread until the client goes away.
    ///
    /// # Errors
    /// The I/O error that ended the conversation (a client going away is an error here, and a
    /// normal end for the service).
    pub fn serve_client<S: io::Read + Write>(&self, stream: S) -> io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let request: Request = serde_json::from_str(line.trim())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, format!("bad request: {error}")))?;
        let mut stream = reader.into_inner();
        match request {
            Request::Stats => {
                let view = serde_json::to_string(&self.stats()).map_err(io::Error::other)?;
                stream.write_all(view.as_bytes())?;
                stream.write_all(b"\n")?;
                stream.flush()
            }
            Request::Watch => {
                let (queue, records) = sync_channel(self.queue_len);
                let dropped = Arc::new(AtomicU64::new(0));
                lock(&self.watchers).push(Watcher { queue, dropped: dropped.clone() });
                write_records(&mut stream, &records, &dropped)
            }
        }
    }
}

/// A watcher's writer: its queued records, and a [`Record::Dropped`] line first whenever some were
/// dropped since the last write.
fn write_records(stream: &mut impl Write, records: &Receiver<Arc<str>>, dropped: &AtomicU64) -> io::Result<()> {
    while let Ok(line) = records.recv() {
        let missed = dropped.swap(0, Ordering::Relaxed);
        if missed > 0 {
            stream.write_all(Record::Dropped { count: missed }.json().as_bytes())?;
            stream.write_all(b"\n")?;
        }
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\n")?;
        stream.flush()?;
    }
    Ok(())
}

/// Where the channel lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketName(String);

impl SocketName {
    /// The default: `\\.\pipe\tollgate-service` on Windows; elsewhere `tollgate.sock` in
    /// `$XDG_RUNTIME_DIR` (a per-user directory) or the temporary directory.
    #[must_use]
    pub fn default_for_platform() -> SocketName {
        if cfg!(windows) {
            SocketName("tollgate-service".to_owned())
        } else {
            let directory = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
            SocketName(directory.join("tollgate.sock").display().to_string())
        }
    }

    /// A name given on the command line: a pipe name on Windows, a socket path elsewhere.
    #[must_use]
    pub fn new(name: impl Into<String>) -> SocketName {
        SocketName(name.into())
    }

    /// As shown in messages.
    #[must_use]
    pub fn display(&self) -> String {
        if cfg!(windows) { format!(r"\\.\pipe\{}", self.0) } else { self.0.clone() }
    }

    fn to_name(&self) -> io::Result<Name<'_>> {
        #[cfg(windows)]
        {
            use interprocess::local_socket::GenericNamespaced;
            self.0.as_str().to_ns_name::<GenericNamespaced>()
        }
        #[cfg(not(windows))]
        {
            use interprocess::local_socket::GenericFilePath;
            self.0.as_str().to_fs_name::<GenericFilePath>()
        }
    }
}

/// The listening channel; dropping it stops the listener (and removes a socket file).
pub struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    name: SocketName,
}

impl Listening {
    /// Where it listens.
    #[must_use]
    pub fn name(&self) -> &SocketName {
        &self.name
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// SDDL of the Windows pipe: SYSTEM and Administrators, all access — the driver's own device ACL
/// (`SDDL_DEVOBJ_SYS_ALL_ADM_ALL`), so the channel shows no more than the device would.
#[cfg(windows)]
const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// Starts listening at `name` for `hub`'s clients, each served on its own thread.
///
/// # Errors
/// The listener could not be created (another service holds the name, no permission).
pub fn listen(hub: Arc<Hub>, name: &SocketName) -> io::Result<Listening> {
    let options =
        ListenerOptions::new().name(name.to_name()?).try_overwrite(true).nonblocking(ListenerNonblockingMode::Accept);
    #[cfg(windows)]
    let options = {
        use interprocess::os::windows::local_socket::ListenerOptionsExt;
        use interprocess::os::windows::security_descriptor::SecurityDescriptor;
        let sddl = widestring::U16CString::from_str(PIPE_SDDL).map_err(io::Error::other)?;
        options.security_descriptor(SecurityDescriptor::deserialize(&sddl)?)
    };
    let listener = options.create_sync()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Owner only: the channel shows what every process on the machine connects to.
        std::fs::set_permissions(&name.0, std::fs::Permissions::from_mode(0o600))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new().name("tollgate-control".to_owned()).spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok(stream) => {
                    let hub = hub.clone();
                    let _ = std::thread::Builder::new().name("tollgate-client".to_owned()).spawn(move || {
                        // Blocking I/O on the client's own thread.
                        let _ = stream.set_nonblocking(false);
                        let _ = hub.serve_client(stream);
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })?;
    Ok(Listening { stop, thread: Some(thread), name: name.clone() })
}

/// Connects to a service's channel and sends `request`; the stream then carries the answer.
///
/// # Errors
/// No service listens at `name`, or the request could not be sent.
pub fn connect(name: &SocketName, request: &Request) -> io::Result<BufReader<Stream>> {
    let mut stream = Stream::connect(name.to_name()?)?;
    let line = serde_json::to_string(request).map_err(io::Error::other)?;
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.flush()?;
    Ok(BufReader::new(stream))
}

/// `stats` from a running service.
///
/// # Errors
/// No service, or a malformed answer.
pub fn request_stats(name: &SocketName) -> io::Result<StatsView> {
    let mut reader = connect(name, &Request::Stats)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    serde_json::from_str(line.trim()).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}
