//! Behaviour of the update operators. Tests marked "needs the filter" exercise `$pull` conditions and
//! the positional `$`, which rely on [`Filter`].

use super::*;
use crate::error::QueryError;
use serde_json::json;

const NOW: i64 = 1_714_564_800_123; // 2024-05-01T12:00:00.123Z

fn parse(u: Value) -> Update {
    Update::parse(&u, &Limits::default()).unwrap_or_else(|e| panic!("{u} should parse: {e}"))
}

fn parse_err(u: Value) -> QueryError {
    match Update::parse(&u, &Limits::default()) {
        Ok(_) => panic!("{u} should be refused"),
        Err(e) => e,
    }
}

fn ctx() -> UpdateContext<'static> {
    UpdateContext { is_insert: false, query: None, now_millis: NOW }
}

/// Applies `u` to `doc`; returns the new document and whether it changed.
fn run(u: Value, doc: Value) -> (Value, bool) {
    run_with(u, doc, &ctx())
}

fn run_with(u: Value, mut doc: Value, ctx: &UpdateContext<'_>) -> (Value, bool) {
    let update = parse(u.clone());
    let changed = update.apply(&mut doc, ctx).unwrap_or_else(|e| panic!("{u} should apply: {e}"));
    (doc, changed)
}

/// Applies `u` to `doc`, expecting an error, and checks that the document is untouched.
fn apply_err(u: Value, doc: Value) -> QueryError {
    apply_err_with(u, doc, &ctx())
}

fn apply_err_with(u: Value, doc: Value, ctx: &UpdateContext<'_>) -> QueryError {
    let update = parse(u.clone());
    let mut work = doc.clone();
    let err = match update.apply(&mut work, ctx) {
        Ok(_) => panic!("{u} should fail on {doc}"),
        Err(e) => e,
    };
    assert!(apply::identical(&work, &doc), "a failed update changed the document: {work}");
    err
}

fn assert_update_failed(err: &QueryError, op: &str, path: &str, needle: &str) {
    match err {
        QueryError::UpdateFailed { op: o, path: p, message } => {
            assert_eq!(o, op, "{err}");
            assert_eq!(p, path, "{err}");
            assert!(message.contains(needle), "'{message}' should contain '{needle}'");
        }
        other => panic!("expected UpdateFailed, got {other:?}"),
    }
}

fn is_bad(err: &QueryError, needle: &str) -> bool {
    match err {
        QueryError::BadArgument { message, .. } | QueryError::BadPath { message, .. } => message.contains(needle),
        _ => false,
    }
}

// ---------------------------------------------------------------- parsing

#[test]
fn parse_refuses_malformed_updates() {
    assert!(is_bad(&parse_err(json!({})), "empty"));
    assert!(is_bad(&parse_err(json!([{"$set": {"a": 1}}])), "pipeline"));
    assert!(is_bad(&parse_err(json!("x")), "object"));
    assert!(is_bad(&parse_err(json!({"$set": {"a": 1}, "b": 2})), "'b'"));
    assert!(is_bad(&parse_err(json!({"a": 1})), "'a'"), "a replacement is not an operator update");
    assert_eq!(parse_err(json!({"$frob": {"a": 1}})), QueryError::unknown("$frob"));
    assert!(is_bad(&parse_err(json!({"$set": 5})), "object"));
    assert!(is_bad(&parse_err(json!({"$set": [1]})), "object"));
    assert!(matches!(parse_err(json!({"$set": {"": 1}})), QueryError::BadPath { .. }));
    assert!(matches!(parse_err(json!({"$set": {"a..b": 1}})), QueryError::BadPath { .. }));
    assert!(matches!(parse_err(json!({"$set": {"a.$x": 1}})), QueryError::BadPath { .. }));
    assert!(is_bad(&parse_err(json!({"$inc": {"a": "1"}})), "non-numeric"));
    assert!(is_bad(&parse_err(json!({"$mul": {"a": null}})), "non-numeric"));
    assert!(is_bad(&parse_err(json!({"$pop": {"a": 2}})), "1 or -1"));
    assert!(is_bad(&parse_err(json!({"$pullAll": {"a": 1}})), "array"));
    assert!(is_bad(&parse_err(json!({"$currentDate": {"a": {"$type": "int"}}})), "'date' or 'timestamp'"));
    assert!(is_bad(&parse_err(json!({"$currentDate": {"a": 1}})), "true"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$each": 1}}})), "array"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$each": [], "$slice": "x"}}})), "integer"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$each": [], "$bogus": 1}}})), "Unrecognized clause"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$slice": 1}}})), "$each"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$each": [], "$sort": 2}}})), "$sort"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$each": [], "$sort": {}}}})), "empty"));
    assert!(is_bad(&parse_err(json!({"$push": {"a": {"$each": [], "$sort": {"x": 0}}}})), "1 or -1"));
    assert!(is_bad(&parse_err(json!({"$addToSet": {"a": {"$each": [1], "x": 1}}})), "$each"));
    assert!(is_bad(&parse_err(json!({"$addToSet": {"a": {"$each": 1}}})), "array"));
    assert!(is_bad(&parse_err(json!({"$bit": {"a": {"and": 1}}})), "not supported"));
}

