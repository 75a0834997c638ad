//! Query filters: parse a MongoDB filter document into a typed tree, match documents against it, and
//! describe the parts an index can answer ([`IndexHint`]).
//!
//! Parsing does all the interpretation of the JSON (operator names, argument shapes, regex compilation,
//! the `"__REGEXP /p/f"` wire form), so matching only walks the typed tree and cannot fail on shape.
//!
//! Matching follows MongoDB:
//! * a path fans out over arrays ([`path::lookup`]) and most operators also look at the elements of an
//!   array found at the end of the path ([`path::leaf_candidates`]); a condition holds if *any* candidate
//!   satisfies it, and `$ne`/`$nin`/`$not` are the negations over all candidates;
//! * comparisons are type-bracketed: `{$gt: 5}` only considers numbers;
//! * `null` in an equality matches both `null` and a missing field.

use crate::error::{QueryError, Result};
use crate::expr::Expr;
use crate::limits::Limits;
use crate::path::{self, FieldPath, Reached};
use crate::value;
use serde_json::{Map, Value};
use std::cmp::Ordering;

mod pattern;

pub use pattern::QueryRegex;

#[cfg(test)]
mod tests;

/// A parsed filter.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The top-level conditions, implicitly ANDed.
    clauses: Vec<Clause>,
}

/// A predicate on one path that every matching document satisfies, usable to narrow candidates with an
/// index. Hints are conservative: a document that matches the filter always satisfies every hint, so
/// a store may use any subset of them and then re-check candidates with [`Filter::matches`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexHint {
    /// The path the predicate is on.
    pub path: FieldPath,
    /// What some index key of that path must satisfy (see [`crate::path::index_keys`]).
    pub predicate: HintPredicate,
}

/// The predicate of an [`IndexHint`], over the index keys of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum HintPredicate {
    /// Some key equals this value (`null` also matches the missing key).
    Eq(Value),
    /// Some key equals one of these values.
    In(Vec<Value>),
    /// Some key of the same type rank as the bounds lies in the range; `bool` is "inclusive".
    Range { lower: Option<(Value, bool)>, upper: Option<(Value, bool)> },
    /// `true`: some key is present (not missing); `false`: some key is missing.
    Exists(bool),
}

/// One condition of a conjunction.
#[derive(Debug, Clone)]
enum Clause {
    /// Conditions on one path, all of which must hold.
    Field { path: FieldPath, ops: Vec<Op> },
    /// Every member conjunction holds.
    And(Vec<Vec<Clause>>),
    /// Some member conjunction holds.
    Or(Vec<Vec<Clause>>),
    /// No member conjunction holds.
    Nor(Vec<Vec<Clause>>),
    /// An aggregation expression that must be truthy.
    Expr(Box<Expr>),
}

