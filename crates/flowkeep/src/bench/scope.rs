//! `flowkeep bench scope`: what an ACL scope costs a read. One store, 100k documents (by default) of which
//! 1% carry an ACL entry granting read to a role a plain user holds (every document grants admins full
//! control). The same reads run unscoped (`Scope::system()`, what admins get) and scoped (the plain
//! user's scope, built the production way: `Caller::resolve` over the role documents, then
//! `flowkeep_core::scope::store_scope`), in one run:
//!
//! * a point read by `_id` of a readable document;
//! * an indexed equality returning 100 documents. The readable 1% share their indexed values (ten values,
//!   100 documents each, every one readable), so both sides return the same 100 documents.
//!
//! Target (issue 3, item 10): scoped at most 1.3× unscoped.

use flowkeep_core::scope::store_scope;
use flowkeep_model::Rights;
use flowkeep_security::{wellknown, Caller, RoleGraph};
use flowkeep_store::{FindOptions, IndexOptions, Scope, SqliteStore};
use serde_json::{json, Value};
use std::path::PathBuf;

use super::store::{measure, Lcg, Stats};

/// Options of `flowkeep bench scope`.
#[derive(clap::Args, Debug)]
pub struct ScopeBenchArgs {
    /// Documents loaded before measuring (1% of them readable by the plain user).
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    /// Measured iterations per operation (default: 20000 point reads, 2000 indexed queries).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Directory for the database file (kept afterwards, for `EXPLAIN QUERY PLAN` by hand); default: a
    /// temporary directory, removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const COLLECTION: &str = "bench_scope";
const READERS_ROLE: &str = "bench-readers";
const PLAIN_USER: &str = "bench-plain-user";
/// One document in `READABLE_EVERY` is readable by the plain user.
const READABLE_EVERY: usize = 100;
/// Documents per indexed value.
const PER_GROUP: usize = 100;

/// The indexed value of document `i`: readable documents fill groups `0..readable/100`, the others the
/// groups after those, 100 documents per group either way.
fn group_of(i: usize, readable_groups: usize) -> i64 {
    if i.is_multiple_of(READABLE_EVERY) {
        ((i / READABLE_EVERY) / PER_GROUP) as i64
    } else {
        let k = i - i / READABLE_EVERY - 1; // index among the unreadable documents
        (readable_groups + k / PER_GROUP) as i64
    }
}

fn document(i: usize, readable_groups: usize) -> Value {
    let mut acl = vec![json!({"_id": wellknown::ADMINS, "name": "admins", "rights": 65535})];
    if i.is_multiple_of(READABLE_EVERY) {
        acl.push(json!({"_id": READERS_ROLE, "name": "bench readers", "rights": 2}));
    }
    json!({
        "_id": format!("doc{i:09}"),
        "name": format!("document number {i}"),
        "group": group_of(i, readable_groups),
        "value": i as i64,
        "text": "The quick brown fox jumps over the lazy dog; a little payload to make documents realistic.",
        "_acl": acl,
    })
}

/// The plain user's caller: a member of the readers role (and implicitly of `users`).
fn plain_caller() -> anyhow::Result<Caller> {
    let roles = [
        json!({"_id": READERS_ROLE, "_type": "role", "name": "bench readers", "members": [{"_id": PLAIN_USER}]}),
        json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": []}),
    ];
    let graph = RoleGraph::from_role_docs(&roles);
    let user = json!({"_id": PLAIN_USER, "_type": "user", "username": "bench-plain", "name": "plain user"});
    Caller::resolve(&user, &graph).map_err(|e| anyhow::anyhow!("resolving the plain user: {e}"))
}

struct Row {
    op: &'static str,
    unscoped: Stats,
    scoped: Stats,
}

/// Runs the scope benchmark and prints a Markdown table.
pub fn run(args: &ScopeBenchArgs) -> anyhow::Result<()> {
    let (dir, _temp) = super::work_dir(args.dir.as_ref())?;
    let path = dir.join("bench-scope.db");
    super::remove_db(&path);
    let n = args.docs.max(READABLE_EVERY * PER_GROUP);
    let readable: Vec<usize> = (0..n).step_by(READABLE_EVERY).collect();
    let readable_groups = readable.len().div_ceil(PER_GROUP);
    // Only whole groups of readable documents are queried.
    let full_groups = readable.len() / PER_GROUP;
    let iters = |default: usize| args.iterations.unwrap_or(default).max(1);
    let warm = |iterations: usize| (iterations / 10).max(1);

    eprintln!("loading {n} documents into {} …", path.display());
    let store = SqliteStore::open(&path)?;
    store.create_index(COLLECTION, &json!({"group": 1}), &IndexOptions::default())?;
    for start in (0..n).step_by(1000) {
        let batch: Vec<Value> = (start..(start + 1000).min(n)).map(|i| document(i, readable_groups)).collect();
        store.insert_many(COLLECTION, batch)?;
    }

    // Reopen, as a running server would be: closing the last connection checkpoints the write-ahead log
    // the load left behind, so reads measure the database file rather than WAL lookups for every page.
    drop(store);
    let store = SqliteStore::open(&path)?;

    let caller = plain_caller()?;
    let scoped = store_scope(&caller, Rights::READ);
    anyhow::ensure!(!scoped.is_system(), "the plain user must get an ACL scope");
    let unscoped = Scope::system();
    let none = FindOptions::default();
    let mut rows = Vec::new();

    // Sanity: the plain user sees exactly the readable 1%.
    let visible = store.count(COLLECTION, &scoped, &json!({}))?;
    anyhow::ensure!(visible == readable.len() as u64, "plain user sees {visible}, expected {}", readable.len());

    // Point read by _id of a readable document (the same ids on both sides).
    let it = iters(20_000);
    let point = |scope: &Scope, seed: u64| {
        let mut rng = Lcg(seed);
        measure(warm(it), it, |_| {
            let id = format!("doc{:09}", readable[rng.below(readable.len())]);
            let doc = store.find_one(COLLECTION, scope, &json!({"_id": id}), None)?;
            anyhow::ensure!(doc.is_some(), "point read found nothing");
            Ok(())
        })
    };
    // Alternate the two sides once so neither benefits from running second.
    let _ = point(&scoped, 9)?;
    let u = point(&unscoped, 1)?;
    let s = point(&scoped, 1)?;
    rows.push(Row { op: "point read by `_id`", unscoped: u, scoped: s });

    // Indexed equality returning the 100 documents of a readable group.
    let it = iters(2_000);
    let query = |scope: &Scope, seed: u64| {
        let mut rng = Lcg(seed);
        measure(warm(it), it, |_| {
            let g = rng.below(full_groups) as i64;
            let docs = store.find(COLLECTION, scope, &json!({"group": g}), &none)?;
            anyhow::ensure!(docs.len() == PER_GROUP, "indexed equality returned {}", docs.len());
            Ok(())
        })
    };
    let _ = query(&scoped, 9)?;
    let u = query(&unscoped, 2)?;
    let s = query(&scoped, 2)?;
    rows.push(Row { op: "indexed equality (100 of the docs)", unscoped: u, scoped: s });

    println!(
        "Scope benchmark: {n} documents, {}% readable by a plain user, {} (times in µs; ratio = scoped mean / unscoped mean)\n",
        100 / READABLE_EVERY,
        if cfg!(debug_assertions) { "DEBUG build (use --release for real figures)" } else { "release build" }
    );
    println!("| op | unscoped mean | unscoped p50 / p99 | scoped mean | scoped p50 / p99 | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {:.1} | {:.1} / {:.1} | {:.1} | {:.1} / {:.1} | {:.2} |",
            row.op,
            row.unscoped.mean,
            row.unscoped.p50,
            row.unscoped.p99,
            row.scoped.mean,
            row.scoped.p50,
            row.scoped.p99,
            row.scoped.mean / row.unscoped.mean.max(f64::MIN_POSITIVE),
        );
    }
    let explain = |scope: &Scope, filter: Value| -> anyhow::Result<Vec<String>> {
        let plan = store.explain_find(COLLECTION, scope, &filter, &none)?;
        Ok(plan["queryPlan"]
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r["detail"].as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    };
    println!("\nScoped query plans (SQLite `EXPLAIN QUERY PLAN`):\n");
    println!("* point read: {}", explain(&scoped, json!({"_id": "doc000000100"}))?.join("; "));
    println!("* indexed equality: {}", explain(&scoped, json!({"group": 0}))?.join("; "));
    drop(store);
    Ok(())
}
