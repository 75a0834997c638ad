//! Parsing an update document into typed operations, with every check that needs no stored document.

use crate::error::{QueryError, Result};
use crate::filter::Filter;
use crate::limits::Limits;
use crate::path::FieldPath;
use crate::sort::SortSpec;
use crate::value::bson_type_name;
use serde_json::{Map, Number, Value};

/// The field name under which `$pull` wraps an array element to test it with an operator condition
/// (`{$gte: 6}` becomes the filter `{v: {$gte: 6}}`, matched against `{v: element}`). MongoDB does the
/// same with an empty field name, which a [`FieldPath`] cannot hold; any plain name works because the
/// wrapper document has no other field.
pub(super) const ELEMENT_KEY: &str = "v";

/// One part of an update path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// A field name or array index.
    Field(String),
    /// `$`: the index of the first array element the query matched.
    Positional,
    /// `$[]`: every element of the array.
    AllPositional,
}

/// An update target as written (`raw`) and split into its typed parts.
#[derive(Debug, Clone)]
pub(super) struct UpdatePath {
    /// The path as written, positional parts included.
    pub raw: FieldPath,
    /// The parts, with `$` and `$[]` recognised.
    pub segs: Vec<Seg>,
}

impl UpdatePath {
    /// Parses a target path of operator `op`.
    fn parse(op: &str, key: &str) -> Result<UpdatePath> {
        let raw = FieldPath::parse(key)?;
        let mut segs = Vec::with_capacity(raw.parts().len());
        let mut seen_positional = false;
        let mut seen_all = false;
        for (i, part) in raw.parts().iter().enumerate() {
            let seg = match part.as_str() {
                "$" | "$[]" if i == 0 => {
                    return Err(bad_path(key, "a positional operator cannot be the first part of a path"));
                }
                "$" => {
                    if seen_positional {
                        return Err(QueryError::bad(
                            op,
                            format!("Too many positional (i.e. '$') elements found in path '{key}'"),
                        ));
                    }
                    if seen_all {
                        // `$` is resolved from the query against one concrete array; after a `$[]` there
                        // would be one array per element, which MongoDB does not define either.
                        return Err(QueryError::bad(op, format!("the positional '$' cannot follow '$[]' in '{key}'")));
                    }
                    seen_positional = true;
                    Seg::Positional
                }
                "$[]" => {
                    seen_all = true;
                    Seg::AllPositional
                }
                p if p.starts_with("$[") && p.ends_with(']') => {
                    return Err(QueryError::bad(
                        op,
                        format!("array filters ('{p}' in '{key}') are not supported; use '$' or '$[]'"),
                    ));
                }
                p if p.starts_with('$') => {
                    return Err(bad_path(key, &format!("the field name '{p}' must not start with '$'")));
                }
                p => Seg::Field(p.to_string()),
            };
            segs.push(seg);
        }
        Ok(UpdatePath { raw, segs })
    }

    /// True if the path holds `$` or `$[]`, so the concrete targets depend on the document.
    pub fn is_dynamic(&self) -> bool {
        self.segs.iter().any(|s| !matches!(s, Seg::Field(_)))
    }

    fn touches_id(&self) -> bool {
        self.raw.parts().first().is_some_and(|p| p == "_id")
    }
}

/// What an operation does at its target path.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// `$set`.
    Set(Value),
    /// `$setOnInsert`: `$set`, but only when the document is being inserted.
    SetOnInsert(Value),
    /// `$unset`.
    Unset,
    /// `$inc` by this number.
    Inc(Number),
    /// `$mul` by this number.
    Mul(Number),
    /// `$min`.
    Min(Value),
    /// `$max`.
    Max(Value),
    /// `$rename` to this (static) path.
    Rename(UpdatePath),
    /// `$currentDate` (date or timestamp: both are the wire date string).
    CurrentDate,
    /// `$push`, plain or with modifiers.
    Push(PushSpec),
    /// `$addToSet` of these values (one, or the members of `$each`).
    AddToSet(Vec<Value>),
    /// `$pop`: the first element (`-1`) or the last (`1`).
    Pop { first: bool },
    /// `$pull`.
    Pull(PullCond),
    /// `$pullAll`.
    PullAll(Vec<Value>),
}

