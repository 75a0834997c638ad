//! The document commands: query (projection, top, skip, orderby), count, distinct, aggregate, insert one
//! and many, update one (replace) and by operators, insert-or-update one and many, delete one and many
//! (by query and by ids), and document versions rebuilt from history.

use crate::harness::*;
use openiap_client::{
    AggregateRequest, Client, CountRequest, DeleteManyRequest, DeleteOneRequest, DistinctRequest,
    GetDocumentVersionRequest, InsertManyRequest, InsertOneRequest, InsertOrUpdateManyRequest,
    InsertOrUpdateOneRequest, QueryRequest, UpdateDocumentRequest, UpdateOneRequest,
};
use serde_json::{json, Value};

/// Inserts `items` with `insertmany` and returns the stored documents.
async fn insert_many(client: &Client, t: Transport, collection: &str, items: Value) -> Vec<Value> {
    let request =
        InsertManyRequest { collectionname: collection.into(), items: items.to_string(), ..Default::default() };
    let reply = ok(client.insert_many(request, env()).await, t, "insertmany");
    parse_array(&reply.results, "insertmany results")
}

async fn insert_one(client: &Client, t: Transport, collection: &str, item: Value) -> Value {
    let request = InsertOneRequest { collectionname: collection.into(), item: item.to_string(), ..Default::default() };
    let reply = ok(client.insert_one(request, env()).await, t, "insertone");
    parse(&reply.result, "insertone result")
}

async fn query(client: &Client, t: Transport, request: QueryRequest) -> Vec<Value> {
    let what = format!("query {request:?}");
    let reply = ok(client.query(request, env()).await, t, &what);
    parse_array(&reply.results, "queryreply results")
}

/// Five documents `n = 0..5` with `kind` even/odd, in a fresh collection.
async fn seed(client: &Client, t: Transport, collection: &str) -> Vec<Value> {
    let items: Vec<Value> = (0..5)
        .map(|n| {
            json!({"_type": "item", "name": format!("item {n}"), "n": n,
            "kind": if n % 2 == 0 { "even" } else { "odd" }, "nested": {"square": n * n}})
        })
        .collect();
    insert_many(client, t, collection, Value::Array(items)).await
}

