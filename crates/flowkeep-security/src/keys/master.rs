//! [`MasterKey`]: the one root secret of an installation, from configuration or from a key file.
//!
//! # The key file
//!
//! When no master key is configured, [`MasterKey::load_or_create`] generates one at first start into an
//! owner-only (mode 0600) key file and reads it back on every later start.
//!
//! * **Keep it beside the database, not inside it** ([`key_file_beside`]): the database holds the token
//!   signing keys *encrypted* under this key; keeping both in one file would make that encryption
//!   pointless for anyone who gets a copy of the database.
//! * **Back it up with the database.** A restored database is unreadable without the key file it was
//!   written with: the token signing keys and every encrypted field depend on it.
//! * A key file that the group or others may read is refused, never silently fixed: someone may already
//!   have copied it, and the operator should know.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::purpose::{Purpose, PurposeKey};
use super::{is_degenerate, is_well_known_bytes, is_well_known_text, random_bytes, KeyError, MASTER_KEY_HINT};

/// The length of a master key in bytes (256 bits).
pub const MASTER_KEY_LEN: usize = 32;

/// The HKDF salt: a fixed, versioned label, so that Flowkeep's derivations cannot collide with another
/// system's use of the same input key.
const HKDF_SALT: &[u8] = b"flowkeep/master-key/v1";

/// The largest key file we read: a base64 key with a comment line fits easily; anything bigger is not
/// a key file.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// What the key file says above the key, so that whoever finds it knows what it is.
const KEY_FILE_HEADER: &str = "# Flowkeep master key. Keep this file beside the database, owner-only (chmod 600),\n\
# and back it up with the database: without it, a restored database cannot be read.\n";

/// The installation's root secret: 32 random bytes from which every purpose key is derived.
///
/// Zeroized on drop; `Debug` never shows the bytes; equality is constant-time.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

/// Whether [`MasterKey::load_or_create`] read an existing key file or generated a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileStatus {
    /// The key file existed and was read.
    Loaded,
    /// There was no key file: a new key was generated and written. Log this loudly, with a reminder to
    /// back the file up.
    Created,
}

