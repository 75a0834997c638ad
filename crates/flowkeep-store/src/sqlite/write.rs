//! The write side: one transaction on the single writer connection per operation. Documents and their
//! side rows (ACL entries, index keys, unique keys) are written in the same transaction, so they can
//! never disagree; catalog changes are published to readers only after the commit.

use super::catalog::{self, Catalog, CollMeta, IndexMeta};
use super::keys::{all_missing, lookup_rows, unique_keys, RANK_DATE};
use crate::error::{Result, StoreError};
use crate::scope::acl_entries;
use crate::types::{CollectionOptions, IndexOptions};
use crate::validate::{self, IndexKeys, MAX_INDEXES};
use flowkeep_query::value::as_date_millis;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::sync::Arc;

/// True if `e` is a violation of a UNIQUE or PRIMARY KEY constraint.
pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The state of one write transaction: the connection (inside the transaction) and the catalog as this
/// transaction sees it.
pub struct WriteCtx<'a> {
    /// The writer connection, inside an IMMEDIATE transaction.
    pub conn: &'a Connection,
    base: Arc<Catalog>,
    changed: Option<Catalog>,
    /// The transaction's clock, for `$currentDate`.
    pub now_millis: i64,
}

impl<'a> WriteCtx<'a> {
    /// A context over `conn` (already in a transaction) starting from the published catalog.
    pub fn new(conn: &'a Connection, base: Arc<Catalog>, now_millis: i64) -> WriteCtx<'a> {
        WriteCtx { conn, base, changed: None, now_millis }
    }

    /// The catalog as this transaction sees it.
    pub fn catalog(&self) -> &Catalog {
        self.changed.as_ref().unwrap_or(&self.base)
    }

    fn catalog_mut(&mut self) -> &mut Catalog {
        let base = &self.base;
        self.changed.get_or_insert_with(|| (**base).clone())
    }

    /// The changed catalog to publish after commit, if this transaction changed it.
    pub fn into_catalog(self) -> Option<Catalog> {
        self.changed
    }

    /// The collection, if it exists.
    pub fn coll(&self, name: &str) -> Option<Arc<CollMeta>> {
        self.catalog().get(name).cloned()
    }

    /// The collection, created with default options if it does not exist (MongoDB's implicit creation).
    pub fn ensure_collection(&mut self, name: &str) -> Result<Arc<CollMeta>> {
        if let Some(c) = self.coll(name) {
            return Ok(c);
        }
        validate::collection_name(name)?;
        let meta = catalog::create_collection(self.conn, name, &CollectionOptions::default())?;
        self.catalog_mut().put(meta);
        self.coll(name).ok_or_else(|| StoreError::Unavailable("collection vanished while being created".into()))
    }

    /// `create_collection`: idempotent for identical options.
    pub fn create_collection(&mut self, name: &str, options: &CollectionOptions) -> Result<()> {
        validate::collection_name(name)?;
        options.validate()?;
        if let Some(existing) = self.coll(name) {
            if &existing.options == options {
                return Ok(());
            }
            return Err(StoreError::CollectionExists { name: name.to_string() });
        }
        let meta = catalog::create_collection(self.conn, name, options)?;
        self.catalog_mut().put(meta);
        Ok(())
    }

    /// `drop_collection`.
    pub fn drop_collection(&mut self, name: &str) -> Result<bool> {
        let Some(coll) = self.coll(name) else { return Ok(false) };
        catalog::drop_collection(self.conn, &coll)?;
        self.catalog_mut().remove(name);
        Ok(true)
    }

    /// `create_index`: validates, checks for conflicts, creates the side tables and indexes every
    /// existing document (a unique violation fails the whole transaction, so nothing is created).
    pub fn create_index(&mut self, collection: &str, keys: &Value, options: &IndexOptions) -> Result<String> {
        validate::collection_name(collection)?;
        let keys = IndexKeys::parse(keys)?;
        let name = options.name.clone().unwrap_or_else(|| keys.default_name());
        validate::index_name(&name)?;
        let conflict = |message: String| StoreError::IndexConflict { collection: collection.to_string(), message };
        if keys.fields.len() != 1 && options.expire_after_seconds.is_some() {
            return Err(StoreError::InvalidIndex("expireAfterSeconds needs a single-field index".into()));
        }
        let is_id_keys = keys.to_json() == json!({"_id": 1});
        let plain = !options.unique && !options.sparse && options.expire_after_seconds.is_none();
        if name == "_id_" || is_id_keys {
            if name == "_id_" && is_id_keys && plain {
                self.ensure_collection(collection)?;
                return Ok(name);
            }
            return Err(conflict(format!("index '{name}' would duplicate or redefine the implicit _id_ index")));
        }
        let coll = self.ensure_collection(collection)?;
        let same = |ix: &IndexMeta| {
            ix.keys == keys
                && ix.unique == options.unique
                && ix.sparse == options.sparse
                && ix.expire_after_seconds == options.expire_after_seconds
        };
        if let Some(existing) = coll.indexes.iter().find(|ix| ix.name == name) {
            if same(existing) {
                return Ok(name);
            }
            return Err(conflict(format!(
                "an index named '{name}' already exists with different keys or options ({} {})",
                existing.keys.to_json(),
                existing.options_json()
            )));
        }
        if let Some(existing) = coll.indexes.iter().find(|ix| ix.keys == keys) {
            return Err(conflict(format!(
                "an index with keys {} already exists with the name '{}'",
                keys.to_json(),
                existing.name
            )));
        }
        if coll.indexes.len() + 1 >= MAX_INDEXES {
            return Err(StoreError::InvalidIndex(format!("a collection has at most {MAX_INDEXES} indexes")));
        }
        let meta = catalog::create_index(
            self.conn,
            &coll,
            &name,
            keys,
            options.unique,
            options.sparse,
            options.expire_after_seconds,
        )?;
        {
            let mut stmt = self.conn.prepare(&format!("SELECT rid, doc FROM col_{} ORDER BY rid", coll.id))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let rid: i64 = row.get(0)?;
                let doc =
                    parse_stored(rid, row.get_ref(1)?.as_str().map_err(|e| StoreError::Unavailable(e.to_string()))?)?;
                self.index_doc(&coll, &meta, rid, &doc)?;
            }
        }
        let mut updated = (*coll).clone();
        updated.indexes.push(meta);
        self.catalog_mut().put(updated);
        Ok(name)
    }

