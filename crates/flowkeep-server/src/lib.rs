//! Transports and process wiring: configuration, the embedded store, the master key, the core (bootstrap
//! of principals and keys), the protocol hub, the HTTP listener (`/health`, `/config`, the OpenIAP
//! WebSocket transport on `/ws/v2`), the OpenIAP gRPC listener, TLS for both, and the TTL sweeper.

pub mod config;
pub mod grpc;
pub mod http;
pub mod tls;
pub mod transport;
pub mod ws;

use anyhow::Context;
use flowkeep_broker::{AmqpBroker, AmqpConfig, Message, Target};
use flowkeep_core::Platform;
use flowkeep_security::keys::KeyFileStatus;
use flowkeep_security::MasterKey;
use flowkeep_store::{SqliteStore, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use transport::{ConnectionHandler, Shutdown, ShutdownTrigger, TransportLimits};

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
    let platform = if config.amqp_url.trim().is_empty() {
        Platform::open(store.clone() as Arc<dyn Store>, config.platform_config(), &master).await
    } else {
        let broker = AmqpBroker::connect(AmqpConfig::new(config.amqp_url.trim()))
            .await
            .context("configuration key 'amqp_url': connecting to RabbitMQ")?;
        tracing::info!("messaging on RabbitMQ");
        Platform::open_with_broker(store.clone() as Arc<dyn Store>, config.platform_config(), &master, Arc::new(broker))
            .await
    }
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

/// Runs the server until `shutdown` completes, then stops accepting, drains open connections and returns.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let server = start(config).await?;
    shutdown.await;
    server.stop().await
}

/// A running server: both listeners, the protocol hub and the TTL sweeper.
pub struct RunningServer {
    transports: Transports,
    state: Arc<http::HttpState>,
    sweeper: JoinHandle<()>,
    forwarder: JoinHandle<()>,
}

impl RunningServer {
    /// Where the HTTP (and WebSocket) listener is bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.transports.http_addr
    }

    /// Where the gRPC listener is bound.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.transports.grpc_addr
    }

    /// Stops accepting, ends open connections after their pending replies, and waits (bounded) for both
    /// listeners to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.state.ready.store(false, Ordering::Release);
        tracing::info!("shutting down: no longer accepting work");
        let result = self.transports.stop().await;
        self.sweeper.abort();
        self.forwarder.abort();
        result.map_err(anyhow::Error::from)
    }
}

/// Opens the platform and starts the listeners (HTTP with `/ws/v2`, and gRPC), with TLS when configured.
/// Addresses with port 0 bind a free port; [`RunningServer::http_addr`] tells which.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    config.validate()?;
    let tls = tls_material(&config)?;
    let (store, platform) = open_platform(&config).await?;
    let platform = Arc::new(platform);
    let hub = flowkeep_protocol::Hub::new(platform.clone(), config.protocol_config());

    let sweeper =
        tokio::spawn(housekeeping(store.clone(), platform.clone(), Duration::from_secs(config.ttl_sweep_seconds)));
    let forwarder = tokio::spawn(forward_ready_workitems(platform.clone()));

    let http_listener = bind("HTTP", config.http_socket_addr()?).await?;
    let grpc_listener = bind("gRPC", config.grpc_socket_addr()?).await?;
    let mut public = config.clone();
    public.http_addr = http_listener.local_addr()?.to_string();
    public.grpc_addr = grpc_listener.local_addr()?.to_string();
    let probe_store = store.clone();
    let state = Arc::new(http::HttpState {
        config: public,
        ready: AtomicBool::new(false),
        store_probe: Box::new(move || probe_store.ping().map_err(|e| e.to_string())),
        platform,
    });
    let limits = TransportLimits::new(config.max_message_bytes());
    let transports = Transports::start(
        hub,
        TransportSetup { http: http_listener, grpc: grpc_listener, routes: http::router(state.clone()), limits, tls },
    )?;
    tracing::info!(
        http = %transports.http_addr,
        grpc = %transports.grpc_addr,
        tls = config.tls_enabled(),
        "listening (WebSocket on {})",
        ws::PATH
    );
    state.ready.store(true, Ordering::Release);
    Ok(RunningServer { transports, state, sweeper, forwarder })
}

