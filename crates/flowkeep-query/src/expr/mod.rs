//! Aggregation expressions (`{$add: ["$a", 1]}`, `"$field"`, `"$$ROOT"`, literals), used by `$expr`,
//! `$project`, `$addFields`, `$group` and friends.
//!
//! An expression is parsed once into a typed tree ([`Expr::parse`]): operator names, arities and the
//! shape of structured operands (`$cond`, `$let`, `$map`, …) are checked there, so evaluation only fails
//! on data (a string given to `$add`, a division by zero). Evaluation returns `None` for *missing*,
//! which MongoDB keeps apart from `null`: a missing field is omitted from a built document, sorts below
//! `null` and is not equal to it (`{$eq: ["$nope", null]}` is false).
//!
//! Field paths in expressions fan out over arrays without indexing them: `"$a.b"` over
//! `{a: [{b: 1}, {b: 2}, 3]}` is `[1, 2]`, and `"$a.0"` looks for a field named `"0"`.
//!
//! Evaluation is bounded: every evaluation has a budget (derived from
//! [`Limits::max_stage_documents`]) charged for the arrays and strings it builds, so an expression such
//! as a `$reduce` that doubles an array each step fails with [`QueryError::TooLarge`] instead of
//! exhausting memory.

mod ops;
#[cfg(test)]
mod tests;

use crate::error::{QueryError, Result};
use crate::limits::Limits;
use crate::value::format_date_millis;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub(crate) use ops::{as_integer, Func, Num};

/// How deep array-in-array nesting is followed when a field path fans out. BSON itself nests at most
/// 100 levels; the bound only keeps hostile in-memory data from exhausting the stack.
const MAX_FANOUT_DEPTH: usize = 200;

/// Cost of one array element against the evaluation budget (a byte of a string costs 1).
const ELEMENT_COST: usize = 16;

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    node: Node,
    /// Units (bytes of strings, [`ELEMENT_COST`] per array element) one evaluation may build.
    budget: usize,
}

/// Variables visible to an expression besides the document: `$$NOW` and user variables bound by the
/// caller (for example by `$lookup`'s `let`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars {
    /// The value of `$$NOW` in epoch milliseconds. `None`: `$$NOW` fails to evaluate, because this
    /// crate reads no clock of its own.
    pub now_millis: Option<i64>,
    bindings: BTreeMap<String, Value>,
}

impl Vars {
    /// No variables, no `$$NOW`.
    pub fn new() -> Vars {
        Vars::default()
    }

    /// No user variables; `$$NOW` is `now_millis`.
    pub fn with_now(now_millis: i64) -> Vars {
        Vars { now_millis: Some(now_millis), bindings: BTreeMap::new() }
    }

    /// Binds the user variable `$$name` (replacing an earlier binding of the same name).
    pub fn bind(&mut self, name: impl Into<String>, value: Value) {
        self.bindings.insert(name.into(), value);
    }

    /// The value bound to the user variable `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.bindings.get(name)
    }

    /// The user variables, by name.
    pub fn bindings(&self) -> &BTreeMap<String, Value> {
        &self.bindings
    }
}

/// A system or user variable referenced as `$$name`.
#[derive(Debug, Clone, PartialEq)]
enum Var {
    Root,
    Current,
    Now,
    Remove,
    User(String),
}

/// The parsed expression tree.
#[derive(Debug, Clone)]
enum Node {
    /// A constant.
    Lit(Value),
    /// `"$a.b"`: a path into `$$CURRENT`.
    Field(Vec<String>),
    /// `"$$name.a.b"`.
    Var(Var, Vec<String>),
    /// `{a: <expr>, …}`: builds a document; fields evaluating to missing are left out.
    Object(Vec<(String, Node)>),
    /// `[<expr>, …]`: builds an array; missing elements become `null`.
    Array(Vec<Node>),
    /// An operator whose operands are a plain list of expressions.
    Call(Func, Vec<Node>),
    /// Operators with named operands.
    Special(Box<Special>),
}

