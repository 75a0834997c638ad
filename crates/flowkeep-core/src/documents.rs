//! Document commands run as their caller: reads are scoped by the caller's ACL filter pushed into the
//! store; single-document writes are checked against the document; ACL defaults, `_version`,
//! `_created*`/`_modified*`, field encryption and history are applied here.
//!
//! # Reads
//!
//! [`Platform::query`], [`Platform::count`], [`Platform::distinct`] and [`Platform::aggregate`] always run
//! with `store_scope(caller, READ)`; the store applies it to every `$lookup` too. Returned documents have
//! their `_encrypt` fields decrypted and, in `users`, never carry `passwordhash`. Because the hash must not
//! leak through a filter either (a `$regex` on it is an oracle), filters, sorts and projections on `users`
//! may not name it, nor use the operators that reach a field without naming it (`$objectToArray`,
//! `$getField`, `$$ROOT`, `$$CURRENT`); pipelines drop it with a `$project` before any stage of the
//! client's runs, in the main pipeline and in every `$lookup`/`$unionWith` over `users`.
//!
//! `queryas` names a user or role: results are narrowed to documents that principal may read too. The
//! principal and the role documents used to resolve its roles are read with the *caller's* read scope, so
//! a caller can only ask as a principal it can see, and roles it cannot see are not counted (which can
//! only narrow further). The narrowing is a filter (`$elemMatch` on the ACL with deny entries enforced,
//! the same rule as the store's scope) ANDed with the client's, so `top` and `skip` stay exact. A
//! principal in `admins` (or root) narrows nothing.
//!
//! # Writes
//!
//! * Inserts give the creator and `admins` full control ([`flowkeep_security::normalize_acl`]), set
//!   `_created*`, `_modified*`, `_version: 0`, lower-case `_type` (default `unknown`; not in time-series
//!   collections), encrypt `_encrypt` fields once `_id` is known, and write a base snapshot to history.
//! * Every single-document update — full ([`Platform::update_document`]) or by operators
//!   ([`Platform::update_one`], and per document [`Platform::update_many`]) — goes through one path:
//!   the new document is built in clear text, compared with the stored one (ignoring `_modified*` and
//!   `_version`), and only a real change is written, with `_version + 1`, guarded by the old `_version`
//!   (optimistic concurrency, retried [`WRITE_RETRIES`] times) and recorded as a JSON-patch delta.
//! * Deletes need DELETE through the scope *and* on the document ([`Caller::authorize_document`]: nobody
//!   deletes their own user document), and leave a delete snapshot in history.
//! * Every committed change is published once on the change feed ([`crate::changes`]) right after its
//!   store write and history; an update that changes nothing publishes nothing.
//! * Deleting a metadata document of a `*.files` collection deletes the file's chunks in `*.chunks` too
//!   ([`crate::files`]), on a named system path after the DELETE check on the metadata document.
//! * Many-document writes select at most [`MAX_MANY_WRITE`] documents in scope, then run the
//!   single-document path per document. They are atomic per document (as MongoDB's `updateMany`), not as
//!   a whole: an error stops the command with the documents before it written.
//!
//! Collections whose name starts with `flowkeep.` hold system state (signing keys) and are refused to
//! every client, admins included. `audit` and `<collection>_hist` are readable (scoped like anything
//! else) but written only by the system.

use crate::changes::ChangeOperation;
use crate::error::{CoreError, Result};
use crate::history::{self, Change};
use crate::identity;
use crate::platform::Platform;
use crate::scope::store_scope;
use flowkeep_model::{new_object_id, Rights};
use flowkeep_query::{Filter, Limits, Projection, QueryError, Update, UpdateContext};
use flowkeep_security::acl::{acl_to_value, acl_value};
use flowkeep_security::fieldcrypt::encrypted_fields;
use flowkeep_security::policy;
use flowkeep_security::wellknown;
use flowkeep_security::{
    normalize_acl, parse_acl, Ace, Caller, NormalizeOptions, RoleGraph, RoleGraphOptions, SecurityError, WriteKind,
};
use flowkeep_store::scope::is_files_collection;
use flowkeep_store::{CollectionKind, FindOptions, Scope};
use serde_json::{json, Map, Value};

/// `top` of a query when the request gives none (or 0).
pub const DEFAULT_TOP: usize = 100;
/// The largest `top` a query may ask for; larger values are cut to it. Aggregations without a top-level
/// `$limit` get this limit appended.
pub const MAX_TOP: usize = 10_000;
/// The most documents one `update_many`/`delete_many` may touch; a filter matching more is refused
/// (narrow it, or repeat the command).
pub const MAX_MANY_WRITE: usize = 10_000;
/// The most documents one `insert_many` may carry.
pub const MAX_INSERT_MANY: usize = 10_000;
/// How often a single-document write is retried when another writer changed the document between our
/// read and our write.
pub const WRITE_RETRIES: usize = 5;
/// Collections with this prefix hold system state (signing keys, …) and are refused to clients.
pub const RESERVED_PREFIX: &str = policy::RESERVED_COLLECTION_PREFIX;
/// The principals collection.
pub const USERS: &str = policy::USERS_COLLECTION;
/// The audit collection, written only by the system.
pub const AUDIT: &str = policy::AUDIT_COLLECTION;

const PASSWORD_HASH: &str = "passwordhash";
const CREATED_FIELDS: [&str; 3] = ["_created", "_createdby", "_createdbyid"];
const MODIFIED_FIELDS: [&str; 3] = ["_modified", "_modifiedby", "_modifiedbyid"];
/// Request flags that are never stored. `_skiphistory` is accepted and ignored: history is always kept
/// for collections not configured to skip it (OpenIAP Flow's default, `allow_skiphistory = false`).
const SKIP_HISTORY: &str = "_skiphistory";
const UPDATE_REASON: &str = "_updatereason";
/// Words that, in a filter, sort or projection over `users`, could reach the password hash.
const HASH_REACHING: [&str; 5] = [PASSWORD_HASH, "$objecttoarray", "$getfield", "$$root", "$$current"];

/// A query: filter, projection, sort, paging and an optional principal to narrow by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRequest {
    /// MongoDB filter (`{}` or `null` for all).
    pub filter: Value,
    /// Fields to return (`None`: whole documents). Applied after decryption.
    pub projection: Option<Value>,
    /// Sort specification.
    pub sort: Option<Value>,
    /// Documents to pass over first.
    pub skip: usize,
    /// Most documents to return: [`DEFAULT_TOP`] when `None` or 0, at most [`MAX_TOP`].
    pub top: Option<usize>,
    /// A user or role id: return only documents that principal may read too.
    pub queryas: Option<String>,
}

