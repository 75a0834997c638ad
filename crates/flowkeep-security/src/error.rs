//! The typed errors of the security layer. Messages are meant for the client: they say what was refused
//! and why, without echoing secrets (never a password or a hash).

use thiserror::Error;

/// Why a security operation was refused or could not be done.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecurityError {
    /// An `_acl` value (or one of its entries) is malformed.
    #[error("invalid _acl: {0}")]
    InvalidAcl(String),
    /// An ACL has more entries than `max_ace_count` allows after merging duplicates.
    #[error("the _acl has {count} entries, more than the maximum of {max}")]
    TooManyAces {
        /// Entries after merging duplicates and adding the required entries.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The caller would lose its own read or update right on the document.
    #[error("you cannot remove your own {0} access to this document")]
    SelfLockout(&'static str),
    /// The caller lacks a right it needs.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A user or role document breaks the reserved-name rule.
    #[error("reserved name: {0}")]
    ReservedName(String),
    /// A user document cannot be turned into a caller (wrong type, missing id or username).
    #[error("invalid user: {0}")]
    InvalidUser(String),
    /// The user is disabled.
    #[error("user {0} is disabled")]
    UserDisabled(String),
    /// Root is a system identity; it never logs in nor resolves from a user document.
    #[error("root is a system identity and cannot be used as a login")]
    RootIsNotALogin,
    /// The password is empty.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// The password is longer than the accepted maximum.
    #[error("the password is longer than {max} bytes")]
    PasswordTooLong {
        /// The maximum length in bytes.
        max: usize,
    },
    /// Hashing failed inside the hashing library (for example the system RNG failed).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}