impl MasterKey {
    /// Generates a new random master key from the operating system's generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        random_bytes(bytes.as_mut_slice())?;
        Ok(MasterKey { bytes })
    }

    /// Parses a configured master key: 32 bytes written as 64 hex digits or as base64 (standard or
    /// URL-safe alphabet, padded or not). Surrounding whitespace is ignored.
    ///
    /// Refused: empty text, well-known values (published defaults and placeholders such as `changeme`,
    /// or OpenIAP Flow's docker-compose `aes_secret`), anything that does not decode to exactly 32 bytes,
    /// and degenerate keys (all bytes equal, such as all zeros, or a counting sequence). A passphrase is
    /// not accepted: the master key must be random bytes, not something a person chose.
    pub fn from_config(text: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "the master key";
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty { what: WHAT, hint: MASTER_KEY_HINT });
        }
        if is_well_known_text(text) {
            return Err(KeyError::WellKnown { what: WHAT, hint: MASTER_KEY_HINT });
        }
        let decoded = decode_key_text(text)?;
        if decoded.len() < MASTER_KEY_LEN {
            return Err(KeyError::TooShort {
                what: WHAT,
                actual: decoded.len(),
                min: MASTER_KEY_LEN,
                hint: MASTER_KEY_HINT,
            });
        }
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if decoded.len() != MASTER_KEY_LEN {
            return Err(KeyError::InvalidEncoding(format!(
                "it decodes to {} bytes, not {MASTER_KEY_LEN}",
                decoded.len()
            )));
        }
        bytes.copy_from_slice(&decoded);
        if is_degenerate(bytes.as_slice()) {
            return Err(KeyError::Degenerate { what: WHAT, hint: MASTER_KEY_HINT });
        }
        if is_well_known_bytes(bytes.as_slice()) {
            return Err(KeyError::WellKnown { what: WHAT, hint: MASTER_KEY_HINT });
        }
        Ok(MasterKey { bytes })
    }

    /// Reads the master key from the key file at `path`, or generates one and writes it there if the
    /// file does not exist.
    ///
    /// * A new file is created with mode 0600 from the start (never written first and restricted
    ///   afterwards), written to a temporary file in the same directory, synced, and then linked into
    ///   place without replacing anything: if two processes start at once, exactly one key wins and both
    ///   use it.
    /// * An existing file is refused if the group or others have any access to it (the error says how
    ///   to fix it) or if it does not hold a valid key.
    ///
    /// The file must live outside the database (see [`key_file_beside`]) and be backed up with it.
    pub fn load_or_create(path: &Path) -> Result<(Self, KeyFileStatus), KeyError> {
        match Self::load_file(path) {
            Ok(key) => Ok((key, KeyFileStatus::Loaded)),
            Err(LoadError::Missing) => {
                let key = Self::generate()?;
                match key.write_new_file(path) {
                    Ok(()) => Ok((key, KeyFileStatus::Created)),
                    // Another process created it between our read and our link: use theirs.
                    Err(WriteError::AlreadyExists) => match Self::load_file(path) {
                        Ok(key) => Ok((key, KeyFileStatus::Loaded)),
                        Err(LoadError::Missing) => Err(io_error(path, "the key file vanished while starting")),
                        Err(LoadError::Key(e)) => Err(e),
                    },
                    Err(WriteError::Key(e)) => Err(e),
                }
            }
            Err(LoadError::Key(e)) => Err(e),
        }
    }

    /// Derives the key for one purpose (HKDF-SHA256 with the purpose's label as `info`).
    ///
    /// Deterministic: the same master key and purpose always give the same key, so data written under a
    /// purpose key stays readable across restarts.
    pub fn derive(&self, purpose: Purpose) -> Result<PurposeKey, KeyError> {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.bytes.as_slice());
        let mut okm = Zeroizing::new([0u8; 32]);
        hkdf.expand(purpose.label().as_bytes(), okm.as_mut_slice())
            .map_err(|e| KeyError::Crypto(format!("HKDF expand: {e}")))?;
        Ok(PurposeKey::new(purpose, okm))
    }

    /// The key as base64, for writing it to the key file or showing it once to an operator who asked
    /// for it (`flowkeep keys show-master`). Zeroized when dropped.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_slice()))
    }

    /// Reads and checks an existing key file.
    fn load_file(path: &Path) -> Result<Self, LoadError> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::Missing),
            Err(e) => return Err(LoadError::Key(io_error(path, &format!("cannot open: {e}")))),
        };
        let meta = file.metadata().map_err(|e| io_error(path, &format!("cannot read metadata: {e}")))?;
        if !meta.is_file() {
            return Err(io_error(path, "is not a regular file").into());
        }
        check_owner_only(path, &meta)?;
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(invalid_file(path, "the file is too large to be a key file").into());
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(|e| io_error(path, &format!("cannot read: {e}")))?;
        // Comment lines (the header we write) and blank lines are skipped; exactly one key line remains.
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        let (Some(line), None) = (lines.next(), lines.next()) else {
            return Err(invalid_file(path, "expected exactly one key line").into());
        };
        MasterKey::from_config(line).map_err(|e| LoadError::Key(invalid_file(path, &e.to_string())))
    }

    /// Writes this key to a new file at `path`, without ever replacing an existing one.
    fn write_new_file(&self, path: &Path) -> Result<(), WriteError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| io_error(path, &format!("cannot create its directory: {e}")))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut nonce = [0u8; 8];
        random_bytes(&mut nonce)?;
        let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(nonce)));

        let result = (|| {
            let mut file = owner_only_create_new(&tmp).map_err(|e| io_error(&tmp, &format!("cannot create: {e}")))?;
            let mut content = Zeroizing::new(String::from(KEY_FILE_HEADER));
            content.push_str(&self.to_base64());
            content.push('\n');
            file.write_all(content.as_bytes()).map_err(|e| io_error(&tmp, &format!("cannot write: {e}")))?;
            file.sync_all().map_err(|e| io_error(&tmp, &format!("cannot sync: {e}")))?;
            // `hard_link` fails if `path` exists, unlike `rename`, so a concurrent start never loses
            // the key another process already wrote (and may already use).
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::AlreadyExists),
                Err(e) => Err(io_error(path, &format!("cannot create: {e}")).into()),
            }
        })();
        // The temporary name is always removed; the key lives on under `path` if the link succeeded.
        let _ = fs::remove_file(&tmp);
        result?;
        // Make the new directory entry durable too, or a crash could lose the file but keep data
        // encrypted under its key.
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        // `Zeroizing` already clears the bytes; this makes the intent explicit at the type.
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.bytes.as_slice().ct_eq(other.bytes.as_slice()))
    }
}

