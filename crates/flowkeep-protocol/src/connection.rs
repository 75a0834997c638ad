//! One connection's session loop: reads envelopes in order, runs one request at a time, and keeps the
//! timers (idle, sign-in, heartbeat pings, token refresh) and the watch feed.
//!
//! * **Order and backpressure.** One envelope is handled completely (including sending its reply on the
//!   bounded outbound channel) before the next is read, so stream chunks always follow their `upload`
//!   and a client that does not read its replies stops being read from. Watch events are sent the same
//!   way; while the loop is blocked, changes wait in the core's bounded broadcast ring, and a connection
//!   that falls behind it is told with an `error` envelope without `rid` (see [`crate::commands::watch`]).
//! * **`seq`.** Transports deliver in order, so envelopes are handled in arrival order; a `seq` other than
//!   the expected one (0, 1, 2, …) is logged and accepted, never reordered or refused.
//! * **Timers.** A connection that has not signed in (nor sent `getelement`, `ping` or `pong`) within
//!   `signin_timeout` is closed. `idle_timeout` without any message closes a connection that is not signed
//!   in or that asked for pings at sign-in (it answers every ping, so silence means it is gone); a session
//!   signed in without pings (the official client's jwt sign-in) is not closed for silence, as in OpenIAP
//!   Flow, because it has nothing to answer and would lose its watches on every reconnect. Pings go out
//!   every `heartbeat_interval` to sessions that asked for them. A `refreshtoken` is pushed
//!   `refresh_before` the session token expires; a refresh the core refuses (user disabled or deleted)
//!   closes the connection.
//! * **Queues.** Deliveries of the connection's queue consumers are selected beside requests and watch
//!   events and sent as `queueevent`s (see [`crate::commands::queues`]).

use crate::codec::{self, ProtocolError, WireMessage};
use crate::commands::{self, files::Uploads, queues::Queues, watch::Watches};
use crate::registry::{ClientEntry, RegistryGuard};
use crate::{wire, ConnectionInfo, Hub, Inbound};
use flowkeep_core::identity::ClientInfo;
use flowkeep_core::Caller;
use futures_util::{FutureExt, StreamExt};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// How long a resolved session caller is reused for watch deliveries before it is resolved again.
pub(crate) const CALLER_RECHECK: Duration = Duration::from_secs(5);
/// The shortest wait between two token refreshes, so a token lifetime shorter than `refresh_before`
/// cannot make the connection refresh in a loop.
const MIN_REFRESH_DELAY: Duration = Duration::from_millis(500);

/// A signed-in session.
pub(crate) struct SessionState {
    /// The session token (the one the last sign-in or refresh issued).
    pub token: String,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
    /// Whether it is a long token (refreshes keep the kind).
    pub long: bool,
    /// The client agent and version given at sign-in (for the audit of refreshes).
    pub agent: String,
    pub version: String,
    /// The caller the token resolved to last, and when.
    pub caller: Caller,
    pub checked: Instant,
}

/// The state of one connection.
pub(crate) struct Connection {
    pub hub: Arc<Hub>,
    pub info: ConnectionInfo,
    out: mpsc::Sender<wire::Envelope>,
    pub registry: RegistryGuard,
    pub session: Option<SessionState>,
    /// Signed in, or sent `getelement`/`ping`/`pong`: the sign-in timer no longer applies.
    pub greeted: bool,
    /// The session asked for pings.
    pub ping: bool,
    pub uploads: Uploads,
    pub watches: Watches,
    /// The queues this connection consumes (see [`crate::commands::queues`]); dropped with it.
    pub queues: Queues,
    expected_seq: i64,
    out_seq: i32,
    next_id: u64,
    started: Instant,
    last_activity: Instant,
    next_ping: Option<Instant>,
    refresh_at: Option<Instant>,
    /// Set when the connection must end (outbound closed, refresh refused).
    closed: bool,
}

/// A reply to send: the command name and its data.
pub(crate) struct Reply {
    pub command: String,
    pub data: prost_types::Any,
}

impl Reply {
    /// A reply `command` carrying `msg`.
    pub fn new<T: WireMessage>(command: &str, msg: &T) -> Reply {
        Reply { command: command.to_owned(), data: codec::to_any(msg) }
    }
}

