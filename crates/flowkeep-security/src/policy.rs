//! Who may write what where, beyond a document's ACL: the rules of the `users` collection (creating
//! identities, admin-only fields, the self rules), of collections themselves (creating, dropping, the
//! system's reserved names, file chunks), of indexes, files, customers, workitem queues and their items,
//! and of who sees which connected client. Pure decisions; the core gathers the documents and asks.

use crate::caller::Caller;
use crate::error::SecurityError;
use flowkeep_model::Rights;
use serde_json::{Map, Value};

/// Collections whose names start with this hold system state (the token signing keys): no client, admins
/// included, may read or write them through commands.
pub const RESERVED_COLLECTION_PREFIX: &str = "flowkeep.";

/// The audit trail: written only by the system.
pub const AUDIT_COLLECTION: &str = "audit";

/// The principals: users, roles and customers.
pub const USERS_COLLECTION: &str = "users";

/// The suffix of history collections, written only by the system.
pub const HISTORY_SUFFIX: &str = "_hist";

/// The suffix of file content collections (`<bucket>.chunks`): read and written only by the files
/// commands, never through document commands.
pub const CHUNKS_SUFFIX: &str = ".chunks";

/// Collections that can never be dropped.
const UNDROPPABLE: &[&str] = &[USERS_COLLECTION, AUDIT_COLLECTION];

/// What a command does to a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionAccess {
    /// Reads documents.
    Read,
    /// Writes documents, or creates or drops the collection.
    Write,
}

fn denied(message: impl Into<String>) -> SecurityError {
    SecurityError::AccessDenied(message.into())
}

/// Whether `collection` holds file content (`<bucket>.chunks`, any case).
pub fn is_chunks_collection(collection: &str) -> bool {
    let suffix = CHUNKS_SUFFIX;
    collection.len() >= suffix.len()
        && collection.get(collection.len() - suffix.len()..).is_some_and(|s| s.eq_ignore_ascii_case(suffix))
}

/// May a client command touch `collection` this way? Reserved system collections never; file content
/// (`*.chunks`) never — a chunk carries no ACL of its own, its file's metadata decides, so content is
/// reached only through download; `audit` and history collections only for reading.
pub fn authorize_collection_access(collection: &str, access: CollectionAccess) -> Result<(), SecurityError> {
    // Case-insensitive: a backend with case-insensitive names must not offer a way around the guard.
    let prefix = RESERVED_COLLECTION_PREFIX;
    if collection.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)) {
        return Err(denied(format!("collection '{collection}' is reserved for the system")));
    }
    if is_chunks_collection(collection) {
        return Err(denied(format!("collection '{collection}' holds file content; use download")));
    }
    if access == CollectionAccess::Write {
        if collection == AUDIT_COLLECTION {
            return Err(denied("the audit collection is written only by the system"));
        }
        if collection.ends_with(HISTORY_SUFFIX) {
            return Err(denied(format!("history collection '{collection}' is written only by the system")));
        }
    }
    Ok(())
}

/// May `caller` create `collection`? Any signed-in caller (an insert would create it anyway), not a guest.
pub fn authorize_collection_create(caller: &Caller, collection: &str) -> Result<(), SecurityError> {
    authorize_collection_access(collection, CollectionAccess::Write)?;
    if caller.is_guest() {
        return Err(denied("guests may not create collections"));
    }
    Ok(())
}

/// May `caller` drop `collection`? Admins only, and never `users` or `audit`.
pub fn authorize_collection_drop(caller: &Caller, collection: &str) -> Result<(), SecurityError> {
    authorize_collection_access(collection, CollectionAccess::Write)?;
    if !caller.is_admin() {
        return Err(denied("only admins may drop collections"));
    }
    if UNDROPPABLE.contains(&collection) {
        return Err(denied(format!("collection '{collection}' cannot be dropped")));
    }
    Ok(())
}

/// May `caller` upload a file? Any signed-in caller but the guest (reference: guests may not upload).
pub fn authorize_file_upload(caller: &Caller) -> Result<(), SecurityError> {
    if caller.is_guest() {
        return Err(denied("guests may not upload files"));
    }
    Ok(())
}

