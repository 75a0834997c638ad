//! Limits on the size and shape of client input, checked before any work is done.

use crate::error::{QueryError, Result};
use serde_json::Value;

/// Bounds that protect the server from hostile or accidental giant input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of objects and arrays accepted in a filter, update, projection or pipeline.
    pub max_depth: usize,
    /// Largest accepted input, counted as the number of JSON nodes (scalars, arrays and objects).
    pub max_nodes: usize,
    /// Most stages in one aggregation pipeline (nested `$facet`/`$lookup` pipelines included).
    pub max_pipeline_stages: usize,
    /// Longest accepted regular-expression pattern, in bytes.
    pub max_regex_len: usize,
    /// Most documents an aggregation stage may hold in memory at once (`$group`, `$sort`, `$facet`…).
    pub max_stage_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_nodes: 100_000,
            max_pipeline_stages: 1_000,
            max_regex_len: 16 * 1024,
            max_stage_documents: 1_000_000,
        }
    }
}

impl Limits {
    /// Checks `value` against `max_depth` and `max_nodes` without recursion, so a hostile input cannot
    /// overflow the stack while being checked. `what` names the input in the error ("filter", "update"…).
    pub fn check_input(&self, what: &str, value: &Value) -> Result<()> {
        let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
        let mut nodes = 0usize;
        while let Some((v, depth)) = stack.pop() {
            nodes += 1;
            if nodes > self.max_nodes {
                return Err(QueryError::TooLarge { what: what.to_string(), size: nodes, limit: self.max_nodes });
            }
            if depth > self.max_depth {
                return Err(QueryError::TooDeep { limit: self.max_depth });
            }
            match v {
                Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
                Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_limit_is_enforced() {
        let limits = Limits { max_depth: 3, ..Limits::default() };
        assert!(limits.check_input("filter", &json!({"a": {"b": 1}})).is_ok());
        assert_eq!(limits.check_input("filter", &json!({"a": {"b": {"c": 1}}})), Err(QueryError::TooDeep { limit: 3 }));
    }

    #[test]
    fn node_limit_is_enforced() {
        let limits = Limits { max_nodes: 5, ..Limits::default() };
        let err = limits.check_input("filter", &json!([1, 2, 3, 4, 5, 6])).unwrap_err();
        assert!(matches!(err, QueryError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn very_deep_input_does_not_overflow_the_stack() {
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert!(Limits::default().check_input("filter", &v).is_err());
        // Dropping a deeply nested serde_json value recurses; leak it on purpose in this test only.
        std::mem::forget(v);
    }
}
