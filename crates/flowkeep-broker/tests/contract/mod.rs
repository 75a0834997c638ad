//! The backend-generic contract suite of the [`Broker`] trait. Every function takes a `&dyn Broker` and
//! panics (test failure) if the backend breaks the contract; each backend's test file runs all of them
//! (see `tests/inprocess.rs` and `tests/rabbitmq.rs`). Names carry a random suffix so runs against a
//! shared RabbitMQ never interfere, and the named queues and exchanges a test makes are deleted at its end.

#![allow(dead_code)]

use flowkeep_broker::{
    Binding, Broker, BrokerError, ConsumeOptions, Consumer, Delivery, ExchangeKind, Headers, HeadersMatch, Message,
    Priority, PublishOutcome, Target, Undeliverable, UndeliverableReason, UndeliverableReceiver,
};
use serde_json::json;
use std::time::Duration;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    format!("flowkeep-test.{prefix}.{}", flowkeep_model::new_object_id())
}

fn opts(prefetch: u16) -> ConsumeOptions {
    ConsumeOptions { prefetch }
}

/// The next delivery, or a test failure after [`WAIT`].
pub async fn recv(consumer: &mut Consumer) -> Delivery {
    match tokio::time::timeout(WAIT, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("consumer of {} failed: {e}", consumer.queue()),
        Ok(None) => panic!("consumer of {} ended", consumer.queue()),
        Err(_) => panic!("no delivery on {} within {WAIT:?}", consumer.queue()),
    }
}

/// Asserts nothing arrives for `ms` milliseconds.
pub async fn nothing(consumer: &mut Consumer, ms: u64) {
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(ms), consumer.next()).await {
        panic!("unexpected delivery on {}: {:?}", consumer.queue(), item.map(|d| d.message));
    }
}

fn body(delivery: &Delivery) -> String {
    delivery.message.body_text().unwrap_or_default().to_string()
}

