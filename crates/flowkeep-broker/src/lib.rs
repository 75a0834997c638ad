//! Flowkeep's messaging layer: the transport-agnostic [`Broker`] trait below `flowkeep-core`, with two
//! backends — [`InProcessBroker`] (the embedded default, in memory on tokio) and [`AmqpBroker`]
//! (RabbitMQ through `lapin`).
//!
//! The broker moves messages; it knows nothing of users or permissions. The core decides who may
//! declare, bind, publish and consume, lower-cases names, applies OpenIAP's defaults (60 s expiration,
//! generated correlation ids, `__jwt` injection) and then calls the broker.
//!
//! What every backend does the same way (checked by the contract suite in `tests/contract`):
//! - named queues are durable; temporary queues belong to their consumer and vanish with it;
//! - exchanges are fanout, direct, topic or headers; publishing goes to a queue or an exchange;
//! - priorities 0–3: under backlog higher priorities are delivered first;
//! - messages carry correlation id, reply-to, expiration (ms), priority, headers and a byte body;
//! - consumers get an async stream of deliveries settled by ack or nack; competing consumers share a
//!   queue round-robin; unsettled deliveries are redelivered when their consumer goes away;
//! - a message that expires, cannot be routed, or is rejected without requeue is reported on the
//!   [`Broker::undeliverable`] stream, so the core can send OpenIAP's `timeout` reply to its sender.
//!
//! What differs: the in-process broker keeps nothing across a restart (persistence is future work) and
//! refuses to publish to a full queue; the AMQP backend does not reconnect by itself yet and speaks plain
//! `amqp://` only (no TLS compiled in).
//!
//! ```
//! use flowkeep_broker::{Broker, ConsumeOptions, InProcessBroker, InProcessConfig, Message, Target};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), flowkeep_broker::BrokerError> {
//! let broker = InProcessBroker::new(InProcessConfig::default())?;
//! broker.declare_queue("work").await?;
//! let mut replies = broker.consume_temporary("client", &ConsumeOptions::default()).await?;
//! let request = Message::text("ping").with_reply_to(replies.queue()).with_correlation_id("1");
//! broker.publish(&Target::queue("work"), request).await?;
//!
//! let mut worker = broker.consume("work", &ConsumeOptions::default()).await?;
//! let job = worker.next().await.expect("a delivery")?;
//! let reply_to = job.message.reply_to.clone().unwrap_or_default();
//! broker.publish(&Target::queue(reply_to), Message::text("pong").with_correlation_id("1")).await?;
//! job.ack().await?;
//!
//! let reply = replies.next().await.expect("a reply")?;
//! assert_eq!(reply.message.body_text(), Some("pong"));
//! reply.ack().await?;
//! # Ok(())
//! # }
//! ```

mod amqp;
mod broker;
mod error;
mod inprocess;
mod message;
mod routing;

pub use amqp::{AmqpBroker, AmqpConfig};
pub use broker::{Broker, Consumer, Delivery, UndeliverableReceiver};
pub use error::BrokerError;
pub use inprocess::{InProcessBroker, InProcessConfig};
pub use message::{
    Binding, ConsumeOptions, ExchangeKind, Headers, HeadersMatch, Message, Priority, PublishOutcome, Target,
    Undeliverable, UndeliverableReason, MAX_NAME_LEN,
};

/// A fresh temporary queue name: `<prefix>.<24 hex>`, prefix `tmp` when empty.
pub(crate) fn temporary_name(prefix: &str) -> String {
    let prefix = if prefix.is_empty() { "tmp" } else { prefix };
    format!("{prefix}.{}", flowkeep_model::new_object_id())
}
