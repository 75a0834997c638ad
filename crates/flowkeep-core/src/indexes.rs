//! Index commands run as their caller: create and list on collections the caller may write or read,
//! drop for admins; creating and dropping are audited.
//!
//! Who may do what is `flowkeep_security::policy`'s decision: any signed-in caller but the guest may
//! create a plain or sparse index on a collection it may write (it changes only speed); unique and TTL
//! indexes act on documents the caller may not see, so they are for admins, as is dropping. The reference
//! reserves all three commands to admins.

use crate::audit_log::{actor_of, draft};
use crate::documents::{check_collection, Access};
use crate::error::{CoreError, Result};
use crate::platform::Platform;
use flowkeep_security::audit::Target;
use flowkeep_security::{policy, AuditKind, Caller};
use flowkeep_store::{IndexInfo, IndexOptions, StoreError};
use serde_json::{json, Value};

impl Platform {
    /// Creates an index (idempotent) and returns its name.
    pub async fn create_index(
        &self,
        caller: &Caller,
        collection: &str,
        keys: &Value,
        options: &IndexOptions,
    ) -> Result<String> {
        check_collection(collection, Access::Write)?;
        policy::authorize_index_create(caller, collection, options.unique, options.expire_after_seconds.is_some())?;
        let before = self.store.list_indexes(collection).await?;
        let name = self.store.create_index(collection, keys, options).await.map_err(|e| match e {
            // The name or keys are taken by a different index: a conflict, not a malformed request.
            StoreError::IndexConflict { .. } => CoreError::Conflict(e.to_string()),
            other => other.into(),
        })?;
        // Creating an existing index again is not a change, and not audited again.
        if !before.iter().any(|ix| ix.name == name) {
            let details = json!({"index": name, "key": keys, "options": options});
            self.audit_index(caller, AuditKind::IndexCreated, collection, details).await?;
        }
        Ok(name)
    }

    /// The indexes of a collection.
    pub async fn list_indexes(&self, caller: &Caller, collection: &str) -> Result<Vec<IndexInfo>> {
        let _ = caller; // Index names and keys say nothing about documents: readable collection suffices.
        check_collection(collection, Access::Read)?;
        policy::authorize_index_list(collection)?;
        Ok(self.store.list_indexes(collection).await?)
    }

    /// Drops an index by name.
    pub async fn drop_index(&self, caller: &Caller, collection: &str, name: &str) -> Result<()> {
        check_collection(collection, Access::Write)?;
        policy::authorize_index_drop(caller, collection)?;
        if name.is_empty() {
            return Err(CoreError::InvalidRequest("name: an index name is required".into()));
        }
        self.store.drop_index(collection, name).await.map_err(|e| match e {
            StoreError::IndexNotFound { .. } | StoreError::CollectionNotFound { .. } => {
                CoreError::NotFound(e.to_string())
            }
            other => other.into(),
        })?;
        self.audit_index(caller, AuditKind::IndexDropped, collection, json!({"index": name})).await
    }

    async fn audit_index(&self, caller: &Caller, kind: AuditKind, collection: &str, details: Value) -> Result<()> {
        let mut entry = draft(kind);
        entry.actor = actor_of(caller);
        entry.target = Target { collection: Some(collection.to_owned()), ..Target::default() };
        entry.details = details;
        self.audit(entry).await
    }
}
