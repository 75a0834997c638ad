//! [`SigningKeyRing`]: the Ed25519 keys that sign tokens, their storage at rest, rotation and JWKS.
//!
//! # Why asymmetric keys
//!
//! OpenIAP Flow signs tokens with HMAC under `aes_secret[0..32]`, so every party that can check a token
//! can also mint one, and the token key is the field encryption key. Here tokens are signed with Ed25519
//! (JWT `alg: EdDSA`): the private key never leaves the server, and anyone may verify with the public
//! keys published as a JWKS document.
//!
//! # Keys at rest
//!
//! Keys are generated at first start and stored in the database (so a backup of the database plus the
//! master key restores them) as [`StoredSigningKey`] records: the public key in clear, the private key
//! encrypted with AES-256-GCM under the [`Purpose::TokenKeyWrap`] key, with a random nonce and the `kid`
//! as associated data (so a ciphertext moved to another record fails to decrypt). Storage goes through
//! the [`KeyStore`] trait, implemented by the core over the store.
//!
//! # Rotation and retention
//!
//! One key is active (signs new tokens); [`SigningKeyRing::rotate`] makes a new active key and retires the
//! old one, whose public key keeps verifying the tokens it signed. A retired key is dropped by
//! [`SigningKeyRing::prune`] once it has been retired longer than the retention, which must be at least the
//! long-token lifetime so that no unexpired token loses its key.
//!
//! The pure methods return the [`KeyRingChanges`] to persist, so a caller with an async store can apply
//! them itself; the `*_in` methods do it through a [`KeyStore`].
//!
//! Times are Unix seconds, passed in by the caller (this crate reads no clock).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::purpose::{Purpose, PurposeKey};
use super::{random_bytes, KeyError};

/// The JWT algorithm of every Flowkeep signing key.
pub const SIGNING_ALG: &str = "EdDSA";

/// AES-GCM nonce length in bytes (the standard 96 bits).
const NONCE_LEN: usize = 12;

/// A signing key as stored in the database: JSON-friendly, private key encrypted.
///
/// Safe to log and back up: without the master key the private part is opaque ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSigningKey {
    /// The key id: the RFC 7638 JWK thumbprint of the public key (base64url SHA-256).
    pub kid: String,
    /// The JWT algorithm, always [`SIGNING_ALG`].
    pub alg: String,
    /// The 32-byte Ed25519 public key, base64url without padding (the JWK `x`).
    pub public_key: String,
    /// The 32-byte Ed25519 private key (seed) encrypted with AES-256-GCM under the
    /// [`Purpose::TokenKeyWrap`] key, with the `kid` as associated data; standard base64 of ciphertext
    /// and tag.
    pub encrypted_private_key: String,
    /// The 12-byte AES-GCM nonce, standard base64.
    pub nonce: String,
    /// When the key was generated (Unix seconds).
    pub created_at: i64,
    /// When the key stopped signing (Unix seconds); `None` for the active key.
    pub retired_at: Option<i64>,
}

/// Where signing keys are persisted. The core implements it over the store (a system-scoped collection);
/// [`MemoryKeyStore`] serves tests and tools.
pub trait KeyStore {
    /// Every stored key, in any order.
    fn load_keys(&self) -> Result<Vec<StoredSigningKey>, KeyError>;
    /// Inserts the key, or replaces the stored key with the same `kid` (retiring a key saves it again).
    fn save_key(&self, key: &StoredSigningKey) -> Result<(), KeyError>;
    /// Removes the key with this `kid`; removing a missing key is not an error.
    fn delete_key(&self, kid: &str) -> Result<(), KeyError>;
}

/// A [`KeyStore`] in memory, for tests and tools.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<String, StoredSigningKey>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every stored record, ordered by `kid`.
    pub fn records(&self) -> Vec<StoredSigningKey> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredSigningKey>> {
        // A panic while holding the lock cannot leave a half-written record (inserts are single calls),
        // so a poisoned map is still consistent.
        self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KeyStore for MemoryKeyStore {
    fn load_keys(&self) -> Result<Vec<StoredSigningKey>, KeyError> {
        Ok(self.records())
    }

    fn save_key(&self, key: &StoredSigningKey) -> Result<(), KeyError> {
        self.lock().insert(key.kid.clone(), key.clone());
        Ok(())
    }

    fn delete_key(&self, kid: &str) -> Result<(), KeyError> {
        self.lock().remove(kid);
        Ok(())
    }
}

/// Records a ring operation changed, for the caller to persist: save (insert or replace by `kid`) then
/// delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRingChanges {
    /// Records to insert or replace.
    pub save: Vec<StoredSigningKey>,
    /// Key ids to delete.
    pub delete: Vec<String>,
}

