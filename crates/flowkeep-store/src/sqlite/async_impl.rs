//! [`Store`] for [`SqliteStore`]: each call copies its arguments and runs the synchronous method on
//! tokio's blocking pool, so SQLite never blocks the async runtime.
//!
//! If the calling future is dropped, the blocking work still runs to completion (a write that started
//! commits); only its result is discarded.

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::scope::Scope;
use crate::store::Store;
use crate::types::{
    CollectionInfo, CollectionOptions, FindOptions, IndexInfo, IndexOptions, ManyOutcome, WriteOutcome,
};
use async_trait::async_trait;
use serde_json::Value;

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Unavailable(format!("store worker failed: {e}")))?
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert_one(&self, collection: &str, doc: Value) -> Result<Value> {
        let (this, c) = (self.clone(), collection.to_owned());
        blocking(move || SqliteStore::insert_one(&this, &c, doc)).await
    }

    async fn insert_many(&self, collection: &str, docs: Vec<Value>) -> Result<Vec<Value>> {
        let (this, c) = (self.clone(), collection.to_owned());
        blocking(move || SqliteStore::insert_many(&this, &c, docs)).await
    }

    async fn find(&self, collection: &str, scope: &Scope, filter: &Value, options: &FindOptions) -> Result<Vec<Value>> {
        let (this, c, s, f, o) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone(), options.clone());
        blocking(move || SqliteStore::find(&this, &c, &s, &f, &o)).await
    }

    async fn find_one(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        projection: Option<&Value>,
    ) -> Result<Option<Value>> {
        let (this, c, s, f, p) =
            (self.clone(), collection.to_owned(), scope.clone(), filter.clone(), projection.cloned());
        blocking(move || SqliteStore::find_one(&this, &c, &s, &f, p.as_ref())).await
    }

    async fn count(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<u64> {
        let (this, c, s, f) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone());
        blocking(move || SqliteStore::count(&this, &c, &s, &f)).await
    }

    async fn distinct(&self, collection: &str, scope: &Scope, field: &str, filter: &Value) -> Result<Vec<Value>> {
        let (this, c, s, k, f) = (self.clone(), collection.to_owned(), scope.clone(), field.to_owned(), filter.clone());
        blocking(move || SqliteStore::distinct(&this, &c, &s, &k, &f)).await
    }

    async fn aggregate(&self, collection: &str, scope: &Scope, pipeline: &Value) -> Result<Vec<Value>> {
        let (this, c, s, p) = (self.clone(), collection.to_owned(), scope.clone(), pipeline.clone());
        blocking(move || SqliteStore::aggregate(&this, &c, &s, &p)).await
    }

    async fn replace_one(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        doc: Value,
        upsert: bool,
    ) -> Result<WriteOutcome> {
        let (this, c, s, f) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone());
        blocking(move || SqliteStore::replace_one(&this, &c, &s, &f, doc, upsert)).await
    }

    async fn update_one(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        update: &Value,
        upsert: bool,
    ) -> Result<WriteOutcome> {
        let (this, c, s, f, u) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone(), update.clone());
        blocking(move || SqliteStore::update_one(&this, &c, &s, &f, &u, upsert)).await
    }

    async fn update_many(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        update: &Value,
    ) -> Result<ManyOutcome> {
        let (this, c, s, f, u) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone(), update.clone());
        blocking(move || SqliteStore::update_many(&this, &c, &s, &f, &u)).await
    }

    async fn delete_one(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<WriteOutcome> {
        let (this, c, s, f) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone());
        blocking(move || SqliteStore::delete_one(&this, &c, &s, &f)).await
    }

    async fn delete_many(&self, collection: &str, scope: &Scope, filter: &Value) -> Result<u64> {
        let (this, c, s, f) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone());
        blocking(move || SqliteStore::delete_many(&this, &c, &s, &f)).await
    }

    async fn create_collection(&self, name: &str, options: &CollectionOptions) -> Result<()> {
        let (this, n, o) = (self.clone(), name.to_owned(), options.clone());
        blocking(move || SqliteStore::create_collection(&this, &n, &o)).await
    }

    async fn drop_collection(&self, name: &str) -> Result<bool> {
        let (this, n) = (self.clone(), name.to_owned());
        blocking(move || SqliteStore::drop_collection(&this, &n)).await
    }

    async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        // Reads the in-memory catalog only: no need for the blocking pool.
        SqliteStore::list_collections(self)
    }

    async fn create_index(&self, collection: &str, keys: &Value, options: &IndexOptions) -> Result<String> {
        let (this, c, k, o) = (self.clone(), collection.to_owned(), keys.clone(), options.clone());
        blocking(move || SqliteStore::create_index(&this, &c, &k, &o)).await
    }

    async fn list_indexes(&self, collection: &str) -> Result<Vec<IndexInfo>> {
        SqliteStore::list_indexes(self, collection)
    }

    async fn drop_index(&self, collection: &str, name: &str) -> Result<()> {
        let (this, c, n) = (self.clone(), collection.to_owned(), name.to_owned());
        blocking(move || SqliteStore::drop_index(&this, &c, &n)).await
    }

    async fn expire_documents(&self, now_millis: i64) -> Result<u64> {
        let this = self.clone();
        blocking(move || SqliteStore::expire_documents(&this, now_millis)).await
    }

    async fn explain_find(
        &self,
        collection: &str,
        scope: &Scope,
        filter: &Value,
        options: &FindOptions,
    ) -> Result<Value> {
        let (this, c, s, f, o) = (self.clone(), collection.to_owned(), scope.clone(), filter.clone(), options.clone());
        blocking(move || SqliteStore::explain_find(&this, &c, &s, &f, &o)).await
    }
}
