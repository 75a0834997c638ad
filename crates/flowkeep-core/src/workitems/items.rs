//! Workitems: push, atomic pop with a lease, update (states, retries, files, chaining), delete, lease
//! expiry and the ready-queue announcement. See the parent module for the rules.

use super::files::{basename, check_files};
use super::queues::queue_timing;
use super::{
    id_of, int, iso, parse_time, plus_seconds, text, QueueRef, WorkitemFile, WorkitemState, DEFAULT_PRIORITY,
    ITEM_TYPE, LEASE_PAYLOAD_FIELD, MAX_PUSH_ITEMS, MQ, QUEUE_TYPE, WORKITEMS,
};
use crate::documents::{version_of, WRITE_RETRIES};
use crate::error::{CoreError, Result};
use crate::platform::Platform;
use crate::scope::store_scope;
use chrono::{DateTime, Utc};
use flowkeep_model::{new_object_id, Rights};
use flowkeep_security::{policy, Caller, SecurityError};
use flowkeep_store::{FindOptions, Scope};
use serde_json::{json, Map, Value};

/// Candidates one pop round reads; racing consumers move down this list instead of re-reading.
const POP_BATCH: usize = 16;
/// Pop rounds before giving up with a `Conflict` (only under extreme contention).
const POP_ROUNDS: usize = 64;
/// Items one lease-expiry round handles.
const EXPIRE_BATCH: usize = 500;
/// The default name of an item.
const DEFAULT_NAME: &str = "New work item";
/// `errorsource` of an item failed by lease expiry.
const LEASE_ERROR_SOURCE: &str = "lease";

/// A workitem to push.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewWorkitem {
    /// Default "New work item".
    pub name: String,
    /// Any JSON; a non-object is stored as `{value: …}`.
    pub payload: Value,
    /// Lower pops first; default [`DEFAULT_PRIORITY`].
    pub priority: Option<i64>,
    /// RFC 3339; default now + the queue's `initialdelay`.
    pub nextrun: Option<String>,
    /// Inline or referenced files.
    pub files: Vec<WorkitemFile>,
    /// Per-item success queue by name, overriding the queue's (`success_wiqid` wins when set).
    pub success_wiq: String,
    /// Per-item success queue by id.
    pub success_wiqid: String,
    /// Per-item failed queue by name, overriding the queue's (`failed_wiqid` wins when set).
    pub failed_wiq: String,
    /// Per-item failed queue by id.
    pub failed_wiqid: String,
}

/// An `updateworkitem` request. `None` leaves a field as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkitemUpdate {
    /// The item's `_id`.
    pub id: String,
    /// `successful`, `failed`, `retry`, `processing`, or `new` for an item that is still new.
    pub state: Option<String>,
    /// A new name (empty keeps the stored one).
    pub name: Option<String>,
    /// Replaces the payload (a non-object is wrapped as `{value: …}`; `_lease` is taken out).
    pub payload: Option<Value>,
    /// A new priority.
    pub priority: Option<i64>,
    /// RFC 3339: when a retried (or still new) item runs next.
    pub nextrun: Option<String>,
    /// The consumer's error message.
    pub errormessage: Option<String>,
    /// `application` (default) or `business` (never retried unless `ignoremaxretries`).
    pub errortype: Option<String>,
    /// Where the error happened.
    pub errorsource: Option<String>,
    /// Retry even past `maxretries`, and business errors too.
    pub ignoremaxretries: bool,
    /// Files reconciled by name with the item's: bytes upload or replace, an `id` alone references, an
    /// entry with neither removes the file of that name.
    pub files: Vec<WorkitemFile>,
    /// Per-item success queue by name; `Some("")` (with no id) clears.
    pub success_wiq: Option<String>,
    /// Per-item success queue by id (wins over the name).
    pub success_wiqid: Option<String>,
    /// Per-item failed queue by name; `Some("")` (with no id) clears.
    pub failed_wiq: Option<String>,
    /// Per-item failed queue by id (wins over the name).
    pub failed_wiqid: Option<String>,
    /// The fencing token of the lease the consumer holds (else taken from `payload._lease.token`).
    pub lease_token: Option<String>,
}

fn denied(e: SecurityError) -> CoreError {
    CoreError::AccessDenied(e.to_string())
}

fn item_not_found() -> CoreError {
    CoreError::NotFound("workitem not found".into())
}