impl KeyRingChanges {
    /// Whether there is nothing to persist.
    pub fn is_empty(&self) -> bool {
        self.save.is_empty() && self.delete.is_empty()
    }

    /// Persists the changes: saves first (a new active key must be durable before anything depends on
    /// it), then deletes.
    pub fn apply(&self, store: &dyn KeyStore) -> Result<(), KeyError> {
        for record in &self.save {
            store.save_key(record)?;
        }
        for kid in &self.delete {
            store.delete_key(kid)?;
        }
        Ok(())
    }
}

/// One key of the ring: the public part (always) and its stored record.
struct RingKey {
    record: StoredSigningKey,
    public: [u8; 32],
    decoding: DecodingKey,
}

/// The token signing keys: one active key (with its private part, to sign) and the retired keys whose
/// public parts still verify.
pub struct SigningKeyRing {
    /// Every live key, the active one first, then the retired ones newest first.
    keys: Vec<RingKey>,
    /// The active key's private key as PKCS#8 DER, in the form `jsonwebtoken` signs with.
    encoding: EncodingKey,
    retention_secs: i64,
}

impl SigningKeyRing {
    /// Loads the ring from the store; on first start (no key at all, or none active) generates the first
    /// active key and saves it. Retired keys past the retention are deleted.
    ///
    /// A record that cannot be decrypted (a different master key) or is inconsistent is an error, never
    /// a reason to generate a fresh key: that would silently invalidate every issued token and hide a
    /// misconfiguration.
    pub fn load_or_init(
        store: &dyn KeyStore,
        wrap: &PurposeKey,
        retention: Duration,
        now: i64,
    ) -> Result<Self, KeyError> {
        let records = store.load_keys()?;
        let (ring, changes) = Self::from_records(&records, wrap, retention, now)?;
        changes.apply(store)?;
        Ok(ring)
    }

    /// The pure part of [`SigningKeyRing::load_or_init`]: builds the ring from stored records and returns
    /// the changes to persist (a generated first key, keys retired by a repair, pruned keys).
    ///
    /// If several records are active (a crash between saving a new key and retiring the old one), the
    /// newest is kept active and the others are retired as of its creation.
    pub fn from_records(
        records: &[StoredSigningKey],
        wrap: &PurposeKey,
        retention: Duration,
        now: i64,
    ) -> Result<(Self, KeyRingChanges), KeyError> {
        check_wrap_purpose(wrap)?;
        let retention_secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let mut changes = KeyRingChanges::default();

        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            if keys.iter().any(|k: &RingKey| k.record.kid == record.kid) {
                return Err(corrupt(&record.kid, "the key id is stored twice"));
            }
            keys.push(ring_key(record.clone())?);
        }
        // Newest first; ties broken by kid so the choice is the same on every node.
        keys.sort_by(|a, b| {
            b.record.created_at.cmp(&a.record.created_at).then_with(|| a.record.kid.cmp(&b.record.kid))
        });

        let active_index = keys.iter().position(|k| k.record.retired_at.is_none());
        let encoding = match active_index {
            Some(index) => {
                let active = keys.remove(index);
                let encoding = unwrap_private(&active.record, &active.public, wrap)?;
                let activated = active.record.created_at;
                for key in keys.iter_mut().filter(|k| k.record.retired_at.is_none()) {
                    key.record.retired_at = Some(activated);
                    changes.save.push(key.record.clone());
                }
                keys.insert(0, active);
                encoding
            }
            None => {
                let (key, encoding) = generate(wrap, now)?;
                changes.save.push(key.record.clone());
                keys.insert(0, key);
                encoding
            }
        };
        // Retired keys newest-retired first after the active one.
        if let Some(retired) = keys.get_mut(1..) {
            retired.sort_by_key(|k| std::cmp::Reverse(k.record.retired_at));
        }

