//! The document commands end to end over a temporary SQLite store: ACL scoping of every read and write,
//! ACL defaults, versions, history rebuilds, delete snapshots, field encryption, the password hash and
//! reserved collections.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use flowkeep_core::documents::{QueryRequest, USERS};
use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_security::{wellknown, MasterKey, RoleGraph};
use flowkeep_store::{FindOptions, Scope, SqliteStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

const COLL: &str = "entities";

struct World {
    p: Platform,
    alice: Caller,
    bob: Caller,
    admin: Caller,
}

async fn world() -> World {
    let p = common::platform(PlatformConfig::default()).await;
    let roles = [json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "u-admin"}]})];
    let graph = RoleGraph::from_role_docs(&roles);
    World {
        alice: Caller::resolve(&user("u-alice", "alice"), &graph).unwrap(),
        bob: Caller::resolve(&user("u-bob", "bob"), &graph).unwrap(),
        admin: Caller::resolve(&user("u-admin", "boss"), &graph).unwrap(),
        p,
    }
}

fn all() -> QueryRequest {
    QueryRequest { filter: json!({}), ..QueryRequest::default() }
}

async fn raw(p: &Platform, collection: &str, id: &str) -> Value {
    p.store().find_one(collection, &Scope::system(), &json!({"_id": id}), None).await.unwrap().unwrap()
}

