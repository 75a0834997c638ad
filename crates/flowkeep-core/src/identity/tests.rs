//! Unit tests of the `users` write hooks (crate-private) and of the role cache they invalidate, driven
//! the way the documents layer drives them: prepare, write, after.

use super::*;
use flowkeep_security::MasterKey;
use flowkeep_store::SqliteStore;

const ADMIN_PASSWORD: &str = "admin pw for tests";

async fn platform() -> Platform {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temporary().unwrap());
    let config = PlatformConfig { admin_password: Some(ADMIN_PASSWORD.into()), ..PlatformConfig::default() };
    Platform::open(store, config, &MasterKey::generate().unwrap()).await.unwrap()
}

/// One write to `users` as `caller`, through both hooks, like the documents layer.
async fn write(p: &Platform, caller: &Caller, old: Option<&Value>, mut new: Value) -> Result<Value> {
    prepare_user_write(p, caller, old, &mut new).await?;
    match old {
        None => new = p.store.insert_one(USERS_COLLECTION, new).await?,
        Some(o) => {
            let filter = json!({"_id": o["_id"]});
            p.store.replace_one(USERS_COLLECTION, &Scope::system(), &filter, new.clone(), false).await?;
        }
    }
    after_user_write(p, caller, old, Some(&new)).await?;
    Ok(new)
}

async fn stored(p: &Platform, id: &str) -> Value {
    p.load_user(id).await.unwrap().unwrap()
}

async fn sign_in(p: &Platform, username: &str, password: &str) -> Result<(Session, Caller)> {
    let session = p.signin_password(username, password, &ClientInfo::default(), false).await?;
    let caller = p.authenticate(&session.token).await?;
    Ok((session, caller))
}