/// May `caller` create an index on `collection` with these options? The caller must be signed in (not
/// the guest) and may write the collection. A plain or sparse index only changes how fast the caller's
/// own queries run, so any such caller may create one. A `unique` or TTL (`expire_after_seconds`) index
/// acts on documents the caller may not see — a TTL index deletes them, a unique index refuses their
/// writes and reveals that they exist — so those are for admins only.
pub fn authorize_index_create(caller: &Caller, collection: &str, unique: bool, ttl: bool) -> Result<(), SecurityError> {
    authorize_collection_access(collection, CollectionAccess::Write)?;
    if caller.is_guest() {
        return Err(denied("guests may not create indexes"));
    }
    if (unique || ttl) && !caller.is_admin() {
        return Err(denied("only admins may create unique or TTL indexes"));
    }
    Ok(())
}

/// May a caller list the indexes of `collection`? Whoever may read it (the names and keys of indexes
/// say nothing about documents).
pub fn authorize_index_list(collection: &str) -> Result<(), SecurityError> {
    authorize_collection_access(collection, CollectionAccess::Read)
}

/// May `caller` drop an index of `collection`? Admins only: queries of every user depend on it.
pub fn authorize_index_drop(caller: &Caller, collection: &str) -> Result<(), SecurityError> {
    authorize_collection_access(collection, CollectionAccess::Write)?;
    if !caller.is_admin() {
        return Err(denied("only admins may drop indexes"));
    }
    Ok(())
}

/// May `caller` create a customer (`ensurecustomer` finding none)? Admins only, as for every principal
/// that is not a role ([`authorize_principal_write`]); the reference also lets users without a customer
/// and resellers create one, which needs multi-tenancy we do not have yet.
pub fn authorize_customer_create(caller: &Caller) -> Result<(), SecurityError> {
    if !caller.is_admin() {
        return Err(denied("only admins may create customers"));
    }
    Ok(())
}

