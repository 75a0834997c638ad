//! The gRPC and WebSocket transports with raw clients: WebSocket framing (several envelopes in one
//! message, one envelope over several messages), the size limits (an envelope over `max_message_bytes`
//! gets an `error` and the connection stays usable; a frame over the hard cap closes it), the idle extra
//! socket the official client opens, and `getelement` and `signin` over both transports.
//!
//! Framing and limit tests run the transports around a bare echo (small limits, no protocol); the others
//! run the whole server.

mod support;

use flowkeep_protocol::{wire, ConnectionInfo, Inbound};
use flowkeep_server::transport::{ConnectionHandler, TransportLimits};
use flowkeep_server::{TransportSetup, Transports};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use prost::Message as _;
use std::sync::Arc;
use support::*;

/// Answers every envelope with what the transport told it about the connection.
struct Describe;

impl ConnectionHandler for Describe {
    fn serve(
        self: Arc<Self>,
        info: ConnectionInfo,
        mut inbound: BoxStream<'static, Inbound>,
        outbound: tokio::sync::mpsc::Sender<wire::Envelope>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            while let Some(Inbound::Envelope { envelope, size }) = inbound.next().await {
                let reply = wire::Envelope {
                    command: info.transport.into(),
                    rid: envelope.id,
                    jwt: format!("{:?}|{}|{size}", info.remote, info.max_outbound_bytes),
                    ..Default::default()
                };
                if outbound.send(reply).await.is_err() {
                    return;
                }
            }
        })
    }

    fn channel_capacity(&self) -> usize {
        4
    }
}

