//! Workitem queues end to end over a temporary SQLite store: queue CRUD and duplicate names, pop order by
//! priority then `nextrun`, items not yet due, concurrent pops (every item exactly once), retries,
//! business errors, success/failed chaining, inline (gzip) files and their reconciliation, permissions of
//! two users, leases (a consumer that dies, expiry, a stale token refused) and the ready notification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use chrono::{Duration as Span, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use flowkeep_core::files::FileUpload;
use flowkeep_core::workitems::{NewWorkitem, QueueRef, WorkitemFile, WorkitemQueueSpec, WorkitemUpdate};
use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_model::Rights;
use flowkeep_security::{wellknown, RoleGraph};
use flowkeep_store::Scope;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

struct World {
    p: Arc<Platform>,
    alice: Caller,
    bob: Caller,
    admin: Caller,
}

async fn world_with(config: PlatformConfig) -> World {
    let p = common::platform(config).await;
    let roles = [json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "u-admin"}]})];
    let graph = RoleGraph::from_role_docs(&roles);
    World {
        alice: Caller::resolve(&user("u-alice", "alice"), &graph).unwrap(),
        bob: Caller::resolve(&user("u-bob", "bob"), &graph).unwrap(),
        admin: Caller::resolve(&user("u-admin", "boss"), &graph).unwrap(),
        p: Arc::new(p),
    }
}

async fn world() -> World {
    world_with(PlatformConfig::default()).await
}

fn spec(name: &str) -> WorkitemQueueSpec {
    WorkitemQueueSpec { name: name.into(), maxretries: 3, ..WorkitemQueueSpec::default() }
}

async fn queue(w: &World, spec: WorkitemQueueSpec) -> Value {
    w.p.add_workitem_queue(&w.alice, &spec, true).await.unwrap()
}

fn q(name: &str) -> QueueRef {
    QueueRef::name(name)
}

fn item(payload: Value) -> NewWorkitem {
    NewWorkitem { payload, ..NewWorkitem::default() }
}

fn past(seconds: i64) -> Option<String> {
    Some((Utc::now() - Span::seconds(seconds)).to_rfc3339())
}

fn id(doc: &Value) -> String {
    doc["_id"].as_str().unwrap().to_string()
}

async fn raw(p: &Platform, collection: &str, id: &str) -> Option<Value> {
    p.store().find_one(collection, &Scope::system(), &json!({"_id": id}), None).await.unwrap()
}

async fn items_in(p: &Platform, wiqid: &str) -> Vec<Value> {
    p.store().find("workitems", &Scope::system(), &json!({"wiqid": wiqid}), &Default::default()).await.unwrap()
}

