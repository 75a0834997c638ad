//! Queues and exchanges (reference `openiap-security-model.md` §7, `openiap-protocol.md` §4.7): register a
//! queue (named, or temporary and owned by the returned [`Consumer`]), register an exchange (optionally
//! with a temporary bound queue), send a message to a queue or an exchange, and answer the sender of a
//! message that expired or found no queue with a `timeout` reply.
//!
//! Permissions are decided by [`policy::authorize_queue`] and [`policy::authorize_exchange`]; this module
//! only gathers what they need. Names are lower-cased and reserved names refused; a denial is audited
//! ([`AuditKind::QueueAccessDenied`]). The documents that govern a name (the `mq` queue, exchange or
//! workitem queue of that name, or the `users` document of a 24-character name) are looked up with the
//! named system scope (`governing_document`): whether a name is taken must be known even when
//! the caller may not see its owner's document, or a second user could claim it again. Claiming writes
//! the `mq` document as the caller.
//!
//! **The `timeout` reply.** A background task (started by [`Platform::open_with_broker`]) reads the
//! broker's undeliverable reports. For a report whose message has a `replyto`, it publishes to that queue,
//! with the same correlation id: the original JSON object payload with `"command": "timeout"` set (and
//! `__jwt`/`__user` removed), or, when the payload was not a JSON object, the JSON string `"timeout"`.
//! OpenIAP clients (`invoke_openrpa`, the reference tests) look for exactly that. The reply expires after
//! [`PlatformConfig::message_expiration`](crate::PlatformConfig) and has no `replyto` itself, so a reply
//! that cannot be delivered ends there.

use crate::audit_log::{actor_of, draft};
use crate::error::{CoreError, Result};
use crate::platform::Platform;
use flowkeep_broker::{Binding, Broker, ConsumeOptions, ExchangeKind, Message, Priority, Target, Undeliverable};
use flowkeep_security::audit::Target as AuditTarget;
use flowkeep_security::policy::{self, QueueAccess, QueueDecision, MQ_COLLECTION, USERS_COLLECTION};
use flowkeep_security::{AuditKind, Caller, SecurityError};
use flowkeep_store::Scope;
use serde_json::{json, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The broker types a transport needs to deliver what it consumes.
pub use flowkeep_broker::{BrokerError, Consumer, Delivery};

/// Default of [`crate::PlatformConfig::message_expiration`]: 60 s (reference `amqp_default_expiration`).
pub const DEFAULT_MESSAGE_EXPIRATION: Duration = Duration::from_secs(60);

/// Default of [`crate::PlatformConfig::queue_prefetch`]: 25 (reference `amqp_prefetch`).
pub const DEFAULT_QUEUE_PREFETCH: u16 = 25;

/// `_type` of the `mq` document that governs a queue.
pub const QUEUE_DOC_TYPE: &str = "queue";
/// `_type` of the `mq` document that governs an exchange.
pub const EXCHANGE_DOC_TYPE: &str = "exchange";

/// A `queuemessage` request. Empty strings mean "not set".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueMessage {
    /// The queue to send to (ignored when `exchangename` is set).
    pub queuename: String,
    /// The exchange to send to.
    pub exchangename: String,
    /// The routing key (for an exchange).
    pub routingkey: String,
    /// Where the receiver should reply.
    pub replyto: String,
    /// Correlates a reply with this message; generated when empty.
    pub correlation_id: String,
    /// The payload: JSON text (an object gets `__jwt`/`__user` unless `striptoken`) or any other text.
    pub data: String,
    /// Do not add (and remove) `__jwt` and `__user`.
    pub striptoken: bool,
    /// Time to live in milliseconds; 0 or less means the configured default.
    pub expiration_ms: i64,
    /// Priority, clamped to 0–3.
    pub priority: i64,
}

/// What was sent: the request with names lower-cased and the correlation id filled in (the
/// `queuemessage` reply echoes this).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueMessageSent {
    /// The queue (empty when sent to an exchange).
    pub queuename: String,
    /// The exchange (empty when sent to a queue).
    pub exchangename: String,
    /// The routing key.
    pub routingkey: String,
    /// The reply-to queue.
    pub replyto: String,
    /// The correlation id (generated when the request had none).
    pub correlation_id: String,
    /// The payload as the request gave it.
    pub data: String,
}

/// A registered exchange.
#[derive(Debug)]
pub struct RegisteredExchange {
    /// The exchange name, lower-cased.
    pub exchange: String,
    /// With `addqueue`: the consumer of the temporary queue bound to it (its name is
    /// [`Consumer::queue`]); dropping it removes the queue.
    pub consumer: Option<Consumer>,
}