/// `$push` with its modifiers; a plain `$push: {a: v}` is `$each: [v]` without modifiers.
#[derive(Debug, Clone)]
pub(super) struct PushSpec {
    /// The values to insert.
    pub each: Vec<Value>,
    /// `$slice`: keep the first n (n ≥ 0) or the last -n (n < 0) elements.
    pub slice: Option<i64>,
    /// `$sort`, applied after inserting.
    pub sort: Option<PushSort>,
    /// `$position`: insert before this index (negative counts from the end).
    pub position: Option<i64>,
}

/// The `$sort` modifier of `$push`.
#[derive(Debug, Clone)]
pub(super) enum PushSort {
    /// `1` / `-1`: order the elements themselves.
    Whole { descending: bool },
    /// A sort document: order embedded documents by their fields.
    Fields(SortSpec),
}

/// The condition of `$pull`.
#[derive(Debug, Clone)]
pub(super) enum PullCond {
    /// A plain value: remove the elements equal to it.
    Equal(Value),
    /// An operator condition (`{$gte: 6}`) or regular expression, tested on each element as if it were
    /// a field value: the filter is `{ELEMENT_KEY: condition}`.
    Element(Filter),
    /// A document condition: remove the embedded documents that match this filter.
    Document(Filter),
}

/// One parsed operation.
#[derive(Debug, Clone)]
pub(super) struct Op {
    /// The operator, for error messages (`"$inc"`).
    pub name: &'static str,
    /// The target path (for `$rename`, the source).
    pub path: UpdatePath,
    /// What to do there.
    pub action: Action,
}

/// Parses a whole update document into operations in document order.
pub(super) fn parse_update(update: &Value, limits: &Limits) -> Result<Vec<Op>> {
    let map = match update {
        Value::Object(m) => m,
        Value::Array(_) => {
            return Err(QueryError::bad("update", "pipeline-style updates (an array of stages) are not supported"));
        }
        other => {
            return Err(QueryError::bad(
                "update",
                format!("an update must be an object of update operators, found {}", bson_type_name(other)),
            ));
        }
    };
    if map.is_empty() {
        return Err(QueryError::bad("update", "the update document is empty"));
    }
    if let Some(field) = map.keys().find(|k| !k.starts_with('$')) {
        return Err(QueryError::bad(
            "update",
            format!("'{field}' is not an update operator: an operator update cannot contain plain fields"),
        ));
    }
    let mut ops = Vec::new();
    for (key, arg) in map {
        let name = operator_name(key)?;
        let Value::Object(fields) = arg else {
            return Err(QueryError::bad(
                name,
                format!("the argument must be an object of fields, found {}", bson_type_name(arg)),
            ));
        };
        // An empty argument (`$set: {}`) is a no-op, as in MongoDB 5.0 and later.
        for (field, value) in fields {
            let path = UpdatePath::parse(name, field)?;
            check_id(name, &path)?;
            let action = parse_action(name, &path, value, limits)?;
            ops.push(Op { name, path, action });
        }
    }
    check_conflicts(&ops)?;
    // MongoDB 5.0+ applies update operations in the order of their paths (field names
    // lexicographically, array indexes numerically), whatever the order in the request; new fields are
    // therefore created in that order. Paths never conflict here, so the order only affects layout.
    ops.sort_by(|a, b| compare_paths(&a.path.raw, &b.path.raw));
    Ok(ops)
}

/// Orders paths part by part: two array indexes numerically, anything else by the field name's bytes.
fn compare_paths(a: &FieldPath, b: &FieldPath) -> std::cmp::Ordering {
    for (x, y) in a.parts().iter().zip(b.parts()) {
        let order = match (crate::path::array_index(x), crate::path::array_index(y)) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => x.as_bytes().cmp(y.as_bytes()),
        };
        if order != std::cmp::Ordering::Equal {
            return order;
        }
    }
    a.parts().len().cmp(&b.parts().len())
}

