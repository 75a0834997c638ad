//! Queues and exchanges through the core, run twice: on the in-process broker (`inprocess_*`) and on a
//! real RabbitMQ (`rabbitmq_*`, `FLOWKEEP_TEST_AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`).
//! Two users (alice, member of a team role, and bob) and an admin: permissions on an own-id queue, a role
//! queue and a claimed named queue, reserved names, audited denials; a queue round trip with `__jwt` and
//! `__user`; `striptoken`; fanout, direct and topic exchanges; request/reply with a generated correlation
//! id; `timeout` replies for expired and unroutable messages; priority order under backlog.
//!
//! When RabbitMQ is unreachable the `rabbitmq_*` tests fail if `CI=true`, and otherwise pass after a loud
//! message on stderr. Every name on RabbitMQ is unique per test run, and each test has its own
//! dead-letter exchange and queue, removed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use flowkeep_broker::{AmqpBroker, AmqpConfig, Broker};
use flowkeep_core::messaging::{Consumer, Delivery, QueueMessage};
use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_model::new_object_id;
use flowkeep_security::{wellknown, MasterKey, RoleGraph};
use flowkeep_store::{Scope, SqliteStore, Store};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

struct World {
    p: Arc<Platform>,
    store: Arc<dyn Store>,
    alice: Caller,
    bob: Caller,
    admin: Caller,
    team: String,
    /// Makes names unique (RabbitMQ keeps durable queues across runs).
    tag: String,
}

impl World {
    fn name(&self, base: &str) -> String {
        format!("{base}.{}", self.tag)
    }
}

fn user(id: &str, name: &str) -> Value {
    json!({"_id": id, "_type": "user", "username": name, "name": name,
        "_acl": [{"_id": id, "rights": 65535}]})
}

async fn world(broker: Option<Arc<dyn Broker>>, config: PlatformConfig) -> World {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temporary().unwrap());
    let config = PlatformConfig { admin_password: Some("admin pw for tests".into()), ..config };
    let master = MasterKey::generate().unwrap();
    let p = match broker {
        Some(broker) => Platform::open_with_broker(store.clone(), config, &master, broker).await.unwrap(),
        None => Platform::open(store.clone(), config, &master).await.unwrap(),
    };
    let (alice_id, bob_id, admin_id, team) = (new_object_id(), new_object_id(), new_object_id(), new_object_id());
    let roles = [
        json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": admin_id}]}),
        json!({"_id": team, "_type": "role", "name": "team", "members": [{"_id": alice_id}]}),
    ];
    let graph = RoleGraph::from_role_docs(&roles);
    let (a, b) = (user(&alice_id, "alice"), user(&bob_id, "bob"));
    // The user documents exist, so a queue named after a user id is governed by it.
    store.insert_one("users", a.clone()).await.unwrap();
    store.insert_one("users", b.clone()).await.unwrap();
    let mut role = roles[1].clone();
    role["_acl"] = json!([{"_id": team, "rights": 1}]);
    store.insert_one("users", role).await.unwrap();
    World {
        alice: Caller::resolve(&a, &graph).unwrap(),
        bob: Caller::resolve(&b, &graph).unwrap(),
        admin: Caller::resolve(&user(&admin_id, "boss"), &graph).unwrap(),
        p: Arc::new(p),
        store,
        team,
        tag: new_object_id()[16..].to_string(),
    }
}

fn msg(queue: &str, data: Value) -> QueueMessage {
    QueueMessage { queuename: queue.into(), data: data.to_string(), ..QueueMessage::default() }
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, consumer.next()).await.expect("a delivery in time").expect("consumer open").unwrap()
}

async fn next_json(consumer: &mut Consumer) -> (Value, Delivery) {
    let d = next(consumer).await;
    let v = d.message.body_json().unwrap();
    (v, d)
}

async fn quiet(consumer: &mut Consumer, d: Duration) -> bool {
    tokio::time::timeout(d, consumer.next()).await.is_err()
}

fn denied<T: std::fmt::Debug>(r: Result<T, CoreError>) {
    match r {
        Err(CoreError::AccessDenied(_)) => {}
        other => panic!("expected access denied, got {other:?}"),
    }
}

// ---- the suite -------------------------------------------------------------------------------------

