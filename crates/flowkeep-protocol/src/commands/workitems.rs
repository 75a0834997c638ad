//! Work-item commands: `addworkitemqueue`, `updateworkitemqueue`, `deleteworkitemqueue`, `pushworkitem`,
//! `pushworkitems`, `popworkitem`, `updateworkitem` and `deleteworkitem`, mapped onto
//! `flowkeep_core::workitems` (every rule — rights, states, retries, leases, files — is the core's).
//!
//! # Mapping between the wire and the core
//!
//! * **Queues.** `WorkItemQueue` ↔ the `mq` document: `id` ↔ `_id`, the settings by name, `acl` ↔
//!   `_acl` (`{_id, rights, deny}`; an empty `acl` on update keeps the stored ACL), `createdby*`,
//!   `modifiedby*`, `created`/`modified` and `version` from the document's `_created…`/`_modified…`/
//!   `_version`. `addworkitemqueue` and `updateworkitemqueue` always answer with the stored queue (the
//!   official client requires it). `updateworkitemqueue` finds the queue by `id` when it is set (so a
//!   rename works), else by `name`; `skiprole` only matters when adding.
//! * **Queue names in requests.** `wiqid` wins over `wiq` when both are set.
//! * **Payloads** travel as JSON text and are parsed here; an empty payload is `{}` and a non-object is
//!   stored as `{value: …}` (by the core). Replies carry the stored payload; a popped or updated item's
//!   payload includes `_lease: {until, token}`, which a client echoes back with its update to prove it
//!   still holds the item.
//! * **Zero means unset.** Protobuf cannot tell 0 or `""` from "not sent", so: `priority` 0 is the
//!   default priority 2 on push and "keep" on update (give a negative number to pop before the
//!   default); on update an empty `name`, `payload`, `state`, `errormessage`, `errortype`,
//!   `errorsource` keeps the stored value, and empty `success_wiq`+`success_wiqid` (likewise failed)
//!   keep the stored target. A `nextrun` of exactly the Unix epoch counts as not sent.
//! * **Times** are `google.protobuf.Timestamp` on the wire and RFC 3339 text in the core; a timestamp
//!   outside what RFC 3339 can say (or with nanos outside 0..1e9) is a 400 naming the field.
//! * **`pushworkitems`**: each item's own `priority`, `nextrun` and success/failed queue win over the
//!   request's; the items' `wiq`/`wiqid` are ignored (the request names the queue). All or nothing.
//! * **Files.** `WorkitemFile{filename, id, file, compressed}` ↔ the core's `WorkitemFile`; inline bytes
//!   are gzip (or zlib) when `compressed`, and `id: "findme"` (what the client sends with inline files)
//!   counts as no id; an entry with no name, bytes nor id (the official client sends one for a local
//!   file it could not find) is left out. Replies list files as `{filename, id}` without bytes, except
//!   `popworkitem` with `includefiles`: each file's content is inlined (zlib when the request says
//!   `compressed`), as far as it fits in this connection's reply limit; a file that does not fit, or
//!   cannot be read, is listed by `id` only (the official client downloads every file with an `id` after
//!   a pop anyway), so the popped item is never lost to an oversized reply.
//! * **`updateworkitem` files**: the files of the request's `workitem` come first, then the request's
//!   `files`, reconciled by file name by the core (bytes upload or replace, an `id` alone references, a
//!   bare `filename` removes). Bytes on a `workitem.files` entry that also has a real `id` are the copy
//!   `includefiles` handed out and are not uploaded again.
//! * **`popworkitem`** on an empty queue answers `workitem: None`, not an error.
//!
//! The inline zlib stream of `includefiles` is written with stored (uncompressed) deflate blocks: it is a
//! valid zlib stream for every inflater, without a compression dependency in this crate.

use crate::codec::{decode, json_field, to_json, ProtocolError, Result, WireMessage};
use crate::commands::reply_command;
use crate::connection::{Connection, Reply};
use crate::wire;
use chrono::{DateTime, SecondsFormat, Utc};
use flowkeep_core::workitems::{NewWorkitem, QueueRef, WorkitemFile, WorkitemQueueSpec, WorkitemUpdate};
use flowkeep_core::Caller;
use prost::Message;
use prost_types::Timestamp;
use serde_json::{json, Value};