        let mut ring = SigningKeyRing { keys, encoding, retention_secs };
        let pruned = ring.prune(now);
        changes.delete.extend(pruned.delete);
        Ok((ring, changes))
    }

    /// Generates a new active key and retires the current one (kept for verification until pruned).
    /// Returns the records to persist: the new key and the retired one.
    pub fn rotate(&mut self, wrap: &PurposeKey, now: i64) -> Result<KeyRingChanges, KeyError> {
        check_wrap_purpose(wrap)?;
        let (key, encoding) = generate(wrap, now)?;
        let mut changes = KeyRingChanges { save: vec![key.record.clone()], delete: Vec::new() };
        if let Some(old) = self.keys.first_mut() {
            old.record.retired_at = Some(now);
            changes.save.push(old.record.clone());
        }
        self.keys.insert(0, key);
        self.encoding = encoding;
        Ok(changes)
    }

    /// [`SigningKeyRing::rotate`], persisted through `store`. The new key is saved before the old one is
    /// marked retired, so a crash in between leaves two active records, which loading repairs.
    pub fn rotate_in(&mut self, store: &dyn KeyStore, wrap: &PurposeKey, now: i64) -> Result<String, KeyError> {
        let changes = self.rotate(wrap, now)?;
        changes.apply(store)?;
        Ok(self.active_kid().to_owned())
    }

    /// Drops the retired keys retired longer ago than the retention; tokens they signed no longer verify.
    /// Returns the key ids to delete from the store. The active key is never pruned.
    pub fn prune(&mut self, now: i64) -> KeyRingChanges {
        let retention = self.retention_secs;
        let mut changes = KeyRingChanges::default();
        let mut index = 0usize;
        self.keys.retain(|key| {
            let keep =
                index == 0 || key.record.retired_at.is_none_or(|retired| now.saturating_sub(retired) <= retention);
            index += 1;
            if !keep {
                changes.delete.push(key.record.kid.clone());
            }
            keep
        });
        changes
    }

    /// [`SigningKeyRing::prune`], persisted through `store`. Returns the pruned key ids.
    pub fn prune_in(&mut self, store: &dyn KeyStore, now: i64) -> Result<Vec<String>, KeyError> {
        let changes = self.prune(now);
        changes.apply(store)?;
        Ok(changes.delete)
    }

    /// The key id of the active key, which signs new tokens.
    pub fn active_kid(&self) -> &str {
        self.keys.first().map(|k| k.record.kid.as_str()).unwrap_or_default()
    }

    /// Every live key id (active first), in JWKS order.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.record.kid.as_str()).collect()
    }

    /// How long a retired key is kept for verification.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.retention_secs).unwrap_or(0))
    }

    /// The records of every live key, as they are (or should be) stored.
    pub fn records(&self) -> Vec<StoredSigningKey> {
        self.keys.iter().map(|k| k.record.clone()).collect()
    }

    /// The JWKS document of every live key (active and retired, not pruned):
    /// `{"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}]}`.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(k.public),
                    "kid": k.record.kid,
                    "alg": SIGNING_ALG,
                    "use": "sig",
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// The active key id and its signing key.
    pub(crate) fn signer(&self) -> (&str, &EncodingKey) {
        (self.active_kid(), &self.encoding)
    }

    /// The verification key for `kid`, if it is live.
    pub(crate) fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|k| k.record.kid == kid).map(|k| &k.decoding)
    }
}

impl std::fmt::Debug for SigningKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRing")
            .field("active_kid", &self.active_kid())
            .field("kids", &self.kids())
            .field("retention_secs", &self.retention_secs)
            .finish_non_exhaustive()
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical JWK members in
/// lexicographic order, base64url. Standard, so a verifier can recompute it from the JWKS.
pub fn ed25519_kid(public: &[u8; 32]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn check_wrap_purpose(wrap: &PurposeKey) -> Result<(), KeyError> {
    if wrap.purpose() == Purpose::TokenKeyWrap {
        Ok(())
    } else {
        // One key per purpose: a field or cookie key must never protect the token keys.
        Err(KeyError::Crypto(format!("signing keys are wrapped with the TokenKeyWrap key, not {:?}", wrap.purpose())))
    }
}

fn corrupt(kid: &str, reason: &str) -> KeyError {
    KeyError::CorruptStoredKey { kid: kid.to_owned(), reason: reason.to_owned() }
}

fn cipher(wrap: &PurposeKey) -> Result<Aes256Gcm, KeyError> {
    Aes256Gcm::new_from_slice(wrap.expose_secret()).map_err(|e| KeyError::Crypto(format!("AES-256-GCM key: {e}")))
}

/// Checks a record's public part and builds its ring entry (the private part is not decrypted here:
/// retired keys never sign, so their private key is never needed).
fn ring_key(record: StoredSigningKey) -> Result<RingKey, KeyError> {
    if record.alg != SIGNING_ALG {
        return Err(corrupt(&record.kid, &format!("unsupported algorithm {:?}", record.alg)));
    }
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&record.public_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| corrupt(&record.kid, "the public key is not 32 bytes of base64url"))?;
    VerifyingKey::from_bytes(&public).map_err(|_| corrupt(&record.kid, "the public key is not an Ed25519 point"))?;
    if ed25519_kid(&public) != record.kid {
        return Err(corrupt(&record.kid, "the key id does not match the public key"));
    }
    // `jsonwebtoken` takes the raw 32-byte Ed25519 public key as its "DER" for EdDSA.
    let decoding = DecodingKey::from_ed_der(&public);
    Ok(RingKey { record, public, decoding })
}

