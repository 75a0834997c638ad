//! Table tests of expression operators: (expression, document, expected result).

use super::*;
use serde_json::json;

fn eval(expr: Value, doc: Value) -> Result<Option<Value>> {
    Expr::parse(&expr, &Limits::default())?.eval_with(&doc, &Vars::with_now(1_714_564_800_000))
}

/// Asserts each case evaluates to `Some(expected)`.
fn table(cases: &[(Value, Value, Value)]) {
    for (expr, doc, expected) in cases {
        let got = eval(expr.clone(), doc.clone());
        assert_eq!(got, Ok(Some(expected.clone())), "{expr} on {doc}");
    }
}

fn err(expr: Value, doc: Value) -> QueryError {
    match eval(expr.clone(), doc) {
        Err(e) => e,
        Ok(v) => panic!("{expr} should fail, got {v:?}"),
    }
}

#[test]
fn field_paths_and_variables() {
    let doc = json!({"a": {"b": 1}, "arr": [{"b": 1}, {"b": [2, 3]}, {"c": 4}, 5, [{"b": 6}]]});
    table(&[
        (json!("$a.b"), doc.clone(), json!(1)),
        (json!("$arr.b"), doc.clone(), json!([1, [2, 3], [6]])),
        (json!("$$ROOT.a"), doc.clone(), json!({"b": 1})),
        (json!("$$CURRENT.a.b"), doc.clone(), json!(1)),
        (json!("$$NOW"), json!({}), json!("2024-05-01T12:00:00.000Z")),
        (json!({"x": "$a.b", "y": "$nope", "z": [1, "$nope"]}), doc.clone(), json!({"x": 1, "z": [1, null]})),
        (json!({"$literal": "$a.b"}), doc.clone(), json!("$a.b")),
        (json!("plain"), doc.clone(), json!("plain")),
    ]);
    assert_eq!(eval(json!("$nope"), doc.clone()), Ok(None));
    assert_eq!(eval(json!("$$REMOVE"), doc.clone()), Ok(None));
    assert_eq!(eval(json!("$a.b.c"), doc), Ok(None), "a scalar on the way is missing");
    let mut vars = Vars::new();
    vars.bind("x", json!({"y": 7}));
    let e = Expr::parse(&json!({"$add": ["$$x.y", 1]}), &Limits::default()).unwrap();
    assert_eq!(e.eval_with(&json!({}), &vars), Ok(Some(json!(8))));
    assert!(matches!(e.eval(&json!({})), Err(QueryError::EvalFailed { .. })), "undefined variable");
    let now = Expr::parse(&json!("$$NOW"), &Limits::default()).unwrap();
    assert!(matches!(now.eval(&json!({})), Err(QueryError::EvalFailed { .. })), "no clock without vars");
}

#[test]
fn comparison_and_logic() {
    let doc = json!({"n": 5, "s": "abc", "z": null});
    table(&[
        (json!({"$eq": ["$n", 5.0]}), doc.clone(), json!(true)),
        (json!({"$ne": ["$n", 5]}), doc.clone(), json!(false)),
        (json!({"$gt": ["$s", 100]}), doc.clone(), json!(true)),
        (json!({"$gte": ["$n", 5]}), doc.clone(), json!(true)),
        (json!({"$lt": ["$n", 4]}), doc.clone(), json!(false)),
        (json!({"$lte": ["$z", null]}), doc.clone(), json!(true)),
        (json!({"$cmp": ["$n", 7]}), doc.clone(), json!(-1)),
        (json!({"$cmp": ["b", "a"]}), doc.clone(), json!(1)),
        // Missing is not null, and sorts below it.
        (json!({"$eq": ["$nope", null]}), doc.clone(), json!(false)),
        (json!({"$lt": ["$nope", null]}), doc.clone(), json!(true)),
        (json!({"$and": [1, "$s", true]}), doc.clone(), json!(true)),
        (json!({"$and": [1, "$z"]}), doc.clone(), json!(false)),
        (json!({"$and": []}), doc.clone(), json!(true)),
        (json!({"$or": [0, "$nope", false]}), doc.clone(), json!(false)),
        (json!({"$or": [0, "$n"]}), doc.clone(), json!(true)),
        (json!({"$not": ["$z"]}), doc.clone(), json!(true)),
        (json!({"$not": "$n"}), doc.clone(), json!(false)),
    ]);
    // $and short-circuits: the division by zero is never evaluated.
    table(&[(json!({"$and": [false, {"$divide": [1, 0]}]}), json!({}), json!(false))]);
}

