//! Running parsed operations against a document.
//!
//! Every function here works on the caller's scratch copy of the document (see [`super::Update::apply`]),
//! so an error part way through needs no undo.

use super::parse::{Action, Op, PullCond, PushSort, PushSpec, Seg, UpdatePath, ELEMENT_KEY};
use super::UpdateContext;
use crate::error::{QueryError, Result};
use crate::path::{self, get_exact, get_exact_mut, FieldPath};
use crate::value::{bson_type_name, compare, format_date_millis, values_equal};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// Applies one operation to `doc`.
pub(super) fn apply_op(op: &Op, doc: &mut Value, ctx: &UpdateContext<'_>) -> Result<()> {
    match &op.action {
        Action::SetOnInsert(_) if !ctx.is_insert => Ok(()),
        Action::Rename(to) => rename(op, doc, to),
        _ => {
            for target in resolve(op, doc, ctx)? {
                apply_at(op, doc, &target, ctx)?;
            }
            Ok(())
        }
    }
}

/// The concrete paths an operation writes: its own path, or, with `$` / `$[]`, one path per matched
/// element.
pub(super) fn resolve(op: &Op, doc: &Value, ctx: &UpdateContext<'_>) -> Result<Vec<FieldPath>> {
    if !op.path.is_dynamic() {
        return Ok(vec![op.path.raw.clone()]);
    }
    let mut prefixes: Vec<Vec<String>> = vec![Vec::new()];
    for seg in &op.path.segs {
        match seg {
            Seg::Field(name) => prefixes.iter_mut().for_each(|p| p.push(name.clone())),
            Seg::Positional => {
                // Parsing refuses `$` after `$[]`, so there is exactly one prefix here.
                for p in &mut prefixes {
                    let array_path = FieldPath::from_parts(p.clone());
                    let index = ctx.query.and_then(|q| q.first_match_index(doc, &array_path)).ok_or_else(|| {
                        failed(op, "The positional operator did not find the match needed from the query")
                    })?;
                    p.push(index.to_string());
                }
            }
            Seg::AllPositional => {
                let mut next = Vec::new();
                for p in prefixes {
                    let array_path = FieldPath::from_parts(p.clone());
                    match get_exact(doc, &array_path) {
                        Some(Value::Array(items)) => {
                            for i in 0..items.len() {
                                let mut concrete = p.clone();
                                concrete.push(i.to_string());
                                next.push(concrete);
                            }
                        }
                        Some(other) => {
                            return Err(failed(
                                op,
                                format!(
                                    "Cannot apply array updates to non-array element {array_path} of type {}",
                                    bson_type_name(other)
                                ),
                            ));
                        }
                        None => {
                            return Err(failed(
                                op,
                                format!("The path '{array_path}' must exist in the document in order to apply array updates"),
                            ));
                        }
                    }
                }
                prefixes = next;
            }
        }
    }
    Ok(prefixes.into_iter().map(FieldPath::from_parts).collect())
}

/// Applies a non-`$rename` operation at one concrete path.
fn apply_at(op: &Op, doc: &mut Value, target: &FieldPath, ctx: &UpdateContext<'_>) -> Result<()> {
    match &op.action {
        Action::Set(v) => {
            if target.parts().len() == 1 && target.parts().first().is_some_and(|p| p == "_id") {
                // Only a no-op `$set` of `_id` passes parsing; any other value would change it.
                return match get_exact(doc, target) {
                    Some(current) if values_equal(current, v) => Ok(()),
                    _ => Err(super::parse::immutable_id(op.name)),
                };
            }
            set(op, doc, target, v.clone())
        }
        Action::SetOnInsert(v) => {
            if target.parts().len() == 1 && target.parts().first().is_some_and(|p| p == "_id") {
                if let Some(current) = get_exact(doc, target) {
                    if !values_equal(current, v) {
                        return Err(super::parse::immutable_id(op.name));
                    }
                }
            }
            set(op, doc, target, v.clone())
        }
        Action::Unset => {
            path::unset(doc, target);
            Ok(())
        }
        Action::Inc(n) => arithmetic(op, doc, target, n, false),
        Action::Mul(n) => arithmetic(op, doc, target, n, true),
        Action::Min(v) => min_max(op, doc, target, v, Ordering::Less),
        Action::Max(v) => min_max(op, doc, target, v, Ordering::Greater),
        Action::CurrentDate => {
            let now = format_date_millis(ctx.now_millis).ok_or_else(|| {
                failed(op, format!("the current time {} ms is outside the date range", ctx.now_millis))
            })?;
            set(op, doc, target, Value::String(now))
        }
        Action::Push(spec) => match array_at(op, doc, target)? {
            Some(items) => {
                push_into(spec, items);
                Ok(())
            }
            None => {
                let mut items = Vec::new();
                push_into(spec, &mut items);
                set(op, doc, target, Value::Array(items))
            }
        },
        Action::AddToSet(values) => match array_at(op, doc, target)? {
            Some(items) => {
                add_to_set(items, values);
                Ok(())
            }
            None => {
                let mut items = Vec::new();
                add_to_set(&mut items, values);
                set(op, doc, target, Value::Array(items))
            }
        },
        Action::Pop { first } => {
            if let Some(items) = array_at(op, doc, target)? {
                if *first {
                    if !items.is_empty() {
                        items.remove(0);
                    }
                } else {
                    items.pop();
                }
            }
            Ok(())
        }
        Action::Pull(cond) => {
            if let Some(items) = array_at(op, doc, target)? {
                // Decide first, then remove: a failing condition must not leave the array half pulled.
                let remove = items.iter().map(|e| pull_matches(cond, e)).collect::<Result<Vec<bool>>>()?;
                let mut flags = remove.into_iter();
                items.retain(|_| !flags.next().unwrap_or(false));
            }
            Ok(())
        }
        Action::PullAll(values) => {
            if let Some(items) = array_at(op, doc, target)? {
                items.retain(|e| !values.iter().any(|v| values_equal(e, v)));
            }
            Ok(())
        }
        // Handled in `apply_op`; kept total so a future caller cannot panic here.
        Action::Rename(to) => rename(op, doc, to),
    }
}

