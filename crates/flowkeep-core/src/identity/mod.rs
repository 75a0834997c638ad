//! Identity: the token signing keys at rest, bootstrap of the well-known principals and the first admin,
//! sign-in, token → caller resolution (afresh on every request, roles from a cache invalidated on any
//! user or role change), impersonation, login throttling, and the rules of the `users` collection.
//!
//! * `keys`: signing keys in `flowkeep.keys`, rotation, JWKS ([`Platform::jwks`],
//!   [`Platform::rotate_signing_key`]).
//! * `builtin`: bootstrap of the well-known principals and the first admin.
//! * `signin`: [`Platform::authenticate`], [`Platform::signin_password`], [`Platform::signin_token`],
//!   [`Platform::impersonate`], [`Platform::revert_impersonation`].
//! * `rules`: `prepare_user_write` / `after_user_write`, called by the documents layer.
//! * `throttle`: [`LoginThrottle`].
//!
//! The submodules share this module's imports and helpers (`use super::*`).
//!
//! # Where the system scope is used here, and why
//!
//! `Scope::system()` appears only for: the signing keys (`flowkeep.keys`, system data no ACL covers),
//! bootstrap, the look-up of the user a token or password authenticates (and of its impostor), the role
//! graph (every role must be seen to compute any caller's closure), the uniqueness checks on usernames
//! and role names (a name hidden from the writer must still count as taken), and the rehash of a
//! password after a successful bcrypt sign-in. Everything a caller asks for goes through its own scope.

mod builtin;
mod keys;
mod rules;
mod signin;
mod throttle;

#[cfg(test)]
mod tests;

use crate::audit_log::{actor_of, draft};
use crate::error::{CoreError, Result};
use crate::platform::{Platform, PlatformConfig};
use crate::scope::store_scope;
use flowkeep_model::{new_object_id, Rights};
use flowkeep_security::acl::{acl_to_value, parse_stored_acl};
use flowkeep_security::audit::{Actor, Client, Target};
use flowkeep_security::keys::signing::KeyRingChanges;
use flowkeep_security::wellknown::{self, PrincipalKind, WellKnown, WELL_KNOWN};
use flowkeep_security::{
    hash_password, reserved_name_violation, verify_password, Ace, AuditDraft, AuditKind, Caller, PurposeKey, RoleGraph,
    RoleGraphOptions, SigningKeyRing, StoredSigningKey, TokenConfig, TokenError, TokenKind, TokenRequest, TokenService,
    Verification, VerifiedToken,
};
use flowkeep_store::{FindOptions, IndexOptions, Scope, Store};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub(crate) use builtin::bootstrap;
pub(crate) use keys::init_token_service;
pub use keys::KeyReloadGate;
pub(crate) use rules::{after_user_write, prepare_user_write};
pub use throttle::LoginThrottle;

/// The collection of users, roles and customers.
pub const USERS_COLLECTION: &str = "users";
/// The reserved collection holding the token signing keys (private parts encrypted under the master
/// key). The documents layer refuses client access to `flowkeep.*`.
pub const KEYS_COLLECTION: &str = "flowkeep.keys";
/// Username of the first admin created at first start.
///
/// Not `admin`: that name is reserved for built-in principals (`wellknown::RESERVED_NAMES`), and the
/// reserved-name guard would make a user called `admin` untouchable by everyone but root — including
/// itself, so it could never change its own password.
pub const FIRST_ADMIN_USERNAME: &str = "flowkeep-admin";
/// The one message for an unknown user and a wrong password, so a client cannot tell them apart.
const BAD_CREDENTIALS: &str = "Unknown username or password";
/// Rights of the admins entry on built-in principals: full control minus delete (reference §2.4), so
/// not even an admin deletes a built-in role by accident.
const BUILTIN_ADMIN_RIGHTS: Rights = Rights(65527);
/// Length of a generated first-admin password (alphanumeric: about 143 bits).
const RANDOM_PASSWORD_LEN: usize = 24;

/// Who is signing in: the client program and the remote address, for throttling and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client agent (`nodered`, `openrpa`, `browser`, …).
    pub agent: Option<String>,
    /// The client version.
    pub version: Option<String>,
    /// The remote address (failures are also counted per address).
    pub address: Option<String>,
}

/// The result of a sign-in: a token and the public fields of the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The compact JWT.
    pub token: String,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
    /// The user as a client may see it (no `passwordhash`), with its effective `roles` and, when
    /// impersonating, the `impostor` id.
    pub user: Value,
}

/// The role graph of every role, built once from the `users` collection and dropped as soon as any
/// user or role changes (effective roles are computed from it per request, which is cheap).
#[derive(Default)]
pub struct RoleCache {
    state: Mutex<RoleCacheState>,
}

#[derive(Default)]
struct RoleCacheState {
    graph: Option<Arc<RoleGraph>>,
    /// Bumped by every invalidation, so a graph loaded while a write happened is not cached.
    generation: u64,
}

impl RoleCache {
    /// Forgets every cached resolution.
    pub fn invalidate_all(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.graph = None;
        state.generation = state.generation.wrapping_add(1);
    }

    /// The current graph, loading it when needed.
    async fn graph(&self, store: &dyn Store, max_depth: usize) -> Result<Arc<RoleGraph>> {
        let generation = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(graph) = &state.graph {
                return Ok(graph.clone());
            }
            state.generation
        };
        // System scope: a caller's closure depends on roles it may not be able to read.
        let options = FindOptions {
            projection: Some(json!({"_id": 1, "_type": 1, "name": 1, "members": 1})),
            ..FindOptions::default()
        };
        let roles = store.find(USERS_COLLECTION, &Scope::system(), &json!({"_type": "role"}), &options).await?;
        let graph = Arc::new(RoleGraph::with_options(&roles, RoleGraphOptions { max_depth }));
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation == generation {
            state.graph = Some(graph.clone());
        }
        Ok(graph)
    }
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn str_field<'a>(doc: &'a Value, field: &str) -> Option<&'a str> {
    doc.get(field).and_then(Value::as_str)
}

/// The member ids of a role document (`{_id}` objects or legacy plain strings).
fn member_ids(doc: &Value) -> Vec<String> {
    match doc.get("members") {
        Some(Value::Array(members)) => members
            .iter()
            .filter_map(|m| match m {
                Value::String(s) => Some(s.clone()),
                _ => str_field(m, "_id").map(str::to_owned),
            })
            .collect(),
        _ => Vec::new(),
    }
}

// Passwords are hashed and verified off the async threads: argon2id takes tens of milliseconds by
// design.

async fn hash_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(internal)?
        .map_err(|e| CoreError::InvalidRequest(e.to_string()))
}

async fn verify_blocking(stored: String, candidate: String) -> Result<Verification> {
    tokio::task::spawn_blocking(move || verify_password(&stored, &candidate)).await.map_err(internal)
}

/// A hash no password matches in practice, verified when the user is unknown so an unknown username
/// costs the same time as a wrong password.
async fn dummy_hash() -> Result<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let random = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let hash = hash_blocking(random).await?;
    Ok(DUMMY.get_or_init(|| hash).clone())
}
