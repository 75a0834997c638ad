//! Benchmark harness behind `flowkeep bench …`: plain timing loops (warm-up, then many iterations)
//! that print a Markdown table. Benchmarks are never timed assertions in tests.

pub mod store;

/// The benchmarks `flowkeep bench` can run.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// The embedded document store against raw rusqlite with the same file settings.
    Store(store::StoreBenchArgs),
}

/// Runs one benchmark command and prints its results to stdout.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store(args) => store::run(&args),
    }
}