/// `path::set`, with its errors attributed to the operator at hand.
fn set(op: &Op, doc: &mut Value, target: &FieldPath, value: Value) -> Result<()> {
    path::set(doc, target, value).map_err(|e| match e {
        QueryError::UpdateFailed { path, message, .. } => {
            QueryError::UpdateFailed { op: op.name.to_string(), path, message }
        }
        other => other,
    })
}

fn failed(op: &Op, message: impl Into<String>) -> QueryError {
    QueryError::UpdateFailed { op: op.name.to_string(), path: op.path.raw.dotted(), message: message.into() }
}

/// The array at `target` for an array operator: `None` if the field is missing, an error if it holds
/// something else.
fn array_at<'d>(op: &Op, doc: &'d mut Value, target: &FieldPath) -> Result<Option<&'d mut Vec<Value>>> {
    match get_exact_mut(doc, target) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(QueryError::UpdateFailed {
            op: op.name.to_string(),
            path: target.dotted(),
            message: format!("Cannot apply {} to a non-array value of type {}", op.name, bson_type_name(other)),
        }),
    }
}

/// `$inc` (`multiply == false`) and `$mul`.
fn arithmetic(op: &Op, doc: &mut Value, target: &FieldPath, by: &Number, multiply: bool) -> Result<()> {
    let result = match get_exact(doc, target) {
        // A missing field is created: `$inc` sets the increment, `$mul` a zero of the multiplier's type.
        None if multiply => {
            if by.is_f64() {
                Value::from(0.0)
            } else {
                Value::from(0)
            }
        }
        None => Value::Number(by.clone()),
        Some(Value::Number(current)) => combine(op, target, current, by, multiply)?,
        Some(other) => {
            return Err(QueryError::UpdateFailed {
                op: op.name.to_string(),
                path: target.dotted(),
                message: format!("Cannot apply {} to a value of non-numeric type {}", op.name, bson_type_name(other)),
            });
        }
    };
    set(op, doc, target, result)
}

/// Integer arithmetic when both sides are 64-bit integers (an overflow is an error, as MongoDB refuses to
/// overflow a `long`); double arithmetic otherwise.
fn combine(op: &Op, target: &FieldPath, a: &Number, b: &Number, multiply: bool) -> Result<Value> {
    let err = |message: String| QueryError::UpdateFailed { op: op.name.to_string(), path: target.dotted(), message };
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let r = if multiply { x.checked_mul(y) } else { x.checked_add(y) };
        return r
            .map(Value::from)
            .ok_or_else(|| err(format!("integer overflow: {a} and {b} give a result outside the 64-bit range")));
    }
    let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    let r = if multiply { x * y } else { x + y };
    Number::from_f64(r)
        .map(Value::Number)
        .ok_or_else(|| err(format!("the result of {a} and {b} is not a finite number")))
}

/// `$min` (`wins == Less`) and `$max` (`wins == Greater`), in BSON order across types.
fn min_max(op: &Op, doc: &mut Value, target: &FieldPath, value: &Value, wins: Ordering) -> Result<()> {
    let replace = match get_exact(doc, target) {
        None => true,
        Some(current) => compare(value, current) == wins,
    };
    if replace {
        set(op, doc, target, value.clone())?;
    }
    Ok(())
}

