//! Transports and process wiring. For now: configuration, the embedded store, the master key, the core
//! (bootstrap of principals and keys), the HTTP listener (`/health`, `/config`) and the TTL sweeper; the
//! OpenIAP gRPC and WebSocket transports come next.

pub mod config;
pub mod http;

use anyhow::Context;
use flowkeep_core::Platform;
use flowkeep_security::keys::KeyFileStatus;
use flowkeep_security::MasterKey;
use flowkeep_store::{SqliteStore, Store};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;

/// Opens the embedded store, the master key and the core (which bootstraps the well-known principals, the
/// first admin and the token signing keys on first start).
pub async fn open_platform(config: &Config) -> anyhow::Result<(Arc<SqliteStore>, Platform)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let db_path = config.database_path();
    let store =
        Arc::new(SqliteStore::open(&db_path).with_context(|| format!("opening the database {}", db_path.display()))?);
    tracing::info!(path = %db_path.display(), "embedded store open");
    let master = load_master_key(config)?;
    let platform = Platform::open(store.clone() as Arc<dyn Store>, config.platform_config(), &master)
        .await
        .context("starting the core")?;
    Ok((store, platform))
}

fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if !config.master_key.is_empty() {
        return MasterKey::from_config(&config.master_key).context("configuration key 'master_key'");
    }
    let path = config.master_key_path();
    let (key, status) =
        MasterKey::load_or_create(&path).with_context(|| format!("master key file {}", path.display()))?;
    if matches!(status, KeyFileStatus::Created) {
        tracing::warn!(
            path = %path.display(),
            "generated a new master key: back it up together with the database, it cannot be recovered"
        );
    }
    Ok(key)
}

/// Runs the server until `shutdown` completes, then stops accepting and returns.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (store, platform) = open_platform(&config).await?;
    let platform = Arc::new(platform);

    let sweeper = tokio::spawn(sweep_expired(store.clone(), Duration::from_secs(config.ttl_sweep_seconds)));

    let addr = config.http_socket_addr()?;
    let probe_store = store.clone();
    let state = Arc::new(http::HttpState {
        config: config.clone(),
        ready: AtomicBool::new(false),
        store_probe: Box::new(move || probe_store.ping().map_err(|e| e.to_string())),
        platform,
    });
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the HTTP listener on {addr}"))?;
    tracing::info!(%addr, "HTTP listening");
    state.ready.store(true, Ordering::Release);
    let drain_state = state.clone();
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            drain_state.ready.store(false, Ordering::Release);
            tracing::info!("shutting down: no longer accepting work");
        })
        .await
        .context("HTTP listener failed")?;
    sweeper.abort();
    Ok(())
}

/// Removes expired documents (TTL indexes and `expireAfterSeconds`) at a fixed interval.
async fn sweep_expired(store: Arc<SqliteStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp_millis();
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.expire_documents(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(removed = n, "expired documents removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "TTL sweep failed"),
            Err(e) => tracing::warn!(error = %e, "TTL sweep task failed"),
        }
    }
}