/// Decrypts a record's private key and checks that it belongs to the record's public key.
fn unwrap_private(record: &StoredSigningKey, public: &[u8; 32], wrap: &PurposeKey) -> Result<EncodingKey, KeyError> {
    let nonce: [u8; NONCE_LEN] = STANDARD
        .decode(&record.nonce)
        .ok()
        .and_then(|bytes| <[u8; NONCE_LEN]>::try_from(bytes).ok())
        .ok_or_else(|| corrupt(&record.kid, "the nonce is not 12 bytes of base64"))?;
    let ciphertext = STANDARD
        .decode(&record.encrypted_private_key)
        .map_err(|_| corrupt(&record.kid, "the encrypted private key is not base64"))?;
    let plain = Zeroizing::new(
        cipher(wrap)?
            .decrypt(&nonce.into(), Payload { msg: &ciphertext, aad: record.kid.as_bytes() })
            .map_err(|_| KeyError::Unwrap { kid: record.kid.clone() })?,
    );
    let seed = Zeroizing::new(
        <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| corrupt(&record.kid, "the private key is not 32 bytes"))?,
    );
    let signing = SigningKey::from_bytes(&seed);
    if signing.verifying_key().to_bytes() != *public {
        return Err(corrupt(&record.kid, "the private key does not match the public key"));
    }
    encoding_key(&signing, &record.kid)
}

fn encoding_key(signing: &SigningKey, kid: &str) -> Result<EncodingKey, KeyError> {
    let der = signing.to_pkcs8_der().map_err(|e| corrupt(kid, &format!("PKCS#8 encoding: {e}")))?;
    Ok(EncodingKey::from_ed_der(der.as_bytes()))
}

