//! Document commands: the query family (`query`, `count`, `distinct`, `aggregate`,
//! `getdocumentversion`) and the writes (`insertone`, `insertmany`, `updateone`, `updatedocument`,
//! `insertorupdateone`, `insertorupdatemany`, `deleteone`, `deletemany`), mapped onto the core's
//! document commands. JSON travels as strings both ways.
//!
//! Mapping decisions:
//! * `top` 0 (or negative) is the configured `default_top`; larger than `max_top` is cut to it.
//! * `orderby` is JSON (`{"f": -1}`) or a bare field name (ascending).
//! * `queryas` and `explain` are honoured by `query`; `count`, `distinct` and `aggregate` refuse them
//!   (the core has no such form) rather than silently answering something else.
//! * `updatedocument` updates every matching document (MongoDB `updateMany`); nothing is upserted.
//! * `insertorupdatemany` runs item by item in input order; the first failing item stops it with an
//!   error naming its index (the items before it are written).
//! * `recursive` on deletes is accepted; history is kept (it is the audit trail of the document).
//! * `getdocumentversion` with a negative version, or one newer than the document, returns the current
//!   document.

use crate::codec::{self, decode, json_field, json_object, to_i32, to_json, ProtocolError, Result};
use crate::commands::{document_collection, reply_command};
use crate::connection::{Connection, Reply};
use crate::wire;
use flowkeep_core::documents::QueryRequest;
use flowkeep_core::Caller;
use serde_json::{json, Value};

fn no_queryas(queryas: &str) -> Result<()> {
    if queryas.trim().is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::field("queryas", "is only supported by query"))
    }
}

fn no_explain(explain: bool) -> Result<()> {
    if explain {
        Err(ProtocolError::field("explain", "is only supported by query"))
    } else {
        Ok(())
    }
}

/// `orderby`: JSON, or a bare field name meaning ascending.
fn parse_orderby(text: &str) -> Result<Option<Value>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) if map.is_empty() => Ok(None),
        Ok(Value::Object(map)) => Ok(Some(Value::Object(map))),
        Ok(Value::String(field)) if !field.is_empty() => Ok(Some(json!({ field: 1 }))),
        Ok(other) => Err(ProtocolError::field(
            "orderby",
            format!("must be a JSON object or a field name, not {}", codec::json_kind(&other)),
        )),
        Err(_) if !text.starts_with(['{', '[', '"']) && !text.contains(char::is_whitespace) => {
            Ok(Some(json!({ text: 1 })))
        }
        Err(e) => Err(ProtocolError::field("orderby", format!("is not valid JSON nor a field name ({e})"))),
    }
}

fn json_array(field: &str, text: &str) -> Result<Vec<Value>> {
    match json_field(field, text, None)? {
        Value::Array(items) => Ok(items),
        other => Err(ProtocolError::field(field, format!("must be a JSON array, not {}", codec::json_kind(&other)))),
    }
}

/// The documents of a JSON array field, each required to be an object.
fn json_items(field: &str, text: &str) -> Result<Vec<Value>> {
    let items = json_array(field, text)?;
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(ProtocolError::field(
                format!("{field}[{i}]"),
                format!("must be a JSON object, not {}", codec::json_kind(item)),
            ));
        }
    }
    Ok(items)
}

fn required_object(field: &str, text: &str) -> Result<Value> {
    let value = json_object(field, text, None)?;
    if value.is_null() {
        return Err(ProtocolError::field(field, "must be a JSON object, not null"));
    }
    Ok(value)
}

fn required_text<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ProtocolError::field(field, "is required"));
    }
    Ok(value)
}

/// `query`.
pub(crate) async fn query(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::QueryRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let config = &conn.hub.config;
    let top = match usize::try_from(request.top) {
        Ok(0) | Err(_) => config.default_top,
        Ok(n) => n.min(config.max_top),
    };
    let skip = usize::try_from(request.skip).map_err(|_| ProtocolError::field("skip", "must not be negative"))?;
    let projection = match json_object("projection", &request.projection, Some(Value::Null))? {
        Value::Object(map) if map.is_empty() => None,
        Value::Null => None,
        p => Some(p),
    };
    let query = QueryRequest {
        filter: json_object("query", &request.query, Some(json!({})))?,
        projection,
        sort: parse_orderby(&request.orderby)?,
        skip,
        top: Some(top),
        queryas: Some(request.queryas.trim().to_owned()).filter(|q| !q.is_empty()),
    };
    let platform = conn.hub.platform.clone();
    let results = if request.explain {
        to_json(&platform.explain_query(caller, &collection, &query).await?)
    } else {
        to_json(&Value::Array(platform.query(caller, &collection, &query).await?))
    };
    Ok(Reply::new(&reply_command(envelope), &wire::QueryResponse { results }))
}

