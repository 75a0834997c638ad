//! Checks shared by every backend: collection names, documents and `_id`s, index key documents and
//! MongoDB's default index names. Backends call these before touching storage, so invalid input is
//! refused the same way everywhere.

use crate::error::{Result, StoreError};
use flowkeep_model::new_object_id;
use flowkeep_query::{FieldPath, Limits};
use serde_json::{Map, Value};

/// Longest accepted collection name, in bytes.
pub const MAX_COLLECTION_NAME: usize = 120;
/// Largest accepted document, in bytes of JSON text (MongoDB's BSON limit).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// Deepest accepted document nesting (MongoDB's limit).
pub const MAX_DOCUMENT_DEPTH: usize = 100;
/// Most indexes on one collection, `_id_` included (MongoDB's limit).
pub const MAX_INDEXES: usize = 64;

/// Checks a collection name: non-empty, at most [`MAX_COLLECTION_NAME`] bytes, no `$` or NUL, and not in
/// the reserved `system.` namespace.
pub fn collection_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(StoreError::InvalidCollectionName { name: name.to_string(), reason: reason.into() });
    if name.is_empty() {
        return bad("a collection name cannot be empty");
    }
    if name.len() > MAX_COLLECTION_NAME {
        return bad("a collection name is at most 120 bytes");
    }
    if name.contains('$') {
        return bad("a collection name cannot contain '$'");
    }
    if name.contains('\0') {
        return bad("a collection name cannot contain NUL");
    }
    if name.starts_with("system.") {
        return bad("the 'system.' prefix is reserved");
    }
    Ok(())
}

/// Limits a stored document must respect (depth like MongoDB; node count generous, size is checked on
/// the serialised form).
fn document_limits() -> Limits {
    Limits { max_depth: MAX_DOCUMENT_DEPTH, max_nodes: 8 * 1024 * 1024, ..Limits::default() }
}

/// Prepares a document for insertion and returns its `_id` and the document with `_id` as first field.
///
/// * The document must be a JSON object.
/// * `_id` missing or the empty string: a new ObjectId text is generated.
/// * Otherwise `_id` must be a string: a number, object or other `_id` is refused with
///   [`StoreError::InvalidDocument`] (Flowkeep, like OpenIAP Flow, keeps ids as plain strings).
pub fn new_document(doc: Value) -> Result<(String, Value)> {
    let Value::Object(map) = doc else {
        return Err(StoreError::InvalidDocument(format!("a document must be a JSON object, not {}", kind(&doc))));
    };
    let id = match map.get("_id") {
        None => new_object_id(),
        Some(Value::String(s)) if s.is_empty() => new_object_id(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(StoreError::InvalidDocument(format!("_id must be a string, not {}", kind(other))));
        }
    };
    let doc = with_id_first(map, &id);
    stored_document(&doc)?;
    Ok((id, doc))
}

/// Rebuilds `map` with `_id` set to `id` as its first field, as MongoDB stores documents.
pub fn with_id_first(mut map: Map<String, Value>, id: &str) -> Value {
    if map.keys().next().map(String::as_str) == Some("_id") {
        map.insert("_id".into(), Value::String(id.to_string()));
        return Value::Object(map);
    }
    map.shift_remove("_id");
    let mut out = Map::with_capacity(map.len() + 1);
    out.insert("_id".into(), Value::String(id.to_string()));
    out.extend(map);
    Value::Object(out)
}

