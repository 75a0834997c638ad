//! Isolation between users: a second user can neither see nor change the first user's documents by any
//! document command, while the first user (and the admin) still see them unchanged.

use crate::harness::*;
use openiap_client::{
    AggregateRequest, CountRequest, DeleteManyRequest, DeleteOneRequest, DistinctRequest, GetDocumentVersionRequest,
    InsertOneRequest, InsertOrUpdateOneRequest, QueryRequest, UpdateDocumentRequest, UpdateOneRequest,
};
use serde_json::json;

pub async fn second_user_cannot_see_or_change(t: Transport) {
    let admin = admin(t).await;
    let alice_user = create_user(&admin, t, "alice").await;
    let bob_user = create_user(&admin, t, "bob").await;
    let alice = connect_user(t, &alice_user).await;
    let bob = connect_user(t, &bob_user).await;
    let collection = unique("conf_isolation", t);

    let request = InsertOneRequest {
        collectionname: collection.clone(),
        item: json!({"name": "alice's", "owner": "alice", "n": 1}).to_string(),
        ..Default::default()
    };
    let doc = parse(&ok(alice.insert_one(request, env()).await, t, "insertone (alice)").result, "insertone result");
    let id = str_field(&doc, "_id");
    let acl = doc["_acl"].as_array().unwrap_or_else(|| panic!("_acl is an array: {doc}"));
    let own = acl.iter().find(|a| a["_id"] == json!(alice_user.id));
    assert_eq!(own.map(|a| a["rights"].clone()), Some(json!(65535)), "the creator gets full control: {doc}");
    assert!(!acl.iter().any(|a| a["_id"] == json!(bob_user.id)), "{doc}");
    assert_eq!(find(&alice, t, &collection, json!({"_id": id})).await.len(), 1, "alice sees her document");
    // Bob's own document, so bob's reads below are not empty merely because the collection is.
    let request = InsertOneRequest {
        collectionname: collection.clone(),
        item: json!({"name": "bob's", "owner": "bob", "n": 2}).to_string(),
        ..Default::default()
    };
    let bobs = parse(&ok(bob.insert_one(request, env()).await, t, "insertone (bob)").result, "insertone result");

    // queryas: the admin asks with a user's eyes and sees what that user sees.
    for (user, own) in [(&alice_user, json!(id)), (&bob_user, bobs["_id"].clone())] {
        let request = QueryRequest {
            collectionname: collection.clone(),
            query: "{}".into(),
            queryas: user.id.clone(),
            ..Default::default()
        };
        let seen = parse_array(&ok(admin.query(request, env()).await, t, "query queryas").results, "results");
        assert_eq!(column(&seen, "_id"), [own], "queryas {}: {seen:?}", user.username);
    }

    // Reads: nothing of alice's.
    let all = find(&bob, t, &collection, json!({})).await;
    assert_eq!(column(&all, "_id"), [bobs["_id"].clone()], "bob sees only his own: {all:?}");
    assert!(find(&bob, t, &collection, json!({"_id": id})).await.is_empty(), "not by _id either");
    let count = CountRequest {
        collectionname: collection.clone(),
        query: json!({"owner": "alice"}).to_string(),
        ..Default::default()
    };
    assert_eq!(ok(bob.count(count, env()).await, t, "count (bob)").result, 0);
    let distinct = DistinctRequest { collectionname: collection.clone(), field: "owner".into(), ..Default::default() };
    assert_eq!(ok(bob.distinct(distinct, env()).await, t, "distinct (bob)").results, ["bob"]);
    let aggregate = AggregateRequest {
        collectionname: collection.clone(),
        aggregates: json!([{"$group": {"_id": null, "n": {"$sum": "$n"}}}]).to_string(),
        ..Default::default()
    };
    let sums = parse_array(&ok(bob.aggregate(aggregate, env()).await, t, "aggregate (bob)").results, "aggregate");
    assert_eq!(sums, [json!({"_id": null, "n": 2})], "aggregate only over bob's documents: {sums:?}");
    let version = bob.get_document_version(GetDocumentVersionRequest::byversion(&collection, &id, 0), env()).await;
    assert!(version.is_err(), "no versions of alice's document for bob: {version:?}");
    let queryas = QueryRequest {
        collectionname: collection.clone(),
        query: "{}".into(),
        queryas: alice_user.id.clone(),
        ..Default::default()
    };
    let as_alice = bob.query(queryas, env()).await.map(|r| r.results);
    let leaked = as_alice.as_deref().map(|r| r.contains(&id)).unwrap_or(false);
    assert!(!leaked, "queryas never widens what bob sees: {as_alice:?}");

    // Writes: refused or no effect.
    let request = UpdateOneRequest {
        collectionname: collection.clone(),
        item: json!({"_id": id, "name": "bob was here"}).to_string(),
        ..Default::default()
    };
    let replaced = bob.update_one(request, env()).await;
    assert!(replaced.is_err(), "bob cannot replace alice's document: {replaced:?}");
    let request = UpdateDocumentRequest {
        collectionname: collection.clone(),
        query: json!({"_id": id}).to_string(),
        document: json!({"$set": {"name": "bob was here"}}).to_string(),
        ..Default::default()
    };
    match bob.update_document(request, env()).await {
        Ok(reply) => {
            let result = reply.opresult.expect("an UpdateResult");
            assert_eq!((result.matched_count, result.modified_count), (0, 0), "{result:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let request = InsertOrUpdateOneRequest {
        collectionname: collection.clone(),
        uniqeness: "_id".into(),
        item: json!({"_id": id, "name": "bob was here"}).to_string(),
        ..Default::default()
    };
    let upserted = bob.insert_or_update_one(request, env()).await;
    assert!(upserted.is_err(), "bob cannot overwrite alice's document by upsert: {upserted:?}");
    let request = DeleteOneRequest { collectionname: collection.clone(), id: id.clone(), ..Default::default() };
    match bob.delete_one(request, env()).await {
        Ok(affected) => assert_eq!(affected, 0, "deleteone by bob affects nothing"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let request = DeleteManyRequest {
        collectionname: collection.clone(),
        query: json!({"owner": "alice"}).to_string(),
        ..Default::default()
    };
    match bob.delete_many(request, env()).await {
        Ok(affected) => assert_eq!(affected, 0, "deletemany by bob affects nothing"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let request = DeleteManyRequest { collectionname: collection.clone(), ids: vec![id.clone()], ..Default::default() };
    match bob.delete_many(request, env()).await {
        Ok(affected) => assert_eq!(affected, 0, "deletemany by ids by bob affects nothing"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // Nor may bob read alice's user document (and its fields).
    assert!(find(&bob, t, "users", json!({"_id": alice_user.id})).await.is_empty(), "bob cannot read alice's user");

    // Alice's document is untouched, for alice and for the admin.
    for (who, client) in [("alice", &alice), ("admin", &admin)] {
        let now = find(client, t, &collection, json!({"_id": id})).await;
        assert_eq!(now.len(), 1, "{who} still sees alice's document");
        assert_eq!(now[0]["name"], json!("alice's"), "{who}: unchanged: {now:?}");
        assert_eq!(now[0]["_version"], json!(0), "{who}: never written: {now:?}");
    }
    bob.disconnect();
    alice.disconnect();
    admin.disconnect();
}

/// Nobody reads password hashes (admins included), and the reserved collections (file chunks, history,
/// audit, the server's own `flowkeep.*`) are not writable through document commands.
pub async fn secrets_and_reserved_collections(t: Transport) {
    let admin = admin(t).await;
    let user = create_user(&admin, t, "hashless").await;
    let plain = connect_user(t, &user).await;
    for (who, client) in [("admin", &admin), ("user", &plain)] {
        let mine = find(client, t, "users", json!({"_id": user.id})).await;
        assert_eq!(mine.len(), 1, "{who} reads the user's document");
        assert!(mine[0].get("passwordhash").is_none(), "{who} gets no password hash: {mine:?}");
        let request = QueryRequest {
            collectionname: "users".into(),
            query: json!({"_id": user.id}).to_string(),
            projection: json!({"passwordhash": 1}).to_string(),
            ..Default::default()
        };
        if let Ok(reply) = client.query(request, env()).await {
            assert!(!reply.results.contains("passwordhash"), "{who}: a projection cannot reach it: {}", reply.results);
        }
        let request = QueryRequest::with_query("users", &json!({"passwordhash": {"$exists": true}}).to_string());
        if let Ok(reply) = client.query(request, env()).await {
            let found = parse_array(&reply.results, "queryreply results");
            assert!(found.is_empty(), "{who}: a filter on the hash must not work as an oracle: {found:?}");
        }
    }
    let collection = unique("conf_reserved", t);
    for reserved in ["fs.chunks".to_string(), format!("{collection}_hist"), "audit".into(), "flowkeep.keys".into()] {
        let request = InsertOneRequest {
            collectionname: reserved.clone(),
            item: json!({"name": "intruder"}).to_string(),
            ..Default::default()
        };
        let written = admin.insert_one(request, env()).await;
        assert!(written.is_err(), "inserting into {reserved} is refused: {written:?}");
    }
    plain.disconnect();
    admin.disconnect();
}
