//! `flowkeep bench wire`: round trips over the OpenIAP transports. A server runs in-process on the
//! embedded store in a temporary folder; C connections sign in as a user and each keeps K requests in
//! flight (`query` by `_id` on pre-inserted documents, and `insertone`) over gRPC and over WebSocket.
//! In the same run, the same C×K load with the same request envelopes drives a bare echo served by the
//! same transport code, so the table states the server's rate as a share of the transport's own limit.
//!
//! Client and server share the process and the machine's cores; the figures are a floor, not a ceiling.

use anyhow::{bail, Context};
use flowkeep_server::transport::{Echo, TransportLimits};
use flowkeep_server::{Config, TransportSetup, Transports};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use openiap_proto::openiap as wire;
use prost::Message as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Options of `flowkeep bench wire`.
#[derive(clap::Args, Debug)]
pub struct WireBenchArgs {
    /// Client connections per measurement.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Requests each connection keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Measured seconds per row (after the warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Unmeasured warm-up per row, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// Stop each row after this many measured round trips (or after `--seconds`, whichever is first).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Documents inserted before measuring `query`.
    #[arg(long, default_value_t = 1000)]
    pub docs: usize,
    /// Transport to measure: `grpc`, `websocket` or `all`.
    #[arg(long, default_value = "all")]
    pub transport: String,
    /// Directory for the database (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const COLLECTION: &str = "benchwire";
const USER: &str = "benchwire-user";
const USER_PASSWORD: &str = "a long bench password";
const ADMIN_PASSWORD: &str = "a long bench admin password";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Transport {
    Grpc,
    WebSocket,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "gRPC",
            Transport::WebSocket => "WebSocket",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Operation {
    Query,
    InsertOne,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Query => "query by _id",
            Operation::InsertOne => "insertone",
        }
    }
}

