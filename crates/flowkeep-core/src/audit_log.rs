//! Appending to the audit chain (the `audit` collection, written only by the system) and verifying it.
//!
//! Every entry is made by [`AuditChain::append`] from the current head, so appends must be strictly
//! serialised: [`AuditWriter`] keeps the head behind a `tokio::sync::Mutex` (held across the insert, so
//! two appends can never share a head), and a unique index on `seq` turns a second writer on the same
//! store (another process) into a duplicate-key error, after which the head is reloaded and the append
//! retried once.
//!
//! Entries are readable by `admins` only (ACL `{admins, read}`): nobody gets update or delete rights
//! through an ACL, and the chain makes any change made behind the system's back visible to
//! [`Platform::verify_audit`].
//!
//! Not done yet: audit entries for collection create/drop (the documents layer must call
//! `Platform::audit` for those) and retention checkpoints.

use crate::error::{CoreError, Result};
use crate::platform::Platform;
use chrono::Utc;
use flowkeep_model::{new_object_id, Rights};
use flowkeep_security::acl::acl_to_value;
use flowkeep_security::audit::{Actor, Head, Principal, VerifyOptions};
use flowkeep_security::{wellknown, Ace, AuditChain, AuditDraft, AuditEntry, AuditKey, AuditKind, Caller};
use flowkeep_security::{Problem, VerifyReport};
use flowkeep_store::{FindOptions, IndexOptions, Scope, Store, StoreError};
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// The collection holding the audit trail.
pub const AUDIT_COLLECTION: &str = "audit";

/// The head of the chain as this process knows it.
#[derive(Default)]
struct HeadState {
    /// Whether `head` has been read from the store since start (or since a conflict).
    loaded: bool,
    /// The newest entry, `None` for an empty chain.
    head: Option<AuditEntry>,
}

/// Serialises appends so the chain stays linear.
pub struct AuditWriter {
    chain: AuditChain,
    head: Mutex<HeadState>,
}

impl AuditWriter {
    /// A writer signing entries with `key`. The head is loaded by `AuditWriter::init` (or lazily by
    /// the first append).
    pub fn new(key: AuditKey) -> AuditWriter {
        AuditWriter { chain: AuditChain::new(key), head: Mutex::new(HeadState::default()) }
    }

    /// Creates the unique index on `seq` and loads the head (the entry with the highest `seq`).
    pub(crate) async fn init(&self, store: &dyn Store) -> Result<()> {
        let options = IndexOptions { name: Some("seq_unique".into()), unique: true, ..IndexOptions::default() };
        store.create_index(AUDIT_COLLECTION, &json!({"seq": 1}), &options).await?;
        let mut state = self.head.lock().await;
        state.head = load_head(store).await?;
        state.loaded = true;
        Ok(())
    }

