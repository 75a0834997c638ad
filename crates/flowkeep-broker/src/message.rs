//! The broker's value types: messages and their properties, priorities, publish targets, exchange kinds
//! and bindings, consume options, and the undeliverable report. They are plain data, shared by every
//! backend, and validated here (names, priorities) so both backends refuse the same inputs.

use crate::BrokerError;
use std::collections::BTreeMap;

/// Message headers. Values are text on every backend (RabbitMQ header values of other types are read
/// back as their text form), which is also what a headers-exchange binding matches against.
pub type Headers = BTreeMap<String, String>;

/// The longest queue, exchange, routing key or header name, in bytes (AMQP short string).
pub const MAX_NAME_LEN: usize = 255;

/// A message priority, 0 (lowest) to 3 (highest). Under backlog a queue delivers higher priorities first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// Priority 0.
    pub const LOWEST: Priority = Priority(0);
    /// Priority 1, the default (as in OpenIAP Flow).
    pub const NORMAL: Priority = Priority(1);
    /// Priority 2.
    pub const HIGH: Priority = Priority(2);
    /// Priority 3, the highest.
    pub const HIGHEST: Priority = Priority(3);
    /// The highest priority value; RabbitMQ queues are declared with `x-max-priority` = this.
    pub const MAX: u8 = 3;

    /// A priority from its number; values above 3 are refused.
    pub fn new(value: u8) -> Result<Priority, BrokerError> {
        if value > Self::MAX {
            Err(BrokerError::InvalidPriority(value))
        } else {
            Ok(Priority(value))
        }
    }

    /// A priority from any number, clamped to 0–3 (for values read from the wire).
    pub fn clamped(value: i64) -> Priority {
        Priority(value.clamp(0, i64::from(Self::MAX)) as u8)
    }

    /// The number, 0–3.
    pub fn value(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// A message: a body of bytes (often JSON text) and its properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The payload.
    pub body: Vec<u8>,
    /// MIME type of the body, e.g. `application/json`.
    pub content_type: Option<String>,
    /// Correlates a reply with its request.
    pub correlation_id: Option<String>,
    /// The queue a reply should be sent to.
    pub reply_to: Option<String>,
    /// Time to live in milliseconds, counted from the publish. A message not delivered by then is dropped
    /// and reported as [`UndeliverableReason::Expired`]. `None` never expires. (The broker applies no
    /// default; OpenIAP's 60 s default is the core's business.)
    pub expiration_ms: Option<u64>,
    /// Delivery priority.
    pub priority: Priority,
    /// Application headers.
    pub headers: Headers,
}

impl Message {
    /// A message with this body and default properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Message {
        Message { body: body.into(), ..Message::default() }
    }

    /// A message whose body is the given text, marked `text/plain`.
    pub fn text(text: &str) -> Message {
        Message::new(text.as_bytes()).with_content_type("text/plain")
    }

    /// A message whose body is the JSON text of `value`, marked `application/json`.
    pub fn json(value: &serde_json::Value) -> Message {
        Message::new(value.to_string()).with_content_type("application/json")
    }

    /// Sets the content type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Message {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Message {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the reply-to queue.
    pub fn with_reply_to(mut self, queue: impl Into<String>) -> Message {
        self.reply_to = Some(queue.into());
        self
    }

    /// Sets the time to live in milliseconds.
    pub fn with_expiration_ms(mut self, ms: u64) -> Message {
        self.expiration_ms = Some(ms);
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Message {
        self.priority = priority;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Message {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The body as UTF-8 text, if it is valid UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The body parsed as JSON.
    pub fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Checks the properties both backends need to carry the message.
    pub(crate) fn validate(&self) -> Result<(), BrokerError> {
        let short = |what: &'static str, value: &Option<String>| match value {
            Some(v) if v.len() > MAX_NAME_LEN => {
                Err(BrokerError::InvalidName { what, name: v.clone(), reason: "longer than 255 bytes" })
            }
            _ => Ok(()),
        };
        short("reply-to", &self.reply_to)?;
        short("correlation id", &self.correlation_id)?;
        short("content type", &self.content_type)?;
        for name in self.headers.keys() {
            check_name("header", name)?;
        }
        Ok(())
    }
}

/// Where a message is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Straight to a named queue (AMQP: the default exchange with the queue name as routing key).
    Queue(String),
    /// To an exchange, routed by the routing key (and, for headers exchanges, the message headers).
    /// The empty name is AMQP's default exchange: the routing key names the queue.
    Exchange {
        /// The exchange.
        name: String,
        /// The routing key; ignored by fanout and headers exchanges.
        routing_key: String,
    },
}

impl Target {
    /// A queue target.
    pub fn queue(name: impl Into<String>) -> Target {
        Target::Queue(name.into())
    }

    /// An exchange target.
    pub fn exchange(name: impl Into<String>, routing_key: impl Into<String>) -> Target {
        Target::Exchange { name: name.into(), routing_key: routing_key.into() }
    }
}

/// What happened to a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// It reached at least one queue.
    Routed,
    /// No queue took it. It is also reported on the undeliverable stream
    /// ([`UndeliverableReason::Unroutable`]); act on one of the two, not both.
    Unroutable,
}

