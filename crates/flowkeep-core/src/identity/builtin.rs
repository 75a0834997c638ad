//! Bootstrap: the well-known principals with their exact ids and ACLs (reference §2.4) and the first
//! admin, on every start, idempotently.

use super::*;

/// What bootstrap guarantees on a built-in principal: these ACL entries and these members (reference
/// §2.4, single-tenant). Everything else on the document is left as the admins made it.
fn builtin_spec(wk: &WellKnown) -> (Vec<Ace>, Vec<(&'static str, &'static str)>) {
    let mut acl = vec![Ace::allow(wellknown::ADMINS, "admins", BUILTIN_ADMIN_RIGHTS)];
    let mut members = Vec::new();
    let admins = (wellknown::ADMINS, "admins");
    match wk.id {
        wellknown::ADMINS => members.push((wellknown::ROOT, "root")),
        wellknown::USERS => {
            members.push((wellknown::ROOT, "root"));
            acl.push(Ace::allow(wellknown::USERS, "users", Rights::READ));
        }
        wellknown::ROOT => acl.push(Ace::allow(wellknown::ROOT, "root", BUILTIN_ADMIN_RIGHTS)),
        wellknown::GUEST => acl.push(Ace::allow(wellknown::GUEST, "guest", Rights::READ)),
        wellknown::FILESTORE_ADMINS | wellknown::WORKITEM_QUEUE_ADMINS => members.push(admins),
        wellknown::FILESTORE_USERS => {
            members.push(admins);
            members.push((wellknown::USERS, "users"));
            acl.push(Ace::allow(wellknown::FILESTORE_USERS, "filestore users", Rights::READ));
        }
        _ => {}
    }
    (acl, members)
}

