//! Field encryption: the top-level fields a document lists in `_encrypt` are stored encrypted.
//!
//! # Stored format
//!
//! Flowkeep writes one self-describing string per encrypted value:
//!
//! ```text
//! $fk1$<key id>$<base64url nonce (12 bytes)>$<base64url ciphertext ‖ 16-byte tag>
//! ```
//!
//! * AES-256-GCM with a fresh random 96-bit nonce per value (safe for about 2³² values per key; rotate
//!   keys long before that with [`FieldCrypter::reencrypt_document`]).
//! * The key id names the key of the [`FieldCrypter`]'s ring that encrypted the value, so keys can rotate
//!   while old values stay readable.
//! * The associated data binds the format version, key id, collection, document `_id` and field name,
//!   each length-prefixed (so `("ab","c")` and `("a","bc")` differ). A value copied to another field,
//!   document or collection fails to authenticate instead of decrypting in the wrong place.
//! * The plaintext starts with one type byte: `s` for a string (UTF-8 follows) and `j` for any other JSON
//!   value (compact JSON follows), so numbers, booleans, objects and arrays come back with their type.
//!
//! # Which fields
//!
//! * `_encrypt` must be absent, `null`, or an array of strings; on write anything else is refused
//!   ([`SecurityError::InvalidEncryptList`]) rather than storing a value the client meant to protect in
//!   clear text. Reads are lenient and use the string entries they find.
//! * Names are top-level keys taken literally (`"a.b"` is the key `a.b`, not a path).
//! * **Every name starting with `_` is skipped.** Those are system fields (`_id`, `_acl`, `_type`,
//!   `_encrypt`, `_version`, `_created*`, `_modified*`, …) that the store, the ACL filter and history must
//!   read in clear; encrypting them would break access control.
//! * Every present value except `null` is encrypted, including `false`, `0` and `""`. (OpenIAP Flow
//!   encrypts truthy values only, which stores `false` and `0` in clear and so leaks a boolean field
//!   completely: "encrypted" means true.) `null` stays `null`: it carries no value to protect.
//! * A value that already authenticates under this document's binding (a document read without decrypting
//!   and written back) is kept, never encrypted twice.
//!
//! # OpenIAP Flow values
//!
//! With a [`LegacyFieldKey`] (OpenIAP's `aes_secret`) configured, values written by OpenIAP Flow decrypt:
//! `hex(iv16):hex(ct):hex(tag16)` is AES-256-GCM with a 16-byte IV and no associated data, and
//! `hex(iv16):hex(ct)` is AES-256-CBC with PKCS#7 padding; the key is the first 32 characters of
//! `aes_secret` as bytes, exactly as OpenIAP Flow's `Crypt.encrypt` takes it. The plaintext is handled as the
//! reference does: JSON-parsed when it starts with `{` or `[`, a string otherwise (so a number written by
//! OpenIAP Flow reads back as a string; the stored value cannot tell them apart). Writing such a document
//! migrates those values to the Flowkeep format. CBC values carry no authentication: a wrong key or a
//! tampered value is caught only by bad padding or invalid UTF-8, not always.
//!
//! # Errors on read
//!
//! [`FieldCrypter::decrypt_document`] is all-or-nothing: if any listed value fails to authenticate
//! ([`SecurityError::DecryptFailed`]), names an unknown key ([`SecurityError::UnknownFieldKey`]), or is an
//! OpenIAP value while no legacy secret is configured ([`SecurityError::LegacySecretMissing`]), it returns
//! the error and leaves the document untouched. It never returns garbage, and never hands a ciphertext to
//! a client as if it were the value; the caller decides whether to fail the read or skip the document.
//! (OpenIAP Flow swallows these errors and returns the stored string.)

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{Aead, Generate, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::error::SecurityError;

/// The prefix of every value Flowkeep encrypts (format version 1).
pub const FORMAT_PREFIX: &str = "$fk1$";
/// Longest accepted key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Domain-separation label at the start of the associated data, so these bytes can never be confused
/// with associated data built for another purpose under the same key.
const AD_LABEL: &[u8] = b"flowkeep-field-v1";
const TAG_LEN: usize = 16;
const LEGACY_IV_LEN: usize = 16;
const TYPE_STRING: u8 = b's';
const TYPE_JSON: u8 = b'j';

type Aes256Gcm12 = AesGcm<Aes256, U12>;
/// OpenIAP Flow's GCM: AES-256 with a 16-byte IV (Node's `createCipheriv('aes-256-gcm', key, 16 bytes)`).
type Aes256Gcm16 = AesGcm<Aes256, U16>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// One field-encryption key: an id (stored in every value it encrypts) and 32 bytes of key material,
/// zeroized on drop. Derive the material for this purpose only; never reuse the token-signing key.
pub struct FieldKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl FieldKey {
    /// Makes a key. The id must be 1 to [`MAX_KEY_ID_LEN`] bytes of `A–Z a–z 0–9 - _ .`: it is written
    /// into stored values, between `$` separators.
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Result<Self, SecurityError> {
        let mut key = key;
        let owned = Zeroizing::new(key);
        key.zeroize();
        let id = id.into();
        if id.is_empty()
            || id.len() > MAX_KEY_ID_LEN
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(SecurityError::InvalidKey(format!(
                "field key id must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 - _ ."
            )));
        }
        Ok(FieldKey { id, key: owned })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Result<Aes256Gcm12, SecurityError> {
        Aes256Gcm12::new_from_slice(self.key.as_slice()).map_err(|_| crypto_error("field key length"))
    }
}

impl std::fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// OpenIAP Flow's `aes_secret`, kept only to read values OpenIAP Flow wrote. Holds the derived 32-byte
/// key, zeroized on drop.
pub struct LegacyFieldKey {
    key: Zeroizing<[u8; 32]>,
}

impl LegacyFieldKey {
    /// Wraps the 32 key bytes OpenIAP Flow used, when they were already taken from `aes_secret` elsewhere
    /// (for example by the key module's checked legacy secret).
    pub fn new(key: [u8; 32]) -> Self {
        LegacyFieldKey { key: Zeroizing::new(key) }
    }

    /// Takes the key the way OpenIAP Flow does: `aes_secret.substring(0, 32)` as UTF-8 bytes, with no KDF.
    /// Node refuses a key that is not exactly 32 bytes, so the secret must have at least 32 characters and
    /// the first 32 must be ASCII (a non-ASCII character there would make the key longer than 32 bytes,
    /// which OpenIAP Flow could never have used).
    pub fn from_aes_secret(aes_secret: &str) -> Result<Self, SecurityError> {
        let prefix = aes_secret.as_bytes().get(..32).filter(|p| p.is_ascii()).ok_or_else(|| {
            SecurityError::InvalidKey("the legacy aes_secret must start with at least 32 ASCII characters".into())
        })?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(prefix);
        Ok(LegacyFieldKey { key })
    }
}

impl std::fmt::Debug for LegacyFieldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacyFieldKey(..)")
    }
}