/// Operators with structured operands.
#[derive(Debug, Clone)]
enum Special {
    Cond { cond: Node, then: Node, otherwise: Node },
    Switch { branches: Vec<(Node, Node)>, default: Option<Node> },
    Let { vars: Vec<(String, Node)>, body: Node },
    Map { input: Node, var: String, body: Node },
    Filter { input: Node, var: String, cond: Node, limit: Option<Node> },
    Reduce { input: Node, initial: Node, body: Node },
    Trim { kind: ops::TrimKind, input: Node, chars: Option<Node> },
    Convert { input: Node, to: Node, on_error: Option<Node>, on_null: Option<Node> },
    DateToString { date: Node, format: Option<Node>, timezone: Option<Node>, on_null: Option<Node> },
    DatePart { part: ops::DatePart, date: Node, timezone: Option<Node> },
    DateFromString { string: Node, timezone: Option<Node>, on_error: Option<Node>, on_null: Option<Node> },
}

impl Expr {
    /// Parses an expression.
    pub fn parse(expr: &Value, limits: &Limits) -> Result<Expr> {
        limits.check_input("expression", expr)?;
        let node = parse_node(expr)?;
        Ok(Expr { node, budget: limits.max_stage_documents.saturating_mul(ELEMENT_COST).max(1 << 20) })
    }

    /// An expression that is the constant `value`.
    pub fn literal(value: Value) -> Expr {
        Expr { node: Node::Lit(value), budget: usize::MAX }
    }

    /// Evaluates against `root` (the current document, `$$ROOT`). `None` means "missing" (`$$REMOVE`).
    ///
    /// No variables are bound; `$$NOW` fails (use [`Expr::eval_with`]).
    pub fn eval(&self, root: &Value) -> Result<Option<Value>> {
        self.eval_with(root, &Vars::default())
    }

    /// Evaluates against `root` with `$$NOW` and user variables taken from `vars`.
    pub fn eval_with(&self, root: &Value, vars: &Vars) -> Result<Option<Value>> {
        let mut ctx = Ctx { root, vars, scope: Vec::new(), budget: self.budget };
        eval_node(&self.node, &mut ctx)
    }

    /// True if the expression is a constant (its value does not depend on the document or variables).
    pub fn is_constant(&self) -> bool {
        matches!(self.node, Node::Lit(_))
    }

    /// If the expression is a plain field path (`"$a.b"`), its dotted form.
    pub fn as_field_path(&self) -> Option<String> {
        match &self.node {
            Node::Field(parts) => Some(parts.join(".")),
            _ => None,
        }
    }
}

/// Evaluation state: the document, the variables, the scope of `$let`/`$map`/`$filter`/`$reduce`
/// bindings (innermost last) and what is left of the budget.
pub(crate) struct Ctx<'a> {
    root: &'a Value,
    vars: &'a Vars,
    scope: Vec<(&'a str, Value)>,
    budget: usize,
}

impl Ctx<'_> {
    /// Takes `units` from the budget, failing once it is spent.
    pub(crate) fn charge(&mut self, units: usize) -> Result<()> {
        match self.budget.checked_sub(units) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(QueryError::TooLarge { what: "expression result".into(), size: units, limit: self.budget }),
        }
    }

    /// Charges for an array of `len` elements.
    pub(crate) fn charge_elements(&mut self, len: usize) -> Result<()> {
        self.charge(len.saturating_mul(ELEMENT_COST))
    }
}

// ---------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------

fn parse_node(v: &Value) -> Result<Node> {
    match v {
        Value::String(s) if s.starts_with("$$") => parse_var(s),
        Value::String(s) if s.starts_with('$') => Ok(Node::Field(parse_field_parts(s, &s[1..])?)),
        Value::Array(items) => {
            let nodes = items.iter().map(parse_node).collect::<Result<Vec<_>>>()?;
            Ok(fold_array(nodes))
        }
        Value::Object(map) => {
            let mut keys = map.keys();
            match keys.next() {
                Some(first) if first.starts_with('$') => {
                    if map.len() != 1 {
                        return Err(QueryError::bad(
                            first.clone(),
                            "an expression object with an operator must have exactly one field",
                        ));
                    }
                    let operand = map.get(first).unwrap_or(&Value::Null);
                    parse_operator(first, operand)
                }
                _ => {
                    let mut fields = Vec::with_capacity(map.len());
                    for (k, child) in map {
                        check_field_name("expression", k)?;
                        fields.push((k.clone(), parse_node(child)?));
                    }
                    Ok(fold_object(fields))
                }
            }
        }
        other => Ok(Node::Lit(other.clone())),
    }
}

