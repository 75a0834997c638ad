//! Helpers shared by the integration tests of `flowkeep-query`: comparing JSON results the way the
//! query language sees them (one number type, so `1 == 1.0`).

#![allow(dead_code)] // each test binary uses a different subset

use serde_json::Value;
use std::collections::BTreeMap;

/// How two JSON values are compared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cmp {
    /// Compare object keys regardless of order (JSON engines disagree on key order of numeric keys).
    pub ignore_key_order: bool,
    /// Relative tolerance for non-integral numbers (`$avg`, `$stdDevPop`…); 0 for exact.
    pub tolerance: f64,
}

/// Numbers equal by value (`1 == 1.0`), objects by key and value (order per `cmp`), arrays in order.
pub fn json_eq(a: &Value, b: &Value, cmp: Cmp) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                return i == j;
            }
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            if x == y {
                return true;
            }
            cmp.tolerance > 0.0 && (x - y).abs() <= cmp.tolerance * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(i, j)| json_eq(i, j, cmp)),
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            if cmp.ignore_key_order {
                x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w, cmp)))
            } else {
                x.iter().zip(y).all(|((ka, va), (kb, vb))| ka == kb && json_eq(va, vb, cmp))
            }
        }
        _ => a == b,
    }
}

/// A canonical text of `v`: keys sorted, numbers written as `f64`, so equal values give equal text.
/// Used to compare result lists as multisets.
pub fn canonical(v: &Value) -> String {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Value::from(f as i64)
                } else {
                    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
                }
            }
            Value::Array(items) => Value::Array(items.iter().map(norm).collect()),
            Value::Object(map) => {
                let sorted: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, norm(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            other => other.clone(),
        }
    }
    norm(v).to_string()
}
