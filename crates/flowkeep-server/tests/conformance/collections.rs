//! Collections and indexes: list, create (plain, time-series with `timeField`, `expireAfterSeconds`),
//! drop; create (idempotent), list and drop indexes.

use crate::harness::*;
use openiap_client::{
    Client, CreateCollectionRequest, CreateIndexRequest, DropCollectionRequest, DropIndexRequest, GetIndexesRequest,
    InsertOneRequest, UpdateOneRequest,
};
use serde_json::{json, Value};

async fn list(client: &Client, t: Transport, include_history: bool) -> Vec<Value> {
    let text = ok(client.list_collections(include_history, env()).await, t, "listcollections");
    parse_array(&text, "listcollections results")
}

fn named<'a>(collections: &'a [Value], name: &str) -> Option<&'a Value> {
    collections.iter().find(|c| c["name"] == json!(name))
}

async fn indexes(client: &Client, t: Transport, collection: &str) -> Vec<Value> {
    let text = ok(client.get_indexes(GetIndexesRequest::bycollectionname(collection), env()).await, t, "getindexes");
    parse_array(&text, "getindexes results")
}

fn index_named<'a>(indexes: &'a [Value], name: &str) -> Option<&'a Value> {
    indexes.iter().find(|i| i["name"] == json!(name))
}

/// Create (twice: idempotent), list, time-series with `timeField`, `expireAfterSeconds`, history shown
/// only on request, drop.
pub async fn create_list_drop_collections(t: Transport) {
    let client = admin(t).await;
    let plain = unique("conf_coll", t);
    ok(client.create_collection(CreateCollectionRequest::byname(&plain), env()).await, t, "createcollection");
    ok(client.create_collection(CreateCollectionRequest::byname(&plain), env()).await, t, "createcollection again");
    let listed = list(&client, t, false).await;
    let entry = named(&listed, &plain).unwrap_or_else(|| panic!("{plain} is listed: {listed:?}"));
    assert_eq!(entry["type"], json!("collection"), "{entry}");

    // Time-series: created with its timeField; documents with that field as an ISO string go in and come
    // back with it.
    let series = unique("conf_ts", t);
    let request = CreateCollectionRequest::timeseries(&series, "ts", "minutes");
    ok(client.create_collection(request, env()).await, t, "createcollection timeseries");
    let listed = list(&client, t, false).await;
    let entry = named(&listed, &series).unwrap_or_else(|| panic!("{series} is listed: {listed:?}"));
    assert_eq!(entry["type"], json!("timeseries"), "{entry}");
    assert_eq!(entry["options"]["timeseries"]["timeField"], json!("ts"), "{entry}");
    let stamp = "2026-11-22T10:00:00.000Z";
    let request = InsertOneRequest {
        collectionname: series.clone(),
        item: json!({"ts": stamp, "value": 42, "sensor": "s1"}).to_string(),
        ..Default::default()
    };
    ok(client.insert_one(request, env()).await, t, "insertone into the time-series collection");
    let found = find(&client, t, &series, json!({"sensor": "s1"})).await;
    assert_eq!(column(&found, "value"), [json!(42)], "{found:?}");
    let ts = found[0]["ts"].as_str().unwrap_or_else(|| panic!("ts comes back as an ISO string: {found:?}"));
    assert!(ts.starts_with("2026-11-22T10:00:00"), "{ts}");

    // expireAfterSeconds on a normal collection: the expiry is recorded (as a TTL index on _created, as
    // MongoDB does, or in the collection's options).
    let expiring = unique("conf_ttl", t);
    ok(client.create_collection(CreateCollectionRequest::with_ttl(&expiring, 3600), env()).await, t, "create ttl");
    let listed = list(&client, t, false).await;
    let entry = named(&listed, &expiring).unwrap_or_else(|| panic!("{expiring} is listed: {listed:?}")).clone();
    let ttl_indexes = indexes(&client, t, &expiring).await;
    let ttl_index = ttl_indexes.iter().any(|i| i["key"] == json!({"_created": 1}) && i["expireAfterSeconds"] == 3600);
    let ttl_option = entry["options"]["expireAfterSeconds"] == json!(3600);
    assert!(ttl_index || ttl_option, "expireAfterSeconds 3600 is recorded: {entry} / {ttl_indexes:?}");

    // History collections are listed only on request.
    let doc =
        InsertOneRequest { collectionname: plain.clone(), item: json!({"v": 1}).to_string(), ..Default::default() };
    let doc = parse(&ok(client.insert_one(doc, env()).await, t, "insertone").result, "insertone result");
    let update = UpdateOneRequest {
        collectionname: plain.clone(),
        item: json!({"_id": doc["_id"], "v": 2}).to_string(),
        ..Default::default()
    };
    ok(client.update_one(update, env()).await, t, "updateone");
    let hist = format!("{plain}_hist");
    assert!(named(&list(&client, t, false).await, &hist).is_none(), "{hist} is hidden by default");
    assert!(named(&list(&client, t, true).await, &hist).is_some(), "{hist} is listed with includehist");

    // Drop.
    for name in [&plain, &series, &expiring] {
        ok(client.drop_collection(DropCollectionRequest::byname(name), env()).await, t, "dropcollection");
    }
    let listed = list(&client, t, true).await;
    for name in [&plain, &series, &expiring, &hist] {
        assert!(named(&listed, name).is_none(), "{name} is gone after the drop: {listed:?}");
    }
    assert!(find(&client, t, &plain, json!({})).await.is_empty(), "its documents are gone too");
    client.disconnect();
}