#[test]
fn parse_refuses_limits_violations() {
    let limits = Limits { max_depth: 2, ..Limits::default() };
    assert_eq!(
        Update::parse(&json!({"$set": {"a": {"b": 1}}}), &limits).unwrap_err(),
        QueryError::TooDeep { limit: 2 }
    );
}

#[test]
fn empty_operator_argument_is_a_no_op() {
    let (doc, changed) = run(json!({"$set": {}}), json!({"a": 1}));
    assert_eq!(doc, json!({"a": 1}));
    assert!(!changed);
}

#[test]
fn conflicting_paths_are_refused() {
    let err = parse_err(json!({"$set": {"a": 1}, "$inc": {"a.b": 1}}));
    assert!(is_bad(&err, "Updating the path 'a.b' would create a conflict at 'a'"), "{err}");
    assert!(is_bad(&parse_err(json!({"$set": {"a.b": 1}, "$unset": {"a.b": 1}})), "conflict at 'a.b'"));
    assert!(is_bad(&parse_err(json!({"$set": {"x.y.z": 1}, "$push": {"x": 1}})), "conflict at 'x'"));
    assert!(is_bad(&parse_err(json!({"$rename": {"a": "b"}, "$set": {"b.c": 1}})), "conflict at 'b'"));
    assert!(is_bad(&parse_err(json!({"$set": {"a.$.b": 1}, "$inc": {"a.$": 1}})), "conflict at 'a.$'"));
    // Siblings and shared prefixes that are not whole parts do not conflict.
    parse(json!({"$set": {"a.b": 1, "a.c": 1, "ab": 1}, "$inc": {"a.bc": 1}}));
}

