//! The conformance harness: one Flowkeep server per test process (started in-process with
//! `flowkeep_server::start` on free ports, on its own runtime thread), clients of the published
//! `openiap-client` over either transport, users created through the client, and small helpers that turn
//! client results into values with readable failure messages.

use openiap_client::{Client, InsertOneRequest, OpenIAPError, QueryRequest, SigninRequest, SigninResponse};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

/// The first admin's user name (bootstrapped by the core).
pub const ADMIN: &str = "flowkeep-admin";
/// The first admin's password. URL-safe on purpose: it also travels in `grpc://user:pw@host` URLs.
pub const ADMIN_PASSWORD: &str = "conformance-admin-pw-2026";
/// How long one client request may take before the test gives up (the client's default is 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The two transports of the official client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// gRPC `SetupStream` (h2c) on the server's `grpc_addr`.
    Grpc,
    /// WebSocket `/ws/v2` on the server's `http_addr`.
    Ws,
}

impl Transport {
    /// A short tag for names of collections and users, so tests over both transports never collide.
    pub fn tag(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Ws => "ws",
        }
    }

    /// The URL the client is given for this transport, optionally with credentials in it.
    pub fn url(self, credentials: Option<(&str, &str)>) -> String {
        server().url(self, credentials)
    }
}

static ENV: Once = Once::new();

/// The client reads its settings from the process environment: telemetry off, no credentials or URLs
/// inherited from the developer's shell (they would change how every client signs in).
fn prepare_environment() {
    ENV.call_once(|| {
        std::env::set_var("enable_analytics", "false");
        for key in [
            "apiurl",
            "grpcapiurl",
            "wsapiurl",
            "OPENIAP_URL",
            "OPENIAP_APIURL",
            "OPENIAP_USERNAME",
            "OPENIAP_PASSWORD",
            "OPENIAP_JWT",
            "jwt",
            "OTEL_METRIC_URL",
            "OTEL_TRACE_URL",
            "OTEL_LOG_URL",
        ] {
            std::env::remove_var(key);
        }
        // Server and client logs on demand, e.g. CONFORMANCE_LOG=flowkeep_protocol=debug,openiap=debug.
        if let Ok(filter) = std::env::var("CONFORMANCE_LOG") {
            openiap_client::enable_tracing(&filter, "");
        }
    });
}

/// A data folder under Cargo's per-target temp dir, named by process id; folders of earlier runs whose
/// process is gone are removed first.
fn data_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let stale = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| !PathBuf::from(format!("/proc/{pid}")).exists());
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the data folder");
    dir
}

/// A server on its own thread and runtime, started with `flowkeep_server::start`; port 0 binds a free
/// port. The configuration goes through `Config::load_from` with `FLOWKEEP_*` variables, as an operator
/// would set it.
pub struct ServerThread {
    /// Port of the HTTP listener (`/config`, `/health`, WebSocket `/ws/v2`).
    pub http_port: u16,
    /// Port of the gRPC listener.
    pub grpc_port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    /// In a mutex only so the shared server can live in a `static`.
    stopped: Mutex<std::sync::mpsc::Receiver<String>>,
}

impl ServerThread {
    /// Starts a server on `data_dir` (created at first start, reused after) and waits until it listens.
    pub fn start(data_dir: &Path, http_port: u16, grpc_port: u16) -> ServerThread {
        prepare_environment();
        let env = [
            ("FLOWKEEP_HTTP_ADDR", format!("127.0.0.1:{http_port}")),
            ("FLOWKEEP_GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
            ("FLOWKEEP_DATA_DIR", data_dir.display().to_string()),
            ("FLOWKEEP_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("FLOWKEEP_DOMAIN", "127.0.0.1".to_string()),
        ];
        let config = flowkeep_server::Config::load_from(None, env.map(|(k, v)| (k.to_string(), v)))
            .expect("a valid server configuration");
        let (ports_tx, ports_rx) = std::sync::mpsc::channel::<Result<(u16, u16), String>>();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("flowkeep-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                let outcome = runtime.block_on(async move {
                    let server = match flowkeep_server::start(config).await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ports_tx.send(Err(format!("{e:#}")));
                            return Ok(());
                        }
                    };
                    let _ = ports_tx.send(Ok((server.http_addr().port(), server.grpc_addr().port())));
                    let _ = stop_rx.await;
                    server.stop().await
                });
                let _ = stopped_tx.send(format!("{outcome:?}"));
            })
            .expect("spawn the server thread");
        let ports = ports_rx.recv_timeout(Duration::from_secs(60)).expect("the server starts within 60 s");
        let (http_port, grpc_port) = ports.unwrap_or_else(|e| panic!("the server did not start: {e}"));
        ServerThread { http_port, grpc_port, stop, stopped: Mutex::new(stopped) }
    }

    /// The URL for `transport`, optionally with credentials in it.
    pub fn url(&self, transport: Transport, credentials: Option<(&str, &str)>) -> String {
        let auth = credentials.map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
        match transport {
            Transport::Grpc => format!("grpc://{auth}127.0.0.1:{}", self.grpc_port),
            Transport::Ws => format!("ws://{auth}127.0.0.1:{}", self.http_port),
        }
    }

    /// Asks the server to stop and waits (blocking) up to `within` for it; the outcome of `stop`.
    pub fn stop(self, within: Duration) -> Result<String, String> {
        let _ = self.stop.send(());
        let stopped = self.stopped.into_inner().unwrap_or_else(|e| e.into_inner());
        stopped.recv_timeout(within).map_err(|_| format!("the server did not stop within {within:?}"))
    }
}

static SERVER: OnceLock<ServerThread> = OnceLock::new();

