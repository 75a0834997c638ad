//! Query filters: parse a MongoDB filter document into a typed tree, match documents against it, and
//! describe the parts an index can answer ([`IndexHint`]).

use crate::error::{QueryError, Result};
use crate::limits::Limits;
use crate::path::FieldPath;
use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone)]
pub struct Filter {
    source: Value,
}

/// A predicate on one path that every matching document satisfies, usable to narrow candidates with an
/// index. Hints are conservative: a document that matches the filter always satisfies every hint, so
/// a store may use any subset of them and then re-check candidates with [`Filter::matches`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexHint {
    /// The path the predicate is on.
    pub path: FieldPath,
    /// What some index key of that path must satisfy (see [`crate::path::index_keys`]).
    pub predicate: HintPredicate,
}

/// The predicate of an [`IndexHint`], over the index keys of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum HintPredicate {
    /// Some key equals this value (`null` also matches the missing key).
    Eq(Value),
    /// Some key equals one of these values.
    In(Vec<Value>),
    /// Some key of the same type rank as the bounds lies in the range; `bool` is "inclusive".
    Range { lower: Option<(Value, bool)>, upper: Option<(Value, bool)> },
    /// `true`: some key is present (not missing); `false`: some key is missing.
    Exists(bool),
}

impl Filter {
    /// Parses a filter document.
    pub fn parse(filter: &Value, limits: &Limits) -> Result<Filter> {
        limits.check_input("filter", filter)?;
        if !filter.is_object() {
            return Err(QueryError::bad("filter", "a filter must be an object"));
        }
        Ok(Filter { source: filter.clone() })
    }

    /// The filter that matches every document.
    pub fn all() -> Filter {
        Filter { source: Value::Object(Default::default()) }
    }

    /// True if the filter has no conditions.
    pub fn is_empty(&self) -> bool {
        self.source.as_object().is_some_and(|m| m.is_empty())
    }

    /// Does `doc` match? Fails only when an `$expr` fails to evaluate.
    pub fn matches(&self, _doc: &Value) -> Result<bool> {
        Err(QueryError::unknown("filter (not yet implemented)"))
    }

    /// Conjunctive predicates an index can answer (see [`IndexHint`]).
    pub fn index_hints(&self) -> Vec<IndexHint> {
        Vec::new()
    }

    /// For the positional `$` update operator: the index of the first element of the array at
    /// `array_path` that satisfies this filter's conditions on that array.
    pub fn first_match_index(&self, _doc: &Value, _array_path: &FieldPath) -> Option<usize> {
        None
    }
}
