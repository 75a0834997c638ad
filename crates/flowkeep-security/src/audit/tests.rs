//! Tests of the audit chain: clean chains, each kind of tampering, checkpoints, canonical JSON, and a
//! property test that the problems list is exact.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn chain() -> AuditChain {
    AuditChain::new(AuditKey::new([7; 32]))
}

fn ts(i: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_767_225_600_000 + i as i64 * 1_000).unwrap()
}

fn draft(i: u64) -> AuditDraft {
    let kinds = [
        AuditKind::LoginSuccess,
        AuditKind::LoginFailed,
        AuditKind::Impersonate,
        AuditKind::TokenIssued,
        AuditKind::AclChanged,
        AuditKind::CollectionCreated,
    ];
    let mut d = AuditDraft::new(kinds[(i as usize) % kinds.len()].clone(), ts(i));
    d.actor = Actor {
        id: Some(format!("user{i}")),
        name: Some(format!("name {i}")),
        impostor: i.is_multiple_of(3).then(|| Principal { id: Some("admin".into()), name: None }),
    };
    d.target = Target { collection: Some("users".into()), id: Some(format!("t{i}")), name: None };
    d.client = Client { agent: Some("openiap-client".into()), version: Some("0.0.40".into()) };
    d.address = Some("10.0.0.1".into());
    d.reason = (i % 2 == 1).then(|| "wrong password".to_owned());
    d.details = if i.is_multiple_of(4) { json!({"n": i, "ratio": 0.5, "tags": ["a", "b"]}) } else { Value::Null };
    d
}

fn build(c: &AuditChain, n: u64) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    for i in 1..=n {
        let e = c.append(out.last(), draft(i)).unwrap();
        out.push(e);
    }
    out
}

#[test]
fn append_fills_the_chain_fields() {
    let c = chain();
    let v = build(&c, 3);
    assert_eq!(v.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(v[0].prev, GENESIS);
    assert_eq!(v[1].prev, v[0].hash);
    assert_eq!(v[2].prev, v[1].hash);
    assert_eq!(v[0].hash.len(), 64);
    assert_eq!(v[0].ts, "2026-01-01T00:00:01.000Z");
    assert!(c.is_authentic(&v[1]));
}

#[test]
fn a_clean_chain_verifies() {
    let c = chain();
    assert_eq!(c.verify(&[]), VerifyReport { checked: 0, problems: vec![] });
    let v = build(&c, 12);
    let report = c.verify(&v);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 12);
    let head = Head { seq: 12, hash: v[11].hash.clone() };
    assert!(c.verify_with(&v, &VerifyOptions { expected_head: Some(head) }).is_ok());
}

#[test]
fn the_hash_survives_a_store_round_trip() {
    let c = chain();
    let mut d = draft(4);
    d.details = json!({"z": 1.0, "a": {"y": [1, 2.50, -0.0], "b": "é\u{1}\n"}});
    let e = c.append(None, d).unwrap();
    // Stored as a document with store fields added, keys reordered, and 1.0 read back as 1.
    let mut stored = serde_json::to_value(&e).unwrap();
    stored["_id"] = json!("abc");
    stored["_created"] = json!("2026-01-01T00:00:04.000Z");
    stored["details"] = json!({"a": {"b": "é\u{1}\n", "y": [1, 2.5, 0]}, "z": 1});
    let back: AuditEntry = serde_json::from_value(stored).unwrap();
    assert!(c.is_authentic(&back));
    assert!(c.verify(&[back]).is_ok());
}

#[test]
fn deleting_a_middle_entry_is_reported() {
    let c = chain();
    let mut v = build(&c, 6);
    v.remove(3);
    assert_eq!(c.verify(&v).problems, [Problem::Removed { first: 4, last: 4 }]);
    v.remove(3);
    assert_eq!(c.verify(&v).problems, [Problem::Removed { first: 4, last: 5 }]);
}

#[test]
fn deleting_the_first_entries_is_reported() {
    let c = chain();
    let mut v = build(&c, 5);
    v.drain(..2);
    assert_eq!(c.verify(&v).problems, [Problem::Removed { first: 1, last: 2 }]);
}

#[test]
fn swapping_entries_is_reported() {
    let c = chain();
    let mut v = build(&c, 6);
    v.swap(2, 3);
    assert_eq!(c.verify(&v).problems, [Problem::Reordered { seq: 3, after: 4 }]);
    let mut v = build(&c, 6);
    v.swap(1, 4);
    // Stored order 1 5 3 4 2 6: 3 comes after 5 and 2 after 4.
    assert_eq!(
        c.verify(&v).problems,
        [Problem::Reordered { seq: 2, after: 4 }, Problem::Reordered { seq: 3, after: 5 }]
    );
}

