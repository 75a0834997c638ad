//! A whole `find`: filter, sort, skip, limit and projection applied to a stream of candidate documents.

use crate::error::Result;
use crate::filter::Filter;
use crate::limits::Limits;
use crate::projection::Projection;
use crate::sort::SortSpec;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A parsed find request.
#[derive(Debug, Clone)]
pub struct FindQuery {
    /// Which documents.
    pub filter: Filter,
    /// In which order (empty: natural order).
    pub sort: SortSpec,
    /// How many matching documents to pass over first.
    pub skip: usize,
    /// How many to return at most (`None` or `Some(0)`: all, as in MongoDB).
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
    ///
    /// With a sort and a limit only the best `skip + limit` documents are kept while reading (a bounded
    /// heap), so a sorted page over a large collection holds a page, not the collection. Ties keep
    /// natural order, as MongoDB's sort does for equal keys in practice.
    pub fn run(&self, candidates: impl IntoIterator<Item = Value>) -> Result<Vec<Value>> {
        // As in MongoDB, a limit of 0 means no limit.
        let limit = match self.limit {
            None | Some(0) => usize::MAX,
            Some(n) => n,
        };
        let page: Vec<Value> = if self.sort.is_empty() {
            let mut page = Vec::new();
            let mut skipped = 0usize;
            for doc in candidates {
                if !self.filter.matches(&doc)? {
                    continue;
                }
                if skipped < self.skip {
                    skipped += 1;
                    continue;
                }
                page.push(doc);
                if page.len() >= limit {
                    break;
                }
            }
            page
        } else {
            let keep = self.skip.saturating_add(limit);
            let mut heap: BinaryHeap<Ranked<'_>> = BinaryHeap::new();
            for (seq, doc) in candidates.into_iter().enumerate() {
                if !self.filter.matches(&doc)? {
                    continue;
                }
                let ranked = Ranked { doc, seq, sort: &self.sort };
                if heap.len() < keep {
                    heap.push(ranked);
                } else if heap.peek().is_some_and(|worst| ranked < *worst) {
                    heap.pop();
                    heap.push(ranked);
                }
            }
            heap.into_sorted_vec().into_iter().skip(self.skip).map(|r| r.doc).collect()
        };
        match &self.projection {
            Some(p) => page.iter().map(|d| p.apply(d)).collect(),
            None => Ok(page),
        }
    }
}

/// A matched document with its arrival order, ordered by the sort and then by arrival (stable).
struct Ranked<'a> {
    doc: Value,
    seq: usize,
    sort: &'a SortSpec,
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked<'_> {}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort.compare(&self.doc, &other.doc).then(self.seq.cmp(&other.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> Vec<Value> {
        (0..50).map(|i| json!({"_id": format!("{i:02}"), "n": i % 7, "group": i % 2})).collect()
    }

    fn run(filter: Value, sort: Option<Value>, skip: usize, limit: Option<usize>) -> Vec<String> {
        let q = FindQuery::parse(&filter, None, sort.as_ref(), skip, limit, &Limits::default()).unwrap();
        q.run(docs()).unwrap().iter().map(|d| d["_id"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn top_k_equals_full_sort_then_page() {
        let filter = json!({"group": 1});
        let all = run(filter.clone(), Some(json!({"n": -1})), 0, None);
        assert_eq!(all.len(), 25);
        for skip in [0, 1, 5, 24, 30] {
            for limit in [1, 3, 10, 100] {
                let expected: Vec<String> = all.iter().skip(skip).take(limit).cloned().collect();
                assert_eq!(run(filter.clone(), Some(json!({"n": -1})), skip, Some(limit)), expected, "{skip}/{limit}");
            }
        }
    }

    #[test]
    fn ties_keep_natural_order() {
        let got = run(json!({"n": 3}), Some(json!({"n": 1})), 0, None);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "equal keys stay in natural (insertion) order");
    }

    #[test]
    fn natural_order_paging_and_zero_limit() {
        assert_eq!(run(json!({}), None, 48, Some(5)), vec!["48", "49"]);
        assert_eq!(run(json!({}), None, 0, Some(0)).len(), 50, "limit 0 means no limit");
    }
}
