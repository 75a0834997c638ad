//! The starting document of an upsert, built from the equality conditions of its filter.

use crate::error::{QueryError, Result};
use crate::limits::Limits;
use crate::path::{self, FieldPath};
use serde_json::{Map, Value};

/// See [`super::Update::upsert_seed`].
pub(super) fn upsert_seed(filter: &Value) -> Result<Value> {
    // The `$and` walk below recurses; the depth limit bounds it.
    Limits::default().check_input("filter", filter)?;
    let Value::Object(map) = filter else {
        return Err(QueryError::bad("upsert", "a filter must be an object"));
    };
    let mut equalities = Vec::new();
    collect(map, &mut equalities)?;

    // Two equalities on the same or nested paths cannot both be honoured (MongoDB refuses them too).
    let mut sorted: Vec<&FieldPath> = equalities.iter().map(|(p, _)| p).collect();
    sorted.sort_by(|a, b| a.parts().cmp(b.parts()));
    for pair in sorted.windows(2) {
        if let [shorter, longer] = pair {
            if longer.starts_with(shorter) {
                let message = if shorter == longer {
                    format!("cannot infer query fields to set, path '{shorter}' is matched twice")
                } else {
                    format!("cannot infer query fields to set, both paths '{shorter}' and '{longer}' are matched")
                };
                return Err(QueryError::bad("upsert", message));
            }
        }
    }

    let mut seed = Value::Object(Map::new());
    for (p, v) in equalities {
        path::set(&mut seed, &p, v)?;
    }
    Ok(seed)
}

/// Collects the equality conditions of one filter level, in filter order.
fn collect(map: &Map<String, Value>, out: &mut Vec<(FieldPath, Value)>) -> Result<()> {
    for (key, cond) in map {
        if key == "$and" {
            if let Value::Array(members) = cond {
                for member in members {
                    if let Value::Object(m) = member {
                        collect(m, out)?;
                    }
                }
            }
            continue;
        }
        if key.starts_with('$') {
            continue; // `$or`, `$nor`, `$expr`, `$comment`…: no single value to seed
        }
        let value = match cond {
            Value::Object(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => ops.get("$eq"),
            other => Some(other),
        };
        let Some(value) = value else { continue };
        if is_regex(value) {
            continue; // a regular expression is a condition, not a value
        }
        out.push((FieldPath::parse(key)?, value.clone()));
    }
    Ok(())
}

fn is_regex(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.starts_with("__REGEXP "))
}