/// The known operators, as `'static` names for the operations.
fn operator_name(key: &str) -> Result<&'static str> {
    Ok(match key {
        "$set" => "$set",
        "$setOnInsert" => "$setOnInsert",
        "$unset" => "$unset",
        "$inc" => "$inc",
        "$mul" => "$mul",
        "$min" => "$min",
        "$max" => "$max",
        "$rename" => "$rename",
        "$currentDate" => "$currentDate",
        "$push" => "$push",
        "$addToSet" => "$addToSet",
        "$pop" => "$pop",
        "$pull" => "$pull",
        "$pullAll" => "$pullAll",
        "$bit" => return Err(QueryError::bad("$bit", "$bit is not supported")),
        other => return Err(QueryError::unknown(other)),
    })
}

/// MongoDB's `_id` is immutable. Refusing every operation on it at parse time is simpler than
/// comparing values at apply time; `$setOnInsert: {_id: …}` stays allowed because an upsert may choose
/// the id of the document it creates.
///
/// `$set: {_id: <the current value>}` is also allowed (a no-op, as in MongoDB); whether the value really
/// is the current one is checked when the update is applied.
fn check_id(name: &str, path: &UpdatePath) -> Result<()> {
    let whole_id = path.raw.parts().len() == 1;
    if path.touches_id() && !((name == "$setOnInsert" || name == "$set") && whole_id) {
        return Err(immutable_id(name));
    }
    Ok(())
}

pub(super) fn immutable_id(name: &str) -> QueryError {
    QueryError::bad(name, "Performing an update on the path '_id' would modify the immutable field '_id'")
}

fn parse_action(name: &'static str, path: &UpdatePath, value: &Value, limits: &Limits) -> Result<Action> {
    Ok(match name {
        "$set" => Action::Set(value.clone()),
        "$setOnInsert" => Action::SetOnInsert(value.clone()),
        "$unset" => Action::Unset,
        "$inc" | "$mul" => {
            let Value::Number(n) = value else {
                let verb = if name == "$inc" { "increment" } else { "multiply" };
                return Err(QueryError::bad(
                    name,
                    format!(
                        "Cannot {verb} with non-numeric argument: {{{}: {value}}} is of type {}",
                        path.raw,
                        bson_type_name(value)
                    ),
                ));
            };
            if name == "$inc" {
                Action::Inc(n.clone())
            } else {
                Action::Mul(n.clone())
            }
        }
        "$min" => Action::Min(value.clone()),
        "$max" => Action::Max(value.clone()),
        "$rename" => Action::Rename(parse_rename(path, value)?),
        "$currentDate" => {
            parse_current_date(value)?;
            Action::CurrentDate
        }
        "$push" => Action::Push(parse_push(value)?),
        "$addToSet" => Action::AddToSet(parse_add_to_set(value)?),
        "$pop" => {
            // `-1` pops the first element, `1` the last.
            let first = minus_one(value)
                .ok_or_else(|| QueryError::bad("$pop", format!("$pop expects 1 or -1, found: {value}")))?;
            Action::Pop { first }
        }
        "$pull" => Action::Pull(parse_pull(value, limits)?),
        "$pullAll" => match value {
            Value::Array(items) => Action::PullAll(items.clone()),
            other => {
                return Err(QueryError::bad(
                    "$pullAll",
                    format!("$pullAll requires an array argument but was given a {}", bson_type_name(other)),
                ));
            }
        },
        // `operator_name` only yields the names above.
        other => return Err(QueryError::unknown(other)),
    })
}

