//! Hand-written corpus of query-language cases with their expected results written out, as MongoDB
//! itself returns them (not computed by this crate, and not by mingo where mingo deviates).
//!
//! The cases live in `tests/corpus/*.json`:
//!
//! * `filters.json`: groups of documents, each with filters and the `_id`s they match (arrays, null
//!   and missing, type bracketing, dates, `__REGEXP`, nested `$elemMatch`, `$bits*`, `$mod`, `$expr`);
//! * `updates.json`: a document, an operator update (and the query for positional `$`), and the
//!   resulting document or the error kind;
//! * `find.json`: projections and sorts (with skip and limit) over small collections;
//! * `pipelines.json`: aggregation pipelines, with `$lookup` through an in-test [`LookupSource`];
//! * `errors.json`: inputs that must be refused, with the [`QueryError`] variant expected.
//!
//! Every case runs and all failures are reported together. Needs no node. Run:
//!
//! ```text
//! cargo test -p flowkeep-query --test corpus
//! ```
//!
//! An error expectation names a `QueryError` variant (`"UpdateFailed"`, `"BadRegex"`, …) or `"any"`.
//! Objects compare regardless of key order unless the case says `"ordered_keys": true`; numbers by
//! value (`1 == 1.0`).

mod common;

use common::{json_eq, Cmp};
use flowkeep_query::{
    Filter, FindQuery, Limits, LookupSource, Pipeline, Projection, QueryError, Update, UpdateContext,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("corpus").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn cases(v: &Value) -> &Vec<Value> {
    v.as_array().expect("a JSON array of cases")
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap_or("?")
}

/// The `QueryError` variant's name.
fn kind(e: &QueryError) -> &'static str {
    match e {
        QueryError::UnknownOperator { .. } => "UnknownOperator",
        QueryError::BadArgument { .. } => "BadArgument",
        QueryError::JavaScriptRefused { .. } => "JavaScriptRefused",
        QueryError::TooDeep { .. } => "TooDeep",
        QueryError::TooLarge { .. } => "TooLarge",
        QueryError::BadRegex { .. } => "BadRegex",
        QueryError::BadPath { .. } => "BadPath",
        QueryError::UpdateFailed { .. } => "UpdateFailed",
        QueryError::Source { .. } => "Source",
        QueryError::EvalFailed { .. } => "EvalFailed",
    }
}

/// Checks `got` against a case's `"error"` (if any) or `"expect"`; returns a failure message.
fn check(case: &Value, got: Result<Value, QueryError>, cmp: Cmp) -> Option<String> {
    match (case.get("error").and_then(Value::as_str), got) {
        (Some(want), Err(e)) if want == "any" || want == kind(&e) => None,
        (Some(want), Err(e)) => Some(format!("expected error {want}, got {} ({e})", kind(&e))),
        (Some(want), Ok(v)) => Some(format!("expected error {want}, got {v}")),
        (None, Err(e)) => Some(format!("expected {}, got error {} ({e})", case["expect"], kind(&e))),
        (None, Ok(v)) if json_eq(&v, &case["expect"], cmp) => None,
        (None, Ok(v)) => Some(format!("expected {}\n      got {v}", case["expect"])),
    }
}

fn finish(what: &str, total: usize, failures: Vec<String>) {
    eprintln!("{what}: {} of {total} cases pass", total - failures.len());
    assert!(failures.is_empty(), "{} of {total} {what} cases fail:\n\n{}", failures.len(), failures.join("\n\n"));
}

fn key_order(case: &Value) -> Cmp {
    Cmp { ignore_key_order: !case.get("ordered_keys").is_some_and(|v| v == true), tolerance: 1e-12 }
}

#[test]
fn filters() {
    let limits = Limits::default();
    let groups = load("filters.json");
    let (mut total, mut failures) = (0, Vec::new());
    for group in cases(&groups) {
        let docs = cases(&group["docs"]);
        for case in cases(&group["cases"]) {
            total += 1;
            let got: Result<Vec<Value>, QueryError> = Filter::parse(&case["filter"], &limits).and_then(|f| {
                let mut ids = Vec::new();
                for d in docs {
                    if f.matches(d)? {
                        ids.push(d["_id"].clone());
                    }
                }
                Ok(ids)
            });
            if let Some(msg) = check(case, got.map(Value::Array), Cmp::default()) {
                failures.push(format!("{}\n  filter: {}\n  {msg}", name(case), case["filter"]));
            }
        }
    }
    assert!(total >= 60, "the filter corpus has {total} cases");
    finish("filter", total, failures);
}

#[test]
fn updates() {
    let limits = Limits::default();
    let all = load("updates.json");
    let mut failures = Vec::new();
    for case in cases(&all) {
        let got = (|| {
            let update = Update::parse(&case["update"], &limits)?;
            let query = case.get("query").map(|q| Filter::parse(q, &limits)).transpose()?;
            let mut doc = case["doc"].clone();
            update.apply(&mut doc, &UpdateContext { is_insert: false, query: query.as_ref(), now_millis: 1000 })?;
            Ok(doc)
        })();
        if let Some(msg) = check(case, got, key_order(case)) {
            failures.push(format!(
                "{}\n  doc: {}\n  update: {}{}\n  {msg}",
                name(case),
                case["doc"],
                case["update"],
                case.get("query").map(|q| format!("\n  query: {q}")).unwrap_or_default()
            ));
        }
    }
    assert!(all.as_array().map_or(0, Vec::len) >= 40);
    finish("update", cases(&all).len(), failures);
}