/// May `caller` create a customer on behalf of the user document `target` (`ensureas`)? It must be a
/// user (not a role or customer) that the caller may read; the customer then gives it full control.
pub fn authorize_ensure_as(caller: &Caller, target: &Value) -> Result<(), SecurityError> {
    let is_user = target.get("_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("user"));
    if !is_user {
        return Err(denied("ensureas must name a user"));
    }
    caller.authorize_document(USERS_COLLECTION, target, Rights::READ)
}

/// May `caller` see a connected client signed in as user `owner_user_id` (`getclients`)? Admins see
/// every client, everyone else only its own connections.
pub fn may_see_client(caller: &Caller, owner_user_id: &str) -> bool {
    caller.is_admin() || (!owner_user_id.is_empty() && caller.user_id() == owner_user_id)
}

/// May `caller` set `passwordhash` directly? Admins only (to import users from OpenIAP Flow with their
/// bcrypt hashes); everyone else changes a password through `newpassword`.
pub fn may_write_password_hash(caller: &Caller) -> bool {
    caller.is_admin()
}

/// The collection of queue documents (`_type` `queue`, `exchange`, `workitemqueue`).
pub const MQ_COLLECTION: &str = "mq";

/// The collection of workitems.
pub const WORKITEMS_COLLECTION: &str = "workitems";

/// May `caller` create a workitem queue? Any signed-in caller but the guest; the queue (and its role)
/// then give the creator full control. The reference lets any caller with a token create one; a queue
/// created by the shared guest identity would be everyone's.
pub fn authorize_workitem_queue_create(caller: &Caller) -> Result<(), SecurityError> {
    if caller.is_guest() {
        return Err(denied("guests may not create workitem queues"));
    }
    Ok(())
}

/// May `caller` purge (delete every item and file of) the workitem queue `queue`? Purging on update needs
/// update on the queue document, purging on delete needs delete on it: whoever may change or remove the
/// queue decides over its content. The items are then removed whatever their own ACLs say, since an item
/// outliving its queue would be an orphan nobody can pop.
pub fn authorize_workitem_queue_purge(caller: &Caller, queue: &Value, deleting: bool) -> Result<(), SecurityError> {
    let right = if deleting { Rights::DELETE } else { Rights::UPDATE };
    caller.authorize_document(MQ_COLLECTION, queue, right)
}

/// May `caller` push items to the workitem queue `queue`? It needs read and invoke on the queue document
/// (reference §8.2: the queue must be readable, and invoke is the right to use it).
pub fn authorize_workitem_push(caller: &Caller, queue: &Value) -> Result<(), SecurityError> {
    caller.authorize_document(MQ_COLLECTION, queue, Rights::READ | Rights::INVOKE)
}

/// May `caller` pop from `queue` (and, when given, this `item` of it)? Read and invoke on the item (as in
/// the reference) and, beyond it, read and invoke on the queue's *current* ACL, so revoking a consumer on
/// the queue also stops it popping items pushed before (the reference checks the current queue ACL only
/// on update), and a caller without rights on the queue is refused even while the queue is empty.
pub fn authorize_workitem_pop(caller: &Caller, queue: &Value, item: Option<&Value>) -> Result<(), SecurityError> {
    caller.authorize_document(MQ_COLLECTION, queue, Rights::READ | Rights::INVOKE)?;
    match item {
        Some(item) => caller.authorize_document(WORKITEMS_COLLECTION, item, Rights::READ | Rights::INVOKE),
        None => Ok(()),
    }
}

/// May `caller` update `item` of `queue` (state, payload, files)? Read on the item and invoke on the
/// queue's current ACL (reference §8.2); the item is then written by the system, so the item's own update
/// right is not needed.
pub fn authorize_workitem_update(caller: &Caller, queue: &Value, item: &Value) -> Result<(), SecurityError> {
    caller.authorize_document(WORKITEMS_COLLECTION, item, Rights::READ)?;
    caller.authorize_document(MQ_COLLECTION, queue, Rights::INVOKE)
}

/// May `caller` delete `item` (and its files)? Invoke and delete on the item (reference §8.2).
pub fn authorize_workitem_delete(caller: &Caller, item: &Value) -> Result<(), SecurityError> {
    caller.authorize_document(WORKITEMS_COLLECTION, item, Rights::INVOKE | Rights::DELETE)
}

/// May `caller` name `target` as the queue that successful or failed items go to (on a queue, or on one
/// item)? Read and invoke on the target, the same as pushing to it: the copy is later pushed by the
/// system, so the check is made when the target is chosen. The reference does not check it at all, which
/// lets anyone who may complete an item push into any queue.
pub fn authorize_workitem_target(caller: &Caller, target: &Value) -> Result<(), SecurityError> {
    caller.authorize_document(MQ_COLLECTION, target, Rights::READ | Rights::INVOKE).map_err(|e| match e {
        SecurityError::AccessDenied(m) => denied(format!("success/failed queue: {m}")),
        other => other,
    })
}

/// Queue and exchange names no client may register, send to or name as `replyto` (reference §7.1: the
/// `openflow` queue and the internal `openflow`/`openflow_logs` exchanges).
pub const RESERVED_QUEUE_NAMES: &[&str] = &["openflow", "openflow_logs"];

/// The rights rules of queues and exchanges (reference `amqp_force_sender_has_invoke`,
/// `amqp_force_consumer_has_update`; `amqp_force_sender_has_read` is always on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueuePermissions {
    /// Sending (and consuming) needs invoke instead of read on the queue's document.
    pub sender_has_invoke: bool,
    /// Consuming needs update on the queue's document.
    pub consumer_has_update: bool,
}

/// What a caller does with a queue or exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAccess {
    /// `registerqueue`, `registerexchange`: consume from it (or bind to it).
    Consume,
    /// `queuemessage`: publish to it.
    Send,
}

/// The outcome of [`authorize_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueDecision {
    /// Go ahead.
    Allowed,
    /// Nothing governs the name yet: the caller registers it and becomes its owner (the core creates the
    /// `mq` document with the caller's ACL).
    Claim,
}

