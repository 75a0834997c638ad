//! Tests of field encryption: round trips, binding, tampering, key rotation and OpenIAP Flow's formats.

use super::*;
use aes_gcm::aead::Aead;
use cbc::cipher::BlockModeEncrypt;
use serde_json::json;

fn key(id: &str, byte: u8) -> FieldKey {
    FieldKey::new(id, [byte; 32]).unwrap()
}

fn crypter() -> FieldCrypter {
    FieldCrypter::new(key("k1", 1))
}

/// A 40-character ASCII secret, as an OpenIAP Flow installation would configure `aes_secret`.
const AES_SECRET: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCD";

fn doc(fields: Value) -> Value {
    let mut d = json!({"_id": "doc1", "_type": "test", "_encrypt": ["a", "b", "c", "d", "e"]});
    for (k, v) in fields.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

#[test]
fn round_trip_of_every_json_type() {
    let c = crypter();
    let original = doc(json!({
        "a": "a secret",
        "b": 42,
        "c": {"nested": [1, 2.5, "x"], "ok": true},
        "d": [false, null, "y"],
        "e": true,
        "plain": "not listed"
    }));
    let mut d = original.clone();
    assert_eq!(c.encrypt_document("things", &mut d).unwrap(), 5);
    for f in ["a", "b", "c", "d", "e"] {
        let s = d[f].as_str().unwrap();
        assert!(s.starts_with("$fk1$k1$"), "{f}: {s}");
        assert!(!s.contains("secret"));
    }
    assert_eq!(d["plain"], "not listed");
    assert_eq!(c.decrypt_document("things", &mut d).unwrap(), 5);
    assert_eq!(d, original);
}

#[test]
fn falsy_values_are_encrypted_too_but_null_is_not() {
    let c = crypter();
    let original = doc(json!({"a": false, "b": 0, "c": "", "d": null, "e": []}));
    let mut d = original.clone();
    assert_eq!(c.encrypt_document("things", &mut d).unwrap(), 4);
    assert!(d["a"].as_str().unwrap().starts_with(FORMAT_PREFIX));
    assert!(d["b"].as_str().unwrap().starts_with(FORMAT_PREFIX));
    assert!(d["c"].as_str().unwrap().starts_with(FORMAT_PREFIX));
    assert_eq!(d["d"], Value::Null);
    c.decrypt_document("things", &mut d).unwrap();
    assert_eq!(d, original);
    assert_eq!(d["a"], json!(false), "a boolean comes back as a boolean, not the string \"false\"");
}

#[test]
fn system_fields_are_never_encrypted() {
    let c = crypter();
    let mut d = json!({
        "_id": "x", "_acl": [{"_id": "u", "rights": 65535}], "_type": "t",
        "_encrypt": ["_id", "_acl", "_encrypt", "_type", "_version", "secret", "secret", 7, "missing"],
        "_version": 3, "secret": "s"
    });
    let before = d.clone();
    assert_eq!(encrypted_fields(&d), vec!["secret".to_owned(), "missing".to_owned()]);
    // A non-string entry in _encrypt is refused on write ...
    assert!(matches!(c.encrypt_document("c", &mut d), Err(SecurityError::InvalidEncryptList(_))));
    assert_eq!(d, before, "unchanged on error");
    // ... and without it the system fields stay in clear and `missing` is simply absent.
    d["_encrypt"] = json!(["_id", "_acl", "_encrypt", "_type", "_version", "secret", "secret", "missing"]);
    assert_eq!(c.encrypt_document("c", &mut d).unwrap(), 1);
    assert_eq!(d["_id"], "x");
    assert_eq!(d["_acl"], before["_acl"]);
    assert_eq!(d["_version"], 3);
    assert!(d.get("missing").is_none());
    c.decrypt_document("c", &mut d).unwrap();
    assert_eq!(d["secret"], "s");
}

#[test]
fn malformed_encrypt_lists() {
    let c = crypter();
    let mut d = json!({"_id": "x", "_encrypt": "secret", "secret": "s"});
    assert!(matches!(c.encrypt_document("c", &mut d), Err(SecurityError::InvalidEncryptList(_))));
    // Reads are lenient: nothing listed, nothing to do.
    assert_eq!(c.decrypt_document("c", &mut d).unwrap(), 0);
    let mut d = json!({"_encrypt": ["secret"], "secret": "s"});
    assert!(matches!(c.encrypt_document("c", &mut d), Err(SecurityError::InvalidEncryptList(_))), "no _id");
    let mut d = json!({"_id": "x", "_encrypt": null, "secret": "s"});
    assert_eq!(c.encrypt_document("c", &mut d).unwrap(), 0);
    let mut d = json!({"_id": "x", "secret": "s"});
    assert_eq!(c.encrypt_document("c", &mut d).unwrap(), 0);
}

#[test]
fn nonces_differ_for_equal_plaintexts() {
    let c = crypter();
    let mut d = doc(json!({"a": "same", "b": "same"}));
    c.encrypt_document("c", &mut d).unwrap();
    let mut d2 = doc(json!({"a": "same"}));
    c.encrypt_document("c", &mut d2).unwrap();
    let nonce = |v: &Value| v.as_str().unwrap().split('$').nth(3).unwrap().to_owned();
    assert_ne!(nonce(&d["a"]), nonce(&d["b"]));
    assert_ne!(nonce(&d["a"]), nonce(&d2["a"]));
    assert_ne!(d["a"], d2["a"]);
}

#[test]
fn already_encrypted_values_are_not_encrypted_twice() {
    let c = crypter();
    let mut d = doc(json!({"a": "v"}));
    c.encrypt_document("c", &mut d).unwrap();
    let once = d.clone();
    assert_eq!(c.encrypt_document("c", &mut d).unwrap(), 0);
    assert_eq!(d, once);
    c.decrypt_document("c", &mut d).unwrap();
    assert_eq!(d["a"], "v");
}

#[test]
fn ciphertext_is_bound_to_collection_id_and_field() {
    let c = crypter();
    let mut d = doc(json!({"a": "secret", "b": "other"}));
    c.encrypt_document("c", &mut d).unwrap();
    let ct = d["a"].clone();

    // Another field of the same document.
    let mut moved = d.clone();
    moved["b"] = ct.clone();
    assert_eq!(c.decrypt_document("c", &mut moved), Err(SecurityError::DecryptFailed { field: "b".into() }));
    assert_eq!(moved["b"], ct, "unchanged on error");

    // Another document.
    let mut other = d.clone();
    other["_id"] = json!("doc2");
    assert_eq!(c.decrypt_document("c", &mut other), Err(SecurityError::DecryptFailed { field: "a".into() }));

    // The number 1 and the string "1" are different ids.
    let mut n = doc(json!({"a": "s"}));
    n["_id"] = json!("1");
    c.encrypt_document("c", &mut n).unwrap();
    n["_id"] = json!(1);
    assert!(c.decrypt_document("c", &mut n).is_err());

    // Another collection, including one whose name shifts a byte into the id.
    let mut same = d.clone();
    assert!(c.decrypt_document("cc", &mut same).is_err());
    let b = |collection, id: &'static str| Binding { collection, id: Box::leak(Box::new(json!(id))), field: "f" };
    let v = c.encrypt_value(&b("ab", "c"), &json!("x")).unwrap();
    assert!(c.decrypt_value(&b("a", "bc"), &v).is_err());
    assert_eq!(c.decrypt_value(&b("ab", "c"), &v).unwrap(), json!("x"));

    // A copied ciphertext written into another document is treated as text, not as a value to keep.
    let mut victim = json!({"_id": "doc9", "_encrypt": ["a"], "a": ct});
    assert_eq!(c.encrypt_document("c", &mut victim).unwrap(), 1);
    c.decrypt_document("c", &mut victim).unwrap();
    assert_eq!(victim["a"], ct, "the copier gets back only the ciphertext it copied");
}

#[test]
fn history_copies_decrypt_with_an_explicit_binding() {
    let c = crypter();
    let mut d = doc(json!({"a": "secret"}));
    c.encrypt_document("things", &mut d).unwrap();
    let mut snapshot = d.clone();
    snapshot["_id"] = json!("hist-1");
    snapshot["id"] = json!("doc1");
    assert!(c.decrypt_document("things_hist", &mut snapshot).is_err());
    c.decrypt_document_bound("things", &json!("doc1"), &mut snapshot).unwrap();
    assert_eq!(snapshot["a"], "secret");
}

#[test]
fn tampering_is_detected() {
    let c = crypter();
    let mut d = doc(json!({"a": "a fairly long secret value"}));
    c.encrypt_document("c", &mut d).unwrap();
    let stored = d["a"].as_str().unwrap().to_owned();
    let (head, body) = stored.rsplit_once('$').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
    for i in [0, bytes.len() / 2, bytes.len() - 1] {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        let mut td = d.clone();
        td["a"] = json!(format!("{head}${}", URL_SAFE_NO_PAD.encode(&t)));
        assert_eq!(c.decrypt_document("c", &mut td), Err(SecurityError::DecryptFailed { field: "a".into() }));
    }
    bytes.truncate(10);
    for bad in [
        format!("{head}${}", URL_SAFE_NO_PAD.encode(&bytes)),
        format!("{head}$!!!"),
        format!("{stored}$extra"),
        "$fk1$k1$".to_owned(),
        "$fk1$".to_owned(),
    ] {
        let mut td = d.clone();
        td["a"] = json!(bad);
        assert_eq!(c.decrypt_document("c", &mut td), Err(SecurityError::DecryptFailed { field: "a".into() }), "{bad}");
    }
}

#[test]
fn unknown_key_id_and_wrong_key_under_the_same_id() {
    let mut d = doc(json!({"a": "secret"}));
    crypter().encrypt_document("c", &mut d).unwrap();
    let other = FieldCrypter::new(key("k2", 2));
    assert_eq!(
        other.decrypt_document("c", &mut d.clone()),
        Err(SecurityError::UnknownFieldKey { field: "a".into(), key_id: "k1".into() })
    );
    // Writing such a document back is refused rather than wrapping the value a second time.
    assert_eq!(
        other.encrypt_document("c", &mut d.clone()),
        Err(SecurityError::UnknownFieldKey { field: "a".into(), key_id: "k1".into() })
    );
    let impostor = FieldCrypter::new(key("k1", 9));
    assert_eq!(impostor.decrypt_document("c", &mut d), Err(SecurityError::DecryptFailed { field: "a".into() }));
}

#[test]
fn key_rotation() {
    let old = crypter();
    let mut d = doc(json!({"a": "secret", "b": [1, 2]}));
    old.encrypt_document("c", &mut d).unwrap();

    let ring = FieldCrypter::new(key("k2", 2)).with_old_key(key("k1", 1)).unwrap();
    assert_eq!(ring.active_key_id(), "k2");
    // Old values still decrypt.
    let mut read = d.clone();
    ring.decrypt_document("c", &mut read).unwrap();
    assert_eq!(read["a"], "secret");
    // Re-encryption moves them to the active key, once.
    assert_eq!(ring.reencrypt_document("c", &mut d).unwrap(), 2);
    assert!(d["a"].as_str().unwrap().starts_with("$fk1$k2$"));
    assert!(d["b"].as_str().unwrap().starts_with("$fk1$k2$"));
    assert_eq!(ring.reencrypt_document("c", &mut d).unwrap(), 0);
    // The old key is no longer needed.
    let mut fresh = d.clone();
    FieldCrypter::new(key("k2", 2)).decrypt_document("c", &mut fresh).unwrap();
    assert_eq!(fresh["b"], json!([1, 2]));
    // A duplicate id in the ring is refused.
    assert!(FieldCrypter::new(key("k2", 2)).with_old_key(key("k2", 3)).is_err());
}

#[test]
fn key_ids_are_validated() {
    assert!(FieldKey::new("", [0; 32]).is_err());
    assert!(FieldKey::new("a$b", [0; 32]).is_err());
    assert!(FieldKey::new("x".repeat(MAX_KEY_ID_LEN + 1), [0; 32]).is_err());
    assert!(FieldKey::new("field-2026.01_a", [0; 32]).is_ok());
    assert!(!format!("{:?}", key("k", 0xAB)).contains("171"), "Debug does not print key bytes");
}

/// OpenIAP Flow's `Crypt.encrypt`: AES-256-GCM, 16-byte IV, `hex(iv):hex(ct):hex(tag)`.
fn reference_gcm(secret: &str, iv: [u8; 16], text: &str) -> String {
    let cipher = Aes256Gcm16::new_from_slice(&secret.as_bytes()[..32]).unwrap();
    let out = cipher.encrypt(&Nonce::<U16>::from(iv), text.as_bytes()).unwrap();
    let (ct, tag) = out.split_at(out.len() - 16);
    format!("{}:{}:{}", hex::encode(iv), hex::encode(ct), hex::encode(tag))
}

/// OpenIAP Flow's older format: AES-256-CBC with PKCS#7, `hex(iv):hex(ct)`.
fn reference_cbc(secret: &str, iv: [u8; 16], text: &str) -> String {
    let enc = cbc::Encryptor::<Aes256>::new_from_slices(&secret.as_bytes()[..32], &iv).unwrap();
    let mut buf = text.as_bytes().to_vec();
    buf.resize(text.len() + 16, 0);
    let ct = enc.encrypt_padded::<Pkcs7>(&mut buf, text.len()).unwrap().to_vec();
    format!("{}:{}", hex::encode(iv), hex::encode(ct))
}

// The reference's own test vectors (`8a23d6b7…` for CBC, `4beca502…` for GCM, both "teststring") depend on
// the `aes_secret` of OpenIAP Flow's test environment, which is not published; they do not decrypt with the
// public docker-compose secret. So the vectors here are made in the reference's exact format.
#[test]
fn legacy_gcm_and_cbc_values_decrypt() {
    let c = crypter().with_legacy_secret(LegacyFieldKey::from_aes_secret(AES_SECRET).unwrap());
    let gcm = reference_gcm(AES_SECRET, [7; 16], "teststring");
    let cbc = reference_cbc(AES_SECRET, [9; 16], "teststring");
    let obj = reference_gcm(AES_SECRET, [1; 16], r#"{"a":1,"b":[true]}"#);
    let num = reference_gcm(AES_SECRET, [2; 16], "42");
    assert_eq!(classify(&gcm), StoredKind::LegacyGcm);
    assert_eq!(classify(&cbc), StoredKind::LegacyCbc);
    let mut d = json!({"_id": "u1", "_encrypt": ["a", "b", "c", "d"], "a": gcm, "b": cbc, "c": obj, "d": num});
    assert_eq!(c.decrypt_document("users", &mut d).unwrap(), 4);
    assert_eq!(d["a"], "teststring");
    assert_eq!(d["b"], "teststring");
    assert_eq!(d["c"], json!({"a": 1, "b": [true]}), "JSON-parsed like the reference");
    assert_eq!(d["d"], "42", "the reference cannot tell a number from a string");
}

#[test]
fn legacy_values_without_secret_and_tampered_legacy_values() {
    let gcm = reference_gcm(AES_SECRET, [7; 16], "teststring");
    let mut d = json!({"_id": "u1", "_encrypt": ["a"], "a": gcm});
    assert_eq!(
        crypter().decrypt_document("users", &mut d),
        Err(SecurityError::LegacySecretMissing { field: "a".into() })
    );
    // An update without the secret keeps the OpenIAP value rather than wrapping it.
    assert_eq!(crypter().encrypt_document("users", &mut d).unwrap(), 0);
    assert_eq!(d["a"], gcm);

    let c = crypter().with_legacy_secret(LegacyFieldKey::from_aes_secret(AES_SECRET).unwrap());
    let mut bad = gcm.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
    let mut t = json!({"_id": "u1", "_encrypt": ["a"], "a": String::from_utf8(bad).unwrap()});
    assert_eq!(c.decrypt_document("users", &mut t), Err(SecurityError::DecryptFailed { field: "a".into() }));
    // Another secret fails GCM authentication; for CBC it fails on padding or UTF-8 in nearly every case.
    let wrong = crypter().with_legacy_secret(LegacyFieldKey::from_aes_secret(&AES_SECRET.replace('0', "Z")).unwrap());
    assert!(wrong.decrypt_document("users", &mut d.clone()).is_err());
}

#[test]
fn legacy_values_migrate_on_write_and_on_reencrypt() {
    let c = crypter().with_legacy_secret(LegacyFieldKey::from_aes_secret(AES_SECRET).unwrap());
    let mut d = json!({"_id": "u1", "_encrypt": ["a", "b"],
        "a": reference_gcm(AES_SECRET, [3; 16], "one"), "b": reference_cbc(AES_SECRET, [4; 16], "two")});
    let mut w = d.clone();
    assert_eq!(c.encrypt_document("users", &mut w).unwrap(), 2);
    assert!(w["a"].as_str().unwrap().starts_with("$fk1$k1$"));
    assert_eq!(c.reencrypt_document("users", &mut d).unwrap(), 2);
    for doc in [&mut w, &mut d] {
        crypter().decrypt_document("users", doc).unwrap();
        assert_eq!(doc["a"], "one");
        assert_eq!(doc["b"], "two");
    }
}

#[test]
fn legacy_secret_is_taken_like_the_reference() {
    assert!(LegacyFieldKey::from_aes_secret("short").is_err());
    assert!(LegacyFieldKey::from_aes_secret(&"é".repeat(32)).is_err());
    assert!(LegacyFieldKey::from_aes_secret(&"a".repeat(32)).is_ok());
    // Only the first 32 characters matter.
    let v = reference_gcm(AES_SECRET, [5; 16], "x");
    let c = crypter().with_legacy_secret(LegacyFieldKey::from_aes_secret(&AES_SECRET[..32]).unwrap());
    assert_eq!(c.decrypt_stored(&Binding { collection: "c", id: &json!(1), field: "f" }, &json!(v)).unwrap(), "x");
}

#[test]
fn plain_values_in_listed_fields_are_left_alone_on_read() {
    let c = crypter();
    let mut d = json!({"_id": "x", "_encrypt": ["a", "b", "c"], "a": "just text", "b": 5, "c": "ab:cd"});
    let before = d.clone();
    assert_eq!(c.decrypt_document("c", &mut d).unwrap(), 0);
    assert_eq!(d, before);
}
