//! Sort specifications on one or more keys, with MongoDB's ordering of missing values and arrays.
//!
//! The sort value of a document for one key follows MongoDB: the path fans out over arrays
//! ([`path::lookup`]) and a reached array contributes its elements; an ascending key sorts by the
//! smallest of those values, a descending key by the largest. A missing field sorts as `null`, and an
//! empty array as "undefined", which is below `null`. Values of different types compare in BSON
//! order ([`value::compare`]).

use crate::error::{QueryError, Result};
use crate::path::{self, FieldPath, Reached};
use crate::value;
use serde_json::Value;
use std::cmp::Ordering;

/// A parsed sort specification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortSpec {
    keys: Vec<(FieldPath, bool)>,
}

/// The value one document sorts by for one key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SortValue<'a> {
    /// An empty array: below every value, `null` included.
    Undefined,
    /// A value; a missing field sorts as `null`.
    Value(&'a Value),
}

const NULL: Value = Value::Null;

fn compare_sort_values(a: SortValue<'_>, b: SortValue<'_>) -> Ordering {
    match (a, b) {
        (SortValue::Undefined, SortValue::Undefined) => Ordering::Equal,
        (SortValue::Undefined, SortValue::Value(_)) => Ordering::Less,
        (SortValue::Value(_), SortValue::Undefined) => Ordering::Greater,
        (SortValue::Value(x), SortValue::Value(y)) => value::compare(x, y),
    }
}

/// The sort value of `doc` at `path`: the minimum (ascending) or maximum (descending) of what it reaches.
fn sort_value<'a>(doc: &'a Value, path: &FieldPath, ascending: bool) -> SortValue<'a> {
    let mut best: Option<SortValue<'a>> = None;
    let mut offer = |candidate: SortValue<'a>| {
        best = Some(match best {
            None => candidate,
            Some(cur) => {
                let o = compare_sort_values(candidate, cur);
                if (ascending && o == Ordering::Less) || (!ascending && o == Ordering::Greater) {
                    candidate
                } else {
                    cur
                }
            }
        });
    };
    for reached in path::lookup(doc, path) {
        match reached {
            Reached::Missing => offer(SortValue::Value(&NULL)),
            Reached::Value(Value::Array(items)) if items.is_empty() => offer(SortValue::Undefined),
            Reached::Value(Value::Array(items)) => items.iter().for_each(|i| offer(SortValue::Value(i))),
            Reached::Value(v) => offer(SortValue::Value(v)),
        }
    }
    best.unwrap_or(SortValue::Value(&NULL))
}

/// Reads a direction: `1`/`-1` (any numeric spelling), `"asc"`/`"desc"`, `"ascending"`/`"descending"`.
fn parse_direction(key: &str, v: &Value) -> Result<bool> {
    let dir = match v {
        Value::Number(n) => n.as_f64().and_then(|f| {
            if f == 1.0 {
                Some(true)
            } else if f == -1.0 {
                Some(false)
            } else {
                None
            }
        }),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "asc" | "ascending" => Some(true),
            "desc" | "descending" => Some(false),
            _ => None,
        },
        _ => None,
    };
    dir.ok_or_else(|| {
        QueryError::bad("sort", format!("the direction of '{key}' must be 1, -1, \"asc\" or \"desc\", not {v}"))
    })
}

impl SortSpec {
    /// Parses `{a: 1, "b.c": -1}`. Keys keep their order (the first key sorts first). An empty object is
    /// an empty specification; anything but an object is refused.
    pub fn parse(sort: &Value) -> Result<SortSpec> {
        let Value::Object(map) = sort else {
            return Err(QueryError::bad("sort", "a sort specification must be an object"));
        };
        let mut keys = Vec::with_capacity(map.len());
        for (key, dir) in map {
            if key.starts_with('$') {
                return Err(QueryError::bad("sort", format!("cannot sort by '{key}'")));
            }
            keys.push((FieldPath::parse(key)?, parse_direction(key, dir)?));
        }
        Ok(SortSpec { keys })
    }

    /// An ascending sort on one field (a dotted path).
    pub fn from_field(name: &str) -> Result<SortSpec> {
        Ok(SortSpec { keys: vec![(FieldPath::parse(name)?, true)] })
    }

    /// A specification from already parsed keys (`true` = ascending).
    pub fn from_keys(keys: Vec<(FieldPath, bool)>) -> SortSpec {
        SortSpec { keys }
    }

    /// The keys in priority order; `true` means ascending.
    pub fn keys(&self) -> &[(FieldPath, bool)] {
        &self.keys
    }

