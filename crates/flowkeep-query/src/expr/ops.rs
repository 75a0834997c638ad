//! Operator implementations of aggregation expressions: comparison, logic, arithmetic, strings,
//! arrays, types and conversions, documents and dates.
//!
//! Every function here takes already-evaluated operands (`None` = missing) and follows MongoDB's rules
//! for null and missing: most operators give `null` for a null or missing operand, string operators that
//! coerce (`$toLower`, `$substr…`) treat it as `""`, and a few (`$size`, `$strLenCP`, `$in`'s array)
//! refuse it. Type errors are [`QueryError::BadArgument`]; errors that only exist at evaluation time
//! (division by zero, logarithm of a negative number) are [`QueryError::EvalFailed`].

use super::{eval_node, eval_truthy, Ctx, Node};
use crate::error::{QueryError, Result};
use crate::value::{as_date_millis, bson_type_name, compare, format_date_millis, number_from_f64, values_equal};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// Operators whose operands are a plain list of expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Cmp,
    And,
    Or,
    Not,
    Add,
    Subtract,
    Multiply,
    Divide,
    Mod,
    Abs,
    Ceil,
    Floor,
    Round,
    Trunc,
    Sqrt,
    Pow,
    Exp,
    Ln,
    Log,
    Log10,
    IfNull,
    Concat,
    ToLower,
    ToUpper,
    SubstrBytes,
    SubstrCP,
    StrLenCP,
    StrLenBytes,
    Split,
    IndexOfCP,
    IndexOfBytes,
    Strcasecmp,
    Size,
    ArrayElemAt,
    First,
    Last,
    ConcatArrays,
    In,
    Slice,
    IsArray,
    ReverseArray,
    Range,
    IndexOfArray,
    Sum,
    Avg,
    Min,
    Max,
    Type,
    ToString,
    ToInt,
    ToLong,
    ToDouble,
    ToDecimal,
    ToBool,
    ToDate,
    IsNumber,
    MergeObjects,
    ObjectToArray,
    ArrayToObject,
}

const ANY: usize = usize::MAX;

/// Doubles that convert to `i64` without overflow.
const I64_RANGE: std::ops::Range<f64> = -9.223_372_036_854_776e18..9.223_372_036_854_776e18;

/// Name, operator, least and most operands.
const FUNCS: &[(&str, Func, usize, usize)] = &[
    ("$eq", Func::Eq, 2, 2),
    ("$ne", Func::Ne, 2, 2),
    ("$gt", Func::Gt, 2, 2),
    ("$gte", Func::Gte, 2, 2),
    ("$lt", Func::Lt, 2, 2),
    ("$lte", Func::Lte, 2, 2),
    ("$cmp", Func::Cmp, 2, 2),
    ("$and", Func::And, 0, ANY),
    ("$or", Func::Or, 0, ANY),
    ("$not", Func::Not, 1, 1),
    ("$add", Func::Add, 0, ANY),
    ("$subtract", Func::Subtract, 2, 2),
    ("$multiply", Func::Multiply, 0, ANY),
    ("$divide", Func::Divide, 2, 2),
    ("$mod", Func::Mod, 2, 2),
    ("$abs", Func::Abs, 1, 1),
    ("$ceil", Func::Ceil, 1, 1),
    ("$floor", Func::Floor, 1, 1),
    ("$round", Func::Round, 1, 2),
    ("$trunc", Func::Trunc, 1, 2),
    ("$sqrt", Func::Sqrt, 1, 1),
    ("$pow", Func::Pow, 2, 2),
    ("$exp", Func::Exp, 1, 1),
    ("$ln", Func::Ln, 1, 1),
    ("$log", Func::Log, 2, 2),
    ("$log10", Func::Log10, 1, 1),
    ("$ifNull", Func::IfNull, 2, ANY),
    ("$concat", Func::Concat, 0, ANY),
    ("$toLower", Func::ToLower, 1, 1),
    ("$toUpper", Func::ToUpper, 1, 1),
    ("$substr", Func::SubstrBytes, 3, 3),
    ("$substrBytes", Func::SubstrBytes, 3, 3),
    ("$substrCP", Func::SubstrCP, 3, 3),
    ("$strLenCP", Func::StrLenCP, 1, 1),
    ("$strLenBytes", Func::StrLenBytes, 1, 1),
    ("$split", Func::Split, 2, 2),
    ("$indexOfCP", Func::IndexOfCP, 2, 4),
    ("$indexOfBytes", Func::IndexOfBytes, 2, 4),
    ("$strcasecmp", Func::Strcasecmp, 2, 2),
    ("$size", Func::Size, 1, 1),
    ("$arrayElemAt", Func::ArrayElemAt, 2, 2),
    ("$first", Func::First, 1, 1),
    ("$last", Func::Last, 1, 1),
    ("$concatArrays", Func::ConcatArrays, 0, ANY),
    ("$in", Func::In, 2, 2),
    ("$slice", Func::Slice, 2, 3),
    ("$isArray", Func::IsArray, 1, 1),
    ("$reverseArray", Func::ReverseArray, 1, 1),
    ("$range", Func::Range, 2, 3),
    ("$indexOfArray", Func::IndexOfArray, 2, 4),
    ("$sum", Func::Sum, 0, ANY),
    ("$avg", Func::Avg, 0, ANY),
    ("$min", Func::Min, 0, ANY),
    ("$max", Func::Max, 0, ANY),
    ("$type", Func::Type, 1, 1),
    ("$toString", Func::ToString, 1, 1),
    ("$toInt", Func::ToInt, 1, 1),
    ("$toLong", Func::ToLong, 1, 1),
    ("$toDouble", Func::ToDouble, 1, 1),
    ("$toDecimal", Func::ToDecimal, 1, 1),
    ("$toBool", Func::ToBool, 1, 1),
    ("$toDate", Func::ToDate, 1, 1),
    ("$isNumber", Func::IsNumber, 1, 1),
    ("$mergeObjects", Func::MergeObjects, 0, ANY),
    ("$objectToArray", Func::ObjectToArray, 1, 1),
    ("$arrayToObject", Func::ArrayToObject, 1, 1),
];

/// Looks an operator up by name: the operator and its least and most number of operands.
pub(crate) fn func_by_name(name: &str) -> Option<(Func, usize, usize)> {
    FUNCS.iter().find(|(n, ..)| *n == name).map(|&(_, f, min, max)| (f, min, max))
}

