//! Tests of filter parsing, matching, index hints and the positional operator.

use super::*;
use crate::path::{index_keys, IndexKey};
use proptest::prelude::*;
use serde_json::json;

fn parse(f: &Value) -> Result<Filter> {
    Filter::parse(f, &Limits::default())
}

fn m(f: Value, doc: Value) -> bool {
    parse(&f).unwrap_or_else(|e| panic!("{f}: {e}")).matches(&doc).unwrap_or_else(|e| panic!("{f}: {e}"))
}

/// (filter, document, expected) cases, checked in one table so a failure names the case.
fn check_table(cases: &[(Value, Value, bool)]) {
    for (i, (f, doc, want)) in cases.iter().enumerate() {
        assert_eq!(m(f.clone(), doc.clone()), *want, "case {i}: filter {f} on {doc}");
    }
}

#[test]
fn equality_and_arrays() {
    check_table(&[
        (json!({}), json!({"a": 1}), true),
        (json!({"a": 1}), json!({"a": 1.0}), true),
        (json!({"a": 1}), json!({"a": "1"}), false),
        (json!({"a": 1}), json!({"a": [3, 1]}), true),
        (json!({"a": [1, 2]}), json!({"a": [1, 2]}), true),
        (json!({"a": [1, 2]}), json!({"a": [2, 1]}), false),
        (json!({"a": [1, 2]}), json!({"a": [[1, 2], 3]}), true),
        (json!({"a": {"b": 1, "c": 2}}), json!({"a": {"b": 1, "c": 2}}), true),
        (json!({"a": {"b": 1, "c": 2}}), json!({"a": {"c": 2, "b": 1}}), false /* field order matters */),
        (json!({"a": {"b": 1}}), json!({"a": {"b": 1, "c": 2}}), false),
        (json!({"a": {}}), json!({"a": {}}), true),
        (json!({"a.b": 1}), json!({"a": {"b": 1}}), true),
        (json!({"a.b": 1}), json!({"a": [{"b": 2}, {"b": 1}]}), true),
        (json!({"a.b": 1}), json!({"a": [{"b": [0, 1]}]}), true),
        (json!({"a.b.c": 1}), json!({"a": [{"b": [{"c": 1}]}]}), true),
        (json!({"a.1": 5}), json!({"a": [4, 5]}), true),
        (json!({"a.0": 5}), json!({"a": [4, 5]}), false),
        (json!({"a.0.b": 1}), json!({"a": [{"b": 1}]}), true),
        (json!({"_id": "abc"}), json!({"_id": "abc"}), true),
        (json!({"_id": "5f1d7a3e2c3b4a0012345678"}), json!({"_id": "5f1d7a3e2c3b4a0012345678"}), true),
        (json!({"a": 1, "b": 2}), json!({"a": 1, "b": 3}), false),
        (json!({"a": true}), json!({"a": 1}), false),
        (json!({"$comment": "ignored", "a": 1}), json!({"a": 1}), true),
    ]);
}

#[test]
fn null_and_missing() {
    check_table(&[
        (json!({"a": null}), json!({}), true),
        (json!({"a": null}), json!({"a": null}), true),
        (json!({"a": null}), json!({"a": 0}), false),
        (json!({"a": null}), json!({"a": [1, null]}), true),
        (json!({"a": null}), json!({"a": [1]}), false),
        (json!({"a.b": null}), json!({"a": [{"b": 1}, {"c": 1}]}), true),
        (json!({"a.b": null}), json!({"a": [{"b": 1}]}), false),
        (json!({"a": {"$eq": null}}), json!({"b": 1}), true),
        (json!({"a": {"$ne": null}}), json!({"b": 1}), false),
        (json!({"a": {"$ne": null}}), json!({"a": 0}), true),
        (json!({"a": {"$ne": null}}), json!({"a": [1, null]}), false),
        (json!({"a": {"$gte": null}}), json!({}), true),
        (json!({"a": {"$lte": null}}), json!({"a": null}), true),
        (json!({"a": {"$gt": null}}), json!({"a": null}), false),
        (json!({"a": {"$lt": null}}), json!({"a": 1}), false),
        (json!({"a": {"$in": [null]}}), json!({}), true),
        (json!({"a": {"$nin": [null]}}), json!({}), false),
        (json!({"a": {"$nin": [null]}}), json!({"a": 1}), true),
    ]);
}

