//! Workitem queues: add (with its users role), get, update (with purge), delete (with purge), as the
//! caller through the document commands.

use super::{id_of, int, text, QueueRef, DEFAULT_MAX_RETRIES, ITEM_TYPE, MQ, QUEUE_TYPE, WORKITEMS};
use crate::audit_log::{actor_of, draft};
use crate::documents::{acl_error, USERS};
use crate::error::{CoreError, Result};
use crate::platform::Platform;
use crate::scope::store_scope;
use flowkeep_model::Rights;
use flowkeep_security::acl::acl_to_value;
use flowkeep_security::audit::Target;
use flowkeep_security::{parse_acl, policy, wellknown, Ace, AuditKind, Caller};
use flowkeep_store::{FindOptions, Scope};
use serde_json::{json, Map, Value};

/// The longest queue name accepted, in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 512;

/// How many items (or files) a purge deletes per round.
const PURGE_BATCH: usize = 1000;

/// The settings of a workitem queue, as `addworkitemqueue`/`updateworkitemqueue` carry them. Empty strings
/// mean "not set".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkitemQueueSpec {
    /// Unique among workitem queues.
    pub name: String,
    /// Runs an item gets before it fails; below 1 means [`DEFAULT_MAX_RETRIES`].
    pub maxretries: i64,
    /// Seconds before a retried item runs again.
    pub retrydelay: i64,
    /// Seconds before a pushed item first runs.
    pub initialdelay: i64,
    /// The OpenRPA workflow run for items (with `robotqueue`).
    pub workflowid: String,
    /// The robot queue told when items become ready (with `workflowid`).
    pub robotqueue: String,
    /// The AMQP queue told when items become ready.
    pub amqpqueue: String,
    /// The project the queue belongs to.
    pub projectid: String,
    /// The package consumers run, passed on in [`super::WorkitemReady`].
    pub packageid: String,
    /// Where successful items are copied to, by name (`success_wiqid` wins when set).
    pub success_wiq: String,
    /// Where successful items are copied to, by id.
    pub success_wiqid: String,
    /// Where failed items are copied to, by name (`failed_wiqid` wins when set).
    pub failed_wiq: String,
    /// Where failed items are copied to, by id.
    pub failed_wiqid: String,
    /// An explicit ACL replacing the default one.
    pub acl: Option<Value>,
}

fn queue_not_found() -> CoreError {
    CoreError::NotFound("Work item queue not found".into())
}

fn denied(e: flowkeep_security::SecurityError) -> CoreError {
    CoreError::AccessDenied(e.to_string())
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::InvalidRequest("name: a workitem queue needs a name".into()));
    }
    if name.len() > MAX_QUEUE_NAME_BYTES || name.contains('\0') {
        return Err(CoreError::InvalidRequest(format!(
            "name: at most {MAX_QUEUE_NAME_BYTES} bytes, without NUL characters"
        )));
    }
    Ok(name.to_string())
}

/// Sets `field` to `value`, or removes it when `value` is empty.
fn set_or_remove(map: &mut Map<String, Value>, field: &str, value: &str) {
    if value.trim().is_empty() {
        map.remove(field);
    } else {
        map.insert(field.into(), Value::String(value.trim().into()));
    }
}

impl Platform {
    /// The workitem queue `queue` as the caller may read it; `NotFound` ("Work item queue not found")
    /// when it does not exist or the caller may not read it.
    pub async fn get_workitem_queue(&self, caller: &Caller, queue: &QueueRef) -> Result<Value> {
        if queue.is_empty() {
            return Err(CoreError::InvalidRequest("wiq or wiqid: name the workitem queue".into()));
        }
        let filter = if queue.id.is_empty() {
            json!({"_type": QUEUE_TYPE, "name": queue.name})
        } else {
            json!({"_type": QUEUE_TYPE, "_id": queue.id})
        };
        let doc = self.store.find_one(MQ, &store_scope(caller, Rights::READ), &filter, None).await?;
        let doc = doc.ok_or_else(queue_not_found)?;
        self.client_view(MQ, doc)
    }

    /// The stored queue `id` whatever the caller may see. Named system path: used only to make a decision
    /// on the queue's ACL (an item's current queue) or to act for the system once a decision was made.
    pub(crate) async fn queue_by_id_system(&self, id: &str) -> Result<Option<Value>> {
        Ok(self.store.find_one(MQ, &Scope::system(), &json!({"_type": QUEUE_TYPE, "_id": id}), None).await?)
    }

