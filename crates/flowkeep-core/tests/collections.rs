//! Collection commands end to end: who may create and drop, what is never dropped or listed, and that
//! creating and dropping are audited in a chain that still verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_security::{wellknown, RoleGraph};
use flowkeep_store::{CollectionKind, CollectionOptions, Scope};
use serde_json::json;

async fn open() -> (Platform, Caller, Caller) {
    let p = common::platform(PlatformConfig::default()).await;
    let roles = [json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "u-admin"}]})];
    let graph = RoleGraph::from_role_docs(&roles);
    let alice = Caller::resolve(&user("u-alice", "alice"), &graph).unwrap();
    let admin = Caller::resolve(&user("u-admin", "boss"), &graph).unwrap();
    (p, alice, admin)
}

async fn audit_kinds(p: &Platform) -> Vec<String> {
    let entries = p.store().find("audit", &Scope::system(), &json!({}), &Default::default()).await.unwrap();
    entries.iter().filter_map(|e| e["kind"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn create_drop_and_list_follow_the_rules_and_are_audited() {
    let (p, alice, admin) = open().await;

    // Any signed-in caller creates a collection, with options kept.
    let options: CollectionOptions =
        serde_json::from_value(json!({"timeseries": {"timeField": "ts"}, "expireAfterSeconds": 3600})).unwrap();
    p.create_collection(&alice, "metrics", &options).await.unwrap();
    let listed = p.list_collections(&alice, false).await.unwrap();
    let metrics = listed.iter().find(|c| c.name == "metrics").expect("metrics is listed");
    assert_eq!(metrics.kind, CollectionKind::Timeseries);
    assert_eq!(metrics.options.expire_after_seconds, Some(3600));

    // Reserved and history names cannot be created by clients.
    for name in ["flowkeep.keys", "FlowKeep.other", "metrics_hist", "audit"] {
        let refused = p.create_collection(&admin, name, &CollectionOptions::default()).await;
        assert!(matches!(refused, Err(CoreError::AccessDenied(_))), "{name}: {refused:?}");
    }

    // History is hidden unless asked for; system collections are never listed.
    p.insert_one(&alice, "notes", json!({"name": "n"})).await.unwrap();
    let names = |list: Vec<flowkeep_store::CollectionInfo>| list.into_iter().map(|c| c.name).collect::<Vec<_>>();
    let plain = names(p.list_collections(&alice, false).await.unwrap());
    let with_history = names(p.list_collections(&alice, true).await.unwrap());
    assert!(plain.contains(&"notes".to_string()) && !plain.contains(&"notes_hist".to_string()), "{plain:?}");
    assert!(with_history.contains(&"notes_hist".to_string()), "{with_history:?}");
    assert!(with_history.iter().all(|n| !n.starts_with("flowkeep.")), "{with_history:?}");

    // Only admins drop; users and audit never; a drop takes the history with it.
    assert!(matches!(p.drop_collection(&alice, "notes").await, Err(CoreError::AccessDenied(_))));
    for name in ["users", "audit", "flowkeep.keys"] {
        assert!(matches!(p.drop_collection(&admin, name).await, Err(CoreError::AccessDenied(_))), "{name}");
    }
    assert!(p.drop_collection(&admin, "notes").await.unwrap());
    let after = names(p.list_collections(&admin, true).await.unwrap());
    assert!(!after.contains(&"notes".to_string()) && !after.contains(&"notes_hist".to_string()), "{after:?}");
    assert!(!p.drop_collection(&admin, "notes").await.unwrap(), "dropping again reports it was not there");

    let kinds = audit_kinds(&p).await;
    assert_eq!(kinds.iter().filter(|k| *k == "collection_created").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "collection_dropped").count(), 1, "{kinds:?}");
    assert!(p.verify_audit().await.unwrap().is_ok());
}
