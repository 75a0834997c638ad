//! The change feed end to end: one event per committed change, in order, with the right operation; none
//! for a no-op update nor for history and audit; and per caller, only what that caller may read, in the
//! view a query would return.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use flowkeep_core::changes::{ChangeEvent, ChangeOperation};
use flowkeep_core::documents::USERS;
use flowkeep_core::files::FileUpload;
use flowkeep_core::{Caller, Platform, PlatformConfig};
use flowkeep_security::{wellknown, RoleGraph};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver;

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

/// Every event published so far (they are sent before a command returns).
fn drain(rx: &mut Receiver<Arc<ChangeEvent>>) -> Vec<Arc<ChangeEvent>> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => out.push(e),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("{e:?}"),
        }
    }
}

fn summary(events: &[Arc<ChangeEvent>]) -> Vec<(String, ChangeOperation, String)> {
    events
        .iter()
        .map(|e| (e.collection.clone(), e.operation, e.document["_id"].as_str().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test]
async fn every_committed_change_is_published_once_in_order() {
    use ChangeOperation::*;
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let mut rx = p.subscribe_changes();

    let doc = p.insert_one(alice, COLL, json!({"name": "a", "n": 1})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    let r = p.update_one(alice, COLL, &json!({"_id": id}), &json!({"$set": {"n": 2}})).await.unwrap();
    assert_eq!(r.modified, 1);
    let mut full = r.document.unwrap();
    full["n"] = json!(3);
    p.update_document(alice, COLL, full.clone()).await.unwrap();
    // No-ops: nothing written, nothing published.
    let noop = p.update_one(alice, COLL, &json!({"_id": id}), &json!({"$set": {"n": 3}})).await.unwrap();
    assert_eq!(noop.modified, 0);
    p.update_document(alice, COLL, full).await.unwrap();
    p.delete_one(alice, COLL, &id).await.unwrap();

    let events = drain(&mut rx);
    let c = COLL.to_string();
    assert_eq!(
        summary(&events),
        vec![
            (c.clone(), Insert, id.clone()),
            (c.clone(), Update, id.clone()),
            (c.clone(), Replace, id.clone()),
            (c, Delete, id)
        ]
    );
    // The events carry the stored documents: the versions as written, the removed one on delete.
    let versions: Vec<Value> = events.iter().map(|e| e.document["_version"].clone()).collect();
    assert_eq!(versions, vec![json!(0), json!(1), json!(2), json!(2)]);
    assert_eq!(events[1].document["n"], 2);
    assert_eq!(events[3].document["n"], 3);
    assert_eq!(Delete.as_str(), "delete");

    // Many-document commands publish per document; upserts publish as what they did.
    let docs = p.insert_many(alice, COLL, vec![json!({"k": 1}), json!({"k": 2})]).await.unwrap();
    let ids: Vec<String> = docs.iter().map(|d| d["_id"].as_str().unwrap().to_string()).collect();
    p.update_many(alice, COLL, &json!({}), &json!({"$set": {"k": 1}})).await.unwrap(); // changes one of two
    let upserted = p.insert_or_update_one(alice, COLL, json!({"name": "u", "v": 1}), &["name".into()]).await.unwrap();
    let uid = upserted["_id"].as_str().unwrap().to_string();
    p.insert_or_update_one(alice, COLL, json!({"name": "u", "v": 2}), &["name".into()]).await.unwrap();
    assert_eq!(p.delete_many(alice, COLL, &json!({"k": 1})).await.unwrap(), 2);
    let ops: Vec<(ChangeOperation, String)> =
        drain(&mut rx).iter().map(|e| (e.operation, e.document["_id"].as_str().unwrap().to_string())).collect();
    assert_eq!(
        ops,
        vec![
            (Insert, ids[0].clone()),
            (Insert, ids[1].clone()),
            (Update, ids[1].clone()),
            (Insert, uid.clone()),
            (Replace, uid),
            (Delete, ids[0].clone()),
            (Delete, ids[1].clone()),
        ]
    );

    // Refused writes publish nothing; history and audit are never published.
    assert!(p.update_one(&w.bob, COLL, &json!({}), &json!({"$set": {"x": 1}})).await.unwrap().matched == 0);
    p.create_collection(alice, "made", &Default::default()).await.unwrap(); // audited
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn a_caller_sees_only_changes_it_may_read() {
    let w = world().await;
    let (p, alice, bob, admin) = (&w.p, &w.alice, &w.bob, &w.admin);
    let mut rx = p.subscribe_changes();

    let private = p.insert_one(alice, COLL, json!({"name": "private"})).await.unwrap();
    let e = drain(&mut rx).pop().unwrap();
    assert!(p.visible_change(bob, &e).is_none());
    assert_eq!(p.visible_change(alice, &e).unwrap()["name"], "private");
    assert!(p.visible_change(admin, &e).is_some());

    // Shared with bob, then a deny entry for bob: the deny wins.
    let id = private["_id"].as_str().unwrap();
    p.update_one(alice, COLL, &json!({"_id": id}), &json!({"$push": {"_acl": {"_id": "u-bob", "rights": 2}}}))
        .await
        .unwrap();
    let shared = drain(&mut rx).pop().unwrap();
    assert!(p.visible_change(bob, &shared).is_some());
    p.update_one(
        alice,
        COLL,
        &json!({"_id": id}),
        &json!({"$push": {"_acl": {"_id": "u-bob", "rights": 2, "deny": true}}}),
    )
    .await
    .unwrap();
    let denied = drain(&mut rx).pop().unwrap();
    assert!(p.visible_change(bob, &denied).is_none(), "the deny entry wins over the grant");
    assert!(p.visible_change(alice, &denied).is_some());
    assert!(p.visible_change(admin, &denied).is_some());
    // A deny through a role works the same: a document readable by every user but denied to the role.
    let by_role = json!({"name": "r", "_acl": [
        {"_id": wellknown::USERS, "rights": 2},
        {"_id": "u-bob", "rights": 2, "deny": true},
    ]});
    p.insert_one(alice, COLL, by_role).await.unwrap();
    let e = drain(&mut rx).pop().unwrap();
    assert!(p.visible_change(bob, &e).is_none());
    let carol = Caller::resolve(&user("u-carol", "carol"), &RoleGraph::from_role_docs(&[])).unwrap();
    assert!(p.visible_change(&carol, &e).is_some(), "granted through the users role");

    // Deletes are decided on the removed document.
    p.delete_one(alice, COLL, id).await.unwrap();
    let deleted = drain(&mut rx).pop().unwrap();
    assert_eq!(deleted.operation, ChangeOperation::Delete);
    assert!(p.visible_change(bob, &deleted).is_none());

    // Files: the ACL in metadata._acl decides; chunks are never published.
    let upload = FileUpload { filename: "f.txt".into(), ..FileUpload::default() };
    p.upload_file(alice, upload, vec![1; 10]).await.unwrap();
    let events = drain(&mut rx);
    assert_eq!(events.len(), 1, "only the metadata document");
    assert_eq!((events[0].collection.as_str(), events[0].operation), ("fs.files", ChangeOperation::Insert));
    assert!(p.visible_change(alice, &events[0]).is_some());
    assert!(p.visible_change(bob, &events[0]).is_none());

    // An event for a collection no client may read is never shown.
    let forged = ChangeEvent {
        collection: "fs.chunks".into(),
        operation: ChangeOperation::Insert,
        document: json!({"_id": "x", "_acl": [{"_id": "u-bob", "rights": 65535}]}),
    };
    assert!(p.visible_change(admin, &forged).is_none());
}

#[tokio::test]
async fn the_view_is_decrypted_and_has_no_password_hash() {
    let w = world().await;
    let (p, alice, admin) = (&w.p, &w.alice, &w.admin);
    let mut rx = p.subscribe_changes();

    p.insert_one(alice, COLL, json!({"name": "s", "pin": 1234, "_encrypt": ["pin"]})).await.unwrap();
    let e = drain(&mut rx).pop().unwrap();
    assert!(e.document["pin"].as_str().unwrap().starts_with("$fk1$"), "published as stored");
    assert_eq!(p.visible_change(alice, &e).unwrap()["pin"], 1234);

    p.insert_one(
        admin,
        USERS,
        json!({"_id": "u-dave", "_type": "user", "username": "dave", "newpassword": "pw-dave-1"}),
    )
    .await
    .unwrap();
    let e = drain(&mut rx).pop().unwrap();
    assert_eq!(e.collection, USERS);
    assert!(e.document.get("passwordhash").is_some());
    let seen = p.visible_change(admin, &e).unwrap();
    assert_eq!(seen["username"], "dave");
    assert!(seen.get("passwordhash").is_none());
    // The new user sees its own document (the self rule / its self entry).
    let graph = RoleGraph::from_role_docs(&[]);
    let dave = Caller::resolve(&user("u-dave", "dave"), &graph).unwrap();
    assert!(p.visible_change(&dave, &e).unwrap().get("passwordhash").is_none());
    assert!(p.visible_change(alice, &e).is_none());
}
