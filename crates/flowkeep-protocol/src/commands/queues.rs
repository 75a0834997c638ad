//! Queues: `registerqueue`, `registerexchange`, `unregisterqueue`, `queuemessage`, and the delivery of
//! what a connection consumes as `queueevent`s.
//!
//! The core decides everything (names, permissions, claiming, `__jwt`, defaults; see
//! [`flowkeep_core::messaging`]); this module keeps the connection's consumers and translates. Each
//! registered queue (named, temporary, or the temporary queue of `registerexchange` with `addqueue`) is
//! one consumer, keyed by the queue name exactly as the register reply returned it, which is the name the
//! official client looks its callback up by. Registering a name again on the same connection replaces its
//! consumer (as the reference does). Consumers end on `unregisterqueue` or with the connection; a
//! temporary queue is removed with its consumer.
//!
//! **Backpressure.** A delivery is acknowledged only after its `queueevent` was queued on the bounded
//! outbound channel. While a slow client keeps that channel full, the session loop waits in the send and
//! the broker holds back further messages once the consumer's prefetch is unacknowledged.
//!
//! **Priority.** `QueueMessageRequest` has no priority field; the envelope's `priority` is used (as the
//! reference does for forwarded commands).

use crate::codec::{decode, ProtocolError, Result, WireMessage};
use crate::commands::reply_command;
use crate::connection::{strip_bearer, Connection, Reply};
use crate::wire;
use flowkeep_core::messaging::{Consumer, Delivery, QueueMessage};
use flowkeep_core::{Caller, CoreError};
use futures_util::Stream;
use serde_json::Value;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::Poll;

/// The most queues one connection may consume at once.
pub const MAX_QUEUES: usize = 64;

macro_rules! wire_messages {
    ($($t:ident),* $(,)?) => {
        $(impl WireMessage for wire::$t { const NAME: &'static str = stringify!($t); })*
    };
}

wire_messages!(
    RegisterQueueRequest,
    RegisterQueueResponse,
    RegisterExchangeRequest,
    RegisterExchangeResponse,
    UnRegisterQueueRequest,
    UnRegisterQueueResponse,
    QueueMessageRequest,
    QueueMessageResponse,
    QueueEvent,
);

/// The consumers of a connection, by queue name.
#[derive(Default)]
pub(crate) struct Queues {
    list: BTreeMap<String, Consumer>,
    /// Where the next poll starts, so one busy queue does not starve the others.
    start: usize,
}

/// What [`Queues::recv`] got: the queue's name and its consumer's next item (`None`: the consumer ended).
pub(crate) type Received = (String, Option<std::result::Result<Delivery, flowkeep_core::messaging::BrokerError>>);

impl Queues {
    /// The next delivery of any consumer; pending forever while there is none.
    pub async fn recv(&mut self) -> Received {
        if self.list.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            let n = self.list.len();
            let start = self.start % n.max(1);
            // Those from `start` on first, then the ones before it.
            let (before, after): (Vec<_>, Vec<_>) = self.list.iter_mut().enumerate().partition(|(i, _)| *i < start);
            for (_, (name, consumer)) in after.into_iter().chain(before) {
                if let Poll::Ready(item) = Pin::new(consumer).poll_next(cx) {
                    return Poll::Ready((name.clone(), item));
                }
            }
            Poll::Pending
        })
        .await
    }

    fn insert(&mut self, name: String, consumer: Consumer) -> Result<()> {
        if !self.list.contains_key(&name) && self.list.len() >= MAX_QUEUES {
            return Err(ProtocolError::field(
                "queuename",
                format!("at most {MAX_QUEUES} queues may be registered on one connection"),
            ));
        }
        self.list.insert(name, consumer);
        Ok(())
    }
}

/// `registerqueue`.
pub(crate) async fn register_queue(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::RegisterQueueRequest = decode(envelope)?;
    let platform = conn.hub.platform.clone();
    let (queuename, consumer) = platform.register_queue(caller, Some(&request.queuename)).await?;
    conn.queues.insert(queuename.clone(), consumer)?;
    Ok(Reply::new(&reply_command(envelope), &wire::RegisterQueueResponse { queuename }))
}