/// A broker error as a command error.
pub(crate) fn broker_error(e: BrokerError) -> CoreError {
    match e {
        BrokerError::InvalidName { .. } | BrokerError::InvalidPriority(_) | BrokerError::MessageTooLarge { .. } => {
            CoreError::InvalidRequest(e.to_string())
        }
        BrokerError::QueueNotFound(_) | BrokerError::ExchangeNotFound(_) => CoreError::NotFound(e.to_string()),
        BrokerError::Conflict(_) => CoreError::Conflict(e.to_string()),
        BrokerError::AccessRefused(_) => CoreError::AccessDenied(e.to_string()),
        BrokerError::QueueFull { .. } => CoreError::Throttled(e.to_string()),
        other => {
            tracing::error!(error = %other, "broker failure");
            CoreError::Internal("broker".into())
        }
    }
}

/// A queue or exchange name as used everywhere: trimmed and lower-cased.
fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

/// `__user`: the reference's `TokenUser` of the caller (id, names, effective roles).
fn token_user(caller: &Caller) -> Value {
    let roles: Vec<Value> = caller.roles().iter().map(|r| json!({"_id": r.id, "name": r.name})).collect();
    json!({"_id": caller.user_id(), "_type": "user", "name": caller.name(), "username": caller.username(), "roles": roles})
}

/// The body of a message: an object payload gets `__jwt` and `__user` unless `striptoken` (which removes
/// them); anything else is passed through untouched.
fn message_body(caller: &Caller, token: &str, data: &str, striptoken: bool) -> (Vec<u8>, bool) {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(mut map)) => {
            if striptoken {
                map.remove("__jwt");
                map.remove("__user");
            } else {
                map.insert("__jwt".into(), Value::String(token.to_owned()));
                map.insert("__user".into(), token_user(caller));
            }
            (Value::Object(map).to_string().into_bytes(), true)
        }
        Ok(_) => (data.as_bytes().to_vec(), true),
        Err(_) => (data.as_bytes().to_vec(), false),
    }
}

/// The `timeout` reply for an undeliverable message (see the module docs).
pub fn timeout_body(original: &Message) -> Value {
    match original.body_json() {
        Ok(Value::Object(mut map)) => {
            map.remove("__jwt");
            map.remove("__user");
            map.insert("command".into(), Value::String("timeout".into()));
            Value::Object(map)
        }
        _ => Value::String("timeout".into()),
    }
}

/// Answers the sender of an undeliverable message, if it asked for replies.
async fn answer_undeliverable(broker: &dyn Broker, report: Undeliverable, expiration: Duration) {
    let Some(reply_to) = report.message.reply_to.clone().filter(|r| !r.is_empty()) else { return };
    if report.queue.as_deref() == Some(reply_to.as_str()) {
        // The reply queue itself is where it died: answering there would go round in circles.
        return;
    }
    let mut reply = Message::json(&timeout_body(&report.message))
        .with_expiration_ms(u64::try_from(expiration.as_millis()).unwrap_or(u64::MAX));
    reply.correlation_id = report.message.correlation_id.clone();
    if let Err(e) = broker.publish(&Target::queue(reply_to.clone()), reply).await {
        tracing::debug!(error = %e, reply_to, "timeout reply not sent");
    }
}

/// Starts the task that turns undeliverable reports into `timeout` replies. It holds the broker weakly,
/// so it ends with the platform.
pub(crate) fn spawn_timeout_replies(broker: &Arc<dyn Broker>, expiration: Duration) {
    let mut reports = broker.undeliverable();
    let weak: Weak<dyn Broker> = Arc::downgrade(broker);
    tokio::spawn(async move {
        while let Some(report) = reports.recv().await {
            let Some(broker) = weak.upgrade() else { break };
            answer_undeliverable(broker.as_ref(), report, expiration).await;
        }
    });
}

