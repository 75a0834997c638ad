//! Runs the backend-generic contract suite on [`InProcessBroker`] (a fresh broker per test), plus its
//! own checks: bounded queues refuse publishes (never lose them silently), body size limit, expiry of
//! messages nobody consumes, closing.

mod contract;

use flowkeep_broker::{
    Binding, Broker, BrokerError, ConsumeOptions, ExchangeKind, InProcessBroker, InProcessConfig, Message, Target,
    UndeliverableReason,
};
use std::time::Duration;

fn broker() -> InProcessBroker {
    InProcessBroker::new(InProcessConfig::default()).expect("in-process broker")
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let broker = broker();
                contract::$name(&broker).await;
            }
        )*
    };
}

contract_tests!(
    queue_round_trip,
    invalid_input_is_refused,
    missing_and_conflicting,
    temporary_queue_removed_on_drop,
    delete_queue_ends_consumers,
    fanout_routing,
    direct_routing,
    topic_routing,
    headers_routing,
    request_reply,
    priority_order,
    expiration_reported,
    unroutable_reported,
    competing_consumers,
    nack_and_redelivery,
    backlog_and_prefetch,
    churn_keeps_working,
);

#[test]
fn needs_a_runtime() {
    assert!(matches!(InProcessBroker::new(InProcessConfig::default()), Err(BrokerError::NoRuntime)));
}

/// A full queue refuses the publish with a typed error, and a fanout to several queues is all or nothing.
#[tokio::test]
async fn full_queue_is_refused() {
    let broker =
        InProcessBroker::new(InProcessConfig { max_messages_per_queue: 3, ..InProcessConfig::default() }).unwrap();
    broker.declare_queue("small").await.unwrap();
    broker.declare_queue("roomy").await.unwrap();
    for i in 0..3 {
        broker.publish(&Target::queue("small"), Message::text(&i.to_string())).await.unwrap();
    }
    let r = broker.publish(&Target::queue("small"), Message::text("one too many")).await;
    assert_eq!(r, Err(BrokerError::QueueFull { queue: "small".into(), max: 3 }));

    broker.declare_exchange("both", ExchangeKind::Fanout).await.unwrap();
    broker.bind_queue("small", "both", &Binding::default()).await.unwrap();
    broker.bind_queue("roomy", "both", &Binding::default()).await.unwrap();
    let r = broker.publish(&Target::exchange("both", ""), Message::text("fan")).await;
    assert!(matches!(r, Err(BrokerError::QueueFull { .. })));
    assert_eq!(broker.queue_len("roomy"), Some(0), "nothing enqueued anywhere when one queue is full");

    // Unacknowledged deliveries still count; acknowledging frees room.
    let mut c = broker.consume("small", &ConsumeOptions::default()).await.unwrap();
    let d = c.next().await.unwrap().unwrap();
    assert_eq!(broker.queue_len("small"), Some(3));
    assert!(broker.publish(&Target::queue("small"), Message::text("x")).await.is_err());
    d.ack().await.unwrap();
    broker.publish(&Target::queue("small"), Message::text("fits now")).await.unwrap();
}

#[tokio::test]
async fn message_size_limit() {
    let broker = InProcessBroker::new(InProcessConfig { max_message_bytes: 10, ..InProcessConfig::default() }).unwrap();
    broker.declare_queue("q").await.unwrap();
    let r = broker.publish(&Target::queue("q"), Message::new(vec![0u8; 11])).await;
    assert_eq!(r, Err(BrokerError::MessageTooLarge { size: 11, max: 10 }));
}

/// The sweeper reports expired messages even when nobody ever consumes the queue, and frees their room.
#[tokio::test]
async fn expiry_without_consumer() {
    let broker = InProcessBroker::new(InProcessConfig {
        sweep_interval: Duration::from_millis(10),
        ..InProcessConfig::default()
    })
    .unwrap();
    let mut reports = broker.undeliverable();
    broker.declare_queue("q").await.unwrap();
    for p in 0..4 {
        let m = Message::text("short").with_expiration_ms(20).with_priority(flowkeep_broker::Priority::new(p).unwrap());
        broker.publish(&Target::queue("q"), m).await.unwrap();
    }
    broker.publish(&Target::queue("q"), Message::text("forever")).await.unwrap();
    for _ in 0..4 {
        let r = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await.unwrap().unwrap();
        assert_eq!(r.reason, UndeliverableReason::Expired);
    }
    assert_eq!(broker.queue_len("q"), Some(1));
}

/// A settled delivery cannot be settled again; after close everything is refused and streams end.
#[tokio::test]
async fn stale_deliveries_and_close() {
    let broker = broker();
    broker.declare_queue("q").await.unwrap();
    broker.publish(&Target::queue("q"), Message::text("a")).await.unwrap();
    let mut c = broker.consume("q", &ConsumeOptions::default()).await.unwrap();
    let d = c.next().await.unwrap().unwrap();
    drop(c);
    // Its consumer is gone, so the delivery went back to the queue: acking it now is stale.
    assert!(matches!(d.ack().await, Err(BrokerError::StaleDelivery(_))));
    assert_eq!(broker.queue_len("q"), Some(1));
    let mut c = broker.consume("q", &ConsumeOptions::default()).await.unwrap();
    broker.close().await.unwrap();
    // The delivery that was in flight may still arrive; then the stream ends.
    while let Some(item) = c.next().await {
        item.unwrap();
    }
    assert_eq!(broker.declare_queue("other").await, Err(BrokerError::Closed));
    assert_eq!(broker.publish(&Target::queue("q"), Message::text("b")).await, Err(BrokerError::Closed));
}

/// Usable as a shared trait object.
#[tokio::test]
async fn object_safe() {
    let broker: std::sync::Arc<dyn Broker> = std::sync::Arc::new(broker());
    assert_eq!(broker.backend(), "in-process");
    broker.declare_queue("q").await.unwrap();
}
