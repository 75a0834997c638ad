//! `$project`, `$addFields`/`$set` and `$unset`: reshaping documents field by field.
//!
//! A specification is parsed into a tree keyed by field name (`{"a.b": 1}` and `{a: {b: 1}}` give the
//! same tree). `$project` is either an *inclusion* (fields kept, plus computed fields) or an
//! *exclusion* (fields removed); only `_id` may be excluded in an inclusion. `$addFields` sets computed
//! fields into the existing document, merging into embedded documents, and `$unset` is an exclusion.
//! Expressions are always evaluated against the whole input document (`$$CURRENT`), never the
//! sub-document being built.

use crate::error::{QueryError, Result};
use crate::expr::{Expr, Vars};
use crate::limits::Limits;
use crate::path::FieldPath;
use serde_json::{Map, Value};

/// What to do with one field.
#[derive(Debug, Clone)]
enum Spec {
    Include,
    Exclude,
    Computed(Expr),
    Nested(Vec<(String, Spec)>),
}

/// Which kind of reshaping a [`Shape`] performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inclusion,
    Exclusion,
    AddFields,
}

/// A parsed `$project`, `$addFields`/`$set` or `$unset`.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    kind: Kind,
    fields: Vec<(String, Spec)>,
}

/// Inserts `spec` at `path` into the tree, refusing two specifications for the same path or for a
/// path and its prefix (`a` and `a.b`).
fn insert(tree: &mut Vec<(String, Spec)>, op: &str, path: &[String], spec: Spec, whole: &str) -> Result<()> {
    let collision = || QueryError::bad(op, format!("path collision at '{whole}'"));
    let Some((head, rest)) = path.split_first() else { return Err(collision()) };
    let existing = tree.iter_mut().find(|(k, _)| k == head);
    if rest.is_empty() {
        if existing.is_some() {
            return Err(collision());
        }
        tree.push((head.clone(), spec));
        return Ok(());
    }
    match existing {
        Some((_, Spec::Nested(children))) => insert(children, op, rest, spec, whole),
        Some(_) => Err(collision()),
        None => {
            let mut children = Vec::new();
            insert(&mut children, op, rest, spec, whole)?;
            tree.push((head.clone(), Spec::Nested(children)));
            Ok(())
        }
    }
}

fn field_path(op: &str, key: &str) -> Result<Vec<String>> {
    if key.starts_with('$') {
        return Err(QueryError::bad(op, format!("field name '{key}' cannot start with '$'")));
    }
    let path = FieldPath::parse(key)?;
    if path.parts().iter().any(|p| p.starts_with('$')) {
        return Err(QueryError::bad(op, format!("field path '{key}' has a part starting with '$'")));
    }
    Ok(path.parts().to_vec())
}

fn is_operator_object(m: &Map<String, Value>) -> bool {
    m.keys().next().is_some_and(|k| k.starts_with('$'))
}

/// Parses the fields of a `$project` (sub-)specification into `tree`.
fn parse_project_fields(tree: &mut Vec<(String, Spec)>, spec: &Map<String, Value>, limits: &Limits) -> Result<()> {
    let op = "$project";
    for (key, value) in spec {
        let path = field_path(op, key)?;
        let parsed = match value {
            Value::Bool(true) => Spec::Include,
            Value::Bool(false) => Spec::Exclude,
            Value::Number(n) => {
                if n.as_f64().is_some_and(|f| f == 0.0) {
                    Spec::Exclude
                } else {
                    Spec::Include
                }
            }
            Value::Object(m) if m.is_empty() => {
                return Err(QueryError::bad(op, format!("an empty object is not a valid value for '{key}'")));
            }
            Value::Object(m) if !is_operator_object(m) => {
                let mut children = Vec::new();
                parse_project_fields(&mut children, m, limits)?;
                Spec::Nested(children)
            }
            other => Spec::Computed(Expr::parse(other, limits)?),
        };
        insert(tree, op, &path, parsed, key)?;
    }
    Ok(())
}