async fn audit_kinds(p: &Platform) -> Vec<String> {
    let options = FindOptions { sort: Some(json!({"seq": 1})), ..FindOptions::default() };
    let docs = p.store.find("audit", &Scope::system(), &json!({}), &options).await.unwrap();
    docs.iter().map(|d| d["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

fn role_ids(caller: &Caller) -> Vec<&str> {
    caller.roles().iter().map(|r| r.id.as_str()).collect()
}

#[tokio::test]
async fn usernames_are_lower_cased_and_unique_and_newpassword_is_never_stored() {
    let p = platform().await;
    let root = Caller::system_root();
    let alice = write(&p, &root, None, json!({"_type": "user", "username": "  Alice ", "newpassword": "first pw"}))
        .await
        .unwrap();
    let id = alice["_id"].as_str().unwrap().to_owned();
    let doc = stored(&p, &id).await;
    assert_eq!(doc["username"], "alice");
    assert_eq!(doc["name"], "alice");
    assert!(doc.get("newpassword").is_none());
    assert!(doc["passwordhash"].as_str().unwrap().starts_with("$argon2id$"));
    assert!(!doc.to_string().contains("first pw"));
    let (_, caller) = sign_in(&p, "ALICE", "first pw").await.unwrap();
    assert_eq!(caller.user_id(), id);

    let dup = write(&p, &root, None, json!({"_type": "user", "username": "ALICE", "newpassword": "x"})).await;
    assert!(matches!(dup, Err(CoreError::Conflict(_))), "{dup:?}");
    let missing = write(&p, &root, None, json!({"_type": "user", "name": "no username"})).await;
    assert!(matches!(missing, Err(CoreError::InvalidRequest(_))));

    // Alice changes her own password; her old one stops working.
    let mut next = doc.clone();
    next["newpassword"] = json!("second pw");
    write(&p, &caller, Some(&doc), next).await.unwrap();
    assert!(sign_in(&p, "alice", "first pw").await.is_err());
    sign_in(&p, "alice", "second pw").await.unwrap();
    assert_eq!(audit_kinds(&p).await.iter().filter(|k| *k == "password_changed").count(), 2);

    // A hash written by a non-admin is put back; a full replace without the hash keeps it.
    let doc = stored(&p, &id).await;
    let mut forged = doc.clone();
    forged["passwordhash"] = json!(hash_password("forged").unwrap());
    write(&p, &caller, Some(&doc), forged).await.unwrap();
    let mut without = doc.clone();
    without.as_object_mut().unwrap().remove("passwordhash");
    write(&p, &caller, Some(&doc), without).await.unwrap();
    assert_eq!(stored(&p, &id).await["passwordhash"], doc["passwordhash"]);
    sign_in(&p, "alice", "second pw").await.unwrap();
}

#[tokio::test]
async fn rules_on_types_names_and_admin_only_fields() {
    let p = platform().await;
    let root = Caller::system_root();
    let (_, admin) = sign_in(&p, FIRST_ADMIN_USERNAME, ADMIN_PASSWORD).await.unwrap();
    let bob =
        write(&p, &root, None, json!({"_type": "user", "username": "bob", "newpassword": "bob pw"})).await.unwrap();
    let carol =
        write(&p, &root, None, json!({"_type": "user", "username": "carol", "newpassword": "carol pw"})).await.unwrap();
    let (_, bob_caller) = sign_in(&p, "bob", "bob pw").await.unwrap();

    let bad_type = write(&p, &admin, None, json!({"_type": "printer", "name": "x"})).await;
    assert!(matches!(bad_type, Err(CoreError::InvalidRequest(_))));
    let mut as_role = bob.clone();
    as_role["_type"] = json!("role");
    assert!(matches!(write(&p, &admin, Some(&bob), as_role).await, Err(CoreError::InvalidRequest(_))));
    for name in ["administrator", "Admins", "nodered users"] {
        let r = write(&p, &admin, None, json!({"_type": "role", "name": name})).await;
        assert!(matches!(r, Err(CoreError::InvalidRequest(_))), "{name}: {r:?}");
    }
    let reserved_user = write(&p, &admin, None, json!({"_type": "user", "username": "Root"})).await;
    assert!(matches!(reserved_user, Err(CoreError::InvalidRequest(_))));
    write(&p, &admin, None, json!({"_type": "role", "name": "ops"})).await.unwrap();
    assert!(matches!(
        write(&p, &admin, None, json!({"_type": "role", "name": "ops"})).await,
        Err(CoreError::Conflict(_))
    ));

    // bob (not an admin) may not rename or disable carol, nor set dblocked on himself.
    let mut renamed = carol.clone();
    renamed["username"] = json!("caroline");
    assert!(matches!(write(&p, &bob_caller, Some(&carol), renamed.clone()).await, Err(CoreError::AccessDenied(_))));
    let mut disabled = carol.clone();
    disabled["disabled"] = json!(true);
    assert!(matches!(write(&p, &bob_caller, Some(&carol), disabled.clone()).await, Err(CoreError::AccessDenied(_))));
    let bob_doc = stored(&p, bob["_id"].as_str().unwrap()).await;
    let mut locked = bob_doc.clone();
    locked["dblocked"] = json!(false);
    assert!(matches!(write(&p, &bob_caller, Some(&bob_doc), locked).await, Err(CoreError::AccessDenied(_))));
    // ... but may rename himself, and nobody may disable themselves, admins included.
    let mut self_renamed = bob_doc.clone();
    self_renamed["username"] = json!("Robert");
    let bob_doc = write(&p, &bob_caller, Some(&bob_doc), self_renamed).await.unwrap();
    assert_eq!(bob_doc["username"], "robert");
    let mut self_disabled = bob_doc.clone();
    self_disabled["disabled"] = json!(true);
    assert!(matches!(write(&p, &bob_caller, Some(&bob_doc), self_disabled).await, Err(CoreError::AccessDenied(_))));
    let admin_doc = stored(&p, admin.user_id()).await;
    let mut admin_disabled = admin_doc.clone();
    admin_disabled["disabled"] = json!(true);
    assert!(matches!(write(&p, &admin, Some(&admin_doc), admin_disabled).await, Err(CoreError::AccessDenied(_))));
    // The admin may do both to carol.
    let carol = write(&p, &admin, Some(&carol), renamed).await.unwrap();
    let mut disabled = carol.clone();
    disabled["disabled"] = json!(true);
    write(&p, &admin, Some(&carol), disabled).await.unwrap();
    assert!(sign_in(&p, "caroline", "carol pw").await.is_err());
}

#[tokio::test]
async fn role_changes_apply_on_the_next_request_and_nest() {
    let p = platform().await;
    let root = Caller::system_root();
    let bob =
        write(&p, &root, None, json!({"_type": "user", "username": "bob", "newpassword": "bob pw"})).await.unwrap();
    let bob_id = bob["_id"].as_str().unwrap().to_owned();
    let (session, caller) = sign_in(&p, "bob", "bob pw").await.unwrap();
    assert_eq!(role_ids(&caller), vec![wellknown::FILESTORE_USERS, wellknown::USERS]);
    assert!(!caller.is_admin());

    let ops =
        write(&p, &root, None, json!({"_type": "role", "name": "ops", "members": [{"_id": bob_id, "name": "bob"}]}))
            .await
            .unwrap();
    let ops_id = ops["_id"].as_str().unwrap().to_owned();
    let caller = p.authenticate(&session.token).await.unwrap();
    assert!(role_ids(&caller).contains(&ops_id.as_str()), "cache invalidated by the write");

    // ops ∈ outer ∈ admins: bob is an admin through two levels of nesting.
    let outer =
        write(&p, &root, None, json!({"_type": "role", "name": "outer", "members": [{"_id": ops_id}]})).await.unwrap();
    let admins = stored(&p, wellknown::ADMINS).await;
    let mut more = admins.clone();
    more["members"].as_array_mut().unwrap().push(json!({"_id": outer["_id"], "name": "outer"}));
    write(&p, &root, Some(&admins), more).await.unwrap();
    let caller = p.authenticate(&session.token).await.unwrap();
    assert!(caller.is_admin());
    assert!(role_ids(&caller).contains(&outer["_id"].as_str().unwrap()));

    // Removing bob from ops takes it all away again.
    let mut fewer = ops.clone();
    fewer["members"] = json!([]);
    write(&p, &root, Some(&ops), fewer).await.unwrap();
    let caller = p.authenticate(&session.token).await.unwrap();
    assert!(!caller.is_admin());

    let mut acl_changed = stored(&p, &bob_id).await;
    let before = acl_changed.clone();
    acl_changed["_acl"] = acl_to_value(&[Ace::allow(&bob_id, "bob", Rights::READ)]);
    write(&p, &root, Some(&before), acl_changed).await.unwrap();
    let kinds = audit_kinds(&p).await;
    // first admin, ops created, outer created, outer added to admins, bob removed from ops
    assert_eq!(kinds.iter().filter(|k| *k == "membership_changed").count(), 5, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "acl_changed").count(), 1, "{kinds:?}");
    assert!(p.verify_audit().await.unwrap().is_ok());
}
