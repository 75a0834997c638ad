//! Password hashing: argon2id for every new hash; argon2 PHC strings and OpenIAP Flow's bcrypt hashes
//! (`$2a$`, `$2b$`, `$2y$`, made by bcryptjs with cost 12) verified, with a flag asking the caller to
//! rehash on a successful login so old hashes migrate to the current policy.
//!
//! Comparisons of hash outputs are done inside the `argon2` and `bcrypt` crates, in constant time; this
//! module never compares hash bytes itself. Nothing here logs or returns a password or a hash in an error.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::SecurityError;

/// Longest password accepted, in bytes. Far above any real password; it bounds the work an attacker can
/// ask for with one login attempt.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Argon2id memory cost in KiB (19 MiB), time cost and parallelism: the OWASP recommendation and the
/// `argon2` crate's defaults, written out so a change in the crate cannot silently change our policy.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

/// Limits on parameters read from a *stored* hash. A stored hash with absurd parameters (imported data,
/// a tampered row) must not make a login allocate gigabytes or spin for minutes; it simply fails.
const MAX_STORED_M_COST: u32 = 256 * 1024;
const MAX_STORED_T_COST: u32 = 16;
const MAX_STORED_P_COST: u32 = 8;
/// Highest bcrypt cost we verify. OpenIAP Flow uses 12; every step doubles the work.
const MAX_BCRYPT_COST: u32 = 16;

/// The outcome of [`verify_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The candidate matches the stored hash.
    pub ok: bool,
    /// The match succeeded but the stored hash is not in the current format (bcrypt, or argon2 with other
    /// parameters): the caller should store a fresh [`hash_password`] of the candidate. Never true when
    /// `ok` is false.
    pub needs_rehash: bool,
}

impl Verification {
    const FAILED: Verification = Verification { ok: false, needs_rehash: false };
}

fn current_params() -> Result<Params, SecurityError> {
    Params::new(M_COST, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(|e| SecurityError::PasswordHash(e.to_string()))
}

/// Hashes a password with argon2id (19 MiB, 2 passes, 1 lane, 32-byte output) and a random 16-byte salt
/// from the operating system, returning the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
///
/// Refuses an empty password and one longer than [`MAX_PASSWORD_LEN`] bytes.
pub fn hash_password(password: &str) -> Result<String, SecurityError> {
    if password.is_empty() {
        return Err(SecurityError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(SecurityError::PasswordTooLong { max: MAX_PASSWORD_LEN });
    }
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params()?);
    argon
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| SecurityError::PasswordHash(e.to_string()))
}

/// Checks `candidate` against a `stored` hash.
///
/// Accepts argon2 PHC strings (`$argon2id$`, `$argon2i$`, `$argon2d$`) and bcrypt strings (`$2a$`, `$2b$`,
/// `$2y$`; bcrypt looks at the first 72 bytes only, like bcryptjs). Anything else — an empty or malformed
/// stored value, an unknown scheme, parameters beyond sane limits, an empty or over-long candidate — is a
/// plain failure: this function never panics and never errors, so a broken row cannot be told apart from
/// a wrong password by the client.
///
/// `needs_rehash` is true after a successful bcrypt match (we store argon2id only) and after an argon2
/// match whose algorithm, version or parameters differ from [`hash_password`]'s.
pub fn verify_password(stored: &str, candidate: &str) -> Verification {
    if candidate.is_empty() || candidate.len() > MAX_PASSWORD_LEN {
        return Verification::FAILED;
    }
    if stored.starts_with("$argon2") {
        verify_argon2(stored, candidate)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
        verify_bcrypt(stored, candidate)
    } else {
        Verification::FAILED
    }
}

fn verify_argon2(stored: &str, candidate: &str) -> Verification {
    let Ok(hash) = PasswordHash::new(stored) else { return Verification::FAILED };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else { return Verification::FAILED };
    let Ok(params) = Params::try_from(&hash) else { return Verification::FAILED };
    if params.m_cost() > MAX_STORED_M_COST || params.t_cost() > MAX_STORED_T_COST || params.p_cost() > MAX_STORED_P_COST
    {
        return Verification::FAILED;
    }
    // The verifier takes algorithm, version and parameters from the stored hash, not from `self`.
    if Argon2::default().verify_password(candidate.as_bytes(), &hash).is_err() {
        return Verification::FAILED;
    }
    let current = algorithm == Algorithm::Argon2id
        && hash.version == Some(Version::V0x13.into())
        && params.m_cost() == M_COST
        && params.t_cost() == T_COST
        && params.p_cost() == P_COST
        && params.output_len() == Some(OUTPUT_LEN);
    Verification { ok: true, needs_rehash: !current }
}

