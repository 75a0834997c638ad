//! Collection commands run as their caller: create (any signed-in caller; MongoDB creates collections on
//! first insert anyway), drop (admins only), and list (system collections hidden, history on request).
//! Creating and dropping are audited.

use crate::audit_log::{actor_of, draft};
use crate::documents::{check_collection, Access};
use crate::error::Result;
use crate::history::HIST_SUFFIX;
use crate::platform::Platform;
use flowkeep_security::audit::Target;
use flowkeep_security::{policy, AuditKind, Caller};
use flowkeep_store::{CollectionInfo, CollectionOptions};
use serde_json::json;

impl Platform {
    /// Creates a collection with options (time-series, `expireAfterSeconds`). Reserved system names and
    /// history collections are refused; an existing collection with the same options is not an error.
    pub async fn create_collection(&self, caller: &Caller, name: &str, options: &CollectionOptions) -> Result<()> {
        check_collection(name, Access::Write)?;
        policy::authorize_collection_create(caller, name)?;
        self.store.create_collection(name, options).await?;
        self.audit_collection(caller, AuditKind::CollectionCreated, name, json!({"options": options})).await
    }

    /// Drops a collection with its documents, indexes and history (and, for a file bucket `X.files`, its
    /// content `X.chunks`). Admins only; `users` and `audit` cannot be dropped. Returns false if it did not exist.
    pub async fn drop_collection(&self, caller: &Caller, name: &str) -> Result<bool> {
        check_collection(name, Access::Write)?;
        policy::authorize_collection_drop(caller, name)?;
        let existed = self.store.drop_collection(name).await?;
        // History without its collection would be an orphan no command can reach; so would the content
        // of a file bucket's metadata (`X.files` → `X.chunks`).
        let history_existed = self.store.drop_collection(&format!("{name}{HIST_SUFFIX}")).await?;
        let chunks_existed = match name.strip_suffix(".files") {
            Some(bucket) if !bucket.is_empty() => {
                self.store.drop_collection(&format!("{bucket}{}", policy::CHUNKS_SUFFIX)).await?
            }
            _ => false,
        };
        if existed || history_existed || chunks_existed {
            self.audit_collection(caller, AuditKind::CollectionDropped, name, serde_json::Value::Null).await?;
        }
        Ok(existed)
    }

    /// The collections a client may name, sorted: reserved system collections are never listed, history
    /// collections only when `include_history`.
    pub async fn list_collections(&self, caller: &Caller, include_history: bool) -> Result<Vec<CollectionInfo>> {
        let _ = caller; // Every signed-in caller may list names; documents inside stay ACL-scoped.
        let all = self.store.list_collections().await?;
        Ok(all
            .into_iter()
            .filter(|c| check_collection(&c.name, Access::Read).is_ok())
            .filter(|c| include_history || !c.name.ends_with(HIST_SUFFIX))
            .collect())
    }

    async fn audit_collection(
        &self,
        caller: &Caller,
        kind: AuditKind,
        name: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        let mut entry = draft(kind);
        entry.actor = actor_of(caller);
        entry.target = Target { collection: Some(name.to_owned()), ..Target::default() };
        entry.details = details;
        self.audit(entry).await
    }
}
