//! Document history in `<collection>_hist`: a base snapshot, deltas as JSON patches, delete snapshots;
//! any version can be rebuilt.
//!
//! # Entries
//!
//! Every entry is a document of `<collection>_hist` with
//! `{_id, id, name, _type, _acl, _version, reason, _created*, _modified*}` where `id` is the `_id` of the
//! document it describes, `_type`/`name`/`_acl` are copied from the version it records (so reads of the
//! history collection are scoped by the document's ACL, like any read), and `_created*`/`_modified*` name
//! who made that version and when. On top of that:
//!
//! * **base snapshot**: `item` is the whole document as stored at `_version` (written on insert, at
//!   version 0, or at the next free version when a deleted document is inserted again with its `_id`);
//! * **delta**: `delta` is the RFC 6902 JSON patch (computed by the `json-patch` crate) that turns the
//!   previous version into this one, for full-document *and* operator updates — unlike OpenIAP Flow,
//!   which records operator updates as an opaque string and cannot replay them. Every
//!   [`SNAPSHOT_EVERY`] versions the delta entry also carries `item` (the *new* document), which bounds
//!   the work of a rebuild;
//! * **delete snapshot**: `item` is the document as it was when deleted, plus `_deleted`,
//!   `_deletedby`, `_deletedbyid`; `_version` is the deleted document's version.
//!
//! Entries record what was *stored*: values of `_encrypt` fields stay encrypted in history and are
//! decrypted (bound to the original collection and `_id`) only when a version is returned to a caller.
//! The `passwordhash` of `users` documents is never copied into history.
//!
//! # Consistency
//!
//! History is written right after the document write it describes (the store has no cross-collection
//! transactions in its trait). A history write that fails is logged and does not undo the document write
//! (as in OpenIAP Flow, whose history writes are fire-and-forget); a rebuild that would cross the missing
//! version then fails with a clear internal error instead of returning a wrong document.

use crate::documents::{check_collection, version_of, Access, USERS};
use crate::error::{CoreError, Result};
use crate::platform::{Platform, PlatformConfig};
use crate::scope::store_scope;
use flowkeep_model::{new_object_id, Rights};
use flowkeep_security::acl::acl_value;
use flowkeep_security::Caller;
use flowkeep_store::{FindOptions, IndexOptions, Scope};
use serde_json::{json, Map, Value};

/// The suffix of history collections.
pub const HIST_SUFFIX: &str = "_hist";

/// Every this many versions a delta entry also carries the whole new document, so that a rebuild never
/// applies more than this many patches.
pub const SNAPSHOT_EVERY: u64 = 100;

/// The index every history collection gets, serving rebuilds and version look-ups by document.
pub const HISTORY_INDEX: &str = "id_1__version_1";

/// The history collection of `collection`.
pub fn history_collection(collection: &str) -> String {
    format!("{collection}{HIST_SUFFIX}")
}

/// Whether writes to `collection` are recorded: not for collections listed in
/// [`PlatformConfig::history_skip_collections`], not for history collections themselves.
pub fn keeps_history(config: &PlatformConfig, collection: &str) -> bool {
    !collection.ends_with(HIST_SUFFIX) && !config.history_skip_collections.iter().any(|c| c == collection)
}

/// Who made a change, when and why: the common part of every entry.
pub(crate) struct Change<'a> {
    pub caller: &'a Caller,
    pub now: &'a str,
    pub reason: Option<&'a str>,
}

/// The document as history keeps it: without the `users` password hash (history is readable by whoever
/// may read the document, and the hash is never returned to anyone).
fn sanitized(collection: &str, doc: &Value) -> Value {
    let mut doc = doc.clone();
    if collection == USERS {
        if let Some(map) = doc.as_object_mut() {
            map.remove("passwordhash");
        }
    }
    doc
}

