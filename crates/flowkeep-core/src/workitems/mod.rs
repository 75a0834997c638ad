//! Workitem queues and their items (reference: security model §8, protocol §4.8), on the document store.
//!
//! # Data
//!
//! * A **queue** is an `mq` document with `_type: "workitemqueue"`: `name` (unique among workitem
//!   queues), `maxretries` (below 1 means 3), `retrydelay` and `initialdelay` (seconds), `workflowid`,
//!   `robotqueue`, `amqpqueue`, `projectid`, `packageid`, `usersrole`, `success_wiq`/`success_wiqid`,
//!   `failed_wiq`/`failed_wiqid`. Its ACL decides who may use it ([`flowkeep_security::policy`]).
//! * An **item** is a `workitems` document with `_type: "workitem"`: `wiq`, `wiqid`, `name`, `payload`
//!   (always an object; anything else is wrapped as `{value: …}`), `priority` (default 2, lower pops
//!   first), `state` (`new`, `processing`, `successful`, `failed`; `retry` is a request, never stored),
//!   `retries`, `nextrun` (only while `new`), `lastrun`, `userid`/`username` of the consumer,
//!   `errormessage`/`errortype`/`errorsource`, per-item `success_wiq*`/`failed_wiq*`, `files:
//!   [{name, filename, _id}]` and, while processing, `lease: {until, token}`. Its ACL is the queue's at
//!   push time (plus the creator and `admins`, by the usual normalisation).
//! * Item **files** live in the default file bucket with metadata `{wi, wiq, wiqid, uniquename}` and the
//!   queue's ACL ([`files`]).
//!
//! # Who does what
//!
//! Every decision is asked of `flowkeep_security::policy` (`authorize_workitem_*`). Queues are read and
//! written with the caller's scope through the document commands. Items are found with the caller's
//! scope; pushes are inserted as the caller; pops and updates are written on a named system path (the
//! reference saves them with the root token: a consumer needs invoke, not update, on the item), so their
//! `_modifiedby` is root while `userid`/`username` name the consumer.
//!
//! # Atomic pop
//!
//! [`Platform::pop_workitem`] reads the first ready candidates (state `new`, `nextrun <= now`, sorted by
//! `priority`, `nextrun`, `_id`) and claims one with an update guarded by `{_id, state: "new",
//! _version}`: of two consumers racing for one item exactly one write matches; the loser moves on to the
//! next candidate. No lock is held.
//!
//! # Leases (beyond the reference)
//!
//! A popped item carries `lease: {until, token}`: `until` is now + [`PlatformConfig::workitem_lease`],
//! `token` a random fencing token. [`Platform::expire_workitem_leases`] (housekeeping) puts items whose
//! lease ran out back as a retry. An update carrying a token that is not the item's current one is refused
//! with [`CoreError::Conflict`]. The token is taken from [`WorkitemUpdate::lease_token`] or, for clients
//! that only echo the payload back (the OpenIAP wire `Workitem` has no lease field), from
//! `payload._lease.token` ([`LEASE_PAYLOAD_FIELD`]); `_lease` is never stored in the payload.
//!
//! # Telling the broker
//!
//! When a queue with an `amqpqueue` gets a ready item (a push or a retry whose `nextrun` has come, a copy
//! chained into it), a [`WorkitemReady`] is sent on [`Platform::subscribe_workitem_ready`]; the server
//! forwards it to the broker, which tells that AMQP queue. Items whose `nextrun` lies in the future are
//! announced by [`Platform::announce_ready_workitem_queues`], which the server calls periodically (the
//! reference's queue monitoring, §8.3).
//!
//! [`PlatformConfig::workitem_lease`]: crate::PlatformConfig::workitem_lease

mod files;
mod items;
mod queues;

pub use items::{NewWorkitem, WorkitemUpdate};
pub use queues::WorkitemQueueSpec;

use crate::error::{CoreError, Result};
use crate::platform::Platform;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tokio::sync::broadcast;

