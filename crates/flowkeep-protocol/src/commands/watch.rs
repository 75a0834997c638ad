//! Watches: `watch`, `unwatch`, and delivering the core's change feed as `watchevent`s.
//!
//! A connection subscribes to the feed while it holds at least one watch. For each change in a watched
//! collection the core decides what the watch's identity may see ([`flowkeep_core::Platform::visible_change`]):
//! the session's caller at delivery time (re-resolved at most every few seconds), or, for a watch
//! created with an envelope `jwt`, that token's caller. Nothing is sent when it may see nothing. `paths`
//! are JSONPath expressions evaluated against `{"a": <document>}`; a watch matches when any of them
//! selects something; no paths, or only empty strings (the official client sends `[""]`), match every
//! change.
//!
//! **Lag.** The feed is a bounded broadcast ring in the core; while this connection is blocked on a slow
//! client, changes wait there and nothing grows here. A connection that falls more than the ring behind
//! loses the oldest changes: it is sent one `error` envelope without `rid` (code 503, naming how many
//! changes were lost; the official client logs it) and keeps going with the newest changes. Closing the
//! connection instead would not help the client: it drops its watch callbacks on reconnect.

use crate::codec::{self, decode, to_json, ProtocolError, Result};
use crate::commands::{alias, reply_command};
use crate::connection::{Connection, Reply, CALLER_RECHECK};
use crate::wire;
use flowkeep_core::changes::ChangeEvent;
use flowkeep_core::Caller;
use flowkeep_security::policy::{self, CollectionAccess};
use serde_json::{json, Value};
use serde_json_path::JsonPath;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// The most watches one connection may hold.
pub const MAX_WATCHES: usize = 64;
/// The most JSONPath filters one watch may carry.
pub const MAX_PATHS: usize = 32;

/// Who a watch's events are for.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Identity {
    /// The session's caller at delivery time.
    Session,
    /// The caller of the token the watch was created with.
    Token(String),
}

struct Watch {
    collection: String,
    paths: Vec<JsonPath>,
    identity: Identity,
}

impl Watch {
    fn matches(&self, doc: &Value) -> bool {
        if self.paths.is_empty() {
            return true;
        }
        let root = json!({ "a": doc });
        self.paths.iter().any(|p| !p.query(&root).is_empty())
    }
}

/// The watches of a connection and its subscription to the change feed.
#[derive(Default)]
pub(crate) struct Watches {
    list: BTreeMap<String, Watch>,
    feed: Option<broadcast::Receiver<Arc<ChangeEvent>>>,
    /// Callers of token watches, with when they were resolved.
    token_callers: HashMap<String, (Caller, Instant)>,
}

impl Watches {
    /// The next change; pending forever while there is no watch.
    pub async fn recv(&mut self) -> std::result::Result<Arc<ChangeEvent>, RecvError> {
        match &mut self.feed {
            Some(feed) => feed.recv().await,
            None => std::future::pending().await,
        }
    }

    /// How many watches are open.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// `watch`.
pub(crate) async fn watch(conn: &mut Connection, caller: Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::WatchRequest = decode(envelope)?;
    let collection = alias(&request.collectionname);
    if collection.is_empty() {
        return Err(ProtocolError::field("collectionname", "is required"));
    }
    policy::authorize_collection_access(&collection, CollectionAccess::Read)
        .map_err(|e| ProtocolError::Core(e.into()))?;
    let texts: Vec<&str> = request.paths.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    if texts.len() > MAX_PATHS {
        return Err(ProtocolError::field("paths", format!("at most {MAX_PATHS} paths per watch")));
    }
    let mut paths = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let path = JsonPath::parse(text).map_err(|e| {
            ProtocolError::field(format!("paths[{i}]"), format!("'{text}' is not a valid JSONPath ({e})"))
        })?;
        paths.push(path);
    }
    if conn.watches.list.len() >= MAX_WATCHES {
        return Err(ProtocolError::field(
            "watch",
            format!("at most {MAX_WATCHES} watches may be open on one connection"),
        ));
    }
    let token = crate::connection::strip_bearer(&envelope.jwt).to_owned();
    let identity = if token.is_empty() {
        Identity::Session
    } else {
        conn.watches.token_callers.insert(token.clone(), (caller, Instant::now()));
        Identity::Token(token)
    };
    if conn.watches.feed.is_none() {
        conn.watches.feed = Some(conn.hub.platform.subscribe_changes());
    }
    let id = flowkeep_model::new_object_id();
    conn.watches.list.insert(id.clone(), Watch { collection, paths, identity });
    let count = conn.watches.len();
    conn.registry.update(|e| e.watches = count);
    Ok(Reply::new(&reply_command(envelope), &wire::WatchResponse { id }))
}

