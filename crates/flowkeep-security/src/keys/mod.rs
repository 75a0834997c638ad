//! Key management: the master key, one derived key per purpose, the token signing key ring, and the
//! OpenIAP Flow `aes_secret` accepted for migration.
//!
//! # The key hierarchy
//!
//! ```text
//! master key (32 random bytes: configured, or a key file generated at first start)
//!   └─ HKDF-SHA256, one label per purpose ─┬─ TokenKeyWrap    ── wraps the Ed25519 token signing keys at rest
//!                                           ├─ FieldEncryption ── `_encrypt` fields
//!                                           ├─ AuditChain      ── the audit hash chain
//!                                           └─ Cookies         ── web session cookies
//! ```
//!
//! * [`MasterKey`] ([`master`]): from configuration or from an owner-only key file beside (never inside)
//!   the database. There is no built-in default: an empty, too short, degenerate or well-known key refuses
//!   to start.
//! * [`PurposeKey`] ([`purpose`]): one subkey per [`Purpose`], so token signing, field encryption, cookies
//!   and the audit chain never share a key (OpenIAP Flow uses `aes_secret[0..32]` for both field encryption
//!   and token signing).
//! * [`SigningKeyRing`] ([`signing`]): Ed25519 token signing keys with a `kid`, stored in the database
//!   encrypted under the [`Purpose::TokenKeyWrap`] key through the [`KeyStore`] trait; rotation keeps the
//!   retired public keys for verification; a JWKS document.
//! * [`LegacySecret`] ([`legacy`]): OpenIAP Flow's `aes_secret`, only to read what OpenIAP Flow wrote.
//!
//! Secret bytes never appear in `Debug` output, and every type holding them zeroizes them on drop.

use thiserror::Error;

pub mod legacy;
pub mod master;
pub mod purpose;
pub mod signing;

pub use legacy::LegacySecret;
pub use master::{key_file_beside, KeyFileStatus, MasterKey, MASTER_KEY_LEN};
pub use purpose::{Purpose, PurposeKey};
pub use signing::{
    ed25519_kid, KeyRingChanges, KeyStore, MemoryKeyStore, SigningKeyRing, StoredSigningKey, SIGNING_ALG,
};

/// Why a key could not be configured, loaded, generated or unwrapped.
///
/// These are operator-facing (start-up and key management) errors. They may name a file path but never
/// contain key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The configured secret is empty (or only whitespace).
    #[error("{what} is empty; {hint}")]
    Empty {
        /// Which secret (for example "the master key").
        what: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// The configured secret is a published or placeholder value.
    #[error("{what} is a well-known value (a published default or placeholder) and must not be used; {hint}")]
    WellKnown {
        /// Which secret.
        what: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// The configured secret has too little entropy to be a key (all bytes equal, a counting sequence).
    #[error("{what} is not random (all bytes equal or a simple sequence); {hint}")]
    Degenerate {
        /// Which secret.
        what: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// The configured secret is shorter than required.
    #[error("{what} is too short: {actual} bytes, at least {min} required; {hint}")]
    TooShort {
        /// Which secret.
        what: &'static str,
        /// The length found.
        actual: usize,
        /// The minimum length.
        min: usize,
        /// How to fix it.
        hint: &'static str,
    },
    /// The master key text is neither 64 hex digits nor base64 of exactly 32 bytes.
    #[error("the master key must be 32 bytes written as 64 hex digits or base64: {0}; {hint}", hint = MASTER_KEY_HINT)]
    InvalidEncoding(String),
    /// The key file is readable or writable by the group or others.
    #[error(
        "the key file {path} has mode {mode:04o}, which lets the group or others access it; \
         run `chmod 600 {path}` (and check who could have read it)"
    )]
    KeyFilePermissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file could not be read or written.
    #[error("key file {path}: {reason}")]
    KeyFileIo {
        /// The key file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The key file exists but does not hold a valid master key.
    #[error("key file {path} does not hold a valid master key: {reason}")]
    KeyFileInvalid {
        /// The key file.
        path: String,
        /// What is wrong with its content.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// A stored signing key could not be decrypted: a different master key, or a tampered record.
    #[error(
        "stored signing key {kid} cannot be decrypted: the master key differs from the one it was stored \
         with, or the record was altered"
    )]
    Unwrap {
        /// The key id of the record.
        kid: String,
    },
    /// A stored signing key record is malformed or inconsistent.
    #[error("stored signing key {kid} is invalid: {reason}")]
    CorruptStoredKey {
        /// The key id of the record (as stored).
        kid: String,
        /// What is wrong.
        reason: String,
    },
    /// The [`KeyStore`] failed.
    #[error("key store: {0}")]
    Store(String),
    /// A key operation failed inside a cryptographic library.
    #[error("key operation failed: {0}")]
    Crypto(String),
}

/// How to make a proper master key, repeated in every master-key error.
pub(crate) const MASTER_KEY_HINT: &str =
    "generate one with `openssl rand -base64 32`, or leave it unset to have a key file generated at first start";

