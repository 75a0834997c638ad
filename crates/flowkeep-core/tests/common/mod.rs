//! Set-up shared by the core's integration tests: a core over a temporary SQLite store (first admin
//! password set, a fresh master key) and user documents to resolve callers from.

#![allow(dead_code)]

use flowkeep_core::{Platform, PlatformConfig};
use flowkeep_security::MasterKey;
use flowkeep_store::{SqliteStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

/// The first admin's password in every test core.
pub const ADMIN_PASSWORD: &str = "admin pw for tests";

/// A core over a new temporary store with `config` (its admin password replaced by [`ADMIN_PASSWORD`]).
pub async fn platform(config: PlatformConfig) -> Platform {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_temporary().expect("a temporary store"));
    let config = PlatformConfig { admin_password: Some(ADMIN_PASSWORD.into()), ..config };
    Platform::open(store, config, &MasterKey::generate().expect("a master key")).await.expect("the core opens")
}

/// A user document with the same username and name.
pub fn user(id: &str, name: &str) -> Value {
    json!({"_id": id, "_type": "user", "username": name, "name": name})
}
