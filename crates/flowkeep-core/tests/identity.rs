//! Identity and audit through the public API of the core: bootstrap, sign-in, throttling, tokens across
//! restarts, impersonation and the audit chain. Users are put in place directly in the store (system
//! scope) where a test needs them; the `users` write rules are tested next to the hooks.

use flowkeep_core::identity::{ClientInfo, FIRST_ADMIN_USERNAME as ADMIN, USERS_COLLECTION};
use flowkeep_core::{CoreError, Platform, PlatformConfig};
use flowkeep_security::acl::acl_to_value;
use flowkeep_security::audit::Problem;
use flowkeep_security::wellknown::{self, WELL_KNOWN};
use flowkeep_security::{hash_password, Ace, MasterKey, Rights};
use flowkeep_store::{FindOptions, Scope, SqliteStore, Store};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn config() -> PlatformConfig {
    PlatformConfig { admin_password: Some(ADMIN_PASSWORD.into()), ..PlatformConfig::default() }
}

async fn open_with(config: PlatformConfig) -> Platform {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temporary().unwrap());
    Platform::open(store, config, &MasterKey::generate().unwrap()).await.unwrap()
}

async fn open() -> Platform {
    open_with(config()).await
}

fn client(address: &str) -> ClientInfo {
    ClientInfo { agent: Some("test".into()), version: Some("1.0".into()), address: Some(address.into()) }
}

/// Puts a user in place directly (system scope), readable by itself and with `extra` ACL entries.
async fn add_user(p: &Platform, username: &str, passwordhash: Option<String>, extra: &[Ace]) -> String {
    let id = flowkeep_model::new_object_id();
    let mut acl = vec![Ace::allow(&id, username, Rights::READ | Rights::UPDATE)];
    acl.extend_from_slice(extra);
    let mut doc =
        json!({"_id": id, "_type": "user", "username": username, "name": username, "_acl": acl_to_value(&acl)});
    if let Some(h) = passwordhash {
        doc["passwordhash"] = Value::String(h);
    }
    p.store().insert_one(USERS_COLLECTION, doc).await.unwrap();
    id
}

async fn user_doc(p: &Platform, id: &str) -> Value {
    p.store().find_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": id}), None).await.unwrap().unwrap()
}

async fn audit_kinds(p: &Platform) -> Vec<String> {
    let options = FindOptions { sort: Some(json!({"seq": 1})), ..FindOptions::default() };
    let docs = p.store().find("audit", &Scope::system(), &json!({}), &options).await.unwrap();
    docs.iter().map(|d| d["kind"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn bootstrap_creates_the_well_known_principals_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let master = MasterKey::generate().unwrap();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        let p = Platform::open(store.clone(), config(), &master).await.unwrap();
        for wk in &WELL_KNOWN {
            let n = store.count(USERS_COLLECTION, &Scope::system(), &json!({"_id": wk.id})).await.unwrap();
            assert_eq!(n, 1, "{} {}", wk.name, wk.id);
            let doc = user_doc(&p, wk.id).await;
            assert_eq!(doc["name"], wk.name);
            let acl = doc["_acl"].as_array().unwrap();
            assert!(acl.iter().any(|a| a["_id"] == wellknown::ADMINS && a["rights"] == 65527), "{doc}");
        }
        // 18 well-known principals and the first admin, nothing else.
        assert_eq!(store.count(USERS_COLLECTION, &Scope::system(), &json!({})).await.unwrap(), 19);
        let admins = user_doc(&p, wellknown::ADMINS).await;
        let members: Vec<&str> =
            admins["members"].as_array().unwrap().iter().map(|m| m["_id"].as_str().unwrap()).collect();
        assert_eq!(members.len(), 2, "root and admin, once: {members:?}");
        assert!(members.contains(&wellknown::ROOT));
        let users = user_doc(&p, wellknown::USERS).await;
        assert!(users["_acl"].as_array().unwrap().iter().any(|a| a["_id"] == wellknown::USERS && a["rights"] == 2));
    }
}

#[tokio::test]
async fn admin_signs_in_with_the_configured_password_and_root_never() {
    let p = open().await;
    let session = p.signin_password(&ADMIN.to_uppercase(), ADMIN_PASSWORD, &client("10.0.0.1"), false).await.unwrap();
    assert_eq!(session.user["username"], ADMIN);
    assert!(session.user.get("passwordhash").is_none());
    let caller = p.authenticate(&session.token).await.unwrap();
    assert!(caller.is_admin());
    assert!(session.user["roles"].as_array().unwrap().iter().any(|r| r["_id"] == wellknown::ADMINS));

    let wrong = p.signin_password(ADMIN, "wrong", &client("10.0.0.1"), false).await.unwrap_err();
    let unknown = p.signin_password("nobody", "wrong", &client("10.0.0.1"), false).await.unwrap_err();
    assert!(matches!(wrong, CoreError::Unauthenticated(_)));
    assert_eq!(wrong.to_string(), unknown.to_string(), "no user enumeration");
    for password in ["", "root", ADMIN_PASSWORD] {
        let e = p.signin_password("root", password, &client("10.0.0.1"), false).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(_)), "{e}");
    }
    // A username wins over someone else's email that spells it.
    add_user(&p, "mallory", Some(hash_password("mallory pw").unwrap()), &[]).await;
    p.store()
        .update_one(
            USERS_COLLECTION,
            &Scope::system(),
            &json!({"username": "mallory"}),
            &json!({"$set": {"email": ADMIN}}),
            false,
        )
        .await
        .unwrap();
    assert!(p.signin_password(ADMIN, "mallory pw", &client("10.0.0.9"), false).await.is_err());
    let by_email = p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.0.0.9"), false).await.unwrap();
    assert_eq!(by_email.user["username"], ADMIN);
    // The configured password is not kept where `config()` hands it out, nor printed by `Debug`.
    assert!(p.config().admin_password.is_none());
    let shown = format!("{:?}", PlatformConfig { legacy_aes_secret: Some("s3cret-legacy".into()), ..config() });
    assert!(!shown.contains(ADMIN_PASSWORD) && !shown.contains("s3cret-legacy"), "{shown}");

    let kinds = audit_kinds(&p).await;
    assert_eq!(kinds.iter().filter(|k| *k == "login_success").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "login_failed").count(), 6);
}