#[tokio::test]
async fn connection_info_names_transport_peer_and_outbound_limit() {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limits = TransportLimits::new(1 << 20);
    let server = Transports::start(Arc::new(Describe), TransportSetup::bare(http, grpc, limits)).unwrap();
    let request = bare("x", "1");
    let size = request.encoded_len();

    let mut ws = WsClient::plain(server.http_addr).await;
    ws.send(&request).await;
    let reply = ws.recv().await;
    assert_eq!(reply.command, "websocket");
    assert!(reply.jwt.starts_with("Some(127.0.0.1:"), "{}", reply.jwt);
    assert!(reply.jwt.ends_with(&format!("|{}|{size}", 2 << 20)), "{}", reply.jwt);

    let mut grpc = GrpcClient::plain(server.grpc_addr).await;
    grpc.send(request).await;
    let reply = grpc.reply_to("1").await;
    assert_eq!(reply.command, "grpc");
    assert!(reply.jwt.starts_with("Some(127.0.0.1:"), "{}", reply.jwt);
    assert!(reply.jwt.ends_with(&format!("|{}|{size}", 4 << 20)), "{}", reply.jwt);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ws_frames_join_and_split_across_messages() {
    let echo = start_echo(1024).await;
    let mut client = WsClient::plain(echo.http_addr).await;

    let mut two = frame(&bare("first", "1"));
    two.extend(frame(&bare("second", "2")));
    client.send_raw(two).await;
    let a = client.recv().await;
    let b = client.recv().await;
    assert_eq!((a.command.as_str(), a.rid.as_str()), ("first", "1"));
    assert_eq!((b.command.as_str(), b.rid.as_str()), ("second", "2"));

    let one = frame(&bare("split", "3"));
    client.send_raw(one[..3].to_vec()).await;
    client.send_raw(one[3..].to_vec()).await;
    assert_eq!(client.recv().await.rid, "3");
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn ws_sizes_between_the_limit_and_the_cap_pass_and_over_the_cap_close() {
    let echo = start_echo(1024).await;
    let mut client = WsClient::plain(echo.http_addr).await;

    let mut big = bare("big", "1");
    big.jwt = "x".repeat(1500); // over the 1 KiB limit, under the 2 KiB cap: the handler decides
    client.send(&big).await;
    assert_eq!(client.recv().await.jwt.len(), 1500);

    // A declared length over the cap closes the connection before any body is read.
    let mut over = (4096u32).to_le_bytes().to_vec();
    over.extend_from_slice(b"tiny");
    client.send_raw(over).await;
    let close = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    assert!(close.reason.contains("4096") && close.reason.contains("2048"), "{}", close.reason);
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn ws_envelopes_over_the_client_frame_limit_arrive_split() {
    // The client side has tungstenite's limits (16 MiB frames), like the official client.
    let echo = start_echo(16 << 20).await;
    let mut client = WsClient::plain(echo.http_addr).await;
    let mut big = bare("big", "1");
    big.jwt = "y".repeat(20 << 20);
    client.send_raw_split(frame(&big), 8 << 20).await;
    let reply = client.recv().await;
    assert_eq!((reply.rid.as_str(), reply.jwt.len()), ("1", 20 << 20));
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn ws_message_over_the_library_limit_closes() {
    let echo = start_echo(1024).await;
    let mut client = WsClient::plain(echo.http_addr).await;
    // Two frames under the cap in one message larger than cap + prefix: refused by the WebSocket layer.
    let mut e = bare("big", "1");
    e.jwt = "x".repeat(1500);
    let mut message = frame(&e);
    message.extend(frame(&e));
    client.send_raw(message).await;
    let close = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");
    assert!(close.reason.contains("too long") || close.reason.contains("limit"), "{close:?}");
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn ws_text_and_garbage_do_not_break_the_connection() {
    let echo = start_echo(1024).await;
    let mut client = WsClient::plain(echo.http_addr).await;
    client.ws_send_text("hello").await;
    let mut garbage = 3u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    client.send_raw(garbage).await;
    client.send(&bare("after", "9")).await;
    assert_eq!(client.recv().await.rid, "9");
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn ws_idle_extra_socket_is_tolerated() {
    let echo = start_echo(1024).await;
    let _idle = WsClient::plain(echo.http_addr).await; // never reads or writes
    let mut client = WsClient::plain(echo.http_addr).await;
    client.send(&bare("real", "1")).await;
    assert_eq!(client.recv().await.rid, "1");
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_echo_and_hard_cap() {
    let echo = start_echo(1024).await;
    let mut client = GrpcClient::plain(echo.grpc_addr).await;
    client.send(bare("getelement", "1")).await;
    assert_eq!(client.reply_to("1").await.command, "getelement");

    let mut big = bare("big", "2");
    big.jwt = "x".repeat(1500);
    client.send(big).await;
    assert_eq!(client.reply_to("2").await.jwt.len(), 1500);

    let mut over = bare("over", "3");
    over.jwt = "x".repeat(4096);
    client.send(over).await;
    // The stream ends (with an error status or simply closed); it never echoes the over-cap envelope.
    while let Some(Ok(e)) = client.next().await {
        assert_ne!(e.rid, "3", "an over-cap envelope must not be passed on");
    }
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_unary_calls_are_unimplemented() {
    let echo = start_echo(1024).await;
    let mut client =
        openiap_proto::openiap::flow_service_client::FlowServiceClient::connect(format!("http://{}", echo.grpc_addr))
            .await
            .unwrap();
    let status = client.signin(openiap_proto::openiap::SigninRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(status.message(), flowkeep_server::grpc::USE_SETUP_STREAM);
    echo.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let echo = start_echo(1024).await;
    let mut ws = WsClient::plain(echo.http_addr).await;
    let mut grpc = GrpcClient::plain(echo.grpc_addr).await;
    grpc.send(bare("x", "1")).await;
    assert_eq!(grpc.reply_to("1").await.command, "x");
    tokio::time::timeout(std::time::Duration::from_secs(15), echo.stop()).await.expect("drains in time").unwrap();
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);
    assert!(grpc.next().await.is_none_or(|r| r.is_err()));
}

// ---- the whole server ----

#[tokio::test]
async fn getelement_and_signin_over_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(test_config(dir.path())).await;

    let mut ws = WsClient::plain(server.http_addr()).await;
    ws.send(&bare("getelement", "1")).await;
    assert_eq!(ws.reply_to("1").await.command, "getelement");
    ws.send(&signin("2", ADMIN, ADMIN_PASSWORD)).await;
    let reply = ws.reply_to("2").await;
    assert_eq!(reply.command, "signinreply", "{reply:?}");
    let data = reply.data.expect("signin replies carry data");
    let response = openiap_proto::openiap::SigninResponse::decode(data.value.as_slice()).unwrap();
    assert!(response.user.is_some() && !response.jwt.is_empty());

    let mut grpc = GrpcClient::plain(server.grpc_addr()).await;
    grpc.send(bare("getelement", "1")).await;
    assert_eq!(grpc.reply_to("1").await.command, "getelement");
    grpc.send(signin("2", ADMIN, ADMIN_PASSWORD)).await;
    assert_eq!(grpc.reply_to("2").await.command, "signinreply");
    grpc.send(signin("3", ADMIN, "not the password at all")).await;
    assert_eq!(grpc.reply_to("3").await.command, "error");

    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_envelopes_get_an_error_and_over_cap_frames_close() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let max = config.max_message_bytes();
    let cap = config.hard_cap_bytes();
    let server = start_server(config).await;

    let oversized = || {
        let mut e = openiap_proto::openiap::InsertOneRequest {
            collectionname: "entities".into(),
            item: format!("{{\"pad\":\"{}\"}}", "x".repeat(max)),
            ..Default::default()
        }
        .to_envelope();
        e.id = "big".into();
        e
    };

    let mut ws = WsClient::plain(server.http_addr()).await;
    ws.send(&oversized()).await;
    let reply = ws.reply_to("big").await;
    assert!(!error_message(&reply).is_empty());
    ws.send(&bare("getelement", "after")).await;
    assert_eq!(ws.reply_to("after").await.command, "getelement", "the connection stays usable");

    let mut over = ((cap + 1) as u32).to_le_bytes().to_vec();
    over.extend_from_slice(b"tiny");
    ws.send_raw(over).await;
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);

    let mut grpc = GrpcClient::plain(server.grpc_addr()).await;
    grpc.send(oversized()).await;
    assert!(!error_message(&grpc.reply_to("big").await).is_empty());
    grpc.send(bare("getelement", "after")).await;
    assert_eq!(grpc.reply_to("after").await.command, "getelement", "the stream stays usable");

    server.stop().await.unwrap();
}

#[tokio::test]
async fn config_document_reports_websocket_url_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(test_config(dir.path())).await;
    let config: serde_json::Value =
        reqwest::get(format!("http://{}/config", server.http_addr())).await.unwrap().json().await.unwrap();
    assert_eq!(config["wsurl"], format!("ws://{}/ws/v2", server.http_addr()));
    assert_eq!(config["supports_watch"], true);
    assert!(config.as_object().unwrap().values().all(|v| !v.is_null()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_socket_is_closed_after_the_signin_timeout_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.signin_timeout_seconds = 1;
    let server = start_server(config).await;
    let mut idle = WsClient::plain(server.http_addr()).await; // like the official client's extra socket
    let mut client = WsClient::plain(server.http_addr()).await;
    client.send(&signin("1", ADMIN, ADMIN_PASSWORD)).await;
    assert_eq!(client.reply_to("1").await.command, "signinreply");
    let started = std::time::Instant::now();
    idle.closed().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    client.send(&bare("getelement", "2")).await;
    assert_eq!(client.reply_to("2").await.command, "getelement", "a signed-in connection stays open");
    server.stop().await.unwrap();
}