    /// `drop_index`.
    pub fn drop_index(&mut self, collection: &str, name: &str) -> Result<()> {
        validate::collection_name(collection)?;
        if name == "_id_" {
            return Err(StoreError::Refused("cannot drop the _id_ index".into()));
        }
        let Some(coll) = self.coll(collection) else {
            return Err(StoreError::CollectionNotFound { name: collection.to_string() });
        };
        let Some(pos) = coll.indexes.iter().position(|ix| ix.name == name) else {
            return Err(StoreError::IndexNotFound { collection: collection.to_string(), name: name.to_string() });
        };
        let ix = &coll.indexes[pos];
        catalog::drop_index_tables(self.conn, ix)?;
        self.conn.execute("DELETE FROM fk_indexes WHERE id = ?1", [ix.id])?;
        let mut updated = (*coll).clone();
        updated.indexes.remove(pos);
        self.catalog_mut().put(updated);
        Ok(())
    }

    /// Inserts a prepared document (see [`validate::new_document`]) and its side rows; returns its rowid.
    pub fn insert(&mut self, coll: &CollMeta, id: &str, doc: &Value, text: &str) -> Result<i64> {
        check_timeseries(coll, doc)?;
        let mut stmt = self.conn.prepare_cached(&format!("INSERT INTO col_{} (id, doc) VALUES (?1, ?2)", coll.id))?;
        match stmt.execute(params![id, text]) {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::DuplicateKey {
                    collection: coll.name.clone(),
                    index: "_id_".into(),
                    key: format!("{{ _id: {} }}", Value::String(id.to_string())),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let rid = self.conn.last_insert_rowid();
        self.write_side_rows(coll, rid, doc)?;
        Ok(rid)
    }

    /// Replaces the document at `rid` (its `_id` unchanged) and rebuilds its side rows.
    pub fn replace(&mut self, coll: &CollMeta, rid: i64, doc: &Value) -> Result<()> {
        check_timeseries(coll, doc)?;
        let text = validate::stored_document(doc)?;
        self.conn
            .prepare_cached(&format!("UPDATE col_{} SET doc = ?2 WHERE rid = ?1", coll.id))?
            .execute(params![rid, text])?;
        self.clear_side_rows(coll, rid)?;
        self.write_side_rows(coll, rid, doc)
    }

    /// Deletes the document at `rid`; its side rows go with it (ON DELETE CASCADE).
    pub fn delete(&mut self, coll: &CollMeta, rid: i64) -> Result<()> {
        self.conn.prepare_cached(&format!("DELETE FROM col_{} WHERE rid = ?1", coll.id))?.execute([rid])?;
        Ok(())
    }

    fn clear_side_rows(&self, coll: &CollMeta, rid: i64) -> Result<()> {
        self.conn.prepare_cached(&format!("DELETE FROM acl_{} WHERE doc = ?1", coll.id))?.execute([rid])?;
        for ix in &coll.indexes {
            self.conn.prepare_cached(&format!("DELETE FROM ix_{} WHERE doc = ?1", ix.id))?.execute([rid])?;
            if ix.unique {
                self.conn.prepare_cached(&format!("DELETE FROM ux_{} WHERE doc = ?1", ix.id))?.execute([rid])?;
            }
        }
        Ok(())
    }

    fn write_side_rows(&self, coll: &CollMeta, rid: i64, doc: &Value) -> Result<()> {
        let entries = acl_entries(&coll.name, doc);
        if !entries.is_empty() {
            let mut stmt = self.conn.prepare_cached(&format!(
                "INSERT INTO acl_{} (doc, principal, rights, deny) VALUES (?1, ?2, ?3, ?4)",
                coll.id
            ))?;
            for e in entries {
                stmt.execute(params![rid, e.principal, e.rights, i64::from(e.deny)])?;
            }
        }
        for ix in &coll.indexes {
            self.index_doc(coll, ix, rid, doc)?;
        }
        Ok(())
    }

    /// Writes one document's rows of one index.
    fn index_doc(&self, coll: &CollMeta, ix: &IndexMeta, rid: i64, doc: &Value) -> Result<()> {
        let paths = ix.paths();
        if ix.sparse && all_missing(doc, &paths) {
            return Ok(());
        }
        if ix.unique {
            let keys = unique_keys(doc, &paths)?;
            let mut stmt =
                self.conn.prepare_cached(&format!("INSERT INTO ux_{} (ukey, doc) VALUES (?1, ?2)", ix.id))?;
            for k in keys {
                match stmt.execute(params![k.key, rid]) {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(StoreError::DuplicateKey {
                            collection: coll.name.clone(),
                            index: ix.name.clone(),
                            key: k.display,
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut stmt =
            self.conn.prepare_cached(&format!("INSERT INTO ix_{} (doc, rank, val) VALUES (?1, ?2, ?3)", ix.id))?;
        for (rank, val) in lookup_rows(doc, ix.first()) {
            stmt.execute(params![rid, rank, val])?;
        }
        Ok(())
    }

    /// Removes expired documents of every collection; returns how many.
    pub fn expire(&mut self, now_millis: i64) -> Result<u64> {
        let mut removed = 0u64;
        let colls: Vec<Arc<CollMeta>> = self.catalog().iter().cloned().collect();
        for coll in colls {
            for ix in coll.indexes.iter().filter(|ix| ix.expire_after_seconds.is_some()) {
                let cutoff = cutoff(now_millis, ix.expire_after_seconds.unwrap_or(0));
                removed += self.expire_by_index(&coll, ix, cutoff)?;
            }
            if let (Some(ts), Some(secs)) = (&coll.options.timeseries, coll.options.expire_after_seconds) {
                let cutoff = cutoff(now_millis, secs);
                let field = flowkeep_query::FieldPath::parse(&ts.time_field)?;
                if let Some(ix) = coll.indexes.iter().find(|ix| ix.first() == &field) {
                    removed += self.expire_by_index(&coll, ix, cutoff)?;
                    continue;
                }
                // No index on the time field: scan. Time-series documents always hold a date there.
                let mut expired = Vec::new();
                {
                    let mut stmt = self.conn.prepare(&format!("SELECT rid, doc FROM col_{}", coll.id))?;
                    let mut rows = stmt.query([])?;
                    while let Some(row) = rows.next()? {
                        let rid: i64 = row.get(0)?;
                        let doc = parse_stored(
                            rid,
                            row.get_ref(1)?.as_str().map_err(|e| StoreError::Unavailable(e.to_string()))?,
                        )?;
                        if doc.get(&ts.time_field).and_then(as_date_millis).is_some_and(|t| t <= cutoff) {
                            expired.push(rid);
                        }
                    }
                }
                for rid in &expired {
                    self.delete(&coll, *rid)?;
                }
                removed += expired.len() as u64;
            }
        }
        Ok(removed)
    }

    /// Deletes documents whose earliest date key in `ix` is at or before `cutoff` (MongoDB's TTL rule:
    /// non-date values never expire).
    fn expire_by_index(&self, coll: &CollMeta, ix: &IndexMeta, cutoff: i64) -> Result<u64> {
        let n = self.conn.execute(
            &format!(
                "DELETE FROM col_{} WHERE rid IN (SELECT doc FROM ix_{} WHERE rank = {RANK_DATE} AND val <= ?1)",
                coll.id, ix.id
            ),
            [cutoff],
        )?;
        Ok(n as u64)
    }
}

fn cutoff(now_millis: i64, seconds: u64) -> i64 {
    let ttl = i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(1000);
    now_millis.saturating_sub(ttl)
}

/// Time-series documents must hold a date in the time field, as in MongoDB.
fn check_timeseries(coll: &CollMeta, doc: &Value) -> Result<()> {
    if let Some(ts) = &coll.options.timeseries {
        if doc.get(&ts.time_field).and_then(as_date_millis).is_none() {
            return Err(StoreError::InvalidDocument(format!(
                "'{}' must be present and contain a date in the time-series collection '{}'",
                ts.time_field, coll.name
            )));
        }
    }
    Ok(())
}

/// Parses a stored document.
pub fn parse_stored(rid: i64, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Unavailable(format!("stored document {rid} is unreadable: {e}")))
}