#[test]
fn comparisons_are_type_bracketed() {
    check_table(&[
        (json!({"a": {"$gt": 5}}), json!({"a": 6}), true),
        (json!({"a": {"$gt": 5}}), json!({"a": 5}), false),
        (json!({"a": {"$gte": 5}}), json!({"a": 5.0}), true),
        (json!({"a": {"$gt": 5}}), json!({"a": "6"}), false),
        (json!({"a": {"$gt": 5}}), json!({"a": true}), false),
        (json!({"a": {"$gt": 5}}), json!({"a": {"x": 1}}), false),
        (json!({"a": {"$lt": 5}}), json!({"a": null}), false),
        (json!({"a": {"$lt": 5}}), json!({}), false),
        (json!({"a": {"$lt": "b"}}), json!({"a": "a"}), true),
        (json!({"a": {"$lt": "b"}}), json!({"a": 1}), false),
        (json!({"a": {"$gt": 1, "$lt": 5}}), json!({"a": [0, 10]}), true /* different elements */),
        (json!({"a": {"$gt": 1, "$lt": 5}}), json!({"a": [0, 0]}), false),
        (json!({"a": {"$gt": [1]}}), json!({"a": [2]}), true),
        (json!({"a": {"$lte": false}}), json!({"a": false}), true),
        (json!({"a": {"$gt": false}}), json!({"a": true}), true),
        (json!({"a": {"$gt": 9007199254740993u64}}), json!({"a": 9007199254740994u64}), true),
    ]);
}

#[test]
fn dates_are_compared_by_instant_and_bracketed_apart_from_strings() {
    check_table(&[
        (json!({"d": {"$gt": "2024-01-01T00:00:00Z"}}), json!({"d": "2024-06-01T00:00:00.000Z"}), true),
        (json!({"d": {"$gt": "2024-01-01T00:00:00Z"}}), json!({"d": "2023-06-01T00:00:00Z"}), false),
        (json!({"d": "2024-01-01T02:00:00+02:00"}), json!({"d": "2024-01-01T00:00:00.000Z"}), true),
        (json!({"d": {"$gt": "2024-01-01T00:00:00Z"}}), json!({"d": "zzz"}), false),
        (json!({"d": {"$lt": "zzz"}}), json!({"d": "2024-01-01T00:00:00Z"}), false),
        (json!({"d": {"$type": "date"}}), json!({"d": "2024-01-01T00:00:00Z"}), true),
        (json!({"d": {"$type": "string"}}), json!({"d": "2024-01-01T00:00:00Z"}), false),
        (json!({"d": {"$regex": "^2024"}}), json!({"d": "2024-01-01T00:00:00Z"}), true),
    ]);
}

#[test]
fn in_nin_ne() {
    check_table(&[
        (json!({"a": {"$in": [1, 2]}}), json!({"a": 2}), true),
        (json!({"a": {"$in": [1, 2]}}), json!({"a": [5, 1]}), true),
        (json!({"a": {"$in": []}}), json!({"a": 1}), false),
        (json!({"a": {"$in": [[1, 2]]}}), json!({"a": [1, 2]}), true),
        (json!({"a": {"$in": ["__REGEXP /^x/i"]}}), json!({"a": "Xyz"}), true),
        (json!({"a": {"$nin": ["__REGEXP /^x/"]}}), json!({"a": "xyz"}), false),
        (json!({"a": {"$nin": [1, 2]}}), json!({"a": 3}), true),
        (json!({"a": {"$nin": [1, 2]}}), json!({"a": [3, 2]}), false),
        (json!({"a": {"$nin": [1, 2]}}), json!({}), true),
        (json!({"a": {"$ne": 1}}), json!({"a": [1, 2]}), false),
        (json!({"a": {"$ne": 1}}), json!({}), true),
        (json!({"a": {"$ne": "__REGEXP /^a/"}}), json!({"a": "abc"}), false),
        (json!({"a": {"$eq": "__REGEXP /^a/"}}), json!({"a": "abc"}), true),
        (json!({"a.b": {"$ne": 1}}), json!({"a": [{"b": 2}, {"b": 1}]}), false),
    ]);
}

