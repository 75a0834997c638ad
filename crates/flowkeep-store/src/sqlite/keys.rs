//! How index keys are stored in SQL.
//!
//! An index side table holds, per document, one row per distinct key of the index's first field (see
//! `flowkeep_query::path::index_keys`): `(doc, rank, val)`. `rank` is the BSON type rank (0 for the
//! missing marker) and `val` a SQL value whose order *within one rank* agrees with
//! `flowkeep_query::value::compare` well enough for inclusive range scans (numbers as INTEGER/REAL,
//! strings as TEXT compared bytewise, dates as epoch milliseconds, booleans as 0/1), and whose equality
//! agrees with MongoDB equality (objects and arrays as canonical text). Candidates found through an index
//! are always re-checked with the query engine, so these encodings only need to never *lose* a match.
//!
//! Unique indexes additionally hold canonical key tuples (MongoDB's keys: array elements, missing as
//! `null`) in a table whose primary key enforces uniqueness.

use crate::error::{Result, StoreError};
use flowkeep_query::path::{index_keys, lookup, IndexKey, Reached};
use flowkeep_query::value::{parse_date, type_rank, TypeRank};
use flowkeep_query::FieldPath;
use rusqlite::types::Value as SqlValue;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The rank stored for the missing marker (below every BSON type rank).
pub const RANK_MISSING: i64 = 0;
/// The rank of `null`.
pub const RANK_NULL: i64 = TypeRank::Null as i64;
/// The rank of dates.
pub const RANK_DATE: i64 = TypeRank::Date as i64;

/// Integers at or beyond this magnitude are not compared exactly by the engine (it falls back to `f64`),
/// so bounds this large are not pushed down.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// The `(rank, val)` of a value, or `None` for a number too large to compare safely in SQL.
pub fn key_sql(v: &Value) -> Option<(i64, SqlValue)> {
    let rank = type_rank(v);
    let sql = match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => {
            if n.as_f64().is_some_and(|f| f.abs() >= EXACT_LIMIT) {
                return None;
            }
            match n.as_i64() {
                Some(i) => SqlValue::Integer(i),
                // Integral doubles become integers so `1` and `1.0` are one key (SQL compares them
                // numerically anyway; this only keeps side rows distinct).
                None => match n.as_f64()? {
                    f if f.fract() == 0.0 => SqlValue::Integer(f as i64),
                    f => SqlValue::Real(f),
                },
            }
        }
        Value::String(s) => match parse_date(s) {
            Some(d) => SqlValue::Integer(d.timestamp_millis()),
            None => SqlValue::Text(s.clone()),
        },
        Value::Array(_) | Value::Object(_) => SqlValue::Text(canonical(v).to_string()),
    };
    Some((rank as i64, sql))
}

/// The `(rank, val)` stored for a document's key. Unlike [`key_sql`] it never fails: huge numbers are
/// stored as they are (only *bounds* that large are not pushed down).
pub fn stored_key(key: &IndexKey<'_>) -> (i64, SqlValue) {
    match key {
        IndexKey::Missing => (RANK_MISSING, SqlValue::Null),
        IndexKey::Value(v) => key_sql(v).unwrap_or_else(|| {
            let f = v.as_f64().unwrap_or(0.0);
            match v.as_i64() {
                Some(i) => (TypeRank::Number as i64, SqlValue::Integer(i)),
                None => (TypeRank::Number as i64, SqlValue::Real(f)),
            }
        }),
    }
}

/// The distinct `(rank, val)` rows an index on `path` holds for `doc`.
pub fn lookup_rows(doc: &Value, path: &FieldPath) -> Vec<(i64, SqlValue)> {
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for key in index_keys(doc, path) {
        let (rank, val) = stored_key(&key);
        let identity = format!("{rank}:{val:?}");
        if seen.insert(identity) {
            rows.push((rank, val));
        }
    }
    rows
}

/// True if every path is missing from `doc` (a sparse index leaves such documents out).
pub fn all_missing(doc: &Value, paths: &[&FieldPath]) -> bool {
    paths.iter().all(|p| lookup(doc, p).iter().all(|r| matches!(r, Reached::Missing)))
}

/// A canonical JSON form of `v`: two values are MongoDB-equal iff their canonical forms are equal
/// (numbers by value, `1 == 1.0`; dates by instant; objects by ordered pairs). Integers beyond 2^53 are
/// kept exact, so they may differ from a double the engine would call equal; that is the one exception.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Bool(b) => Value::Bool(*b),
        Value::Number(n) => {
            let num = if n.is_i64() || n.is_u64() {
                Value::Number(n.clone())
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => json!(f as i64),
                    _ => Value::Number(n.clone()),
                }
            };
            json!(["n", num])
        }
        Value::String(s) => match parse_date(s) {
            Some(d) => match d.timestamp_nanos_opt() {
                Some(ns) => json!(["d", ns]),
                None => json!(["dms", d.timestamp_millis()]),
            },
            None => Value::String(s.clone()),
        },
        Value::Array(items) => json!(["a", items.iter().map(canonical).collect::<Vec<_>>()]),
        Value::Object(map) => {
            json!(["o", map.iter().map(|(k, v)| json!([k, canonical(v)])).collect::<Vec<_>>()])
        }
    }
}