fn verify_bcrypt(stored: &str, candidate: &str) -> Verification {
    // "$2b$12$…": the cost is the two digits after the prefix. Checked before verifying so a stored
    // cost of 31 cannot tie up a thread for hours.
    let cost = stored.get(4..6).and_then(|c| c.parse::<u32>().ok());
    if cost.is_none_or(|c| c > MAX_BCRYPT_COST) {
        return Verification::FAILED;
    }
    match bcrypt::verify(candidate.as_bytes(), stored) {
        Ok(true) => Verification { ok: true, needs_rehash: true },
        _ => Verification::FAILED,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(verify_password(&hash, "correct horse"), Verification { ok: true, needs_rehash: false });
        assert_eq!(verify_password(&hash, "correct horsf"), Verification { ok: false, needs_rehash: false });
        assert_eq!(verify_password(&hash, ""), Verification { ok: false, needs_rehash: false });
        let again = hash_password("correct horse").unwrap();
        assert_ne!(hash, again, "random salt");
    }

    #[test]
    fn refuses_empty_and_huge_passwords() {
        assert_eq!(hash_password(""), Err(SecurityError::EmptyPassword));
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert_eq!(hash_password(&long), Err(SecurityError::PasswordTooLong { max: MAX_PASSWORD_LEN }));
        assert!(hash_password(&"x".repeat(MAX_PASSWORD_LEN)).is_ok());
    }

    #[test]
    fn other_argon2_params_need_rehash() {
        // argon2i and weaker argon2id parameters, made here with the crate directly
        let weak = Params::new(8 * 1024, 1, 1, Some(32)).unwrap();
        for alg in [Algorithm::Argon2i, Algorithm::Argon2id, Algorithm::Argon2d] {
            let hash = Argon2::new(alg, Version::V0x13, weak.clone()).hash_password(b"pw").unwrap().to_string();
            assert_eq!(verify_password(&hash, "pw"), Verification { ok: true, needs_rehash: true }, "{hash}");
            assert!(!verify_password(&hash, "pW").ok);
        }
    }

    #[test]
    fn bcrypt_vectors_from_openiap() {
        // OpenIAP Flow stores bcryptjs hashes with cost 12; bcryptjs writes `$2a$`, newer tools `$2b$`.
        let parts = bcrypt::hash_with_result("s3cret!", 12).unwrap();
        let b = parts.format_for_version(bcrypt::Version::TwoB);
        let a = parts.format_for_version(bcrypt::Version::TwoA);
        let y = parts.format_for_version(bcrypt::Version::TwoY);
        assert!(b.starts_with("$2b$12$") && a.starts_with("$2a$12$") && y.starts_with("$2y$12$"));
        for stored in [&b, &a, &y] {
            assert_eq!(verify_password(stored, "s3cret!"), Verification { ok: true, needs_rehash: true });
            assert_eq!(verify_password(stored, "s3cret?"), Verification { ok: false, needs_rehash: false });
        }
        // `$2x$` (the buggy-variant marker) is not accepted
        let x = parts.format_for_version(bcrypt::Version::TwoX);
        assert!(!verify_password(&x, "s3cret!").ok);
    }

    #[test]
    fn bcrypt_truncates_at_72_bytes_like_bcryptjs() {
        let long = "a".repeat(80);
        let stored = bcrypt::hash(&long, 4).unwrap();
        assert!(verify_password(&stored, &"a".repeat(72)).ok);
        assert!(verify_password(&stored, &format!("{}b", "a".repeat(75))).ok);
    }

    #[test]
    fn malformed_stored_hashes_fail_without_panic() {
        let good_b = bcrypt::hash("pw", 4).unwrap();
        let good_a = hash_password("pw").unwrap();
        let cases = [
            String::new(),
            "pw".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$".into(),
            "$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
            "$argon2id$v=19$m=19456,t=99,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
            "$argon2xx$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA".into(),
            "$2b$".into(),
            "$2b$1".into(),
            "$2b$xx$".into(),
            "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz12345".into(),
            "$2b$12$é".into(),
            good_b[..good_b.len() - 1].to_string(),
            format!("{good_b}x"),
            good_a[..good_a.len() - 3].to_string(),
            good_a.replace("$v=19", "$v=99"),
            "$1$md5$something".into(),
            "\u{0}\u{0}".into(),
        ];
        for stored in &cases {
            assert_eq!(verify_password(stored, "pw"), Verification { ok: false, needs_rehash: false }, "{stored:?}");
        }
    }
}