fn acl_ids(doc: &Value) -> Vec<(String, u64)> {
    doc["_acl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["_id"].as_str().unwrap().to_string(), a["rights"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn other_users_see_and_touch_nothing() {
    let w = world().await;
    let doc = w.p.insert_one(&w.alice, COLL, json!({"name": "a", "n": 1})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    let (p, bob) = (&w.p, &w.bob);

    assert!(p.query(bob, COLL, &all()).await.unwrap().is_empty());
    assert_eq!(p.count(bob, COLL, &json!({})).await.unwrap(), 0);
    assert!(p.distinct(bob, COLL, "name", &json!({})).await.unwrap().is_empty());
    assert!(p.aggregate(bob, COLL, &json!([{"$match": {}}])).await.unwrap().is_empty());
    let update = p.update_document(bob, COLL, json!({"_id": id, "name": "b"})).await;
    assert!(matches!(update, Err(CoreError::NotFound(_))), "{update:?}");
    assert_eq!(p.update_one(bob, COLL, &json!({"_id": id}), &json!({"$set": {"n": 2}})).await.unwrap().matched, 0);
    assert_eq!(p.update_many(bob, COLL, &json!({}), &json!({"$set": {"n": 2}})).await.unwrap().matched, 0);
    assert!(matches!(p.delete_one(bob, COLL, &id).await, Err(CoreError::NotFound(_))));
    assert_eq!(p.delete_many(bob, COLL, &json!({})).await.unwrap(), 0);
    assert!(matches!(p.get_document_version(bob, COLL, &id, 0).await, Err(CoreError::NotFound(_))));
    // the history collection is scoped by the same ACL
    assert!(p.query(bob, &format!("{COLL}_hist"), &all()).await.unwrap().is_empty());
    assert_eq!(p.query(&w.alice, &format!("{COLL}_hist"), &all()).await.unwrap().len(), 1);
    // a $lookup from a readable collection does not reach alice's documents either
    p.insert_one(bob, "orders", json!({"name": "o", "ref": id})).await.unwrap();
    let joined = p
        .aggregate(
            bob,
            "orders",
            &json!([{"$lookup": {"from": COLL, "localField": "ref", "foreignField": "_id", "as": "j"}}]),
        )
        .await
        .unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["j"], json!([]));

    // nothing changed; the admin sees it all
    let stored = raw(p, COLL, &id).await;
    assert_eq!(stored["n"], 1);
    assert_eq!(stored["_version"], 0);
    assert_eq!(p.count(&w.admin, COLL, &json!({})).await.unwrap(), 1);
}

#[tokio::test]
async fn acl_defaults_and_system_fields() {
    let w = world().await;
    let doc =
        w.p.insert_one(&w.alice, COLL, json!({"name": "a", "_type": "Thing", "_skiphistory": true})).await.unwrap();
    assert_eq!(acl_ids(&doc), vec![(wellknown::ADMINS.to_string(), 65535), ("u-alice".to_string(), 65535)]);
    assert_eq!(doc["_type"], "thing");
    assert_eq!(doc["_version"], 0);
    assert_eq!(doc["_createdbyid"], "u-alice");
    assert_eq!(doc["_modifiedby"], "alice");
    assert!(doc["_created"].as_str().unwrap().ends_with('Z'));
    assert!(doc.get("_skiphistory").is_none());

    let untyped = w.p.insert_one(&w.admin, COLL, json!({"name": "b"})).await.unwrap();
    assert_eq!(untyped["_type"], "unknown");
    assert_eq!(acl_ids(&untyped), vec![(wellknown::ADMINS.to_string(), 65535)], "admins get no personal entry");

    // a requested ACL is kept, with the creator raised to full control
    let shared = w
        .p
        .insert_one(&w.alice, COLL, json!({"name": "c", "_acl": [{"_id": "u-bob", "name": "bob", "rights": 2}, {"_id": "u-alice", "rights": 2}]}))
        .await
        .unwrap();
    assert!(acl_ids(&shared).contains(&("u-bob".to_string(), 2)));
    assert!(acl_ids(&shared).contains(&("u-alice".to_string(), 65535)));
    assert_eq!(w.p.query(&w.bob, COLL, &all()).await.unwrap().len(), 1);

    // insert_many is all or nothing
    let bad = w.p.insert_many(&w.alice, COLL, vec![json!({"name": "ok"}), json!("not an object")]).await;
    assert!(matches!(bad, Err(CoreError::InvalidRequest(m)) if m.contains("document 1")));
    assert_eq!(w.p.count(&w.alice, COLL, &json!({"name": "ok"})).await.unwrap(), 0);
    let dup = w.p.insert_many(&w.alice, COLL, vec![json!({"_id": "x1"}), json!({"_id": "x1"})]).await;
    assert!(matches!(dup, Err(CoreError::Conflict(_))), "{dup:?}");
    assert_eq!(w.p.count(&w.admin, COLL, &json!({"_id": "x1"})).await.unwrap(), 0);
}

#[tokio::test]
async fn read_grant_then_deny() {
    let w = world().await;
    let (p, alice, bob) = (&w.p, &w.alice, &w.bob);
    let doc = p.insert_one(alice, COLL, json!({"name": "a"})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();

    let mut granted = doc.clone();
    granted["_acl"].as_array_mut().unwrap().push(json!({"_id": "u-bob", "name": "bob", "rights": 2}));
    let granted = p.update_document(alice, COLL, granted).await.unwrap();
    assert_eq!(granted["_version"], 1);
    assert_eq!(p.query(bob, COLL, &all()).await.unwrap().len(), 1);
    assert_eq!(p.count(bob, COLL, &json!({})).await.unwrap(), 1);
    assert_eq!(p.distinct(bob, COLL, "name", &json!({})).await.unwrap(), vec![json!("a")]);
    assert_eq!(p.get_document_version(bob, COLL, &id, 0).await.unwrap().unwrap()["name"], "a");
    // read, but not update or delete
    let mut changed = granted.clone();
    changed["name"] = json!("by bob");
    assert!(
        matches!(p.update_document(bob, COLL, changed).await, Err(CoreError::AccessDenied(m)) if m.contains("update"))
    );
    assert_eq!(p.update_one(bob, COLL, &json!({}), &json!({"$set": {"name": "x"}})).await.unwrap().matched, 0);
    assert!(matches!(p.delete_one(bob, COLL, &id).await, Err(CoreError::AccessDenied(_))));
    // bob cannot widen the ACL himself
    let mut widened = granted.clone();
    widened["_acl"].as_array_mut().unwrap().push(json!({"_id": "u-bob", "rights": 65535}));
    assert!(matches!(p.update_document(bob, COLL, widened).await, Err(CoreError::AccessDenied(_))));

    // read through the users role, then a deny entry for bob wins
    let mut via_role = granted.clone();
    via_role["_acl"] = json!([{"_id": "u-alice", "rights": 65535}, {"_id": wellknown::USERS, "rights": 2}]);
    let via_role = p.update_document(alice, COLL, via_role).await.unwrap();
    assert_eq!(p.count(bob, COLL, &json!({})).await.unwrap(), 1);
    let mut denied = via_role.clone();
    denied["_acl"].as_array_mut().unwrap().push(json!({"_id": "u-bob", "rights": 2, "deny": true}));
    p.update_document(alice, COLL, denied).await.unwrap();
    assert_eq!(p.count(bob, COLL, &json!({})).await.unwrap(), 0);
    assert!(p.query(bob, COLL, &all()).await.unwrap().is_empty());
    assert!(p.aggregate(bob, COLL, &json!([])).await.unwrap().is_empty());
    assert!(matches!(p.get_document_version(bob, COLL, &id, 0).await, Err(CoreError::NotFound(_))));
    // admins keep full control (the ACL cannot lock them out)
    assert_eq!(raw(p, COLL, &id).await["_acl"][0]["_id"], "u-alice");
    assert!(acl_ids(&raw(p, COLL, &id).await).contains(&(wellknown::ADMINS.to_string(), 65535)));
}

#[tokio::test]
async fn queryas_narrows_to_what_the_principal_may_read() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    // bob must exist in users for alice to ask as him, and be readable by her
    p.insert_one(
        &w.admin,
        USERS,
        json!({"_id": "u-bob", "_type": "user", "username": "bob", "name": "bob",
        "_acl": [{"_id": "u-alice", "rights": 2}]}),
    )
    .await
    .unwrap();
    p.insert_one(alice, COLL, json!({"name": "private"})).await.unwrap();
    p.insert_one(alice, COLL, json!({"name": "shared", "_acl": [{"_id": "u-bob", "rights": 2}]})).await.unwrap();
    p.insert_one(alice, COLL, json!({"name": "denied", "_acl": [{"_id": wellknown::USERS, "rights": 2}, {"_id": "u-bob", "rights": 2, "deny": true}]}))
        .await
        .unwrap();
    assert_eq!(p.query(alice, COLL, &all()).await.unwrap().len(), 3);
    let as_bob = QueryRequest { queryas: Some("u-bob".into()), ..all() };
    let names: Vec<Value> =
        p.query(alice, COLL, &as_bob).await.unwrap().into_iter().map(|d| d["name"].clone()).collect();
    assert_eq!(names, vec![json!("shared")]);
    // a principal the caller cannot see
    let as_stranger = QueryRequest { queryas: Some("u-nobody".into()), ..all() };
    assert!(matches!(p.query(alice, COLL, &as_stranger).await, Err(CoreError::NotFound(_))));
}

#[tokio::test]
async fn versions_rise_only_on_real_change_and_every_version_rebuilds() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let v0 = p
        .insert_one(alice, COLL, json!({"name": "doc", "n": 1, "tags": ["a"], "secret": "s0", "_encrypt": ["secret"]}))
        .await
        .unwrap();
    let id = v0["_id"].as_str().unwrap().to_string();
    let mut versions = vec![v0.clone()];

    // the same document again: no write, no version
    let same = p.update_document(alice, COLL, v0.clone()).await.unwrap();
    assert_eq!(same["_version"], 0);
    assert_eq!(raw(p, COLL, &id).await["_modified"], v0["_modified"]);

    // full update
    let mut next = v0.clone();
    next["n"] = json!(2);
    next["secret"] = json!("s1");
    next.as_object_mut().unwrap().remove("_created"); // `_` fields missing are kept
    let v1 = p.update_document(alice, COLL, next).await.unwrap();
    assert_eq!(v1["_version"], 1);
    assert_eq!(v1["_created"], v0["_created"]);
    versions.push(v1.clone());

    // operator updates, including one on the encrypted field and one with no effect
    let r = p
        .update_one(alice, COLL, &json!({"_id": id}), &json!({"$push": {"tags": "b"}, "$inc": {"n": 5}}))
        .await
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    versions.push(r.document.unwrap());
    let noop = p.update_one(alice, COLL, &json!({"_id": id}), &json!({"$set": {"n": 7}})).await.unwrap();
    assert_eq!((noop.matched, noop.modified), (1, 0));
    let r = p
        .update_one(alice, COLL, &json!({"_id": id}), &json!({"$set": {"secret": "s3"}, "$unset": {"tags": ""}}))
        .await
        .unwrap();
    versions.push(r.document.unwrap());
    // `_created` cannot be changed by operators either
    let r = p
        .update_one(
            alice,
            COLL,
            &json!({"_id": id}),
            &json!({"$set": {"_created": "1999-01-01T00:00:00Z", "x": {"y": 1}}}),
        )
        .await
        .unwrap();
    let v4 = r.document.unwrap();
    assert_eq!(v4["_created"], v0["_created"]);
    versions.push(v4.clone());
    // full update that drops a field and deletes a `_` field with null
    let mut last = v4.clone();
    last.as_object_mut().unwrap().remove("x");
    last["_extra"] = json!("e");
    let v5 = p.update_document(alice, COLL, last).await.unwrap();
    let mut gone = v5.clone();
    gone["_extra"] = Value::Null;
    let v6 = p.update_document(alice, COLL, gone).await.unwrap();
    assert!(v6.get("_extra").is_none());
    versions.push(v5);
    versions.push(v6);

    for (i, expected) in versions.iter().enumerate() {
        assert_eq!(expected["_version"], i as u64, "version numbers are consecutive");
        let rebuilt = p.get_document_version(alice, COLL, &id, i as u64).await.unwrap().unwrap();
        assert_eq!(&rebuilt, expected, "version {i}");
    }
    assert_eq!(p.get_document_version(alice, COLL, &id, 99).await.unwrap(), None);

    // history holds what was stored: the secret encrypted, one base and one delta per version
    let hist = p
        .store()
        .find(&format!("{COLL}_hist"), &Scope::system(), &json!({"id": id}), &FindOptions::default())
        .await
        .unwrap();
    assert_eq!(hist.len(), versions.len());
    let indexes = p.store().list_indexes(&format!("{COLL}_hist")).await.unwrap();
    assert!(indexes.iter().any(|i| i.name == flowkeep_core::history::HISTORY_INDEX));
    let text = serde_json::to_string(&hist).unwrap();
    assert!(!text.contains("\"s0\"") && !text.contains("\"s1\"") && !text.contains("\"s3\""), "{text}");
}