fn update(doc: &Value, state: &str) -> WorkitemUpdate {
    WorkitemUpdate { id: id(doc), state: Some(state.into()), ..WorkitemUpdate::default() }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

async fn download(p: &Platform, caller: &Caller, file_id: &str) -> Result<Vec<u8>, CoreError> {
    p.download_file(caller, "", Some(file_id), None).await.map(|(_, chunks)| chunks.concat())
}

/// Gives `who` these rights on queue `name` (alice owns it), keeping the other settings.
async fn grant(w: &World, name: &str, who: &str, rights: Rights) {
    let stored = w.p.get_workitem_queue(&w.alice, &q(name)).await.unwrap();
    let mut acl = stored["_acl"].as_array().unwrap().clone();
    acl.push(json!({"_id": who, "name": who, "rights": rights.0}));
    let s = WorkitemQueueSpec {
        name: name.into(),
        maxretries: stored["maxretries"].as_i64().unwrap(),
        acl: Some(Value::Array(acl)),
        ..WorkitemQueueSpec::default()
    };
    w.p.update_workitem_queue(&w.alice, &q(name), &s, false).await.unwrap();
}

#[tokio::test]
async fn queue_crud_and_duplicates() {
    let w = world().await;
    let created = w.p.add_workitem_queue(&w.alice, &spec("invoices"), false).await.unwrap();
    assert_eq!(created["_type"], "workitemqueue");
    assert_eq!(created["maxretries"], 3);
    let role_id = created["usersrole"].as_str().unwrap().to_string();
    let role = raw(&w.p, "users", &role_id).await.unwrap();
    assert_eq!(role["name"], "invoices users");
    let members: Vec<&str> = role["members"].as_array().unwrap().iter().map(|m| m["_id"].as_str().unwrap()).collect();
    assert!(members.contains(&"u-alice") && members.contains(&wellknown::WORKITEM_QUEUE_ADMINS), "{members:?}");
    let acl_ids: Vec<&str> = created["_acl"].as_array().unwrap().iter().map(|a| a["_id"].as_str().unwrap()).collect();
    assert!(acl_ids.contains(&role_id.as_str()) && acl_ids.contains(&"u-alice"), "{acl_ids:?}");

    // Names are global: even another user cannot take it, nor can a rename.
    let dup = w.p.add_workitem_queue(&w.bob, &spec("invoices"), true).await;
    assert!(matches!(dup, Err(CoreError::Conflict(_))), "{dup:?}");
    let skip =
        w.p.add_workitem_queue(&w.alice, &WorkitemQueueSpec { maxretries: 0, ..spec("other") }, true).await.unwrap();
    assert_eq!(skip["maxretries"], 3, "below 1 means 3");
    assert!(skip.get("usersrole").is_none());
    assert!(skip["_acl"].as_array().unwrap().iter().any(|a| a["_id"] == wellknown::WORKITEM_QUEUE_ADMINS));
    let rename = w.p.update_workitem_queue(&w.alice, &q("other"), &spec("invoices"), false).await;
    assert!(matches!(rename, Err(CoreError::Conflict(_))), "{rename:?}");
    assert!(matches!(w.p.add_workitem_queue(&w.alice, &spec("  "), true).await, Err(CoreError::InvalidRequest(_))));

    // Lookup by name and id; invisible to others.
    let by_id = w.p.get_workitem_queue(&w.alice, &QueueRef::id(id(&created))).await.unwrap();
    assert_eq!(by_id["name"], "invoices");
    assert!(matches!(w.p.get_workitem_queue(&w.bob, &q("invoices")).await, Err(CoreError::NotFound(_))));

    // Update: rename, fields overwritten with what is sent.
    let s = WorkitemQueueSpec { amqpqueue: "Robots".into(), retrydelay: 30, ..spec("invoices2") };
    let updated = w.p.update_workitem_queue(&w.alice, &q("invoices"), &s, false).await.unwrap();
    assert_eq!((updated["name"].as_str(), updated["amqpqueue"].as_str()), (Some("invoices2"), Some("Robots")));
    assert_eq!(updated["retrydelay"], 30);
    assert_eq!(updated["usersrole"], role_id.as_str(), "kept");
    let again = w.p.update_workitem_queue(&w.alice, &q("invoices2"), &spec("invoices2"), false).await.unwrap();
    assert!(again.get("amqpqueue").is_none(), "amqpqueue takes what is sent, also nothing");
    assert!(matches!(
        w.p.update_workitem_queue(&w.bob, &q("invoices2"), &spec("x"), false).await,
        Err(CoreError::NotFound(_))
    ));

    // Delete: refused while items exist, purge removes items and files, the role goes too.
    let file = WorkitemFile { filename: "a.txt".into(), file: b"abc".to_vec(), ..WorkitemFile::default() };
    let pushed =
        w.p.push_workitem(&w.alice, &q("invoices2"), NewWorkitem { files: vec![file], ..item(json!({})) })
            .await
            .unwrap();
    let file_id = pushed["files"][0]["_id"].as_str().unwrap().to_string();
    let not_empty = w.p.delete_workitem_queue(&w.alice, &q("invoices2"), false).await;
    assert!(matches!(not_empty, Err(CoreError::Conflict(_))), "{not_empty:?}");
    w.p.delete_workitem_queue(&w.alice, &q("invoices2"), true).await.unwrap();
    assert!(raw(&w.p, "mq", &id(&created)).await.is_none());
    assert!(raw(&w.p, "workitems", &id(&pushed)).await.is_none());
    assert!(raw(&w.p, "fs.files", &file_id).await.is_none());
    assert!(raw(&w.p, "users", &role_id).await.is_none());
    let audited = w.p.store().count("audit", &Scope::system(), &json!({"target.id": id(&created)})).await.unwrap();
    assert!(audited >= 1, "purge is audited");

    // Update with purge empties the queue but keeps it.
    w.p.push_workitem(&w.alice, &q("other"), item(json!({}))).await.unwrap();
    w.p.update_workitem_queue(&w.alice, &q("other"), &spec("other"), true).await.unwrap();
    assert!(items_in(&w.p, &id(&skip)).await.is_empty());
    assert!(w.p.get_workitem_queue(&w.alice, &q("other")).await.is_ok());
}

#[tokio::test]
async fn push_defaults_and_unknown_queue() {
    let w = world().await;
    queue(&w, spec("q")).await;
    let pushed = w.p.push_workitem(&w.alice, &q("q"), item(json!(42))).await.unwrap();
    assert_eq!(pushed["payload"], json!({"value": 42}));
    assert_eq!(pushed["priority"], 2);
    assert_eq!(pushed["state"], "new");
    assert_eq!(pushed["retries"], 0);
    assert_eq!(pushed["name"], "New work item");
    assert_eq!(pushed["wiq"], "q");
    assert!(pushed["nextrun"].is_string());
    let missing = w.p.push_workitem(&w.alice, &q("nope"), item(json!({}))).await;
    match missing {
        Err(CoreError::NotFound(m)) => assert_eq!(m, "Work item queue not found"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.p.pop_workitem(&w.alice, &q("q")).await.unwrap().map(|d| id(&d)), Some(id(&pushed)));
    assert!(w.p.pop_workitem(&w.alice, &q("q")).await.unwrap().is_none(), "empty is None, not an error");
    assert!(matches!(w.p.pop_workitem(&w.alice, &q("nope")).await, Err(CoreError::NotFound(_))));
}

#[tokio::test]
async fn pop_order_is_priority_then_nextrun() {
    let w = world().await;
    queue(&w, spec("q")).await;
    let push = |priority: i64, age: i64, tag: &str| NewWorkitem {
        name: tag.into(),
        priority: Some(priority),
        nextrun: past(age),
        ..item(json!({"tag": tag}))
    };
    let items = vec![push(3, 50, "p3"), push(1, 10, "p1-young"), push(2, 99, "p2"), push(1, 60, "p1-old")];
    w.p.push_workitems(&w.alice, &q("q"), items).await.unwrap();
    let mut order = Vec::new();
    while let Some(doc) = w.p.pop_workitem(&w.alice, &q("q")).await.unwrap() {
        assert_eq!(doc["state"], "processing");
        assert_eq!(doc["userid"], "u-alice");
        assert!(doc.get("nextrun").is_none() && doc["lastrun"].is_string());
        order.push(doc["name"].as_str().unwrap().to_string());
    }
    assert_eq!(order, ["p1-old", "p1-young", "p2", "p3"]);
}

#[tokio::test]
async fn items_not_yet_due_are_not_popped() {
    let w = world().await;
    queue(&w, WorkitemQueueSpec { initialdelay: 3600, ..spec("later") }).await;
    w.p.push_workitem(&w.alice, &q("later"), item(json!({}))).await.unwrap();
    let future = NewWorkitem { nextrun: Some((Utc::now() + Span::hours(1)).to_rfc3339()), ..item(json!({})) };
    w.p.push_workitem(&w.alice, &q("later"), future).await.unwrap();
    assert!(w.p.pop_workitem(&w.alice, &q("later")).await.unwrap().is_none());
    let due =
        w.p.push_workitem(&w.alice, &q("later"), NewWorkitem { nextrun: past(1), ..item(json!({})) }).await.unwrap();
    assert_eq!(w.p.pop_workitem(&w.alice, &q("later")).await.unwrap().map(|d| id(&d)), Some(id(&due)));
    assert!(matches!(
        w.p.push_workitem(&w.alice, &q("later"), NewWorkitem { nextrun: Some("soon".into()), ..item(json!({})) }).await,
        Err(CoreError::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pops_get_every_item_exactly_once() {
    let w = world().await;
    queue(&w, spec("busy")).await;
    let items: Vec<NewWorkitem> = (0..100).map(|i| item(json!({"n": i}))).collect();
    let pushed = w.p.push_workitems(&w.alice, &q("busy"), items).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (p, caller) = (w.p.clone(), w.alice.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(doc) = p.pop_workitem(&caller, &q("busy")).await.unwrap() {
                got.push(id(&doc));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 100, "every item popped once");
    assert_eq!(unique.len(), 100, "no item popped twice");
    let expected: HashSet<String> = pushed.iter().map(id).collect();
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), expected);
}

#[tokio::test]
async fn retries_count_up_to_maxretries() {
    let w = world().await;
    queue(&w, spec("r")).await;
    w.p.push_workitem(&w.alice, &q("r"), item(json!({}))).await.unwrap();
    for expected_retries in 1..=2 {
        let popped = w.p.pop_workitem(&w.alice, &q("r")).await.unwrap().unwrap();
        let retried = w.p.update_workitem(&w.alice, update(&popped, "retry")).await.unwrap();
        assert_eq!(retried["state"], "new");
        assert_eq!(retried["retries"], expected_retries);
        assert!(retried.get("userid").is_none() && retried.get("lease").is_none());
    }
    let popped = w.p.pop_workitem(&w.alice, &q("r")).await.unwrap().unwrap();
    let failed = w.p.update_workitem(&w.alice, update(&popped, "retry")).await.unwrap();
    assert_eq!(failed["state"], "failed", "third run of maxretries 3 fails");
    assert!(failed.get("nextrun").is_none());
    assert!(w.p.pop_workitem(&w.alice, &q("r")).await.unwrap().is_none());

    // ignoremaxretries retries anyway.
    let again = WorkitemUpdate { ignoremaxretries: true, ..update(&failed, "retry") };
    assert_eq!(w.p.update_workitem(&w.alice, again).await.unwrap()["state"], "new");

    // retrydelay puts the next run in the future.
    queue(&w, WorkitemQueueSpec { retrydelay: 3600, ..spec("slow") }).await;
    w.p.push_workitem(&w.alice, &q("slow"), item(json!({}))).await.unwrap();
    let popped = w.p.pop_workitem(&w.alice, &q("slow")).await.unwrap().unwrap();
    let retried = w.p.update_workitem(&w.alice, update(&popped, "retry")).await.unwrap();
    let nextrun = chrono::DateTime::parse_from_rfc3339(retried["nextrun"].as_str().unwrap()).unwrap();
    assert!(nextrun > Utc::now() + Span::minutes(59));
    assert!(w.p.pop_workitem(&w.alice, &q("slow")).await.unwrap().is_none());
}

#[tokio::test]
async fn states_are_checked() {
    let w = world().await;
    queue(&w, spec("s")).await;
    w.p.push_workitem(&w.alice, &q("s"), item(json!({}))).await.unwrap();
    let popped = w.p.pop_workitem(&w.alice, &q("s")).await.unwrap().unwrap();
    assert!(matches!(w.p.update_workitem(&w.alice, update(&popped, "new")).await, Err(CoreError::InvalidRequest(_))));
    assert!(matches!(w.p.update_workitem(&w.alice, update(&popped, "done")).await, Err(CoreError::InvalidRequest(_))));
    let missing = WorkitemUpdate { id: "nope".into(), ..WorkitemUpdate::default() };
    assert!(matches!(w.p.update_workitem(&w.alice, missing).await, Err(CoreError::NotFound(_))));
    let renamed =
        WorkitemUpdate { name: Some("renamed".into()), payload: Some(json!([1])), ..update(&popped, "processing") };
    let doc = w.p.update_workitem(&w.alice, renamed).await.unwrap();
    assert_eq!((doc["name"].as_str(), doc["state"].as_str()), (Some("renamed"), Some("processing")));
    assert_eq!(doc["payload"]["value"], json!([1]));
}

#[tokio::test]
async fn business_errors_are_not_retried() {
    let w = world().await;
    queue(&w, spec("b")).await;
    w.p.push_workitems(&w.alice, &q("b"), vec![item(json!({})), item(json!({}))]).await.unwrap();
    let popped = w.p.pop_workitem(&w.alice, &q("b")).await.unwrap().unwrap();
    let business = WorkitemUpdate {
        errortype: Some("business".into()),
        errormessage: Some("invoice total is negative".into()),
        ..update(&popped, "retry")
    };
    let doc = w.p.update_workitem(&w.alice, business).await.unwrap();
    assert_eq!(doc["state"], "failed");
    assert_eq!(doc["retries"], 0);
    assert_eq!(doc["errormessage"], "invoice total is negative");

    let popped = w.p.pop_workitem(&w.alice, &q("b")).await.unwrap().unwrap();
    let forced =
        WorkitemUpdate { errortype: Some("business".into()), ignoremaxretries: true, ..update(&popped, "retry") };
    assert_eq!(w.p.update_workitem(&w.alice, forced).await.unwrap()["state"], "new");
}

#[tokio::test]
async fn successful_and_failed_items_are_chained() {
    let w = world().await;
    let done = queue(&w, spec("done")).await;
    let errors = queue(&w, WorkitemQueueSpec { initialdelay: 3600, ..spec("errors") }).await;
    let main =
        queue(&w, WorkitemQueueSpec { success_wiq: "done".into(), failed_wiq: "errors".into(), ..spec("main") }).await;
    assert_eq!(main["success_wiqid"], id(&done).as_str());
    assert_eq!(main["failed_wiqid"], id(&errors).as_str());
    let unknown = WorkitemQueueSpec { success_wiq: "nowhere".into(), ..spec("broken") };
    assert!(matches!(w.p.add_workitem_queue(&w.alice, &unknown, true).await, Err(CoreError::NotFound(_))));

    let file = WorkitemFile { filename: "report.txt".into(), file: b"report".to_vec(), ..WorkitemFile::default() };
    let ok = NewWorkitem { name: "ok".into(), files: vec![file], priority: Some(1), ..item(json!({"a": 1})) };
    let bad = NewWorkitem { name: "bad".into(), priority: Some(2), ..item(json!({"b": 2})) };
    w.p.push_workitems(&w.alice, &q("main"), vec![ok, bad]).await.unwrap();

    let first = w.p.pop_workitem(&w.alice, &q("main")).await.unwrap().unwrap();
    assert_eq!(first["name"], "ok");
    let done_item = w.p.update_workitem(&w.alice, update(&first, "successful")).await.unwrap();
    assert_eq!(done_item["state"], "successful");
    let copies = items_in(&w.p, &id(&done)).await;
    assert_eq!(copies.len(), 1);
    let copy = &copies[0];
    assert_ne!(id(copy), id(&first));
    assert_eq!((copy["state"].as_str(), copy["retries"].as_i64()), (Some("new"), Some(0)));
    assert_eq!(copy["payload"], json!({"a": 1}));
    assert_eq!(copy["wiq"], "done");
    let copied_file = copy["files"][0]["_id"].as_str().unwrap();
    assert_ne!(copied_file, first["files"][0]["_id"].as_str().unwrap(), "files are duplicated");
    assert_eq!(download(&w.p, &w.alice, copied_file).await.unwrap(), b"report");
    // The copy is poppable in its queue.
    assert_eq!(w.p.pop_workitem(&w.alice, &q("done")).await.unwrap().map(|d| id(&d)), Some(id(copy)));

    let second = w.p.pop_workitem(&w.alice, &q("main")).await.unwrap().unwrap();
    w.p.update_workitem(&w.alice, update(&second, "failed")).await.unwrap();
    let failed_copies = items_in(&w.p, &id(&errors)).await;
    assert_eq!(failed_copies.len(), 1);
    assert_eq!(failed_copies[0]["payload"], json!({"b": 2}));
    let nextrun = chrono::DateTime::parse_from_rfc3339(failed_copies[0]["nextrun"].as_str().unwrap()).unwrap();
    assert!(nextrun > Utc::now() + Span::minutes(59), "the target's initialdelay");

    // A per-item target overrides the queue's.
    let custom = queue(&w, spec("custom")).await;
    let own = NewWorkitem { success_wiq: "custom".into(), ..item(json!({"c": 3})) };
    w.p.push_workitem(&w.alice, &q("main"), own).await.unwrap();
    let third = w.p.pop_workitem(&w.alice, &q("main")).await.unwrap().unwrap();
    w.p.update_workitem(&w.alice, update(&third, "successful")).await.unwrap();
    assert_eq!(items_in(&w.p, &id(&custom)).await.len(), 1);
    assert_eq!(items_in(&w.p, &id(&done)).await.len(), 1, "not also to the queue's target");
}

#[tokio::test]
async fn files_inline_gzip_and_reconciled_by_name() {
    let w = world().await;
    let wiq = queue(&w, spec("files")).await;
    let text_a = b"first version of a".repeat(50);
    let files = vec![
        WorkitemFile { filename: "in/a.txt".into(), id: "findme".into(), file: gzip(&text_a), compressed: true },
        WorkitemFile { filename: "b.txt".into(), file: b"bbb".to_vec(), ..WorkitemFile::default() },
    ];
    let pushed = w.p.push_workitem(&w.alice, &q("files"), NewWorkitem { files, ..item(json!({})) }).await.unwrap();
    let entries = pushed["files"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0]["name"].as_str(), entries[0]["filename"].as_str()), (Some("in/a.txt"), Some("a.txt")));
    let (a_id, b_id) = (id(&entries[0]), id(&entries[1]));
    assert_eq!(download(&w.p, &w.alice, &a_id).await.unwrap(), text_a, "stored inflated");
    let meta = raw(&w.p, "fs.files", &a_id).await.unwrap()["metadata"].clone();
    assert_eq!((meta["wi"].as_str(), meta["wiq"].as_str()), (Some(id(&pushed).as_str()), Some("files")));
    assert_eq!(meta["wiqid"], id(&wiq).as_str());
    assert!(meta["uniquename"].is_string());
    let bad_gzip =
        WorkitemFile { filename: "x".into(), file: b"nope".to_vec(), compressed: true, ..WorkitemFile::default() };
    let refused =
        w.p.push_workitem(&w.alice, &q("files"), NewWorkitem { files: vec![bad_gzip], ..item(json!({})) }).await;
    assert!(matches!(refused, Err(CoreError::InvalidRequest(_))), "{refused:?}");

    // A file alice uploaded on her own, to reference; and one bob's, which alice cannot read.
    let upload = |name: &str| FileUpload { filename: name.into(), ..FileUpload::default() };
    let own = w.p.upload_file(&w.alice, upload("c.txt"), b"ccc".to_vec()).await.unwrap();
    let bobs = w.p.upload_file(&w.bob, upload("secret.txt"), b"secret".to_vec()).await.unwrap();
    let steal = WorkitemUpdate {
        files: vec![WorkitemFile { filename: "secret.txt".into(), id: bobs.id.clone(), ..WorkitemFile::default() }],
        ..update(&pushed, "new")
    };
    assert!(matches!(w.p.update_workitem(&w.alice, steal).await, Err(CoreError::NotFound(_))));

    let reconcile = WorkitemUpdate {
        files: vec![
            WorkitemFile { filename: "a.txt".into(), file: b"second a".to_vec(), ..WorkitemFile::default() },
            WorkitemFile { filename: "b.txt".into(), ..WorkitemFile::default() },
            WorkitemFile { filename: "c.txt".into(), id: own.id.clone(), ..WorkitemFile::default() },
        ],
        ..update(&pushed, "new")
    };
    let doc = w.p.update_workitem(&w.alice, reconcile).await.unwrap();
    let names: Vec<(&str, &str)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["filename"].as_str().unwrap(), f["_id"].as_str().unwrap()))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let new_a = names.iter().find(|(n, _)| *n == "a.txt").unwrap().1.to_string();
    assert_ne!(new_a, a_id);
    assert_eq!(download(&w.p, &w.alice, &new_a).await.unwrap(), b"second a");
    assert!(names.contains(&("c.txt", own.id.as_str())));
    assert!(raw(&w.p, "fs.files", &a_id).await.is_none(), "replaced file deleted");
    assert!(raw(&w.p, "fs.files", &b_id).await.is_none(), "removed file deleted");

    // Deleting the item deletes the files it owns, not the referenced one.
    w.p.delete_workitem(&w.alice, &id(&pushed)).await.unwrap();
    assert!(raw(&w.p, "workitems", &id(&pushed)).await.is_none());
    assert!(raw(&w.p, "fs.files", &new_a).await.is_none());
    assert!(raw(&w.p, "fs.files", &own.id).await.is_some());
    let chunks = w.p.store().count("fs.chunks", &Scope::system(), &json!({"files_id": new_a})).await.unwrap();
    assert_eq!(chunks, 0);
}

#[tokio::test]
async fn permissions_of_two_users() {
    let w = world().await;
    queue(&w, spec("private")).await;
    let alice_item = w.p.push_workitem(&w.alice, &q("private"), item(json!({}))).await.unwrap();
    // Bob has no rights: the queue does not exist for him.
    assert!(matches!(w.p.push_workitem(&w.bob, &q("private"), item(json!({}))).await, Err(CoreError::NotFound(_))));
    assert!(matches!(w.p.pop_workitem(&w.bob, &q("private")).await, Err(CoreError::NotFound(_))));
    assert!(matches!(w.p.delete_workitem(&w.bob, &id(&alice_item)).await, Err(CoreError::NotFound(_))));
    assert!(matches!(w.p.update_workitem(&w.bob, update(&alice_item, "failed")).await, Err(CoreError::NotFound(_))));
    // Read alone is not enough: invoke is the right to use a queue.
    grant(&w, "private", "u-bob", Rights::READ).await;
    assert!(matches!(w.p.push_workitem(&w.bob, &q("private"), item(json!({}))).await, Err(CoreError::AccessDenied(_))));
    assert!(matches!(w.p.pop_workitem(&w.bob, &q("private")).await, Err(CoreError::AccessDenied(_))));
    grant(&w, "private", "u-bob", Rights(Rights::READ.0 | Rights::INVOKE.0)).await;
    let bobs = w.p.push_workitem(&w.bob, &q("private"), item(json!({"by": "bob"}))).await.unwrap();
    // Alice's older item was pushed before bob had rights: its ACL is the queue's at that time.
    let popped = w.p.pop_workitem(&w.bob, &q("private")).await.unwrap().unwrap();
    assert_eq!(id(&popped), id(&bobs));
    assert!(w.p.pop_workitem(&w.bob, &q("private")).await.unwrap().is_none());
    w.p.update_workitem(&w.bob, update(&popped, "successful")).await.unwrap();
    // The item's ACL follows the queue's on update: bob has read+invoke, not delete.
    assert!(matches!(w.p.delete_workitem(&w.bob, &id(&bobs)).await, Err(CoreError::AccessDenied(_))));
    w.p.delete_workitem(&w.alice, &id(&bobs)).await.unwrap();
    // Queue settings stay alice's.
    assert!(matches!(
        w.p.update_workitem_queue(&w.bob, &q("private"), &spec("private"), false).await,
        Err(CoreError::AccessDenied(_))
    ));
    assert!(matches!(w.p.delete_workitem_queue(&w.bob, &q("private"), true).await, Err(CoreError::AccessDenied(_))));
    // Admins may do anything; bob cannot name alice's queue as a target for his items.
    assert!(w.p.pop_workitem(&w.admin, &q("private")).await.unwrap().is_some());
    queue(&w, spec("alice-only")).await;
    let sneaky = NewWorkitem { success_wiq: "alice-only".into(), ..item(json!({})) };
    assert!(w.p.push_workitem(&w.bob, &q("private"), sneaky).await.is_err());
}

#[tokio::test]
async fn leases_expire_and_fence_stale_consumers() {
    let w = world_with(PlatformConfig { workitem_lease: Duration::from_secs(60), ..PlatformConfig::default() }).await;
    queue(&w, spec("leased")).await;
    let pushed = w.p.push_workitem(&w.alice, &q("leased"), item(json!({"job": 1}))).await.unwrap();

    // A consumer pops and dies without updating.
    let dead = w.p.pop_workitem(&w.alice, &q("leased")).await.unwrap().unwrap();
    let dead_token = dead["lease"]["token"].as_str().unwrap().to_string();
    assert_eq!(dead["payload"]["_lease"]["token"], dead_token.as_str(), "echoed in the payload");
    let until = chrono::DateTime::parse_from_rfc3339(dead["lease"]["until"].as_str().unwrap()).unwrap();
    assert!(until > Utc::now() + Span::seconds(50));
    assert!(raw(&w.p, "workitems", &id(&pushed)).await.unwrap()["payload"].get("_lease").is_none(), "never stored");
    assert!(w.p.pop_workitem(&w.alice, &q("leased")).await.unwrap().is_none(), "invisible while leased");

    // Housekeeping: nothing before the lease runs out; afterwards the item is a retry.
    assert_eq!(w.p.expire_workitem_leases(Utc::now()).await.unwrap(), 0);
    assert_eq!(w.p.expire_workitem_leases(Utc::now() + Span::seconds(61)).await.unwrap(), 1);
    let back = raw(&w.p, "workitems", &id(&pushed)).await.unwrap();
    assert_eq!((back["state"].as_str(), back["retries"].as_i64()), (Some("new"), Some(1)));
    assert!(back.get("lease").is_none() && back.get("userid").is_none());

    // Another consumer gets it with a new token.
    let live = w.p.pop_workitem(&w.alice, &q("leased")).await.unwrap().unwrap();
    let live_token = live["lease"]["token"].as_str().unwrap().to_string();
    assert_ne!(live_token, dead_token);

    // The dead consumer's late update is refused, with the token sent directly or echoed in the payload.
    let late = WorkitemUpdate { lease_token: Some(dead_token.clone()), ..update(&dead, "successful") };
    assert!(matches!(w.p.update_workitem(&w.alice, late).await, Err(CoreError::Conflict(_))));
    let echoed = WorkitemUpdate { payload: Some(dead["payload"].clone()), ..update(&dead, "successful") };
    assert!(matches!(w.p.update_workitem(&w.alice, echoed).await, Err(CoreError::Conflict(_))));
    assert_eq!(raw(&w.p, "workitems", &id(&pushed)).await.unwrap()["state"], "processing");

    // A heartbeat renews the lease and keeps the token; the live consumer completes the item.
    let beat = WorkitemUpdate { lease_token: Some(live_token.clone()), ..update(&live, "processing") };
    assert_eq!(w.p.update_workitem(&w.alice, beat).await.unwrap()["lease"]["token"], live_token.as_str());
    let done = WorkitemUpdate { payload: Some(live["payload"].clone()), ..update(&live, "successful") };
    let done = w.p.update_workitem(&w.alice, done).await.unwrap();
    assert_eq!(done["state"], "successful");
    assert!(done.get("lease").is_none());
    assert_eq!(done["payload"], json!({"job": 1}));
    let after = WorkitemUpdate { lease_token: Some(live_token), ..update(&live, "failed") };
    assert!(matches!(w.p.update_workitem(&w.alice, after).await, Err(CoreError::Conflict(_))), "lease is over");

    // Expiring past maxretries fails the item.
    queue(&w, WorkitemQueueSpec { maxretries: 1, ..spec("once") }).await;
    let once = w.p.push_workitem(&w.alice, &q("once"), item(json!({}))).await.unwrap();
    w.p.pop_workitem(&w.alice, &q("once")).await.unwrap().unwrap();
    assert_eq!(w.p.expire_workitem_leases(Utc::now() + Span::seconds(61)).await.unwrap(), 1);
    let failed = raw(&w.p, "workitems", &id(&once)).await.unwrap();
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["errorsource"], "lease");
}