/// Refuses reserved queue and exchange names ([`RESERVED_QUEUE_NAMES`], compared lower-cased).
pub fn authorize_queue_name(what: &str, name: &str) -> Result<(), SecurityError> {
    let lower = name.trim().to_lowercase();
    if RESERVED_QUEUE_NAMES.contains(&lower.as_str()) {
        return Err(denied(format!("Access denied: the {what} name '{lower}' is reserved")));
    }
    Ok(())
}

/// May `caller` use the queue or exchange `name` (already lower-cased) for `access`? Reference §7.2/§7.3,
/// in order: a name equal to the caller's own id is allowed; a name equal to one of its roles' ids is
/// allowed for sending, and for consuming unless a stricter rule is configured; otherwise the governing
/// document (`doc`: a `users` document of that id, or the `mq` queue, exchange or workitem queue of
/// that name, found by the core whatever the caller may see) decides in `collection`: read — invoke with
/// `sender_has_invoke`, update for consuming with `consumer_has_update`. Without such a document,
/// consuming claims the name ([`QueueDecision::Claim`]; refused to the shared guest identity, beyond the
/// reference, since a guest-owned queue would be everyone's) and sending is allowed unchecked (the
/// reference's quirk: the message then finds no queue and its sender gets a `timeout`).
pub fn authorize_queue(
    caller: &Caller,
    name: &str,
    access: QueueAccess,
    permissions: QueuePermissions,
    governing: Option<(&str, &Value)>,
) -> Result<QueueDecision, SecurityError> {
    authorize_queue_name("queue", name)?;
    if name == caller.user_id().to_lowercase() {
        return Ok(QueueDecision::Allowed);
    }
    let strict = permissions.consumer_has_update || permissions.sender_has_invoke;
    let is_role = caller.roles().iter().any(|r| r.id.to_lowercase() == name);
    if is_role && (access == QueueAccess::Send || !strict) {
        return Ok(QueueDecision::Allowed);
    }
    let right = match access {
        QueueAccess::Consume if permissions.consumer_has_update => Rights::UPDATE,
        _ if permissions.sender_has_invoke => Rights::INVOKE,
        _ => Rights::READ,
    };
    match governing {
        Some((collection, doc)) => caller
            .authorize_document(collection, doc, right)
            .map(|()| QueueDecision::Allowed)
            .map_err(|e| denied(format!("Access denied: queue '{name}': {e}"))),
        None if access == QueueAccess::Send => Ok(QueueDecision::Allowed),
        None if caller.is_guest() => Err(denied(format!("Access denied: guests may not register queue '{name}'"))),
        None if is_role => Err(denied(format!("Access denied: queue '{name}' is a role's queue"))),
        None => Ok(QueueDecision::Claim),
    }
}

/// May `caller` use the exchange `name` (already lower-cased) for `access`? Reference §7.3/§7.4: the
/// `mq` exchange document (`doc`, found whatever the caller may see) needs read — invoke with
/// `sender_has_invoke`, update for registering with `consumer_has_update`; without one, registering
/// claims it (not for the guest) and sending is allowed.
pub fn authorize_exchange(
    caller: &Caller,
    name: &str,
    access: QueueAccess,
    permissions: QueuePermissions,
    doc: Option<&Value>,
) -> Result<QueueDecision, SecurityError> {
    authorize_queue_name("exchange", name)?;
    let right = match access {
        QueueAccess::Consume if permissions.consumer_has_update => Rights::UPDATE,
        _ if permissions.sender_has_invoke => Rights::INVOKE,
        _ => Rights::READ,
    };
    match doc {
        Some(doc) => caller
            .authorize_document(MQ_COLLECTION, doc, right)
            .map(|()| QueueDecision::Allowed)
            .map_err(|e| denied(format!("Access denied: exchange '{name}': {e}"))),
        None if access == QueueAccess::Send => Ok(QueueDecision::Allowed),
        None if caller.is_guest() => Err(denied(format!("Access denied: guests may not register exchange '{name}'"))),
        None => Ok(QueueDecision::Claim),
    }
}

fn flag_set(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Null) | Some(Value::Bool(false)))
}

fn field_changed(old: &Value, new: &Map<String, Value>, field: &str) -> bool {
    old.get(field).unwrap_or(&Value::Null) != new.get(field).unwrap_or(&Value::Null)
}