#[test]
fn not_exists_type() {
    check_table(&[
        (json!({"a": {"$not": {"$gt": 5}}}), json!({"a": 3}), true),
        (json!({"a": {"$not": {"$gt": 5}}}), json!({}), true),
        (json!({"a": {"$not": {"$gt": 5}}}), json!({"a": [3, 7]}), false),
        (json!({"a": {"$not": "__REGEXP /^a/"}}), json!({"a": "b"}), true),
        (json!({"a": {"$not": {"$regex": "^a", "$options": "i"}}}), json!({"a": "Abc"}), false),
        (json!({"a": {"$exists": true}}), json!({"a": null}), true),
        (json!({"a": {"$exists": true}}), json!({}), false),
        (json!({"a": {"$exists": false}}), json!({}), true),
        (json!({"a": {"$exists": 0}}), json!({}), true),
        (json!({"a.b": {"$exists": true}}), json!({"a": [{"c": 1}, {"b": null}]}), true),
        (json!({"a.b": {"$exists": false}}), json!({"a": [{"c": 1}, {"b": null}]}), false),
        (json!({"a": {"$type": "array"}}), json!({"a": []}), true),
        (json!({"a": {"$type": 4}}), json!({"a": [[1]]}), true),
        (json!({"a": {"$type": "array"}}), json!({"a": 1}), false),
        (json!({"a": {"$type": "int"}}), json!({"a": [1]}), true),
        (json!({"a": {"$type": "double"}}), json!({"a": 1.5}), true),
        (json!({"a": {"$type": 1}}), json!({"a": 1}), false),
        (json!({"a": {"$type": "long"}}), json!({"a": 1u64 << 40}), true),
        (json!({"a": {"$type": 18}}), json!({"a": 3}), false),
        (json!({"a": {"$type": "number"}}), json!({"a": 2.5}), true),
        (json!({"a": {"$type": ["string", "bool"]}}), json!({"a": false}), true),
        (json!({"a": {"$type": "null"}}), json!({"a": null}), true),
        (json!({"a": {"$type": "null"}}), json!({}), false),
        (json!({"a": {"$type": 3}}), json!({"a": {"x": 1}}), true),
        (json!({"a": {"$type": "decimal"}}), json!({"a": 1}), false),
        (json!({"a": {"$type": 2}}), json!({"a": "s"}), true),
        (json!({"a": {"$type": 8}}), json!({"a": true}), true),
        (json!({"a": {"$type": 10}}), json!({"a": null}), true),
        (json!({"a": {"$type": 16}}), json!({"a": 7}), true),
        (json!({"a": {"$type": 9}}), json!({"a": "2020-01-01T00:00:00Z"}), true),
    ]);
}