/// The TLS certificate and key the configuration asks for, if any.
pub fn tls_material(config: &Config) -> Result<Option<tls::TlsMaterial>, tls::TlsError> {
    if config.dev_tls {
        return tls::dev_certificate(&config.data_dir).map(Some);
    }
    if config.tls_cert_file.trim().is_empty() {
        return Ok(None);
    }
    let material =
        tls::TlsMaterial::load(Path::new(config.tls_cert_file.trim()), Path::new(config.tls_key_file.trim()))?;
    tracing::info!(cert = %material.cert_path.display(), "serving TLS");
    Ok(Some(material))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { what, addr, source })
}

/// A listener that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address could not be bound.
    #[error("binding the {what} listener on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS setup was refused.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The gRPC server could not be set up or failed.
    #[error("gRPC listener: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// A listener task failed.
    #[error("{0}")]
    Task(String),
}

/// What [`Transports::start`] serves.
pub struct TransportSetup {
    /// The HTTP listener; `/ws/v2` is added to `routes` on it.
    pub http: TcpListener,
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// Other HTTP routes (probes, `/config`); an empty router for a bare transport.
    pub routes: axum::Router,
    /// Frame size limits.
    pub limits: TransportLimits,
    /// When set, both listeners serve TLS only.
    pub tls: Option<tls::TlsMaterial>,
}

impl TransportSetup {
    /// Both transports alone, with no other routes and no TLS (the bare echo of the wire benchmark).
    pub fn bare(http: TcpListener, grpc: TcpListener, limits: TransportLimits) -> TransportSetup {
        TransportSetup { http, grpc, routes: axum::Router::new(), limits, tls: None }
    }
}

/// Both transports serving one connection handler (the protocol hub, or [`transport::Echo`] for the
/// wire benchmark), with a shared shutdown.
pub struct Transports {
    /// The bound HTTP (and WebSocket) address.
    pub http_addr: SocketAddr,
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    trigger: ShutdownTrigger,
    http: JoinHandle<Result<(), ServeError>>,
    grpc: JoinHandle<Result<(), ServeError>>,
}

/// How long open connections get to finish after shutdown before they are cut.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Transports {
    /// Starts serving `handler` on both listeners.
    pub fn start<H: ConnectionHandler>(handler: Arc<H>, setup: TransportSetup) -> Result<Transports, ServeError> {
        let (trigger, shutdown) = Shutdown::new();
        let http_addr = setup.http.local_addr()?;
        let grpc_addr = setup.grpc.local_addr()?;
        let routes = setup.routes.merge(ws::router(handler.clone(), setup.limits, shutdown.clone()));
        let http_listener = match &setup.tls {
            Some(material) => {
                HttpListener::Tls(tls::TlsListener::new(setup.http, material.server_config(&[b"http/1.1"])?)?)
            }
            None => HttpListener::Plain(setup.http),
        };
        let http = tokio::spawn(serve_http(http_listener, routes, shutdown.clone()));

        // HTTP/2 pings find peers that vanished without closing (clients answer them automatically).
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(material) = &setup.tls {
            let identity = tonic::transport::Identity::from_pem(&material.cert_pem, &material.key_pem);
            builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
        }
        let incoming = tonic::transport::server::TcpIncoming::from_listener(setup.grpc, true, None)
            .map_err(|e| ServeError::Task(format!("gRPC listener: {e}")))?;
        let router = builder.add_service(grpc::GrpcService::server(handler, setup.limits, shutdown.clone()));
        let grpc_shutdown = shutdown.clone();
        let grpc = tokio::spawn(async move {
            router.serve_with_incoming_shutdown(incoming, grpc_shutdown.wait()).await.map_err(ServeError::from)
        });
        Ok(Transports { http_addr, grpc_addr, trigger, http, grpc })
    }

    /// Stops both listeners: no new connections, open ones drain (bounded by a timeout) and end.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.trigger.trigger();
        let mut result = Ok(());
        for (what, task) in [("HTTP", self.http), ("gRPC", self.grpc)] {
            let abort = task.abort_handle();
            match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(e),
                Ok(Err(e)) => result = Err(ServeError::Task(format!("{what} listener task: {e}"))),
                Err(_) => {
                    tracing::warn!(listener = what, "connections still open after the drain timeout; closing them");
                    abort.abort();
                }
            }
        }
        result
    }
}

