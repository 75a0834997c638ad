//! The plain data types of the store API: collection and index options and descriptions, find options,
//! and write outcomes. Field names serialise in MongoDB's camelCase so they can go to clients as they are.

use crate::error::{Result, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Options of a collection, as given to `create_collection` and reported by `list_collections`.
///
/// Options the store does not act on (e.g. `validator`, `capped`) are kept in `other` and round-trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionOptions {
    /// Makes the collection a time-series collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeseries: Option<TimeseriesOptions>,
    /// For a time-series collection: documents expire this many seconds after their `timeField`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_seconds: Option<u64>,
    /// Every other option, kept verbatim.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl CollectionOptions {
    /// Parses options from their JSON form (`{timeseries: {timeField: "ts"}, expireAfterSeconds: 60}`).
    pub fn from_json(value: &Value) -> Result<CollectionOptions> {
        if value.is_null() {
            return Ok(CollectionOptions::default());
        }
        serde_json::from_value(value.clone()).map_err(|e| StoreError::InvalidOptions(e.to_string()))
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks the options are consistent: a time-series collection needs a valid `timeField`,
    /// `granularity` is one of MongoDB's, and `expireAfterSeconds` is only for time-series collections.
    pub fn validate(&self) -> Result<()> {
        if let Some(ts) = &self.timeseries {
            check_top_field("timeseries.timeField", &ts.time_field)?;
            if let Some(meta) = &ts.meta_field {
                check_top_field("timeseries.metaField", meta)?;
                if meta == &ts.time_field {
                    return Err(StoreError::InvalidOptions("metaField and timeField must differ".into()));
                }
            }
            if let Some(g) = &ts.granularity {
                if !matches!(g.as_str(), "seconds" | "minutes" | "hours") {
                    return Err(StoreError::InvalidOptions(format!(
                        "timeseries.granularity must be 'seconds', 'minutes' or 'hours', not '{g}'"
                    )));
                }
            }
        } else if self.expire_after_seconds.is_some() {
            return Err(StoreError::InvalidOptions(
                "expireAfterSeconds on a collection needs a time-series collection; use a TTL index instead".into(),
            ));
        }
        Ok(())
    }

    /// The kind of collection these options make.
    pub fn kind(&self) -> CollectionKind {
        if self.timeseries.is_some() {
            CollectionKind::Timeseries
        } else {
            CollectionKind::Collection
        }
    }
}

fn check_top_field(what: &str, field: &str) -> Result<()> {
    if field.is_empty() || field.contains('.') || field.starts_with('$') || field.contains('\0') {
        return Err(StoreError::InvalidOptions(format!(
            "{what} must be a non-empty top-level field name, not '{field}'"
        )));
    }
    Ok(())
}

/// Time-series options (MongoDB's `timeseries` collection option).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeseriesOptions {
    /// The top-level field holding each measurement's date; required on every document.
    pub time_field: String,
    /// The top-level field naming the series (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_field: Option<String>,
    /// `seconds`, `minutes` or `hours` (informational here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
}

/// What kind of collection a name refers to (MongoDB's `listCollections` `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionKind {
    /// An ordinary collection.
    Collection,
    /// A time-series collection.
    Timeseries,
}

impl CollectionKind {
    /// The wire name (`collection`, `timeseries`).
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionKind::Collection => "collection",
            CollectionKind::Timeseries => "timeseries",
        }
    }
}

/// One collection as `list_collections` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The collection name.
    pub name: String,
    /// `collection` or `timeseries`.
    #[serde(rename = "type")]
    pub kind: CollectionKind,
    /// The options it was created with.
    pub options: CollectionOptions,
}

/// Options of `create_index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexOptions {
    /// The index name; default: MongoDB's generated name (`{a: 1, b: -1}` gives `a_1_b_-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Refuse two documents with the same key (a missing field counts as `null`).
    #[serde(default)]
    pub unique: bool,
    /// Leave out documents that lack every indexed field.
    #[serde(default)]
    pub sparse: bool,
    /// TTL: a document expires this many seconds after the (earliest) date in the indexed field.
    /// Single-field indexes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_seconds: Option<u64>,
}

/// One index as `list_indexes` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexInfo {
    /// The index name (`_id_` for the implicit primary index).
    pub name: String,
    /// The key document, e.g. `{"name": 1}`.
    pub key: Value,
    /// Whether keys are unique (always for `_id_`).
    pub unique: bool,
    /// Whether documents lacking the fields are left out.
    pub sparse: bool,
    /// TTL in seconds, for TTL indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_seconds: Option<u64>,
}

/// The optional parts of a find, in their wire (JSON) form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindOptions {
    /// Which fields to return (`None`: whole documents).
    pub projection: Option<Value>,
    /// In which order (`None`: natural, i.e. insertion, order).
    pub sort: Option<Value>,
    /// How many matching documents to pass over first.
    pub skip: usize,
    /// How many documents to return at most (`None` or `Some(0)`: all, as in MongoDB).
    pub limit: Option<usize>,
}

impl FindOptions {
    /// Options returning at most `limit` documents.
    pub fn limit(limit: usize) -> FindOptions {
        FindOptions { limit: Some(limit), ..FindOptions::default() }
    }
}

/// The result of a single-document write (`replace_one`, `update_one`, `delete_one`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOutcome {
    /// Documents the filter selected (0 or 1).
    pub matched: u64,
    /// Documents changed (0 or 1); for `delete_one`, documents removed.
    pub modified: u64,
    /// The `_id` of the document an upsert inserted.
    pub upserted_id: Option<String>,
    /// The document as stored after the write (the inserted one for an upsert); for `delete_one`, the
    /// removed document. `None` when nothing matched.
    pub document: Option<Value>,
}

impl WriteOutcome {
    /// One document matched; `modified` says whether it changed; `document` is it after the write.
    pub fn matched_one(document: Value, modified: bool) -> WriteOutcome {
        WriteOutcome { matched: 1, modified: u64::from(modified), upserted_id: None, document: Some(document) }
    }
}

/// The result of a many-document write (`update_many`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManyOutcome {
    /// Documents the filter selected.
    pub matched: u64,
    /// Documents changed.
    pub modified: u64,
}
