//! `tollgatectl`: Tollgate's verdict service and command line.
//!
//! On Linux (and anywhere without the driver) it runs Tollgate's real driver logic against the
//! WFP model: `tollgatectl simulate` is the project's main job here, and `serve`, `watch` and
//! `stats` work against a live model machine. On Windows, `tollgatectl serve` is the verdict
//! service for the loaded driver (see `tollgatectl::serve`), and `install`, `uninstall`, `start`
//! and `stop` manage the driver's service.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgatectl::admin::{self, AdminCommand};
use tollgatectl::hub::SocketName;
use tollgatectl::serve::{self, ServeOptions};
use tollgatectl::simulate::{self, NaiveMode, SimConfig};
use tollgatectl::stats_cmd::{self, StatsOptions};
use tollgatectl::watch::{self, WatchOptions};

#[derive(Parser, Debug)]
#[command(name = "tollgatectl", version, about = "Tollgate's verdict service and command line")]
struct Cli {
    /// The service's log (stderr): human-readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run Tollgate's driver logic and verdict service against the WFP model under a realistic
    /// workload, and report what happened (exit 0: no bugcheck, hazard or leak).
    Simulate(SimulateArgs),
    /// The verdict service: answer the driver's pended connections with the rules, one output
    /// line per decision and flow; keeps the driver's configuration and domain blocklist in line
    /// with the rules, picks up rules-file changes, reconnects when the driver restarts. Serves
    /// \\.\Tollgate on Windows, and a live simulated machine on the WFP model elsewhere (--model).
    Serve(ServeArgs),
    /// A live view of what a running `serve` decides: a refreshing table on a terminal, one line per
    /// record otherwise.
    Watch(WatchArgs),
    /// The driver's counters and the service's state, from a running `serve` (or the driver with
    /// --driver, Windows).
    Stats(StatsArgs),
    /// Rules files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Install the driver package (Windows, elevated): checks test signing, then pnputil.
    Install(InstallArgs),
    /// Stop and remove the driver package (Windows, elevated).
    Uninstall,
    /// Start the driver (Windows, elevated).
    Start,
    /// Stop the driver (Windows, elevated; stop `serve` first).
    Stop,
}

#[derive(clap::Args, Debug)]
struct InstallArgs {
    /// The package's INF (the `cargo make` package's tollgate.inf).
    #[arg(long, value_name = "FILE")]
    inf: PathBuf,
    /// Install even when test signing is off (a production-signed package).
    #[arg(long)]
    skip_test_signing_check: bool,
}

