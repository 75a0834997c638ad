//! Wire encoding: `google.protobuf.Any` payloads in and out of envelopes, reply and error envelopes, the
//! protocol's typed errors and their `ErrorResponse` codes, and the JSON-string fields of requests.
//!
//! Every reply carries `data` (the official client panics on some replies without it), typed
//! `type.googleapis.com/openiap.<Message>` even when the message is empty. Errors are `error` envelopes
//! with `ErrorResponse{message, code, stack: ""}`; codes follow HTTP status numbers so clients and logs
//! can tell the client's faults (4xx) from the server's (5xx).

use crate::wire;
use flowkeep_core::CoreError;
use prost::Message;
use serde_json::Value;
use thiserror::Error;

/// The prefix of every OpenIAP `Any` type URL.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/openiap.";

/// A wire message with its protobuf name, for `Any` type URLs.
pub trait WireMessage: Message + Default {
    /// The message name inside package `openiap` (`QueryRequest`).
    const NAME: &'static str;
}

macro_rules! wire_messages {
    ($($t:ident),* $(,)?) => {
        $(impl WireMessage for wire::$t { const NAME: &'static str = stringify!($t); })*
    };
}

wire_messages!(
    AggregateRequest,
    AggregateResponse,
    BeginStream,
    CountRequest,
    CountResponse,
    CreateCollectionRequest,
    CreateCollectionResponse,
    CreateIndexRequest,
    CreateIndexResponse,
    CustomCommandRequest,
    CustomCommandResponse,
    DeleteManyRequest,
    DeleteManyResponse,
    DeleteOneRequest,
    DeleteOneResponse,
    DistinctRequest,
    DistinctResponse,
    DownloadRequest,
    DownloadResponse,
    DropCollectionRequest,
    DropCollectionResponse,
    DropIndexRequest,
    DropIndexResponse,
    EndStream,
    EnsureCustomerRequest,
    EnsureCustomerResponse,
    ErrorResponse,
    GetDocumentVersionRequest,
    GetDocumentVersionResponse,
    GetElementRequest,
    GetElementResponse,
    GetIndexesRequest,
    GetIndexesResponse,
    InsertManyRequest,
    InsertManyResponse,
    InsertOneRequest,
    InsertOneResponse,
    InsertOrUpdateManyRequest,
    InsertOrUpdateManyResponse,
    InsertOrUpdateOneRequest,
    InsertOrUpdateOneResponse,
    ListCollectionsRequest,
    ListCollectionsResponse,
    PingRequest,
    QueryRequest,
    QueryResponse,
    RefreshToken,
    SigninRequest,
    SigninResponse,
    Stream,
    UnWatchRequest,
    UnWatchResponse,
    UpdateDocumentRequest,
    UpdateDocumentResponse,
    UpdateOneRequest,
    UpdateOneResponse,
    UploadRequest,
    UploadResponse,
    WatchEvent,
    WatchRequest,
    WatchResponse,
);

/// Why a request failed, as the client is told. Messages name what is wrong; internal detail stays in
/// the log.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// A command that needs an identity came before sign-in and without an envelope `jwt`.
    #[error("not signed in: sign in first, or send a jwt with the request")]
    NotSignedIn,
    /// The command name is not part of the protocol.
    #[error("Unknown command {0}")]
    UnknownCommand(String),
    /// A protocol command this server does not offer (yet).
    #[error("{0}")]
    NotAvailable(String),
    /// The envelope's `data` is missing, of another type, or does not decode.
    #[error("{command}: data must be an openiap.{expected}: {reason}")]
    BadData { command: String, expected: &'static str, reason: String },
    /// A field of the request is missing or invalid.
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// A message or reply is larger than a limit.
    #[error("{0}")]
    TooLarge(String),
    /// One item of a many-item request failed (the items before it were done).
    #[error("items[{index}]: {source}")]
    Item { index: usize, source: Box<ProtocolError> },
    /// The connection fell behind the change feed and watch events were lost.
    #[error(
        "watch events lost: this connection read too slowly and missed {0} changes; re-read the watched \
         collections to catch up"
    )]
    WatchLagged(u64),
    /// The core refused or failed the command.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl ProtocolError {
    /// An invalid (or missing) request field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> ProtocolError {
        ProtocolError::InvalidField { field: field.into(), reason: reason.into() }
    }

    /// The `ErrorResponse.code`: HTTP-like status numbers.
    pub fn code(&self) -> i32 {
        match self {
            ProtocolError::NotSignedIn => 401,
            ProtocolError::UnknownCommand(_) => 400,
            ProtocolError::NotAvailable(_) => 501,
            ProtocolError::BadData { .. } | ProtocolError::InvalidField { .. } => 400,
            ProtocolError::TooLarge(_) => 413,
            ProtocolError::Item { source, .. } => source.code(),
            ProtocolError::WatchLagged(_) => 503,
            ProtocolError::Core(e) => core_code(e),
        }
    }
}