/// The right-hand side of an equality: a value or a regular expression.
#[derive(Debug, Clone)]
enum Operand {
    Value(Value),
    Regex(QueryRegex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitTest {
    AllSet,
    AnySet,
    AllClear,
    AnyClear,
}

/// A set of bit positions. Positions of 64 and above are all represented by `high`: on a 64-bit two's
/// complement integer they read as the sign bit (MongoDB's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BitMask {
    low: u64,
    high: bool,
}

/// What `$type` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeSel {
    /// A type as named by [`value::bson_type_name`].
    Name(&'static str),
    /// `"number"`: any numeric type.
    Number,
    /// A BSON type that JSON cannot hold (decimal, objectId, binData…): never matches.
    Never,
}

/// One operator applied to the values a path reaches.
#[derive(Debug, Clone)]
enum Op {
    Eq(Operand),
    Ne(Operand),
    Cmp(Cmp, Value),
    In(Vec<Operand>),
    Nin(Vec<Operand>),
    Not(Vec<Op>),
    Exists(bool),
    Type(Vec<TypeSel>),
    Regex(QueryRegex),
    Mod { divisor: i64, remainder: i64 },
    All(Vec<Operand>),
    AllElemMatch(Vec<ElemMatch>),
    ElemMatch(ElemMatch),
    Size(u64),
    Bits(BitTest, BitMask),
}

/// The two forms of `$elemMatch`.
#[derive(Debug, Clone)]
enum ElemMatch {
    /// `{$elemMatch: {$gt: 1, $lt: 5}}`: operators applied to each element as a value.
    Value(Vec<Op>),
    /// `{$elemMatch: {a: 1, b: {$gt: 2}}}`: a filter applied to each (document) element.
    Doc(Vec<Clause>),
}

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

/// Top-level operators whose presence as the first key of an `$elemMatch` argument means "document form".
const DOC_LEVEL_OPS: &[&str] = &["$and", "$or", "$nor", "$expr", "$where", "$comment", "$text"];

/// Operators that execute JavaScript on the server.
const JS_OPS: &[&str] = &["$where", "$function", "$accumulator"];

/// Operators MongoDB has but Flowkeep does not (text search, geospatial, schema validation).
const UNSUPPORTED_OPS: &[&str] = &[
    "$text",
    "$jsonSchema",
    "$near",
    "$nearSphere",
    "$geoWithin",
    "$geoIntersects",
    "$within",
    "$box",
    "$center",
    "$centerSphere",
    "$polygon",
    "$geometry",
    "$maxDistance",
    "$minDistance",
    "$sampleRate",
];

fn refuse_special(op: &str) -> Option<QueryError> {
    if JS_OPS.contains(&op) {
        Some(QueryError::JavaScriptRefused { op: op.to_string() })
    } else if UNSUPPORTED_OPS.contains(&op) {
        Some(QueryError::bad(op, "this operator is not supported"))
    } else {
        None
    }
}

/// True if `map` is an operator object: its first key starts with `$`.
fn is_operator_object(map: &Map<String, Value>) -> bool {
    map.keys().next().is_some_and(|k| k.starts_with('$'))
}

/// Parses a filter document (or a member of `$and`/`$or`/`$nor`, or a document-form `$elemMatch`).
fn parse_doc(map: &Map<String, Value>, limits: &Limits) -> Result<Vec<Clause>> {
    let mut clauses = Vec::with_capacity(map.len());
    for (key, arg) in map {
        if !key.starts_with('$') {
            let path = FieldPath::parse(key)?;
            let ops = parse_condition(key, arg, limits)?;
            clauses.push(Clause::Field { path, ops });
            continue;
        }
        match key.as_str() {
            "$and" => clauses.push(Clause::And(parse_members(key, arg, limits)?)),
            "$or" => clauses.push(Clause::Or(parse_members(key, arg, limits)?)),
            "$nor" => clauses.push(Clause::Nor(parse_members(key, arg, limits)?)),
            "$expr" => clauses.push(Clause::Expr(Box::new(Expr::parse(arg, limits)?))),
            "$comment" => {}
            other => return Err(refuse_special(other).unwrap_or_else(|| QueryError::unknown(other))),
        }
    }
    Ok(clauses)
}

/// The members of `$and`/`$or`/`$nor`: a non-empty array of filter documents.
fn parse_members(op: &str, arg: &Value, limits: &Limits) -> Result<Vec<Vec<Clause>>> {
    let items = match arg {
        Value::Array(items) if !items.is_empty() => items,
        _ => return Err(QueryError::bad(op, "argument must be a non-empty array of filter documents")),
    };
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) => parse_doc(m, limits),
            _ => Err(QueryError::bad(op, "every member must be a filter document")),
        })
        .collect()
}

/// The condition on one field: an operator object, a wire regex, or an implicit equality.
fn parse_condition(field: &str, arg: &Value, limits: &Limits) -> Result<Vec<Op>> {
    match arg {
        Value::Object(m) if is_operator_object(m) => parse_ops(field, m, limits),
        // `{b: 1, $gt: 2}` is almost certainly a mistake rather than a literal document with a `$` key.
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => Err(QueryError::bad(
            "filter",
            format!("the condition on '{field}' mixes fields with operators; put operators first and alone"),
        )),
        _ => Ok(vec![Op::Eq(parse_operand(arg, limits)?)]),
    }
}