#[tokio::test]
async fn ready_queues_are_announced() {
    let w = world().await;
    let mut ready = w.p.subscribe_workitem_ready();
    let wiq = queue(&w, WorkitemQueueSpec { amqpqueue: "Robot-Queue".into(), ..spec("announced") }).await;
    queue(&w, spec("quiet")).await;
    w.p.push_workitem(&w.alice, &q("quiet"), item(json!({}))).await.unwrap();
    let future = NewWorkitem { nextrun: Some((Utc::now() + Span::hours(1)).to_rfc3339()), ..item(json!({})) };
    w.p.push_workitem(&w.alice, &q("announced"), future).await.unwrap();
    assert!(ready.try_recv().is_err(), "nothing ready yet, and quiet has no amqpqueue");
    assert_eq!(w.p.announce_ready_workitem_queues(Utc::now()).await.unwrap(), 0);
    assert_eq!(w.p.announce_ready_workitem_queues(Utc::now() + Span::hours(2)).await.unwrap(), 1);
    let notice = ready.try_recv().unwrap();
    assert_eq!((notice.queue.as_str(), notice.amqpqueue.as_str()), ("announced", "robot-queue"));
    assert_eq!(notice.queue_id, id(&wiq));
    w.p.push_workitem(&w.alice, &q("announced"), item(json!({}))).await.unwrap();
    assert_eq!(ready.try_recv().unwrap().queue, "announced");
}
