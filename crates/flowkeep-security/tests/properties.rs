//! Property tests of the security core against oracles written separately from the code under test:
//! `allows` against a bit-by-bit evaluation, `normalize_acl` against the guarantees it promises (admins
//! keep full control, the creator gets every right it did not deny itself, nobody else's access changes
//! beyond merging one principal's entries),
//! the legacy rights decoder against an independent encoder, and the role closure against the reference's
//! "add roles until nothing changes" fixpoint.

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use flowkeep_security::acl::{acl_to_value, legacy_rights};
use flowkeep_security::wellknown::{ADMINS, USERS};
use flowkeep_security::{
    allows, normalize_acl, parse_acl, parse_stored_acl, Ace, Caller, Creator, NormalizeOptions, Rights, RoleGraph,
    RoleGraphOptions, ScopeSpec, SecurityError, WriteKind,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const UNIVERSE: [&str; 7] = ["u1", "u2", "r1", "r2", "r3", USERS, ADMINS];

/// The oracle: walk the rights bit by bit. Granted iff one allowing entry of a listed principal has every
/// requested bit; refused if any denying entry of a listed principal has any requested bit.
fn oracle(principals: &[String], acl: &[Ace], right: u32) -> bool {
    let listed = |id: &str| principals.iter().any(|p| p == id);
    let mut granted = false;
    let mut denied = false;
    for ace in acl {
        if !listed(&ace.id) {
            continue;
        }
        let mut has_all = true;
        for bit in 0..32 {
            let wanted = (right >> bit) & 1 == 1;
            let present = (ace.rights.0 >> bit) & 1 == 1;
            if ace.deny && wanted && present {
                denied = true;
            }
            if !ace.deny && wanted && !present {
                has_all = false;
            }
        }
        if !ace.deny && has_all {
            granted = true;
        }
    }
    granted && !denied
}

/// The oracle for a normalised ACL: the allowing entries of one principal count together (merged), so
/// granted iff for one listed principal the union of its allowing entries has every requested bit.
/// Deny entries work as in [`oracle`]. For a single-bit request this is the same as [`oracle`].
fn merged_oracle(principals: &[String], acl: &[Ace], right: u32) -> bool {
    let mut union: HashMap<&str, u32> = HashMap::new();
    for ace in acl.iter().filter(|a| !a.deny && principals.contains(&a.id)) {
        *union.entry(ace.id.as_str()).or_default() |= ace.rights.0;
    }
    let granted = union.values().any(|bits| bits & right == right);
    granted && !acl.iter().any(|a| a.deny && principals.contains(&a.id) && a.rights.0 & right != 0)
}

fn rights_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(65535u32), Just(65527u32), (0u32..32), any::<u16>().prop_map(u32::from), any::<u32>(),]
}

fn mask_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![(0u32..16).prop_map(|b| 1 << b), (1u32..32), Just(65535u32), (1u32..=65535),]
}

fn ace_strategy() -> impl Strategy<Value = Ace> {
    (0..UNIVERSE.len(), rights_strategy(), any::<bool>(), prop::bool::weighted(0.2)).prop_map(
        |(i, rights, deny, named)| Ace {
            id: UNIVERSE[i].to_string(),
            name: if named { format!("n{i}") } else { String::new() },
            rights: Rights(rights),
            deny,
        },
    )
}

fn acl_strategy() -> impl Strategy<Value = Vec<Ace>> {
    prop::collection::vec(ace_strategy(), 0..12)
}

fn principals_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(0..UNIVERSE.len(), 0..5).prop_map(|ix| {
        let set: BTreeSet<usize> = ix.into_iter().collect();
        set.into_iter().map(|i| UNIVERSE[i].to_string()).collect()
    })
}

fn without(principals: Vec<String>, drop: &[&str]) -> Vec<String> {
    principals.into_iter().filter(|p| !drop.contains(&p.as_str())).collect()
}

fn denied_in(principals: &[String], acl: &[Ace], bit: u32) -> bool {
    acl.iter().any(|a| a.deny && a.rights.0 & bit != 0 && principals.contains(&a.id))
}

