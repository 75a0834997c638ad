//! The document store: the [`Store`] trait every backend implements, and the embedded SQLite backend
//! ([`SqliteStore`]), the default of the single-binary deployment.
//!
//! The store knows documents, collections and indexes; it knows nothing of users. What a caller may see
//! arrives as a [`Scope`], a first-class argument of every read and of every filtered write, which the
//! backend evaluates *inside* the query (for SQLite: a join on an ACL side table), never as a post-filter.
//! The only unscoped path is [`Scope::system()`], reserved for bootstrap and housekeeping.
//!
//! Query semantics come from `flowkeep-query` alone: backends may narrow candidates with indexes, but
//! every candidate is re-checked with the engine, so results are the same whatever indexes exist.

pub mod error;
pub mod scope;
pub mod sqlite;
pub mod store;
pub mod types;
pub mod validate;

pub use error::{Result, StoreError};
pub use scope::{AclEntry, Scope};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::Store;
pub use types::{
    CollectionInfo, CollectionKind, CollectionOptions, FindOptions, IndexInfo, IndexOptions, ManyOutcome,
    TimeseriesOptions, WriteOutcome,
};