impl Func {
    /// The operator's name, for error messages.
    pub(crate) fn name(self) -> &'static str {
        FUNCS.iter().find(|(_, f, ..)| *f == self).map(|(n, ..)| *n).unwrap_or("$expression")
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

fn type_name(v: Option<&Value>) -> &'static str {
    v.map(bson_type_name).unwrap_or("missing")
}

/// A type error naming what was found.
pub(crate) fn type_error(op: &str, message: &str, found: Option<&Value>) -> QueryError {
    QueryError::bad(op, format!("{message}, found {}", type_name(found)))
}

fn eval_failed(op: &str, message: impl Into<String>) -> QueryError {
    QueryError::EvalFailed { op: op.to_string(), message: message.into() }
}

fn nullish(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// Operand `i` (missing when absent).
fn arg(vals: &[Option<Value>], i: usize) -> Option<&Value> {
    vals.get(i).and_then(Option::as_ref)
}

/// An integral number (`2` or `2.0`) as `i64`.
pub(crate) fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && I64_RANGE.contains(&f)).then_some(f as i64)
        }),
        _ => None,
    }
}

fn integer_arg(op: &str, what: &str, v: Option<&Value>) -> Result<i64> {
    v.and_then(as_integer).ok_or_else(|| type_error(op, &format!("{what} must be an integer"), v))
}

fn non_negative_arg(op: &str, what: &str, v: Option<&Value>) -> Result<usize> {
    let i = integer_arg(op, what, v)?;
    usize::try_from(i).map_err(|_| QueryError::bad(op, format!("{what} must be a non-negative integer, found {i}")))
}

/// A number, integer while it stays exact, double otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    pub(crate) fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => Some(match n.as_i64() {
                Some(i) => Num::I(i),
                None => Num::F(n.as_f64().unwrap_or(f64::NAN)),
            }),
            _ => None,
        }
    }

    pub(crate) fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }

    /// The JSON value; doubles that are integral become integers ([`number_from_f64`]).
    pub(crate) fn value(self) -> Value {
        match self {
            Num::I(i) => Value::from(i),
            Num::F(f) => number_from_f64(f),
        }
    }

    pub(crate) fn add(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => a.checked_add(b).map(Num::I).unwrap_or(Num::F(a as f64 + b as f64)),
            _ => Num::F(self.f() + o.f()),
        }
    }

    fn sub(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => a.checked_sub(b).map(Num::I).unwrap_or(Num::F(a as f64 - b as f64)),
            _ => Num::F(self.f() - o.f()),
        }
    }

    fn mul(self, o: Num) -> Num {
        match (self, o) {
            (Num::I(a), Num::I(b)) => a.checked_mul(b).map(Num::I).unwrap_or(Num::F(a as f64 * b as f64)),
            _ => Num::F(self.f() * o.f()),
        }
    }

    fn is_zero(self) -> bool {
        match self {
            Num::I(i) => i == 0,
            Num::F(f) => f == 0.0,
        }
    }
}

fn num_arg(op: &str, v: Option<&Value>) -> Result<Num> {
    v.and_then(Num::of).ok_or_else(|| type_error(op, "only numbers are supported", v))
}

/// Ordering with missing below everything (including `null`), as in MongoDB expressions.
fn cmp_opt(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare(x, y),
    }
}

fn date_value(op: &str, ms: i64) -> Result<Value> {
    format_date_millis(ms).map(Value::String).ok_or_else(|| eval_failed(op, "date is out of range"))
}

fn float_value(op: &str, f: f64) -> Result<Value> {
    if f.is_finite() {
        Ok(number_from_f64(f))
    } else {
        Err(eval_failed(op, "the result is not a finite number"))
    }
}

// ---------------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------------

/// Evaluates a [`Func`] call. `$and`, `$or` and `$ifNull` evaluate lazily; the rest evaluate every
/// operand first.
pub(crate) fn call<'a>(func: Func, args: &'a [Node], ctx: &mut Ctx<'a>) -> Result<Option<Value>> {
    match func {
        Func::And => {
            for a in args {
                if !eval_truthy(a, ctx)? {
                    return Ok(Some(Value::Bool(false)));
                }
            }
            return Ok(Some(Value::Bool(true)));
        }
        Func::Or => {
            for a in args {
                if eval_truthy(a, ctx)? {
                    return Ok(Some(Value::Bool(true)));
                }
            }
            return Ok(Some(Value::Bool(false)));
        }
        Func::IfNull => {
            if let Some((last, init)) = args.split_last() {
                for a in init {
                    let v = eval_node(a, ctx)?;
                    if !nullish(v.as_ref()) {
                        return Ok(v);
                    }
                }
                return eval_node(last, ctx);
            }
            return Ok(Some(Value::Null));
        }
        _ => {}
    }
    let mut vals = Vec::with_capacity(args.len());
    for a in args {
        vals.push(eval_node(a, ctx)?);
    }
    apply(func, &vals, ctx)
}