/// The result of a single-document operator update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateResult {
    /// Documents the filter selected in scope (0 or 1).
    pub matched: u64,
    /// Documents really changed (0 or 1).
    pub modified: u64,
    /// The document after the update, as the caller sees it.
    pub document: Option<Value>,
}

/// The result of a many-document update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManyResult {
    /// Documents selected in scope.
    pub matched: u64,
    /// Documents really changed.
    pub modified: u64,
}

/// What a command does to a collection, for [`check_collection`].
pub(crate) use flowkeep_security::policy::CollectionAccess as Access;

/// Refuses collections a client may not use this way (the rules are `flowkeep-security`'s: reserved system
/// collections always; `audit` and history collections for writes) and empty names.
pub(crate) fn check_collection(collection: &str, access: Access) -> Result<()> {
    if collection.is_empty() {
        return Err(CoreError::InvalidRequest("collection: a collection name is required".into()));
    }
    policy::authorize_collection_access(collection, access)?;
    Ok(())
}

/// The `_version` of a stored document (0 when missing or not a non-negative integer).
pub(crate) fn version_of(doc: &Value) -> u64 {
    match doc.get("_version") {
        Some(Value::Number(n)) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)).unwrap_or(0)
        }
        _ => 0,
    }
}

/// The current time as the ISO-8601 UTC string stored in `_created`/`_modified`.
pub(crate) fn now_string() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn query_error(what: &'static str) -> impl Fn(QueryError) -> CoreError {
    move |e| CoreError::InvalidRequest(format!("{what}: {e}"))
}

/// Maps an error of ACL parsing or normalisation: malformed input is the client's fault, a self-lockout
/// or a refused change is a denial.
pub(crate) fn acl_error(e: SecurityError) -> CoreError {
    match e {
        SecurityError::InvalidAcl(_) | SecurityError::TooManyAces { .. } => {
            CoreError::InvalidRequest(format!("_acl: {e}"))
        }
        other => CoreError::AccessDenied(other.to_string()),
    }
}

fn decrypt_error(collection: &str, e: SecurityError) -> CoreError {
    tracing::error!(error = %e, collection, "decrypting a stored document failed");
    CoreError::Internal("field decryption failed".into())
}