#[test]
fn arithmetic() {
    let doc = json!({"a": 7, "b": 2, "f": 2.5, "d": "2024-01-01T00:00:00Z", "z": null});
    table(&[
        (json!({"$add": ["$a", "$b", 1]}), doc.clone(), json!(10)),
        (json!({"$add": ["$a", "$f"]}), doc.clone(), json!(9.5)),
        (json!({"$add": ["$a", "$z"]}), doc.clone(), json!(null)),
        (json!({"$add": ["$a", "$nope"]}), doc.clone(), json!(null)),
        (json!({"$add": []}), doc.clone(), json!(0)),
        (json!({"$add": ["$d", 86_400_000]}), doc.clone(), json!("2024-01-02T00:00:00.000Z")),
        (json!({"$add": [i64::MAX, 1]}), doc.clone(), json!(9.223372036854776e18)),
        (json!({"$subtract": ["$a", "$b"]}), doc.clone(), json!(5)),
        (json!({"$subtract": ["$d", "1970-01-01T00:00:00Z"]}), doc.clone(), json!(1_704_067_200_000i64)),
        (json!({"$subtract": ["$d", 1000]}), doc.clone(), json!("2023-12-31T23:59:59.000Z")),
        (json!({"$subtract": ["$z", 1]}), doc.clone(), json!(null)),
        (json!({"$multiply": ["$a", "$b", "$f"]}), doc.clone(), json!(35)),
        (json!({"$divide": ["$a", "$b"]}), doc.clone(), json!(3.5)),
        (json!({"$divide": [6, 3]}), doc.clone(), json!(2)),
        (json!({"$mod": ["$a", "$b"]}), doc.clone(), json!(1)),
        (json!({"$mod": [-7, 2]}), doc.clone(), json!(-1)),
        (json!({"$mod": [7.5, 2]}), doc.clone(), json!(1.5)),
        (json!({"$abs": -3}), doc.clone(), json!(3)),
        (json!({"$abs": "$z"}), doc.clone(), json!(null)),
        (json!({"$ceil": 2.1}), doc.clone(), json!(3)),
        (json!({"$floor": -2.1}), doc.clone(), json!(-3)),
        (json!({"$round": 2.5}), doc.clone(), json!(2)),
        (json!({"$round": 3.5}), doc.clone(), json!(4)),
        (json!({"$round": [1.23456, 2]}), doc.clone(), json!(1.23)),
        (json!({"$round": [1250, -2]}), doc.clone(), json!(1200)),
        (json!({"$round": [1350, -2]}), doc.clone(), json!(1400)),
        (json!({"$trunc": [-2.7]}), doc.clone(), json!(-2)),
        (json!({"$trunc": [1.23456, 3]}), doc.clone(), json!(1.234)),
        (json!({"$sqrt": 16}), doc.clone(), json!(4)),
        (json!({"$pow": [2, 10]}), doc.clone(), json!(1024)),
        (json!({"$pow": [2, -1]}), doc.clone(), json!(0.5)),
        (json!({"$exp": 0}), doc.clone(), json!(1)),
        (json!({"$ln": 1}), doc.clone(), json!(0)),
        (json!({"$log10": 1000}), doc.clone(), json!(3)),
        (json!({"$log": [8, 2]}), doc.clone(), json!(3)),
    ]);
    assert!(matches!(err(json!({"$divide": [1, 0]}), json!({})), QueryError::EvalFailed { .. }));
    assert!(matches!(err(json!({"$mod": [1, 0]}), json!({})), QueryError::EvalFailed { .. }));
    assert!(matches!(err(json!({"$sqrt": -1}), json!({})), QueryError::EvalFailed { .. }));
    assert!(matches!(err(json!({"$ln": 0}), json!({})), QueryError::EvalFailed { .. }));
    assert!(matches!(err(json!({"$pow": [0, -1]}), json!({})), QueryError::EvalFailed { .. }));
    assert!(matches!(err(json!({"$add": ["a", 1]}), json!({})), QueryError::BadArgument { .. }));
    assert!(matches!(
        err(json!({"$add": ["$d", "$d"]}), json!({"d": "2024-01-01T00:00:00Z"})),
        QueryError::BadArgument { .. }
    ));
    assert_eq!(eval(json!({"$mod": [i64::MIN, -1]}), json!({})), Ok(Some(json!(0))), "no overflow panic");
}