async fn permissions(w: &World) {
    let p = &w.p;
    // Own id and role id, upper-cased on the way in: lower-cased names come back.
    let (name, _own) = p.register_queue(&w.alice, Some(&w.alice.user_id().to_uppercase())).await.unwrap();
    assert_eq!(name, w.alice.user_id());
    let (name, _team) = p.register_queue(&w.alice, Some(&w.team)).await.unwrap();
    assert_eq!(name, w.team);
    denied(p.register_queue(&w.bob, Some(&w.team)).await);
    denied(p.register_queue(&w.bob, Some(w.alice.user_id())).await);

    // A named queue is claimed by its first registrant; the mq document is hers.
    let shared = w.name("Shared.Q");
    let (name, consumer) = p.register_queue(&w.alice, Some(&shared)).await.unwrap();
    assert_eq!(name, shared.to_lowercase());
    drop(consumer);
    let filter = json!({"_type": "queue", "name": name});
    assert_eq!(p.count(&w.alice, "mq", &filter).await.unwrap(), 1);
    assert_eq!(p.count(&w.bob, "mq", &filter).await.unwrap(), 0, "mq documents are ACL-scoped");
    denied(p.register_queue(&w.bob, Some(&name)).await);
    denied(p.queue_message(&w.bob, "t", msg(&name, json!({"a": 1}))).await);
    // Registering again (same owner) is fine, and so is an admin.
    drop(p.register_queue(&w.alice, Some(&name)).await.unwrap());
    drop(p.register_queue(&w.admin, Some(&name)).await.unwrap());
    // Alice shares read: bob may now send and consume.
    let doc = p
        .query(&w.alice, "mq", &flowkeep_core::documents::QueryRequest { filter: filter.clone(), ..Default::default() })
        .await
        .unwrap()
        .remove(0);
    let mut doc = doc;
    doc["_acl"].as_array_mut().unwrap().push(json!({"_id": w.bob.user_id(), "name": "bob", "rights": 2}));
    p.update_document(&w.alice, "mq", doc).await.unwrap();
    p.queue_message(&w.bob, "t", msg(&name, json!({"a": 1}))).await.unwrap();
    drop(p.register_queue(&w.bob, Some(&name)).await.unwrap());

    // Reserved names, whatever the case and the role.
    for caller in [&w.alice, &w.admin] {
        denied(p.register_queue(caller, Some("OpenFlow")).await);
        denied(p.queue_message(caller, "t", msg("openflow", json!({}))).await);
        let mut m = msg(&name, json!({}));
        m.replyto = "openflow".into();
        denied(p.queue_message(caller, "t", m).await);
        denied(p.register_exchange(caller, "openflow", "fanout", "", true).await);
    }

    // Denials are audited.
    let audited = w.store.count("audit", &Scope::system(), &json!({"_type": "queue_access_denied"})).await.unwrap();
    assert!(audited >= 4 + 8, "denials audited: {audited}");
    let bobs = json!({"_type": "queue_access_denied", "actor.id": w.bob.user_id()});
    assert!(w.store.count("audit", &Scope::system(), &bobs).await.unwrap() >= 4);
    drop((_own, _team));
    for queue in [w.alice.user_id(), w.team.as_str(), name.as_str()] {
        p.broker().delete_queue(queue).await.unwrap();
    }
}