fn apply(func: Func, vals: &[Option<Value>], ctx: &mut Ctx<'_>) -> Result<Option<Value>> {
    let op = func.name();
    let a0 = arg(vals, 0);
    let a1 = arg(vals, 1);
    let out = match func {
        Func::Eq => Value::Bool(cmp_opt(a0, a1) == Ordering::Equal),
        Func::Ne => Value::Bool(cmp_opt(a0, a1) != Ordering::Equal),
        Func::Gt => Value::Bool(cmp_opt(a0, a1) == Ordering::Greater),
        Func::Gte => Value::Bool(cmp_opt(a0, a1) != Ordering::Less),
        Func::Lt => Value::Bool(cmp_opt(a0, a1) == Ordering::Less),
        Func::Lte => Value::Bool(cmp_opt(a0, a1) != Ordering::Greater),
        Func::Cmp => Value::from(cmp_opt(a0, a1) as i64),
        Func::Not => Value::Bool(!a0.is_some_and(crate::value::is_truthy)),
        // Handled lazily in `call`.
        Func::And | Func::Or | Func::IfNull => Value::Null,
        Func::Add => return add(vals),
        Func::Subtract => return subtract(a0, a1),
        Func::Multiply => {
            let mut acc = Num::I(1);
            for v in vals {
                if nullish(v.as_ref()) {
                    return Ok(Some(Value::Null));
                }
                acc = acc.mul(num_arg(op, v.as_ref())?);
            }
            acc.value()
        }
        Func::Divide => {
            if nullish(a0) || nullish(a1) {
                return Ok(Some(Value::Null));
            }
            let (x, y) = (num_arg(op, a0)?, num_arg(op, a1)?);
            if y.is_zero() {
                return Err(eval_failed(op, "cannot divide by zero"));
            }
            float_value(op, x.f() / y.f())?
        }
        Func::Mod => {
            if nullish(a0) || nullish(a1) {
                return Ok(Some(Value::Null));
            }
            let (x, y) = (num_arg(op, a0)?, num_arg(op, a1)?);
            if y.is_zero() {
                return Err(eval_failed(op, "cannot take a remainder by zero"));
            }
            match (x, y) {
                // i64::MIN % -1 overflows; its remainder is 0.
                (Num::I(a), Num::I(b)) => Value::from(a.checked_rem(b).unwrap_or(0)),
                _ => float_value(op, x.f() % y.f())?,
            }
        }
        Func::Abs => match unary_num(op, a0)? {
            None => Value::Null,
            Some(Num::I(i)) => i.checked_abs().map(Value::from).unwrap_or_else(|| number_from_f64((i as f64).abs())),
            Some(Num::F(f)) => number_from_f64(f.abs()),
        },
        Func::Ceil | Func::Floor => match unary_num(op, a0)? {
            None => Value::Null,
            Some(Num::I(i)) => Value::from(i),
            Some(Num::F(f)) => number_from_f64(if func == Func::Ceil { f.ceil() } else { f.floor() }),
        },
        Func::Round | Func::Trunc => return round(func, a0, vals.get(1).map(Option::as_ref)),
        Func::Sqrt => match unary_num(op, a0)? {
            None => Value::Null,
            Some(n) if n.f() < 0.0 => return Err(eval_failed(op, "the argument must be greater than or equal to 0")),
            Some(n) => number_from_f64(n.f().sqrt()),
        },
        Func::Exp => match unary_num(op, a0)? {
            None => Value::Null,
            Some(n) => float_value(op, n.f().exp())?,
        },
        Func::Ln | Func::Log10 => match unary_num(op, a0)? {
            None => Value::Null,
            Some(n) if n.f() <= 0.0 => return Err(eval_failed(op, "the argument must be a positive number")),
            Some(n) => number_from_f64(if func == Func::Ln { n.f().ln() } else { n.f().log10() }),
        },
        Func::Log => {
            if nullish(a0) || nullish(a1) {
                return Ok(Some(Value::Null));
            }
            let (x, base) = (num_arg(op, a0)?.f(), num_arg(op, a1)?.f());
            if x <= 0.0 {
                return Err(eval_failed(op, "the argument must be a positive number"));
            }
            if base <= 0.0 || base == 1.0 {
                return Err(eval_failed(op, "the base must be a positive number other than 1"));
            }
            number_from_f64(x.ln() / base.ln())
        }
        Func::Pow => {
            if nullish(a0) || nullish(a1) {
                return Ok(Some(Value::Null));
            }
            let (b, e) = (num_arg(op, a0)?, num_arg(op, a1)?);
            if b.is_zero() && e.f() < 0.0 {
                return Err(eval_failed(op, "zero cannot be raised to a negative exponent"));
            }
            match (b, e) {
                (Num::I(b), Num::I(e)) if e >= 0 => u32::try_from(e)
                    .ok()
                    .and_then(|e| b.checked_pow(e))
                    .map(Value::from)
                    .unwrap_or_else(|| number_from_f64((b as f64).powf(e as f64))),
                _ => number_from_f64(b.f().powf(e.f())),
            }
        }
        Func::Concat => {
            let mut out = String::new();
            for v in vals {
                match v {
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(Value::String(s)) => {
                        ctx.charge(s.len())?;
                        out.push_str(s);
                    }
                    Some(other) => return Err(type_error(op, "only supports strings", Some(other))),
                }
            }
            Value::String(out)
        }
        Func::ToLower | Func::ToUpper => {
            // MongoDB changes the case of ASCII letters only.
            let s = coerce_string(op, a0)?;
            Value::String(if func == Func::ToLower { s.to_ascii_lowercase() } else { s.to_ascii_uppercase() })
        }
        Func::SubstrBytes => return substr_bytes(coerce_string(op, a0)?, a1, arg(vals, 2)),
        Func::SubstrCP => {
            let s = coerce_string(op, a0)?;
            let start = non_negative_arg(op, "the starting index", a1)?;
            let len = non_negative_arg(op, "the length", arg(vals, 2))?;
            Value::String(s.chars().skip(start).take(len).collect())
        }
        Func::StrLenCP => match a0 {
            Some(Value::String(s)) => Value::from(s.chars().count()),
            other => return Err(type_error(op, "requires a string argument", other)),
        },
        Func::StrLenBytes => match a0 {
            Some(Value::String(s)) => Value::from(s.len()),
            other => return Err(type_error(op, "requires a string argument", other)),
        },
        Func::Split => {
            if nullish(a0) {
                return Ok(Some(Value::Null));
            }
            let Some(Value::String(s)) = a0 else { return Err(type_error(op, "the string must be a string", a0)) };
            let Some(Value::String(d)) = a1 else { return Err(type_error(op, "the delimiter must be a string", a1)) };
            if d.is_empty() {
                return Err(QueryError::bad(op, "the delimiter must not be empty"));
            }
            let parts: Vec<Value> = s.split(d.as_str()).map(|p| Value::String(p.to_string())).collect();
            ctx.charge_elements(parts.len())?;
            Value::Array(parts)
        }
        Func::IndexOfCP | Func::IndexOfBytes => return index_of_string(func, vals),
        Func::Strcasecmp => {
            let (x, y) = (coerce_string(op, a0)?, coerce_string(op, a1)?);
            Value::from(x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()) as i64)
        }
        Func::Size => match a0 {
            Some(Value::Array(items)) => Value::from(items.len()),
            other => return Err(type_error(op, "the argument must be an array", other)),
        },
        Func::ArrayElemAt => {
            if nullish(a0) || nullish(a1) {
                return Ok(Some(Value::Null));
            }
            let Some(Value::Array(items)) = a0 else {
                return Err(type_error(op, "the first argument must be an array", a0));
            };
            let i = integer_arg(op, "the index", a1)?;
            return Ok(element_at(items, i).cloned());
        }
        Func::First | Func::Last => match a0 {
            None | Some(Value::Null) => Value::Null,
            Some(Value::Array(items)) => {
                return Ok(if func == Func::First { items.first() } else { items.last() }.cloned());
            }
            other => return Err(type_error(op, "the argument must be an array", other)),
        },
        Func::ConcatArrays => {
            let mut out = Vec::new();
            for v in vals {
                match v {
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(Value::Array(items)) => {
                        ctx.charge_elements(items.len())?;
                        out.extend(items.iter().cloned());
                    }
                    Some(other) => return Err(type_error(op, "only supports arrays", Some(other))),
                }
            }
            Value::Array(out)
        }
        Func::In => match a1 {
            Some(Value::Array(items)) => Value::Bool(a0.is_some_and(|x| items.iter().any(|i| values_equal(x, i)))),
            other => return Err(type_error(op, "requires an array as the second argument", other)),
        },
        Func::Slice => return slice(vals),
        Func::IsArray => Value::Bool(matches!(a0, Some(Value::Array(_)))),
        Func::ReverseArray => match a0 {
            None | Some(Value::Null) => Value::Null,
            Some(Value::Array(items)) => Value::Array(items.iter().rev().cloned().collect()),
            other => return Err(type_error(op, "the argument must be an array", other)),
        },
        Func::Range => return range(vals, ctx),
        Func::IndexOfArray => {
            if nullish(a0) {
                return Ok(Some(Value::Null));
            }
            let Some(Value::Array(items)) = a0 else {
                return Err(type_error(op, "the first argument must be an array", a0));
            };
            let (start, end) = bounds(op, vals, items.len())?;
            let found = items
                .iter()
                .enumerate()
                .take(end)
                .skip(start)
                .find(|(_, x)| a1.is_some_and(|v| values_equal(v, x)))
                .map(|(i, _)| i as i64);
            Value::from(found.unwrap_or(-1))
        }
        Func::Sum | Func::Avg | Func::Min | Func::Max => return array_accumulate(func, vals),
        Func::Type => Value::String(type_name(a0).to_string()),
        Func::ToString => return convert_nullable(a0, Target::String),
        Func::ToInt => return convert_nullable(a0, Target::Int),
        Func::ToLong => return convert_nullable(a0, Target::Long),
        Func::ToDouble => return convert_nullable(a0, Target::Double),
        Func::ToDecimal => return convert_nullable(a0, Target::Decimal),
        Func::ToBool => return convert_nullable(a0, Target::Bool),
        Func::ToDate => return convert_nullable(a0, Target::Date),
        Func::IsNumber => Value::Bool(matches!(a0, Some(Value::Number(_)))),
        Func::MergeObjects => {
            // A single operand that is an array merges its elements (the `$group`-like form).
            let items: Vec<&Value> = match vals {
                [Some(Value::Array(items))] => items.iter().collect(),
                _ => vals.iter().flatten().collect(),
            };
            let mut out = Map::new();
            for v in items {
                match v {
                    Value::Null => {}
                    Value::Object(m) => {
                        ctx.charge_elements(m.len())?;
                        for (k, x) in m {
                            out.insert(k.clone(), x.clone());
                        }
                    }
                    other => return Err(type_error(op, "only supports objects", Some(other))),
                }
            }
            Value::Object(out)
        }
        Func::ObjectToArray => match a0 {
            None | Some(Value::Null) => Value::Null,
            Some(Value::Object(m)) => {
                ctx.charge_elements(m.len())?;
                Value::Array(
                    m.iter()
                        .map(|(k, v)| {
                            let mut pair = Map::new();
                            pair.insert("k".into(), Value::String(k.clone()));
                            pair.insert("v".into(), v.clone());
                            Value::Object(pair)
                        })
                        .collect(),
                )
            }
            other => return Err(type_error(op, "the argument must be an object", other)),
        },
        Func::ArrayToObject => match a0 {
            None | Some(Value::Null) => Value::Null,
            Some(Value::Array(items)) => array_to_object(items)?,
            other => return Err(type_error(op, "the argument must be an array", other)),
        },
    };
    Ok(Some(out))
}

