//! The OpenIAP WebSocket transport, `/ws/v2` on the HTTP listener.
//!
//! Framing: a frame is a 4-byte little-endian length followed by a protobuf `Envelope`. A client's
//! binary messages are joined into one buffer and frames are decoded while a whole one is there, so a
//! message may hold several frames, or one frame may span several messages. Towards the client, every
//! envelope is one binary message holding its length and body (split over several messages only when
//! it exceeds the client's 16 MiB frame limit). The server never sends text frames or pings with a
//! payload: the official client feeds every message into its framing buffer.
//!
//! Limits: a frame up to the hard cap is decoded and handed to the protocol (which answers `error` to
//! one over `max_message_bytes`); a frame that declares a length over the hard cap closes the connection
//! with status 1009 and a reason naming the sizes, before its body is read.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use flowkeep_protocol::{wire, ConnectionInfo, Inbound};
use futures_util::{SinkExt, StreamExt};
use prost::bytes::{Buf, Bytes, BytesMut};
use prost::Message as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::transport::{ConnectionHandler, Shutdown, TransportLimits, WS_CLIENT_MAX_FRAME_BYTES};

/// The path OpenIAP clients connect to.
pub const PATH: &str = "/ws/v2";

/// Size of the length prefix of a frame.
const PREFIX: usize = 4;

/// How long writing one batch of envelopes may take before the client counts as not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket close code "message too big".
const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code "going away" (server shutdown).
const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code "protocol error".
const CLOSE_PROTOCOL: u16 = 1002;
/// WebSocket close code "normal closure".
const CLOSE_NORMAL: u16 = 1000;

/// A framing violation that ends the connection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix declares more than the hard cap.
    #[error("frame of {declared} bytes exceeds the limit of {cap} bytes")]
    TooLarge {
        /// The declared length.
        declared: usize,
        /// The hard cap.
        cap: usize,
    },
}

/// Joins a client's binary messages and cuts them into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    hard_cap: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames over `hard_cap` bytes.
    pub fn new(hard_cap: usize) -> FrameDecoder {
        FrameDecoder { buf: BytesMut::new(), hard_cap }
    }

    /// Appends a received message.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, if one is buffered. An undecodable body gives [`Inbound::Malformed`] (the
    /// frame boundary is known, so the stream stays in sync); an over-cap length is an error.
    pub fn next_frame(&mut self) -> Result<Option<Inbound>, FrameError> {
        if self.buf.len() < PREFIX {
            return Ok(None);
        }
        let declared = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if declared > self.hard_cap {
            return Err(FrameError::TooLarge { declared, cap: self.hard_cap });
        }
        if self.buf.len() < PREFIX + declared {
            // Memory grows with what the client actually sent, never with what it declared.
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        let body = self.buf.split_to(declared).freeze();
        Ok(Some(decode_envelope(body)))
    }
}

fn decode_envelope(body: Bytes) -> Inbound {
    let size = body.len();
    match wire::Envelope::decode(body) {
        Ok(envelope) => Inbound::Envelope { envelope, size },
        Err(e) => Inbound::Malformed(format!("undecodable envelope of {size} bytes: {e}")),
    }
}

/// Encodes an envelope as one frame (length prefix and body).
pub fn encode_frame(envelope: &wire::Envelope) -> Option<Bytes> {
    let len = envelope.encoded_len();
    let Ok(prefix) = u32::try_from(len) else {
        tracing::error!(len, "envelope too large to frame; dropped");
        return None;
    };
    let mut buf = Vec::with_capacity(PREFIX + len);
    buf.extend_from_slice(&prefix.to_le_bytes());
    // A Vec grows as needed, so encoding cannot run out of room.
    envelope.encode(&mut buf).ok()?;
    Some(Bytes::from(buf))
}

/// Splits an encoded frame into the binary messages sent for it: one, unless it exceeds the client's
/// frame limit.
fn messages(frame: Bytes) -> impl Iterator<Item = Message> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = rest.len().min(WS_CLIENT_MAX_FRAME_BYTES);
        Some(Message::Binary(rest.split_to(take)))
    })
}

struct WsState<H> {
    handler: Arc<H>,
    limits: TransportLimits,
    shutdown: Shutdown,
}