async fn queue_round_trip(w: &World) {
    let p = &w.p;
    let (name, mut consumer) = p.register_queue(&w.alice, Some(&w.name("work"))).await.unwrap();
    let mut m = msg(&name, json!({"n": 1}));
    m.correlation_id = "corr-1".into();
    m.replyto = "Somewhere".into();
    let sent = p.queue_message(&w.alice, "alice-token", m).await.unwrap();
    assert_eq!(
        (sent.queuename.as_str(), sent.correlation_id.as_str(), sent.replyto.as_str()),
        (name.as_str(), "corr-1", "somewhere")
    );
    let (body, d) = next_json(&mut consumer).await;
    assert_eq!(body["n"], 1);
    assert_eq!(body["__jwt"], "alice-token");
    assert_eq!(body["__user"]["_id"], w.alice.user_id());
    assert_eq!(body["__user"]["username"], "alice");
    assert!(body["__user"]["roles"].as_array().unwrap().iter().any(|r| r["_id"] == w.team.as_str()));
    assert_eq!(d.message.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(d.message.reply_to.as_deref(), Some("somewhere"));
    assert_eq!(d.queue, name);
    d.ack().await.unwrap();

    // striptoken: nothing added, and given fields removed; text passes untouched.
    let mut m = msg(&name, json!({"n": 2, "__jwt": "forged", "__user": {}}));
    m.striptoken = true;
    p.queue_message(&w.alice, "alice-token", m).await.unwrap();
    let (body, d) = next_json(&mut consumer).await;
    assert_eq!(body, json!({"n": 2}));
    d.ack().await.unwrap();
    let m = QueueMessage { queuename: name.clone(), data: "plain text".into(), ..QueueMessage::default() };
    p.queue_message(&w.alice, "alice-token", m).await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.message.body_text(), Some("plain text"));
    assert!(!d.message.correlation_id.clone().unwrap_or_default().is_empty(), "a correlation id is generated");
    d.ack().await.unwrap();

    // Sending needs a queue or an exchange.
    assert!(matches!(p.queue_message(&w.alice, "t", QueueMessage::default()).await, Err(CoreError::InvalidRequest(_))));
    drop(consumer);
    p.broker().delete_queue(&name).await.unwrap();
}

async fn exchanges(w: &World) {
    let p = &w.p;
    // Fanout: every bound queue gets a copy.
    let fan = w.name("fan");
    let mut a = p.register_exchange(&w.alice, &fan, "fanout", "", true).await.unwrap();
    let mut b = p.register_exchange(&w.alice, &fan, "fanout", "", true).await.unwrap();
    assert_eq!(a.exchange, fan);
    let (mut ca, mut cb) = (a.consumer.take().unwrap(), b.consumer.take().unwrap());
    assert_ne!(ca.queue(), cb.queue());
    let m = QueueMessage { exchangename: fan.to_uppercase(), data: "{\"x\":1}".into(), ..QueueMessage::default() };
    p.queue_message(&w.alice, "t", m).await.unwrap();
    for c in [&mut ca, &mut cb] {
        let (body, d) = next_json(c).await;
        assert_eq!(body["x"], 1);
        assert_eq!(d.exchange, fan);
        d.ack().await.unwrap();
    }
    // Bob may not bind to alice's exchange.
    denied(p.register_exchange(&w.bob, &fan, "fanout", "", true).await);
    // A kind that is not one.
    assert!(matches!(
        p.register_exchange(&w.alice, &w.name("bad"), "round", "", true).await,
        Err(CoreError::InvalidRequest(_))
    ));

    // Direct: by routing key.
    let direct = w.name("direct");
    let mut red = p.register_exchange(&w.alice, &direct, "direct", "red", true).await.unwrap().consumer.unwrap();
    let mut blue = p.register_exchange(&w.alice, &direct, "direct", "blue", true).await.unwrap().consumer.unwrap();
    let m = QueueMessage {
        exchangename: direct.clone(),
        routingkey: "blue".into(),
        data: "{\"c\":\"blue\"}".into(),
        ..QueueMessage::default()
    };
    p.queue_message(&w.alice, "t", m).await.unwrap();
    let (body, d) = next_json(&mut blue).await;
    assert_eq!(body["c"], "blue");
    assert_eq!(d.routing_key, "blue");
    d.ack().await.unwrap();
    assert!(quiet(&mut red, Duration::from_millis(300)).await);

    // Topic: by pattern.
    let topic = w.name("topic");
    let mut eu = p.register_exchange(&w.alice, &topic, "topic", "eu.*", true).await.unwrap().consumer.unwrap();
    let mut all = p.register_exchange(&w.alice, &topic, "topic", "#", true).await.unwrap().consumer.unwrap();
    for key in ["eu.west", "us.east"] {
        let m = QueueMessage {
            exchangename: topic.clone(),
            routingkey: key.into(),
            data: json!({"k": key}).to_string(),
            ..QueueMessage::default()
        };
        p.queue_message(&w.alice, "t", m).await.unwrap();
    }
    let (body, d) = next_json(&mut eu).await;
    assert_eq!(body["k"], "eu.west");
    d.ack().await.unwrap();
    assert!(quiet(&mut eu, Duration::from_millis(300)).await);
    for expected in ["eu.west", "us.east"] {
        let (body, d) = next_json(&mut all).await;
        assert_eq!(body["k"], expected);
        d.ack().await.unwrap();
    }
    // No addqueue: no consumer.
    assert!(p.register_exchange(&w.alice, &topic, "topic", "", false).await.unwrap().consumer.is_none());
    for exchange in [fan, direct, topic] {
        p.broker().delete_exchange(&exchange).await.unwrap();
    }
}

