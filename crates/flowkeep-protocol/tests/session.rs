//! Sessions over `Hub::serve_connection`: sign-in by password and jwt, bad logins, `validateonly`,
//! `longtoken`, `getelement`, refusals before sign-in, per-envelope jwt, heartbeats, token refresh,
//! timeouts, size limits, malformed input and backpressure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::*;
use flowkeep_core::PlatformConfig;
use flowkeep_protocol::{wire, ConnectionInfo, Hub, Inbound, ProtocolConfig};
use serde_json::{json, Value};
use std::time::Duration;

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn lifetime(jwt: &str) -> i64 {
    let c = claims(jwt);
    c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap()
}

#[tokio::test]
async fn signin_with_password_fills_the_user() {
    let hub = hub().await;
    let mut c = connect(&hub);
    let reply = c
        .request(
            "signin",
            &wire::SigninRequest { username: ADMIN.into(), password: ADMIN_PASSWORD.into(), ..Default::default() },
        )
        .await;
    assert_eq!(reply.command, "signinreply", "{}", error_text(&reply));
    let r: wire::SigninResponse = decode(&reply);
    assert!(!r.jwt.is_empty());
    let user = r.user.expect("user is required");
    assert_eq!(user.username, ADMIN);
    assert_eq!(user.id.len(), 24, "{user:?}");
    assert!(user.roles.iter().any(|role| role.name == "admins" && !role.id.is_empty()), "{user:?}");
    parse(&r.config);
    // the session works
    assert!(query(&mut c, "users", json!({"username": ADMIN})).await.len() == 1);
    let clients = hub.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].username.as_deref(), Some(ADMIN));
    assert_eq!(clients[0].agent, "");
}

#[tokio::test]
async fn bad_login_is_an_error_and_keeps_the_session() {
    let hub = hub().await;
    let mut c = connect(&hub);
    let bad = wire::SigninRequest { username: ADMIN.into(), password: "wrong".into(), ..Default::default() };
    let (message, code) = c.err("signin", &bad).await;
    assert_eq!(code, 401);
    assert!(message.contains("Unknown username or password"), "{message}");
    let (message, _) = c.err("signin", &wire::SigninRequest::default()).await;
    assert!(message.starts_with("username:"), "{message}");
    // signed in, a failed second sign-in does not end the session
    c.signin(ADMIN, ADMIN_PASSWORD).await;
    c.err("signin", &bad).await;
    assert_eq!(query(&mut c, "users", json!({"username": ADMIN})).await.len(), 1);
}

#[tokio::test]
async fn signin_with_jwt_validateonly_and_longtoken() {
    let hub = hub().await;
    let (_admin, jwt) = admin(&hub).await;
    let short = lifetime(&jwt);

    // jwt sign-in on another connection gives a fresh token
    let mut c = connect(&hub);
    let r: wire::SigninResponse = c.ok("signin", &wire::SigninRequest { jwt: jwt.clone(), ..Default::default() }).await;
    assert_eq!(r.user.unwrap().username, ADMIN);
    assert_ne!(r.jwt, jwt);
    assert_eq!(query(&mut c, "users", json!({"username": ADMIN})).await.len(), 1);

    // longtoken
    let long = wire::SigninRequest {
        username: ADMIN.into(),
        password: ADMIN_PASSWORD.into(),
        longtoken: true,
        ..Default::default()
    };
    let r: wire::SigninResponse = connect(&hub).ok("signin", &long).await;
    assert!(lifetime(&r.jwt) > short, "long {} vs short {short}", lifetime(&r.jwt));

    // validateonly checks but does not sign in
    let mut v = connect(&hub);
    let check = wire::SigninRequest {
        username: ADMIN.into(),
        password: ADMIN_PASSWORD.into(),
        validateonly: true,
        ..Default::default()
    };
    let r: wire::SigninResponse = v.ok("signin", &check).await;
    assert_eq!(r.user.unwrap().username, ADMIN);
    let (message, code) = v.err("query", &wire::QueryRequest { query: "{}".into(), ..Default::default() }).await;
    assert_eq!(code, 401);
    assert!(message.contains("not signed in"), "{message}");
    let bad = wire::SigninRequest { jwt: "not.a.jwt".into(), validateonly: true, ..Default::default() };
    v.err("signin", &bad).await;
}