fn unary_num(op: &str, v: Option<&Value>) -> Result<Option<Num>> {
    if nullish(v) {
        return Ok(None);
    }
    num_arg(op, v).map(Some)
}

fn add(vals: &[Option<Value>]) -> Result<Option<Value>> {
    let mut acc = Num::I(0);
    let mut date: Option<i64> = None;
    for v in vals {
        let Some(v) = v.as_ref().filter(|v| !v.is_null()) else {
            return Ok(Some(Value::Null));
        };
        if let Some(n) = Num::of(v) {
            acc = acc.add(n);
        } else if let Some(ms) = as_date_millis(v) {
            if date.replace(ms).is_some() {
                return Err(QueryError::bad("$add", "only one date is allowed"));
            }
        } else {
            return Err(type_error("$add", "only numbers and dates are supported", Some(v)));
        }
    }
    match date {
        Some(ms) => {
            let delta = acc.f().round();
            let sum = (delta.is_finite() && delta.abs() < 9.2e18).then(|| ms.checked_add(delta as i64)).flatten();
            let sum = sum.ok_or_else(|| eval_failed("$add", "date is out of range"))?;
            Ok(Some(date_value("$add", sum)?))
        }
        None => Ok(Some(acc.value())),
    }
}

fn subtract(a: Option<&Value>, b: Option<&Value>) -> Result<Option<Value>> {
    let op = "$subtract";
    if nullish(a) || nullish(b) {
        return Ok(Some(Value::Null));
    }
    let (Some(x), Some(y)) = (a, b) else { return Ok(Some(Value::Null)) };
    match (Num::of(x), Num::of(y), as_date_millis(x), as_date_millis(y)) {
        (Some(p), Some(q), _, _) => Ok(Some(p.sub(q).value())),
        (_, _, Some(d1), Some(d2)) => {
            Ok(Some(d1.checked_sub(d2).map(Value::from).ok_or_else(|| eval_failed(op, "difference is out of range"))?))
        }
        (_, Some(q), Some(d), _) => {
            let delta = q.f().round();
            let r = (delta.is_finite() && delta.abs() < 9.2e18).then(|| d.checked_sub(delta as i64)).flatten();
            Ok(Some(date_value(op, r.ok_or_else(|| eval_failed(op, "date is out of range"))?)?))
        }
        _ => Err(QueryError::bad(op, format!("cannot subtract {} from {}", type_name(Some(y)), type_name(Some(x))))),
    }
}

