//! What the gRPC and WebSocket transports share: the handler a connection is given to (the protocol's
//! [`Hub`], or a bare [`Echo`] used to measure a transport's own limit), the size limits, and the
//! shutdown signal that ends open connections.
//!
//! A transport only decodes frames into [`Inbound`] items and encodes the envelopes that come back;
//! it holds no business rules.

use flowkeep_protocol::{wire, ConnectionInfo, Hub, Inbound};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The largest envelope the official gRPC client accepts (tonic's default decoding limit).
pub const GRPC_CLIENT_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The largest WebSocket frame the official client accepts (tungstenite's default); larger envelopes
/// are sent to it split over several binary messages, which its framing buffer joins again.
pub const WS_CLIENT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Runs one client connection: reads `inbound` until it ends, sends envelopes on `outbound`, returns
/// when done. Dropping `outbound` ends the connection.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves one connection.
    fn serve(
        self: Arc<Self>,
        info: ConnectionInfo,
        inbound: BoxStream<'static, Inbound>,
        outbound: mpsc::Sender<wire::Envelope>,
    ) -> BoxFuture<'static, ()>;

    /// Capacity of the channels between the transport and the handler.
    fn channel_capacity(&self) -> usize;
}

impl ConnectionHandler for Hub {
    fn serve(
        self: Arc<Self>,
        info: ConnectionInfo,
        inbound: BoxStream<'static, Inbound>,
        outbound: mpsc::Sender<wire::Envelope>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(self.serve_connection(info, inbound, outbound))
    }

    fn channel_capacity(&self) -> usize {
        self.config().outbound_capacity.max(1)
    }
}

/// A bare echo: every envelope comes back with `rid` set to its `id`; undecodable frames are dropped.
/// The wire benchmark drives it through the same transport code as the real server, to state the
/// server's throughput as a fraction of what the transport alone can do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl ConnectionHandler for Echo {
    fn serve(
        self: Arc<Self>,
        _info: ConnectionInfo,
        mut inbound: BoxStream<'static, Inbound>,
        outbound: mpsc::Sender<wire::Envelope>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            while let Some(item) = inbound.next().await {
                if let Inbound::Envelope { mut envelope, .. } = item {
                    envelope.rid = std::mem::take(&mut envelope.id);
                    if outbound.send(envelope).await.is_err() {
                        return;
                    }
                }
            }
        })
    }

    fn channel_capacity(&self) -> usize {
        64
    }
}

/// The size limits a transport applies before the protocol sees an envelope.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// The protocol's limit (`max_message_bytes`): larger envelopes are still decoded and handed over,
    /// and the protocol replies `error`.
    pub max_message_bytes: usize,
    /// The hard cap (twice `max_message_bytes`): a larger frame closes the connection (WebSocket) or
    /// fails the stream (gRPC), without being buffered.
    pub hard_cap_bytes: usize,
}

impl TransportLimits {
    /// Limits with the hard cap at twice `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> TransportLimits {
        TransportLimits { max_message_bytes, hard_cap_bytes: max_message_bytes.saturating_mul(2) }
    }
}

/// The server-wide shutdown signal: transports stop reading from their clients when it fires, so every
/// connection drains (its pending replies are sent) and ends.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Fires the [`Shutdown`] signal.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Completes when shutdown has been triggered (or its trigger is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

impl ShutdownTrigger {
    /// Fires the signal.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}
