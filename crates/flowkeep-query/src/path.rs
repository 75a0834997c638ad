//! Dotted field paths (`a.b.0.c`) and how MongoDB walks them through objects and arrays.
//!
//! Reading for a *query* fans out over arrays: `a.b` on `{a: [{b: 1}, {b: 2}]}` yields both `1` and `2`.
//! Reading and writing for an *update* does not fan out: numeric parts index arrays, other parts name fields.

use crate::error::{QueryError, Result};
use serde_json::{Map, Value};

/// A parsed, validated dotted path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    parts: Vec<String>,
}

impl FieldPath {
    /// Parses `a.b.c`. Empty paths and empty parts (`a..b`, `.a`) are refused.
    pub fn parse(path: &str) -> Result<FieldPath> {
        if path.is_empty() {
            return Err(QueryError::BadPath { path: path.into(), message: "a field path cannot be empty".into() });
        }
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(QueryError::BadPath { path: path.into(), message: "a field path part cannot be empty".into() });
        }
        Ok(FieldPath { parts })
    }

    /// The path's parts.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// The dotted form.
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }

    /// True if `self` is `other` or lies inside it (`a.b` is within `a`).
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.parts.len() >= other.parts.len() && self.parts[..other.parts.len()] == other.parts[..]
    }

    /// Builds a path from parts (each non-empty).
    pub fn from_parts(parts: Vec<String>) -> FieldPath {
        FieldPath { parts }
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dotted())
    }
}

/// Parses a non-negative array index the way MongoDB does (`"0"`, `"12"`; not `"-1"` or `"01"`).
pub fn array_index(part: &str) -> Option<usize> {
    if part.is_empty() || (part.len() > 1 && part.starts_with('0')) || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// One value a query path reaches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reached<'a> {
    /// The path ends at this value.
    Value(&'a Value),
    /// A branch of the path ended where a field was missing.
    Missing,
}

/// Walks `path` through `doc` with query semantics and returns every value it reaches.
///
/// * An object part names a field; a missing field gives [`Reached::Missing`].
/// * On an array, a numeric part indexes the array **and** the walk also fans out into the elements
///   (an element object may have a field named `"0"`); a non-numeric part fans out into every element.
///   Scalar elements are skipped when fanning out.
/// * A leaf array is returned as one value; operators decide whether to look inside it
///   (see [`leaf_candidates`]).
pub fn lookup<'a>(doc: &'a Value, path: &FieldPath) -> Vec<Reached<'a>> {
    let mut out = Vec::new();
    walk(doc, &path.parts, &mut out);
    out
}

fn walk<'a>(v: &'a Value, parts: &[String], out: &mut Vec<Reached<'a>>) {
    let Some((head, rest)) = parts.split_first() else {
        out.push(Reached::Value(v));
        return;
    };
    match v {
        Value::Object(map) => match map.get(head) {
            Some(child) => walk(child, rest, out),
            None => out.push(Reached::Missing),
        },
        Value::Array(items) => {
            // An array contributes only what its elements reach: an empty array or an array of scalars
            // reaches nothing (no value, and no "missing" either), so `{"a.b": null}` does not match
            // `{a: []}` or `{a: [1]}`, while it does match `{a: [{}]}` (MongoDB's null semantics).
            let Some(i) = array_index(head) else {
                for item in items.iter().filter(|i| i.is_object()) {
                    walk(item, parts, out);
                }
                return;
            };
            let before = out.len();
            if let Some(child) = items.get(i) {
                walk(child, rest, out);
            }
            // `a.0` also reaches a field named "0" of element objects, but elements without such a
            // field do not make the path missing.
            for item in items.iter().filter(|i| i.is_object()) {
                let mut found = Vec::new();
                walk(item, parts, &mut found);
                out.extend(found.into_iter().filter(|r| matches!(r, Reached::Value(_))));
            }
            // An index past the end is a missing field: `{"a.1": null}` matches `{a: []}`.
            if out.len() == before {
                out.push(Reached::Missing);
            }
        }
        _ => out.push(Reached::Missing),
    }
}

