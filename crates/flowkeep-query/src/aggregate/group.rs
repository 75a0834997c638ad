//! `$group` and `$sortByCount`, and the canonical key encoding that groups values the way
//! [`crate::value::values_equal`] compares them.

use crate::error::{QueryError, Result};
use crate::expr::{check_field_name, Expr, Num, Vars};
use crate::limits::Limits;
use crate::value::{as_f64, compare, date_nanos, number_from_f64, parse_date};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Appends a canonical encoding of `v` to `out`: two values get the same encoding exactly when
/// `values_equal` holds (`1` and `1.0`, and two spellings of the same instant, are one key), except
/// for integers beyond 2^53, which are kept exact where `values_equal` compares them as doubles.
///
/// Each piece is self-delimiting (strings are length-prefixed), so concatenations cannot collide.
pub(crate) fn encode_key(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
        Value::Number(n) => {
            let exact = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).or_else(|| {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 1.0e38).then_some(f as i128)
            });
            match exact {
                Some(i) => {
                    let _ = write!(out, "i{i};");
                }
                None => {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    if f.is_nan() {
                        out.push_str("N;");
                    } else {
                        let _ = write!(out, "d{};", f.to_bits());
                    }
                }
            }
        }
        Value::String(s) => match parse_date(s) {
            Some(d) => {
                let _ = write!(out, "D{};", date_nanos(&d));
            }
            None => {
                let _ = write!(out, "s{}:{s}", s.len());
            }
        },
        Value::Array(items) => {
            out.push('[');
            for i in items {
                encode_key(i, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (k, v) in m {
                let _ = write!(out, "{}:{k}", k.len());
                encode_key(v, out);
            }
            out.push('}');
        }
    }
}

/// The canonical key of one value.
pub(crate) fn key_of(v: &Value) -> String {
    let mut s = String::new();
    encode_key(v, &mut s);
    s
}

/// A `$group` accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccOp {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
    MergeObjects,
    StdDevPop,
    StdDevSamp,
}

/// A parsed `$group` stage.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    id: Expr,
    accumulators: Vec<(String, AccOp, Expr)>,
}

/// The running state of one accumulator for one group.
#[derive(Debug)]
enum AccState {
    Sum(Num),
    Avg(Num, usize),
    /// The least (`Less`) or greatest (`Greater`) value so far.
    Best(Option<Value>, Ordering),
    First(Option<Value>),
    Last(Value),
    Push(Vec<Value>),
    Set(Vec<Value>, HashSet<String>),
    Count(i64),
    Merge(Map<String, Value>),
    /// Welford's running count, mean and sum of squared deviations.
    StdDev(f64, f64, f64),
}

impl Group {
    /// Parses `{_id: <expr>, <field>: {<accumulator>: <expr>}, …}`.
    pub(crate) fn parse(spec: &Value, limits: &Limits) -> Result<Group> {
        let op = "$group";
        let map = spec.as_object().ok_or_else(|| QueryError::bad(op, "the specification must be an object"))?;
        let id = map.get("_id").ok_or_else(|| QueryError::bad(op, "a group specification must include an _id"))?;
        let id = Expr::parse(id, limits)?;
        let mut accumulators = Vec::new();
        for (name, acc) in map.iter().filter(|(k, _)| k.as_str() != "_id") {
            check_field_name(op, name)?;
            let acc_map = acc.as_object().filter(|m| m.len() == 1).ok_or_else(|| {
                QueryError::bad(op, format!("'{name}' must be an object with exactly one accumulator"))
            })?;
            let Some((acc_name, arg)) = acc_map.iter().next() else {
                return Err(QueryError::bad(op, format!("'{name}' must name an accumulator")));
            };
            let acc_op = match acc_name.as_str() {
                "$sum" => AccOp::Sum,
                "$avg" => AccOp::Avg,
                "$min" => AccOp::Min,
                "$max" => AccOp::Max,
                "$first" => AccOp::First,
                "$last" => AccOp::Last,
                "$push" => AccOp::Push,
                "$addToSet" => AccOp::AddToSet,
                "$count" => AccOp::Count,
                "$mergeObjects" => AccOp::MergeObjects,
                "$stdDevPop" => AccOp::StdDevPop,
                "$stdDevSamp" => AccOp::StdDevSamp,
                "$accumulator" | "$function" | "$where" => {
                    return Err(QueryError::JavaScriptRefused { op: acc_name.clone() });
                }
                other => return Err(QueryError::unknown(other)),
            };
            if acc_op == AccOp::Count && !arg.as_object().is_some_and(Map::is_empty) {
                return Err(QueryError::bad("$count", "the $count accumulator takes an empty object: {$count: {}}"));
            }
            let expr = if acc_op == AccOp::Count { Expr::literal(Value::Null) } else { Expr::parse(arg, limits)? };
            accumulators.push((name.clone(), acc_op, expr));
        }
        Ok(Group { id, accumulators })
    }