#[tokio::test]
async fn guests_get_getelement_and_refusals() {
    let hub = hub().await;
    let mut c = connect(&hub);
    let env = wire::Envelope { command: "getelement".into(), id: "g1".into(), ..Default::default() };
    let id = c.send(env).await;
    let reply = c.reply_to(&id).await;
    assert_eq!(reply.command, "getelement");
    assert!(reply.data.is_some());

    // pings and pongs from the client are heartbeats: no reply
    c.send(wire::Envelope { command: "pong".into(), rid: "s1".into(), ..Default::default() }).await;
    c.send(wire::Envelope { command: "ping".into(), ..Default::default() }).await;
    for (command, _) in [("query", 0), ("insertone", 0), ("watch", 0), ("listcollections", 0)] {
        let env = wire::Envelope {
            command: command.into(),
            data: Some(flowkeep_protocol::codec::to_any(&wire::ListCollectionsRequest::default())),
            ..Default::default()
        };
        let id = c.send(env).await;
        let reply = c.next().await;
        assert_eq!(reply.rid, id, "pings must not be answered");
        assert_eq!(reply.command, "error");
        let e: wire::ErrorResponse = decode(&reply);
        assert!(e.message.contains("not signed in"), "{}", e.message);
        assert_eq!((e.code, e.stack.as_str()), (401, ""));
    }
}

#[tokio::test]
async fn envelope_jwt_overrides_the_session() {
    let hub = hub().await;
    let (mut admin, admin_jwt) = admin(&hub).await;
    let (mut bob, bob_jwt, _) = user(&hub, &mut admin, "bob").await;
    insert(&mut admin, "entities", json!({"name": "admin only"})).await;
    // bob's session does not see it; bob's request with the admin's jwt does
    assert!(query(&mut bob, "entities", json!({})).await.is_empty());
    let q = wire::QueryRequest { query: "{}".into(), collectionname: "entities".into(), ..Default::default() };
    let reply = bob.request_as(&admin_jwt, "query", &q).await;
    let r: wire::QueryResponse = decode(&reply);
    assert_eq!(parse(&r.results).as_array().unwrap().len(), 1);
    // and only for that request
    assert!(query(&mut bob, "entities", json!({})).await.is_empty());
    // an unsigned connection can work with envelope jwts alone
    let mut anon = connect(&hub);
    let reply = anon.request_as(&bob_jwt, "query", &q).await;
    assert_eq!(reply.command, "queryreply");
    let reply = anon.request_as("garbage", "query", &q).await;
    assert_eq!(reply.command, "error");
    let e: wire::ErrorResponse = decode(&reply);
    assert_eq!(e.code, 401);
}

#[tokio::test]
async fn unknown_malformed_and_oversized_messages_get_errors() {
    let config = ProtocolConfig { max_message_bytes: 4096, ..ProtocolConfig::default() };
    let hub = hub_with(config).await;
    let (mut c, _) = admin(&hub).await;

    let (message, _) = c.err("frobnicate", &wire::QueryRequest::default()).await;
    assert_eq!(message, "Unknown command frobnicate");
    let (message, code) = c.err("createworkflowinstance", &wire::QueryRequest::default()).await;
    assert!(message.contains("workflows") && message.contains("not available"), "{message}");
    assert_eq!(code, 501);

    // wrong data type, undecodable bytes, no data
    let (message, _) = c.err("query", &wire::CountRequest::default()).await;
    assert!(message.contains("QueryRequest"), "{message}");
    let mut env = c.envelope("query", &wire::QueryRequest::default());
    env.data.as_mut().unwrap().value = vec![0xff, 0xff, 0xff];
    let id = c.send(env).await;
    assert_eq!(c.reply_to(&id).await.command, "error");
    let id = c.send(wire::Envelope { command: "count".into(), ..Default::default() }).await;
    let reply = c.reply_to(&id).await;
    assert!(error_text(&reply).contains("no data"), "{}", error_text(&reply));

    // invalid JSON names the field
    let bad = wire::QueryRequest { query: "{oops".into(), ..Default::default() };
    let (message, code) = c.err("query", &bad).await;
    assert!(message.starts_with("query:"), "{message}");
    assert_eq!(code, 400);
    let bad = wire::InsertOneRequest { item: "[1,2]".into(), ..Default::default() };
    let (message, _) = c.err("insertone", &bad).await;
    assert!(message.starts_with("item:"), "{message}");

    // an undecodable frame
    c.tx.send(Inbound::Malformed("bad protobuf".into())).await.unwrap();
    let reply = c.next().await;
    assert!(error_text(&reply).contains("bad protobuf"));

    // oversized
    let big = wire::InsertOneRequest { item: json!({"x": "y".repeat(8000)}).to_string(), ..Default::default() };
    let (message, code) = c.err("insertone", &big).await;
    assert!(message.contains("larger than the limit of 4096 bytes"), "{message}");
    assert_eq!(code, 413);

    // still works
    insert(&mut c, "entities", json!({"name": "after"})).await;
}