macro_rules! workitem_messages {
    ($($t:ident),* $(,)?) => {
        $(impl WireMessage for wire::$t { const NAME: &'static str = stringify!($t); })*
    };
}

workitem_messages!(
    AddWorkItemQueueRequest,
    AddWorkItemQueueResponse,
    UpdateWorkItemQueueRequest,
    UpdateWorkItemQueueResponse,
    DeleteWorkItemQueueRequest,
    DeleteWorkItemQueueResponse,
    PushWorkitemRequest,
    PushWorkitemResponse,
    PushWorkitemsRequest,
    PushWorkitemsResponse,
    PopWorkitemRequest,
    PopWorkitemResponse,
    UpdateWorkitemRequest,
    UpdateWorkitemResponse,
    DeleteWorkitemRequest,
    DeleteWorkitemResponse,
);

/// What the OpenIAP client sends as `_id` of an inline file.
const FINDME: &str = "findme";

/// Bytes reserved for the envelope around a reply (command, ids, `Any` type URL, field tags).
const ENVELOPE_OVERHEAD: usize = 512;

// ---------------------------------------------------------------------------------------------------
// Queues

/// `addworkitemqueue`.
pub(crate) async fn add_queue(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::AddWorkItemQueueRequest = decode(envelope)?;
    let queue = request.workitemqueue.ok_or_else(|| ProtocolError::field("workitemqueue", "is required"))?;
    let spec = queue_spec(&queue);
    let stored = conn.hub.platform.add_workitem_queue(caller, &spec, request.skiprole).await?;
    let reply = wire::AddWorkItemQueueResponse { workitemqueue: Some(queue_to_wire(&stored)) };
    Ok(Reply::new(&reply_command(envelope), &reply))
}

/// `updateworkitemqueue`: the queue is found by `_id` when given (so it can be renamed), else by name.
pub(crate) async fn update_queue(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::UpdateWorkItemQueueRequest = decode(envelope)?;
    let queue = request.workitemqueue.ok_or_else(|| ProtocolError::field("workitemqueue", "is required"))?;
    let target =
        if queue.id.trim().is_empty() { QueueRef::name(queue.name.trim()) } else { QueueRef::id(queue.id.trim()) };
    let spec = queue_spec(&queue);
    let stored = conn.hub.platform.update_workitem_queue(caller, &target, &spec, request.purge).await?;
    let reply = wire::UpdateWorkItemQueueResponse { workitemqueue: Some(queue_to_wire(&stored)) };
    Ok(Reply::new(&reply_command(envelope), &reply))
}

/// `deleteworkitemqueue`.
pub(crate) async fn delete_queue(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DeleteWorkItemQueueRequest = decode(envelope)?;
    let queue = QueueRef::from_wire(&request.wiqid, &request.wiq);
    conn.hub.platform.delete_workitem_queue(caller, &queue, request.purge).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::DeleteWorkItemQueueResponse {}))
}

/// The core's queue settings from a wire queue.
fn queue_spec(queue: &wire::WorkItemQueue) -> WorkitemQueueSpec {
    let acl = (!queue.acl.is_empty()).then(|| {
        Value::Array(
            queue
                .acl
                .iter()
                .map(|ace| {
                    let mut entry = json!({"_id": ace.id, "rights": ace.rights});
                    if ace.deny {
                        entry["deny"] = Value::Bool(true);
                    }
                    entry
                })
                .collect(),
        )
    });
    WorkitemQueueSpec {
        name: queue.name.clone(),
        maxretries: i64::from(queue.maxretries),
        retrydelay: i64::from(queue.retrydelay),
        initialdelay: i64::from(queue.initialdelay),
        workflowid: queue.workflowid.clone(),
        robotqueue: queue.robotqueue.clone(),
        amqpqueue: queue.amqpqueue.clone(),
        projectid: queue.projectid.clone(),
        packageid: queue.packageid.clone(),
        success_wiq: queue.success_wiq.clone(),
        success_wiqid: queue.success_wiqid.clone(),
        failed_wiq: queue.failed_wiq.clone(),
        failed_wiqid: queue.failed_wiqid.clone(),
        acl,
    }
}