/// The `/ws/v2` route, handing each connection to `handler`. Serve it with connection info
/// (`into_make_service_with_connect_info::<SocketAddr>`), as [`crate::serve_http`] does.
pub fn router<H: ConnectionHandler>(handler: Arc<H>, limits: TransportLimits, shutdown: Shutdown) -> Router {
    let state = Arc::new(WsState { handler, limits, shutdown });
    Router::new().route(PATH, get(upgrade::<H>)).with_state(state)
}

async fn upgrade<H: ConnectionHandler>(
    State(state): State<Arc<WsState<H>>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    // The library's own limits sit just above the hard cap, so an over-cap frame is normally refused by
    // our check of its length prefix, with a close reason, rather than by the library.
    let limit = state.limits.hard_cap_bytes.saturating_add(PREFIX);
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| connection(socket, state, remote))
}

/// Why the reader stopped, told to the writer.
struct Closing {
    frame: CloseFrame,
    /// Close now (framing violation) instead of first sending the replies still pending.
    immediate: bool,
}

async fn connection<H: ConnectionHandler>(socket: WebSocket, state: Arc<WsState<H>>, remote: SocketAddr) {
    let capacity = state.handler.channel_capacity();
    let (inbound_tx, inbound_rx) = mpsc::channel::<Inbound>(capacity);
    let (outbound_tx, mut outbound_rx) = mpsc::channel::<wire::Envelope>(capacity);
    let info = ConnectionInfo {
        transport: "websocket",
        remote: Some(remote),
        max_outbound_bytes: state.limits.hard_cap_bytes,
    };
    let inbound = tokio_stream::wrappers::ReceiverStream::new(inbound_rx).boxed();
    let session = tokio::spawn(state.handler.clone().serve(info, inbound, outbound_tx));

    let (mut sink, stream) = socket.split();
    let (closing_tx, mut closing_rx) = oneshot::channel::<Closing>();
    let reader = tokio::spawn(read_frames(stream, inbound_tx, closing_tx, state.limits, state.shutdown.clone()));

    // The writer: replies, pings and events until the session ends (or the client is gone).
    let mut close_with = CloseFrame { code: CLOSE_NORMAL, reason: Utf8Bytes::from_static("") };
    let mut reader_done = false;
    loop {
        tokio::select! {
            next = outbound_rx.recv() => {
                let Some(envelope) = next else { break };
                let written = tokio::time::timeout(WRITE_TIMEOUT, write_batch(&mut sink, envelope, &mut outbound_rx)).await;
                if !matches!(written, Ok(Ok(()))) {
                    // Gone, or not reading at all (its TCP window stays shut): stop serving it.
                    tracing::debug!(%remote, "websocket client gone or not reading; dropping the connection");
                    reader.abort();
                    session.abort();
                    return;
                }
            }
            closing = &mut closing_rx, if !reader_done => {
                reader_done = true;
                if let Ok(closing) = closing {
                    close_with = closing.frame;
                    if closing.immediate {
                        break;
                    }
                }
            }
        }
    }
    drop(outbound_rx);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = sink.send(Message::Close(Some(close_with))).await;
        let _ = sink.close().await;
    })
    .await;
    reader.abort();
    // The session ends by itself once its inbound and outbound are gone; dropping the handle detaches it.
    drop(session);
}

/// Writes `first` and whatever else is already queued, then flushes once.
async fn write_batch(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    first: wire::Envelope,
    queue: &mut mpsc::Receiver<wire::Envelope>,
) -> Result<(), axum::Error> {
    let mut next = Some(first);
    let mut written = 0usize;
    while let Some(envelope) = next.take() {
        if let Some(frame) = encode_frame(&envelope) {
            written += frame.len();
            for message in messages(frame) {
                sink.feed(message).await?;
            }
        }
        // Bound one batch so a large backlog is flushed in pieces.
        if written < 1024 * 1024 {
            next = queue.try_recv().ok();
        }
    }
    sink.flush().await
}