/// True if `value` (any key or string, at any depth) contains one of `words`, case-insensitively.
fn mentions(value: &Value, words: &[&str]) -> bool {
    let hit = |s: &str| {
        let s = s.to_ascii_lowercase();
        words.iter().any(|w| s.contains(w))
    };
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if hit(s) => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.keys().any(|k| hit(k)) {
                    return true;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    false
}

/// Refuses client input over `users` that could reach the password hash (see the module docs).
fn guard_users_input(collection: &str, what: &str, value: &Value) -> Result<()> {
    if collection == USERS && mentions(value, &HASH_REACHING) {
        return Err(CoreError::AccessDenied(format!(
            "{what}: may not refer to passwordhash (nor use $objectToArray, $getField, $$ROOT or $$CURRENT) in users"
        )));
    }
    Ok(())
}

/// A filter as the store takes it: `null` means "all".
fn filter_or_all(filter: &Value) -> Value {
    if filter.is_null() {
        json!({})
    } else {
        filter.clone()
    }
}

/// Takes the transient request flags out of a document; returns the update reason.
fn take_transient(map: &mut Map<String, Value>) -> Option<String> {
    map.remove(SKIP_HISTORY);
    match map.remove(UPDATE_REASON) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Puts `acl` where documents of `collection` keep it (`metadata._acl` in `.files` collections).
fn set_acl(collection: &str, doc: &mut Value, acl: Option<Value>) -> Result<()> {
    let Some(map) = doc.as_object_mut() else {
        return Err(CoreError::InvalidRequest("document: must be an object".into()));
    };
    let target = if collection.ends_with(".files") {
        let metadata = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        match metadata.as_object_mut() {
            Some(m) => m,
            None => return Err(CoreError::InvalidRequest("metadata: must be an object in a files collection".into())),
        }
    } else {
        map
    };
    match acl {
        Some(acl) => target.insert("_acl".into(), acl),
        None => target.remove("_acl"),
    };
    Ok(())
}

fn set_stamp(map: &mut Map<String, Value>, fields: [&str; 3], caller: &Caller, now: &str) {
    let [at, by, byid] = fields;
    map.insert(at.into(), Value::String(now.into()));
    map.insert(by.into(), Value::String(caller.name().into()));
    map.insert(byid.into(), Value::String(caller.user_id().into()));
}

/// The document without the fields every write changes, for "did anything really change?".
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(map) = doc.as_object_mut() {
        for f in MODIFIED_FIELDS {
            map.remove(f);
        }
        map.remove("_version");
    }
    doc
}

/// The filter matching stored `doc` only while it is still at its version.
fn version_guard(doc: &Value) -> Value {
    let id = doc.get("_id").cloned().unwrap_or(Value::Null);
    match doc.get("_version") {
        Some(v) => json!({"_id": id, "_version": v}),
        None => json!({"_id": id, "_version": {"$exists": false}}),
    }
}

/// Whether `doc` has `_type` user.
fn is_user_doc(doc: &Value) -> bool {
    doc.get("_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("user"))
}

/// A query ready for the store: see [`Platform::prepare_find`].
pub(crate) struct PreparedFind {
    /// The caller's read scope.
    pub scope: Scope,
    /// The client's filter, narrowed by `queryas`.
    pub filter: Value,
    /// Sort, skip and the effective top; never a projection.
    pub options: FindOptions,
    /// The client's projection, applied to decrypted documents.
    pub projection: Option<Projection>,
}

/// How a single-document update ended.
enum Commit {
    /// Nothing really changed; nothing was written. Carries the document in clear text.
    Unchanged(Value),
    /// Written; carries the new document in clear text.
    Written(Value),
    /// Another writer changed the document first; reload and try again.
    LostRace,
}

impl Platform {
    // ----------------------------------------------------------------------------------------------
    // Reads
    // ----------------------------------------------------------------------------------------------

    /// The documents of `collection` the caller may read matching `request`, decrypted.
    pub async fn query(&self, caller: &Caller, collection: &str, request: &QueryRequest) -> Result<Vec<Value>> {
        let Some(find) = self.prepare_find(caller, collection, request).await? else { return Ok(Vec::new()) };
        let docs = self.store.find(collection, &find.scope, &find.filter, &find.options).await?;
        docs.into_iter()
            .map(|doc| {
                let doc = self.client_view(collection, doc)?;
                match &find.projection {
                    Some(p) => p.apply(&doc).map_err(query_error("projection")),
                    None => Ok(doc),
                }
            })
            .collect()
    }

    /// Checks `request` and turns it into the store's find as `caller` (scope, narrowed filter, sort,
    /// paging) plus the projection to apply after decryption: the one definition of a query, shared by
    /// [`Platform::query`] and [`Platform::explain_query`]. `None` when the caller reads nothing here
    /// whatever the filter (the guest over `audit`).
    pub(crate) async fn prepare_find(
        &self,
        caller: &Caller,
        collection: &str,
        request: &QueryRequest,
    ) -> Result<Option<PreparedFind>> {
        check_collection(collection, Access::Read)?;
        if guest_reads_audit(caller, collection) {
            return Ok(None);
        }
        guard_users_input(collection, "filter", &request.filter)?;
        let limits = Limits::default();
        let projection = match &request.projection {
            Some(p) if !p.is_null() && p.as_object().is_none_or(|m| !m.is_empty()) => {
                guard_users_input(collection, "projection", p)?;
                Some(Projection::parse(p, &limits).map_err(query_error("projection"))?)
            }
            _ => None,
        };
        if let Some(sort) = &request.sort {
            guard_users_input(collection, "sort", sort)?;
        }
        let top = match request.top {
            None | Some(0) => DEFAULT_TOP,
            Some(n) => n.min(MAX_TOP),
        };
        let filter =
            self.narrowed(caller, collection, &filter_or_all(&request.filter), request.queryas.as_deref()).await?;
        // The projection is applied after decryption, not by the store: the store's projection could drop
        // `_id` or `_encrypt`, which decryption needs.
        let options =
            FindOptions { projection: None, sort: request.sort.clone(), skip: request.skip, limit: Some(top) };
        Ok(Some(PreparedFind { scope: store_scope(caller, Rights::READ), filter, options, projection }))
    }

    /// How many documents of `collection` the caller may read match `filter`.
    pub async fn count(&self, caller: &Caller, collection: &str, filter: &Value) -> Result<u64> {
        check_collection(collection, Access::Read)?;
        if guest_reads_audit(caller, collection) {
            return Ok(0);
        }
        guard_users_input(collection, "filter", filter)?;
        Ok(self.store.count(collection, &store_scope(caller, Rights::READ), &filter_or_all(filter)).await?)
    }

    /// The distinct values of `field` over the documents of `collection` the caller may read matching
    /// `filter`. Values of encrypted fields are returned as stored (encrypted).
    pub async fn distinct(&self, caller: &Caller, collection: &str, field: &str, filter: &Value) -> Result<Vec<Value>> {
        check_collection(collection, Access::Read)?;
        if guest_reads_audit(caller, collection) {
            return Ok(Vec::new());
        }
        if field.is_empty() {
            return Err(CoreError::InvalidRequest("field: a field name is required".into()));
        }
        guard_users_input(collection, "field", &Value::String(field.to_string()))?;
        guard_users_input(collection, "filter", filter)?;
        Ok(self.store.distinct(collection, &store_scope(caller, Rights::READ), field, &filter_or_all(filter)).await?)
    }

    /// Runs an aggregation pipeline over the documents of `collection` the caller may read (each
    /// `$lookup` reads with the same scope). A pipeline without a top-level `$limit` gets
    /// `{$limit: MAX_TOP}` appended. Result documents that still have their `_id` and `_encrypt` are
    /// decrypted; others are returned as computed.
    pub async fn aggregate(&self, caller: &Caller, collection: &str, pipeline: &Value) -> Result<Vec<Value>> {
        check_collection(collection, Access::Read)?;
        if guest_reads_audit(caller, collection) {
            return Ok(Vec::new());
        }
        let Value::Array(stages) = pipeline else {
            return Err(CoreError::InvalidRequest("pipeline: must be an array of stages".into()));
        };
        let mut stages = stages.clone();
        guard_pipeline(&mut stages)?;
        if collection == USERS {
            stages.insert(0, hide_hash_stage());
        }
        if !stages.iter().any(|s| s.get("$limit").is_some()) {
            stages.push(json!({"$limit": MAX_TOP}));
        }
        let docs = self.store.aggregate(collection, &store_scope(caller, Rights::READ), &Value::Array(stages)).await?;
        Ok(docs
            .into_iter()
            .map(|mut doc| {
                // Reshaped documents may carry values that no longer authenticate; they stay encrypted.
                let _ = self.fields.decrypt_document(collection, &mut doc);
                doc
            })
            .collect())
    }

    /// `filter` ANDed with "readable by `queryas` too" (see the module docs).
    async fn narrowed(
        &self,
        caller: &Caller,
        collection: &str,
        filter: &Value,
        queryas: Option<&str>,
    ) -> Result<Value> {
        let Some(principal) = queryas.filter(|q| !q.is_empty()) else { return Ok(filter.clone()) };
        let Some(principals) = self.principals_of(caller, principal).await? else { return Ok(filter.clone()) };
        let acl = if collection.ends_with(".files") { "metadata._acl" } else { "_acl" };
        let read = Rights::READ.0;
        Ok(json!({"$and": [
            filter,
            {acl: {"$elemMatch": {"_id": {"$in": principals}, "deny": {"$ne": true}, "rights": {"$bitsAllSet": read}}}},
            {"$nor": [{acl: {"$elemMatch": {"_id": {"$in": principals}, "deny": true, "rights": {"$bitsAnySet": read}}}}]},
        ]}))
    }

    /// The principal ids (itself and its roles) of user or role `id`, read with the caller's read scope;
    /// `None` when the principal is unrestricted (root, `admins` or a member of it).
    async fn principals_of(&self, caller: &Caller, id: &str) -> Result<Option<Vec<String>>> {
        if id == wellknown::ROOT || id == wellknown::ADMINS {
            return Ok(None);
        }
        let read = store_scope(caller, Rights::READ);
        let doc = self
            .store
            .find_one(USERS, &read, &json!({"_id": id}), None)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("queryas: principal '{id}' not found")))?;
        let roles = self.store.find(USERS, &read, &json!({"_type": "role"}), &FindOptions::default()).await?;
        let graph = RoleGraph::with_options(&roles, RoleGraphOptions { max_depth: self.config.max_role_depth });
        let is_user = doc.get("_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("user"));
        let implicit_users = is_user && id != wellknown::GUEST;
        let effective = graph.effective_roles(id, implicit_users);
        if effective.roles.iter().any(|r| r.id == wellknown::ADMINS) {
            return Ok(None);
        }
        Ok(Some(std::iter::once(id.to_string()).chain(effective.roles.into_iter().map(|r| r.id)).collect()))
    }

    /// A stored document as a client sees it: no password hash, encrypted fields decrypted.
    pub(crate) fn client_view(&self, collection: &str, mut doc: Value) -> Result<Value> {
        strip_hash(collection, &mut doc);
        self.fields.decrypt_document(collection, &mut doc).map_err(|e| decrypt_error(collection, e))?;
        Ok(doc)
    }

    /// A stored document in clear text, for computing an update (keeps the password hash).
    fn decrypted(&self, collection: &str, mut doc: Value) -> Result<Value> {
        self.fields.decrypt_document(collection, &mut doc).map_err(|e| decrypt_error(collection, e))?;
        Ok(doc)
    }

    async fn is_timeseries(&self, collection: &str) -> Result<bool> {
        Ok(self
            .store
            .list_collections()
            .await?
            .iter()
            .any(|c| c.name == collection && c.kind == CollectionKind::Timeseries))
    }

    // ----------------------------------------------------------------------------------------------
    // Inserts
    // ----------------------------------------------------------------------------------------------

    /// Inserts one document as `caller`; returns it as stored, decrypted.
    pub async fn insert_one(&self, caller: &Caller, collection: &str, doc: Value) -> Result<Value> {
        self.insert_many(caller, collection, vec![doc])
            .await?
            .pop()
            .ok_or_else(|| CoreError::Internal("insert returned no document".into()))
    }

    /// Inserts documents as `caller`, all or nothing; returns them as stored, decrypted.
    pub async fn insert_many(&self, caller: &Caller, collection: &str, docs: Vec<Value>) -> Result<Vec<Value>> {
        check_collection(collection, Access::Write)?;
        if docs.len() > MAX_INSERT_MANY {
            return Err(CoreError::InvalidRequest(format!("documents: at most {MAX_INSERT_MANY} per insert")));
        }
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let timeseries = self.is_timeseries(collection).await?;
        let now = now_string();
        let many = docs.len() > 1;
        let mut stored = Vec::with_capacity(docs.len());
        let mut plain = Vec::with_capacity(docs.len());
        let mut reasons = Vec::with_capacity(docs.len());
        for (i, doc) in docs.into_iter().enumerate() {
            let (s, p, r) = self.prepare_insert(caller, collection, doc, timeseries, &now).await.map_err(|e| {
                if !many {
                    return e;
                }
                match e {
                    CoreError::InvalidRequest(m) => CoreError::InvalidRequest(format!("document {i}: {m}")),
                    CoreError::AccessDenied(m) => CoreError::AccessDenied(format!("document {i}: {m}")),
                    other => other,
                }
            })?;
            stored.push(s);
            plain.push(p);
            reasons.push(r);
        }
        let written = self.store.insert_many(collection, stored).await?;
        if history::keeps_history(&self.config, collection) {
            let entries = written
                .iter()
                .zip(&reasons)
                .map(|(doc, reason)| {
                    let change = Change { caller, now: &now, reason: reason.as_deref() };
                    history::base_entry(collection, doc, &change)
                })
                .collect();
            if let Err(e) = self.write_history(collection, entries).await {
                tracing::error!(error = %e, collection, "writing history of an insert failed");
            }
        }
        for doc in written {
            self.publish_change(collection, ChangeOperation::Insert, doc);
        }
        if collection == USERS {
            for doc in &plain {
                identity::after_user_write(self, caller, None, Some(doc)).await?;
            }
        }
        Ok(plain
            .into_iter()
            .map(|mut doc| {
                strip_hash(collection, &mut doc);
                doc
            })
            .collect())
    }

    /// Builds the stored form of a new document; returns (stored, clear text, update reason).
    async fn prepare_insert(
        &self,
        caller: &Caller,
        collection: &str,
        doc: Value,
        timeseries: bool,
        now: &str,
    ) -> Result<(Value, Value, Option<String>)> {
        let Value::Object(mut map) = doc else {
            return Err(CoreError::InvalidRequest("document: must be a JSON object".into()));
        };
        let reason = take_transient(&mut map);
        let client_id = match map.get("_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(CoreError::InvalidRequest("_id: must be a string".into())),
        };
        let id = client_id.clone().unwrap_or_else(new_object_id);
        map.insert("_id".into(), Value::String(id.clone()));
        if collection == USERS {
            // Clients set passwords with `newpassword`; a hash is never taken from them.
            map.remove(PASSWORD_HASH);
        }
        if !timeseries {
            let kind = match map.get("_type") {
                None | Some(Value::Null) => "unknown".to_string(),
                Some(Value::String(s)) if s.is_empty() => "unknown".to_string(),
                Some(Value::String(s)) => s.to_lowercase(),
                Some(_) => return Err(CoreError::InvalidRequest("_type: must be a string".into())),
            };
            map.insert("_type".into(), Value::String(kind));
        }
        let mut doc = Value::Object(map);
        if collection == USERS {
            identity::prepare_user_write(self, caller, None, &mut doc).await?;
        }
        let mut requested = match acl_value(collection, &doc) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_acl(v).map_err(acl_error)?,
        };
        if collection == USERS && is_user_doc(&doc) && !requested.iter().any(|a| a.id == id && !a.deny) {
            // A new user may read and update (not delete) its own document (reference §4.1 step 8), so
            // it finds itself in queries like any other document it may read.
            let name = doc.get("name").and_then(Value::as_str).unwrap_or_default();
            requested.push(flowkeep_security::acl::user_self_entry(&id, name));
        }
        let acl = normalize_acl(&requested, WriteKind::Insert(caller.as_creator()), &self.normalize_options())
            .map_err(acl_error)?;
        set_acl(collection, &mut doc, Some(acl_to_value(&acl)))?;
        // A document inserted again with the `_id` of a deleted one continues its versions, so history
        // stays one line per `_id`.
        let version = match &client_id {
            Some(id) => self.latest_history_version(collection, &Value::String(id.clone())).await?.map_or(0, |v| v + 1),
            None => 0,
        };
        if let Some(map) = doc.as_object_mut() {
            set_stamp(map, CREATED_FIELDS, caller, now);
            set_stamp(map, MODIFIED_FIELDS, caller, now);
            map.insert("_version".into(), Value::from(version));
        }
        // The reserved-name guard (and, for restricted callers, create on the resulting ACL).
        caller
            .authorize_document(collection, &doc, Rights::CREATE)
            .map_err(|e| CoreError::AccessDenied(e.to_string()))?;
        let plain = doc.clone();
        self.fields.encrypt_document(collection, &mut doc).map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        Ok((doc, plain, reason))
    }

    pub(crate) fn normalize_options(&self) -> NormalizeOptions {
        NormalizeOptions { max_ace_count: self.config.max_ace_count, ..NormalizeOptions::default() }
    }

    // ----------------------------------------------------------------------------------------------
    // Single-document writes
    // ----------------------------------------------------------------------------------------------

    /// Loads document `filter` for a write needing `right`: `NotFound` when the caller cannot read it
    /// (indistinguishable from a missing document), `AccessDenied` when it can read but not `right`.
    async fn load_for_write(&self, caller: &Caller, collection: &str, filter: &Value, right: Rights) -> Result<Value> {
        let not_found = || CoreError::NotFound(format!("document not found in '{collection}'"));
        let doc = match self.store.find_one(collection, &store_scope(caller, Rights::READ), filter, None).await? {
            Some(doc) => doc,
            // The self rule: a user may read its own user document whatever its ACL says. Only that one
            // document is loaded unscoped, and `authorize_document` below decides on it.
            None if collection == USERS && filter == &json!({"_id": caller.user_id()}) => {
                let own =
                    self.store.find_one(collection, &Scope::system(), filter, None).await?.ok_or_else(not_found)?;
                if !caller.is_own_user_doc(collection, &own) {
                    return Err(not_found());
                }
                own
            }
            None => return Err(not_found()),
        };
        caller.authorize_document(collection, &doc, right).map_err(|e| CoreError::AccessDenied(e.to_string()))?;
        Ok(doc)
    }

    /// Replaces document `doc._id` with `doc` (OpenIAP's `updateone` with an item). `_created*` are kept,
    /// `_`-fields missing from `doc` are copied from the stored document (`null` deletes them; a missing
    /// or `null` `_acl` keeps the stored ACL), `_modified*` set; written, with `_version + 1` and a history
    /// delta, only when something really changed. Returns the document as stored, decrypted.
    pub async fn update_document(&self, caller: &Caller, collection: &str, doc: Value) -> Result<Value> {
        check_collection(collection, Access::Write)?;
        let Value::Object(mut new) = doc else {
            return Err(CoreError::InvalidRequest("document: must be a JSON object".into()));
        };
        let reason = take_transient(&mut new);
        let id = match new.get("_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(CoreError::InvalidRequest("_id: a full-document update needs the document's _id".into())),
        };
        let timeseries = self.is_timeseries(collection).await?;
        for _ in 0..WRITE_RETRIES {
            let old = self.load_for_write(caller, collection, &json!({"_id": id}), Rights::UPDATE).await?;
            let mut merged = new.clone();
            if let Some(old_map) = old.as_object() {
                for (k, v) in old_map {
                    if k.starts_with('_') && !merged.contains_key(k) {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            merged.retain(|k, v| !(k.starts_with('_') && v.is_null()));
            let mut merged = Value::Object(merged);
            // A client may send back values it read without decryption; compare and store clear text.
            // Values that do not decrypt here are plain text to encrypt.
            let _ = self.fields.decrypt_document(collection, &mut merged);
            let replace = ChangeOperation::Replace;
            match self.commit_update(caller, collection, &old, merged, reason.as_deref(), timeseries, replace).await? {
                Commit::Unchanged(doc) | Commit::Written(doc) => return Ok(without_hash(collection, doc)),
                Commit::LostRace => continue,
            }
        }
        Err(lost_too_often())
    }

    /// Applies the operator update `update` (`{$set: …}`) to the first document in the caller's UPDATE
    /// scope matching `filter`. The update runs on the decrypted document (so operators work on encrypted
    /// fields too) and is then written like a full update: versioned, with a history delta.
    pub async fn update_one(
        &self,
        caller: &Caller,
        collection: &str,
        filter: &Value,
        update: &Value,
    ) -> Result<UpdateResult> {
        check_collection(collection, Access::Write)?;
        let (parsed_filter, ops, filter) = parse_operator_update(collection, filter, update)?;
        let timeseries = self.is_timeseries(collection).await?;
        let scope = store_scope(caller, Rights::UPDATE);
        for _ in 0..WRITE_RETRIES {
            let Some(old) = self.store.find_one(collection, &scope, &filter, None).await? else {
                return Ok(UpdateResult::default());
            };
            match self.operator_update(caller, collection, &old, &ops, &parsed_filter, timeseries).await? {
                Commit::Unchanged(doc) => {
                    return Ok(UpdateResult { matched: 1, modified: 0, document: Some(without_hash(collection, doc)) })
                }
                Commit::Written(doc) => {
                    return Ok(UpdateResult { matched: 1, modified: 1, document: Some(without_hash(collection, doc)) })
                }
                Commit::LostRace => continue,
            }
        }
        Err(lost_too_often())
    }

    /// Updates the document matching `doc`'s `uniqueness` fields (default `_id`) if the caller can read
    /// one, or inserts `doc`. More than one match is a [`CoreError::Conflict`]. Matching is on stored
    /// values, so encrypted fields cannot serve as uniqueness keys.
    pub async fn insert_or_update_one(
        &self,
        caller: &Caller,
        collection: &str,
        doc: Value,
        uniqueness: &[String],
    ) -> Result<Value> {
        check_collection(collection, Access::Write)?;
        let Value::Object(mut map) = doc else {
            return Err(CoreError::InvalidRequest("document: must be a JSON object".into()));
        };
        let fields: Vec<&str> =
            if uniqueness.is_empty() { vec!["_id"] } else { uniqueness.iter().map(String::as_str).collect() };
        if let Some(bad) = fields.iter().find(|f| f.is_empty() || f.starts_with('$')) {
            return Err(CoreError::InvalidRequest(format!("uniqueness: '{bad}' is not a field name")));
        }
        let has_id = matches!(map.get("_id"), Some(Value::String(s)) if !s.is_empty());
        if fields == ["_id"] && !has_id {
            return self.insert_one(caller, collection, Value::Object(map)).await;
        }
        let mut query = Map::new();
        for f in &fields {
            query.insert((*f).to_string(), map.get(*f).cloned().unwrap_or(Value::Null));
        }
        let query = Value::Object(query);
        guard_users_input(collection, "uniqueness", &query)?;
        let options = FindOptions { limit: Some(2), ..FindOptions::default() };
        let found = self.store.find(collection, &store_scope(caller, Rights::READ), &query, &options).await?;
        match found.as_slice() {
            [] => self.insert_one(caller, collection, Value::Object(map)).await,
            [existing] => {
                let id = existing.get("_id").cloned().unwrap_or(Value::Null);
                map.insert("_id".into(), id);
                self.update_document(caller, collection, Value::Object(map)).await
            }
            _ => {
                Err(CoreError::Conflict(format!("{} is not unique: more than one document matches", fields.join(", "))))
            }
        }
    }

    /// Deletes document `id`. Needs DELETE on it (admins included, through their ACL entry or bypass; a
    /// user can never delete its own user document). Leaves a delete snapshot in history.
    pub async fn delete_one(&self, caller: &Caller, collection: &str, id: &str) -> Result<()> {
        check_collection(collection, Access::Write)?;
        let filter = json!({"_id": id});
        for _ in 0..WRITE_RETRIES {
            let old = self.load_for_write(caller, collection, &filter, Rights::DELETE).await?;
            if self.delete_stored(caller, collection, &old).await? {
                return Ok(());
            }
        }
        Err(lost_too_often())
    }

    /// Deletes the stored document `old` if it is still at its version; false when it changed (or went)
    /// meanwhile.
    async fn delete_stored(&self, caller: &Caller, collection: &str, old: &Value) -> Result<bool> {
        let outcome =
            self.store.delete_one(collection, &store_scope(caller, Rights::DELETE), &version_guard(old)).await?;
        if outcome.modified == 0 {
            return Ok(false);
        }
        let now = now_string();
        let change = Change { caller, now: &now, reason: None };
        if let Err(e) = self.write_history(collection, vec![history::delete_entry(collection, old, &change)]).await {
            tracing::error!(error = %e, collection, "writing the delete snapshot failed");
        }
        if is_files_collection(collection) {
            // The file's content goes with its metadata document; the DELETE check above was the file's.
            self.delete_chunks_of(collection, old).await;
        }
        self.publish_change(collection, ChangeOperation::Delete, outcome.document.unwrap_or_else(|| old.clone()));
        if collection == USERS {
            let plain = self.decrypted(collection, old.clone())?;
            identity::after_user_write(self, caller, Some(&plain), None).await?;
        }
        Ok(true)
    }

    /// Applies parsed operator update `ops` to stored `old` and commits the result.
    async fn operator_update(
        &self,
        caller: &Caller,
        collection: &str,
        old: &Value,
        ops: &Update,
        filter: &Filter,
        timeseries: bool,
    ) -> Result<Commit> {
        caller
            .authorize_document(collection, old, Rights::UPDATE)
            .map_err(|e| CoreError::AccessDenied(e.to_string()))?;
        let mut doc = self.decrypted(collection, old.clone())?;
        let ctx =
            UpdateContext { is_insert: false, query: Some(filter), now_millis: chrono::Utc::now().timestamp_millis() };
        if !ops.apply(&mut doc, &ctx).map_err(query_error("update"))? {
            return Ok(Commit::Unchanged(doc));
        }
        let reason = doc.as_object_mut().and_then(take_transient);
        self.commit_update(caller, collection, old, doc, reason.as_deref(), timeseries, ChangeOperation::Update).await
    }

    /// The one write path of every update: `new` is the whole new document in clear text; `old` the
    /// stored one; `operation` how the change is published (replace or update). See the module docs.
    #[allow(clippy::too_many_arguments)]
    async fn commit_update(
        &self,
        caller: &Caller,
        collection: &str,
        old: &Value,
        mut new: Value,
        reason: Option<&str>,
        timeseries: bool,
        operation: ChangeOperation,
    ) -> Result<Commit> {
        let old_plain = self.decrypted(collection, old.clone())?;
        let Some(map) = new.as_object_mut() else {
            return Err(CoreError::InvalidRequest("document: must be a JSON object".into()));
        };
        map.insert("_id".into(), old.get("_id").cloned().unwrap_or(Value::Null));
        for f in CREATED_FIELDS {
            match old.get(f) {
                Some(v) => map.insert(f.into(), v.clone()),
                None => map.remove(f),
            };
        }
        if !timeseries {
            if let Some(Value::String(kind)) = map.get("_type") {
                let lower = kind.to_lowercase();
                map.insert("_type".into(), Value::String(lower));
            }
        }
        if collection == USERS {
            // The hash is never sent to clients, so documents come back without it: keep the stored
            // one, and never take one from the client (`newpassword` sets passwords).
            map.remove(PASSWORD_HASH);
            if let Some(hash) = old.get(PASSWORD_HASH) {
                map.insert(PASSWORD_HASH.into(), hash.clone());
            }
        }
        self.apply_new_acl(caller, collection, old, &mut new)?;
        if collection == USERS {
            identity::prepare_user_write(self, caller, Some(&old_plain), &mut new).await?;
        }
        if comparable(&new) == comparable(&old_plain) {
            return Ok(Commit::Unchanged(old_plain));
        }
        let now = now_string();
        if let Some(map) = new.as_object_mut() {
            set_stamp(map, MODIFIED_FIELDS, caller, &now);
            map.insert("_version".into(), Value::from(version_of(old) + 1));
        }
        let plain = new.clone();
        // Unchanged encrypted values keep their stored ciphertext, so history records only real changes.
        for field in encrypted_fields(&new) {
            if new.get(&field) == old_plain.get(&field) {
                if let (Some(stored), Some(map)) = (old.get(&field).cloned(), new.as_object_mut()) {
                    map.insert(field, stored);
                }
            }
        }
        self.fields.encrypt_document(collection, &mut new).map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        // The self rule lets a user update its own user document whatever its ACL says; it was checked
        // by `authorize_document`, so that write is not narrowed by the ACL scope.
        let scope =
            if caller.is_own_user_doc(collection, old) { Scope::system() } else { store_scope(caller, Rights::UPDATE) };
        let outcome = self.store.replace_one(collection, &scope, &version_guard(old), new.clone(), false).await?;
        if outcome.matched == 0 {
            return Ok(Commit::LostRace);
        }
        let stored = outcome.document.unwrap_or(new);
        let change = Change { caller, now: &now, reason };
        if let Err(e) = self.record_update(collection, old, &stored, &change).await {
            tracing::error!(error = %e, collection, "writing history of an update failed");
        }
        self.publish_change(collection, operation, stored);
        if collection == USERS {
            identity::after_user_write(self, caller, Some(&old_plain), Some(&plain)).await?;
        }
        Ok(Commit::Written(plain))
    }

    /// Settles the ACL of an updated document: a missing or non-array ACL keeps the stored one (as in
    /// OpenIAP Flow); a changed one is normalised and needs [`Caller::authorize_acl_change`].
    fn apply_new_acl(&self, caller: &Caller, collection: &str, old: &Value, new: &mut Value) -> Result<()> {
        let old_acl = acl_value(collection, old).cloned();
        let requested = acl_value(collection, new).cloned();
        match requested {
            Some(acl @ Value::Array(_)) if Some(&acl) != old_acl.as_ref() => {
                let parsed: Vec<Ace> = parse_acl(&acl).map_err(acl_error)?;
                let normalized =
                    normalize_acl(&parsed, WriteKind::Update, &self.normalize_options()).map_err(acl_error)?;
                let value = acl_to_value(&normalized);
                if Some(&value) != old_acl.as_ref() {
                    caller.authorize_acl_change(collection, old, &normalized).map_err(acl_error)?;
                }
                set_acl(collection, new, Some(value))
            }
            Some(Value::Array(_)) => Ok(()),
            _ => set_acl(collection, new, old_acl),
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Many-document writes
    // ----------------------------------------------------------------------------------------------

    /// Applies operator update `update` to every document in the caller's UPDATE scope matching `filter`
    /// (at most [`MAX_MANY_WRITE`]), each versioned and recorded like [`Platform::update_one`]. Atomic per
    /// document: an error stops the command, leaving the documents before it updated.
    pub async fn update_many(
        &self,
        caller: &Caller,
        collection: &str,
        filter: &Value,
        update: &Value,
    ) -> Result<ManyResult> {
        check_collection(collection, Access::Write)?;
        let (parsed_filter, ops, filter) = parse_operator_update(collection, filter, update)?;
        let timeseries = self.is_timeseries(collection).await?;
        let scope = store_scope(caller, Rights::UPDATE);
        let selected = self.select_many(collection, &scope, &filter).await?;
        let mut result = ManyResult::default();
        for doc in selected {
            let one = json!({"$and": [filter, {"_id": doc.get("_id").cloned().unwrap_or(Value::Null)}]});
            let mut attempts = 0;
            // Re-read each document just before writing it, so a concurrent change is never lost.
            while let Some(old) = self.store.find_one(collection, &scope, &one, None).await? {
                match self.operator_update(caller, collection, &old, &ops, &parsed_filter, timeseries).await? {
                    Commit::Unchanged(_) => {
                        result.matched += 1;
                        break;
                    }
                    Commit::Written(_) => {
                        result.matched += 1;
                        result.modified += 1;
                        break;
                    }
                    Commit::LostRace => {
                        attempts += 1;
                        if attempts >= WRITE_RETRIES {
                            return Err(lost_too_often());
                        }
                    }
                }
            }
        }
        Ok(result)
    }

    /// Deletes every document in the caller's DELETE scope matching `filter` (at most
    /// [`MAX_MANY_WRITE`]), each with a delete snapshot. Every selected document is checked with
    /// [`Caller::authorize_document`] before any is deleted (so a filter that selects the caller's own
    /// user document deletes nothing); the deletes themselves are atomic per document.
    pub async fn delete_many(&self, caller: &Caller, collection: &str, filter: &Value) -> Result<u64> {
        check_collection(collection, Access::Write)?;
        guard_users_input(collection, "filter", filter)?;
        let filter = filter_or_all(filter);
        let scope = store_scope(caller, Rights::DELETE);
        let selected = self.select_many(collection, &scope, &filter).await?;
        for doc in &selected {
            caller
                .authorize_document(collection, doc, Rights::DELETE)
                .map_err(|e| CoreError::AccessDenied(e.to_string()))?;
        }
        let mut deleted = 0;
        for doc in selected {
            let one = json!({"$and": [filter, {"_id": doc.get("_id").cloned().unwrap_or(Value::Null)}]});
            let mut current = Some(doc);
            let mut attempts = 0;
            while let Some(old) = current {
                if self.delete_stored(caller, collection, &old).await? {
                    deleted += 1;
                    break;
                }
                attempts += 1;
                if attempts >= WRITE_RETRIES {
                    return Err(lost_too_often());
                }
                current = self.store.find_one(collection, &scope, &one, None).await?;
                if let Some(d) = &current {
                    caller
                        .authorize_document(collection, d, Rights::DELETE)
                        .map_err(|e| CoreError::AccessDenied(e.to_string()))?;
                }
            }
        }
        Ok(deleted)
    }

    /// The documents in `scope` matching `filter`, refusing more than [`MAX_MANY_WRITE`].
    async fn select_many(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<Vec<Value>> {
        let options = FindOptions { limit: Some(MAX_MANY_WRITE + 1), ..FindOptions::default() };
        let docs = self.store.find(collection, scope, filter, &options).await?;
        if docs.len() > MAX_MANY_WRITE {
            return Err(CoreError::InvalidRequest(format!(
                "filter: matches more than {MAX_MANY_WRITE} documents; narrow it or repeat the command"
            )));
        }
        Ok(docs)
    }
}

/// The guest never reads the audit trail, whatever its entries' ACLs say (reference §4).
fn guest_reads_audit(caller: &Caller, collection: &str) -> bool {
    caller.is_guest() && collection == AUDIT
}

fn lost_too_often() -> CoreError {
    CoreError::Conflict("the document kept changing concurrently; try again".into())
}

fn strip_hash(collection: &str, doc: &mut Value) {
    if collection == USERS {
        if let Some(map) = doc.as_object_mut() {
            map.remove(PASSWORD_HASH);
        }
    }
}

fn without_hash(collection: &str, mut doc: Value) -> Value {
    strip_hash(collection, &mut doc);
    doc
}

/// Parses the filter and the operator update of `update_one`/`update_many`.
fn parse_operator_update(collection: &str, filter: &Value, update: &Value) -> Result<(Filter, Update, Value)> {
    guard_users_input(collection, "filter", filter)?;
    // `$rename: {passwordhash: "x"}` would hand the hash back in `x`.
    guard_users_input(collection, "update", update)?;
    let filter = filter_or_all(filter);
    let limits = Limits::default();
    let parsed_filter = Filter::parse(&filter, &limits).map_err(query_error("filter"))?;
    if !flowkeep_query::update::is_operator_update(update) {
        return Err(CoreError::InvalidRequest("update: must be an operator update such as {\"$set\": {…}}".into()));
    }
    let ops = Update::parse(update, &limits).map_err(query_error("update"))?;
    Ok((parsed_filter, ops, filter))
}

/// The stage that removes the password hash from `users` documents before a client's stages see them.
fn hide_hash_stage() -> Value {
    json!({"$project": {PASSWORD_HASH: 0}})
}

/// Checks a client pipeline (recursively through `$facet`, `$lookup` and `$unionWith` sub-pipelines):
/// refuses reserved collections, writing stages and `$graphLookup` over `users`, and makes every read
/// of `users` drop the password hash first.
fn guard_pipeline(stages: &mut [Value]) -> Result<()> {
    for stage in stages.iter_mut() {
        let Some(map) = stage.as_object_mut() else { continue };
        for (name, spec) in map.iter_mut() {
            match name.as_str() {
                "$out" | "$merge" => {
                    return Err(CoreError::AccessDenied(format!("pipeline: {name} is not allowed")));
                }
                "$lookup" => guard_sub_read(spec, "from")?,
                "$unionWith" => {
                    if let Value::String(coll) = spec {
                        *spec = json!({"coll": coll.clone()});
                    }
                    guard_sub_read(spec, "coll")?;
                }
                "$graphLookup" => {
                    let from = spec.get("from").and_then(Value::as_str).unwrap_or_default();
                    check_collection(from, Access::Read)?;
                    if from == USERS {
                        return Err(CoreError::AccessDenied(
                            "pipeline: $graphLookup over users is not allowed; use $lookup".into(),
                        ));
                    }
                }
                "$facet" => {
                    if let Some(facets) = spec.as_object_mut() {
                        for sub in facets.values_mut() {
                            if let Value::Array(sub) = sub {
                                guard_pipeline(sub)?;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A `$lookup`/`$unionWith` spec naming its collection under `key`: refuses reserved collections, and
/// for `users` prepends the stage hiding the hash to its pipeline.
fn guard_sub_read(spec: &mut Value, key: &str) -> Result<()> {
    let Some(map) = spec.as_object_mut() else { return Ok(()) };
    let from = map.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    if !from.is_empty() {
        check_collection(&from, Access::Read)?;
    }
    // The equality join runs on the stored foreign documents, before any stage of the sub-pipeline, so
    // it must not be an oracle on the hash.
    if from == USERS {
        if let Some(field) = map.get("foreignField") {
            guard_users_input(USERS, "$lookup.foreignField", field)?;
        }
    }
    let pipeline = map.entry("pipeline").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(sub) = pipeline {
        guard_pipeline(sub)?;
        if from == USERS {
            sub.insert(0, hide_hash_stage());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_system_collections() {
        assert!(matches!(check_collection("flowkeep.keys", Access::Read), Err(CoreError::AccessDenied(_))));
        assert!(matches!(check_collection("FlowKeep.keys", Access::Read), Err(CoreError::AccessDenied(_))));
        assert!(check_collection("flowkeeping", Access::Write).is_ok());
        assert!(matches!(check_collection("audit", Access::Write), Err(CoreError::AccessDenied(_))));
        assert!(check_collection("audit", Access::Read).is_ok());
        assert!(matches!(check_collection("things_hist", Access::Write), Err(CoreError::AccessDenied(_))));
        assert!(matches!(check_collection("", Access::Read), Err(CoreError::InvalidRequest(_))));
    }

    #[test]
    fn users_input_cannot_reach_the_hash() {
        for bad in [
            json!({"passwordhash": {"$regex": "^a"}}),
            json!({"$expr": {"$gt": [{"$size": {"$objectToArray": "$$ROOT"}}, 0]}}),
            json!({"$and": [{"PasswordHash": {"$exists": true}}]}),
        ] {
            assert!(guard_users_input(USERS, "filter", &bad).is_err(), "{bad}");
            assert!(guard_users_input("things", "filter", &bad).is_ok());
        }
        assert!(guard_users_input(USERS, "filter", &json!({"username": "a"})).is_ok());
    }

    #[test]
    fn pipelines_hide_the_hash_and_refuse_system_collections() {
        let mut p = vec![
            json!({"$lookup": {"from": "users", "localField": "u", "foreignField": "_id", "as": "u"}}),
            json!({"$unionWith": "users"}),
            json!({"$facet": {"a": [{"$lookup": {"from": "users", "pipeline": [], "as": "x"}}]}}),
        ];
        assert!(guard_pipeline(&mut p).is_ok());
        assert_eq!(p[0]["$lookup"]["pipeline"][0], hide_hash_stage());
        assert_eq!(p[1]["$unionWith"]["pipeline"][0], hide_hash_stage());
        assert_eq!(p[2]["$facet"]["a"][0]["$lookup"]["pipeline"][0], hide_hash_stage());
        for bad in [
            json!({"$lookup": {"from": "flowkeep.keys", "pipeline": [], "as": "k"}}),
            json!({"$facet": {"a": [{"$unionWith": "flowkeep.keys"}]}}),
            json!({"$graphLookup": {"from": "users"}}),
            json!({"$lookup": {"from": "users", "localField": "x", "foreignField": "passwordhash", "as": "u"}}),
            json!({"$out": "x"}),
        ] {
            assert!(guard_pipeline(&mut [bad.clone()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_and_guards() {
        assert_eq!(version_of(&json!({"_version": 3})), 3);
        assert_eq!(version_of(&json!({"_version": 3.0})), 3);
        assert_eq!(version_of(&json!({"_version": "x"})), 0);
        assert_eq!(version_of(&json!({})), 0);
        assert_eq!(version_guard(&json!({"_id": "a", "_version": 2})), json!({"_id": "a", "_version": 2}));
        assert_eq!(version_guard(&json!({"_id": "a"})), json!({"_id": "a", "_version": {"$exists": false}}));
        let a = json!({"_id": "a", "x": 1, "_version": 1, "_modified": "t1"});
        let b = json!({"_id": "a", "x": 1, "_version": 2, "_modified": "t2"});
        assert_eq!(comparable(&a), comparable(&b));
    }
}