/// `$round` (half to even, as MongoDB) and `$trunc` to `place` decimal places (negative: tens, …).
fn round(func: Func, v: Option<&Value>, place: Option<Option<&Value>>) -> Result<Option<Value>> {
    let op = func.name();
    let place = match place {
        None => 0,
        Some(p) if nullish(p) => return Ok(Some(Value::Null)),
        Some(p) => integer_arg(op, "the place", p)?,
    };
    if !(-20..=100).contains(&place) {
        return Err(QueryError::bad(op, format!("the place must be between -20 and 100, found {place}")));
    }
    let Some(n) = unary_num(op, v)? else { return Ok(Some(Value::Null)) };
    let out = match n {
        Num::I(i) if place >= 0 => Value::from(i),
        Num::I(i) => {
            let p = 10i128.pow(u32::try_from(-place).unwrap_or(0));
            let x = i128::from(i);
            let (q, r) = (x / p, x % p);
            let q = if func == Func::Round {
                let twice = r.abs() * 2;
                if twice > p || (twice == p && q % 2 != 0) {
                    q + x.signum()
                } else {
                    q
                }
            } else {
                q
            };
            let rounded = q * p;
            i64::try_from(rounded).map(Value::from).unwrap_or_else(|_| number_from_f64(rounded as f64))
        }
        Num::F(f) => {
            let scale = 10f64.powi(i32::try_from(place).unwrap_or(0));
            let scaled = f * scale;
            if !scaled.is_finite() {
                number_from_f64(f)
            } else {
                let r = if func == Func::Round { scaled.round_ties_even() } else { scaled.trunc() };
                number_from_f64(r / scale)
            }
        }
    };
    Ok(Some(out))
}

/// The string form of a value for the coercing string operators: null/missing is `""`.
fn coerce_string(op: &str, v: Option<&Value>) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(number_string(n)),
        Some(other) => Err(type_error(op, "cannot convert to a string", Some(other))),
    }
}

fn number_string(n: &Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => match n.as_u64() {
            Some(u) => u.to_string(),
            None => n.as_f64().map(|f| f.to_string()).unwrap_or_default(),
        },
    }
}

fn substr_bytes(s: String, start: Option<&Value>, len: Option<&Value>) -> Result<Option<Value>> {
    let op = "$substrBytes";
    let start = integer_arg(op, "the starting index", start)?;
    let len = integer_arg(op, "the length", len)?;
    // A negative start gives "" and a negative length means "to the end", as in MongoDB.
    let Ok(start) = usize::try_from(start) else { return Ok(Some(Value::String(String::new()))) };
    if start >= s.len() {
        return Ok(Some(Value::String(String::new())));
    }
    let end = usize::try_from(len).map(|l| start.saturating_add(l).min(s.len())).unwrap_or(s.len());
    if !s.is_char_boundary(start) {
        return Err(QueryError::bad(op, "invalid range: the starting index is a UTF-8 continuation byte"));
    }
    if !s.is_char_boundary(end) {
        return Err(QueryError::bad(op, "invalid range: the ending index is in the middle of a UTF-8 character"));
    }
    Ok(Some(Value::String(s.get(start..end).unwrap_or_default().to_string())))
}

/// Optional `start`/`end` operands 2 and 3 of the `$indexOf…` operators, clamped to `len`.
fn bounds(op: &str, vals: &[Option<Value>], len: usize) -> Result<(usize, usize)> {
    let start = match vals.get(2) {
        Some(v) => non_negative_arg(op, "the starting index", v.as_ref())?,
        None => 0,
    };
    let end = match vals.get(3) {
        Some(v) => non_negative_arg(op, "the ending index", v.as_ref())?.min(len),
        None => len,
    };
    Ok((start, end))
}

fn index_of_string(func: Func, vals: &[Option<Value>]) -> Result<Option<Value>> {
    let op = func.name();
    let (a0, a1) = (arg(vals, 0), arg(vals, 1));
    if nullish(a0) {
        return Ok(Some(Value::Null));
    }
    let Some(Value::String(s)) = a0 else { return Err(type_error(op, "the first argument must be a string", a0)) };
    let Some(Value::String(needle)) = a1 else {
        return Err(type_error(op, "the second argument must be a string", a1));
    };
    if func == Func::IndexOfBytes {
        let (start, end) = bounds(op, vals, s.len())?;
        let hay = s.as_bytes();
        let n = needle.as_bytes();
        let mut i = start;
        while i <= end && i.saturating_add(n.len()) <= end {
            if hay.get(i..i + n.len()) == Some(n) {
                return Ok(Some(Value::from(i)));
            }
            i += 1;
        }
        return Ok(Some(Value::from(-1)));
    }
    let chars: Vec<char> = s.chars().collect();
    let n: Vec<char> = needle.chars().collect();
    let (start, end) = bounds(op, vals, chars.len())?;
    let mut i = start;
    while i <= end && i.saturating_add(n.len()) <= end {
        if chars.get(i..i + n.len()) == Some(n.as_slice()) {
            return Ok(Some(Value::from(i)));
        }
        i += 1;
    }
    Ok(Some(Value::from(-1)))
}

fn element_at(items: &[Value], i: i64) -> Option<&Value> {
    if i >= 0 {
        items.get(usize::try_from(i).ok()?)
    } else {
        let back = usize::try_from(i.checked_neg()?).ok()?;
        items.len().checked_sub(back).and_then(|j| items.get(j))
    }
}