/// The HTTP listener, plain or TLS.
enum HttpListener {
    Plain(TcpListener),
    Tls(tls::TlsListener),
}

/// Serves `routes` with connection info (the peer address) until `shutdown`.
async fn serve_http(listener: HttpListener, routes: axum::Router, shutdown: Shutdown) -> Result<(), ServeError> {
    use axum::serve::ListenerExt;
    let app = routes.into_make_service_with_connect_info::<SocketAddr>();
    match listener {
        HttpListener::Plain(listener) => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).with_graceful_shutdown(shutdown.wait()).await?;
        }
        HttpListener::Tls(listener) => {
            // TCP_NODELAY is set by the TLS listener before the handshake.
            let listener = listener.tap_io(|_| {});
            axum::serve(listener, app).with_graceful_shutdown(shutdown.wait()).await?;
        }
    }
    Ok(())
}

/// How often workitem queues with an `amqpqueue` are checked for ready items (the reference's
/// `workitem_queue_monitoring_interval`).
const WORKITEM_MONITOR_INTERVAL: Duration = Duration::from_secs(10);

/// Periodic housekeeping: removes expired documents (TTL indexes and `expireAfterSeconds`) and returns
/// workitems whose lease ran out every `every`; announces queues with ready workitems every
/// [`WORKITEM_MONITOR_INTERVAL`].
async fn housekeeping(store: Arc<SqliteStore>, platform: Arc<Platform>, every: Duration) {
    let mut sweep = tokio::time::interval(every);
    let mut monitor = tokio::time::interval(WORKITEM_MONITOR_INTERVAL);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                let now = chrono::Utc::now();
                let store = store.clone();
                let millis = now.timestamp_millis();
                match tokio::task::spawn_blocking(move || store.expire_documents(millis)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(removed = n, "expired documents removed"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "TTL sweep failed"),
                    Err(e) => tracing::warn!(error = %e, "TTL sweep task failed"),
                }
                match platform.expire_workitem_leases(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(returned = n, "workitems whose lease ran out returned to their queues"),
                    Err(e) => tracing::warn!(error = %e, "workitem lease sweep failed"),
                }
            }
            _ = monitor.tick() => {
                if let Err(e) = platform.announce_ready_workitem_queues(chrono::Utc::now()).await {
                    tracing::warn!(error = %e, "workitem queue monitoring failed");
                }
            }
        }
    }
}

/// Tells each workitem queue's `amqpqueue` that items are ready, with the reference's message
/// `{wiq, wiqid, packageid}`, so agents consuming that queue come and pop.
async fn forward_ready_workitems(platform: Arc<Platform>) {
    let mut notices = platform.subscribe_workitem_ready();
    loop {
        let notice = match notices.recv().await {
            Ok(notice) => notice,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "workitem ready notices were dropped; the next monitoring round repeats them"
                );
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let body = serde_json::json!({"wiq": notice.queue, "wiqid": notice.queue_id, "packageid": notice.packageid});
        // A notice is only a hint: it expires with the next monitoring round.
        let message = Message::json(&body).with_expiration_ms(WORKITEM_MONITOR_INTERVAL.as_millis() as u64);
        if let Err(e) = platform.broker().publish(&Target::queue(notice.amqpqueue.clone()), message).await {
            tracing::debug!(error = %e, queue = %notice.amqpqueue, "could not tell a queue about ready workitems");
        }
    }
}
