//! Runs the backend-generic contract suite on [`SqliteStore`] (a fresh temporary database file per
//! test), plus SQLite-specific checks: durability across reopening the file, `explain` showing that
//! index and ACL pushdown really happen, and a property test that pushdown never changes results.

mod contract;

use flowkeep_model::Rights;
use flowkeep_query::{FindQuery, Limits};
use flowkeep_store::{FindOptions, IndexOptions, Scope, SqliteStore, Store};
use proptest::prelude::*;
use serde_json::{json, Value};

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = SqliteStore::open_temporary().expect("temporary store");
                contract::$name(&store).await;
            }
        )*
    };
}

contract_tests!(
    insert_and_find,
    invalid_input_is_refused,
    duplicate_id,
    insert_many_is_atomic,
    unique_indexes,
    index_management,
    find_options,
    count_and_distinct,
    updates_and_deletes,
    scopes,
    aggregate,
    ttl,
    collections,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        contract::durability_write(&store).await;
    }
    let reopened = SqliteStore::open(&path).unwrap();
    contract::durability_read(&reopened).await;
}

#[test]
fn the_store_is_usable_as_a_trait_object() {
    // Outside the crate the system scope is only reachable through its named constructor; matching works.
    assert!(matches!(Scope::system(), Scope::System { .. }));
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open_temporary().unwrap());
    assert_eq!(store.backend(), "sqlite");
}

fn plan_details(explain: &Value) -> String {
    explain["queryPlan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn explain_shows_id_index_and_acl_pushdown() {
    let store = SqliteStore::open_temporary().unwrap();
    let sys = Scope::system();
    store.create_index("e", &json!({"name": 1}), &IndexOptions::default()).unwrap();
    let docs: Vec<Value> = (0..200)
        .map(|i| json!({"_id": format!("e{i}"), "name": format!("n{}", i % 20), "_acl": [contract::ace("u1", 2)]}))
        .collect();
    store.insert_many("e", docs).unwrap();

    let by_id = store.explain_find("e", &sys, &json!({"_id": "e5"}), &FindOptions::default()).unwrap();
    assert_eq!(by_id["pushdown"][0]["index"], "_id_", "{by_id:#}");
    assert!(by_id["sql"].as_str().unwrap().contains("t.id = ?"), "{by_id:#}");
    assert!(plan_details(&by_id).contains("(id=?)"), "primary lookup: {by_id:#}");

    let by_name = store.explain_find("e", &sys, &json!({"name": "n3"}), &FindOptions::default()).unwrap();
    assert_eq!(by_name["pushdown"][0]["index"], "name_1", "{by_name:#}");
    assert!(plan_details(&by_name).contains("_rv"), "the side table's (rank, val) index is used: {by_name:#}");

    let unindexed = store.explain_find("e", &sys, &json!({"other": 1}), &FindOptions::default()).unwrap();
    assert_eq!(unindexed["pushdown"], json!([]));

    let scoped = Scope::acl(["u1", "r1"], Rights::READ);
    let acl = store.explain_find("e", &scoped, &json!({"name": "n3"}), &FindOptions::default()).unwrap();
    assert_eq!(acl["aclPerRow"], true, "with an index hint each candidate is checked as it is read: {acl:#}");
    assert_eq!(acl["aclPushdown"], false, "{acl:#}");
    assert!(plan_details(&acl).contains("_rv"), "the index drives: {acl:#}");
    assert_eq!(store.find("e", &scoped, &json!({"name": "n3"}), &FindOptions::default()).unwrap().len(), 10);
    let many: Vec<String> = (0..40).map(|i| format!("role{i}")).chain(["u1".to_string()]).collect();
    let many = Scope::acl(many, Rights::READ);
    assert_eq!(
        store.find("e", &many, &json!({"name": "n3"}), &FindOptions::default()).unwrap().len(),
        10,
        "many roles"
    );
    assert_eq!(store.count("e", &many, &json!({})).unwrap(), 200);
    let scan = store.explain_find("e", &scoped, &json!({"other": 1}), &FindOptions::default()).unwrap();
    assert!(plan_details(&scan).contains("_p"), "without a hint the scope drives from (principal, …): {scan:#}");
    assert_eq!(scan["aclPushdown"], true, "{scan:#}");
    let missing = store.explain_find("nope", &sys, &json!({}), &FindOptions::default()).unwrap();
    assert_eq!(missing["collectionExists"], false);
}

#[test]
fn concurrent_readers_and_writer() {
    let store = SqliteStore::open_temporary().unwrap();
    store.insert_one("c", json!({"_id": "seed"})).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..25 {
                    if t == 0 {
                        store.insert_one("c", json!({"n": i})).unwrap();
                    } else {
                        assert!(store.count("c", &Scope::system(), &json!({})).unwrap() >= 1);
                    }
                }
            });
        }
    });
    assert_eq!(store.count("c", &Scope::system(), &json!({})).unwrap(), 26);
}

