//! A whole `find`: filter, sort, skip, limit and projection applied to a stream of candidate documents.

use crate::error::Result;
use crate::filter::Filter;
use crate::limits::Limits;
use crate::projection::Projection;
use crate::sort::SortSpec;
use serde_json::Value;

/// A parsed find request.
#[derive(Debug, Clone)]
pub struct FindQuery {
    /// Which documents.
    pub filter: Filter,
    /// In which order (empty: natural order).
    pub sort: SortSpec,
    /// How many matching documents to pass over first.
    pub skip: usize,
    /// How many to return at most (`None`: all).
    pub limit: Option<usize>,
    /// Which fields to return (`None`: whole documents).
    pub projection: Option<Projection>,
}

impl FindQuery {
    /// Parses the parts of a find request. `projection` and `sort` may be `null` or absent.
    pub fn parse(
        filter: &Value,
        projection: Option<&Value>,
        sort: Option<&Value>,
        skip: usize,
        limit: Option<usize>,
        limits: &Limits,
    ) -> Result<FindQuery> {
        let filter = Filter::parse(filter, limits)?;
        let projection = match projection {
            Some(p) if !p.is_null() => Some(Projection::parse(p, limits)?),
            _ => None,
        };
        let sort = match sort {
            Some(s) if !s.is_null() => SortSpec::parse(s)?,
            _ => SortSpec::default(),
        };
        Ok(FindQuery { filter, sort, skip, limit, projection })
    }

    /// Runs the find over candidate documents in natural order.
    pub fn run(&self, candidates: impl IntoIterator<Item = Value>) -> Result<Vec<Value>> {
        let mut matched = Vec::new();
        for doc in candidates {
            if self.filter.matches(&doc)? {
                matched.push(doc);
            }
        }
        if !self.sort.is_empty() {
            matched.sort_by(|a, b| self.sort.compare(a, b));
        }
        let limit = self.limit.unwrap_or(usize::MAX);
        let page = matched.into_iter().skip(self.skip).take(limit);
        match &self.projection {
            Some(p) => page.map(|d| p.apply(&d)).collect(),
            None => Ok(page.collect()),
        }
    }
}