fn big() -> NormalizeOptions {
    NormalizeOptions { max_ace_count: 1000, force_admins: true }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn allows_equals_oracle(acl in acl_strategy(), principals in principals_strategy(), mask in mask_strategy()) {
        prop_assert_eq!(allows(&principals, &acl, Rights(mask)), oracle(&principals, &acl, mask));
    }

    /// Writing an ACL out and reading it back as the store would gives the same decisions.
    #[test]
    fn stored_form_keeps_decisions(acl in acl_strategy(), principals in principals_strategy(), mask in mask_strategy()) {
        let stored = parse_stored_acl(Some(&acl_to_value(&acl)));
        prop_assert_eq!(&stored, &acl);
        prop_assert_eq!(allows(&principals, &stored, Rights(mask)), oracle(&principals, &acl, mask));
    }

    #[test]
    fn normalize_update_keeps_admins_and_everyone_else(
        acl in acl_strategy(), others in principals_strategy(), mask in mask_strategy()
    ) {
        let out = normalize_acl(&acl, WriteKind::Update, &big()).unwrap();
        prop_assert!(allows(&[ADMINS.to_string()], &out, Rights::FULL_CONTROL));
        let others = without(others, &[ADMINS]);
        prop_assert_eq!(allows(&others, &out, Rights(mask)), merged_oracle(&others, &acl, mask));
        for bit in 0..16 {
            prop_assert_eq!(allows(&others, &out, Rights(1 << bit)), oracle(&others, &acl, 1 << bit));
        }
        // clean: no duplicates per (id, deny), no empty entries, 16 bits only
        let keys: HashSet<(String, bool)> = out.iter().map(|a| (a.id.clone(), a.deny)).collect();
        prop_assert_eq!(keys.len(), out.len());
        prop_assert!(out.iter().all(|a| a.rights.0 != 0 && a.rights.0 <= 65535));
        // idempotent, and survives a JSON round trip
        prop_assert_eq!(&normalize_acl(&out, WriteKind::Update, &big()).unwrap(), &out);
        prop_assert_eq!(&parse_acl(&acl_to_value(&out)).unwrap(), &out);
    }

    #[test]
    fn normalize_insert_gives_creator_every_undenied_right(
        acl in acl_strategy(), roles in principals_strategy(), others in principals_strategy(), mask in mask_strategy()
    ) {
        let mut creator_principals = vec!["u1".to_string()];
        creator_principals.extend(without(roles, &["u1", ADMINS]));
        let creator = Creator { id: "u1", name: "alice", principals: &creator_principals, unrestricted: false };
        match normalize_acl(&acl, WriteKind::Insert(creator), &big()) {
            Ok(out) => {
                prop_assert!(allows(&[ADMINS.to_string()], &out, Rights::FULL_CONTROL));
                for bit in 0..16 {
                    let b = 1u32 << bit;
                    prop_assert_eq!(allows(&creator_principals, &out, Rights(b)), !denied_in(&creator_principals, &acl, b));
                }
                // never takes anything from the creator
                if oracle(&creator_principals, &acl, mask) {
                    prop_assert!(allows(&creator_principals, &out, Rights(mask)));
                }
                // principals other than the creator's user id and admins see no change
                let others = without(others, &["u1", ADMINS]);
                prop_assert_eq!(allows(&others, &out, Rights(mask)), merged_oracle(&others, &acl, mask));
                for bit in 0..16 {
                    prop_assert_eq!(allows(&others, &out, Rights(1 << bit)), oracle(&others, &acl, 1 << bit));
                }
            }
            Err(SecurityError::SelfLockout(_)) => {
                prop_assert!(
                    denied_in(&creator_principals, &acl, Rights::READ.0)
                        || denied_in(&creator_principals, &acl, Rights::UPDATE.0)
                );
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    /// The legacy decoder against an independent encoder: 125 bytes (1000 bits), right bit `b` in byte
    /// `b / 8` at position `b % 8` from the least significant bit, junk allowed above bit 15.
    #[test]
    fn legacy_rights_decode(value in any::<u16>(), junk in prop::collection::vec(any::<u8>(), 123)) {
        let mut bits = vec![false; 1000];
        for (b, slot) in bits.iter_mut().enumerate().take(16) {
            *slot = (value >> b) & 1 == 1;
        }
        for (i, byte) in junk.iter().enumerate() {
            for k in 0..8 {
                bits[16 + i * 8 + k] = (byte >> k) & 1 == 1;
            }
        }
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|chunk| chunk.iter().enumerate().map(|(k, on)| if *on { 1u8 << k } else { 0 }).sum())
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        prop_assert_eq!(legacy_rights(&b64).unwrap(), Rights(u32::from(value)));
        let parsed = parse_acl(&json!([{"_id": "x", "rights": b64}])).unwrap();
        prop_assert_eq!(parsed[0].rights, Rights(u32::from(value)));
    }
}

/// The reference's closure (§2.2): start from the direct memberships plus `users`, then keep adding any
/// role whose members contain one already held, until nothing changes; with a depth limit, only `depth`
/// rounds of that.
fn fixpoint(edges: &[(String, String)], user: &str, implicit_users: bool, depth: usize) -> BTreeSet<String> {
    let mut held: BTreeSet<String> =
        edges.iter().filter(|(m, _)| m == user).map(|(_, r)| r.clone()).filter(|r| r != user).collect();
    if implicit_users {
        held.insert(USERS.to_string());
    }
    for _ in 1..depth {
        let more: Vec<String> = edges
            .iter()
            .filter(|(m, r)| held.contains(m) && !held.contains(r) && r != user)
            .map(|(_, r)| r.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        held.extend(more);
    }
    held
}

fn graph_strategy() -> impl Strategy<Value = Vec<(usize, usize)>> {
    // members and roles drawn from 10 nodes: n0 is the user, the rest roles (USERS among them)
    prop::collection::vec((0usize..10, 1usize..10), 0..30)
}

fn node(i: usize) -> String {
    match i {
        0 => "n0".to_string(),
        9 => USERS.to_string(),
        i => format!("role{i}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn closure_equals_fixpoint(pairs in graph_strategy(), depth in 1usize..8, implicit in any::<bool>()) {
        let edges: Vec<(String, String)> = pairs.iter().map(|(m, r)| (node(*m), node(*r))).collect();
        let mut members: HashMap<String, Vec<Value>> = HashMap::new();
        for (m, r) in &edges {
            members.entry(r.clone()).or_default().push(json!({"_id": m}));
        }
        let docs: Vec<Value> = members
            .iter()
            .map(|(r, ms)| json!({"_id": r, "_type": "role", "name": format!("name-{r}"), "members": ms}))
            .collect();
        let graph = RoleGraph::with_options(&docs, RoleGraphOptions { max_depth: depth });
        let got = graph.effective_roles("n0", implicit);
        let got_ids: BTreeSet<String> = got.roles.iter().map(|r| r.id.clone()).collect();
        prop_assert_eq!(got_ids.len(), got.roles.len(), "no duplicates");
        prop_assert_eq!(&got_ids, &fixpoint(&edges, "n0", implicit, depth));
        let unlimited = fixpoint(&edges, "n0", implicit, 100);
        prop_assert_eq!(got.truncated, got_ids != unlimited);
        let names: Vec<&str> = got.roles.iter().map(|r| r.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        prop_assert_eq!(names, sorted);
    }

    /// A resolved caller's in-memory check equals the scope it hands the store, evaluated by `allows`.
    #[test]
    fn caller_can_matches_its_scope(pairs in graph_strategy(), acl in acl_strategy(), mask in mask_strategy()) {
        let mut members: HashMap<String, Vec<Value>> = HashMap::new();
        for (m, r) in &pairs {
            let role = if *r == 9 { ADMINS.to_string() } else { node(*r) };
            members.entry(role).or_default().push(json!({"_id": node(*m)}));
        }
        let docs: Vec<Value> =
            members.iter().map(|(r, ms)| json!({"_id": r, "_type": "role", "members": ms})).collect();
        let graph = RoleGraph::from_role_docs(&docs);
        let caller = Caller::resolve(&json!({"_id": "n0", "_type": "user", "username": "n0"}), &graph).unwrap();
        let can = caller.can(&acl, Rights(mask));
        match caller.scope_for(Rights(mask)) {
            ScopeSpec::Unrestricted => prop_assert!(caller.is_admin() && can),
            ScopeSpec::Principals { principals, rights } => {
                prop_assert!(!caller.is_admin());
                prop_assert_eq!(rights, Rights(mask));
                prop_assert_eq!(&principals, &caller.principals().to_vec());
                prop_assert_eq!(can, oracle(&principals, &acl, mask));
            }
        }
    }
}