/// The routing algorithm of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Every bound queue gets a copy.
    Fanout,
    /// Queues bound with exactly the routing key.
    Direct,
    /// Queues whose binding pattern matches the dot-separated routing key (`*` one word, `#` any words).
    Topic,
    /// Queues whose binding headers match the message headers (all or any, see [`HeadersMatch`]).
    Headers,
}

impl ExchangeKind {
    /// The AMQP name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Direct => "direct",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }

    /// Parses `fanout`, `direct`, `topic`, `headers` (and OpenIAP's `header`), case-insensitively.
    pub fn parse(name: &str) -> Option<ExchangeKind> {
        match name.to_ascii_lowercase().as_str() {
            "fanout" => Some(ExchangeKind::Fanout),
            "direct" => Some(ExchangeKind::Direct),
            "topic" => Some(ExchangeKind::Topic),
            "headers" | "header" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }
}

/// How a headers-exchange binding compares its headers with a message's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadersMatch {
    /// Every binding header must be present with the same value (`x-match: all`).
    #[default]
    All,
    /// At least one must (`x-match: any`).
    Any,
}

/// How a queue is bound to an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Binding {
    /// The routing key or topic pattern; unused by fanout and headers exchanges.
    pub routing_key: String,
    /// For headers exchanges: the headers to match (names starting with `x-` are ignored).
    pub headers: Headers,
    /// For headers exchanges: all or any.
    pub headers_match: HeadersMatch,
}

impl Binding {
    /// A binding with a routing key (or topic pattern).
    pub fn key(routing_key: impl Into<String>) -> Binding {
        Binding { routing_key: routing_key.into(), ..Binding::default() }
    }

    /// A headers binding.
    pub fn headers(headers: Headers, headers_match: HeadersMatch) -> Binding {
        Binding { routing_key: String::new(), headers, headers_match }
    }
}

/// Options of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// How many deliveries may be unacknowledged at once (AMQP prefetch); at least 1.
    pub prefetch: u16,
}

impl Default for ConsumeOptions {
    /// A prefetch of 25, OpenIAP Flow's `amqp_prefetch`.
    fn default() -> Self {
        ConsumeOptions { prefetch: 25 }
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndeliverableReason {
    /// No queue took it when it was published.
    Unroutable,
    /// Its time to live ran out before a consumer got it.
    Expired,
    /// A consumer rejected it without requeueing.
    Rejected,
    /// Dropped for another reason reported by the backend (e.g. a RabbitMQ queue length limit).
    Other,
}

/// A message that did not reach a consumer, reported to the publishing side so the core can answer the
/// sender (OpenIAP's `timeout` reply to `reply_to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeliverable {
    /// The message as it was published (its `reply_to` and `correlation_id` tell whom to answer).
    pub message: Message,
    /// Why it was not delivered.
    pub reason: UndeliverableReason,
    /// The exchange it was published to (`""` for a queue target).
    pub exchange: String,
    /// The routing key it was published with (the queue name for a queue target).
    pub routing_key: String,
    /// The queue it expired in or was rejected from, if any.
    pub queue: Option<String>,
}

/// Checks a queue, exchange, routing key or header name.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), BrokerError> {
    let refuse = |reason| Err(BrokerError::InvalidName { what, name: name.to_string(), reason });
    if name.len() > MAX_NAME_LEN {
        return refuse("longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return refuse("contains control characters");
    }
    Ok(())
}

/// Checks a queue or exchange name: non-empty, short, no control characters, not `amq.`-prefixed.
pub(crate) fn check_entity_name(what: &'static str, name: &str) -> Result<(), BrokerError> {
    check_name(what, name)?;
    if name.is_empty() {
        return Err(BrokerError::InvalidName { what, name: String::new(), reason: "empty" });
    }
    if name.starts_with("amq.") {
        return Err(BrokerError::InvalidName { what, name: name.to_string(), reason: "the amq. prefix is reserved" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        assert_eq!(Priority::new(3).unwrap(), Priority::HIGHEST);
        assert_eq!(Priority::new(4), Err(BrokerError::InvalidPriority(4)));
        assert_eq!(Priority::clamped(9), Priority::HIGHEST);
        assert_eq!(Priority::clamped(-1), Priority::LOWEST);
        assert_eq!(Priority::default().value(), 1);
    }

    #[test]
    fn names() {
        assert!(check_entity_name("queue", "work.items").is_ok());
        assert!(check_entity_name("queue", "").is_err());
        assert!(check_entity_name("queue", "amq.gen-1").is_err());
        assert!(check_entity_name("queue", "a\nb").is_err());
        assert!(check_entity_name("queue", &"x".repeat(256)).is_err());
        assert!(check_name("routing key", "").is_ok());
    }

    #[test]
    fn exchange_kinds() {
        assert_eq!(ExchangeKind::parse("Header"), Some(ExchangeKind::Headers));
        assert_eq!(ExchangeKind::parse("topic").map(ExchangeKind::as_str), Some("topic"));
        assert_eq!(ExchangeKind::parse("x"), None);
    }

    #[test]
    fn message_builders() {
        let m = Message::json(&serde_json::json!({"a": 1})).with_priority(Priority::HIGH).with_header("k", "v");
        assert_eq!(m.body_json().unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(Message::text("hi").body_text(), Some("hi"));
        assert!(Message::new("x").with_reply_to("r".repeat(300)).validate().is_err());
    }
}
