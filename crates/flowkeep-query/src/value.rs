//! MongoDB's view of a JSON value: its BSON type, the total order across types, and equality.
//!
//! JSON has no date type. Following the OpenIAP wire convention, a string in ISO-8601 date-time form
//! (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.123+02:00`) *is* a date: it has the date type, sorts among
//! dates by instant, and compares equal to any other spelling of the same instant.

use chrono::{DateTime, FixedOffset};
use serde_json::{Number, Value};
use std::cmp::Ordering;

/// BSON types in MongoDB's cross-type comparison order (lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeRank {
    /// `null` (and, in Mongo, `undefined`). A missing field is not a value and has no rank.
    Null = 2,
    /// int, long, double, decimal: all compared numerically.
    Number = 3,
    /// string (and symbol).
    String = 4,
    /// embedded document.
    Object = 5,
    /// array.
    Array = 6,
    /// boolean.
    Bool = 9,
    /// date: an ISO-8601 date-time string on the wire.
    Date = 10,
}

/// The BSON type rank of `v`.
pub fn type_rank(v: &Value) -> TypeRank {
    match v {
        Value::Null => TypeRank::Null,
        Value::Number(_) => TypeRank::Number,
        Value::String(s) => {
            if parse_date(s).is_some() {
                TypeRank::Date
            } else {
                TypeRank::String
            }
        }
        Value::Object(_) => TypeRank::Object,
        Value::Array(_) => TypeRank::Array,
        Value::Bool(_) => TypeRank::Bool,
    }
}

/// MongoDB's `$type` name for `v` (`"double"`, `"int"`, `"long"`, `"string"`, `"date"`, …).
pub fn bson_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i32::try_from(i).is_ok() {
                    "int"
                } else {
                    "long"
                }
            } else if n.is_u64() {
                "long"
            } else {
                "double"
            }
        }
        Value::String(s) => {
            if parse_date(s).is_some() {
                "date"
            } else {
                "string"
            }
        }
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Bool(_) => "bool",
    }
}

/// Parses a string that is a date on the wire: `YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm)`.
///
/// A cheap shape check runs first, because this is called for every string compared.
pub fn parse_date(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    if !b[..4].iter().all(u8::is_ascii_digit) || b[13] != b':' {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// Nanoseconds since the Unix epoch of a date, exact over chrono's whole range (an `i64` of nanoseconds
/// ends in 2262, well before MongoDB's dates do).
pub fn date_nanos<Tz: chrono::TimeZone>(d: &DateTime<Tz>) -> i128 {
    i128::from(d.timestamp()) * 1_000_000_000 + i128::from(d.timestamp_subsec_nanos())
}

/// Milliseconds since the Unix epoch of a wire date, if `v` is one.
pub fn as_date_millis(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_date(s).map(|d| d.timestamp_millis()),
        _ => None,
    }
}

/// Formats epoch milliseconds as the canonical wire date (`2024-05-01T12:00:00.000Z`).
pub fn format_date_millis(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// A number as `f64` (lossy for huge integers, as in MongoDB's double comparisons).
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Compares two JSON numbers numerically, exactly when both are integers.
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => match (as_i128(a), as_i128(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let x = a.as_f64().unwrap_or(f64::NAN);
                let y = b.as_f64().unwrap_or(f64::NAN);
                // MongoDB orders NaN below every other number and equal to itself.
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                }
            }
        },
    }
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

/// MongoDB's total order over values: first by [`TypeRank`], then within the type.
///
/// Objects compare pair by pair (value type, then key, then value); arrays element by element;
/// dates by instant; strings by their UTF-8 bytes (the simple binary collation).
pub fn compare(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => {
            if ra == TypeRank::Date {
                parse_date(x).map(|d| date_nanos(&d)).cmp(&parse_date(y).map(|d| date_nanos(&d)))
            } else {
                x.as_bytes().cmp(y.as_bytes())
            }
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (i, j) in x.iter().zip(y.iter()) {
                let o = compare(i, j);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((ka, va), (kb, vb)) in x.iter().zip(y.iter()) {
                let o = type_rank(va)
                    .cmp(&type_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => Ordering::Equal, // both null
    }
}

/// Value equality as MongoDB's `$eq` sees it: `1 == 1.0`, field order of objects matters, dates by instant.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Truthiness in aggregation expressions: `false`, `null`, missing and `0` are false; all else is true.
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        _ => true,
    }
}

/// Builds a JSON number from an `f64`, keeping integral values as integers where they fit.
pub fn number_from_f64(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cross_type_order_follows_bson() {
        let ordered = [
            json!(null),
            json!(-5),
            json!(2.5),
            json!("abc"),
            json!({"a": 1}),
            json!([1]),
            json!(false),
            json!(true),
            json!("2020-01-01T00:00:00Z"),
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(&w[0], &w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(&w[1], &w[0]), Ordering::Greater);
        }
    }

    #[test]
    fn numbers_compare_across_int_and_double() {
        assert!(values_equal(&json!(1), &json!(1.0)));
        assert_eq!(compare(&json!(2), &json!(1.5)), Ordering::Greater);
        assert_eq!(compare(&json!(u64::MAX), &json!(i64::MAX)), Ordering::Greater);
    }

    #[test]
    fn dates_compare_by_instant() {
        assert!(values_equal(&json!("2024-01-01T02:00:00+02:00"), &json!("2024-01-01T00:00:00.000Z")));
        assert_eq!(compare(&json!("2024-01-01T00:00:00Z"), &json!("2023-12-31T23:59:59.999Z")), Ordering::Greater);
        assert_eq!(type_rank(&json!("2024-01-01")), TypeRank::String, "a bare date is a string");
        assert_eq!(type_rank(&json!("hello world, this is long")), TypeRank::String);
        // Past 2262 nanoseconds since 1970 leave i64; such dates must still order after today's.
        let far = json!("2999-01-01T00:00:00.000Z");
        assert_eq!(compare(&far, &json!("2026-11-22T18:00:00.000Z")), Ordering::Greater);
        assert_eq!(compare(&json!("1500-01-01T00:00:00Z"), &json!("1970-01-01T00:00:00Z")), Ordering::Less);
        assert_eq!(compare(&far, &json!("2999-01-01T00:00:00.001Z")), Ordering::Less);
        assert!(values_equal(&far, &json!("2999-01-01T01:00:00+01:00")));
    }

    #[test]
    fn objects_compare_pairwise_and_by_field_order() {
        assert!(!values_equal(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1})));
        assert_eq!(compare(&json!({"a": 1}), &json!({"a": 1, "b": 0})), Ordering::Less);
        assert_eq!(compare(&json!({"a": "x"}), &json!({"a": 5})), Ordering::Greater, "string ranks above number");
    }

    #[test]
    fn type_names() {
        assert_eq!(bson_type_name(&json!(1)), "int");
        assert_eq!(bson_type_name(&json!(1u64 << 40)), "long");
        assert_eq!(bson_type_name(&json!(1.5)), "double");
        assert_eq!(bson_type_name(&json!("2024-01-01T00:00:00Z")), "date");
    }
}
