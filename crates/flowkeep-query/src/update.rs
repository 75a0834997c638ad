//! Update operators (`$set`, `$inc`, `$push`, …) including the positional `$` and `$[]` forms.

use crate::error::{QueryError, Result};
use crate::filter::Filter;
use crate::limits::Limits;
use serde_json::Value;

/// A parsed operator update.
#[derive(Debug, Clone)]
pub struct Update {
    source: Value,
}

/// What an update needs to know besides the document.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext<'a> {
    /// True when the update runs on a document being inserted by an upsert (`$setOnInsert` applies).
    pub is_insert: bool,
    /// The query that selected the document, for the positional `$` operator.
    pub query: Option<&'a Filter>,
    /// The current time in epoch milliseconds, for `$currentDate`.
    pub now_millis: i64,
}

/// True if `update` is an operator update (its keys start with `$`), false for a replacement document.
pub fn is_operator_update(update: &Value) -> bool {
    update.as_object().and_then(|m| m.keys().next()).is_some_and(|k| k.starts_with('$'))
}

impl Update {
    /// Parses an operator update document.
    pub fn parse(update: &Value, limits: &Limits) -> Result<Update> {
        limits.check_input("update", update)?;
        Ok(Update { source: update.clone() })
    }

    /// Applies the update to `doc`; returns whether the document changed.
    pub fn apply(&self, _doc: &mut Value, _ctx: &UpdateContext<'_>) -> Result<bool> {
        let _ = &self.source;
        Err(QueryError::unknown("update (not yet implemented)"))
    }

    /// The document an upsert starts from: the equality conditions of `filter` (`{a: 1, "b.c": 2}` gives
    /// `{a: 1, b: {c: 2}}`), before this update is applied with `is_insert = true`.
    pub fn upsert_seed(_filter: &Value) -> Result<Value> {
        Ok(Value::Object(Default::default()))
    }
}