/// An array of constants is itself a constant, which keeps evaluation of literal arrays cheap.
fn fold_array(nodes: Vec<Node>) -> Node {
    if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
        Node::Lit(Value::Array(
            nodes
                .into_iter()
                .map(|n| match n {
                    Node::Lit(v) => v,
                    _ => Value::Null,
                })
                .collect(),
        ))
    } else {
        Node::Array(nodes)
    }
}

fn fold_object(fields: Vec<(String, Node)>) -> Node {
    if fields.iter().all(|(_, n)| matches!(n, Node::Lit(_))) {
        let mut map = Map::new();
        for (k, n) in fields {
            if let Node::Lit(v) = n {
                map.insert(k, v);
            }
        }
        Node::Lit(Value::Object(map))
    } else {
        Node::Object(fields)
    }
}

/// Field names of documents built by expressions: no `$` prefix (that would be an operator) and no dot.
pub(crate) fn check_field_name(op: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(QueryError::bad(op, "a field name cannot be empty"));
    }
    if name.starts_with('$') {
        return Err(QueryError::bad(op, format!("field name '{name}' cannot start with '$'")));
    }
    if name.contains('.') {
        return Err(QueryError::bad(op, format!("field name '{name}' cannot contain '.'")));
    }
    Ok(())
}

fn parse_field_parts(whole: &str, path: &str) -> Result<Vec<String>> {
    if path.is_empty() {
        return Err(QueryError::BadPath { path: whole.into(), message: "'$' alone is not a field path".into() });
    }
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    for p in &parts {
        if p.is_empty() {
            return Err(QueryError::BadPath {
                path: whole.into(),
                message: "a field path part cannot be empty".into(),
            });
        }
        if p.starts_with('$') {
            return Err(QueryError::BadPath {
                path: whole.into(),
                message: "a field path part cannot start with '$'".into(),
            });
        }
    }
    Ok(parts)
}

fn parse_var(s: &str) -> Result<Node> {
    let body = &s[2..];
    let (name, rest) = match body.split_once('.') {
        Some((n, r)) => (n, Some(r)),
        None => (body, None),
    };
    let path = match rest {
        Some(r) => parse_field_parts(s, r)?,
        None => Vec::new(),
    };
    let var = match name {
        "ROOT" => Var::Root,
        "CURRENT" => Var::Current,
        "NOW" => Var::Now,
        "REMOVE" => Var::Remove,
        other => {
            check_var_name(other)?;
            Var::User(other.to_string())
        }
    };
    Ok(Node::Var(var, path))
}

/// User variable names start with a lowercase ASCII letter or a non-ASCII character and contain only
/// letters, digits and `_` (MongoDB's rule, which keeps them apart from the upper-case system variables).
pub(crate) fn check_var_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || !c.is_ascii());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
        return Err(QueryError::bad(
            "variable",
            format!("'{name}' is not a valid variable name (use a lowercase first letter, then letters, digits or _)"),
        ));
    }
    Ok(())
}

