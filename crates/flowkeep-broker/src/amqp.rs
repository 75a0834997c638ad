//! The AMQP 0-9-1 backend: RabbitMQ through `lapin`.
//!
//! - One connection per broker; one publishing channel in confirm mode (a publish returns only after
//!   RabbitMQ confirmed it), one channel per consumer (closing it cancels the consumer and requeues its
//!   unacknowledged deliveries), and short-lived channels for declarations (an AMQP error closes the
//!   channel it happens on, so they never poison the publishing channel).
//! - Named queues are durable; temporary queues are exclusive and auto-delete, declared on their
//!   consumer's channel and deleted when the consumer is dropped. Every queue is declared with
//!   `x-max-priority = 3` and `x-dead-letter-exchange` = the broker's dead-letter exchange.
//! - Messages are published persistent (delivery mode 2) and `mandatory`: an unroutable one comes back
//!   with the confirm (basic.return) and is reported as undeliverable. Expired and rejected messages are
//!   dead-lettered to a durable fanout exchange and queue; every broker connected to the same RabbitMQ
//!   competes on that queue, so each is reported once per cluster.
//! - No automatic reconnect yet: when the connection drops, operations fail with
//!   [`BrokerError::Connection`] and consumers' streams yield that error and end.
//! - Plain `amqp://` only for now (no TLS feature compiled in).