    /// Whether a workitem queue named `name` exists other than `except_id`. Named system path: queue names
    /// are global (the reference checks with the root token).
    async fn queue_name_taken(&self, name: &str, except_id: Option<&str>) -> Result<bool> {
        let mut filter = json!({"_type": QUEUE_TYPE, "name": name});
        if let (Some(id), Some(map)) = (except_id, filter.as_object_mut()) {
            map.insert("_id".into(), json!({"$ne": id}));
        }
        Ok(self.store.count(MQ, &Scope::system(), &filter).await? > 0)
    }

    /// Resolves a success/failed target named by `id` or `name` (the id wins) to `(id, name)`, checking
    /// that the caller may send items there ([`policy::authorize_workitem_target`]). `None` when neither
    /// is set.
    pub(crate) async fn resolve_target(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
    ) -> Result<Option<(String, String)>> {
        let target = QueueRef::from_wire(id, name);
        if target.is_empty() {
            return Ok(None);
        }
        let doc = self.get_workitem_queue(caller, &target).await.map_err(|e| match e {
            CoreError::NotFound(_) => CoreError::NotFound("success/failed queue: Work item queue not found".into()),
            other => other,
        })?;
        policy::authorize_workitem_target(caller, &doc).map_err(denied)?;
        Ok(Some((id_of(&doc), text(&doc, "name"))))
    }

    /// Sets `<prefix>_wiq`/`<prefix>_wiqid` of `map` from the request, checking a target that changed.
    async fn settle_target(
        &self,
        caller: &Caller,
        map: &mut Map<String, Value>,
        prefix: &str,
        id: &str,
        name: &str,
    ) -> Result<()> {
        let (id_field, name_field) = (format!("{prefix}_wiqid"), format!("{prefix}_wiq"));
        let stored_id = map.get(&id_field).and_then(Value::as_str).unwrap_or_default().to_string();
        let unchanged = if id.trim().is_empty() {
            !name.trim().is_empty() && map.get(&name_field).and_then(Value::as_str) == Some(name.trim())
        } else {
            id.trim() == stored_id
        };
        if unchanged && !stored_id.is_empty() {
            return Ok(());
        }
        match self.resolve_target(caller, id, name).await? {
            Some((tid, tname)) => {
                map.insert(id_field, Value::String(tid));
                map.insert(name_field, Value::String(tname));
            }
            None => {
                map.remove(&id_field);
                map.remove(&name_field);
            }
        }
        Ok(())
    }

    /// Creates a workitem queue (reference §8.2 `addworkitemqueue`). A duplicate name is a `Conflict`.
    /// Unless `skiprole`, a role `"<name> users"` (admins and the creator full control; members the
    /// creator and `workitem queue admins`) gets full control of the queue and is recorded as
    /// `usersrole`; with `skiprole`, `workitem queue admins` gets it instead. An explicit ACL replaces
    /// either. The creator and `admins` always get full control. Returns the stored queue.
    pub async fn add_workitem_queue(&self, caller: &Caller, spec: &WorkitemQueueSpec, skiprole: bool) -> Result<Value> {
        policy::authorize_workitem_queue_create(caller).map_err(denied)?;
        let name = check_name(&spec.name)?;
        if self.queue_name_taken(&name, None).await? {
            return Err(CoreError::Conflict(format!("a workitem queue named '{name}' exists")));
        }
        let mut map = Map::new();
        map.insert("_type".into(), Value::String(QUEUE_TYPE.into()));
        map.insert("name".into(), Value::String(name.clone()));
        self.settle_target(caller, &mut map, "success", &spec.success_wiqid, &spec.success_wiq).await?;
        self.settle_target(caller, &mut map, "failed", &spec.failed_wiqid, &spec.failed_wiq).await?;
        apply_settings(&mut map, spec);
        let explicit = match &spec.acl {
            None | Some(Value::Null) => None,
            Some(acl) => Some(parse_acl(acl).map_err(acl_error)?),
        };
        let role = if skiprole { None } else { Some(self.ensure_queue_role(caller, &name).await?) };
        let acl = match (&explicit, &role) {
            (Some(acl), _) => acl.clone(),
            (None, Some((role_id, role_name, _))) => vec![Ace::allow(role_id, role_name, Rights::FULL_CONTROL)],
            (None, None) => {
                vec![Ace::allow(wellknown::WORKITEM_QUEUE_ADMINS, "workitem queue admins", Rights::FULL_CONTROL)]
            }
        };
        map.insert("_acl".into(), acl_to_value(&acl));
        if let Some((role_id, _, _)) = &role {
            map.insert("usersrole".into(), Value::String(role_id.clone()));
        }
        let created_role = role.as_ref().filter(|r| r.2).map(|r| r.0.clone());
        let stored = match self.insert_one(caller, MQ, Value::Object(map)).await {
            Ok(stored) => stored,
            Err(e) => {
                self.remove_role_after_failure(caller, created_role.as_deref()).await;
                return Err(e);
            }
        };
        // Two adds racing past the check above: the older queue keeps the name, the newer is undone.
        // Named system path: names are global.
        let same = FindOptions { sort: Some(json!({"_id": 1})), ..FindOptions::limit(1) };
        let first = self.store.find(MQ, &Scope::system(), &json!({"_type": QUEUE_TYPE, "name": name}), &same).await?;
        if first.first().map(id_of) != Some(id_of(&stored)) {
            if let Err(e) = self.delete_one(caller, MQ, &id_of(&stored)).await {
                tracing::error!(error = %e, "could not undo a duplicate workitem queue");
            }
            self.remove_role_after_failure(caller, created_role.as_deref()).await;
            return Err(CoreError::Conflict(format!("a workitem queue named '{name}' exists")));
        }
        Ok(stored)
    }