#[tokio::test]
async fn large_replies_become_errors() {
    let hub = hub().await;
    let (mut admin, _) = admin(&hub).await;
    for i in 0..10 {
        insert(&mut admin, "entities", json!({"i": i, "pad": "x".repeat(1000)})).await;
    }
    let info = ConnectionInfo { max_outbound_bytes: 4000, ..info() };
    let mut c = connect_with(&hub, info, 16, 16);
    c.signin(ADMIN, ADMIN_PASSWORD).await;
    let (message, code) = c
        .err(
            "query",
            &wire::QueryRequest { query: "{}".into(), collectionname: "entities".into(), ..Default::default() },
        )
        .await;
    assert_eq!(code, 413);
    assert!(message.contains("top") && message.contains("4000"), "{message}");
    let r: wire::QueryResponse = c
        .ok(
            "query",
            &wire::QueryRequest { query: "{}".into(), collectionname: "entities".into(), top: 1, ..Default::default() },
        )
        .await;
    assert_eq!(parse(&r.results).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn heartbeat_pings_and_refresh_tokens() {
    let platform =
        platform_with(PlatformConfig { short_token_ttl: Duration::from_secs(3), ..PlatformConfig::default() }).await;
    let config = ProtocolConfig {
        heartbeat_interval: Duration::from_millis(100),
        refresh_before: Duration::from_millis(2500),
        ..ProtocolConfig::default()
    };
    let hub = Hub::new(platform, config);
    let mut c = connect(&hub);
    let request = wire::SigninRequest {
        username: ADMIN.into(),
        password: ADMIN_PASSWORD.into(),
        ping: true,
        ..Default::default()
    };
    let first: wire::SigninResponse = c.ok("signin", &request).await;
    let ping = c.next_where(|e| e.command == "ping").await;
    assert!(ping.data.is_some() && !ping.id.is_empty());
    c.send(wire::Envelope { command: "pong".into(), rid: ping.id, ..Default::default() }).await;
    let refresh = c.next_where(|e| e.command == "refreshtoken").await;
    let r: wire::RefreshToken = decode(&refresh);
    assert_eq!(r.username, ADMIN);
    assert_eq!(r.user.unwrap().username, ADMIN);
    assert_ne!(r.jwt, first.jwt);
    hub.platform().authenticate(&r.jwt).await.unwrap();
    // the session keeps working on the refreshed token after the first one expired
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(claims(&first.jwt)["exp"].as_i64().unwrap() < chrono::Utc::now().timestamp());
    assert_eq!(query(&mut c, "users", json!({"username": ADMIN})).await.len(), 1);
}

#[tokio::test]
async fn idle_and_signin_timeouts_close_connections() {
    let config = ProtocolConfig {
        idle_timeout: Duration::from_millis(600),
        signin_timeout: Duration::from_millis(1000),
        ..ProtocolConfig::default()
    };
    let hub = hub_with(config).await;
    // never says anything
    let mut silent = connect(&hub);
    assert!(silent.closed_within(Duration::from_secs(5)).await);
    // signed in with pings but never answers them
    let mut c = connect(&hub);
    let request = wire::SigninRequest {
        username: ADMIN.into(),
        password: ADMIN_PASSWORD.into(),
        ping: true,
        ..Default::default()
    };
    let _: wire::SigninResponse = c.ok("signin", &request).await;
    assert!(c.closed_within(Duration::from_secs(5)).await);
    // a guest that keeps talking stays past the sign-in timeout
    let mut g = connect(&hub);
    for _ in 0..12 {
        g.send(wire::Envelope { command: "pong".into(), ..Default::default() }).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = wire::Envelope { command: "getelement".into(), ..Default::default() };
    let id = g.send(env).await;
    assert_eq!(g.reply_to(&id).await.command, "getelement");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(hub.clients().len() == 1, "only the talking guest is left");
}

#[tokio::test]
async fn a_full_outbound_stops_reading_inbound() {
    let hub = hub().await;
    let (_a, jwt) = admin(&hub).await;
    let mut c = connect_with(&hub, info(), 2, 1);
    let q = wire::QueryRequest { query: "{}".into(), collectionname: "users".into(), ..Default::default() };
    // nobody reads: the connection must stop taking requests after a few
    let mut accepted = 0;
    for i in 0..100 {
        let mut env = c.envelope("query", &q);
        env.jwt = jwt.clone();
        env.seq = i;
        let size = prost::Message::encoded_len(&env);
        match tokio::time::timeout(Duration::from_millis(500), c.tx.send(Inbound::Envelope { envelope: env, size }))
            .await
        {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(_)) => panic!("connection gone"),
            Err(_) => break,
        }
    }
    assert!(accepted < 10, "accepted {accepted} requests with nobody reading");
    // reading again drains everything, in order
    for _ in 0..accepted {
        let reply = c.next().await;
        assert_eq!(reply.command, "queryreply", "{}", error_text(&reply));
    }
}

#[test]
fn serve_connection_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let hub = hub().await;
        let (tx, rx) = tokio::sync::mpsc::channel::<Inbound>(1);
        let (out, _out_rx) = tokio::sync::mpsc::channel(1);
        let fut = hub.serve_connection(info(), tokio_stream::wrappers::ReceiverStream::new(rx), out);
        assert_send(&fut);
        drop(tx);
        fut.await;
    });
}

