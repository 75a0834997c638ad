//! `flowkeep bench store`: the embedded SQLite document store against raw rusqlite doing the same work
//! with the same file settings (WAL, `synchronous=FULL`), so the ratio shows what the store's layers
//! (query parsing, pushdown planning, ACL and index side rows, the engine's re-check) cost.
//!
//! The baseline is deliberately fair: a table `(id TEXT PRIMARY KEY, doc TEXT)` with a `json_extract`
//! expression index on the indexed field, results parsed with `serde_json` like the store does.

use flowkeep_model::Rights;
use flowkeep_store::{FindOptions, IndexOptions, Scope, SqliteStore};
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `flowkeep bench store`.
#[derive(clap::Args, Debug)]
pub struct StoreBenchArgs {
    /// Documents loaded before measuring.
    #[arg(long, default_value_t = 100_000)]
    pub docs: usize,
    /// Measured iterations per operation (default: chosen per operation, from 20 to 20000).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Directory for the two database files (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const COLLECTION: &str = "bench";

/// Timings of one operation, in microseconds.
pub(crate) struct Stats {
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
}

impl Stats {
    fn ops_per_sec(&self) -> f64 {
        if self.mean > 0.0 {
            1e6 / self.mean
        } else {
            f64::INFINITY
        }
    }
}

/// Runs `op` `warmup` times unmeasured, then `iterations` times measured one by one.
pub(crate) fn measure(
    warmup: usize,
    iterations: usize,
    mut op: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Stats> {
    for i in 0..warmup {
        op(i)?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let start = Instant::now();
        op(warmup + i)?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len().max(1);
    let pick =
        |q: f64| samples.get(((n as f64 * q).ceil() as usize).saturating_sub(1).min(n - 1)).copied().unwrap_or(0.0);
    Ok(Stats { mean: samples.iter().sum::<f64>() / n as f64, p50: pick(0.50), p99: pick(0.99) })
}

/// A small deterministic generator, so both sides read the same ids in the same order.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// How many distinct values the indexed field has, so an equality returns about 100 documents.
fn groups(docs: usize) -> usize {
    (docs / 100).max(1)
}

fn document(i: usize, groups: usize) -> Value {
    json!({
        "_id": format!("doc{i:09}"),
        "name": format!("document number {i}"),
        "group": (i % groups) as i64,
        "tag": (i % 997) as i64,
        "value": i as i64,
        "created": "2024-05-01T12:00:00.000Z",
        "text": "The quick brown fox jumps over the lazy dog; a little payload to make documents realistic.",
        "_acl": [{"_id": "u1", "name": "user one", "rights": 65535}, {"_id": "r1", "name": "role", "rights": 2}],
    })
}

/// Opens the baseline with the store's file settings.
fn open_raw(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "baseline could not switch to WAL");
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         CREATE TABLE docs (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
         CREATE INDEX docs_group ON docs (json_extract(doc, '$.group'));",
    )?;
    Ok(conn)
}

fn raw_insert_batch(conn: &mut Connection, docs: &[Value]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached("INSERT INTO docs (id, doc) VALUES (?1, ?2)")?;
        for d in docs {
            stmt.execute(params![d["_id"].as_str().unwrap_or_default(), serde_json::to_string(d)?])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn raw_query(conn: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> anyhow::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([param])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(serde_json::from_str::<Value>(row.get_ref(0)?.as_str()?)?);
    }
    Ok(out)
}

/// One row of the result table.
struct Row {
    op: &'static str,
    store: Stats,
    raw: Stats,
}

/// Runs the store benchmark and prints a Markdown table.
pub fn run(args: &StoreBenchArgs) -> anyhow::Result<()> {
    let (dir, _temp) = super::work_dir(args.dir.as_ref())?;
    let (store_path, raw_path) = (dir.join("bench-store.db"), dir.join("bench-raw.db"));
    super::remove_db(&store_path);
    super::remove_db(&raw_path);
    let n = args.docs.max(1);
    let groups = groups(n);
    let iters = |default: usize| args.iterations.unwrap_or(default).max(1);
    let warm = |iterations: usize| (iterations / 10).max(1);

    eprintln!("loading {n} documents into {} and {} …", store_path.display(), raw_path.display());
    let store = SqliteStore::open(&store_path)?;
    store.create_index(COLLECTION, &json!({"group": 1}), &IndexOptions::default())?;
    let mut raw = open_raw(&raw_path)?;
    let all: Vec<Value> = (0..n).map(|i| document(i, groups)).collect();
    let load = Instant::now();
    for chunk in all.chunks(1000) {
        store.insert_many(COLLECTION, chunk.to_vec())?;
    }
    let store_load = load.elapsed();
    let load = Instant::now();
    for chunk in all.chunks(1000) {
        raw_insert_batch(&mut raw, chunk)?;
    }
    let raw_load = load.elapsed();
    drop(all);
    eprintln!("loaded: store {:.2?}, raw {:.2?}", store_load, raw_load);

    let sys = Scope::system();
    let scoped = Scope::acl(["u1", "r9", "r8"], Rights::READ);
    let none = FindOptions::default();
    let mut rows = Vec::new();

    // Point read by _id.
    let it = iters(20_000);
    let mut rng = Lcg(1);
    let s = measure(warm(it), it, |_| {
        let id = format!("doc{:09}", rng.below(n));
        let doc = store.find_one(COLLECTION, &sys, &json!({"_id": id}), None)?;
        anyhow::ensure!(doc.is_some(), "point read found nothing");
        Ok(())
    })?;
    let mut rng = Lcg(1);
    let r = measure(warm(it), it, |_| {
        let id = format!("doc{:09}", rng.below(n));
        let docs = raw_query(&raw, "SELECT doc FROM docs WHERE id = ?1", &id)?;
        anyhow::ensure!(docs.len() == 1, "point read found nothing");
        Ok(())
    })?;
    rows.push(Row { op: "point read by _id", store: s, raw: r });

    // Point read by _id under an ACL scope (the baseline checks the ACL with json_each, as a naive
    // embedded design would).
    let mut rng = Lcg(2);
    let s = measure(warm(it), it, |_| {
        let id = format!("doc{:09}", rng.below(n));
        let doc = store.find_one(COLLECTION, &scoped, &json!({"_id": id}), None)?;
        anyhow::ensure!(doc.is_some(), "scoped point read found nothing");
        Ok(())
    })?;
    let mut rng = Lcg(2);
    let acl_sql = "SELECT doc FROM docs WHERE id = ?1 AND EXISTS (SELECT 1 FROM json_each(doc, '$._acl') a \
                   WHERE a.value ->> '$._id' IN ('u1', 'r9', 'r8') AND (a.value ->> '$.rights' & 2) = 2)";
    let r = measure(warm(it), it, |_| {
        let id = format!("doc{:09}", rng.below(n));
        anyhow::ensure!(raw_query(&raw, acl_sql, &id)?.len() == 1, "scoped point read found nothing");
        Ok(())
    })?;
    rows.push(Row { op: "point read by _id, ACL scope", store: s, raw: r });

    // Indexed equality returning ~100 documents.
    let it = iters(1_000);
    let expected = n / groups;
    let mut rng = Lcg(3);
    let s = measure(warm(it), it, |_| {
        let g = rng.below(groups) as i64;
        let docs = store.find(COLLECTION, &sys, &json!({"group": g}), &none)?;
        anyhow::ensure!(docs.len() >= expected, "indexed equality returned {}", docs.len());
        Ok(())
    })?;
    let mut rng = Lcg(3);
    let r = measure(warm(it), it, |_| {
        let g = rng.below(groups) as i64;
        let docs = raw_query(&raw, "SELECT doc FROM docs WHERE json_extract(doc, '$.group') = ?1", &g)?;
        anyhow::ensure!(docs.len() >= expected, "indexed equality returned {}", docs.len());
        Ok(())
    })?;
    rows.push(Row { op: "indexed equality (~100 docs)", store: s, raw: r });

    // Unindexed filter: a full scan.
    let it = iters(20);
    let mut rng = Lcg(4);
    let s = measure(warm(it), it, |_| {
        let t = rng.below(997) as i64;
        store.find(COLLECTION, &sys, &json!({"tag": t}), &none)?;
        Ok(())
    })?;
    let mut rng = Lcg(4);
    let r = measure(warm(it), it, |_| {
        let t = rng.below(997) as i64;
        raw_query(&raw, "SELECT doc FROM docs WHERE json_extract(doc, '$.tag') = ?1", &t)?;
        Ok(())
    })?;
    rows.push(Row { op: "unindexed filter (full scan)", store: s, raw: r });

    // A durable single insert (one transaction, fsync'd).
    let it = iters(200);
    let mut next = n;
    let s = measure(warm(it), it, |_| {
        next += 1;
        store.insert_one(COLLECTION, document(next, groups))?;
        Ok(())
    })?;
    let mut next = n;
    let r = measure(warm(it), it, |_| {
        next += 1;
        let d = document(next, groups);
        raw.prepare_cached("INSERT INTO docs (id, doc) VALUES (?1, ?2)")?
            .execute(params![d["_id"].as_str().unwrap_or_default(), serde_json::to_string(&d)?])?;
        Ok(())
    })?;
    rows.push(Row { op: "durable single insert", store: s, raw: r });

    // Batched inserts of 1000 documents per transaction.
    let it = iters(20);
    let base = n + 1_000_000;
    let s = measure(warm(it), it, |k| {
        let batch: Vec<Value> = (0..1000).map(|j| document(base + k * 1000 + j, groups)).collect();
        store.insert_many(COLLECTION, batch)?;
        Ok(())
    })?;
    let r = measure(warm(it), it, |k| {
        let batch: Vec<Value> = (0..1000).map(|j| document(base + k * 1000 + j, groups)).collect();
        raw_insert_batch(&mut raw, &batch)
    })?;
    rows.push(Row { op: "batched insert (1000 docs)", store: s, raw: r });

    println!(
        "Store benchmark: {n} documents, WAL + synchronous=FULL, {} (times in µs; ratio = store mean / raw mean)\n",
        if cfg!(debug_assertions) { "DEBUG build (use --release for real figures)" } else { "release build" }
    );
    println!("| op | store mean | store p50 / p99 | store ops/s | raw mean | raw p50 / p99 | raw ops/s | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {:.1} | {:.1} / {:.1} | {:.0} | {:.1} | {:.1} / {:.1} | {:.0} | {:.2} |",
            row.op,
            row.store.mean,
            row.store.p50,
            row.store.p99,
            row.store.ops_per_sec(),
            row.raw.mean,
            row.raw.p50,
            row.raw.p99,
            row.raw.ops_per_sec(),
            row.store.mean / row.raw.mean.max(f64::MIN_POSITIVE),
        );
    }
    println!("\nLoad of {n} documents in batches of 1000: store {store_load:.2?}, raw {raw_load:.2?}.");
    drop(store);
    drop(raw);
    if args.dir.is_some() {
        super::remove_db(&store_path);
        super::remove_db(&raw_path);
    }
    Ok(())
}