/// Collects formatted log lines written while it is the default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_random_admin_password_is_logged_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let master = MasterKey::generate().unwrap();
    let config = PlatformConfig { admin_password: None, ..PlatformConfig::default() };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = Platform::open(store, config.clone(), &master).await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let password = log.split("password=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    assert_eq!(password.len(), 24, "{log}");
    p.signin_password(ADMIN, &password, &client("10.0.0.2"), false).await.unwrap();
    // The password is nowhere in the store in clear.
    let all = p.store().find(USERS_COLLECTION, &Scope::system(), &json!({}), &FindOptions::default()).await.unwrap();
    assert!(!serde_json::to_string(&all).unwrap().contains(&password));
    drop(p);
    captured.0.lock().unwrap().clear();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = Platform::open(store, config, &master).await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!log.contains("password="), "printed only once: {log}");
    p.signin_password(ADMIN, &password, &client("10.0.0.2"), false).await.unwrap();
}

#[tokio::test]
async fn a_bcrypt_hash_is_rehashed_to_argon2id() {
    let p = open().await;
    let bcrypt_hash = bcrypt::hash("legacy pw", 4).unwrap();
    let id = add_user(&p, "legacy", Some(bcrypt_hash.clone()), &[]).await;
    p.signin_password("legacy", "legacy pw", &client("10.0.0.3"), false).await.unwrap();
    let stored = user_doc(&p, &id).await["passwordhash"].as_str().unwrap().to_owned();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    p.signin_password("legacy", "legacy pw", &client("10.0.0.3"), true).await.unwrap();
    assert!(p.signin_password("legacy", "legacy pW", &client("10.0.0.3"), false).await.is_err());
}

#[tokio::test]
async fn failed_logins_are_throttled_without_checking_the_password() {
    let config = PlatformConfig {
        login_failures_per_account: 3,
        login_failures_per_source: 5,
        login_window: Duration::from_secs(600),
        ..config()
    };
    let p = open_with(config).await;
    add_user(&p, "bob", Some(hash_password("bob pw").unwrap()), &[]).await;
    for _ in 0..3 {
        let e = p.signin_password("bob", "guess", &client("10.1.0.1"), false).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(_)));
    }
    // Over the account limit: refused the same way whether the password is right or not.
    let right = p.signin_password("BOB", "bob pw", &client("10.1.0.2"), false).await.unwrap_err();
    let wrong = p.signin_password("bob", "guess", &client("10.1.0.2"), false).await.unwrap_err();
    assert!(matches!(right, CoreError::Throttled(_)), "{right}");
    assert_eq!(right.to_string(), wrong.to_string());
    // Per source: one address guessing many accounts.
    for name in ["x1", "x2"] {
        assert!(matches!(
            p.signin_password(name, "guess", &client("10.1.0.1"), false).await,
            Err(CoreError::Unauthenticated(_))
        ));
    }
    let e = p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.1.0.1"), false).await.unwrap_err();
    assert!(matches!(e, CoreError::Throttled(_)));
    p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.1.0.3"), false).await.unwrap();
    // The account is counted by id too: its email does not buy more guesses.
    p.store()
        .update_one(
            USERS_COLLECTION,
            &Scope::system(),
            &json!({"username": "bob"}),
            &json!({"$set": {"email": "bob@example.com"}}),
            false,
        )
        .await
        .unwrap();
    let e = p.signin_password("Bob@example.com", "bob pw", &client("10.1.0.4"), false).await.unwrap_err();
    assert!(matches!(e, CoreError::Throttled(_)), "{e}");
    // 5 wrong guesses, and one audited refusal per throttled account/source pair (bob from .2, admin from
    // .1, bob by email from .4): the second refusal of bob from .2 is not audited again.
    let failed = audit_kinds(&p).await.iter().filter(|k| *k == "login_failed").count();
    assert_eq!(failed, 8);
}

