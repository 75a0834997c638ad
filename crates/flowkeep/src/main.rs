//! The `flowkeep` command line: run the server, inspect the configuration, run benchmarks.

mod bench;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flowkeep_server::Config;
use std::path::PathBuf;

/// Flowkeep: an open automation-platform core. Documents with per-document access control, users and
/// roles, queues and workitems; speaks the OpenIAP protocol. One binary, from a Raspberry Pi to a cluster.
#[derive(Parser)]
#[command(name = "flowkeep", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as FLOWKEEP_<KEY> in the environment,
    /// which wins over the file. See `flowkeep config --keys`.
    #[arg(long, short, global = true, env = "FLOWKEEP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite store by default; data in `data_dir`).
    Serve {
        /// Serve TLS with a self-signed certificate for localhost, generated into <data_dir>/dev-tls/
        /// (same as the configuration key `dev_tls`). For development only.
        #[arg(long)]
        dev_tls: bool,
    },
    /// Validate the configuration and print it as TOML (or, with --keys, list the keys).
    Config {
        /// List the configuration keys and their environment variable names instead.
        #[arg(long)]
        keys: bool,
    },
    /// Run a benchmark and print a Markdown table of the results.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Inspect the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new active signing key; retired keys keep verifying until their long tokens expire.
    /// Run it while the server is stopped (the embedded database is opened by one process at a time).
    Rotate,
    /// Print the JWKS: the public keys that verify tokens (the active one and retired ones).
    Jwks,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit chain: reports every removed, reordered or altered entry; exits 1 if any.
    /// Run it while the server is stopped (the embedded database is opened by one process at a time).
    Verify,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { dev_tls } => {
            let mut config = Config::load(cli.config.as_deref())?;
            if dev_tls {
                config.dev_tls = true;
                config.validate()?;
            }
            init_logging(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(flowkeep_server::serve(config, shutdown_signal()))?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Config { keys } => {
            if keys {
                for key in Config::keys() {
                    println!("{key:<24} FLOWKEEP_{}", key.to_ascii_uppercase());
                }
                return Ok(());
            }
            let config = Config::load(cli.config.as_deref())?;
            let as_json = serde_json::to_value(&config)?;
            for (key, value) in as_json.as_object().into_iter().flatten() {
                let secret = flowkeep_server::config::SECRET_KEYS.contains(&key.as_str());
                match value {
                    serde_json::Value::String(s) if secret && !s.is_empty() => println!("{key} = \"(set, hidden)\""),
                    _ => println!("{key} = {value}"),
                }
            }
            Ok(())
        }
        Command::Bench(cmd) => bench::run(cmd),
        Command::Keys(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            init_logging(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let (_store, platform) = flowkeep_server::open_platform(&config).await?;
                match cmd {
                    KeysCommand::Rotate => {
                        let kid = platform.rotate_signing_key().await?;
                        println!("new active signing key: {kid}");
                    }
                    KeysCommand::Jwks => println!("{}", serde_json::to_string_pretty(&platform.jwks().await)?),
                }
                Ok::<(), anyhow::Error>(())
            })
        }
        Command::Audit(AuditCommand::Verify) => {
            let config = Config::load(cli.config.as_deref())?;
            init_logging(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(async {
                let (_store, platform) = flowkeep_server::open_platform(&config).await?;
                platform.verify_audit().await.map_err(anyhow::Error::from)
            })?;
            println!("checked {} audit entries", report.checked);
            for problem in &report.problems {
                println!("problem: {problem:?}");
            }
            if report.is_ok() {
                println!("the audit chain is intact");
                Ok(())
            } else {
                println!("{} problem(s) found", report.problems.len());
                std::process::exit(1);
            }
        }
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => EnvFilter::try_new(directives).context("RUST_LOG")?,
        Err(_) => EnvFilter::try_new(&config.log_level).context("configuration key 'log_level'")?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
