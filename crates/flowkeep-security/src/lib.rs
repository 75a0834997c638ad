//! Every authorization decision of Flowkeep, as pure functions over plain data (no IO, no clock).
//!
//! * [`wellknown`]: the well-known principal ids and names of OpenIAP Flow and the reserved-name guard.
//! * [`acl`]: access-control entries, parsing (including the legacy base64 rights), the decision function
//!   [`allows`] (deny entries enforced: deny wins), ACL normalisation on write and who may change an ACL.
//! * [`roles`]: effective roles as the transitive closure over role membership.
//! * [`password`]: argon2id hashing, and verification of argon2 and OpenIAP Flow's bcrypt hashes.
//! * [`caller`]: [`Caller`], the resolved identity a request runs as, and the store scope it may see.
//!
//! Handlers ask this crate; they never re-implement a check. Integration with the store and the server
//! (loading users and roles, caching, tokens) lives in higher layers and feeds this crate plain data.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod acl;
pub mod caller;
pub mod error;
pub mod password;
pub mod roles;
pub mod wellknown;

pub use acl::{
    allows, may_change_acl, normalize_acl, parse_acl, parse_stored_acl, Ace, Creator, NormalizeOptions, WriteKind,
};
pub use caller::{Caller, Impostor, ScopeSpec};
pub use error::SecurityError;
pub use flowkeep_model::Rights;
pub use password::{hash_password, verify_password, Verification};
pub use roles::{EffectiveRoles, RoleGraph, RoleGraphOptions, RoleRef};
pub use wellknown::reserved_name_violation;
