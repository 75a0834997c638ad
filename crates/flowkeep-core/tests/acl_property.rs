//! The property test at the heart of the security model (issue 3, item 9).
//!
//! Random worlds — users, nested roles (cycles allowed, roles nested under `admins` and `users`), documents
//! with random ACLs (deny entries included) and a second collection for `$lookup` — are loaded into one
//! [`SqliteStore`] (per parallel job two reused pairs of collections, emptied after each world). For every user of the world,
//! plus one admin, the caller is built the production way (`Caller::resolve` over the world's role
//! documents, `flowkeep_core::scope::store_scope`), and `find`, `count`, `distinct`, `aggregate` (leading
//! `$match` and a `$lookup`), `update_many` and `delete_many` go through the `Store` trait. Each result must
//! equal what [`oracle_can`] allows.
//!
//! The oracle is written from scratch here, on purpose: its own fixpoint over memberships (plus the
//! implicit `users` role), its own bit-by-bit ACL evaluation. It does not use `flowkeep_security::allows`,
//! `RoleGraph` or `Scope::admits`.
//!
//! * `FLOWKEEP_ACL_WORLDS`: number of worlds (default 10000).
//! * `FLOWKEEP_ACL_SEED`: base seed (default fixed); world `i` uses seed `base + i`, and a failure prints
//!   the seed and the world, so `FLOWKEEP_ACL_SEED=<seed> FLOWKEEP_ACL_WORLDS=1` replays it.
//! * `FLOWKEEP_ACL_JOBS`: worlds run in parallel (default: twice the number of CPUs).
//!
//! Run: `cargo test -p flowkeep-core --test acl_property -- --nocapture` (prints worlds/s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use flowkeep_core::scope::store_scope;
use flowkeep_model::Rights;
use flowkeep_security::{wellknown, Caller, RoleGraph};
use flowkeep_store::{FindOptions, Scope, SqliteStore, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------

/// SplitMix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() - 1)]
    }
}

/// One world: principals, memberships and two collections.
#[derive(Debug, Clone)]
struct World {
    seed: u64,
    /// User ids; the last one is the admin (a direct member of `admins`).
    users: Vec<String>,
    /// Role documents: `(role id, member ids)`. May include `admins` and `users` as roles with members.
    roles: Vec<(String, Vec<String>)>,
    /// Main collection documents.
    docs: Vec<Value>,
    /// Foreign collection documents (for `$lookup`).
    foreign: Vec<Value>,
}

const ALL_BITS: [i64; 5] = [1, 2, 4, 8, 16];

fn random_rights(rng: &mut Rng) -> i64 {
    match rng.range(0, 9) {
        0 => 65535,
        1 => 0,
        2 => 2,
        3 => 2 | 4 | 8,
        _ => ALL_BITS.iter().filter(|_| rng.chance(1, 2)).fold(0, |acc, b| acc | b),
    }
}

fn random_acl(rng: &mut Rng, principals: &[String]) -> Value {
    // Occasionally no ACL at all, or a non-array one: only admins may touch such documents.
    match rng.range(0, 29) {
        0 => return Value::Null,
        1 => return json!({"_id": principals[0], "rights": 65535}),
        _ => {}
    }
    let n = rng.range(0, 4);
    let entries: Vec<Value> = (0..n)
        .map(|_| {
            let p = rng.pick(principals).clone();
            let rights = random_rights(rng);
            let mut e = json!({"_id": p, "name": "x", "rights": rights});
            match rng.range(0, 5) {
                0 => e["deny"] = json!(true),
                1 => e["deny"] = json!(false),
                _ => {}
            }
            e
        })
        .collect();
    Value::Array(entries)
}

fn with_acl(mut doc: Value, acl: Value) -> Value {
    if !acl.is_null() {
        doc["_acl"] = acl;
    }
    doc
}