impl Eq for MasterKey {}

/// The default key file for a database file: the same directory and name with the extension `.key`
/// (`data/flowkeep.db` → `data/flowkeep.key`). Beside the database so that one backup job naturally
/// takes both; a separate file so that a copy of the database alone does not expose the key.
pub fn key_file_beside(database: &Path) -> PathBuf {
    database.with_extension("key")
}

/// Decodes the text of a key: hex first (64 hex digits is unambiguous), then the base64 alphabets.
fn decode_key_text(text: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if text.len() == 2 * MASTER_KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).map(Zeroizing::new).map_err(|_| KeyError::InvalidEncoding("invalid hex".to_owned()));
    }
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            return Ok(Zeroizing::new(bytes));
        }
    }
    Err(KeyError::InvalidEncoding("it is neither hex nor base64".to_owned()))
}

/// Refuses a key file that the group or others can access in any way.
#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::KeyFilePermissions { path: path.display().to_string(), mode });
    }
    Ok(())
}

/// Non-Unix systems have no mode bits; access control is left to the platform's ACLs.
#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// Creates a new file that only its owner can read and write, with that mode from the first instant.
#[cfg(unix)]
fn owner_only_create_new(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn owner_only_create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

fn io_error(path: &Path, reason: &str) -> KeyError {
    KeyError::KeyFileIo { path: path.display().to_string(), reason: reason.to_owned() }
}

fn invalid_file(path: &Path, reason: &str) -> KeyError {
    KeyError::KeyFileInvalid { path: path.display().to_string(), reason: reason.to_owned() }
}

/// Reading a key file: missing (then we create it) or a real error.
enum LoadError {
    Missing,
    Key(KeyError),
}

impl From<KeyError> for LoadError {
    fn from(e: KeyError) -> Self {
        LoadError::Key(e)
    }
}

/// Writing a new key file: someone else was first, or a real error.
enum WriteError {
    AlreadyExists,
    Key(KeyError),
}

impl From<KeyError> for WriteError {
    fn from(e: KeyError) -> Self {
        WriteError::Key(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const GOOD_HEX: &str = "8f3a1c5e9b7d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a";

    #[test]
    fn config_accepts_hex_and_base64_of_32_bytes() {
        let from_hex = MasterKey::from_config(GOOD_HEX).unwrap();
        let raw = hex::decode(GOOD_HEX).unwrap();
        for text in [STANDARD.encode(&raw), URL_SAFE_NO_PAD.encode(&raw), format!("  {}\n", STANDARD.encode(&raw))] {
            assert_eq!(MasterKey::from_config(&text).unwrap(), from_hex, "{text}");
        }
        assert_eq!(MasterKey::from_config(&from_hex.to_base64()).unwrap(), from_hex);
    }

    #[test]
    fn config_refuses_empty_short_long_weak_and_well_known() {
        assert!(matches!(MasterKey::from_config(""), Err(KeyError::Empty { .. })));
        assert!(matches!(MasterKey::from_config("   \n"), Err(KeyError::Empty { .. })));
        for known in ["changeme", "secret", "password", "SECRET", "7TXsxf7cn9EkUqm5h4MEWGjzkxkNCk2K"] {
            assert!(matches!(MasterKey::from_config(known), Err(KeyError::WellKnown { .. })), "{known}");
        }
        // OpenIAP Flow's published secret, hex- or base64-encoded, is still that secret.
        let published = b"O1itlrmA47WzxPj95YHD2sZs7IchYaQI";
        assert!(matches!(MasterKey::from_config(&hex::encode(published)), Err(KeyError::WellKnown { .. })));
        assert!(matches!(MasterKey::from_config(&STANDARD.encode(published)), Err(KeyError::WellKnown { .. })));
        assert!(matches!(MasterKey::from_config(&"00".repeat(32)), Err(KeyError::Degenerate { .. })));
        assert!(matches!(MasterKey::from_config(&STANDARD.encode([0u8; 32])), Err(KeyError::Degenerate { .. })));
        assert!(matches!(MasterKey::from_config(&"ab".repeat(32)), Err(KeyError::Degenerate { .. })));
        let counting: Vec<u8> = (1..=32).collect();
        assert!(matches!(MasterKey::from_config(&hex::encode(&counting)), Err(KeyError::Degenerate { .. })));
        assert!(matches!(MasterKey::from_config(&STANDARD.encode([7u8, 9, 1, 3])), Err(KeyError::TooShort { .. })));
        let long = STANDARD.encode([0x5au8, 0x11].repeat(20));
        assert!(matches!(MasterKey::from_config(&long), Err(KeyError::InvalidEncoding(_))));
        assert!(matches!(MasterKey::from_config("not a key at all!"), Err(KeyError::InvalidEncoding(_))));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = MasterKey::from_config(GOOD_HEX).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey(..)");
        assert!(!shown.contains("8f3a"));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_owner_only_and_reloaded_identically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("flowkeep.key");
        let (created, status) = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(status, KeyFileStatus::Created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, status) = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(status, KeyFileStatus::Loaded);
        assert_eq!(loaded, created);
        assert_eq!(
            loaded.derive(Purpose::Cookies).unwrap().expose_secret(),
            created.derive(Purpose::Cookies).unwrap().expose_secret()
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("flowkeep.key")]);
        // Two fresh installations do not share a key.
        let (other, _) = MasterKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other, created);
    }

    #[cfg(unix)]
    #[test]
    fn group_or_other_readable_key_file_is_refused_with_a_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowkeep.key");
        MasterKey::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = MasterKey::load_or_create(&path).unwrap_err();
            assert!(matches!(err, KeyError::KeyFilePermissions { mode: m, .. } if m == mode), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        // The file is left as it was: nothing is silently regenerated or fixed.
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o602);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(MasterKey::load_or_create(&path).unwrap().1, KeyFileStatus::Loaded);
    }

    #[cfg(unix)]
    #[test]
    fn invalid_key_file_content_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("empty", String::new()),
            ("placeholder", "changeme\n".to_owned()),
            ("zeros", format!("{}\n", STANDARD.encode([0u8; 32]))),
            ("two keys", format!("{GOOD_HEX}\n{GOOD_HEX}\n")),
            ("short", "c2hvcnQ=\n".to_owned()),
        ];
        for (name, content) in cases {
            let path = dir.path().join(name);
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = MasterKey::load_or_create(&path).unwrap_err();
            assert!(matches!(err, KeyError::KeyFileInvalid { .. }), "{name}: {err}");
            // An invalid file is never replaced by a fresh key: data may be encrypted under the old one.
            assert!(MasterKey::load_or_create(&path).is_err());
        }
        // A hand-written file with a comment and the key is accepted.
        let path = dir.path().join("handwritten");
        fs::write(&path, format!("# mine\n\n{GOOD_HEX}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(MasterKey::load_or_create(&path).unwrap().0, MasterKey::from_config(GOOD_HEX).unwrap());
    }

    #[test]
    fn key_file_beside_the_database() {
        assert_eq!(key_file_beside(Path::new("data/flowkeep.db")), PathBuf::from("data/flowkeep.key"));
        assert_eq!(key_file_beside(Path::new("/var/lib/flowkeep/store")), PathBuf::from("/var/lib/flowkeep/store.key"));
    }
}