/// The `ErrorResponse.code` of a core error kind.
pub fn core_code(e: &CoreError) -> i32 {
    match e {
        CoreError::InvalidRequest(_) => 400,
        CoreError::Unauthenticated(_) => 401,
        CoreError::AccessDenied(_) => 403,
        CoreError::NotFound(_) => 404,
        CoreError::Conflict(_) => 409,
        CoreError::Throttled(_) => 429,
        CoreError::Internal(_) => 500,
    }
}

/// Result of a command handler.
pub type Result<T> = std::result::Result<T, ProtocolError>;

/// `msg` as an `Any`.
pub fn to_any<T: WireMessage>(msg: &T) -> prost_types::Any {
    prost_types::Any { type_url: format!("{TYPE_URL_PREFIX}{}", T::NAME), value: msg.encode_to_vec() }
}

/// Decodes the envelope's `data` as `T`. A missing `data`, a type URL naming another OpenIAP message, or
/// undecodable bytes are [`ProtocolError::BadData`].
pub fn decode<T: WireMessage>(envelope: &wire::Envelope) -> Result<T> {
    let bad = |reason: String| ProtocolError::BadData { command: envelope.command.clone(), expected: T::NAME, reason };
    let Some(any) = &envelope.data else { return Err(bad("the envelope has no data".into())) };
    if let Some(name) = any.type_url.rsplit('/').next().filter(|_| !any.type_url.is_empty()) {
        let name = name.strip_prefix("openiap.").unwrap_or(name);
        if name != T::NAME {
            return Err(bad(format!("got {}", any.type_url)));
        }
    }
    T::decode(any.value.as_slice()).map_err(|e| bad(format!("undecodable ({e})")))
}

/// A reply to request `rid`.
pub fn reply<T: WireMessage>(command: &str, rid: &str, msg: &T) -> wire::Envelope {
    wire::Envelope { command: command.to_owned(), rid: rid.to_owned(), data: Some(to_any(msg)), ..Default::default() }
}

/// An `error` envelope answering `rid` (empty when the error answers no request).
pub fn error_envelope(rid: &str, error: &ProtocolError) -> wire::Envelope {
    let message = wire::ErrorResponse { message: error.to_string(), code: error.code(), stack: String::new() };
    reply("error", rid, &message)
}

/// Parses a JSON-string field of a request; an empty string gives `empty`.
pub fn json_field(field: &str, text: &str, empty: Option<Value>) -> Result<Value> {
    if text.trim().is_empty() {
        return empty.ok_or_else(|| ProtocolError::field(field, "is required (a JSON string)"));
    }
    serde_json::from_str(text).map_err(|e| ProtocolError::field(field, format!("is not valid JSON ({e})")))
}

/// Parses a JSON-string field that must hold an object.
pub fn json_object(field: &str, text: &str, empty: Option<Value>) -> Result<Value> {
    let value = json_field(field, text, empty)?;
    match value {
        Value::Object(_) | Value::Null => Ok(value),
        other => Err(ProtocolError::field(field, format!("must be a JSON object, not {}", json_kind(&other)))),
    }
}

/// The JSON type name of a value, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as text (never fails for `serde_json::Value`).
pub fn to_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Saturating conversion of a count to the wire's `int32`.
pub fn to_i32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_round_trip_and_type_check() {
        let msg = wire::QueryRequest { query: "{}".into(), ..Default::default() };
        let env = wire::Envelope { command: "query".into(), data: Some(to_any(&msg)), ..Default::default() };
        assert_eq!(env.data.as_ref().map(|d| d.type_url.as_str()), Some("type.googleapis.com/openiap.QueryRequest"));
        assert_eq!(decode::<wire::QueryRequest>(&env).ok(), Some(msg));
        let err = decode::<wire::CountRequest>(&env).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("openiap.CountRequest") && err.contains("QueryRequest"), "{err}");
        let empty = wire::Envelope { command: "query".into(), ..Default::default() };
        assert!(decode::<wire::QueryRequest>(&empty).is_err());
    }

    #[test]
    fn errors_carry_data_and_codes() {
        let env = error_envelope("r1", &ProtocolError::Core(CoreError::NotFound("x".into())));
        assert_eq!(env.command, "error");
        assert_eq!(env.rid, "r1");
        let data = env.data.unwrap_or_default();
        let decoded = wire::ErrorResponse::decode(data.value.as_slice()).unwrap_or_default();
        assert_eq!((decoded.message.as_str(), decoded.code), ("x", 404));
    }

    #[test]
    fn json_fields() {
        assert!(json_field("query", "", None).is_err());
        assert_eq!(json_field("query", " ", Some(Value::Null)).ok(), Some(Value::Null));
        let e = json_object("item", "[1]", None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("item:"), "{e}");
        assert!(json_field("query", "{", None).is_err());
    }
}
