//! Turning a scope and a filter's index hints into a SQL `WHERE` clause over `col_N AS t`.
//!
//! * Without a pushable hint, the scope becomes two subqueries on the ACL side table (allowing entries,
//!   minus denying ones) that drive the read from the `(principal, …)` index, so a principal that can read
//!   few documents of a large collection never causes a full scan.
//! * With one, the hint drives and the scope is evaluated on each candidate row as the store reads it
//!   ([`Plan::acl_per_row`], with [`Scope::admits`]), before the filter re-check, sort, skip and limit:
//!   measured (`flowkeep bench scope`), that costs a fraction of a correlated lookup in the side table
//!   per candidate.
//! * `_id` equality / `$in` / string ranges use the document table's unique `id` column.
//! * Hints on the first field of a secondary index become `t.rid IN (SELECT doc FROM ix_N WHERE …)`.
//!
//! Pushdown only narrows: every candidate row is re-checked with `Filter::matches`. So each condition
//! here must keep every document that satisfies its hint; it may keep more (bounds are always inclusive,
//! dates are compared at millisecond precision, huge numbers are not pushed down).

use super::catalog::{CollMeta, IndexMeta};
use super::keys::{key_sql, sql_json_array, RANK_MISSING, RANK_NULL};
use crate::scope::Scope;
use flowkeep_query::value::{parse_date, type_rank, TypeRank};
use flowkeep_query::{HintPredicate, IndexHint};
use rusqlite::types::Value as SqlValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A `WHERE` clause with its parameters and a description for `explain`.
#[derive(Debug, Default)]
pub struct Plan {
    /// SQL conditions ANDed together (over `t`).
    pub conditions: Vec<String>,
    /// Positional parameters, in order of the `?` placeholders.
    pub params: Vec<SqlValue>,
    /// What was pushed down, for `explain`.
    pub pushed: Vec<Value>,
    /// True if the scope is evaluated in SQL, driving from the ACL side table's `(principal, …)` index.
    pub acl_pushdown: bool,
    /// True if the scope is evaluated on each candidate row as it is read (candidate-driven plans).
    pub acl_per_row: bool,
}

impl Plan {
    /// The clause (`1` when there are no conditions).
    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            "1".into()
        } else {
            self.conditions.join(" AND ")
        }
    }

    fn push(&mut self, sql: String, params: Vec<SqlValue>) {
        self.conditions.push(sql);
        self.params.extend(params);
    }
}

/// Plans the scope and the pushable hints for a read of `coll`.
pub fn plan(coll: &CollMeta, scope: &Scope, hints: &[IndexHint]) -> Plan {
    let mut plan = Plan::default();
    push_hints(&mut plan, coll, hints, !scope.is_system());
    // With a pushed-down hint the hint bounds the candidates, and each is checked as it is read. Without
    // one, drive from the ACL side table's `(principal, …)` index instead.
    if scope.is_system() {
        return plan;
    }
    if plan.pushed.is_empty() {
        push_scope(&mut plan, coll.id, scope);
    } else {
        plan.acl_per_row = true;
    }
    plan
}

/// Up to this many principals are bound one placeholder each; more go in as one JSON parameter expanded
/// by `json_each` (slower to set up, but any number of roles fits in one statement).
const INLINE_PRINCIPALS: usize = 32;

/// Adds the scope as SQL conditions that drive from the ACL side table's `(principal, deny, rights, doc)`
/// index: documents a listed principal is granted the rights on, minus those one is denied them on.
fn push_scope(plan: &mut Plan, coll_id: i64, scope: &Scope) {
    let Scope::Acl { principals, rights } = scope else { return };
    let mask = i64::from(rights.0);
    let (list, list_params): (String, Vec<SqlValue>) = if principals.len() <= INLINE_PRINCIPALS {
        let marks = vec!["?"; principals.len()].join(", ");
        (format!("({marks})"), principals.iter().map(|p| SqlValue::Text(p.clone())).collect())
    } else {
        ("(SELECT value FROM json_each(?))".into(), vec![SqlValue::Text(Value::from(principals.clone()).to_string())])
    };
    let allow = format!(
        "t.rid IN (SELECT a.doc FROM acl_{coll_id} AS a WHERE a.principal IN {list} \
         AND a.deny = 0 AND (a.rights & ?) = ?)"
    );
    let deny = format!(
        "t.rid NOT IN (SELECT d.doc FROM acl_{coll_id} AS d WHERE d.principal IN {list} \
         AND d.deny = 1 AND (d.rights & ?) <> 0)"
    );
    let mut allow_params = list_params.clone();
    allow_params.extend([SqlValue::Integer(mask), SqlValue::Integer(mask)]);
    plan.push(allow, allow_params);
    let mut deny_params = list_params;
    deny_params.push(SqlValue::Integer(mask));
    plan.push(deny, deny_params);
    plan.acl_pushdown = true;
}