fn parse_rename(from: &UpdatePath, value: &Value) -> Result<UpdatePath> {
    if from.is_dynamic() {
        return Err(QueryError::bad(
            "$rename",
            format!("The source field for $rename may not be dynamic: {}", from.raw),
        ));
    }
    let Value::String(target) = value else {
        return Err(QueryError::bad(
            "$rename",
            format!("The 'to' field for $rename must be a string, found {}", bson_type_name(value)),
        ));
    };
    let to = UpdatePath::parse("$rename", target)?;
    if to.is_dynamic() {
        return Err(QueryError::bad(
            "$rename",
            format!("The destination field for $rename may not be dynamic: {target}"),
        ));
    }
    if to.touches_id() {
        return Err(immutable_id("$rename"));
    }
    if to.raw == from.raw {
        return Err(QueryError::bad(
            "$rename",
            format!("The source and target field for $rename must differ: {}", from.raw),
        ));
    }
    if to.raw.starts_with(&from.raw) || from.raw.starts_with(&to.raw) {
        return Err(QueryError::bad(
            "$rename",
            format!("The source and target field for $rename must not be on the same path: {}: \"{target}\"", from.raw),
        ));
    }
    Ok(to)
}

fn parse_current_date(value: &Value) -> Result<()> {
    match value {
        // MongoDB accepts any boolean and treats it as "date".
        Value::Bool(_) => Ok(()),
        Value::Object(m) if m.len() == 1 => match m.get("$type") {
            Some(Value::String(t)) if t == "date" || t == "timestamp" => Ok(()),
            Some(other) => Err(QueryError::bad(
                "$currentDate",
                format!("The '$type' string field is required to be 'date' or 'timestamp': found {other}"),
            )),
            None => Err(QueryError::bad("$currentDate", format!("Unrecognized $currentDate option: {value}"))),
        },
        other => Err(QueryError::bad(
            "$currentDate",
            format!("expects true or {{$type: \"date\" | \"timestamp\"}}, found {other}"),
        )),
    }
}

fn parse_push(value: &Value) -> Result<PushSpec> {
    let plain = PushSpec { each: vec![value.clone()], slice: None, sort: None, position: None };
    let Value::Object(m) = value else {
        return Ok(plain);
    };
    if !m.contains_key("$each") {
        if let Some(k) = m.keys().find(|k| matches!(k.as_str(), "$slice" | "$sort" | "$position")) {
            return Err(QueryError::bad("$push", format!("{k} is only valid together with $each")));
        }
        return Ok(plain);
    }
    let mut spec = PushSpec { each: Vec::new(), slice: None, sort: None, position: None };
    for (k, v) in m {
        match k.as_str() {
            "$each" => match v {
                Value::Array(items) => spec.each = items.clone(),
                other => {
                    return Err(QueryError::bad(
                        "$push",
                        format!(
                            "The argument to $each in $push must be an array but it was of type {}",
                            bson_type_name(other)
                        ),
                    ));
                }
            },
            "$slice" => spec.slice = Some(integer("$slice", v)?),
            "$position" => spec.position = Some(integer("$position", v)?),
            "$sort" => spec.sort = Some(parse_push_sort(v)?),
            other => return Err(QueryError::bad("$push", format!("Unrecognized clause in $push: {other}"))),
        }
    }
    Ok(spec)
}

/// An integral number (`3`, `-2`, `3.0`) as `i64`.
fn integer(clause: &str, v: &Value) -> Result<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // i64::MAX as f64 rounds up to 2^63, hence the strict bound.
            (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
        }),
        _ => None,
    };
    n.ok_or_else(|| QueryError::bad("$push", format!("The value for {clause} must be an integer, found {v}")))
}

/// `Some(false)` for the number 1 (also written `1.0`), `Some(true)` for -1, `None` for anything else.
fn minus_one(v: &Value) -> Option<bool> {
    let f = v.as_f64()?;
    if f == 1.0 {
        Some(false)
    } else if f == -1.0 {
        Some(true)
    } else {
        None
    }
}

