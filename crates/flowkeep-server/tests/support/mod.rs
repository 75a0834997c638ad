//! Raw OpenIAP clients for the transport tests (a WebSocket client that frames envelopes by hand and a
//! tonic `SetupStream` client), and servers to point them at: the whole server on a temporary data
//! folder, or both transports around a bare echo.

#![allow(dead_code)]

use flowkeep_protocol::wire;
use flowkeep_server::transport::{Echo, TransportLimits};
use flowkeep_server::{Config, RunningServer, TransportSetup, Transports};
use futures_util::{SinkExt, StreamExt};
use openiap_proto::openiap::flow_service_client::FlowServiceClient;
use prost::Message as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The first admin's password in every test server.
pub const ADMIN_PASSWORD: &str = "a long enough test password";
/// The first admin's user name.
pub const ADMIN: &str = "flowkeep-admin";
/// How long a test waits for one reply.
pub const WAIT: Duration = Duration::from_secs(20);

/// A configuration for a test server on free ports in `dir`.
pub fn test_config(dir: &Path) -> Config {
    Config {
        http_addr: "127.0.0.1:0".into(),
        grpc_addr: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        admin_password: ADMIN_PASSWORD.into(),
        log_level: "warn".into(),
        ..Config::default()
    }
}

/// Starts the whole server.
pub async fn start_server(config: Config) -> RunningServer {
    config.validate().expect("valid test configuration");
    flowkeep_server::start(config).await.expect("server starts")
}

/// Starts both transports around a bare echo with small limits (`max` bytes, hard cap `2 * max`).
pub async fn start_echo(max: usize) -> Transports {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let setup = TransportSetup::bare(http, grpc, TransportLimits::new(max));
    Transports::start(Arc::new(Echo), setup).expect("transports start")
}

/// An envelope with a command and id and no data.
pub fn bare(command: &str, id: &str) -> wire::Envelope {
    wire::Envelope { command: command.into(), id: id.into(), ..Default::default() }
}

/// A `signin` envelope with user name and password.
pub fn signin(id: &str, username: &str, password: &str) -> wire::Envelope {
    let mut envelope = wire::SigninRequest::with_userpass(username, password).to_envelope();
    envelope.id = id.into();
    envelope
}

/// One frame: length prefix and body.
pub fn frame(envelope: &wire::Envelope) -> Vec<u8> {
    let body = envelope.encode_to_vec();
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// The `ErrorResponse` message of an `error` envelope.
pub fn error_message(envelope: &wire::Envelope) -> String {
    assert_eq!(envelope.command, "error", "{envelope:?}");
    let data = envelope.data.as_ref().expect("error replies carry data");
    wire::ErrorResponse::decode(data.value.as_slice()).expect("an ErrorResponse").message
}

/// A raw WebSocket client speaking the `/ws/v2` framing.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buf: Vec<u8>,
}

impl WsClient {
    /// Connects to `ws[s]://addr/ws/v2`.
    pub async fn connect(url: &str, connector: Option<tokio_tungstenite::Connector>) -> WsClient {
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(16 << 20));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector)
            .await
            .expect("websocket connects");
        WsClient { ws, buf: Vec::new() }
    }

    /// Connects over plain text to the HTTP listener at `addr`.
    pub async fn plain(addr: SocketAddr) -> WsClient {
        Self::connect(&format!("ws://{addr}/ws/v2"), None).await
    }

    /// Sends raw bytes as one binary message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.expect("send");
    }

    /// Sends raw bytes as several binary messages of at most `piece` bytes.
    pub async fn send_raw_split(&mut self, bytes: Vec<u8>, piece: usize) {
        for chunk in bytes.chunks(piece) {
            self.send_raw(chunk.to_vec()).await;
        }
    }

    /// Sends a text message (not part of the protocol).
    pub async fn ws_send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Sends one envelope as one message.
    pub async fn send(&mut self, envelope: &wire::Envelope) {
        self.send_raw(frame(envelope)).await;
    }

    /// The next envelope (waiting up to [`WAIT`]); panics on a close, a text frame or a ping payload.
    pub async fn recv(&mut self) -> wire::Envelope {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
                if self.buf.len() >= 4 + len {
                    let envelope = wire::Envelope::decode(&self.buf[4..4 + len]).expect("a valid envelope");
                    self.buf.drain(..4 + len);
                    return envelope;
                }
            }
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a reply in time")
                .expect("the connection stays open")
                .expect("no websocket error");
            match message {
                Message::Binary(data) => self.buf.extend_from_slice(&data),
                Message::Ping(payload) => assert!(payload.is_empty(), "pings must not carry a payload"),
                Message::Pong(_) => {}
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next envelope that answers `id` (skipping pings and events).
    pub async fn reply_to(&mut self, id: &str) -> wire::Envelope {
        loop {
            let envelope = self.recv().await;
            if envelope.rid == id {
                return envelope;
            }
        }
    }

    /// Waits for the server to close the connection and returns its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("closed in time") {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// A raw gRPC `SetupStream` client.
pub struct GrpcClient {
    pub tx: mpsc::Sender<wire::Envelope>,
    pub rx: tonic::Streaming<wire::Envelope>,
}

impl GrpcClient {
    /// Opens `SetupStream` on `channel`.
    pub async fn open(channel: tonic::transport::Channel) -> GrpcClient {
        let mut client =
            FlowServiceClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel(16);
        let response = client
            .setup_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("SetupStream answers at once");
        GrpcClient { tx, rx: response.into_inner() }
    }

    /// Connects over plain text (h2c).
    pub async fn plain(addr: SocketAddr) -> GrpcClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("gRPC connects");
        Self::open(channel).await
    }

    /// Sends one envelope.
    pub async fn send(&mut self, envelope: wire::Envelope) {
        self.tx.send(envelope).await.expect("the request stream is open");
    }

    /// The next envelope, or the stream's end/error.
    pub async fn next(&mut self) -> Option<Result<wire::Envelope, tonic::Status>> {
        tokio::time::timeout(WAIT, self.rx.next()).await.expect("a reply in time")
    }

    /// The next envelope that answers `id`.
    pub async fn reply_to(&mut self, id: &str) -> wire::Envelope {
        loop {
            let envelope = self.next().await.expect("the stream stays open").expect("no stream error");
            if envelope.rid == id {
                return envelope;
            }
        }
    }
}
