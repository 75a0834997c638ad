//! Watches: insert, update and delete events arrive with the operation and the document; `unwatch` stops
//! them; a user never receives events for documents it cannot read.

use crate::harness::*;
use openiap_client::{
    DeleteOneRequest, InsertOneRequest, UpdateDocumentRequest, UpdateOneRequest, WatchEvent, WatchRequest,
};
use serde_json::{json, Value};
use std::time::Duration;

/// How long an expected event may take.
const ARRIVES: Duration = Duration::from_secs(5);
/// How long we listen to be sure an event does not come.
const QUIET: Duration = Duration::from_millis(1500);

/// An event as (operation, document).
fn decode(event: &WatchEvent) -> (String, Value) {
    (event.operation.clone(), parse(&event.document, "watchevent document"))
}

pub async fn watch_events_and_unwatch(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_watch", t);
    let (tx, mut events) = events::<WatchEvent>();
    let watch_id = ok(
        client
            .watch(
                WatchRequest::new(&collection, vec![]),
                env(),
                Box::new(move |e| {
                    let _ = tx.send(e);
                }),
            )
            .await,
        t,
        "watch",
    );
    assert!(!watch_id.is_empty(), "the watch has an id");

    // Insert.
    let request = InsertOneRequest {
        collectionname: collection.clone(),
        item: json!({"name": "watched", "n": 1}).to_string(),
        ..Default::default()
    };
    let doc = parse(&ok(client.insert_one(request, env()).await, t, "insertone").result, "insertone result");
    let id = doc["_id"].clone();
    let event = events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: no event for the insert"));
    assert_eq!(event.id, watch_id, "the event names the watch");
    let (operation, document) = decode(&event);
    assert_eq!(operation, "insert");
    assert_eq!((document["_id"].clone(), document["name"].clone()), (id.clone(), json!("watched")), "{document}");

    // Replace (updateone) and operator update (updatedocument).
    let request = UpdateOneRequest {
        collectionname: collection.clone(),
        item: json!({"_id": id, "name": "replaced", "n": 2}).to_string(),
        ..Default::default()
    };
    ok(client.update_one(request, env()).await, t, "updateone");
    let event = events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: no event for the updateone"));
    let (operation, document) = decode(&event);
    assert!(operation == "replace" || operation == "update", "updateone is a replace (or update): {operation}");
    assert_eq!((document["_id"].clone(), document["name"].clone()), (id.clone(), json!("replaced")), "{document}");
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"_id": id}).to_string(),
        document: json!({"$set": {"n": 3}}).to_string(),
        ..Default::default()
    };
    ok(client.update_document(request, env()).await, t, "updatedocument");
    let event = events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: no event for the updatedocument"));
    let (operation, document) = decode(&event);
    assert_eq!(operation, "update");
    assert_eq!((document["_id"].clone(), document["n"].clone()), (id.clone(), json!(3)), "the new state: {document}");

    // Delete.
    let id_text = id.as_str().expect("string id").to_string();
    let request = DeleteOneRequest { collectionname: collection.clone(), id: id_text, ..Default::default() };
    ok(client.delete_one(request, env()).await, t, "deleteone");
    let event = events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: no event for the delete"));
    let (operation, document) = decode(&event);
    assert_eq!(operation, "delete");
    assert_eq!(document["_id"], id, "{document}");
    let extra = events.drain(QUIET).await;
    assert!(extra.is_empty(), "one event per change: {:?}", extra.iter().map(decode).collect::<Vec<_>>());

    // A write elsewhere is not an event of this watch.
    let request = InsertOneRequest {
        collectionname: unique("conf_watch_other", t),
        item: json!({"name": "elsewhere"}).to_string(),
        ..Default::default()
    };
    ok(client.insert_one(request, env()).await, t, "insertone elsewhere");
    assert!(events.drain(QUIET).await.is_empty(), "no event for another collection");

    // After unwatch, nothing more arrives (the client keeps its callback, so a stray event would show).
    ok(client.unwatch(env(), &watch_id).await, t, "unwatch");
    let request = InsertOneRequest {
        collectionname: collection.clone(),
        item: json!({"name": "after unwatch"}).to_string(),
        ..Default::default()
    };
    ok(client.insert_one(request, env()).await, t, "insertone after unwatch");
    let stray = events.drain(QUIET).await;
    assert!(stray.is_empty(), "no events after unwatch: {:?}", stray.iter().map(decode).collect::<Vec<_>>());
    client.disconnect();
}