/// What a stored string looks like, before any key is tried. See [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind<'a> {
    /// A Flowkeep value (`$fk1$…`) naming this key id. The rest may still be malformed.
    Flowkeep {
        /// The key id written in the value.
        key_id: &'a str,
    },
    /// OpenIAP Flow's GCM shape: `hex(16 bytes):hex(…):hex(16 bytes)`.
    LegacyGcm,
    /// OpenIAP Flow's legacy CBC shape: `hex(16 bytes):hex(n × 16 bytes)`.
    LegacyCbc,
    /// Anything else: a value stored in clear (written before the field was listed, or `null`-like).
    Plain,
}

/// Classifies a stored string by its shape alone. The legacy shapes are strict (exact IV and tag sizes,
/// lower- or upper-case hex, CBC length a multiple of the block size) so ordinary text is never mistaken
/// for ciphertext.
pub fn classify(stored: &str) -> StoredKind<'_> {
    if let Some(rest) = stored.strip_prefix(FORMAT_PREFIX) {
        let key_id = rest.split('$').next().unwrap_or_default();
        return StoredKind::Flowkeep { key_id };
    }
    let parts: Vec<&str> = stored.split(':').collect();
    let is_hex = |s: &str, bytes: usize| s.len() == bytes * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [iv, ct, tag]
            if is_hex(iv, LEGACY_IV_LEN)
                && is_hex(tag, TAG_LEN)
                && ct.len() % 2 == 0
                && ct.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            StoredKind::LegacyGcm
        }
        [iv, ct]
            if is_hex(iv, LEGACY_IV_LEN)
                && !ct.is_empty()
                && ct.len() % 32 == 0
                && ct.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            StoredKind::LegacyCbc
        }
        _ => StoredKind::Plain,
    }
}