/// `count`.
pub(crate) async fn count(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::CountRequest = decode(envelope)?;
    no_queryas(&request.queryas)?;
    no_explain(request.explain)?;
    let collection = document_collection(&request.collectionname);
    let filter = json_object("query", &request.query, Some(json!({})))?;
    let n = conn.hub.platform.count(caller, &collection, &filter).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::CountResponse { result: to_i32(n) }))
}

/// A distinct value as the wire's string: strings as they are, anything else as JSON.
fn value_string(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => to_json(&other),
    }
}

/// `distinct`.
pub(crate) async fn distinct(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DistinctRequest = decode(envelope)?;
    no_queryas(&request.queryas)?;
    no_explain(request.explain)?;
    let collection = document_collection(&request.collectionname);
    let field = required_text("field", &request.field)?;
    let filter = json_object("query", &request.query, Some(json!({})))?;
    let values = conn.hub.platform.distinct(caller, &collection, field, &filter).await?;
    let results = values.into_iter().map(value_string).collect();
    Ok(Reply::new(&reply_command(envelope), &wire::DistinctResponse { results }))
}

/// `aggregate`: `aggregates` is a JSON array of stages (a single stage object is accepted; empty means
/// `[]`).
pub(crate) async fn aggregate(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::AggregateRequest = decode(envelope)?;
    no_queryas(&request.queryas)?;
    no_explain(request.explain)?;
    let collection = document_collection(&request.collectionname);
    let pipeline = match json_field("aggregates", &request.aggregates, Some(json!([])))? {
        Value::Array(stages) => Value::Array(stages),
        Value::Object(stage) => Value::Array(vec![Value::Object(stage)]),
        other => {
            return Err(ProtocolError::field(
                "aggregates",
                format!("must be a JSON array of stages, not {}", codec::json_kind(&other)),
            ))
        }
    };
    let docs = conn.hub.platform.aggregate(caller, &collection, &pipeline).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::AggregateResponse { results: to_json(&Value::Array(docs)) }))
}

/// `insertone`.
pub(crate) async fn insert_one(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::InsertOneRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let item = required_object("item", &request.item)?;
    let doc = conn.hub.platform.insert_one(caller, &collection, item).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::InsertOneResponse { result: to_json(&doc) }))
}

/// `insertmany` (all or nothing, as the core inserts them).
pub(crate) async fn insert_many(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::InsertManyRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let items = json_items("items", &request.items)?;
    let docs = conn.hub.platform.insert_many(caller, &collection, items).await?;
    let results = if request.skipresults { "[]".to_owned() } else { to_json(&Value::Array(docs)) };
    Ok(Reply::new(&reply_command(envelope), &wire::InsertManyResponse { results }))
}

/// `updateone`: a full replace by `_id`.
pub(crate) async fn update_one(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::UpdateOneRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let item = required_object("item", &request.item)?;
    if item.get("_id").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(ProtocolError::field("item._id", "is required (updateone replaces the document with this _id)"));
    }
    let doc = conn.hub.platform.update_document(caller, &collection, item).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::UpdateOneResponse { result: to_json(&doc) }))
}

/// `updatedocument`: operator update of every matching document.
pub(crate) async fn update_document(
    conn: &mut Connection,
    caller: &Caller,
    envelope: &wire::Envelope,
) -> Result<Reply> {
    let request: wire::UpdateDocumentRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let filter = required_object("query", &request.query)?;
    let update = required_object("document", &request.document)?;
    let result = conn.hub.platform.update_many(caller, &collection, &filter, &update).await?;
    let opresult = wire::UpdateResult {
        acknowledged: true,
        matched_count: to_i32(result.matched),
        modified_count: to_i32(result.modified),
        upserted_count: 0,
        upserted_id: String::new(),
    };
    Ok(Reply::new(&reply_command(envelope), &wire::UpdateDocumentResponse { opresult: Some(opresult) }))
}