    /// The role `"<name> users"`: an existing one the caller may update is reused, otherwise it is created
    /// (a name taken by a role the caller cannot update is a `Conflict`: reusing it would hand the queue
    /// to that role's members). Returns `(id, name, created)`.
    async fn ensure_queue_role(&self, caller: &Caller, queue_name: &str) -> Result<(String, String, bool)> {
        let role_name = format!("{queue_name} users");
        let filter = json!({"_type": "role", "name": role_name});
        if let Some(existing) = self.store.find_one(USERS, &store_scope(caller, Rights::UPDATE), &filter, None).await? {
            return Ok((id_of(&existing), role_name, false));
        }
        let admins = Ace::allow(wellknown::ADMINS, "admins", Rights::FULL_CONTROL);
        let creator = Ace::allow(caller.user_id(), caller.name(), Rights::FULL_CONTROL);
        let role = json!({
            "_type": "role",
            "name": role_name,
            "members": [
                {"_id": caller.user_id(), "name": caller.name()},
                {"_id": wellknown::WORKITEM_QUEUE_ADMINS, "name": "workitem queue admins"},
            ],
            "_acl": acl_to_value(&[admins, creator]),
        });
        let stored = self.insert_one(caller, USERS, role).await?;
        Ok((id_of(&stored), role_name, true))
    }

    async fn remove_role_after_failure(&self, caller: &Caller, role: Option<&str>) {
        if let Some(role) = role {
            if let Err(e) = self.delete_one(caller, USERS, role).await {
                tracing::warn!(error = %e, role, "could not remove the role of a workitem queue that was not created");
            }
        }
    }

    /// Updates workitem queue `queue` (reference §8.2 `updateworkitemqueue`): loaded with the caller's
    /// read, saved with its update right. `workflowid`, `robotqueue`, `projectid` and `amqpqueue` take
    /// whatever is sent (empty removes them); a new name must be unique; an ACL is changed only when one is
    /// sent. With `purge`, the queue's items and their files are deleted first (audited). Returns the
    /// stored queue.
    pub async fn update_workitem_queue(
        &self,
        caller: &Caller,
        queue: &QueueRef,
        spec: &WorkitemQueueSpec,
        purge: bool,
    ) -> Result<Value> {
        let stored = self.get_workitem_queue(caller, queue).await?;
        let id = id_of(&stored);
        let Value::Object(mut map) = stored.clone() else {
            return Err(CoreError::Internal("a stored queue is not an object".into()));
        };
        if !spec.name.trim().is_empty() {
            let name = check_name(&spec.name)?;
            if Some(name.as_str()) != stored.get("name").and_then(Value::as_str) {
                if self.queue_name_taken(&name, Some(&id)).await? {
                    return Err(CoreError::Conflict(format!("a workitem queue named '{name}' exists")));
                }
                map.insert("name".into(), Value::String(name));
            }
        }
        self.settle_target(caller, &mut map, "success", &spec.success_wiqid, &spec.success_wiq).await?;
        self.settle_target(caller, &mut map, "failed", &spec.failed_wiqid, &spec.failed_wiq).await?;
        apply_settings(&mut map, spec);
        match &spec.acl {
            None | Some(Value::Null) => {
                map.remove("_acl");
            }
            Some(acl) => {
                map.insert("_acl".into(), acl_to_value(&parse_acl(acl).map_err(acl_error)?));
            }
        }
        if purge {
            policy::authorize_workitem_queue_purge(caller, &stored, false).map_err(denied)?;
            self.purge_queue(caller, &stored).await?;
        }
        self.update_document(caller, MQ, Value::Object(map)).await
    }