use crate::broker::{Acker, ConsumerGuard as AnyGuard};
use crate::message::{check_entity_name, check_name};
use crate::{
    Binding, Broker, BrokerError, ConsumeOptions, Consumer, Delivery, ExchangeKind, Headers, HeadersMatch, Message,
    Priority, PublishOutcome, Target, Undeliverable, UndeliverableReason, UndeliverableReceiver,
};
use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Settings of an [`AmqpBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// The AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The durable fanout exchange expired and rejected messages are dead-lettered to.
    pub dead_letter_exchange: String,
    /// The durable queue bound to it, consumed by every broker connected to the same RabbitMQ.
    pub dead_letter_queue: String,
    /// The largest message body, in bytes (RabbitMQ's own default limit is 128 MiB).
    pub max_message_bytes: usize,
    /// How many undeliverable reports a slow subscriber may lag behind before it skips some.
    pub undeliverable_capacity: usize,
}

impl AmqpConfig {
    /// Defaults for a URL: dead-letter exchange and queue `flowkeep.dlx`, 128 MiB bodies.
    pub fn new(url: impl Into<String>) -> AmqpConfig {
        AmqpConfig {
            url: url.into(),
            dead_letter_exchange: "flowkeep.dlx".into(),
            dead_letter_queue: "flowkeep.dlx".into(),
            max_message_bytes: 128 * 1024 * 1024,
            undeliverable_capacity: 1024,
        }
    }
}

/// The RabbitMQ broker. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct AmqpBroker {
    inner: Arc<AmqpInner>,
}

struct AmqpInner {
    config: AmqpConfig,
    connection: Connection,
    publisher: tokio::sync::Mutex<Option<Channel>>,
    undeliverable: broadcast::Sender<Undeliverable>,
    runtime: tokio::runtime::Handle,
    dead_letters: std::sync::Mutex<Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("dead_letter_exchange", &self.inner.config.dead_letter_exchange)
            .finish_non_exhaustive()
    }
}

/// Maps a lapin error; `not_found` builds the error for AMQP `NOT_FOUND`.
fn map_err(error: lapin::Error, not_found: impl FnOnce() -> BrokerError) -> BrokerError {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => not_found(),
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
            | AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED) => {
                BrokerError::Conflict(amqp.get_message().to_string())
            }
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => {
                BrokerError::AccessRefused(amqp.get_message().to_string())
            }
            _ => BrokerError::Protocol(error.to_string()),
        },
        ErrorKind::IOError(_)
        | ErrorKind::InvalidConnectionState(_)
        | ErrorKind::MissingHeartbeatError
        | ErrorKind::RuntimeShutdownError(_) => BrokerError::Connection(error.to_string()),
        _ => BrokerError::Protocol(error.to_string()),
    }
}

fn other(error: lapin::Error) -> BrokerError {
    map_err(error, || BrokerError::Protocol("not found".into()))
}

/// The arguments every queue is declared with.
fn queue_arguments(config: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(Priority::MAX));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(config.dead_letter_exchange.as_str())),
    );
    args
}

fn binding_arguments(binding: &Binding) -> FieldTable {
    let mut args = FieldTable::default();
    if binding.headers.is_empty() && binding.headers_match == HeadersMatch::All {
        return args;
    }
    let x_match = match binding.headers_match {
        HeadersMatch::All => "all",
        HeadersMatch::Any => "any",
    };
    args.insert("x-match".into(), AMQPValue::LongString(x_match.into()));
    for (k, v) in &binding.headers {
        if !k.starts_with("x-") {
            args.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
    }
    args
}

fn properties(message: &Message) -> BasicProperties {
    let mut p = BasicProperties::default().with_delivery_mode(2).with_priority(message.priority.value());
    if let Some(v) = &message.content_type {
        p = p.with_content_type(v.as_str().into());
    }
    if let Some(v) = &message.correlation_id {
        p = p.with_correlation_id(v.as_str().into());
    }
    if let Some(v) = &message.reply_to {
        p = p.with_reply_to(v.as_str().into());
    }
    if let Some(ms) = message.expiration_ms {
        p = p.with_expiration(ms.to_string().into());
    }
    if !message.headers.is_empty() {
        let mut table = FieldTable::default();
        for (k, v) in &message.headers {
            table.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        p = p.with_headers(table);
    }
    p
}

/// The text form of a scalar header value; `None` for tables, arrays and the like.
fn header_text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        _ => return None,
    })
}

/// A message from AMQP properties and body. Dead-lettering headers (`x-death`, `x-first-death-*`,
/// `x-last-death-*`) are left out.
fn message_from(properties: &BasicProperties, body: Vec<u8>) -> Message {
    let text = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    let mut headers = Headers::new();
    if let Some(table) = properties.headers() {
        for (k, v) in table {
            let k = k.as_str();
            if k == "x-death" || k.starts_with("x-first-death-") || k.starts_with("x-last-death-") {
                continue;
            }
            if let Some(v) = header_text(v) {
                headers.insert(k.to_string(), v);
            }
        }
    }
    Message {
        body,
        content_type: text(properties.content_type()),
        correlation_id: text(properties.correlation_id()),
        reply_to: text(properties.reply_to()),
        expiration_ms: properties.expiration().as_ref().and_then(|s| s.as_str().parse().ok()),
        priority: Priority::clamped(i64::from(properties.priority().unwrap_or(0))),
        headers,
    }
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref().and_then(|t| t.inner().get(name))
}

/// An undeliverable report from a dead-lettered message.
fn dead_letter_report(delivery: &lapin::message::Delivery) -> Undeliverable {
    let props = &delivery.properties;
    let text = |name: &str| header(props, name).and_then(header_text);
    let reason = match text("x-first-death-reason").as_deref() {
        Some("expired") => UndeliverableReason::Expired,
        Some("rejected") => UndeliverableReason::Rejected,
        _ => UndeliverableReason::Other,
    };
    let mut message = message_from(props, delivery.data.clone());
    // RabbitMQ strips the expiration when dead-lettering and keeps it in x-death; restore it if present.
    if message.expiration_ms.is_none() {
        message.expiration_ms = original_expiration(props);
    }
    Undeliverable {
        message,
        reason,
        exchange: text("x-first-death-exchange").unwrap_or_else(|| delivery.exchange.as_str().to_string()),
        routing_key: delivery.routing_key.as_str().to_string(),
        queue: text("x-first-death-queue"),
    }
}

fn original_expiration(props: &BasicProperties) -> Option<u64> {
    let AMQPValue::FieldArray(deaths) = header(props, "x-death")? else { return None };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else { return None };
    header_text(first.inner().get("original-expiration")?)?.parse().ok()
}

pub(crate) async fn ack(acker: &lapin::Acker, tag: u64) -> Result<(), BrokerError> {
    match acker.ack(BasicAckOptions::default()).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(BrokerError::StaleDelivery(tag)),
        Err(e) => Err(other(e)),
    }
}

pub(crate) async fn nack(acker: &lapin::Acker, tag: u64, requeue: bool) -> Result<(), BrokerError> {
    match acker.nack(BasicNackOptions { multiple: false, requeue }).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(BrokerError::StaleDelivery(tag)),
        Err(e) => Err(other(e)),
    }
}

/// Stops a consumer when dropped: its forwarding task then cancels the consumer, closes its channel
/// (unacknowledged deliveries go back to the queue) and, for a temporary queue, deletes the queue.
pub(crate) struct ConsumerGuard {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Forwards a lapin consumer's deliveries until the [`ConsumerGuard`] is dropped, then shuts it down in
/// an order that never races lapin's own bookkeeping: cancel on the open channel first (so RabbitMQ
/// sends no `basic.cancel` into a closing channel), then close the channel, and only then drop the lapin
/// consumer (dropping an active one makes lapin send its own cancel, which must not meet a closing
/// channel either: lapin treats that as a connection error).
async fn forward(
    mut consumer: lapin::Consumer,
    channel: Channel,
    queue: String,
    tx: mpsc::UnboundedSender<Result<Delivery, BrokerError>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    temporary: Option<std::sync::Weak<AmqpInner>>,
) {
    let tag = consumer.tag();
    let mut tx = Some(tx);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            item = consumer.next(), if tx.is_some() => {
                let Some(sender) = tx.as_ref() else { continue };
                match item {
                    Some(Ok(d)) => {
                        if sender.send(Ok(delivery_from(&queue, d))).is_err() {
                            tx = None;
                        }
                    }
                    Some(Err(e)) => {
                        let e = match other(e) {
                            e @ BrokerError::Connection(_) => e,
                            e => BrokerError::Connection(e.to_string()),
                        };
                        let _ = sender.send(Err(e));
                        tx = None;
                    }
                    None => tx = None,
                }
            }
        }
    }
    drop(tx);
    if channel.status().connected() {
        let _ = channel.basic_cancel(tag, BasicCancelOptions::default()).await;
        let _ = channel.close(200, "consumer dropped".into()).await;
    }
    drop(consumer);
    // Auto-delete removes a temporary queue once its consumer is cancelled; delete it explicitly as well.
    if let Some(inner) = temporary.and_then(|weak| weak.upgrade()) {
        if inner.connection.status().connected() {
            if let Ok(ch) = inner.connection.create_channel().await {
                let _ = ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                let _ = ch.close(200, "done".into()).await;
            }
        }
    }
}

fn delivery_from(queue: &str, d: lapin::message::Delivery) -> Delivery {
    Delivery {
        message: message_from(&d.properties, d.data),
        queue: queue.to_string(),
        exchange: d.exchange.as_str().to_string(),
        routing_key: d.routing_key.as_str().to_string(),
        redelivered: d.redelivered,
        acker: Acker::Amqp(d.acker, d.delivery_tag),
    }
}

impl AmqpBroker {
    /// Connects to RabbitMQ and declares the dead-letter exchange and queue. Must be called inside a
    /// tokio runtime.
    pub async fn connect(config: AmqpConfig) -> Result<AmqpBroker, BrokerError> {
        check_entity_name("exchange", &config.dead_letter_exchange)?;
        check_entity_name("queue", &config.dead_letter_queue)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BrokerError::NoRuntime)?;
        let connection = Connection::connect(&config.url, ConnectionProperties::default())
            .await
            .map_err(|e| BrokerError::Connection(e.to_string()))?;
        let (undeliverable, _) = broadcast::channel(config.undeliverable_capacity.max(1));
        let inner = Arc::new(AmqpInner {
            config,
            connection,
            publisher: tokio::sync::Mutex::new(None),
            undeliverable,
            runtime,
            dead_letters: std::sync::Mutex::new(None),
        });
        let broker = AmqpBroker { inner };
        broker.start_dead_letters().await?;
        Ok(broker)
    }

    /// The configuration in force.
    pub fn config(&self) -> &AmqpConfig {
        &self.inner.config
    }

    async fn start_dead_letters(&self) -> Result<(), BrokerError> {
        let (dlx, dlq) = (self.inner.config.dead_letter_exchange.clone(), self.inner.config.dead_letter_queue.clone());
        let channel = self.inner.connection.create_channel().await.map_err(other)?;
        channel
            .exchange_declare(
                dlx.as_str().into(),
                lapin::ExchangeKind::Fanout,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(other)?;
        channel
            .queue_declare(
                dlq.as_str().into(),
                QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(other)?;
        channel
            .queue_bind(
                dlq.as_str().into(),
                dlx.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(other)?;
        channel.basic_qos(100, BasicQosOptions::default()).await.map_err(other)?;
        let mut consumer = channel
            .basic_consume(dlq.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(other)?;
        let sender = self.inner.undeliverable.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = self.inner.runtime.spawn(async move {
            let tag = consumer.tag();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    item = consumer.next() => match item {
                        Some(Ok(delivery)) => {
                            let _ = sender.send(dead_letter_report(&delivery));
                            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                                tracing::warn!(error = %e, "could not acknowledge a dead letter");
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "the dead-letter consumer failed");
                            let _ = (&mut stopped).await;
                            break;
                        }
                        None => {
                            let _ = (&mut stopped).await;
                            break;
                        }
                    },
                }
            }
            // Same shutdown order as other consumers (see `forward`).
            if channel.status().connected() {
                let _ = channel.basic_cancel(tag, BasicCancelOptions::default()).await;
                let _ = channel.close(200, "closing".into()).await;
            }
            drop(consumer);
        });
        if let Ok(mut slot) = self.inner.dead_letters.lock() {
            *slot = Some((stop, task));
        }
        Ok(())
    }

    fn ensure_connected(&self) -> Result<(), BrokerError> {
        if self.inner.connection.status().connected() {
            Ok(())
        } else {
            Err(BrokerError::Connection("the connection to RabbitMQ is closed".into()))
        }
    }

    /// Runs one declaration on a short-lived channel.
    async fn with_channel<T, F, Fut>(&self, not_found: impl FnOnce() -> BrokerError, f: F) -> Result<T, BrokerError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<T, lapin::Error>>,
    {
        self.ensure_connected()?;
        let channel = self.inner.connection.create_channel().await.map_err(other)?;
        let result = f(channel.clone()).await;
        if channel.status().connected() {
            let _ = channel.close(200, "done".into()).await;
        }
        result.map_err(|e| map_err(e, not_found))
    }

    /// The publishing channel (in confirm mode), opened again if an error closed it.
    async fn publisher(&self) -> Result<Channel, BrokerError> {
        self.ensure_connected()?;
        let mut slot = self.inner.publisher.lock().await;
        if let Some(channel) = slot.as_ref() {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.inner.connection.create_channel().await.map_err(other)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(other)?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    async fn start_consumer(
        &self,
        queue: &str,
        options: &ConsumeOptions,
        temporary: bool,
    ) -> Result<Consumer, BrokerError> {
        self.ensure_connected()?;
        let channel = self.inner.connection.create_channel().await.map_err(other)?;
        let result = self.open_consumer(&channel, queue, options, temporary).await;
        let consumer = match result {
            Ok(consumer) => consumer,
            Err(e) => {
                if channel.status().connected() {
                    let _ = channel.close(200, "done".into()).await;
                }
                return Err(e);
            }
        };
        let tag = consumer.tag().as_str().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let temporary = temporary.then(|| Arc::downgrade(&self.inner));
        self.inner.runtime.spawn(forward(consumer, channel, queue.to_string(), tx, stopped, temporary));
        let guard = ConsumerGuard { _stop: stop };
        Ok(Consumer::new(queue.to_string(), tag, rx, AnyGuard::Amqp(guard)))
    }

    async fn open_consumer(
        &self,
        channel: &Channel,
        queue: &str,
        options: &ConsumeOptions,
        temporary: bool,
    ) -> Result<lapin::Consumer, BrokerError> {
        let not_found = || BrokerError::QueueNotFound(queue.to_string());
        if temporary {
            channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() },
                    queue_arguments(&self.inner.config),
                )
                .await
                .map_err(|e| map_err(e, not_found))?;
        }
        channel
            .basic_qos(options.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| map_err(e, not_found))?;
        channel
            .basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(|e| map_err(e, not_found))
    }
}

fn kind_of(kind: ExchangeKind) -> lapin::ExchangeKind {
    match kind {
        ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
        ExchangeKind::Direct => lapin::ExchangeKind::Direct,
        ExchangeKind::Topic => lapin::ExchangeKind::Topic,
        ExchangeKind::Headers => lapin::ExchangeKind::Headers,
    }
}

#[async_trait]
impl Broker for AmqpBroker {
    fn backend(&self) -> &'static str {
        "amqp"
    }

    async fn declare_queue(&self, name: &str) -> Result<(), BrokerError> {
        check_entity_name("queue", name)?;
        let args = queue_arguments(&self.inner.config);
        self.with_channel(
            || BrokerError::QueueNotFound(name.to_string()),
            |ch| async move {
                ch.queue_declare(
                    name.into(),
                    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
                    args,
                )
                .await
                .map(|_| ())
            },
        )
        .await
    }

    async fn queue_exists(&self, name: &str) -> Result<bool, BrokerError> {
        check_name("queue", name)?;
        if name.is_empty() {
            return Ok(false);
        }
        let result = self
            .with_channel(
                || BrokerError::QueueNotFound(name.to_string()),
                |ch| async move {
                    ch.queue_declare(
                        name.into(),
                        QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                        FieldTable::default(),
                    )
                    .await
                    .map(|_| ())
                },
            )
            .await;
        match result {
            Ok(()) => Ok(true),
            Err(BrokerError::QueueNotFound(_)) => Ok(false),
            // An exclusive queue of another connection exists too.
            Err(BrokerError::Conflict(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn delete_queue(&self, name: &str) -> Result<(), BrokerError> {
        check_name("queue", name)?;
        let result = self
            .with_channel(
                || BrokerError::QueueNotFound(name.to_string()),
                |ch| async move { ch.queue_delete(name.into(), QueueDeleteOptions::default()).await.map(|_| ()) },
            )
            .await;
        match result {
            Err(BrokerError::QueueNotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
        check_entity_name("exchange", name)?;
        self.with_channel(
            || BrokerError::ExchangeNotFound(name.to_string()),
            |ch| async move {
                // Durable, not auto-deleted: it lives until deleted, like a durable queue.
                ch.exchange_declare(
                    name.into(),
                    kind_of(kind),
                    ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                    FieldTable::default(),
                )
                .await
            },
        )
        .await
    }

    async fn delete_exchange(&self, name: &str) -> Result<(), BrokerError> {
        check_name("exchange", name)?;
        let result = self
            .with_channel(
                || BrokerError::ExchangeNotFound(name.to_string()),
                |ch| async move { ch.exchange_delete(name.into(), ExchangeDeleteOptions::default()).await },
            )
            .await;
        match result {
            Err(BrokerError::ExchangeNotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn bind_queue(&self, queue: &str, exchange: &str, binding: &Binding) -> Result<(), BrokerError> {
        check_name("queue", queue)?;
        check_entity_name("exchange", exchange)?;
        check_name("routing key", &binding.routing_key)?;
        let args = binding_arguments(binding);
        let key = binding.routing_key.as_str();
        let result = self
            .with_channel(
                || BrokerError::QueueNotFound(queue.to_string()),
                |ch| async move {
                    ch.queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), args).await
                },
            )
            .await;
        match result {
            // RabbitMQ says NOT_FOUND for either; tell which.
            Err(BrokerError::QueueNotFound(_)) if self.queue_exists(queue).await.unwrap_or(true) => {
                Err(BrokerError::ExchangeNotFound(exchange.to_string()))
            }
            other => other,
        }
    }

    async fn unbind_queue(&self, queue: &str, exchange: &str, binding: &Binding) -> Result<(), BrokerError> {
        check_name("queue", queue)?;
        check_entity_name("exchange", exchange)?;
        check_name("routing key", &binding.routing_key)?;
        let args = binding_arguments(binding);
        let key = binding.routing_key.as_str();
        let result = self
            .with_channel(
                || BrokerError::QueueNotFound(queue.to_string()),
                |ch| async move { ch.queue_unbind(queue.into(), exchange.into(), key.into(), args).await },
            )
            .await;
        match result {
            Err(BrokerError::QueueNotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn publish(&self, target: &Target, message: Message) -> Result<PublishOutcome, BrokerError> {
        message.validate()?;
        let max = self.inner.config.max_message_bytes;
        if message.body.len() > max {
            return Err(BrokerError::MessageTooLarge { size: message.body.len(), max });
        }
        let (exchange, routing_key) = match target {
            Target::Queue(name) => {
                check_name("queue", name)?;
                ("", name.as_str())
            }
            Target::Exchange { name, routing_key } => {
                check_name("exchange", name)?;
                check_name("routing key", routing_key)?;
                (name.as_str(), routing_key.as_str())
            }
        };
        let not_found = || BrokerError::ExchangeNotFound(exchange.to_string());
        let channel = self.publisher().await?;
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                &message.body,
                properties(&message),
            )
            .await
            .map_err(|e| map_err(e, not_found))?;
        let confirmation = confirm.await.map_err(|e| map_err(e, not_found))?;
        if confirmation.is_nack() {
            return Err(BrokerError::NotConfirmed);
        }
        if confirmation.take_message().is_some() {
            let _ = self.inner.undeliverable.send(Undeliverable {
                message,
                reason: UndeliverableReason::Unroutable,
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                queue: None,
            });
            return Ok(PublishOutcome::Unroutable);
        }
        Ok(PublishOutcome::Routed)
    }

    async fn consume(&self, queue: &str, options: &ConsumeOptions) -> Result<Consumer, BrokerError> {
        check_entity_name("queue", queue)?;
        self.start_consumer(queue, options, false).await
    }

    async fn consume_temporary(&self, prefix: &str, options: &ConsumeOptions) -> Result<Consumer, BrokerError> {
        let name = crate::temporary_name(prefix);
        check_entity_name("queue", &name)?;
        self.start_consumer(&name, options, true).await
    }

    fn undeliverable(&self) -> UndeliverableReceiver {
        UndeliverableReceiver::new(self.inner.undeliverable.subscribe())
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let dead_letters = self.inner.dead_letters.lock().ok().and_then(|mut slot| slot.take());
        if let Some((stop, task)) = dead_letters {
            let _ = stop.send(());
            let _ = task.await;
        }
        if self.inner.connection.status().connected() {
            self.inner.connection.close(200, "closing".into()).await.map_err(other)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let m = Message::json(&serde_json::json!({"a": 1}))
            .with_correlation_id("c")
            .with_reply_to("r")
            .with_expiration_ms(1500)
            .with_priority(Priority::HIGHEST)
            .with_header("k", "v");
        let p = properties(&m);
        assert_eq!(*p.delivery_mode(), Some(2), "persistent");
        assert_eq!(message_from(&p, m.body.clone()), m);
    }

    #[test]
    fn foreign_headers_read_as_text_and_death_headers_dropped() {
        let mut table = FieldTable::default();
        table.insert("n".into(), AMQPValue::LongInt(7));
        table.insert("b".into(), AMQPValue::Boolean(true));
        table.insert("x-first-death-reason".into(), AMQPValue::LongString("expired".into()));
        table.insert("nested".into(), AMQPValue::FieldTable(FieldTable::default()));
        let m = message_from(&BasicProperties::default().with_headers(table), Vec::new());
        let want: Headers = [("b", "true"), ("n", "7")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(m.headers, want);
        assert_eq!(m.priority, Priority::LOWEST, "no priority property reads as 0, as RabbitMQ treats it");
    }

    #[test]
    fn binding_arguments_for_headers() {
        assert!(binding_arguments(&Binding::key("k")).inner().is_empty());
        let mut headers = Headers::new();
        headers.insert("a".into(), "1".into());
        headers.insert("x-skip".into(), "2".into());
        let args = binding_arguments(&Binding::headers(headers, HeadersMatch::Any));
        let keys: Vec<&str> = args.inner().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["a", "x-match"]);
    }
}