#[test]
fn regex() {
    check_table(&[
        (json!({"a": {"$regex": "^ab"}}), json!({"a": "abc"}), true),
        (json!({"a": {"$regex": "^ab"}}), json!({"a": "ABC"}), false),
        (json!({"a": {"$regex": "^ab", "$options": "i"}}), json!({"a": "ABC"}), true),
        (json!({"a": {"$options": "i", "$regex": "^ab"}}), json!({"a": "ABC"}), true),
        (json!({"a": {"$regex": "^b", "$options": "m"}}), json!({"a": "a\nb"}), true),
        (json!({"a": {"$regex": "a.b", "$options": "s"}}), json!({"a": "a\nb"}), true),
        (json!({"a": {"$regex": "a # comment\n b", "$options": "x"}}), json!({"a": "ab"}), true),
        (json!({"a": {"$regex": "^ab", "$options": "u"}}), json!({"a": "abc"}), true),
        (json!({"a": {"$regex": "b"}}), json!({"a": ["x", "abc"]}), true),
        (json!({"a": {"$regex": "1"}}), json!({"a": 1}), false),
        (json!({"a": {"$regex": "x"}}), json!({}), false),
        (json!({"a": "__REGEXP /^hel+o$/i"}), json!({"a": "HELLO"}), true),
        (json!({"a": "__REGEXP /^hel+o$/"}), json!({"a": "HELLO"}), false),
        (json!({"a": "__REGEXP /a\\/b/"}), json!({"a": "xa/b"}), true),
        (json!({"a": {"$regex": "__REGEXP /^x/i"}}), json!({"a": "Xy"}), true),
        (json!({"a.b": "__REGEXP /^x/"}), json!({"a": [{"b": "q"}, {"b": ["r", "xx"]}]}), true),
    ]);
}