/// `query` with projection, top, skip and orderby (JSON and a bare field name); `count`, `distinct` and
/// `aggregate` (including the empty pipeline) over the same documents.
pub async fn query_count_distinct_aggregate(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_query", t);
    let seeded = seed(&client, t, &collection).await;
    assert_eq!(seeded.len(), 5);

    // Projection: only the asked fields (and _id).
    let projected = query(
        &client,
        t,
        QueryRequest {
            collectionname: collection.clone(),
            query: json!({"kind": "even"}).to_string(),
            projection: json!({"name": 1}).to_string(),
            orderby: json!({"n": 1}).to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(column(&projected, "name"), [json!("item 0"), json!("item 2"), json!("item 4")], "{projected:?}");
    for doc in &projected {
        assert!(doc["_id"].is_string(), "_id is a plain string: {doc}");
        assert!(doc.get("n").is_none() && doc.get("kind").is_none(), "projection leaves other fields out: {doc}");
    }

    // orderby descending, skip 1, top 2.
    let page = query(
        &client,
        t,
        QueryRequest {
            collectionname: collection.clone(),
            query: "{}".into(),
            orderby: json!({"n": -1}).to_string(),
            skip: 1,
            top: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(column(&page, "n"), [json!(3), json!(2)], "{page:?}");

    // orderby as a bare field name means ascending; a dotted filter reaches nested fields.
    let ascending = query(
        &client,
        t,
        QueryRequest {
            collectionname: collection.clone(),
            query: json!({"nested.square": {"$gte": 4}}).to_string(),
            orderby: "n".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(column(&ascending, "n"), [json!(2), json!(3), json!(4)], "{ascending:?}");

    // top 0 means the server's default, not "nothing".
    let all = query(&client, t, QueryRequest::with_query(&collection, "{}")).await;
    assert_eq!(all.len(), 5);

    // Count.
    let counted = |query: Value| CountRequest {
        collectionname: collection.clone(),
        query: query.to_string(),
        ..Default::default()
    };
    let even = ok(client.count(counted(json!({"kind": "even"})), env()).await, t, "count").result;
    assert_eq!(even, 3);
    let big = ok(client.count(counted(json!({"n": {"$gt": 3}})), env()).await, t, "count").result;
    assert_eq!(big, 1);
    let none = ok(client.count(counted(json!({"kind": "neither"})), env()).await, t, "count").result;
    assert_eq!(none, 0);

    // Distinct: strings, each once; numbers come back as strings.
    let distinct = |field: &str, query: Value| DistinctRequest {
        collectionname: collection.clone(),
        field: field.into(),
        query: query.to_string(),
        ..Default::default()
    };
    let mut kinds = ok(client.distinct(distinct("kind", json!({})), env()).await, t, "distinct").results;
    kinds.sort();
    assert_eq!(kinds, ["even", "odd"]);
    let mut odd_ns = ok(client.distinct(distinct("n", json!({"kind": "odd"})), env()).await, t, "distinct").results;
    odd_ns.sort();
    assert_eq!(odd_ns, ["1", "3"]);

    // Aggregate: a grouping pipeline, and the empty pipeline.
    let pipeline = json!([
        {"$match": {"_type": "item"}},
        {"$group": {"_id": "$kind", "total": {"$sum": "$n"}, "count": {"$sum": 1}}},
        {"$sort": {"_id": 1}}
    ]);
    let request =
        AggregateRequest { collectionname: collection.clone(), aggregates: pipeline.to_string(), ..Default::default() };
    let grouped = parse_array(&ok(client.aggregate(request, env()).await, t, "aggregate").results, "aggregate");
    assert_eq!(
        grouped,
        [json!({"_id": "even", "total": 6, "count": 3}), json!({"_id": "odd", "total": 4, "count": 2})],
        "{grouped:?}"
    );
    let request =
        AggregateRequest { collectionname: collection.clone(), aggregates: "[]".into(), ..Default::default() };
    let everything = parse_array(&ok(client.aggregate(request, env()).await, t, "aggregate []").results, "aggregate");
    assert_eq!(everything.len(), 5, "the empty pipeline returns every document: {everything:?}");
    client.disconnect();
}

/// OpenIAP's query conventions: ISO-8601 strings compare as dates (MongoDB dates reach year 9999),
/// `__REGEXP /…/flags` strings are regular expressions, `$regex` works.
pub async fn query_conventions(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_conventions", t);
    seed(&client, t, &collection).await;
    let since = json!({"_created": {"$gte": "2000-01-01T00:00:00.000Z"}});
    assert_eq!(find(&client, t, &collection, since).await.len(), 5, "ISO date strings in a filter");
    let until = json!({"_created": {"$lt": "2100-01-01T00:00:00Z"}});
    assert_eq!(find(&client, t, &collection, until).await.len(), 5, "without milliseconds too");
    let regex = json!({"name": {"$regex": "^item [13]$"}});
    assert_eq!(column(&find(&client, t, &collection, regex).await, "n").len(), 2, "$regex");
    let legacy = json!({"name": "__REGEXP /^ITEM [13]$/i"});
    let matched = find(&client, t, &collection, legacy).await;
    let mut ns: Vec<i64> = matched.iter().filter_map(|d| d["n"].as_i64()).collect();
    ns.sort_unstable();
    assert_eq!(ns, [1, 3], "\"__REGEXP /…/i\" strings are regular expressions: {matched:?}");
    // Far dates: past 2262 (where nanoseconds since 1970 leave i64) a date must still be later than today.
    let far = json!({"_created": {"$lt": "2999-01-01T00:00:00.000Z"}});
    assert_eq!(find(&client, t, &collection, far).await.len(), 5, "every document is older than the year 2999");
    let after_far = json!({"_created": {"$gt": "2999-01-01T00:00:00.000Z"}});
    assert!(find(&client, t, &collection, after_far).await.is_empty(), "no document is newer than the year 2999");
    client.disconnect();
}

/// `insertone` adds the metadata; `insertmany` keeps input order; `updateone` replaces and bumps
/// `_version`; `updatedocument` applies operators to every match; deletes by id, by query and by ids.
pub async fn insert_update_delete(t: Transport) {
    let client = admin(t).await;
    let me = client.get_user().expect("signed in");
    let collection = unique("conf_write", t);

    let doc = insert_one(&client, t, &collection, json!({"_type": "thing", "name": "first", "size": 1})).await;
    let id = str_field(&doc, "_id");
    assert_eq!(id.len(), 24, "a generated _id is 24-hex ObjectId text: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(doc["name"], json!("first"));
    assert_eq!(doc["_type"], json!("thing"));
    assert_eq!(doc["_version"], json!(0), "{doc}");
    assert_eq!(doc["_createdbyid"], json!(me.id), "{doc}");
    assert_eq!(doc["_modifiedbyid"], json!(me.id), "{doc}");
    for field in ["_created", "_modified", "_createdby", "_modifiedby"] {
        assert!(doc[field].is_string(), "{field} is set: {doc}");
    }
    // The creator has full control; an admin creator through `admins` (Flowkeep adds no personal entry for
    // unrestricted creators, the reference does). A plain creator's own entry is checked in isolation.rs.
    let acl = doc["_acl"].as_array().unwrap_or_else(|| panic!("_acl is an array: {doc}"));
    let admins = acl.iter().find(|a| a["name"] == json!("admins")).unwrap_or_else(|| panic!("admins in _acl: {doc}"));
    assert_eq!(admins["rights"], json!(65535), "full control as an integer bitmask: {admins}");

    // A client-given _id is kept.
    let given = "0123456789abcdef01234567";
    let doc2 = insert_one(&client, t, &collection, json!({"_id": given, "name": "given id"})).await;
    assert_eq!(doc2["_id"], json!(given));

    // insertmany returns the stored documents in input order.
    let many = insert_many(
        &client,
        t,
        &collection,
        json!([{"name": "m0", "group": "g"}, {"name": "m1", "group": "g"}, {"name": "m2", "group": "h"}]),
    )
    .await;
    assert_eq!(column(&many, "name"), [json!("m0"), json!("m1"), json!("m2")]);
    assert!(many.iter().all(|d| d["_id"].is_string() && d["_version"] == json!(0)), "{many:?}");

    // updateone: full replacement by _id; creation metadata and ACL are kept, _version goes up.
    let replacement = json!({"_id": id, "_type": "thing", "name": "first, replaced", "colour": "blue"});
    let request =
        UpdateOneRequest { collectionname: collection.clone(), item: replacement.to_string(), ..Default::default() };
    let updated = parse(&ok(client.update_one(request, env()).await, t, "updateone").result, "updateone result");
    assert_eq!(updated["name"], json!("first, replaced"));
    assert_eq!(updated["colour"], json!("blue"));
    assert!(updated.get("size").is_none(), "updateone replaces the whole document: {updated}");
    assert_eq!(updated["_version"], json!(1), "{updated}");
    assert_eq!(updated["_created"], doc["_created"], "creation time is kept");
    assert_eq!(updated["_createdbyid"], doc["_createdbyid"]);
    assert!(updated["_acl"].as_array().is_some_and(|a| !a.is_empty()), "the ACL is kept: {updated}");
    let stored = find(&client, t, &collection, json!({"_id": id})).await;
    assert_eq!(column(&stored, "colour"), [json!("blue")]);
    let request = UpdateOneRequest {
        collectionname: collection.clone(),
        item: json!({"_id": "abcdefabcdefabcdefabcdef", "name": "nobody"}).to_string(),
        ..Default::default()
    };
    let missing = client.update_one(request, env()).await;
    assert!(missing.is_err(), "updateone of an unknown _id is an error: {missing:?}");
    assert!(find(&client, t, &collection, json!({"name": "nobody"})).await.is_empty(), "and inserts nothing");

    // updatedocument: operators on every document the query matches.
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"group": "g"}).to_string(),
        document: json!({"$set": {"flag": true}, "$inc": {"count": 2}, "$push": {"tags": "x"}}).to_string(),
        ..Default::default()
    };
    let result = ok(client.update_document(request, env()).await, t, "updatedocument").opresult;
    let result = result.expect("updatedocument returns an UpdateResult");
    assert_eq!((result.matched_count, result.modified_count), (2, 2), "{result:?}");
    let flagged = find(&client, t, &collection, json!({"flag": true})).await;
    let mut names: Vec<_> = column(&flagged, "name");
    names.sort_by_key(|v| v.to_string());
    assert_eq!(names, [json!("m0"), json!("m1")]);
    assert!(flagged.iter().all(|d| d["count"] == json!(2) && d["tags"] == json!(["x"])), "{flagged:?}");
    assert!(flagged.iter().all(|d| d["_version"] == json!(1)), "operator updates bump _version: {flagged:?}");
    // A query that matches nothing changes nothing.
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"group": "nope"}).to_string(),
        document: json!({"$set": {"flag": false}}).to_string(),
        ..Default::default()
    };
    let result = ok(client.update_document(request, env()).await, t, "updatedocument").opresult.expect("result");
    assert_eq!((result.matched_count, result.modified_count), (0, 0));

    // deleteone by id.
    let request = DeleteOneRequest { collectionname: collection.clone(), id: given.into(), ..Default::default() };
    let affected = ok(client.delete_one(request, env()).await, t, "deleteone");
    assert_eq!(affected, 1);
    assert!(find(&client, t, &collection, json!({"_id": given})).await.is_empty(), "deleted");

    // deletemany by query.
    let request = DeleteManyRequest {
        collectionname: collection.clone(),
        query: json!({"group": "h"}).to_string(),
        ..Default::default()
    };
    assert_eq!(ok(client.delete_many(request, env()).await, t, "deletemany by query"), 1);
    // deletemany by ids.
    let ids: Vec<String> = many.iter().take(2).map(|d| str_field(d, "_id")).collect();
    let request = DeleteManyRequest { collectionname: collection.clone(), ids, ..Default::default() };
    assert_eq!(ok(client.delete_many(request, env()).await, t, "deletemany by ids"), 2);
    let left = find(&client, t, &collection, json!({})).await;
    assert_eq!(column(&left, "_id"), [json!(id)], "only the first document is left: {left:?}");
    client.disconnect();
}

/// `insertorupdateone` matches on the `uniqeness` fields (insert, then update in place; more than one
/// match is an error); `insertorupdatemany` answers in input order.
pub async fn insert_or_update(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_upsert", t);
    let upsert = |item: Value, uniqeness: &str| InsertOrUpdateOneRequest {
        collectionname: collection.clone(),
        uniqeness: uniqeness.into(),
        item: item.to_string(),
        ..Default::default()
    };

    let first = ok(client.insert_or_update_one(upsert(json!({"key": "k1", "v": 1}), "key"), env()).await, t, "iou");
    let first = parse(&first, "insertorupdateone result");
    let id = str_field(&first, "_id");
    assert_eq!(first["v"], json!(1));
    let second = ok(client.insert_or_update_one(upsert(json!({"key": "k1", "v": 2}), "key"), env()).await, t, "iou");
    let second = parse(&second, "insertorupdateone result");
    assert_eq!(second["_id"], json!(id), "the match is updated in place, keeping its _id");
    assert_eq!(second["v"], json!(2));
    assert_eq!(second["_version"], json!(1), "{second}");
    let count = CountRequest { collectionname: collection.clone(), query: "{}".into(), ..Default::default() };
    assert_eq!(ok(client.count(count.clone(), env()).await, t, "count").result, 1);

    // Several fields; no match inserts.
    let other = ok(
        client.insert_or_update_one(upsert(json!({"key": "k1", "zone": "b", "v": 3}), "key,zone"), env()).await,
        t,
        "iou",
    );
    let other = parse(&other, "insertorupdateone result");
    assert_ne!(other["_id"], json!(id), "key+zone did not match, so a new document: {other}");
    assert_eq!(ok(client.count(count.clone(), env()).await, t, "count").result, 2);
    // Now `key: k1` matches two documents: an error, and nothing changes.
    let ambiguous = client.insert_or_update_one(upsert(json!({"key": "k1", "v": 9}), "key"), env()).await;
    assert!(ambiguous.is_err(), "more than one match is an error: {ambiguous:?}");
    assert!(find(&client, t, &collection, json!({"v": 9})).await.is_empty());

    // Empty uniqeness matches by _id.
    let by_id =
        ok(client.insert_or_update_one(upsert(json!({"_id": id, "key": "k1", "v": 5}), ""), env()).await, t, "iou");
    assert_eq!(parse(&by_id, "insertorupdateone result")["_id"], json!(id));
    assert_eq!(column(&find(&client, t, &collection, json!({"_id": id})).await, "v"), [json!(5)]);

    // Many: results in input order, existing ones updated, new ones inserted.
    let items = json!([
        {"key": "m3", "v": 30},
        {"key": "m1", "v": 10},
        {"key": "m2", "v": 20}
    ]);
    let seed = InsertManyRequest {
        collectionname: collection.clone(),
        items: json!([{"key": "m1", "v": 0}]).to_string(),
        ..Default::default()
    };
    let seeded = parse_array(&ok(client.insert_many(seed, env()).await, t, "insertmany").results, "insertmany");
    let request = InsertOrUpdateManyRequest {
        collectionname: collection.clone(),
        uniqeness: "key".into(),
        items: items.to_string(),
        ..Default::default()
    };
    let reply = ok(client.insert_or_update_many(request, env()).await, t, "insertorupdatemany");
    let results = parse_array(&reply.results, "insertorupdatemany results");
    assert_eq!(column(&results, "key"), [json!("m3"), json!("m1"), json!("m2")], "input order: {results:?}");
    assert_eq!(column(&results, "v"), [json!(30), json!(10), json!(20)]);
    assert_eq!(results[1]["_id"], seeded[0]["_id"], "the existing m1 was updated, not duplicated");
    let m = find(&client, t, &collection, json!({"key": {"$in": ["m1", "m2", "m3"]}})).await;
    assert_eq!(m.len(), 3, "{m:?}");
    client.disconnect();
}

/// `getdocumentversion` rebuilds each earlier version after replacements and operator updates; a
/// negative or too-high version gives the current document.
pub async fn document_versions(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_versions", t);
    let v0 = insert_one(&client, t, &collection, json!({"name": "v0", "a": 0, "keep": "k"})).await;
    let id = str_field(&v0, "_id");
    let request = UpdateOneRequest {
        collectionname: collection.clone(),
        item: json!({"_id": id, "name": "v1", "a": 1, "keep": "k", "added": true}).to_string(),
        ..Default::default()
    };
    ok(client.update_one(request, env()).await, t, "updateone");
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"_id": id}).to_string(),
        document: json!({"$set": {"name": "v2", "a": 2}, "$unset": {"added": ""}}).to_string(),
        ..Default::default()
    };
    ok(client.update_document(request, env()).await, t, "updatedocument");
    let request = UpdateOneRequest {
        collectionname: collection.clone(),
        item: json!({"_id": id, "name": "v3", "a": 3}).to_string(),
        ..Default::default()
    };
    ok(client.update_one(request, env()).await, t, "updateone");

    let version = |v: i32| GetDocumentVersionRequest::byversion(&collection, &id, v);
    let expect = [
        (0, json!({"name": "v0", "a": 0, "keep": "k"})),
        (1, json!({"name": "v1", "a": 1, "keep": "k", "added": true})),
        (2, json!({"name": "v2", "a": 2, "keep": "k"})),
        (3, json!({"name": "v3", "a": 3})),
    ];
    for (v, want) in expect {
        let text = ok(client.get_document_version(version(v), env()).await, t, &format!("version {v}"));
        let doc = parse(&text, "getdocumentversion result");
        assert_eq!(doc["_id"], json!(id), "version {v}: {doc}");
        assert_eq!(doc["_version"], json!(v), "version {v} carries its number: {doc}");
        for (field, value) in want.as_object().expect("object") {
            assert_eq!(&doc[field], value, "version {v}, field {field}: {doc}");
        }
        for gone in ["keep", "added"] {
            if want.get(gone).is_none() {
                assert!(doc.get(gone).is_none(), "version {v} has no {gone}: {doc}");
            }
        }
    }
    for v in [-1, 99] {
        let text = ok(client.get_document_version(version(v), env()).await, t, &format!("version {v}"));
        let doc = parse(&text, "getdocumentversion result");
        assert_eq!((doc["name"].clone(), doc["_version"].clone()), (json!("v3"), json!(3)), "version {v}: {doc}");
    }
    let missing =
        client.get_document_version(GetDocumentVersionRequest::byid(&collection, &"f".repeat(24)), env()).await;
    assert!(missing.is_err(), "an unknown id is an error: {missing:?}");
    client.disconnect();
}