async fn request_reply(w: &World) {
    let p = &w.p;
    let (worker_queue, mut worker) = p.register_queue(&w.alice, Some(&w.name("rpc"))).await.unwrap();
    let (reply_queue, mut replies) = p.register_queue(&w.alice, None).await.unwrap();
    assert!(reply_queue.starts_with("tmp."), "{reply_queue}");
    let mut m = msg(&worker_queue, json!({"q": "ping"}));
    m.replyto = reply_queue.clone();
    let sent = p.queue_message(&w.alice, "t", m).await.unwrap();
    assert_eq!(sent.correlation_id.len(), 24, "a correlation id is generated");

    let (body, job) = next_json(&mut worker).await;
    assert_eq!(body["q"], "ping");
    let reply_to = job.message.reply_to.clone().unwrap();
    let correlation = job.message.correlation_id.clone().unwrap();
    assert_eq!((reply_to.as_str(), correlation.as_str()), (reply_queue.as_str(), sent.correlation_id.as_str()));
    // The worker (bob: the temporary queue is governed by nothing) answers.
    let answer = QueueMessage {
        queuename: reply_to,
        correlation_id: correlation,
        data: json!({"a": "pong"}).to_string(),
        striptoken: true,
        ..QueueMessage::default()
    };
    p.queue_message(&w.bob, "t", answer).await.unwrap();
    job.ack().await.unwrap();
    let (body, d) = next_json(&mut replies).await;
    assert_eq!(body, json!({"a": "pong"}));
    assert_eq!(d.message.correlation_id.as_deref(), Some(sent.correlation_id.as_str()));
    d.ack().await.unwrap();
    // The temporary queue goes with its consumer.
    drop(replies);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!p.broker().queue_exists(&reply_queue).await.unwrap());
    drop(worker);
    p.broker().delete_queue(&worker_queue).await.unwrap();
}

async fn timeouts(w: &World) {
    let p = &w.p;
    let (reply_queue, mut replies) = p.register_queue(&w.alice, None).await.unwrap();
    // Expired: a queue nobody consumes, a short expiration.
    let (idle, consumer) = p.register_queue(&w.alice, Some(&w.name("idle"))).await.unwrap();
    drop(consumer);
    let mut m = msg(&idle, json!({"command": "invoke", "data": 1}));
    m.replyto = reply_queue.clone();
    m.correlation_id = "c-expired".into();
    m.expiration_ms = 100;
    p.queue_message(&w.alice, "t", m).await.unwrap();
    let (body, d) = next_json(&mut replies).await;
    assert_eq!(body["command"], "timeout");
    assert_eq!(body["data"], 1);
    assert!(body.get("__jwt").is_none(), "the sender's token is not sent back");
    assert_eq!(d.message.correlation_id.as_deref(), Some("c-expired"));
    d.ack().await.unwrap();

    // Unroutable: no such queue (sending to an unknown name is not checked, as in the reference).
    let m = QueueMessage {
        queuename: w.name("bogus"),
        replyto: reply_queue.clone(),
        correlation_id: "c-bogus".into(),
        data: "hello".into(),
        ..QueueMessage::default()
    };
    p.queue_message(&w.alice, "t", m).await.unwrap();
    let (body, d) = next_json(&mut replies).await;
    assert_eq!(body, json!("timeout"));
    assert_eq!(d.message.correlation_id.as_deref(), Some("c-bogus"));
    d.ack().await.unwrap();
    p.broker().delete_queue(&idle).await.unwrap();
}

