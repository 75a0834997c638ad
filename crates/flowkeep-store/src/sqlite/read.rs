//! Reads: candidate rows from SQL (scope and pushdown applied there), re-checked with the query engine.
//! These functions take a plain `&Connection`, so the same code serves reader connections and the
//! writer inside its transaction (updates and deletes select their targets with them).

use super::catalog::{Catalog, CollMeta};
use super::plan::{describe, plan, Plan};
use crate::error::{Result, StoreError};
use crate::scope::Scope;
use flowkeep_model::Rights;
use flowkeep_query::path::{lookup, Reached};
use flowkeep_query::value::{compare, values_equal};
use flowkeep_query::{FieldPath, Filter, FindQuery, Limits, LookupSource, QueryError};
use rusqlite::{params_from_iter, Connection};
use serde_json::{json, Value};

/// The `SELECT` for the candidate rows of `coll` under `plan`, in natural order.
fn select_sql(coll: &CollMeta, plan: &Plan) -> String {
    format!("SELECT t.rid, t.doc FROM col_{} AS t WHERE {} ORDER BY t.rid", coll.id, plan.where_clause())
}

/// Calls `f` with an iterator over the documents of `coll` in scope matching `filter`, in natural order,
/// as `(rowid, document)`. The iterator stops at the first error, which is then returned.
pub fn with_matches<T>(
    conn: &Connection,
    coll: &CollMeta,
    scope: &Scope,
    filter: &Filter,
    f: impl FnOnce(&mut dyn Iterator<Item = (i64, Value)>) -> Result<T>,
) -> Result<T> {
    let plan = plan(coll, scope, &filter.index_hints());
    let mut stmt = conn.prepare_cached(&select_sql(coll, &plan))?;
    let mut rows = stmt.query(params_from_iter(plan.params.iter()))?;
    let check = !filter.is_empty();
    let check_scope = plan.acl_per_row;
    let mut failure: Option<StoreError> = None;
    let out = {
        let mut iter = std::iter::from_fn(|| loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => return None,
                Err(e) => {
                    failure = Some(e.into());
                    return None;
                }
            };
            let parsed = row.get::<_, i64>(0).map_err(StoreError::from).and_then(|rid| {
                let text = row.get_ref(1)?.as_str().map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let doc: Value = serde_json::from_str(text)
                    .map_err(|e| StoreError::Unavailable(format!("stored document {rid} is unreadable: {e}")))?;
                Ok((rid, doc))
            });
            let (rid, doc) = match parsed {
                Ok(x) => x,
                Err(e) => {
                    failure = Some(e);
                    return None;
                }
            };
            if check_scope && !scope.admits(&coll.name, &doc) {
                continue;
            }
            if !check {
                return Some((rid, doc));
            }
            match filter.matches(&doc) {
                Ok(true) => return Some((rid, doc)),
                Ok(false) => continue,
                Err(e) => {
                    failure = Some(e.into());
                    return None;
                }
            }
        });
        f(&mut iter)
    };
    match failure {
        Some(e) => Err(e),
        None => out,
    }
}

/// Runs a find: candidates from SQL, then the engine's filter, sort, skip, limit and projection.
/// Without a sort, reading stops as soon as the page is full.
pub fn find(conn: &Connection, coll: &CollMeta, scope: &Scope, query: &FindQuery) -> Result<Vec<Value>> {
    // The filter is applied while reading; the rest of the query runs on what matched.
    let rest = FindQuery {
        filter: Filter::all(),
        sort: query.sort.clone(),
        skip: query.skip,
        limit: query.limit,
        projection: query.projection.clone(),
    };
    with_matches(conn, coll, scope, &query.filter, |iter| Ok(rest.run(iter.map(|(_, d)| d))?))
}

/// Counts matching documents in scope. An empty filter is counted in SQL without reading documents.
pub fn count(conn: &Connection, coll: &CollMeta, scope: &Scope, filter: &Filter) -> Result<u64> {
    if filter.is_empty() {
        let plan = plan(coll, scope, &[]);
        let sql = format!("SELECT count(*) FROM col_{} AS t WHERE {}", coll.id, plan.where_clause());
        let n: i64 = conn.prepare_cached(&sql)?.query_row(params_from_iter(plan.params.iter()), |r| r.get(0))?;
        return Ok(n.max(0) as u64);
    }
    with_matches(conn, coll, scope, filter, |iter| Ok(iter.count() as u64))
}

