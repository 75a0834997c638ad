//! Collection and index commands: `listcollections`, `createcollection`, `dropcollection`,
//! `createindex`, `getindexes`, `dropindex`.
//!
//! * `listcollections` answers a JSON array of `{name, type, options}`: history collections only with
//!   `includehist`, GridFS `.chunks` never, and `entities` and `audit` always (they exist for every
//!   client even before anything was written to them).
//! * `createcollection` is idempotent. `timeseries` makes a time-series collection (with
//!   `expireAfterSeconds` as its retention); `expireAfterSeconds` on an ordinary collection becomes a TTL
//!   index on `_created`, as in OpenIAP Flow. `collation`, `capped`, `max`, `size` and
//!   `changeStreamPreAndPostImages` are accepted and ignored.
//! * `getindexes` answers a JSON array of index specs, each with `name` and `key`.

use crate::codec::{decode, json_object, to_json, ProtocolError, Result};
use crate::commands::{reply_command, required_collection};
use crate::connection::{Connection, Reply};
use crate::wire;
use flowkeep_core::Caller;
use flowkeep_store::{CollectionKind, CollectionOptions, IndexOptions, TimeseriesOptions};
use serde_json::{json, Value};

/// `listcollections`.
pub(crate) async fn list(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::ListCollectionsRequest = decode(envelope)?;
    let collections = conn.hub.platform.list_collections(caller, request.includehist).await?;
    let mut listed: Vec<Value> = Vec::with_capacity(collections.len() + 2);
    let mut names: Vec<String> = Vec::with_capacity(collections.len() + 2);
    for c in collections.into_iter().filter(|c| !c.name.ends_with(".chunks")) {
        names.push(c.name.clone());
        listed.push(json!({"name": c.name, "type": c.kind.as_str(), "options": c.options.to_json()}));
    }
    for always in ["entities", "audit"] {
        if !names.iter().any(|n| n == always) {
            listed.push(json!({"name": always, "type": CollectionKind::Collection.as_str(), "options": {}}));
        }
    }
    listed.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Reply::new(&reply_command(envelope), &wire::ListCollectionsResponse { results: to_json(&Value::Array(listed)) }))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `createcollection`.
pub(crate) async fn create(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::CreateCollectionRequest = decode(envelope)?;
    let name = required_collection(&request.collectionname)?;
    let expire = u64::try_from(request.expire_after_seconds)
        .map_err(|_| ProtocolError::field("expireAfterSeconds", "must not be negative"))?;
    let timeseries = match &request.timeseries {
        None => None,
        Some(ts) => Some(TimeseriesOptions {
            time_field: non_empty(&ts.time_field).ok_or_else(|| {
                ProtocolError::field("timeseries.timeField", "is required for a time-series collection")
            })?,
            meta_field: non_empty(&ts.meta_field),
            granularity: non_empty(&ts.granularity),
        }),
    };
    let is_timeseries = timeseries.is_some();
    let options = CollectionOptions {
        timeseries,
        expire_after_seconds: (is_timeseries && expire > 0).then_some(expire),
        ..CollectionOptions::default()
    };
    let platform = conn.hub.platform.clone();
    platform.create_collection(caller, &name, &options).await?;
    if !is_timeseries && expire > 0 {
        let ttl = IndexOptions { expire_after_seconds: Some(expire), ..IndexOptions::default() };
        platform.create_index(caller, &name, &json!({"_created": 1}), &ttl).await?;
    }
    Ok(Reply::new(&reply_command(envelope), &wire::CreateCollectionResponse {}))
}

/// `dropcollection` (the core allows it to admins only).
pub(crate) async fn drop(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DropCollectionRequest = decode(envelope)?;
    let name = required_collection(&request.collectionname)?;
    conn.hub.platform.drop_collection(caller, &name).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::DropCollectionResponse {}))
}

/// `createindex`: `index` is the JSON key spec, `options` JSON index options (`unique`, `sparse`,
/// `expireAfterSeconds`, `name`); a non-empty `name` wins over `options.name`.
pub(crate) async fn create_index(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::CreateIndexRequest = decode(envelope)?;
    let name = required_collection(&request.collectionname)?;
    let keys = json_object("index", &request.index, None)?;
    if keys.as_object().is_none_or(|m| m.is_empty()) {
        return Err(ProtocolError::field("index", "must be a non-empty JSON object of keys, e.g. {\"name\": 1}"));
    }
    let mut options: IndexOptions = match json_object("options", &request.options, Some(Value::Null))? {
        Value::Null => IndexOptions::default(),
        value => serde_json::from_value(value)
            .map_err(|e| ProtocolError::field("options", format!("are not valid index options ({e})")))?,
    };
    if let Some(index_name) = non_empty(&request.name) {
        options.name = Some(index_name);
    }
    let result = conn.hub.platform.create_index(caller, &name, &keys, &options).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::CreateIndexResponse { result }))
}

/// `getindexes`.
pub(crate) async fn get_indexes(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::GetIndexesRequest = decode(envelope)?;
    let name = required_collection(&request.collectionname)?;
    let indexes = conn.hub.platform.list_indexes(caller, &name).await?;
    let specs: Vec<Value> = indexes.iter().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)).collect();
    Ok(Reply::new(&reply_command(envelope), &wire::GetIndexesResponse { results: to_json(&Value::Array(specs)) }))
}

/// `dropindex`.
pub(crate) async fn drop_index(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DropIndexRequest = decode(envelope)?;
    let name = required_collection(&request.collectionname)?;
    let index = non_empty(&request.name).ok_or_else(|| ProtocolError::field("name", "is required"))?;
    conn.hub.platform.drop_index(caller, &name, &index).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::DropIndexResponse {}))
}