/// Many requests in flight on one connection: every reply reaches the request it answers.
pub async fn concurrent_requests(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_concurrent", t);
    seed(&client, t, &collection).await;
    let queries = (0..40).map(|i| {
        let request = QueryRequest::with_query(&collection, &json!({"n": i % 5}).to_string());
        let client = client.clone();
        async move { (i, client.query(request, env()).await) }
    });
    for (i, reply) in futures_util::future::join_all(queries).await {
        let docs = parse_array(&ok(reply, t, &format!("query {i}")).results, "queryreply results");
        assert_eq!(column(&docs, "n"), [json!(i % 5)], "reply {i} answers its own query: {docs:?}");
    }
    client.disconnect();
}

/// Messages over 4 MiB: the server accepts them from clients (tonic's default limit is 4 MiB, the
/// client's upload chunks and inline workitem files exceed it), and a reply too large for a gRPC client
/// (whose limit stays 4 MiB) is an error reply that leaves the connection usable; over WebSocket it
/// arrives whole.
pub async fn large_messages(t: Transport) {
    let client = admin(t).await;
    let collection = unique("conf_large", t);
    let doc = insert_one(&client, t, &collection, json!({"name": "big"})).await;
    let big = "x".repeat(4_500_000);
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"_id": doc["_id"]}).to_string(),
        document: json!({"$set": {"blob": big}}).to_string(),
        ..Default::default()
    };
    let result = ok(client.update_document(request, env()).await, t, "updatedocument with a 4.5 MB value");
    assert_eq!(result.opresult.map(|r| r.modified_count), Some(1));

    // A small reply about the big document.
    let request = QueryRequest {
        collectionname: collection.clone(),
        query: "{}".into(),
        projection: json!({"name": 1}).to_string(),
        ..Default::default()
    };
    assert_eq!(column(&query(&client, t, request).await, "name"), [json!("big")]);

    // The whole document: about 4.5 MB of reply.
    let whole = client.query(QueryRequest::with_query(&collection, "{}"), env()).await;
    match t {
        Transport::Ws => {
            let docs = parse_array(&ok(whole, t, "query of a 4.5 MB document").results, "queryreply results");
            assert_eq!(docs[0]["blob"].as_str().map(str::len), Some(4_500_000));
        }
        Transport::Grpc => match whole {
            Ok(reply) => {
                let docs = parse_array(&reply.results, "queryreply results");
                assert_eq!(docs[0]["blob"].as_str().map(str::len), Some(4_500_000));
            }
            Err(e) => {
                assert!(!e.to_string().contains("Disconnected"), "an error reply, not a dropped connection: {e}");
                eprintln!("{t:?}: the 4.5 MB reply was refused as expected: {e}");
            }
        },
    }
    // Either way the connection still works.
    let count = CountRequest { collectionname: collection.clone(), query: "{}".into(), ..Default::default() };
    assert_eq!(ok(client.count(count, env()).await, t, "count after the large reply").result, 1);
    client.disconnect();
}