    /// Groups `docs`; groups come out in the order their first document came in.
    pub(crate) fn run(&self, docs: Vec<Value>, vars: &Vars, limits: &Limits) -> Result<Vec<Value>> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<(Value, Vec<AccState>)> = Vec::new();
        for doc in &docs {
            let id = self.id.eval_with(doc, vars)?.unwrap_or(Value::Null);
            let key = key_of(&id);
            let slot = match index.get(&key) {
                Some(&i) => i,
                None => {
                    if groups.len() >= limits.max_stage_documents {
                        return Err(QueryError::TooLarge {
                            what: "$group output".into(),
                            size: groups.len() + 1,
                            limit: limits.max_stage_documents,
                        });
                    }
                    groups.push((id, self.accumulators.iter().map(|(_, op, _)| initial(*op)).collect()));
                    index.insert(key, groups.len() - 1);
                    groups.len() - 1
                }
            };
            let Some((_, states)) = groups.get_mut(slot) else { continue };
            for ((_, op, expr), state) in self.accumulators.iter().zip(states.iter_mut()) {
                let v = if *op == AccOp::Count { None } else { expr.eval_with(doc, vars)? };
                accumulate(state, v)?;
            }
        }
        Ok(groups
            .into_iter()
            .map(|(id, states)| {
                let mut out = Map::new();
                out.insert("_id".into(), id);
                for ((name, op, _), state) in self.accumulators.iter().zip(states) {
                    out.insert(name.clone(), finish(*op, state));
                }
                Value::Object(out)
            })
            .collect())
    }
}

fn initial(op: AccOp) -> AccState {
    match op {
        AccOp::Sum => AccState::Sum(Num::I(0)),
        AccOp::Avg => AccState::Avg(Num::I(0), 0),
        AccOp::Min => AccState::Best(None, Ordering::Less),
        AccOp::Max => AccState::Best(None, Ordering::Greater),
        AccOp::First => AccState::First(None),
        AccOp::Last => AccState::Last(Value::Null),
        AccOp::Push => AccState::Push(Vec::new()),
        AccOp::AddToSet => AccState::Set(Vec::new(), HashSet::new()),
        AccOp::Count => AccState::Count(0),
        AccOp::MergeObjects => AccState::Merge(Map::new()),
        AccOp::StdDevPop | AccOp::StdDevSamp => AccState::StdDev(0.0, 0.0, 0.0),
    }
}

/// Folds one document's value (`None` = missing) into the state.
fn accumulate(state: &mut AccState, v: Option<Value>) -> Result<()> {
    match state {
        AccState::Sum(total) => {
            if let Some(n) = v.as_ref().and_then(Num::of) {
                *total = total.add(n);
            }
        }
        AccState::Avg(total, count) => {
            if let Some(n) = v.as_ref().and_then(Num::of) {
                *total = total.add(n);
                *count += 1;
            }
        }
        AccState::Best(best, want) => {
            // null and missing are ignored by $min and $max.
            if let Some(v) = v.filter(|v| !v.is_null()) {
                if best.as_ref().is_none_or(|b| compare(&v, b) == *want) {
                    *best = Some(v);
                }
            }
        }
        AccState::First(first) => {
            if first.is_none() {
                *first = Some(v.unwrap_or(Value::Null));
            }
        }
        AccState::Last(last) => *last = v.unwrap_or(Value::Null),
        AccState::Push(items) => {
            if let Some(v) = v {
                items.push(v);
            }
        }
        AccState::Set(items, seen) => {
            if let Some(v) = v {
                if seen.insert(key_of(&v)) {
                    items.push(v);
                }
            }
        }
        AccState::Count(n) => *n = n.saturating_add(1),
        AccState::Merge(m) => match v {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => m.extend(o),
            Some(other) => {
                return Err(QueryError::bad(
                    "$mergeObjects",
                    format!("only objects can be merged, found {}", crate::value::bson_type_name(&other)),
                ))
            }
        },
        AccState::StdDev(n, mean, m2) => {
            if let Some(x) = v.as_ref().and_then(as_f64) {
                *n += 1.0;
                let delta = x - *mean;
                *mean += delta / *n;
                *m2 += delta * (x - *mean);
            }
        }
    }
    Ok(())
}

fn finish(op: AccOp, state: AccState) -> Value {
    match state {
        AccState::Sum(total) => total.value(),
        AccState::Avg(_, 0) => Value::Null,
        AccState::Avg(total, count) => number_from_f64(total.f() / count as f64),
        AccState::Best(best, _) => best.unwrap_or(Value::Null),
        AccState::First(first) => first.unwrap_or(Value::Null),
        AccState::Last(last) => last,
        AccState::Push(items) | AccState::Set(items, _) => Value::Array(items),
        AccState::Count(n) => Value::from(n),
        AccState::Merge(m) => Value::Object(m),
        AccState::StdDev(n, _, m2) => {
            let denominator = if op == AccOp::StdDevSamp { n - 1.0 } else { n };
            if denominator <= 0.0 {
                Value::Null
            } else {
                number_from_f64((m2 / denominator).sqrt())
            }
        }
    }
}

/// `$sortByCount: <expr>`: groups by the expression, counts, and sorts by count descending (ties keep
/// first-seen order).
pub(crate) fn sort_by_count(expr: &Expr, docs: Vec<Value>, vars: &Vars, limits: &Limits) -> Result<Vec<Value>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Value, i64)> = Vec::new();
    for doc in &docs {
        let id = expr.eval_with(doc, vars)?.unwrap_or(Value::Null);
        let key = key_of(&id);
        match index.get(&key).and_then(|&i| groups.get_mut(i)) {
            Some((_, n)) => *n += 1,
            None => {
                if groups.len() >= limits.max_stage_documents {
                    return Err(QueryError::TooLarge {
                        what: "$sortByCount output".into(),
                        size: groups.len() + 1,
                        limit: limits.max_stage_documents,
                    });
                }
                index.insert(key, groups.len());
                groups.push((id, 1));
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1));
    Ok(groups
        .into_iter()
        .map(|(id, n)| {
            let mut m = Map::new();
            m.insert("_id".into(), id);
            m.insert("count".into(), Value::from(n));
            Value::Object(m)
        })
        .collect())
}