/// Where a value lives: what its associated data binds it to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The collection the document is stored in.
    pub collection: &'a str,
    /// The document's `_id`.
    pub id: &'a Value,
    /// The top-level field name.
    pub field: &'a str,
}

/// Encrypts and decrypts the `_encrypt` fields of documents with a key ring: one active key for new
/// values, older keys kept for reading, and optionally OpenIAP Flow's secret for reading its values.
#[derive(Debug)]
pub struct FieldCrypter {
    active: FieldKey,
    older: Vec<FieldKey>,
    legacy: Option<LegacyFieldKey>,
}

impl FieldCrypter {
    /// A crypter that encrypts with `active`.
    pub fn new(active: FieldKey) -> Self {
        FieldCrypter { active, older: Vec::new(), legacy: None }
    }

    /// Adds a retired key, used only to decrypt values that name its id. Refuses an id already in the ring:
    /// two keys under one id would make every value under it ambiguous.
    pub fn with_old_key(mut self, key: FieldKey) -> Result<Self, SecurityError> {
        if self.key(key.id()).is_some() {
            return Err(SecurityError::InvalidKey(format!("field key id {:?} is already in the key ring", key.id)));
        }
        self.older.push(key);
        Ok(self)
    }

    /// Sets OpenIAP Flow's secret, to read values OpenIAP Flow wrote.
    pub fn with_legacy_secret(mut self, secret: LegacyFieldKey) -> Self {
        self.legacy = Some(secret);
        self
    }

    /// The id of the key new values are encrypted with.
    pub fn active_key_id(&self) -> &str {
        self.active.id()
    }

    fn key(&self, id: &str) -> Option<&FieldKey> {
        std::iter::once(&self.active).chain(self.older.iter()).find(|k| k.id == id)
    }

    /// Encrypts every field listed in the document's `_encrypt` (see the module docs for which, and how).
    /// The document must have an `_id`: the ciphertext is bound to it, so the caller assigns `_id` before
    /// encrypting. Returns how many values were newly encrypted. On error the document is unchanged; a
    /// value in our format naming a key id that is not in the ring is refused
    /// ([`SecurityError::UnknownFieldKey`]) rather than encrypted a second time.
    pub fn encrypt_document(&self, collection: &str, doc: &mut Value) -> Result<usize, SecurityError> {
        let names = encrypt_list(doc, true)?;
        if names.is_empty() {
            return Ok(0);
        }
        let id = doc_id(doc)?;
        let mut updates = Vec::new();
        for name in &names {
            let Some(value) = doc.get(name.as_str()) else { continue };
            let binding = Binding { collection, id: &id, field: name };
            if let Some(stored) = self.encrypt_if_needed(&binding, value)? {
                updates.push((name.clone(), Value::String(stored)));
            }
        }
        Ok(apply(doc, updates))
    }

