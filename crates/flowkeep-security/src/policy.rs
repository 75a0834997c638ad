//! Who may write what where, beyond a document's ACL: the rules of the `users` collection (creating
//! identities, admin-only fields, the self rules), of collections themselves (creating, dropping, the
//! system's reserved names, file chunks), of indexes, files, customers and of who sees which connected
//! client. Pure decisions; the core gathers the documents and asks.

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
