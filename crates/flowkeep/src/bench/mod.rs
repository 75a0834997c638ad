//! Benchmark harness behind `flowkeep bench …`: plain timing loops (warm-up, then many iterations)
//! that print a Markdown table. Benchmarks are never timed assertions in tests.

pub mod messaging;
pub mod scope;
pub mod store;
pub mod wire;

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where a benchmark puts its database files: the given directory (created if needed), or a temporary
/// one that is removed when the returned guard drops.
pub(crate) fn work_dir(dir: Option<&PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            Ok((d.clone(), None))
        }
        None => {
            let temp = tempfile::tempdir()?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// Removes a SQLite database file with its WAL and shared-memory files, so a run starts empty.
pub(crate) fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The benchmarks `flowkeep bench` can run.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// The embedded document store against raw rusqlite with the same file settings.
    Store(store::StoreBenchArgs),
    /// ACL-scoped reads against the same reads unscoped, on 100k documents of which 1% are readable.
    Scope(scope::ScopeBenchArgs),
    /// Round trips over the OpenIAP gRPC and WebSocket transports (query by _id, insertone) against a
    /// bare echo served by the same transport code.
    Wire(wire::WireBenchArgs),
    /// queuemessage → queueevent through the server against the raw broker (in-process, and RabbitMQ
    /// through lapin), and the popworkitem → updateworkitem rate.
    Messaging(messaging::MessagingBenchArgs),
}

/// Runs one benchmark command and prints its results to stdout.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store(args) => store::run(&args),
        BenchCommand::Scope(args) => scope::run(&args),
        BenchCommand::Wire(args) => wire::run(&args),
        BenchCommand::Messaging(args) => messaging::run(&args),
    }
}