fn generate(seed: u64) -> World {
    let mut rng = Rng(seed);
    let n_users = rng.range(2, 6);
    let n_roles = rng.range(1, 6);
    let mut users: Vec<String> = (0..n_users).map(|i| format!("u{i}")).collect();
    users.push("uadmin".to_string());
    let roles_ids: Vec<String> = (0..n_roles).map(|i| format!("r{i}")).collect();
    // Members of ordinary roles: users, other roles (cycles allowed), and now and then `users`.
    let mut member_pool: Vec<String> = users[..n_users].to_vec();
    member_pool.extend(roles_ids.iter().cloned());
    member_pool.push(wellknown::USERS.to_string());
    let mut roles: Vec<(String, Vec<String>)> = roles_ids
        .iter()
        .map(|r| {
            let n = rng.range(0, 3);
            let members = (0..n).map(|_| rng.pick(&member_pool).clone()).collect();
            (r.clone(), members)
        })
        .collect();
    // `admins`: the admin user, and now and then a random role or user (making its members admins).
    let mut admins = vec!["uadmin".to_string()];
    if rng.chance(1, 8) {
        let pool: Vec<String> = users[..n_users].iter().chain(roles_ids.iter()).cloned().collect();
        admins.push(rng.pick(&pool).clone());
    }
    roles.push((wellknown::ADMINS.to_string(), admins));
    // `users` may itself be a member of a role (then every user holds that role) — expressed above by
    // `USERS` in member lists. Now and then, `users` has a role document listing a role (meaningless for
    // membership direction, but it must not confuse anyone).
    if rng.chance(1, 6) {
        roles.push((wellknown::USERS.to_string(), vec![rng.pick(&roles_ids).clone()]));
    }

    let mut principals: Vec<String> = users[..n_users].to_vec();
    principals.extend(roles_ids.iter().cloned());
    principals.push(wellknown::ADMINS.to_string());
    principals.push(wellknown::USERS.to_string());

    let n_docs = rng.range(5, 25);
    let docs = (0..n_docs)
        .map(|i| {
            let base = json!({
                "_id": format!("d{i}"),
                "g": rng.range(0, 3) as i64,
                "n": rng.range(0, 9) as i64,
                "fk": rng.range(0, 4) as i64,
            });
            let acl = random_acl(&mut rng, &principals);
            with_acl(base, acl)
        })
        .collect();
    let n_foreign = rng.range(1, 6);
    let foreign = (0..n_foreign)
        .map(|j| {
            let base = json!({"_id": format!("f{j}"), "k": rng.range(0, 4) as i64});
            let acl = random_acl(&mut rng, &principals);
            with_acl(base, acl)
        })
        .collect();
    World { seed, users, roles, docs, foreign }
}

/// The simple filter shapes the test draws from (all on fields the oracle evaluates itself).
#[derive(Debug, Clone)]
enum Shape {
    All,
    GEq(i64),
    GIn(Vec<i64>),
    NGte(i64),
    NRange(i64, i64),
    IdEq(String),
    IdIn(Vec<String>),
    GAndN(i64, i64),
}

impl Shape {
    fn random(rng: &mut Rng, world: &World) -> Shape {
        let some_id = |rng: &mut Rng| format!("d{}", rng.range(0, world.docs.len()));
        match rng.range(0, 7) {
            0 => Shape::All,
            1 => Shape::GEq(rng.range(0, 3) as i64),
            2 => Shape::GIn((0..rng.range(0, 3)).map(|_| rng.range(0, 3) as i64).collect()),
            3 => Shape::NGte(rng.range(0, 10) as i64),
            4 => {
                let a = rng.range(0, 9) as i64;
                Shape::NRange(a, a + rng.range(0, 4) as i64)
            }
            5 => Shape::IdEq(some_id(rng)),
            6 => Shape::IdIn((0..rng.range(0, 4)).map(|_| some_id(rng)).collect()),
            _ => Shape::GAndN(rng.range(0, 3) as i64, rng.range(0, 9) as i64),
        }
    }

    fn filter(&self) -> Value {
        match self {
            Shape::All => json!({}),
            Shape::GEq(g) => json!({"g": g}),
            Shape::GIn(gs) => json!({"g": {"$in": gs}}),
            Shape::NGte(n) => json!({"n": {"$gte": n}}),
            Shape::NRange(a, b) => json!({"n": {"$gte": a, "$lt": b}}),
            Shape::IdEq(id) => json!({"_id": id}),
            Shape::IdIn(ids) => json!({"_id": {"$in": ids}}),
            Shape::GAndN(g, n) => json!({"g": g, "n": {"$lte": n}}),
        }
    }