/// May `caller` write this principal document (`doc_type` user, role or customer; `old` the stored
/// document on update, `None` on insert; `new` after normalisation)?
///
/// * Only admins create users and customers: an identity that can sign in is an admin decision; anyone
///   signed in may create roles (to share its own documents).
/// * Only admins change another user's `username` or `disabled`, and anyone's `dblocked`/`dbusage`.
/// * Nobody disables itself.
pub fn authorize_principal_write(
    caller: &Caller,
    doc_type: &str,
    old: Option<&Value>,
    new: &Map<String, Value>,
) -> Result<(), SecurityError> {
    if old.is_none() && doc_type != "role" && !caller.is_admin() {
        return Err(denied(format!("only admins may create a {doc_type}")));
    }
    let own = old.and_then(|o| o.get("_id")).and_then(Value::as_str).is_some_and(|id| id == caller.user_id());
    if !caller.is_admin() {
        if let Some(o) = old {
            let old_username = o.get("username").and_then(Value::as_str).map(str::to_lowercase);
            let new_username = new.get("username").and_then(Value::as_str).map(str::to_owned);
            if !own && old_username != new_username {
                return Err(denied("only admins may change another user's username"));
            }
            if !own && flag_set(o.get("disabled")) != flag_set(new.get("disabled")) {
                return Err(denied("only admins may disable or enable another user"));
            }
        }
        for field in ["dblocked", "dbusage"] {
            let changed = match old {
                Some(o) => field_changed(o, new, field),
                None => new.get(field).is_some_and(|v| !v.is_null()),
            };
            if changed {
                return Err(denied(format!("only admins may set {field}")));
            }
        }
    }
    if own && flag_set(new.get("disabled")) && !old.is_some_and(|o| flag_set(o.get("disabled"))) {
        return Err(denied("you cannot disable yourself"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::roles::RoleGraph;
    use crate::wellknown;
    use serde_json::json;

    fn callers() -> (Caller, Caller) {
        let roles = [json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "a"}]})];
        let graph = RoleGraph::from_role_docs(&roles);
        let user = |id: &str| json!({"_id": id, "_type": "user", "username": id, "name": id});
        (Caller::resolve(&user("u"), &graph).unwrap(), Caller::resolve(&user("a"), &graph).unwrap())
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn collection_rules() {
        let (user, admin) = callers();
        use CollectionAccess::*;
        assert!(authorize_collection_access("FlowKeep.keys", Read).is_err());
        assert!(authorize_collection_access("audit", Read).is_ok());
        assert!(authorize_collection_access("audit", Write).is_err());
        assert!(authorize_collection_access("x_hist", Read).is_ok());
        assert!(authorize_collection_access("x_hist", Write).is_err());
        assert!(authorize_collection_create(&user, "things").is_ok());
        assert!(authorize_collection_create(&admin, "flowkeep.keys").is_err());
        assert!(authorize_collection_drop(&user, "things").is_err());
        assert!(authorize_collection_drop(&admin, "things").is_ok());
        assert!(authorize_collection_drop(&admin, "users").is_err());
        assert!(authorize_collection_drop(&admin, "audit").is_err());
        assert!(may_write_password_hash(&admin) && !may_write_password_hash(&user));
    }

    fn guest() -> Caller {
        let user = json!({"_id": wellknown::GUEST, "_type": "user", "username": "guest"});
        Caller::resolve(&user, &RoleGraph::from_role_docs(&[])).unwrap()
    }

    #[test]
    fn chunks_are_never_reached_through_document_commands() {
        use CollectionAccess::*;
        for name in ["fs.chunks", "photos.chunks", "FS.Chunks"] {
            assert!(is_chunks_collection(name), "{name}");
            assert!(authorize_collection_access(name, Read).is_err(), "{name}");
            assert!(authorize_collection_access(name, Write).is_err(), "{name}");
        }
        for name in ["fs.files", "chunks", "fschunks", "fs.chunks_hist2", "s"] {
            assert!(!is_chunks_collection(name), "{name}");
            assert!(authorize_collection_access(name, Read).is_ok(), "{name}");
        }
        let (_, admin) = callers();
        assert!(authorize_collection_drop(&admin, "fs.chunks").is_err());
    }

    #[test]
    fn file_upload_rules() {
        let (user, admin) = callers();
        assert!(authorize_file_upload(&user).is_ok());
        assert!(authorize_file_upload(&admin).is_ok());
        assert!(authorize_file_upload(&guest()).is_err());
    }

    #[test]
    fn index_rules() {
        let (user, admin) = callers();
        let guest = guest();
        // (caller, collection, unique, ttl, allowed)
        let cases = [
            (&user, "things", false, false, true),
            (&user, "things", true, false, false),
            (&user, "things", false, true, false),
            (&admin, "things", true, true, true),
            (&guest, "things", false, false, false),
            (&admin, "audit", false, false, false),
            (&admin, "things_hist", false, false, false),
            (&admin, "fs.chunks", false, false, false),
            (&admin, "flowkeep.keys", false, false, false),
        ];
        for (i, (caller, coll, unique, ttl, allowed)) in cases.iter().enumerate() {
            assert_eq!(authorize_index_create(caller, coll, *unique, *ttl).is_ok(), *allowed, "case {i}");
        }
        assert!(authorize_index_list("things").is_ok());
        assert!(authorize_index_list("audit").is_ok());
        assert!(authorize_index_list("fs.chunks").is_err());
        assert!(authorize_index_list("flowkeep.keys").is_err());
        assert!(authorize_index_drop(&user, "things").is_err());
        assert!(authorize_index_drop(&admin, "things").is_ok());
        assert!(authorize_index_drop(&admin, "flowkeep.keys").is_err());
    }

    #[test]
    fn customer_rules() {
        let (user, admin) = callers();
        assert!(authorize_customer_create(&admin).is_ok());
        assert!(authorize_customer_create(&user).is_err());
        assert!(authorize_customer_create(&guest()).is_err());

        let readable = json!({"_id": "t", "_type": "user", "username": "t",
            "_acl": [{"_id": "u", "rights": Rights::READ.0}]});
        let hidden = json!({"_id": "t", "_type": "user", "username": "t", "_acl": []});
        let denied_doc = json!({"_id": "t", "_type": "user", "username": "t",
            "_acl": [{"_id": "u", "rights": Rights::READ.0}, {"_id": "u", "rights": Rights::READ.0, "deny": true}]});
        let role = json!({"_id": "r", "_type": "role", "name": "r", "_acl": [{"_id": "u", "rights": 65535}]});
        assert!(authorize_ensure_as(&user, &readable).is_ok());
        assert!(authorize_ensure_as(&user, &hidden).is_err());
        assert!(authorize_ensure_as(&user, &denied_doc).is_err(), "deny wins");
        assert!(authorize_ensure_as(&user, &role).is_err(), "only users");
        assert!(authorize_ensure_as(&admin, &hidden).is_ok());
    }

    #[test]
    fn client_visibility() {
        let (user, admin) = callers();
        assert!(may_see_client(&user, "u"));
        assert!(!may_see_client(&user, "a"));
        assert!(!may_see_client(&user, ""));
        assert!(may_see_client(&admin, "u"));
        assert!(may_see_client(&admin, ""));
    }

    #[test]
    fn workitem_rules() {
        let (user, admin) = callers();
        let other = {
            let graph = RoleGraph::from_role_docs(&[]);
            Caller::resolve(&json!({"_id": "o", "_type": "user", "username": "o"}), &graph).unwrap()
        };
        let acl = |rights: u32| json!([{"_id": "u", "rights": rights}]);
        let queue = |rights: u32| json!({"_id": "q", "_type": "workitemqueue", "name": "q", "_acl": acl(rights)});
        let item = |rights: u32| json!({"_id": "i", "_type": "workitem", "name": "i", "_acl": acl(rights)});
        let (r, i, u, d) = (Rights::READ.0, Rights::INVOKE.0, Rights::UPDATE.0, Rights::DELETE.0);

        assert!(authorize_workitem_queue_create(&user).is_ok());
        assert!(authorize_workitem_queue_create(&guest()).is_err());

        assert!(authorize_workitem_push(&user, &queue(r | i)).is_ok());
        assert!(authorize_workitem_push(&user, &queue(r)).is_err(), "invoke needed");
        assert!(authorize_workitem_push(&user, &queue(i)).is_err(), "read needed");
        assert!(authorize_workitem_push(&other, &queue(65535)).is_err(), "not in the ACL");
        assert!(authorize_workitem_push(&admin, &queue(0)).is_ok());
        let denied_queue = json!({"_id": "q", "_type": "workitemqueue", "name": "q",
            "_acl": [{"_id": "u", "rights": 65535}, {"_id": "u", "rights": i, "deny": true}]});
        assert!(authorize_workitem_push(&user, &denied_queue).is_err(), "deny wins");

        assert!(authorize_workitem_pop(&user, &queue(r | i), Some(&item(r | i))).is_ok());
        assert!(authorize_workitem_pop(&user, &queue(r | i), None).is_ok());
        assert!(authorize_workitem_pop(&user, &queue(r), None).is_err(), "queue invoke needed");
        assert!(authorize_workitem_pop(&user, &queue(r), Some(&item(r | i))).is_err(), "queue invoke revoked");
        assert!(authorize_workitem_pop(&user, &queue(r | i), Some(&item(r))).is_err(), "item invoke needed");

        assert!(authorize_workitem_update(&user, &queue(i), &item(r)).is_ok());
        assert!(authorize_workitem_update(&user, &queue(r), &item(65535)).is_err(), "current queue ACL decides");
        assert!(authorize_workitem_update(&user, &queue(i), &item(i)).is_err(), "item read needed");

        assert!(authorize_workitem_delete(&user, &item(i | d)).is_ok());
        assert!(authorize_workitem_delete(&user, &item(d)).is_err());
        assert!(authorize_workitem_delete(&user, &item(i | r | u)).is_err());

        assert!(authorize_workitem_target(&user, &queue(r | i)).is_ok());
        assert!(authorize_workitem_target(&user, &queue(r)).is_err());

        assert!(authorize_workitem_queue_purge(&user, &queue(u), false).is_ok());
        assert!(authorize_workitem_queue_purge(&user, &queue(u), true).is_err());
        assert!(authorize_workitem_queue_purge(&user, &queue(d), true).is_ok());
        assert!(authorize_workitem_queue_purge(&admin, &queue(0), true).is_ok());
    }

    #[test]
    fn principal_rules() {
        let (user, admin) = callers();
        let new_user = map(json!({"_type": "user", "username": "x"}));
        assert!(authorize_principal_write(&user, "user", None, &new_user).is_err());
        assert!(authorize_principal_write(&user, "customer", None, &new_user).is_err());
        assert!(authorize_principal_write(&user, "role", None, &map(json!({"name": "r"}))).is_ok());
        assert!(authorize_principal_write(&admin, "user", None, &new_user).is_ok());

        let other = json!({"_id": "o", "_type": "user", "username": "o"});
        let renamed = map(json!({"_id": "o", "username": "p"}));
        assert!(authorize_principal_write(&user, "user", Some(&other), &renamed).is_err());
        assert!(authorize_principal_write(&admin, "user", Some(&other), &renamed).is_ok());
        let disabled = map(json!({"_id": "o", "username": "o", "disabled": true}));
        assert!(authorize_principal_write(&user, "user", Some(&other), &disabled).is_err());
        assert!(authorize_principal_write(&admin, "user", Some(&other), &disabled).is_ok());
        let quota = map(json!({"_id": "o", "username": "o", "dblocked": true}));
        assert!(authorize_principal_write(&user, "user", Some(&other), &quota).is_err());

        let me = json!({"_id": "u", "_type": "user", "username": "u"});
        let me_renamed = map(json!({"_id": "u", "username": "u2"}));
        assert!(authorize_principal_write(&user, "user", Some(&me), &me_renamed).is_ok(), "own username");
        let me_disabled = map(json!({"_id": "u", "username": "u", "disabled": true}));
        assert!(authorize_principal_write(&user, "user", Some(&me), &me_disabled).is_err(), "never disable self");
        let admin_doc = json!({"_id": "a", "_type": "user", "username": "a"});
        let admin_disabled = map(json!({"_id": "a", "username": "a", "disabled": true}));
        assert!(authorize_principal_write(&admin, "user", Some(&admin_doc), &admin_disabled).is_err());
    }
}

