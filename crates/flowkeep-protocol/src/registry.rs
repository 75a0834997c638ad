//! The registry of live connections, behind `customcommand getclients`: one entry per connection,
//! added when it starts and removed (by a guard) when it ends, whatever way it ends.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What `getclients` shows of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    /// The connection id (server-made).
    pub id: String,
    /// The signed-in user's `_id`, if any.
    pub user_id: Option<String>,
    /// The signed-in user's username.
    pub username: Option<String>,
    /// The signed-in user's display name.
    pub name: Option<String>,
    /// The client agent from sign-in (`rust`, `node`, …).
    pub agent: String,
    /// The client version from sign-in.
    pub version: String,
    /// `grpc`, `websocket`, `test`.
    pub transport: &'static str,
    /// The peer address.
    pub remote: Option<SocketAddr>,
    /// When the connection started (RFC 3339, UTC).
    pub connected: String,
    /// How many watches the connection holds.
    pub watches: usize,
}

impl ClientEntry {
    /// The JSON form sent to clients.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "userid": self.user_id,
            "username": self.username,
            "name": self.name,
            "agent": self.agent,
            "version": self.version,
            "transport": self.transport,
            "remote": self.remote.map(|r| r.to_string()),
            "connected": self.connected,
            "watches": self.watches,
        })
    }
}

/// Every live connection of a hub.
#[derive(Debug, Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<String, ClientEntry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClientEntry>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection; it stays listed until the guard is dropped.
    pub fn register(self: &Arc<Self>, entry: ClientEntry) -> RegistryGuard {
        let id = entry.id.clone();
        self.lock().insert(id.clone(), entry);
        RegistryGuard { registry: self.clone(), id }
    }

    /// A copy of every entry, by connection id.
    pub fn snapshot(&self) -> Vec<ClientEntry> {
        self.lock().values().cloned().collect()
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Keeps a connection listed; updates its entry; removes it when dropped.
#[derive(Debug)]
pub struct RegistryGuard {
    registry: Arc<Registry>,
    id: String,
}

impl RegistryGuard {
    /// The connection id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Changes the connection's entry.
    pub fn update(&self, change: impl FnOnce(&mut ClientEntry)) {
        if let Some(entry) = self.registry.lock().get_mut(&self.id) {
            change(entry);
        }
    }
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_lists_and_unlists() {
        let registry = Arc::new(Registry::default());
        let entry = ClientEntry {
            id: "c1".into(),
            user_id: None,
            username: None,
            name: None,
            agent: String::new(),
            version: String::new(),
            transport: "test",
            remote: None,
            connected: String::new(),
            watches: 0,
        };
        let guard = registry.register(entry);
        guard.update(|e| e.watches = 2);
        assert_eq!(registry.snapshot().first().map(|e| e.watches), Some(2));
        drop(guard);
        assert!(registry.is_empty());
    }
}