// ----- pushdown never changes results -----

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..4).prop_map(Value::from),
        prop_oneof![Just(1.5), Just(-0.5), Just(2.0)].prop_map(Value::from),
        prop_oneof![Just("a"), Just("b"), Just("ab"), Just("")].prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![Just("2024-01-01T00:00:00Z"), Just("2024-01-01T02:00:00+02:00"), Just("2025-06-01T00:00:00.5Z")]
            .prop_map(Value::from),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::from),
        1 => prop::collection::vec(prop::collection::vec(scalar(), 0..2).prop_map(Value::from), 0..2).prop_map(Value::from),
    ]
}

fn acl() -> impl Strategy<Value = Option<Value>> {
    let entry = (prop_oneof![Just("u1"), Just("u2"), Just("r1")], 0u32..8, prop::option::of(any::<bool>())).prop_map(
        |(id, rights, deny)| match deny {
            Some(d) => json!({"_id": id, "rights": rights, "deny": d}),
            None => json!({"_id": id, "rights": rights}),
        },
    );
    prop::option::of(prop::collection::vec(entry, 0..3).prop_map(Value::from))
}

fn document() -> impl Strategy<Value = Value> {
    (
        acl(),
        prop::option::of(field_value()),
        prop::option::of(field_value()),
        prop::option::of(prop::collection::vec(prop::option::of(field_value()), 0..3)),
        prop::option::of(field_value()),
    )
        .prop_map(|(acl, a, u, b, t)| {
            let mut m = serde_json::Map::new();
            if let Some(acl) = acl {
                m.insert("_acl".into(), acl);
            }
            if let Some(a) = a {
                m.insert("a".into(), a);
            }
            if let Some(u) = u {
                m.insert("u".into(), u);
            }
            if let Some(items) = b {
                // b: an array of objects, some without `c`, so `b.c` fans out and may be missing.
                let objs: Vec<Value> = items
                    .into_iter()
                    .map(|c| match c {
                        Some(c) => json!({"c": c}),
                        None => json!({"d": 1}),
                    })
                    .collect();
                m.insert("b".into(), Value::from(objs));
            }
            if let Some(t) = t {
                m.insert("t".into(), t);
            }
            Value::Object(m)
        })
}

fn simple_filter() -> impl Strategy<Value = Value> {
    let path = prop_oneof![Just("a"), Just("u"), Just("b.c"), Just("t"), Just("b")];
    let cond = prop_oneof![
        scalar().prop_map(|v| v),
        field_value().prop_map(|v| json!({"$eq": v})),
        prop::collection::vec(scalar(), 0..3).prop_map(|vs| json!({"$in": vs})),
        (prop_oneof![Just("$gt"), Just("$gte"), Just("$lt"), Just("$lte")], scalar())
            .prop_map(|(op, v)| json!({op: v})),
        (scalar(), scalar()).prop_map(|(lo, hi)| json!({"$gte": lo, "$lt": hi})),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
    ];
    prop::collection::vec((path, cond), 1..3)
        .prop_map(|conds| Value::Object(conds.into_iter().map(|(p, c)| (p.to_string(), c)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn pushdown_never_changes_results(
        docs in prop::collection::vec(document(), 0..25),
        filters in prop::collection::vec(simple_filter(), 1..6),
        principals in prop::collection::vec(prop_oneof![Just("u1"), Just("u2"), Just("r1")], 0..3),
        mask in 0u32..8,
    ) {
        let store = SqliteStore::open_temporary().unwrap();
        for keys in [json!({"a": 1}), json!({"b.c": 1, "a": -1}), json!({"t": 1})] {
            store.create_index("p", &keys, &IndexOptions::default()).unwrap();
        }
        let sparse = IndexOptions { sparse: true, name: Some("u_sparse".into()), ..IndexOptions::default() };
        store.create_index("p", &json!({"u": 1}), &sparse).unwrap();
        let stored = store.insert_many("p", docs).unwrap();
        for filter in filters {
            let query = FindQuery::parse(&filter, None, None, 0, None, &Limits::default()).unwrap();
            let expected = query.run(stored.clone()).unwrap();
            let got = store.find("p", &Scope::system(), &filter, &FindOptions::default()).unwrap();
            prop_assert_eq!(&got, &expected, "filter {}", filter);
            let count = store.count("p", &Scope::system(), &filter).unwrap();
            prop_assert_eq!(count as usize, expected.len());
            // The same with an ACL scope: SQL evaluation must equal the in-memory reference.
            let scope = Scope::acl(principals.iter().copied(), Rights(mask));
            let expected: Vec<Value> = expected.into_iter().filter(|d| scope.admits("p", d)).collect();
            let got = store.find("p", &scope, &filter, &FindOptions::default()).unwrap();
            prop_assert_eq!(&got, &expected, "filter {} scope {:?}", filter, scope);
        }
    }
}
