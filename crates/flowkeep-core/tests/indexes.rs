//! Index commands end to end: who may create, list and drop, idempotent creation audited once, and the
//! collections no client may index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_security::{wellknown, RoleGraph};
use flowkeep_store::{IndexOptions, Scope};
use serde_json::json;

async fn open() -> (Platform, Caller, Caller, Caller) {
    let p = common::platform(PlatformConfig::default()).await;
    let roles = [json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "u-admin"}]})];
    let graph = RoleGraph::from_role_docs(&roles);
    let alice = Caller::resolve(&user("u-alice", "alice"), &graph).unwrap();
    let admin = Caller::resolve(&user("u-admin", "boss"), &graph).unwrap();
    let guest = Caller::resolve(&user(wellknown::GUEST, "guest"), &graph).unwrap();
    (p, alice, admin, guest)
}

async fn audit_kinds(p: &Platform) -> Vec<String> {
    let entries = p.store().find("audit", &Scope::system(), &json!({}), &Default::default()).await.unwrap();
    entries.iter().filter_map(|e| e["kind"].as_str().map(str::to_owned)).collect()
}

async fn names(p: &Platform, caller: &Caller, collection: &str) -> Vec<String> {
    p.list_indexes(caller, collection).await.unwrap().into_iter().map(|i| i.name).collect()
}

fn denied<T: std::fmt::Debug>(r: &Result<T, CoreError>) -> bool {
    matches!(r, Err(CoreError::AccessDenied(_)))
}

#[tokio::test]
async fn create_is_idempotent_listed_and_audited_once() {
    let (p, alice, _, _) = open().await;
    let plain = IndexOptions::default();
    assert_eq!(p.create_index(&alice, "entities", &json!({"name": 1}), &plain).await.unwrap(), "name_1");
    assert_eq!(p.create_index(&alice, "entities", &json!({"name": 1}), &plain).await.unwrap(), "name_1");
    let sparse = IndexOptions { name: Some("by_k".into()), sparse: true, ..IndexOptions::default() };
    assert_eq!(p.create_index(&alice, "entities", &json!({"k": -1}), &sparse).await.unwrap(), "by_k");
    assert_eq!(names(&p, &alice, "entities").await, vec!["_id_", "name_1", "by_k"]);
    let listed = p.list_indexes(&alice, "entities").await.unwrap();
    assert_eq!(listed[2].key, json!({"k": -1}));
    assert!(listed[2].sparse);

    // The same name with other keys is a conflict, not a silent success.
    let other = IndexOptions { name: Some("name_1".into()), ..IndexOptions::default() };
    let clash = p.create_index(&alice, "entities", &json!({"other": 1}), &other).await;
    assert!(matches!(clash, Err(CoreError::Conflict(_))), "{clash:?}");
    let bad = p.create_index(&alice, "entities", &json!("name"), &plain).await;
    assert!(matches!(bad, Err(CoreError::InvalidRequest(_))), "{bad:?}");

    let kinds = audit_kinds(&p).await;
    assert_eq!(kinds.iter().filter(|k| *k == "index_created").count(), 2, "{kinds:?}");
    assert!(p.verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
async fn unique_ttl_and_drop_are_for_admins() {
    let (p, alice, admin, guest) = open().await;
    let unique = IndexOptions { unique: true, ..IndexOptions::default() };
    let ttl = IndexOptions { expire_after_seconds: Some(60), ..IndexOptions::default() };
    assert!(denied(&p.create_index(&alice, "entities", &json!({"code": 1}), &unique).await));
    assert!(denied(&p.create_index(&alice, "entities", &json!({"_created": 1}), &ttl).await));
    assert!(denied(&p.create_index(&guest, "entities", &json!({"code": 1}), &IndexOptions::default()).await));
    assert_eq!(names(&p, &alice, "entities").await, Vec::<String>::new(), "nothing was created");
    assert_eq!(p.create_index(&admin, "entities", &json!({"code": 1}), &unique).await.unwrap(), "code_1");
    assert_eq!(p.create_index(&admin, "entities", &json!({"_created": 1}), &ttl).await.unwrap(), "_created_1");

    assert!(denied(&p.drop_index(&alice, "entities", "code_1").await));
    assert!(names(&p, &alice, "entities").await.contains(&"code_1".to_string()));
    p.drop_index(&admin, "entities", "code_1").await.unwrap();
    assert_eq!(names(&p, &alice, "entities").await, vec!["_id_", "_created_1"]);
    let again = p.drop_index(&admin, "entities", "code_1").await;
    assert!(matches!(again, Err(CoreError::NotFound(_))), "{again:?}");

    let kinds = audit_kinds(&p).await;
    assert_eq!(kinds.iter().filter(|k| *k == "index_created").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "index_dropped").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn system_collections_cannot_be_indexed_by_clients() {
    let (p, alice, admin, _) = open().await;
    let plain = IndexOptions::default();
    for coll in ["audit", "entities_hist", "fs.chunks", "flowkeep.keys"] {
        assert!(denied(&p.create_index(&admin, coll, &json!({"x": 1}), &plain).await), "{coll}");
        assert!(denied(&p.drop_index(&admin, coll, "x_1").await), "{coll}");
    }
    // Readable system collections list their indexes; chunks and reserved ones do not.
    assert!(names(&p, &alice, "audit").await.contains(&"_id_".to_string()));
    assert!(denied(&p.list_indexes(&alice, "fs.chunks").await));
    assert!(denied(&p.list_indexes(&admin, "flowkeep.keys").await));
}
