//! The platform's commands, transport-agnostic: every command takes the [`Caller`] it runs as (which only
//! `flowkeep-security` can mint) and a request, and reaches the store only with that caller's scope.
//!
//! * [`platform`]: [`Platform`], the running core: store, key ring and tokens, field encryption, role
//!   cache, audit writer.
//! * [`scope`]: the one conversion from a caller to a store scope ([`scope::store_scope`]).
//! * [`documents`]: query, count, distinct, aggregate, insert, update, replace, upsert and delete, with
//!   ACL defaults and checks, `_version`/`_created`/`_modified`, field encryption and history.
//! * [`collections`]: create (audited), drop (admins only, audited) and list collections.
//! * [`history`]: `<collection>_hist` snapshots and deltas, and rebuilding any version.
//! * [`identity`]: bootstrap of well-known principals and the first admin, sign-in, token → caller
//!   resolution with a role cache, impersonation, rules for the `users` collection.
//! * [`changes`]: the change feed behind `watch`, and what of each change a caller may see.
//! * [`files`]: upload and download of files kept in chunks, ACL on the file's metadata.
//! * [`indexes`]: create, list and drop indexes as the caller.
//! * [`customers`]: `ensurecustomer`, and `explain` of a query.
//! * [`audit_log`]: appending to the audit chain and verifying it.
//! * [`messaging`]: queues and exchanges on the broker: register, send, permissions, `timeout` replies.
//! * [`workitems`]: workitem queues (`mq`) and their items: push, atomic pop with leases, update with
//!   retries and chaining, files; the `WorkitemReady` hook for the broker.
//!
//! The invariant (see ARCHITECTURE.md): no command reaches the store without its caller's scope; the
//! named system context ([`Caller::system_root`]) is used only by bootstrap and housekeeping.

pub mod audit_log;
pub mod changes;
pub mod collections;
pub mod customers;
pub mod documents;
pub mod error;
pub mod files;
pub mod history;
pub mod identity;
pub mod indexes;
pub mod messaging;
pub mod platform;
pub mod scope;
pub mod workitems;

pub use error::{CoreError, Result};
pub use flowkeep_security::Caller;
pub use platform::{Platform, PlatformConfig};