#[test]
fn editing_a_field_is_reported() {
    let c = chain();
    let edits: [fn(&mut AuditEntry); 7] = [
        |e| e.reason = Some("nothing to see".into()),
        |e| e.actor.name = Some("someone else".into()),
        |e| e.actor.impostor = None,
        |e| e.kind = AuditKind::LoginSuccess,
        |e| e.ts = "2020-01-01T00:00:00.000Z".into(),
        |e| e.details = json!({"n": 99}),
        |e| e.address = None,
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut v = build(&c, 6);
        let before = v[3].clone();
        edit(&mut v[3]);
        if v[3] == before {
            v[3].target.name = Some("changed".into());
        }
        assert_eq!(c.verify(&v).problems, [Problem::Altered { seq: 4 }], "edit {i}");
    }
}

#[test]
fn editing_prev_or_seq_or_hash_is_reported() {
    let c = chain();
    let mut v = build(&c, 5);
    v[2].prev = v[0].hash.clone();
    assert_eq!(c.verify(&v).problems, [Problem::Altered { seq: 3 }]);

    let mut v = build(&c, 5);
    v[2].hash = v[1].hash.clone();
    assert_eq!(c.verify(&v).problems, [Problem::Altered { seq: 3 }]);

    // Renumbering to hide a deletion: every renumbered entry is altered.
    let mut v = build(&c, 5);
    v.remove(2);
    v[2].seq = 3;
    v[3].seq = 4;
    assert_eq!(c.verify(&v).problems, [Problem::Altered { seq: 3 }, Problem::Altered { seq: 4 }]);
}

#[test]
fn rehashing_with_a_wrong_key_is_reported() {
    let c = chain();
    let forger = AuditChain::new(AuditKey::new([8; 32]));
    let mut v = build(&c, 5);
    v[1].reason = Some("forged".into());
    v[1].hash = hex::encode(forger.mac(&v[1]).unwrap().finalize().into_bytes());
    assert_eq!(c.verify(&v).problems, [Problem::Altered { seq: 2 }]);
    // A whole chain rebuilt with another key: every entry is altered, nothing else reported.
    let rebuilt = build(&forger, 4);
    assert_eq!(c.verify(&rebuilt).problems, (1..=4).map(|seq| Problem::Altered { seq }).collect::<Vec<_>>());
}

#[test]
fn a_keyholder_edit_breaks_the_next_link() {
    let c = chain();
    let mut v = build(&c, 5);
    v[1].reason = Some("rewritten".into());
    v[1].hash = hex::encode(c.mac(&v[1]).unwrap().finalize().into_bytes());
    assert_eq!(c.verify(&v).problems, [Problem::BrokenLink { seq: 3 }]);
}

#[test]
fn duplicates_and_truncation() {
    let c = chain();
    let mut v = build(&c, 4);
    v.insert(2, v[1].clone());
    assert_eq!(c.verify(&v).problems, [Problem::Duplicate { seq: 2 }]);

    let v = build(&c, 6);
    let head = Head { seq: 6, hash: v[5].hash.clone() };
    let options = VerifyOptions { expected_head: Some(head) };
    assert!(c.verify(&v[..4]).is_ok(), "a removed tail is invisible without a head");
    assert_eq!(c.verify_with(&v[..4], &options).problems, [Problem::Truncated { last_seq: 4, expected: 6 }]);
    assert_eq!(c.verify_with(&[], &options).problems, [Problem::Truncated { last_seq: 0, expected: 6 }]);
    let other = build(&AuditChain::new(AuditKey::new([1; 32])), 6);
    let mut mixed = v[..5].to_vec();
    mixed.push(other[5].clone());
    assert_eq!(
        c.verify_with(&mixed, &options).problems,
        [Problem::Altered { seq: 6 }, Problem::HeadMismatch { seq: 6 }]
    );
}