/// Runs the benchmark and prints the table.
pub fn run(args: &WireBenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.inflight == 0 {
        bail!("--connections and --inflight must be at least 1");
    }
    let transports = match args.transport.as_str() {
        "all" => vec![Transport::Grpc, Transport::WebSocket],
        "grpc" => vec![Transport::Grpc],
        "websocket" | "ws" => vec![Transport::WebSocket],
        other => bail!("--transport must be grpc, websocket or all, not '{other}'"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_async(args, &transports))
}

struct Row {
    transport: Transport,
    what: String,
    result: LoadResult,
    share_of: Option<f64>,
}

async fn run_async(args: &WireBenchArgs, transports: &[Transport]) -> anyhow::Result<()> {
    let (dir, _guard) = super::work_dir(args.dir.as_ref())?;
    super::remove_db(&dir.join("flowkeep.db"));
    let config = Config {
        http_addr: "127.0.0.1:0".into(),
        grpc_addr: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        admin_password: ADMIN_PASSWORD.into(),
        ..Config::default()
    };
    config.validate()?;
    let limits = TransportLimits::new(config.max_message_bytes());
    let server = flowkeep_server::start(config).await?;
    let ids = prepare(server.http_addr(), args.docs).await.context("preparing users and documents")?;
    let ids = Arc::new(ids);

    let echo = Transports::start(
        Arc::new(Echo),
        TransportSetup::bare(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            limits,
        ),
    )?;

    let mut rows = Vec::new();
    for &transport in transports {
        let (server_addr, echo_addr) = match transport {
            Transport::Grpc => (server.grpc_addr(), echo.grpc_addr),
            Transport::WebSocket => (server.http_addr(), echo.http_addr),
        };
        for operation in [Operation::Query, Operation::InsertOne] {
            // The bare transport first, with the same connections, depth and request envelopes.
            let echo_result = load(transport, echo_addr, false, operation, ids.clone(), args)
                .await
                .with_context(|| format!("{} bare echo", transport.name()))?;
            let result = load(transport, server_addr, true, operation, ids.clone(), args)
                .await
                .with_context(|| format!("{} {}", transport.name(), operation.name()))?;
            eprintln!(
                "{} {}: {:.0} round trips/s (bare echo {:.0})",
                transport.name(),
                operation.name(),
                result.rate(),
                echo_result.rate()
            );
            let share = result.rate() / echo_result.rate().max(f64::MIN_POSITIVE);
            rows.push(Row { transport, what: operation.name().into(), result, share_of: Some(share) });
            rows.push(Row {
                transport,
                what: format!("bare echo, {} envelopes", operation.name()),
                result: echo_result,
                share_of: None,
            });
        }
    }
    echo.stop().await?;
    server.stop().await?;

    println!(
        "{} connections × {} in flight, {} per row after {} ms warm-up; client and server in one process \
         on this machine ({} cores); release build recommended.\n",
        args.connections,
        args.inflight,
        match args.requests {
            Some(n) => format!("{n} round trips"),
            None => format!("{} s", args.seconds),
        },
        args.warmup_ms,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    println!("| transport | operation | round trips/s | p50 ms | p99 ms | errors | share of bare transport |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let r = &row.result;
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            row.transport.name(),
            row.what,
            r.rate(),
            r.percentile(0.50),
            r.percentile(0.99),
            r.errors,
            row.share_of.map(percent).unwrap_or_else(|| "(limit)".into()),
        );
    }
    Ok(())
}

/// A share as a percentage, with one decimal below 10 %.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p < 10.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

/// Makes the bench user and the documents `query` reads; returns their ids.
async fn prepare(http: SocketAddr, docs: usize) -> anyhow::Result<Vec<String>> {
    let mut admin = Conn::connect(Transport::WebSocket, http).await?;
    admin.signin("flowkeep-admin", ADMIN_PASSWORD).await?;
    let user = json!({"_type": "user", "name": USER, "username": USER, "newpassword": USER_PASSWORD});
    let reply = admin.call(insert_one("users", &user)).await?;
    expect(&reply, "insertonereply")?;
    admin.close().await;

    let mut conn = Conn::connect(Transport::WebSocket, http).await?;
    conn.signin(USER, USER_PASSWORD).await?;
    let mut ids = Vec::with_capacity(docs);
    for chunk in (0..docs).collect::<Vec<_>>().chunks(200) {
        let items: Vec<Value> = chunk.iter().map(|i| json!({"name": format!("doc {i}"), "n": i})).collect();
        let mut envelope = wire::InsertManyRequest {
            collectionname: COLLECTION.into(),
            items: serde_json::to_string(&items)?,
            ..Default::default()
        }
        .to_envelope();
        envelope.id = "prepare".into();
        let reply = conn.call(envelope).await?;
        expect(&reply, "insertmanyreply")?;
        let data = reply.data.context("insertmany reply without data")?;
        let response = wire::InsertManyResponse::decode(data.value.as_slice())?;
        let results: Vec<Value> = serde_json::from_str(&response.results)?;
        ids.extend(results.iter().filter_map(|d| d["_id"].as_str().map(String::from)));
    }
    conn.close().await;
    if ids.len() != docs {
        bail!("inserted {} documents, expected {docs}", ids.len());
    }
    Ok(ids)
}

/// Fails unless `reply` is a `command` reply, naming what came instead.
pub(super) fn expect(reply: &wire::Envelope, command: &str) -> anyhow::Result<()> {
    if reply.command == command {
        return Ok(());
    }
    bail!("expected a {command} reply, got {} {}", reply.command, error_message(reply))
}

/// The message of an `error` reply (empty for anything else).
pub(super) fn error_message(reply: &wire::Envelope) -> String {
    reply
        .data
        .as_ref()
        .and_then(|d| wire::ErrorResponse::decode(d.value.as_slice()).ok())
        .map(|e| e.message)
        .unwrap_or_default()
}

fn insert_one(collection: &str, item: &Value) -> wire::Envelope {
    wire::InsertOneRequest { collectionname: collection.into(), item: item.to_string(), ..Default::default() }
        .to_envelope()
}

fn request(operation: Operation, ids: &[String], n: u64) -> wire::Envelope {
    match operation {
        Operation::Query => {
            let id = &ids[(n.wrapping_mul(2_654_435_761) % ids.len().max(1) as u64) as usize];
            wire::QueryRequest {
                collectionname: COLLECTION.into(),
                query: json!({"_id": id}).to_string(),
                top: 1,
                ..Default::default()
            }
            .to_envelope()
        }
        Operation::InsertOne => insert_one(COLLECTION, &json!({"name": "inserted", "n": n})),
    }
}

/// Latencies and counts of one row.
struct LoadResult {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        (self.latencies_us.len() as u64 + self.errors) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((n as f64 * q).ceil() as usize).saturating_sub(1).min(n - 1);
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Drives C connections with K requests in flight each; `signin` signs each in as the bench user first.
async fn load(
    transport: Transport,
    addr: SocketAddr,
    signin: bool,
    operation: Operation,
    ids: Arc<Vec<String>>,
    args: &WireBenchArgs,
) -> anyhow::Result<LoadResult> {
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut conn = Conn::connect(transport, addr).await?;
        if signin {
            conn.signin(USER, USER_PASSWORD).await?;
        }
        conns.push(conn);
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(args.warmup_ms);
    let deadline = measure_from + Duration::from_secs(args.seconds);
    let measured = Arc::new(AtomicU64::new(0));
    let limit = args.requests;
    let sequence = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for conn in conns {
        let ids = ids.clone();
        let measured = measured.clone();
        let sequence = sequence.clone();
        let inflight = args.inflight;
        tasks.push(tokio::spawn(async move {
            drive(
                conn,
                inflight,
                measure_from,
                deadline,
                limit,
                measured,
                move |n| request(operation, &ids, n),
                sequence,
            )
            .await
        }));
    }
    let mut result = LoadResult { latencies_us: Vec::new(), errors: 0, elapsed: Duration::ZERO };
    let mut last_end = measure_from;
    for task in tasks {
        let (latencies, errors, ended) = task.await??;
        result.latencies_us.extend(latencies);
        result.errors += errors;
        last_end = last_end.max(ended);
    }
    result.elapsed = last_end.saturating_duration_since(measure_from);
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// One connection's closed loop: keeps `inflight` requests outstanding until the deadline (or the
/// shared request budget), then waits for the outstanding replies.
#[allow(clippy::too_many_arguments)]
async fn drive(
    mut conn: Conn,
    inflight: usize,
    measure_from: Instant,
    deadline: Instant,
    limit: Option<u64>,
    measured: Arc<AtomicU64>,
    make: impl Fn(u64) -> wire::Envelope,
    sequence: Arc<AtomicU64>,
) -> anyhow::Result<(Vec<u32>, u64, Instant)> {
    let mut pending: HashMap<String, Instant> = HashMap::with_capacity(inflight);
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut next_id = 0u64;
    let mut stopping = false;
    let mut ended = measure_from;
    let mut send_one = |conn: &mut Conn, pending: &mut HashMap<String, Instant>| {
        next_id += 1;
        let mut envelope = make(sequence.fetch_add(1, Ordering::Relaxed));
        envelope.id = next_id.to_string();
        pending.insert(envelope.id.clone(), Instant::now());
        conn.queue(envelope)
    };
    for _ in 0..inflight {
        send_one(&mut conn, &mut pending)?;
    }
    conn.flush().await?;
    while !pending.is_empty() {
        let reply = conn.recv().await?;
        let Some(sent) = pending.remove(&reply.rid) else { continue };
        let now = Instant::now();
        if sent >= measure_from && !stopping {
            if reply.command == "error" {
                errors += 1;
            } else {
                latencies.push(u32::try_from(now.duration_since(sent).as_micros()).unwrap_or(u32::MAX));
            }
            ended = now;
            let total = measured.fetch_add(1, Ordering::Relaxed) + 1;
            if limit.is_some_and(|l| total >= l) {
                stopping = true;
            }
        }
        if now >= deadline {
            stopping = true;
        }
        if !stopping {
            send_one(&mut conn, &mut pending)?;
            conn.flush().await?;
        }
    }
    conn.close().await;
    Ok((latencies, errors, ended))
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw client connection over either transport (also used by `bench messaging`).
pub(super) enum Conn {
    Ws { sink: SplitSink<Ws, Message>, stream: SplitStream<Ws>, buf: Vec<u8>, queued: Vec<Message> },
    Grpc { tx: mpsc::Sender<wire::Envelope>, rx: Box<tonic::Streaming<wire::Envelope>>, queued: Vec<wire::Envelope> },
}

impl Conn {
    pub(super) async fn connect(transport: Transport, addr: SocketAddr) -> anyhow::Result<Conn> {
        match transport {
            Transport::WebSocket => {
                let (ws, _) =
                    tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/ws/v2"), None, true).await?;
                let (sink, stream) = ws.split();
                Ok(Conn::Ws { sink, stream, buf: Vec::new(), queued: Vec::new() })
            }
            Transport::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                let mut client = wire::flow_service_client::FlowServiceClient::new(channel);
                let (tx, rx) = mpsc::channel(1024);
                let response = client.setup_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?;
                Ok(Conn::Grpc { tx, rx: Box::new(response.into_inner()), queued: Vec::new() })
            }
        }
    }

    pub(super) async fn signin(&mut self, username: &str, password: &str) -> anyhow::Result<()> {
        let mut request = wire::SigninRequest::with_userpass(username, password);
        request.ping = false;
        let mut envelope = request.to_envelope();
        envelope.id = "signin".into();
        let reply = self.call(envelope).await?;
        expect(&reply, "signinreply")
    }

    /// Sends one request and waits for its reply.
    pub(super) async fn call(&mut self, envelope: wire::Envelope) -> anyhow::Result<wire::Envelope> {
        let id = envelope.id.clone();
        self.queue(envelope)?;
        self.flush().await?;
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(30), self.recv()).await.context("no reply")??;
            if reply.rid == id {
                return Ok(reply);
            }
        }
    }

    /// Sends one envelope now.
    pub(super) async fn send(&mut self, envelope: wire::Envelope) -> anyhow::Result<()> {
        self.queue(envelope)?;
        self.flush().await
    }

    pub(super) fn queue(&mut self, envelope: wire::Envelope) -> anyhow::Result<()> {
        match self {
            Conn::Ws { queued, .. } => {
                let body = envelope.encode_to_vec();
                let mut frame = Vec::with_capacity(4 + body.len());
                frame.extend_from_slice(&u32::try_from(body.len())?.to_le_bytes());
                frame.extend_from_slice(&body);
                queued.push(Message::Binary(frame.into()));
            }
            Conn::Grpc { queued, .. } => queued.push(envelope),
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Conn::Ws { sink, queued, .. } => {
                for message in queued.drain(..) {
                    sink.feed(message).await?;
                }
                sink.flush().await?;
            }
            Conn::Grpc { tx, queued, .. } => {
                for envelope in queued.drain(..) {
                    tx.send(envelope).await.map_err(|_| anyhow::anyhow!("gRPC request stream closed"))?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn recv(&mut self) -> anyhow::Result<wire::Envelope> {
        match self {
            Conn::Ws { stream, buf, .. } => loop {
                if buf.len() >= 4 {
                    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if buf.len() >= 4 + len {
                        let envelope = wire::Envelope::decode(&buf[4..4 + len])?;
                        buf.drain(..4 + len);
                        return Ok(envelope);
                    }
                }
                match stream.next().await {
                    Some(Ok(Message::Binary(data))) => buf.extend_from_slice(&data),
                    Some(Ok(Message::Close(frame))) => bail!("server closed the websocket: {frame:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("websocket closed"),
                }
            },
            Conn::Grpc { rx, .. } => match rx.next().await {
                Some(Ok(envelope)) => Ok(envelope),
                Some(Err(status)) => Err(status.into()),
                None => bail!("gRPC stream ended"),
            },
        }
    }

    pub(super) async fn close(self) {
        if let Conn::Ws { mut sink, .. } = self {
            let _ = sink.close().await;
        }
    }
}
