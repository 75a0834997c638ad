//! Projections: inclusion, exclusion, nested paths and the `_id` rules, plus the `$slice` and
//! `$elemMatch` projection operators of `find`.
//!
//! A projection is parsed into a tree of path parts. In *inclusion* mode (`{a: 1, "b.c": 1}`) only the
//! listed paths (and `_id`, unless `_id: 0`) are kept; in *exclusion* mode (`{a: 0}`) the listed paths
//! are removed. A path through an array applies to every element of the array (MongoDB's rule), so
//! `{"a.b": 1}` on `{a: [{b: 1, c: 2}]}` gives `{a: [{b: 1}]}`.

use crate::error::{QueryError, Result};
use crate::filter::Filter;
use crate::limits::Limits;
use serde_json::{Map, Value};

/// A parsed projection.
#[derive(Debug, Clone)]
pub struct Projection {
    /// `None` for the empty projection `{}`, which returns documents unchanged.
    root: Option<Node>,
    /// True for inclusion mode, false for exclusion mode.
    inclusion: bool,
}

/// What happens at the end of a projected path.
#[derive(Debug, Clone)]
enum Action {
    Include,
    Exclude,
    /// `{$slice: n}` or `{$slice: [skip, limit]}`: keep part of an array.
    Slice {
        skip: i64,
        limit: Option<i64>,
    },
    /// `{$elemMatch: filter}`: keep only the first matching element of an array.
    ElemMatch(Box<Filter>),
}

/// The projection below one level of a document: per field, an action or a deeper level.
#[derive(Debug, Clone, Default)]
struct Node {
    children: Vec<(String, Child)>,
}

#[derive(Debug, Clone)]
enum Child {
    Leaf(Action),
    Sub(Node),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Child> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, c)| c)
    }

    /// Inserts `parts -> action`, refusing a path that collides with one already present (`a` and `a.b`).
    fn insert(&mut self, full: &str, parts: &[&str], action: Action) -> Result<()> {
        let collision = || QueryError::bad("projection", format!("path collision at '{full}'"));
        let Some((head, rest)) = parts.split_first() else { return Err(collision()) };
        let pos = self.children.iter().position(|(k, _)| k == head);
        if rest.is_empty() {
            if pos.is_some() {
                return Err(collision());
            }
            self.children.push((head.to_string(), Child::Leaf(action)));
            return Ok(());
        }
        let idx = match pos {
            Some(i) => i,
            None => {
                self.children.push((head.to_string(), Child::Sub(Node::default())));
                self.children.len() - 1
            }
        };
        match self.children.get_mut(idx) {
            Some((_, Child::Sub(node))) => node.insert(full, rest, action),
            _ => Err(collision()),
        }
    }
}

/// Reads 1/0-like values: booleans and numbers (non-zero is inclusion).
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        _ => None,
    }
}

fn slice_int(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc().clamp(-9.0e18, 9.0e18) as i64))
}

