//! `$lookup`: joins documents of another collection, read only through the caller's [`LookupSource`].
//!
//! The equality form (`localField`/`foreignField`) asks the source for
//! `{<foreignField>: {$in: [<local values>]}}` (a local array contributes its elements, a missing local
//! field is `null`, which also matches a missing foreign field), then re-checks every returned document
//! with [`values_equal`], so the result does not depend on how the source interprets the filter (a local
//! string that looks like a `__REGEXP` is still matched by equality). The pipeline form asks the source
//! for the whole collection (`{}`) once per stage run and runs the sub-pipeline per distinct set of
//! `let` values. Results are cached per distinct lookup key within one run.

use super::{parse_stages, run_stages, Env, Stage};
use crate::error::{QueryError, Result};
use crate::expr::{check_var_name, Expr};
use crate::limits::Limits;
use crate::path::{leaf_candidates, lookup as path_lookup, set, FieldPath, Reached};
use crate::value::values_equal;
use serde_json::{Map, Value};
use std::collections::HashMap;

use super::group::encode_key;

/// A parsed `$lookup` stage.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    from: String,
    as_path: FieldPath,
    /// `localField` and `foreignField`.
    equality: Option<(FieldPath, FieldPath)>,
    let_vars: Vec<(String, Expr)>,
    pipeline: Option<Vec<Stage>>,
}

impl Lookup {
    /// Parses the stage; `count` counts the stages of the sub-pipeline against the limit.
    pub(crate) fn parse(spec: &Value, limits: &Limits, count: &mut usize) -> Result<Lookup> {
        let op = "$lookup";
        let map = spec.as_object().ok_or_else(|| QueryError::bad(op, "the specification must be an object"))?;
        const ALLOWED: [&str; 6] = ["from", "as", "localField", "foreignField", "let", "pipeline"];
        if let Some(k) = map.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
            return Err(QueryError::bad(op, format!("unknown argument '{k}'")));
        }
        let string = |name: &str| -> Result<Option<&str>> {
            match map.get(name) {
                None => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
                Some(_) => Err(QueryError::bad(op, format!("'{name}' must be a non-empty string"))),
            }
        };
        let from = string("from")?.ok_or_else(|| QueryError::bad(op, "'from' is required"))?.to_string();
        let as_str = string("as")?.ok_or_else(|| QueryError::bad(op, "'as' is required"))?;
        if as_str.starts_with('$') {
            return Err(QueryError::bad(op, "'as' cannot start with '$'"));
        }
        let as_path = FieldPath::parse(as_str)?;
        let equality = match (string("localField")?, string("foreignField")?) {
            (Some(l), Some(f)) => Some((FieldPath::parse(l)?, FieldPath::parse(f)?)),
            (None, None) => None,
            _ => return Err(QueryError::bad(op, "'localField' and 'foreignField' must be given together")),
        };
        let pipeline = match map.get("pipeline") {
            None => None,
            Some(p @ Value::Array(_)) => Some(parse_stages(p, limits, count, false)?),
            Some(_) => return Err(QueryError::bad(op, "'pipeline' must be an array")),
        };
        let mut let_vars = Vec::new();
        match map.get("let") {
            None => {}
            Some(Value::Object(defs)) => {
                if pipeline.is_none() {
                    return Err(QueryError::bad(op, "'let' requires 'pipeline'"));
                }
                for (name, e) in defs {
                    check_var_name(name)?;
                    let_vars.push((name.clone(), Expr::parse(e, limits)?));
                }
            }
            Some(_) => return Err(QueryError::bad(op, "'let' must be an object")),
        }
        if equality.is_none() && pipeline.is_none() {
            return Err(QueryError::bad(op, "either 'localField'/'foreignField' or 'pipeline' is required"));
        }
        Ok(Lookup { from, as_path, equality, let_vars, pipeline })
    }

    /// Joins every document of `docs`.
    pub(crate) fn run(&self, docs: Vec<Value>, env: &Env<'_>) -> Result<Vec<Value>> {
        let limit = env.limits.max_stage_documents;
        let mut cache: HashMap<String, Vec<Value>> = HashMap::new();
        let mut whole_collection: Option<Vec<Value>> = None;
        let mut embedded = 0usize;
        let mut out = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let locals = self.equality.as_ref().map(|(local, _)| local_values(&doc, local));
            let mut vars = env.vars.clone();
            let mut key = String::new();
            if let Some(locals) = &locals {
                let mut keys: Vec<String> = locals.iter().map(super::group::key_of).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    key.push_str(&k);
                    key.push('\u{1}');
                }
            }
            key.push('|');
            for (name, e) in &self.let_vars {
                let v = e.eval_with(&doc, &env.vars)?.unwrap_or(Value::Null);
                encode_key(&v, &mut key);
                vars.bind(name.clone(), v);
            }
            let joined = match cache.get(&key) {
                Some(hit) => hit.clone(),
                None => {
                    let candidates = match &locals {
                        Some(locals) => self.fetch_equal(locals, env)?,
                        None => match &whole_collection {
                            Some(all) => all.clone(),
                            None => {
                                let all = fetch(env, &self.from, &Value::Object(Map::new()))?;
                                whole_collection = Some(all.clone());
                                all
                            }
                        },
                    };
                    let joined = match &self.pipeline {
                        Some(stages) => {
                            let sub = Env { source: env.source, vars, limits: env.limits };
                            run_stages(stages, candidates, &sub)?
                        }
                        None => candidates,
                    };
                    cache.insert(key, joined.clone());
                    joined
                }
            };
            embedded = embedded.saturating_add(joined.len());
            if embedded > limit {
                return Err(QueryError::TooLarge { what: "$lookup result".into(), size: embedded, limit });
            }
            if !doc.is_object() {
                doc = Value::Object(Map::new());
            }
            set(&mut doc, &self.as_path, Value::Array(joined))
                .map_err(|e| QueryError::EvalFailed { op: "$lookup".into(), message: e.to_string() })?;
            out.push(doc);
        }
        Ok(out)
    }

    /// Foreign documents whose `foreignField` equals one of `locals`.
    fn fetch_equal(&self, locals: &[Value], env: &Env<'_>) -> Result<Vec<Value>> {
        let Some((_, foreign)) = &self.equality else { return Ok(Vec::new()) };
        if locals.is_empty() {
            return Ok(Vec::new());
        }
        let mut cond = Map::new();
        cond.insert("$in".into(), Value::Array(locals.to_vec()));
        let mut filter = Map::new();
        filter.insert(foreign.dotted(), Value::Object(cond));
        let found = fetch(env, &self.from, &Value::Object(filter))?;
        Ok(found.into_iter().filter(|d| foreign_matches(d, foreign, locals)).collect())
    }
}

