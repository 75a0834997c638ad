//! The backend-generic contract suite of the [`Store`] trait. Every function takes `&dyn Store` on an
//! empty store and panics (test failure) if the backend breaks the contract; a backend's test file runs
//! each of them on a fresh store (see `tests/sqlite.rs`). Backend-specific checks (explain output,
//! reopening files) live in the backend's own test file.

#![allow(dead_code)]

use flowkeep_model::Rights;
use flowkeep_store::{
    CollectionKind, CollectionOptions, FindOptions, IndexOptions, Scope, Store, StoreError, TimeseriesOptions,
};
use serde_json::{json, Value};

/// An ACL entry granting `rights` to `id`.
pub fn ace(id: &str, rights: u32) -> Value {
    json!({"_id": id, "name": id, "rights": rights})
}

/// An ACL entry denying `rights` to `id`.
pub fn deny(id: &str, rights: u32) -> Value {
    json!({"_id": id, "name": id, "rights": rights, "deny": true})
}

fn sys() -> Scope {
    Scope::system()
}

fn read(principals: &[&str]) -> Scope {
    Scope::acl(principals.iter().copied(), Rights::READ)
}

/// The `_id`s of the documents `find` returns, in order.
pub async fn ids(store: &dyn Store, coll: &str, scope: &Scope, filter: Value, options: FindOptions) -> Vec<String> {
    store
        .find(coll, scope, &filter, &options)
        .await
        .unwrap_or_else(|e| panic!("find {filter} failed: {e}"))
        .iter()
        .map(|d| d["_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn all() -> FindOptions {
    FindOptions::default()
}

/// Inserting generates string ObjectIds when `_id` is missing or empty, keeps given ones, puts `_id`
/// first, and returns the stored document; natural order is insertion order.
pub async fn insert_and_find(store: &dyn Store) {
    let doc = store.insert_one("things", json!({"name": "a", "n": 1})).await.unwrap();
    let id = doc["_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24, "generated ObjectId text");
    assert_eq!(doc.as_object().unwrap().keys().next().unwrap(), "_id");
    let empty = store.insert_one("things", json!({"_id": "", "name": "b"})).await.unwrap();
    assert_eq!(empty["_id"].as_str().unwrap().len(), 24, "empty _id is replaced");
    let given = store.insert_one("things", json!({"name": "c", "_id": "c-id"})).await.unwrap();
    assert_eq!(given, json!({"_id": "c-id", "name": "c"}));

    let found = store.find_one("things", &sys(), &json!({"_id": id}), None).await.unwrap();
    assert_eq!(found, Some(doc.clone()));
    assert_eq!(store.find_one("things", &sys(), &json!({"_id": "nope"}), None).await.unwrap(), None);
    let names: Vec<Value> = store
        .find("things", &sys(), &json!({}), &all())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a"), json!("b"), json!("c")], "natural order is insertion order");
    assert_eq!(store.count("things", &sys(), &json!({})).await.unwrap(), 3);
    assert!(
        store.find("missing", &sys(), &json!({}), &all()).await.unwrap().is_empty(),
        "a missing collection reads as empty"
    );
    assert_eq!(store.count("missing", &sys(), &json!({})).await.unwrap(), 0);
}

/// Bad ids, documents, names, updates and filters are errors, never panics.
pub async fn invalid_input_is_refused(store: &dyn Store) {
    let invalid_doc = |r: Result<Value, StoreError>| matches!(r, Err(StoreError::InvalidDocument(_)));
    assert!(invalid_doc(store.insert_one("c", json!({"_id": 5})).await), "numeric _id");
    assert!(invalid_doc(store.insert_one("c", json!({"_id": {"a": 1}})).await), "object _id");
    assert!(invalid_doc(store.insert_one("c", json!([1, 2])).await), "array document");
    assert!(invalid_doc(store.insert_one("c", json!("text")).await), "string document");
    let mut deep = json!(1);
    for _ in 0..150 {
        deep = json!({"a": deep});
    }
    assert!(invalid_doc(store.insert_one("c", deep).await), "too deep");

    let long = "x".repeat(121);
    for name in ["", "a$b", "nul\0", "system.users", long.as_str()] {
        fn bad_name<T>(r: &Result<T, StoreError>) -> bool {
            matches!(r, Err(StoreError::InvalidCollectionName { .. }))
        }
        assert!(bad_name(&store.insert_one(name, json!({})).await), "insert into {name:?}");
        assert!(bad_name(&store.find(name, &sys(), &json!({}), &all()).await), "find in {name:?}");
        assert!(bad_name(&store.create_collection(name, &CollectionOptions::default()).await), "create {name:?}");
        assert!(
            bad_name(&store.create_index(name, &json!({"a": 1}), &IndexOptions::default()).await),
            "index {name:?}"
        );
    }
    assert!(store.find("c", &sys(), &json!([1]), &all()).await.is_err(), "a filter must be an object");
    assert!(
        store.update_one("c", &sys(), &json!({}), &json!({"a": 1}), false).await.is_err(),
        "update without operators"
    );
    assert!(
        store.replace_one("c", &sys(), &json!({}), json!({"$set": {"a": 1}}), false).await.is_err(),
        "replace with operators"
    );
    assert!(store.create_index("c", &json!({"a": "text"}), &IndexOptions::default()).await.is_err());
    assert!(store.create_index("c", &json!({}), &IndexOptions::default()).await.is_err());
    assert!(store.distinct("c", &sys(), "a..b", &json!({})).await.is_err());
    assert!(store.aggregate("c", &sys(), &json!({"$match": {}})).await.is_err(), "a pipeline must be an array");
    assert_eq!(store.count("c", &sys(), &json!({})).await.unwrap(), 0, "nothing was written");
}

/// A duplicate `_id` is an E11000 error on `_id_`.
pub async fn duplicate_id(store: &dyn Store) {
    store.insert_one("c", json!({"_id": "a"})).await.unwrap();
    let err = store.insert_one("c", json!({"_id": "a", "x": 1})).await.unwrap_err();
    match &err {
        StoreError::DuplicateKey { collection, index, .. } => {
            assert_eq!((collection.as_str(), index.as_str()), ("c", "_id_"))
        }
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
    assert_eq!(err.to_string(), "E11000 duplicate key error collection: c index: _id_ dup key: { _id: \"a\" }");
}

/// `insert_many` is all or nothing.
pub async fn insert_many_is_atomic(store: &dyn Store) {
    store.insert_one("c", json!({"_id": "first"})).await.unwrap();
    let r = store.insert_many("c", vec![json!({"_id": "x"}), json!({"_id": "y"}), json!({"_id": "x"})]).await;
    assert!(matches!(r, Err(StoreError::DuplicateKey { .. })), "{r:?}");
    let r = store.insert_many("c", vec![json!({"_id": "z"}), json!({"_id": 7})]).await;
    assert!(matches!(r, Err(StoreError::InvalidDocument(_))), "{r:?}");
    assert_eq!(ids(store, "c", &sys(), json!({}), all()).await, vec!["first"], "a failed insert_many wrote nothing");
    let ok = store.insert_many("c", vec![json!({"_id": "x"}), json!({"n": 1})]).await.unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(store.count("c", &sys(), &json!({})).await.unwrap(), 3);
}

/// Unique indexes: violations, missing counted as null, sparse, duplicates within one array, and
/// building over violating data creating nothing.
pub async fn unique_indexes(store: &dyn Store) {
    let unique = IndexOptions { unique: true, ..IndexOptions::default() };
    assert_eq!(store.create_index("u", &json!({"name": 1}), &unique).await.unwrap(), "name_1");
    store.insert_one("u", json!({"_id": "1", "name": "x"})).await.unwrap();
    let err = store.insert_one("u", json!({"_id": "2", "name": "x"})).await.unwrap_err();
    assert_eq!(err.to_string(), "E11000 duplicate key error collection: u index: name_1 dup key: { name: \"x\" }");
    store.insert_one("u", json!({"_id": "3", "name": ["y", "y"]})).await.expect("an array's duplicate keys count once");
    assert!(store.insert_one("u", json!({"_id": "4", "name": ["z", "y"]})).await.is_err(), "y is taken by an element");
    store.insert_one("u", json!({"_id": "5"})).await.unwrap();
    assert!(store.insert_one("u", json!({"_id": "6"})).await.is_err(), "missing counts as null");
    assert!(store.insert_one("u", json!({"_id": "7", "name": null})).await.is_err(), "null equals missing");
    assert!(store.update_one("u", &sys(), &json!({"_id": "1"}), &json!({"$set": {"name": "y"}}), false).await.is_err());
    assert_eq!(
        store.find_one("u", &sys(), &json!({"_id": "1"}), None).await.unwrap().unwrap()["name"],
        "x",
        "failed update left the document"
    );
    // The old key is released by an update and a delete.
    store.update_one("u", &sys(), &json!({"_id": "1"}), &json!({"$set": {"name": "w"}}), false).await.unwrap();
    store.insert_one("u", json!({"_id": "8", "name": "x"})).await.expect("x is free again");
    store.delete_one("u", &sys(), &json!({"_id": "8"})).await.unwrap();
    store.insert_one("u", json!({"_id": "9", "name": "x"})).await.expect("x is free after delete");

    let sparse = IndexOptions { unique: true, sparse: true, ..IndexOptions::default() };
    store.create_index("s", &json!({"email": 1}), &sparse).await.unwrap();
    store
        .insert_many("s", vec![json!({"_id": "a"}), json!({"_id": "b"}), json!({"_id": "c", "email": "e"})])
        .await
        .unwrap();
    assert!(store.insert_one("s", json!({"_id": "d", "email": "e"})).await.is_err());

    store.insert_many("d", vec![json!({"k": 1}), json!({"k": 1.0})]).await.unwrap();
    let r = store.create_index("d", &json!({"k": 1}), &unique).await;
    assert!(matches!(r, Err(StoreError::DuplicateKey { .. })), "1 and 1.0 are the same key: {r:?}");
    let names: Vec<String> = store.list_indexes("d").await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["_id_"], "a failed build creates nothing");
    store.insert_one("d", json!({"k": 2})).await.expect("the collection still works");

    store.create_index("cmp", &json!({"a": 1, "b": 1}), &unique).await.unwrap();
    store.insert_one("cmp", json!({"a": 1, "b": 1})).await.unwrap();
    store.insert_one("cmp", json!({"a": 1, "b": 2})).await.unwrap();
    let err = store.insert_one("cmp", json!({"a": 1, "b": 2})).await.unwrap_err();
    assert!(err.to_string().ends_with("index: a_1_b_1 dup key: { a: 1, b: 2 }"), "{err}");
}

/// Index names, idempotence, conflicts, listing and dropping.
pub async fn index_management(store: &dyn Store) {
    let plain = IndexOptions::default();
    assert_eq!(store.create_index("i", &json!({"name": 1}), &plain).await.unwrap(), "name_1");
    assert_eq!(store.create_index("i", &json!({"a": 1, "b": -1}), &plain).await.unwrap(), "a_1_b_-1");
    assert_eq!(store.create_index("i", &json!({"name": 1}), &plain).await.unwrap(), "name_1", "identical: idempotent");
    let named = IndexOptions { name: Some("by_x".into()), ..IndexOptions::default() };
    assert_eq!(store.create_index("i", &json!({"x.y": 1}), &named).await.unwrap(), "by_x");
    let unique_same_name = IndexOptions { name: Some("name_1".into()), unique: true, ..IndexOptions::default() };
    let r = store.create_index("i", &json!({"name": 1}), &unique_same_name).await;
    assert!(matches!(r, Err(StoreError::IndexConflict { .. })), "same name, different options: {r:?}");
    let r = store
        .create_index(
            "i",
            &json!({"other": 1}),
            &IndexOptions { name: Some("name_1".into()), ..IndexOptions::default() },
        )
        .await;
    assert!(matches!(r, Err(StoreError::IndexConflict { .. })), "same name, different keys: {r:?}");
    let ttl_compound = IndexOptions { expire_after_seconds: Some(5), ..IndexOptions::default() };
    assert!(store.create_index("i", &json!({"p": 1, "q": 1}), &ttl_compound).await.is_err(), "TTL needs one field");

    let list = store.list_indexes("i").await.unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["_id_", "name_1", "a_1_b_-1", "by_x"]);
    assert!(list[0].unique && list[0].key == json!({"_id": 1}));
    assert_eq!(list[2].key, json!({"a": 1, "b": -1}));

    assert!(matches!(store.drop_index("i", "_id_").await, Err(StoreError::Refused(_))));
    assert!(matches!(store.drop_index("i", "nope").await, Err(StoreError::IndexNotFound { .. })));
    store.drop_index("i", "name_1").await.unwrap();
    let names: Vec<String> = store.list_indexes("i").await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["_id_", "a_1_b_-1", "by_x"]);
    assert!(store.list_indexes("never").await.unwrap().is_empty());
    assert_eq!(
        store.create_index("implicit", &json!({"k": 1}), &plain).await.unwrap(),
        "k_1",
        "creates the collection"
    );
    assert!(store.list_collections().await.unwrap().iter().any(|c| c.name == "implicit"));
}

fn people() -> Vec<Value> {
    vec![
        json!({"_id": "p1", "name": "ann", "age": 31, "tags": ["a", "b"], "addr": {"city": "Oslo"}}),
        json!({"_id": "p2", "name": "bob", "age": 25, "tags": ["b"], "addr": {"city": "Bergen"}}),
        json!({"_id": "p3", "name": "cid", "age": 40, "tags": [], "addr": {"city": "Oslo"}}),
        json!({"_id": "p4", "name": "dan", "age": 25}),
        json!({"_id": "p5", "name": "eve", "age": 52.5, "tags": ["c", ["a"]]}),
    ]
}

/// Filters, sort, skip, limit and projection, with and without indexes (the results must not change).
pub async fn find_options(store: &dyn Store) {
    for coll in ["plain", "indexed"] {
        store.insert_many(coll, people()).await.unwrap();
    }
    for keys in [json!({"age": 1}), json!({"tags": 1}), json!({"addr.city": 1, "name": 1}), json!({"name": 1})] {
        store.create_index("indexed", &keys, &IndexOptions::default()).await.unwrap();
    }
    let system = sys();
    for coll in ["plain", "indexed"] {
        let q = |f: Value| ids(store, coll, &system, f, all());
        assert_eq!(q(json!({"age": 25})).await, vec!["p2", "p4"], "{coll}");
        assert_eq!(q(json!({"age": {"$gte": 31}})).await, vec!["p1", "p3", "p5"], "{coll}");
        assert_eq!(q(json!({"age": {"$gt": 25, "$lt": 45}})).await, vec!["p1", "p3"], "{coll}");
        assert_eq!(q(json!({"tags": "b"})).await, vec!["p1", "p2"], "{coll}");
        assert_eq!(q(json!({"tags": {"$in": ["a", "c"]}})).await, vec!["p1", "p5"], "{coll}");
        assert_eq!(q(json!({"tags": ["a"]})).await, vec!["p5"], "{coll}: whole-array element match");
        assert_eq!(q(json!({"tags": {"$exists": false}})).await, vec!["p4"], "{coll}");
        assert_eq!(q(json!({"addr.city": "Oslo"})).await, vec!["p1", "p3"], "{coll}");
        assert_eq!(q(json!({"addr.city": null})).await, vec!["p4", "p5"], "{coll}: null matches missing");
        assert_eq!(q(json!({"_id": {"$in": ["p5", "p1", "zz"]}})).await, vec!["p1", "p5"], "{coll}");
        assert_eq!(q(json!({"name": {"$in": ["bob", "eve"]}, "age": 25})).await, vec!["p2"], "{coll}");

        let sorted = FindOptions { sort: Some(json!({"age": -1, "name": 1})), ..all() };
        assert_eq!(ids(store, coll, &sys(), json!({}), sorted.clone()).await, vec!["p5", "p3", "p1", "p2", "p4"]);
        let page = FindOptions { skip: 1, limit: Some(2), ..sorted };
        assert_eq!(ids(store, coll, &sys(), json!({}), page).await, vec!["p3", "p1"]);
        let natural_page = FindOptions { skip: 3, limit: Some(5), ..all() };
        assert_eq!(ids(store, coll, &sys(), json!({}), natural_page).await, vec!["p4", "p5"]);
        let projected = FindOptions { projection: Some(json!({"name": 1})), limit: Some(1), ..all() };
        assert_eq!(
            store.find(coll, &sys(), &json!({}), &projected).await.unwrap(),
            vec![json!({"_id": "p1", "name": "ann"})]
        );
        let one = store.find_one(coll, &sys(), &json!({"age": 25}), Some(&json!({"_id": 0, "age": 1}))).await.unwrap();
        assert_eq!(one, Some(json!({"age": 25})));
    }
}

/// `count` and `distinct`.
pub async fn count_and_distinct(store: &dyn Store) {
    store.insert_many("p", people()).await.unwrap();
    assert_eq!(store.count("p", &sys(), &json!({"age": 25})).await.unwrap(), 2);
    assert_eq!(store.count("p", &sys(), &json!({"age": {"$gt": 100}})).await.unwrap(), 0);
    assert_eq!(
        store.distinct("p", &sys(), "age", &json!({})).await.unwrap(),
        vec![json!(25), json!(31), json!(40), json!(52.5)]
    );
    assert_eq!(
        store.distinct("p", &sys(), "tags", &json!({})).await.unwrap(),
        vec![json!("a"), json!("b"), json!("c"), json!(["a"])],
        "arrays flattened one level"
    );
    assert_eq!(
        store.distinct("p", &sys(), "addr.city", &json!({"age": {"$lt": 35}})).await.unwrap(),
        vec![json!("Bergen"), json!("Oslo")]
    );
    store
        .insert_many("n", vec![json!({"v": 1}), json!({"v": 1.0}), json!({"v": "1"}), json!({"v": null})])
        .await
        .unwrap();
    assert_eq!(
        store.distinct("n", &sys(), "v", &json!({})).await.unwrap(),
        vec![json!(null), json!(1), json!("1")],
        "1 == 1.0"
    );
    assert!(store.distinct("none", &sys(), "v", &json!({})).await.unwrap().is_empty());
}

/// `update_one`, `update_many`, `replace_one`, `delete_one`, `delete_many`, upserts.
pub async fn updates_and_deletes(store: &dyn Store) {
    store.insert_many("w", people()).await.unwrap();
    let out = store
        .update_one("w", &sys(), &json!({"name": "bob"}), &json!({"$set": {"age": 26}, "$inc": {"visits": 1}}), false)
        .await
        .unwrap();
    assert_eq!((out.matched, out.modified, out.upserted_id.clone()), (1, 1, None));
    assert_eq!(out.document.as_ref().unwrap()["age"], 26);
    assert_eq!(out.document.as_ref().unwrap()["visits"], 1);
    let same =
        store.update_one("w", &sys(), &json!({"name": "bob"}), &json!({"$set": {"age": 26}}), false).await.unwrap();
    assert_eq!((same.matched, same.modified), (1, 0), "no change, not modified");
    let none =
        store.update_one("w", &sys(), &json!({"name": "zed"}), &json!({"$set": {"age": 1}}), false).await.unwrap();
    assert_eq!((none.matched, none.modified, none.document), (0, 0, None));
    // Refused either by the update parser or by the store; either way with a message naming `_id`.
    let err = store
        .update_one("w", &sys(), &json!({"name": "bob"}), &json!({"$set": {"_id": "other"}}), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ImmutableId | StoreError::Query(_)) && err.to_string().contains("'_id'"),
        "{err}"
    );

    let up = store
        .update_one(
            "w",
            &sys(),
            &json!({"name": "zed", "team": "x"}),
            &json!({"$set": {"age": 9}, "$setOnInsert": {"new": true}}),
            true,
        )
        .await
        .unwrap();
    assert_eq!((up.matched, up.modified), (0, 0));
    let up_id = up.upserted_id.clone().expect("upserted id");
    let doc = up.document.unwrap();
    assert_eq!(
        (doc["_id"].as_str(), &doc["name"], &doc["team"], &doc["age"], &doc["new"]),
        (Some(up_id.as_str()), &json!("zed"), &json!("x"), &json!(9), &json!(true))
    );
    let again = store
        .update_one(
            "w",
            &sys(),
            &json!({"name": "zed"}),
            &json!({"$set": {"age": 10}, "$setOnInsert": {"new": false}}),
            true,
        )
        .await
        .unwrap();
    assert_eq!((again.matched, again.modified, again.upserted_id), (1, 1, None));
    assert_eq!(again.document.unwrap()["new"], true, "$setOnInsert only on insert");
    let with_id =
        store.update_one("w", &sys(), &json!({"_id": "given"}), &json!({"$set": {"k": 1}}), true).await.unwrap();
    assert_eq!(with_id.upserted_id.as_deref(), Some("given"), "upsert takes _id from the filter");

    let many =
        store.update_many("w", &sys(), &json!({"age": {"$lt": 30}}), &json!({"$set": {"young": true}})).await.unwrap();
    assert_eq!((many.matched, many.modified), (3, 3), "bob 26, dan 25, zed 10");
    assert_eq!(ids(store, "w", &sys(), json!({"young": true}), all()).await, vec!["p2", "p4", up_id.as_str()]);

    let rep = store.replace_one("w", &sys(), &json!({"_id": "p3"}), json!({"name": "cid2"}), false).await.unwrap();
    assert_eq!((rep.matched, rep.modified), (1, 1));
    assert_eq!(rep.document.unwrap(), json!({"_id": "p3", "name": "cid2"}));
    assert_eq!(
        store.find_one("w", &sys(), &json!({"_id": "p3"}), None).await.unwrap(),
        Some(json!({"_id": "p3", "name": "cid2"}))
    );
    assert!(matches!(
        store.replace_one("w", &sys(), &json!({"_id": "p3"}), json!({"_id": "zz"}), false).await,
        Err(StoreError::ImmutableId)
    ));
    let rep_up = store.replace_one("w", &sys(), &json!({"_id": "new-one"}), json!({"v": 1}), true).await.unwrap();
    assert_eq!(rep_up.upserted_id.as_deref(), Some("new-one"));
    assert_eq!(rep_up.document.unwrap(), json!({"_id": "new-one", "v": 1}));

    let del = store.delete_one("w", &sys(), &json!({"name": "ann"})).await.unwrap();
    assert_eq!((del.matched, del.document.unwrap()["_id"].clone()), (1, json!("p1")));
    assert_eq!(store.delete_one("w", &sys(), &json!({"name": "ann"})).await.unwrap().matched, 0);
    assert_eq!(store.delete_many("w", &sys(), &json!({"young": true})).await.unwrap(), 3);
    assert_eq!(ids(store, "w", &sys(), json!({}), all()).await, vec!["p3", "p5", "given", "new-one"]);
    assert_eq!(store.delete_many("w", &sys(), &json!({})).await.unwrap(), 4);
    assert_eq!(store.delete_many("nothing", &sys(), &json!({})).await.unwrap(), 0);

    let bad = store.update_many("w2", &sys(), &json!({}), &json!({"$inc": {"name": 1}})).await;
    assert!(bad.is_ok(), "no documents, nothing to fail on");
    store.insert_many("w2", vec![json!({"_id": "a", "n": 1}), json!({"_id": "b", "n": "text"})]).await.unwrap();
    assert!(store.update_many("w2", &sys(), &json!({}), &json!({"$inc": {"n": 1}})).await.is_err(), "$inc on a string");
    assert_eq!(
        store.find_one("w2", &sys(), &json!({"_id": "a"}), None).await.unwrap().unwrap()["n"],
        1,
        "update_many is all or nothing"
    );
}