/// `$push` in MongoDB's order: insert at `$position`, then `$sort`, then `$slice`.
fn push_into(spec: &PushSpec, items: &mut Vec<Value>) {
    let len = items.len();
    let at = match spec.position {
        None => len,
        Some(p) if p >= 0 => usize::try_from(p).unwrap_or(usize::MAX).min(len),
        Some(p) => len.saturating_sub(usize::try_from(p.unsigned_abs()).unwrap_or(usize::MAX)),
    };
    items.splice(at..at, spec.each.iter().cloned());
    match &spec.sort {
        Some(PushSort::Whole { descending }) => items.sort_by(|a, b| {
            let o = compare(a, b);
            if *descending {
                o.reverse()
            } else {
                o
            }
        }),
        Some(PushSort::Fields(spec)) => items.sort_by(|a, b| spec.compare(a, b)),
        None => {}
    }
    if let Some(n) = spec.slice {
        let keep = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
        if n >= 0 {
            items.truncate(keep);
        } else if items.len() > keep {
            let drop = items.len() - keep;
            items.drain(..drop);
        }
    }
}

fn add_to_set(items: &mut Vec<Value>, values: &[Value]) {
    for v in values {
        if !items.iter().any(|e| values_equal(e, v)) {
            items.push(v.clone());
        }
    }
}

fn pull_matches(cond: &PullCond, element: &Value) -> Result<bool> {
    match cond {
        PullCond::Equal(v) => Ok(values_equal(element, v)),
        PullCond::Element(filter) => {
            let mut wrapper = Map::new();
            wrapper.insert(ELEMENT_KEY.to_string(), element.clone());
            filter.matches(&Value::Object(wrapper))
        }
        // A document condition only ever matches embedded documents.
        PullCond::Document(filter) => match element {
            Value::Object(_) => filter.matches(element),
            _ => Ok(false),
        },
    }
}

/// `$rename`: remove the source field and set the target to its value. Neither path may run through an
/// array (MongoDB: "The source field cannot be an array element").
fn rename(op: &Op, doc: &mut Value, to: &UpdatePath) -> Result<()> {
    let from = &op.path.raw;
    let Some(value) = take_field(op, doc, from)? else {
        return Ok(()); // a missing source is a no-op
    };
    // Only the parents that already exist can be arrays; missing ones are created as objects.
    let mut cur: &Value = doc;
    let parents = to.raw.parts().split_last().map_or(&[][..], |(_, init)| init);
    for part in parents {
        match cur {
            Value::Object(m) => match m.get(part) {
                Some(next) => cur = next,
                None => break,
            },
            Value::Array(_) => {
                return Err(failed(op, format!("The destination field cannot be an array element: '{}'", to.raw)));
            }
            _ => break, // `set` reports walking through a scalar
        }
    }
    if matches!(cur, Value::Array(_)) {
        return Err(failed(op, format!("The destination field cannot be an array element: '{}'", to.raw)));
    }
    set(op, doc, &to.raw, value)
}

/// Removes and returns the field at `from`, or `None` if it is missing; refuses paths through arrays.
fn take_field(op: &Op, doc: &mut Value, from: &FieldPath) -> Result<Option<Value>> {
    let Some((last, parents)) = from.parts().split_last() else {
        return Ok(None);
    };
    let mut cur: &mut Value = doc;
    for part in parents {
        cur = match cur {
            Value::Object(m) => match m.get_mut(part) {
                Some(next) => next,
                None => return Ok(None),
            },
            Value::Array(_) => return Err(source_in_array(op, part)),
            _ => return Ok(None),
        };
    }
    match cur {
        Value::Object(m) => Ok(m.shift_remove(last)),
        Value::Array(_) => Err(source_in_array(op, last)),
        _ => Ok(None),
    }
}

fn source_in_array(op: &Op, part: &str) -> QueryError {
    failed(
        op,
        format!("The source field cannot be an array element: '{}' runs through an array at '{part}'", op.path.raw),
    )
}

/// Strict structural identity: same types, same numbers (`1` is not `1.0`), same strings, and objects
/// with the same fields *in the same order*. This is what "the document changed" means for a store;
/// `serde_json`'s `==` ignores field order and would miss a reordering. Iterative, so a deep document
/// cannot overflow the stack.
pub(super) fn identical(a: &Value, b: &Value) -> bool {
    let mut stack = vec![(a, b)];
    while let Some(pair) = stack.pop() {
        match pair {
            (Value::Object(x), Value::Object(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                for ((kx, vx), (ky, vy)) in x.iter().zip(y.iter()) {
                    if kx != ky {
                        return false;
                    }
                    stack.push((vx, vy));
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                stack.extend(x.iter().zip(y.iter()));
            }
            (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => return false,
            (x, y) => {
                if x != y {
                    return false;
                }
            }
        }
    }
    true
}