#[test]
fn mod_all_size_elem_match() {
    check_table(&[
        (json!({"a": {"$mod": [4, 0]}}), json!({"a": 8}), true),
        (json!({"a": {"$mod": [4, 1]}}), json!({"a": 8}), false),
        (json!({"a": {"$mod": [4, 0]}}), json!({"a": 8.9}), true /* truncated toward zero */),
        (json!({"a": {"$mod": [4, -1]}}), json!({"a": -5}), true),
        (json!({"a": {"$mod": [4, 0]}}), json!({"a": "8"}), false),
        (json!({"a": {"$mod": [4, 0]}}), json!({"a": [3, 12]}), true),
        (json!({"a": {"$mod": [-1, 0]}}), json!({"a": i64::MIN}), true),
        (json!({"a": {"$all": [1, 2]}}), json!({"a": [2, 3, 1]}), true),
        (json!({"a": {"$all": [1, 2]}}), json!({"a": [2, 3]}), false),
        (json!({"a": {"$all": [1]}}), json!({"a": 1}), true),
        (json!({"a": {"$all": []}}), json!({"a": []}), false),
        (json!({"a": {"$all": [[1, 2]]}}), json!({"a": [1, 2]}), true),
        (json!({"a": {"$all": ["__REGEXP /^a/", "b"]}}), json!({"a": ["ax", "b"]}), true),
        (
            json!({"a": {"$all": [{"$elemMatch": {"x": 1}}, {"$elemMatch": {"y": {"$gt": 1}}}]}}),
            json!({"a": [{"x": 1}, {"y": 2}]}),
            true,
        ),
        (json!({"a": {"$all": [{"$elemMatch": {"x": 1}}, {"$elemMatch": {"x": 2}}]}}), json!({"a": [{"x": 1}]}), false),
        (json!({"a": {"$size": 2}}), json!({"a": [1, 2]}), true),
        (json!({"a": {"$size": 2}}), json!({"a": [1]}), false),
        (json!({"a": {"$size": 0}}), json!({"a": []}), true),
        (json!({"a": {"$size": 0}}), json!({}), false),
        (json!({"a": {"$size": 1}}), json!({"a": "x"}), false),
        (json!({"a": {"$size": 2.0}}), json!({"a": [[1], [2]]}), true),
        (json!({"a": {"$size": 1}}), json!({"a": [[1, 2]]}), true),
        (json!({"a.b": {"$size": 1}}), json!({"a": [{"b": [1, 2]}, {"b": [3]}]}), true),
        (json!({"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}}), json!({"a": [0, 10]}), false),
        (json!({"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}}), json!({"a": [0, 3]}), true),
        (json!({"a": {"$elemMatch": {"$gt": 1}}}), json!({"a": [[2]]}), false /* elements are not expanded */),
        (json!({"a": {"$elemMatch": {"$gt": 1}}}), json!({"a": 5}), false),
        (
            json!({"a": {"$elemMatch": {"b": 1, "c": {"$gt": 1}}}}),
            json!({"a": [{"b": 1, "c": 0}, {"b": 2, "c": 2}]}),
            false,
        ),
        (
            json!({"a": {"$elemMatch": {"b": 1, "c": {"$gt": 1}}}}),
            json!({"a": [{"b": 1, "c": 0}, {"b": 1, "c": 2}]}),
            true,
        ),
        (json!({"a": {"$elemMatch": {"$or": [{"b": 5}, {"c": 5}]}}}), json!({"a": [{"c": 5}]}), true),
        (json!({"a": {"$elemMatch": {}}}), json!({"a": [1, {"x": 1}]}), true),
        (json!({"a": {"$elemMatch": {}}}), json!({"a": [1, 2]}), false),
        (json!({"a": {"$elemMatch": {"$elemMatch": {"$eq": 2}}}}), json!({"a": [[1], [2]]}), true),
        (json!({"a.b": {"$elemMatch": {"$eq": 3}}}), json!({"a": [{"b": [1]}, {"b": [3]}]}), true),
        (json!({"a": {"$elemMatch": {"$in": ["__REGEXP /^z/"]}}}), json!({"a": ["q", "zz"]}), true),
        (json!({"a": {"$elemMatch": {"$ne": 1}}}), json!({"a": [1, 1]}), false),
    ]);
}

#[test]
fn bit_operators() {
    check_table(&[
        (json!({"a": {"$bitsAllSet": 5}}), json!({"a": 13}), true),
        (json!({"a": {"$bitsAllSet": 5}}), json!({"a": 12}), false),
        (json!({"a": {"$bitsAllSet": [0, 2]}}), json!({"a": 13}), true),
        (json!({"a": {"$bitsAnySet": [1, 4]}}), json!({"a": 13}), false),
        (json!({"a": {"$bitsAnySet": [1, 3]}}), json!({"a": 13}), true),
        (json!({"a": {"$bitsAllClear": [1, 4]}}), json!({"a": 13}), true),
        (json!({"a": {"$bitsAllClear": [0]}}), json!({"a": 13}), false),
        (json!({"a": {"$bitsAnyClear": [0, 1]}}), json!({"a": 13}), true),
        (json!({"a": {"$bitsAnyClear": [0, 2]}}), json!({"a": 13}), false),
        (json!({"a": {"$bitsAllSet": [63, 0]}}), json!({"a": -1}), true /* two's complement */),
        (json!({"a": {"$bitsAllSet": [200]}}), json!({"a": -2}), true /* sign extension */),
        (json!({"a": {"$bitsAllClear": [200]}}), json!({"a": 2}), true),
        (json!({"a": {"$bitsAllSet": 1}}), json!({"a": 1.0}), true),
        (json!({"a": {"$bitsAllSet": 1}}), json!({"a": 1.5}), false),
        (json!({"a": {"$bitsAllSet": 1}}), json!({"a": "1"}), false),
        (json!({"a": {"$bitsAllSet": 1}}), json!({"a": u64::MAX}), false),
        (json!({"a": {"$bitsAnySet": 2}}), json!({"a": [1, 2]}), true),
        (json!({"a": {"$bitsAllClear": 2}}), json!({}), false),
    ]);
}

#[test]
fn logical_operators() {
    check_table(&[
        (json!({"$and": [{"a": 1}, {"b": 2}]}), json!({"a": 1, "b": 2}), true),
        (json!({"$and": [{"a": 1}, {"b": 2}]}), json!({"a": 1}), false),
        (json!({"$or": [{"a": 1}, {"b": 2}]}), json!({"b": 2}), true),
        (json!({"$or": [{"a": 1}, {"b": 2}]}), json!({"c": 2}), false),
        (json!({"$nor": [{"a": 1}, {"b": 2}]}), json!({"c": 2}), true),
        (json!({"$nor": [{"a": 1}, {"b": 2}]}), json!({"a": 1}), false),
        (json!({"a": 1, "$or": [{"b": 1}, {"c": 1}]}), json!({"a": 1, "c": 1}), true),
        (json!({"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}), json!({"a": 1, "b": 1}), true),
    ]);
}

fn err(f: Value) -> QueryError {
    match parse(&f) {
        Ok(_) => panic!("{f} should be refused"),
        Err(e) => e,
    }
}

#[test]
fn bad_input_is_refused_with_typed_errors() {
    assert!(matches!(err(json!({"$where": "this.a == 1"})), QueryError::JavaScriptRefused { .. }));
    assert!(matches!(err(json!({"a": {"$where": "1"}})), QueryError::JavaScriptRefused { .. }));
    assert!(matches!(err(json!({"$foo": 1})), QueryError::UnknownOperator { op } if op == "$foo"));
    assert!(matches!(err(json!({"a": {"$foo": 1}})), QueryError::UnknownOperator { op } if op == "$foo"));
    assert!(matches!(err(json!({"$text": {"$search": "x"}})), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"a": {"$near": [0, 0]}})), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"a": {"$gt": 1, "b": 2}})), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"a": {"b": 2, "$gt": 1}})), QueryError::BadArgument { .. }));
    for bad in [
        json!([]),
        json!("x"),
        json!({"$and": []}),
        json!({"$or": {}}),
        json!({"$nor": [1]}),
        json!({"a": {"$in": 1}}),
        json!({"a": {"$nin": [{"$gt": 1}]}}),
        json!({"a": {"$not": 1}}),
        json!({"a": {"$not": {}}}),
        json!({"a": {"$type": "nope"}}),
        json!({"a": {"$type": 99}}),
        json!({"a": {"$type": true}}),
        json!({"a": {"$regex": 1}}),
        json!({"a": {"$options": "i"}}),
        json!({"a": {"$mod": [0, 1]}}),
        json!({"a": {"$mod": [1]}}),
        json!({"a": {"$mod": [1, 2, 3]}}),
        json!({"a": {"$mod": "x"}}),
        json!({"a": {"$all": 1}}),
        json!({"a": {"$all": [{"$elemMatch": {"x": 1}}, 2]}}),
        json!({"a": {"$elemMatch": 1}}),
        json!({"a": {"$elemMatch": {"$gt": 1, "b": 1}}}),
        json!({"a": {"$size": -1}}),
        json!({"a": {"$size": 1.5}}),
        json!({"a": {"$size": "1"}}),
        json!({"a": {"$bitsAllSet": -1}}),
        json!({"a": {"$bitsAllSet": 1.5}}),
        json!({"a": {"$bitsAllSet": [-1]}}),
        json!({"a": {"$bitsAllSet": "1"}}),
        json!({"a..b": 1}),
    ] {
        let _ = err(bad);
    }
    assert!(
        matches!(err(json!({"a": {"$regex": "(a)\\1"}})), QueryError::BadRegex { pattern, .. } if pattern == "(a)\\1")
    );
    assert!(matches!(err(json!({"a": "__REGEXP /(?=x)/"})), QueryError::BadRegex { .. }));
    assert!(matches!(err(json!({"a": {"$regex": "a", "$options": "z"}})), QueryError::BadRegex { .. }));
    let tight = Limits { max_regex_len: 3, ..Limits::default() };
    assert!(matches!(Filter::parse(&json!({"a": {"$regex": "abcd"}}), &tight), Err(QueryError::TooLarge { .. })));
    let shallow = Limits { max_depth: 2, ..Limits::default() };
    assert!(matches!(Filter::parse(&json!({"a": {"b": {"c": 1}}}), &shallow), Err(QueryError::TooDeep { .. })));
}

