//! Tests of every stage, `$lookup` through a recording [`LookupSource`], refusals and limits.

use super::*;
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;

const NOW: i64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z

/// Collections in memory; every read is recorded, so tests can assert what the pipeline asked for.
#[derive(Default)]
struct Collections {
    data: HashMap<String, Vec<Value>>,
    calls: RefCell<Vec<(String, Value)>>,
}

impl Collections {
    fn with(mut self, name: &str, docs: Value) -> Self {
        self.data.insert(name.into(), docs.as_array().cloned().unwrap_or_default());
        self
    }
}

impl LookupSource for Collections {
    fn find(&self, collection: &str, filter: &Value) -> Result<Vec<Value>> {
        self.calls.borrow_mut().push((collection.to_string(), filter.clone()));
        let f = Filter::parse(filter, &Limits::default())?;
        let mut out = Vec::new();
        for d in self.data.get(collection).map(Vec::as_slice).unwrap_or_default() {
            if f.matches(d)? {
                out.push(d.clone());
            }
        }
        Ok(out)
    }
}

fn run_with(pipeline: Value, docs: Value, source: &dyn LookupSource) -> Result<Vec<Value>> {
    let p = Pipeline::parse(&pipeline, &Limits::default())?;
    p.run(docs.as_array().cloned().unwrap_or_default(), source, NOW)
}

fn run(pipeline: Value, docs: Value) -> Result<Vec<Value>> {
    run_with(pipeline, docs, &NoCollections)
}

fn ok(pipeline: Value, docs: Value) -> Value {
    Value::Array(run(pipeline.clone(), docs).unwrap_or_else(|e| panic!("{pipeline}: {e}")))
}

fn parse_err(pipeline: Value) -> QueryError {
    Pipeline::parse(&pipeline, &Limits::default()).expect_err("pipeline should be refused")
}

#[test]
fn match_filters_and_is_exposed_for_push_down() {
    let docs = json!([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}, {"_id": 3, "a": 3}]);
    assert_eq!(
        ok(json!([{"$match": {"a": {"$gte": 2}}}]), docs.clone()),
        json!([{"_id": 2, "a": 2}, {"_id": 3, "a": 3}])
    );
    let p = Pipeline::parse(&json!([{"$match": {"a": 1}}, {"$limit": 1}]), &Limits::default()).unwrap();
    assert_eq!(p.leading_match(), Some(&json!({"a": 1})));
    let p = Pipeline::parse(&json!([{"$limit": 1}, {"$match": {"a": 1}}]), &Limits::default()).unwrap();
    assert_eq!(p.leading_match(), None);
}

#[test]
fn match_expr_sees_now() {
    let docs = json!([{"_id": 1, "due": "2024-04-01T00:00:00Z"}, {"_id": 2, "due": "2024-06-01T00:00:00Z"}]);
    let pipeline = json!([{"$match": {"$expr": {"$lt": ["$due", "$$NOW"]}}}, {"$project": {"_id": 1}}]);
    assert_eq!(ok(pipeline.clone(), docs), json!([{"_id": 1}]));
    let p = Pipeline::parse(&pipeline, &Limits::default()).unwrap();
    assert_eq!(p.leading_match(), None, "a filter needing $$NOW is not pushed down");
}

