//! The [`Store`] trait: what every document-store backend offers, in the wire (JSON) form of MongoDB's
//! query language so a MongoDB backend can pass requests through and the embedded backend can parse
//! them with `flowkeep-query`.

use crate::error::Result;
use crate::scope::Scope;
use crate::types::{
    CollectionInfo, CollectionOptions, FindOptions, IndexInfo, IndexOptions, ManyOutcome, WriteOutcome,
};
use async_trait::async_trait;
use serde_json::Value;

/// A document store. Object-safe: use it as `Arc<dyn Store>`.
///
/// Conventions shared by every method:
/// * Filters, updates, projections, sorts and pipelines are JSON in MongoDB's query language; invalid
///   ones give [`crate::StoreError::Query`].
/// * Every read, and every write that selects documents with a filter, takes a [`Scope`]; only documents
///   in scope are seen, counted, changed or removed. Inserts take no scope: whether a caller may create a
///   document is decided by the security layer before calling the store.
/// * Reading a collection that does not exist yields nothing (as in MongoDB); writing to one creates it.
/// * `_id` is a string; see [`crate::validate::new_document`] for the rules on insert.
/// * Natural order (no sort) is insertion order.
/// * A write returns only after it is durable.
#[async_trait]
pub trait Store: Send + Sync {
    /// A short name of the backend (`"sqlite"`, `"mongodb"`), for logs and `explain` output.
    fn backend(&self) -> &'static str;

    /// Inserts one document and returns it as stored (with its `_id`).
    async fn insert_one(&self, collection: &str, doc: Value) -> Result<Value>;

    /// Inserts documents in one transaction: all are stored or, on any error, none.
    async fn insert_many(&self, collection: &str, docs: Vec<Value>) -> Result<Vec<Value>>;

    /// The documents in scope matching `filter`, with the options applied.
    async fn find(&self, collection: &str, scope: &Scope, filter: &Value, options: &FindOptions) -> Result<Vec<Value>>;

    /// The first document (natural order) in scope matching `filter`, optionally projected.
    async fn find_one(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        projection: Option<&Value>,
    ) -> Result<Option<Value>>;

    /// How many documents in scope match `filter`.
    async fn count(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<u64>;

    /// The distinct values of the dotted `field` over matching documents in scope: arrays are flattened
    /// one level, duplicates removed by MongoDB equality, sorted by MongoDB's order.
    async fn distinct(&self, collection: &str, scope: &Scope, field: &str, filter: &Value) -> Result<Vec<Value>>;

    /// Runs an aggregation pipeline over the documents in scope. `$lookup` reads foreign collections
    /// with the same principals needing READ, in the same read snapshot.
    async fn aggregate(&self, collection: &str, scope: &Scope, pipeline: &Value) -> Result<Vec<Value>>;

    /// Replaces the first matching document in scope with `doc` (which keeps the old `_id`; a different
    /// `_id` is an error). With `upsert` and no match, inserts `doc` (taking `_id` from the filter's
    /// equality on `_id` when `doc` has none).
    async fn replace_one(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        doc: Value,
        upsert: bool,
    ) -> Result<WriteOutcome>;

    /// Applies an operator update (`{$set: …}`) to the first matching document in scope. With `upsert`
    /// and no match, inserts the filter's equalities with the update applied (`$setOnInsert` included).
    async fn update_one(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        update: &Value,
        upsert: bool,
    ) -> Result<WriteOutcome>;

    /// Applies an operator update to every matching document in scope, in one transaction (all or none).
    async fn update_many(&self, collection: &str, scope: &Scope, filter: &Value, update: &Value)
        -> Result<ManyOutcome>;

    /// Removes the first matching document in scope; the outcome carries the removed document.
    async fn delete_one(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<WriteOutcome>;

    /// Removes every matching document in scope; returns how many.
    async fn delete_many(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<u64>;

    /// Creates a collection. Idempotent when it exists with the same options; an error when it exists
    /// with different ones.
    async fn create_collection(&self, name: &str, options: &CollectionOptions) -> Result<()>;

    /// Drops a collection with its documents and indexes; false if it did not exist.
    async fn drop_collection(&self, name: &str) -> Result<bool>;

    /// Every collection, sorted by name.
    async fn list_collections(&self) -> Result<Vec<CollectionInfo>>;

    /// Creates an index (and the collection, if needed) and returns its name. Idempotent when an index
    /// with that name, keys and options exists; [`crate::StoreError::IndexConflict`] when the name or the
    /// keys are taken with different keys or options. Building over existing documents that violate
    /// `unique` fails with a duplicate-key error and creates nothing.
    async fn create_index(&self, collection: &str, keys: &Value, options: &IndexOptions) -> Result<String>;

    /// The indexes of a collection, the implicit unique `_id_` first. Empty for a missing collection.
    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexInfo>>;

    /// Drops an index by name. `_id_` cannot be dropped.
    async fn drop_index(&self, collection: &str, name: &str) -> Result<()>;

    /// Removes expired documents as of `now_millis` (TTL indexes; `expireAfterSeconds` of time-series
    /// collections) and returns how many.
    async fn expire_documents(&self, now_millis: i64) -> Result<u64>;

    /// Describes how `find` would run: which parts were pushed down to indexes, the backend's query and
    /// plan. The shape is backend-specific JSON; it is for diagnostics and tests, not for clients to parse.
    async fn explain_find(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        options: &FindOptions,
    ) -> Result<Value>;
}
