//! Aggregation pipelines. `$lookup` reads other collections only through a [`LookupSource`] that the
//! caller supplies, so the caller decides (and scopes) what may be read.
//!
//! A pipeline is parsed up front ([`Pipeline::parse`]) into typed stages: every stage name, argument
//! and expression is checked before any document is touched, and the stage count (nested `$facet` and
//! `$lookup` pipelines included) is checked against [`Limits::max_pipeline_stages`]. Running is
//! bounded by [`Limits::max_stage_documents`]: no stage may hold more documents than that (`$unwind`,
//! `$group`, `$facet` and `$lookup` fail with [`QueryError::TooLarge`] instead of growing without end).
//!
//! Stages that write (`$out`, `$merge`) are refused: aggregation is read-only. Stages this engine does
//! not implement (`$graphLookup`, `$unionWith`, `$bucket`, …) are refused by name with
//! [`QueryError::BadArgument`]; names that are not stages at all give [`QueryError::UnknownOperator`].

mod group;
mod lookup;
mod shape;
mod subst;
#[cfg(test)]
mod tests;

use crate::error::{QueryError, Result};
use crate::expr::{check_field_name, Expr, Vars};
use crate::filter::Filter;
use crate::limits::Limits;
use crate::path::{self, FieldPath};
use crate::sort::SortSpec;
use group::Group;
use lookup::Lookup;
use serde_json::{Map, Value};
use shape::Shape;

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
    stages: Vec<Stage>,
    limits: Limits,
}

/// One parsed stage.
#[derive(Debug, Clone)]
enum Stage {
    Match(MatchStage),
    /// `$project`, `$addFields`/`$set`, `$unset`.
    Shape(Shape),
    Group(Group),
    Sort(SortSpec),
    Skip(usize),
    Limit(usize),
    Count(String),
    Unwind(Unwind),
    /// `$replaceRoot` / `$replaceWith`.
    ReplaceRoot(Expr),
    SortByCount(Expr),
    Facet(Vec<(String, Vec<Stage>)>),
    Lookup(Box<Lookup>),
}

/// A `$match`: the filter as given (for push-down and for binding variables) and parsed.
#[derive(Debug, Clone)]
struct MatchStage {
    raw: Value,
    filter: Filter,
    /// Some `$expr` refers to `$$NOW` or a user variable: the filter is re-bound per run.
    uses_vars: bool,
}

/// A parsed `$unwind`.
#[derive(Debug, Clone)]
struct Unwind {
    path: FieldPath,
    index_field: Option<FieldPath>,
    preserve: bool,
}

/// What running stages needs besides the documents.
pub(crate) struct Env<'a> {
    source: &'a dyn LookupSource,
    vars: Vars,
    limits: &'a Limits,
}

/// Stages refused because they would write.
const WRITE_STAGES: [&str; 2] = ["$out", "$merge"];

/// Real MongoDB stages this engine does not implement.
const UNSUPPORTED_STAGES: [&str; 20] = [
    "$graphLookup",
    "$unionWith",
    "$bucket",
    "$bucketAuto",
    "$sample",
    "$geoNear",
    "$redact",
    "$densify",
    "$fill",
    "$setWindowFields",
    "$changeStream",
    "$collStats",
    "$indexStats",
    "$currentOp",
    "$listSessions",
    "$listLocalSessions",
    "$planCacheStats",
    "$documents",
    "$search",
    "$searchMeta",
];

impl Pipeline {
    /// Parses a pipeline (an array of stage documents).
    pub fn parse(pipeline: &Value, limits: &Limits) -> Result<Pipeline> {
        limits.check_input("pipeline", pipeline)?;
        let mut count = 0;
        let stages = parse_stages(pipeline, limits, &mut count, false)?;
        Ok(Pipeline { stages, limits: limits.clone() })
    }

    /// The filter of a leading `$match` stage, which a store may push down before running the rest.
    ///
    /// `None` when the first stage is not a `$match`, or when its `$expr` needs variables (`$$NOW`)
    /// that a plain filter cannot evaluate. Running the whole pipeline afterwards stays correct: the
    /// `$match` is re-applied.
    pub fn leading_match(&self) -> Option<&Value> {
        match self.stages.first() {
            Some(Stage::Match(m)) if !m.uses_vars => Some(&m.raw),
            _ => None,
        }
    }