/// Runs a connection to its end.
pub(crate) async fn run<S>(hub: Arc<Hub>, info: ConnectionInfo, mut inbound: S, out: mpsc::Sender<wire::Envelope>)
where
    S: futures_util::Stream<Item = Inbound> + Send + Unpin,
{
    let entry = ClientEntry {
        id: flowkeep_model::new_object_id(),
        user_id: None,
        username: None,
        name: None,
        agent: String::new(),
        version: String::new(),
        transport: info.transport,
        remote: info.remote,
        connected: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        watches: 0,
    };
    let registry = hub.registry.register(entry);
    let now = Instant::now();
    let mut conn = Connection {
        hub,
        info,
        out,
        registry,
        session: None,
        greeted: false,
        ping: false,
        uploads: Uploads::default(),
        watches: Watches::default(),
        queues: Queues::default(),
        expected_seq: 0,
        out_seq: 0,
        next_id: 0,
        started: now,
        last_activity: now,
        next_ping: None,
        refresh_at: None,
        closed: false,
    };
    tracing::debug!(connection = conn.registry.id(), transport = conn.info.transport, "connection opened");
    while !conn.closed {
        let deadline = conn.next_deadline();
        let out = conn.out.clone();
        // Not biased: a busy client must not starve its watch events, nor a busy feed its requests.
        let item = tokio::select! {
            _ = out.closed() => break,
            item = inbound.next() => item,
            event = conn.watches.recv() => {
                commands::watch::on_change(&mut conn, event).await;
                continue;
            }
            received = conn.queues.recv() => {
                commands::queues::on_delivery(&mut conn, received).await;
                continue;
            }
            _ = sleep_until(deadline) => {
                // Time spent handling requests or blocked on a slow reader is not the client's silence:
                // a message already waiting counts before any timeout.
                match inbound.next().now_or_never() {
                    Some(item) => item,
                    None => {
                        conn.on_timer().await;
                        continue;
                    }
                }
            }
        };
        let Some(item) = item else { break };
        conn.last_activity = Instant::now();
        conn.on_inbound(item).await;
        conn.last_activity = Instant::now();
    }
    tracing::debug!(connection = conn.registry.id(), "connection closed");
}

impl Connection {
    /// The earliest timer.
    fn next_deadline(&self) -> Instant {
        let config = &self.hub.config;
        let mut deadline = later(self.last_activity, config.idle_timeout);
        if !self.greeted {
            deadline = deadline.min(later(self.started, config.signin_timeout));
        }
        for t in [self.next_ping, self.refresh_at].into_iter().flatten() {
            deadline = deadline.min(t);
        }
        deadline
    }

    /// Whether silence closes this connection (see the module docs).
    fn idle_applies(&self) -> bool {
        self.session.is_none() || self.ping
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        let config = self.hub.config.clone();
        if !self.greeted && now >= later(self.started, config.signin_timeout) {
            tracing::info!(connection = self.registry.id(), "closing: no sign-in within the sign-in timeout");
            self.closed = true;
            return;
        }
        if now >= later(self.last_activity, config.idle_timeout) {
            if self.idle_applies() {
                tracing::info!(connection = self.registry.id(), "closing: idle timeout");
                self.closed = true;
                return;
            }
            // Exempt from the idle rule: restart the idle clock so the timer does not spin.
            self.last_activity = now;
        }
        if self.next_ping.is_some_and(|t| now >= t) {
            self.next_ping = Some(later(now, config.heartbeat_interval.max(Duration::from_millis(10))));
            let ping = wire::Envelope {
                command: "ping".into(),
                data: Some(codec::to_any(&wire::PingRequest {})),
                ..Default::default()
            };
            self.send(ping).await;
        }
        if self.refresh_at.is_some_and(|t| now >= t) {
            self.refresh_at = None;
            commands::session::refresh(self).await;
        }
    }

    async fn on_inbound(&mut self, item: Inbound) {
        match item {
            Inbound::Malformed(reason) => {
                let error = ProtocolError::field("envelope", format!("could not be decoded ({reason}); skipped"));
                self.send_error("", &error).await;
            }
            Inbound::Envelope { envelope, size } => self.on_envelope(envelope, size).await,
        }
    }

    fn check_seq(&mut self, seq: i32) {
        let seq = i64::from(seq);
        if seq != self.expected_seq {
            tracing::debug!(
                connection = self.registry.id(),
                expected = self.expected_seq,
                got = seq,
                "envelope seq out of sequence; handled in arrival order"
            );
        }
        self.expected_seq = seq.saturating_add(1);
    }

    async fn on_envelope(&mut self, envelope: wire::Envelope, size: usize) {
        self.check_seq(envelope.seq);
        let is_stream = matches!(envelope.command.as_str(), "beginstream" | "stream" | "endstream");
        let max = self.hub.config.max_message_bytes;
        if size > max {
            let error = ProtocolError::TooLarge(format!(
                "{} message of {size} bytes is larger than the limit of {max} bytes; it was skipped",
                if envelope.command.is_empty() { "a" } else { envelope.command.as_str() }
            ));
            tracing::warn!(connection = self.registry.id(), size, command = %envelope.command, "oversized message");
            if is_stream {
                // A chunk too large for the limit fails its upload (no reply to chunks otherwise).
                if self.uploads.fail(&envelope.rid) {
                    self.send_error(&envelope.rid, &error).await;
                }
            } else {
                self.send_error(&envelope.id, &error).await;
            }
            return;
        }
        match envelope.command.as_str() {
            // Heartbeats only: never answered.
            "ping" | "pong" => self.greeted = true,
            "beginstream" | "stream" | "endstream" => commands::files::on_stream(self, envelope).await,
            _ => {
                let id = envelope.id.clone();
                let command = envelope.command.clone();
                let started = Instant::now();
                let outcome = commands::dispatch(self, envelope).await;
                tracing::debug!(
                    connection = self.registry.id(),
                    %command,
                    %id,
                    elapsed_ms = started.elapsed().as_millis(),
                    error = outcome.as_ref().err().map(tracing::field::display),
                    "request"
                );
                match outcome {
                    Ok(Some(reply)) => self.send_reply(&id, reply).await,
                    Ok(None) => {}
                    Err(error) => self.send_error(&id, &error).await,
                }
            }
        }
    }