/// `listcollections` follows OpenIAP's conventions: `entities` is always listed, system collections and
/// `.chunks` never are; a plain user may list too, but may not drop.
pub async fn list_collections_conventions(t: Transport) {
    let client = admin(t).await;
    let listed = list(&client, t, false).await;
    assert!(named(&listed, "entities").is_some(), "entities is always listed: {listed:?}");
    assert!(named(&listed, "users").is_some(), "users is listed: {listed:?}");
    for c in &listed {
        let name = c["name"].as_str().unwrap_or_else(|| panic!("each entry has a name: {c}"));
        assert!(!name.ends_with(".chunks"), "file chunks are never listed: {name}");
        assert!(!name.starts_with("flowkeep."), "system collections are never listed: {name}");
        assert!(c["type"].is_string(), "each entry has a type: {c}");
    }
    let user = create_user(&client, t, "lister").await;
    let plain = connect_user(t, &user).await;
    let theirs = list(&plain, t, false).await;
    assert!(named(&theirs, "entities").is_some(), "a plain user lists collections too: {theirs:?}");
    let refused = plain.drop_collection(DropCollectionRequest::byname("entities"), env()).await;
    assert!(refused.is_err(), "a plain user may not drop a collection: {refused:?}");
    assert!(named(&list(&client, t, false).await, "entities").is_some(), "entities is still there");
    plain.disconnect();
    client.disconnect();
}

/// `createindex` (default name `field_1`, idempotent, unique enforced), `getindexes`, `dropindex`.
pub async fn create_get_drop_indexes(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_index", t);
    ok(client.create_collection(CreateCollectionRequest::byname(&collection), env()).await, t, "createcollection");
    let before = indexes(&client, t, &collection).await;
    assert!(index_named(&before, "name_1").is_none(), "{before:?}");

    let by_name = CreateIndexRequest::bycollectionname(&collection, &json!({"name": 1}).to_string());
    ok(client.create_index(by_name.clone(), env()).await, t, "createindex");
    ok(client.create_index(by_name, env()).await, t, "createindex again (idempotent)");
    let mut unique_code =
        CreateIndexRequest::bycollectionname(&collection, &json!({"code": 1, "zone": -1}).to_string());
    unique_code.options = json!({"unique": true}).to_string();
    ok(client.create_index(unique_code, env()).await, t, "createindex unique");
    let mut explicit = CreateIndexRequest::bycollectionname(&collection, &json!({"when": -1}).to_string());
    explicit.name = "by_when".into();
    ok(client.create_index(explicit, env()).await, t, "createindex with a name");

    let listed = indexes(&client, t, &collection).await;
    let name_1 = index_named(&listed, "name_1").unwrap_or_else(|| panic!("name_1 is listed: {listed:?}"));
    assert_eq!(name_1["key"], json!({"name": 1}), "{name_1}");
    assert_eq!(listed.iter().filter(|i| i["name"] == json!("name_1")).count(), 1, "no duplicate: {listed:?}");
    let compound =
        index_named(&listed, "code_1_zone_-1").unwrap_or_else(|| panic!("code_1_zone_-1 is listed: {listed:?}"));
    assert_eq!(compound["key"], json!({"code": 1, "zone": -1}), "{compound}");
    assert_eq!(compound["unique"], json!(true), "{compound}");
    let when = index_named(&listed, "by_when").unwrap_or_else(|| panic!("by_when is listed: {listed:?}"));
    assert_eq!(when["key"], json!({"when": -1}), "{when}");

    // The unique index is enforced.
    let item = json!({"code": "c1", "zone": 1}).to_string();
    let insert = InsertOneRequest { collectionname: collection.clone(), item, ..Default::default() };
    ok(client.insert_one(insert.clone(), env()).await, t, "insertone");
    let duplicate = client.insert_one(insert, env()).await;
    assert!(duplicate.is_err(), "a duplicate key under a unique index is refused: {duplicate:?}");

    ok(client.drop_index(DropIndexRequest::bycollectionname(&collection, "name_1"), env()).await, t, "dropindex");
    let after = indexes(&client, t, &collection).await;
    assert!(index_named(&after, "name_1").is_none(), "name_1 is gone: {after:?}");
    assert!(index_named(&after, "by_when").is_some(), "the others stay: {after:?}");
    let unknown = client.drop_index(DropIndexRequest::bycollectionname(&collection, "no_such_index"), env()).await;
    assert!(unknown.is_err(), "dropping an unknown index is an error: {unknown:?}");
    ok(client.drop_collection(DropCollectionRequest::byname(&collection), env()).await, t, "dropcollection");
    client.disconnect();
}
