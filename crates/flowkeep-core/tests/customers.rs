//! `ensurecustomer` (find by `_id` or name among the customers the caller may read, or create — admins
//! only — through the normal insert path, optionally on behalf of a user) and `explain` of a query.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use flowkeep_core::documents::{QueryRequest, USERS};
use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_security::{wellknown, RoleGraph};
use flowkeep_store::{IndexOptions, Scope};
use serde_json::json;

async fn open() -> (Platform, Caller, Caller) {
    let p = common::platform(PlatformConfig::default()).await;
    let roles = [json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "u-admin"}]})];
    let graph = RoleGraph::from_role_docs(&roles);
    let alice = Caller::resolve(&user("u-alice", "alice"), &graph).unwrap();
    let admin = Caller::resolve(&user("u-admin", "boss"), &graph).unwrap();
    (p, alice, admin)
}

async fn customers_named(p: &Platform, name: &str) -> u64 {
    p.store().count(USERS, &Scope::system(), &json!({"_type": "customer", "name": name})).await.unwrap()
}

#[tokio::test]
async fn admins_find_or_create_customers() {
    let (p, _, admin) = open().await;
    let created = p.ensure_customer(&admin, json!({"name": "Acme", "vat": "X1"}), None).await.unwrap();
    assert_eq!(created["_type"], "customer");
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["vat"], "X1");
    assert_eq!(created["_version"], 0);
    assert_eq!(created["_createdbyid"], "u-admin");
    let id = created["_id"].as_str().unwrap().to_string();

    // Found again by name and by id: no second customer.
    let by_name = p.ensure_customer(&admin, json!({"name": "Acme", "vat": "changed"}), None).await.unwrap();
    assert_eq!((by_name["_id"].as_str(), by_name["vat"].as_str()), (Some(id.as_str()), Some("X1")));
    let by_id = p.ensure_customer(&admin, json!({"_id": id}), None).await.unwrap();
    assert_eq!(by_id["_id"], id.as_str());
    assert_eq!(customers_named(&p, "Acme").await, 1);
    // Written through the insert path: history kept.
    assert_eq!(p.store().count("users_hist", &Scope::system(), &json!({"id": id})).await.unwrap(), 1);

    // Only customers count: a role of the same name is not found as a customer.
    p.insert_one(&admin, USERS, json!({"_type": "role", "name": "Beta"})).await.unwrap();
    let beta = p.ensure_customer(&admin, json!({"name": "Beta"}), None).await.unwrap();
    assert_eq!(beta["_type"], "customer");

    let empty = p.ensure_customer(&admin, json!({}), None).await;
    assert!(matches!(empty, Err(CoreError::InvalidRequest(_))), "{empty:?}");
    let not_object = p.ensure_customer(&admin, json!("Acme"), None).await;
    assert!(matches!(not_object, Err(CoreError::InvalidRequest(_))), "{not_object:?}");
    let by_unknown_id = p.ensure_customer(&admin, json!({"_id": "c-unknown"}), None).await;
    assert!(matches!(by_unknown_id, Err(CoreError::InvalidRequest(_))), "creating needs a name: {by_unknown_id:?}");
}

#[tokio::test]
async fn non_admins_find_only_what_they_may_read_and_never_create() {
    let (p, alice, admin) = open().await;
    let refused = p.ensure_customer(&alice, json!({"name": "Mine"}), None).await;
    assert!(matches!(refused, Err(CoreError::AccessDenied(_))), "{refused:?}");
    assert_eq!(customers_named(&p, "Mine").await, 0);

    // A customer alice cannot read looks the same as none: refused to create, nothing revealed.
    p.ensure_customer(&admin, json!({"name": "Hidden"}), None).await.unwrap();
    let hidden = p.ensure_customer(&alice, json!({"name": "Hidden"}), None).await;
    assert!(matches!(hidden, Err(CoreError::AccessDenied(_))), "{hidden:?}");
    assert_eq!(customers_named(&p, "Hidden").await, 1);

    // ensure_as: the named user gets full control on the new customer, so it finds it afterwards.
    p.insert_one(&admin, USERS, json!({"_id": "u-alice", "_type": "user", "username": "alice"})).await.unwrap();
    let made = p.ensure_customer(&admin, json!({"name": "Alices"}), Some("u-alice")).await.unwrap();
    let acl = made["_acl"].as_array().unwrap();
    assert!(acl.iter().any(|a| a["_id"] == "u-alice" && a["rights"] == 65535), "{acl:?}");
    let found = p.ensure_customer(&alice, json!({"name": "Alices"}), None).await.unwrap();
    assert_eq!(found["_id"], made["_id"]);
    assert_eq!(customers_named(&p, "Alices").await, 1);

    // ensure_as must be an existing user.
    let unknown = p.ensure_customer(&admin, json!({"name": "X"}), Some("u-nobody")).await;
    assert!(matches!(unknown, Err(CoreError::NotFound(_))), "{unknown:?}");
    let role = p.ensure_customer(&admin, json!({"name": "X"}), Some(wellknown::USERS)).await;
    assert!(matches!(role, Err(CoreError::AccessDenied(_))), "{role:?}");
    assert_eq!(customers_named(&p, "X").await, 0);
}

#[tokio::test]
async fn explain_runs_the_query_as_the_caller() {
    let (p, alice, admin) = open().await;
    p.insert_one(&alice, "entities", json!({"name": "a"})).await.unwrap();
    p.store().create_index("entities", &json!({"name": 1}), &IndexOptions::default()).await.unwrap();
    let request = QueryRequest { filter: json!({"name": "a"}), top: Some(5), ..QueryRequest::default() };

    let as_alice = p.explain_query(&alice, "entities", &request).await.unwrap();
    assert_eq!(as_alice["scope"]["kind"], "acl", "{as_alice}");
    assert_eq!(as_alice["hints"][0]["path"], "name", "{as_alice}");
    let as_admin = p.explain_query(&admin, "entities", &request).await.unwrap();
    assert_eq!(as_admin["scope"]["kind"], "system", "{as_admin}");

    // The same checks as a query.
    let reserved = p.explain_query(&admin, "flowkeep.keys", &request).await;
    assert!(matches!(reserved, Err(CoreError::AccessDenied(_))), "{reserved:?}");
    let hash = QueryRequest { filter: json!({"passwordhash": {"$exists": true}}), ..QueryRequest::default() };
    assert!(matches!(p.explain_query(&admin, USERS, &hash).await, Err(CoreError::AccessDenied(_))));
    let bad = QueryRequest { projection: Some(json!({"a": 1, "b": 0})), ..request.clone() };
    assert!(matches!(p.explain_query(&alice, "entities", &bad).await, Err(CoreError::InvalidRequest(_))));
}
