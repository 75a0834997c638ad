//! `flowkeep bench messaging`: queues and workitems end to end. For each messaging backend (the
//! in-process broker, and RabbitMQ when reachable) a server runs in-process on the embedded store in a
//! temporary folder; P sender connections keep K `queuemessage`s each in flight to a named queue that
//! C consumer connections registered, and every `queueevent` is timed against the send timestamp the
//! message carries. In the same run the same P×K load with the same message bodies drives the broker
//! itself — `InProcessBroker` directly, and RabbitMQ through `lapin` with publisher confirms and the
//! same prefetch — so the table states Flowkeep's rate as a share of its broker's own. Workitems: N
//! items pushed, then W worker connections loop `popworkitem` → `updateworkitem` until the queue is
//! empty.
//!
//! "In flight" is end to end: a sender may have K messages sent and not yet received by a consumer (a
//! closed loop), so no backlog builds up and the latency is the pipeline's, not a growing queue's.
//!
//! Client, server and broker clients share the process and the machine's cores; the figures are a floor.

use super::wire::{error_message, expect, Conn as WsConn, Transport};
use anyhow::{bail, Context};
use flowkeep_broker::{Broker, ConsumeOptions, InProcessBroker, InProcessConfig, Message as BrokerMessage, Target};
use flowkeep_server::Config;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use openiap_proto::openiap as wire;
use prost::Message as _;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

