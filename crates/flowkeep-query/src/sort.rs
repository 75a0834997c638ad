//! Sort specifications on one or more keys, with MongoDB's ordering of missing values and arrays.

use crate::error::Result;
use crate::path::FieldPath;
use serde_json::Value;
use std::cmp::Ordering;

/// A parsed sort specification.
#[derive(Debug, Clone, Default)]
pub struct SortSpec {
    keys: Vec<(FieldPath, bool)>,
}

impl SortSpec {
    /// Parses `{a: 1, "b.c": -1}`.
    pub fn parse(_sort: &Value) -> Result<SortSpec> {
        Ok(SortSpec::default())
    }

    /// True if there are no sort keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Compares two documents under this specification.
    pub fn compare(&self, _a: &Value, _b: &Value) -> Ordering {
        Ordering::Equal
    }
}
