//! Errors of the platform's commands, split by who is at fault, with a stable code each transport maps
//! to its own status (gRPC code, HTTP status, OpenIAP `error` reply).

use flowkeep_security::SecurityError;
use flowkeep_store::StoreError;
use thiserror::Error;

/// Result alias for commands.
pub type Result<T> = std::result::Result<T, CoreError>;

/// Why a command failed. Messages are safe to show to the client; internal detail goes to the log.
#[derive(Debug, Error)]
pub enum CoreError {
    /// The request is malformed or names something invalid (the message says what).
    #[error("{0}")]
    InvalidRequest(String),
    /// No valid credentials: bad token, bad password, disabled user.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// The document or collection does not exist (or the caller may not see it).
    #[error("{0}")]
    NotFound(String),
    /// A unique index or another invariant would be violated.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again later.
    #[error("{0}")]
    Throttled(String),
    /// The server failed; details are logged, not returned.
    #[error("internal error ({0})")]
    Internal(String),
}

impl CoreError {
    /// A stable, transport-neutral code.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidRequest(_) => "invalid_request",
            CoreError::Unauthenticated(_) => "unauthenticated",
            CoreError::AccessDenied(_) => "access_denied",
            CoreError::NotFound(_) => "not_found",
            CoreError::Conflict(_) => "conflict",
            CoreError::Throttled(_) => "throttled",
            CoreError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::DuplicateKey { .. } => CoreError::Conflict(e.to_string()),
            _ if e.is_client_error() => CoreError::InvalidRequest(e.to_string()),
            _ => {
                tracing::error!(error = %e, "store failure");
                CoreError::Internal("store".into())
            }
        }
    }
}

impl From<SecurityError> for CoreError {
    fn from(e: SecurityError) -> Self {
        CoreError::AccessDenied(e.to_string())
    }
}