/// Options of `flowkeep bench messaging`.
#[derive(clap::Args, Debug)]
pub struct MessagingBenchArgs {
    /// Messages per measured row (after a warm-up of a tenth of that).
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Sender connections (P).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Messages each sender keeps in flight, from send until a consumer received it (K).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Consumer connections of the queue (C).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (JSON with the send timestamp, padded).
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Workitems pushed, then popped and updated.
    #[arg(long, default_value_t = 2_000)]
    pub items: u64,
    /// Worker connections popping and updating workitems.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// RabbitMQ for the RabbitMQ rows.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Leave out the RabbitMQ rows.
    #[arg(long)]
    pub skip_rabbitmq: bool,
    /// Directory for the databases (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const USER: &str = "benchmsg-user";
const USER_PASSWORD: &str = "a long bench password";
const ADMIN_PASSWORD: &str = "a long bench admin password";
/// Flowkeep's default message expiration, given to the raw RabbitMQ messages too.
const EXPIRATION_MS: u64 = 60_000;
/// A row that makes no progress for this long is stopped and reported with what it got.
const STALL: Duration = Duration::from_secs(30);
/// Workitems per `pushworkitems` request.
const PUSH_BATCH: u64 = 100;

/// Runs the benchmark and prints the tables.
pub fn run(args: &MessagingBenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.inflight == 0 || args.consumers == 0 || args.workers == 0 {
        bail!("--connections, --inflight, --consumers and --workers must be at least 1");
    }
    if args.messages == 0 || args.items == 0 {
        bail!("--messages and --items must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

/// Counts and latencies of one measured row.
#[derive(Default)]
struct RowResult {
    sent: u64,
    received: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

impl RowResult {
    fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
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

struct Row {
    backend: &'static str,
    path: &'static str,
    result: RowResult,
    share_of: Option<f64>,
}

async fn run_async(args: &MessagingBenchArgs) -> anyhow::Result<()> {
    let (dir, _guard) = super::work_dir(args.dir.as_ref())?;
    let epoch = Instant::now();
    let prefetch = Config::default().platform_config().queue_prefetch.max(1);
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    // In-process: the raw broker first, then the same load through Flowkeep.
    let raw = raw_inprocess(args, prefetch, epoch).await.context("raw in-process broker")?;
    eprintln!("raw in-process broker: {:.0} messages/s", raw.rate());
    let server_dir = dir.join("inprocess");
    let (through, workitems) = through_flowkeep(args, &server_dir, "", epoch, true).await.context("in-process")?;
    eprintln!("Flowkeep, in-process broker: {:.0} messages/s", through.rate());
    let share = through.rate() / raw.rate().max(f64::MIN_POSITIVE);
    rows.push(Row {
        backend: "in-process",
        path: "Flowkeep: queuemessage → queueevent",
        result: through,
        share_of: Some(share),
    });
    rows.push(Row { backend: "in-process", path: "raw InProcessBroker", result: raw, share_of: None });

    // RabbitMQ.
    if args.skip_rabbitmq {
        notes.push("RabbitMQ rows skipped: --skip-rabbitmq.".to_string());
    } else {
        match tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&args.amqp_url, ConnectionProperties::default()),
        )
        .await
        {
            Err(_) => {
                notes.push(format!("RabbitMQ rows skipped: {} did not answer within 5 s.", redact(&args.amqp_url)))
            }
            Ok(Err(e)) => {
                notes.push(format!("RabbitMQ rows skipped: {} is unreachable ({e}).", redact(&args.amqp_url)))
            }
            Ok(Ok(probe)) => {
                let _ = probe.close(200, "probe".into()).await;
                let raw = raw_rabbitmq(args, prefetch, epoch).await.context("raw RabbitMQ")?;
                eprintln!("raw RabbitMQ: {:.0} messages/s", raw.rate());
                let server_dir = dir.join("rabbitmq");
                let (through, _) =
                    through_flowkeep(args, &server_dir, &args.amqp_url, epoch, false).await.context("RabbitMQ")?;
                eprintln!("Flowkeep, RabbitMQ: {:.0} messages/s", through.rate());
                let share = through.rate() / raw.rate().max(f64::MIN_POSITIVE);
                rows.push(Row {
                    backend: "RabbitMQ",
                    path: "Flowkeep: queuemessage → queueevent",
                    result: through,
                    share_of: Some(share),
                });
                rows.push(Row {
                    backend: "RabbitMQ",
                    path: "raw RabbitMQ (lapin, confirms)",
                    result: raw,
                    share_of: None,
                });
            }
        }
    }

    println!(
        "{} sender connections × {} in flight (sent until received), {} consumer connection(s) with prefetch {}, \
         {} messages of {} bytes per row after a warm-up of {}; client, server and broker clients in one process \
         on this machine ({} cores); release build recommended.\n",
        args.connections,
        args.inflight,
        args.consumers,
        prefetch,
        args.messages,
        body(0, 0, &pad(args.payload_bytes)).len(),
        warmup(args.messages),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    println!("| backend | path | sent | received | errors | messages/s | p50 ms | p99 ms | share of raw broker |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let r = &row.result;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            row.backend,
            row.path,
            r.sent,
            r.received,
            r.errors,
            r.rate(),
            r.percentile(0.50),
            r.percentile(0.99),
            row.share_of.map(percent).unwrap_or_else(|| "(baseline)".into()),
        );
    }
    for note in &notes {
        println!("\n{note}");
    }

    if let Some(w) = &workitems {
        println!(
            "\nWorkitems (WebSocket, embedded store, in-process broker): {} items pushed {} per request by one \
             connection, then {} worker connection(s) loop popworkitem → updateworkitem (successful) until the \
             queue is empty; latency is per request (push) or per pop → update cycle.\n",
            args.items, PUSH_BATCH, args.workers
        );
        println!("| operation | items | completed | errors | items/s | p50 ms | p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (name, r) in [("pushworkitems", &w.push), ("popworkitem → updateworkitem", &w.cycle)] {
            println!(
                "| {name} | {} | {} | {} | {:.0} | {:.2} | {:.2} |",
                r.sent,
                r.received,
                r.errors,
                r.rate(),
                r.percentile(0.50),
                r.percentile(0.99),
            );
        }
    }

    let lost: Vec<String> = rows
        .iter()
        .filter(|r| r.result.received != r.result.sent || r.result.errors > 0)
        .map(|r| format!("{} {}", r.backend, r.path))
        .chain(
            workitems
                .iter()
                .filter(|w| w.cycle.received != args.items || w.cycle.errors > 0 || w.push.errors > 0)
                .map(|_| "workitems".to_string()),
        )
        .collect();
    if !lost.is_empty() {
        bail!("rows with lost messages or errors: {}", lost.join(", "));
    }
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
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

fn warmup(messages: u64) -> u64 {
    (messages / 10).max(1)
}

fn pad(payload_bytes: usize) -> String {
    "x".repeat(payload_bytes.saturating_sub(body(0, 0, "").len()))
}

/// A message body: the sender's index, the send time (µs since the run's epoch) and padding.
fn body(sender: usize, sent_us: u64, pad: &str) -> String {
    format!(r#"{{"s":{sender:>4},"t":{sent_us:>14},"pad":"{pad}"}}"#)
}

fn now_us(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The sender index and the latency in µs of a received body.
fn stamp(data: &[u8], epoch: Instant) -> anyhow::Result<(usize, u32)> {
    let value: Value = serde_json::from_slice(data).context("a message body that is not the bench's JSON")?;
    let sender = value["s"].as_u64().context("a message without a sender")? as usize;
    let sent = value["t"].as_u64().context("a message without a timestamp")?;
    let latency = now_us(epoch).saturating_sub(sent);
    Ok((sender, u32::try_from(latency).unwrap_or(u32::MAX)))
}

/// The shared state of one row: each sender's window of K permits (taken at send, given back when a
/// consumer receives the message or the send fails) and the counts that end the row.
struct Progress {
    total: u64,
    received: AtomicU64,
    failed: AtomicU64,
    windows: Vec<Arc<Semaphore>>,
    done: watch::Sender<bool>,
    last: std::sync::Mutex<Instant>,
}

impl Progress {
    fn new(total: u64, senders: usize, inflight: usize) -> Arc<Progress> {
        let (done, _) = watch::channel(false);
        Arc::new(Progress {
            total,
            received: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            windows: (0..senders).map(|_| Arc::new(Semaphore::new(inflight))).collect(),
            done,
            last: std::sync::Mutex::new(Instant::now()),
        })
    }

    fn delivered(&self, sender: usize) {
        if let Some(window) = self.windows.get(sender) {
            window.add_permits(1);
        }
        self.received.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
        self.check();
    }

    fn failed(&self, sender: usize) {
        if let Some(window) = self.windows.get(sender) {
            window.add_permits(1);
        }
        self.failed.fetch_add(1, Ordering::AcqRel);
        self.check();
    }

    fn check(&self) {
        if self.received.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire) >= self.total {
            self.done.send_replace(true);
        }
    }

    fn progress(&self) -> u64 {
        self.received.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire)
    }

    /// Waits until every message was received (or failed), or until nothing moved for [`STALL`].
    async fn wait(&self) {
        let mut done = self.done.subscribe();
        let mut seen = self.progress();
        let mut moved = Instant::now();
        loop {
            if *done.borrow_and_update() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), done.changed()).await;
            let now = self.progress();
            if now != seen {
                seen = now;
                moved = Instant::now();
            } else if moved.elapsed() > STALL {
                eprintln!("no progress for {} s: stopping the row at {seen} of {}", STALL.as_secs(), self.total);
                self.done.send_replace(true);
                return;
            }
        }
    }

    fn last_received(&self) -> Instant {
        self.last.lock().map(|l| *l).unwrap_or_else(|_| Instant::now())
    }
}

/// How many of `total` messages sender `i` of `senders` sends.
fn quota(total: u64, senders: usize, i: usize) -> u64 {
    let senders = senders as u64;
    total / senders + u64::from((i as u64) < total % senders)
}

// ---------------------------------------------------------------------------------------------------
// Through Flowkeep

/// Workitem rows.
struct WorkitemResult {
    push: RowResult,
    cycle: RowResult,
}

/// Starts a server on `amqp_url` (empty: in-process), measures queuemessage → queueevent, and (when
/// `workitems`) the workitem rows; stops the server.
async fn through_flowkeep(
    args: &MessagingBenchArgs,
    dir: &Path,
    amqp_url: &str,
    epoch: Instant,
    workitems: bool,
) -> anyhow::Result<(RowResult, Option<WorkitemResult>)> {
    std::fs::create_dir_all(dir)?;
    super::remove_db(&dir.join("flowkeep.db"));
    let config = Config {
        http_addr: "127.0.0.1:0".into(),
        grpc_addr: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        admin_password: ADMIN_PASSWORD.into(),
        amqp_url: amqp_url.into(),
        ..Config::default()
    };
    config.validate()?;
    let server = flowkeep_server::start(config).await?;
    let addr = server.http_addr();
    let result = async {
        prepare(addr).await.context("preparing the bench user")?;
        let queue = format!("flowkeep-bench-msg-{}-{}", std::process::id(), now_us(epoch));
        let messages = flowkeep_messages(args, addr, &queue, epoch).await;
        if !amqp_url.is_empty() {
            delete_rabbitmq_queue(&args.amqp_url, &queue).await;
        }
        let messages = messages?;
        let workitems = if workitems { Some(flowkeep_workitems(args, addr).await.context("workitems")?) } else { None };
        Ok::<_, anyhow::Error>((messages, workitems))
    }
    .await;
    server.stop().await?;
    result
}

/// Makes the bench user (as the admin).
async fn prepare(addr: SocketAddr) -> anyhow::Result<()> {
    let mut admin = WsConn::connect(Transport::WebSocket, addr).await?;
    admin.signin("flowkeep-admin", ADMIN_PASSWORD).await?;
    let user = json!({"_type": "user", "name": USER, "username": USER, "newpassword": USER_PASSWORD});
    let mut envelope =
        wire::InsertOneRequest { collectionname: "users".into(), item: user.to_string(), ..Default::default() }
            .to_envelope();
    envelope.id = "user".into();
    let reply = admin.call(envelope).await?;
    expect(&reply, "insertonereply")?;
    admin.close().await;
    Ok(())
}

async fn signed_in(addr: SocketAddr) -> anyhow::Result<WsConn> {
    let mut conn = WsConn::connect(Transport::WebSocket, addr).await?;
    conn.signin(USER, USER_PASSWORD).await?;
    Ok(conn)
}

async fn flowkeep_messages(
    args: &MessagingBenchArgs,
    addr: SocketAddr,
    queue: &str,
    epoch: Instant,
) -> anyhow::Result<RowResult> {
    let mut consumers = Vec::with_capacity(args.consumers);
    for i in 0..args.consumers {
        let mut conn = signed_in(addr).await?;
        let mut envelope = wire::RegisterQueueRequest { queuename: queue.into() }.to_envelope();
        envelope.id = format!("register{i}");
        let reply = conn.call(envelope).await?;
        expect(&reply, "registerqueuereply")?;
        consumers.push(conn);
    }
    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(signed_in(addr).await?);
    }
    let pad: Arc<str> = pad(args.payload_bytes).into();
    let queue: Arc<str> = queue.into();
    let (senders, consumers, _) =
        flowkeep_round(senders, consumers, warmup(args.messages), args.inflight, &queue, &pad, epoch).await?;
    let (senders, consumers, result) =
        flowkeep_round(senders, consumers, args.messages, args.inflight, &queue, &pad, epoch).await?;
    for conn in senders.into_iter().chain(consumers) {
        conn.close().await;
    }
    Ok(result)
}

/// One row through Flowkeep; the connections are handed back for the next row.
async fn flowkeep_round(
    senders: Vec<WsConn>,
    consumers: Vec<WsConn>,
    total: u64,
    inflight: usize,
    queue: &Arc<str>,
    pad: &Arc<str>,
    epoch: Instant,
) -> anyhow::Result<(Vec<WsConn>, Vec<WsConn>, RowResult)> {
    let progress = Progress::new(total, senders.len(), inflight);
    let consumer_tasks: Vec<_> =
        consumers.into_iter().map(|conn| tokio::spawn(ws_consume(conn, progress.clone(), epoch))).collect();
    let start = Instant::now();
    let n = senders.len();
    let sender_tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            tokio::spawn(ws_send(conn, i, quota(total, n, i), queue.clone(), pad.clone(), progress.clone(), epoch))
        })
        .collect();
    progress.wait().await;
    let mut result = RowResult::default();
    let mut senders = Vec::new();
    for task in sender_tasks {
        let (conn, sent, errors) = task.await??;
        result.sent += sent;
        result.errors += errors;
        senders.push(conn);
    }
    let mut consumers = Vec::new();
    for task in consumer_tasks {
        let (conn, latencies) = task.await??;
        result.latencies_us.extend(latencies);
        consumers.push(conn);
    }
    result.received = progress.received.load(Ordering::Acquire);
    result.elapsed = progress.last_received().saturating_duration_since(start);
    result.latencies_us.sort_unstable();
    Ok((senders, consumers, result))
}

