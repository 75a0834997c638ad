//! Who may write what where, beyond a document's ACL: the rules of the `users` collection (creating
//! identities, admin-only fields, the self rules) and of collections themselves (creating, dropping, the
//! system's reserved names). Pure decisions; the core gathers the documents and asks.

use crate::caller::Caller;
use crate::error::SecurityError;
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

/// May a client command touch `collection` this way? Reserved system collections never; `audit` and
/// history collections only for reading.
pub fn authorize_collection_access(collection: &str, access: CollectionAccess) -> Result<(), SecurityError> {
    // Case-insensitive: a backend with case-insensitive names must not offer a way around the guard.
    let prefix = RESERVED_COLLECTION_PREFIX;
    if collection.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)) {
        return Err(denied(format!("collection '{collection}' is reserved for the system")));
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