async fn read_frames(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    inbound: mpsc::Sender<Inbound>,
    closing: oneshot::Sender<Closing>,
    limits: TransportLimits,
    shutdown: Shutdown,
) {
    let mut decoder = FrameDecoder::new(limits.hard_cap_bytes);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = &mut stop => {
                let frame = CloseFrame { code: CLOSE_GOING_AWAY, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = closing.send(Closing { frame, immediate: false });
                return;
            }
        };
        let data = match message {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Text(_))) => {
                let text = "text frames are not part of the protocol: send binary frames".to_string();
                if inbound.send(Inbound::Malformed(text)).await.is_err() {
                    return;
                }
                continue;
            }
            // Pings are answered by the library; pongs carry nothing for us.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None => return,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket read failed");
                let text = e.to_string();
                // The library refuses messages over its size limit with a "space limit" error.
                let code = if text.to_ascii_lowercase().contains("limit") { CLOSE_TOO_BIG } else { CLOSE_PROTOCOL };
                let frame = CloseFrame { code, reason: Utf8Bytes::from(close_reason(&text)) };
                let _ = closing.send(Closing { frame, immediate: true });
                return;
            }
        };
        decoder.push(&data);
        loop {
            match decoder.next_frame() {
                Ok(Some(item)) => {
                    if inbound.send(item).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "closing a websocket connection");
                    let frame =
                        CloseFrame { code: CLOSE_TOO_BIG, reason: Utf8Bytes::from(close_reason(&e.to_string())) };
                    let _ = closing.send(Closing { frame, immediate: true });
                    return;
                }
            }
        }
    }
}

/// A close reason fits in 123 bytes (the control-frame limit minus the code).
fn close_reason(text: &str) -> String {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(command: &str, id: &str) -> wire::Envelope {
        wire::Envelope { command: command.into(), id: id.into(), ..Default::default() }
    }

    fn command(item: Option<Inbound>) -> String {
        match item {
            Some(Inbound::Envelope { envelope, .. }) => envelope.command,
            other => panic!("expected an envelope, got {other:?}"),
        }
    }

    #[test]
    fn frames_join_and_split_across_messages() {
        let a = encode_frame(&envelope("getelement", "1")).unwrap();
        let b = encode_frame(&envelope("signin", "2")).unwrap();
        let mut decoder = FrameDecoder::new(1024);
        let mut both = a.to_vec();
        both.extend_from_slice(&b);
        decoder.push(&both);
        assert_eq!(command(decoder.next_frame().unwrap()), "getelement");
        assert_eq!(command(decoder.next_frame().unwrap()), "signin");
        assert!(decoder.next_frame().unwrap().is_none());

        // One frame in three pieces, the length prefix itself cut in two.
        decoder.push(&b[..2]);
        assert!(decoder.next_frame().unwrap().is_none());
        decoder.push(&b[2..7]);
        assert!(decoder.next_frame().unwrap().is_none());
        decoder.push(&b[7..]);
        assert_eq!(command(decoder.next_frame().unwrap()), "signin");
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn sizes_are_reported_and_the_cap_is_enforced_from_the_prefix() {
        let e = envelope("query", "7");
        let frame = encode_frame(&e).unwrap();
        let mut decoder = FrameDecoder::new(frame.len() - PREFIX);
        decoder.push(&frame);
        match decoder.next_frame().unwrap() {
            Some(Inbound::Envelope { size, .. }) => assert_eq!(size, e.encoded_len()),
            other => panic!("{other:?}"),
        }
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&100u32.to_le_bytes());
        assert_eq!(decoder.next_frame().unwrap_err(), FrameError::TooLarge { declared: 100, cap: 16 });
    }

    #[test]
    fn garbage_is_malformed_but_keeps_the_stream_in_sync() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&3u32.to_le_bytes());
        decoder.push(&[0xff, 0xff, 0xff]);
        decoder.push(&encode_frame(&envelope("pong", "3")).unwrap());
        assert!(matches!(decoder.next_frame().unwrap(), Some(Inbound::Malformed(_))));
        assert_eq!(command(decoder.next_frame().unwrap()), "pong");
    }

    #[test]
    fn large_frames_are_split_into_client_sized_messages() {
        let frame = Bytes::from(vec![7u8; WS_CLIENT_MAX_FRAME_BYTES * 2 + 10]);
        let sizes: Vec<usize> = messages(frame)
            .map(|m| match m {
                Message::Binary(b) => b.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, [WS_CLIENT_MAX_FRAME_BYTES, WS_CLIENT_MAX_FRAME_BYTES, 10]);
        assert_eq!(messages(Bytes::from_static(b"abcd")).count(), 1);
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(close_reason(&"é".repeat(100)).len(), 122);
        assert_eq!(close_reason("short"), "short");
    }
}