/// An equality operand: `"__REGEXP /p/f"` strings are regexes, anything else is a literal value.
fn parse_operand(arg: &Value, limits: &Limits) -> Result<Operand> {
    if let Value::String(s) = arg {
        if let Some(re) = QueryRegex::from_wire(s, limits) {
            return Ok(Operand::Regex(re?));
        }
    }
    Ok(Operand::Value(arg.clone()))
}

/// A list operand of `$in`/`$nin`/`$all`: values or wire regexes, but no nested operators.
fn parse_list(op: &str, arg: &Value, limits: &Limits) -> Result<Vec<Operand>> {
    let Value::Array(items) = arg else {
        return Err(QueryError::bad(op, "argument must be an array"));
    };
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) if is_operator_object(m) => {
                Err(QueryError::bad(op, "cannot contain operator expressions such as $regex; use \"__REGEXP /p/\""))
            }
            _ => parse_operand(item, limits),
        })
        .collect()
}

/// Parses an operator object such as `{$gt: 1, $lt: 5}` on `field`.
fn parse_ops(field: &str, map: &Map<String, Value>, limits: &Limits) -> Result<Vec<Op>> {
    let mut ops = Vec::with_capacity(map.len());
    // `$regex` and `$options` form one operator, in either order.
    let options = match map.get("$options") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(QueryError::bad("$options", "must be a string")),
    };
    if options.is_some() && !map.contains_key("$regex") {
        return Err(QueryError::bad("$options", "needs a $regex"));
    }
    for (key, arg) in map {
        let op = match key.as_str() {
            "$eq" => Op::Eq(parse_operand(arg, limits)?),
            "$ne" => Op::Ne(parse_operand(arg, limits)?),
            "$gt" => Op::Cmp(Cmp::Gt, arg.clone()),
            "$gte" => Op::Cmp(Cmp::Gte, arg.clone()),
            "$lt" => Op::Cmp(Cmp::Lt, arg.clone()),
            "$lte" => Op::Cmp(Cmp::Lte, arg.clone()),
            "$in" => Op::In(parse_list(key, arg, limits)?),
            "$nin" => Op::Nin(parse_list(key, arg, limits)?),
            "$not" => Op::Not(parse_not(field, arg, limits)?),
            "$exists" => Op::Exists(mongo_true_value(arg)),
            "$type" => Op::Type(parse_type(arg)?),
            "$regex" => Op::Regex(parse_regex(arg, options.unwrap_or(""), limits)?),
            "$options" => continue,
            "$mod" => parse_mod(arg)?,
            "$all" => parse_all(arg, limits)?,
            "$elemMatch" => Op::ElemMatch(parse_elem_match(arg, limits)?),
            "$size" => Op::Size(parse_size(arg)?),
            "$bitsAllSet" => Op::Bits(BitTest::AllSet, parse_bits(key, arg)?),
            "$bitsAnySet" => Op::Bits(BitTest::AnySet, parse_bits(key, arg)?),
            "$bitsAllClear" => Op::Bits(BitTest::AllClear, parse_bits(key, arg)?),
            "$bitsAnyClear" => Op::Bits(BitTest::AnyClear, parse_bits(key, arg)?),
            other if !other.starts_with('$') => {
                return Err(QueryError::bad(
                    "filter",
                    format!("the condition on '{field}' mixes operators with the field '{other}'"),
                ))
            }
            other => return Err(refuse_special(other).unwrap_or_else(|| QueryError::unknown(other))),
        };
        ops.push(op);
    }
    Ok(ops)
}

/// MongoDB's truthiness for `$exists`: `false`, `0` and `null` are false, everything else true.
fn mongo_true_value(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Null => false,
        _ => true,
    }
}

