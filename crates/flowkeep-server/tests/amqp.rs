//! The whole server on RabbitMQ (`amqp_url`): clients talk to each other through queues that really exist
//! on RabbitMQ (checked from an outside AMQP connection), and a workitem queue's `amqpqueue` is told when
//! items are ready. RabbitMQ comes from `FLOWKEEP_TEST_AMQP_URL` (default the local guest account); when it
//! is unreachable the test fails under `CI=true` and is skipped loudly otherwise.

mod support;

use flowkeep_protocol::wire;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use support::{signin, start_server, test_config, WsClient, ADMIN, ADMIN_PASSWORD};

fn amqp_url() -> String {
    std::env::var("FLOWKEEP_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// An outside connection to RabbitMQ, or `None` (outside CI) when it is down.
async fn rabbitmq() -> Option<Connection> {
    match Connection::connect(&amqp_url(), ConnectionProperties::default()).await {
        Ok(c) => Some(c),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("RabbitMQ at {} is unreachable in CI: {e}", amqp_url())
        }
        Err(e) => {
            eprintln!("!!!!!!!! SKIPPED: RabbitMQ unreachable ({e}); in CI this test fails instead !!!!!!!!");
            None
        }
    }
}

async fn queue_exists(connection: &Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.expect("channel");
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    // An exclusive (temporary) queue exists but is locked to its owner's connection.
    match channel.queue_declare(queue.into(), options, FieldTable::default()).await {
        Ok(_) => {
            let _ = channel.close(200, "done".into()).await;
            true
        }
        Err(e) => e.to_string().to_uppercase().contains("LOCKED"),
    }
}

fn decode<M: prost::Message + Default>(envelope: &wire::Envelope) -> M {
    assert_ne!(envelope.command, "error", "{}", support::error_message(envelope));
    M::decode(envelope.data.as_ref().expect("data").value.as_slice()).expect("reply decodes")
}

async fn signed_in(addr: std::net::SocketAddr) -> WsClient {
    let mut client = WsClient::plain(addr).await;
    client.send(&signin("s", ADMIN, ADMIN_PASSWORD)).await;
    let reply = client.reply_to("s").await;
    assert_eq!(reply.command, "signinreply", "{reply:?}");
    client
}

async fn request(client: &mut WsClient, mut envelope: wire::Envelope, id: &str) -> wire::Envelope {
    envelope.id = id.into();
    client.send(&envelope).await;
    client.reply_to(id).await
}

/// The next `queueevent` on `client`, skipping anything else.
async fn next_event(client: &mut WsClient) -> wire::QueueEvent {
    loop {
        let envelope = client.recv().await;
        if envelope.command == "queueevent" {
            return decode(&envelope);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_talk_through_rabbitmq_queues() {
    let Some(outside) = rabbitmq().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = flowkeep_server::Config { amqp_url: amqp_url(), ..test_config(dir.path()) };
    let server = start_server(config).await;
    let mut consumer = signed_in(server.http_addr()).await;
    let mut sender = signed_in(server.http_addr()).await;

    // A named queue registered through Flowkeep is a real queue on RabbitMQ.
    let name = format!("flowkeep-e2e-{}", std::process::id());
    let reply =
        request(&mut consumer, wire::RegisterQueueRequest { queuename: name.to_uppercase() }.to_envelope(), "q1").await;
    let registered: wire::RegisterQueueResponse = decode(&reply);
    assert_eq!(registered.queuename, name, "queue names are lower-cased");
    assert!(queue_exists(&outside, &name).await, "{name} exists on RabbitMQ");

    let message = wire::QueueMessageRequest {
        queuename: name.clone(),
        data: r#"{"hello": "world"}"#.into(),
        striptoken: true,
        ..Default::default()
    };
    let sent: wire::QueueMessageResponse = decode(&request(&mut sender, message.to_envelope(), "m1").await);
    assert!(!sent.correlation_id.is_empty(), "a correlation id is generated");
    let event = next_event(&mut consumer).await;
    assert_eq!(event.queuename, name);
    assert_eq!(event.correlation_id, sent.correlation_id);
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["hello"], "world");
    assert!(data.get("__jwt").is_none(), "striptoken keeps the token out");

    // A temporary queue lives as long as its registration.
    let temp: wire::RegisterQueueResponse = decode(
        &request(&mut consumer, wire::RegisterQueueRequest { queuename: String::new() }.to_envelope(), "q2").await,
    );
    assert!(queue_exists(&outside, &temp.queuename).await, "{} exists on RabbitMQ", temp.queuename);
    let gone =
        request(&mut consumer, wire::UnRegisterQueueRequest { queuename: temp.queuename.clone() }.to_envelope(), "u2")
            .await;
    assert_eq!(gone.command, "unregisterqueuereply", "{gone:?}");
    let mut removed = false;
    for _ in 0..50 {
        if !queue_exists(&outside, &temp.queuename).await {
            removed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(removed, "the temporary queue is removed from RabbitMQ");

    // A workitem queue's amqpqueue hears about pushed items.
    let queue = wire::WorkItemQueue {
        name: format!("wiq-{}", std::process::id()),
        amqpqueue: name.clone(),
        maxretries: 3,
        ..Default::default()
    };
    let added: wire::AddWorkItemQueueResponse = decode(
        &request(
            &mut sender,
            wire::AddWorkItemQueueRequest { workitemqueue: Some(queue.clone()), skiprole: true }.to_envelope(),
            "w1",
        )
        .await,
    );
    let wiq = added.workitemqueue.expect("the queue");
    let push = wire::PushWorkitemRequest {
        wiq: queue.name.clone(),
        name: "job".into(),
        payload: "{}".into(),
        ..Default::default()
    };
    let pushed = request(&mut sender, push.to_envelope(), "w2").await;
    assert_eq!(
        pushed.command,
        "pushworkitemreply",
        "{}",
        if pushed.command == "error" { support::error_message(&pushed) } else { String::new() }
    );
    let notice = next_event(&mut consumer).await;
    let notice: serde_json::Value = serde_json::from_str(&notice.data).unwrap();
    assert_eq!(notice["wiq"], queue.name);
    assert_eq!(notice["wiqid"], wiq.id);

    let purge = wire::DeleteWorkItemQueueRequest { wiq: queue.name.clone(), wiqid: String::new(), purge: true };
    assert_eq!(request(&mut sender, purge.to_envelope(), "w3").await.command, "deleteworkitemqueuereply");
    drop((consumer, sender));
    server.stop().await.unwrap();
    // Named queues are durable: remove the test's queue from RabbitMQ.
    let channel = outside.create_channel().await.unwrap();
    let _ = channel.queue_delete(name.as_str().into(), Default::default()).await;
}