    /// True if there are no sort keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Compares two documents under this specification. `Equal` on ties: keeping the natural order of
    /// equal documents is the caller's job (use a stable sort).
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (path, ascending) in &self.keys {
            let o = compare_sort_values(sort_value(a, path, *ascending), sort_value(b, path, *ascending));
            let o = if *ascending { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sorted(spec: Value, docs: Vec<Value>) -> Vec<Value> {
        let spec = SortSpec::parse(&spec).unwrap();
        let mut docs = docs;
        docs.sort_by(|a, b| spec.compare(a, b));
        docs
    }

    #[test]
    fn parses_directions_and_refuses_the_rest() {
        let s =
            SortSpec::parse(&json!({"a": 1, "b.c": -1, "d": "asc", "e": "DESC", "f": "ascending", "g": 1.0})).unwrap();
        let dirs: Vec<bool> = s.keys().iter().map(|(_, d)| *d).collect();
        assert_eq!(dirs, vec![true, false, true, false, true, true]);
        assert_eq!(s.keys()[1].0.dotted(), "b.c");
        assert!(SortSpec::parse(&json!({})).unwrap().is_empty());
        for bad in [
            json!({"a": 0}),
            json!({"a": 2}),
            json!({"a": "up"}),
            json!({"a": true}),
            json!([]),
            json!("a"),
            json!({"a..b": 1}),
            json!({"$natural": 1}),
            json!({"a": {"$meta": "textScore"}}),
        ] {
            assert!(SortSpec::parse(&bad).is_err(), "{bad}");
        }
        assert_eq!(SortSpec::from_field("x.y").unwrap().keys(), &[(FieldPath::parse("x.y").unwrap(), true)]);
        assert!(SortSpec::default().is_empty());
    }

    #[test]
    fn cross_type_order_missing_as_null() {
        let docs = vec![
            json!({"i": 0, "a": "s"}),
            json!({"i": 1, "a": 2}),
            json!({"i": 2}),
            json!({"i": 3, "a": null}),
            json!({"i": 4, "a": true}),
            json!({"i": 5, "a": "2024-01-01T00:00:00Z"}),
            json!({"i": 6, "a": {"x": 1}}),
            json!({"i": 7, "a": 1}),
        ];
        let order: Vec<i64> = sorted(json!({"a": 1}), docs.clone()).iter().map(|d| d["i"].as_i64().unwrap()).collect();
        assert_eq!(order, vec![2, 3, 7, 1, 0, 6, 4, 5], "missing ties null and keeps natural order");
        let order: Vec<i64> = sorted(json!({"a": -1}), docs).iter().map(|d| d["i"].as_i64().unwrap()).collect();
        assert_eq!(order, vec![5, 4, 6, 0, 1, 7, 2, 3]);
    }

    #[test]
    fn arrays_sort_by_min_ascending_and_max_descending() {
        let docs =
            vec![json!({"i": 0, "a": [1, 10]}), json!({"i": 1, "a": [5]}), json!({"i": 2, "a": []}), json!({"i": 3})];
        let ids = |v: Vec<Value>| v.iter().map(|d| d["i"].as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(ids(sorted(json!({"a": 1}), docs.clone())), vec![2, 3, 0, 1], "[] < null < 1 < 5");
        assert_eq!(ids(sorted(json!({"a": -1}), docs)), vec![0, 1, 3, 2], "10 > 5 > null > []");
        let nested = vec![json!({"i": 0, "a": [{"b": 3}, {"b": 1}]}), json!({"i": 1, "a": [{"b": 2}]})];
        assert_eq!(ids(sorted(json!({"a.b": 1}), nested.clone())), vec![0, 1]);
        assert_eq!(ids(sorted(json!({"a.b": -1}), nested)), vec![0, 1]);
        let partly_missing = vec![json!({"i": 0, "a": [{"b": 1}, {"c": 1}]}), json!({"i": 1, "a": [{"b": 0}]})];
        assert_eq!(ids(sorted(json!({"a.b": 1}), partly_missing)), vec![0, 1], "a missing element sorts as null");
    }

    #[test]
    fn multiple_keys_and_dates() {
        let docs = vec![
            json!({"k": 1, "d": "2024-01-02T00:00:00Z"}),
            json!({"k": 0, "d": "2024-01-01T00:00:00Z"}),
            json!({"k": 1, "d": "2024-01-01T12:00:00+02:00"}),
        ];
        let out = sorted(json!({"k": -1, "d": 1}), docs);
        assert_eq!(
            out,
            vec![
                json!({"k": 1, "d": "2024-01-01T12:00:00+02:00"}),
                json!({"k": 1, "d": "2024-01-02T00:00:00Z"}),
                json!({"k": 0, "d": "2024-01-01T00:00:00Z"}),
            ]
        );
    }
}