/// A stored queue as the wire's `WorkItemQueue`.
fn queue_to_wire(doc: &Value) -> wire::WorkItemQueue {
    let acl = flowkeep_security::parse_stored_acl(doc.get("_acl"))
        .into_iter()
        .map(|ace| wire::Ace { id: ace.id, deny: ace.deny, rights: i32::from_ne_bytes(ace.rights.0.to_ne_bytes()) })
        .collect();
    wire::WorkItemQueue {
        workflowid: text(doc, "workflowid"),
        robotqueue: text(doc, "robotqueue"),
        amqpqueue: text(doc, "amqpqueue"),
        projectid: text(doc, "projectid"),
        usersrole: text(doc, "usersrole"),
        maxretries: int32(doc, "maxretries"),
        retrydelay: int32(doc, "retrydelay"),
        initialdelay: int32(doc, "initialdelay"),
        success_wiqid: text(doc, "success_wiqid"),
        failed_wiqid: text(doc, "failed_wiqid"),
        success_wiq: text(doc, "success_wiq"),
        failed_wiq: text(doc, "failed_wiq"),
        id: text(doc, "_id"),
        acl,
        name: text(doc, "name"),
        createdbyid: text(doc, "_createdbyid"),
        createdby: text(doc, "_createdby"),
        created: timestamp(doc, "_created"),
        modifiedbyid: text(doc, "_modifiedbyid"),
        modifiedby: text(doc, "_modifiedby"),
        modified: timestamp(doc, "_modified"),
        version: int32(doc, "_version"),
        packageid: text(doc, "packageid"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Items

/// `pushworkitem`.
pub(crate) async fn push(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::PushWorkitemRequest = decode(envelope)?;
    let queue = QueueRef::from_wire(&request.wiqid, &request.wiq);
    let item = NewWorkitem {
        name: request.name,
        payload: payload("payload", &request.payload)?,
        priority: priority(request.priority),
        nextrun: optional_time("nextrun", request.nextrun.as_ref())?,
        files: core_files(request.files),
        success_wiq: request.success_wiq,
        success_wiqid: request.success_wiqid,
        failed_wiq: request.failed_wiq,
        failed_wiqid: request.failed_wiqid,
    };
    let stored = conn.hub.platform.push_workitem(caller, &queue, item).await?;
    let reply = wire::PushWorkitemResponse { workitem: Some(item_to_wire(&stored)) };
    Ok(Reply::new(&reply_command(envelope), &reply))
}

/// `pushworkitems`: all or nothing; each item's own settings win over the request's.
pub(crate) async fn push_many(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::PushWorkitemsRequest = decode(envelope)?;
    let queue = QueueRef::from_wire(&request.wiqid, &request.wiq);
    let default_nextrun = optional_time("nextrun", request.nextrun.as_ref())?;
    let mut items = Vec::with_capacity(request.items.len());
    for (index, item) in request.items.into_iter().enumerate() {
        let at = |source: ProtocolError| ProtocolError::Item { index, source: Box::new(source) };
        let nextrun = optional_time("nextrun", item.nextrun.as_ref()).map_err(at)?.or_else(|| default_nextrun.clone());
        let (success_wiq, success_wiqid) = if item.success_wiq.trim().is_empty() && item.success_wiqid.trim().is_empty()
        {
            (request.success_wiq.clone(), request.success_wiqid.clone())
        } else {
            (item.success_wiq, item.success_wiqid)
        };
        let (failed_wiq, failed_wiqid) = if item.failed_wiq.trim().is_empty() && item.failed_wiqid.trim().is_empty() {
            (request.failed_wiq.clone(), request.failed_wiqid.clone())
        } else {
            (item.failed_wiq, item.failed_wiqid)
        };
        items.push(NewWorkitem {
            name: item.name,
            payload: payload("payload", &item.payload).map_err(at)?,
            priority: priority(item.priority).or_else(|| priority(request.priority)),
            nextrun,
            files: core_files(item.files),
            success_wiq,
            success_wiqid,
            failed_wiq,
            failed_wiqid,
        });
    }
    let stored = conn.hub.platform.push_workitems(caller, &queue, items).await?;
    let reply = wire::PushWorkitemsResponse { workitems: stored.iter().map(item_to_wire).collect() };
    Ok(Reply::new(&reply_command(envelope), &reply))
}

/// `popworkitem`: `workitem: None` when nothing is ready; with `includefiles`, file contents inline.
pub(crate) async fn pop(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::PopWorkitemRequest = decode(envelope)?;
    let queue = QueueRef::from_wire(&request.wiqid, &request.wiq);
    let platform = conn.hub.platform.clone();
    let Some(stored) = platform.pop_workitem(caller, &queue).await? else {
        return Ok(Reply::new(&reply_command(envelope), &wire::PopWorkitemResponse { workitem: None }));
    };
    let mut item = item_to_wire(&stored);
    if request.includefiles {
        let limit = conn.info.max_outbound_bytes;
        let mut used = item.encoded_len().saturating_add(ENVELOPE_OVERHEAD);
        for file in &mut item.files {
            if file.id.is_empty() {
                continue;
            }
            let content = match platform.download_file(caller, "", Some(&file.id), None).await {
                Ok((_, chunks)) => chunks.concat(),
                Err(e) => {
                    let id = &file.id;
                    tracing::warn!(error = %e, file = %id, "popped item: a file could not be read; listed by id");
                    continue;
                }
            };
            let bytes = if request.compressed { zlib_stored(&content) } else { content };
            // The tag and length prefix of the bytes field are at most 11 bytes.
            let needed = bytes.len().saturating_add(16);
            if used.saturating_add(needed) > limit {
                let (id, size) = (&file.id, bytes.len());
                tracing::debug!(file = %id, size, limit, "popped item: a file is too large to inline; listed by id");
                continue;
            }
            used = used.saturating_add(needed);
            file.file = bytes;
            file.compressed = request.compressed;
        }
    }
    Ok(Reply::new(&reply_command(envelope), &wire::PopWorkitemResponse { workitem: Some(item) }))
}

/// `updateworkitem`.
pub(crate) async fn update(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::UpdateWorkitemRequest = decode(envelope)?;
    let item = request.workitem.ok_or_else(|| ProtocolError::field("workitem", "is required"))?;
    if item.id.trim().is_empty() {
        return Err(ProtocolError::field("workitem._id", "is required"));
    }
    let non_empty = |s: String| (!s.trim().is_empty()).then_some(s);
    let (success_wiq, success_wiqid) = target(item.success_wiq, item.success_wiqid);
    let (failed_wiq, failed_wiqid) = target(item.failed_wiq, item.failed_wiqid);
    let payload = if item.payload.trim().is_empty() { None } else { Some(payload("workitem.payload", &item.payload)?) };
    let mut files: Vec<WorkitemFile> = core_files(item.files)
        .into_iter()
        .map(|mut file| {
            if has_id(&file) {
                // A stored file the pop handed out inline: a reference, not a new upload.
                file.file = Vec::new();
                file.compressed = false;
            }
            file
        })
        .collect();
    files.extend(core_files(request.files));
    let update = WorkitemUpdate {
        id: item.id.trim().to_owned(),
        state: non_empty(item.state),
        name: non_empty(item.name),
        payload,
        priority: priority(item.priority),
        nextrun: optional_time("workitem.nextrun", item.nextrun.as_ref())?,
        errormessage: non_empty(item.errormessage),
        errortype: non_empty(item.errortype),
        errorsource: non_empty(item.errorsource),
        ignoremaxretries: request.ignoremaxretries,
        files,
        success_wiq,
        success_wiqid,
        failed_wiq,
        failed_wiqid,
        lease_token: None,
    };
    let stored = conn.hub.platform.update_workitem(caller, update).await?;
    let reply = wire::UpdateWorkitemResponse { workitem: Some(item_to_wire(&stored)) };
    Ok(Reply::new(&reply_command(envelope), &reply))
}

/// `deleteworkitem`.
pub(crate) async fn delete(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DeleteWorkitemRequest = decode(envelope)?;
    let id = request.id.trim();
    if id.is_empty() {
        return Err(ProtocolError::field("_id", "is required"));
    }
    conn.hub.platform.delete_workitem(caller, id).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::DeleteWorkitemResponse {}))
}

/// A success/failed target of an update: both empty keeps the stored one.
fn target(name: String, id: String) -> (Option<String>, Option<String>) {
    if name.trim().is_empty() && id.trim().is_empty() {
        (None, None)
    } else {
        (Some(name), Some(id))
    }
}

/// A payload field: JSON text, empty meaning `{}` (`null`, which the core stores as `{}`).
fn payload(field: &str, text: &str) -> Result<Value> {
    json_field(field, text, Some(Value::Null))
}

/// A wire priority: 0 is "not set".
fn priority(p: i32) -> Option<i64> {
    (p != 0).then_some(i64::from(p))
}

/// The wire's files as the core's. Entries with neither a name, content nor an id are left out: the
/// official client sends them for a local file it could not find.
fn core_files(files: Vec<wire::WorkitemFile>) -> Vec<WorkitemFile> {
    files
        .into_iter()
        .map(|f| WorkitemFile { filename: f.filename, id: f.id, file: f.file, compressed: f.compressed })
        .filter(|f| !f.filename.trim().is_empty() || !f.file.is_empty() || has_id(f))
        .collect()
}

/// Whether a file names a stored file (`findme` names none).
fn has_id(file: &WorkitemFile) -> bool {
    let id = file.id.trim();
    !id.is_empty() && !id.eq_ignore_ascii_case(FINDME)
}

/// A stored item as the wire's `Workitem` (files without content).
fn item_to_wire(doc: &Value) -> wire::Workitem {
    let files = doc
        .get("files")
        .and_then(Value::as_array)
        .map(|files| files.iter().map(file_to_wire).collect())
        .unwrap_or_default();
    wire::Workitem {
        id: text(doc, "_id"),
        name: text(doc, "name"),
        payload: to_json(doc.get("payload").unwrap_or(&json!({}))),
        priority: int32(doc, "priority"),
        nextrun: timestamp(doc, "nextrun"),
        lastrun: timestamp(doc, "lastrun"),
        files,
        state: text(doc, "state"),
        wiq: text(doc, "wiq"),
        wiqid: text(doc, "wiqid"),
        retries: int32(doc, "retries"),
        username: text(doc, "username"),
        success_wiqid: text(doc, "success_wiqid"),
        failed_wiqid: text(doc, "failed_wiqid"),
        success_wiq: text(doc, "success_wiq"),
        failed_wiq: text(doc, "failed_wiq"),
        errormessage: text(doc, "errormessage"),
        errorsource: text(doc, "errorsource"),
        errortype: text(doc, "errortype"),
    }
}

/// An item's file entry `{name, filename, _id}` as the wire's `WorkitemFile` (no content).
fn file_to_wire(entry: &Value) -> wire::WorkitemFile {
    let filename = match text(entry, "filename") {
        f if f.is_empty() => text(entry, "name"),
        f => f,
    };
    wire::WorkitemFile { filename, id: text(entry, "_id"), compressed: false, file: Vec::new() }
}

// ---------------------------------------------------------------------------------------------------
// Values

/// A string field, or empty.
fn text(doc: &Value, field: &str) -> String {
    doc.get(field).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// An integer field (integral doubles too) clamped to the wire's `int32`, or 0.
fn int32(doc: &Value, field: &str) -> i32 {
    let n = match doc.get(field) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    };
    let n = n.unwrap_or(0).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    i32::try_from(n).unwrap_or_default()
}

/// A stored time (RFC 3339 text) as a protobuf timestamp; `None` when absent or unreadable.
fn timestamp(doc: &Value, field: &str) -> Option<Timestamp> {
    let t = DateTime::parse_from_rfc3339(doc.get(field)?.as_str()?.trim()).ok()?;
    Some(Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) })
}