    /// The caller a request runs as: the envelope's own `jwt` when given, else the session's token,
    /// resolved afresh by the core either way.
    pub async fn caller(&mut self, jwt: &str) -> codec::Result<Caller> {
        let platform = self.hub.platform.clone();
        let token = strip_bearer(jwt);
        if !token.is_empty() {
            return Ok(platform.authenticate(token).await?);
        }
        let Some(session) = &mut self.session else { return Err(ProtocolError::NotSignedIn) };
        let caller = platform.authenticate(&session.token).await?;
        session.caller = caller.clone();
        session.checked = Instant::now();
        Ok(caller)
    }

    /// The session caller for a delivery, resolved again when older than [`CALLER_RECHECK`]; `None`
    /// without a session or when its token no longer resolves.
    pub async fn session_caller(&mut self) -> Option<Caller> {
        let platform = self.hub.platform.clone();
        let session = self.session.as_mut()?;
        if session.checked.elapsed() >= CALLER_RECHECK {
            match platform.authenticate(&session.token).await {
                Ok(caller) => {
                    session.caller = caller;
                    session.checked = Instant::now();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "session token no longer resolves; watch events withheld");
                    return None;
                }
            }
        }
        Some(session.caller.clone())
    }

    /// What the core is told about this client at sign-in.
    pub fn client_info(&self, agent: &str, version: &str) -> ClientInfo {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ClientInfo {
            agent: non_empty(agent),
            version: non_empty(version),
            address: self.info.remote.map(|a| a.ip().to_string()),
        }
    }

    /// Starts the session timers after a sign-in (or refresh).
    pub fn schedule_session_timers(&mut self, ping_changed: bool) {
        let config = &self.hub.config;
        if ping_changed {
            self.next_ping = self.ping.then(|| later(Instant::now(), config.heartbeat_interval));
        }
        self.refresh_at = self.session.as_ref().map(|s| {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let remaining = Duration::from_millis(
                u64::try_from(s.expires_at.saturating_mul(1000).saturating_sub(now_ms)).unwrap_or(0),
            );
            let before = remaining.saturating_sub(config.refresh_before);
            let delay = before.max(remaining / 2).max(MIN_REFRESH_DELAY);
            later(Instant::now(), delay)
        });
    }

    /// Marks the connection for closing.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether the connection is closing (its outbound channel is gone or it was told to close).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends an envelope, filling `id` and `seq`; waits while the outbound channel is full.
    pub async fn send(&mut self, mut envelope: wire::Envelope) {
        if self.closed {
            return;
        }
        self.next_id += 1;
        if envelope.id.is_empty() {
            envelope.id = format!("s{}", self.next_id);
        }
        envelope.seq = self.out_seq;
        self.out_seq = self.out_seq.wrapping_add(1);
        if self.out.send(envelope).await.is_err() {
            self.closed = true;
        }
    }

    /// Sends a reply to `rid`; a reply larger than the transport's limit is replaced by an `error`.
    pub async fn send_reply(&mut self, rid: &str, reply: Reply) {
        let envelope = wire::Envelope {
            command: reply.command,
            rid: rid.to_owned(),
            data: Some(reply.data),
            ..Default::default()
        };
        let size = envelope.encoded_len();
        let limit = self.info.max_outbound_bytes;
        if size > limit {
            tracing::info!(connection = self.registry.id(), size, limit, command = %envelope.command, "reply too large");
            let error = ProtocolError::TooLarge(format!(
                "the reply is {size} bytes, more than this connection's limit of {limit} bytes; ask for less \
                 (use top and skip to page through results, or a projection)"
            ));
            self.send_error(rid, &error).await;
            return;
        }
        self.send(envelope).await;
    }

    /// Sends an `error` answering `rid`.
    pub async fn send_error(&mut self, rid: &str, error: &ProtocolError) {
        if let ProtocolError::Core(flowkeep_core::CoreError::Internal(detail)) = error {
            tracing::warn!(connection = self.registry.id(), detail, "command failed inside the server");
        }
        self.send(codec::error_envelope(rid, error)).await;
    }
}

/// `t + d`, or a far future when that overflows (durations come from configuration, which may say
/// "practically never").
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))).unwrap_or(t)
}

/// A token without a `Bearer `/`JWT ` prefix.
pub(crate) fn strip_bearer(token: &str) -> &str {
    let token = token.trim();
    for prefix in ["Bearer ", "bearer ", "JWT ", "jwt "] {
        if let Some(rest) = token.strip_prefix(prefix) {
            return rest.trim();
        }
    }
    token
}
