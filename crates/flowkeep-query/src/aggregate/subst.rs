//! Binding variables into `$match` filters.
//!
//! A `$match` runs through [`crate::filter::Filter`], whose `$expr` evaluates without variables. Inside
//! a `$lookup` sub-pipeline the `let` variables (and anywhere `$$NOW`) must still be visible to
//! `$expr`, so before such a filter is parsed every reference to a bound variable inside an `$expr` is
//! replaced by `{$literal: <value>}`. Names rebound inside the expression (`$let`, `$map`/`$filter`'s
//! `as`, `$reduce`'s `$$value`/`$$this`) shadow the outer binding and are left alone.

use crate::expr::{eval_field_path, Vars};
use crate::value::format_date_millis;
use serde_json::{Map, Value};

/// True if some `$expr` in `filter` refers to a variable other than `$$ROOT`/`$$CURRENT`, i.e. the
/// filter must be rebuilt with [`bind_filter`] before it can be evaluated.
pub(crate) fn filter_uses_vars(filter: &Value) -> bool {
    match filter {
        Value::Object(m) => m.iter().any(|(k, v)| if k == "$expr" { expr_uses_vars(v) } else { filter_uses_vars(v) }),
        Value::Array(items) => items.iter().any(filter_uses_vars),
        _ => false,
    }
}

fn expr_uses_vars(v: &Value) -> bool {
    match v {
        Value::String(s) => s.starts_with("$$") && !matches!(var_name(s), "ROOT" | "CURRENT" | "REMOVE"),
        Value::Object(m) => m.values().any(expr_uses_vars),
        Value::Array(items) => items.iter().any(expr_uses_vars),
        _ => false,
    }
}

fn var_name(s: &str) -> &str {
    let body = s.get(2..).unwrap_or_default();
    body.split('.').next().unwrap_or_default()
}

/// Returns `filter` with the variables of `vars` (and `$$NOW`, when known) bound inside every `$expr`.
pub(crate) fn bind_filter(filter: &Value, vars: &Vars) -> Value {
    match filter {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let bound = if k == "$expr" { bind_expr(v, vars, &mut Vec::new()) } else { bind_filter(v, vars) };
                    (k.clone(), bound)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| bind_filter(i, vars)).collect()),
        other => other.clone(),
    }
}

fn literal(v: Value) -> Value {
    let mut m = Map::new();
    m.insert("$literal".into(), v);
    Value::Object(m)
}

fn bind_reference(s: &str, vars: &Vars, shadowed: &[String]) -> Option<Value> {
    let name = var_name(s);
    if shadowed.iter().any(|n| n == name) {
        return None;
    }
    let value = match name {
        "NOW" => Value::String(format_date_millis(vars.now_millis?)?),
        _ => vars.get(name)?.clone(),
    };
    let path: Vec<String> = s.get(2..).unwrap_or_default().split('.').skip(1).map(str::to_string).collect();
    Some(match eval_field_path(&value, &path) {
        Some(v) => literal(v),
        // A path that reaches nothing is missing, which `$$REMOVE` expresses.
        None => Value::String("$$REMOVE".into()),
    })
}

fn bind_expr(v: &Value, vars: &Vars, shadowed: &mut Vec<String>) -> Value {
    match v {
        Value::String(s) if s.starts_with("$$") => bind_reference(s, vars, shadowed).unwrap_or_else(|| v.clone()),
        Value::Array(items) => Value::Array(items.iter().map(|i| bind_expr(i, vars, shadowed)).collect()),
        Value::Object(m) if m.len() == 1 => {
            let Some((op, arg)) = m.iter().next() else { return v.clone() };
            let bound = match (op.as_str(), arg) {
                ("$literal", _) => arg.clone(),
                ("$let", Value::Object(args)) => {
                    let names: Vec<String> = args
                        .get("vars")
                        .and_then(Value::as_object)
                        .map(|o| o.keys().cloned().collect())
                        .unwrap_or_default();
                    bind_scoped(args, vars, shadowed, &["in"], names)
                }
                ("$map" | "$filter", Value::Object(args)) => {
                    let name = args.get("as").and_then(Value::as_str).unwrap_or("this").to_string();
                    bind_scoped(args, vars, shadowed, &["in", "cond"], vec![name])
                }
                ("$reduce", Value::Object(args)) => {
                    bind_scoped(args, vars, shadowed, &["in"], vec!["value".into(), "this".into()])
                }
                _ => bind_expr(arg, vars, shadowed),
            };
            let mut out = Map::new();
            out.insert(op.clone(), bound);
            Value::Object(out)
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), bind_expr(x, vars, shadowed))).collect()),
        other => other.clone(),
    }
}

/// Binds the named arguments of a scoping operator: those in `inner` see `names` shadowed.
fn bind_scoped(
    args: &Map<String, Value>,
    vars: &Vars,
    shadowed: &mut Vec<String>,
    inner: &[&str],
    names: Vec<String>,
) -> Value {
    let mut out = Map::new();
    for (k, x) in args {
        let bound = if inner.contains(&k.as_str()) {
            let mark = shadowed.len();
            shadowed.extend(names.iter().cloned());
            let b = bind_expr(x, vars, shadowed);
            shadowed.truncate(mark);
            b
        } else if k == "vars" {
            // `$let`'s variable definitions are evaluated in the outer scope.
            match x {
                Value::Object(defs) => {
                    Value::Object(defs.iter().map(|(n, d)| (n.clone(), bind_expr(d, vars, shadowed))).collect())
                }
                other => other.clone(),
            }
        } else {
            bind_expr(x, vars, shadowed)
        };
        out.insert(k.clone(), bound);
    }
    Value::Object(out)
}