    /// The number of stages, nested `$facet` and `$lookup` pipelines included.
    pub fn stage_count(&self) -> usize {
        count_stages(&self.stages)
    }

    /// Runs the pipeline over `input`. `now_millis` is `$$NOW`.
    pub fn run(&self, input: Vec<Value>, source: &dyn LookupSource, now_millis: i64) -> Result<Vec<Value>> {
        self.run_with_vars(input, source, &Vars::with_now(now_millis))
    }

    /// Runs the pipeline with `vars` visible to every expression (and to `$expr` in `$match`).
    pub fn run_with_vars(&self, input: Vec<Value>, source: &dyn LookupSource, vars: &Vars) -> Result<Vec<Value>> {
        check_size("aggregate input", input.len(), &self.limits)?;
        let env = Env { source, vars: vars.clone(), limits: &self.limits };
        run_stages(&self.stages, input, &env)
    }
}

fn count_stages(stages: &[Stage]) -> usize {
    stages
        .iter()
        .map(|s| match s {
            Stage::Facet(facets) => 1 + facets.iter().map(|(_, p)| count_stages(p)).sum::<usize>(),
            Stage::Lookup(l) => 1 + l.sub_pipeline().map(count_stages).unwrap_or(0),
            _ => 1,
        })
        .sum()
}

fn check_size(what: &str, size: usize, limits: &Limits) -> Result<()> {
    if size > limits.max_stage_documents {
        return Err(QueryError::TooLarge { what: what.into(), size, limit: limits.max_stage_documents });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

/// Parses an array of stages, counting each (and nested ones) in `count` against the stage limit.
fn parse_stages(pipeline: &Value, limits: &Limits, count: &mut usize, in_facet: bool) -> Result<Vec<Stage>> {
    let stages = pipeline.as_array().ok_or_else(|| QueryError::bad("aggregate", "a pipeline must be an array"))?;
    let mut out = Vec::with_capacity(stages.len());
    for stage in stages {
        *count += 1;
        if *count > limits.max_pipeline_stages {
            return Err(QueryError::TooLarge {
                what: "pipeline".into(),
                size: *count,
                limit: limits.max_pipeline_stages,
            });
        }
        out.push(parse_stage(stage, limits, count, in_facet)?);
    }
    Ok(out)
}

fn parse_stage(stage: &Value, limits: &Limits, count: &mut usize, in_facet: bool) -> Result<Stage> {
    let map = stage
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| QueryError::bad("aggregate", "each stage must be an object with exactly one field"))?;
    let Some((name, arg)) = map.iter().next() else {
        return Err(QueryError::bad("aggregate", "each stage must be an object with exactly one field"));
    };
    let op = name.as_str();
    Ok(match op {
        "$match" => {
            if contains_key(arg, "$where") {
                return Err(QueryError::JavaScriptRefused { op: "$where".into() });
            }
            let filter = Filter::parse(arg, limits)?;
            Stage::Match(MatchStage { raw: arg.clone(), filter, uses_vars: subst::filter_uses_vars(arg) })
        }
        "$project" => Stage::Shape(Shape::project(arg, limits)?),
        "$addFields" | "$set" => Stage::Shape(Shape::add_fields(op, arg, limits)?),
        "$unset" => Stage::Shape(Shape::unset(arg)?),
        "$group" => Stage::Group(Group::parse(arg, limits)?),
        "$sort" => {
            if arg.as_object().is_none_or(|m| m.is_empty()) {
                return Err(QueryError::bad(op, "the sort specification must be a non-empty object"));
            }
            Stage::Sort(SortSpec::parse(arg)?)
        }
        "$skip" => Stage::Skip(non_negative(op, arg)?),
        "$limit" => match non_negative(op, arg)? {
            0 => return Err(QueryError::bad(op, "the limit must be positive")),
            n => Stage::Limit(n),
        },
        "$count" => {
            let name = arg.as_str().ok_or_else(|| QueryError::bad(op, "expects a field name string"))?;
            check_field_name(op, name)?;
            Stage::Count(name.to_string())
        }
        "$unwind" => Stage::Unwind(parse_unwind(arg)?),
        "$replaceRoot" => {
            let m = arg
                .as_object()
                .filter(|m| m.len() == 1 && m.contains_key("newRoot"))
                .ok_or_else(|| QueryError::bad(op, "expects {newRoot: <expression>}"))?;
            Stage::ReplaceRoot(Expr::parse(m.get("newRoot").unwrap_or(&Value::Null), limits)?)
        }
        "$replaceWith" => Stage::ReplaceRoot(Expr::parse(arg, limits)?),
        "$sortByCount" => {
            let is_path = arg.as_str().is_some_and(|s| s.starts_with('$') && !s.starts_with("$$"));
            let is_operator = arg.as_object().is_some_and(|m| m.len() == 1 && m.keys().all(|k| k.starts_with('$')));
            if !is_path && !is_operator {
                return Err(QueryError::bad(op, "expects a field path ('$field') or an operator expression"));
            }
            Stage::SortByCount(Expr::parse(arg, limits)?)
        }
        "$facet" => {
            if in_facet {
                return Err(QueryError::bad(op, "$facet cannot be used inside $facet"));
            }
            let m = arg
                .as_object()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| QueryError::bad(op, "expects a non-empty object of named pipelines"))?;
            let mut facets = Vec::with_capacity(m.len());
            for (name, sub) in m {
                check_field_name(op, name)?;
                facets.push((name.clone(), parse_stages(sub, limits, count, true)?));
            }
            Stage::Facet(facets)
        }
        "$lookup" => Stage::Lookup(Box::new(Lookup::parse(arg, limits, count)?)),
        w if WRITE_STAGES.contains(&w) => {
            return Err(QueryError::bad(w, "writing stages are not allowed: aggregate is read-only"));
        }
        u if UNSUPPORTED_STAGES.contains(&u) => {
            return Err(QueryError::bad(u, "this stage is not supported"));
        }
        other => return Err(QueryError::unknown(other)),
    })
}

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| k == key || contains_key(x, key)),
        Value::Array(items) => items.iter().any(|i| contains_key(i, key)),
        _ => false,
    }
}