fn parse_not(field: &str, arg: &Value, limits: &Limits) -> Result<Vec<Op>> {
    match arg {
        Value::Object(m) if m.is_empty() => Err(QueryError::bad("$not", "cannot be empty")),
        Value::Object(m) if is_operator_object(m) => parse_ops(field, m, limits),
        Value::String(s) if pattern::is_wire_regex(s) => Ok(vec![Op::Regex(parse_regex(arg, "", limits)?)]),
        _ => Err(QueryError::bad("$not", "needs an operator document or a regular expression")),
    }
}

/// `$regex`: a pattern string (or a wire regex, whose flags add to `$options`).
fn parse_regex(arg: &Value, options: &str, limits: &Limits) -> Result<QueryRegex> {
    let Value::String(s) = arg else {
        return Err(QueryError::bad("$regex", "must be a string"));
    };
    match pattern::split_wire(s) {
        Some((pat, flags)) => QueryRegex::new(pat, &format!("{flags}{options}"), limits),
        None => QueryRegex::new(s, options, limits),
    }
}

/// An integral number argument as `i64`, truncating a fractional part toward zero (MongoDB's `$mod`).
fn truncate_to_i64(v: &Value) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    f64_to_i64(n.as_f64()?.trunc())
}

/// 2^63: the first `f64` above the `i64` range.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808_f64;

/// An integral `f64` as `i64`, or `None` outside the `i64` range (`as` would silently saturate).
fn f64_to_i64(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f)).then_some(f as i64)
}

fn parse_mod(arg: &Value) -> Result<Op> {
    let bad = || QueryError::bad("$mod", "argument must be an array of two numbers: [divisor, remainder]");
    let Value::Array(items) = arg else { return Err(bad()) };
    let [d, r] = items.as_slice() else { return Err(bad()) };
    let divisor = truncate_to_i64(d).ok_or_else(bad)?;
    let remainder = truncate_to_i64(r).ok_or_else(bad)?;
    if divisor == 0 {
        return Err(QueryError::bad("$mod", "divisor cannot be 0"));
    }
    Ok(Op::Mod { divisor, remainder })
}

