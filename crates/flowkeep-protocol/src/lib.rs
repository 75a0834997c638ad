//! The OpenIAP `Envelope` protocol, independent of the transport that carries it.
//!
//! A transport (gRPC `SetupStream`, WebSocket `/ws/v2`, an in-memory pipe in tests) decodes envelopes and
//! hands them to [`Hub::serve_connection`] as a stream of [`Inbound`] items; replies, pings, watch events,
//! token refreshes and download chunks come back on a bounded channel of [`wire::Envelope`]s, so a slow
//! client slows down only its own connection. Every command runs through `flowkeep-core` as the
//! connection's (or the envelope's own `jwt`) caller: this crate maps wire messages to core commands and
//! core results back to wire messages, and holds no business rules.
//!
//! * [`codec`]: `Any` payloads, reply and `error` envelopes, [`ProtocolError`] and its codes.
//! * `connection`: the per-connection loop (order, backpressure, `seq`, timers, refresh).
//! * `commands`: one module per command family (session, documents, collections, files, watch, custom).
//! * [`registry`]: the live connections behind `getclients` ([`Hub::clients`]).
//!
//! # Behaviour a transport and a client can rely on
//!
//! * Envelopes of a connection are handled one at a time, in arrival order; each reply (`<command>reply`,
//!   or `error`) has `rid` = the request's `id` and always carries `data`. `getelement` is answered with
//!   command `getelement`. Client `ping`/`pong` and stream chunks are never answered.
//! * `seq` is logged when out of sequence and otherwise ignored: nothing is reordered or refused.
//! * Before sign-in only `signin`, `getelement`, `ping` and `pong` work, unless the envelope has a `jwt`;
//!   anything else gets `error` "not signed in" (code 401).
//! * Error codes are HTTP-like: 400 bad request (the message names the field), 401 not signed in or bad
//!   credentials, 403 denied, 404 not found, 409 conflict, 413 too large, 429 throttled, 500 server
//!   failure, 501 not available (workflow and agent commands), 503 watch events lost.
//! * A message over `max_message_bytes` is answered with an `error` and skipped; a reply over the
//!   transport's `max_outbound_bytes` is replaced by an `error` naming both sizes and suggesting
//!   `top`/`skip`. Download chunks are at most 1 MiB and within the transport's limit.
//! * The outbound channel is bounded: when it is full the connection stops reading its inbound stream.
//!   Watch events wait in the core's bounded change feed meanwhile; a connection that falls behind it
//!   gets one `error` without `rid` saying how many changes it missed, and continues.

pub use openiap_proto::openiap as wire;

pub mod codec;
mod commands;
mod connection;
pub mod registry;

pub use codec::ProtocolError;
pub use registry::ClientEntry;

use flowkeep_core::Platform;
use registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Limits and timers of the protocol; the server maps its configuration onto this.
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// Largest envelope accepted from a client (encoded size); larger ones get an `error` reply.
    pub max_message_bytes: usize,
    /// Largest file an `upload` may stream.
    pub max_upload_bytes: usize,
    /// How often the server pings a client that asked for pings at sign-in.
    pub heartbeat_interval: Duration,
    /// A connection with no message from the client for this long is closed (not signed in, or signed
    /// in with `ping: true`; a session that did not ask for pings has nothing to answer and is kept).
    pub idle_timeout: Duration,
    /// A connection that has not signed in (nor sent `getelement`, `ping` or `pong`) for this long is closed.
    pub signin_timeout: Duration,
    /// How long before a short token expires a `refreshtoken` is pushed.
    pub refresh_before: Duration,
    /// `top` of a `query` that gives none (or 0).
    pub default_top: usize,
    /// The largest `top` a `query` may ask for; larger values are cut to it.
    pub max_top: usize,
    /// Envelopes queued towards one client before the connection stops reading from it (backpressure).
    pub outbound_capacity: usize,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            max_message_bytes: 16 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            signin_timeout: Duration::from_secs(120),
            refresh_before: Duration::from_secs(60),
            default_top: 100,
            max_top: 10_000,
            outbound_capacity: 64,
        }
    }
}

/// One item read by a transport.
#[derive(Debug)]
pub enum Inbound {
    /// A decoded envelope and its encoded size in bytes.
    Envelope { envelope: wire::Envelope, size: usize },
    /// A frame that could not be decoded (the text says why); answered with an `error` and skipped.
    Malformed(String),
}

/// What the transport knows about a connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// `"grpc"` or `"websocket"` (or `"test"`), shown by `getclients`.
    pub transport: &'static str,
    /// The peer address, used for login throttling and audit.
    pub remote: Option<SocketAddr>,
    /// Largest envelope this transport's clients accept (gRPC clients: 4 MiB); a larger reply is
    /// replaced by an `error` naming the size.
    pub max_outbound_bytes: usize,
}

/// The protocol state shared by every connection of a server: the core, the limits and the registry of
/// connected clients (for `getclients`).
pub struct Hub {
    platform: Arc<Platform>,
    config: ProtocolConfig,
    registry: Arc<Registry>,
}

impl Hub {
    /// A hub over `platform`.
    pub fn new(platform: Arc<Platform>, config: ProtocolConfig) -> Arc<Hub> {
        Arc::new(Hub { platform, config, registry: Arc::new(Registry::default()) })
    }

    /// The core this hub runs commands on.
    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// The protocol's limits.
    pub fn config(&self) -> &ProtocolConfig {
        &self.config
    }

    /// The live connections (what `getclients` shows an admin).
    pub fn clients(&self) -> Vec<ClientEntry> {
        self.registry.snapshot()
    }

    /// Runs one connection until the client goes away (`inbound` ends), it times out, or `outbound` is
    /// closed by the transport. Envelopes for the client are sent on `outbound` (bounded: when it is full
    /// the connection stops reading `inbound`).
    pub async fn serve_connection<S>(
        self: Arc<Self>,
        info: ConnectionInfo,
        inbound: S,
        outbound: mpsc::Sender<wire::Envelope>,
    ) where
        S: futures_util::Stream<Item = Inbound> + Send + Unpin,
    {
        connection::run(self, info, inbound, outbound).await;
    }
}
