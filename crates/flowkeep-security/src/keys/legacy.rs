//! [`LegacySecret`]: OpenIAP Flow's `aes_secret`, accepted only to read what OpenIAP Flow wrote (its
//! HS256 tokens and its encrypted fields) during a migration.
//!
//! OpenIAP Flow uses `aes_secret.substring(0, 32)` as raw UTF-8 bytes, with no key derivation, both as
//! the AES-256 field key and as the HS256 token key. Flowkeep never writes anything with it.

use zeroize::Zeroizing;

use super::{is_degenerate, is_well_known_text, KeyError};

/// The fewest characters accepted in a legacy secret. OpenIAP Flow's field encryption needs 32 (a
/// shorter secret makes it throw), but its token signing takes any length; below this an HMAC key is
/// too weak to trust even for migration.
pub const LEGACY_SECRET_MIN_CHARS: usize = 16;

/// OpenIAP Flow's `aes_secret`, checked and reduced to the key bytes OpenIAP Flow actually used.
///
/// Zeroized on drop; `Debug` never shows it.
pub struct LegacySecret {
    key: Zeroizing<Vec<u8>>,
}

const WHAT: &str = "legacy_aes_secret";
const HINT: &str = "set it to the aes_secret of the OpenIAP Flow installation being migrated, or leave it unset";

impl LegacySecret {
    /// Checks a configured `legacy_aes_secret` and keeps OpenIAP Flow's key: its first 32 characters.
    ///
    /// Refused: empty, a well-known value (OpenIAP Flow's public docker-compose secrets, placeholders),
    /// one character repeated or a counting sequence (`abcdef…`), or fewer than [`LEGACY_SECRET_MIN_CHARS`] characters. Accepting a
    /// published secret would let anyone who read those files mint tokens this server accepts.
    pub fn new(aes_secret: &str) -> Result<Self, KeyError> {
        if aes_secret.trim().is_empty() {
            return Err(KeyError::Empty { what: WHAT, hint: HINT });
        }
        if is_well_known_text(aes_secret) {
            return Err(KeyError::WellKnown { what: WHAT, hint: HINT });
        }
        let chars = aes_secret.encode_utf16().count();
        if chars < LEGACY_SECRET_MIN_CHARS {
            return Err(KeyError::TooShort { what: WHAT, actual: chars, min: LEGACY_SECRET_MIN_CHARS, hint: HINT });
        }
        let key = Zeroizing::new(openiap_key_bytes(aes_secret));
        if is_degenerate(&key) {
            return Err(KeyError::Degenerate { what: WHAT, hint: HINT });
        }
        Ok(LegacySecret { key })
    }

    /// The key bytes OpenIAP Flow uses for HS256 tokens and AES-256 fields: `aes_secret.substring(0, 32)`
    /// encoded as UTF-8 (32 bytes for an ASCII secret).
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }
}

impl std::fmt::Debug for LegacySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacySecret(..)")
    }
}

/// `Buffer.from(secret.substring(0, 32))` as Node.js computes it: JavaScript strings count UTF-16 code
/// units, and a surrogate pair cut in half by `substring` becomes U+FFFD when encoded as UTF-8, which is
/// exactly what `from_utf16_lossy` does.
fn openiap_key_bytes(secret: &str) -> Vec<u8> {
    let units: Vec<u16> = secret.encode_utf16().take(32).collect();
    String::from_utf16_lossy(&units).into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn key_is_the_first_32_characters() {
        let secret = LegacySecret::new("k3v9QmZr1xW8tYp2LsN5bH7cJd4fG6aEzzzzzz").unwrap();
        assert_eq!(secret.key_bytes(), b"k3v9QmZr1xW8tYp2LsN5bH7cJd4fG6aE");
        let short = LegacySecret::new("k3v9QmZr1xW8tYp2Ls").unwrap();
        assert_eq!(short.key_bytes(), b"k3v9QmZr1xW8tYp2Ls");
    }

    #[test]
    fn non_ascii_follows_javascript_substring() {
        // 31 ASCII characters then an emoji (a surrogate pair): substring(0, 32) keeps only its high
        // surrogate, which Node encodes as U+FFFD.
        let secret = format!("{}\u{1F600}tail", "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p");
        let key = openiap_key_bytes(&secret);
        let mut expected = b"a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p".to_vec();
        expected.extend_from_slice("\u{FFFD}".as_bytes());
        assert_eq!(key, expected);
        // "é" is one UTF-16 unit but two UTF-8 bytes.
        assert_eq!(openiap_key_bytes(&"é".repeat(40)).len(), 64);
    }

    #[test]
    fn weak_legacy_secrets_are_refused() {
        assert!(matches!(LegacySecret::new(""), Err(KeyError::Empty { .. })));
        assert!(matches!(LegacySecret::new("  "), Err(KeyError::Empty { .. })));
        assert!(matches!(LegacySecret::new("O1itlrmA47WzxPj95YHD2sZs7IchYaQI25mQ"), Err(KeyError::WellKnown { .. })));
        assert!(matches!(LegacySecret::new("7TXsxf7cn9EkUqm5h4MEWGjzkxkNCk2K"), Err(KeyError::WellKnown { .. })));
        assert!(matches!(LegacySecret::new("changeme"), Err(KeyError::WellKnown { .. })));
        assert!(matches!(LegacySecret::new("shortsecret"), Err(KeyError::TooShort { .. })));
        assert!(matches!(LegacySecret::new(&"x".repeat(40)), Err(KeyError::Degenerate { .. })));
        assert_eq!(format!("{:?}", LegacySecret::new("k3v9QmZr1xW8tYp2LsN5bH7cJd4fG6aE").unwrap()), "LegacySecret(..)");
    }
}