/// `registerexchange`.
pub(crate) async fn register_exchange(
    conn: &mut Connection,
    caller: &Caller,
    envelope: &wire::Envelope,
) -> Result<Reply> {
    let request: wire::RegisterExchangeRequest = decode(envelope)?;
    let platform = conn.hub.platform.clone();
    let registered = platform
        .register_exchange(caller, &request.exchangename, &request.algorithm, &request.routingkey, request.addqueue)
        .await?;
    let queuename = match registered.consumer {
        Some(consumer) => {
            let name = consumer.queue().to_owned();
            conn.queues.insert(name.clone(), consumer)?;
            name
        }
        None => String::new(),
    };
    Ok(Reply::new(&reply_command(envelope), &wire::RegisterExchangeResponse { queuename }))
}

/// `unregisterqueue`.
pub(crate) fn unregister_queue(conn: &mut Connection, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::UnRegisterQueueRequest = decode(envelope)?;
    let name = request.queuename.trim().to_lowercase();
    if name.is_empty() {
        return Err(ProtocolError::field("queuename", "is required"));
    }
    if conn.queues.list.remove(&name).is_none() {
        return Err(ProtocolError::Core(CoreError::NotFound(format!(
            "queue '{name}' is not registered on this connection"
        ))));
    }
    Ok(Reply::new(&reply_command(envelope), &wire::UnRegisterQueueResponse {}))
}

/// `queuemessage`.
pub(crate) async fn queue_message(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::QueueMessageRequest = decode(envelope)?;
    let token = match strip_bearer(&envelope.jwt) {
        "" => conn.session.as_ref().map(|s| s.token.clone()).unwrap_or_default(),
        jwt => jwt.to_owned(),
    };
    let message = QueueMessage {
        queuename: request.queuename.clone(),
        exchangename: request.exchangename.clone(),
        routingkey: request.routingkey.clone(),
        replyto: request.replyto.clone(),
        correlation_id: request.correlation_id.clone(),
        data: request.data.clone(),
        striptoken: request.striptoken,
        expiration_ms: i64::from(request.expiration),
        priority: i64::from(envelope.priority),
    };
    let platform = conn.hub.platform.clone();
    let sent = platform.queue_message(caller, &token, message).await?;
    let reply = wire::QueueMessageResponse {
        queuename: sent.queuename,
        correlation_id: sent.correlation_id,
        replyto: sent.replyto,
        routingkey: sent.routingkey,
        exchangename: sent.exchangename,
        data: sent.data,
    };
    Ok(Reply::new(&reply_command(envelope), &reply))
}

/// Object payloads lose their `traceId`/`spanId` keys (reference); anything else is sent as it came.
fn event_data(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) => {
            for key in ["traceId", "spanId", "traceid", "spanid"] {
                map.remove(key);
            }
            Value::Object(map).to_string()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// One item from a consumer: sends the `queueevent`, then acknowledges.
pub(crate) async fn on_delivery(conn: &mut Connection, received: Received) {
    let (queuename, item) = received;
    conn.queues.start = conn.queues.start.wrapping_add(1);
    let delivery = match item {
        Some(Ok(delivery)) => delivery,
        Some(Err(e)) => {
            tracing::warn!(connection = conn.registry.id(), queue = %queuename, error = %e, "queue consumer failed");
            return;
        }
        None => {
            tracing::debug!(connection = conn.registry.id(), queue = %queuename, "queue consumer ended");
            conn.queues.list.remove(&queuename);
            return;
        }
    };
    let message = &delivery.message;
    let event = wire::QueueEvent {
        queuename: queuename.clone(),
        correlation_id: message.correlation_id.clone().unwrap_or_default(),
        replyto: message.reply_to.clone().unwrap_or_default(),
        routingkey: delivery.routing_key.clone(),
        exchangename: delivery.exchange.clone(),
        data: event_data(&message.body),
    };
    let envelope = crate::codec::reply("queueevent", "", &event);
    if prost::Message::encoded_len(&envelope) > conn.info.max_outbound_bytes {
        tracing::warn!(connection = conn.registry.id(), queue = %queuename, "queue message larger than the client accepts; rejected");
        if let Err(e) = delivery.nack(false).await {
            tracing::debug!(error = %e, "nack failed");
        }
        return;
    }
    conn.send(envelope).await;
    if conn.is_closed() {
        // Not handed over: left unsettled, it is redelivered once this consumer is gone.
        return;
    }
    if let Err(e) = delivery.ack().await {
        tracing::debug!(connection = conn.registry.id(), error = %e, "ack failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_keys_are_removed() {
        assert_eq!(event_data(br#"{"a":1,"traceId":"t","spanId":"s"}"#), r#"{"a":1}"#);
        assert_eq!(event_data(b"plain"), "plain");
        assert_eq!(event_data(b"[1]"), "[1]");
    }
}