    /// The oracle's own evaluation of the filter.
    fn matches(&self, doc: &Value) -> bool {
        let int = |f: &str| doc[f].as_i64().unwrap();
        let id = doc["_id"].as_str().unwrap();
        match self {
            Shape::All => true,
            Shape::GEq(g) => int("g") == *g,
            Shape::GIn(gs) => gs.contains(&int("g")),
            Shape::NGte(n) => int("n") >= *n,
            Shape::NRange(a, b) => int("n") >= *a && int("n") < *b,
            Shape::IdEq(x) => id == x,
            Shape::IdIn(xs) => xs.iter().any(|x| x == id),
            Shape::GAndN(g, n) => int("g") == *g && int("n") <= *n,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The oracle (independent of flowkeep-security and of the store's scope code)
// ---------------------------------------------------------------------------------------------------

/// Every principal `user_id` acts as: itself, `users` (every user here is a non-guest), and every role
/// that lists one of those as a member, to a fixpoint.
fn oracle_principals(user_id: &str, world: &World) -> BTreeSet<String> {
    let mut held: BTreeSet<String> = BTreeSet::new();
    held.insert(user_id.to_string());
    held.insert(wellknown::USERS.to_string());
    loop {
        let before = held.len();
        for (role, members) in &world.roles {
            if members.iter().any(|m| held.contains(m)) {
                held.insert(role.clone());
            }
        }
        if held.len() == before {
            return held;
        }
    }
}

/// May `user_id` use `right` (one bit or several) on `doc`? Admins (holding `admins`, transitively) may
/// do anything; otherwise some non-deny entry of one of the user's principals must carry every bit of
/// `right`, and no deny entry of one of them may carry any of those bits. Entries without a string `_id`
/// or with non-integer rights grant nothing; a missing or non-array `_acl` grants nothing.
fn oracle_can(user_id: &str, world: &World, doc: &Value, right: i64) -> bool {
    let held = oracle_principals(user_id, world);
    if held.contains(wellknown::ADMINS) {
        return true;
    }
    let Some(Value::Array(entries)) = doc.get("_acl") else { return false };
    let mut allowed = false;
    let mut denied = false;
    for entry in entries {
        let Some(p) = entry.get("_id").and_then(Value::as_str) else { continue };
        if !held.contains(p) {
            continue;
        }
        let bits = entry.get("rights").and_then(Value::as_i64).unwrap_or(0);
        let deny = entry.get("deny") == Some(&Value::Bool(true));
        let mut all = true;
        let mut any = false;
        for bit in ALL_BITS.iter().chain([32i64, 64, 128].iter()) {
            if right & bit != 0 {
                if bits & bit != 0 {
                    any = true;
                } else {
                    all = false;
                }
            }
        }
        if deny && any {
            denied = true;
        }
        if !deny && all {
            allowed = true;
        }
    }
    allowed && !denied
}

// ---------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------

fn user_doc(id: &str) -> Value {
    json!({"_id": id, "_type": "user", "username": format!("user-{id}"), "name": id})
}

fn role_docs(world: &World) -> Vec<Value> {
    world
        .roles
        .iter()
        .map(|(id, members)| {
            let members: Vec<Value> = members.iter().map(|m| json!({"_id": m, "name": m})).collect();
            json!({"_id": id, "_type": "role", "name": format!("role-{id}"), "members": members})
        })
        .collect()
}

fn ids(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| d["_id"].as_str().unwrap().to_string()).collect()
}

/// A compact rendering of the world for failure messages.
fn describe(world: &World) -> String {
    let mut s = format!("seed {} (replay: FLOWKEEP_ACL_SEED={} FLOWKEEP_ACL_WORLDS=1)\n", world.seed, world.seed);
    let short = |p: &str| match p {
        wellknown::ADMINS => "admins".to_string(),
        wellknown::USERS => "users".to_string(),
        other => other.to_string(),
    };
    for (role, members) in &world.roles {
        let m: Vec<String> = members.iter().map(|m| short(m)).collect();
        let _ = writeln!(s, "  role {} members {:?}", short(role), m);
    }
    for u in &world.users {
        let p: Vec<String> = oracle_principals(u, world).iter().map(|p| short(p)).collect();
        let _ = writeln!(s, "  user {u} holds {p:?}");
    }
    let acl = |d: &Value| -> String {
        match d.get("_acl") {
            Some(Value::Array(es)) => es
                .iter()
                .map(|e| {
                    format!(
                        "{}{}:{}",
                        if e.get("deny") == Some(&json!(true)) { "!" } else { "" },
                        short(e["_id"].as_str().unwrap_or("?")),
                        e["rights"]
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            Some(other) => format!("(non-array {other})"),
            None => "(none)".into(),
        }
    };
    for d in world.docs.iter().chain(world.foreign.iter()) {
        let mut fields = d.clone();
        fields.as_object_mut().unwrap().remove("_acl");
        let _ = writeln!(s, "  {fields} acl [{}]", acl(d));
    }
    s
}

struct Ctx<'a> {
    store: &'a SqliteStore,
    world: &'a World,
    coll: String,
    fcoll: String,
}

impl Ctx<'_> {
    fn fail(&self, what: &str, user: &str, shape: &Shape, expected: impl std::fmt::Debug, got: impl std::fmt::Debug) {
        panic!(
            "{what} for user {user}, filter {}: expected {expected:?}, got {got:?}\n{}",
            shape.filter(),
            describe(self.world)
        );
    }

    fn expect_ids(&self, user: &str, shape: &Shape, right: i64) -> BTreeSet<String> {
        self.world
            .docs
            .iter()
            .filter(|d| shape.matches(d) && oracle_can(user, self.world, d, right))
            .map(|d| d["_id"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn check_reads(ctx: &Ctx<'_>, rng: &mut Rng, user: &str, caller: &Caller) {
    let world = ctx.world;
    let read = store_scope(caller, Rights::READ);
    let store: &dyn Store = ctx.store;

    // find
    let shape = Shape::random(rng, world);
    let got = store.find(&ctx.coll, &read, &shape.filter(), &FindOptions::default()).await.unwrap();
    let expected = ctx.expect_ids(user, &shape, 2);
    if ids(&got) != expected || got.len() != expected.len() {
        ctx.fail("find", user, &shape, &expected, ids(&got));
    }

    // count
    let shape = Shape::random(rng, world);
    let got = store.count(&ctx.coll, &read, &shape.filter()).await.unwrap();
    let expected = ctx.expect_ids(user, &shape, 2);
    if got != expected.len() as u64 {
        ctx.fail("count", user, &shape, expected.len(), got);
    }

    // distinct
    let shape = Shape::random(rng, world);
    let field = if rng.chance(1, 2) { "n" } else { "g" };
    let got = store.distinct(&ctx.coll, &read, field, &shape.filter()).await.unwrap();
    let got: Vec<i64> = got.iter().map(|v| v.as_i64().unwrap()).collect();
    let expected: Vec<i64> = world
        .docs
        .iter()
        .filter(|d| shape.matches(d) && oracle_can(user, world, d, 2))
        .map(|d| d[field].as_i64().unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if got != expected {
        ctx.fail("distinct", user, &shape, &expected, &got);
    }

    // aggregate: leading $match, then a $lookup into the foreign collection
    let shape = Shape::random(rng, world);
    let pipeline = json!([
        {"$match": shape.filter()},
        {"$lookup": {"from": ctx.fcoll, "localField": "fk", "foreignField": "k", "as": "j"}},
    ]);
    let got = store.aggregate(&ctx.coll, &read, &pipeline).await.unwrap();
    let got: BTreeMap<String, BTreeSet<String>> = got
        .iter()
        .map(|d| {
            let joined = d["j"].as_array().map(|a| ids(a)).unwrap_or_default();
            (d["_id"].as_str().unwrap().to_string(), joined)
        })
        .collect();
    let expected: BTreeMap<String, BTreeSet<String>> = world
        .docs
        .iter()
        .filter(|d| shape.matches(d) && oracle_can(user, world, d, 2))
        .map(|d| {
            let joined = world
                .foreign
                .iter()
                .filter(|f| f["k"] == d["fk"] && oracle_can(user, world, f, 2))
                .map(|f| f["_id"].as_str().unwrap().to_string())
                .collect();
            (d["_id"].as_str().unwrap().to_string(), joined)
        })
        .collect();
    if got != expected {
        ctx.fail("aggregate with $lookup", user, &shape, &expected, &got);
    }
}

async fn run_world(store: &SqliteStore, world: &World, slot: usize) {
    let store_dyn: &dyn Store = store;
    // Two pairs of collections, reused world after world (emptied between worlds): one with an index on
    // `g`, so `g` filters take the hinted (correlated) scope path, one without (`_id` filters always take
    // it). Reusing them keeps the schema and the prepared statements stable, which is what makes ten
    // thousand worlds fit the CI budget.
    let coll = if world.seed.is_multiple_of(2) { format!("acl{slot}_indexed") } else { format!("acl{slot}_plain") };
    let ctx = Ctx { store, world, fcoll: format!("{coll}_foreign"), coll };
    store_dyn.insert_many(&ctx.coll, world.docs.clone()).await.unwrap();
    store_dyn.insert_many(&ctx.fcoll, world.foreign.clone()).await.unwrap();
    let graph = RoleGraph::from_role_docs(&role_docs(world));
    let callers: Vec<(String, Caller)> =
        world.users.iter().map(|u| (u.clone(), Caller::resolve(&user_doc(u), &graph).unwrap())).collect();
    let mut rng = Rng(world.seed ^ 0xA5A5_A5A5_A5A5_A5A5);

    // Root (a system identity, never a login) sees everything.
    let shape = Shape::random(&mut rng, world);
    let root = store_scope(&Caller::system_root(), Rights::READ);
    let got = store_dyn.find(&ctx.coll, &root, &shape.filter(), &FindOptions::default()).await.unwrap();
    let expected: BTreeSet<String> =
        world.docs.iter().filter(|d| shape.matches(d)).map(|d| d["_id"].as_str().unwrap().to_string()).collect();
    if ids(&got) != expected {
        ctx.fail("find as root", "root", &shape, &expected, ids(&got));
    }

    // Reads and updates. Each caller sets its own marker, so updates never interfere with each other.
    let mut update_shapes = Vec::new();
    for (k, (user, caller)) in callers.iter().enumerate() {
        check_reads(&ctx, &mut rng, user, caller).await;
        let shape = Shape::random(&mut rng, world);
        let scope = store_scope(caller, Rights::UPDATE);
        let out = store_dyn
            .update_many(&ctx.coll, &scope, &shape.filter(), &json!({"$set": {format!("m{k}"): true}}))
            .await
            .unwrap();
        let expected = ctx.expect_ids(user, &shape, 4);
        if out.matched != expected.len() as u64 || out.modified != expected.len() as u64 {
            ctx.fail("update_many counts", user, &shape, expected.len(), (out.matched, out.modified));
        }
        update_shapes.push(shape);
    }
    let all = store_dyn.find(&ctx.coll, &Scope::system(), &json!({}), &FindOptions::default()).await.unwrap();
    assert_eq!(all.len(), world.docs.len());
    for (k, (user, _)) in callers.iter().enumerate() {
        let marked: BTreeSet<String> = all
            .iter()
            .filter(|d| d.get(format!("m{k}")).is_some())
            .map(|d| d["_id"].as_str().unwrap().into())
            .collect();
        let expected = ctx.expect_ids(user, &update_shapes[k], 4);
        if marked != expected {
            ctx.fail("update_many changed", user, &update_shapes[k], &expected, &marked);
        }
    }

    // Deletes: exactly the deletable matches go. Re-inserting exactly those proves they were gone (an
    // `_id` still present would be a duplicate); with the count equal, nothing else went.
    for (user, caller) in &callers {
        let shape = Shape::random(&mut rng, world);
        let scope = store_scope(caller, Rights::DELETE);
        let deleted = store_dyn.delete_many(&ctx.coll, &scope, &shape.filter()).await.unwrap();
        let expected = ctx.expect_ids(user, &shape, 8);
        if deleted != expected.len() as u64 {
            ctx.fail("delete_many count", user, &shape, &expected, deleted);
        }
        if !expected.is_empty() {
            let back: Vec<Value> =
                world.docs.iter().filter(|d| expected.contains(d["_id"].as_str().unwrap())).cloned().collect();
            if let Err(e) = store_dyn.insert_many(&ctx.coll, back).await {
                ctx.fail("delete_many removed", user, &shape, &expected, format!("re-insert failed: {e}"));
            }
        }
    }

    for c in [&ctx.coll, &ctx.fcoll] {
        store_dyn.delete_many(c, &Scope::system(), &json!({})).await.unwrap();
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// A store on a RAM-backed directory when there is one (`synchronous=FULL` fsyncs every commit), else a
/// temporary directory.
fn open_store() -> (SqliteStore, Option<tempfile::TempDir>) {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            let store = SqliteStore::open(dir.path().join("acl-property.db")).unwrap();
            return (store, Some(dir));
        }
    }
    (SqliteStore::open_temporary().unwrap(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_operations_equal_the_oracle() {
    let worlds = env_u64("FLOWKEEP_ACL_WORLDS", 10_000) as usize;
    let base = env_u64("FLOWKEEP_ACL_SEED", 0x5EC0_0000);
    // Worlds run in parallel jobs (each with its own collections) on one store: reads use the reader
    // pool concurrently, writes queue for the single writer.
    // Twice the CPUs by default: each job spends much of its time waiting for the blocking pool.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let jobs = env_u64("FLOWKEEP_ACL_JOBS", 2 * cpus).clamp(1, 16) as usize;
    let (store, _dir) = open_store();
    for slot in 0..jobs {
        store.create_index(&format!("acl{slot}_indexed"), &json!({"g": 1}), &Default::default()).unwrap();
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for slot in 0..jobs {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (slot..worlds).step_by(jobs) {
                let world = generate(base.wrapping_add(i as u64));
                run_world(&store, &world, slot).await;
            }
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("acl property: {worlds} worlds in {secs:.1} s ({:.0} worlds/s)", worlds as f64 / secs.max(1e-9));
}

/// The oracle itself, on hand-made cases (so a wrong oracle cannot make the property vacuous).
#[test]
fn the_oracle_agrees_with_hand_made_cases() {
    let world = World {
        seed: 0,
        users: vec!["u0".into(), "u1".into(), "uadmin".into()],
        roles: vec![
            ("r0".into(), vec!["u0".into()]),
            ("r1".into(), vec!["r0".into()]),
            ("r2".into(), vec!["r1".into(), "r2".into()]),
            ("r3".into(), vec![wellknown::USERS.into()]),
            (wellknown::ADMINS.into(), vec!["uadmin".into()]),
        ],
        docs: vec![],
        foreign: vec![],
    };
    let p = oracle_principals("u0", &world);
    for r in ["u0", "r0", "r1", "r2", "r3", wellknown::USERS] {
        assert!(p.contains(r), "{r}");
    }
    assert!(!p.contains(wellknown::ADMINS));
    let doc = json!({"_acl": [
        {"_id": "r2", "rights": 6},
        {"_id": "u1", "rights": 4, "deny": true},
        {"_id": "r3", "rights": 8},
    ]});
    assert!(oracle_can("u0", &world, &doc, 2));
    assert!(oracle_can("u0", &world, &doc, 4));
    assert!(!oracle_can("u0", &world, &doc, 1));
    assert!(!oracle_can("u1", &world, &doc, 2));
    assert!(oracle_can("u1", &world, &doc, 8), "through the implicit users role");
    assert!(!oracle_can("u1", &world, &doc, 4), "deny");
    assert!(oracle_can("uadmin", &world, &json!({}), 8), "admins pass");
    assert!(!oracle_can("u0", &world, &json!({"_acl": {"_id": "u0", "rights": 2}}), 2), "non-array acl");
}