fn parse_all(arg: &Value, limits: &Limits) -> Result<Op> {
    let Value::Array(items) = arg else {
        return Err(QueryError::bad("$all", "argument must be an array"));
    };
    let is_elem_match = |v: &Value| v.as_object().and_then(|m| m.keys().next()).is_some_and(|k| k == "$elemMatch");
    if items.first().is_some_and(is_elem_match) {
        let members = items
            .iter()
            .map(|item| match item.as_object() {
                Some(m) if m.len() == 1 && is_elem_match(item) => {
                    parse_elem_match(m.get("$elemMatch").unwrap_or(&Value::Null), limits)
                }
                _ => Err(QueryError::bad("$all", "cannot mix $elemMatch members with other values")),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Op::AllElemMatch(members));
    }
    Ok(Op::All(parse_list("$all", arg, limits)?))
}

fn parse_elem_match(arg: &Value, limits: &Limits) -> Result<ElemMatch> {
    let Value::Object(m) = arg else {
        return Err(QueryError::bad("$elemMatch", "argument must be an object"));
    };
    match m.keys().next() {
        Some(k) if k.starts_with('$') && !DOC_LEVEL_OPS.contains(&k.as_str()) => {
            Ok(ElemMatch::Value(parse_ops("$elemMatch", m, limits)?))
        }
        _ => Ok(ElemMatch::Doc(parse_doc(m, limits)?)),
    }
}

fn parse_size(arg: &Value) -> Result<u64> {
    let bad = |m: &str| QueryError::bad("$size", m.to_string());
    let Value::Number(n) = arg else { return Err(bad("argument must be a number")) };
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f < 0.0 {
        Err(bad("may not be negative"))
    } else if f.fract() != 0.0 || f >= 1.8e19 {
        Err(bad("must be a whole number"))
    } else {
        Ok(f as u64)
    }
}

/// A non-negative integral number that fits `i64`, as an argument of `$size`-like operators.
fn non_negative_integer(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    let i = n.as_i64().or_else(|| f64_to_i64(n.as_f64()?))?;
    (i >= 0).then_some(i)
}

fn parse_bits(op: &str, arg: &Value) -> Result<BitMask> {
    match arg {
        Value::Number(_) => {
            let mask = non_negative_integer(arg)
                .ok_or_else(|| QueryError::bad(op, "a bitmask must be a non-negative integer that fits 64 bits"))?;
            Ok(BitMask { low: mask as u64, high: false })
        }
        Value::Array(positions) => {
            let mut mask = BitMask { low: 0, high: false };
            for p in positions {
                let pos = non_negative_integer(p)
                    .ok_or_else(|| QueryError::bad(op, "bit positions must be non-negative integers"))?;
                if pos >= 64 {
                    mask.high = true;
                } else {
                    mask.low |= 1u64 << pos;
                }
            }
            Ok(mask)
        }
        _ => Err(QueryError::bad(op, "argument must be a bitmask number or an array of bit positions")),
    }
}

fn parse_type(arg: &Value) -> Result<Vec<TypeSel>> {
    match arg {
        Value::Array(items) => items.iter().map(parse_type_one).collect(),
        other => Ok(vec![parse_type_one(other)?]),
    }
}

fn parse_type_one(arg: &Value) -> Result<TypeSel> {
    let bad = || QueryError::bad("$type", format!("unknown type {arg}"));
    match arg {
        Value::String(name) => Ok(match name.as_str() {
            "double" => TypeSel::Name("double"),
            "string" => TypeSel::Name("string"),
            "object" => TypeSel::Name("object"),
            "array" => TypeSel::Name("array"),
            "bool" => TypeSel::Name("bool"),
            "null" => TypeSel::Name("null"),
            "int" => TypeSel::Name("int"),
            "long" => TypeSel::Name("long"),
            "date" => TypeSel::Name("date"),
            "number" => TypeSel::Number,
            "decimal"
            | "binData"
            | "undefined"
            | "objectId"
            | "regex"
            | "dbPointer"
            | "javascript"
            | "symbol"
            | "javascriptWithScope"
            | "timestamp"
            | "minKey"
            | "maxKey" => TypeSel::Never,
            _ => return Err(bad()),
        }),
        Value::Number(_) => {
            let code =
                truncate_to_i64(arg).filter(|_| arg.as_f64().is_some_and(|f| f.fract() == 0.0)).ok_or_else(bad)?;
            Ok(match code {
                1 => TypeSel::Name("double"),
                2 => TypeSel::Name("string"),
                3 => TypeSel::Name("object"),
                4 => TypeSel::Name("array"),
                8 => TypeSel::Name("bool"),
                9 => TypeSel::Name("date"),
                10 => TypeSel::Name("null"),
                16 => TypeSel::Name("int"),
                18 => TypeSel::Name("long"),
                5 | 6 | 7 | 11 | 12 | 13 | 14 | 15 | 17 | 19 | -1 | 127 => TypeSel::Never,
                _ => return Err(bad()),
            })
        }
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------------

fn clauses_match(clauses: &[Clause], doc: &Value) -> Result<bool> {
    for clause in clauses {
        if !clause_matches(clause, doc)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn clause_matches(clause: &Clause, doc: &Value) -> Result<bool> {
    match clause {
        Clause::Field { path, ops } => ops_match(ops, &path::lookup(doc, path), true),
        Clause::And(members) => {
            for m in members {
                if !clauses_match(m, doc)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Clause::Or(members) => {
            for m in members {
                if clauses_match(m, doc)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Clause::Nor(members) => {
            for m in members {
                if clauses_match(m, doc)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Clause::Expr(e) => Ok(e.eval(doc)?.as_ref().is_some_and(value::is_truthy)),
    }
}

/// The values an operator tests: the reached values, plus the elements of reached arrays when
/// `expand` (false inside operator-form `$elemMatch`, which tests each element as a single value).
fn candidates<'a>(reached: &[Reached<'a>], expand: bool) -> Vec<&'a Value> {
    if expand {
        path::leaf_candidates(reached)
    } else {
        reached.iter().filter_map(|r| if let Reached::Value(v) = r { Some(*v) } else { None }).collect()
    }
}

fn ops_match(ops: &[Op], reached: &[Reached<'_>], expand: bool) -> Result<bool> {
    for op in ops {
        if !op_matches(op, reached, expand)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn op_matches(op: &Op, reached: &[Reached<'_>], expand: bool) -> Result<bool> {
    let any = |pred: &dyn Fn(&Value) -> bool| candidates(reached, expand).into_iter().any(pred);
    Ok(match op {
        Op::Eq(o) => operand_matches(o, reached, expand),
        Op::Ne(o) => !operand_matches(o, reached, expand),
        Op::Cmp(cmp, bound) => cmp_matches(*cmp, bound, reached, expand),
        Op::In(items) => items.iter().any(|o| operand_matches(o, reached, expand)),
        Op::Nin(items) => !items.iter().any(|o| operand_matches(o, reached, expand)),
        Op::Not(inner) => !ops_match(inner, reached, expand)?,
        Op::Exists(want) => reached.iter().any(|r| matches!(r, Reached::Value(_))) == *want,
        Op::Type(sels) => any(&|v| sels.iter().any(|s| type_matches(*s, v))),
        Op::Regex(re) => any(&|v| re.matches_value(v)),
        Op::Mod { divisor, remainder } => any(&|v| {
            // MongoDB truncates a fractional value toward zero before taking the remainder.
            truncate_to_i64(v).is_some_and(|x| x.checked_rem(*divisor).unwrap_or(0) == *remainder)
        }),
        Op::All(items) => !items.is_empty() && items.iter().all(|o| operand_matches(o, reached, expand)),
        Op::AllElemMatch(members) => {
            if members.is_empty() {
                return Ok(false);
            }
            for m in members {
                if !elem_match(m, reached)? {
                    return Ok(false);
                }
            }
            true
        }
        Op::ElemMatch(m) => elem_match(m, reached)?,
        Op::Size(n) => reached.iter().any(|r| matches!(r, Reached::Value(Value::Array(a)) if a.len() as u64 == *n)),
        Op::Bits(test, mask) => any(&|v| integral_i64(v).is_some_and(|x| bits_match(*test, *mask, x))),
    })
}

/// Equality (or regex match) with `null` meaning "null or missing".
fn operand_matches(o: &Operand, reached: &[Reached<'_>], expand: bool) -> bool {
    match o {
        Operand::Regex(re) => candidates(reached, expand).into_iter().any(|v| re.matches_value(v)),
        Operand::Value(Value::Null) => {
            reached.iter().any(|r| matches!(r, Reached::Missing))
                || candidates(reached, expand).into_iter().any(Value::is_null)
        }
        Operand::Value(want) => candidates(reached, expand).into_iter().any(|v| value::values_equal(v, want)),
    }
}

fn cmp_matches(cmp: Cmp, bound: &Value, reached: &[Reached<'_>], expand: bool) -> bool {
    if bound.is_null() {
        // Only null is in null's type bracket: `$gte`/`$lte` null are equality with null (which also
        // matches missing), `$gt`/`$lt` null can never hold.
        return matches!(cmp, Cmp::Gte | Cmp::Lte) && operand_matches(&Operand::Value(Value::Null), reached, expand);
    }
    let rank = value::type_rank(bound);
    candidates(reached, expand)
        .into_iter()
        .any(|v| value::type_rank(v) == rank && cmp_holds(cmp, value::compare(v, bound)))
}

fn cmp_holds(cmp: Cmp, ord: Ordering) -> bool {
    match cmp {
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Gte => ord != Ordering::Less,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Lte => ord != Ordering::Greater,
    }
}

fn type_matches(sel: TypeSel, v: &Value) -> bool {
    match sel {
        TypeSel::Name(name) => value::bson_type_name(v) == name,
        TypeSel::Number => v.is_number(),
        TypeSel::Never => false,
    }
}

/// A number with an exact `i64` value (bit operators only consider those).
fn integral_i64(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    n.as_i64().or_else(|| {
        if n.is_u64() {
            return None; // above i64::MAX: not representable
        }
        f64_to_i64(n.as_f64()?)
    })
}

fn bits_match(test: BitTest, mask: BitMask, x: i64) -> bool {
    let bits = x as u64; // two's complement view
    let negative = x < 0;
    match test {
        BitTest::AllSet => bits & mask.low == mask.low && (!mask.high || negative),
        BitTest::AnySet => bits & mask.low != 0 || (mask.high && negative),
        BitTest::AllClear => bits & mask.low == 0 && (!mask.high || !negative),
        BitTest::AnyClear => bits & mask.low != mask.low || (mask.high && !negative),
    }
}

/// `$elemMatch`: some reached array has an element satisfying the condition.
fn elem_match(m: &ElemMatch, reached: &[Reached<'_>]) -> Result<bool> {
    for r in reached {
        if let Reached::Value(Value::Array(items)) = r {
            for item in items {
                if elem_matches_item(m, item)? {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn elem_matches_item(m: &ElemMatch, item: &Value) -> Result<bool> {
    match m {
        ElemMatch::Value(ops) => ops_match(ops, &[Reached::Value(item)], false),
        // Document form only considers embedded documents (and arrays, which MongoDB treats alike).
        ElemMatch::Doc(clauses) => Ok((item.is_object() || item.is_array()) && clauses_match(clauses, item)?),
    }
}

// ---------------------------------------------------------------------------------------------------
// Index hints and the positional operator
// ---------------------------------------------------------------------------------------------------

/// Visits the field conditions of a conjunction, descending into `$and` members (which are conjunctive
/// too) but never into `$or`/`$nor`/`$elemMatch`.
fn conjunctive_fields<'a>(clauses: &'a [Clause], out: &mut Vec<(&'a FieldPath, &'a [Op])>) {
    for clause in clauses {
        match clause {
            Clause::Field { path, ops } => out.push((path, ops)),
            Clause::And(members) => members.iter().for_each(|m| conjunctive_fields(m, out)),
            _ => {}
        }
    }
}

/// A scalar that an index key can equal: not an array or object (their equality semantics at a leaf
/// are subtle enough that no hint is emitted for them).
fn is_scalar(v: &Value) -> bool {
    !(v.is_array() || v.is_object())
}

fn hint_for(op: &Op) -> Vec<HintPredicate> {
    match op {
        Op::Eq(Operand::Value(v)) if is_scalar(v) => vec![HintPredicate::Eq(v.clone())],
        Op::In(items) => {
            let values: Option<Vec<Value>> = items
                .iter()
                .map(|o| match o {
                    // `null` in `$in` also matches a missing field, which `In` does not promise.
                    Operand::Value(v) if is_scalar(v) && !v.is_null() => Some(v.clone()),
                    _ => None,
                })
                .collect();
            values.map(HintPredicate::In).into_iter().collect()
        }
        // Each bound becomes its own one-sided range: `{a: {$gt: 1, $lt: 5}}` matches `{a: [0, 10]}`
        // (different elements satisfy each bound), so combining the bounds into one range that a single
        // key must satisfy would wrongly exclude documents with array values.
        Op::Cmp(cmp, bound) if is_scalar(bound) && !bound.is_null() => {
            let b = Some((bound.clone(), matches!(cmp, Cmp::Gte | Cmp::Lte)));
            let (lower, upper) = match cmp {
                Cmp::Gt | Cmp::Gte => (b, None),
                Cmp::Lt | Cmp::Lte => (None, b),
            };
            vec![HintPredicate::Range { lower, upper }]
        }
        Op::Exists(want) => vec![HintPredicate::Exists(*want)],
        Op::All(items) => items
            .iter()
            .filter_map(|o| match o {
                Operand::Value(v) if is_scalar(v) => Some(HintPredicate::Eq(v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Tests one condition against a single array element, for the positional operator.
fn ops_match_element(ops: &[Op], item: &Value) -> Result<bool> {
    for op in ops {
        let ok = match op {
            Op::ElemMatch(m) => elem_matches_item(m, item)?,
            _ => op_matches(op, &[Reached::Value(item)], true)?,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Filter {
    /// Parses a filter document.
    pub fn parse(filter: &Value, limits: &Limits) -> Result<Filter> {
        limits.check_input("filter", filter)?;
        let Value::Object(map) = filter else {
            return Err(QueryError::bad("filter", "a filter must be an object"));
        };
        Ok(Filter { clauses: parse_doc(map, limits)? })
    }

    /// The filter that matches every document.
    pub fn all() -> Filter {
        Filter { clauses: Vec::new() }
    }

    /// True if the filter has no conditions.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Does `doc` match? Fails only when an `$expr` fails to evaluate.
    pub fn matches(&self, doc: &Value) -> Result<bool> {
        clauses_match(&self.clauses, doc)
    }

    /// Conjunctive predicates an index can answer (see [`IndexHint`]).
    ///
    /// Only top-level field conditions and the members of top-level `$and`s contribute: equality with a
    /// scalar gives [`HintPredicate::Eq`], `$in` of non-null scalars [`HintPredicate::In`], each scalar
    /// non-null bound of `$gt/$gte/$lt/$lte` a one-sided [`HintPredicate::Range`], `$exists`
    /// [`HintPredicate::Exists`], and scalar members of `$all` [`HintPredicate::Eq`].
    pub fn index_hints(&self) -> Vec<IndexHint> {
        let mut fields = Vec::new();
        conjunctive_fields(&self.clauses, &mut fields);
        let mut hints = Vec::new();
        for (path, ops) in fields {
            for op in ops {
                for predicate in hint_for(op) {
                    let hint = IndexHint { path: path.clone(), predicate };
                    if !hints.contains(&hint) {
                        hints.push(hint);
                    }
                }
            }
        }
        hints
    }

    /// For the positional `$` update operator: the index of the first element of the array at
    /// `array_path` that satisfies this filter's conditions on that array.
    ///
    /// The conditions considered are the conjunctive field conditions (top level and `$and`) on
    /// `array_path` itself (tested against each element as a value; `$elemMatch` against the element) and
    /// on paths below it (tested within each element). `None` if the array is absent or no condition
    /// refers to it, or no element satisfies them all.
    pub fn first_match_index(&self, doc: &Value, array_path: &FieldPath) -> Option<usize> {
        let Some(Value::Array(items)) = path::get_exact(doc, array_path) else {
            return None;
        };
        let mut fields = Vec::new();
        conjunctive_fields(&self.clauses, &mut fields);
        let depth = array_path.parts().len();
        let conditions: Vec<(Option<FieldPath>, &[Op])> = fields
            .into_iter()
            .filter(|(p, _)| p.starts_with(array_path))
            .map(|(p, ops)| {
                let rest = p.parts().get(depth..).unwrap_or_default();
                ((!rest.is_empty()).then(|| FieldPath::from_parts(rest.to_vec())), ops)
            })
            .collect();
        if conditions.is_empty() {
            return None;
        }
        items.iter().position(|item| {
            conditions.iter().all(|(rest, ops)| {
                match rest {
                    None => ops_match_element(ops, item),
                    Some(rest) => ops_match(ops, &path::lookup(item, rest), true),
                }
                .unwrap_or(false)
            })
        })
    }
}
