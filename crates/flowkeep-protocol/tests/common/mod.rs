//! Test harness: a real `Platform` over a temporary SQLite store behind a `Hub`, and an in-memory client
//! that drives `Hub::serve_connection` through channels (no network).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flowkeep_core::{Platform, PlatformConfig};
use flowkeep_protocol::codec::{to_any, WireMessage};
use flowkeep_protocol::{wire, ConnectionInfo, Hub, Inbound, ProtocolConfig};
use flowkeep_security::MasterKey;
use flowkeep_store::{SqliteStore, Store};
use prost::Message;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

pub const ADMIN: &str = "flowkeep-admin";
pub const ADMIN_PASSWORD: &str = "admin password for protocol tests";
pub const WAIT: Duration = Duration::from_secs(20);

pub async fn platform_with(config: PlatformConfig) -> Arc<Platform> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temporary().unwrap());
    let config = PlatformConfig { admin_password: Some(ADMIN_PASSWORD.into()), ..config };
    Arc::new(Platform::open(store, config, &MasterKey::generate().unwrap()).await.unwrap())
}

pub async fn hub_with(config: ProtocolConfig) -> Arc<Hub> {
    Hub::new(platform_with(PlatformConfig::default()).await, config)
}

pub async fn hub() -> Arc<Hub> {
    hub_with(ProtocolConfig::default()).await
}

pub fn info() -> ConnectionInfo {
    ConnectionInfo { transport: "test", remote: Some("127.0.0.1:4000".parse().unwrap()), max_outbound_bytes: 4 << 20 }
}

/// One client connection.
pub struct Client {
    pub tx: mpsc::Sender<Inbound>,
    pub rx: mpsc::Receiver<wire::Envelope>,
    /// Envelopes received while waiting for something else.
    pub pending: VecDeque<wire::Envelope>,
    pub seq: i32,
    next: u64,
    pub task: JoinHandle<()>,
}

pub fn connect(hub: &Arc<Hub>) -> Client {
    connect_with(hub, info(), 16, 64)
}

pub fn connect_with(hub: &Arc<Hub>, info: ConnectionInfo, inbound_capacity: usize, outbound_capacity: usize) -> Client {
    let (tx, in_rx) = mpsc::channel(inbound_capacity);
    let (out_tx, rx) = mpsc::channel(outbound_capacity);
    let task = tokio::spawn(hub.clone().serve_connection(info, ReceiverStream::new(in_rx), out_tx));
    Client { tx, rx, pending: VecDeque::new(), seq: 0, next: 0, task }
}

impl Client {
    pub fn envelope<T: WireMessage>(&mut self, command: &str, msg: &T) -> wire::Envelope {
        self.next += 1;
        wire::Envelope {
            command: command.into(),
            id: format!("c{}", self.next),
            data: Some(to_any(msg)),
            ..Default::default()
        }
    }

    /// Sends an envelope (filling seq); returns its id.
    pub async fn send(&mut self, mut envelope: wire::Envelope) -> String {
        envelope.seq = self.seq;
        self.seq += 1;
        if envelope.id.is_empty() {
            self.next += 1;
            envelope.id = format!("c{}", self.next);
        }
        let id = envelope.id.clone();
        let size = envelope.encoded_len();
        self.tx.send(Inbound::Envelope { envelope, size }).await.expect("connection gone");
        id
    }

    /// The next envelope from the server.
    pub async fn next(&mut self) -> wire::Envelope {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        tokio::time::timeout(WAIT, self.rx.recv()).await.expect("timed out waiting for the server").expect("closed")
    }

    /// The next envelope matching `pred`, keeping the others for later.
    pub async fn next_where(&mut self, pred: impl Fn(&wire::Envelope) -> bool) -> wire::Envelope {
        if let Some(pos) = self.pending.iter().position(&pred) {
            return self.pending.remove(pos).unwrap();
        }
        loop {
            let e = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .expect("timed out waiting for the server")
                .expect("closed");
            if pred(&e) {
                return e;
            }
            self.pending.push_back(e);
        }
    }

    /// The reply to request `id`.
    pub async fn reply_to(&mut self, id: &str) -> wire::Envelope {
        let id = id.to_owned();
        self.next_where(move |e| e.rid == id && e.command != "stream").await
    }

    /// Sends `msg` as `command` and waits for the reply.
    pub async fn request<T: WireMessage>(&mut self, command: &str, msg: &T) -> wire::Envelope {
        let env = self.envelope(command, msg);
        let id = self.send(env).await;
        self.reply_to(&id).await
    }