#[test]
fn all_and_is_empty() {
    assert!(Filter::all().is_empty());
    assert!(Filter::all().matches(&json!({"x": 1})).unwrap());
    assert!(parse(&json!({})).unwrap().is_empty());
    assert!(!parse(&json!({"a": 1})).unwrap().is_empty());
}

// --- index hints -----------------------------------------------------------------------------------

fn p(s: &str) -> FieldPath {
    FieldPath::parse(s).unwrap()
}

fn hints(f: Value) -> Vec<IndexHint> {
    parse(&f).unwrap().index_hints()
}

#[test]
fn hints_from_conjunctive_conditions() {
    let h = hints(json!({
        "a": 1,
        "b": {"$in": [1, "x"]},
        "c": {"$gte": 2, "$lt": 9},
        "d": {"$exists": false},
        "$and": [{"e": {"$eq": "y"}}],
        "$or": [{"f": 1}, {"g": 1}],
    }));
    assert_eq!(
        h,
        vec![
            IndexHint { path: p("a"), predicate: HintPredicate::Eq(json!(1)) },
            IndexHint { path: p("b"), predicate: HintPredicate::In(vec![json!(1), json!("x")]) },
            IndexHint { path: p("c"), predicate: HintPredicate::Range { lower: Some((json!(2), true)), upper: None } },
            IndexHint { path: p("c"), predicate: HintPredicate::Range { lower: None, upper: Some((json!(9), false)) } },
            IndexHint { path: p("d"), predicate: HintPredicate::Exists(false) },
            IndexHint { path: p("e"), predicate: HintPredicate::Eq(json!("y")) },
        ]
    );
}