#[test]
fn a_chain_that_starts_at_a_checkpoint_verifies() {
    let c = chain();
    let mut v = build(&c, 5);
    // Retention removes everything up to the head: the checkpoint records entry 5 and is the new start.
    let cp = c.checkpoint(&v[4], &v[4], ts(6)).unwrap();
    assert_eq!((cp.seq, cp.kind.clone()), (6, AuditKind::Checkpoint));
    assert_eq!(cp.checkpoint, Some(CheckpointMark { seq: 5, hash: v[4].hash.clone() }));
    v.push(cp);
    let after = c.append(v.last(), draft(7)).unwrap();
    v.push(after);
    assert!(c.verify(&v).is_ok());
    let retained = v.split_off(5);
    assert_eq!(retained[0].seq, 6);
    let report = c.verify(&retained);
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn retention_behind_a_checkpoint_later_in_the_chain() {
    let c = chain();
    let mut v = build(&c, 8);
    // Remove entries 1..=3; the checkpoint is appended at the head (seq 9).
    let cp = c.checkpoint(&v[7], &v[2], ts(9)).unwrap();
    v.push(cp);
    v.push(c.append(v.last(), draft(10)).unwrap());
    let full = v.clone();

    let retained = v.split_off(3);
    assert!(c.verify(&retained).is_ok(), "{:?}", c.verify(&retained));
    // A deletion still in progress (only entry 1 removed so far) is fine.
    assert!(c.verify(&full[1..]).is_ok());
    // Deleting more than the checkpoint allows is reported.
    assert_eq!(c.verify(&full[5..]).problems, [Problem::Removed { first: 4, last: 5 }]);
    // A forged checkpoint (without the key) accounts for nothing.
    let mut forged = full[5..].to_vec();
    let last = forged.len() - 1;
    forged[last].kind = AuditKind::Checkpoint;
    forged[last].checkpoint = Some(CheckpointMark { seq: 5, hash: full[4].hash.clone() });
    assert_eq!(c.verify(&forged).problems, [Problem::Removed { first: 4, last: 5 }, Problem::Altered { seq: 10 }]);
    // Once the checkpoint itself is gone, the start is unaccounted for.
    assert_eq!(c.verify(&full[3..8]).problems, [Problem::Removed { first: 1, last: 3 }]);
    // A checkpoint cannot record an entry newer than itself.
    assert!(c.checkpoint(&full[2], &full[5], ts(1)).is_err());
}

#[test]
fn kinds_are_snake_case_and_unknown_kinds_survive() {
    assert_eq!(serde_json::to_value(AuditKind::ImpersonateFailed).unwrap(), json!("impersonate_failed"));
    assert_eq!(serde_json::to_value(AuditKind::LoginSuccess).unwrap(), json!("login_success"));
    let k: AuditKind = serde_json::from_value(json!("collection_dropped")).unwrap();
    assert_eq!(k, AuditKind::CollectionDropped);
    let k: AuditKind = serde_json::from_value(json!("quantum_event")).unwrap();
    assert_eq!(k, AuditKind::Other("quantum_event".into()));
    assert_eq!(serde_json::to_value(&k).unwrap(), json!("quantum_event"));
    assert_eq!(AuditKind::LoginFailed.legacy_type(), Some("signin"));
    assert_eq!(AuditKind::AclChanged.legacy_type(), None);
    // An entry of an unknown kind still verifies.
    let c = chain();
    let e = c.append(None, AuditDraft::new(AuditKind::Other("quantum_event".into()), ts(1))).unwrap();
    let back: AuditEntry = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
    assert!(c.is_authentic(&back));
}

fn canon(v: Value) -> String {
    let mut out = Vec::new();
    canonical_json(&v, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn canonical_json_follows_rfc_8785() {
    assert_eq!(canon(json!({"b": 1, "a": [true, null, "x"], "A": {}})), r#"{"A":{},"a":[true,null,"x"],"b":1}"#);
    // Keys sort by UTF-16 code units: U+FB33 (one unit) sorts after U+1D11E (a surrogate pair D834 DD1E).
    assert_eq!(canon(json!({"\u{fb33}": 1, "\u{1d11e}": 2})), "{\"\u{1d11e}\":2,\"\u{fb33}\":1}");
    assert_eq!(canon(json!("\u{1}\u{1f}\"\\/\n\u{7f}é")), "\"\\u0001\\u001f\\\"\\\\/\\n\u{7f}é\"");
    // Numbers as ECMAScript writes them (examples from RFC 8785 appendix B).
    for (x, s) in [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (0.000001234, "0.000001234"),
        (1.234e-7, "1.234e-7"),
    ] {
        assert_eq!(canon(json!(x)), s, "{x:e}");
    }
    assert_eq!(canon(json!(u64::MAX)), "18446744073709551615");
    assert_eq!(canon(json!(-42)), "-42");
}

/// One way to tamper with a chain, and the exact problems it must produce.
#[derive(Debug, Clone)]
enum Tamper {
    None,
    Delete(usize),
    SwapAdjacent(usize),
    EditReason(usize),
    EditPrev(usize),
    RehashWrongKey(usize),
    RehashRightKey(usize),
    TruncateTail(usize),
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::None),
        any::<usize>().prop_map(Tamper::Delete),
        any::<usize>().prop_map(Tamper::SwapAdjacent),
        any::<usize>().prop_map(Tamper::EditReason),
        any::<usize>().prop_map(Tamper::EditPrev),
        any::<usize>().prop_map(Tamper::RehashWrongKey),
        any::<usize>().prop_map(Tamper::RehashRightKey),
        any::<usize>().prop_map(Tamper::TruncateTail),
    ]
}

fn random_draft() -> impl Strategy<Value = AuditDraft> {
    (
        0u8..8,
        0i64..2_000_000_000_000,
        proptest::option::of("[a-z]{0,6}"),
        proptest::option::of("[ -~]{0,12}"),
        proptest::option::of("[a-z0-9]{1,6}"),
        prop_oneof![Just(Value::Null), any::<i32>().prop_map(|n| json!({"n": n})), "[a-z]{0,5}".prop_map(Value::from)],
    )
        .prop_map(|(k, ms, name, reason, impostor, details)| {
            let kinds = [
                AuditKind::LoginSuccess,
                AuditKind::LoginFailed,
                AuditKind::Impersonate,
                AuditKind::ImpersonateFailed,
                AuditKind::TokenIssued,
                AuditKind::PasswordChanged,
                AuditKind::MembershipChanged,
                AuditKind::CollectionDropped,
            ];
            let mut d = AuditDraft::new(kinds[k as usize].clone(), Utc.timestamp_millis_opt(ms).unwrap());
            d.actor.name = name;
            d.actor.impostor = impostor.map(|id| Principal { id: Some(id), name: None });
            d.reason = reason;
            d.details = details;
            d
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn problems_are_exact(drafts in proptest::collection::vec(random_draft(), 1..24), tamper in tamper_strategy()) {
        let c = chain();
        let mut v: Vec<AuditEntry> = Vec::new();
        for d in drafts {
            let e = c.append(v.last(), d).unwrap();
            v.push(e);
        }
        let n = v.len();
        let head = Head { seq: n as u64, hash: v[n - 1].hash.clone() };
        let seq = |i: usize| i as u64 + 1;
        let mut with_head = false;
        let expected: Vec<Problem> = match tamper {
            Tamper::None => vec![],
            Tamper::Delete(i) => {
                let i = i % n;
                v.remove(i);
                if i + 1 == n { vec![] } else { vec![Problem::Removed { first: seq(i), last: seq(i) }] }
            }
            Tamper::SwapAdjacent(i) if n >= 2 => {
                let i = i % (n - 1);
                v.swap(i, i + 1);
                vec![Problem::Reordered { seq: seq(i), after: seq(i + 1) }]
            }
            Tamper::SwapAdjacent(_) => vec![],
            Tamper::EditReason(i) => {
                let i = i % n;
                v[i].reason = Some(format!("{}!", v[i].reason.clone().unwrap_or_default()));
                vec![Problem::Altered { seq: seq(i) }]
            }
            Tamper::EditPrev(i) => {
                let i = i % n;
                v[i].prev = format!("{}0", &v[i].prev[1..]);
                if v[i].prev == GENESIS { v[i].prev = "1".repeat(64); }
                vec![Problem::Altered { seq: seq(i) }]
            }
            Tamper::RehashWrongKey(i) => {
                let i = i % n;
                v[i].reason = Some("forged".into());
                let forger = AuditChain::new(AuditKey::new([8; 32]));
                v[i].hash = hex::encode(forger.mac(&v[i]).unwrap().finalize().into_bytes());
                vec![Problem::Altered { seq: seq(i) }]
            }
            Tamper::RehashRightKey(i) => {
                let i = i % n;
                v[i].reason = Some(format!("{}?", v[i].reason.clone().unwrap_or_default()));
                v[i].hash = hex::encode(c.mac(&v[i]).unwrap().finalize().into_bytes());
                with_head = true;
                if i + 1 < n { vec![Problem::BrokenLink { seq: seq(i + 1) }] } else { vec![Problem::HeadMismatch { seq: seq(i) }] }
            }
            Tamper::TruncateTail(k) => {
                let keep = k % n;
                v.truncate(keep);
                with_head = true;
                if keep == n { vec![] } else { vec![Problem::Truncated { last_seq: keep as u64, expected: n as u64 }] }
            }
        };
        let options = VerifyOptions { expected_head: with_head.then_some(head) };
        let report = c.verify_with(&v, &options);
        prop_assert_eq!(report.checked, v.len());
        prop_assert_eq!(report.problems, expected);
    }
}