/// The fields every entry has, describing `doc` (the version recorded).
fn entry_head(collection: &str, doc: &Value, version: u64, change: &Change<'_>) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("_id".into(), Value::String(new_object_id()));
    entry.insert("id".into(), doc.get("_id").cloned().unwrap_or(Value::Null));
    entry.insert("name".into(), doc.get("name").cloned().unwrap_or(Value::Null));
    entry.insert("_type".into(), doc.get("_type").cloned().unwrap_or_else(|| Value::String("unknown".into())));
    // The history collection's name never ends in `.files`, so the store reads its top-level `_acl`.
    entry.insert("_acl".into(), acl_value(collection, doc).cloned().unwrap_or_else(|| Value::Array(Vec::new())));
    entry.insert("_version".into(), Value::from(version));
    entry.insert("reason".into(), Value::String(change.reason.unwrap_or_default().to_string()));
    for prefix in ["_created", "_modified"] {
        entry.insert(prefix.to_string(), Value::String(change.now.to_string()));
        entry.insert(format!("{prefix}by"), Value::String(change.caller.name().to_string()));
        entry.insert(format!("{prefix}byid"), Value::String(change.caller.user_id().to_string()));
    }
    entry
}

/// A base snapshot of the stored document `doc` at its own version.
pub(crate) fn base_entry(collection: &str, doc: &Value, change: &Change<'_>) -> Value {
    let mut entry = entry_head(collection, doc, version_of(doc), change);
    entry.insert("item".into(), sanitized(collection, doc));
    Value::Object(entry)
}

/// The delta entry from stored version `old` to stored version `new`, or `None` when history would see no
/// difference (only the password hash changed, say).
pub(crate) fn delta_entry(collection: &str, old: &Value, new: &Value, change: &Change<'_>) -> Result<Option<Value>> {
    let (old, new) = (sanitized(collection, old), sanitized(collection, new));
    let patch = json_patch::diff(&old, &new);
    if patch.0.is_empty() {
        return Ok(None);
    }
    let version = version_of(&new);
    let mut entry = entry_head(collection, &new, version, change);
    let delta = serde_json::to_value(&patch).map_err(|e| CoreError::Internal(format!("history delta: {e}")))?;
    entry.insert("delta".into(), delta);
    if version.is_multiple_of(SNAPSHOT_EVERY) {
        entry.insert("item".into(), new);
    }
    Ok(Some(Value::Object(entry)))
}

/// The delete snapshot of the stored document `doc`.
pub(crate) fn delete_entry(collection: &str, doc: &Value, change: &Change<'_>) -> Value {
    let mut entry = entry_head(collection, doc, version_of(doc), change);
    entry.insert("item".into(), sanitized(collection, doc));
    entry.insert("_deleted".into(), Value::String(change.now.to_string()));
    entry.insert("_deletedby".into(), Value::String(change.caller.name().to_string()));
    entry.insert("_deletedbyid".into(), Value::String(change.caller.user_id().to_string()));
    Value::Object(entry)
}

impl Platform {
    /// Writes history entries (already built) for `collection`. History is written by the system: the
    /// caller was authorized for the document write these entries describe.
    pub(crate) async fn write_history(&self, collection: &str, entries: Vec<Value>) -> Result<()> {
        if entries.is_empty() || !keeps_history(&self.config, collection) {
            return Ok(());
        }
        let hist = history_collection(collection);
        // Every document's history starts with an entry carrying `item`, so checking the index only then
        // makes sure it exists before rebuilds need it, without a catalog look-up on every delta.
        if entries.iter().any(|e| e.get("item").is_some())
            && !self.store.list_indexes(&hist).await?.iter().any(|i| i.name == HISTORY_INDEX)
        {
            let options = IndexOptions { name: Some(HISTORY_INDEX.into()), ..IndexOptions::default() };
            self.store.create_index(&hist, &json!({"id": 1, "_version": 1}), &options).await?;
        }
        self.store.insert_many(&hist, entries).await?;
        Ok(())
    }

