//! Typed errors of the query language. Every malformed or unsupported input ends here, never in a panic.

use thiserror::Error;

/// Result alias for the query language.
pub type Result<T> = std::result::Result<T, QueryError>;

/// What went wrong while parsing or evaluating a query, update, projection, sort or pipeline.
///
/// The messages are meant for the client: they name the operator or path at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// An operator (`$foo`) that the language does not know.
    #[error("unknown operator: {op}")]
    UnknownOperator { op: String },
    /// A known operator given an argument of the wrong shape or type.
    #[error("{op}: {message}")]
    BadArgument { op: String, message: String },
    /// Server-side JavaScript (`$where`, `$function`, `$accumulator`) is refused by design.
    #[error("{op} is not allowed: server-side JavaScript is disabled")]
    JavaScriptRefused { op: String },
    /// The input nests deeper than the configured limit.
    #[error("input nests deeper than the limit of {limit} levels")]
    TooDeep { limit: usize },
    /// The input is larger than a configured limit.
    #[error("{what} is too large: {size} exceeds the limit of {limit}")]
    TooLarge { what: String, size: usize, limit: usize },
    /// A regular expression that does not compile, or uses a feature without a linear-time guarantee.
    #[error("invalid regular expression /{pattern}/: {message}")]
    BadRegex { pattern: String, message: String },
    /// A field path that is empty or malformed.
    #[error("invalid field path '{path}': {message}")]
    BadPath { path: String, message: String },
    /// An update that cannot be applied to this document (e.g. `$inc` on a string).
    #[error("cannot apply {op} to '{path}': {message}")]
    UpdateFailed { op: String, path: String, message: String },
    /// A collection source (used by `$lookup`) failed.
    #[error("reading collection '{collection}' failed: {message}")]
    Source { collection: String, message: String },
    /// An expression that failed at evaluation time (e.g. division by zero).
    #[error("{op}: {message}")]
    EvalFailed { op: String, message: String },
}

impl QueryError {
    /// Shorthand for [`QueryError::BadArgument`].
    pub fn bad(op: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError::BadArgument { op: op.into(), message: message.into() }
    }

    /// Shorthand for [`QueryError::UnknownOperator`].
    pub fn unknown(op: impl Into<String>) -> Self {
        QueryError::UnknownOperator { op: op.into() }
    }
}
