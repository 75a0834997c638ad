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
    /// A document's `_encrypt` is malformed, or a document to encrypt has no `_id` to bind values to.
    #[error("invalid _encrypt: {0}")]
    InvalidEncryptList(String),
    /// Key material or a key id is unusable (wrong length, bad characters, a duplicate id).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A cryptographic primitive failed (for example the system random number generator).
    #[error("cryptographic failure: {0}")]
    Crypto(String),
    /// An encrypted field is malformed or fails authentication (tampered, copied from another document,
    /// field or collection, or encrypted under another key with the same id).
    #[error("the encrypted field {field:?} cannot be decrypted")]
    DecryptFailed {
        /// The field name.
        field: String,
    },
    /// An encrypted field names a key id that is not in the key ring.
    #[error("the encrypted field {field:?} uses the unknown key {key_id:?}")]
    UnknownFieldKey {
        /// The field name.
        field: String,
        /// The key id written in the value.
        key_id: String,
    },
    /// An encrypted field was written by OpenIAP Flow and no legacy `aes_secret` is configured.
    #[error("the encrypted field {field:?} was written by OpenIAP Flow; configure legacy_aes_secret to read it")]
    LegacySecretMissing {
        /// The field name.
        field: String,
    },
    /// An audit entry cannot be built (for example the sequence number would overflow).
    #[error("audit: {0}")]
    Audit(String),
    /// A key could not be configured, loaded, generated or unwrapped (see [`crate::keys::KeyError`]).
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// A token could not be issued or was refused (see [`crate::tokens::TokenError`]).
    #[error(transparent)]
    Token(#[from] crate::tokens::TokenError),
}
