//! The broker's typed errors. Every fallible broker operation returns [`BrokerError`]; nothing in this
//! crate panics on bad input (names, priorities, sizes are validated into one of these variants).

use thiserror::Error;

/// What went wrong in a broker operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A queue, exchange or routing key name the broker cannot accept (empty, too long, reserved
    /// `amq.` prefix, control characters).
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `"queue"`, `"exchange"`, `"routing key"`, `"header"` or `"reply-to"`.
        what: &'static str,
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A message priority outside 0–3.
    #[error("invalid priority {0}: priorities are 0 to 3")]
    InvalidPriority(u8),
    /// The queue does not exist.
    #[error("queue {0:?} not found")]
    QueueNotFound(String),
    /// The exchange does not exist.
    #[error("exchange {0:?} not found")]
    ExchangeNotFound(String),
    /// The declaration conflicts with what already exists (another exchange kind, a temporary queue of
    /// that name, different queue arguments on RabbitMQ, an exclusive queue of another connection).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend refused access (RabbitMQ `ACCESS_REFUSED`).
    #[error("access refused: {0}")]
    AccessRefused(String),
    /// The queue holds its maximum number of messages; nothing was enqueued anywhere.
    #[error("queue {queue:?} is full ({max} messages)")]
    QueueFull {
        /// The full queue.
        queue: String,
        /// Its limit.
        max: usize,
    },
    /// The message body is larger than the broker accepts.
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge {
        /// The body size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The backend did not confirm the publish (RabbitMQ publisher confirm `nack`).
    #[error("the broker did not confirm the message")]
    NotConfirmed,
    /// The delivery cannot be acknowledged any more: its consumer is gone (it was or will be redelivered)
    /// or it was already settled.
    #[error("delivery {0} is no longer pending")]
    StaleDelivery(u64),
    /// The connection to the backend is lost or could not be made. There is no automatic reconnect yet.
    #[error("broker connection: {0}")]
    Connection(String),
    /// The broker was closed.
    #[error("the broker is closed")]
    Closed,
    /// The in-process broker needs a tokio runtime to run its expiry sweeper.
    #[error("the in-process broker must be created inside a tokio runtime")]
    NoRuntime,
    /// Any other protocol error reported by the backend.
    #[error("broker protocol error: {0}")]
    Protocol(String),
}