/// The operand list of an operator: an array operand is the list itself, anything else is one operand.
fn operand_list(operand: &Value) -> Vec<&Value> {
    match operand {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn parse_operator(op: &str, operand: &Value) -> Result<Node> {
    match op {
        "$function" | "$accumulator" | "$where" => {
            return Err(QueryError::JavaScriptRefused { op: op.to_string() });
        }
        "$literal" => return Ok(Node::Lit(operand.clone())),
        _ => {}
    }
    if let Some((func, min, max)) = ops::func_by_name(op) {
        let args = operand_list(operand);
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("exactly {min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            return Err(QueryError::bad(op, format!("takes {expected} argument(s), got {}", args.len())));
        }
        let nodes = args.into_iter().map(parse_node).collect::<Result<Vec<_>>>()?;
        return Ok(Node::Call(func, nodes));
    }
    let special = match op {
        "$cond" => parse_cond(operand)?,
        "$switch" => parse_switch(operand)?,
        "$let" => parse_let(operand)?,
        "$map" => {
            let o = Operands::new(op, operand, &["input", "as", "in"])?;
            let var = o.var_name("as")?;
            Special::Map { input: o.required("input")?, var, body: o.required("in")? }
        }
        "$filter" => {
            let o = Operands::new(op, operand, &["input", "as", "cond", "limit"])?;
            let var = o.var_name("as")?;
            Special::Filter { input: o.required("input")?, var, cond: o.required("cond")?, limit: o.optional("limit")? }
        }
        "$reduce" => {
            let o = Operands::new(op, operand, &["input", "initialValue", "in"])?;
            Special::Reduce {
                input: o.required("input")?,
                initial: o.required("initialValue")?,
                body: o.required("in")?,
            }
        }
        "$trim" | "$ltrim" | "$rtrim" => {
            let kind = match op {
                "$trim" => ops::TrimKind::Both,
                "$ltrim" => ops::TrimKind::Start,
                _ => ops::TrimKind::End,
            };
            let o = Operands::new(op, operand, &["input", "chars"])?;
            Special::Trim { kind, input: o.required("input")?, chars: o.optional("chars")? }
        }
        "$convert" => {
            let o = Operands::new(op, operand, &["input", "to", "onError", "onNull"])?;
            Special::Convert {
                input: o.required("input")?,
                to: o.required("to")?,
                on_error: o.optional("onError")?,
                on_null: o.optional("onNull")?,
            }
        }
        "$dateToString" => {
            let o = Operands::new(op, operand, &["date", "format", "timezone", "onNull"])?;
            Special::DateToString {
                date: o.required("date")?,
                format: o.optional("format")?,
                timezone: o.optional("timezone")?,
                on_null: o.optional("onNull")?,
            }
        }
        "$dateFromString" => {
            let o = Operands::new(op, operand, &["dateString", "timezone", "onError", "onNull"])?;
            Special::DateFromString {
                string: o.required("dateString")?,
                timezone: o.optional("timezone")?,
                on_error: o.optional("onError")?,
                on_null: o.optional("onNull")?,
            }
        }
        _ => match ops::DatePart::by_name(op) {
            Some(part) => parse_date_part(op, part, operand)?,
            None => return Err(QueryError::unknown(op)),
        },
    };
    Ok(Node::Special(Box::new(special)))
}

/// Named operands of a structured operator, with unknown names refused.
struct Operands<'v> {
    op: &'v str,
    map: &'v Map<String, Value>,
}

impl<'v> Operands<'v> {
    fn new(op: &'v str, operand: &'v Value, allowed: &[&str]) -> Result<Operands<'v>> {
        let map = operand.as_object().ok_or_else(|| QueryError::bad(op, "expects an object of named arguments"))?;
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(QueryError::bad(op, format!("unknown argument '{k}'")));
        }
        Ok(Operands { op, map })
    }

    fn required(&self, name: &str) -> Result<Node> {
        match self.map.get(name) {
            Some(v) => parse_node(v),
            None => Err(QueryError::bad(self.op, format!("missing required argument '{name}'"))),
        }
    }

    fn optional(&self, name: &str) -> Result<Option<Node>> {
        self.map.get(name).map(parse_node).transpose()
    }

    /// The `as` name of `$map`/`$filter` (default `this`).
    fn var_name(&self, name: &str) -> Result<String> {
        match self.map.get(name) {
            None => Ok("this".to_string()),
            Some(Value::String(s)) => {
                check_var_name(s)?;
                Ok(s.clone())
            }
            Some(_) => Err(QueryError::bad(self.op, format!("'{name}' must be a variable name string"))),
        }
    }
}