/// One sender connection: keeps its window full of `queuemessage`s and reads their replies.
async fn ws_send(
    mut conn: WsConn,
    index: usize,
    quota: u64,
    queue: Arc<str>,
    pad: Arc<str>,
    progress: Arc<Progress>,
    epoch: Instant,
) -> anyhow::Result<(WsConn, u64, u64)> {
    let window = progress.windows[index].clone();
    let mut done = progress.done.subscribe();
    let (mut sent, mut pending, mut errors) = (0u64, 0u64, 0u64);
    while sent < quota || pending > 0 {
        // Once all is sent, the replies still owed are read even when the row is done, so none is
        // left on the connection for the next row.
        if *done.borrow_and_update() && sent < quota {
            break;
        }
        tokio::select! {
            permit = window.acquire(), if sent < quota => {
                permit?.forget();
                let mut envelope = wire::QueueMessageRequest {
                    queuename: queue.to_string(),
                    data: body(index, now_us(epoch), &pad),
                    striptoken: true,
                    ..Default::default()
                }
                .to_envelope();
                sent += 1;
                envelope.id = sent.to_string();
                conn.send(envelope).await?;
                pending += 1;
            }
            reply = tokio::time::timeout(STALL, conn.recv()), if pending > 0 => {
                let reply = reply.context("no queuemessage reply")??;
                match reply.command.as_str() {
                    "queuemessagereply" => pending -= 1,
                    "error" => {
                        if errors == 0 {
                            eprintln!("queuemessage failed: {}", error_message(&reply));
                        }
                        pending -= 1;
                        errors += 1;
                        progress.failed(index);
                    }
                    _ => {}
                }
            }
            _ = done.changed(), if sent < quota => {}
        }
    }
    Ok((conn, sent, errors))
}

