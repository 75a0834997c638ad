//! `flowkeep bench scope`: what an ACL scope costs a read. One store, 100k documents (by default) of which
//! 1% carry an ACL entry granting read to a role a plain user holds (every document grants admins full
//! control). The same reads run unscoped (`Scope::system()`, what admins get) and scoped (the plain
//! user's scope, built the production way: `Caller::resolve` over the role documents, then
//! `flowkeep_core::scope::store_scope`), in one run:
//!
//! * a point read by `_id` of a readable document;
//! * an indexed equality returning 100 documents. The readable 1% share their indexed values (ten values,
//!   100 documents each, every one readable), so both sides return the same 100 documents;
//! * the worst case for the scoped side: an indexed equality whose 100 candidates are all unreadable
//!   (unscoped returns them, scoped returns none after checking each one).
//!
//! Target (issue 3, item 10): scoped at most 1.3× unscoped.
//!
//! A shared two-core host drifts by tens of percent over a run, which swamps a 1.3× comparison when one
//! side is measured after the other. So each operation runs in `--rounds` rounds, each measuring both
//! sides back to back (alternating which goes first), and the ratio reported is the median of the rounds'
//! ratios, with its range: drift then hits both sides of a round alike.

use flowkeep_core::scope::store_scope;
use flowkeep_model::Rights;
use flowkeep_security::{wellknown, Caller, RoleGraph};
use flowkeep_store::{FindOptions, IndexOptions, Scope, SqliteStore};
use serde_json::{json, Value};
use std::path::PathBuf;

use super::store::Lcg;
use std::time::Instant;

/// Options of `flowkeep bench scope`.
#[derive(clap::Args, Debug)]
pub struct ScopeBenchArgs {
    /// Documents loaded before measuring (1% of them readable by the plain user).
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    /// Measured iterations per operation (default: 20000 point reads, 2000 indexed queries).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Rounds per operation; each round measures both sides back to back (iterations are split evenly).
    #[arg(long, default_value_t = 9)]
    pub rounds: usize,
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

/// Latency samples (µs) of one side over every round.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1);
        sorted.get(((n as f64 * q).ceil() as usize).saturating_sub(1).min(n - 1)).copied().unwrap_or(0.0)
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }
}

struct Row {
    op: &'static str,
    unscoped: Samples,
    scoped: Samples,
    /// Scoped mean ÷ unscoped mean of each round.
    round_ratios: Vec<f64>,
}

impl Row {
    fn median_ratio(&self) -> f64 {
        let mut r = self.round_ratios.clone();
        r.sort_by(f64::total_cmp);
        match r.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        }
    }
}

/// Runs `op` `warmup` times unmeasured, then `iterations` times measured; returns the samples in µs.
fn sample(warmup: usize, iterations: usize, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    for _ in 0..warmup {
        op()?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        op()?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}

/// Measures `op` on both sides in `rounds` interleaved rounds of `per_round` iterations each.
fn compare(
    op: &'static str,
    rounds: usize,
    per_round: usize,
    scopes: [&Scope; 2],
    mut run: impl FnMut(&Scope, &mut Lcg) -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let mut row = Row { op, unscoped: Samples::default(), scoped: Samples::default(), round_ratios: Vec::new() };
    let warmup = (per_round / 10).max(1);
    for round in 0..rounds {
        // The same request sequence on both sides of a round; unscoped first in even rounds.
        let seed = round as u64 + 1;
        let mut means = [0.0; 2];
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let mut rng = Lcg(seed);
            let samples = sample(warmup, per_round, || run(scopes[side], &mut rng))?;
            means[side] = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
            if side == 0 { &mut row.unscoped } else { &mut row.scoped }.0.extend(samples);
        }
        row.round_ratios.push(means[1] / means[0].max(f64::MIN_POSITIVE));
    }
    Ok(row)
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

    let rounds = args.rounds.max(1);
    let scopes = [&unscoped, &scoped];

    // Point read by _id of a readable document (the same ids on both sides).
    let per_round = iters(20_000).div_ceil(rounds);
    rows.push(compare("point read by `_id`", rounds, per_round, scopes, |scope, rng| {
        let id = format!("doc{:09}", readable[rng.below(readable.len())]);
        let doc = store.find_one(COLLECTION, scope, &json!({"_id": id}), None)?;
        anyhow::ensure!(doc.is_some(), "point read found nothing");
        Ok(())
    })?);

    // Indexed equality returning the 100 documents of a readable group.
    let per_round = iters(2_000).div_ceil(rounds);
    rows.push(compare("indexed equality (100 of the docs)", rounds, per_round, scopes, |scope, rng| {
        let g = rng.below(full_groups) as i64;
        let docs = store.find(COLLECTION, scope, &json!({"group": g}), &none)?;
        anyhow::ensure!(docs.len() == PER_GROUP, "indexed equality returned {}", docs.len());
        Ok(())
    })?);

    // The same over groups nobody but admins may read.
    let unreadable_groups = (n - readable.len()) / PER_GROUP;
    rows.push(compare("indexed equality, no candidate readable", rounds, per_round, scopes, |scope, rng| {
        let g = (readable_groups + rng.below(unreadable_groups)) as i64;
        let docs = store.find(COLLECTION, scope, &json!({"group": g}), &none)?;
        let expected = if scope.is_system() { PER_GROUP } else { 0 };
        anyhow::ensure!(docs.len() == expected, "unreadable group returned {}", docs.len());
        Ok(())
    })?);

    println!(
        "Scope benchmark: {n} documents, {}% readable by a plain user, {} {rounds} interleaved rounds (times in µs over all rounds; ratio = median over rounds of scoped mean / unscoped mean, range in brackets)\n",
        100 / READABLE_EVERY,
        if cfg!(debug_assertions) { "DEBUG build (use --release for real figures)" } else { "release build" }
    );
    println!("| op | unscoped mean | unscoped p50 / p99 | scoped mean | scoped p50 / p99 | ratio (range) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let lo = row.round_ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = row.round_ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "| {} | {:.1} | {:.1} / {:.1} | {:.1} | {:.1} / {:.1} | **{:.2}** ({lo:.2}–{hi:.2}) |",
            row.op,
            row.unscoped.mean(),
            row.unscoped.quantile(0.5),
            row.unscoped.quantile(0.99),
            row.scoped.mean(),
            row.scoped.quantile(0.5),
            row.scoped.quantile(0.99),
            row.median_ratio(),
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