#[derive(clap::Args, Debug)]
struct WatchArgs {
    /// The service's control channel (default: the platform's; see `serve --control`).
    #[arg(long, value_name = "NAME")]
    control: Option<String>,
    /// One line per record even on a terminal.
    #[arg(long)]
    lines: bool,
    /// The records as JSON lines.
    #[arg(long)]
    json: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

#[derive(clap::Args, Debug)]
struct StatsArgs {
    /// The service's control channel (default: the platform's).
    #[arg(long, value_name = "NAME")]
    control: Option<String>,
    /// Read the driver's counters directly (Windows), not through the service.
    #[arg(long)]
    driver: bool,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Validate a rules file without applying it: a summary (exit 0), or the mistake with its
    /// file, line and column (exit 2).
    Check {
        /// The rules file (TOML).
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The rules file (TOML); without it, the built-in default rules. Changes are picked up live.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Serve a live simulated machine on the WFP model (the default anywhere but Windows).
    #[arg(long, conflicts_with = "driver")]
    model: bool,
    /// Serve the driver, \\.\Tollgate (the default on Windows).
    #[arg(long)]
    driver: bool,
    /// Records on stdout as JSON lines.
    #[arg(long)]
    json: bool,
    /// The control channel for `watch` and `stats`: a pipe name on Windows (default
    /// tollgate-service), a socket path elsewhere (default $XDG_RUNTIME_DIR/tollgate.sock).
    #[arg(long, value_name = "NAME")]
    control: Option<String>,
    /// Stop after this long (e.g. 30s); on the model, then report its hazards and leaks.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    run_for: Option<Duration>,
    /// On the model: new connections per second.
    #[arg(long, value_name = "N", default_value_t = 20)]
    rate: u32,
    /// Testing: hold every batch this long before answering (e.g. 3s), so that a test can kill the
    /// service while connections are pended. Keep it below the driver's 5 s pend timeout.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    verdict_delay: Duration,
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// Seed of every random choice: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Connections to open.
    #[arg(long, default_value_t = 20_000)]
    connections: u64,
    /// Model time over which the connections are opened (e.g. 60s, 2m, 500ms).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Processes running on the simulated machine.
    #[arg(long, default_value_t = 32)]
    processes: usize,
    /// Percentage of connections torn down at a random moment (RST, process kill).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(0..=100))]
    teardown_percent: u32,
    /// Verdict-service crashes during the run (each followed by a restart).
    #[arg(long, default_value_t = 3)]
    service_crashes: u32,
    /// Run the naive driver instead: it ends in the simulated bugcheck. `connect`: only its
    /// pend-and-complete-later callout (0x50); `stream`: only its stream callout that keeps
    /// streamData (0xD1); `both` (the default): whichever the workload reaches first.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "both")]
    naive: Option<NaiveArg>,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum NaiveArg {
    Both,
    Connect,
    Stream,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log(cli.log_format);
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    match cli.command {
        Command::Simulate(args) => run_simulate(&args),
        Command::Rules(RulesCommand::Check { file }) => {
            ExitCode::from(tollgatectl::rules_cmd::check(&file, &mut std::io::stdout(), &mut std::io::stderr()))
        }
        Command::Serve(args) => {
            let options = ServeOptions {
                rules: args.rules,
                model: if args.model {
                    Some(true)
                } else if args.driver {
                    Some(false)
                } else {
                    None
                },
                verdict_delay: args.verdict_delay,
                json: args.json,
                control: args.control.map(SocketName::new),
                run_for: args.run_for,
                rate: args.rate,
            };
            ExitCode::from(serve::run(&options, &mut stdout))
        }
        Command::Watch(args) => {
            let options = WatchOptions {
                control: args.control.map_or_else(SocketName::default_for_platform, SocketName::new),
                lines: args.lines,
                json: args.json,
                count: args.count,
            };
            ExitCode::from(watch::run(&options, &mut stdout, &mut stderr))
        }
        Command::Stats(args) => {
            let options = StatsOptions {
                control: args.control.map_or_else(SocketName::default_for_platform, SocketName::new),
                driver: args.driver,
                json: args.json,
            };
            ExitCode::from(stats_cmd::run(&options, &mut stdout, &mut stderr))
        }
        Command::Install(args) => ExitCode::from(admin::run(
            &AdminCommand::Install { inf: args.inf, skip_test_signing_check: args.skip_test_signing_check },
            &mut stdout,
            &mut stderr,
        )),
        Command::Uninstall => ExitCode::from(admin::run(&AdminCommand::Uninstall, &mut stdout, &mut stderr)),
        Command::Start => ExitCode::from(admin::run(&AdminCommand::Start, &mut stdout, &mut stderr)),
        Command::Stop => ExitCode::from(admin::run(&AdminCommand::Stop, &mut stdout, &mut stderr)),
    }
}

/// The service's log on stderr: `RUST_LOG` filters it (default `info`).
fn init_log(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => {
            let _ = builder.try_init();
        }
        LogFormat::Json => {
            let _ = builder.json().try_init();
        }
    }
}

fn run_simulate(args: &SimulateArgs) -> ExitCode {
    let config = SimConfig {
        seed: args.seed,
        connections: args.connections,
        duration_ms: u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX).max(1),
        processes: args.processes.max(1),
        naive: args.naive.map(|mode| match mode {
            NaiveArg::Both => NaiveMode::Both,
            NaiveArg::Connect => NaiveMode::Connect,
            NaiveArg::Stream => NaiveMode::Stream,
        }),
        early_teardown_percent: args.teardown_percent,
        service_crashes: args.service_crashes,
        progress: !args.quiet,
        ..SimConfig::default()
    };
    let mut stderr = std::io::stderr();
    match simulate::run(&config, &mut stderr) {
        Ok(report) => {
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(report.render().as_bytes());
            if report.engine.bugcheck.is_some() {
                ExitCode::from(2)
            } else if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            let _ = writeln!(stderr, "tollgatectl: {error}");
            ExitCode::FAILURE
        }
    }
}