/// `unwatch`.
pub(crate) fn unwatch(conn: &mut Connection, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::UnWatchRequest = decode(envelope)?;
    let id = request.id.trim();
    if id.is_empty() {
        return Err(ProtocolError::field("id", "is required"));
    }
    let Some(removed) = conn.watches.list.remove(id) else {
        return Err(ProtocolError::Core(flowkeep_core::CoreError::NotFound(format!(
            "watch '{id}' is not open on this connection"
        ))));
    };
    if let Identity::Token(token) = &removed.identity {
        if !conn.watches.list.values().any(|w| w.identity == removed.identity) {
            conn.watches.token_callers.remove(token);
        }
    }
    if conn.watches.list.is_empty() {
        conn.watches.feed = None;
    }
    let count = conn.watches.len();
    conn.registry.update(|e| e.watches = count);
    Ok(Reply::new(&reply_command(envelope), &wire::UnWatchResponse {}))
}

/// The caller of `identity` for a delivery.
async fn delivery_caller(conn: &mut Connection, identity: &Identity) -> Option<Caller> {
    match identity {
        Identity::Session => conn.session_caller().await,
        Identity::Token(token) => {
            if let Some((caller, at)) = conn.watches.token_callers.get(token) {
                if at.elapsed() < CALLER_RECHECK {
                    return Some(caller.clone());
                }
            }
            match conn.hub.platform.authenticate(token).await {
                Ok(caller) => {
                    conn.watches.token_callers.insert(token.clone(), (caller.clone(), Instant::now()));
                    Some(caller)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "watch token no longer resolves; events withheld");
                    None
                }
            }
        }
    }
}

/// One item from the change feed.
pub(crate) async fn on_change(conn: &mut Connection, event: std::result::Result<Arc<ChangeEvent>, RecvError>) {
    let event = match event {
        Ok(event) => event,
        Err(RecvError::Lagged(lost)) => {
            tracing::warn!(connection = conn.registry.id(), lost, "watch feed lagged; changes lost");
            conn.send(codec::error_envelope("", &ProtocolError::WatchLagged(lost))).await;
            return;
        }
        Err(RecvError::Closed) => {
            conn.watches.feed = None;
            return;
        }
    };
    let mut identities: Vec<Identity> = Vec::new();
    for w in conn.watches.list.values().filter(|w| w.collection == event.collection) {
        if !identities.contains(&w.identity) {
            identities.push(w.identity.clone());
        }
    }
    let platform = conn.hub.platform.clone();
    for identity in identities {
        let Some(caller) = delivery_caller(conn, &identity).await else { continue };
        let Some(doc) = platform.visible_change(&caller, &event) else { continue };
        let matching: Vec<String> = conn
            .watches
            .list
            .iter()
            .filter(|(_, w)| w.collection == event.collection && w.identity == identity && w.matches(&doc))
            .map(|(id, _)| id.clone())
            .collect();
        if matching.is_empty() {
            continue;
        }
        let document = to_json(&doc);
        for id in matching {
            let message =
                wire::WatchEvent { id, operation: event.operation.as_str().to_owned(), document: document.clone() };
            let envelope = codec::reply("watchevent", "", &message);
            let size = prost::Message::encoded_len(&envelope);
            if size > conn.info.max_outbound_bytes {
                tracing::warn!(
                    connection = conn.registry.id(),
                    size,
                    "watch event larger than the client accepts; skipped"
                );
                continue;
            }
            conn.send(envelope).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_with(paths: &[&str]) -> Watch {
        Watch {
            collection: "c".into(),
            paths: paths.iter().filter_map(|p| JsonPath::parse(p).ok()).collect(),
            identity: Identity::Session,
        }
    }

    #[test]
    fn paths_filter_documents() {
        let doc = json!({"name": "x", "n": 5});
        assert!(watch_with(&[]).matches(&doc));
        assert!(watch_with(&["$.a.name"]).matches(&doc));
        assert!(!watch_with(&["$.a.missing"]).matches(&doc));
        // A filter on the root iterates its one member, the document.
        assert!(watch_with(&["$[?@.n > 3]"]).matches(&doc));
        assert!(!watch_with(&["$[?@.n > 7]"]).matches(&doc));
    }
}
