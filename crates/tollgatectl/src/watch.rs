//! `tollgatectl watch`: a live view of the connections a running `serve` decides and the flows
//! its driver identifies, read from the service's control channel ([`crate::hub`]).
//!
//! On a terminal it is a table that refreshes (a header with the running counts, then the latest
//! records, newest at the bottom, as many as fit); on a pipe or a file, or with `--lines`, it is
//! one line per record in `serve`'s text format (or the JSON lines as the service sent them, with
//! `--json`). A watcher never slows the service down: if it reads too slowly, the service drops
//! records for it and says how many, and the view shows that count.

use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crossterm::{cursor, execute, queue, terminal};

use crate::hub::{self, Request, SocketName};
use crate::records::{ConnectionRecord, Record};

/// What `watch` was asked to do.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The service's control channel.
    pub control: SocketName,
    /// Plain lines even on a terminal.
    pub lines: bool,
    /// JSON lines (implies plain lines).
    pub json: bool,
    /// Stop after this many records (tests, scripts).
    pub count: Option<u64>,
}

/// Exit code: no service listens on the channel.
pub const EXIT_NO_SERVICE: u8 = 1;

/// The `watch` command: returns the exit code.
pub fn run(options: &WatchOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let reader = match hub::connect(&options.control, &Request::Watch) {
        Ok(reader) => reader,
        Err(error) => {
            let _ = writeln!(
                err,
                "tollgatectl watch: no service on {} ({error}). Start `tollgatectl serve` first (or pass its --control).",
                options.control.display()
            );
            return EXIT_NO_SERVICE;
        }
    };
    let table = !options.lines && !options.json && io::stdout().is_terminal();
    let result = if table {
        watch_table(reader, out, options.count)
    } else {
        watch_lines(reader, out, options.json, options.count).map(|_| ())
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            let _ = writeln!(err, "tollgatectl watch: {error}");
            EXIT_NO_SERVICE
        }
    }
}

/// One line per record until the service goes away or `count` records were shown. Returns how
/// many records were shown.
///
/// # Errors
/// Writing failed, or a line from the service did not parse.
pub fn watch_lines(reader: impl BufRead, out: &mut dyn Write, json: bool, count: Option<u64>) -> io::Result<u64> {
    let mut shown = 0_u64;
    for line in reader.lines() {
        if count.is_some_and(|count| shown >= count) {
            break;
        }
        let line = line?;
        let record: Record =
            serde_json::from_str(&line).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        writeln!(out, "{}", if json { line } else { record.text() })?;
        out.flush()?;
        shown = shown.saturating_add(1);
    }
    if count.is_none_or(|count| shown < count) {
        writeln!(out, "# the service closed the channel")?;
    }
    Ok(shown)
}

/// The running totals the table's header shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections the service read.
    pub pended: u64,
    /// Decisions seen.
    pub decisions: u64,
    /// Of which allowed.
    pub allowed: u64,
    /// Of which blocked.
    pub blocked: u64,
    /// Flow events seen.
    pub flows: u64,
    /// Flows dropped by the domain blocklist.
    pub flows_dropped: u64,
    /// Records the service dropped for this watcher.
    pub missed: u64,
}

impl Totals {
    /// Counts `record`.
    pub fn add(&mut self, record: &Record) {
        match record {
            Record::Pended(_) => self.pended = self.pended.saturating_add(1),
            Record::Decision(d) => {
                self.decisions = self.decisions.saturating_add(1);
                if d.verdict == "allow" {
                    self.allowed = self.allowed.saturating_add(1);
                } else {
                    self.blocked = self.blocked.saturating_add(1);
                }
            }
            Record::Flow(f) => {
                self.flows = self.flows.saturating_add(1);
                if f.verdict == "dropped" {
                    self.flows_dropped = self.flows_dropped.saturating_add(1);
                }
            }
            Record::Dropped { count } => self.missed = self.missed.saturating_add(*count),
            Record::Notice(_) => {}
        }
    }
}