    /// The stored form of `value`, or `None` when it is to be kept as it is (`null`, already encrypted for
    /// this binding, or an OpenIAP value we have no secret to read).
    fn encrypt_if_needed(&self, binding: &Binding<'_>, value: &Value) -> Result<Option<String>, SecurityError> {
        let plain = match value {
            Value::Null => return Ok(None),
            Value::String(s) => match classify(s) {
                StoredKind::Flowkeep { .. } => match self.decrypt_value(binding, s) {
                    Ok(_) => return Ok(None),
                    // Encrypted under a key we no longer hold: wrapping it would hide it for good.
                    Err(e @ SecurityError::UnknownFieldKey { .. }) => return Err(e),
                    // Not ours for this binding (user text with our prefix, or a value copied from
                    // elsewhere): encrypt it as the string it is. A copied ciphertext so gains nothing.
                    Err(_) => value.clone(),
                },
                StoredKind::Plain => value.clone(),
                StoredKind::LegacyGcm | StoredKind::LegacyCbc => match &self.legacy {
                    // Migrate OpenIAP values on write when we can read them; a value in the legacy shape
                    // that does not decrypt is ordinary text and is encrypted as such.
                    Some(_) => self.decrypt_legacy(binding.field, s).unwrap_or_else(|_| value.clone()),
                    // Without the secret we cannot tell; keep it so OpenIAP data survive an update.
                    None => return Ok(None),
                },
            },
            other => other.clone(),
        };
        self.encrypt_value(binding, &plain).map(Some)
    }

    /// Encrypts one value with the active key for `binding`, whatever it is (no skipping rules).
    pub fn encrypt_value(&self, binding: &Binding<'_>, value: &Value) -> Result<String, SecurityError> {
        let mut plaintext = Zeroizing::new(Vec::new());
        match value {
            Value::String(s) => {
                plaintext.push(TYPE_STRING);
                plaintext.extend_from_slice(s.as_bytes());
            }
            other => {
                plaintext.push(TYPE_JSON);
                serde_json::to_writer(&mut *plaintext, other).map_err(|e| crypto_error(&e.to_string()))?;
            }
        }
        let nonce =
            Nonce::<U12>::try_generate().map_err(|_| crypto_error("the system random number generator failed"))?;
        let ad = associated_data(self.active.id(), binding);
        let ciphertext = self
            .active
            .cipher()?
            .encrypt(&nonce, Payload { msg: &plaintext, aad: &ad })
            .map_err(|_| crypto_error("encryption failed"))?;
        Ok(format!(
            "{FORMAT_PREFIX}{}${}${}",
            self.active.id(),
            URL_SAFE_NO_PAD.encode(nonce.as_slice()),
            URL_SAFE_NO_PAD.encode(ciphertext)
        ))
    }