/// The collection of queues.
pub const MQ: &str = flowkeep_security::policy::MQ_COLLECTION;
/// The collection of workitems.
pub const WORKITEMS: &str = flowkeep_security::policy::WORKITEMS_COLLECTION;
/// `_type` of a workitem queue.
pub const QUEUE_TYPE: &str = "workitemqueue";
/// `_type` of a workitem.
pub const ITEM_TYPE: &str = "workitem";

/// Fields of `workitems` every pop, lease sweep and readiness check selects on by equality; indexing them
/// lets the store read only one queue's items in one state instead of the whole collection.
const ITEM_INDEXES: [&str; 2] = ["wiqid", "state"];

/// Creates the `workitems` indexes (idempotent; called when the core opens).
pub(crate) async fn ensure_item_indexes(store: &dyn flowkeep_store::Store) -> Result<()> {
    for field in ITEM_INDEXES {
        let keys = serde_json::json!({ field: 1 });
        store.create_index(WORKITEMS, &keys, &flowkeep_store::IndexOptions::default()).await?;
    }
    Ok(())
}
/// The default `priority` of an item.
pub const DEFAULT_PRIORITY: i64 = 2;
/// `maxretries` of a queue asking for less than 1.
pub const DEFAULT_MAX_RETRIES: i64 = 3;
/// The payload field a client may echo the lease in (see the module docs).
pub const LEASE_PAYLOAD_FIELD: &str = "_lease";
/// How many [`WorkitemReady`] notices wait for a slow subscriber before the oldest are dropped.
pub const WORKITEM_READY_CAPACITY: usize = 1024;
/// The most items one `push_workitems` may carry.
pub const MAX_PUSH_ITEMS: usize = 1000;
/// The most files one item may carry.
pub const MAX_ITEM_FILES: usize = 100;

/// The state of a workitem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkitemState {
    /// Waiting to be popped (once `nextrun` has come).
    New,
    /// Popped, leased to a consumer.
    Processing,
    /// Done.
    Successful,
    /// Given up.
    Failed,
    /// A request only: run it again later (stored as `new`, or `failed` past `maxretries`).
    Retry,
}

impl WorkitemState {
    /// Parses a state as clients send it (any case).
    pub fn parse(s: &str) -> Result<WorkitemState> {
        match s.trim().to_ascii_lowercase().as_str() {
            "new" => Ok(WorkitemState::New),
            "processing" => Ok(WorkitemState::Processing),
            "successful" => Ok(WorkitemState::Successful),
            "failed" => Ok(WorkitemState::Failed),
            "retry" => Ok(WorkitemState::Retry),
            other => Err(CoreError::InvalidRequest(format!(
                "state: '{other}' is not one of new, processing, successful, failed, retry"
            ))),
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkitemState::New => "new",
            WorkitemState::Processing => "processing",
            WorkitemState::Successful => "successful",
            WorkitemState::Failed => "failed",
            WorkitemState::Retry => "retry",
        }
    }
}

/// Names a queue as the wire does: by `_id` (`wiqid`, preferred when set) or by `name` (`wiq`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueRef {
    /// The queue's `_id`, or empty.
    pub id: String,
    /// The queue's name, or empty.
    pub name: String,
}

impl QueueRef {
    /// The queue with this `_id`.
    pub fn id(id: impl Into<String>) -> QueueRef {
        QueueRef { id: id.into(), name: String::new() }
    }

    /// The queue with this name.
    pub fn name(name: impl Into<String>) -> QueueRef {
        QueueRef { id: String::new(), name: name.into() }
    }

    /// The queue named by wire fields `wiqid` and `wiq` (either may be empty).
    pub fn from_wire(wiqid: &str, wiq: &str) -> QueueRef {
        QueueRef { id: wiqid.trim().into(), name: wiq.trim().into() }
    }

    fn is_empty(&self) -> bool {
        self.id.is_empty() && self.name.is_empty()
    }
}