#[tokio::test]
async fn a_disabled_users_token_stops_working_at_once() {
    let p = open().await;
    let id = add_user(&p, "carol", Some(hash_password("carol pw").unwrap()), &[]).await;
    let session = p.signin_password("carol", "carol pw", &client("10.2.0.1"), false).await.unwrap();
    assert_eq!(p.authenticate(&session.token).await.unwrap().user_id(), id);
    let refresh = p.signin_token(&session.token, &client("10.2.0.1"), true).await.unwrap();
    assert!(refresh.expires_at > session.expires_at, "long token");
    p.store()
        .update_one(
            USERS_COLLECTION,
            &Scope::system(),
            &json!({"_id": id}),
            &json!({"$set": {"disabled": true}}),
            false,
        )
        .await
        .unwrap();
    for token in [&session.token, &refresh.token] {
        assert!(matches!(p.authenticate(token).await, Err(CoreError::Unauthenticated(_))));
    }
    assert!(p.signin_token(&session.token, &client("10.2.0.1"), false).await.is_err());
    assert!(p.signin_password("carol", "carol pw", &client("10.2.0.1"), false).await.is_err());
    // Deleted: same.
    p.store().delete_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": id})).await.unwrap();
    assert!(matches!(p.authenticate(&session.token).await, Err(CoreError::Unauthenticated(_))));
    assert!(matches!(p.authenticate("not a token").await, Err(CoreError::Unauthenticated(_))));
}

#[tokio::test]
async fn signing_keys_survive_a_restart_and_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let master = MasterKey::generate().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = Platform::open(store, config(), &master).await.unwrap();
    let first = p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.3.0.1"), false).await.unwrap();
    let jwks = p.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    drop(p);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = Platform::open(store, config(), &master).await.unwrap();
    assert_eq!(p.jwks().await, jwks, "same key after restart");
    assert!(p.authenticate(&first.token).await.unwrap().is_admin());
    let kid = p.rotate_signing_key().await.unwrap();
    assert_eq!(p.jwks().await["keys"].as_array().unwrap().len(), 2);
    assert!(p.authenticate(&first.token).await.is_ok(), "old key still verifies");
    let second = p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.3.0.1"), false).await.unwrap();
    drop(p);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = Platform::open(store, config(), &master).await.unwrap();
    assert_eq!(p.jwks().await["keys"][0]["kid"], kid.as_str(), "the rotated key is active after restart");
    assert!(p.authenticate(&first.token).await.is_ok());
    assert!(p.authenticate(&second.token).await.is_ok());
    // Two processes on one store: a key rotated by one is picked up by the other on first sight.
    let store_b: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Platform::open(store_b, config(), &master).await.unwrap();
    p.rotate_signing_key().await.unwrap();
    let third = p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.3.0.1"), false).await.unwrap();
    assert!(b.authenticate(&third.token).await.is_ok(), "b reloads the keys");
    // Same keys, same active key (retired keys of equal age may be listed in either order).
    let kids = |jwks: Value| {
        let mut kids: Vec<String> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        let active = kids.remove(0);
        kids.sort();
        (active, kids)
    };
    assert_eq!(kids(b.jwks().await), kids(p.jwks().await));
    drop((p, b));
    // Another master key cannot read the keys: the start fails instead of minting a fresh key.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert!(Platform::open(store, config(), &MasterKey::generate().unwrap()).await.is_err());
}

