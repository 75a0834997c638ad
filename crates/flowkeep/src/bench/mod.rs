//! Benchmark harness behind `flowkeep bench …`: plain timing loops (warm-up, then many iterations)
//! that print a Markdown table. Benchmarks are never timed assertions in tests.

pub mod scope;
pub mod store;

/// The benchmarks `flowkeep bench` can run.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// The embedded document store against raw rusqlite with the same file settings.
    Store(store::StoreBenchArgs),
    /// ACL-scoped reads against the same reads unscoped, on 100k documents of which 1% are readable.
    Scope(scope::ScopeBenchArgs),
}

/// Runs one benchmark command and prints its results to stdout.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store(args) => store::run(&args),
        BenchCommand::Scope(args) => scope::run(&args),
    }
}