fn non_negative(op: &str, v: &Value) -> Result<usize> {
    crate::expr::as_integer(v)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| QueryError::bad(op, "expects a non-negative integer"))
}

fn unwind_path(op: &str, s: &str) -> Result<FieldPath> {
    let Some(path) = s.strip_prefix('$').filter(|p| !p.starts_with('$')) else {
        return Err(QueryError::bad(op, format!("the path '{s}' must start with a single '$'")));
    };
    FieldPath::parse(path)
}

fn parse_unwind(arg: &Value) -> Result<Unwind> {
    let op = "$unwind";
    match arg {
        Value::String(s) => Ok(Unwind { path: unwind_path(op, s)?, index_field: None, preserve: false }),
        Value::Object(m) => {
            if let Some(k) =
                m.keys().find(|k| !["path", "includeArrayIndex", "preserveNullAndEmptyArrays"].contains(&k.as_str()))
            {
                return Err(QueryError::bad(op, format!("unknown argument '{k}'")));
            }
            let path = match m.get("path") {
                Some(Value::String(s)) => unwind_path(op, s)?,
                _ => return Err(QueryError::bad(op, "'path' is required and must be a string")),
            };
            let index_field = match m.get("includeArrayIndex") {
                None => None,
                Some(Value::String(s)) if !s.starts_with('$') => Some(FieldPath::parse(s)?),
                Some(_) => {
                    return Err(QueryError::bad(op, "'includeArrayIndex' must be a field name not starting with '$'"))
                }
            };
            let preserve = match m.get("preserveNullAndEmptyArrays") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(QueryError::bad(op, "'preserveNullAndEmptyArrays' must be a boolean")),
            };
            Ok(Unwind { path, index_field, preserve })
        }
        _ => Err(QueryError::bad(op, "expects a field path or an object")),
    }
}

// ---------------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------------

/// Runs `stages` over `docs`.
fn run_stages(stages: &[Stage], mut docs: Vec<Value>, env: &Env<'_>) -> Result<Vec<Value>> {
    for stage in stages {
        docs = run_stage(stage, docs, env)?;
    }
    Ok(docs)
}