fn lost_too_often() -> CoreError {
    CoreError::Conflict("the workitem kept changing concurrently; try again".into())
}

/// A payload as stored: an object (`null` is `{}`, anything else `{value: …}`), without `_lease`.
fn payload_object(payload: Value) -> Value {
    let mut map = match payload {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            let mut map = Map::new();
            map.insert("value".into(), other);
            map
        }
    };
    map.remove(LEASE_PAYLOAD_FIELD);
    Value::Object(map)
}

/// A random fencing token (128 bits, hex).
fn new_lease_token() -> String {
    rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// `{$set, $unset}` from the two maps (an empty `$unset` is left out).
fn operator_update(set: Map<String, Value>, unset: &[&str]) -> Value {
    let mut update = Map::new();
    update.insert("$set".into(), Value::Object(set));
    if !unset.is_empty() {
        let fields: Map<String, Value> =
            unset.iter().map(|f| ((*f).to_string(), Value::String(String::new()))).collect();
        update.insert("$unset".into(), Value::Object(fields));
    }
    Value::Object(update)
}

/// The item's stored state.
fn state_of(item: &Value) -> Option<WorkitemState> {
    item.get("state").and_then(Value::as_str).and_then(|s| WorkitemState::parse(s).ok())
}

/// When a lease of length `lease` taken at `now` runs out (capped at 10 years).
fn lease_until(now: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX).min(chrono::Duration::days(3650));
    now.checked_add_signed(lease).unwrap_or(now)
}

/// An item as returned to its consumer: the lease is echoed in `payload._lease` too, so a client that
/// sends the payload back with its update (the OpenIAP clients do) proves its lease without knowing
/// about leases.
fn with_lease_in_payload(mut doc: Value) -> Value {
    let lease = doc.get("lease").cloned();
    if let (Some(lease), Some(Value::Object(payload))) = (lease, doc.get_mut("payload")) {
        payload.insert(LEASE_PAYLOAD_FIELD.into(), lease);
    }
    doc
}

impl Platform {
    /// Pushes one item to `queue` (see [`Platform::push_workitems`]).
    pub async fn push_workitem(&self, caller: &Caller, queue: &QueueRef, item: NewWorkitem) -> Result<Value> {
        self.push_workitems(caller, queue, vec![item])
            .await?
            .pop()
            .ok_or_else(|| CoreError::Internal("push returned no item".into()))
    }