#[tokio::test]
async fn getclients_shows_what_the_caller_may_see() {
    let hub = hub().await;
    let (mut admin, _) = admin(&hub).await;
    let (mut bob, _, bob_id) = user(&hub, &mut admin, "bob").await;
    let _guest = connect(&hub);
    let get = wire::CustomCommandRequest { command: "getclients".into(), ..Default::default() };
    let r: wire::CustomCommandResponse = admin.ok("customcommand", &get).await;
    let all = parse(&r.result);
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let r: wire::CustomCommandResponse = bob.ok("customcommand", &get).await;
    let own = parse(&r.result);
    let own = own.as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["userid"], bob_id);
    assert_eq!(own[0]["agent"], "test");
    assert_eq!(own[0]["transport"], "test");
    let (message, _) = bob
        .err("customcommand", &wire::CustomCommandRequest { command: "shutdown".into(), ..Default::default() })
        .await;
    assert!(message.contains("unknown custom command 'shutdown'"), "{message}");
}

#[tokio::test]
async fn no_input_breaks_the_connection() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let commands = [
        "signin",
        "getelement",
        "query",
        "count",
        "distinct",
        "aggregate",
        "insertone",
        "insertmany",
        "updateone",
        "updatedocument",
        "insertorupdateone",
        "insertorupdatemany",
        "deleteone",
        "deletemany",
        "getdocumentversion",
        "listcollections",
        "createcollection",
        "dropcollection",
        "createindex",
        "getindexes",
        "dropindex",
        "customcommand",
        "ensurecustomer",
        "watch",
        "unwatch",
        "upload",
        "download",
        "registerqueue",
        "queuemessage",
        "startagent",
        "invokeopenrpa",
        "",
        "QUERY",
    ];
    let garbage: [Option<prost_types::Any>; 4] = [
        None,
        Some(prost_types::Any { type_url: String::new(), value: vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f] }),
        Some(prost_types::Any { type_url: String::new(), value: vec![0x0a, 0x03, b'{', b'}', b'x', 0x12, 0x01, b'['] }),
        Some(prost_types::Any { type_url: "type.googleapis.com/openiap.Nothing".into(), value: Vec::new() }),
    ];
    for command in commands {
        for data in &garbage {
            let env = wire::Envelope { command: command.into(), data: data.clone(), ..Default::default() };
            let id = c.send(env).await;
            if command == "upload" {
                // a request that decodes opens an upload, answered at its end
                c.send(wire::Envelope { command: "endstream".into(), rid: id.clone(), ..Default::default() }).await;
            }
            let reply = c.reply_to(&id).await;
            assert!(reply.data.is_some(), "{command}: reply without data");
            if reply.command == "error" {
                let e: wire::ErrorResponse = decode(&reply);
                assert!(!e.message.is_empty() && e.code >= 400, "{command}: {e:?}");
            }
        }
    }
    for command in ["beginstream", "stream", "endstream"] {
        for data in &garbage {
            c.send(wire::Envelope {
                command: command.into(),
                rid: "nope".into(),
                data: data.clone(),
                ..Default::default()
            })
            .await;
        }
    }
    // Garbage that happened to decode registered a queue and sent to it: its queueevents may arrive.
    while let Some(e) = c.quiet_for(Duration::from_millis(200)).await {
        assert_eq!(e.command, "queueevent", "stream envelopes are never answered");
    }
    assert_eq!(query(&mut c, "users", json!({"username": ADMIN})).await.len(), 1);
}
