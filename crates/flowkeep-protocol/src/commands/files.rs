//! Files: `upload` with its `beginstream`/`stream`/`endstream` envelopes, and `download`.
//!
//! **Upload.** The `upload` request is registered as a pending upload (with the caller it runs as)
//! before the next envelope is read; its chunks arrive as stream envelopes whose `rid` is the upload's
//! id and are never answered. At `endstream` the file goes to the core and `uploadreply` answers the
//! upload. An upload over `max_upload_bytes` (or with an oversized or undecodable chunk) is answered
//! with an `error` at once and its remaining chunks are dropped silently. At most
//! [`MAX_PENDING_UPLOADS`] uploads may be open on one connection, holding `max_upload_bytes` together
//! (so one connection buffers at most that much). Chunks for an unknown id are ignored.
//!
//! **Download.** The content goes out as `stream` envelopes (no `beginstream`, each at most 1 MiB and
//! within the transport's message limit) followed directly by `downloadreply`; **no `endstream`** is
//! sent, because the official client closes the download at `endstream` and loses the chunks it has not
//! written yet (see the protocol reference, §4.6).

use crate::codec::{decode, json_object, to_i32, ProtocolError, Result};
use crate::commands::reply_command;
use crate::connection::{Connection, Reply};
use crate::wire;
use flowkeep_core::files::FileUpload;
use flowkeep_core::Caller;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The most uploads one connection may have open at once.
pub const MAX_PENDING_UPLOADS: usize = 4;
/// The largest `stream` chunk sent to a client (the official client's own chunk size).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Room left in an envelope for everything but the chunk bytes.
const ENVELOPE_OVERHEAD: usize = 1024;
/// How many failed upload ids are remembered (so their late chunks are dropped quietly).
const FAILED_REMEMBERED: usize = 32;

struct PendingUpload {
    request: wire::UploadRequest,
    caller: Caller,
    data: Vec<u8>,
    started: Instant,
}

/// The uploads open on a connection.
#[derive(Default)]
pub(crate) struct Uploads {
    pending: HashMap<String, PendingUpload>,
    failed: VecDeque<String>,
}

impl Uploads {
    /// Drops upload `id` (if open) and remembers it as failed; true if it was open.
    pub fn fail(&mut self, id: &str) -> bool {
        let was_open = self.pending.remove(id).is_some();
        if was_open {
            if self.failed.len() >= FAILED_REMEMBERED {
                self.failed.pop_front();
            }
            self.failed.push_back(id.to_owned());
        }
        was_open
    }
}

/// The core's bucket for a wire collection name: `fs.files`, `fs`, `files` and empty all mean `fs`.
fn bucket(collection: &str) -> String {
    let collection = collection.trim();
    collection.strip_suffix(".files").unwrap_or(collection).to_owned()
}

/// `upload`: registers the pending upload; the reply comes at `endstream`.
pub(crate) fn upload(conn: &mut Connection, caller: Caller, envelope: &wire::Envelope) -> Result<()> {
    let request: wire::UploadRequest = decode(envelope)?;
    if request.filename.trim().is_empty() {
        return Err(ProtocolError::field("filename", "is required"));
    }
    json_object("metadata", &request.metadata, Some(Value::Null))?;
    if envelope.id.is_empty() {
        return Err(ProtocolError::field("id", "an upload needs an envelope id (its chunks refer to it)"));
    }
    if conn.uploads.pending.len() >= MAX_PENDING_UPLOADS {
        return Err(ProtocolError::field(
            "upload",
            format!("at most {MAX_PENDING_UPLOADS} uploads may be open on one connection"),
        ));
    }
    let pending = PendingUpload { request, caller, data: Vec::new(), started: Instant::now() };
    conn.uploads.pending.insert(envelope.id.clone(), pending);
    Ok(())
}