/// The layer, application and remote columns of a connection.
fn columns(connection: &ConnectionRecord) -> String {
    format!(
        "{:<7} {:<22} {:<28}",
        connection.layer,
        connection.app_name(),
        format!("{}/{}", connection.remote, connection.protocol)
    )
}

/// One table row for `record` (`width` columns at most).
#[must_use]
pub fn row(record: &Record, width: usize) -> String {
    let clock = |time: &str| time.get(11..23).unwrap_or(time).to_owned();
    let line = match record {
        Record::Pended(c) => format!("{} {:<5} {} (deciding)", clock(&c.time), "wait", columns(c)),
        Record::Decision(d) => format!(
            "{} {:<5} {} {}{}",
            clock(&d.connection.time),
            d.verdict,
            columns(&d.connection),
            d.rule,
            d.result.as_ref().map(|r| format!(" [{r}]")).unwrap_or_default()
        ),
        Record::Flow(f) => format!(
            "{} {:<5} {:<7} {:<22} {:<28} {} {}",
            clock(&f.time),
            if f.verdict == "dropped" { "drop" } else { "flow" },
            f.protocol,
            if f.name == "-" { "-".to_owned() } else { f.name.clone() },
            f.remote,
            f.event,
            f.alpn
        ),
        Record::Notice(n) => format!("{} # {}", clock(&n.time), n.message),
        Record::Dropped { count } => format!("# {count} record(s) dropped: this terminal was too slow"),
    };
    line.chars().take(width.max(1)).collect()
}

/// The refreshing table (see the module docs).
fn watch_table<R: BufRead + Send + 'static>(reader: R, out: &mut dyn Write, count: Option<u64>) -> io::Result<()> {
    let (records, incoming) = mpsc::channel();
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let Ok(record) = serde_json::from_str::<Record>(&line) else { continue };
            if records.send(record).is_err() {
                break;
            }
        }
    });
    let mut totals = Totals::default();
    let mut recent: VecDeque<Record> = VecDeque::new();
    let mut shown = 0_u64;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut dirty = true;
    let mut open = true;
    while open {
        match incoming.recv_timeout(Duration::from_millis(200)) {
            Ok(record) => {
                totals.add(&record);
                recent.push_back(record);
                if recent.len() > 500 {
                    recent.pop_front();
                }
                shown = shown.saturating_add(1);
                dirty = true;
                if count.is_some_and(|count| shown >= count) {
                    open = false;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        // At most ten redraws a second, however fast records come.
        if dirty && (last_draw.elapsed() >= Duration::from_millis(100) || !open) {
            draw(out, &totals, &recent)?;
            last_draw = Instant::now();
            dirty = false;
        }
    }
    writeln!(out)?;
    writeln!(out, "# the service closed the channel")?;
    Ok(())
}

fn draw(mut out: &mut dyn Write, totals: &Totals, recent: &VecDeque<Record>) -> io::Result<()> {
    let (columns, rows) = terminal::size().unwrap_or((120, 30));
    let width = usize::from(columns);
    let body = usize::from(rows).saturating_sub(4).max(1);
    queue!(&mut out, cursor::MoveTo(0, 0), terminal::Clear(terminal::ClearType::All))?;
    let header = format!(
        "tollgatectl watch — read {}, decided {} (allow {}, block {}), flows {} (dropped {}), missed {}",
        totals.pended,
        totals.decisions,
        totals.allowed,
        totals.blocked,
        totals.flows,
        totals.flows_dropped,
        totals.missed
    );
    writeln!(out, "{}\r", header.chars().take(width).collect::<String>())?;
    let columns_line =
        format!("{:<12} {:<5} {:<7} {:<22} {:<28} {}", "time", "what", "layer", "app / name", "remote", "rule / event");
    writeln!(out, "{}\r", columns_line.chars().take(width).collect::<String>())?;
    for record in recent.iter().skip(recent.len().saturating_sub(body)) {
        writeln!(out, "{}\r", row(record, width))?;
    }
    execute!(&mut out, cursor::MoveTo(0, rows.saturating_sub(1)))?;
    out.flush()
}