/// Fills `buf` from the operating system's random number generator.
///
/// `OsRng` rather than a thread-local generator: keys and nonces are few, and a failure of the system
/// generator must surface as an error instead of a panic.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    use rand::TryRngCore;
    rand::rngs::OsRng.try_fill_bytes(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// Published or placeholder secrets that must never be accepted as a key, compared case-insensitively
/// after trimming.
///
/// The OpenIAP entries are the `aes_secret` values of OpenIAP Flow's public docker-compose files and the
/// built-in `cookie_secret` default of OpenIAP Flow: every installation that copied them shares them.
const WELL_KNOWN_SECRETS: &[&str] = &[
    // OpenIAP Flow's public docker-compose `aes_secret` values (open-rpa/docker).
    "7TXsxf7cn9EkUqm5h4MEWGjzkxkNCk2K",
    "O1itlrmA47WzxPj95YHD2sZs7IchYaQI25mQ",
    // OpenIAP Flow's default `cookie_secret`.
    "NLgUIsozJaxO38ze0WuHthfj2eb1eIEu",
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "secret",
    "password",
    "passw0rd",
    "default",
    "test",
    "example",
    "admin",
    "letmein",
    "supersecret",
    "mysecret",
    "your-secret",
    "yoursecret",
    "your-secret-key",
    "secretkey",
    "secret-key",
    "0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "12345678901234567890123456789012",
    "abcdefghijklmnopqrstuvwxyz123456",
];

/// Whether `text` (trimmed, case-insensitively) is a published or placeholder secret, or one of those
/// followed by anything up to a total of 32 characters' worth of its first 32 characters (OpenIAP Flow
/// only uses `aes_secret[0..32]`, so a well-known secret with a suffix is still the same key there).
pub(crate) fn is_well_known_text(text: &str) -> bool {
    let text = text.trim();
    WELL_KNOWN_SECRETS
        .iter()
        .any(|known| eq_ignore_case_ct(text, known) || (known.len() >= 32 && starts_with_ignore_case(text, known, 32)))
}

/// Whether the raw key bytes equal the UTF-8 bytes of a well-known secret (for example the hex or
/// base64 encoding of OpenIAP Flow's published docker-compose secret given as a master key).
pub(crate) fn is_well_known_bytes(bytes: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    WELL_KNOWN_SECRETS.iter().any(|known| {
        let known = known.as_bytes();
        let prefix = known.get(..bytes.len().min(known.len())).unwrap_or(known);
        prefix.len() == bytes.len() && bool::from(prefix.ct_eq(bytes))
    })
}

/// Whether the bytes have next to no entropy: all equal (including all zeros), or a counting sequence
/// up or down (`00 01 02 …`, `ff fe fd …`).
pub(crate) fn is_degenerate(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else { return true };
    let all_equal = bytes.iter().all(|&b| b == first);
    let step = |delta: u8| bytes.windows(2).all(|w| matches!(w, [a, b] if a.wrapping_add(delta) == *b));
    all_equal || step(1) || step(u8::MAX)
}

/// Case-insensitive ASCII equality in time independent of where the strings differ (they are secrets).
fn eq_ignore_case_ct(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return false;
    }
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether the first `n` bytes of `text` equal the first `n` of `known`, ignoring ASCII case.
fn starts_with_ignore_case(text: &str, known: &str, n: usize) -> bool {
    match (text.as_bytes().get(..n), known.as_bytes().get(..n)) {
        (Some(a), Some(b)) => eq_ignore_case_ct(&String::from_utf8_lossy(a), &String::from_utf8_lossy(b)),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn well_known_text_is_recognised() {
        assert!(is_well_known_text("changeme"));
        assert!(is_well_known_text("  ChangeMe \n"));
        assert!(is_well_known_text("O1itlrmA47WzxPj95YHD2sZs7IchYaQI25mQ"));
        // Only the first 32 characters matter to OpenIAP Flow, so a suffix does not make it new.
        assert!(is_well_known_text("7TXsxf7cn9EkUqm5h4MEWGjzkxkNCk2Kextra"));
        assert!(!is_well_known_text("k3v9QmZr1xW8tYp2LsN5bH7cJd4fG6aE"));
        assert!(!is_well_known_text("changeme-but-longer"));
    }

    #[test]
    fn degenerate_bytes_are_recognised() {
        assert!(is_degenerate(&[0u8; 32]));
        assert!(is_degenerate(&[0xAAu8; 32]));
        let up: Vec<u8> = (0..32).collect();
        let down: Vec<u8> = (0..32).rev().collect();
        assert!(is_degenerate(&up));
        assert!(is_degenerate(&down));
        assert!(is_degenerate(&[]));
        let mut random = [0u8; 32];
        random_bytes(&mut random).unwrap();
        assert!(!is_degenerate(&random));
    }

    #[test]
    fn well_known_bytes_are_recognised() {
        assert!(is_well_known_bytes(b"NLgUIsozJaxO38ze0WuHthfj2eb1eIEu"));
        assert!(is_well_known_bytes(b"O1itlrmA47WzxPj95YHD2sZs7IchYaQI"));
        assert!(!is_well_known_bytes(&[7u8; 32][..31]));
    }
}