    /// Sends `msg` with an envelope jwt and waits for the reply.
    pub async fn request_as<T: WireMessage>(&mut self, jwt: &str, command: &str, msg: &T) -> wire::Envelope {
        let mut env = self.envelope(command, msg);
        env.jwt = jwt.into();
        let id = self.send(env).await;
        self.reply_to(&id).await
    }

    /// Sends and expects a successful reply `<command>reply` decoding as `R`.
    pub async fn ok<T: WireMessage, R: WireMessage>(&mut self, command: &str, msg: &T) -> R {
        let reply = self.request(command, msg).await;
        assert_eq!(reply.command, format!("{command}reply"), "{command} failed: {}", error_text(&reply));
        decode(&reply)
    }

    /// Sends and expects an `error`; returns (message, code).
    pub async fn err<T: WireMessage>(&mut self, command: &str, msg: &T) -> (String, i32) {
        let reply = self.request(command, msg).await;
        assert_eq!(reply.command, "error", "{command} should fail, got {}", reply.command);
        let e: wire::ErrorResponse = decode(&reply);
        (e.message, e.code)
    }

    /// Signs in with a password; returns the response.
    pub async fn signin(&mut self, username: &str, password: &str) -> wire::SigninResponse {
        let request = wire::SigninRequest {
            username: username.into(),
            password: password.into(),
            agent: "test".into(),
            version: "0.0.41".into(),
            ..Default::default()
        };
        self.ok("signin", &request).await
    }

    /// Waits until the server closes the connection; panics if it sends anything meanwhile but pings.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return false,
                Ok(None) => return true,
                Ok(Some(_)) => continue,
            }
        }
    }

    /// What arrives within `d`, if anything.
    pub async fn quiet_for(&mut self, d: Duration) -> Option<wire::Envelope> {
        if let Some(e) = self.pending.pop_front() {
            return Some(e);
        }
        tokio::time::timeout(d, self.rx.recv()).await.unwrap_or_default()
    }
}

pub fn decode<R: WireMessage>(envelope: &wire::Envelope) -> R {
    let data = envelope.data.as_ref().unwrap_or_else(|| panic!("{} has no data", envelope.command));
    assert_eq!(data.type_url, format!("type.googleapis.com/openiap.{}", R::NAME), "type of {}", envelope.command);
    R::decode(data.value.as_slice()).unwrap()
}

pub fn error_text(envelope: &wire::Envelope) -> String {
    if envelope.command == "error" {
        let e: wire::ErrorResponse = decode(envelope);
        format!("{} ({})", e.message, e.code)
    } else {
        String::new()
    }
}

pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A signed-in admin client.
pub async fn admin(hub: &Arc<Hub>) -> (Client, String) {
    let mut c = connect(hub);
    let r = c.signin(ADMIN, ADMIN_PASSWORD).await;
    (c, r.jwt)
}

/// Creates a user with a password (as the admin client) and returns its id.
pub async fn create_user(admin: &mut Client, username: &str, password: &str) -> String {
    let item = json!({"_type": "user", "username": username, "name": username, "newpassword": password});
    let r: wire::InsertOneResponse = admin
        .ok(
            "insertone",
            &wire::InsertOneRequest { collectionname: "users".into(), item: item.to_string(), ..Default::default() },
        )
        .await;
    parse(&r.result)["_id"].as_str().unwrap().to_owned()
}

/// A signed-in client for a new user.
pub async fn user(hub: &Arc<Hub>, admin: &mut Client, username: &str) -> (Client, String, String) {
    let password = format!("{username} password");
    let id = create_user(admin, username, &password).await;
    let mut c = connect(hub);
    let r = c.signin(username, &password).await;
    (c, r.jwt, id)
}

pub async fn insert(c: &mut Client, collection: &str, item: Value) -> Value {
    let r: wire::InsertOneResponse = c
        .ok(
            "insertone",
            &wire::InsertOneRequest { collectionname: collection.into(), item: item.to_string(), ..Default::default() },
        )
        .await;
    parse(&r.result)
}

pub async fn query(c: &mut Client, collection: &str, q: Value) -> Vec<Value> {
    let r: wire::QueryResponse = c
        .ok(
            "query",
            &wire::QueryRequest { collectionname: collection.into(), query: q.to_string(), ..Default::default() },
        )
        .await;
    parse(&r.results).as_array().unwrap().clone()
}