/// Counts the kinds of leaves in a tree: (inclusions, exclusions other than top-level `_id`, computed).
fn census(tree: &[(String, Spec)], top: bool) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for (k, s) in tree {
        match s {
            Spec::Include => c.0 += 1,
            Spec::Exclude if !(top && k == "_id") => c.1 += 1,
            Spec::Exclude => {}
            Spec::Computed(_) => c.2 += 1,
            Spec::Nested(children) => {
                let n = census(children, false);
                c = (c.0 + n.0, c.1 + n.1, c.2 + n.2);
            }
        }
    }
    c
}

fn has_computed(tree: &[(String, Spec)]) -> bool {
    tree.iter().any(|(_, s)| match s {
        Spec::Computed(_) => true,
        Spec::Nested(children) => has_computed(children),
        _ => false,
    })
}

impl Shape {
    /// Parses a `$project` specification.
    pub(crate) fn project(spec: &Value, limits: &Limits) -> Result<Shape> {
        let op = "$project";
        let map = spec.as_object().ok_or_else(|| QueryError::bad(op, "the specification must be an object"))?;
        if map.is_empty() {
            return Err(QueryError::bad(op, "the specification must have at least one field"));
        }
        let mut fields = Vec::new();
        parse_project_fields(&mut fields, map, limits)?;
        let (includes, excludes, computed) = census(&fields, true);
        let id_excluded = fields.iter().any(|(k, s)| k == "_id" && matches!(s, Spec::Exclude));
        let kind = if includes + computed > 0 {
            if excludes > 0 {
                return Err(QueryError::bad(
                    op,
                    "cannot mix inclusion and exclusion (only _id may be excluded in an inclusion)",
                ));
            }
            Kind::Inclusion
        } else {
            Kind::Exclusion
        };
        if kind == Kind::Inclusion && !fields.iter().any(|(k, _)| k == "_id") {
            fields.insert(0, ("_id".to_string(), Spec::Include));
        }
        if kind == Kind::Exclusion && !id_excluded && excludes == 0 {
            return Err(QueryError::bad(op, "the specification must have at least one field"));
        }
        Ok(Shape { kind, fields })
    }

    /// Parses an `$addFields`/`$set` specification (`op` names the stage in errors).
    pub(crate) fn add_fields(op: &str, spec: &Value, limits: &Limits) -> Result<Shape> {
        let map = spec.as_object().ok_or_else(|| QueryError::bad(op, "the specification must be an object"))?;
        let mut fields = Vec::new();
        parse_add_fields(&mut fields, op, map, limits)?;
        Ok(Shape { kind: Kind::AddFields, fields })
    }

    /// Parses an `$unset` specification: a path or an array of paths.
    pub(crate) fn unset(spec: &Value) -> Result<Shape> {
        let op = "$unset";
        let paths: Vec<&Value> = match spec {
            Value::Array(items) if !items.is_empty() => items.iter().collect(),
            Value::String(_) => vec![spec],
            _ => return Err(QueryError::bad(op, "expects a field path or a non-empty array of field paths")),
        };
        let mut fields = Vec::new();
        for p in paths {
            let s = p.as_str().ok_or_else(|| QueryError::bad(op, "each field path must be a string"))?;
            insert(&mut fields, op, &field_path(op, s)?, Spec::Exclude, s)?;
        }
        Ok(Shape { kind: Kind::Exclusion, fields })
    }

    /// Reshapes `doc`.
    pub(crate) fn apply(&self, doc: Value, vars: &Vars) -> Result<Value> {
        let empty = Map::new();
        match self.kind {
            Kind::Inclusion => {
                let map = doc.as_object().unwrap_or(&empty);
                Ok(Value::Object(include(map, &self.fields, &doc, vars)?))
            }
            Kind::Exclusion => match doc {
                Value::Object(map) => Ok(Value::Object(exclude(map, &self.fields))),
                other => Ok(other),
            },
            Kind::AddFields => {
                let mut out = match &doc {
                    Value::Object(map) => map.clone(),
                    _ => Map::new(),
                };
                add(&mut out, &self.fields, &doc, vars)?;
                Ok(Value::Object(out))
            }
        }
    }
}