fn slice(vals: &[Option<Value>]) -> Result<Option<Value>> {
    let op = "$slice";
    if vals.iter().any(|v| nullish(v.as_ref())) {
        return Ok(Some(Value::Null));
    }
    let a0 = arg(vals, 0);
    let Some(Value::Array(items)) = a0 else { return Err(type_error(op, "the first argument must be an array", a0)) };
    let len = items.len() as i128;
    let (from, count) = if vals.len() == 2 {
        let n = i128::from(integer_arg(op, "the count", arg(vals, 1))?);
        if n >= 0 {
            (0, n)
        } else {
            ((len + n).max(0), -n)
        }
    } else {
        let pos = i128::from(integer_arg(op, "the position", arg(vals, 1))?);
        let n = i128::from(integer_arg(op, "the count", arg(vals, 2))?);
        if n <= 0 {
            return Err(QueryError::bad(op, "the count must be a positive integer"));
        }
        let from = if pos < 0 { (len + pos).max(0) } else { pos.min(len) };
        (from, n)
    };
    let from = usize::try_from(from).unwrap_or(usize::MAX);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    Ok(Some(Value::Array(items.iter().skip(from).take(count).cloned().collect())))
}

fn range(vals: &[Option<Value>], ctx: &mut Ctx<'_>) -> Result<Option<Value>> {
    let op = "$range";
    let start = i128::from(integer_arg(op, "the start", arg(vals, 0))?);
    let end = i128::from(integer_arg(op, "the end", arg(vals, 1))?);
    let step = match vals.get(2) {
        Some(v) => i128::from(integer_arg(op, "the step", v.as_ref())?),
        None => 1,
    };
    if step == 0 {
        return Err(QueryError::bad(op, "the step cannot be 0"));
    }
    let count = if (step > 0 && start < end) || (step < 0 && start > end) {
        ((end - start).abs() + step.abs() - 1) / step.abs()
    } else {
        0
    };
    ctx.charge_elements(usize::try_from(count).unwrap_or(usize::MAX))?;
    let mut out = Vec::new();
    let mut x = start;
    while (step > 0 && x < end) || (step < 0 && x > end) {
        out.push(Value::from(i64::try_from(x).unwrap_or(0)));
        x += step;
    }
    Ok(Some(Value::Array(out)))
}

/// `$sum`/`$avg`/`$min`/`$max` as expressions: over the elements of a single array operand, or over
/// the operands. Non-numbers are ignored by `$sum`/`$avg`, null and missing by `$min`/`$max`.
fn array_accumulate(func: Func, vals: &[Option<Value>]) -> Result<Option<Value>> {
    let items: Vec<&Value> = match vals {
        [Some(Value::Array(items))] => items.iter().collect(),
        _ => vals.iter().flatten().collect(),
    };
    let out = match func {
        Func::Sum | Func::Avg => {
            let nums: Vec<Num> = items.iter().filter_map(|v| Num::of(v)).collect();
            let sum = nums.iter().fold(Num::I(0), |acc, n| acc.add(*n));
            if func == Func::Sum {
                sum.value()
            } else if nums.is_empty() {
                Value::Null
            } else {
                number_from_f64(sum.f() / nums.len() as f64)
            }
        }
        _ => {
            let want = if func == Func::Min { Ordering::Less } else { Ordering::Greater };
            let mut best: Option<&Value> = None;
            for v in items.into_iter().filter(|v| !v.is_null()) {
                if best.is_none_or(|b| compare(v, b) == want) {
                    best = Some(v);
                }
            }
            best.cloned().unwrap_or(Value::Null)
        }
    };
    Ok(Some(out))
}

fn array_to_object(items: &[Value]) -> Result<Value> {
    let op = "$arrayToObject";
    let mut out = Map::new();
    for item in items {
        let (k, v) = match item {
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(k), v] => (k, v),
                _ => return Err(QueryError::bad(op, "each pair must be a [string, value] array")),
            },
            Value::Object(m) => match (m.len(), m.get("k"), m.get("v")) {
                (2, Some(Value::String(k)), Some(v)) => (k, v),
                _ => return Err(QueryError::bad(op, "each element must be a {k: string, v: value} object")),
            },
            other => return Err(type_error(op, "each element must be an array or an object", Some(other))),
        };
        if k.contains('\0') {
            return Err(QueryError::bad(op, "a key cannot contain a null byte"));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------------
// Strings: $trim
// ---------------------------------------------------------------------------------------------------

/// Which side(s) `$trim`, `$ltrim` and `$rtrim` trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrimKind {
    Both,
    Start,
    End,
}

pub(crate) fn trim(kind: TrimKind, input: Option<Value>, chars: Option<Value>) -> Result<Option<Value>> {
    let op = match kind {
        TrimKind::Both => "$trim",
        TrimKind::Start => "$ltrim",
        TrimKind::End => "$rtrim",
    };
    let s = match input {
        None | Some(Value::Null) => return Ok(Some(Value::Null)),
        Some(Value::String(s)) => s,
        Some(other) => return Err(type_error(op, "'input' must be a string", Some(&other))),
    };
    let set: Option<Vec<char>> = match chars {
        None => None,
        Some(Value::Null) => return Ok(Some(Value::Null)),
        Some(Value::String(c)) => Some(c.chars().collect()),
        Some(other) => return Err(type_error(op, "'chars' must be a string", Some(&other))),
    };
    let strip = |c: char| match &set {
        Some(set) => set.contains(&c),
        None => c.is_whitespace() || c == '\0',
    };
    let out = match kind {
        TrimKind::Both => s.trim_matches(strip),
        TrimKind::Start => s.trim_start_matches(strip),
        TrimKind::End => s.trim_end_matches(strip),
    };
    Ok(Some(Value::String(out.to_string())))
}

// ---------------------------------------------------------------------------------------------------
// Type conversion
// ---------------------------------------------------------------------------------------------------

/// A target type of `$convert` and the `$to…` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Double,
    Decimal,
    String,
    Bool,
    Date,
    Int,
    Long,
}

impl Target {
    fn op(self) -> &'static str {
        match self {
            Target::Double => "$toDouble",
            Target::Decimal => "$toDecimal",
            Target::String => "$toString",
            Target::Bool => "$toBool",
            Target::Date => "$toDate",
            Target::Int => "$toInt",
            Target::Long => "$toLong",
        }
    }
}