#[test]
fn upserts_start_from_the_equality_conditions() {
    let seed = Update::upsert_seed(&json!({"a": 1, "b.c": 2, "d": {"$gt": 5}})).expect("seed");
    assert!(json_eq(&seed, &json!({"a": 1, "b": {"c": 2}}), Cmp { ignore_key_order: true, tolerance: 0.0 }), "{seed}");
    let update = Update::parse(&json!({"$setOnInsert": {"x": 1}, "$inc": {"a": 1}}), &Limits::default()).unwrap();
    let mut doc = seed;
    update.apply(&mut doc, &UpdateContext { is_insert: true, query: None, now_millis: 0 }).expect("apply");
    assert!(
        json_eq(&doc, &json!({"a": 2, "b": {"c": 2}, "x": 1}), Cmp { ignore_key_order: true, tolerance: 0.0 }),
        "{doc}"
    );
}

#[test]
fn projections_and_sorts() {
    let limits = Limits::default();
    let all = load("find.json");
    let mut failures = Vec::new();
    for case in cases(&all) {
        let got = (|| {
            let q = FindQuery::parse(
                case.get("filter").unwrap_or(&json!({})),
                case.get("projection"),
                case.get("sort"),
                case["skip"].as_u64().unwrap_or(0) as usize,
                case.get("limit").and_then(Value::as_u64).map(|l| l as usize),
                &limits,
            )?;
            let out = q.run(cases(&case["docs"]).iter().cloned())?;
            // Sort cases list the expected `_id`s; projection cases the documents.
            if case["expect"].as_array().is_some_and(|e| e.iter().all(Value::is_string)) {
                return Ok(Value::Array(out.iter().map(|d| d["_id"].clone()).collect()));
            }
            Ok(Value::Array(out))
        })();
        if let Some(msg) = check(case, got, key_order(case)) {
            failures.push(format!(
                "{}\n  filter: {}  sort: {}  projection: {}\n  {msg}",
                name(case),
                case.get("filter").unwrap_or(&json!({})),
                case.get("sort").unwrap_or(&Value::Null),
                case.get("projection").unwrap_or(&Value::Null)
            ));
        }
    }
    finish("find", cases(&all).len(), failures);
}

/// Collections for `$lookup`, filtered with this crate's own filters.
struct Collections(HashMap<String, Vec<Value>>);

impl LookupSource for Collections {
    fn find(&self, collection: &str, filter: &Value) -> flowkeep_query::Result<Vec<Value>> {
        let f = Filter::parse(filter, &Limits::default())?;
        let mut out = Vec::new();
        for d in self.0.get(collection).into_iter().flatten() {
            if f.matches(d)? {
                out.push(d.clone());
            }
        }
        Ok(out)
    }
}

#[test]
fn pipelines() {
    let limits = Limits::default();
    let all = load("pipelines.json");
    let mut failures = Vec::new();
    for case in cases(&all) {
        let source = Collections(
            case["collections"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), cases(v).clone())).collect(),
        );
        let got = Pipeline::parse(&case["pipeline"], &limits)
            .and_then(|p| p.run(cases(&case["docs"]).clone(), &source, 0))
            .map(Value::Array);
        if let Some(msg) = check(case, got, key_order(case)) {
            failures.push(format!("{}\n  pipeline: {}\n  {msg}", name(case), case["pipeline"]));
        }
    }
    finish("pipeline", cases(&all).len(), failures);
}

#[test]
fn refused_inputs() {
    let limits = Limits::default();
    let all = load("errors.json");
    let mut failures = Vec::new();
    for case in cases(&all) {
        let input = &case["input"];
        let got: Result<Value, QueryError> = match case["kind"].as_str() {
            Some("filter") => Filter::parse(input, &limits).map(|_| Value::Null),
            Some("update") => Update::parse(input, &limits).and_then(|u| {
                let mut doc = json!({"_id": "x", "a": 1});
                u.apply(&mut doc, &UpdateContext { is_insert: false, query: None, now_millis: 0 }).map(|_| doc)
            }),
            Some("pipeline") => Pipeline::parse(input, &limits)
                .and_then(|p| p.run(vec![json!({"_id": "x", "a": 1})], &flowkeep_query::aggregate::NoCollections, 0))
                .map(Value::Array),
            Some("projection") => Projection::parse(input, &limits).map(|_| Value::Null),
            other => panic!("unknown kind {other:?} in {}", name(case)),
        };
        if let Some(msg) = check(case, got, Cmp::default()) {
            failures.push(format!("{} ({})\n  input: {input}\n  {msg}", name(case), case["kind"]));
        }
    }
    finish("error", cases(&all).len(), failures);
}

#[test]
fn too_deep_inputs_are_refused() {
    let limits = Limits { max_depth: 20, ..Limits::default() };
    let mut filter = json!({"a": 1});
    for _ in 0..30 {
        filter = json!({ "$and": [filter] });
    }
    let err = Filter::parse(&filter, &limits).expect_err("a filter 60 levels deep");
    assert_eq!(kind(&err), "TooDeep", "{err}");

    let mut update_value = json!(1);
    for _ in 0..30 {
        update_value = json!({ "x": update_value });
    }
    let err = Update::parse(&json!({"$set": {"a": update_value}}), &limits).expect_err("a deep update");
    assert_eq!(kind(&err), "TooDeep", "{err}");

    let mut pipeline = json!([{"$match": {}}]);
    for _ in 0..30 {
        pipeline = json!([{ "$facet": { "f": pipeline } }]);
    }
    let err = Pipeline::parse(&pipeline, &limits).expect_err("deeply nested $facet");
    assert_eq!(kind(&err), "TooDeep", "{err}");
}