fn parse_cond(operand: &Value) -> Result<Special> {
    match operand {
        Value::Array(items) => match items.as_slice() {
            [c, t, e] => Ok(Special::Cond { cond: parse_node(c)?, then: parse_node(t)?, otherwise: parse_node(e)? }),
            _ => Err(QueryError::bad("$cond", format!("takes exactly 3 arguments, got {}", items.len()))),
        },
        Value::Object(_) => {
            let o = Operands::new("$cond", operand, &["if", "then", "else"])?;
            Ok(Special::Cond { cond: o.required("if")?, then: o.required("then")?, otherwise: o.required("else")? })
        }
        _ => Err(QueryError::bad("$cond", "expects an array [if, then, else] or an object {if, then, else}")),
    }
}

fn parse_switch(operand: &Value) -> Result<Special> {
    let o = Operands::new("$switch", operand, &["branches", "default"])?;
    let branches = o
        .map
        .get("branches")
        .and_then(Value::as_array)
        .ok_or_else(|| QueryError::bad("$switch", "'branches' must be an array"))?;
    let mut parsed = Vec::with_capacity(branches.len());
    for b in branches {
        let bo = Operands::new("$switch", b, &["case", "then"])?;
        parsed.push((bo.required("case")?, bo.required("then")?));
    }
    Ok(Special::Switch { branches: parsed, default: o.optional("default")? })
}

fn parse_let(operand: &Value) -> Result<Special> {
    let o = Operands::new("$let", operand, &["vars", "in"])?;
    let vars_doc = o
        .map
        .get("vars")
        .and_then(Value::as_object)
        .ok_or_else(|| QueryError::bad("$let", "'vars' must be an object"))?;
    let mut vars = Vec::with_capacity(vars_doc.len());
    for (name, e) in vars_doc {
        check_var_name(name)?;
        vars.push((name.clone(), parse_node(e)?));
    }
    Ok(Special::Let { vars, body: o.required("in")? })
}

fn parse_date_part(op: &str, part: ops::DatePart, operand: &Value) -> Result<Special> {
    // `{date, timezone}` is the structured form; anything else (including `[<date>]`) is the date.
    if let Value::Object(map) = operand {
        if map.contains_key("date") {
            let o = Operands::new(op, operand, &["date", "timezone"])?;
            return Ok(Special::DatePart { part, date: o.required("date")?, timezone: o.optional("timezone")? });
        }
    }
    let args = operand_list(operand);
    match args.as_slice() {
        [one] => Ok(Special::DatePart { part, date: parse_node(one)?, timezone: None }),
        _ => Err(QueryError::bad(op, "takes exactly 1 argument")),
    }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------------

/// Walks `path` with expression semantics: objects by field name, arrays fanned out (elements that are
/// objects or arrays are followed, missing results dropped), scalars end the walk as missing.
fn walk(v: &Value, path: &[String]) -> Option<Value> {
    walk_depth(v, path, 0)
}

fn walk_depth(v: &Value, path: &[String], depth: usize) -> Option<Value> {
    let Some((head, rest)) = path.split_first() else {
        return Some(v.clone());
    };
    match v {
        Value::Object(map) => walk_depth(map.get(head)?, rest, depth),
        Value::Array(items) if depth < MAX_FANOUT_DEPTH => Some(Value::Array(
            items
                .iter()
                .filter(|i| i.is_object() || i.is_array())
                .filter_map(|i| walk_depth(i, path, depth + 1))
                .collect(),
        )),
        _ => None,
    }
}

/// Evaluates a path expression `"$a.b"` on `doc` (public to the crate for `$lookup`'s `localField`).
pub(crate) fn eval_field_path(doc: &Value, path: &[String]) -> Option<Value> {
    walk(doc, path)
}

fn date_string(ms: i64, op: &str) -> Result<Value> {
    format_date_millis(ms)
        .map(Value::String)
        .ok_or_else(|| QueryError::EvalFailed { op: op.into(), message: "date is out of range".into() })
}

fn eval_node<'a>(node: &'a Node, ctx: &mut Ctx<'a>) -> Result<Option<Value>> {
    match node {
        Node::Lit(v) => Ok(Some(v.clone())),
        Node::Field(parts) => Ok(walk(ctx.root, parts)),
        Node::Var(var, path) => eval_var(var, path, ctx),
        Node::Object(fields) => {
            let mut map = Map::new();
            for (k, n) in fields {
                if let Some(v) = eval_node(n, ctx)? {
                    map.insert(k.clone(), v);
                }
            }
            Ok(Some(Value::Object(map)))
        }
        Node::Array(items) => {
            ctx.charge_elements(items.len())?;
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                out.push(eval_node(n, ctx)?.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Array(out)))
        }
        Node::Call(func, args) => ops::call(*func, args, ctx),
        Node::Special(special) => eval_special(special, ctx),
    }
}