/// The target of `$convert`'s `to`: a type name or a BSON type number.
pub(crate) fn convert_target(to: Option<Value>) -> Result<Target> {
    let target = match &to {
        Some(Value::String(s)) => match s.as_str() {
            "double" => Some(Target::Double),
            "decimal" => Some(Target::Decimal),
            "string" => Some(Target::String),
            "bool" => Some(Target::Bool),
            "date" => Some(Target::Date),
            "int" => Some(Target::Int),
            "long" => Some(Target::Long),
            _ => None,
        },
        Some(v @ Value::Number(_)) => match as_integer(v) {
            Some(1) => Some(Target::Double),
            Some(2) => Some(Target::String),
            Some(8) => Some(Target::Bool),
            Some(9) => Some(Target::Date),
            Some(16) => Some(Target::Int),
            Some(18) => Some(Target::Long),
            Some(19) => Some(Target::Decimal),
            _ => None,
        },
        _ => None,
    };
    target.ok_or_else(|| {
        QueryError::bad(
            "$convert",
            format!(
                "unsupported target type {}: use double, decimal, string, bool, date, int or long",
                to.as_ref().map(Value::to_string).unwrap_or_else(|| "missing".into())
            ),
        )
    })
}

fn convert_nullable(v: Option<&Value>, target: Target) -> Result<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(Some(Value::Null)),
        Some(v) => convert(v, target).map(Some),
    }
}

fn conversion_error(target: Target, v: &Value) -> QueryError {
    QueryError::bad(target.op(), format!("unsupported conversion from {} to {target:?}", bson_type_name(v)))
}

/// Converts a non-null value to `target` ([`QueryError::BadArgument`] when it cannot).
pub(crate) fn convert(v: &Value, target: Target) -> Result<Value> {
    let op = target.op();
    let date = as_date_millis(v);
    match target {
        Target::String => match v {
            Value::String(s) => match date {
                Some(ms) => date_value(op, ms),
                None => Ok(Value::String(s.clone())),
            },
            Value::Number(n) => Ok(Value::String(number_string(n))),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(conversion_error(target, v)),
        },
        Target::Bool => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::Number(_) => Ok(Value::Bool(crate::value::is_truthy(v))),
            _ => Ok(Value::Bool(true)),
        },
        Target::Double | Target::Decimal => {
            let f = match (v, date) {
                (_, Some(ms)) => ms as f64,
                (Value::Number(n), _) => n.as_f64().unwrap_or(f64::NAN),
                (Value::Bool(b), _) => f64::from(u8::from(*b)),
                (Value::String(s), _) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|_| !s.trim().is_empty() && s.trim() == s)
                    .ok_or_else(|| QueryError::bad(op, format!("cannot parse '{s}' as a number")))?,
                _ => return Err(conversion_error(target, v)),
            };
            Number::from_f64(f).map(Value::Number).ok_or_else(|| eval_failed(op, "the result is not a finite number"))
        }
        Target::Int | Target::Long => {
            let i: i64 = match (v, date) {
                (_, Some(ms)) if target == Target::Long => ms,
                (_, Some(_)) => return Err(conversion_error(target, v)),
                (Value::Bool(b), _) => i64::from(*b),
                (Value::Number(n), _) => match n.as_i64() {
                    Some(i) => i,
                    None => {
                        let f = n.as_f64().unwrap_or(f64::NAN).trunc();
                        if !f.is_finite() || !I64_RANGE.contains(&f) {
                            return Err(QueryError::bad(op, "conversion would overflow the target type"));
                        }
                        f as i64
                    }
                },
                (Value::String(s), _) => {
                    s.parse::<i64>().map_err(|_| QueryError::bad(op, format!("cannot parse '{s}' as an integer")))?
                }
                _ => return Err(conversion_error(target, v)),
            };
            if target == Target::Int && i32::try_from(i).is_err() {
                return Err(QueryError::bad(op, "conversion would overflow the target type"));
            }
            Ok(Value::from(i))
        }
        Target::Date => match (v, date) {
            (_, Some(ms)) => date_value(op, ms),
            (Value::Number(n), _) => {
                let ms = match n.as_i64() {
                    Some(i) => i,
                    None => {
                        let f = n.as_f64().unwrap_or(f64::NAN).trunc();
                        if !f.is_finite() || f.abs() >= 9.2e18 {
                            return Err(eval_failed(op, "date is out of range"));
                        }
                        f as i64
                    }
                };
                date_value(op, ms)
            }
            (Value::String(s), _) => parse_date_string(s, FixedOffset::east_opt(0)).map(Value::String),
            _ => Err(conversion_error(target, v)),
        },
    }
}

// ---------------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------------

/// The date parts extracted by `$year`, `$month`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatePart {
    Year,
    Month,
    DayOfMonth,
    Hour,
    Minute,
    Second,
    Millisecond,
    DayOfWeek,
    DayOfYear,
    Week,
    IsoWeek,
    IsoWeekYear,
    IsoDayOfWeek,
}

impl DatePart {
    pub(crate) fn by_name(op: &str) -> Option<DatePart> {
        Some(match op {
            "$year" => DatePart::Year,
            "$month" => DatePart::Month,
            "$dayOfMonth" => DatePart::DayOfMonth,
            "$hour" => DatePart::Hour,
            "$minute" => DatePart::Minute,
            "$second" => DatePart::Second,
            "$millisecond" => DatePart::Millisecond,
            "$dayOfWeek" => DatePart::DayOfWeek,
            "$dayOfYear" => DatePart::DayOfYear,
            "$week" => DatePart::Week,
            "$isoWeek" => DatePart::IsoWeek,
            "$isoWeekYear" => DatePart::IsoWeekYear,
            "$isoDayOfWeek" => DatePart::IsoDayOfWeek,
            _ => return None,
        })
    }
}

/// A `timezone` operand: `UTC`/`GMT`/`Z` or a fixed offset `±hh`, `±hhmm`, `±hh:mm`. Olson names need a
/// time-zone database this crate does not carry, so they are refused rather than guessed.
fn timezone(op: &str, tz: Option<Value>) -> Result<FixedOffset> {
    let utc = FixedOffset::east_opt(0).ok_or_else(|| eval_failed(op, "invalid offset"))?;
    let s = match tz {
        None | Some(Value::Null) => return Ok(utc),
        Some(Value::String(s)) => s,
        Some(other) => return Err(type_error(op, "'timezone' must be a string", Some(&other))),
    };
    if matches!(s.as_str(), "UTC" | "GMT" | "Z" | "Etc/UTC" | "Etc/GMT") {
        return Ok(utc);
    }
    let bad = || QueryError::bad(op, format!("unsupported timezone '{s}': use UTC or a fixed offset such as +02:00"));
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return Err(bad());
    }
    let hours: i32 = digits.get(0..2).and_then(|h| h.parse().ok()).ok_or_else(bad)?;
    let minutes: i32 = digits.get(2..4).map(|m| m.parse().unwrap_or(0)).unwrap_or(0);
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(bad)
}