#[tokio::test]
async fn impersonation_needs_read_and_update_and_is_audited() {
    let p = open().await;
    let dave = add_user(&p, "dave", Some(hash_password("dave pw").unwrap()), &[]).await;
    // erin may read dave but not update it; frank may do both.
    let erin = add_user(&p, "erin", Some(hash_password("erin pw").unwrap()), &[]).await;
    let frank = add_user(&p, "frank", Some(hash_password("frank pw").unwrap()), &[]).await;
    let acl = [
        Ace::allow(&dave, "dave", Rights::READ | Rights::UPDATE),
        Ace::allow(&erin, "erin", Rights::READ),
        Ace::allow(&frank, "frank", Rights::READ | Rights::UPDATE),
    ];
    p.store()
        .update_one(
            USERS_COLLECTION,
            &Scope::system(),
            &json!({"_id": dave}),
            &json!({"$set": {"_acl": acl_to_value(&acl)}}),
            false,
        )
        .await
        .unwrap();
    let c = client("10.4.0.1");
    let erin_session = p.signin_password("erin", "erin pw", &c, false).await.unwrap();
    let erin_caller = p.authenticate(&erin_session.token).await.unwrap();
    assert!(matches!(p.impersonate(&erin_caller, &dave, &c).await, Err(CoreError::AccessDenied(_))));
    let frank_session = p.signin_password("frank", "frank pw", &c, false).await.unwrap();
    let frank_caller = p.authenticate(&frank_session.token).await.unwrap();
    assert!(p.impersonate(&frank_caller, wellknown::ROOT, &c).await.is_err(), "root is never a login");

    let as_dave = p.impersonate(&frank_caller, &dave, &c).await.unwrap();
    assert_eq!(as_dave.user["impostor"], frank.as_str());
    let caller = p.authenticate(&as_dave.token).await.unwrap();
    assert_eq!(caller.user_id(), dave);
    assert_eq!(caller.impostor().unwrap().user_id(), frank);
    // Revert gives frank back.
    let back = p.revert_impersonation(&caller, &c).await.unwrap();
    let caller_back = p.authenticate(&back.token).await.unwrap();
    assert_eq!(caller_back.user_id(), frank);
    assert!(caller_back.impostor().is_none());
    // Taking frank's update right away ends the impersonation on the next request.
    let acl = [Ace::allow(&frank, "frank", Rights::READ)];
    p.store()
        .update_one(
            USERS_COLLECTION,
            &Scope::system(),
            &json!({"_id": dave}),
            &json!({"$set": {"_acl": acl_to_value(&acl)}}),
            false,
        )
        .await
        .unwrap();
    assert!(matches!(p.authenticate(&as_dave.token).await, Err(CoreError::Unauthenticated(_))));

    let kinds = audit_kinds(&p).await;
    assert_eq!(kinds.iter().filter(|k| *k == "impersonate").count(), 1);
    // The impersonation entry names both users and the token's id, never the token.
    let entry = &p
        .store()
        .find("audit", &Scope::system(), &json!({"kind": "impersonate"}), &FindOptions::default())
        .await
        .unwrap()[0];
    assert_eq!(entry["actor"]["id"], frank.as_str());
    assert_eq!(entry["target"]["id"], dave.as_str());
    assert!(entry["details"]["token"]["jti"].is_string());
    assert!(!entry.to_string().contains(&as_dave.token));
    assert_eq!(kinds.iter().filter(|k| *k == "impersonate_failed").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "impersonate_reverted").count(), 1);
}

#[tokio::test]
async fn the_audit_chain_verifies_and_reports_an_altered_entry() {
    let p = open().await;
    let c = client("10.5.0.1");
    p.signin_password(ADMIN, ADMIN_PASSWORD, &c, false).await.unwrap();
    let _ = p.signin_password(ADMIN, "nope", &c, false).await;
    let _ = p.signin_password("ghost", "nope", &c, false).await;
    p.rotate_signing_key().await.unwrap();
    let report = p.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.checked >= 5, "{report:?}");

    // Entries are readable by admins only.
    let audit = p.store().find("audit", &Scope::system(), &json!({"seq": 3}), &FindOptions::default()).await.unwrap();
    assert_eq!(audit[0]["_acl"], json!([{"_id": wellknown::ADMINS, "name": "admins", "rights": 2}]));
    // Someone with database access rewrites the reason of entry 3.
    p.store()
        .update_one(
            "audit",
            &Scope::system(),
            &json!({"seq": 3}),
            &json!({"$set": {"reason": "nothing happened"}}),
            false,
        )
        .await
        .unwrap();
    let report = p.verify_audit().await.unwrap();
    assert_eq!(report.problems, vec![Problem::Altered { seq: 3 }]);
    // And deletes entry 2.
    p.store().delete_one("audit", &Scope::system(), &json!({"seq": 2})).await.unwrap();
    let report = p.verify_audit().await.unwrap();
    assert!(report.problems.contains(&Problem::Removed { first: 2, last: 2 }), "{report:?}");
    // An entry rewritten into something that is no longer an entry is reported as altered.
    p.store()
        .update_one("audit", &Scope::system(), &json!({"seq": 4}), &json!({"$set": {"kind": 17}}), false)
        .await
        .unwrap();
    let report = p.verify_audit().await.unwrap();
    assert!(report.problems.contains(&Problem::Altered { seq: 4 }), "{report:?}");
    // Plain users read none of it, even through the `users` role.
    let scope = Scope::acl(["someone", wellknown::USERS], Rights::READ);
    assert_eq!(p.store().count("audit", &scope, &json!({})).await.unwrap(), 0);
}