/// The next report about a message with this correlation id (others are skipped), or a failure.
pub async fn report_for(reports: &mut UndeliverableReceiver, correlation_id: &str) -> Undeliverable {
    let wait = async {
        loop {
            match reports.recv().await {
                Some(r) if r.message.correlation_id.as_deref() == Some(correlation_id) => return r,
                Some(_) => continue,
                None => panic!("undeliverable stream ended"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no undeliverable report for {correlation_id} within {WAIT:?}"))
}

async fn publish(broker: &dyn Broker, target: &Target, message: Message) -> PublishOutcome {
    broker.publish(target, message).await.unwrap_or_else(|e| panic!("publish to {target:?} failed: {e}"))
}

async fn wait_until_gone(broker: &dyn Broker, queue: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.queue_exists(queue).await.expect("queue_exists") {
        assert!(tokio::time::Instant::now() < deadline, "queue {queue} still exists after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A named queue: declare (idempotent), publish with every property, consume, ack, delete.
pub async fn queue_round_trip(broker: &dyn Broker) {
    let q = unique("roundtrip");
    assert!(!broker.queue_exists(&q).await.unwrap());
    broker.declare_queue(&q).await.unwrap();
    broker.declare_queue(&q).await.expect("declaring twice is a no-op");
    assert!(broker.queue_exists(&q).await.unwrap());
    let sent = Message::json(&json!({"hello": "world", "n": 1}))
        .with_correlation_id("corr-1")
        .with_reply_to("somewhere")
        .with_expiration_ms(60_000)
        .with_priority(Priority::HIGH)
        .with_header("kind", "greeting");
    assert_eq!(publish(broker, &Target::queue(&q), sent.clone()).await, PublishOutcome::Routed);
    let mut consumer = broker.consume(&q, &ConsumeOptions::default()).await.unwrap();
    assert_eq!(consumer.queue(), q);
    let d = recv(&mut consumer).await;
    assert_eq!(d.message.body_json().unwrap(), json!({"hello": "world", "n": 1}));
    assert_eq!(d.message.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(d.message.reply_to.as_deref(), Some("somewhere"));
    assert_eq!(d.message.priority, Priority::HIGH);
    assert_eq!(d.message.content_type.as_deref(), Some("application/json"));
    assert_eq!(d.message.headers.get("kind").map(String::as_str), Some("greeting"));
    assert_eq!(d.message.expiration_ms, Some(60_000));
    assert_eq!((d.queue.as_str(), d.exchange.as_str(), d.routing_key.as_str()), (q.as_str(), "", q.as_str()));
    assert!(!d.redelivered);
    d.ack().await.unwrap();
    nothing(&mut consumer, 200).await;

    // Binary bodies pass through untouched.
    let bytes: Vec<u8> = (0..=255).collect();
    publish(broker, &Target::queue(&q), Message::new(bytes.clone())).await;
    let d = recv(&mut consumer).await;
    assert_eq!(d.message.body, bytes);
    assert_eq!(d.message.priority, Priority::NORMAL, "the default priority is 1");
    d.ack().await.unwrap();

    // The default exchange ("") routes by queue name.
    let out = publish(broker, &Target::exchange("", &q), Message::text("via default")).await;
    assert_eq!(out, PublishOutcome::Routed);
    let d = recv(&mut consumer).await;
    assert_eq!((body(&d).as_str(), d.exchange.as_str()), ("via default", ""));
    d.ack().await.unwrap();

    drop(consumer);
    broker.delete_queue(&q).await.unwrap();
    assert!(!broker.queue_exists(&q).await.unwrap());
    broker.delete_queue(&q).await.expect("deleting a missing queue is a no-op");
}

/// Names the broker cannot take are typed errors, never panics.
pub async fn invalid_input_is_refused(broker: &dyn Broker) {
    let invalid = |r: Result<(), BrokerError>| matches!(r, Err(BrokerError::InvalidName { .. }));
    assert!(invalid(broker.declare_queue("").await));
    assert!(invalid(broker.declare_queue("amq.mine").await));
    assert!(invalid(broker.declare_queue(&"q".repeat(300)).await));
    assert!(invalid(broker.declare_queue("bad\nname").await));
    assert!(invalid(broker.declare_exchange("", ExchangeKind::Fanout).await));
    let long = Message::new("x").with_reply_to("r".repeat(300));
    assert!(matches!(broker.publish(&Target::queue("x"), long).await, Err(BrokerError::InvalidName { .. })));
    let long_key = Target::exchange("x", "k".repeat(300));
    assert!(matches!(broker.publish(&long_key, Message::new("x")).await, Err(BrokerError::InvalidName { .. })));
    assert!(matches!(Priority::new(4), Err(BrokerError::InvalidPriority(4))));
}

/// Missing queues and exchanges and conflicting declarations are typed errors, and the broker keeps
/// working after them (on RabbitMQ each of them closes a channel).
pub async fn missing_and_conflicting(broker: &dyn Broker) {
    let missing = unique("missing");
    let r = broker.publish(&Target::exchange(&missing, "k"), Message::new("x")).await;
    assert!(matches!(r, Err(BrokerError::ExchangeNotFound(_))), "publish to a missing exchange: {r:?}");
    let r = broker.consume(&missing, &ConsumeOptions::default()).await;
    assert!(matches!(r, Err(BrokerError::QueueNotFound(_))), "consume a missing queue: {r:?}");

    let ex = unique("conflict");
    broker.declare_exchange(&ex, ExchangeKind::Direct).await.unwrap();
    broker.declare_exchange(&ex, ExchangeKind::Direct).await.expect("same kind again is a no-op");
    let r = broker.declare_exchange(&ex, ExchangeKind::Fanout).await;
    assert!(matches!(r, Err(BrokerError::Conflict(_))), "another kind: {r:?}");
    let q = unique("bound");
    broker.declare_queue(&q).await.unwrap();
    let r = broker.bind_queue(&q, &missing, &Binding::key("k")).await;
    assert!(matches!(r, Err(BrokerError::ExchangeNotFound(_))), "bind to a missing exchange: {r:?}");
    let r = broker.bind_queue(&missing, &ex, &Binding::key("k")).await;
    assert!(matches!(r, Err(BrokerError::QueueNotFound(_))), "bind a missing queue: {r:?}");

    // Still working.
    broker.bind_queue(&q, &ex, &Binding::key("k")).await.unwrap();
    assert_eq!(publish(broker, &Target::exchange(&ex, "k"), Message::text("after")).await, PublishOutcome::Routed);
    let mut c = broker.consume(&q, &ConsumeOptions::default()).await.unwrap();
    assert_eq!(body(&recv(&mut c).await), "after");
    drop(c);
    broker.delete_exchange(&ex).await.unwrap();
    broker.delete_exchange(&ex).await.expect("deleting a missing exchange is a no-op");
    broker.delete_queue(&q).await.unwrap();
}

/// A temporary queue gets a generated name with the prefix, works like any queue, and is deleted when
/// its consumer is dropped.
pub async fn temporary_queue_removed_on_drop(broker: &dyn Broker) -> String {
    let mut consumer = broker.consume_temporary("flowkeep-test", &ConsumeOptions::default()).await.unwrap();
    let name = consumer.queue().to_string();
    assert!(name.starts_with("flowkeep-test."), "{name}");
    assert!(broker.queue_exists(&name).await.unwrap());
    let other = broker.consume_temporary("", &ConsumeOptions::default()).await.unwrap();
    assert!(other.queue().starts_with("tmp."), "an empty prefix becomes tmp: {}", other.queue());
    assert_ne!(other.queue(), name);
    drop(other);

    publish(broker, &Target::queue(&name), Message::text("to temp")).await;
    let d = recv(&mut consumer).await;
    assert_eq!(body(&d), "to temp");
    d.ack().await.unwrap();
    publish(broker, &Target::queue(&name), Message::text("left unread")).await;
    drop(consumer);
    wait_until_gone(broker, &name).await;
    name
}

/// Deleting a queue ends its consumers' streams.
pub async fn delete_queue_ends_consumers(broker: &dyn Broker) {
    let q = unique("deleted");
    broker.declare_queue(&q).await.unwrap();
    let mut consumer = broker.consume(&q, &ConsumeOptions::default()).await.unwrap();
    broker.delete_queue(&q).await.unwrap();
    match tokio::time::timeout(WAIT, consumer.next()).await {
        Ok(None) => {}
        other => panic!("expected the stream to end, got {:?}", other.map(|o| o.map(|r| r.map(|d| d.message)))),
    }
}

/// Fanout: every bound queue gets a copy, whatever the routing key.
pub async fn fanout_routing(broker: &dyn Broker) {
    let ex = unique("fanout");
    broker.declare_exchange(&ex, ExchangeKind::Fanout).await.unwrap();
    let mut a = broker.consume_temporary("fanout-a", &opts(10)).await.unwrap();
    let mut b = broker.consume_temporary("fanout-b", &opts(10)).await.unwrap();
    broker.bind_queue(a.queue(), &ex, &Binding::key("")).await.unwrap();
    broker.bind_queue(b.queue(), &ex, &Binding::key("ignored")).await.unwrap();
    broker.bind_queue(b.queue(), &ex, &Binding::key("ignored")).await.expect("binding twice is a no-op");
    assert_eq!(publish(broker, &Target::exchange(&ex, "any"), Message::text("all")).await, PublishOutcome::Routed);
    for c in [&mut a, &mut b] {
        let d = recv(c).await;
        assert_eq!(body(&d), "all");
        assert_eq!((d.exchange.as_str(), d.routing_key.as_str()), (ex.as_str(), "any"));
        d.ack().await.unwrap();
    }
    nothing(&mut b, 200).await;
    broker.unbind_queue(b.queue(), &ex, &Binding::key("ignored")).await.unwrap();
    publish(broker, &Target::exchange(&ex, ""), Message::text("only a")).await;
    assert_eq!(body(&recv(&mut a).await), "only a");
    nothing(&mut b, 200).await;
    broker.delete_exchange(&ex).await.unwrap();
}

/// Direct: only queues bound with exactly the routing key.
pub async fn direct_routing(broker: &dyn Broker) {
    let ex = unique("direct");
    broker.declare_exchange(&ex, ExchangeKind::Direct).await.unwrap();
    let mut red = broker.consume_temporary("direct-red", &opts(10)).await.unwrap();
    let mut blue = broker.consume_temporary("direct-blue", &opts(10)).await.unwrap();
    broker.bind_queue(red.queue(), &ex, &Binding::key("red")).await.unwrap();
    broker.bind_queue(blue.queue(), &ex, &Binding::key("blue")).await.unwrap();
    publish(broker, &Target::exchange(&ex, "red"), Message::text("r")).await;
    publish(broker, &Target::exchange(&ex, "blue"), Message::text("b")).await;
    assert_eq!(body(&recv(&mut red).await), "r");
    assert_eq!(body(&recv(&mut blue).await), "b");
    nothing(&mut red, 200).await;
    nothing(&mut blue, 50).await;
    broker.delete_exchange(&ex).await.unwrap();
}

/// Topic: `*` matches one word, `#` zero or more.
pub async fn topic_routing(broker: &dyn Broker) {
    let ex = unique("topic");
    broker.declare_exchange(&ex, ExchangeKind::Topic).await.unwrap();
    let mut star = broker.consume_temporary("topic-star", &opts(10)).await.unwrap();
    let mut hash = broker.consume_temporary("topic-hash", &opts(10)).await.unwrap();
    broker.bind_queue(star.queue(), &ex, &Binding::key("orders.*.created")).await.unwrap();
    broker.bind_queue(hash.queue(), &ex, &Binding::key("orders.#")).await.unwrap();
    for key in ["orders.eu.created", "orders.eu.north.created", "orders", "invoices.eu.created"] {
        publish(broker, &Target::exchange(&ex, key), Message::text(key)).await;
    }
    assert_eq!(body(&recv(&mut star).await), "orders.eu.created");
    nothing(&mut star, 200).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(body(&recv(&mut hash).await));
    }
    assert_eq!(got, ["orders.eu.created", "orders.eu.north.created", "orders"]);
    nothing(&mut hash, 50).await;
    broker.delete_exchange(&ex).await.unwrap();
}

/// Headers: `all` needs every binding header, `any` one of them; the routing key is ignored.
pub async fn headers_routing(broker: &dyn Broker) {
    let ex = unique("headers");
    broker.declare_exchange(&ex, ExchangeKind::Headers).await.unwrap();
    let h = |pairs: &[(&str, &str)]| -> Headers { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    let mut all = broker.consume_temporary("headers-all", &opts(10)).await.unwrap();
    let mut any = broker.consume_temporary("headers-any", &opts(10)).await.unwrap();
    let all_binding = Binding::headers(h(&[("format", "pdf"), ("type", "report")]), HeadersMatch::All);
    let any_binding = Binding::headers(h(&[("format", "pdf"), ("type", "log")]), HeadersMatch::Any);
    broker.bind_queue(all.queue(), &ex, &all_binding).await.unwrap();
    broker.bind_queue(any.queue(), &ex, &any_binding).await.unwrap();
    let send = |text: &str, pairs: &[(&str, &str)]| {
        let mut m = Message::text(text);
        m.headers = h(pairs);
        m
    };
    publish(broker, &Target::exchange(&ex, "whatever"), send("both", &[("format", "pdf"), ("type", "report")])).await;
    publish(broker, &Target::exchange(&ex, ""), send("any-only", &[("type", "log")])).await;
    let out = publish(broker, &Target::exchange(&ex, ""), send("neither", &[("format", "zip")])).await;
    assert_eq!(out, PublishOutcome::Unroutable);
    assert_eq!(body(&recv(&mut all).await), "both");
    nothing(&mut all, 200).await;
    assert_eq!(body(&recv(&mut any).await), "both");
    assert_eq!(body(&recv(&mut any).await), "any-only");
    nothing(&mut any, 50).await;
    broker.delete_exchange(&ex).await.unwrap();
}

/// Request/reply: the requester consumes a temporary reply queue, the service answers to `reply_to`
/// with the request's correlation id.
pub async fn request_reply(broker: &dyn Broker) {
    let service = unique("service");
    broker.declare_queue(&service).await.unwrap();
    let mut requests = broker.consume(&service, &ConsumeOptions::default()).await.unwrap();
    let mut replies = broker.consume_temporary("reply", &ConsumeOptions::default()).await.unwrap();
    for i in 0..3 {
        let request =
            Message::json(&json!({"n": i})).with_reply_to(replies.queue()).with_correlation_id(format!("req-{i}"));
        publish(broker, &Target::queue(&service), request).await;
    }
    for _ in 0..3 {
        let req = recv(&mut requests).await;
        let n = req.message.body_json().unwrap()["n"].as_i64().unwrap();
        let reply_to = req.message.reply_to.clone().expect("reply_to passed through");
        let reply = Message::json(&json!({"square": n * n}))
            .with_correlation_id(req.message.correlation_id.clone().expect("correlation id passed through"));
        assert_eq!(publish(broker, &Target::queue(&reply_to), reply).await, PublishOutcome::Routed);
        req.ack().await.unwrap();
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        let d = recv(&mut replies).await;
        answers.push((d.message.correlation_id.clone().unwrap(), d.message.body_json().unwrap()["square"].clone()));
        d.ack().await.unwrap();
    }
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        answers,
        vec![("req-0".to_string(), json!(0)), ("req-1".to_string(), json!(1)), ("req-2".to_string(), json!(4))]
    );
    drop(requests);
    broker.delete_queue(&service).await.unwrap();
}

/// Under backlog, higher priorities are delivered first; equal priorities keep their order.
pub async fn priority_order(broker: &dyn Broker) {
    let q = unique("priority");
    broker.declare_queue(&q).await.unwrap();
    let sends = [(0, "low-1"), (1, "normal-1"), (3, "highest"), (0, "low-2"), (2, "high"), (1, "normal-2")];
    for (p, text) in sends {
        let m = Message::text(text).with_priority(Priority::new(p).unwrap());
        publish(broker, &Target::queue(&q), m).await;
    }
    let mut consumer = broker.consume(&q, &opts(100)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..sends.len() {
        let d = recv(&mut consumer).await;
        got.push(body(&d));
        d.ack().await.unwrap();
    }
    assert_eq!(got, ["highest", "high", "normal-1", "normal-2", "low-1", "low-2"]);
    drop(consumer);
    broker.delete_queue(&q).await.unwrap();
}

/// A message that outlives its expiration is not delivered and is reported as expired, with what the
/// core needs to answer the sender (reply-to, correlation id, the queue).
pub async fn expiration_reported(broker: &dyn Broker) {
    let mut reports = broker.undeliverable();
    let q = unique("expiring");
    broker.declare_queue(&q).await.unwrap();
    let m = Message::text("too late").with_expiration_ms(100).with_reply_to("the-sender").with_correlation_id("exp-1");
    assert_eq!(publish(broker, &Target::queue(&q), m).await, PublishOutcome::Routed);
    publish(broker, &Target::queue(&q), Message::text("in time").with_correlation_id("keep")).await;
    let report = report_for(&mut reports, "exp-1").await;
    assert_eq!(report.reason, UndeliverableReason::Expired);
    assert_eq!(report.message.reply_to.as_deref(), Some("the-sender"));
    assert_eq!(report.message.body_text(), Some("too late"));
    assert_eq!(report.queue.as_deref(), Some(q.as_str()));
    let mut consumer = broker.consume(&q, &ConsumeOptions::default()).await.unwrap();
    assert_eq!(body(&recv(&mut consumer).await), "in time");
    nothing(&mut consumer, 200).await;
    drop(consumer);
    broker.delete_queue(&q).await.unwrap();
}

/// A message no queue takes is `Unroutable` and reported, to a missing queue or through an exchange
/// without a matching binding.
pub async fn unroutable_reported(broker: &dyn Broker) {
    let mut reports = broker.undeliverable();
    let missing = unique("nobody");
    let m = Message::text("lost").with_reply_to("the-sender").with_correlation_id("unroutable-1");
    assert_eq!(publish(broker, &Target::queue(&missing), m).await, PublishOutcome::Unroutable);
    let report = report_for(&mut reports, "unroutable-1").await;
    assert_eq!(report.reason, UndeliverableReason::Unroutable);
    assert_eq!(report.message.reply_to.as_deref(), Some("the-sender"));
    assert_eq!((report.exchange.as_str(), report.routing_key.as_str()), ("", missing.as_str()));

    let ex = unique("empty-direct");
    broker.declare_exchange(&ex, ExchangeKind::Direct).await.unwrap();
    let m = Message::text("lost too").with_correlation_id("unroutable-2");
    assert_eq!(publish(broker, &Target::exchange(&ex, "nokey"), m).await, PublishOutcome::Unroutable);
    let report = report_for(&mut reports, "unroutable-2").await;
    assert_eq!((report.reason, report.exchange.as_str()), (UndeliverableReason::Unroutable, ex.as_str()));
    broker.delete_exchange(&ex).await.unwrap();
}

/// Competing consumers of one queue share its messages: each message goes to exactly one of them, and
/// both get some.
pub async fn competing_consumers(broker: &dyn Broker) {
    let q = unique("competing");
    broker.declare_queue(&q).await.unwrap();
    let mut a = broker.consume(&q, &opts(1)).await.unwrap();
    let mut b = broker.consume(&q, &opts(1)).await.unwrap();
    for i in 0..10 {
        publish(broker, &Target::queue(&q), Message::text(&format!("m{i}"))).await;
    }
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    // Alternate between the two; each holds at most one unacknowledged delivery.
    while got_a.len() + got_b.len() < 10 {
        tokio::select! {
            Some(Ok(d)) = a.next() => { got_a.push(body(&d)); d.ack().await.unwrap(); }
            Some(Ok(d)) = b.next() => { got_b.push(body(&d)); d.ack().await.unwrap(); }
            _ = tokio::time::sleep(WAIT) => panic!("stalled with {got_a:?} and {got_b:?}"),
        }
    }
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both consumers work: {got_a:?} / {got_b:?}");
    let mut all: Vec<String> = got_a.iter().chain(got_b.iter()).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "each message exactly once");
    nothing(&mut a, 200).await;
    nothing(&mut b, 50).await;
    drop((a, b));
    broker.delete_queue(&q).await.unwrap();
}

/// `nack` with requeue redelivers (marked redelivered); a consumer dropped with unsettled deliveries
/// gives them back; `nack` without requeue drops the message and reports it as rejected.
pub async fn nack_and_redelivery(broker: &dyn Broker) {
    let mut reports = broker.undeliverable();
    let q = unique("nack");
    broker.declare_queue(&q).await.unwrap();
    publish(broker, &Target::queue(&q), Message::text("again").with_correlation_id("nack-1")).await;
    let mut c = broker.consume(&q, &opts(5)).await.unwrap();
    let d = recv(&mut c).await;
    assert!(!d.redelivered);
    d.nack(true).await.unwrap();
    let d = recv(&mut c).await;
    assert_eq!(body(&d), "again");
    assert!(d.redelivered, "a requeued message is marked redelivered");
    // Leave it unsettled and drop the consumer: it must come back to the next one.
    drop(d);
    drop(c);
    let mut c2 = broker.consume(&q, &opts(5)).await.unwrap();
    let d = recv(&mut c2).await;
    assert_eq!(body(&d), "again");
    assert!(d.redelivered);
    d.nack(false).await.unwrap();
    let report = report_for(&mut reports, "nack-1").await;
    assert_eq!(report.reason, UndeliverableReason::Rejected);
    assert_eq!(report.queue.as_deref(), Some(q.as_str()));
    nothing(&mut c2, 200).await;
    drop(c2);
    broker.delete_queue(&q).await.unwrap();
}

/// Messages published while nobody consumes wait in a named queue, in order, for the first consumer;
/// the consumer's prefetch bounds what it holds unacknowledged.
pub async fn backlog_and_prefetch(broker: &dyn Broker) {
    let q = unique("backlog");
    broker.declare_queue(&q).await.unwrap();
    for i in 0..20 {
        publish(broker, &Target::queue(&q), Message::text(&format!("{i:02}"))).await;
    }
    let mut c = broker.consume(&q, &opts(3)).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(recv(&mut c).await);
    }
    nothing(&mut c, 300).await;
    let mut got: Vec<String> = held.iter().map(body).collect();
    for d in held {
        d.ack().await.unwrap();
    }
    for _ in 3..20 {
        let d = recv(&mut c).await;
        got.push(body(&d));
        d.ack().await.unwrap();
    }
    let want: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    assert_eq!(got, want);
    drop(c);
    broker.delete_queue(&q).await.unwrap();
}

/// Dropping consumers (with unacknowledged deliveries) and deleting their queues right after, many
/// times over, leaves the broker working (on RabbitMQ this exercises the consumer shutdown order).
pub async fn churn_keeps_working(broker: &dyn Broker) {
    for i in 0..15 {
        let q = unique("churn");
        broker.declare_queue(&q).await.unwrap();
        let mut c = broker.consume(&q, &opts(5)).await.unwrap();
        let mut t = broker.consume_temporary("churn", &opts(5)).await.unwrap();
        publish(broker, &Target::queue(&q), Message::text("x")).await;
        publish(broker, &Target::queue(t.queue()), Message::text("y")).await;
        let held = recv(&mut c).await;
        let held_t = recv(&mut t).await;
        if i % 2 == 0 {
            drop((c, t));
            broker.delete_queue(&q).await.unwrap();
        } else {
            broker.delete_queue(&q).await.unwrap();
            drop((c, t));
        }
        drop((held, held_t));
    }
    let q = unique("after-churn");
    broker.declare_queue(&q).await.unwrap();
    publish(broker, &Target::queue(&q), Message::text("still fine")).await;
    let mut c = broker.consume(&q, &ConsumeOptions::default()).await.unwrap();
    assert_eq!(body(&recv(&mut c).await), "still fine");
    drop(c);
    broker.delete_queue(&q).await.unwrap();
}
