//! Queue commands over `Hub::serve_connection` (in-process broker): `registerqueue`/`queuemessage`/
//! `queueevent` between two connections, rpc through a temporary reply queue, an exchange with
//! `addqueue`, `unregisterqueue` stopping events, a disconnect removing the temporary queue, and a
//! second user refused another's queue.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use flowkeep_protocol::wire;
use serde_json::{json, Value};
use std::time::Duration;

async fn register(c: &mut Client, name: &str) -> String {
    let r: wire::RegisterQueueResponse =
        c.ok("registerqueue", &wire::RegisterQueueRequest { queuename: name.into() }).await;
    r.queuename
}

fn message(queue: &str, data: Value) -> wire::QueueMessageRequest {
    wire::QueueMessageRequest { queuename: queue.into(), data: data.to_string(), ..Default::default() }
}

async fn event(c: &mut Client) -> wire::QueueEvent {
    let e = c.next_where(|e| e.command == "queueevent").await;
    assert!(e.rid.is_empty());
    decode(&e)
}

#[tokio::test]
async fn queue_messages_flow_between_connections() {
    let hub = hub().await;
    let (mut admin_client, admin_jwt) = admin(&hub).await;
    let (mut alice, alice_jwt, alice_id) = user(&hub, &mut admin_client, "alice").await;
    let (mut bob, _, _) = user(&hub, &mut admin_client, "bob").await;

    // Alice consumes a named queue, lower-cased, and her own id queue.
    let name = register(&mut alice, "Work.Queue").await;
    assert_eq!(name, "work.queue");
    assert_eq!(register(&mut alice, &alice_id).await, alice_id);

    // The admin sends; the reply echoes the request with a correlation id.
    let mut request = message("WORK.queue", json!({"n": 1, "traceId": "t", "spanId": "s"}));
    request.replyto = "somewhere".into();
    let reply: wire::QueueMessageResponse = admin_client.ok("queuemessage", &request).await;
    assert_eq!(reply.queuename, "work.queue");
    assert_eq!(reply.replyto, "somewhere");
    assert_eq!(reply.correlation_id.len(), 24);
    let e = event(&mut alice).await;
    assert_eq!(e.queuename, "work.queue");
    assert_eq!(e.correlation_id, reply.correlation_id);
    assert_eq!(e.replyto, "somewhere");
    let data = parse(&e.data);
    assert_eq!(data["n"], 1);
    assert!(data.get("traceId").is_none() && data.get("spanId").is_none(), "{data}");
    assert_eq!(data["__jwt"], admin_jwt.as_str());
    assert_eq!(data["__user"]["username"], ADMIN);

    // striptoken; a message to her id queue from herself.
    let mut request = message(&alice_id, json!({"n": 2}));
    request.striptoken = true;
    let _: wire::QueueMessageResponse = alice.ok("queuemessage", &request).await;
    let e = event(&mut alice).await;
    assert_eq!(e.queuename, alice_id);
    assert_eq!(parse(&e.data), json!({"n": 2}));
    let _ = alice_jwt;

    // Bob may neither consume nor send to alice's queues.
    let (message_text, code) = bob.err("registerqueue", &wire::RegisterQueueRequest { queuename: name.clone() }).await;
    assert_eq!(code, 403, "{message_text}");
    let (_, code) = bob.err("queuemessage", &message(&name, json!({}))).await;
    assert_eq!(code, 403);
    let (_, code) = bob.err("registerqueue", &wire::RegisterQueueRequest { queuename: alice_id.clone() }).await;
    assert_eq!(code, 403);
    let (_, code) = bob.err("registerqueue", &wire::RegisterQueueRequest { queuename: "openflow".into() }).await;
    assert_eq!(code, 403);
    let (_, code) = bob.err("queuemessage", &wire::QueueMessageRequest::default()).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn rpc_through_a_temporary_reply_queue() {
    let hub = hub().await;
    let (mut admin_client, _) = admin(&hub).await;
    let (mut worker, _, _) = user(&hub, &mut admin_client, "worker").await;
    let (mut client, _, _) = user(&hub, &mut admin_client, "client").await;
    let work = register(&mut worker, "rpc.work").await;
    // The worker claimed its queue; the admin may send to it.
    let reply_queue = register(&mut client, "").await;
    assert!(reply_queue.starts_with("tmp."), "{reply_queue}");

    let mut request = message(&work, json!({"q": "ping"}));
    request.replyto = reply_queue.clone();
    let sent: wire::QueueMessageResponse = admin_client.ok("queuemessage", &request).await;
    let job = event(&mut worker).await;
    assert_eq!(job.replyto, reply_queue);
    // The worker answers as the official client does.
    let answer = wire::QueueMessageRequest {
        queuename: job.replyto.clone(),
        correlation_id: job.correlation_id.clone(),
        data: json!({"a": "pong"}).to_string(),
        striptoken: true,
        ..Default::default()
    };
    let _: wire::QueueMessageResponse = worker.ok("queuemessage", &answer).await;
    let e = event(&mut client).await;
    assert_eq!(e.queuename, reply_queue);
    assert_eq!(e.correlation_id, sent.correlation_id);
    assert_eq!(parse(&e.data), json!({"a": "pong"}));

    // A message to nobody comes back as a timeout.
    let mut request = message("nobody.home", json!({"command": "invoke"}));
    request.replyto = reply_queue.clone();
    let _: wire::QueueMessageResponse = client.ok("queuemessage", &request).await;
    let e = event(&mut client).await;
    assert_eq!(parse(&e.data)["command"], "timeout");

    // Disconnecting removes the temporary queue.
    let platform = hub.platform().clone();
    assert!(platform.broker().queue_exists(&reply_queue).await.unwrap());
    drop(client);
    let mut gone = false;
    for _ in 0..50 {
        if !platform.broker().queue_exists(&reply_queue).await.unwrap() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the temporary queue outlived its connection");
}

#[tokio::test]
async fn exchanges_and_unregister() {
    let hub = hub().await;
    let (mut a, _) = admin(&hub).await;
    let (mut b, _) = admin(&hub).await;
    let request = |key: &str| wire::RegisterExchangeRequest {
        exchangename: "News".into(),
        algorithm: "direct".into(),
        routingkey: key.into(),
        addqueue: true,
    };
    let qa: wire::RegisterExchangeResponse = a.ok("registerexchange", &request("sports")).await;
    let qb: wire::RegisterExchangeResponse = b.ok("registerexchange", &request("weather")).await;
    assert!(!qa.queuename.is_empty() && qa.queuename != qb.queuename);

    let send = |key: &str| wire::QueueMessageRequest {
        exchangename: "news".into(),
        routingkey: key.into(),
        data: json!({"k": key}).to_string(),
        ..Default::default()
    };
    let _: wire::QueueMessageResponse = a.ok("queuemessage", &send("weather")).await;
    let e = event(&mut b).await;
    assert_eq!(e.queuename, qb.queuename);
    assert_eq!(e.exchangename, "news");
    assert_eq!(e.routingkey, "weather");
    assert_eq!(parse(&e.data)["k"], "weather");
    assert!(a.quiet_for(Duration::from_millis(200)).await.is_none());

    // Unregistering stops the events.
    let _: wire::UnRegisterQueueResponse =
        b.ok("unregisterqueue", &wire::UnRegisterQueueRequest { queuename: qb.queuename.clone() }).await;
    let _: wire::QueueMessageResponse = a.ok("queuemessage", &send("weather")).await;
    assert!(b.quiet_for(Duration::from_millis(300)).await.is_none());
    let (_, code) = b.err("unregisterqueue", &wire::UnRegisterQueueRequest { queuename: qb.queuename }).await;
    assert_eq!(code, 404);

    // Without addqueue there is no queue; a bad algorithm is refused.
    let mut plain = request("");
    plain.addqueue = false;
    let r: wire::RegisterExchangeResponse = a.ok("registerexchange", &plain).await;
    assert!(r.queuename.is_empty());
    let mut bad = request("");
    bad.algorithm = "round-robin".into();
    let (_, code) = a.err("registerexchange", &bad).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn a_slow_client_is_not_flooded() {
    let hub = hub().await;
    let (mut sender, _) = admin(&hub).await;
    let mut slow = connect_with(&hub, info(), 16, 4);
    let _ = slow.signin(ADMIN, ADMIN_PASSWORD).await;
    let name = register(&mut slow, "slow.q").await;
    for i in 0..60 {
        let _: wire::QueueMessageResponse = sender.ok("queuemessage", &message(&name, json!({"i": i}))).await;
    }
    // Every message arrives, in order, although the client read nothing for a while.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..60 {
        let e = event(&mut slow).await;
        assert_eq!(parse(&e.data)["i"], i);
    }
}

#[tokio::test]
async fn envelope_priority_orders_a_backlog() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let name = register(&mut c, "prio.q").await;
    let _: wire::UnRegisterQueueResponse =
        c.ok("unregisterqueue", &wire::UnRegisterQueueRequest { queuename: name.clone() }).await;
    for priority in [0, 3, 1, 2] {
        let mut env = c.envelope("queuemessage", &message(&name, json!({"p": priority})));
        env.priority = priority;
        let id = c.send(env).await;
        assert_eq!(c.reply_to(&id).await.command, "queuemessagereply");
    }
    register(&mut c, &name).await;
    for expected in [3, 2, 1, 0] {
        assert_eq!(parse(&event(&mut c).await.data)["p"], expected);
    }
}