/// Reads through the source, bounding what one read may bring in.
fn fetch(env: &Env<'_>, from: &str, filter: &Value) -> Result<Vec<Value>> {
    let docs = env.source.find(from, filter)?;
    let limit = env.limits.max_stage_documents;
    if docs.len() > limit {
        return Err(QueryError::TooLarge { what: format!("$lookup from '{from}'"), size: docs.len(), limit });
    }
    Ok(docs)
}

/// The values `localField` contributes: each value the path reaches (arrays contribute their elements),
/// and `null` for a missing branch. Duplicates are removed.
fn local_values(doc: &Value, path: &FieldPath) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut push = |v: &Value| {
        if !out.iter().any(|o| values_equal(o, v)) {
            out.push(v.clone());
        }
    };
    for r in path_lookup(doc, path) {
        match r {
            Reached::Value(Value::Array(items)) => items.iter().for_each(&mut push),
            Reached::Value(v) => push(v),
            Reached::Missing => push(&Value::Null),
        }
    }
    out
}

/// Does some value of `foreign` in `doc` (with query semantics: array elements count, a missing field
/// is `null`) equal one of `locals`?
fn foreign_matches(doc: &Value, foreign: &FieldPath, locals: &[Value]) -> bool {
    let reached = path_lookup(doc, foreign);
    let missing = reached.iter().any(|r| matches!(r, Reached::Missing));
    let mut candidates = leaf_candidates(&reached);
    if missing {
        candidates.push(&Value::Null);
    }
    candidates.iter().any(|c| locals.iter().any(|l| values_equal(c, l)))
}

impl Lookup {
    /// The sub-pipeline, if any (for counting stages).
    pub(crate) fn sub_pipeline(&self) -> Option<&[Stage]> {
        self.pipeline.as_deref()
    }
}