#[tokio::test]
async fn delete_snapshot_and_restore() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let doc = p.insert_one(alice, COLL, json!({"name": "d", "n": 1})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    let r = p.update_one(alice, COLL, &json!({"_id": id}), &json!({"$set": {"n": 2}})).await.unwrap();
    let v1 = r.document.unwrap();
    p.delete_one(alice, COLL, &id).await.unwrap();
    assert_eq!(p.count(alice, COLL, &json!({})).await.unwrap(), 0);
    assert!(matches!(p.delete_one(alice, COLL, &id).await, Err(CoreError::NotFound(_))));

    let snapshot = p
        .store()
        .find(
            &format!("{COLL}_hist"),
            &Scope::system(),
            &json!({"id": id, "_deleted": {"$exists": true}}),
            &FindOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0]["_deletedbyid"], "u-alice");
    assert_eq!(snapshot[0]["_version"], 1);
    assert_eq!(snapshot[0]["item"]["n"], 2);
    // versions of a deleted document are readable by who could read its last version
    assert_eq!(p.get_document_version(alice, COLL, &id, 1).await.unwrap().unwrap(), v1);
    assert_eq!(p.get_document_version(alice, COLL, &id, 0).await.unwrap().unwrap(), doc);
    assert!(matches!(p.get_document_version(&w.bob, COLL, &id, 0).await, Err(CoreError::NotFound(_))));

    // inserting it again continues its versions
    let again = p.insert_one(alice, COLL, json!({"_id": id, "name": "back"})).await.unwrap();
    assert_eq!(again["_version"], 2);
    assert_eq!(p.get_document_version(alice, COLL, &id, 1).await.unwrap().unwrap()["n"], 2);
    assert_eq!(p.get_document_version(alice, COLL, &id, 2).await.unwrap().unwrap()["name"], "back");

    // delete_many: scoped, and snapshots each document
    p.insert_many(alice, COLL, vec![json!({"k": 1}), json!({"k": 2}), json!({"k": 3})]).await.unwrap();
    assert_eq!(p.delete_many(&w.bob, COLL, &json!({})).await.unwrap(), 0);
    assert_eq!(p.delete_many(alice, COLL, &json!({"k": {"$gte": 2}})).await.unwrap(), 2);
    assert_eq!(p.count(alice, COLL, &json!({"k": {"$exists": true}})).await.unwrap(), 1);
    let snapshots = p
        .store()
        .count(&format!("{COLL}_hist"), &Scope::system(), &json!({"_deleted": {"$exists": true}}))
        .await
        .unwrap();
    assert_eq!(snapshots, 3);
}