/// How useful a pushed condition is likely to be (lower is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Id,
    Equality,
    Range,
    Exists,
}

/// Adds hint conditions. Choice: `_id` conditions alone if any (a primary lookup is as good as it
/// gets); otherwise every equality/`$in`; otherwise the first range; otherwise the first `$exists`.
/// Stacking a range or `$exists` on top of an equality would mostly make SQLite build larger row sets.
///
/// With `scoped` (an ACL subquery will follow), `_id` equality is written `t.id = (SELECT ?)`: SQLite's
/// constant propagation treats `t.id = ?` as a constant binding whenever the statement has a subquery,
/// which marks the statement for re-preparation on every new parameter value — re-parsing and
/// re-planning the whole scoped statement on every point read (about 5× its run time). The scalar
/// subquery is evaluated once and still drives the `id` index.
fn push_hints(plan: &mut Plan, coll: &CollMeta, hints: &[IndexHint], scoped: bool) {
    let mut candidates: Vec<(Class, String, Vec<SqlValue>, Value)> = Vec::new();
    for hint in hints {
        let path = hint.path.dotted();
        if path == "_id" {
            if let Some((mut sql, params)) = id_condition(&hint.predicate) {
                if scoped && sql == "t.id = ?" {
                    sql = "t.id = (SELECT ?)".into();
                }
                let what = json!({"path": "_id", "index": "_id_", "predicate": describe(&hint.predicate)});
                candidates.push((Class::Id, sql, params, what));
            }
            continue;
        }
        let Some(ix) = coll.indexes.iter().find(|ix| ix.first() == &hint.path && usable(ix, &hint.predicate)) else {
            continue;
        };
        if let Some((cond, params)) = key_condition(&hint.predicate, ix.sparse) {
            let class = match hint.predicate {
                HintPredicate::Eq(_) | HintPredicate::In(_) => Class::Equality,
                HintPredicate::Range { .. } => Class::Range,
                HintPredicate::Exists(_) => Class::Exists,
            };
            let sql = format!("t.rid IN (SELECT doc FROM ix_{} WHERE {cond})", ix.id);
            let what = json!({"path": path, "index": ix.name, "predicate": describe(&hint.predicate)});
            candidates.push((class, sql, params, what));
        }
    }
    let Some(best) = candidates.iter().map(|c| c.0).min() else { return };
    let take_all = matches!(best, Class::Id | Class::Equality);
    for (class, sql, params, what) in candidates {
        if class == best {
            plan.push(sql, params);
            plan.pushed.push(what);
            if !take_all {
                break;
            }
        }
    }
}

/// A sparse index lacks documents where every field is missing, so it cannot answer predicates that
/// a missing field satisfies.
fn usable(ix: &IndexMeta, pred: &HintPredicate) -> bool {
    !ix.sparse || !matches_missing(pred)
}

fn matches_missing(pred: &HintPredicate) -> bool {
    match pred {
        HintPredicate::Eq(v) => v.is_null(),
        HintPredicate::In(vs) => vs.iter().any(Value::is_null),
        HintPredicate::Range { lower, upper } => lower.as_ref().or(upper.as_ref()).is_some_and(|(v, _)| v.is_null()),
        HintPredicate::Exists(present) => !present,
    }
}

/// The condition on `t.id` for an `_id` hint. `_id` is always a non-empty string; date-shaped strings
/// are left to the engine (a differently spelled instant is equal to them).
fn id_condition(pred: &HintPredicate) -> Option<(String, Vec<SqlValue>)> {
    let plain = |v: &Value| matches!(v, Value::String(s) if parse_date(s).is_none());
    let is_date = |v: &Value| matches!(v, Value::String(s) if parse_date(s).is_some());
    match pred {
        HintPredicate::Eq(v) if plain(v) => Some(("t.id = ?".into(), vec![SqlValue::Text(v.as_str()?.to_string())])),
        HintPredicate::Eq(v) if is_date(v) => None,
        // No string `_id` equals a number, null, object or array.
        HintPredicate::Eq(_) => Some(("0".into(), Vec::new())),
        HintPredicate::In(vs) => {
            if vs.iter().any(is_date) {
                return None;
            }
            let ids: Vec<Value> = vs.iter().filter(|v| plain(v)).cloned().collect();
            Some((
                "t.id IN (SELECT value FROM json_each(?))".into(),
                vec![SqlValue::Text(Value::Array(ids).to_string())],
            ))
        }
        HintPredicate::Range { lower, upper } => {
            let bound = |b: &Option<(Value, bool)>| b.as_ref().map(|(v, _)| v.clone());
            let (lo, hi) = (bound(lower), bound(upper));
            if lo.iter().chain(hi.iter()).any(|v| !plain(v)) {
                return None;
            }
            let mut conds = Vec::new();
            let mut params = Vec::new();
            if let Some(Value::String(s)) = lo {
                conds.push("t.id >= ?");
                params.push(SqlValue::Text(s));
            }
            if let Some(Value::String(s)) = hi {
                conds.push("t.id <= ?");
                params.push(SqlValue::Text(s));
            }
            (!conds.is_empty()).then(|| (conds.join(" AND "), params))
        }
        HintPredicate::Exists(true) => None,
        HintPredicate::Exists(false) => Some(("0".into(), Vec::new())),
    }
}