#[test]
fn no_hints_when_unsure() {
    for f in [
        json!({"a": "__REGEXP /x/"}),
        json!({"a": {"$in": [1, "__REGEXP /x/"]}}),
        json!({"a": {"$in": [1, null]}}),
        json!({"a": {"$gt": null}}),
        json!({"a": {"$gte": null}}),
        json!({"a": {"b": 1}}),
        json!({"a": [1, 2]}),
        json!({"a": {"$ne": 1}}),
        json!({"a": {"$not": {"$gt": 1}}}),
        json!({"$or": [{"a": 1}]}),
        json!({"$nor": [{"a": 1}]}),
        json!({"a": {"$elemMatch": {"b": 1}}}),
    ] {
        assert_eq!(hints(f.clone()), vec![], "{f}");
    }
}

/// Does some index key of `path` in `doc` satisfy the hint? (The reference semantics of hints.)
fn hint_holds(hint: &IndexHint, doc: &Value) -> bool {
    let keys = index_keys(doc, &hint.path);
    let eq = |k: &IndexKey<'_>, v: &Value| match k {
        IndexKey::Value(x) => value::values_equal(x, v),
        IndexKey::Missing => v.is_null(),
    };
    match &hint.predicate {
        HintPredicate::Eq(v) => keys.iter().any(|k| eq(k, v)),
        HintPredicate::In(vs) => {
            keys.iter().any(|k| matches!(k, IndexKey::Value(x) if vs.iter().any(|v| value::values_equal(x, v))))
        }
        HintPredicate::Range { lower, upper } => keys.iter().any(|k| {
            let IndexKey::Value(x) = k else { return false };
            let ok_lower = lower.as_ref().is_none_or(|(b, inc)| {
                value::type_rank(x) == value::type_rank(b) && {
                    let o = value::compare(x, b);
                    o == Ordering::Greater || (*inc && o == Ordering::Equal)
                }
            });
            let ok_upper = upper.as_ref().is_none_or(|(b, inc)| {
                value::type_rank(x) == value::type_rank(b) && {
                    let o = value::compare(x, b);
                    o == Ordering::Less || (*inc && o == Ordering::Equal)
                }
            });
            ok_lower && ok_upper
        }),
        HintPredicate::Exists(true) => keys.iter().any(|k| matches!(k, IndexKey::Value(_))),
        HintPredicate::Exists(false) => keys.iter().any(|k| matches!(k, IndexKey::Missing)),
    }
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        (-3i64..4).prop_map(Value::from),
        Just(json!(1.5)),
        prop_oneof![Just("a"), Just("b"), Just("2024-01-01T00:00:00Z")].prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop_oneof![Just("a"), Just("b")], inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn arb_doc() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop_oneof![Just("a"), Just("b")], arb_value()), 0..3)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn arb_condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_scalar(),
        arb_scalar().prop_map(|v| json!({"$eq": v})),
        prop::collection::vec(arb_scalar(), 0..3).prop_map(|v| json!({"$in": v})),
        (arb_scalar(), arb_scalar()).prop_map(|(a, b)| json!({"$gt": a, "$lte": b})),
        (arb_scalar(), arb_scalar()).prop_map(|(a, b)| json!({"$gte": a, "$lt": b})),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        prop::collection::vec(arb_scalar(), 0..3).prop_map(|v| json!({"$all": v})),
    ]
}