fn acl_docs() -> Vec<Value> {
    vec![
        json!({"_id": "d1", "k": 1, "_acl": [ace("u1", 65535)]}),
        json!({"_id": "d2", "k": 2, "_acl": [ace("r1", 2)]}),
        json!({"_id": "d3", "k": 3, "_acl": [ace("r1", 6), deny("u1", 4)]}),
        json!({"_id": "d4", "k": 4, "_acl": [ace("u2", 65535), deny("r1", 65535)]}),
        json!({"_id": "d5", "k": 5}),
        json!({"_id": "d6", "k": 6, "_acl": [{"_id": "u1", "rights": "65535"}, {"_id": "r1", "rights": 2.0}]}),
        json!({"_id": "d7", "k": 7, "_acl": {"_id": "u1", "rights": 65535}}),
    ]
}

/// Scope semantics: allow entries, deny entries, odd rights, `metadata._acl` in `.files`, and scoped
/// writes.
pub async fn scopes(store: &dyn Store) {
    store.insert_many("a", acl_docs()).await.unwrap();
    let q = |scope: Scope, f: Value| async move { ids(store, "a", &scope, f, all()).await };
    assert_eq!(q(sys(), json!({})).await.len(), 7);
    assert_eq!(q(read(&["u1"]), json!({})).await, vec!["d1"]);
    assert_eq!(q(read(&["r1"]), json!({})).await, vec!["d2", "d3", "d6"], "rights 2.0 counts as 2");
    assert_eq!(
        q(read(&["u1", "r1"]), json!({})).await,
        vec!["d1", "d2", "d3", "d6"],
        "deny of UPDATE does not hide from READ"
    );
    assert_eq!(
        q(Scope::acl(["u1", "r1"], Rights::UPDATE), json!({})).await,
        vec!["d1"],
        "deny of UPDATE wins over r1's grant"
    );
    assert_eq!(q(read(&["u2"]), json!({})).await, vec!["d4"]);
    assert_eq!(q(read(&["u2", "r1"]), json!({})).await, vec!["d2", "d3", "d6"], "r1's deny hides d4 even from u2");
    assert_eq!(q(read(&[]), json!({})).await, Vec::<String>::new());
    assert_eq!(q(read(&["nobody"]), json!({})).await, Vec::<String>::new());
    assert_eq!(q(read(&["r1"]), json!({"k": {"$gte": 3}})).await, vec!["d3", "d6"]);
    assert_eq!(store.count("a", &read(&["r1"]), &json!({})).await.unwrap(), 3);
    assert_eq!(store.count("a", &read(&["r1"]), &json!({"k": 2})).await.unwrap(), 1);
    assert_eq!(store.find_one("a", &read(&["u2"]), &json!({"_id": "d1"}), None).await.unwrap(), None);
    assert_eq!(store.distinct("a", &read(&["r1"]), "k", &json!({})).await.unwrap(), vec![json!(2), json!(3), json!(6)]);

    // Writes only touch what the scope allows.
    let upd = Scope::acl(["r1"], Rights::UPDATE);
    let out = store.update_many("a", &upd, &json!({}), &json!({"$set": {"touched": true}})).await.unwrap();
    assert_eq!(out.matched, 1, "only d3 grants r1 UPDATE");
    assert_eq!(ids(store, "a", &sys(), json!({"touched": true}), all()).await, vec!["d3"]);
    let none = store.update_one("a", &upd, &json!({"_id": "d2"}), &json!({"$set": {"x": 1}}), false).await.unwrap();
    assert_eq!(none.matched, 0);
    let del = Scope::acl(["u1"], Rights::DELETE);
    assert_eq!(store.delete_one("a", &del, &json!({"_id": "d2"})).await.unwrap().matched, 0);
    assert_eq!(store.replace_one("a", &del, &json!({"_id": "d2"}), json!({"k": 0}), false).await.unwrap().matched, 0);
    assert_eq!(store.delete_many("a", &del, &json!({})).await.unwrap(), 1, "only d1");
    assert_eq!(store.count("a", &sys(), &json!({})).await.unwrap(), 6);

    // ACL changes by update are seen at once (the side rows follow the document).
    store
        .update_one("a", &sys(), &json!({"_id": "d5"}), &json!({"$set": {"_acl": [ace("u9", 2)]}}), false)
        .await
        .unwrap();
    assert_eq!(q(read(&["u9"]), json!({})).await, vec!["d5"]);
    store
        .update_one("a", &sys(), &json!({"_id": "d5"}), &json!({"$push": {"_acl": deny("u9", 2)}}), false)
        .await
        .unwrap();
    assert_eq!(q(read(&["u9"]), json!({})).await, Vec::<String>::new());

    // GridFS-style file collections keep the ACL in metadata._acl.
    store
        .insert_many(
            "fs.files",
            vec![
                json!({"_id": "f1", "filename": "a", "metadata": {"_acl": [ace("u1", 2)]}}),
                json!({"_id": "f2", "filename": "b", "_acl": [ace("u1", 2)], "metadata": {}}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ids(store, "fs.files", &read(&["u1"]), json!({}), all()).await, vec!["f1"]);
}

/// `aggregate`, with a leading `$match` and a `$lookup` that reads the foreign collection in scope.
pub async fn aggregate(store: &dyn Store) {
    store
        .insert_many(
            "orders",
            vec![
                json!({"_id": "o1", "user": "ua", "total": 10, "_acl": [ace("u1", 2)]}),
                json!({"_id": "o2", "user": "ub", "total": 20, "_acl": [ace("u1", 2)]}),
                json!({"_id": "o3", "user": "ua", "total": 5, "_acl": [ace("u2", 2)]}),
            ],
        )
        .await
        .unwrap();
    store
        .insert_many(
            "users",
            vec![
                json!({"_id": "ua", "name": "Ann", "_acl": [ace("u1", 2)]}),
                json!({"_id": "ub", "name": "Bob", "_acl": [ace("u2", 2)]}),
            ],
        )
        .await
        .unwrap();
    let total = json!([{"$match": {"total": {"$gte": 5}}}, {"$group": {"_id": null, "sum": {"$sum": "$total"}}}]);
    assert_eq!(store.aggregate("orders", &sys(), &total).await.unwrap(), vec![json!({"_id": null, "sum": 35})]);
    assert_eq!(store.aggregate("orders", &read(&["u1"]), &total).await.unwrap(), vec![json!({"_id": null, "sum": 30})]);

    let lookup = json!([
        {"$lookup": {"from": "users", "localField": "user", "foreignField": "_id", "as": "u"}},
        {"$project": {"_id": 1, "names": "$u.name"}}
    ]);
    let out = store.aggregate("orders", &read(&["u1"]), &lookup).await.unwrap();
    assert_eq!(
        out,
        vec![json!({"_id": "o1", "names": ["Ann"]}), json!({"_id": "o2", "names": []})],
        "Bob is not readable by u1"
    );
    let out = store.aggregate("orders", &sys(), &lookup).await.unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[1], json!({"_id": "o2", "names": ["Bob"]}));
    let count = store.aggregate("nothing", &sys(), &json!([{"$count": "n"}])).await.unwrap();
    assert!(count.is_empty(), "no input, no count document: {count:?}");
}

/// TTL: index `expireAfterSeconds` on a date field and the time-series collection option.
pub async fn ttl(store: &dyn Store) {
    let ttl = IndexOptions { expire_after_seconds: Some(60), ..IndexOptions::default() };
    store.create_index("sessions", &json!({"created": 1}), &ttl).await.unwrap();
    store
        .insert_many(
            "sessions",
            vec![
                json!({"_id": "old", "created": "2020-01-01T00:00:00Z"}),
                json!({"_id": "new", "created": "2999-01-01T00:00:00Z"}),
                json!({"_id": "text", "created": "yesterday"}),
                json!({"_id": "none"}),
                json!({"_id": "arr", "created": ["2999-01-01T00:00:00Z", "2020-06-01T00:00:00Z"]}),
            ],
        )
        .await
        .unwrap();
    let now = 1_900_000_000_000; // 2030
    assert_eq!(store.expire_documents(now).await.unwrap(), 2, "old and arr (earliest date counts)");
    assert_eq!(ids(store, "sessions", &sys(), json!({}), all()).await, vec!["new", "text", "none"]);
    assert_eq!(store.expire_documents(now).await.unwrap(), 0);

    let ts = CollectionOptions {
        timeseries: Some(TimeseriesOptions {
            time_field: "ts".into(),
            meta_field: Some("meta".into()),
            granularity: Some("seconds".into()),
        }),
        expire_after_seconds: Some(3600),
        ..CollectionOptions::default()
    };
    store.create_collection("metrics", &ts).await.unwrap();
    assert!(
        matches!(store.insert_one("metrics", json!({"v": 1})).await, Err(StoreError::InvalidDocument(_))),
        "the time field is required"
    );
    store
        .insert_many(
            "metrics",
            vec![
                json!({"_id": "m1", "ts": "2020-01-01T00:00:00Z", "meta": "a", "v": 1}),
                json!({"_id": "m2", "ts": "2029-12-31T23:59:00Z", "meta": "a", "v": 2}),
                json!({"_id": "m3", "ts": "2031-01-01T00:00:00Z", "meta": "a", "v": 3}),
            ],
        )
        .await
        .unwrap();
    // In 2030-03 (a future `now`): m1 and m2 are older than an hour, m3 is not.
    assert_eq!(store.expire_documents(1_900_000_000_000).await.unwrap(), 2);
    assert_eq!(ids(store, "metrics", &sys(), json!({}), all()).await, vec!["m3"]);
}

/// Collection creation, options round trip, listing and dropping.
pub async fn collections(store: &dyn Store) {
    let ts = CollectionOptions::from_json(&json!({
        "timeseries": {"timeField": "t", "metaField": "m", "granularity": "minutes"},
        "expireAfterSeconds": 86400,
        "comment": "kept as is"
    }))
    .unwrap();
    store.create_collection("series", &ts).await.unwrap();
    store.create_collection("series", &ts).await.expect("identical options: idempotent");
    assert!(matches!(
        store.create_collection("series", &CollectionOptions::default()).await,
        Err(StoreError::CollectionExists { .. })
    ));
    store.create_collection("plain", &CollectionOptions::default()).await.unwrap();
    store.insert_one("implicit", json!({})).await.unwrap();
    let bad = CollectionOptions { expire_after_seconds: Some(5), ..CollectionOptions::default() };
    assert!(matches!(store.create_collection("bad", &bad).await, Err(StoreError::InvalidOptions(_))));
    let bad_ts = CollectionOptions::from_json(&json!({"timeseries": {"timeField": ""}})).unwrap();
    assert!(store.create_collection("bad", &bad_ts).await.is_err());

    let list = store.list_collections().await.unwrap();
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["implicit", "plain", "series"]);
    let series = &list[2];
    assert_eq!(series.kind, CollectionKind::Timeseries);
    assert_eq!(series.options, ts);
    assert_eq!(series.options.to_json()["timeseries"]["timeField"], "t");
    assert_eq!(series.options.to_json()["comment"], "kept as is");
    assert_eq!(list[1].kind, CollectionKind::Collection);

    assert!(store.drop_collection("plain").await.unwrap());
    assert!(!store.drop_collection("plain").await.unwrap());
    store.insert_one("implicit", json!({"_id": "x"})).await.unwrap();
    assert!(store.drop_collection("implicit").await.unwrap());
    assert!(store.find("implicit", &sys(), &json!({}), &all()).await.unwrap().is_empty());
    store.insert_one("implicit", json!({"_id": "x"})).await.expect("recreated empty: no duplicate");
    assert_eq!(store.count("implicit", &sys(), &json!({})).await.unwrap(), 1);
}