fn parse_slice(field: &str, arg: &Value) -> Result<Action> {
    let bad = || {
        QueryError::bad(
            "$slice",
            format!("the argument for '{field}' must be a number or [skip, limit] with limit > 0"),
        )
    };
    match arg {
        Value::Number(_) => {
            let n = slice_int(arg).ok_or_else(bad)?;
            // A negative count takes from the end of the array.
            Ok(if n >= 0 { Action::Slice { skip: 0, limit: Some(n) } } else { Action::Slice { skip: n, limit: None } })
        }
        Value::Array(items) => match items.as_slice() {
            [skip, limit] => {
                let skip = slice_int(skip).ok_or_else(bad)?;
                let limit = slice_int(limit).filter(|l| *l > 0).ok_or_else(bad)?;
                Ok(Action::Slice { skip, limit: Some(limit) })
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

impl Projection {
    /// Parses a projection document.
    pub fn parse(projection: &Value, limits: &Limits) -> Result<Projection> {
        limits.check_input("projection", projection)?;
        let Value::Object(map) = projection else {
            return Err(QueryError::bad("projection", "a projection must be an object"));
        };
        let mut root = Node::default();
        // `None` until a non-`_id` inclusion or exclusion decides the mode.
        let mut mode: Option<(bool, &str)> = None;
        let mut id_action: Option<bool> = None;
        for (key, arg) in map {
            if key.starts_with('$') {
                return Err(QueryError::bad("projection", format!("'{key}' is not a field name")));
            }
            if key == "$" || key.ends_with(".$") {
                return Err(QueryError::bad(
                    "projection",
                    format!("the positional projection '{key}' is not supported"),
                ));
            }
            let action = match arg {
                Value::Object(ops) => {
                    let (op, op_arg) = match (ops.len(), ops.iter().next()) {
                        (1, Some(pair)) => pair,
                        _ => return Err(QueryError::bad("projection", format!("unsupported projection of '{key}'"))),
                    };
                    match op.as_str() {
                        "$slice" => parse_slice(key, op_arg)?,
                        "$elemMatch" => {
                            if key.contains('.') {
                                return Err(QueryError::bad(
                                    "$elemMatch",
                                    format!("cannot project the nested field '{key}'"),
                                ));
                            }
                            if !op_arg.is_object() {
                                return Err(QueryError::bad("$elemMatch", "argument must be an object"));
                            }
                            Action::ElemMatch(Box::new(Filter::parse(op_arg, limits)?))
                        }
                        other => {
                            return Err(QueryError::bad(
                                "projection",
                                format!("'{other}' on '{key}' is not supported in a find projection"),
                            ))
                        }
                    }
                }
                other => match flag(other) {
                    Some(true) => Action::Include,
                    Some(false) => Action::Exclude,
                    None => {
                        return Err(QueryError::bad(
                            "projection",
                            format!("the value for '{key}' must be 1/0, true/false, $slice or $elemMatch"),
                        ))
                    }
                },
            };
            if key == "_id" {
                if let Action::Include | Action::Exclude = action {
                    id_action = Some(matches!(action, Action::Include));
                }
            }
            // `_id` may be excluded in an inclusion projection (and included in any); `$slice` fits both
            // modes; `$elemMatch` is an inclusion.
            let kind = match action {
                Action::Include => Some(true),
                Action::Exclude => Some(false),
                Action::ElemMatch(_) => Some(true),
                Action::Slice { .. } => None,
            };
            if let Some(inclusion) = kind.filter(|_| key != "_id") {
                match mode {
                    None => mode = Some((inclusion, key)),
                    Some((m, first)) if m != inclusion => {
                        let (what, other) =
                            if inclusion { ("inclusion", "exclusion") } else { ("exclusion", "inclusion") };
                        return Err(QueryError::bad(
                            "projection",
                            format!("cannot do {what} on field '{key}' in an {other} projection (see '{first}')"),
                        ));
                    }
                    Some(_) => {}
                }
            }
            let parts: Vec<&str> = key.split('.').collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(QueryError::BadPath {
                    path: key.clone(),
                    message: "a field path part cannot be empty".into(),
                });
            }
            if key != "_id" || !matches!(action, Action::Include | Action::Exclude) {
                root.insert(key, &parts, action)?;
            }
        }
        // Only `_id` given: `{_id: 1}` is an inclusion, `{_id: 0}` an exclusion.
        let inclusion = match mode {
            Some((m, _)) => m,
            None => id_action.unwrap_or(false),
        };
        if map.is_empty() {
            return Ok(Projection { root: None, inclusion: false });
        }
        // `_id` defaults to included; a projection of its sub-fields (`"_id.x"`) already decides it.
        let id_in_tree = root.get("_id").is_some();
        match (inclusion, id_action) {
            _ if id_in_tree => {}
            (true, Some(false)) | (false, Some(true)) | (false, None) => {}
            (true, _) => root.children.push(("_id".into(), Child::Leaf(Action::Include))),
            (false, Some(false)) => root.children.push(("_id".into(), Child::Leaf(Action::Exclude))),
        }
        Ok(Projection { root: Some(root), inclusion })
    }

    /// Applies the projection to `doc`.
    pub fn apply(&self, doc: &Value) -> Result<Value> {
        let Some(root) = &self.root else { return Ok(doc.clone()) };
        let Value::Object(map) = doc else { return Ok(doc.clone()) };
        if self.inclusion {
            Ok(Value::Object(include_object(root, map, true)?))
        } else {
            Ok(Value::Object(exclude_object(root, map, true)?))
        }
    }
}

/// Inclusion mode on an object: keeps the fields the node names, in document order.
fn include_object(node: &Node, map: &Map<String, Value>, top: bool) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (key, v) in map {
        match node.get(key) {
            None => {}
            Some(Child::Leaf(Action::Include)) => {
                out.insert(key.clone(), v.clone());
            }
            Some(Child::Leaf(Action::Exclude)) => {}
            Some(Child::Leaf(action @ (Action::Slice { .. } | Action::ElemMatch(_)))) => {
                if let Some(projected) = apply_operator(action, v, top)? {
                    out.insert(key.clone(), projected);
                }
            }
            Some(Child::Sub(sub)) => {
                if let Some(projected) = include_value(sub, v)? {
                    out.insert(key.clone(), projected);
                }
            }
        }
    }
    Ok(out)
}

/// Inclusion below a path part: objects recurse, arrays project each element (dropping scalars), and a
/// scalar where an object was expected is dropped.
fn include_value(node: &Node, v: &Value) -> Result<Option<Value>> {
    match v {
        Value::Object(m) => Ok(Some(Value::Object(include_object(node, m, false)?))),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(p) = include_value(node, item)? {
                    out.push(p);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        _ => Ok(None),
    }
}

/// Exclusion mode on an object: copies everything except the excluded paths; `$slice` applies in place.
fn exclude_object(node: &Node, map: &Map<String, Value>, top: bool) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (key, v) in map {
        match node.get(key) {
            None => {
                out.insert(key.clone(), v.clone());
            }
            Some(Child::Leaf(Action::Exclude)) => {}
            Some(Child::Leaf(Action::Include)) => {
                out.insert(key.clone(), v.clone());
            }
            Some(Child::Leaf(action)) => {
                if let Some(projected) = apply_operator(action, v, top)? {
                    out.insert(key.clone(), projected);
                }
            }
            Some(Child::Sub(sub)) => {
                out.insert(key.clone(), exclude_value(sub, v)?);
            }
        }
    }
    Ok(out)
}

fn exclude_value(node: &Node, v: &Value) -> Result<Value> {
    match v {
        Value::Object(m) => Ok(Value::Object(exclude_object(node, m, false)?)),
        Value::Array(items) => {
            items.iter().map(|i| exclude_value(node, i)).collect::<Result<Vec<_>>>().map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}

/// Applies `$slice` or `$elemMatch` to a field value. `None` drops the field.
fn apply_operator(action: &Action, v: &Value, top: bool) -> Result<Option<Value>> {
    match action {
        Action::Slice { skip, limit } => Ok(Some(match v {
            Value::Array(items) => Value::Array(slice(items, *skip, *limit).to_vec()),
            other => other.clone(), // `$slice` leaves non-arrays alone
        })),
        Action::ElemMatch(filter) if top => {
            let Value::Array(items) = v else { return Ok(None) };
            for item in items {
                if item.is_object() && filter.matches(item)? {
                    return Ok(Some(Value::Array(vec![item.clone()])));
                }
            }
            Ok(None)
        }
        Action::ElemMatch(_) | Action::Include => Ok(Some(v.clone())),
        Action::Exclude => Ok(None),
    }
}

/// `$slice` on an array: a negative `skip` counts from the end; `None` limit means "to the end".
fn slice(items: &[Value], skip: i64, limit: Option<i64>) -> &[Value] {
    let len = items.len() as i64;
    let start = if skip < 0 { (len + skip).max(0) } else { skip.min(len) };
    let end = match limit {
        Some(l) => start.saturating_add(l.max(0)).min(len),
        None => len,
    };
    items.get(start as usize..end as usize).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(p: Value, doc: Value) -> Value {
        Projection::parse(&p, &Limits::default()).unwrap_or_else(|e| panic!("{p}: {e}")).apply(&doc).unwrap()
    }

    fn doc() -> Value {
        json!({"_id": "1", "a": 1, "b": {"c": 2, "d": 3}, "arr": [{"x": 1, "y": 2}, {"x": 3}, 7], "tags": [1, 2, 3, 4]})
    }

    #[test]
    fn inclusion() {
        assert_eq!(apply(json!({"a": 1}), doc()), json!({"_id": "1", "a": 1}));
        assert_eq!(apply(json!({"a": true, "_id": 0}), doc()), json!({"a": 1}));
        assert_eq!(apply(json!({"b.c": 1}), doc()), json!({"_id": "1", "b": {"c": 2}}));
        assert_eq!(apply(json!({"arr.x": 1}), doc()), json!({"_id": "1", "arr": [{"x": 1}, {"x": 3}]}));
        assert_eq!(apply(json!({"a.z": 1, "_id": 0}), doc()), json!({}), "a scalar has no sub-field");
        assert_eq!(apply(json!({"missing": 1}), doc()), json!({"_id": "1"}));
        assert_eq!(apply(json!({"_id": 1}), doc()), json!({"_id": "1"}));
        assert_eq!(apply(json!({"_id.k": 1}), json!({"_id": {"k": 1, "j": 2}, "a": 1})), json!({"_id": {"k": 1}}));
        assert_eq!(apply(json!({"a": 2.5}), doc()), json!({"_id": "1", "a": 1}), "non-zero numbers include");
    }

    #[test]
    fn exclusion() {
        assert_eq!(
            apply(json!({"a": 0, "b.d": false}), doc()),
            json!({"_id": "1", "b": {"c": 2}, "arr": [{"x": 1, "y": 2}, {"x": 3}, 7], "tags": [1, 2, 3, 4]})
        );
        assert_eq!(
            apply(json!({"_id": 0, "arr.x": 0, "tags": 0, "b": 0}), doc()),
            json!({"a": 1, "arr": [{"y": 2}, {}, 7]})
        );
        assert_eq!(apply(json!({"_id": 0}), json!({"_id": 1, "a": 2})), json!({"a": 2}));
        assert_eq!(apply(json!({}), doc()), doc());
    }

    #[test]
    fn slice_and_elem_match() {
        assert_eq!(
            apply(json!({"tags": {"$slice": 2}, "_id": 0, "a": 0, "b": 0, "arr": 0}), doc()),
            json!({"tags": [1, 2]})
        );
        assert_eq!(apply(json!({"tags": {"$slice": -1}, "a": 1, "_id": 0}), doc()), json!({"a": 1, "tags": [4]}));
        assert_eq!(
            apply(json!({"tags": {"$slice": [1, 2]}, "_id": 0, "a": 1}), doc()),
            json!({"a": 1, "tags": [2, 3]})
        );
        assert_eq!(
            apply(json!({"tags": {"$slice": [-2, 5]}, "_id": 0, "a": 1}), doc()),
            json!({"a": 1, "tags": [3, 4]})
        );
        assert_eq!(apply(json!({"tags": {"$slice": [10, 5]}, "_id": 0, "a": 1}), doc()), json!({"a": 1, "tags": []}));
        assert_eq!(
            apply(json!({"tags": {"$slice": -10}, "_id": 0, "a": 1}), doc()),
            json!({"a": 1, "tags": [1, 2, 3, 4]})
        );
        // `$slice` alone keeps every other field.
        let only = apply(json!({"tags": {"$slice": 1}}), doc());
        assert_eq!(only["tags"], json!([1]));
        assert_eq!(only["a"], json!(1));
        assert_eq!(apply(json!({"a": {"$slice": 1}, "_id": 0, "b": 0, "arr": 0, "tags": 0}), doc()), json!({"a": 1}));
        assert_eq!(
            apply(json!({"arr": {"$elemMatch": {"x": {"$gt": 1}}}}), doc()),
            json!({"_id": "1", "arr": [{"x": 3}]})
        );
        assert_eq!(apply(json!({"arr": {"$elemMatch": {"x": 9}}}), doc()), json!({"_id": "1"}));
        assert_eq!(
            apply(json!({"arr": {"$elemMatch": {"x": 1}}, "a": 1}), doc()),
            json!({"_id": "1", "a": 1, "arr": [{"x": 1, "y": 2}]})
        );
    }

    #[test]
    fn bad_projections() {
        for bad in [
            json!({"a": 1, "b": 0}),
            json!({"a": 0, "b": 1}),
            json!({"a": 1, "a.b": 1}),
            json!({"a.b": 0, "a": 0}),
            json!({"a.$": 1}),
            json!({"a": "x"}),
            json!({"a": null}),
            json!({"a": {"$slice": "x"}}),
            json!({"a": {"$slice": [1, 0]}}),
            json!({"a": {"$slice": [1]}}),
            json!({"a": {"$meta": "textScore"}}),
            json!({"a": {"$slice": 1, "$elemMatch": {}}}),
            json!({"a.b": {"$elemMatch": {"x": 1}}}),
            json!({"a": {"$elemMatch": 1}}),
            json!({"a": {"$elemMatch": {"$where": "1"}}}),
            json!({"a..b": 1}),
            json!({"$a": 1}),
            json!([1]),
        ] {
            assert!(Projection::parse(&bad, &Limits::default()).is_err(), "{bad}");
        }
        match Projection::parse(&json!({"a": 1, "b": 0}), &Limits::default()) {
            Err(QueryError::BadArgument { message, .. }) => assert!(message.contains("'b'"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(Projection::parse(&json!({"_id": 0, "a": 1}), &Limits::default()).is_ok());
        assert!(Projection::parse(&json!({"_id": 1, "a": 0}), &Limits::default()).is_ok());
    }
}