    /// Decrypts one stored Flowkeep value (`$fk1$…`) for `binding`. Legacy and plain values are not
    /// accepted here; see [`FieldCrypter::decrypt_stored`].
    pub fn decrypt_value(&self, binding: &Binding<'_>, stored: &str) -> Result<Value, SecurityError> {
        let failed = || SecurityError::DecryptFailed { field: binding.field.to_owned() };
        let rest = stored.strip_prefix(FORMAT_PREFIX).ok_or_else(failed)?;
        let mut parts = rest.split('$');
        let (Some(key_id), Some(nonce), Some(ct), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(failed());
        };
        let key = self
            .key(key_id)
            .ok_or_else(|| SecurityError::UnknownFieldKey { field: binding.field.to_owned(), key_id: key_id.into() })?;
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| failed())?;
        let nonce = Nonce::<U12>::try_from(nonce.as_slice()).map_err(|_| failed())?;
        let ct = URL_SAFE_NO_PAD.decode(ct).map_err(|_| failed())?;
        if ct.len() < TAG_LEN {
            return Err(failed());
        }
        let ad = associated_data(key_id, binding);
        let plaintext =
            Zeroizing::new(key.cipher()?.decrypt(&nonce, Payload { msg: &ct, aad: &ad }).map_err(|_| failed())?);
        match plaintext.split_first() {
            Some((&TYPE_STRING, s)) => {
                std::str::from_utf8(s).map(|s| Value::String(s.to_owned())).map_err(|_| failed())
            }
            Some((&TYPE_JSON, j)) => serde_json::from_slice(j).map_err(|_| failed()),
            _ => Err(failed()),
        }
    }

    /// Decrypts one stored value of any kind: a Flowkeep value, an OpenIAP value (with the legacy secret),
    /// or a plain value, returned as it is.
    pub fn decrypt_stored(&self, binding: &Binding<'_>, stored: &Value) -> Result<Value, SecurityError> {
        let Value::String(s) = stored else { return Ok(stored.clone()) };
        match classify(s) {
            StoredKind::Flowkeep { .. } => self.decrypt_value(binding, s),
            StoredKind::LegacyGcm | StoredKind::LegacyCbc => self.decrypt_legacy(binding.field, s),
            StoredKind::Plain => Ok(stored.clone()),
        }
    }

    /// Decrypts every `_encrypt` field of a document read from `collection`, binding to its own `_id`.
    /// All-or-nothing: on error the document is unchanged. Returns how many values were decrypted.
    pub fn decrypt_document(&self, collection: &str, doc: &mut Value) -> Result<usize, SecurityError> {
        match doc.get("_id").cloned() {
            Some(id) => self.decrypt_document_bound(collection, &id, doc),
            // No `_id` (for example a projection without it): only values that need no binding can be
            // read, so any Flowkeep value fails below with `DecryptFailed`.
            None => self.decrypt_document_bound(collection, &Value::Null, doc),
        }
    }

    /// Like [`FieldCrypter::decrypt_document`], but binding to the given collection and `_id` instead of
    /// the document's own: for copies of a document kept elsewhere, such as history snapshots in
    /// `<collection>_hist`, whose values were encrypted for the original document.
    pub fn decrypt_document_bound(
        &self,
        collection: &str,
        id: &Value,
        doc: &mut Value,
    ) -> Result<usize, SecurityError> {
        let names = encrypt_list(doc, false)?;
        let mut updates = Vec::new();
        for name in &names {
            let Some(stored @ Value::String(s)) = doc.get(name.as_str()) else { continue };
            if classify(s) == StoredKind::Plain {
                continue;
            }
            let binding = Binding { collection, id, field: name };
            updates.push((name.clone(), self.decrypt_stored(&binding, stored)?));
        }
        Ok(apply(doc, updates))
    }

    /// Key rotation: re-encrypts with the active key every listed value encrypted under another key id, or
    /// written by OpenIAP Flow. Values already under the active key, and plain values, are left alone.
    /// Returns how many values moved; on error the document is unchanged.
    pub fn reencrypt_document(&self, collection: &str, doc: &mut Value) -> Result<usize, SecurityError> {
        let names = encrypt_list(doc, false)?;
        if names.is_empty() {
            return Ok(0);
        }
        let id = doc_id(doc)?;
        let mut updates = Vec::new();
        for name in &names {
            let Some(stored @ Value::String(s)) = doc.get(name.as_str()) else { continue };
            let stale = match classify(s) {
                StoredKind::Flowkeep { key_id } => key_id != self.active.id(),
                StoredKind::LegacyGcm | StoredKind::LegacyCbc => true,
                StoredKind::Plain => false,
            };
            if stale {
                let binding = Binding { collection, id: &id, field: name };
                let plain = self.decrypt_stored(&binding, stored)?;
                updates.push((name.clone(), Value::String(self.encrypt_value(&binding, &plain)?)));
            }
        }
        Ok(apply(doc, updates))
    }

    /// Decrypts an OpenIAP Flow value with the legacy secret, handling the plaintext as the reference does.
    fn decrypt_legacy(&self, field: &str, stored: &str) -> Result<Value, SecurityError> {
        let legacy = self.legacy.as_ref().ok_or_else(|| SecurityError::LegacySecretMissing { field: field.into() })?;
        let failed = || SecurityError::DecryptFailed { field: field.to_owned() };
        let parts: Vec<Vec<u8>> = stored.split(':').map(hex::decode).collect::<Result<_, _>>().map_err(|_| failed())?;
        let plaintext = Zeroizing::new(match parts.as_slice() {
            [iv, ct, tag] => {
                let cipher = Aes256Gcm16::new_from_slice(legacy.key.as_slice()).map_err(|_| failed())?;
                let nonce = Nonce::<U16>::try_from(iv.as_slice()).map_err(|_| failed())?;
                let mut msg = Vec::with_capacity(ct.len() + tag.len());
                msg.extend_from_slice(ct);
                msg.extend_from_slice(tag);
                cipher.decrypt(&nonce, msg.as_slice()).map_err(|_| failed())?
            }
            [iv, ct] => {
                let cipher = Aes256CbcDec::new_from_slices(legacy.key.as_slice(), iv).map_err(|_| failed())?;
                let mut buf = ct.clone();
                let len = cipher.decrypt_padded::<Pkcs7>(&mut buf).map_err(|_| failed())?.len();
                buf.truncate(len);
                buf
            }
            _ => return Err(failed()),
        });
        let text = std::str::from_utf8(&plaintext).map_err(|_| failed())?;
        // The reference JSON-parses text starting with `{` or `[` and keeps it as a string if that fails.
        if text.starts_with('{') || text.starts_with('[') {
            if let Ok(v) = serde_json::from_str(text) {
                return Ok(v);
            }
        }
        Ok(Value::String(text.to_owned()))
    }
}