/// Adds the `required` entries to `acl` (OR-ing rights into an existing allow entry of the same
/// principal). Returns whether anything changed.
fn merge_acl(acl: &mut Vec<Ace>, required: &[Ace]) -> bool {
    let mut changed = false;
    for need in required {
        match acl.iter_mut().find(|a| a.id == need.id && !a.deny) {
            Some(ace) if ace.rights.contains(need.rights) => {}
            Some(ace) => {
                ace.rights = ace.rights | need.rights;
                changed = true;
            }
            None => {
                acl.push(need.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Fields every document written by the system carries.
fn system_stamp(map: &mut Map<String, Value>) {
    let now = now_iso();
    for (k, v) in [
        ("_created", Value::String(now.clone())),
        ("_modified", Value::String(now)),
        ("_createdby", Value::String("root".into())),
        ("_createdbyid", Value::String(wellknown::ROOT.into())),
        ("_modifiedby", Value::String("root".into())),
        ("_modifiedbyid", Value::String(wellknown::ROOT.into())),
        ("_version", Value::from(0)),
    ] {
        map.entry(k).or_insert(v);
    }
}

/// Creates a missing built-in principal with its exact id, or adds missing ACL entries and members to
/// an existing one. Idempotent.
async fn ensure_principal(store: &dyn Store, wk: &WellKnown) -> Result<()> {
    let (acl, members) = builtin_spec(wk);
    let existing = store.find_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": wk.id}), None).await?;
    let Some(doc) = existing else {
        let mut map = Map::new();
        map.insert("_id".into(), Value::String(wk.id.into()));
        map.insert("name".into(), Value::String(wk.name.into()));
        match wk.kind {
            PrincipalKind::User => {
                map.insert("_type".into(), Value::String("user".into()));
                map.insert("username".into(), Value::String(wk.name.into()));
            }
            PrincipalKind::Role => {
                map.insert("_type".into(), Value::String("role".into()));
                let members: Vec<Value> = members.iter().map(|(id, name)| json!({"_id": id, "name": name})).collect();
                map.insert("members".into(), Value::Array(members));
            }
        }
        map.insert("_acl".into(), acl_to_value(&acl));
        system_stamp(&mut map);
        store.insert_one(USERS_COLLECTION, Value::Object(map)).await?;
        return Ok(());
    };
    if str_field(&doc, "name") != Some(wk.name) {
        tracing::warn!(
            id = wk.id,
            expected = wk.name,
            "a built-in principal has been renamed; the reserved-name guard refuses it to everyone but root"
        );
    }
    let mut set = Map::new();
    let mut current_acl = parse_stored_acl(doc.get("_acl"));
    if merge_acl(&mut current_acl, &acl) {
        set.insert("_acl".into(), acl_to_value(&current_acl));
    }
    if wk.kind == PrincipalKind::Role {
        let have = member_ids(&doc);
        let missing: Vec<Value> = members
            .iter()
            .filter(|(id, _)| !have.iter().any(|h| h == id))
            .map(|(id, name)| json!({"_id": id, "name": name}))
            .collect();
        if !missing.is_empty() {
            let mut all = match doc.get("members") {
                Some(Value::Array(m)) => m.clone(),
                _ => Vec::new(),
            };
            all.extend(missing);
            set.insert("members".into(), Value::Array(all));
        }
    }
    if !set.is_empty() {
        store
            .update_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": wk.id}), &json!({"$set": set}), false)
            .await?;
    }
    Ok(())
}

/// Creates the well-known roles and users (exact ids) and the first admin when missing; prepares the
/// audit chain and the unique username index. Runs on every start.
pub(crate) async fn bootstrap(platform: &Platform) -> Result<()> {
    let store = platform.store.as_ref();
    platform.audit.init(store).await?;
    // Usernames are unique across users; roles and customers have none (sparse). The explicit check in
    // `prepare_user_write` gives the clear message, the index closes the race between two writers.
    let options =
        IndexOptions { name: Some("username_unique".into()), unique: true, sparse: true, ..IndexOptions::default() };
    if let Err(e) = store.create_index(USERS_COLLECTION, &json!({"username": 1}), &options).await {
        tracing::warn!(error = %e, "could not create the unique username index (duplicate usernames in existing data?)");
    }
    for wk in &WELL_KNOWN {
        ensure_principal(store, wk).await?;
    }
    ensure_first_admin(platform).await?;
    platform.roles.invalidate_all();
    Ok(())
}

/// When `admins` has no (existing) member but root, makes user [`FIRST_ADMIN_USERNAME`] a member: created with
/// `PlatformConfig::admin_password`, or a random password printed once to the log (the only secret
/// Flowkeep ever logs). An existing [`FIRST_ADMIN_USERNAME`] user is re-added without touching its password.
async fn ensure_first_admin(platform: &Platform) -> Result<()> {
    let store = platform.store.as_ref();
    let admins = store
        .find_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": wellknown::ADMINS}), None)
        .await?
        .ok_or_else(|| CoreError::Internal("the admins role is missing after bootstrap".into()))?;
    let others: Vec<String> = member_ids(&admins).into_iter().filter(|m| m != wellknown::ROOT).collect();
    // Only members that still exist count: a dangling id must not leave the system without an admin.
    if !others.is_empty() {
        let existing = json!({"_id": {"$in": others}});
        if store.count(USERS_COLLECTION, &Scope::system(), &existing).await? > 0 {
            return Ok(());
        }
    }
    let filter = json!({"_type": "user", "username": FIRST_ADMIN_USERNAME});
    let admin_id = match store.find_one(USERS_COLLECTION, &Scope::system(), &filter, None).await? {
        Some(doc) => {
            tracing::warn!("admins had no member; the existing first admin user was made an admin again");
            str_field(&doc, "_id")
                .map(str::to_owned)
                .ok_or_else(|| CoreError::Internal("admin user without _id".into()))?
        }
        None => {
            let (password, generated) = match &platform.config.admin_password {
                Some(p) if !p.is_empty() => (p.clone(), false),
                _ => (Alphanumeric.sample_string(&mut rand::rng(), RANDOM_PASSWORD_LEN), true),
            };
            let hash = hash_blocking(password.clone()).await?;
            let id = new_object_id();
            let acl = [
                Ace::allow(wellknown::ADMINS, "admins", BUILTIN_ADMIN_RIGHTS),
                Ace::allow(id.clone(), FIRST_ADMIN_USERNAME, BUILTIN_ADMIN_RIGHTS),
            ];
            let mut map = Map::new();
            map.insert("_id".into(), Value::String(id.clone()));
            map.insert("_type".into(), Value::String("user".into()));
            map.insert("name".into(), Value::String(FIRST_ADMIN_USERNAME.into()));
            map.insert("username".into(), Value::String(FIRST_ADMIN_USERNAME.into()));
            map.insert("passwordhash".into(), Value::String(hash));
            map.insert("_acl".into(), acl_to_value(&acl));
            system_stamp(&mut map);
            store.insert_one(USERS_COLLECTION, Value::Object(map)).await?;
            if generated {
                // Deliberately the one secret in the log: there is no other way to hand it over.
                tracing::warn!(
                    username = FIRST_ADMIN_USERNAME,
                    password = %password,
                    "created the first admin with a random password, shown only this once; sign in and change it \
                     (or set FLOWKEEP_ADMIN_PASSWORD before the first start)"
                );
            } else {
                tracing::info!(username = FIRST_ADMIN_USERNAME, "created the first admin with the configured password");
            }
            id
        }
    };
    let mut all = match admins.get("members") {
        Some(Value::Array(m)) => m.clone(),
        _ => Vec::new(),
    };
    all.push(json!({"_id": admin_id, "name": FIRST_ADMIN_USERNAME}));
    let update = json!({"$set": {"members": all}});
    store.update_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": wellknown::ADMINS}), &update, false).await?;
    let mut entry = draft(AuditKind::MembershipChanged);
    entry.actor = Actor { id: Some(wellknown::ROOT.into()), name: Some("root".into()), impostor: None };
    entry.target = Target {
        collection: Some(USERS_COLLECTION.into()),
        id: Some(wellknown::ADMINS.into()),
        name: Some("admins".into()),
    };
    entry.reason = Some("first admin".into());
    entry.details = json!({"added": [admin_id], "removed": []});
    platform.audit(entry).await
}