#[test]
fn conditionals() {
    let doc = json!({"n": 5, "z": null});
    table(&[
        (json!({"$cond": [{"$gt": ["$n", 3]}, "big", "small"]}), doc.clone(), json!("big")),
        (json!({"$cond": {"if": "$z", "then": 1, "else": 2}}), doc.clone(), json!(2)),
        (json!({"$ifNull": ["$z", "$nope", "dflt"]}), doc.clone(), json!("dflt")),
        (json!({"$ifNull": ["$n", "dflt"]}), doc.clone(), json!(5)),
        (
            json!({"$switch": {"branches": [{"case": {"$lt": ["$n", 0]}, "then": "neg"}, {"case": {"$gt": ["$n", 0]}, "then": "pos"}], "default": "zero"}}),
            doc.clone(),
            json!("pos"),
        ),
        (json!({"$switch": {"branches": [{"case": false, "then": 1}], "default": 0}}), doc.clone(), json!(0)),
    ]);
    assert!(matches!(
        err(json!({"$switch": {"branches": [{"case": false, "then": 1}]}}), json!({})),
        QueryError::EvalFailed { .. }
    ));
    assert!(matches!(err(json!({"$cond": [1, 2]}), json!({})), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$cond": {"if": 1, "then": 2}}), json!({})), QueryError::BadArgument { .. }));
}

#[test]
fn strings() {
    let doc = json!({"s": "Hello World", "u": "héllo", "z": null});
    table(&[
        (json!({"$concat": ["$s", "!", "?"]}), doc.clone(), json!("Hello World!?")),
        (json!({"$concat": ["$s", "$z"]}), doc.clone(), json!(null)),
        (json!({"$toLower": "$s"}), doc.clone(), json!("hello world")),
        (json!({"$toUpper": "$s"}), doc.clone(), json!("HELLO WORLD")),
        (json!({"$toUpper": "$z"}), doc.clone(), json!("")),
        (json!({"$toLower": 5}), doc.clone(), json!("5")),
        (json!({"$substr": ["$s", 0, 5]}), doc.clone(), json!("Hello")),
        (json!({"$substrBytes": ["$s", 6, -1]}), doc.clone(), json!("World")),
        (json!({"$substrCP": ["$u", 1, 3]}), doc.clone(), json!("éll")),
        (json!({"$substrCP": ["$u", 10, 3]}), doc.clone(), json!("")),
        (json!({"$strLenCP": "$u"}), doc.clone(), json!(5)),
        (json!({"$strLenBytes": "$u"}), doc.clone(), json!(6)),
        (json!({"$split": ["a,b,,c", ","]}), doc.clone(), json!(["a", "b", "", "c"])),
        (json!({"$split": ["$z", ","]}), doc.clone(), json!(null)),
        (json!({"$trim": {"input": "  hi \n"}}), doc.clone(), json!("hi")),
        (json!({"$ltrim": {"input": "xxhixx", "chars": "x"}}), doc.clone(), json!("hixx")),
        (json!({"$rtrim": {"input": "xxhixx", "chars": "x"}}), doc.clone(), json!("xxhi")),
        (json!({"$trim": {"input": "$z"}}), doc.clone(), json!(null)),
        (json!({"$indexOfCP": ["$u", "llo"]}), doc.clone(), json!(2)),
        (json!({"$indexOfCP": ["$u", "l", 3]}), doc.clone(), json!(3)),
        (json!({"$indexOfCP": ["$u", "zz"]}), doc.clone(), json!(-1)),
        (json!({"$indexOfCP": ["$z", "a"]}), doc.clone(), json!(null)),
        (json!({"$indexOfBytes": ["$u", "llo"]}), doc.clone(), json!(3)),
        (json!({"$strcasecmp": ["ABC", "abc"]}), doc.clone(), json!(0)),
    ]);
    assert!(matches!(err(json!({"$substrBytes": ["$u", 2, 1]}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$strLenCP": "$z"}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$concat": ["a", 1]}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$split": ["a", ""]}), doc), QueryError::BadArgument { .. }));
}

#[test]
fn arrays() {
    let doc = json!({"a": [1, 2, 3, 4], "z": null, "docs": [{"k": 1}, {"k": 2}]});
    table(&[
        (json!({"$size": "$a"}), doc.clone(), json!(4)),
        (json!({"$arrayElemAt": ["$a", 0]}), doc.clone(), json!(1)),
        (json!({"$arrayElemAt": ["$a", -1]}), doc.clone(), json!(4)),
        (json!({"$arrayElemAt": ["$z", 0]}), doc.clone(), json!(null)),
        (json!({"$first": "$a"}), doc.clone(), json!(1)),
        (json!({"$last": "$a"}), doc.clone(), json!(4)),
        (json!({"$concatArrays": ["$a", [5], []]}), doc.clone(), json!([1, 2, 3, 4, 5])),
        (json!({"$concatArrays": ["$a", "$nope"]}), doc.clone(), json!(null)),
        (json!({"$in": [2.0, "$a"]}), doc.clone(), json!(true)),
        (json!({"$in": [9, "$a"]}), doc.clone(), json!(false)),
        (json!({"$slice": ["$a", 2]}), doc.clone(), json!([1, 2])),
        (json!({"$slice": ["$a", -2]}), doc.clone(), json!([3, 4])),
        (json!({"$slice": ["$a", 1, 2]}), doc.clone(), json!([2, 3])),
        (json!({"$slice": ["$a", -3, 10]}), doc.clone(), json!([2, 3, 4])),
        (json!({"$isArray": "$a"}), doc.clone(), json!(true)),
        (json!({"$isArray": ["$z"]}), doc.clone(), json!(false)),
        (json!({"$reverseArray": "$a"}), doc.clone(), json!([4, 3, 2, 1])),
        (json!({"$range": [0, 10, 3]}), doc.clone(), json!([0, 3, 6, 9])),
        (json!({"$range": [5, 0, -2]}), doc.clone(), json!([5, 3, 1])),
        (json!({"$indexOfArray": ["$a", 3]}), doc.clone(), json!(2)),
        (json!({"$filter": {"input": "$a", "as": "x", "cond": {"$gt": ["$$x", 2]}}}), doc.clone(), json!([3, 4])),
        (json!({"$filter": {"input": "$a", "cond": {"$gt": ["$$this", 1]}, "limit": 2}}), doc.clone(), json!([2, 3])),
        (json!({"$filter": {"input": "$z", "cond": true}}), doc.clone(), json!(null)),
        (
            json!({"$map": {"input": "$a", "as": "x", "in": {"$multiply": ["$$x", 10]}}}),
            doc.clone(),
            json!([10, 20, 30, 40]),
        ),
        (json!({"$map": {"input": "$docs", "in": "$$this.k"}}), doc.clone(), json!([1, 2])),
        (
            json!({"$reduce": {"input": "$a", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}),
            doc.clone(),
            json!(10),
        ),
        (json!({"$sum": "$a"}), doc.clone(), json!(10)),
        (json!({"$sum": [1, 2, "x"]}), doc.clone(), json!(3)),
        (json!({"$avg": "$a"}), doc.clone(), json!(2.5)),
        (json!({"$max": "$a"}), doc.clone(), json!(4)),
        (json!({"$min": [3, null, 1]}), doc.clone(), json!(1)),
    ]);
    assert_eq!(eval(json!({"$arrayElemAt": ["$a", 10]}), doc.clone()), Ok(None));
    assert!(matches!(err(json!({"$size": "$nope"}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$in": [1, "$z"]}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$range": [0, 1, 0]}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$size": [1, 2]}), doc), QueryError::BadArgument { .. }), "arity");
}

#[test]
fn types_and_conversion() {
    let doc = json!({"i": 5, "f": 2.7, "s": "42", "d": "2024-01-01T00:00:00Z", "b": true, "z": null});
    table(&[
        (json!({"$type": "$i"}), doc.clone(), json!("int")),
        (json!({"$type": "$f"}), doc.clone(), json!("double")),
        (json!({"$type": "$d"}), doc.clone(), json!("date")),
        (json!({"$type": "$nope"}), doc.clone(), json!("missing")),
        (json!({"$toString": "$i"}), doc.clone(), json!("5")),
        (json!({"$toString": "$b"}), doc.clone(), json!("true")),
        (json!({"$toString": "$d"}), doc.clone(), json!("2024-01-01T00:00:00.000Z")),
        (json!({"$toString": "$z"}), doc.clone(), json!(null)),
        (json!({"$toInt": "$s"}), doc.clone(), json!(42)),
        (json!({"$toInt": "$f"}), doc.clone(), json!(2)),
        (json!({"$toInt": "$b"}), doc.clone(), json!(1)),
        (json!({"$toLong": "$d"}), doc.clone(), json!(1_704_067_200_000i64)),
        (json!({"$toDouble": "2.5"}), doc.clone(), json!(2.5)),
        (json!({"$toBool": 0}), doc.clone(), json!(false)),
        (json!({"$toBool": ""}), doc.clone(), json!(true)),
        (json!({"$toDate": 0}), doc.clone(), json!("1970-01-01T00:00:00.000Z")),
        (json!({"$toDate": "2024-02-03"}), doc.clone(), json!("2024-02-03T00:00:00.000Z")),
        (json!({"$convert": {"input": "abc", "to": "int", "onError": -1}}), doc.clone(), json!(-1)),
        (json!({"$convert": {"input": "$nope", "to": "int", "onNull": 0}}), doc.clone(), json!(0)),
        (json!({"$convert": {"input": "7", "to": 16}}), doc.clone(), json!(7)),
        (json!({"$isNumber": "$s"}), doc.clone(), json!(false)),
    ]);
    assert!(matches!(err(json!({"$toInt": "abc"}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(err(json!({"$toInt": 3_000_000_000i64}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(
        err(json!({"$convert": {"input": 1, "to": "objectId", "onError": 0}}), doc),
        QueryError::BadArgument { .. }
    ));
}

#[test]
fn documents_and_let() {
    let doc = json!({"a": {"x": 1}, "b": {"y": 2, "x": 3}, "pairs": [["k", 1], ["j", 2]]});
    table(&[
        (json!({"$mergeObjects": ["$a", "$b", null]}), doc.clone(), json!({"x": 3, "y": 2})),
        (json!({"$mergeObjects": [[{"a": 1}, {"b": 2}]]}), doc.clone(), json!({"a": 1, "b": 2})),
        (json!({"$objectToArray": "$a"}), doc.clone(), json!([{"k": "x", "v": 1}])),
        (json!({"$arrayToObject": "$pairs"}), doc.clone(), json!({"k": 1, "j": 2})),
        (json!({"$arrayToObject": [[{"k": "p", "v": true}]]}), doc.clone(), json!({"p": true})),
        (
            json!({"$let": {"vars": {"t": {"$add": ["$a.x", 1]}}, "in": {"$multiply": ["$$t", 10]}}}),
            doc.clone(),
            json!(20),
        ),
        // Inner bindings shadow outer ones and vanish afterwards.
        (
            json!({"$let": {"vars": {"v": 1}, "in": [{"$let": {"vars": {"v": 2}, "in": "$$v"}}, "$$v"]}}),
            doc,
            json!([2, 1]),
        ),
    ]);
}

#[test]
fn dates() {
    let doc = json!({"d": "2024-03-05T14:07:09.123Z", "z": null});
    table(&[
        (json!({"$year": "$d"}), doc.clone(), json!(2024)),
        (json!({"$month": "$d"}), doc.clone(), json!(3)),
        (json!({"$dayOfMonth": "$d"}), doc.clone(), json!(5)),
        (json!({"$hour": "$d"}), doc.clone(), json!(14)),
        (json!({"$minute": "$d"}), doc.clone(), json!(7)),
        (json!({"$second": "$d"}), doc.clone(), json!(9)),
        (json!({"$millisecond": "$d"}), doc.clone(), json!(123)),
        (json!({"$dayOfWeek": "$d"}), doc.clone(), json!(3)),
        (json!({"$dayOfYear": "$d"}), doc.clone(), json!(65)),
        (json!({"$hour": {"date": "$d", "timezone": "+02:00"}}), doc.clone(), json!(16)),
        (json!({"$year": "$z"}), doc.clone(), json!(null)),
        (
            json!({"$dateToString": {"date": "$d", "format": "%Y-%m-%d %H:%M:%S.%L"}}),
            doc.clone(),
            json!("2024-03-05 14:07:09.123"),
        ),
        (json!({"$dateToString": {"date": "$d"}}), doc.clone(), json!("2024-03-05T14:07:09.123Z")),
        (json!({"$dateToString": {"date": "$d", "format": "%j %w %u %%"}}), doc.clone(), json!("065 3 2 %")),
        (json!({"$dateToString": {"date": "$nope", "onNull": "none"}}), doc.clone(), json!("none")),
        (
            json!({"$dateFromString": {"dateString": "2024-01-01T10:00:00", "timezone": "-01:00"}}),
            doc.clone(),
            json!("2024-01-01T11:00:00.000Z"),
        ),
    ]);
    assert!(matches!(err(json!({"$year": "not a date"}), doc.clone()), QueryError::BadArgument { .. }));
    assert!(matches!(
        err(json!({"$hour": {"date": "$d", "timezone": "Europe/Paris"}}), doc.clone()),
        QueryError::BadArgument { .. }
    ));
    assert!(matches!(
        err(json!({"$dateToString": {"date": "$d", "format": "%Q"}}), doc),
        QueryError::BadArgument { .. }
    ));
}

#[test]
fn parse_errors() {
    let limits = Limits::default();
    for op in ["$function", "$accumulator", "$where"] {
        let e = Expr::parse(&json!({op: {}}), &limits).unwrap_err();
        assert_eq!(e, QueryError::JavaScriptRefused { op: op.into() });
    }
    // Nested JavaScript is refused too.
    assert!(matches!(
        Expr::parse(&json!({"$add": [1, {"$function": {"body": "x", "args": [], "lang": "js"}}]}), &limits),
        Err(QueryError::JavaScriptRefused { .. })
    ));
    assert_eq!(Expr::parse(&json!({"$frobnicate": 1}), &limits).unwrap_err(), QueryError::unknown("$frobnicate"));
    assert!(matches!(Expr::parse(&json!({"$add": 1, "x": 2}), &limits), Err(QueryError::BadArgument { .. })));
    assert!(matches!(Expr::parse(&json!({"$eq": [1]}), &limits), Err(QueryError::BadArgument { .. })));
    assert!(matches!(Expr::parse(&json!("$"), &limits), Err(QueryError::BadPath { .. })));
    assert!(matches!(Expr::parse(&json!("$a..b"), &limits), Err(QueryError::BadPath { .. })));
    assert!(matches!(Expr::parse(&json!("$$Bad"), &limits), Err(QueryError::BadArgument { .. })));
    assert!(matches!(
        Expr::parse(&json!({"$map": {"input": [], "in": 1, "x": 2}}), &limits),
        Err(QueryError::BadArgument { .. })
    ));
    assert!(matches!(Expr::parse(&json!({"a.b": 1}), &limits), Err(QueryError::BadArgument { .. })));
    let deep = (0..200).fold(json!(1), |acc, _| json!({"$abs": acc}));
    assert!(matches!(Expr::parse(&deep, &limits), Err(QueryError::TooDeep { .. })));
}

#[test]
fn evaluation_budget_stops_runaway_growth() {
    let limits = Limits { max_stage_documents: 1000, ..Limits::default() };
    // Doubles an array 40 times: far beyond any budget.
    let e = Expr::parse(
        &json!({"$reduce": {"input": {"$range": [0, 40]}, "initialValue": [1], "in": {"$concatArrays": ["$$value", "$$value"]}}}),
        &limits,
    )
    .unwrap();
    assert!(matches!(e.eval(&json!({})), Err(QueryError::TooLarge { .. })));
    let r = Expr::parse(&json!({"$range": [0, i64::MAX]}), &limits).unwrap();
    assert!(matches!(r.eval(&json!({})), Err(QueryError::TooLarge { .. })));
}
