//! Document, collection, index and customer commands over `Hub::serve_connection`, with real assertions
//! on the JSON that comes back, and the isolation of one user's documents from another's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use flowkeep_protocol::wire;
use serde_json::{json, Value};

fn q(collection: &str, query: Value) -> wire::QueryRequest {
    wire::QueryRequest { collectionname: collection.into(), query: query.to_string(), ..Default::default() }
}

async fn results(c: &mut Client, request: wire::QueryRequest) -> Vec<Value> {
    let r: wire::QueryResponse = c.ok("query", &request).await;
    parse(&r.results).as_array().unwrap().clone()
}

#[tokio::test]
async fn query_family() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    for i in 0..5 {
        insert(
            &mut c,
            "items",
            json!({"name": format!("n{i}"), "i": i, "kind": if i % 2 == 0 { "even" } else { "odd" }}),
        )
        .await;
    }
    // orderby as a bare field name and as JSON, top, skip, projection
    let r = results(&mut c, wire::QueryRequest { orderby: "i".into(), top: 2, skip: 1, ..q("items", json!({})) }).await;
    assert_eq!(r.iter().map(|d| d["i"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    let r = results(
        &mut c,
        wire::QueryRequest {
            orderby: r#"{"i": -1}"#.into(),
            projection: r#"{"name": 1}"#.into(),
            ..q("items", json!({}))
        },
    )
    .await;
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["name"], "n4");
    assert!(r[0].get("i").is_none(), "projection: {}", r[0]);
    let (message, _) = c.err("query", &wire::QueryRequest { skip: -1, ..q("items", json!({})) }).await;
    assert!(message.starts_with("skip:"), "{message}");

    // top 0 means default_top; larger than max_top is cut
    let small = flowkeep_protocol::ProtocolConfig { default_top: 2, max_top: 3, ..Default::default() };
    let hub2 = flowkeep_protocol::Hub::new(hub.platform().clone(), small);
    let mut c2 = connect(&hub2);
    c2.signin(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(results(&mut c2, q("items", json!({}))).await.len(), 2);
    assert_eq!(results(&mut c2, wire::QueryRequest { top: 1000, ..q("items", json!({})) }).await.len(), 3);

    // count, distinct (values as strings), aggregate
    let r: wire::CountResponse = c
        .ok(
            "count",
            &wire::CountRequest {
                collectionname: "items".into(),
                query: r#"{"kind":"even"}"#.into(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.result, 3);
    let r: wire::CountResponse =
        c.ok("count", &wire::CountRequest { collectionname: "items".into(), ..Default::default() }).await;
    assert_eq!(r.result, 5);
    let r: wire::DistinctResponse = c
        .ok(
            "distinct",
            &wire::DistinctRequest { collectionname: "items".into(), field: "i".into(), ..Default::default() },
        )
        .await;
    let mut values = r.results.clone();
    values.sort();
    assert_eq!(values, vec!["0", "1", "2", "3", "4"]);
    let (message, _) =
        c.err("distinct", &wire::DistinctRequest { collectionname: "items".into(), ..Default::default() }).await;
    assert!(message.starts_with("field:"), "{message}");
    let r: wire::AggregateResponse = c
        .ok(
            "aggregate",
            &wire::AggregateRequest { collectionname: "items".into(), aggregates: "[]".into(), ..Default::default() },
        )
        .await;
    assert_eq!(parse(&r.results).as_array().unwrap().len(), 5);
    let pipeline = json!([{"$group": {"_id": "$kind", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]);
    let r: wire::AggregateResponse = c
        .ok(
            "aggregate",
            &wire::AggregateRequest {
                collectionname: "items".into(),
                aggregates: pipeline.to_string(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(parse(&r.results), json!([{"_id": "even", "n": 3}, {"_id": "odd", "n": 2}]));
    let (message, _) = c
        .err(
            "aggregate",
            &wire::AggregateRequest { collectionname: "items".into(), aggregates: "5".into(), ..Default::default() },
        )
        .await;
    assert!(message.starts_with("aggregates:"), "{message}");

    // empty collection name means entities; files means fs.files
    insert(&mut c, "", json!({"name": "in entities"})).await;
    assert_eq!(results(&mut c, q("entities", json!({"name": "in entities"}))).await.len(), 1);
    assert!(results(&mut c, q("files", json!({}))).await.is_empty());
}

#[tokio::test]
async fn query_explain() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    insert(&mut c, "items", json!({"name": "x"})).await;
    let r: wire::QueryResponse =
        c.ok("query", &wire::QueryRequest { explain: true, ..q("items", json!({"name": "x"})) }).await;
    let explain = parse(&r.results);
    assert!(!explain.is_null(), "{explain}");
}

#[tokio::test]
async fn writes() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    // insertmany, skipresults
    let items = json!([{"name": "a", "n": 1}, {"name": "b", "n": 2}]);
    let r: wire::InsertManyResponse = c
        .ok(
            "insertmany",
            &wire::InsertManyRequest { collectionname: "w".into(), items: items.to_string(), ..Default::default() },
        )
        .await;
    let docs = parse(&r.results);
    assert_eq!(docs.as_array().unwrap().len(), 2);
    assert_eq!(docs[0]["_version"], 0);
    let r: wire::InsertManyResponse = c
        .ok(
            "insertmany",
            &wire::InsertManyRequest {
                collectionname: "w".into(),
                items: json!([{"name": "c"}]).to_string(),
                skipresults: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.results, "[]");
    let (message, _) = c
        .err(
            "insertmany",
            &wire::InsertManyRequest { collectionname: "w".into(), items: "[1]".into(), ..Default::default() },
        )
        .await;
    assert!(message.starts_with("items[0]:"), "{message}");

    // updateone: full replace by _id
    let a = docs[0].clone();
    let id = a["_id"].as_str().unwrap().to_owned();
    let r: wire::UpdateOneResponse = c
        .ok(
            "updateone",
            &wire::UpdateOneRequest {
                collectionname: "w".into(),
                item: json!({"_id": id, "name": "a2"}).to_string(),
                ..Default::default()
            },
        )
        .await;
    let updated = parse(&r.result);
    assert_eq!(updated["name"], "a2");
    assert!(updated.get("n").is_none());
    assert_eq!(updated["_version"], 1);
    let (message, _) = c
        .err(
            "updateone",
            &wire::UpdateOneRequest { collectionname: "w".into(), item: "{}".into(), ..Default::default() },
        )
        .await;
    assert!(message.starts_with("item._id:"), "{message}");

    // updatedocument
    let r: wire::UpdateDocumentResponse = c
        .ok(
            "updatedocument",
            &wire::UpdateDocumentRequest {
                collectionname: "w".into(),
                query: json!({"name": {"$in": ["b", "c"]}}).to_string(),
                document: json!({"$set": {"flag": true}}).to_string(),
                ..Default::default()
            },
        )
        .await;
    let result = r.opresult.unwrap();
    assert!(result.acknowledged);
    assert_eq!((result.matched_count, result.modified_count, result.upserted_count), (2, 2, 0));
    assert_eq!(results(&mut c, q("w", json!({"flag": true}))).await.len(), 2);

    // insertorupdateone: insert, update by uniqueness keeping _id, more than one match is an error
    let upsert = |item: Value, uniq: &str| wire::InsertOrUpdateOneRequest {
        collectionname: "w".into(),
        uniqeness: uniq.into(),
        item: item.to_string(),
        ..Default::default()
    };
    let r: wire::InsertOrUpdateOneResponse =
        c.ok("insertorupdateone", &upsert(json!({"key": "k1", "v": 1}), "key")).await;
    let first = parse(&r.result);
    let r: wire::InsertOrUpdateOneResponse =
        c.ok("insertorupdateone", &upsert(json!({"key": "k1", "v": 2}), "key")).await;
    let second = parse(&r.result);
    assert_eq!(second["_id"], first["_id"]);
    assert_eq!(second["v"], 2);
    assert_eq!(results(&mut c, q("w", json!({"key": "k1"}))).await.len(), 1);
    let (message, code) = c.err("insertorupdateone", &upsert(json!({"flag": true}), "flag")).await;
    assert_eq!(code, 409, "{message}");
    // by _id when uniqueness is empty
    let r: wire::InsertOrUpdateOneResponse =
        c.ok("insertorupdateone", &upsert(json!({"_id": first["_id"], "key": "k1", "v": 3}), "")).await;
    assert_eq!(parse(&r.result)["v"], 3);

    // insertorupdatemany: results in input order
    let items = json!([{"key": "m2", "v": 1}, {"key": "k1", "v": 4}, {"key": "m1", "v": 1}]);
    let r: wire::InsertOrUpdateManyResponse = c
        .ok(
            "insertorupdatemany",
            &wire::InsertOrUpdateManyRequest {
                collectionname: "w".into(),
                uniqeness: "key".into(),
                items: items.to_string(),
                ..Default::default()
            },
        )
        .await;
    let many = parse(&r.results);
    let keys: Vec<&str> = many.as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["m2", "k1", "m1"]);
    assert_eq!(many[1]["_id"], first["_id"]);

    // getdocumentversion: 0 rebuilt, negative and too high are the current one
    let version = |v: i32| wire::GetDocumentVersionRequest {
        collectionname: "w".into(),
        id: id.clone(),
        version: v,
        decrypt: true,
    };
    let r: wire::GetDocumentVersionResponse = c.ok("getdocumentversion", &version(0)).await;
    let v0 = parse(&r.result);
    assert_eq!((v0["name"].as_str(), v0["_version"].as_i64()), (Some("a"), Some(0)));
    for v in [-1, 99] {
        let r: wire::GetDocumentVersionResponse = c.ok("getdocumentversion", &version(v)).await;
        assert_eq!(parse(&r.result)["name"], "a2", "version {v}");
    }

    // deleteone, deletemany by ids and by query
    let r: wire::DeleteOneResponse = c
        .ok("deleteone", &wire::DeleteOneRequest { collectionname: "w".into(), id: id.clone(), recursive: true })
        .await;
    assert_eq!(r.affectedrows, 1);
    let (_, code) = c
        .err("deleteone", &wire::DeleteOneRequest { collectionname: "w".into(), id: id.clone(), ..Default::default() })
        .await;
    assert_eq!(code, 404);
    let ids: Vec<String> =
        many.as_array().unwrap().iter().take(2).map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    let r: wire::DeleteManyResponse =
        c.ok("deletemany", &wire::DeleteManyRequest { collectionname: "w".into(), ids, ..Default::default() }).await;
    assert_eq!(r.affectedrows, 2);
    let r: wire::DeleteManyResponse = c
        .ok(
            "deletemany",
            &wire::DeleteManyRequest {
                collectionname: "w".into(),
                query: r#"{"flag": true}"#.into(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.affectedrows, 2);
    let (message, _) =
        c.err("deletemany", &wire::DeleteManyRequest { collectionname: "w".into(), ..Default::default() }).await;
    assert!(message.contains("query or ids"), "{message}");
    assert_eq!(results(&mut c, q("w", json!({}))).await.len(), 1);
}

#[tokio::test]
async fn users_cannot_see_or_change_each_others_documents() {
    let hub = hub().await;
    let (mut admin, _) = admin(&hub).await;
    let (mut alice, _, _) = user(&hub, &mut admin, "alice").await;
    let (mut bob, _, _) = user(&hub, &mut admin, "bob").await;
    let doc = insert(&mut alice, "entities", json!({"name": "alice's"})).await;
    let id = doc["_id"].as_str().unwrap().to_owned();
    assert_eq!(query(&mut alice, "entities", json!({})).await.len(), 1);
    assert!(query(&mut bob, "entities", json!({})).await.is_empty());
    let r: wire::CountResponse =
        bob.ok("count", &wire::CountRequest { collectionname: "entities".into(), ..Default::default() }).await;
    assert_eq!(r.result, 0);
    let (_, code) = bob
        .err(
            "updateone",
            &wire::UpdateOneRequest {
                collectionname: "entities".into(),
                item: json!({"_id": id, "name": "bob's now"}).to_string(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(code, 404);
    let r: wire::UpdateDocumentResponse = bob
        .ok(
            "updatedocument",
            &wire::UpdateDocumentRequest {
                collectionname: "entities".into(),
                query: json!({"_id": id}).to_string(),
                document: json!({"$set": {"name": "x"}}).to_string(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.opresult.unwrap().matched_count, 0);
    let (_, code) = bob
        .err(
            "deleteone",
            &wire::DeleteOneRequest { collectionname: "entities".into(), id: id.clone(), ..Default::default() },
        )
        .await;
    assert_eq!(code, 404);
    let (_, code) = bob
        .err(
            "getdocumentversion",
            &wire::GetDocumentVersionRequest {
                collectionname: "entities".into(),
                id: id.clone(),
                version: 0,
                decrypt: true,
            },
        )
        .await;
    assert_eq!(code, 404);
    let r = query(&mut alice, "entities", json!({"_id": id})).await;
    assert_eq!(r[0]["name"], "alice's");
    // a user may not drop collections
    let (_, code) = bob.err("dropcollection", &wire::DropCollectionRequest { collectionname: "entities".into() }).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn collections() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let list = |hist: bool| wire::ListCollectionsRequest { includehist: hist };
    // a fresh store still lists entities and audit
    let r: wire::ListCollectionsResponse = c.ok("listcollections", &list(false)).await;
    let names = |text: &str| -> Vec<String> {
        parse(text).as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };
    let listed = names(&r.results);
    assert!(listed.contains(&"entities".to_owned()) && listed.contains(&"audit".to_owned()), "{listed:?}");
    insert(&mut c, "things", json!({"name": "t"})).await;
    let r: wire::ListCollectionsResponse = c.ok("listcollections", &list(false)).await;
    let listed = names(&r.results);
    assert!(listed.contains(&"things".to_owned()));
    assert!(!listed.iter().any(|n| n.ends_with("_hist") || n.ends_with(".chunks")), "{listed:?}");
    let r: wire::ListCollectionsResponse = c.ok("listcollections", &list(true)).await;
    assert!(names(&r.results).contains(&"things_hist".to_owned()));
    let entry = parse(&r.results).as_array().unwrap().iter().find(|c| c["name"] == "things").unwrap().clone();
    assert_eq!(entry["type"], "collection");

    // time-series, idempotent
    let ts = wire::CreateCollectionRequest {
        collectionname: "metrics".into(),
        timeseries: Some(wire::ColTimeseries {
            time_field: "ts".into(),
            meta_field: "meta".into(),
            granularity: "minutes".into(),
        }),
        ..Default::default()
    };
    let _: wire::CreateCollectionResponse = c.ok("createcollection", &ts).await;
    let _: wire::CreateCollectionResponse = c.ok("createcollection", &ts).await;
    let r: wire::ListCollectionsResponse = c.ok("listcollections", &list(false)).await;
    let metrics = parse(&r.results).as_array().unwrap().iter().find(|c| c["name"] == "metrics").unwrap().clone();
    assert_eq!(metrics["type"], "timeseries");
    assert_eq!(metrics["options"]["timeseries"]["timeField"], "ts");
    let bad = wire::CreateCollectionRequest {
        collectionname: "m2".into(),
        timeseries: Some(wire::ColTimeseries::default()),
        ..Default::default()
    };
    let (message, _) = c.err("createcollection", &bad).await;
    assert!(message.starts_with("timeseries.timeField:"), "{message}");
    let (message, _) = c.err("createcollection", &wire::CreateCollectionRequest::default()).await;
    assert!(message.starts_with("collectionname:"), "{message}");

    // drop
    let _: wire::DropCollectionResponse =
        c.ok("dropcollection", &wire::DropCollectionRequest { collectionname: "things".into() }).await;
    let r: wire::ListCollectionsResponse = c.ok("listcollections", &list(true)).await;
    assert!(!names(&r.results).iter().any(|n| n.starts_with("things")));
    let (_, code) = c.err("dropcollection", &wire::DropCollectionRequest { collectionname: "users".into() }).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn expiring_collections_and_indexes() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let ttl = wire::CreateCollectionRequest {
        collectionname: "sessions".into(),
        expire_after_seconds: 3600,
        ..Default::default()
    };
    let _: wire::CreateCollectionResponse = c.ok("createcollection", &ttl).await;
    let _: wire::CreateCollectionResponse = c.ok("createcollection", &ttl).await;
    let r: wire::GetIndexesResponse =
        c.ok("getindexes", &wire::GetIndexesRequest { collectionname: "sessions".into() }).await;
    let indexes = parse(&r.results);
    let ttl_index = indexes.as_array().unwrap().iter().find(|i| i["key"] == json!({"_created": 1})).cloned();
    assert_eq!(ttl_index.map(|i| i["expireAfterSeconds"].clone()), Some(json!(3600)), "{indexes}");

    let create = wire::CreateIndexRequest {
        collectionname: "people".into(),
        index: r#"{"name": 1}"#.into(),
        options: r#"{"unique": true}"#.into(),
        ..Default::default()
    };
    let r: wire::CreateIndexResponse = c.ok("createindex", &create).await;
    assert_eq!(r.result, "name_1");
    let r: wire::CreateIndexResponse = c.ok("createindex", &create).await;
    assert_eq!(r.result, "name_1");
    let named = wire::CreateIndexRequest {
        collectionname: "people".into(),
        index: r#"{"age": -1}"#.into(),
        name: "by_age".into(),
        ..Default::default()
    };
    let r: wire::CreateIndexResponse = c.ok("createindex", &named).await;
    assert_eq!(r.result, "by_age");
    let r: wire::GetIndexesResponse =
        c.ok("getindexes", &wire::GetIndexesRequest { collectionname: "people".into() }).await;
    let indexes = parse(&r.results);
    let by_name = |n: &str| indexes.as_array().unwrap().iter().find(|i| i["name"] == n).cloned();
    assert_eq!(by_name("name_1").unwrap()["key"], json!({"name": 1}));
    assert_eq!(by_name("name_1").unwrap()["unique"], true);
    assert_eq!(by_name("by_age").unwrap()["key"], json!({"age": -1}));
    // the unique index holds
    insert(&mut c, "people", json!({"name": "x"})).await;
    let dup = wire::InsertOneRequest {
        collectionname: "people".into(),
        item: r#"{"name": "x"}"#.into(),
        ..Default::default()
    };
    let (_, code) = c.err("insertone", &dup).await;
    assert_eq!(code, 409);
    let _: wire::DropIndexResponse =
        c.ok("dropindex", &wire::DropIndexRequest { collectionname: "people".into(), name: "by_age".into() }).await;
    let r: wire::GetIndexesResponse =
        c.ok("getindexes", &wire::GetIndexesRequest { collectionname: "people".into() }).await;
    assert!(!r.results.contains("by_age"));
    let (message, _) = c
        .err(
            "createindex",
            &wire::CreateIndexRequest { collectionname: "people".into(), index: "{".into(), ..Default::default() },
        )
        .await;
    assert!(message.starts_with("index:"), "{message}");
    let (message, _) =
        c.err("dropindex", &wire::DropIndexRequest { collectionname: "people".into(), name: String::new() }).await;
    assert!(message.starts_with("name:"), "{message}");
}

#[tokio::test]
async fn ensurecustomer_returns_the_customer() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let request = wire::EnsureCustomerRequest {
        customer: Some(wire::Customer { name: "Acme".into(), email: "billing@acme.test".into(), ..Default::default() }),
        ..Default::default()
    };
    let r: wire::EnsureCustomerResponse = c.ok("ensurecustomer", &request).await;
    let customer = r.customer.unwrap();
    assert_eq!(customer.name, "Acme");
    assert_eq!(customer.id.len(), 24, "{customer:?}");
    // the same customer again
    let r: wire::EnsureCustomerResponse = c.ok("ensurecustomer", &request).await;
    assert_eq!(r.customer.unwrap().id, customer.id);
    let (message, _) = c.err("ensurecustomer", &wire::EnsureCustomerRequest::default()).await;
    assert!(message.starts_with("customer:"), "{message}");
}