#[cfg(test)]
mod queue_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::roles::RoleGraph;
    use serde_json::json;

    fn caller(id: &str, roles: &[&str]) -> Caller {
        let docs: Vec<Value> =
            roles.iter().map(|r| json!({"_id": r, "_type": "role", "name": r, "members": [{"_id": id}]})).collect();
        let graph = RoleGraph::from_role_docs(&docs);
        Caller::resolve(&json!({"_id": id, "_type": "user", "username": id}), &graph).unwrap()
    }

    fn mq(rights: u32) -> Value {
        json!({"_id": "m", "_type": "queue", "name": "q", "_acl": [{"_id": "u", "rights": rights}]})
    }

    #[test]
    fn queue_rules() {
        use QueueAccess::*;
        let user = caller("u", &["team"]);
        let other = caller("o", &[]);
        let lax = QueuePermissions::default();
        let invoke = QueuePermissions { sender_has_invoke: true, consumer_has_update: false };
        let update = QueuePermissions { sender_has_invoke: false, consumer_has_update: true };
        let (r, i, u) = (Rights::READ.0, Rights::INVOKE.0, Rights::UPDATE.0);

        assert!(authorize_queue_name("queue", "OpenFlow").is_err());
        assert!(authorize_queue_name("exchange", "openflow_logs").is_err());
        assert!(authorize_queue(&user, "openflow", Send, lax, None).is_err());

        assert_eq!(authorize_queue(&user, "u", Consume, update, None).unwrap(), QueueDecision::Allowed);
        assert_eq!(authorize_queue(&user, "team", Consume, lax, None).unwrap(), QueueDecision::Allowed);
        assert!(authorize_queue(&user, "team", Consume, invoke, None).is_err(), "strict: a role's queue");
        assert_eq!(authorize_queue(&user, "team", Send, invoke, None).unwrap(), QueueDecision::Allowed);
        assert_eq!(authorize_queue(&other, "u", Send, lax, None).unwrap(), QueueDecision::Allowed, "unknown: quirk");

        assert_eq!(authorize_queue(&user, "q", Consume, lax, None).unwrap(), QueueDecision::Claim);
        assert_eq!(
            authorize_queue(&user, "q", Consume, lax, Some((MQ_COLLECTION, &mq(r)))).unwrap(),
            QueueDecision::Allowed
        );
        assert!(authorize_queue(&other, "q", Consume, lax, Some((MQ_COLLECTION, &mq(65535)))).is_err());
        assert!(authorize_queue(&other, "q", Send, lax, Some((MQ_COLLECTION, &mq(65535)))).is_err());
        assert!(authorize_queue(&user, "q", Send, invoke, Some((MQ_COLLECTION, &mq(r)))).is_err());
        assert!(authorize_queue(&user, "q", Send, invoke, Some((MQ_COLLECTION, &mq(i)))).is_ok());
        assert!(authorize_queue(&user, "q", Consume, update, Some((MQ_COLLECTION, &mq(r)))).is_err());
        assert!(authorize_queue(&user, "q", Consume, update, Some((MQ_COLLECTION, &mq(u)))).is_ok());

        let guest = caller(crate::wellknown::GUEST, &[]);
        assert!(authorize_queue(&guest, "q", Consume, lax, None).is_err());

        assert_eq!(authorize_exchange(&user, "ex", Consume, lax, None).unwrap(), QueueDecision::Claim);
        assert_eq!(authorize_exchange(&other, "ex", Send, lax, None).unwrap(), QueueDecision::Allowed);
        assert!(authorize_exchange(&other, "ex", Consume, lax, Some(&mq(65535))).is_err());
        assert!(authorize_exchange(&user, "ex", Consume, lax, Some(&mq(r))).is_ok());
        assert!(authorize_exchange(&user, "openflow", Consume, lax, None).is_err());
    }
}
