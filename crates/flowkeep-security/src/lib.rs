//! Every authorization decision of Flowkeep, as pure functions over plain data (no IO, no clock).
//!
//! * [`wellknown`]: the well-known principal ids and names of OpenIAP Flow and the reserved-name guard.
//! * [`acl`]: access-control entries, parsing (including the legacy base64 rights), the decision function
//!   [`allows`] (deny entries enforced: deny wins), ACL normalisation on write and who may change an ACL.
//! * [`roles`]: effective roles as the transitive closure over role membership.
//! * [`password`]: argon2id hashing, and verification of argon2 and OpenIAP Flow's bcrypt hashes.
//! * [`policy`]: who may write principals (creating identities, admin-only fields) and collections
//!   (create, drop, the system's reserved names).
//! * [`caller`]: [`Caller`], the resolved identity a request runs as, and the store scope it may see.
//! * [`keys`]: the master key (configured, or an owner-only key file: the crate's only file IO), one
//!   derived key per purpose, the Ed25519 token signing key ring (encrypted at rest, rotation, JWKS),
//!   OpenIAP Flow's legacy secret.
//! * [`tokens`]: issuing and verifying EdDSA JWTs (and OpenIAP Flow's HS256 tokens for migration).
//! * [`fieldcrypt`]: `_encrypt` fields as AES-256-GCM values bound to collection, `_id` and field, with a
//!   key ring for rotation, reading OpenIAP Flow's GCM and CBC values.
//! * [`audit`]: audit entries chained by a keyed hash, verification and retention checkpoints.
//!
//! Handlers ask this crate; they never re-implement a check. Integration with the store and the server
//! (loading users and roles, caching, tokens) lives in higher layers and feeds this crate plain data.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod acl;
pub mod audit;
pub mod caller;
pub mod error;
pub mod fieldcrypt;
pub mod keys;
pub mod password;
pub mod policy;
pub mod roles;
pub mod tokens;
pub mod wellknown;

pub use acl::{
    allows, may_change_acl, normalize_acl, parse_acl, parse_stored_acl, Ace, Creator, NormalizeOptions, WriteKind,
};
pub use audit::{AuditChain, AuditDraft, AuditEntry, AuditKey, AuditKind, Problem, VerifyOptions, VerifyReport};
pub use caller::{Caller, Impostor, ScopeSpec};
pub use error::SecurityError;
pub use fieldcrypt::{FieldCrypter, FieldKey, LegacyFieldKey};
pub use flowkeep_model::Rights;
pub use keys::{KeyError, KeyStore, MasterKey, Purpose, PurposeKey, SigningKeyRing, StoredSigningKey};
pub use password::{hash_password, verify_password, Verification};
pub use roles::{EffectiveRoles, RoleGraph, RoleGraphOptions, RoleRef};
pub use tokens::{TokenConfig, TokenError, TokenKind, TokenRequest, TokenService, VerifiedToken};
pub use wellknown::reserved_name_violation;