/// One unique key of a document: the canonical tuple (the table's primary key) and how to show it.
pub struct UniqueKey {
    /// Canonical text of the key tuple.
    pub key: String,
    /// The key as MongoDB shows it in E11000 errors: `{ name: "x" }`.
    pub display: String,
}

/// The keys a unique index on `fields` holds for `doc`: MongoDB's keys per field (array elements, an
/// empty array as itself, missing as `null`), combined into tuples. A document with several multi-key
/// fields is refused, as MongoDB refuses to index parallel arrays.
pub fn unique_keys(doc: &Value, fields: &[&FieldPath]) -> Result<Vec<UniqueKey>> {
    let mut per_field: Vec<Vec<Value>> = Vec::with_capacity(fields.len());
    for path in fields {
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        let mut push = |v: Value| {
            if seen.insert(canonical(&v).to_string()) {
                keys.push(v);
            }
        };
        for reached in lookup(doc, path) {
            match reached {
                Reached::Missing => push(Value::Null),
                Reached::Value(Value::Array(items)) if !items.is_empty() => items.iter().cloned().for_each(&mut push),
                Reached::Value(v) => push(v.clone()),
            }
        }
        per_field.push(keys);
    }
    if per_field.iter().filter(|k| k.len() > 1).count() > 1 {
        let names: Vec<String> = fields.iter().map(|p| p.dotted()).collect();
        return Err(StoreError::InvalidDocument(format!(
            "cannot index parallel arrays: more than one of [{}] holds several keys",
            names.join(", ")
        )));
    }
    let mut tuples: Vec<Vec<Value>> = vec![Vec::new()];
    for keys in &per_field {
        let mut next = Vec::with_capacity(tuples.len() * keys.len());
        for t in &tuples {
            for k in keys {
                let mut t = t.clone();
                t.push(k.clone());
                next.push(t);
            }
        }
        tuples = next;
    }
    Ok(tuples
        .into_iter()
        .map(|t| {
            let key = Value::Array(t.iter().map(canonical).collect()).to_string();
            let shown: Vec<String> = fields.iter().zip(&t).map(|(p, v)| format!("{}: {}", p.dotted(), v)).collect();
            UniqueKey { key, display: format!("{{ {} }}", shown.join(", ")) }
        })
        .collect())
}

/// Converts SQL values to the JSON array `json_each` expands back into the same SQL values.
pub fn sql_json_array(values: &[SqlValue]) -> String {
    let items: Vec<Value> = values
        .iter()
        .map(|v| match v {
            SqlValue::Integer(i) => json!(i),
            SqlValue::Real(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            SqlValue::Text(s) => Value::String(s.clone()),
            _ => Value::Null,
        })
        .collect();
    Value::Array(items).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowkeep_query::value::values_equal;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    #[test]
    fn canonical_agrees_with_mongo_equality() {
        let same = [
            (json!(1), json!(1.0)),
            (json!("2024-01-01T02:00:00+02:00"), json!("2024-01-01T00:00:00.000Z")),
            (json!({"a": [1, 2.0]}), json!({"a": [1.0, 2]})),
            (json!(-0.0), json!(0)),
        ];
        for (a, b) in same {
            assert!(values_equal(&a, &b));
            assert_eq!(canonical(&a), canonical(&b), "{a} vs {b}");
        }
        let different =
            [(json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})), (json!("1"), json!(1)), (json!([1]), json!(1))];
        for (a, b) in different {
            assert!(!values_equal(&a, &b));
            assert_ne!(canonical(&a), canonical(&b), "{a} vs {b}");
        }
    }

    #[test]
    fn lookup_rows_are_distinct_and_mark_missing() {
        let doc = json!({"a": [{"b": 1}, {"b": 1.0}, {"c": 2}]});
        let rows = lookup_rows(&doc, &p("a.b"));
        assert_eq!(rows.len(), 2, "1 and 1.0 are one key, plus the missing marker: {rows:?}");
        assert!(rows.iter().any(|(r, _)| *r == RANK_MISSING));
    }

    #[test]
    fn unique_keys_follow_mongo() {
        let k = unique_keys(&json!({"a": [1, 2, 2]}), &[&p("a")]).unwrap();
        assert_eq!(k.len(), 2, "elements, deduplicated, not the whole array");
        let k = unique_keys(&json!({}), &[&p("a")]).unwrap();
        assert_eq!(k[0].display, "{ a: null }");
        let k = unique_keys(&json!({"a": 1, "b": "x"}), &[&p("a"), &p("b")]).unwrap();
        assert_eq!(k[0].display, "{ a: 1, b: \"x\" }");
        assert!(unique_keys(&json!({"a": [1, 2], "b": [3, 4]}), &[&p("a"), &p("b")]).is_err());
    }

    #[test]
    fn sql_keys() {
        assert_eq!(key_sql(&json!("2024-01-01T00:00:00Z")), Some((RANK_DATE, SqlValue::Integer(1_704_067_200_000))));
        assert_eq!(key_sql(&json!(true)), Some((9, SqlValue::Integer(1))));
        assert_eq!(key_sql(&json!(1u64 << 60)), None);
        assert_eq!(key_sql(&json!(null)), Some((RANK_NULL, SqlValue::Null)));
    }
}