async fn priority_order(w: &World) {
    let p = &w.p;
    let (name, consumer) = p.register_queue(&w.alice, Some(&w.name("prio"))).await.unwrap();
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (i, priority) in [0, 1, 3, 2, 9, -4].into_iter().enumerate() {
        let mut m = msg(&name, json!({"i": i, "p": priority}));
        m.priority = priority;
        m.striptoken = true;
        p.queue_message(&w.alice, "t", m).await.unwrap();
    }
    let (_, mut consumer) = p.register_queue(&w.alice, Some(&name)).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..6 {
        let (body, d) = next_json(&mut consumer).await;
        order.push(body["p"].as_i64().unwrap());
        d.ack().await.unwrap();
    }
    // 9 is clamped to 3 and -4 to 0; equal priorities keep their order.
    assert_eq!(order, vec![3, 9, 2, 1, 0, -4]);
    drop(consumer);
    p.broker().delete_queue(&name).await.unwrap();
}

// ---- backends --------------------------------------------------------------------------------------

fn amqp_url() -> String {
    std::env::var("FLOWKEEP_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// An AMQP broker with its own dead-letter exchange and queue, or `None` (outside CI) when RabbitMQ is
/// down.
async fn rabbitmq() -> Option<AmqpBroker> {
    let mut config = AmqpConfig::new(amqp_url());
    let dlx = format!("flowkeep-test-dlx.{}", new_object_id());
    config.dead_letter_exchange = dlx.clone();
    config.dead_letter_queue = dlx;
    match AmqpBroker::connect(config).await {
        Ok(broker) => Some(broker),
        Err(e) if in_ci() => panic!("RabbitMQ at {} is unreachable in CI: {e}", amqp_url()),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPED: RabbitMQ at {} is unreachable ({e}); start it to run the RabbitMQ messaging \
                 tests (in CI they fail instead) !!!!!!!!\n",
                amqp_url()
            );
            None
        }
    }
}

async fn cleanup(broker: &AmqpBroker) {
    let (dlx, dlq) = (broker.config().dead_letter_exchange.clone(), broker.config().dead_letter_queue.clone());
    broker.delete_queue(&dlq).await.expect("delete the dead-letter queue");
    broker.delete_exchange(&dlx).await.expect("delete the dead-letter exchange");
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod inprocess {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let w = super::world(None, super::PlatformConfig::default()).await;
                    super::$name(&w).await;
                }
            )*
        }
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(broker) = super::rabbitmq().await else { return };
                    let broker = std::sync::Arc::new(broker);
                    let w = super::world(Some(broker.clone()), super::PlatformConfig::default()).await;
                    super::$name(&w).await;
                    super::cleanup(&broker).await;
                }
            )*
        }
    };
}

both_backends!(permissions, queue_round_trip, exchanges, request_reply, timeouts, priority_order);

#[tokio::test]
async fn stricter_permissions_are_configurable() {
    use flowkeep_security::policy::QueuePermissions;
    let permissions = QueuePermissions { sender_has_invoke: true, consumer_has_update: false };
    let w = world(None, PlatformConfig { queue_permissions: permissions, ..PlatformConfig::default() }).await;
    // A role queue is no longer consumable without a document granting invoke.
    denied(w.p.register_queue(&w.alice, Some(&w.team)).await);
    let (name, _c) = w.p.register_queue(&w.alice, Some(&w.name("strict"))).await.unwrap();
    // The owner has full control (invoke included).
    w.p.queue_message(&w.alice, "t", msg(&name, json!({}))).await.unwrap();
}

#[tokio::test]
async fn another_connections_temporary_queue_is_not_claimed() {
    let w = world(None, PlatformConfig::default()).await;
    let (temporary, _consumer) = w.p.register_queue(&w.alice, None).await.unwrap();
    assert!(matches!(w.p.register_queue(&w.bob, Some(&temporary)).await, Err(CoreError::Conflict(_))));
    let filter = json!({"name": temporary});
    assert_eq!(w.store.count("mq", &Scope::system(), &filter).await.unwrap(), 0, "nothing claimed");
    // `amq.` names are temporary queues, as in the reference.
    let (name, _c) = w.p.register_queue(&w.bob, Some("amq.gen-x")).await.unwrap();
    assert!(name.starts_with("tmp."), "{name}");
}
