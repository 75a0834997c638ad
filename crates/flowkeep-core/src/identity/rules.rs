//! The rules of the `users` collection, applied by the documents layer around every write to it.

use super::*;
use flowkeep_security::policy;

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidRequest(msg.into())
}

/// Applies the `users` collection's rules to a document about to be written by `caller`: user names
/// lower-cased and unique, `newpassword` hashed into `passwordhash` (and never stored), reserved names,
/// `_type` immutable, admin-only fields. `old` is the stored document on update, `None` on insert.
///
/// `passwordhash` itself is not client-writable: a value that differs from the stored one is put back,
/// except that admins may write a hash (to import users from OpenIAP Flow with their bcrypt hashes).
pub(crate) async fn prepare_user_write(
    platform: &Platform,
    caller: &Caller,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<()> {
    let Value::Object(map) = new else { return Err(invalid("a users document must be an object")) };
    let old_type = old.and_then(|o| str_field(o, "_type")).map(str::to_ascii_lowercase);
    let doc_type = match map.get("_type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        None | Some(Value::Null) => {
            old_type.clone().ok_or_else(|| invalid("_type is required in users: user, role or customer"))?
        }
        Some(_) => return Err(invalid("_type must be a string")),
    };
    if !matches!(doc_type.as_str(), "user" | "role" | "customer") {
        return Err(invalid(format!("_type in users must be user, role or customer, not '{doc_type}'")));
    }
    if old_type.as_ref().is_some_and(|t| *t != doc_type) {
        return Err(invalid("_type cannot be changed"));
    }
    map.insert("_type".into(), Value::String(doc_type.clone()));
    let id = map
        .get("_id")
        .and_then(Value::as_str)
        .or_else(|| old.and_then(|o| str_field(o, "_id")))
        .unwrap_or_default()
        .to_owned();

    // Credentials.
    let new_password = map.remove("newpassword");
    let old_hash = old.and_then(|o| o.get("passwordhash")).cloned();
    let supplied_hash = map.get("passwordhash").cloned();
    if supplied_hash != old_hash && !(policy::may_write_password_hash(caller) && supplied_hash.is_some()) {
        match old_hash {
            Some(h) => map.insert("passwordhash".into(), h),
            None => map.remove("passwordhash"),
        };
    }
    // Hashed last, once every other rule passed: a refused write should not cost an argon2id run.
    let new_password = match new_password {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if doc_type == "user" => Some(p),
        Some(Value::String(_)) => return Err(invalid("only users have a password")),
        Some(_) => return Err(invalid("newpassword must be a string")),
    };

    // Names: normalised, then the reserved-name guard, then uniqueness.
    let store = platform.store.as_ref();
    if doc_type == "user" {
        let username = match map.get("username") {
            Some(Value::String(u)) if !u.trim().is_empty() => u.trim().to_lowercase(),
            _ => return Err(invalid("username is required")),
        };
        map.insert("username".into(), Value::String(username.clone()));
        if !matches!(map.get("name"), Some(Value::String(n)) if !n.is_empty()) {
            map.insert("name".into(), Value::String(username));
        }
    } else if doc_type == "role" {
        match map.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => {
                let name = n.trim().to_owned();
                map.insert("name".into(), Value::String(name));
            }
            _ => return Err(invalid("a role needs a name")),
        }
    }
    if !caller.is_root() {
        for field in ["name", "username"] {
            if let Some(value) = map.get(field).and_then(Value::as_str) {
                if let Some(reason) = reserved_name_violation(&doc_type, &id, value) {
                    return Err(invalid(reason));
                }
            }
        }
    }
    // Who may write this principal is the security crate's decision; asked before the uniqueness checks
    // so a refused writer learns nothing about which names are taken.
    policy::authorize_principal_write(caller, &doc_type, old, map)?;
    // System scope for both checks: a name taken by a principal the writer cannot see is still taken.
    if let (true, Some(username)) = (doc_type == "user", map.get("username").and_then(Value::as_str)) {
        let taken = json!({"username": username, "_id": {"$ne": id}});
        if store.count(USERS_COLLECTION, &Scope::system(), &taken).await? > 0 {
            return Err(CoreError::Conflict(format!("the username '{username}' is taken")));
        }
    }
    if let (true, Some(name)) = (doc_type == "role", map.get("name").and_then(Value::as_str)) {
        let taken = json!({"_type": "role", "name": name, "_id": {"$ne": id}});
        if store.count(USERS_COLLECTION, &Scope::system(), &taken).await? > 0 {
            return Err(CoreError::Conflict(format!("a role named '{name}' exists")));
        }
    }

    if let Some(password) = new_password {
        let hash = hash_blocking(password).await?;
        map.insert("passwordhash".into(), Value::String(hash));
    }
    Ok(())
}

/// `{added, removed}` member ids between two documents.
fn member_diff(old: Option<&Value>, new: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let before = old.map(member_ids).unwrap_or_default();
    let after = new.map(member_ids).unwrap_or_default();
    let added = after.iter().filter(|m| !before.contains(m)).cloned().collect();
    let removed = before.iter().filter(|m| !after.contains(m)).cloned().collect();
    (added, removed)
}

/// After a write to `users`: invalidates role caches and audits ACL and membership changes. `old`/`new`
/// are `None` on insert/delete.
///
/// The write has already committed, so an audit failure here is logged rather than returned: reporting
/// the write as failed would be false.
pub(crate) async fn after_user_write(
    platform: &Platform,
    caller: &Caller,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<()> {
    platform.roles.invalidate_all();
    let Some(doc) = new.or(old) else { return Ok(()) };
    let target = Target {
        collection: Some(USERS_COLLECTION.into()),
        id: str_field(doc, "_id").map(str::to_owned),
        name: str_field(doc, "username").or_else(|| str_field(doc, "name")).map(str::to_owned),
    };
    let mut entries: Vec<AuditDraft> = Vec::new();
    let mut add = |kind: AuditKind, details: Value| {
        let mut entry = draft(kind);
        entry.actor = actor_of(caller);
        entry.target = target.clone();
        entry.details = details;
        entries.push(entry);
    };
    if let Some(n) = new {
        let new_hash = n.get("passwordhash");
        if new_hash.is_some() && old.and_then(|o| o.get("passwordhash")) != new_hash {
            add(AuditKind::PasswordChanged, Value::Null);
        }
    }
    if let (Some(o), Some(n)) = (old, new) {
        if o.get("_acl") != n.get("_acl") {
            add(AuditKind::AclChanged, json!({"before": o.get("_acl"), "after": n.get("_acl")}));
        }
    }
    let (added, removed) = member_diff(old, new);
    if !added.is_empty() || !removed.is_empty() {
        add(AuditKind::MembershipChanged, json!({"added": added, "removed": removed}));
    }
    for entry in entries {
        if let Err(e) = platform.audit(entry).await {
            tracing::error!(error = %e, "could not audit a change in users");
        }
    }
    Ok(())
}