    /// Appends one entry built from `draft` and returns it as stored.
    pub(crate) async fn append(&self, store: &dyn Store, draft: AuditDraft) -> Result<AuditEntry> {
        let mut state = self.head.lock().await;
        // One retry: a conflict means another process appended to the same store, so our head is stale.
        for attempt in 0..2 {
            if !state.loaded {
                state.head = load_head(store).await?;
                state.loaded = true;
            }
            let entry = self.chain.append(state.head.as_ref(), draft.clone()).map_err(internal)?;
            match store.insert_one(AUDIT_COLLECTION, entry_document(&entry)?).await {
                Ok(_) => {
                    state.head = Some(entry.clone());
                    return Ok(entry);
                }
                Err(StoreError::DuplicateKey { .. }) if attempt == 0 => state.loaded = false,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Internal("audit head kept moving".into()))
    }

    /// The head this process last wrote or loaded, as `(seq, hash)`, for truncation checks.
    async fn known_head(&self) -> Option<Head> {
        let state = self.head.lock().await;
        state.head.as_ref().map(|e| Head { seq: e.seq, hash: e.hash.clone() })
    }

    /// Checks `entries` (in stored order) with the chain key.
    fn verify(&self, entries: &[AuditEntry], head: Option<Head>) -> VerifyReport {
        self.chain.verify_with(entries, &VerifyOptions { expected_head: head })
    }
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

/// The stored form of an entry: the entry's own fields plus `_id`, `_type` and an ACL letting admins
/// read it. The chain hash covers only the entry's own fields.
fn entry_document(entry: &AuditEntry) -> Result<Value> {
    let mut doc = serde_json::to_value(entry).map_err(internal)?;
    if let Value::Object(map) = &mut doc {
        map.insert("_id".into(), Value::String(new_object_id()));
        map.insert("_type".into(), Value::String(entry.kind.as_str().to_owned()));
        map.insert("_created".into(), Value::String(entry.ts.clone()));
        map.insert("_acl".into(), acl_to_value(&[Ace::allow(wellknown::ADMINS, "admins", Rights::READ)]));
    }
    Ok(doc)
}

/// The entry with the highest `seq`, read with the system scope (the chain is system data).
async fn load_head(store: &dyn Store) -> Result<Option<AuditEntry>> {
    let options = FindOptions { sort: Some(json!({"seq": -1})), limit: Some(1), ..FindOptions::default() };
    let docs = store.find(AUDIT_COLLECTION, &Scope::system(), &json!({}), &options).await?;
    match docs.into_iter().next() {
        None => Ok(None),
        // An unreadable head cannot be chained to: refuse to write rather than fork the chain.
        Some(doc) => serde_json::from_value(doc).map(Some).map_err(|e| {
            tracing::error!(error = %e, "the newest audit entry is unreadable; run `flowkeep audit verify`");
            CoreError::Internal("audit head unreadable".into())
        }),
    }
}

/// The actor of an audit entry for `caller`, with its impostor when impersonating.
pub(crate) fn actor_of(caller: &Caller) -> Actor {
    Actor {
        id: Some(caller.user_id().to_owned()),
        name: Some(caller.username().to_owned()),
        impostor: caller
            .impostor()
            .map(|i| Principal { id: Some(i.user_id().to_owned()), name: Some(i.username().to_owned()) }),
    }
}

/// A draft of `kind` stamped now.
pub(crate) fn draft(kind: AuditKind) -> AuditDraft {
    AuditDraft::new(kind, Utc::now())
}

impl Platform {
    /// Appends an entry to the audit chain. Callers decide whether a failure aborts their command
    /// (sign-in does: an unaudited login is refused) or is only logged (after a write already committed).
    pub(crate) async fn audit(&self, draft: AuditDraft) -> Result<()> {
        self.audit.append(self.store.as_ref(), draft).await.map(|_| ())
    }

    /// Reads the whole `audit` collection in `seq` order (system scope) and verifies the chain, for
    /// `flowkeep audit verify`. The head this process last wrote is passed as the expected head, so a
    /// removed tail is reported too while the process runs. A stored entry that no longer has the
    /// shape of an entry is reported as altered (or, when even its `seq` is unreadable, as seq 0).
    pub async fn verify_audit(&self) -> Result<VerifyReport> {
        let options = FindOptions { sort: Some(json!({"seq": 1})), ..FindOptions::default() };
        let docs = self.store.find(AUDIT_COLLECTION, &Scope::system(), &json!({}), &options).await?;
        let mut entries = Vec::with_capacity(docs.len());
        let mut unreadable = Vec::new();
        for doc in docs {
            let seq = doc.get("seq").and_then(Value::as_u64).unwrap_or(0);
            match serde_json::from_value::<AuditEntry>(doc) {
                Ok(entry) => entries.push(entry),
                Err(_) => unreadable.push(Problem::Altered { seq }),
            }
        }
        let head = self.audit.known_head().await;
        let mut report = self.audit.verify(&entries, head);
        report.checked += unreadable.len();
        report.problems.extend(unreadable);
        Ok(report)
    }
}