#[tokio::test]
async fn update_many_versions_each_document() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    p.insert_many(alice, COLL, vec![json!({"k": 1}), json!({"k": 2}), json!({"k": 3, "flag": true})]).await.unwrap();
    p.insert_one(&w.bob, COLL, json!({"k": 4})).await.unwrap();
    let r = p.update_many(alice, COLL, &json!({}), &json!({"$set": {"flag": true}})).await.unwrap();
    assert_eq!((r.matched, r.modified), (3, 2));
    let docs = p.query(&w.admin, COLL, &QueryRequest { sort: Some(json!({"k": 1})), ..all() }).await.unwrap();
    let versions: Vec<u64> = docs.iter().map(|d| d["_version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![1, 1, 0, 0]);
    assert!(docs[3].get("flag").is_none(), "bob's document is out of alice's scope");
    let bad = p.update_many(alice, COLL, &json!({}), &json!({"flag": false})).await;
    assert!(matches!(bad, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn insert_or_update_matches_on_uniqueness() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let first = p.insert_or_update_one(alice, COLL, json!({"key": "k1", "v": 1}), &["key".into()]).await.unwrap();
    let second = p.insert_or_update_one(alice, COLL, json!({"key": "k1", "v": 2}), &["key".into()]).await.unwrap();
    assert_eq!(first["_id"], second["_id"]);
    assert_eq!(second["_version"], 1);
    assert_eq!(p.count(alice, COLL, &json!({})).await.unwrap(), 1);
    // bob cannot see alice's document, so his write is a new document of his own
    let bobs = p.insert_or_update_one(&w.bob, COLL, json!({"key": "k1", "v": 3}), &["key".into()]).await.unwrap();
    assert_ne!(bobs["_id"], first["_id"]);
    let dup = p.insert_or_update_one(&w.admin, COLL, json!({"key": "k1"}), &["key".into()]).await;
    assert!(matches!(dup, Err(CoreError::Conflict(_))));
}

#[tokio::test]
async fn encrypted_fields_are_stored_encrypted_and_returned_decrypted() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let doc = p.insert_one(alice, COLL, json!({"name": "s", "pin": 1234, "_encrypt": ["pin"]})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    assert_eq!(doc["pin"], 1234);
    let stored = raw(p, COLL, &id).await;
    assert!(stored["pin"].as_str().unwrap().starts_with("$fk1$"), "{stored}");
    let read = p.query(alice, COLL, &all()).await.unwrap();
    assert_eq!(read[0]["pin"], 1234);
    // a projection is applied after decryption
    let projected = QueryRequest { projection: Some(json!({"pin": 1, "_id": 0})), ..all() };
    assert_eq!(p.query(alice, COLL, &projected).await.unwrap(), vec![json!({"pin": 1234})]);
    // aggregation results that keep the document's shape are decrypted too
    let agg = p.aggregate(alice, COLL, &json!([{"$match": {"name": "s"}}])).await.unwrap();
    assert_eq!(agg[0]["pin"], 1234);
    // sending the document back unchanged writes nothing; operators work on the clear value
    assert_eq!(p.update_document(alice, COLL, read[0].clone()).await.unwrap()["_version"], 0);
    assert_eq!(raw(p, COLL, &id).await["pin"], stored["pin"]);
    let r = p.update_one(alice, COLL, &json!({"_id": id}), &json!({"$inc": {"pin": 1}})).await.unwrap();
    assert_eq!(r.document.unwrap()["pin"], 1235);
    assert!(raw(p, COLL, &id).await["pin"].as_str().unwrap().starts_with("$fk1$"));
}

#[tokio::test]
async fn password_hash_is_never_returned_and_users_cannot_delete_themselves() {
    let w = world().await;
    let (p, admin) = (&w.p, &w.admin);
    let dave = p
        .insert_one(
            admin,
            USERS,
            json!({"_type": "user", "username": "dave", "name": "Dave", "newpassword": "dave pw 123"}),
        )
        .await
        .unwrap();
    let id = dave["_id"].as_str().unwrap().to_string();
    assert!(dave.get("passwordhash").is_none());
    assert!(dave.get("newpassword").is_none());
    let stored = raw(p, USERS, &id).await;
    assert!(stored["passwordhash"].is_string(), "the hash is stored: {stored}");

    let found = p.query(admin, USERS, &QueryRequest { filter: json!({"_id": id}), ..all() }).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].get("passwordhash").is_none());
    let filter =
        p.query(admin, USERS, &QueryRequest { filter: json!({"passwordhash": {"$exists": true}}), ..all() }).await;
    assert!(matches!(filter, Err(CoreError::AccessDenied(_))));
    assert!(matches!(p.distinct(admin, USERS, "passwordhash", &json!({})).await, Err(CoreError::AccessDenied(_))));
    let rename = p.update_one(admin, USERS, &json!({"_id": id}), &json!({"$rename": {"passwordhash": "x"}})).await;
    assert!(matches!(rename, Err(CoreError::AccessDenied(_))));
    let agg = p.aggregate(admin, USERS, &json!([{"$match": {"_id": id}}])).await.unwrap();
    assert!(agg[0].get("passwordhash").is_none() && agg[0]["username"] == "dave");
    p.insert_one(admin, COLL, json!({"owner": id})).await.unwrap();
    let joined = p
        .aggregate(
            admin,
            COLL,
            &json!([{"$lookup": {"from": USERS, "localField": "owner", "foreignField": "_id", "as": "u"}}]),
        )
        .await
        .unwrap();
    assert_eq!(joined[0]["u"][0]["username"], "dave");
    assert!(!serde_json::to_string(&joined).unwrap().contains("passwordhash"));
    let version = p.get_document_version(admin, USERS, &id, 0).await.unwrap().unwrap();
    assert!(version.get("passwordhash").is_none());

    // a full update sent back without the hash keeps it
    let mut renamed = found[0].clone();
    renamed["name"] = json!("David");
    let renamed = p.update_document(admin, USERS, renamed).await.unwrap();
    assert!(renamed.get("passwordhash").is_none());
    assert_eq!(raw(p, USERS, &id).await["passwordhash"], stored["passwordhash"]);

    // dave may update but not delete himself
    let graph = RoleGraph::from_role_docs(&[]);
    let dave_caller = Caller::resolve(&raw(p, USERS, &id).await, &graph).unwrap();
    let own = p.delete_one(&dave_caller, USERS, &id).await;
    assert!(matches!(&own, Err(CoreError::AccessDenied(m)) if m.contains("yourself")), "{own:?}");
    // a new user may read and update its own document, not delete it
    assert!(acl_ids(&raw(p, USERS, &id).await).contains(&(id.clone(), 65527)));
    let mine = p.query(&dave_caller, USERS, &QueryRequest { filter: json!({"_id": id}), ..all() }).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(!matches!(p.delete_many(&dave_caller, USERS, &json!({"_id": id})).await, Ok(n) if n > 0));
    assert_eq!(p.count(admin, USERS, &json!({"_id": id})).await.unwrap(), 1);
    p.delete_one(admin, USERS, &id).await.unwrap();
    assert_eq!(p.count(admin, USERS, &json!({"_id": id})).await.unwrap(), 0);
}

#[tokio::test]
async fn reserved_and_system_collections_are_refused() {
    let w = world().await;
    let (p, admin) = (&w.p, &w.admin);
    let denied = |r: &Result<_, CoreError>| matches!(r, Err(CoreError::AccessDenied(_)));
    assert!(denied(&p.query(admin, "flowkeep.keys", &all()).await.map(|_| ())));
    assert!(denied(&p.count(admin, "flowkeep.keys", &json!({})).await.map(|_| ())));
    assert!(denied(&p.insert_one(admin, "flowkeep.keys", json!({})).await.map(|_| ())));
    assert!(denied(&p.delete_many(admin, "flowkeep.keys", &json!({})).await.map(|_| ())));
    let lookup = json!([{"$lookup": {"from": "flowkeep.keys", "pipeline": [], "as": "k"}}]);
    assert!(denied(&p.aggregate(admin, COLL, &lookup).await.map(|_| ())));
    assert!(denied(&p.insert_one(admin, "audit", json!({"kind": "forged"})).await.map(|_| ())));
    assert!(denied(&p.insert_one(admin, "entities_hist", json!({})).await.map(|_| ())));
    assert!(p.count(admin, "audit", &json!({})).await.is_ok(), "audit is readable");
}

#[tokio::test]
async fn concurrent_operator_updates_are_all_applied_and_versioned() {
    let w = world().await;
    let p = &w.p;
    let doc = p.insert_one(&w.alice, COLL, json!({"n": 0})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    let inc = json!({"$inc": {"n": 1}});
    let filter = json!({"_id": id});
    let runs: Vec<_> = (0..4).map(|_| p.update_one(&w.alice, COLL, &filter, &inc)).collect();
    let mut ok = 0;
    for run in runs {
        // run them interleaved on one task: each awaits the store, so reads and writes interleave
        if run.await.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 4);
    let (a, b, c) = tokio::join!(
        p.update_one(&w.alice, COLL, &filter, &inc),
        p.update_one(&w.alice, COLL, &filter, &inc),
        p.update_one(&w.alice, COLL, &filter, &inc)
    );
    let applied = [a, b, c].into_iter().filter(|r| r.as_ref().is_ok_and(|r| r.modified == 1)).count() as u64;
    let stored = raw(p, COLL, &id).await;
    assert_eq!(stored["n"], 4 + applied, "no increment is lost");
    assert_eq!(stored["_version"], 4 + applied);
    for v in 0..=(4 + applied) {
        let rebuilt = p.get_document_version(&w.alice, COLL, &id, v).await.unwrap().unwrap();
        assert_eq!(rebuilt["n"], v, "version {v}");
    }
}

#[tokio::test]
async fn acl_changes_through_operators_are_checked_and_normalised() {
    let w = world().await;
    let (p, alice, bob) = (&w.p, &w.alice, &w.bob);
    let doc = p.insert_one(alice, COLL, json!({"name": "a", "_acl": [{"_id": "u-bob", "rights": 6}]})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    let filter = json!({"_id": id});
    // bob (read+update) may not drop his own update right, nor remove the ACL
    let lockout = p.update_one(bob, COLL, &filter, &json!({"$set": {"_acl": [{"_id": "u-bob", "rights": 2}]}})).await;
    assert!(matches!(lockout, Err(CoreError::AccessDenied(_))), "{lockout:?}");
    let unset =
        p.update_one(bob, COLL, &filter, &json!({"$unset": {"_acl": ""}, "$set": {"name": "b"}})).await.unwrap();
    assert_eq!(unset.document.unwrap()["_acl"], doc["_acl"], "a removed ACL keeps the stored one");
    // alice's change is normalised: admins forced back in, legacy input accepted
    let r = p
        .update_one(
            alice,
            COLL,
            &filter,
            &json!({"$set": {"_acl": [{"_id": "u-alice", "rights": 65535}, {"_id": "u-alice", "rights": 2}]}}),
        )
        .await
        .unwrap();
    let acl = acl_ids(&r.document.unwrap());
    assert_eq!(acl, vec![("u-alice".to_string(), 65535), (wellknown::ADMINS.to_string(), 65535)]);
    assert_eq!(p.count(bob, COLL, &json!({})).await.unwrap(), 0);
    let too_many: Vec<Value> = (0..200).map(|i| json!({"_id": format!("p{i}"), "rights": 2})).collect();
    let r = p.update_one(alice, COLL, &filter, &json!({"$push": {"_acl": {"$each": too_many}}})).await;
    assert!(matches!(r, Err(CoreError::InvalidRequest(m)) if m.contains("_acl")));
}

#[tokio::test]
async fn own_user_document_follows_the_self_rule_and_history_has_no_hash() {
    let w = world().await;
    let (p, admin) = (&w.p, &w.admin);
    let erin = p
        .insert_one(
            admin,
            USERS,
            json!({"_type": "user", "username": "erin", "name": "Erin", "newpassword": "erin pw 123"}),
        )
        .await
        .unwrap();
    let id = erin["_id"].as_str().unwrap().to_string();
    // the admin takes erin's own entry away; erin may still update her own document
    let mut stripped = erin.clone();
    stripped["_acl"] = json!([]);
    p.update_document(admin, USERS, stripped).await.unwrap();
    let erin_caller = Caller::resolve(&raw(p, USERS, &id).await, &RoleGraph::from_role_docs(&[])).unwrap();
    let mut renamed = raw(p, USERS, &id).await;
    renamed.as_object_mut().unwrap().remove("passwordhash");
    renamed["name"] = json!("Erin E.");
    let renamed = p.update_document(&erin_caller, USERS, renamed).await.unwrap();
    assert_eq!(renamed["name"], "Erin E.");
    assert!(matches!(p.delete_one(&erin_caller, USERS, &id).await, Err(CoreError::AccessDenied(_))));
    // history of users never holds the hash
    let hist =
        p.store().find("users_hist", &Scope::system(), &json!({"id": id}), &FindOptions::default()).await.unwrap();
    assert!(hist.len() >= 3);
    assert!(!serde_json::to_string(&hist).unwrap().contains("passwordhash"));
}

/// A store that, when armed, lets "another writer" change the document just before our `replace_one`,
/// to exercise the optimistic-concurrency path deterministically.
struct RacingStore {
    inner: Arc<dyn Store>,
    armed: std::sync::atomic::AtomicUsize,
}

mod racing {
    use super::RacingStore;
    use async_trait::async_trait;
    use flowkeep_store::{
        CollectionInfo, CollectionOptions, FindOptions, IndexInfo, IndexOptions, ManyOutcome, Result, Scope, Store,
        WriteOutcome,
    };
    use serde_json::{json, Value};
    use std::sync::atomic::Ordering;

    #[async_trait]
    impl Store for RacingStore {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }
        async fn insert_one(&self, c: &str, doc: Value) -> Result<Value> {
            self.inner.insert_one(c, doc).await
        }
        async fn insert_many(&self, c: &str, docs: Vec<Value>) -> Result<Vec<Value>> {
            self.inner.insert_many(c, docs).await
        }
        async fn find(&self, c: &str, s: &Scope, f: &Value, o: &FindOptions) -> Result<Vec<Value>> {
            self.inner.find(c, s, f, o).await
        }
        async fn find_one(&self, c: &str, s: &Scope, f: &Value, p: Option<&Value>) -> Result<Option<Value>> {
            self.inner.find_one(c, s, f, p).await
        }
        async fn count(&self, c: &str, s: &Scope, f: &Value) -> Result<u64> {
            self.inner.count(c, s, f).await
        }
        async fn distinct(&self, c: &str, s: &Scope, field: &str, f: &Value) -> Result<Vec<Value>> {
            self.inner.distinct(c, s, field, f).await
        }
        async fn aggregate(&self, c: &str, s: &Scope, p: &Value) -> Result<Vec<Value>> {
            self.inner.aggregate(c, s, p).await
        }
        async fn replace_one(&self, c: &str, s: &Scope, f: &Value, doc: Value, upsert: bool) -> Result<WriteOutcome> {
            if self.armed.load(Ordering::SeqCst) > 0 {
                self.armed.fetch_sub(1, Ordering::SeqCst);
                let other = json!({"$inc": {"n": 100, "_version": 1}});
                self.inner.update_one(c, &Scope::system(), &json!({"_id": doc["_id"]}), &other, false).await?;
            }
            self.inner.replace_one(c, s, f, doc, upsert).await
        }
        async fn update_one(&self, c: &str, s: &Scope, f: &Value, u: &Value, upsert: bool) -> Result<WriteOutcome> {
            self.inner.update_one(c, s, f, u, upsert).await
        }
        async fn update_many(&self, c: &str, s: &Scope, f: &Value, u: &Value) -> Result<ManyOutcome> {
            self.inner.update_many(c, s, f, u).await
        }
        async fn delete_one(&self, c: &str, s: &Scope, f: &Value) -> Result<WriteOutcome> {
            self.inner.delete_one(c, s, f).await
        }
        async fn delete_many(&self, c: &str, s: &Scope, f: &Value) -> Result<u64> {
            self.inner.delete_many(c, s, f).await
        }
        async fn create_collection(&self, name: &str, o: &CollectionOptions) -> Result<()> {
            self.inner.create_collection(name, o).await
        }
        async fn drop_collection(&self, name: &str) -> Result<bool> {
            self.inner.drop_collection(name).await
        }
        async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
            self.inner.list_collections().await
        }
        async fn create_index(&self, c: &str, keys: &Value, o: &IndexOptions) -> Result<String> {
            self.inner.create_index(c, keys, o).await
        }
        async fn list_indexes(&self, c: &str) -> Result<Vec<IndexInfo>> {
            self.inner.list_indexes(c).await
        }
        async fn drop_index(&self, c: &str, name: &str) -> Result<()> {
            self.inner.drop_index(c, name).await
        }
        async fn expire_documents(&self, now: i64) -> Result<u64> {
            self.inner.expire_documents(now).await
        }
        async fn explain_find(&self, c: &str, s: &Scope, f: &Value, o: &FindOptions) -> Result<Value> {
            self.inner.explain_find(c, s, f, o).await
        }
    }
}

#[tokio::test]
async fn a_lost_race_is_retried_on_the_newer_document_and_a_history_gap_is_reported() {
    let store = Arc::new(RacingStore { inner: Arc::new(SqliteStore::open_temporary().unwrap()), armed: 0.into() });
    let config = PlatformConfig { admin_password: Some("admin pw for tests".into()), ..PlatformConfig::default() };
    let p = Platform::open(store.clone(), config, &MasterKey::generate().unwrap()).await.unwrap();
    let alice = Caller::resolve(&user("u-alice", "alice"), &RoleGraph::from_role_docs(&[])).unwrap();
    let doc = p.insert_one(&alice, COLL, json!({"n": 0})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();

    store.armed.store(1, std::sync::atomic::Ordering::SeqCst);
    let r = p.update_one(&alice, COLL, &json!({"_id": id}), &json!({"$inc": {"n": 1}})).await.unwrap();
    let after = r.document.unwrap();
    assert_eq!(after["n"], 101, "the update was re-applied on the other writer's document, not over it");
    assert_eq!(after["_version"], 2);

    // the other writer bypassed the platform, so version 1 has no delta: rebuilding it fails loudly
    assert!(matches!(p.get_document_version(&alice, COLL, &id, 1).await, Err(CoreError::Internal(_))));
    assert_eq!(p.get_document_version(&alice, COLL, &id, 2).await.unwrap().unwrap()["n"], 101);
    assert_eq!(p.get_document_version(&alice, COLL, &id, 0).await.unwrap().unwrap()["n"], 0);

    // a writer that always loses gives up with a conflict instead of spinning
    store.armed.store(100, std::sync::atomic::Ordering::SeqCst);
    let mut full = after.clone();
    full["n"] = json!(-1);
    assert!(matches!(p.update_document(&alice, COLL, full).await, Err(CoreError::Conflict(_))));
}

#[tokio::test]
async fn files_keep_their_acl_in_metadata_and_timeseries_keep_their_type() {
    let w = world().await;
    let (p, alice, bob) = (&w.p, &w.alice, &w.bob);
    let file =
        p.insert_one(alice, "fs.files", json!({"filename": "a.txt", "metadata": {"name": "a.txt"}})).await.unwrap();
    let id = file["_id"].as_str().unwrap().to_string();
    assert!(file.get("_acl").is_none());
    assert!(file["metadata"]["_acl"].as_array().unwrap().iter().any(|a| a["_id"] == "u-alice"));
    assert_eq!(p.count(bob, "fs.files", &json!({})).await.unwrap(), 0);
    // a full update without metadata keeps the stored ACL
    let updated = p.update_document(alice, "fs.files", json!({"_id": id, "filename": "b.txt"})).await.unwrap();
    assert_eq!(updated["metadata"]["_acl"], file["metadata"]["_acl"]);
    assert_eq!(p.count(alice, "fs.files", &json!({"filename": "b.txt"})).await.unwrap(), 1);

    let options = flowkeep_store::CollectionOptions::from_json(&json!({"timeseries": {"timeField": "ts"}})).unwrap();
    p.store().create_collection("metrics", &options).await.unwrap();
    let m = p
        .insert_one(alice, "metrics", json!({"_type": "Measure", "ts": "2026-01-01T00:00:00Z", "v": 1}))
        .await
        .unwrap();
    assert_eq!(m["_type"], "Measure");
}

#[tokio::test]
async fn top_defaults_and_queryas_a_role() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let docs: Vec<Value> = (0..120).map(|i| json!({"i": i})).collect();
    p.insert_many(alice, COLL, docs).await.unwrap();
    assert_eq!(p.query(alice, COLL, &all()).await.unwrap().len(), 100, "default top");
    let paged = QueryRequest { top: Some(30), skip: 100, sort: Some(json!({"i": 1})), ..all() };
    let page = p.query(alice, COLL, &paged).await.unwrap();
    assert_eq!((page.len(), page[0]["i"].clone()), (20, json!(100)));

    // a role principal: documents granted to the role or to a role it is member of
    p.insert_one(
        &w.admin,
        USERS,
        json!({"_id": "r-team", "_type": "role", "name": "team",
        "_acl": [{"_id": "u-alice", "rights": 2}]}),
    )
    .await
    .unwrap();
    p.insert_one(alice, COLL, json!({"name": "for team", "_acl": [{"_id": "r-team", "rights": 2}]})).await.unwrap();
    p.insert_one(alice, COLL, json!({"name": "for users", "_acl": [{"_id": wellknown::USERS, "rights": 2}]}))
        .await
        .unwrap();
    let as_team = QueryRequest { queryas: Some("r-team".into()), ..all() };
    let names: Vec<Value> =
        p.query(alice, COLL, &as_team).await.unwrap().into_iter().map(|d| d["name"].clone()).collect();
    assert_eq!(names, vec![json!("for team")], "a role is not implicitly in users");
    let as_admins = QueryRequest { queryas: Some(wellknown::ADMINS.into()), top: Some(1000), ..all() };
    assert_eq!(p.query(alice, COLL, &as_admins).await.unwrap().len(), 122, "admins narrow nothing");
}