fn run_stage(stage: &Stage, docs: Vec<Value>, env: &Env<'_>) -> Result<Vec<Value>> {
    match stage {
        Stage::Match(m) => {
            let rebound;
            let filter = if m.uses_vars {
                rebound = Filter::parse(&subst::bind_filter(&m.raw, &env.vars), env.limits)?;
                &rebound
            } else {
                &m.filter
            };
            let mut out = Vec::new();
            for doc in docs {
                if filter.matches(&doc)? {
                    out.push(doc);
                }
            }
            Ok(out)
        }
        Stage::Shape(shape) => docs.into_iter().map(|d| shape.apply(d, &env.vars)).collect(),
        Stage::Group(g) => g.run(docs, &env.vars, env.limits),
        Stage::Sort(spec) => {
            let mut docs = docs;
            // `sort_by` is stable: documents with equal keys keep their order.
            docs.sort_by(|a, b| spec.compare(a, b));
            Ok(docs)
        }
        Stage::Skip(n) => Ok(docs.into_iter().skip(*n).collect()),
        Stage::Limit(n) => Ok(docs.into_iter().take(*n).collect()),
        Stage::Count(name) => {
            if docs.is_empty() {
                return Ok(Vec::new());
            }
            let mut m = Map::new();
            m.insert(name.clone(), Value::from(docs.len()));
            Ok(vec![Value::Object(m)])
        }
        Stage::Unwind(u) => unwind(u, docs, env.limits),
        Stage::ReplaceRoot(e) => docs
            .iter()
            .map(|d| match e.eval_with(d, &env.vars)? {
                Some(v @ Value::Object(_)) => Ok(v),
                other => Err(QueryError::bad(
                    "$replaceRoot",
                    format!(
                        "the new root must be an object, found {}",
                        other.as_ref().map(crate::value::bson_type_name).unwrap_or("missing")
                    ),
                )),
            })
            .collect(),
        Stage::SortByCount(e) => group::sort_by_count(e, docs, &env.vars, env.limits),
        Stage::Facet(facets) => {
            let mut out = Map::new();
            let mut total = 0usize;
            for (name, stages) in facets {
                let result = run_stages(stages, docs.clone(), env)?;
                total = total.saturating_add(result.len());
                check_size("$facet output", total, env.limits)?;
                out.insert(name.clone(), Value::Array(result));
            }
            Ok(vec![Value::Object(out)])
        }
        Stage::Lookup(l) => l.run(docs, env),
    }
}

/// Reads `path` through embedded documents only (an array on the way means "not there"), as `$unwind`
/// does.
fn get_through_objects<'a>(doc: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut cur = doc;
    for part in path.parts() {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

fn unwind(u: &Unwind, docs: Vec<Value>, limits: &Limits) -> Result<Vec<Value>> {
    let failed = |e: QueryError| QueryError::EvalFailed { op: "$unwind".into(), message: e.to_string() };
    let mut out = Vec::new();
    let emit = |out: &mut Vec<Value>, mut doc: Value, index: Value| -> Result<()> {
        if let Some(field) = &u.index_field {
            path::set(&mut doc, field, index).map_err(failed)?;
        }
        out.push(doc);
        check_size("$unwind output", out.len(), limits)
    };
    for doc in docs {
        match get_through_objects(&doc, &u.path) {
            Some(Value::Array(items)) if !items.is_empty() => {
                let items = items.clone();
                for (i, item) in items.into_iter().enumerate() {
                    let mut copy = doc.clone();
                    path::set(&mut copy, &u.path, item).map_err(failed)?;
                    emit(&mut out, copy, Value::from(i))?;
                }
            }
            Some(Value::Array(_)) => {
                if u.preserve {
                    // An empty array is preserved as a document without the field.
                    let mut copy = doc;
                    path::unset(&mut copy, &u.path);
                    emit(&mut out, copy, Value::Null)?;
                }
            }
            None | Some(Value::Null) => {
                if u.preserve {
                    emit(&mut out, doc, Value::Null)?;
                }
            }
            // Any other value is a one-element array.
            Some(_) => emit(&mut out, doc, Value::Null)?,
        }
    }
    Ok(out)
}