fn arb_filter() -> impl Strategy<Value = Value> {
    let path = prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("a.0"), Just("b.a.b")];
    prop::collection::vec((path, arb_condition()), 1..3).prop_map(|conds| {
        let mut top = Map::new();
        let mut and = Vec::new();
        for (i, (p, c)) in conds.into_iter().enumerate() {
            if i % 2 == 0 {
                top.insert(p.to_string(), c);
            } else {
                and.push(json!({ p: c }));
            }
        }
        if !and.is_empty() {
            top.insert("$and".into(), Value::Array(and));
        }
        Value::Object(top)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// A hint must never exclude a matching document.
    #[test]
    fn index_hints_are_sound(filter in arb_filter(), doc in arb_doc()) {
        let f = parse(&filter).unwrap();
        if f.matches(&doc).unwrap() {
            for h in f.index_hints() {
                prop_assert!(hint_holds(&h, &doc), "hint {:?} excludes {} matching {}", h, doc, filter);
            }
        }
    }

    /// Matching never panics and `$nor`/`$not` are exact negations.
    #[test]
    fn negations_are_exact(filter in arb_filter(), doc in arb_doc()) {
        let f = parse(&filter).unwrap();
        let nor = parse(&json!({"$nor": [filter]})).unwrap();
        prop_assert_eq!(f.matches(&doc).unwrap(), !nor.matches(&doc).unwrap());
    }
}

// --- positional operator ---------------------------------------------------------------------------

#[test]
fn first_match_index_for_positional_updates() {
    let doc = json!({"grades": [{"score": 70}, {"score": 85}, {"score": 90}], "tags": ["a", "b", "c"], "n": 1});
    let idx = |f: Value, path: &str| parse(&f).unwrap().first_match_index(&doc, &p(path));
    assert_eq!(idx(json!({"grades.score": {"$gt": 80}}), "grades"), Some(1));
    assert_eq!(idx(json!({"tags": "b"}), "tags"), Some(1));
    assert_eq!(idx(json!({"tags": {"$in": ["c", "b"]}}), "tags"), Some(1));
    assert_eq!(idx(json!({"grades": {"$elemMatch": {"score": {"$gte": 90}}}}), "grades"), Some(2));
    assert_eq!(idx(json!({"n": 1, "$and": [{"grades.score": 70}]}), "grades"), Some(0));
    assert_eq!(idx(json!({"grades.score": {"$gt": 100}}), "grades"), None);
    assert_eq!(idx(json!({"n": 1}), "grades"), None, "no condition on the array");
    assert_eq!(idx(json!({"tags": "b"}), "n"), None, "not an array");
}

#[test]
fn expr_errors_propagate_or_evaluate() {
    // `$expr` is delegated to `Expr`; whatever it returns, `matches` must not panic.
    if let Ok(f) = parse(&json!({"$expr": {"$eq": ["$a", 1]}})) {
        let _ = f.matches(&json!({"a": 1}));
    }
}