/// Checks a document about to be stored (after an insert, update or replace): an object with a string
/// `_id`, within the depth and size limits. Returns its JSON text.
pub fn stored_document(doc: &Value) -> Result<String> {
    let Value::Object(map) = doc else {
        return Err(StoreError::InvalidDocument(format!("a document must be a JSON object, not {}", kind(doc))));
    };
    if !matches!(map.get("_id"), Some(Value::String(s)) if !s.is_empty()) {
        return Err(StoreError::InvalidDocument("_id must be a non-empty string".into()));
    }
    document_limits().check_input("document", doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
    let text = serde_json::to_string(doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::InvalidDocument(format!(
            "the document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}

/// A JSON type name for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parsed index key document: the fields in order with their direction values as given.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexKeys {
    /// `(path, direction)` in key order; the direction is a non-zero number.
    pub fields: Vec<(FieldPath, Value)>,
}

impl IndexKeys {
    /// Parses `{a: 1, "b.c": -1}`. Only ascending/descending (non-zero numbers) are supported; special
    /// index types (`"text"`, `"hashed"`, `"2dsphere"`) are refused.
    pub fn parse(keys: &Value) -> Result<IndexKeys> {
        let Value::Object(map) = keys else {
            return Err(StoreError::InvalidIndex(format!("index keys must be an object, not {}", kind(keys))));
        };
        if map.is_empty() {
            return Err(StoreError::InvalidIndex("index keys cannot be empty".into()));
        }
        let mut fields = Vec::with_capacity(map.len());
        for (path, dir) in map {
            let parsed = FieldPath::parse(path).map_err(|e| StoreError::InvalidIndex(e.to_string()))?;
            if parsed.parts().iter().any(|p| p.starts_with('$')) {
                return Err(StoreError::InvalidIndex(format!("index key '{path}' cannot start with '$'")));
            }
            match dir {
                Value::Number(n) if n.as_f64().is_some_and(|f| f != 0.0 && f.is_finite()) => {}
                Value::String(s) => {
                    return Err(StoreError::InvalidIndex(format!("index type '{s}' on '{path}' is not supported")));
                }
                other => {
                    return Err(StoreError::InvalidIndex(format!(
                        "the direction of '{path}' must be 1 or -1, not {other}"
                    )));
                }
            }
            fields.push((parsed, dir.clone()));
        }
        Ok(IndexKeys { fields })
    }

    /// MongoDB's default name: each `field_direction` joined with `_` (`{a: 1, b: -1}` gives `a_1_b_-1`).
    pub fn default_name(&self) -> String {
        self.fields.iter().map(|(p, d)| format!("{}_{}", p.dotted(), d)).collect::<Vec<_>>().join("_")
    }

    /// The key document back in JSON form.
    pub fn to_json(&self) -> Value {
        Value::Object(self.fields.iter().map(|(p, d)| (p.dotted(), d.clone())).collect())
    }
}

/// Checks an index name: non-empty, at most 255 bytes, no NUL.
pub fn index_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(StoreError::InvalidIndex(format!("invalid index name '{name}'")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(collection_name("entities").is_ok());
        assert!(collection_name("fs.files").is_ok());
        for bad in ["", "a$b", "a\0b", "system.users"] {
            assert!(collection_name(bad).is_err(), "{bad:?}");
        }
        assert!(collection_name(&"x".repeat(121)).is_err());
        assert!(collection_name(&"x".repeat(120)).is_ok());
    }

    #[test]
    fn ids() {
        let (id, doc) = new_document(json!({"a": 1})).unwrap();
        assert_eq!(id.len(), 24);
        assert_eq!(doc.as_object().unwrap().keys().next().unwrap(), "_id");
        let (id, doc) = new_document(json!({"a": 1, "_id": "x"})).unwrap();
        assert_eq!((id.as_str(), doc), ("x", json!({"_id": "x", "a": 1})));
        assert_eq!(new_document(json!({"_id": ""})).unwrap().0.len(), 24);
        assert!(matches!(new_document(json!({"_id": 5})), Err(StoreError::InvalidDocument(_))));
        assert!(matches!(new_document(json!({"_id": {"a": 1}})), Err(StoreError::InvalidDocument(_))));
        assert!(matches!(new_document(json!([1])), Err(StoreError::InvalidDocument(_))));
    }

    #[test]
    fn deep_documents_are_refused() {
        let mut v = json!(1);
        for _ in 0..200 {
            v = json!({ "a": v });
        }
        assert!(matches!(new_document(v), Err(StoreError::InvalidDocument(_))));
    }

    #[test]
    fn index_keys_and_names() {
        assert_eq!(IndexKeys::parse(&json!({"name": 1})).unwrap().default_name(), "name_1");
        assert_eq!(IndexKeys::parse(&json!({"a": 1, "b": -1})).unwrap().default_name(), "a_1_b_-1");
        assert_eq!(IndexKeys::parse(&json!({"a.b": 1})).unwrap().default_name(), "a.b_1");
        assert!(IndexKeys::parse(&json!({})).is_err());
        assert!(IndexKeys::parse(&json!({"a": "text"})).is_err());
        assert!(IndexKeys::parse(&json!({"a": 0})).is_err());
        assert!(IndexKeys::parse(&json!({"$a": 1})).is_err());
        assert!(IndexKeys::parse(&json!([1])).is_err());
    }
}
