//! Typed errors of the store. Every message is fit to show to a client: it names the collection, index,
//! field or limit at fault. Client input never causes a panic, only one of these.

use flowkeep_query::QueryError;
use thiserror::Error;

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What went wrong in a store operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A write would give two documents the same key in a unique index (`_id_` included). Formatted like
    /// MongoDB's E11000 error so clients that look for it keep working.
    #[error("E11000 duplicate key error collection: {collection} index: {index} dup key: {key}")]
    DuplicateKey {
        /// The collection written to.
        collection: String,
        /// The unique index that refused the write.
        index: String,
        /// The duplicated key, shown as `{ field: value }`.
        key: String,
    },
    /// A filter, update, projection, sort or pipeline was malformed, or failed to evaluate.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A collection name that is empty, too long, or uses reserved characters or prefixes.
    #[error("invalid collection name '{name}': {reason}")]
    InvalidCollectionName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A document that cannot be stored (not an object, a non-string `_id`, too large, too deep…).
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// An update that would change or remove `_id`, which is immutable.
    #[error("performing an update on the path '_id' would modify the immutable field '_id'")]
    ImmutableId,
    /// Index keys or options that are malformed or unsupported.
    #[error("invalid index: {0}")]
    InvalidIndex(String),
    /// An index with this name (or these keys) exists with different keys or options.
    #[error("index conflict on collection '{collection}': {message}")]
    IndexConflict {
        /// The collection.
        collection: String,
        /// What conflicts.
        message: String,
    },
    /// Collection options that are malformed or unsupported.
    #[error("invalid collection options: {0}")]
    InvalidOptions(String),
    /// `create_collection` on an existing collection with different options.
    #[error("collection '{name}' already exists with different options")]
    CollectionExists {
        /// The collection.
        name: String,
    },
    /// An operation that needs an existing collection did not find it.
    #[error("collection '{name}' not found")]
    CollectionNotFound {
        /// The collection.
        name: String,
    },
    /// An index that does not exist.
    #[error("index '{name}' not found on collection '{collection}'")]
    IndexNotFound {
        /// The collection.
        collection: String,
        /// The index name.
        name: String,
    },
    /// An operation refused by design (e.g. dropping the `_id_` index).
    #[error("{0}")]
    Refused(String),
    /// The SQLite backend failed (IO, corruption, a full disk…).
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store could not run the operation at all (its worker task failed, its data is unreadable).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True if the error was caused by the request (bad input, conflict), false if by the store itself.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, StoreError::Sqlite(_) | StoreError::Unavailable(_))
    }
}