fn parse_add_fields(
    tree: &mut Vec<(String, Spec)>,
    op: &str,
    spec: &Map<String, Value>,
    limits: &Limits,
) -> Result<()> {
    for (key, value) in spec {
        let path = field_path(op, key)?;
        let parsed = match value {
            Value::Object(m) if !m.is_empty() && !is_operator_object(m) => {
                let mut children = Vec::new();
                parse_add_fields(&mut children, op, m, limits)?;
                Spec::Nested(children)
            }
            other => Spec::Computed(Expr::parse(other, limits)?),
        };
        insert(tree, op, &path, parsed, key)?;
    }
    Ok(())
}

/// Inclusion: kept fields in document order, then computed fields in specification order.
fn include(map: &Map<String, Value>, tree: &[(String, Spec)], root: &Value, vars: &Vars) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in map {
        match tree.iter().find(|(name, _)| name == k).map(|(_, s)| s) {
            Some(Spec::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(Spec::Nested(children)) => {
                if let Some(projected) = include_nested(v, children, root, vars)? {
                    out.insert(k.clone(), projected);
                }
            }
            _ => {}
        }
    }
    for (k, s) in tree {
        match s {
            Spec::Computed(e) => match e.eval_with(root, vars)? {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {
                    out.shift_remove(k);
                }
            },
            // A nested specification with computed fields builds the sub-document even where the
            // input has none.
            Spec::Nested(children) if !map.contains_key(k) && has_computed(children) => {
                out.insert(k.clone(), Value::Object(include(&Map::new(), children, root, vars)?));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A nested inclusion applied to the value of a field: into documents, across arrays (scalars inside
/// arrays are dropped unless the specification computes fields).
fn include_nested(v: &Value, tree: &[(String, Spec)], root: &Value, vars: &Vars) -> Result<Option<Value>> {
    match v {
        Value::Object(m) => Ok(Some(Value::Object(include(m, tree, root, vars)?))),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(p) = include_nested(item, tree, root, vars)? {
                    out.push(p);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        _ if has_computed(tree) => Ok(Some(Value::Object(include(&Map::new(), tree, root, vars)?))),
        _ => Ok(None),
    }
}

/// Exclusion: every field except the excluded ones; nested exclusions reach into documents and across
/// arrays.
fn exclude(map: Map<String, Value>, tree: &[(String, Spec)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in map {
        match tree.iter().find(|(name, _)| *name == k).map(|(_, s)| s) {
            Some(Spec::Exclude) => {}
            Some(Spec::Nested(children)) => {
                out.insert(k, exclude_nested(v, children));
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    out
}

fn exclude_nested(v: Value, tree: &[(String, Spec)]) -> Value {
    match v {
        Value::Object(m) => Value::Object(exclude(m, tree)),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| exclude_nested(i, tree)).collect()),
        other => other,
    }
}

/// `$addFields`: computed fields replace or add fields; nested specifications merge into embedded
/// documents (and into every document of an embedded array); `$$REMOVE` removes the field.
fn add(out: &mut Map<String, Value>, tree: &[(String, Spec)], root: &Value, vars: &Vars) -> Result<()> {
    for (k, s) in tree {
        match s {
            Spec::Computed(e) => match e.eval_with(root, vars)? {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {
                    out.shift_remove(k);
                }
            },
            Spec::Nested(children) => {
                let slot = out.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                add_nested(slot, children, root, vars)?;
            }
            Spec::Include | Spec::Exclude => {}
        }
    }
    Ok(())
}

fn add_nested(slot: &mut Value, tree: &[(String, Spec)], root: &Value, vars: &Vars) -> Result<()> {
    match slot {
        Value::Object(m) => add(m, tree, root, vars),
        Value::Array(items) => {
            for item in items.iter_mut() {
                add_nested(item, tree, root, vars)?;
            }
            Ok(())
        }
        other => {
            let mut m = Map::new();
            add(&mut m, tree, root, vars)?;
            *other = Value::Object(m);
            Ok(())
        }
    }
}