/// A second user watching the same collection gets events for its own documents but none for the admin's.
pub async fn watch_respects_read_access(t: Transport) {
    let admin = admin(t).await;
    let collection = unique("conf_watch_acl", t);
    let user = create_user(&admin, t, "watcher").await;
    let plain = connect_user(t, &user).await;

    let (admin_tx, mut admin_events) = events::<WatchEvent>();
    let request = WatchRequest::new(&collection, vec![]);
    ok(
        admin
            .watch(
                request,
                env(),
                Box::new(move |e| {
                    let _ = admin_tx.send(e);
                }),
            )
            .await,
        t,
        "watch (admin)",
    );
    let (user_tx, mut user_events) = events::<WatchEvent>();
    let request = WatchRequest::new(&collection, vec!["".into()]);
    ok(
        plain
            .watch(
                request,
                env(),
                Box::new(move |e| {
                    let _ = user_tx.send(e);
                }),
            )
            .await,
        t,
        "watch (user)",
    );

    // The admin's document: only the admin hears of it.
    let request = InsertOneRequest {
        collectionname: collection.clone(),
        item: json!({"name": "admin only", "secret": "s3cret"}).to_string(),
        ..Default::default()
    };
    let secret = parse(&ok(admin.insert_one(request, env()).await, t, "insertone").result, "insertone result");
    let event = admin_events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: the admin got no event"));
    assert_eq!(parse(&event.document, "document")["_id"], secret["_id"]);

    // The user's own document: the user hears of it (so its watch works), and so does the admin.
    let request = InsertOneRequest {
        collectionname: collection.clone(),
        item: json!({"name": "the user's"}).to_string(),
        ..Default::default()
    };
    let own = parse(&ok(plain.insert_one(request, env()).await, t, "insertone (user)").result, "insertone result");
    let event = user_events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: the user got no event for its own"));
    let (operation, document) = decode(&event);
    assert_eq!((operation.as_str(), document["_id"].clone()), ("insert", own["_id"].clone()), "{document}");
    let event = admin_events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: the admin got no second event"));
    assert_eq!(parse(&event.document, "document")["_id"], own["_id"]);

    // An update of the admin's document is not shown to the user either.
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"_id": secret["_id"]}).to_string(),
        document: json!({"$set": {"secret": "changed"}}).to_string(),
        ..Default::default()
    };
    ok(admin.update_document(request, env()).await, t, "updatedocument (admin)");
    let leaked = user_events.drain(QUIET).await;
    assert!(
        leaked.is_empty(),
        "the user must not get events for documents it cannot read: {:?}",
        leaked.iter().map(decode).collect::<Vec<_>>()
    );
    plain.disconnect();
    admin.disconnect();
}

/// `paths` are JSONPath expressions over `{"a": <document>}`: a watch with a filter expression hears
/// only of the documents it selects.
pub async fn watch_paths_filter(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_watch_paths", t);
    let (tx, mut events) = events::<WatchEvent>();
    let request = WatchRequest::new(&collection, vec!["$[?(@.kind == 'even')]".into()]);
    let callback = Box::new(move |e| {
        let _ = tx.send(e);
    });
    ok(client.watch(request, env(), callback).await, t, "watch with paths");
    for (name, kind) in [("one", "odd"), ("two", "even"), ("three", "odd")] {
        let request = InsertOneRequest {
            collectionname: collection.clone(),
            item: json!({"name": name, "kind": kind}).to_string(),
            ..Default::default()
        };
        ok(client.insert_one(request, env()).await, t, "insertone");
    }
    let event = events.next(ARRIVES).await.unwrap_or_else(|| panic!("{t:?}: no event for the matching insert"));
    assert_eq!(decode(&event).1["name"], json!("two"), "only the selected document");
    let extra = events.drain(QUIET).await;
    assert!(extra.is_empty(), "nothing for the others: {:?}", extra.iter().map(decode).collect::<Vec<_>>());
    client.disconnect();
}