fn eval_var<'a>(var: &Var, path: &[String], ctx: &mut Ctx<'a>) -> Result<Option<Value>> {
    match var {
        Var::Root | Var::Current => Ok(walk(ctx.root, path)),
        Var::Remove => Ok(None),
        Var::Now => {
            let ms = ctx.vars.now_millis.ok_or_else(|| QueryError::EvalFailed {
                op: "$$NOW".into(),
                message: "the current time is not available here".into(),
            })?;
            let now = date_string(ms, "$$NOW")?;
            Ok(walk(&now, path))
        }
        Var::User(name) => {
            if let Some((_, v)) = ctx.scope.iter().rev().find(|(n, _)| *n == name) {
                return Ok(walk(v, path));
            }
            match ctx.vars.get(name) {
                Some(v) => Ok(walk(v, path)),
                None => Err(QueryError::EvalFailed {
                    op: format!("$${name}"),
                    message: "use of an undefined variable".into(),
                }),
            }
        }
    }
}

/// Evaluates `body` with `name` bound to `value`, restoring the scope afterwards (also on error, so a
/// caught error in `$convert`'s `onError` cannot leak a binding).
fn with_binding<'a>(ctx: &mut Ctx<'a>, bindings: Vec<(&'a str, Value)>, body: &'a Node) -> Result<Option<Value>> {
    let mark = ctx.scope.len();
    ctx.scope.extend(bindings);
    let out = eval_node(body, ctx);
    ctx.scope.truncate(mark);
    out
}

fn is_nullish(v: &Option<Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn eval_truthy<'a>(node: &'a Node, ctx: &mut Ctx<'a>) -> Result<bool> {
    Ok(eval_node(node, ctx)?.as_ref().is_some_and(crate::value::is_truthy))
}

/// Evaluates the `input` of `$map`/`$filter`/`$reduce`: `Ok(None)` when null or missing.
fn eval_input_array<'a>(op: &str, input: &'a Node, ctx: &mut Ctx<'a>) -> Result<Option<Vec<Value>>> {
    match eval_node(input, ctx)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(ops::type_error(op, "'input' must resolve to an array", Some(&other))),
    }
}

