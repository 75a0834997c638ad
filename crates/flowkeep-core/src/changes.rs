//! The change feed behind `watch`: every committed insert, update, replace and delete is published once,
//! in the stored form, to every subscriber; [`Platform::visible_change`] decides per caller what (if
//! anything) of it that caller may see.
//!
//! # What is published
//!
//! Exactly one event per document really changed by a command, sent only after the store write
//! succeeded:
//!
//! * [`Platform::insert_one`]/[`Platform::insert_many`], an upsert that inserts, and an upload's
//!   metadata document → [`ChangeOperation::Insert`];
//! * a full-document update ([`Platform::update_document`], an upsert that updates) →
//!   [`ChangeOperation::Replace`];
//! * operator updates ([`Platform::update_one`], and per document [`Platform::update_many`]) →
//!   [`ChangeOperation::Update`];
//! * deletes ([`Platform::delete_one`], per document [`Platform::delete_many`]) →
//!   [`ChangeOperation::Delete`], carrying the removed document.
//!
//! An update that changes nothing writes nothing and publishes nothing. Not published: writes to history
//! collections (`*_hist`) and to `audit` (both written only by the system), file chunks (`*.chunks`, which
//! clients never read as documents) and system state (`flowkeep.*`).
//!
//! The feed is a bounded broadcast channel ([`CHANGE_FEED_CAPACITY`]): publishing never waits for a slow
//! subscriber; one that falls behind gets `RecvError::Lagged` and should tell its client it missed events.

use crate::documents::{check_collection, Access, AUDIT};
use crate::history::HIST_SUFFIX;
use crate::platform::Platform;
use flowkeep_model::Rights;
use flowkeep_security::Caller;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many events the feed buffers for its slowest subscriber before that one lags.
pub const CHANGE_FEED_CAPACITY: usize = 4096;

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOperation {
    Insert,
    Update,
    Replace,
    Delete,
}

impl ChangeOperation {
    /// The OpenIAP name of the operation (`insert`, `update`, `replace`, `delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOperation::Insert => "insert",
            ChangeOperation::Update => "update",
            ChangeOperation::Replace => "replace",
            ChangeOperation::Delete => "delete",
        }
    }
}

/// One committed change, as stored (encrypted fields still encrypted; for a delete, the removed document).
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub collection: String,
    pub operation: ChangeOperation,
    pub document: Value,
}

/// Whether changes of `collection` go to the feed (see the module docs).
fn published(collection: &str) -> bool {
    collection != AUDIT && !collection.ends_with(HIST_SUFFIX) && check_collection(collection, Access::Read).is_ok()
}

impl Platform {
    /// Subscribes to every change committed after this call. A subscriber that falls more than the feed's
    /// capacity behind gets `RecvError::Lagged` and has missed events.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.changes.subscribe()
    }

    /// Publishes one committed change of stored document `document`. Call only after the store write
    /// succeeded.
    pub(crate) fn publish_change(&self, collection: &str, operation: ChangeOperation, document: Value) {
        if !published(collection) {
            return;
        }
        let event = ChangeEvent { collection: collection.to_string(), operation, document };
        // An error only means nobody is subscribed right now; the change is committed either way.
        let _ = self.changes.send(Arc::new(event));
    }

    /// The changed document as `caller` may see it (decrypted, without secrets), or `None` when `caller`
    /// may not read it.
    ///
    /// The decision is [`Caller::can_on_document`] with READ on the stored document: its ACL (in
    /// `metadata._acl` for `*.files`), deny entries enforced, admins unrestricted, and the self rule for a
    /// caller's own user document — the same answer a query by that caller would give. The view is the
    /// one a query returns: `_encrypt` fields decrypted, no `passwordhash`.
    pub fn visible_change(&self, caller: &Caller, event: &ChangeEvent) -> Option<Value> {
        let collection = event.collection.as_str();
        // Events are published only for collections a client may read; checked again so that an event
        // built elsewhere cannot bypass the collection rules.
        if !published(collection) {
            return None;
        }
        if !caller.can_on_document(collection, &event.document, Rights::READ) {
            return None;
        }
        // A document that no longer decrypts is withheld (and logged by `client_view`) rather than sent
        // half-encrypted.
        self.client_view(collection, event.document.clone()).ok()
    }
}