/// A protobuf timestamp as RFC 3339 text; `None` when absent or the epoch (protobuf's default).
fn optional_time(field: &str, t: Option<&Timestamp>) -> Result<Option<String>> {
    let Some(t) = t.filter(|t| t.seconds != 0 || t.nanos != 0) else { return Ok(None) };
    let nanos = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| ProtocolError::field(field, format!("nanos {} is not within 0..1000000000", t.nanos)))?;
    let time = DateTime::<Utc>::from_timestamp(t.seconds, nanos)
        .ok_or_else(|| ProtocolError::field(field, format!("{} seconds is out of range", t.seconds)))?;
    Ok(Some(time.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

/// `data` as a zlib stream of stored (uncompressed) deflate blocks: what `includefiles` with `compressed`
/// hands out (see the module docs).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 65_535;
    let blocks = data.len().div_ceil(MAX_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + blocks * 5 + 6);
    // CMF: deflate with a 32 KiB window; FLG: no dictionary, fastest level, check bits (0x7801 % 31 == 0).
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(MAX_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        // Each chunk is at most MAX_BLOCK bytes, so its length fits in 16 bits.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// The Adler-32 checksum of `data` (RFC 1950).
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before `b` could overflow 32 bits.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates a stream of stored blocks (enough to check the writer's framing).
    fn unstore(z: &[u8]) -> Option<Vec<u8>> {
        let (header, mut rest) = z.split_at_checked(2)?;
        assert_eq!(u16::from_be_bytes([header[0], header[1]]) % 31, 0, "header check bits");
        let mut out = Vec::new();
        loop {
            let (&flags, tail) = rest.split_first()?;
            let len = usize::from(u16::from_le_bytes([*tail.first()?, *tail.get(1)?]));
            let nlen = u16::from_le_bytes([*tail.get(2)?, *tail.get(3)?]);
            assert_eq!(!nlen as usize, len);
            out.extend_from_slice(tail.get(4..4 + len)?);
            rest = tail.get(4 + len..)?;
            if flags & 1 == 1 {
                break;
            }
        }
        assert_eq!(rest, adler32(&out).to_be_bytes());
        Some(out)
    }

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let big = vec![0xffu8; 100_000];
        let slow = big.iter().fold((1u64, 0u64), |(a, b), &x| {
            let a = (a + u64::from(x)) % 65_521;
            (a, (b + a) % 65_521)
        });
        assert_eq!(adler32(&big), ((slow.1 as u32) << 16) | slow.0 as u32);
    }

    #[test]
    fn zlib_stored_frames_any_size() {
        for size in [0usize, 1, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            assert_eq!(unstore(&zlib_stored(&data)), Some(data), "size {size}");
        }
    }

    #[test]
    fn times_and_numbers() {
        let t = Timestamp { seconds: 1_700_000_000, nanos: 5_000_000 };
        let text = optional_time("nextrun", Some(&t)).ok().flatten();
        assert_eq!(text.as_deref(), Some("2023-11-14T22:13:20.005Z"));
        assert_eq!(timestamp(&json!({"t": text}), "t"), Some(t));
        assert_eq!(optional_time("nextrun", Some(&Timestamp::default())).ok(), Some(None));
        assert!(optional_time("nextrun", Some(&Timestamp { seconds: 1, nanos: -1 })).is_err());
        assert!(optional_time("nextrun", Some(&Timestamp { seconds: i64::MAX, nanos: 0 })).is_err());
        assert_eq!(timestamp(&json!({"t": "yesterday"}), "t"), None);
        assert_eq!(int32(&json!({"n": 1e12}), "n"), i32::MAX);
        assert_eq!(int32(&json!({"n": -3}), "n"), -3);
        assert_eq!(priority(0), None);
        assert_eq!(priority(-1), Some(-1));
    }

    #[test]
    fn queue_and_item_mapping() {
        let wire_queue = wire::WorkItemQueue {
            name: "q".into(),
            maxretries: 4,
            acl: vec![wire::Ace { id: "u1".into(), deny: true, rights: 2 }],
            ..Default::default()
        };
        let spec = queue_spec(&wire_queue);
        assert_eq!((spec.name.as_str(), spec.maxretries), ("q", 4));
        assert_eq!(spec.acl, Some(json!([{"_id": "u1", "rights": 2, "deny": true}])));
        assert_eq!(queue_spec(&wire::WorkItemQueue::default()).acl, None);
        let doc = json!({"_id": "i", "_acl": [{"_id": "u1", "name": "x", "rights": 65535}], "_version": 2,
            "_created": "2024-01-01T00:00:00.000Z", "name": "q", "maxretries": 3});
        let q = queue_to_wire(&doc);
        assert_eq!((q.id.as_str(), q.version, q.maxretries), ("i", 2, 3));
        assert_eq!(q.acl, vec![wire::Ace { id: "u1".into(), deny: false, rights: 65535 }]);
        assert_eq!(q.created.map(|t| t.seconds), Some(1_704_067_200));
        let files = json!([{"name": "d/a.txt", "filename": "a.txt", "_id": "f"}, {"name": "b.txt", "_id": "g"}]);
        let item = json!({"_id": "w", "payload": {"a": 1}, "priority": 2, "files": files});
        let w = item_to_wire(&item);
        assert_eq!(w.payload, r#"{"a":1}"#);
        assert_eq!(
            w.files.iter().map(|f| (f.filename.as_str(), f.id.as_str())).collect::<Vec<_>>(),
            vec![("a.txt", "f"), ("b.txt", "g")]
        );
        assert_eq!(item_to_wire(&json!({})).payload, "{}");
        assert_eq!(target(String::new(), " ".into()), (None, None));
        let files = core_files(vec![
            wire::WorkitemFile::default(),
            wire::WorkitemFile { id: "findme".into(), ..Default::default() },
            wire::WorkitemFile { filename: "a".into(), ..Default::default() },
        ]);
        assert_eq!(files.len(), 1);
        assert!(!has_id(&files[0]));
    }
}
