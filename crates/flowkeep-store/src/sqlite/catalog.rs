//! The catalog: which collections and indexes exist, kept in two SQL tables and mirrored in memory.
//!
//! Every collection gets an integer id; its tables are named from that id only (`col_17`, `acl_17`,
//! `ix_42`, `ux_42`), so no user-supplied string is ever spliced into SQL. Ids come from AUTOINCREMENT
//! and are never reused, so a stale in-memory snapshot can never point at another collection's table.
//!
//! The in-memory [`Catalog`] is an immutable snapshot behind an `Arc`; the writer publishes a new one
//! only after the transaction that changed the catalog has committed.

use crate::error::{Result, StoreError};
use crate::scope::is_files_collection;
use crate::types::{CollectionKind, CollectionOptions, IndexInfo};
use crate::validate::IndexKeys;
use flowkeep_query::FieldPath;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Creates the catalog tables if needed; refuses a database written by a newer schema.
pub fn init_schema(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the database has schema version {version}; this build understands up to {SCHEMA_VERSION}"
        )));
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS fk_collections (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             name TEXT NOT NULL UNIQUE,
             kind TEXT NOT NULL,
             options TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS fk_indexes (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             coll INTEGER NOT NULL REFERENCES fk_collections(id) ON DELETE CASCADE,
             name TEXT NOT NULL,
             keys TEXT NOT NULL,
             options TEXT NOT NULL,
             UNIQUE (coll, name));
         PRAGMA user_version = 1;
         COMMIT;",
    )?;
    Ok(())
}

/// A snapshot of every collection and its indexes.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    colls: BTreeMap<String, Arc<CollMeta>>,
}

/// One collection.
#[derive(Debug, Clone)]
pub struct CollMeta {
    /// Integer id; tables are `col_{id}` and `acl_{id}`.
    pub id: i64,
    /// The collection name.
    pub name: String,
    /// Its options.
    pub options: CollectionOptions,
    /// Secondary indexes in creation order (`_id_` is implicit).
    pub indexes: Vec<IndexMeta>,
}

impl CollMeta {
    /// `collection` or `timeseries`.
    pub fn kind(&self) -> CollectionKind {
        self.options.kind()
    }

    /// True for GridFS-style `.files` collections (ACL in `metadata._acl`).
    pub fn is_files(&self) -> bool {
        is_files_collection(&self.name)
    }
}

/// One secondary index.
#[derive(Debug, Clone)]
pub struct IndexMeta {
    /// Integer id; tables are `ix_{id}` and, for unique indexes, `ux_{id}`.
    pub id: i64,
    /// The index name.
    pub name: String,
    /// The parsed keys.
    pub keys: IndexKeys,
    /// Unique keys.
    pub unique: bool,
    /// Documents lacking every field are left out.
    pub sparse: bool,
    /// TTL seconds.
    pub expire_after_seconds: Option<u64>,
}

impl IndexMeta {
    /// The first field, the one pushdown uses.
    pub fn first(&self) -> &FieldPath {
        &self.keys.fields[0].0
    }

    /// Every field path.
    pub fn paths(&self) -> Vec<&FieldPath> {
        self.keys.fields.iter().map(|(p, _)| p).collect()
    }

    /// The options as stored in the catalog.
    pub fn options_json(&self) -> Value {
        json!({"unique": self.unique, "sparse": self.sparse, "expireAfterSeconds": self.expire_after_seconds})
    }

    /// The `list_indexes` form.
    pub fn info(&self) -> IndexInfo {
        IndexInfo {
            name: self.name.clone(),
            key: self.keys.to_json(),
            unique: self.unique,
            sparse: self.sparse,
            expire_after_seconds: self.expire_after_seconds,
        }
    }
}

impl Catalog {
    /// Loads the catalog from the database.
    pub fn load(conn: &Connection) -> Result<Catalog> {
        let mut colls = BTreeMap::new();
        let mut stmt = conn.prepare("SELECT id, name, options FROM fk_collections ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut by_id = BTreeMap::new();
        for row in rows {
            let (id, name, options) = row?;
            let options: CollectionOptions = serde_json::from_str(&options)
                .map_err(|e| StoreError::Unavailable(format!("catalog entry of '{name}' is unreadable: {e}")))?;
            by_id.insert(id, CollMeta { id, name, options, indexes: Vec::new() });
        }
        let mut stmt = conn.prepare("SELECT id, coll, name, keys, options FROM fk_indexes ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        for row in rows {
            let (id, coll, name, keys, options) = row?;
            let unreadable =
                |e: String| StoreError::Unavailable(format!("catalog entry of index '{name}' is unreadable: {e}"));
            let keys: Value = serde_json::from_str(&keys).map_err(|e| unreadable(e.to_string()))?;
            let keys = IndexKeys::parse(&keys).map_err(|e| unreadable(e.to_string()))?;
            let options: Value = serde_json::from_str(&options).map_err(|e| unreadable(e.to_string()))?;
            let meta = IndexMeta {
                id,
                name: name.clone(),
                keys,
                unique: options["unique"].as_bool().unwrap_or(false),
                sparse: options["sparse"].as_bool().unwrap_or(false),
                expire_after_seconds: options["expireAfterSeconds"].as_u64(),
            };
            if let Some(c) = by_id.get_mut(&coll) {
                c.indexes.push(meta);
            }
        }
        for (_, c) in by_id {
            colls.insert(c.name.clone(), Arc::new(c));
        }
        Ok(Catalog { colls })
    }

    /// The collection named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&Arc<CollMeta>> {
        self.colls.get(name)
    }