/// The condition over an index side table's `(rank, val)` for a hint, or `None` if it cannot be
/// expressed safely.
pub fn key_condition(pred: &HintPredicate, sparse: bool) -> Option<(String, Vec<SqlValue>)> {
    if sparse && matches_missing(pred) {
        return None;
    }
    match pred {
        HintPredicate::Eq(v) => values_condition(std::slice::from_ref(v)),
        HintPredicate::In(vs) => values_condition(vs),
        HintPredicate::Range { lower, upper } => range_condition(lower.as_ref(), upper.as_ref()),
        HintPredicate::Exists(true) => Some((format!("rank > {RANK_MISSING}"), Vec::new())),
        HintPredicate::Exists(false) => Some((format!("rank = {RANK_MISSING}"), Vec::new())),
    }
}

/// Keys equal to one of `values`: grouped by rank; `null` also matches the missing marker.
fn values_condition(values: &[Value]) -> Option<(String, Vec<SqlValue>)> {
    if values.is_empty() {
        return Some(("0".into(), Vec::new()));
    }
    let mut parts = Vec::new();
    let mut params = Vec::new();
    let mut groups: BTreeMap<i64, Vec<SqlValue>> = BTreeMap::new();
    for v in values {
        if v.is_null() {
            if !parts.iter().any(|p: &String| p.starts_with("rank IN")) {
                parts.push(format!("rank IN ({RANK_MISSING}, {RANK_NULL})"));
            }
            continue;
        }
        let (rank, val) = key_sql(v)?;
        groups.entry(rank).or_default().push(val);
    }
    for (rank, vals) in groups {
        if vals.len() == 1 {
            parts.push("(rank = ? AND val = ?)".into());
            params.push(SqlValue::Integer(rank));
            params.extend(vals);
        } else {
            parts.push("(rank = ? AND val IN (SELECT value FROM json_each(?)))".into());
            params.push(SqlValue::Integer(rank));
            params.push(SqlValue::Text(sql_json_array(&vals)));
        }
    }
    Some((format!("({})", parts.join(" OR ")), params))
}

/// Keys of the bounds' type rank within the bounds (inclusive; bounds that cannot be encoded exactly
/// are dropped, which only widens the range).
fn range_condition(lower: Option<&(Value, bool)>, upper: Option<&(Value, bool)>) -> Option<(String, Vec<SqlValue>)> {
    let rank = match (lower, upper) {
        (Some((l, _)), Some((u, _))) if type_rank(l) != type_rank(u) => return None,
        (Some((v, _)), _) | (None, Some((v, _))) => type_rank(v),
        (None, None) => return None,
    };
    match rank {
        TypeRank::Null => Some((format!("rank IN ({RANK_MISSING}, {RANK_NULL})"), Vec::new())),
        TypeRank::Object | TypeRank::Array => Some((format!("rank = {}", rank as i64), Vec::new())),
        _ => {
            let mut sql = format!("rank = {}", rank as i64);
            let mut params = Vec::new();
            if let Some((_, val)) = lower.and_then(|(v, _)| key_sql(v)) {
                sql.push_str(" AND val >= ?");
                params.push(val);
            }
            if let Some((_, val)) = upper.and_then(|(v, _)| key_sql(v)) {
                sql.push_str(" AND val <= ?");
                params.push(val);
            }
            Some((sql, params))
        }
    }
}

/// A JSON description of a hint predicate, for `explain`.
pub fn describe(pred: &HintPredicate) -> Value {
    match pred {
        HintPredicate::Eq(v) => json!({"eq": v}),
        HintPredicate::In(vs) => json!({"in": vs}),
        HintPredicate::Range { lower, upper } => json!({"range": {
            "lower": lower.as_ref().map(|(v, inc)| json!({"value": v, "inclusive": inc})),
            "upper": upper.as_ref().map(|(v, inc)| json!({"value": v, "inclusive": inc})),
        }}),
        HintPredicate::Exists(b) => json!({"exists": b}),
    }
}