#[test]
fn id_is_immutable() {
    for u in [
        json!({"$set": {"_id.a": 1}}),
        json!({"$unset": {"_id": ""}}),
        json!({"$inc": {"_id": 1}}),
        json!({"$rename": {"_id": "b"}}),
        json!({"$rename": {"a": "_id"}}),
        json!({"$setOnInsert": {"_id.x": 1}}),
    ] {
        assert!(is_bad(&parse_err(u.clone()), "immutable field '_id'"), "{u}");
    }
    // `$set` of `_id` to its current value is a no-op (MongoDB); any other value is refused.
    assert_eq!(run(json!({"$set": {"_id": "x", "a": 1}}), json!({"_id": "x"})), (json!({"_id": "x", "a": 1}), true));
    let err = Update::parse(&json!({"$set": {"_id": "y"}}), &Limits::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .apply(&mut json!({"_id": "x"}), &ctx())
        .unwrap_err();
    assert!(is_bad(&err, "immutable field '_id'"), "{err}");
    // A field merely starting with "_id" is an ordinary field.
    assert_eq!(run(json!({"$set": {"_idx": 1}}), json!({})).0, json!({"_idx": 1}));
}

#[test]
fn positional_paths_are_checked_at_parse() {
    assert!(is_bad(&parse_err(json!({"$set": {"a.$[e].b": 1}})), "array filters"));
    assert!(is_bad(&parse_err(json!({"$set": {"a.$.b.$": 1}})), "Too many positional"));
    assert!(is_bad(&parse_err(json!({"$set": {"a.$[].b.$": 1}})), "cannot follow"));
    assert!(matches!(parse_err(json!({"$set": {"$.a": 1}})), QueryError::BadPath { .. }));
    assert!(matches!(parse_err(json!({"$set": {"$[]": 1}})), QueryError::BadPath { .. }));
}

#[test]
fn modified_paths_lists_targets_as_written() {
    let u = parse(json!({"$set": {"a.b": 1, "c.$.d": 2}, "$rename": {"x": "y.z"}, "$inc": {"arr.$[].n": 1}}));
    let got: Vec<String> = u.modified_paths().iter().map(FieldPath::dotted).collect();
    // Operations run (and are listed) in path order, as in MongoDB 5.0+.
    assert_eq!(got, ["a.b", "arr.$[].n", "c.$.d", "x", "y.z"]);
}

#[test]
fn is_operator_update_looks_at_the_first_key() {
    assert!(is_operator_update(&json!({"$set": {"a": 1}})));
    assert!(!is_operator_update(&json!({"a": 1})));
    assert!(!is_operator_update(&json!({})));
    assert!(!is_operator_update(&json!([1])));
}

// ---------------------------------------------------------------- $set / $unset / $setOnInsert

#[test]
fn set_creates_nested_fields_and_pads_arrays() {
    let (doc, changed) = run(json!({"$set": {"a.b.c": 1, "arr.3": "x", "top": [1]}}), json!({"arr": [0]}));
    assert!(changed);
    assert_eq!(doc, json!({"arr": [0, null, null, "x"], "a": {"b": {"c": 1}}, "top": [1]}));
}

#[test]
fn set_to_the_same_value_is_a_no_op() {
    let doc = json!({"a": 1, "b": {"c": [1, 2]}});
    let (after, changed) = run(json!({"$set": {"a": 1, "b.c": [1, 2]}}), doc.clone());
    assert!(!changed);
    assert_eq!(after, doc);
    // A different type or field order is a change, as it is in MongoDB's binary comparison.
    assert!(run(json!({"$set": {"a": 1.0}}), json!({"a": 1})).1);
    assert!(run(json!({"$set": {"b": {"y": 1, "x": 2}}}), json!({"b": {"x": 2, "y": 1}})).1);
}

#[test]
fn set_through_a_scalar_fails_and_leaves_the_doc() {
    let err = apply_err(json!({"$set": {"b": 2, "a.x": 1}}), json!({"a": 5}));
    assert_update_failed(&err, "$set", "a.x", "cannot create field 'x'");
    let err = apply_err(json!({"$inc": {"arr.x": 1}}), json!({"arr": [1]}));
    assert_update_failed(&err, "$inc", "arr.x", "cannot create field");
}

#[test]
fn unset_removes_fields_and_nulls_array_elements() {
    let (doc, changed) = run(
        json!({"$unset": {"a.b": "", "arr.1": 1, "missing": 1, "m.x.y": 1}}),
        json!({"a": {"b": 1, "c": 2}, "arr": [1, 2, 3]}),
    );
    assert!(changed);
    assert_eq!(doc, json!({"a": {"c": 2}, "arr": [1, null, 3]}));
    let (_, changed) = run(json!({"$unset": {"nope": ""}}), json!({"a": 1}));
    assert!(!changed);
}

#[test]
fn set_on_insert_applies_only_on_insert() {
    let u = json!({"$set": {"a": 1}, "$setOnInsert": {"created": true, "_id": "new"}});
    let (doc, changed) = run(u.clone(), json!({"_id": "old"}));
    assert!(changed);
    assert_eq!(doc, json!({"_id": "old", "a": 1}));

    let insert = UpdateContext { is_insert: true, ..ctx() };
    let (doc, _) = run_with(u.clone(), json!({}), &insert);
    assert_eq!(doc, json!({"a": 1, "created": true, "_id": "new"}));

    // The seed may carry the same `_id`, but not a different one.
    let (doc, _) = run_with(u.clone(), json!({"_id": "new"}), &insert);
    assert_eq!(doc, json!({"_id": "new", "a": 1, "created": true}));
    let err = apply_err_with(u, json!({"_id": "other"}), &insert);
    assert!(is_bad(&err, "immutable"), "{err}");

    let (_, changed) = run(json!({"$setOnInsert": {"x": 1}}), json!({}));
    assert!(!changed, "$setOnInsert alone does nothing on update");
}

// ---------------------------------------------------------------- $inc / $mul

#[test]
fn inc_adds_and_creates() {
    let (doc, _) = run(json!({"$inc": {"a": 2, "b.c": -1, "f": 0.5, "g": 1}}), json!({"a": 1, "f": 1, "g": 1.5}));
    assert_eq!(doc, json!({"a": 3, "f": 1.5, "g": 2.5, "b": {"c": -1}}));
    assert!(doc["a"].is_i64(), "int + int stays integral");
    let (doc, _) = run(json!({"$inc": {"a": 1.5}}), json!({"a": 1.5}));
    assert!(doc["a"].is_f64() && doc["a"] == json!(3.0), "a double stays a double: {doc}");
    let (_, changed) = run(json!({"$inc": {"a": 0}}), json!({"a": 4}));
    assert!(!changed, "+0 changes nothing");
}

#[test]
fn mul_multiplies_and_creates_zero() {
    let (doc, _) = run(json!({"$mul": {"a": 3, "b": 2, "c": 2.5, "d": 1.5}}), json!({"a": 4, "b": 0.5}));
    assert_eq!(doc, json!({"a": 12, "b": 1.0, "c": 0.0, "d": 0.0}));
    assert!(doc["a"].is_i64());
    assert!(doc["c"].is_f64(), "a missing field becomes a zero of the multiplier's type");
    let (doc, _) = run(json!({"$mul": {"n": 7}}), json!({}));
    assert!(doc["n"].is_i64() && doc["n"] == json!(0));
}

#[test]
fn arithmetic_on_non_numbers_fails() {
    let err = apply_err(json!({"$inc": {"a": 1}}), json!({"a": "x"}));
    assert_update_failed(&err, "$inc", "a", "Cannot apply $inc to a value of non-numeric type string");
    let err = apply_err(json!({"$mul": {"a.b": 2}}), json!({"a": {"b": null}}));
    assert_update_failed(&err, "$mul", "a.b", "non-numeric type null");
    let err = apply_err(json!({"$inc": {"d": 1}}), json!({"d": "2024-01-01T00:00:00Z"}));
    assert_update_failed(&err, "$inc", "d", "non-numeric type date");
}

#[test]
fn integer_overflow_is_an_error() {
    let err = apply_err(json!({"$inc": {"a": 1}}), json!({"a": i64::MAX}));
    assert_update_failed(&err, "$inc", "a", "overflow");
    let err = apply_err(json!({"$mul": {"a": 2}}), json!({"a": i64::MIN}));
    assert_update_failed(&err, "$mul", "a", "overflow");
    // Doubles do not overflow into errors until they stop being finite.
    let err = apply_err(json!({"$mul": {"a": 1e308}}), json!({"a": 1e308}));
    assert_update_failed(&err, "$mul", "a", "finite");
}

// ---------------------------------------------------------------- $min / $max

#[test]
fn min_and_max_compare_in_bson_order() {
    let doc = json!({"lo": 5, "hi": 5, "s": "b", "d": "2024-01-01T00:00:00Z"});
    let (after, _) =
        run(json!({"$min": {"lo": 3, "s": 10, "new": 1}, "$max": {"hi": 7.5, "d": "2025-01-01T00:00:00Z"}}), doc);
    assert_eq!(after, json!({"lo": 3, "hi": 7.5, "s": 10, "d": "2025-01-01T00:00:00Z", "new": 1}));
    let (_, changed) = run(json!({"$min": {"a": 9}, "$max": {"b": 0}}), json!({"a": 5, "b": 5}));
    assert!(!changed);
    // Equal values of another numeric type leave the field alone.
    let (after, changed) = run(json!({"$min": {"a": 5.0}}), json!({"a": 5}));
    assert!(!changed);
    assert!(after["a"].is_i64());
    // null sorts below numbers, so $max with a number replaces null.
    assert_eq!(run(json!({"$max": {"a": 1}}), json!({"a": null})).0, json!({"a": 1}));
}

// ---------------------------------------------------------------- $rename

#[test]
fn rename_moves_fields() {
    let (doc, changed) = run(
        json!({"$rename": {"a": "b", "n.x": "m.y", "missing": "z"}}),
        json!({"a": 1, "b": 0, "n": {"x": 2, "k": 1}}),
    );
    assert!(changed);
    assert_eq!(doc, json!({"b": 1, "n": {"k": 1}, "m": {"y": 2}}));
    let (_, changed) = run(json!({"$rename": {"missing": "z"}}), json!({"a": 1}));
    assert!(!changed);
}

#[test]
fn rename_refuses_bad_paths() {
    assert!(is_bad(&parse_err(json!({"$rename": {"a": "a"}})), "differ"));
    assert!(is_bad(&parse_err(json!({"$rename": {"a": "a.b"}})), "same path"));
    assert!(is_bad(&parse_err(json!({"$rename": {"a.b": "a"}})), "same path"));
    assert!(is_bad(&parse_err(json!({"$rename": {"a": 1}})), "string"));
    assert!(is_bad(&parse_err(json!({"$rename": {"a.$": "b"}})), "dynamic"));
    assert!(is_bad(&parse_err(json!({"$rename": {"a": "b.$[]"}})), "dynamic"));
    let err = apply_err(json!({"$rename": {"a.0": "b"}}), json!({"a": [1, 2]}));
    assert_update_failed(&err, "$rename", "a.0", "source field cannot be an array element");
    let err = apply_err(json!({"$rename": {"a.x": "b"}}), json!({"a": [{"x": 1}]}));
    assert_update_failed(&err, "$rename", "a.x", "source field cannot be an array element");
    let err = apply_err(json!({"$rename": {"a": "arr.0"}}), json!({"a": 1, "arr": [5]}));
    assert_update_failed(&err, "$rename", "a", "destination field cannot be an array element");
    let err = apply_err(json!({"$rename": {"a": "s.x"}}), json!({"a": 1, "s": "str"}));
    assert!(matches!(err, QueryError::UpdateFailed { ref op, .. } if op == "$rename"), "{err}");
}

// ---------------------------------------------------------------- $currentDate

#[test]
fn current_date_writes_the_wire_date() {
    let (doc, changed) =
        run(json!({"$currentDate": {"a": true, "b": {"$type": "date"}, "c.d": {"$type": "timestamp"}}}), json!({}));
    assert!(changed);
    let now = "2024-05-01T12:00:00.123Z";
    assert_eq!(doc, json!({"a": now, "b": now, "c": {"d": now}}));
    let (_, changed) = run(json!({"$currentDate": {"a": true}}), json!({"a": now}));
    assert!(!changed, "the same instant written again is no change");
}

// ---------------------------------------------------------------- $push

#[test]
fn push_appends_and_creates() {
    let (doc, _) = run(json!({"$push": {"a": 3, "new": {"x": 1}, "nested.list": [1]}}), json!({"a": [1, 2]}));
    assert_eq!(doc, json!({"a": [1, 2, 3], "new": [{"x": 1}], "nested": {"list": [[1]]}}));
}

#[test]
fn push_each_position_sort_slice() {
    let base = json!({"a": [1, 2, 3]});
    let cases = [
        (json!({"$each": [4, 5]}), json!([1, 2, 3, 4, 5])),
        (json!({"$each": [0], "$position": 0}), json!([0, 1, 2, 3])),
        (json!({"$each": [9], "$position": 1}), json!([1, 9, 2, 3])),
        (json!({"$each": [9], "$position": 99}), json!([1, 2, 3, 9])),
        (json!({"$each": [9], "$position": -1}), json!([1, 2, 9, 3])),
        (json!({"$each": [9], "$position": -99}), json!([9, 1, 2, 3])),
        (json!({"$each": [4], "$slice": 2}), json!([1, 2])),
        (json!({"$each": [4], "$slice": -2}), json!([3, 4])),
        (json!({"$each": [4], "$slice": -10}), json!([1, 2, 3, 4])),
        (json!({"$each": [4], "$slice": 0}), json!([])),
        (json!({"$each": [0, 5], "$sort": -1}), json!([5, 3, 2, 1, 0])),
        (json!({"$each": [0, 5], "$sort": 1, "$slice": -2}), json!([3, 5])),
        // Order: position, then sort, then slice, whatever the clause order.
        (json!({"$slice": 3, "$sort": -1, "$each": [7], "$position": 0}), json!([7, 3, 2])),
        (json!({"$each": []}), json!([1, 2, 3])),
    ];
    for (modifiers, expected) in cases {
        let (doc, _) = run(json!({"$push": {"a": modifiers.clone()}}), base.clone());
        assert_eq!(doc["a"], expected, "{modifiers}");
    }
    let (doc, changed) = run(json!({"$push": {"m": {"$each": []}}}), json!({}));
    assert!(changed, "pushing nothing still creates the array");
    assert_eq!(doc, json!({"m": []}));
    let (_, changed) = run(json!({"$push": {"a": {"$each": [], "$slice": 5}}}), base);
    assert!(!changed);
}

#[test]
fn push_sort_across_types_uses_bson_order() {
    let (doc, _) = run(json!({"$push": {"a": {"$each": ["s", null, 2], "$sort": 1}}}), json!({"a": [true, 1]}));
    assert_eq!(doc["a"], json!([null, 1, 2, "s", true]));
}

#[test]
fn push_sort_by_document_fields() {
    let (doc, _) = run(
        json!({"$push": {"q": {"$each": [{"s": 2, "n": "b"}], "$sort": {"s": -1}, "$slice": 2}}}),
        json!({"q": [{"s": 1, "n": "a"}, {"s": 3, "n": "c"}]}),
    );
    assert_eq!(doc["q"], json!([{"s": 3, "n": "c"}, {"s": 2, "n": "b"}]));
}

#[test]
fn push_on_non_array_fails() {
    let err = apply_err(json!({"$push": {"a": 1}}), json!({"a": 5}));
    assert_update_failed(&err, "$push", "a", "non-array");
    let err = apply_err(json!({"$addToSet": {"a": 1}}), json!({"a": {"x": 1}}));
    assert_update_failed(&err, "$addToSet", "a", "non-array");
    for u in [json!({"$pop": {"a": 1}}), json!({"$pull": {"a": 1}}), json!({"$pullAll": {"a": [1]}})] {
        assert!(matches!(apply_err(u.clone(), json!({"a": "str"})), QueryError::UpdateFailed { .. }), "{u}");
    }
}

// ---------------------------------------------------------------- $addToSet / $pop / $pullAll / $pull

#[test]
fn add_to_set_adds_only_missing_values() {
    let (doc, changed) = run(
        json!({"$addToSet": {"a": 2.0, "b": {"$each": [1, 3, 3, 1.0]}, "c": {"$each": [1, 1]}}}),
        json!({"a": [1, 2], "b": [1]}),
    );
    assert!(changed);
    assert_eq!(doc, json!({"a": [1, 2], "b": [1, 3], "c": [1]}));
    let (_, changed) = run(json!({"$addToSet": {"a": {"x": 1}}}), json!({"a": [{"x": 1}]}));
    assert!(!changed);
    // Field order matters for document equality.
    let (doc, _) = run(json!({"$addToSet": {"a": {"y": 1, "x": 1}}}), json!({"a": [{"x": 1, "y": 1}]}));
    assert_eq!(doc["a"].as_array().map(Vec::len), Some(2));
    // An object without `$each` is a value.
    let (doc, _) = run(json!({"$addToSet": {"a": {"k": [1]}}}), json!({}));
    assert_eq!(doc, json!({"a": [{"k": [1]}]}));
}

#[test]
fn pop_removes_first_or_last() {
    assert_eq!(run(json!({"$pop": {"a": 1}}), json!({"a": [1, 2, 3]})).0, json!({"a": [1, 2]}));
    assert_eq!(run(json!({"$pop": {"a": -1}}), json!({"a": [1, 2, 3]})).0, json!({"a": [2, 3]}));
    let (doc, changed) = run(json!({"$pop": {"a": 1, "b": -1}}), json!({"a": []}));
    assert!(!changed, "empty and missing arrays are left alone");
    assert_eq!(doc, json!({"a": []}));
}

#[test]
fn pull_all_removes_equal_values() {
    let (doc, _) = run(json!({"$pullAll": {"a": [1, "x", [2]]}}), json!({"a": [1, 1.0, 2, [2], "x", "y"]}));
    assert_eq!(doc, json!({"a": [2, "y"]}));
    let (_, changed) = run(json!({"$pullAll": {"a": [9], "m": [1]}}), json!({"a": [1]}));
    assert!(!changed);
}

#[test]
fn pull_by_value_removes_equal_elements() {
    let (doc, _) = run(
        json!({"$pull": {"a": 2, "b": {"x": 1}, "c": [1]}}),
        json!({"a": [1, 2, 2.0, 3], "b": [], "c": [[1], [1, 2], 1]}),
    );
    assert_eq!(doc, json!({"a": [1, 3], "b": [], "c": [[1, 2], 1]}));
    let (_, changed) = run(json!({"$pull": {"a": 5, "missing": 1}}), json!({"a": [1]}));
    assert!(!changed);
}

#[test]
fn pull_with_operator_condition() {
    // needs the filter
    let (doc, _) = run(json!({"$pull": {"a": {"$gte": 6}}}), json!({"a": [3, 6, 9, 5, "x"]}));
    assert_eq!(doc, json!({"a": [3, 5, "x"]}));
    let (doc, _) = run(json!({"$pull": {"a": {"$in": ["x", 3]}}}), json!({"a": [3, 6, "x"]}));
    assert_eq!(doc, json!({"a": [6]}));
    let (doc, _) = run(json!({"$pull": {"a": "__REGEXP /^ap/"}}), json!({"a": ["apple", "banana", "apricot"]}));
    assert_eq!(doc, json!({"a": ["banana"]}));
}

#[test]
fn pull_with_document_condition() {
    // needs the filter
    let doc = json!({"results": [{"item": "A", "score": 5}, {"item": "B", "score": 8}, {"item": "C", "score": 8}, 8]});
    let (after, _) = run(json!({"$pull": {"results": {"score": 8, "item": "B"}}}), doc.clone());
    assert_eq!(after, json!({"results": [{"item": "A", "score": 5}, {"item": "C", "score": 8}, 8]}));
    let (after, _) = run(json!({"$pull": {"results": {"score": {"$gt": 6}}}}), doc.clone());
    assert_eq!(after, json!({"results": [{"item": "A", "score": 5}, 8]}), "scalars never match a document condition");
    let (after, _) = run(json!({"$pull": {"results": {"$or": [{"item": "A"}, {"item": "C"}]}}}), doc);
    assert_eq!(after, json!({"results": [{"item": "B", "score": 8}, 8]}));
}

// ---------------------------------------------------------------- positional forms

#[test]
fn all_positional_updates_every_element() {
    let (doc, _) =
        run(json!({"$inc": {"a.$[].n": 1}, "$set": {"b.$[]": 0}}), json!({"a": [{"n": 1}, {"n": 5}, {}], "b": [1, 2]}));
    assert_eq!(doc, json!({"a": [{"n": 2}, {"n": 6}, {"n": 1}], "b": [0, 0]}));
    let (doc, _) = run(json!({"$push": {"g.$[].m.$[]": 9}}), json!({"g": [{"m": [[1], []]}, {"m": []}]}));
    assert_eq!(doc, json!({"g": [{"m": [[1, 9], [9]]}, {"m": []}]}), "nested $[]");
    let (_, changed) = run(json!({"$set": {"a.$[].x": 1}}), json!({"a": []}));
    assert!(!changed);
}

#[test]
fn all_positional_needs_an_array() {
    let err = apply_err(json!({"$set": {"a.$[].x": 1}}), json!({"b": 1}));
    assert_update_failed(&err, "$set", "a.$[].x", "must exist");
    let err = apply_err(json!({"$set": {"a.$[].x": 1}}), json!({"a": {"x": 0}}));
    assert_update_failed(&err, "$set", "a.$[].x", "non-array");
    let err = apply_err(json!({"$inc": {"a.$[]": 1}}), json!({"a": [1, "two"]}));
    assert_update_failed(&err, "$inc", "a.1", "non-numeric");
}

#[test]
fn positional_without_query_or_match_fails() {
    let err = apply_err(json!({"$set": {"a.$.b": 1}}), json!({"a": [{"b": 0}]}));
    assert_update_failed(&err, "$set", "a.$.b", "positional operator did not find the match");
    let filter = Filter::parse(&json!({"a.b": 7}), &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    let with_query = UpdateContext { query: Some(&filter), ..ctx() };
    let err = apply_err_with(json!({"$set": {"a.$.b": 1}}), json!({"a": [{"b": 0}]}), &with_query);
    assert_update_failed(&err, "$set", "a.$.b", "positional operator did not find the match");
}

#[test]
fn positional_uses_the_first_match() {
    // needs the filter
    let filter =
        Filter::parse(&json!({"grades.score": {"$gte": 80}}), &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    let with_query = UpdateContext { query: Some(&filter), ..ctx() };
    let doc = json!({"grades": [{"score": 70}, {"score": 85}, {"score": 90}]});
    let (after, changed) = run_with(json!({"$set": {"grades.$.top": true}, "$inc": {"n": 1}}), doc, &with_query);
    assert!(changed);
    assert_eq!(after, json!({"grades": [{"score": 70}, {"score": 85, "top": true}, {"score": 90}], "n": 1}));

    let filter = Filter::parse(&json!({"tags": "b"}), &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    let with_query = UpdateContext { query: Some(&filter), ..ctx() };
    let (after, _) = run_with(json!({"$set": {"tags.$": "B"}}), json!({"tags": ["a", "b", "c"]}), &with_query);
    assert_eq!(after, json!({"tags": ["a", "B", "c"]}));
}

// ---------------------------------------------------------------- order, atomicity

#[test]
fn fields_are_applied_in_path_order() {
    // MongoDB 5.0+ creates new fields in lexicographic order of their names, and array positions in
    // numeric order, whatever the order of the request.
    let (doc, _) = run(json!({"$set": {"z": 1, "a": 2}, "$inc": {"m": 1}}), json!({}));
    let keys: Vec<&String> = doc.as_object().map(|m| m.keys().collect()).unwrap_or_default();
    assert_eq!(keys, ["a", "m", "z"]);
    let (doc, _) = run(json!({"$set": {"o.10": 1, "o.9": 2}}), json!({}));
    let keys: Vec<&String> = doc["o"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
    assert_eq!(keys, ["9", "10"]);
}

#[test]
fn a_failing_operation_undoes_the_earlier_ones() {
    let doc = json!({"a": 1, "s": "x", "arr": [1]});
    let err = apply_err(json!({"$set": {"a": 2, "new": true}, "$push": {"arr": 2}, "$inc": {"s": 1}}), doc);
    assert_update_failed(&err, "$inc", "s", "non-numeric");
}

#[test]
fn identical_is_strict() {
    assert!(apply::identical(&json!({"a": [1, {"b": "x"}]}), &json!({"a": [1, {"b": "x"}]})));
    assert!(!apply::identical(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1})));
    assert!(!apply::identical(&json!(1), &json!(1.0)));
    assert!(!apply::identical(&json!([1]), &json!({"0": 1})));
    assert!(!apply::identical(&json!({"a": [1]}), &json!({"a": [1, 2]})));
}

// ---------------------------------------------------------------- upsert seed

#[test]
fn upsert_seed_takes_equalities() {
    let seed = Update::upsert_seed(&json!({
        "_id": "k1",
        "a": 1,
        "b.c": "x",
        "b.d": {"$eq": [1, 2]},
        "n": {"$gt": 5},
        "r": "__REGEXP /^x/",
        "obj": {"k": 1},
        "$or": [{"o": 1}],
        "$and": [{"e": 2}, {"f": {"$eq": 3, "$lt": 9}}, {"g": {"$in": [1]}}],
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seed, json!({"_id": "k1", "a": 1, "b": {"c": "x", "d": [1, 2]}, "obj": {"k": 1}, "e": 2, "f": 3}));
    assert_eq!(Update::upsert_seed(&json!({})).ok(), Some(json!({})));
}

#[test]
fn upsert_seed_then_update_on_insert() {
    let mut doc = Update::upsert_seed(&json!({"name": "x", "n": {"$gte": 1}})).unwrap_or_else(|e| panic!("{e}"));
    let insert = UpdateContext { is_insert: true, ..ctx() };
    let changed = parse(json!({"$setOnInsert": {"_id": "id1"}, "$inc": {"n": 2}, "$push": {"l": 1}}))
        .apply(&mut doc, &insert)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(changed);
    assert_eq!(doc, json!({"name": "x", "_id": "id1", "n": 2, "l": [1]}));
}

#[test]
fn upsert_seed_refuses_conflicts() {
    assert!(is_bad(&Update::upsert_seed(&json!({"a": 1, "$and": [{"a": 2}]})).unwrap_err(), "matched twice"));
    assert!(is_bad(&Update::upsert_seed(&json!({"a": {"b": 1}, "a.b": 1})).unwrap_err(), "both paths"));
    assert!(Update::upsert_seed(&json!([1])).is_err());
    assert!(matches!(Update::upsert_seed(&json!({"a..b": 1})), Err(QueryError::BadPath { .. })));
}

#[test]
fn hostile_input_does_not_panic() {
    for u in [
        json!({"$push": {"a": {"$each": [1], "$position": i64::MIN, "$slice": i64::MIN}}}),
        json!({"$push": {"a": {"$each": [1], "$position": 1e300}}}),
        json!({"$set": {"a.99999": 1}}),
        json!({"$inc": {"a": u64::MAX}}),
        json!({"$mul": {"a": -1.5e308}}),
        json!({"$currentDate": {"a": true}}),
    ] {
        if let Ok(update) = Update::parse(&u, &Limits::default()) {
            let mut doc = json!({"a": [1, 2]});
            let ctx = UpdateContext { now_millis: i64::MAX, ..ctx() };
            let _ = update.apply(&mut doc, &ctx);
        }
    }
}

// ---------------------------------------------------------------- properties

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..4).prop_map(Value::from),
            Just(json!(1.5)),
            "[ab]{0,1}".prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::vec(("[abc]", inner), 0..3).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn update() -> impl Strategy<Value = Value> {
        let op = prop::sample::select(vec![
            "$set",
            "$unset",
            "$inc",
            "$mul",
            "$min",
            "$max",
            "$push",
            "$addToSet",
            "$pop",
            "$pull",
            "$pullAll",
        ]);
        let path = "[abc](\\.([0-2]|[abc]|\\$\\[\\])){0,2}";
        prop::collection::vec((op, path, value()), 1..4).prop_map(|ops| {
            let mut update = serde_json::Map::new();
            for (op, path, v) in ops {
                let fields = update.entry(op.to_string()).or_insert_with(|| json!({}));
                if let Value::Object(f) = fields {
                    f.insert(path, v);
                }
            }
            Value::Object(update)
        })
    }

    proptest! {
        /// The change flag is exact and a failed update leaves the document as it was.
        #[test]
        fn apply_is_atomic_and_reports_changes(u in update(), doc in value()) {
            let Ok(update) = Update::parse(&u, &Limits::default()) else { return Ok(()) };
            let mut doc = json!({"_id": 1, "d": doc});
            let before = doc.clone();
            match update.apply(&mut doc, &ctx()) {
                Err(_) => prop_assert!(apply::identical(&doc, &before)),
                Ok(changed) => prop_assert_eq!(changed, !apply::identical(&doc, &before)),
            }
        }

        /// `$set` reaches a fixed point: applying it twice changes nothing the second time.
        #[test]
        fn set_is_idempotent(path in "[abc](\\.([0-2]|[abc])){0,2}", v in value(), doc in value()) {
            let update = Update::parse(&json!({"$set": {path: v}}), &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
            let mut doc = json!({"a": doc});
            if update.apply(&mut doc, &ctx()).is_ok() {
                prop_assert_eq!(update.apply(&mut doc, &ctx()).ok(), Some(false));
            }
        }
    }
}