/// A `beginstream`, `stream` or `endstream` from the client.
pub(crate) async fn on_stream(conn: &mut Connection, envelope: wire::Envelope) {
    let id = envelope.rid.clone();
    if !conn.uploads.pending.contains_key(&id) {
        if !conn.uploads.failed.contains(&id) {
            tracing::debug!(connection = conn.registry.id(), rid = %id, command = %envelope.command, "stream envelope for no open upload; ignored");
        }
        return;
    }
    match envelope.command.as_str() {
        "beginstream" => {}
        "stream" => {
            let chunk: wire::Stream = match decode(&envelope) {
                Ok(chunk) => chunk,
                Err(e) => {
                    conn.uploads.fail(&id);
                    conn.send_error(&id, &e).await;
                    return;
                }
            };
            let max = conn.hub.config.max_upload_bytes;
            let others: usize = conn.uploads.pending.iter().filter(|(k, _)| **k != id).map(|(_, p)| p.data.len()).sum();
            let Some(pending) = conn.uploads.pending.get_mut(&id) else { return };
            let total = pending.data.len().saturating_add(chunk.data.len());
            if total > max || total.saturating_add(others) > max {
                conn.uploads.fail(&id);
                let error = ProtocolError::TooLarge(if total > max {
                    format!("upload: files larger than {max} bytes are refused")
                } else {
                    format!("upload: the uploads open on this connection may hold at most {max} bytes together")
                });
                conn.send_error(&id, &error).await;
                return;
            }
            pending.data.extend_from_slice(&chunk.data);
        }
        _ => {
            let Some(pending) = conn.uploads.pending.remove(&id) else { return };
            match finish_upload(conn, pending).await {
                Ok(reply) => conn.send_reply(&id, reply).await,
                Err(e) => conn.send_error(&id, &e).await,
            }
        }
    }
}

async fn finish_upload(conn: &mut Connection, pending: PendingUpload) -> Result<Reply> {
    let PendingUpload { request, caller, data, started } = pending;
    let metadata = json_object("metadata", &request.metadata, Some(Value::Null))?;
    let upload = FileUpload {
        bucket: bucket(&request.collectionname),
        filename: request.filename.clone(),
        mimetype: request.mimetype.clone(),
        metadata,
    };
    let stored = conn.hub.platform.upload_file(&caller, upload, data).await?;
    let elapsed = started.elapsed();
    #[allow(clippy::cast_precision_loss)]
    let mb = stored.length as f64 / (1024.0 * 1024.0);
    let seconds = elapsed.as_secs_f64().max(0.001);
    #[allow(clippy::cast_possible_truncation)]
    let response = wire::UploadResponse {
        id: stored.id,
        filename: stored.filename,
        bytes: to_i32(stored.length),
        chunks: to_i32(stored.chunks),
        mb: mb as f32,
        elapsed_time: to_i32(elapsed.as_millis()),
        mbps: (mb / seconds) as f32,
    };
    Ok(Reply::new("uploadreply", &response))
}

/// `download`: chunks first, then the reply (and no `endstream`).
pub(crate) async fn download(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DownloadRequest = decode(envelope)?;
    let id = Some(request.id.trim()).filter(|s| !s.is_empty());
    let filename = Some(request.filename.trim()).filter(|s| !s.is_empty());
    if id.is_none() && filename.is_none() {
        return Err(ProtocolError::field("id", "download needs an id or a filename"));
    }
    let platform = conn.hub.platform.clone();
    let (file, chunks) = platform.download_file(caller, &bucket(&request.collectionname), id, filename).await?;
    let limit = conn.info.max_outbound_bytes.saturating_sub(ENVELOPE_OVERHEAD).clamp(1024, MAX_CHUNK_BYTES);
    for chunk in &chunks {
        for piece in chunk.chunks(limit) {
            let message = wire::Stream { data: piece.to_vec() };
            conn.send(crate::codec::reply("stream", &envelope.id, &message)).await;
        }
    }
    let response = wire::DownloadResponse { id: file.id, filename: file.filename, mimetype: file.mimetype };
    Ok(Reply::new(&reply_command(envelope), &response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(bucket("fs.files"), "fs");
        assert_eq!(bucket(""), "");
        assert_eq!(bucket("files"), "files");
        assert_eq!(bucket("docs.files"), "docs");
    }
}