fn eval_special<'a>(special: &'a Special, ctx: &mut Ctx<'a>) -> Result<Option<Value>> {
    match special {
        Special::Cond { cond, then, otherwise } => {
            if eval_truthy(cond, ctx)? {
                eval_node(then, ctx)
            } else {
                eval_node(otherwise, ctx)
            }
        }
        Special::Switch { branches, default } => {
            for (case, then) in branches {
                if eval_truthy(case, ctx)? {
                    return eval_node(then, ctx);
                }
            }
            match default {
                Some(d) => eval_node(d, ctx),
                None => Err(QueryError::EvalFailed {
                    op: "$switch".into(),
                    message: "no branch matched and no default was given".into(),
                }),
            }
        }
        Special::Let { vars, body } => {
            // All variables are evaluated in the outer scope, as in MongoDB.
            let mut bound = Vec::with_capacity(vars.len());
            for (name, e) in vars {
                let v = eval_node(e, ctx)?.unwrap_or(Value::Null);
                bound.push((name.as_str(), v));
            }
            with_binding(ctx, bound, body)
        }
        Special::Map { input, var, body } => {
            let Some(items) = eval_input_array("$map", input, ctx)? else {
                return Ok(Some(Value::Null));
            };
            ctx.charge_elements(items.len())?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(with_binding(ctx, vec![(var.as_str(), item)], body)?.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Array(out)))
        }
        Special::Filter { input, var, cond, limit } => {
            let Some(items) = eval_input_array("$filter", input, ctx)? else {
                return Ok(Some(Value::Null));
            };
            let limit = match limit {
                None => usize::MAX,
                Some(l) => match eval_node(l, ctx)? {
                    None | Some(Value::Null) => usize::MAX,
                    Some(v) => match ops::as_integer(&v) {
                        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
                        _ => return Err(ops::type_error("$filter", "'limit' must be a positive integer", Some(&v))),
                    },
                },
            };
            let mut out = Vec::new();
            for item in items {
                if out.len() >= limit {
                    break;
                }
                let keep = with_binding(ctx, vec![(var.as_str(), item.clone())], cond)?
                    .as_ref()
                    .is_some_and(crate::value::is_truthy);
                if keep {
                    out.push(item);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        Special::Reduce { input, initial, body } => {
            let Some(items) = eval_input_array("$reduce", input, ctx)? else {
                return Ok(Some(Value::Null));
            };
            let mut acc = eval_node(initial, ctx)?.unwrap_or(Value::Null);
            for item in items {
                ctx.charge(1)?;
                acc = with_binding(ctx, vec![("value", acc), ("this", item)], body)?.unwrap_or(Value::Null);
            }
            Ok(Some(acc))
        }
        Special::Trim { kind, input, chars } => {
            let input = eval_node(input, ctx)?;
            let chars = match chars {
                Some(c) => eval_node(c, ctx)?,
                None => None,
            };
            ops::trim(*kind, input, chars)
        }
        Special::Convert { input, to, on_error, on_null } => {
            let input = eval_node(input, ctx)?;
            // An unsupported target is a mistake in the pipeline, not in the data: `onError` does not
            // catch it.
            let target = ops::convert_target(eval_node(to, ctx)?)?;
            let Some(input) = input.filter(|v| !v.is_null()) else {
                return match on_null {
                    Some(n) => eval_node(n, ctx),
                    None => Ok(Some(Value::Null)),
                };
            };
            match ops::convert(&input, target) {
                Ok(v) => Ok(Some(v)),
                Err(e @ (QueryError::BadArgument { .. } | QueryError::EvalFailed { .. })) => match on_error {
                    Some(n) => eval_node(n, ctx),
                    None => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        Special::DateToString { date, format, timezone, on_null } => {
            let date = eval_node(date, ctx)?;
            if is_nullish(&date) {
                return match on_null {
                    Some(n) => eval_node(n, ctx),
                    None => Ok(Some(Value::Null)),
                };
            }
            let format = match format {
                Some(f) => eval_node(f, ctx)?,
                None => None,
            };
            let tz = match timezone {
                Some(t) => eval_node(t, ctx)?,
                None => None,
            };
            ops::date_to_string(date, format, tz)
        }
        Special::DatePart { part, date, timezone } => {
            let date = eval_node(date, ctx)?;
            let tz = match timezone {
                Some(t) => eval_node(t, ctx)?,
                None => None,
            };
            ops::date_part(*part, date, tz)
        }
        Special::DateFromString { string, timezone, on_error, on_null } => {
            let s = eval_node(string, ctx)?;
            if is_nullish(&s) {
                return match on_null {
                    Some(n) => eval_node(n, ctx),
                    None => Ok(Some(Value::Null)),
                };
            }
            let tz = match timezone {
                Some(t) => eval_node(t, ctx)?,
                None => None,
            };
            match ops::date_from_string(s, tz) {
                Ok(v) => Ok(v),
                Err(e @ (QueryError::BadArgument { .. } | QueryError::EvalFailed { .. })) => match on_error {
                    Some(n) => eval_node(n, ctx),
                    None => Err(e),
                },
                Err(e) => Err(e),
            }
        }
    }
}