/// A file of a workitem as a request carries it: inline bytes (gzip or zlib when `compressed`), or a
/// reference to a stored file by `id`. In `update_workitem`, an entry with neither deletes the item's
/// file with that name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkitemFile {
    /// The file's name; the item records it as `name`, and its base name as `filename`.
    pub filename: String,
    /// The `_id` of a stored file, or empty (`"findme"`, which the OpenIAP client sends with inline
    /// files, counts as empty).
    pub id: String,
    /// Inline content, or empty.
    pub file: Vec<u8>,
    /// `file` is gzip (or zlib) compressed.
    pub compressed: bool,
}

/// A workitem queue has ready items: the broker should tell `amqpqueue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkitemReady {
    /// The queue's name.
    pub queue: String,
    /// The queue's `_id`.
    pub queue_id: String,
    /// The AMQP queue to tell (lower-cased, as queue names are).
    pub amqpqueue: String,
    /// The queue's `packageid`, passed on to the consumer (empty when none).
    pub packageid: String,
}

impl Platform {
    /// Subscribes to [`WorkitemReady`] notices (see the module docs). A subscriber that falls more than
    /// [`WORKITEM_READY_CAPACITY`] behind loses the oldest notices (`RecvError::Lagged`).
    pub fn subscribe_workitem_ready(&self) -> broadcast::Receiver<WorkitemReady> {
        self.workitem_ready.subscribe()
    }

    /// Sends a [`WorkitemReady`] for `queue` if it has an `amqpqueue`; nobody listening is fine.
    pub(crate) fn notify_ready(&self, queue: &Value) {
        let amqpqueue = text(queue, "amqpqueue");
        if amqpqueue.is_empty() {
            return;
        }
        let notice = WorkitemReady {
            queue: text(queue, "name"),
            queue_id: text(queue, "_id"),
            amqpqueue: amqpqueue.to_lowercase(),
            packageid: text(queue, "packageid"),
        };
        let _ = self.workitem_ready.send(notice);
    }
}

/// A string field, or empty.
pub(crate) fn text(doc: &Value, field: &str) -> String {
    doc.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// An integer field (integral doubles too), or `default`.
pub(crate) fn int(doc: &Value, field: &str, default: i64) -> i64 {
    match doc.get(field) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
    .unwrap_or(default)
}

/// The stored form of a time: ISO-8601 UTC with milliseconds, so stored times compare as strings too.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `t` plus `seconds` (negative counts as 0; absurd values are capped at 100 years).
pub(crate) fn plus_seconds(t: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let seconds = seconds.clamp(0, 100 * 365 * 24 * 3600);
    t + chrono::Duration::seconds(seconds)
}

/// Parses a client's time (RFC 3339) into the stored form.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CoreError::InvalidRequest(format!("{field}: '{s}' is not an RFC 3339 time")))
}

/// The `_id` of a document, or empty.
pub(crate) fn id_of(doc: &Value) -> String {
    text(doc, "_id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_parse_in_any_case() {
        assert_eq!(WorkitemState::parse(" Retry ").ok(), Some(WorkitemState::Retry));
        assert_eq!(WorkitemState::parse("successful").ok().map(WorkitemState::as_str), Some("successful"));
        assert!(WorkitemState::parse("done").is_err());
    }

    #[test]
    fn fields_and_times() {
        let doc = json!({"a": 3, "b": 2.0, "c": "x", "d": f64::MAX});
        assert_eq!(int(&doc, "a", 0), 3);
        assert_eq!(int(&doc, "b", 0), 2);
        assert_eq!(int(&doc, "c", 7), 7);
        assert_eq!(text(&doc, "c"), "x");
        assert_eq!(text(&doc, "a"), "");
        let t = parse_time("nextrun", "2024-01-02T03:04:05+01:00").ok();
        assert_eq!(t.map(iso).as_deref(), Some("2024-01-02T02:04:05.000Z"));
        assert!(parse_time("nextrun", "yesterday").is_err());
        let t0 = parse_time("t", "2024-01-01T00:00:00Z").unwrap_or_default();
        assert_eq!(plus_seconds(t0, -5), t0);
        assert_eq!(iso(plus_seconds(t0, 61)), "2024-01-01T00:01:01.000Z");
        assert_eq!(QueueRef::from_wire(" i ", "n"), QueueRef { id: "i".into(), name: "n".into() });
    }
}
