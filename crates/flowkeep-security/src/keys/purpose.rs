//! [`Purpose`] and [`PurposeKey`]: one key per use, derived from the master key.
//!
//! A key used for two things lets a weakness or a leak in one use break the other (OpenIAP Flow signs
//! tokens with the same bytes it encrypts fields with, so anyone holding the field key can mint tokens).
//! Each purpose here gets its own HKDF label, so the derived keys are independent: learning one tells
//! nothing about another or about the master key.

use zeroize::Zeroizing;

/// What a derived key is for. Each purpose has its own HKDF label and therefore its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Wraps (encrypts at rest) the token signing private keys stored in the database.
    TokenKeyWrap,
    /// Encrypts `_encrypt` document fields.
    FieldEncryption,
    /// Keys the audit trail's hash chain.
    AuditChain,
    /// Signs web session cookies.
    Cookies,
}

impl Purpose {
    /// Every purpose, for tests and for tooling that lists keys.
    pub const ALL: [Purpose; 4] =
        [Purpose::TokenKeyWrap, Purpose::FieldEncryption, Purpose::AuditChain, Purpose::Cookies];

    /// The HKDF `info` label. Versioned: a future change of derivation gets a new label instead of
    /// silently changing the keys of existing installations. **Never change an existing label**: every
    /// value written under the old key would become unreadable.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::TokenKeyWrap => "flowkeep/v1/token-key-wrap",
            Purpose::FieldEncryption => "flowkeep/v1/field-encryption",
            Purpose::AuditChain => "flowkeep/v1/audit-chain",
            Purpose::Cookies => "flowkeep/v1/cookies",
        }
    }
}

/// A 32-byte key for one [`Purpose`], derived from the master key with
/// [`MasterKey::derive`](super::MasterKey::derive).
///
/// Opaque: `Debug` shows only the purpose, the bytes are zeroized on drop, and the only way to the
/// bytes is the explicitly named [`PurposeKey::expose_secret`], meant for handing them to a cipher.
pub struct PurposeKey {
    purpose: Purpose,
    bytes: Zeroizing<[u8; 32]>,
}

impl PurposeKey {
    pub(crate) fn new(purpose: Purpose, bytes: Zeroizing<[u8; 32]>) -> Self {
        PurposeKey { purpose, bytes }
    }

    /// The purpose this key was derived for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The key bytes, to hand to a cipher or MAC. Never log, store or compare them by hand.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl std::fmt::Debug for PurposeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurposeKey").field("purpose", &self.purpose).finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::super::MasterKey;
    use super::*;

    const MASTER_HEX: &str = "8f3a1c5e9b7d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a";

    #[test]
    fn distinct_purposes_give_distinct_keys() {
        let master = MasterKey::generate().unwrap();
        let keys: Vec<[u8; 32]> = Purpose::ALL.iter().map(|&p| *master.derive(p).unwrap().expose_secret()).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in keys.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
        // A purpose key is not the master key either.
        let master_bytes = hex::decode(MASTER_HEX).unwrap();
        let fixed = MasterKey::from_config(MASTER_HEX).unwrap();
        for p in Purpose::ALL {
            assert_ne!(fixed.derive(p).unwrap().expose_secret().as_slice(), master_bytes.as_slice());
        }
    }

    #[test]
    fn derivation_is_stable_across_runs() {
        // Fixed vectors: if these change, every installation's stored keys and encrypted fields become
        // unreadable. Computed independently with Python's hmac/hashlib (RFC 5869 HKDF-SHA256,
        // salt "flowkeep/master-key/v1", info = the label).
        let master = MasterKey::from_config(MASTER_HEX).unwrap();
        let expected = [
            (Purpose::TokenKeyWrap, "d4ce6998a630c010459678fd75a27f7350dd55d00ce11e2742876e5c4a0f680f"),
            (Purpose::FieldEncryption, "dd6cee558604a4139f9aaf88c78be2015d50de9992a54f3ae7f0e6bbec2c8b61"),
            (Purpose::AuditChain, "507c941cb9168bb292c9576a783a88ca4455a0a238a47bc2ad9100310e66c519"),
            (Purpose::Cookies, "5f44a73257cf413f4e5674abfe7fcfc4bee418b1c85de5504a84c475431d40e0"),
        ];
        for (purpose, hex_expected) in expected {
            let key = master.derive(purpose).unwrap();
            assert_eq!(key.purpose(), purpose);
            assert_eq!(hex::encode(key.expose_secret()), hex_expected, "{purpose:?}");
            assert_eq!(key.expose_secret(), master.derive(purpose).unwrap().expose_secret());
        }
    }

    #[test]
    fn debug_shows_only_the_purpose() {
        let key = MasterKey::from_config(MASTER_HEX).unwrap().derive(Purpose::Cookies).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "PurposeKey { purpose: Cookies, .. }");
    }
}