impl Platform {
    /// The broker this core sends through.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    fn consume_options(&self) -> ConsumeOptions {
        ConsumeOptions { prefetch: self.config.queue_prefetch.max(1) }
    }

    /// The document that governs the queue `name` (lower-cased), if any: the `users` document of a
    /// 24-character name, else the `mq` queue of that name, else the workitem queue of that name or whose
    /// `amqpqueue` it is. Named system path: the decision must see a name's owner even when the caller
    /// cannot (see the module docs); only [`policy::authorize_queue`] reads the result.
    async fn governing_document(&self, name: &str) -> Result<Option<(&'static str, Value)>> {
        if name.len() == 24 {
            if let Some(doc) =
                self.store.find_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": name}), None).await?
            {
                return Ok(Some((USERS_COLLECTION, doc)));
            }
        }
        let filters = [
            json!({"_type": QUEUE_DOC_TYPE, "name": name}),
            json!({"_type": "workitemqueue", "$or": [{"name": name}, {"amqpqueue": name}]}),
        ];
        for filter in filters {
            if let Some(doc) = self.store.find_one(MQ_COLLECTION, &Scope::system(), &filter, None).await? {
                return Ok(Some((MQ_COLLECTION, doc)));
            }
        }
        Ok(None)
    }

    /// The `mq` exchange document of `name`. Named system path, as `governing_document`.
    async fn exchange_document(&self, name: &str) -> Result<Option<Value>> {
        let filter = json!({"_type": EXCHANGE_DOC_TYPE, "name": name});
        Ok(self.store.find_one(MQ_COLLECTION, &Scope::system(), &filter, None).await?)
    }

    /// Audits a refusal and turns it into the command's error.
    async fn queue_denied(&self, caller: &Caller, what: &str, name: &str, error: SecurityError) -> CoreError {
        let mut entry = draft(AuditKind::QueueAccessDenied);
        entry.actor = actor_of(caller);
        entry.target = AuditTarget { collection: Some(MQ_COLLECTION.into()), id: None, name: Some(name.into()) };
        entry.reason = Some(format!("{what}: {error}"));
        if let Err(e) = self.audit(entry).await {
            tracing::warn!(error = %e, "queue access denial not audited");
        }
        CoreError::AccessDenied(error.to_string())
    }

    /// Checks `caller`'s access to the queue `name`; `Ok(true)` when the caller may claim it (see
    /// `claim`).
    async fn check_queue(&self, caller: &Caller, name: &str, access: QueueAccess) -> Result<bool> {
        let governing = self.governing_document(name).await?;
        let decision = policy::authorize_queue(
            caller,
            name,
            access,
            self.config.queue_permissions,
            governing.as_ref().map(|(c, d)| (*c, d)),
        );
        match decision {
            Ok(QueueDecision::Allowed) => Ok(false),
            Ok(QueueDecision::Claim) => Ok(true),
            Err(e) => Err(self.queue_denied(caller, "queue", name, e).await),
        }
    }

    /// Makes `caller` the owner of the queue or exchange `name`: the `mq` document of `doc_type`, written
    /// as the caller (so with its ACL). Done after the broker accepted the declaration, so a name the
    /// broker refuses (e.g. another connection's temporary queue) is not claimed.
    async fn claim(&self, caller: &Caller, doc_type: &str, name: &str) -> Result<()> {
        self.insert_one(caller, MQ_COLLECTION, json!({"_type": doc_type, "name": name})).await?;
        Ok(())
    }

    /// Checks `caller`'s access to the exchange `name`; `Ok(true)` when the caller may claim it.
    async fn check_exchange(&self, caller: &Caller, name: &str, access: QueueAccess) -> Result<bool> {
        let doc = self.exchange_document(name).await?;
        match policy::authorize_exchange(caller, name, access, self.config.queue_permissions, doc.as_ref()) {
            Ok(QueueDecision::Allowed) => Ok(false),
            Ok(QueueDecision::Claim) => Ok(true),
            Err(e) => Err(self.queue_denied(caller, "exchange", name, e).await),
        }
    }

    /// `registerqueue`: starts consuming the queue `name` as `caller`, and returns its name (lower-cased)
    /// with the consumer. An empty name (or one starting with `amq.`, as the reference) makes a temporary
    /// queue `tmp.<random>` owned by the consumer: dropping the consumer removes it. A named queue is
    /// declared durable; an unknown name is claimed for the caller (an `mq` document with its ACL).
    pub async fn register_queue(&self, caller: &Caller, name: Option<&str>) -> Result<(String, Consumer)> {
        let name = normalize(name.unwrap_or_default());
        if name.is_empty() || name.starts_with("amq.") {
            let consumer = self.broker.consume_temporary("", &self.consume_options()).await.map_err(broker_error)?;
            return Ok((consumer.queue().to_owned(), consumer));
        }
        if let Err(e) = policy::authorize_queue_name("queue", &name) {
            return Err(self.queue_denied(caller, "registerqueue", &name, e).await);
        }
        let claim = self.check_queue(caller, &name, QueueAccess::Consume).await?;
        self.broker.declare_queue(&name).await.map_err(broker_error)?;
        let consumer = self.broker.consume(&name, &self.consume_options()).await.map_err(broker_error)?;
        if claim {
            self.claim(caller, QUEUE_DOC_TYPE, &name).await?;
        }
        Ok((name, consumer))
    }

    /// `registerexchange`: declares the exchange `name` of `kind` (`fanout`, `direct`, `topic`,
    /// `header(s)`) as `caller` (claiming it when unknown), and with `addqueue` binds a temporary queue to
    /// it with `routing_key` and returns that queue's consumer.
    pub async fn register_exchange(
        &self,
        caller: &Caller,
        name: &str,
        kind: &str,
        routing_key: &str,
        addqueue: bool,
    ) -> Result<RegisteredExchange> {
        let name = normalize(name);
        if name.is_empty() {
            return Err(CoreError::InvalidRequest("exchangename: is required".into()));
        }
        let kind_text = if kind.trim().is_empty() { "fanout" } else { kind.trim() };
        let Some(kind) = ExchangeKind::parse(kind_text) else {
            return Err(CoreError::InvalidRequest(format!(
                "algorithm: '{kind_text}' is not one of direct, fanout, topic, header"
            )));
        };
        let claim = self.check_exchange(caller, &name, QueueAccess::Consume).await?;
        self.broker.declare_exchange(&name, kind).await.map_err(broker_error)?;
        if claim {
            self.claim(caller, EXCHANGE_DOC_TYPE, &name).await?;
        }
        if !addqueue {
            return Ok(RegisteredExchange { exchange: name, consumer: None });
        }
        let consumer = self.broker.consume_temporary("", &self.consume_options()).await.map_err(broker_error)?;
        self.broker.bind_queue(consumer.queue(), &name, &Binding::key(routing_key)).await.map_err(broker_error)?;
        Ok(RegisteredExchange { exchange: name, consumer: Some(consumer) })
    }

    /// `queuemessage`: sends `request` as `caller`; `token` is the caller's token (the envelope's `jwt` or
    /// the session's), added as `__jwt` to object payloads unless `striptoken`. A message that finds no
    /// queue is not an error here: its sender gets a `timeout` reply on `replyto` (module docs).
    pub async fn queue_message(&self, caller: &Caller, token: &str, request: QueueMessage) -> Result<QueueMessageSent> {
        let exchange = normalize(&request.exchangename);
        let queue = if exchange.is_empty() { normalize(&request.queuename) } else { String::new() };
        let replyto = normalize(&request.replyto);
        if queue.is_empty() && exchange.is_empty() {
            return Err(CoreError::InvalidRequest("queuename or exchangename: one is required".into()));
        }
        for (what, name) in [("replyto", &replyto), ("queue", &queue), ("exchange", &exchange)] {
            if let Err(e) = policy::authorize_queue_name(what, name) {
                return Err(self.queue_denied(caller, "queuemessage", name, e).await);
            }
        }
        if exchange.is_empty() {
            self.check_queue(caller, &queue, QueueAccess::Send).await?;
        } else {
            self.check_exchange(caller, &exchange, QueueAccess::Send).await?;
        }
        let correlation_id = match request.correlation_id.trim() {
            "" => flowkeep_model::new_object_id(),
            id => id.to_owned(),
        };
        let expiration = match u64::try_from(request.expiration_ms) {
            Ok(ms) if ms > 0 => ms,
            _ => u64::try_from(self.config.message_expiration.as_millis()).unwrap_or(u64::MAX),
        };
        let (body, is_json) = message_body(caller, token, &request.data, request.striptoken);
        let mut message = Message::new(body)
            .with_correlation_id(correlation_id.clone())
            .with_expiration_ms(expiration)
            .with_priority(Priority::clamped(request.priority));
        if is_json {
            message = message.with_content_type("application/json");
        }
        if !replyto.is_empty() {
            message = message.with_reply_to(replyto.clone());
        }
        let target = if exchange.is_empty() {
            Target::queue(queue.clone())
        } else {
            Target::exchange(exchange.clone(), request.routingkey.clone())
        };
        self.broker.publish(&target, message).await.map_err(broker_error)?;
        Ok(QueueMessageSent {
            queuename: queue,
            exchangename: exchange,
            routingkey: request.routingkey,
            replyto,
            correlation_id,
            data: request.data,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeout_bodies() {
        let m = Message::json(&json!({"a": 1, "__jwt": "t", "command": "invoke"}));
        assert_eq!(timeout_body(&m), json!({"a": 1, "command": "timeout"}));
        assert_eq!(timeout_body(&Message::text("hi")), json!("timeout"));
        assert_eq!(timeout_body(&Message::json(&json!([1]))), json!("timeout"));
    }

    #[test]
    fn names() {
        assert_eq!(normalize("  Work.Q "), "work.q");
    }
}