fn parse_push_sort(v: &Value) -> Result<PushSort> {
    if let Some(descending) = minus_one(v) {
        return Ok(PushSort::Whole { descending });
    }
    let Value::Object(m) = v else {
        return Err(QueryError::bad(
            "$push",
            format!("The $sort is invalid: use 1/-1 to sort the whole element, or a sort document: {v}"),
        ));
    };
    if m.is_empty() {
        return Err(QueryError::bad("$push", "The $sort pattern is empty when it should be a set of fields"));
    }
    for (k, dir) in m {
        if k.starts_with('$') || FieldPath::parse(k).is_err() {
            return Err(QueryError::bad("$push", format!("The $sort field '{k}' is not a valid field name")));
        }
        if minus_one(dir).is_none() {
            return Err(QueryError::bad(
                "$push",
                format!("The $sort element value must be either 1 or -1: {k}: {dir}"),
            ));
        }
    }
    Ok(PushSort::Fields(SortSpec::parse(v)?))
}

fn parse_add_to_set(value: &Value) -> Result<Vec<Value>> {
    match value {
        Value::Object(m) if m.contains_key("$each") => {
            if m.len() != 1 {
                return Err(QueryError::bad("$addToSet", "Found unexpected fields after $each in $addToSet"));
            }
            match m.get("$each") {
                Some(Value::Array(items)) => Ok(items.clone()),
                other => Err(QueryError::bad(
                    "$addToSet",
                    format!(
                        "The argument to $each in $addToSet must be an array but it was of type {}",
                        other.map_or("missing", bson_type_name)
                    ),
                )),
            }
        }
        other => Ok(vec![other.clone()]),
    }
}

/// Operators that only make sense at the top level of a filter; a `$pull` condition starting with one
/// of them is a document condition, not an element condition (MongoDB's "path-accepting keyword" test).
fn is_top_level_operator(key: &str) -> bool {
    matches!(
        key,
        "$and"
            | "$or"
            | "$nor"
            | "$expr"
            | "$where"
            | "$text"
            | "$comment"
            | "$jsonSchema"
            | "$alwaysTrue"
            | "$alwaysFalse"
    )
}

fn parse_pull(value: &Value, limits: &Limits) -> Result<PullCond> {
    let wrap = |cond: &Value| {
        let mut m = Map::new();
        m.insert(ELEMENT_KEY.to_string(), cond.clone());
        Filter::parse(&Value::Object(m), limits)
    };
    match value {
        Value::Object(m) => {
            let element_condition = m.keys().next().is_some_and(|k| k.starts_with('$') && !is_top_level_operator(k));
            if element_condition {
                Ok(PullCond::Element(wrap(value)?))
            } else {
                Ok(PullCond::Document(Filter::parse(value, limits)?))
            }
        }
        // The OpenIAP wire form of a regular expression: match each element against it.
        Value::String(s) if s.starts_with("__REGEXP ") => Ok(PullCond::Element(wrap(value)?)),
        other => Ok(PullCond::Equal(other.clone())),
    }
}

/// Refuses two operations on the same path or on paths nested in each other (MongoDB: "Updating the
/// path 'a.b' would create a conflict at 'a'"). `$rename` occupies both its source and its target.
fn check_conflicts(ops: &[Op]) -> Result<()> {
    let mut paths: Vec<(&FieldPath, &'static str)> = Vec::with_capacity(ops.len());
    for op in ops {
        paths.push((&op.path.raw, op.name));
        if let Action::Rename(to) = &op.action {
            paths.push((&to.raw, op.name));
        }
    }
    // After sorting by parts, a path that is a prefix of another comes before it and every path in
    // between shares that prefix, so comparing neighbours finds every conflict in O(n log n).
    paths.sort_by(|a, b| a.0.parts().cmp(b.0.parts()));
    for pair in paths.windows(2) {
        if let [(shorter, _), (longer, name)] = pair {
            if longer.starts_with(shorter) {
                return Err(QueryError::bad(
                    *name,
                    format!("Updating the path '{longer}' would create a conflict at '{shorter}'"),
                ));
            }
        }
    }
    Ok(())
}

fn bad_path(path: &str, message: &str) -> QueryError {
    QueryError::BadPath { path: path.to_string(), message: message.to_string() }
}