fn to_datetime(op: &str, v: &Value, tz: FixedOffset) -> Result<DateTime<FixedOffset>> {
    let ms = as_date_millis(v).ok_or_else(|| type_error(op, "the argument must be a date", Some(v)))?;
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.with_timezone(&tz))
        .ok_or_else(|| eval_failed(op, "date is out of range"))
}

pub(crate) fn date_part(part: DatePart, date: Option<Value>, tz: Option<Value>) -> Result<Option<Value>> {
    let op = match part {
        DatePart::Year => "$year",
        DatePart::Month => "$month",
        DatePart::DayOfMonth => "$dayOfMonth",
        DatePart::Hour => "$hour",
        DatePart::Minute => "$minute",
        DatePart::Second => "$second",
        DatePart::Millisecond => "$millisecond",
        DatePart::DayOfWeek => "$dayOfWeek",
        DatePart::DayOfYear => "$dayOfYear",
        DatePart::Week => "$week",
        DatePart::IsoWeek => "$isoWeek",
        DatePart::IsoWeekYear => "$isoWeekYear",
        DatePart::IsoDayOfWeek => "$isoDayOfWeek",
    };
    let Some(date) = date.filter(|d| !d.is_null()) else { return Ok(Some(Value::Null)) };
    let d = to_datetime(op, &date, timezone(op, tz)?)?;
    let n: i64 = match part {
        DatePart::Year => i64::from(d.year()),
        DatePart::Month => i64::from(d.month()),
        DatePart::DayOfMonth => i64::from(d.day()),
        DatePart::Hour => i64::from(d.hour()),
        DatePart::Minute => i64::from(d.minute()),
        DatePart::Second => i64::from(d.second()),
        DatePart::Millisecond => i64::from(d.timestamp_subsec_millis()),
        DatePart::DayOfWeek => i64::from(d.weekday().number_from_sunday()),
        DatePart::DayOfYear => i64::from(d.ordinal()),
        DatePart::Week => sunday_week(&d),
        DatePart::IsoWeek => i64::from(d.iso_week().week()),
        DatePart::IsoWeekYear => i64::from(d.iso_week().year()),
        DatePart::IsoDayOfWeek => i64::from(d.weekday().number_from_monday()),
    };
    Ok(Some(Value::from(n)))
}

/// Week of the year with weeks starting on Sunday; days before the first Sunday are week 0 (`%U`).
fn sunday_week(d: &DateTime<FixedOffset>) -> i64 {
    let ordinal0 = i64::from(d.ordinal0());
    let weekday = i64::from(d.weekday().num_days_from_sunday());
    (ordinal0 + 7 - weekday) / 7
}

const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S.%LZ";

pub(crate) fn date_to_string(date: Option<Value>, format: Option<Value>, tz: Option<Value>) -> Result<Option<Value>> {
    let op = "$dateToString";
    let Some(date) = date.filter(|d| !d.is_null()) else { return Ok(Some(Value::Null)) };
    let format = match format {
        None => DEFAULT_DATE_FORMAT.to_string(),
        Some(Value::Null) => return Ok(Some(Value::Null)),
        Some(Value::String(f)) => f,
        Some(other) => return Err(type_error(op, "'format' must be a string", Some(&other))),
    };
    let d = to_datetime(op, &date, timezone(op, tz)?)?;
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next().ok_or_else(|| QueryError::bad(op, "the format cannot end with a lone '%'"))?;
        let offset_minutes = d.offset().local_minus_utc() / 60;
        let piece = match spec {
            'd' => format!("{:02}", d.day()),
            'G' => format!("{:04}", d.iso_week().year()),
            'H' => format!("{:02}", d.hour()),
            'j' => format!("{:03}", d.ordinal()),
            'L' => format!("{:03}", d.timestamp_subsec_millis()),
            'm' => format!("{:02}", d.month()),
            'M' => format!("{:02}", d.minute()),
            'S' => format!("{:02}", d.second()),
            'u' => d.weekday().number_from_monday().to_string(),
            'U' => format!("{:02}", sunday_week(&d)),
            'V' => format!("{:02}", d.iso_week().week()),
            'w' => d.weekday().number_from_sunday().to_string(),
            'Y' => format!("{:04}", d.year()),
            'z' => {
                let sign = if offset_minutes < 0 { '-' } else { '+' };
                let m = offset_minutes.abs();
                format!("{sign}{:02}{:02}", m / 60, m % 60)
            }
            'Z' => format!("{offset_minutes:+}"),
            '%' => "%".to_string(),
            other => return Err(QueryError::bad(op, format!("unsupported format specifier %{other}"))),
        };
        out.push_str(&piece);
    }
    Ok(Some(Value::String(out)))
}

pub(crate) fn date_from_string(s: Option<Value>, tz: Option<Value>) -> Result<Option<Value>> {
    let op = "$dateFromString";
    let tz = timezone(op, tz)?;
    match s {
        None | Some(Value::Null) => Ok(Some(Value::Null)),
        Some(Value::String(s)) => parse_date_string(&s, Some(tz)).map(|d| Some(Value::String(d))),
        Some(other) => Err(type_error(op, "'dateString' must be a string", Some(&other))),
    }
}

/// Parses the date forms MongoDB accepts without a format: a full ISO-8601 date-time with offset, or a
/// date / date-time without offset taken in `tz` (UTC by default). Returns the canonical wire date.
fn parse_date_string(s: &str, tz: Option<FixedOffset>) -> Result<String> {
    let op = "$dateFromString";
    if let Some(ms) = as_date_millis(&Value::String(s.to_string())) {
        return date_value(op, ms).map(|v| v.as_str().unwrap_or_default().to_string());
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)));
    let naive = naive.ok_or_else(|| QueryError::bad(op, format!("cannot parse '{s}' as a date")))?;
    let tz = tz.or_else(|| FixedOffset::east_opt(0)).ok_or_else(|| eval_failed(op, "invalid offset"))?;
    let local = tz.from_local_datetime(&naive).single().ok_or_else(|| eval_failed(op, "date is out of range"))?;
    date_value(op, local.timestamp_millis()).map(|v| v.as_str().unwrap_or_default().to_string())
}
