//! Aggregation pipelines. `$lookup` reads other collections only through a [`LookupSource`] that the
//! caller supplies, so the caller decides (and scopes) what may be read.

use crate::error::{QueryError, Result};
use crate::limits::Limits;
use serde_json::Value;

/// Where `$lookup` (and any other stage that reads another collection) gets its documents.
///
/// The store implements this with the caller's scope, so a pipeline can never read what the caller may
/// not: the pipeline engine itself has no access to any collection.
pub trait LookupSource {
    /// Documents of `collection` that match `filter` (a filter document in the query language).
    fn find(&self, collection: &str, filter: &Value) -> Result<Vec<Value>>;
}

/// A source with no collections: `$lookup` yields nothing from it.
pub struct NoCollections;

impl LookupSource for NoCollections {
    fn find(&self, _collection: &str, _filter: &Value) -> Result<Vec<Value>> {
        Ok(Vec::new())
    }
}

/// A parsed pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Vec<Value>,
}

impl Pipeline {
    /// Parses a pipeline (an array of stage documents).
    pub fn parse(pipeline: &Value, limits: &Limits) -> Result<Pipeline> {
        limits.check_input("pipeline", pipeline)?;
        let stages = pipeline.as_array().ok_or_else(|| QueryError::bad("aggregate", "a pipeline must be an array"))?;
        Ok(Pipeline { stages: stages.clone() })
    }

    /// The filter of a leading `$match` stage, which a store may push down before running the rest.
    pub fn leading_match(&self) -> Option<&Value> {
        self.stages.first().and_then(|s| s.get("$match"))
    }

    /// Runs the pipeline over `input`. `now_millis` is `$$NOW`.
    pub fn run(&self, _input: Vec<Value>, _source: &dyn LookupSource, _now_millis: i64) -> Result<Vec<Value>> {
        Err(QueryError::unknown("aggregate (not yet implemented)"))
    }
}