#[test]
fn project_inclusion_exclusion_and_computed() {
    let docs = json!([{"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "arr": [{"x": 1, "y": 2}, 5], "s": "hi"}]);
    assert_eq!(ok(json!([{"$project": {"a": 1}}]), docs.clone()), json!([{"_id": 1, "a": 1}]));
    assert_eq!(ok(json!([{"$project": {"a": 1, "_id": 0}}]), docs.clone()), json!([{"a": 1}]));
    assert_eq!(
        ok(json!([{"$project": {"b.c": 1, "arr.x": 1}}]), docs.clone()),
        json!([{"_id": 1, "b": {"c": 2}, "arr": [{"x": 1}]}])
    );
    assert_eq!(ok(json!([{"$project": {"b": {"d": true}}}]), docs.clone()), json!([{"_id": 1, "b": {"d": 3}}]));
    assert_eq!(
        ok(json!([{"$project": {"a": 0, "b.c": 0, "arr.y": 0, "s": false}}]), docs.clone()),
        json!([{"_id": 1, "b": {"d": 3}, "arr": [{"x": 1}, 5]}])
    );
    assert_eq!(ok(json!([{"$project": {"_id": 0}}]), json!([{"_id": 1, "a": 1}])), json!([{"a": 1}]));
    assert_eq!(
        ok(
            json!([{"$project": {"sum": {"$add": ["$a", "$b.c"]}, "up": {"$toUpper": "$s"}, "lit": "text", "gone": "$$REMOVE", "n": {"m": "$a"}}}]),
            docs
        ),
        json!([{"_id": 1, "sum": 3, "up": "HI", "lit": "text", "n": {"m": 1}}])
    );
    assert!(matches!(parse_err(json!([{"$project": {"a": 1, "b": 0}}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$project": {"a": 0, "c": "$a"}}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$project": {}}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$project": {"a": 1, "a.b": 1}}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$project": {"x": {"$function": {}}}}])), QueryError::JavaScriptRefused { .. }));
}

#[test]
fn add_fields_set_and_unset() {
    let docs = json!([{"_id": 1, "a": {"c": 1}, "n": 2, "arr": [{"x": 1}, 7]}]);
    assert_eq!(
        ok(json!([{"$addFields": {"twice": {"$multiply": ["$n", 2]}, "a": {"b": 5}, "n": "$$REMOVE"}}]), docs.clone()),
        json!([{"_id": 1, "a": {"c": 1, "b": 5}, "arr": [{"x": 1}, 7], "twice": 4}])
    );
    assert_eq!(
        ok(json!([{"$set": {"arr.y": 0, "a.c": "$n"}}]), docs.clone()),
        json!([{"_id": 1, "a": {"c": 2}, "n": 2, "arr": [{"x": 1, "y": 0}, {"y": 0}]}])
    );
    assert_eq!(ok(json!([{"$unset": "n"}]), docs.clone()), json!([{"_id": 1, "a": {"c": 1}, "arr": [{"x": 1}, 7]}]));
    assert_eq!(ok(json!([{"$unset": ["n", "a.c", "arr"]}]), docs), json!([{"_id": 1, "a": {}}]));
    assert!(matches!(parse_err(json!([{"$unset": []}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$addFields": {"$bad": 1}}])), QueryError::BadArgument { .. }));
}

#[test]
fn group_keys_and_accumulators() {
    let docs = json!([
        {"_id": 1, "k": "a", "n": 1, "tag": "x"},
        {"_id": 2, "k": "b", "n": 2.5, "tag": "y"},
        {"_id": 3, "k": "a", "n": 3, "tag": "x"},
        {"_id": 4, "n": 4},
        {"_id": 5, "k": null, "n": "not a number"}
    ]);
    let out = ok(
        json!([{"$group": {
            "_id": "$k",
            "sum": {"$sum": "$n"}, "count": {"$sum": 1}, "c2": {"$count": {}}, "avg": {"$avg": "$n"},
            "min": {"$min": "$n"}, "max": {"$max": "$n"}, "first": {"$first": "$_id"}, "last": {"$last": "$tag"},
            "all": {"$push": "$tag"}, "tags": {"$addToSet": "$tag"}
        }}]),
        docs,
    );
    assert_eq!(
        out,
        json!([
            {"_id": "a", "sum": 4, "count": 2, "c2": 2, "avg": 2, "min": 1, "max": 3, "first": 1, "last": "x", "all": ["x", "x"], "tags": ["x"]},
            {"_id": "b", "sum": 2.5, "count": 1, "c2": 1, "avg": 2.5, "min": 2.5, "max": 2.5, "first": 2, "last": "y", "all": ["y"], "tags": ["y"]},
            // Missing and null group together under null; $min/$max compare across types.
            {"_id": null, "sum": 4, "count": 2, "c2": 2, "avg": 4, "min": 4, "max": "not a number", "first": 4, "last": null, "all": [], "tags": []}
        ])
    );
}

#[test]
fn group_keys_follow_value_equality() {
    let docs = json!([
        {"k": 1}, {"k": 1.0}, {"k": "2024-01-01T02:00:00+02:00"}, {"k": "2024-01-01T00:00:00.000Z"},
        {"k": {"a": 1, "b": 2}}, {"k": {"b": 2, "a": 1}}, {"k": [1, 2]}, {"k": "1"}
    ]);
    let out = ok(json!([{"$group": {"_id": "$k", "n": {"$sum": 1}}}]), docs);
    assert_eq!(
        out,
        json!([
            {"_id": 1, "n": 2},
            {"_id": "2024-01-01T02:00:00+02:00", "n": 2},
            {"_id": {"a": 1, "b": 2}, "n": 1},
            {"_id": {"b": 2, "a": 1}, "n": 1},
            {"_id": [1, 2], "n": 1},
            {"_id": "1", "n": 1}
        ])
    );
    let compound = ok(
        json!([{"$group": {"_id": {"y": "$y", "m": "$m"}, "n": {"$sum": 1}}}, {"$sort": {"_id.y": 1, "_id.m": 1}}]),
        json!([{"y": 2024, "m": 1}, {"y": 2023, "m": 5}, {"y": 2024, "m": 1}, {"y": 2024}]),
    );
    assert_eq!(
        compound,
        json!([{"_id": {"y": 2023, "m": 5}, "n": 1}, {"_id": {"y": 2024}, "n": 1}, {"_id": {"y": 2024, "m": 1}, "n": 2}])
    );
    assert_eq!(
        ok(json!([{"$group": {"_id": null, "total": {"$sum": "$v"}}}]), json!([{"v": 1}, {"v": 2}])),
        json!([{"_id": null, "total": 3}])
    );
    assert!(matches!(parse_err(json!([{"$group": {"n": {"$sum": 1}}}])), QueryError::BadArgument { .. }));
    assert_eq!(parse_err(json!([{"$group": {"_id": null, "n": {"$median": 1}}}])), QueryError::unknown("$median"));
    assert!(matches!(
        parse_err(json!([{"$group": {"_id": null, "n": {"$accumulator": {}}}}])),
        QueryError::JavaScriptRefused { .. }
    ));
}

#[test]
fn sort_skip_limit_count() {
    let docs = json!([{"_id": 1, "a": 2}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}, {"_id": 4, "a": 1}]);
    assert_eq!(
        ok(json!([{"$sort": {"a": 1}}, {"$project": {"_id": 1}}]), docs.clone()),
        json!([{"_id": 2}, {"_id": 4}, {"_id": 1}, {"_id": 3}]),
        "stable"
    );
    assert_eq!(
        ok(json!([{"$skip": 1}, {"$limit": 2}, {"$project": {"_id": 1}}]), docs.clone()),
        json!([{"_id": 2}, {"_id": 3}])
    );
    assert_eq!(ok(json!([{"$count": "total"}]), docs.clone()), json!([{"total": 4}]));
    assert_eq!(ok(json!([{"$match": {"a": 9}}, {"$count": "total"}]), docs), json!([]), "no output without input");
    assert!(matches!(parse_err(json!([{"$limit": 0}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$skip": -1}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$count": "$x"}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$sort": {}}])), QueryError::BadArgument { .. }));
}

#[test]
fn unwind_forms() {
    let docs = json!([
        {"_id": 1, "t": ["a", "b"]},
        {"_id": 2, "t": []},
        {"_id": 3, "t": null},
        {"_id": 4},
        {"_id": 5, "t": "solo"}
    ]);
    assert_eq!(
        ok(json!([{"$unwind": "$t"}]), docs.clone()),
        json!([{"_id": 1, "t": "a"}, {"_id": 1, "t": "b"}, {"_id": 5, "t": "solo"}])
    );
    assert_eq!(
        ok(json!([{"$unwind": {"path": "$t", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}]), docs),
        json!([
            {"_id": 1, "t": "a", "i": 0}, {"_id": 1, "t": "b", "i": 1}, {"_id": 2, "i": null},
            {"_id": 3, "t": null, "i": null}, {"_id": 4, "i": null}, {"_id": 5, "t": "solo", "i": null}
        ])
    );
    assert_eq!(
        ok(json!([{"$unwind": "$a.b"}]), json!([{"a": {"b": [1, 2]}}])),
        json!([{"a": {"b": 1}}, {"a": {"b": 2}}])
    );
    assert!(matches!(parse_err(json!([{"$unwind": "t"}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$unwind": {"path": "$t", "extra": 1}}])), QueryError::BadArgument { .. }));
}

#[test]
fn replace_root_and_sort_by_count() {
    let docs = json!([{"_id": 1, "inner": {"x": 1}}, {"_id": 2, "inner": {"x": 2}}]);
    assert_eq!(ok(json!([{"$replaceRoot": {"newRoot": "$inner"}}]), docs.clone()), json!([{"x": 1}, {"x": 2}]));
    assert_eq!(
        ok(json!([{"$replaceWith": {"$mergeObjects": [{"id": "$_id"}, "$inner"]}}]), docs.clone()),
        json!([{"id": 1, "x": 1}, {"id": 2, "x": 2}])
    );
    assert!(matches!(run(json!([{"$replaceWith": "$_id"}]), docs), Err(QueryError::BadArgument { .. })));
    let tags = json!([{"t": "b"}, {"t": "a"}, {"t": "a"}, {"t": "c"}, {"t": "b"}, {"t": "a"}]);
    assert_eq!(
        ok(json!([{"$sortByCount": "$t"}]), tags),
        json!([{"_id": "a", "count": 3}, {"_id": "b", "count": 2}, {"_id": "c", "count": 1}])
    );
    assert!(matches!(parse_err(json!([{"$sortByCount": "t"}])), QueryError::BadArgument { .. }));
}

#[test]
fn facet_runs_sub_pipelines_on_the_same_input() {
    let docs = json!([{"a": 1}, {"a": 2}, {"a": 3}]);
    assert_eq!(
        ok(
            json!([{"$facet": {"count": [{"$count": "n"}], "big": [{"$match": {"a": {"$gt": 1}}}, {"$project": {"a": 1, "_id": 0}}]}}]),
            docs
        ),
        json!([{"count": [{"n": 3}], "big": [{"a": 2}, {"a": 3}]}])
    );
    assert_eq!(ok(json!([{"$facet": {"all": []}}]), json!([])), json!([{"all": []}]));
    assert!(matches!(parse_err(json!([{"$facet": {"x": [{"$facet": {"y": []}}]}}])), QueryError::BadArgument { .. }));
}

fn people_and_orders() -> Collections {
    Collections::default()
        .with(
            "orders",
            json!([
                {"_id": "o1", "user": "u1", "total": 10},
                {"_id": "o2", "user": "u2", "total": 20},
                {"_id": "o3", "user": "u1", "total": 30},
                {"_id": "o4", "total": 40},
                {"_id": "o5", "user": "__REGEXP /.*/", "total": 50}
            ]),
        )
        .with("secret", json!([{"_id": "s1", "user": "u1"}]))
}

#[test]
fn lookup_equality_form_reads_only_through_the_source() {
    let source = people_and_orders();
    let users = json!([{"_id": "u1"}, {"_id": "u2"}, {"_id": "u1"}, {"_id": "u9"}, {"_id": "ux", "ids": ["u2", "u1"]}]);
    let out = run_with(
        json!([{"$lookup": {"from": "orders", "localField": "_id", "foreignField": "user", "as": "orders"}},
               {"$project": {"n": {"$size": "$orders"}, "ids": "$orders._id"}}]),
        users,
        &source,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            json!({"_id": "u1", "n": 2, "ids": ["o1", "o3"]}),
            json!({"_id": "u2", "n": 1, "ids": ["o2"]}),
            json!({"_id": "u1", "n": 2, "ids": ["o1", "o3"]}),
            json!({"_id": "u9", "n": 0, "ids": []}),
            json!({"_id": "ux", "n": 0, "ids": []}),
        ]
    );
    let calls = source.calls.borrow();
    // One read per distinct key (u1 is cached), each from "orders" with an $in filter, nothing else.
    assert_eq!(
        *calls,
        vec![
            ("orders".to_string(), json!({"user": {"$in": ["u1"]}})),
            ("orders".to_string(), json!({"user": {"$in": ["u2"]}})),
            ("orders".to_string(), json!({"user": {"$in": ["u9"]}})),
            ("orders".to_string(), json!({"user": {"$in": ["ux"]}})),
        ]
    );
}

#[test]
fn lookup_local_arrays_missing_values_and_regex_lookalikes() {
    let source = people_and_orders();
    let docs = json!([{"_id": 1, "ids": ["u2", "u1"]}, {"_id": 2}, {"_id": 3, "ids": "__REGEXP /.*/"}]);
    let out = run_with(
        json!([{"$lookup": {"from": "orders", "localField": "ids", "foreignField": "user", "as": "o"}},
               {"$project": {"o": "$o._id"}}]),
        docs,
        &source,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            json!({"_id": 1, "o": ["o1", "o2", "o3"]}),
            // A missing local field is null and matches the order without a user.
            json!({"_id": 2, "o": ["o4"]}),
            // A string that looks like a regex is still compared by equality.
            json!({"_id": 3, "o": ["o5"]}),
        ]
    );
}

#[test]
fn lookup_pipeline_form_with_let() {
    let source = people_and_orders();
    let users = json!([{"_id": "u1", "min": 15}, {"_id": "u2", "min": 0}, {"_id": "u1", "min": 15}]);
    let out = run_with(
        json!([{"$lookup": {
            "from": "orders",
            "let": {"uid": "$_id", "min": "$min"},
            "pipeline": [
                {"$match": {"$expr": {"$and": [{"$eq": ["$user", "$$uid"]}, {"$gte": ["$total", "$$min"]}]}}},
                {"$project": {"_id": 1, "uid": "$$uid"}}
            ],
            "as": "big"
        }}]),
        users,
        &source,
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            json!({"_id": "u1", "min": 15, "big": [{"_id": "o3", "uid": "u1"}]}),
            json!({"_id": "u2", "min": 0, "big": [{"_id": "o2", "uid": "u2"}]}),
            json!({"_id": "u1", "min": 15, "big": [{"_id": "o3", "uid": "u1"}]}),
        ]
    );
    // The whole collection is read once, with an empty filter, and only from "orders".
    assert_eq!(*source.calls.borrow(), vec![("orders".to_string(), json!({}))]);
}

#[test]
fn lookup_equality_with_pipeline_and_nested_lookup() {
    let source = people_and_orders().with("items", json!([{"order": "o1", "sku": "A"}, {"order": "o3", "sku": "B"}]));
    let out = run_with(
        json!([{"$lookup": {
            "from": "orders", "localField": "_id", "foreignField": "user", "as": "orders",
            "pipeline": [
                {"$lookup": {"from": "items", "localField": "_id", "foreignField": "order", "as": "items"}},
                {"$project": {"_id": 0, "skus": "$items.sku"}}
            ]
        }}]),
        json!([{"_id": "u1"}]),
        &source,
    )
    .unwrap();
    assert_eq!(out, vec![json!({"_id": "u1", "orders": [{"skus": ["A"]}, {"skus": ["B"]}]})]);
    assert!(source.calls.borrow().iter().all(|(c, _)| c == "orders" || c == "items"));
}

#[test]
fn lookup_shadowed_let_variables_are_not_rebound() {
    let source = people_and_orders();
    let out = run_with(
        json!([{"$lookup": {
            "from": "orders",
            "let": {"v": "$_id"},
            "pipeline": [{"$match": {"$expr": {"$let": {"vars": {"v": "u2"}, "in": {"$eq": ["$user", "$$v"]}}}}}],
            "as": "o"
        }}, {"$project": {"o": "$o._id"}}]),
        json!([{"_id": "u1"}]),
        &source,
    )
    .unwrap();
    assert_eq!(out, vec![json!({"_id": "u1", "o": ["o2"]})]);
}

#[test]
fn lookup_argument_errors() {
    for bad in [
        json!({"from": "x", "localField": "a", "as": "o"}),
        json!({"from": "x", "as": "o"}),
        json!({"localField": "a", "foreignField": "b", "as": "o"}),
        json!({"from": "x", "localField": "a", "foreignField": "b"}),
        json!({"from": "x", "let": {"a": 1}, "localField": "a", "foreignField": "b", "as": "o"}),
        json!({"from": "x", "let": {"Bad": 1}, "pipeline": [], "as": "o"}),
        json!({"from": {"db": "other", "coll": "x"}, "pipeline": [], "as": "o"}),
        json!({"from": "x", "pipeline": [], "as": "o", "extra": 1}),
    ] {
        assert!(
            matches!(
                Pipeline::parse(&json!([{"$lookup": bad.clone()}]), &Limits::default()),
                Err(QueryError::BadArgument { .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_err(json!([{"$lookup": {"from": "x", "pipeline": [{"$out": "y"}], "as": "o"}}])),
        QueryError::BadArgument { .. }
    ));
}

#[test]
fn source_errors_propagate() {
    struct Failing;
    impl LookupSource for Failing {
        fn find(&self, collection: &str, _filter: &Value) -> Result<Vec<Value>> {
            Err(QueryError::Source { collection: collection.into(), message: "denied".into() })
        }
    }
    let err = run_with(
        json!([{"$lookup": {"from": "x", "localField": "a", "foreignField": "b", "as": "o"}}]),
        json!([{"a": 1}]),
        &Failing,
    )
    .unwrap_err();
    assert!(matches!(err, QueryError::Source { .. }));
}

#[test]
fn refused_and_unknown_stages() {
    for w in ["$out", "$merge"] {
        let e = parse_err(json!([{w: "target"}]));
        assert!(
            matches!(&e, QueryError::BadArgument { op, message } if op == w && message.contains("read-only")),
            "{e}"
        );
    }
    for u in ["$graphLookup", "$unionWith", "$sample"] {
        assert!(matches!(parse_err(json!([{u: {}}])), QueryError::BadArgument { .. }));
    }
    assert_eq!(parse_err(json!([{"$frobnicate": {}}])), QueryError::unknown("$frobnicate"));
    assert!(matches!(parse_err(json!([{"$match": {}, "$limit": 1}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{}])), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!({"$match": {}})), QueryError::BadArgument { .. }));
    assert!(matches!(parse_err(json!([{"$match": {"$where": "this.a > 1"}}])), QueryError::JavaScriptRefused { .. }));
    assert!(matches!(
        parse_err(json!([{"$addFields": {"x": {"$function": {"body": "", "args": [], "lang": "js"}}}}])),
        QueryError::JavaScriptRefused { .. }
    ));
    // An unknown stage deep inside is found at parse time, before any document is read.
    let e = parse_err(
        json!([{"$match": {}}, {"$facet": {"a": [{"$lookup": {"from": "x", "pipeline": [{"$nope": 1}], "as": "o"}}]}}]),
    );
    assert_eq!(e, QueryError::unknown("$nope"));
}

#[test]
fn stage_limit_counts_nested_pipelines() {
    let limits = Limits { max_pipeline_stages: 3, ..Limits::default() };
    let three = json!([{"$match": {}}, {"$facet": {"a": [{"$limit": 1}]}}]);
    assert_eq!(Pipeline::parse(&three, &limits).unwrap().stage_count(), 3);
    let four =
        json!([{"$match": {}}, {"$lookup": {"from": "x", "pipeline": [{"$limit": 1}, {"$skip": 1}], "as": "o"}}]);
    assert!(matches!(Pipeline::parse(&four, &limits), Err(QueryError::TooLarge { .. })));
}

#[test]
fn document_limit_bounds_every_growing_stage() {
    let limits = Limits { max_stage_documents: 5, ..Limits::default() };
    let run_limited = |pipeline: Value, docs: Value, source: &dyn LookupSource| {
        Pipeline::parse(&pipeline, &limits).unwrap().run(docs.as_array().cloned().unwrap_or_default(), source, NOW)
    };
    let too_large = |r: Result<Vec<Value>>| matches!(r, Err(QueryError::TooLarge { .. }));
    assert!(too_large(run_limited(
        json!([{"$unwind": "$a"}]),
        json!([{"a": [1, 2, 3]}, {"a": [4, 5, 6]}]),
        &NoCollections
    )));
    assert!(run_limited(json!([{"$unwind": "$a"}]), json!([{"a": [1, 2, 3]}]), &NoCollections).is_ok());
    let six: Value = (0..6).map(|i| json!({"i": i})).collect();
    assert!(too_large(run_limited(json!([{"$match": {}}]), six.clone(), &NoCollections)), "input");
    let four: Value = (0..4).map(|i| json!({"i": i})).collect();
    assert!(too_large(run_limited(json!([{"$facet": {"a": [], "b": []}}]), four.clone(), &NoCollections)));
    let source = Collections::default().with("c", json!([{"k": 1}, {"k": 1}]));
    assert!(too_large(run_limited(
        json!([{"$lookup": {"from": "c", "localField": "k", "foreignField": "k", "as": "j"}}]),
        json!([{"k": 1}, {"k": 1}, {"k": 1}]),
        &source
    )));
    let big = Collections::default().with("c", six);
    assert!(too_large(run_limited(json!([{"$lookup": {"from": "c", "pipeline": [], "as": "j"}}]), json!([{}]), &big)));
    let limits_groups = Limits { max_stage_documents: 3, ..Limits::default() };
    let p = Pipeline::parse(&json!([{"$group": {"_id": "$i"}}]), &limits_groups).unwrap();
    let docs: Vec<Value> = (0..3).map(|i| json!({"i": i})).collect();
    assert!(p.run(docs, &NoCollections, NOW).is_ok());
    let sbc = Pipeline::parse(&json!([{"$unwind": "$a"}, {"$group": {"_id": "$a"}}]), &limits_groups).unwrap();
    assert!(matches!(
        sbc.run(vec![json!({"a": [1, 2, 3]}), json!({"a": [4]})], &NoCollections, NOW),
        Err(QueryError::TooLarge { .. })
    ));
}

#[test]
fn a_typical_report_pipeline() {
    let docs = json!([
        {"_id": 1, "_type": "order", "customer": "ann", "items": [{"sku": "a", "qty": 2, "price": 5}, {"sku": "b", "qty": 1, "price": 10}], "at": "2024-03-01T10:00:00Z"},
        {"_id": 2, "_type": "order", "customer": "bob", "items": [{"sku": "a", "qty": 1, "price": 5}], "at": "2024-03-02T10:00:00Z"},
        {"_id": 3, "_type": "user", "name": "ann"},
        {"_id": 4, "_type": "order", "customer": "ann", "items": [], "at": "2024-04-01T10:00:00Z"}
    ]);
    let out = ok(
        json!([
            {"$match": {"_type": "order"}},
            {"$unwind": "$items"},
            {"$group": {
                "_id": {"customer": "$customer", "month": {"$dateToString": {"date": "$at", "format": "%Y-%m"}}},
                "revenue": {"$sum": {"$multiply": ["$items.qty", "$items.price"]}},
                "skus": {"$addToSet": "$items.sku"}
            }},
            {"$sort": {"revenue": -1}},
            {"$project": {"_id": 0, "customer": "$_id.customer", "month": "$_id.month", "revenue": 1, "skus": 1}}
        ]),
        docs,
    );
    assert_eq!(
        out,
        json!([
            {"revenue": 20, "skus": ["a", "b"], "customer": "ann", "month": "2024-03"},
            {"revenue": 5, "skus": ["a"], "customer": "bob", "month": "2024-03"}
        ])
    );
}