/// First half of the durability check: writes that must survive a restart.
pub async fn durability_write(store: &dyn Store) {
    store
        .create_index("durable", &json!({"k": 1}), &IndexOptions { unique: true, ..IndexOptions::default() })
        .await
        .unwrap();
    store
        .insert_many(
            "durable",
            (0..50).map(|i| json!({"_id": format!("d{i:02}"), "k": i, "_acl": [ace("u1", 2)]})).collect(),
        )
        .await
        .unwrap();
    store.update_one("durable", &sys(), &json!({"_id": "d07"}), &json!({"$set": {"k": 700}}), false).await.unwrap();
    store.delete_one("durable", &sys(), &json!({"_id": "d08"})).await.unwrap();
}

/// Second half: on the reopened store, everything written is there, indexes and ACLs included.
pub async fn durability_read(store: &dyn Store) {
    assert_eq!(store.count("durable", &sys(), &json!({})).await.unwrap(), 49);
    assert_eq!(store.count("durable", &read(&["u1"]), &json!({})).await.unwrap(), 49);
    assert_eq!(ids(store, "durable", &sys(), json!({"k": 700}), all()).await, vec!["d07"]);
    assert!(store.insert_one("durable", json!({"k": 3})).await.is_err(), "the unique index survived");
    let names: Vec<String> = store.list_indexes("durable").await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["_id_", "k_1"]);
}
