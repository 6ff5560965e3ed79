//! `tollgatectl`: Tollgate's verdict service and command line.
//!
//! On Linux (and anywhere without the driver) it runs Tollgate's real driver logic against the
//! WFP model: `tollgatectl simulate` is the project's main job here. On Windows, `tollgatectl serve`
//! is the verdict service for the loaded driver (see `tollgatectl::serve`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgatectl::serve::{self, ServeOptions};
use tollgatectl::simulate::{self, NaiveMode, SimConfig};

#[derive(Parser, Debug)]
#[command(name = "tollgatectl", version, about = "Tollgate's verdict service and command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run Tollgate's driver logic and verdict service against the WFP model under a realistic
    /// workload, and report what happened (exit 0: no bugcheck, hazard or leak).
    Simulate(SimulateArgs),
    /// The verdict service: answer the driver's pended connections through \\.\Tollgate with the
    /// rules, one output line per decision; reconnects when the driver restarts. Windows only (elsewhere
    /// there is no driver: use `simulate`).
    Serve(ServeArgs),
    /// Rules files.
    #[command(subcommand)]
    Rules(RulesCommand),
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
    /// The rules file (TOML); without it, the built-in default rules.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Serve against the WFP model instead of the driver (not implemented yet: use `simulate`).
    #[arg(long)]
    model: bool,
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
    match cli.command {
        Command::Simulate(args) => run_simulate(&args),
        Command::Rules(RulesCommand::Check { file }) => {
            ExitCode::from(tollgatectl::rules_cmd::check(&file, &mut std::io::stdout(), &mut std::io::stderr()))
        }
        Command::Serve(args) => {
            let options = ServeOptions { rules: args.rules, model: args.model, verdict_delay: args.verdict_delay };
            ExitCode::from(serve::run(&options, &mut std::io::stdout(), &mut std::io::stderr()))
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