/// The fields of `uniqeness` (sic): a comma-separated list; empty means `_id`.
fn uniqueness(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

/// `insertorupdateone`.
pub(crate) async fn insert_or_update_one(
    conn: &mut Connection,
    caller: &Caller,
    envelope: &wire::Envelope,
) -> Result<Reply> {
    let request: wire::InsertOrUpdateOneRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let item = required_object("item", &request.item)?;
    let fields = uniqueness(&request.uniqeness);
    let doc = conn.hub.platform.insert_or_update_one(caller, &collection, item, &fields).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::InsertOrUpdateOneResponse { result: to_json(&doc) }))
}

/// `insertorupdatemany`: item by item, results in input order.
pub(crate) async fn insert_or_update_many(
    conn: &mut Connection,
    caller: &Caller,
    envelope: &wire::Envelope,
) -> Result<Reply> {
    let request: wire::InsertOrUpdateManyRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let items = json_items("items", &request.items)?;
    let fields = uniqueness(&request.uniqeness);
    let platform = conn.hub.platform.clone();
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match platform.insert_or_update_one(caller, &collection, item, &fields).await {
            Ok(doc) => results.push(doc),
            Err(e) => {
                let code_kind = ProtocolError::Core(e);
                return Err(ProtocolError::Item { index: i, source: Box::new(code_kind) });
            }
        }
    }
    let results = if request.skipresults { "[]".to_owned() } else { to_json(&Value::Array(results)) };
    Ok(Reply::new(&reply_command(envelope), &wire::InsertOrUpdateManyResponse { results }))
}

/// `deleteone`.
pub(crate) async fn delete_one(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DeleteOneRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let id = required_text("id", &request.id)?;
    conn.hub.platform.delete_one(caller, &collection, id).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::DeleteOneResponse { affectedrows: 1 }))
}

/// `deletemany`: by `ids`, or by `query` (one of them is required; both: documents matching both).
pub(crate) async fn delete_many(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::DeleteManyRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let query = json_object("query", &request.query, Some(Value::Null))?;
    let ids: Vec<&str> = request.ids.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    let filter = match (query, ids.is_empty()) {
        (Value::Null, true) => {
            return Err(ProtocolError::field("query", "deletemany needs a query or ids"));
        }
        (Value::Null, false) => json!({"_id": {"$in": ids}}),
        (query, true) => query,
        (query, false) => json!({"$and": [query, {"_id": {"$in": ids}}]}),
    };
    let n = conn.hub.platform.delete_many(caller, &collection, &filter).await?;
    Ok(Reply::new(&reply_command(envelope), &wire::DeleteManyResponse { affectedrows: to_i32(n) }))
}

/// `getdocumentversion`.
pub(crate) async fn get_document_version(
    conn: &mut Connection,
    caller: &Caller,
    envelope: &wire::Envelope,
) -> Result<Reply> {
    let request: wire::GetDocumentVersionRequest = decode(envelope)?;
    let collection = document_collection(&request.collectionname);
    let id = required_text("id", &request.id)?;
    let platform = conn.hub.platform.clone();
    let versioned = match u64::try_from(request.version) {
        Ok(version) => platform.get_document_version(caller, &collection, id, version).await?,
        Err(_) => None,
    };
    let doc = match versioned {
        Some(doc) => doc,
        None => {
            let current = QueryRequest { filter: json!({"_id": id}), top: Some(1), ..QueryRequest::default() };
            platform.query(caller, &collection, &current).await?.into_iter().next().ok_or_else(|| {
                ProtocolError::Core(flowkeep_core::CoreError::NotFound(format!(
                    "document '{id}' not found in '{collection}'"
                )))
            })?
        }
    };
    Ok(Reply::new(&reply_command(envelope), &wire::GetDocumentVersionResponse { result: to_json(&doc) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderby_forms() {
        assert_eq!(parse_orderby("").ok(), Some(None));
        assert_eq!(parse_orderby("name").ok(), Some(Some(json!({"name": 1}))));
        assert_eq!(parse_orderby("{\"n\": -1}").ok(), Some(Some(json!({"n": -1}))));
        assert_eq!(parse_orderby("\"n\"").ok(), Some(Some(json!({"n": 1}))));
        assert!(parse_orderby("{bad").is_err());
        assert!(parse_orderby("[1]").is_err());
    }

    #[test]
    fn uniqueness_list() {
        assert_eq!(uniqueness(" a, b ,,"), vec!["a", "b"]);
        assert!(uniqueness("").is_empty());
    }
}
