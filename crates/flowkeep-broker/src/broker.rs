//! The [`Broker`] trait every backend implements, and the handles it hands out: [`Consumer`] (an async
//! stream of [`Delivery`]s, cancelled on drop), and [`UndeliverableReceiver`] (the reports of messages
//! that expired, could not be routed or were rejected).

use crate::{Binding, BrokerError, ConsumeOptions, ExchangeKind, Message, PublishOutcome, Target, Undeliverable};
use async_trait::async_trait;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc};

/// A message broker: queues, exchanges, bindings, publishing and consuming. Object-safe; share it as
/// `Arc<dyn Broker>`. It knows nothing of users or permissions: the core decides those and then calls it.
#[async_trait]
pub trait Broker: Send + Sync {
    /// A short name of the backend (`"in-process"`, `"amqp"`).
    fn backend(&self) -> &'static str;

    /// Declares a durable named queue; declaring an existing one is a no-op.
    async fn declare_queue(&self, name: &str) -> Result<(), BrokerError>;

    /// Whether a queue of that name exists (named or temporary).
    async fn queue_exists(&self, name: &str) -> Result<bool, BrokerError>;

    /// Deletes a queue with its messages; its consumers' streams end. Deleting a missing queue is a no-op.
    async fn delete_queue(&self, name: &str) -> Result<(), BrokerError>;

    /// Declares an exchange; redeclaring with the same kind is a no-op, with another kind a
    /// [`BrokerError::Conflict`].
    async fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<(), BrokerError>;

    /// Deletes an exchange and its bindings. Deleting a missing exchange is a no-op.
    async fn delete_exchange(&self, name: &str) -> Result<(), BrokerError>;

    /// Binds a queue to an exchange. Binding twice the same way is a no-op.
    async fn bind_queue(&self, queue: &str, exchange: &str, binding: &Binding) -> Result<(), BrokerError>;

    /// Removes a binding made by [`Broker::bind_queue`]; a missing binding is a no-op.
    async fn unbind_queue(&self, queue: &str, exchange: &str, binding: &Binding) -> Result<(), BrokerError>;

    /// Publishes a message. Returns once the backend holds it (RabbitMQ: after the publisher confirm).
    /// A message no queue takes is not an error: the outcome is [`PublishOutcome::Unroutable`] and an
    /// [`Undeliverable`] report is sent. A full queue ([`BrokerError::QueueFull`]), a missing exchange
    /// ([`BrokerError::ExchangeNotFound`]) or a lost connection are errors, and then nothing was enqueued.
    async fn publish(&self, target: &Target, message: Message) -> Result<PublishOutcome, BrokerError>;

    /// Starts consuming a queue. Competing consumers of one queue share its messages round-robin.
    async fn consume(&self, queue: &str, options: &ConsumeOptions) -> Result<Consumer, BrokerError>;

    /// Creates a temporary queue named `<prefix>.<random>` (prefix `tmp` when empty, so the name never looks
    /// like a 24-hex id, which the core treats as a user or role queue) and
    /// consumes it. The queue belongs to the consumer: it is deleted when the consumer is dropped.
    async fn consume_temporary(&self, prefix: &str, options: &ConsumeOptions) -> Result<Consumer, BrokerError>;

    /// Subscribes to the reports of messages that were not delivered. Reports made before subscribing are
    /// not replayed. On RabbitMQ, expired and rejected messages are reported by whichever node consumes
    /// the dead-letter queue first (each one once per cluster); unroutable ones by the publishing node.
    fn undeliverable(&self) -> UndeliverableReceiver;

    /// Closes the broker: consumers' streams end, later operations fail with [`BrokerError::Closed`].
    async fn close(&self) -> Result<(), BrokerError>;
}

/// A message handed to a consumer. Settle it with [`Delivery::ack`] or [`Delivery::nack`]; one dropped
/// unsettled stays unacknowledged until its consumer goes away, and is then redelivered.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// The queue it was consumed from.
    pub queue: String,
    /// The exchange it was published to (`""` when published straight to the queue).
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Whether it was delivered before and not acknowledged.
    pub redelivered: bool,
    pub(crate) acker: Acker,
}

/// The backend's handle to settle one delivery.
#[derive(Debug)]
pub(crate) enum Acker {
    InProcess(crate::inprocess::AckHandle),
    Amqp(lapin::Acker, u64),
}

impl Delivery {
    /// Acknowledges the delivery: the message is done and removed.
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::InProcess(handle) => handle.settle(crate::inprocess::Settle::Ack),
            Acker::Amqp(acker, tag) => crate::amqp::ack(&acker, tag).await,
        }
    }

    /// Refuses the delivery. With `requeue` the message goes back to its queue (marked redelivered);
    /// without, it is dropped and reported as [`crate::UndeliverableReason::Rejected`].
    pub async fn nack(self, requeue: bool) -> Result<(), BrokerError> {
        match self.acker {
            Acker::InProcess(handle) => handle.settle(crate::inprocess::Settle::Nack { requeue }),
            Acker::Amqp(acker, tag) => crate::amqp::nack(&acker, tag, requeue).await,
        }
    }
}

/// Cancels the consumer on the backend when dropped.
#[allow(dead_code)] // held only for its `Drop`
pub(crate) enum ConsumerGuard {
    InProcess(crate::inprocess::ConsumerGuard),
    Amqp(crate::amqp::ConsumerGuard),
}

/// A consumer of one queue: an async stream of deliveries. Dropping it cancels it: its unsettled
/// deliveries are redelivered to other consumers, and a temporary queue is deleted.
pub struct Consumer {
    queue: String,
    tag: String,
    rx: mpsc::UnboundedReceiver<Result<Delivery, BrokerError>>,
    _guard: ConsumerGuard,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("queue", &self.queue).field("tag", &self.tag).finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(
        queue: String,
        tag: String,
        rx: mpsc::UnboundedReceiver<Result<Delivery, BrokerError>>,
        guard: ConsumerGuard,
    ) -> Consumer {
        Consumer { queue, tag, rx, _guard: guard }
    }

    /// The queue this consumer reads (for a temporary queue, its generated name).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The consumer tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The next delivery; `None` when the consumer was cancelled (queue deleted, broker closed).
    /// An `Err` reports a lost connection and is followed by `None`.
    pub async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        self.rx.recv().await
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery, BrokerError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Receives [`Undeliverable`] reports. A receiver that falls too far behind skips the oldest reports
/// (counted by [`UndeliverableReceiver::missed`]) rather than holding the broker's memory.
#[derive(Debug)]
pub struct UndeliverableReceiver {
    rx: broadcast::Receiver<Undeliverable>,
    missed: u64,
}

impl UndeliverableReceiver {
    pub(crate) fn new(rx: broadcast::Receiver<Undeliverable>) -> UndeliverableReceiver {
        UndeliverableReceiver { rx, missed: 0 }
    }

    /// The next report; `None` once the broker is gone.
    pub async fn recv(&mut self) -> Option<Undeliverable> {
        loop {
            match self.rx.recv().await {
                Ok(report) => return Some(report),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "undeliverable reports skipped: the receiver fell behind");
                    self.missed += n;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// A report if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Undeliverable> {
        loop {
            match self.rx.try_recv() {
                Ok(report) => return Some(report),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.missed += n,
                Err(_) => return None,
            }
        }
    }

    /// How many reports this receiver skipped because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}