/// Generates a new active key and its encrypted record.
fn generate(wrap: &PurposeKey, now: i64) -> Result<(RingKey, EncodingKey), KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    random_bytes(seed.as_mut_slice())?;
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    let kid = ed25519_kid(&public);

    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let ciphertext = cipher(wrap)?
        .encrypt(&nonce.into(), Payload { msg: seed.as_slice(), aad: kid.as_bytes() })
        .map_err(|e| KeyError::Crypto(format!("AES-256-GCM encrypt: {e}")))?;

    let encoding = encoding_key(&signing, &kid)?;
    let record = StoredSigningKey {
        kid,
        alg: SIGNING_ALG.to_owned(),
        public_key: URL_SAFE_NO_PAD.encode(public),
        encrypted_private_key: STANDARD.encode(ciphertext),
        nonce: STANDARD.encode(nonce),
        created_at: now,
        retired_at: None,
    };
    Ok((ring_key(record)?, encoding))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::super::MasterKey;
    use super::*;

    const DAY: i64 = 86_400;
    const RETENTION: Duration = Duration::from_secs(30 * 86_400);

    fn wrap_key(master: &MasterKey) -> PurposeKey {
        master.derive(Purpose::TokenKeyWrap).unwrap()
    }

    #[test]
    fn first_start_generates_and_saves_one_active_key() {
        let master = MasterKey::generate().unwrap();
        let store = MemoryKeyStore::new();
        let ring = SigningKeyRing::load_or_init(&store, &wrap_key(&master), RETENTION, 1_000).unwrap();
        let records = store.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kid, ring.active_kid());
        assert_eq!(records[0].created_at, 1_000);
        assert_eq!(records[0].retired_at, None);
        assert_eq!(records[0].alg, "EdDSA");
        // Loading again finds the same key and changes nothing.
        let again = SigningKeyRing::load_or_init(&store, &wrap_key(&master), RETENTION, 2_000).unwrap();
        assert_eq!(again.active_kid(), ring.active_kid());
        assert_eq!(store.records(), records);
    }

    #[test]
    fn stored_private_key_is_encrypted_and_needs_the_right_master_key() {
        let master = MasterKey::generate().unwrap();
        let store = MemoryKeyStore::new();
        SigningKeyRing::load_or_init(&store, &wrap_key(&master), RETENTION, 0).unwrap();
        let record = store.records().remove(0);

        // Recover the plaintext private key with the right key, then look for it in the serialised form.
        let nonce: [u8; 12] = STANDARD.decode(&record.nonce).unwrap().try_into().unwrap();
        let ct = STANDARD.decode(&record.encrypted_private_key).unwrap();
        let seed = cipher(&wrap_key(&master))
            .unwrap()
            .decrypt(&nonce.into(), Payload { msg: &ct, aad: record.kid.as_bytes() })
            .unwrap();
        assert_eq!(seed.len(), 32);
        assert_eq!(
            SigningKey::from_bytes(&seed.clone().try_into().unwrap()).verifying_key().to_bytes().to_vec(),
            URL_SAFE_NO_PAD.decode(&record.public_key).unwrap()
        );
        let json = serde_json::to_string(&record).unwrap();
        for encoded in [STANDARD.encode(&seed), URL_SAFE_NO_PAD.encode(&seed), hex::encode(&seed)] {
            assert!(!json.contains(&encoded), "private key visible in {json}");
        }
        assert!(!json.as_bytes().windows(32).any(|w| w == seed.as_slice()));
        let der = SigningKey::from_bytes(&seed.clone().try_into().unwrap()).to_pkcs8_der().unwrap();
        assert!(!json.contains(&STANDARD.encode(der.as_bytes())));

        // Another master key cannot load it, and nothing is silently regenerated.
        let other = MasterKey::generate().unwrap();
        let err = SigningKeyRing::load_or_init(&store, &wrap_key(&other), RETENTION, 0).unwrap_err();
        assert_eq!(err, KeyError::Unwrap { kid: record.kid.clone() });
        assert_eq!(store.records().len(), 1);
        // Nor can another purpose key of the right master key.
        let cookies = master.derive(Purpose::Cookies).unwrap();
        assert!(SigningKeyRing::load_or_init(&store, &cookies, RETENTION, 0).is_err());
    }

    #[test]
    fn tampered_records_are_refused() {
        let master = MasterKey::generate().unwrap();
        let wrap = wrap_key(&master);
        let (ring, changes) = SigningKeyRing::from_records(&[], &wrap, RETENTION, 0).unwrap();
        let record = changes.save[0].clone();
        assert_eq!(record.kid, ring.active_kid());

        // The ciphertext moved under another kid fails: the kid is the associated data. (The other
        // record's kid must match its public key, so move the public key too.)
        let (_, other) = SigningKeyRing::from_records(&[], &wrap, RETENTION, 0).unwrap();
        let mut swapped = other.save[0].clone();
        swapped.encrypted_private_key = record.encrypted_private_key.clone();
        swapped.nonce = record.nonce.clone();
        assert!(matches!(SigningKeyRing::from_records(&[swapped], &wrap, RETENTION, 0), Err(KeyError::Unwrap { .. })));

        let mut wrong_kid = record.clone();
        wrong_kid.kid = "not-the-thumbprint".to_owned();
        assert!(matches!(
            SigningKeyRing::from_records(&[wrong_kid], &wrap, RETENTION, 0),
            Err(KeyError::CorruptStoredKey { .. })
        ));
        let mut wrong_alg = record.clone();
        wrong_alg.alg = "HS256".to_owned();
        assert!(matches!(
            SigningKeyRing::from_records(&[wrong_alg], &wrap, RETENTION, 0),
            Err(KeyError::CorruptStoredKey { .. })
        ));
        assert!(matches!(
            SigningKeyRing::from_records(&[record.clone(), record], &wrap, RETENTION, 0),
            Err(KeyError::CorruptStoredKey { .. })
        ));
    }

    #[test]
    fn rotate_retires_and_prune_drops_after_retention() {
        let master = MasterKey::generate().unwrap();
        let wrap = wrap_key(&master);
        let store = MemoryKeyStore::new();
        let mut ring = SigningKeyRing::load_or_init(&store, &wrap, RETENTION, 0).unwrap();
        let first = ring.active_kid().to_owned();
        let second = ring.rotate_in(&store, &wrap, 10 * DAY).unwrap();
        assert_ne!(first, second);
        assert_eq!(ring.kids(), vec![second.as_str(), first.as_str()]);
        let stored: BTreeMap<String, StoredSigningKey> =
            store.records().into_iter().map(|r| (r.kid.clone(), r)).collect();
        assert_eq!(stored[&first].retired_at, Some(10 * DAY));
        assert_eq!(stored[&second].retired_at, None);

        // Within the retention the retired key stays.
        assert!(ring.prune_in(&store, 40 * DAY).unwrap().is_empty());
        assert!(ring.decoding_key(&first).is_some());
        // Past it, it goes, from the ring and the store.
        assert_eq!(ring.prune_in(&store, 40 * DAY + 1).unwrap(), vec![first.clone()]);
        assert!(ring.decoding_key(&first).is_none());
        assert_eq!(store.records().len(), 1);
        // The active key is never pruned, however old.
        assert!(ring.prune_in(&store, 1_000 * DAY).unwrap().is_empty());
        assert_eq!(ring.active_kid(), second);

        // A reload sees the same ring.
        let reloaded = SigningKeyRing::load_or_init(&store, &wrap, RETENTION, 1_000 * DAY).unwrap();
        assert_eq!(reloaded.kids(), vec![second.as_str()]);
    }

    #[test]
    fn loading_repairs_two_active_keys_and_prunes_old_ones() {
        let master = MasterKey::generate().unwrap();
        let wrap = wrap_key(&master);
        let (_, a) = SigningKeyRing::from_records(&[], &wrap, RETENTION, 100).unwrap();
        let (_, b) = SigningKeyRing::from_records(&[], &wrap, RETENTION, 200).unwrap();
        let (a, b) = (a.save[0].clone(), b.save[0].clone());
        // A crash between saving the new key and retiring the old one leaves both active.
        let (ring, changes) = SigningKeyRing::from_records(&[a.clone(), b.clone()], &wrap, RETENTION, 300).unwrap();
        assert_eq!(ring.active_kid(), b.kid);
        assert_eq!(changes.save.len(), 1);
        assert_eq!(changes.save[0].kid, a.kid);
        assert_eq!(changes.save[0].retired_at, Some(200));
        assert!(changes.delete.is_empty());

        // Only retired keys, all past retention: they are pruned and a new active key is generated.
        let mut old = a;
        old.retired_at = Some(0);
        let (ring, changes) = SigningKeyRing::from_records(&[old.clone()], &wrap, RETENTION, 365 * DAY).unwrap();
        assert_ne!(ring.active_kid(), old.kid);
        assert_eq!(changes.delete, vec![old.kid]);
        assert_eq!(changes.save.len(), 1);
        assert_eq!(ring.kids().len(), 1);
    }

    #[test]
    fn jwks_lists_every_live_key_with_its_public_key() {
        let master = MasterKey::generate().unwrap();
        let wrap = wrap_key(&master);
        let store = MemoryKeyStore::new();
        let mut ring = SigningKeyRing::load_or_init(&store, &wrap, RETENTION, 0).unwrap();
        ring.rotate_in(&store, &wrap, DAY).unwrap();
        ring.rotate_in(&store, &wrap, 2 * DAY).unwrap();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3);
        let records: BTreeMap<String, StoredSigningKey> =
            store.records().into_iter().map(|r| (r.kid.clone(), r)).collect();
        for (jwk, kid) in keys.iter().zip(ring.kids()) {
            assert_eq!(jwk["kid"], kid);
            assert_eq!(jwk["kty"], "OKP");
            assert_eq!(jwk["crv"], "Ed25519");
            assert_eq!(jwk["alg"], "EdDSA");
            assert_eq!(jwk["use"], "sig");
            let x = jwk["x"].as_str().unwrap();
            assert_eq!(x, records[kid].public_key);
            let public: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
            assert_eq!(ed25519_kid(&public), kid);
            // jsonwebtoken can build a verifier from the published JWK.
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
            DecodingKey::from_jwk(&parsed).unwrap();
        }
        ring.prune(2 * DAY + RETENTION.as_secs() as i64 + 1);
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
        let x = URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert_eq!(ed25519_kid(&x.try_into().unwrap()), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn wrong_purpose_key_is_refused() {
        let master = MasterKey::generate().unwrap();
        let field = master.derive(Purpose::FieldEncryption).unwrap();
        assert!(matches!(SigningKeyRing::from_records(&[], &field, RETENTION, 0), Err(KeyError::Crypto(_))));
    }
}