#[tokio::test]
async fn users_written_through_the_documents_layer_follow_the_identity_rules() {
    let p = open().await;
    let c = client("10.6.0.1");
    let admin =
        p.authenticate(&p.signin_password(ADMIN, ADMIN_PASSWORD, &c, false).await.unwrap().token).await.unwrap();
    let zed = p
        .insert_one(&admin, USERS_COLLECTION, json!({"_type": "user", "username": " Zed ", "newpassword": "zed pw"}))
        .await
        .unwrap();
    let zed_id = zed["_id"].as_str().unwrap().to_owned();
    assert_eq!(zed["username"], "zed");
    assert!(zed.get("newpassword").is_none() && zed.get("passwordhash").is_none());
    let session = p.signin_password("zed", "zed pw", &c, false).await.unwrap();
    let dup = p.insert_one(&admin, USERS_COLLECTION, json!({"_type": "user", "username": "ZED"})).await;
    assert!(matches!(dup, Err(CoreError::Conflict(_))), "{dup:?}");

    // zed changes its own password with an operator update.
    let zed_caller = p.authenticate(&session.token).await.unwrap();
    // Only admins create users and customers; anyone signed in may create a role.
    for kind in ["user", "customer"] {
        let doc = json!({"_type": kind, "username": format!("made-by-zed-{kind}"), "name": format!("by zed {kind}")});
        let refused = p.insert_one(&zed_caller, USERS_COLLECTION, doc).await;
        assert!(matches!(refused, Err(CoreError::AccessDenied(_))), "{kind}: {refused:?}");
    }
    p.insert_one(&zed_caller, USERS_COLLECTION, json!({"_type": "role", "name": "zed's own role"})).await.unwrap();
    let set = json!({"$set": {"newpassword": "zed pw 2"}});
    p.update_one(&zed_caller, USERS_COLLECTION, &json!({"_id": zed_id}), &set).await.unwrap();
    assert!(p.signin_password("zed", "zed pw", &c, false).await.is_err());
    p.signin_password("zed", "zed pw 2", &c, false).await.unwrap();
    let raw = user_doc(&p, &zed_id).await;
    assert!(raw.get("newpassword").is_none());
    assert!(raw["passwordhash"].as_str().unwrap().starts_with("$argon2id$"));

    // A role created with zed as member applies on zed's next request.
    let role = json!({"_type": "role", "name": "zed team", "members": [{"_id": zed_id, "name": "zed"}]});
    let role = p.insert_one(&admin, USERS_COLLECTION, role).await.unwrap();
    let caller = p.authenticate(&session.token).await.unwrap();
    assert!(caller.roles().iter().any(|r| r.id == role["_id"].as_str().unwrap()));
    // Disabling zed (an admin may) ends its session at once.
    let disable = json!({"$set": {"disabled": true}});
    p.update_one(&admin, USERS_COLLECTION, &json!({"_id": zed_id}), &disable).await.unwrap();
    assert!(matches!(p.authenticate(&session.token).await, Err(CoreError::Unauthenticated(_))));

    let kinds = audit_kinds(&p).await;
    assert_eq!(kinds.iter().filter(|k| *k == "password_changed").count(), 2, "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "membership_changed"));
    assert!(p.verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_deleted_admin_is_recreated_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let master = MasterKey::generate().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = Platform::open(store.clone(), config(), &master).await.unwrap();
    // The only admin is deleted behind the system's back: admins keeps a dangling member.
    store.delete_one(USERS_COLLECTION, &Scope::system(), &json!({"username": ADMIN})).await.unwrap();
    drop(p);
    let p = Platform::open(store.clone(), config(), &master).await.unwrap();
    let session = p.signin_password(ADMIN, ADMIN_PASSWORD, &client("10.7.0.1"), false).await.unwrap();
    assert!(p.authenticate(&session.token).await.unwrap().is_admin());
}