    /// Pushes items to `queue`, all or nothing (reference §8.2 `addworkitem(s)`). The queue must be
    /// readable by the caller ("Work item queue not found" otherwise) and the caller needs invoke on it.
    /// Items get the queue's ACL; inline files are stored with it. Returns the stored items.
    pub async fn push_workitems(
        &self,
        caller: &Caller,
        queue: &QueueRef,
        items: Vec<NewWorkitem>,
    ) -> Result<Vec<Value>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if items.len() > MAX_PUSH_ITEMS {
            return Err(CoreError::InvalidRequest(format!("items: at most {MAX_PUSH_ITEMS} per push")));
        }
        let q = self.get_workitem_queue(caller, queue).await?;
        policy::authorize_workitem_push(caller, &q).map_err(denied)?;
        let (_, _, initialdelay) = queue_timing(&q);
        let now = Utc::now();
        let mut docs = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        let mut any_ready = false;
        let prepared: Result<()> = async {
            for item in items {
                check_files(&item.files)?;
                let nextrun = match item.nextrun.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                    Some(s) => parse_time("nextrun", s)?,
                    None => plus_seconds(now, initialdelay),
                };
                any_ready |= nextrun <= now;
                let id = new_object_id();
                ids.push(id.clone());
                let mut map = Map::new();
                map.insert("_id".into(), Value::String(id.clone()));
                map.insert("_type".into(), Value::String(ITEM_TYPE.into()));
                let name = item.name.trim();
                map.insert("name".into(), Value::String(if name.is_empty() { DEFAULT_NAME } else { name }.into()));
                map.insert("wiq".into(), Value::String(text(&q, "name")));
                map.insert("wiqid".into(), Value::String(id_of(&q)));
                map.insert("payload".into(), payload_object(item.payload));
                map.insert("priority".into(), Value::from(item.priority.unwrap_or(DEFAULT_PRIORITY)));
                map.insert("state".into(), Value::String(WorkitemState::New.as_str().into()));
                map.insert("retries".into(), Value::from(0));
                map.insert("nextrun".into(), Value::String(iso(nextrun)));
                for (prefix, tid, tname) in [
                    ("success", &item.success_wiqid, &item.success_wiq),
                    ("failed", &item.failed_wiqid, &item.failed_wiq),
                ] {
                    if let Some((target_id, target_name)) = self.resolve_target(caller, tid, tname).await? {
                        map.insert(format!("{prefix}_wiqid"), Value::String(target_id));
                        map.insert(format!("{prefix}_wiq"), Value::String(target_name));
                    }
                }
                let mut files = Vec::with_capacity(item.files.len());
                for file in &item.files {
                    files.push(self.attach_file(caller, &id, &q, file).await?);
                }
                map.insert("files".into(), Value::Array(files));
                map.insert("_acl".into(), q.get("_acl").cloned().unwrap_or(Value::Null));
                docs.push(Value::Object(map));
            }
            Ok(())
        }
        .await;
        let stored = match prepared {
            Ok(()) => self.insert_many(caller, WORKITEMS, docs).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => {
                if any_ready {
                    self.notify_ready(&q);
                }
                Ok(stored)
            }
            Err(e) => {
                for id in &ids {
                    self.delete_owned_files(id, None).await;
                }
                Err(e)
            }
        }
    }

    /// Pops the next ready item of `queue` for the caller, or `None` when there is none: the lowest
    /// `priority` first, then the oldest `nextrun`. Atomic: two consumers never get the same item (see the
    /// module docs). The item becomes `processing` with `lastrun`, `userid`/`username` and a fresh
    /// `lease: {until, token}`; `nextrun` is cleared.
    pub async fn pop_workitem(&self, caller: &Caller, queue: &QueueRef) -> Result<Option<Value>> {
        let q = self.get_workitem_queue(caller, queue).await?;
        policy::authorize_workitem_pop(caller, &q, None).map_err(denied)?;
        let scope = store_scope(caller, Rights::READ | Rights::INVOKE);
        let root = Caller::system_root();
        let options =
            FindOptions { sort: Some(json!({"priority": 1, "nextrun": 1, "_id": 1})), ..FindOptions::limit(POP_BATCH) };
        for _ in 0..POP_ROUNDS {
            let now = Utc::now();
            let filter = json!({"_type": ITEM_TYPE, "wiqid": id_of(&q), "state": "new", "nextrun": {"$lte": iso(now)}});
            let candidates = self.store.find(WORKITEMS, &scope, &filter, &options).await?;
            if candidates.is_empty() {
                return Ok(None);
            }
            let mut attempted = false;
            for candidate in candidates {
                // The scope admitted it already; the same decision on the document guards against the two
                // ever disagreeing.
                if policy::authorize_workitem_pop(caller, &q, Some(&candidate)).is_err() {
                    continue;
                }
                attempted = true;
                let until = lease_until(now, self.config.workitem_lease);
                let mut set = Map::new();
                set.insert("state".into(), json!("processing"));
                set.insert("lastrun".into(), Value::String(iso(now)));
                set.insert("userid".into(), Value::String(caller.user_id().into()));
                set.insert("username".into(), Value::String(caller.username().into()));
                set.insert("lease".into(), json!({"until": iso(until), "token": new_lease_token()}));
                let guard = json!({"_id": id_of(&candidate), "state": "new", "_version": version_of(&candidate)});
                // Named system path: the consumer needs read and invoke on the item (checked above), not
                // update; the reference saves the popped item with the root token. The guard makes the
                // claim atomic.
                let result = self.update_one(&root, WORKITEMS, &guard, &operator_update(set, &["nextrun"])).await?;
                if result.modified == 1 {
                    if let Some(doc) = result.document {
                        return Ok(Some(with_lease_in_payload(self.client_view(WORKITEMS, doc)?)));
                    }
                }
            }
            if !attempted {
                return Ok(None);
            }
        }
        Err(lost_too_often())
    }

    /// Updates item `request.id` (reference §8.2 `updateworkitem`); see [`WorkitemUpdate`]. The caller
    /// needs read on the item and invoke on its queue. A request carrying a lease token that is not the
    /// item's current one is refused with `Conflict`. Retry counts against the queue's `maxretries`
    /// (`retries + 1 < maxretries` runs again after `retrydelay`, else the item fails); business errors
    /// fail at once. An item entering `successful` or `failed` is copied to the success or failed queue
    /// (the item's own first, then the queue's). Returns the stored item.
    pub async fn update_workitem(&self, caller: &Caller, request: WorkitemUpdate) -> Result<Value> {
        let id = request.id.trim().to_string();
        if id.is_empty() {
            return Err(CoreError::InvalidRequest("_id: name the workitem to update".into()));
        }
        check_files(&request.files)?;
        let requested =
            request.state.as_deref().filter(|s| !s.trim().is_empty()).map(WorkitemState::parse).transpose()?;
        let token = request.lease_token.clone().filter(|t| !t.is_empty()).or_else(|| {
            let lease = request.payload.as_ref()?.get(LEASE_PAYLOAD_FIELD)?;
            lease.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string)
        });
        let explicit_nextrun = request
            .nextrun
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| parse_time("nextrun", s))
            .transpose()?;
        let read = store_scope(caller, Rights::READ);
        for _ in 0..WRITE_RETRIES {
            let item = self
                .store
                .find_one(WORKITEMS, &read, &json!({"_id": id, "_type": ITEM_TYPE}), None)
                .await?
                .ok_or_else(item_not_found)?;
            let queue = self
                .queue_by_id_system(&text(&item, "wiqid"))
                .await?
                .ok_or_else(|| CoreError::NotFound("Work item queue not found".into()))?;
            policy::authorize_workitem_update(caller, &queue, &item).map_err(denied)?;
            let current_token = item.get("lease").and_then(|l| l.get("token")).and_then(Value::as_str);
            if let Some(token) = &token {
                if current_token != Some(token.as_str()) {
                    return Err(CoreError::Conflict(
                        "the workitem's lease is not yours any more: it expired and the item went back to the queue"
                            .into(),
                    ));
                }
            }
            let now = Utc::now();
            let (maxretries, retrydelay, _) = queue_timing(&queue);
            let old_state = state_of(&item).unwrap_or(WorkitemState::New);
            let mut set = Map::new();
            let mut unset: Vec<&str> = Vec::new();
            if let Some(name) = request.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                set.insert("name".into(), Value::String(name.into()));
            }
            if let Some(payload) = &request.payload {
                set.insert("payload".into(), payload_object(payload.clone()));
            }
            if let Some(priority) = request.priority {
                set.insert("priority".into(), Value::from(priority));
            }
            for (field, value) in [
                ("errormessage", &request.errormessage),
                ("errortype", &request.errortype),
                ("errorsource", &request.errorsource),
            ] {
                if let Some(v) = value {
                    set.insert(field.into(), Value::String(v.clone()));
                }
            }
            for (prefix, tid, tname) in [
                ("success", &request.success_wiqid, &request.success_wiq),
                ("failed", &request.failed_wiqid, &request.failed_wiq),
            ] {
                if tid.is_none() && tname.is_none() {
                    continue;
                }
                let (tid, tname) = (tid.as_deref().unwrap_or_default(), tname.as_deref().unwrap_or_default());
                let (id_field, name_field) = (format!("{prefix}_wiqid"), format!("{prefix}_wiq"));
                if !tid.trim().is_empty() && text(&item, &id_field) == tid.trim() {
                    continue;
                }
                match self.resolve_target(caller, tid, tname).await? {
                    Some((target_id, target_name)) => {
                        set.insert(id_field, Value::String(target_id));
                        set.insert(name_field, Value::String(target_name));
                    }
                    None => {
                        set.insert(id_field, Value::Null);
                        set.insert(name_field, Value::Null);
                    }
                }
            }
            // The state machine.
            let errortype = request.errortype.clone().unwrap_or_else(|| text(&item, "errortype"));
            let retries = int(&item, "retries", 0).max(0);
            let new_state = match requested {
                None => old_state,
                Some(WorkitemState::New) if old_state != WorkitemState::New => {
                    return Err(CoreError::InvalidRequest(
                        "state: only an item that is still new may be set to new; use retry".into(),
                    ))
                }
                Some(WorkitemState::Retry) => {
                    let business = errortype.eq_ignore_ascii_case("business");
                    if business && !request.ignoremaxretries {
                        WorkitemState::Failed
                    } else if request.ignoremaxretries || retries + 1 < maxretries {
                        set.insert("retries".into(), Value::from(retries + 1));
                        unset.extend(["userid", "username"]);
                        WorkitemState::New
                    } else {
                        WorkitemState::Failed
                    }
                }
                Some(s) => s,
            };
            set.insert("state".into(), Value::String(new_state.as_str().into()));
            let mut nextrun = None;
            if new_state == WorkitemState::New {
                let next = match (requested, explicit_nextrun) {
                    (_, Some(t)) => Some(t),
                    (Some(WorkitemState::Retry), None) => Some(plus_seconds(now, retrydelay)),
                    _ => None,
                };
                if let Some(t) = next {
                    set.insert("nextrun".into(), Value::String(iso(t)));
                }
                nextrun = next.or_else(|| {
                    item.get("nextrun").and_then(Value::as_str).and_then(|s| parse_time("nextrun", s).ok())
                });
            } else {
                unset.push("nextrun");
            }
            if new_state == WorkitemState::Processing {
                let until = lease_until(now, self.config.workitem_lease);
                let lease_token = match (old_state, current_token) {
                    // Still processing: the lease is renewed (a heartbeat), the token stays.
                    (WorkitemState::Processing, Some(t)) => t.to_string(),
                    _ => new_lease_token(),
                };
                set.insert("lease".into(), json!({"until": iso(until), "token": lease_token}));
                if old_state != WorkitemState::Processing {
                    set.insert("lastrun".into(), Value::String(iso(now)));
                    set.insert("userid".into(), Value::String(caller.user_id().into()));
                    set.insert("username".into(), Value::String(caller.username().into()));
                }
            } else {
                unset.push("lease");
            }
            // The item's ACL follows the queue's current ACL (reference §8.2).
            if let Some(acl) = queue.get("_acl") {
                set.insert("_acl".into(), acl.clone());
            }
            // Files, reconciled by name. New uploads are undone if the write below loses its race; files
            // replaced or removed are deleted only once it has committed.
            let mut files: Vec<Value> = item.get("files").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut uploaded: Vec<String> = Vec::new();
            let mut dropped: Vec<String> = Vec::new();
            let reconciled: Result<()> = async {
                for file in &request.files {
                    let base = basename(&file.filename);
                    let position = files.iter().position(|f| {
                        let stored = text(f, "filename");
                        let stored = if stored.is_empty() { basename(&text(f, "name")) } else { stored };
                        stored == base
                    });
                    let existing_id = position.and_then(|p| files.get(p)).map(id_of).unwrap_or_default();
                    let wanted_id = file.id.trim();
                    let entry = if !file.file.is_empty() {
                        let entry = self.attach_file(caller, &id, &queue, file).await?;
                        uploaded.push(id_of(&entry));
                        Some(entry)
                    } else if wanted_id.is_empty() || wanted_id.eq_ignore_ascii_case("findme") {
                        None
                    } else if wanted_id == existing_id {
                        position.and_then(|p| files.get(p)).cloned()
                    } else {
                        Some(self.attach_file(caller, &id, &queue, file).await?)
                    };
                    if !existing_id.is_empty() && entry.as_ref().map(id_of) != Some(existing_id.clone()) {
                        dropped.push(existing_id);
                    }
                    match (position, entry) {
                        (Some(p), Some(entry)) => {
                            if let Some(slot) = files.get_mut(p) {
                                *slot = entry;
                            }
                        }
                        (Some(p), None) => {
                            files.remove(p);
                        }
                        (None, Some(entry)) => files.push(entry),
                        (None, None) => {}
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = reconciled {
                self.delete_owned_files(&id, Some(&uploaded)).await;
                return Err(e);
            }
            if !request.files.is_empty() {
                set.insert("files".into(), Value::Array(files));
            }
            let guard = json!({"_id": id, "_version": version_of(&item)});
            // Named system path: the reference saves the item with the root token once the caller was
            // authorized above (read on the item, invoke on its queue); the version guard keeps the lease
            // check and the write atomic.
            let root = Caller::system_root();
            let unset_fields: Vec<&str> = unset.into_iter().filter(|f| !set.contains_key(*f)).collect();
            let result = self.update_one(&root, WORKITEMS, &guard, &operator_update(set, &unset_fields)).await?;
            let Some(doc) = result.document.filter(|_| result.matched == 1) else {
                self.delete_owned_files(&id, Some(&uploaded)).await;
                continue;
            };
            if !dropped.is_empty() {
                self.delete_owned_files(&id, Some(&dropped)).await;
            }
            if old_state != new_state && matches!(new_state, WorkitemState::Successful | WorkitemState::Failed) {
                self.chain(&doc, &queue, new_state).await;
            }
            if new_state == WorkitemState::New && nextrun.is_some_and(|t| t <= now) {
                self.notify_ready(&queue);
            }
            return self.client_view(WORKITEMS, doc).map(with_lease_in_payload);
        }
        Err(lost_too_often())
    }

    /// Copies `item`, which just became `state`, to its success or failed queue (the item's own target
    /// first, then `queue`'s): a new item (fresh `_id`, state new, retries 0, `nextrun` = now + the target's
    /// `initialdelay`, the target's ACL, its files duplicated). Named system path: the target was
    /// authorized when it was chosen ([`policy::authorize_workitem_target`]). Failures are logged: the
    /// update itself has committed.
    async fn chain(&self, item: &Value, queue: &Value, state: WorkitemState) {
        let prefix = if state == WorkitemState::Successful { "success" } else { "failed" };
        let field = format!("{prefix}_wiqid");
        let target_id = match text(item, &field) {
            t if t.is_empty() => text(queue, &field),
            t => t,
        };
        if target_id.is_empty() {
            return;
        }
        let target = match self.queue_by_id_system(&target_id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                tracing::warn!(queue = %target_id, "the success/failed queue of a workitem does not exist");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the success/failed queue of a workitem failed");
                return;
            }
        };
        let (_, _, initialdelay) = queue_timing(&target);
        let now = Utc::now();
        let new_id = new_object_id();
        let entries = item.get("files").and_then(Value::as_array).cloned().unwrap_or_default();
        let files = self.copy_files(&entries, &new_id, &target).await;
        let copy = json!({
            "_id": new_id,
            "_type": ITEM_TYPE,
            "name": text(item, "name"),
            "wiq": text(&target, "name"),
            "wiqid": id_of(&target),
            "payload": item.get("payload").cloned().unwrap_or_else(|| json!({})),
            "priority": int(item, "priority", DEFAULT_PRIORITY),
            "state": "new",
            "retries": 0,
            "nextrun": iso(plus_seconds(now, initialdelay)),
            "files": files,
            "_acl": target.get("_acl").cloned().unwrap_or(Value::Null),
        });
        match self.insert_one(&Caller::system_root(), WORKITEMS, copy).await {
            Ok(_) => {
                if initialdelay == 0 {
                    self.notify_ready(&target);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "copying a workitem to its success/failed queue failed");
                self.delete_owned_files(&new_id, None).await;
            }
        }
    }

    /// Deletes item `id` and the files it owns. The caller needs invoke and delete on the item.
    pub async fn delete_workitem(&self, caller: &Caller, id: &str) -> Result<()> {
        let filter = json!({"_id": id, "_type": ITEM_TYPE});
        let item = self
            .store
            .find_one(WORKITEMS, &store_scope(caller, Rights::READ), &filter, None)
            .await?
            .ok_or_else(item_not_found)?;
        policy::authorize_workitem_delete(caller, &item).map_err(denied)?;
        self.delete_one(caller, WORKITEMS, id).await?;
        self.delete_owned_files(id, None).await;
        Ok(())
    }

    /// Housekeeping: every `processing` item whose lease ran out by `now` goes back to its queue as a retry
    /// (`retries + 1`, `nextrun` = the current time + `retrydelay`, consumer cleared) or, past
    /// `maxretries`, fails (chained to the failed queue like any failure). Returns how many items were
    /// expired. `now` only decides which leases ran out (the server passes the current time); new
    /// `nextrun` values are taken from the clock. Named system path: the server's housekeeping, for every
    /// queue.
    pub async fn expire_workitem_leases(&self, now: DateTime<Utc>) -> Result<u64> {
        let root = Caller::system_root();
        let filter = json!({"_type": ITEM_TYPE, "state": "processing", "lease.until": {"$lte": iso(now)}});
        let mut expired = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            let batch =
                self.store.find(WORKITEMS, &Scope::system(), &filter, &FindOptions::limit(EXPIRE_BATCH)).await?;
            let fresh: Vec<Value> = batch.into_iter().filter(|i| seen.insert(id_of(i))).collect();
            if fresh.is_empty() {
                return Ok(expired);
            }
            for item in fresh {
                let Some(queue) = self.queue_by_id_system(&text(&item, "wiqid")).await? else {
                    tracing::warn!(item = %id_of(&item), "a leased workitem's queue does not exist");
                    continue;
                };
                let (maxretries, retrydelay, _) = queue_timing(&queue);
                let retries = int(&item, "retries", 0).max(0);
                let clock = Utc::now();
                let mut set = Map::new();
                let retry = retries + 1 < maxretries;
                if retry {
                    set.insert("state".into(), json!("new"));
                    set.insert("retries".into(), Value::from(retries + 1));
                    set.insert("nextrun".into(), Value::String(iso(plus_seconds(clock, retrydelay))));
                } else {
                    set.insert("state".into(), json!("failed"));
                    set.insert("errormessage".into(), json!("the consumer's lease ran out too often"));
                    set.insert("errortype".into(), json!("application"));
                    set.insert("errorsource".into(), json!(LEASE_ERROR_SOURCE));
                }
                let unset: &[&str] = if retry { &["lease", "userid", "username"] } else { &["lease", "nextrun"] };
                let token = item.get("lease").and_then(|l| l.get("token")).cloned().unwrap_or(Value::Null);
                let guard = json!({"_id": id_of(&item), "_version": version_of(&item), "state": "processing", "lease.token": token});
                let result = self.update_one(&root, WORKITEMS, &guard, &operator_update(set, unset)).await?;
                let Some(doc) = result.document.filter(|_| result.modified == 1) else { continue };
                expired += 1;
                if retry {
                    if retrydelay == 0 {
                        self.notify_ready(&queue);
                    }
                } else {
                    self.chain(&doc, &queue, WorkitemState::Failed).await;
                }
            }
        }
    }

    /// Housekeeping (the reference's queue monitoring, §8.3): sends a [`super::WorkitemReady`] for every
    /// workitem queue with an `amqpqueue` that has items ready at `now`; returns how many. Named system
    /// path: the server's periodic job, for every queue.
    pub async fn announce_ready_workitem_queues(&self, now: DateTime<Utc>) -> Result<usize> {
        let filter = json!({"_type": QUEUE_TYPE, "amqpqueue": {"$exists": true, "$nin": ["", null]}});
        let queues = self.store.find(MQ, &Scope::system(), &filter, &FindOptions::default()).await?;
        let mut announced = 0;
        for queue in queues {
            let ready =
                json!({"_type": ITEM_TYPE, "wiqid": id_of(&queue), "state": "new", "nextrun": {"$lte": iso(now)}});
            if self.store.count(WORKITEMS, &Scope::system(), &ready).await? > 0 {
                self.notify_ready(&queue);
                announced += 1;
            }
        }
        Ok(announced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_objects_without_lease() {
        assert_eq!(payload_object(json!({"a": 1, "_lease": {"token": "t"}})), json!({"a": 1}));
        assert_eq!(payload_object(json!(5)), json!({"value": 5}));
        assert_eq!(payload_object(json!("x")), json!({"value": "x"}));
        assert_eq!(payload_object(Value::Null), json!({}));
    }

    #[test]
    fn updates_and_tokens() {
        let mut set = Map::new();
        set.insert("state".into(), json!("new"));
        assert_eq!(operator_update(set.clone(), &[]), json!({"$set": {"state": "new"}}));
        assert_eq!(operator_update(set, &["lease"]), json!({"$set": {"state": "new"}, "$unset": {"lease": ""}}));
        let (a, b) = (new_lease_token(), new_lease_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let now = Utc::now();
        assert_eq!(lease_until(now, std::time::Duration::from_secs(60)), now + chrono::Duration::seconds(60));
        assert!(lease_until(now, std::time::Duration::MAX) > now, "no overflow");
        let doc = with_lease_in_payload(json!({"payload": {"a": 1}, "lease": {"token": "t"}}));
        assert_eq!(doc["payload"]["_lease"]["token"], "t");
        assert_eq!(with_lease_in_payload(json!({"payload": {"a": 1}})), json!({"payload": {"a": 1}}));
    }
}