/// The candidates an ordinary comparison tests at the end of a path: each reached value and, for a
/// reached array, each of its elements too (`{tags: "x"}` matches `{tags: ["x", "y"]}`).
pub fn leaf_candidates<'a>(reached: &[Reached<'a>]) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for r in reached {
        if let Reached::Value(v) = r {
            out.push(*v);
            if let Value::Array(items) = v {
                out.extend(items.iter());
            }
        }
    }
    out
}

/// Reads `path` without fanning out over arrays (numeric parts index arrays). `None` when missing.
pub fn get_exact<'a>(doc: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut cur = doc;
    for part in &path.parts {
        cur = match cur {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(array_index(part)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Mutable form of [`get_exact`].
pub fn get_exact_mut<'a>(doc: &'a mut Value, path: &FieldPath) -> Option<&'a mut Value> {
    let mut cur = doc;
    for part in &path.parts {
        cur = match cur {
            Value::Object(map) => map.get_mut(part)?,
            Value::Array(items) => items.get_mut(array_index(part)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The most `null`s a write may add to pad an array up to the index it names (`$set: {"a.5000": 1}`):
/// beyond this the write is refused, so one small request cannot allocate a huge array.
pub const MAX_ARRAY_PADDING: usize = 10_000;

/// Sets `path` to `value` as `$set` does: missing objects on the way are created, a numeric part on an
/// array sets that index (padding with `null`, at most [`MAX_ARRAY_PADDING`]), and walking through a
/// scalar is an error.
pub fn set(doc: &mut Value, path: &FieldPath, value: Value) -> Result<()> {
    let mut cur = doc;
    let (last, init) = path
        .parts
        .split_last()
        .ok_or_else(|| QueryError::BadPath { path: String::new(), message: "empty path".into() })?;
    for part in init {
        cur = match cur {
            Value::Object(map) => map.entry(part.clone()).or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => {
                let i = array_index(part).ok_or_else(|| cannot_create(path, part, "an array"))?;
                check_padding(path, items.len(), i)?;
                if i >= items.len() {
                    items.resize(i + 1, Value::Null);
                }
                let slot = &mut items[i];
                if slot.is_null() {
                    *slot = Value::Object(Map::new());
                }
                slot
            }
            other => return Err(cannot_create(path, part, crate::value::bson_type_name(other))),
        };
    }
    match cur {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i = array_index(last).ok_or_else(|| cannot_create(path, last, "an array"))?;
            check_padding(path, items.len(), i)?;
            if i >= items.len() {
                items.resize(i + 1, Value::Null);
            }
            items[i] = value;
            Ok(())
        }
        other => Err(cannot_create(path, last, crate::value::bson_type_name(other))),
    }
}

fn check_padding(path: &FieldPath, len: usize, index: usize) -> Result<()> {
    if index.saturating_sub(len) > MAX_ARRAY_PADDING {
        return Err(QueryError::UpdateFailed {
            op: "$set".into(),
            path: path.dotted(),
            message: format!("index {index} would pad the array by more than {MAX_ARRAY_PADDING} elements"),
        });
    }
    Ok(())
}

fn cannot_create(path: &FieldPath, part: &str, within: &str) -> QueryError {
    QueryError::UpdateFailed {
        op: "$set".into(),
        path: path.dotted(),
        message: format!("cannot create field '{part}' in element of type {within}"),
    }
}

/// Removes `path` as `$unset` does: an object field is removed; an array element is set to `null`
/// (arrays keep their length). Returns the removed value, if there was one.
pub fn unset(doc: &mut Value, path: &FieldPath) -> Option<Value> {
    let (last, init) = path.parts.split_last()?;
    let parent = get_exact_mut(doc, &FieldPath { parts: init.to_vec() })?;
    match parent {
        Value::Object(map) => map.shift_remove(last),
        Value::Array(items) => {
            let slot = items.get_mut(array_index(last)?)?;
            Some(std::mem::replace(slot, Value::Null))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    #[test]
    fn lookup_fans_out_over_arrays() {
        let doc = json!({"a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}, 5]});
        let got = lookup(&doc, &p("a.b"));
        assert_eq!(got, vec![Reached::Value(&json!(1)), Reached::Value(&json!([2, 3])), Reached::Missing]);
        assert_eq!(leaf_candidates(&got), vec![&json!(1), &json!([2, 3]), &json!(2), &json!(3)]);
    }

    #[test]
    fn arrays_without_objects_reach_nothing() {
        assert!(lookup(&json!({"a": []}), &p("a.b")).is_empty());
        assert!(lookup(&json!({"a": [1, "x", null]}), &p("a.b")).is_empty());
        assert_eq!(lookup(&json!({"a": [{}]}), &p("a.b")), vec![Reached::Missing]);
        assert_eq!(index_keys(&json!({"a": []}), &p("a.b")), vec![IndexKey::Missing], "for $exists: false");
        assert_eq!(lookup(&json!({"a": []}), &p("a.1")), vec![Reached::Missing], "an index past the end is missing");
        assert_eq!(lookup(&json!({"a": [{"1": 5}]}), &p("a.1")), vec![Reached::Value(&json!(5))]);
    }

    #[test]
    fn numeric_part_indexes_arrays() {
        let doc = json!({"a": [{"b": 1}, {"b": 2}]});
        assert_eq!(lookup(&doc, &p("a.1.b")), vec![Reached::Value(&json!(2))]);
        assert_eq!(get_exact(&doc, &p("a.0.b")), Some(&json!(1)));
        assert_eq!(get_exact(&doc, &p("a.b")), None);
    }

    #[test]
    fn set_creates_and_pads() {
        let mut doc = json!({"a": {"x": 1}, "arr": [1]});
        set(&mut doc, &p("a.b.c"), json!(5)).unwrap();
        set(&mut doc, &p("arr.3"), json!(9)).unwrap();
        assert_eq!(doc, json!({"a": {"x": 1, "b": {"c": 5}}, "arr": [1, null, null, 9]}));
        assert!(set(&mut doc, &p("a.x.y"), json!(1)).is_err(), "cannot walk through a number");
    }

    #[test]
    fn array_padding_is_bounded() {
        let mut doc = json!({"arr": []});
        assert!(set(&mut doc, &p("arr.1000000000"), json!(1)).is_err());
        assert!(set(&mut doc, &p("arr.1000000000.x"), json!(1)).is_err());
        assert_eq!(doc, json!({"arr": []}), "a refused write changes nothing");
        assert!(set(&mut doc, &p(&format!("arr.{MAX_ARRAY_PADDING}")), json!(1)).is_ok());
    }

    #[test]
    fn unset_removes_fields_and_nulls_elements() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "arr": [1, 2]});
        assert_eq!(unset(&mut doc, &p("a.b")), Some(json!(1)));
        assert_eq!(unset(&mut doc, &p("arr.0")), Some(json!(1)));
        assert_eq!(unset(&mut doc, &p("nope.x")), None);
        assert_eq!(doc, json!({"a": {"c": 2}, "arr": [null, 2]}));
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse(".a").is_err());
    }
}

/// One key an index on a path holds for a document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IndexKey<'a> {
    /// A value the path reaches (a reached array is indexed as a whole and element by element).
    Value(&'a Value),
    /// A branch of the path is missing (MongoDB indexes this like `null`, but it is kept apart here so
    /// `$exists` can be answered from the index).
    Missing,
}

/// The keys an index on `path` holds for `doc`. [`crate::filter::IndexHint`]s are stated over these keys.
pub fn index_keys<'a>(doc: &'a Value, path: &FieldPath) -> Vec<IndexKey<'a>> {
    let reached = lookup(doc, path);
    let mut keys: Vec<IndexKey<'a>> = leaf_candidates(&reached).into_iter().map(IndexKey::Value).collect();
    // "Missing" also stands for "no value at all" (e.g. `{a: []}` for `a.b`), so `$exists: false`
    // can still be answered from the index.
    if reached.is_empty() || reached.iter().any(|r| matches!(r, Reached::Missing)) {
        keys.push(IndexKey::Missing);
    }
    keys
}