    /// Records an update from stored `old` to stored `new`. When `old` is at version 0 and has no base
    /// snapshot (it was written by bootstrap or another tool straight into the store), the base is
    /// written first so the chain can be replayed.
    pub(crate) async fn record_update(
        &self,
        collection: &str,
        old: &Value,
        new: &Value,
        change: &Change<'_>,
    ) -> Result<()> {
        if !keeps_history(&self.config, collection) {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(2);
        let old_version = version_of(old);
        let id = old.get("_id").cloned().unwrap_or(Value::Null);
        let base_filter = json!({"id": id, "item": {"$exists": true}, "_version": old_version});
        if old_version == 0
            && self.store.count(&history_collection(collection), &Scope::system(), &base_filter).await? == 0
        {
            entries.push(base_entry(collection, old, change));
        }
        entries.extend(delta_entry(collection, old, new, change)?);
        self.write_history(collection, entries).await
    }

    /// The newest version recorded in the history of document `id` of `collection`, if any. Used when a
    /// document is inserted again with the `_id` of a deleted one, so its versions continue.
    pub(crate) async fn latest_history_version(&self, collection: &str, id: &Value) -> Result<Option<u64>> {
        if !keeps_history(&self.config, collection) {
            return Ok(None);
        }
        let options = FindOptions { sort: Some(json!({"_version": -1})), limit: Some(1), ..FindOptions::default() };
        // System scope: only the number is used, to keep versions unique; nothing is returned.
        let newest =
            self.store.find(&history_collection(collection), &Scope::system(), &json!({"id": id}), &options).await?;
        Ok(newest.first().map(version_of))
    }

    /// Version `version` of document `id` of `collection`, rebuilt from history when it is older than the
    /// current one, with its encrypted fields decrypted (and, for `users`, without `passwordhash`).
    ///
    /// Access: the caller needs read on the current document, or, when the document was deleted, on its
    /// newest delete snapshot; otherwise [`CoreError::NotFound`] (as for a document that never existed).
    /// Older versions are then read whatever their own ACL was, as in OpenIAP Flow: who may read the
    /// document may read its past. `Ok(None)` when the version does not exist (newer than the current
    /// one, or older than the history kept).
    pub async fn get_document_version(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<Value>> {
        check_collection(collection, Access::Read)?;
        let read = store_scope(caller, Rights::READ);
        let not_found = || CoreError::NotFound(format!("document '{id}' not found in '{collection}'"));
        let current = self.store.find_one(collection, &read, &json!({"_id": id}), None).await?;
        let (latest_version, latest) = match current {
            Some(doc) => {
                caller.authorize_document(collection, &doc, Rights::READ).map_err(|_| not_found())?;
                (version_of(&doc), doc)
            }
            None => {
                if !keeps_history(&self.config, collection) {
                    return Err(not_found());
                }
                let options =
                    FindOptions { sort: Some(json!({"_version": -1})), limit: Some(1), ..FindOptions::default() };
                let filter = json!({"id": id, "_deleted": {"$exists": true}});
                let snapshots = self.store.find(&history_collection(collection), &read, &filter, &options).await?;
                let snapshot = snapshots.into_iter().next().ok_or_else(not_found)?;
                let item = snapshot.get("item").cloned().ok_or_else(not_found)?;
                (version_of(&snapshot), item)
            }
        };
        let doc = if version > latest_version {
            return Ok(None);
        } else if version == latest_version {
            latest
        } else {
            match self.rebuild(collection, id, version).await? {
                Some(doc) => doc,
                None => return Ok(None),
            }
        };
        self.history_view(collection, id, doc).map(Some)
    }

    /// A stored (possibly historic) version as a caller sees it: decrypted against the original
    /// collection and `_id`, without the password hash.
    fn history_view(&self, collection: &str, id: &str, mut doc: Value) -> Result<Value> {
        if let Some(map) = doc.as_object_mut() {
            map.remove("passwordhash");
        }
        self.fields.decrypt_document_bound(collection, &Value::String(id.to_string()), &mut doc).map_err(|e| {
            tracing::error!(error = %e, collection, id, "decrypting a history version failed");
            CoreError::Internal("field decryption failed".into())
        })?;
        Ok(doc)
    }

    /// Rebuilds version `version` of `id` from history: the newest entry carrying `item` at or below
    /// `version`, then every delta above it in order. Access was checked by the caller of this function,
    /// so history is read with the system scope (old entries carry the ACL of their time, which may not
    /// name the current reader). `None` when no snapshot is at or below `version`.
    async fn rebuild(&self, collection: &str, id: &str, version: u64) -> Result<Option<Value>> {
        let hist = history_collection(collection);
        let system = Scope::system();
        let base_filter = json!({"id": id, "item": {"$exists": true}, "_version": {"$lte": version}});
        let newest_first =
            FindOptions { sort: Some(json!({"_version": -1})), limit: Some(1), ..FindOptions::default() };
        let Some(base) = self.store.find(&hist, &system, &base_filter, &newest_first).await?.into_iter().next() else {
            return Ok(None);
        };
        let base_version = version_of(&base);
        let Some(mut doc) = base.get("item").cloned() else { return Ok(None) };
        if base_version == version {
            return Ok(Some(doc));
        }
        let delta_filter =
            json!({"id": id, "delta": {"$exists": true}, "_version": {"$gt": base_version, "$lte": version}});
        let span = usize::try_from(version - base_version).unwrap_or(usize::MAX);
        let oldest_first =
            FindOptions { sort: Some(json!({"_version": 1})), limit: Some(span), ..FindOptions::default() };
        let deltas = self.store.find(&hist, &system, &delta_filter, &oldest_first).await?;
        let broken = |what: String| {
            tracing::error!(collection, id, version, "history is broken: {what}");
            CoreError::Internal(format!("history of '{id}' in '{collection}' is incomplete"))
        };
        let mut expected = base_version + 1;
        for entry in deltas {
            if version_of(&entry) != expected {
                return Err(broken(format!("version {expected} is missing")));
            }
            let patch: json_patch::Patch = entry
                .get("delta")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| broken(format!("delta of version {expected} is malformed: {e}")))?
                .unwrap_or(json_patch::Patch(Vec::new()));
            json_patch::patch(&mut doc, &patch.0)
                .map_err(|e| broken(format!("delta of version {expected} does not apply: {e}")))?;
            expected += 1;
        }
        if expected != version + 1 {
            return Err(broken(format!("version {expected} is missing")));
        }
        Ok(Some(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowkeep_security::RoleGraph;

    fn caller() -> Caller {
        let user = json!({"_id": "u1", "_type": "user", "username": "alice", "name": "Alice"});
        Caller::resolve(&user, &RoleGraph::from_role_docs(&[])).unwrap_or_else(|_| Caller::system_root())
    }

    #[test]
    fn delta_replays_and_skips_password_hash() {
        let c = caller();
        let change = Change { caller: &c, now: "2026-01-01T00:00:00.000Z", reason: Some("why") };
        let old = json!({"_id": "d", "_version": 0, "a": 1, "list": [1, 2], "passwordhash": "x", "_acl": []});
        let new = json!({"_id": "d", "_version": 1, "a": 2, "list": [2], "passwordhash": "y", "_acl": []});
        let entry = delta_entry(USERS, &old, &new, &change).ok().flatten();
        let Some(entry) = entry else { panic!("a delta is expected") };
        assert_eq!(entry["_version"], 1);
        assert_eq!(entry["reason"], "why");
        assert_eq!(entry["_createdbyid"], "u1");
        assert!(!entry.to_string().contains("passwordhash"), "{entry}");
        let patch: json_patch::Patch = serde_json::from_value(entry["delta"].clone()).unwrap_or_default();
        let mut replay = sanitized(USERS, &old);
        assert!(json_patch::patch(&mut replay, &patch.0).is_ok());
        assert_eq!(replay, sanitized(USERS, &new));
        // only the hash changed: nothing to record
        let hash_only = json!({"_id": "d", "_version": 0, "a": 1, "list": [1, 2], "passwordhash": "z", "_acl": []});
        assert!(matches!(delta_entry(USERS, &old, &hash_only, &change), Ok(None)));
    }

    #[test]
    fn periodic_snapshots_and_delete_entries() {
        let c = caller();
        let change = Change { caller: &c, now: "2026-01-01T00:00:00.000Z", reason: None };
        let old = json!({"_id": "d", "_version": SNAPSHOT_EVERY - 1, "a": 1});
        let new = json!({"_id": "d", "_version": SNAPSHOT_EVERY, "a": 2});
        let entry = delta_entry("things", &old, &new, &change).ok().flatten().unwrap_or_default();
        assert_eq!(entry["item"], new);
        let gone = delete_entry("things", &new, &change);
        assert_eq!(gone["_deletedbyid"], "u1");
        assert_eq!(gone["_version"], SNAPSHOT_EVERY);
        assert_eq!(gone["item"], new);
        assert!(keeps_history(&PlatformConfig::default(), "things"));
        assert!(!keeps_history(&PlatformConfig::default(), "things_hist"));
        assert!(!keeps_history(&PlatformConfig::default(), "audit"));
    }
}