/// The shared server of this test process, started on first use (never stopped: it ends with the
/// process).
pub fn server() -> &'static ServerThread {
    SERVER.get_or_init(|| ServerThread::start(&data_dir(), 0, 0))
}

/// A name unique in this process, for users, collections and files.
pub fn unique(prefix: &str, transport: Transport) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{}_{n}", transport.tag(), std::process::id())
}

/// Connects a client to `url` without automatic reconnects (a test should see a dropped connection, not
/// have it papered over) and with a shorter request timeout.
pub async fn connect_url(url: &str) -> Result<Client, OpenIAPError> {
    let _ = server();
    let client = Client::new();
    client.set_auto_reconnect(false);
    client.set_default_timeout(REQUEST_TIMEOUT);
    client.connect_async(url).await?;
    Ok(client)
}

/// A connected client that has not signed in (the client sends `getelement`).
pub async fn connect_guest(transport: Transport) -> Client {
    let url = transport.url(None);
    connect_url(&url).await.unwrap_or_else(|e| panic!("{transport:?}: connecting to {url} as guest failed: {e}"))
}

/// A client signed in with `username`/`password` through an explicit `signin` after a guest connect.
pub async fn connect_as(transport: Transport, username: &str, password: &str) -> (Client, SigninResponse) {
    let client = connect_guest(transport).await;
    let reply = client
        .signin(SigninRequest::with_userpass(username, password))
        .await
        .unwrap_or_else(|e| panic!("{transport:?}: signin as {username} failed: {e}"));
    (client, reply)
}

/// A client signed in as the first admin, with the credentials in the URL (as `OPENIAP_USERNAME`/
/// `OPENIAP_PASSWORD` would give them).
pub async fn admin(transport: Transport) -> Client {
    let url = transport.url(Some((ADMIN, ADMIN_PASSWORD)));
    let client = connect_url(&url)
        .await
        .unwrap_or_else(|e| panic!("{transport:?}: connecting as {ADMIN} (credentials in the URL) failed: {e}"));
    let user = client.get_user().unwrap_or_else(|| panic!("{transport:?}: connected, but the client has no user"));
    assert_eq!(user.username, ADMIN, "{transport:?}: signed in as the wrong user");
    client
}

/// A plain user created by `admin` through the client: `{_type: "user", name, username, newpassword}`
/// inserted into `users`.
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub password: String,
}

/// Creates a plain user (no roles beyond the defaults) and checks the stored document never carries the
/// password in any form.
pub async fn create_user(admin: &Client, transport: Transport, prefix: &str) -> TestUser {
    let username = unique(prefix, transport).to_lowercase();
    let password = format!("pw-{username}-secret");
    let item = json!({"_type": "user", "name": format!("Conformance {username}"), "username": username,
        "newpassword": password});
    let reply = admin
        .insert_one(
            InsertOneRequest { collectionname: "users".into(), item: item.to_string(), ..Default::default() },
            env(),
        )
        .await
        .unwrap_or_else(|e| panic!("{transport:?}: creating user {username} failed: {e}"));
    let doc = parse(&reply.result, "insertone reply");
    assert_eq!(doc["username"], json!(username), "{doc}");
    assert_eq!(doc["_type"], json!("user"), "{doc}");
    assert!(doc.get("newpassword").is_none(), "newpassword must never be stored or returned: {doc}");
    assert!(doc.get("passwordhash").is_none(), "the password hash must never be returned: {doc}");
    let id = str_field(&doc, "_id");
    TestUser { id, username, password }
}

/// A signed-in client for `user`.
pub async fn connect_user(transport: Transport, user: &TestUser) -> Client {
    connect_as(transport, &user.username, &user.password).await.0
}

/// No per-request identity override.
pub fn env() -> openiap_client::EnvConfig {
    openiap_client::EnvConfig::new()
}

/// Parses a JSON string the server sent, naming `what` on failure.
pub fn parse(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {text:?}"))
}

/// Parses a JSON array the server sent.
pub fn parse_array(text: &str, what: &str) -> Vec<Value> {
    match parse(text, what) {
        Value::Array(items) => items,
        other => panic!("{what} is not a JSON array: {other}"),
    }
}

/// A string field that must be present.
pub fn str_field(doc: &Value, field: &str) -> String {
    doc[field].as_str().unwrap_or_else(|| panic!("`{field}` is not a string in {doc}")).to_string()
}

/// Unwraps a client result, naming the call and the transport on failure.
pub fn ok<T>(result: Result<T, OpenIAPError>, transport: Transport, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{transport:?}: {what} failed: {e}"))
}

/// The documents of `collection` matching `query` as `client` sees them.
pub async fn find(client: &Client, transport: Transport, collection: &str, query: Value) -> Vec<Value> {
    let reply = client.query(QueryRequest::with_query(collection, &query.to_string()), env()).await;
    let reply = ok(reply, transport, &format!("query {query} in {collection}"));
    parse_array(&reply.results, "queryreply results")
}

/// The values of `field` in `docs`, in order.
pub fn column(docs: &[Value], field: &str) -> Vec<Value> {
    docs.iter().map(|d| d[field].clone()).collect()
}

/// Collects events pushed to a client callback, to wait for them with a deadline.
pub struct Events<T> {
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
}

/// A callback sender and its receiving end.
pub fn events<T: Send + 'static>() -> (tokio::sync::mpsc::UnboundedSender<T>, Events<T>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (tx, Events { rx })
}

impl<T> Events<T> {
    /// The next event, or `None` if none arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<T> {
        tokio::time::timeout(within, self.rx.recv()).await.ok().flatten()
    }

    /// Everything that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<T> {
        let deadline = tokio::time::Instant::now() + within;
        let mut all = Vec::new();
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            all.push(item);
        }
        all
    }
}