/// One consumer connection: times each `queueevent` until the row is done.
async fn ws_consume(mut conn: WsConn, progress: Arc<Progress>, epoch: Instant) -> anyhow::Result<(WsConn, Vec<u32>)> {
    let mut done = progress.done.subscribe();
    let mut latencies = Vec::new();
    loop {
        if *done.borrow_and_update() {
            break;
        }
        tokio::select! {
            envelope = conn.recv() => {
                let envelope = envelope?;
                if envelope.command != "queueevent" {
                    continue;
                }
                let data = envelope.data.context("queueevent without data")?;
                let event = wire::QueueEvent::decode(data.value.as_slice())?;
                let (sender, latency) = stamp(event.data.as_bytes(), epoch)?;
                latencies.push(latency);
                progress.delivered(sender);
            }
            _ = done.changed() => {}
        }
    }
    Ok((conn, latencies))
}

/// Pushes the items, then lets the workers pop and update until the queue is empty.
async fn flowkeep_workitems(args: &MessagingBenchArgs, addr: SocketAddr) -> anyhow::Result<WorkitemResult> {
    let name = format!("benchwiq{}", std::process::id());
    let mut conn = signed_in(addr).await?;
    let queue = wire::WorkItemQueue { name: name.clone(), maxretries: 3, ..Default::default() };
    let mut envelope = wire::AddWorkItemQueueRequest { workitemqueue: Some(queue), skiprole: true }.to_envelope();
    envelope.id = "addqueue".into();
    expect(&conn.call(envelope).await?, "addworkitemqueuereply")?;

    let mut push = RowResult { sent: args.items, ..RowResult::default() };
    let start = Instant::now();
    let mut pushed = 0u64;
    let mut batch = 0u64;
    while pushed < args.items {
        let n = PUSH_BATCH.min(args.items - pushed);
        let items = (0..n)
            .map(|i| wire::Workitem {
                name: format!("item {}", pushed + i),
                payload: json!({"n": pushed + i}).to_string(),
                ..Default::default()
            })
            .collect();
        batch += 1;
        let mut envelope = wire::PushWorkitemsRequest { wiq: name.clone(), items, ..Default::default() }.to_envelope();
        envelope.id = format!("push{batch}");
        let sent = Instant::now();
        let reply = conn.call(envelope).await?;
        push.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        if reply.command == "pushworkitemsreply" {
            let data = reply.data.context("pushworkitems reply without data")?;
            push.received += wire::PushWorkitemsResponse::decode(data.value.as_slice())?.workitems.len() as u64;
        } else {
            eprintln!("pushworkitems failed: {}", error_message(&reply));
            push.errors += 1;
        }
        pushed += n;
    }
    push.elapsed = start.elapsed();
    push.latencies_us.sort_unstable();
    conn.close().await;

    let mut workers = Vec::with_capacity(args.workers);
    for _ in 0..args.workers {
        workers.push(signed_in(addr).await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = workers.into_iter().map(|conn| tokio::spawn(work(conn, name.clone()))).collect();
    let mut cycle = RowResult { sent: args.items, ..RowResult::default() };
    let mut last = start;
    for task in tasks {
        let (done, errors, latencies, ended) = task.await??;
        cycle.received += done;
        cycle.errors += errors;
        cycle.latencies_us.extend(latencies);
        last = last.max(ended);
    }
    cycle.elapsed = last.saturating_duration_since(start);
    cycle.latencies_us.sort_unstable();
    Ok(WorkitemResult { push, cycle })
}

/// One worker: popworkitem → updateworkitem (successful) until a pop finds nothing. Returns the items
/// completed, the errors, the cycle latencies and when it ended.
async fn work(mut conn: WsConn, queue: String) -> anyhow::Result<(u64, u64, Vec<u32>, Instant)> {
    let (mut completed, mut errors, mut n) = (0u64, 0u64, 0u64);
    let mut latencies = Vec::new();
    let mut ended = Instant::now();
    loop {
        n += 1;
        let started = Instant::now();
        let mut envelope = wire::PopWorkitemRequest::bywiq(&queue).to_envelope();
        envelope.id = format!("pop{n}");
        let reply = conn.call(envelope).await?;
        if reply.command != "popworkitemreply" {
            eprintln!("popworkitem failed: {}", error_message(&reply));
            errors += 1;
            if errors > 10 {
                break;
            }
            continue;
        }
        let data = reply.data.context("popworkitem reply without data")?;
        let Some(mut item) = wire::PopWorkitemResponse::decode(data.value.as_slice())?.workitem else { break };
        item.state = "successful".into();
        let mut envelope = wire::UpdateWorkitemRequest { workitem: Some(item), ..Default::default() }.to_envelope();
        envelope.id = format!("update{n}");
        let reply = conn.call(envelope).await?;
        ended = Instant::now();
        if reply.command == "updateworkitemreply" {
            completed += 1;
            latencies.push(u32::try_from(ended.duration_since(started).as_micros()).unwrap_or(u32::MAX));
        } else {
            eprintln!("updateworkitem failed: {}", error_message(&reply));
            errors += 1;
        }
    }
    conn.close().await;
    Ok((completed, errors, latencies, ended))
}

// ---------------------------------------------------------------------------------------------------
// Raw baselines

/// The same load on `InProcessBroker` directly: P publisher tasks, C consumers with the same prefetch.
async fn raw_inprocess(args: &MessagingBenchArgs, prefetch: u16, epoch: Instant) -> anyhow::Result<RowResult> {
    let broker = Arc::new(InProcessBroker::new(InProcessConfig::default())?);
    let queue = "bench.raw";
    broker.declare_queue(queue).await?;
    let pad: Arc<str> = pad(args.payload_bytes).into();
    inprocess_round(&broker, queue, warmup(args.messages), args, prefetch, &pad, epoch).await?;
    let result = inprocess_round(&broker, queue, args.messages, args, prefetch, &pad, epoch).await?;
    broker.close().await?;
    Ok(result)
}

async fn inprocess_round(
    broker: &Arc<InProcessBroker>,
    queue: &str,
    total: u64,
    args: &MessagingBenchArgs,
    prefetch: u16,
    pad: &Arc<str>,
    epoch: Instant,
) -> anyhow::Result<RowResult> {
    let progress = Progress::new(total, args.connections, args.inflight);
    let mut consumer_tasks = Vec::new();
    for _ in 0..args.consumers {
        let mut consumer = broker.consume(queue, &ConsumeOptions { prefetch }).await?;
        let progress = progress.clone();
        consumer_tasks.push(tokio::spawn(async move {
            let mut done = progress.done.subscribe();
            let mut latencies = Vec::new();
            loop {
                if *done.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    delivery = consumer.next() => {
                        let delivery = delivery.context("the consumer ended")??;
                        let (sender, latency) = stamp(&delivery.message.body, epoch)?;
                        latencies.push(latency);
                        delivery.ack().await?;
                        progress.delivered(sender);
                    }
                    _ = done.changed() => {}
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let start = Instant::now();
    let mut sender_tasks = Vec::new();
    for index in 0..args.connections {
        let (broker, progress, pad) = (broker.clone(), progress.clone(), pad.clone());
        let quota = quota(total, args.connections, index);
        let queue = queue.to_string();
        sender_tasks.push(tokio::spawn(async move {
            let window = progress.windows[index].clone();
            let mut done = progress.done.subscribe();
            let (mut sent, mut errors) = (0u64, 0u64);
            while sent < quota {
                tokio::select! {
                    permit = window.acquire() => permit?.forget(),
                    _ = done.changed() => break,
                }
                let message = BrokerMessage::new(body(index, now_us(epoch), &pad))
                    .with_content_type("application/json")
                    .with_correlation_id(flowkeep_model::new_object_id())
                    .with_expiration_ms(EXPIRATION_MS);
                sent += 1;
                if let Err(e) = broker.publish(&Target::queue(queue.as_str()), message).await {
                    if errors == 0 {
                        eprintln!("raw in-process publish failed: {e}");
                    }
                    errors += 1;
                    progress.failed(index);
                }
            }
            Ok::<_, anyhow::Error>((sent, errors))
        }));
    }
    gather(&progress, start, sender_tasks, consumer_tasks).await
}

/// A raw sender task's `(sent, errors)`.
type SenderTask = tokio::task::JoinHandle<anyhow::Result<(u64, u64)>>;
/// A raw consumer task's latencies (µs).
type ConsumerTask = tokio::task::JoinHandle<anyhow::Result<Vec<u32>>>;

/// Waits until a raw round has delivered everything, then adds up what its senders and consumers counted.
async fn gather(
    progress: &Progress,
    start: Instant,
    sender_tasks: Vec<SenderTask>,
    consumer_tasks: Vec<ConsumerTask>,
) -> anyhow::Result<RowResult> {
    progress.wait().await;
    let mut result = RowResult::default();
    for task in sender_tasks {
        let (sent, errors) = task.await??;
        result.sent += sent;
        result.errors += errors;
    }
    for task in consumer_tasks {
        result.latencies_us.extend(task.await??);
    }
    result.received = progress.received.load(Ordering::Acquire);
    result.elapsed = progress.last_received().saturating_duration_since(start);
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// The arguments Flowkeep's AMQP backend declares its queues with.
fn amqp_queue_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(3));
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("flowkeep.dlx")));
    args
}

/// The same load on RabbitMQ through lapin: P publisher connections (one confirm channel each, K
/// unreceived messages each), C consumer connections with the same prefetch; the queue and message
/// properties as Flowkeep's AMQP backend sets them (durable, priorities, persistent, mandatory).
async fn raw_rabbitmq(args: &MessagingBenchArgs, prefetch: u16, epoch: Instant) -> anyhow::Result<RowResult> {
    let queue = format!("flowkeep-bench-raw-{}-{}", std::process::id(), now_us(epoch));
    let admin = Connection::connect(&args.amqp_url, ConnectionProperties::default()).await?;
    let channel = admin.create_channel().await?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
            amqp_queue_arguments(),
        )
        .await?;
    let pad: Arc<str> = pad(args.payload_bytes).into();
    let result = async {
        rabbitmq_round(args, &queue, warmup(args.messages), prefetch, &pad, epoch).await?;
        rabbitmq_round(args, &queue, args.messages, prefetch, &pad, epoch).await
    }
    .await;
    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    let _ = admin.close(200, "done".into()).await;
    result
}

async fn rabbitmq_round(
    args: &MessagingBenchArgs,
    queue: &str,
    total: u64,
    prefetch: u16,
    pad: &Arc<str>,
    epoch: Instant,
) -> anyhow::Result<RowResult> {
    let progress = Progress::new(total, args.connections, args.inflight);
    let mut connections = Vec::new();
    let mut consumer_tasks = Vec::new();
    for _ in 0..args.consumers {
        let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let mut consumer = channel
            .basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        let progress = progress.clone();
        consumer_tasks.push(tokio::spawn(async move {
            let mut done = progress.done.subscribe();
            let mut latencies = Vec::new();
            loop {
                if *done.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    delivery = consumer.next() => {
                        let delivery = delivery.context("the consumer ended")??;
                        let (sender, latency) = stamp(&delivery.data, epoch)?;
                        latencies.push(latency);
                        delivery.acker.ack(BasicAckOptions::default()).await?;
                        progress.delivered(sender);
                    }
                    _ = done.changed() => {}
                }
            }
            let _ = channel.close(200, "done".into()).await;
            Ok::<_, anyhow::Error>(latencies)
        }));
        connections.push(connection);
    }
    let mut publishers = Vec::new();
    for _ in 0..args.connections {
        let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        publishers.push(channel);
        connections.push(connection);
    }
    let start = Instant::now();
    let mut sender_tasks = Vec::new();
    for (index, channel) in publishers.into_iter().enumerate() {
        let (progress, pad) = (progress.clone(), pad.clone());
        let quota = quota(total, args.connections, index);
        let queue = queue.to_string();
        sender_tasks.push(tokio::spawn(async move {
            let window = progress.windows[index].clone();
            let mut done = progress.done.subscribe();
            let (mut sent, mut errors) = (0u64, 0u64);
            let mut confirms = FuturesUnordered::new();
            while sent < quota || !confirms.is_empty() {
                if *done.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    permit = window.acquire(), if sent < quota => {
                        permit?.forget();
                        let properties = BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_priority(1)
                            .with_content_type("application/json".into())
                            .with_correlation_id(flowkeep_model::new_object_id().into())
                            .with_expiration(EXPIRATION_MS.to_string().into());
                        let payload = body(index, now_us(epoch), &pad);
                        sent += 1;
                        let confirm = channel
                            .basic_publish(
                                "".into(),
                                queue.as_str().into(),
                                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                                payload.as_bytes(),
                                properties,
                            )
                            .await?;
                        confirms.push(confirm);
                    }
                    Some(confirmation) = confirms.next(), if !confirms.is_empty() => {
                        let confirmation = confirmation?;
                        if !confirmation.is_ack() || confirmation.take_message().is_some() {
                            errors += 1;
                            progress.failed(index);
                        }
                    }
                    _ = done.changed() => {}
                }
            }
            let _ = channel.close(200, "done".into()).await;
            Ok::<_, anyhow::Error>((sent, errors))
        }));
    }
    let result = gather(&progress, start, sender_tasks, consumer_tasks).await;
    for connection in connections {
        let _ = connection.close(200, "done".into()).await;
    }
    result
}

/// Deletes the durable queue Flowkeep declared on RabbitMQ for the bench.
async fn delete_rabbitmq_queue(url: &str, queue: &str) {
    if let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}