    /// Every collection, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CollMeta>> {
        self.colls.values()
    }

    /// Replaces (or adds) a collection entry.
    pub fn put(&mut self, meta: CollMeta) {
        self.colls.insert(meta.name.clone(), Arc::new(meta));
    }

    /// Removes a collection entry.
    pub fn remove(&mut self, name: &str) {
        self.colls.remove(name);
    }
}

/// Creates a collection's catalog row and tables; returns its metadata.
pub fn create_collection(conn: &Connection, name: &str, options: &CollectionOptions) -> Result<CollMeta> {
    let options_text = options.to_json().to_string();
    conn.execute(
        "INSERT INTO fk_collections (name, kind, options) VALUES (?1, ?2, ?3)",
        params![name, options.kind().as_str(), options_text],
    )?;
    let id = conn.last_insert_rowid();
    // The document table: `rid` is the natural (insertion) order and the target of every side row;
    // `id` is the `_id`, unique. Side rows go away with their document through ON DELETE CASCADE.
    conn.execute_batch(&format!(
        "CREATE TABLE col_{id} (rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
         CREATE TABLE acl_{id} (
             doc INTEGER NOT NULL REFERENCES col_{id}(rid) ON DELETE CASCADE,
             principal TEXT NOT NULL,
             rights INTEGER NOT NULL,
             deny INTEGER NOT NULL);
         CREATE INDEX acl_{id}_p ON acl_{id} (principal, deny, rights, doc);
         CREATE INDEX acl_{id}_d ON acl_{id} (doc, principal, deny, rights);"
    ))?;
    Ok(CollMeta { id, name: name.to_string(), options: options.clone(), indexes: Vec::new() })
}

/// Drops a collection's tables and catalog rows.
pub fn drop_collection(conn: &Connection, meta: &CollMeta) -> Result<()> {
    for ix in &meta.indexes {
        drop_index_tables(conn, ix)?;
    }
    conn.execute_batch(&format!("DROP TABLE acl_{id}; DROP TABLE col_{id};", id = meta.id))?;
    conn.execute("DELETE FROM fk_collections WHERE id = ?1", [meta.id])?;
    Ok(())
}

/// Creates an index's catalog row and (empty) side tables; returns its metadata.
pub fn create_index(
    conn: &Connection,
    coll: &CollMeta,
    name: &str,
    keys: IndexKeys,
    unique: bool,
    sparse: bool,
    expire_after_seconds: Option<u64>,
) -> Result<IndexMeta> {
    let mut meta = IndexMeta { id: 0, name: name.to_string(), keys, unique, sparse, expire_after_seconds };
    conn.execute(
        "INSERT INTO fk_indexes (coll, name, keys, options) VALUES (?1, ?2, ?3, ?4)",
        params![coll.id, name, meta.keys.to_json().to_string(), meta.options_json().to_string()],
    )?;
    meta.id = conn.last_insert_rowid();
    let (id, c) = (meta.id, coll.id);
    // `val` has no declared type on purpose: BLOB affinity stores exactly what is bound, so the text
    // '12' never turns into the number 12.
    conn.execute_batch(&format!(
        "CREATE TABLE ix_{id} (
             doc INTEGER NOT NULL REFERENCES col_{c}(rid) ON DELETE CASCADE,
             rank INTEGER NOT NULL,
             val);
         CREATE INDEX ix_{id}_rv ON ix_{id} (rank, val, doc);
         CREATE INDEX ix_{id}_d ON ix_{id} (doc);"
    ))?;
    if unique {
        conn.execute_batch(&format!(
            "CREATE TABLE ux_{id} (
                 ukey TEXT PRIMARY KEY,
                 doc INTEGER NOT NULL REFERENCES col_{c}(rid) ON DELETE CASCADE);
             CREATE INDEX ux_{id}_d ON ux_{id} (doc);"
        ))?;
    }
    Ok(meta)
}

/// Drops an index's side tables (not its catalog row).
pub fn drop_index_tables(conn: &Connection, ix: &IndexMeta) -> Result<()> {
    conn.execute_batch(&format!("DROP TABLE ix_{id};", id = ix.id))?;
    if ix.unique {
        conn.execute_batch(&format!("DROP TABLE ux_{id};", id = ix.id))?;
    }
    Ok(())
}