/// The field names of a document's `_encrypt` that this module encrypts: the string entries, deduplicated,
/// in order, without empty names and `_`-prefixed system fields. Lenient, like reads: a malformed
/// `_encrypt` yields what can be used of it.
pub fn encrypted_fields(doc: &Value) -> Vec<String> {
    encrypt_list(doc, false).unwrap_or_default()
}

fn encrypt_list(doc: &Value, strict: bool) -> Result<Vec<String>, SecurityError> {
    let invalid = |what: &str| Err(SecurityError::InvalidEncryptList(what.to_owned()));
    let mut names: Vec<String> = Vec::new();
    match doc.get("_encrypt") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    // Empty names and `_`-prefixed system fields are skipped (see the module docs).
                    Value::String(name) if !name.is_empty() && !name.starts_with('_') && !names.contains(name) => {
                        names.push(name.clone());
                    }
                    Value::String(_) => {}
                    _ if strict => return invalid("_encrypt must list field names as strings"),
                    _ => {}
                }
            }
        }
        Some(_) if strict => return invalid("_encrypt must be an array of field names"),
        Some(_) => {}
    }
    Ok(names)
}

fn doc_id(doc: &Value) -> Result<Value, SecurityError> {
    match doc.get("_id") {
        Some(Value::Null) | None => Err(SecurityError::InvalidEncryptList(
            "a document with encrypted fields needs an _id before it is encrypted".into(),
        )),
        Some(id) => Ok(id.clone()),
    }
}

fn apply(doc: &mut Value, updates: Vec<(String, Value)>) -> usize {
    let count = updates.len();
    if let Value::Object(map) = doc {
        for (name, value) in updates {
            map.insert(name, value);
        }
    }
    count
}

/// `label ‖ len·key id ‖ len·collection ‖ len·_id ‖ len·field`, each length a big-endian u64. A string
/// `_id` is bound as its text; any other `_id` (a number, an `{"$oid": …}` object) as its compact JSON,
/// prefixed by a marker byte so the string `"1"` and the number `1` differ.
fn associated_data(key_id: &str, binding: &Binding<'_>) -> Vec<u8> {
    let id: Vec<u8> = match binding.id {
        Value::String(s) => [b"s".as_slice(), s.as_bytes()].concat(),
        other => [b"j".as_slice(), other.to_string().as_bytes()].concat(),
    };
    let mut ad = Vec::with_capacity(AD_LABEL.len() + 32 + key_id.len() + binding.collection.len() + id.len());
    ad.extend_from_slice(AD_LABEL);
    for part in [key_id.as_bytes(), binding.collection.as_bytes(), &id, binding.field.as_bytes()] {
        ad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        ad.extend_from_slice(part);
    }
    ad
}

fn crypto_error(what: &str) -> SecurityError {
    SecurityError::Crypto(what.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests;