    /// Deletes workitem queue `queue` and its `usersrole` role (reference §8.2 `deleteworkitemqueue`).
    /// The caller needs delete on the queue. A queue that still has items is refused (`Conflict`) unless
    /// `purge`, which deletes them and their files first (audited).
    pub async fn delete_workitem_queue(&self, caller: &Caller, queue: &QueueRef, purge: bool) -> Result<()> {
        let stored = self.get_workitem_queue(caller, queue).await?;
        let id = id_of(&stored);
        // Delete on the queue, asked before anything else (also before telling whether it has items).
        policy::authorize_workitem_queue_purge(caller, &stored, true).map_err(denied)?;
        if purge {
            self.purge_queue(caller, &stored).await?;
        } else {
            // Named system path: whether the queue is empty is a fact about the queue, whoever can see
            // its items.
            let items =
                self.store.count(WORKITEMS, &Scope::system(), &json!({"_type": ITEM_TYPE, "wiqid": id})).await?;
            if items > 0 {
                return Err(CoreError::Conflict(format!(
                    "the workitem queue has {items} items; delete them or purge the queue"
                )));
            }
        }
        self.delete_one(caller, MQ, &id).await?;
        let role = text(&stored, "usersrole");
        if !role.is_empty() {
            match self.delete_one(caller, USERS, &role).await {
                Ok(()) | Err(CoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, role, "could not delete the users role of a deleted workitem queue")
                }
            }
        }
        Ok(())
    }

    /// Deletes every item of `queue` and their files, after auditing the purge. Named system path, after
    /// [`policy::authorize_workitem_queue_purge`]: the queue's owner decides over its content, whatever the
    /// items' own ACLs say.
    async fn purge_queue(&self, caller: &Caller, queue: &Value) -> Result<()> {
        let id = id_of(queue);
        let mut entry = draft(AuditKind::WorkitemQueuePurged);
        entry.actor = actor_of(caller);
        entry.target = Target { collection: Some(MQ.into()), id: Some(id.clone()), name: Some(text(queue, "name")) };
        self.audit(entry).await?;
        let root = Caller::system_root();
        let (files, _) = crate::files::bucket_collections("")?;
        for (collection, filter) in
            [(WORKITEMS, json!({"_type": ITEM_TYPE, "wiqid": id})), (files.as_str(), json!({"metadata.wiqid": id}))]
        {
            loop {
                let batch = FindOptions { projection: Some(json!({"_id": 1})), ..FindOptions::limit(PURGE_BATCH) };
                let found = self.store.find(collection, &Scope::system(), &filter, &batch).await?;
                if found.is_empty() {
                    break;
                }
                let ids: Vec<Value> = found.iter().map(|d| d.get("_id").cloned().unwrap_or(Value::Null)).collect();
                let deleted = self.delete_many(&root, collection, &json!({"_id": {"$in": ids}})).await?;
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Copies the plain settings of `spec` into queue document `map`.
fn apply_settings(map: &mut Map<String, Value>, spec: &WorkitemQueueSpec) {
    let maxretries = if spec.maxretries < 1 { DEFAULT_MAX_RETRIES } else { spec.maxretries };
    map.insert("maxretries".into(), Value::from(maxretries));
    map.insert("retrydelay".into(), Value::from(spec.retrydelay.max(0)));
    map.insert("initialdelay".into(), Value::from(spec.initialdelay.max(0)));
    for (field, value) in [
        ("workflowid", &spec.workflowid),
        ("robotqueue", &spec.robotqueue),
        ("amqpqueue", &spec.amqpqueue),
        ("projectid", &spec.projectid),
        ("packageid", &spec.packageid),
    ] {
        set_or_remove(map, field, value);
    }
}

/// The queue's `maxretries`, `retrydelay` and `initialdelay`.
pub(crate) fn queue_timing(queue: &Value) -> (i64, i64, i64) {
    let maxretries = int(queue, "maxretries", DEFAULT_MAX_RETRIES);
    let maxretries = if maxretries < 1 { DEFAULT_MAX_RETRIES } else { maxretries };
    (maxretries, int(queue, "retrydelay", 0).max(0), int(queue, "initialdelay", 0).max(0))
}