/// The distinct values of `field` over matching documents (arrays flattened one level).
pub fn distinct(
    conn: &Connection,
    coll: &CollMeta,
    scope: &Scope,
    field: &FieldPath,
    filter: &Filter,
) -> Result<Vec<Value>> {
    let mut values = with_matches(conn, coll, scope, filter, |iter| {
        let mut out = Vec::new();
        for (_, doc) in iter {
            for reached in lookup(&doc, field) {
                match reached {
                    Reached::Value(Value::Array(items)) => out.extend(items.iter().cloned()),
                    Reached::Value(v) => out.push(v.clone()),
                    Reached::Missing => {}
                }
            }
        }
        Ok(out)
    })?;
    // `compare` is a total order whose equality is MongoDB equality, so sorting puts equal values next
    // to each other and one pass removes duplicates.
    values.sort_by(compare);
    values.dedup_by(|a, b| values_equal(a, b));
    Ok(values)
}

/// A `$lookup` source reading through one connection (inside the caller's read transaction) with a
/// fixed scope, so a pipeline can only ever read what that scope allows.
pub struct ScopedSource<'a> {
    /// The connection, inside a read transaction.
    pub conn: &'a Connection,
    /// The catalog snapshot of the aggregate.
    pub catalog: &'a Catalog,
    /// The scope: the caller's principals needing READ.
    pub scope: Scope,
    /// Limits for parsing the lookup filters.
    pub limits: &'a Limits,
}

impl ScopedSource<'_> {
    /// A source for `scope`'s principals with READ.
    pub fn new<'a>(conn: &'a Connection, catalog: &'a Catalog, scope: &Scope, limits: &'a Limits) -> ScopedSource<'a> {
        ScopedSource { conn, catalog, scope: scope.with_rights(Rights::READ), limits }
    }
}

impl LookupSource for ScopedSource<'_> {
    fn find(&self, collection: &str, filter: &Value) -> flowkeep_query::Result<Vec<Value>> {
        let source_error = |message: String| QueryError::Source { collection: collection.to_string(), message };
        crate::validate::collection_name(collection).map_err(|e| source_error(e.to_string()))?;
        let Some(coll) = self.catalog.get(collection) else { return Ok(Vec::new()) };
        let filter = Filter::parse(filter, self.limits)?;
        with_matches(self.conn, coll, &self.scope, &filter, |iter| Ok(iter.map(|(_, d)| d).collect())).map_err(|e| {
            match e {
                StoreError::Query(q) => q,
                other => source_error(other.to_string()),
            }
        })
    }
}

/// Describes how a find would run: pushed hints, the SQL and SQLite's query plan.
pub fn explain(conn: &Connection, coll: Option<&CollMeta>, scope: &Scope, query: &FindQuery) -> Result<Value> {
    let hints = query.filter.index_hints();
    let hints_json: Vec<Value> =
        hints.iter().map(|h| json!({"path": h.path.dotted(), "predicate": describe(&h.predicate)})).collect();
    let scope_json = match scope {
        Scope::System => json!({"kind": "system"}),
        Scope::Acl { principals, rights } => json!({"kind": "acl", "principals": principals.len(), "rights": rights.0}),
    };
    let Some(coll) = coll else {
        return Ok(json!({"backend": "sqlite", "collectionExists": false, "scope": scope_json, "hints": hints_json}));
    };
    let plan = plan(coll, scope, &hints);
    let sql = select_sql(coll, &plan);
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = stmt.query_map(params_from_iter(plan.params.iter()), |r| {
        Ok(json!({"id": r.get::<_, i64>(0)?, "parent": r.get::<_, i64>(1)?, "detail": r.get::<_, String>(3)?}))
    })?;
    let query_plan = rows.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(json!({
        "backend": "sqlite",
        "collectionExists": true,
        "table": format!("col_{}", coll.id),
        "scope": scope_json,
        "aclPushdown": plan.acl_pushdown,
        "aclPerRow": plan.acl_per_row,
        "hints": hints_json,
        "pushdown": plan.pushed,
        "sql": sql,
        "queryPlan": query_plan,
        "recheck": "every candidate is re-checked with Filter::matches",
    }))
}
