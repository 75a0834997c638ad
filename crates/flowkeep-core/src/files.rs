//! Files: uploaded content kept in the store in chunks (`<bucket>.files` metadata documents whose ACL lives
//! in `metadata._acl`, `<bucket>.chunks` content), read back only by callers who may read the metadata.
//!
//! # Layout (GridFS-like)
//!
//! A bucket (`fs` by default; `""`, `files`, `fs` and `fs.files` all name it) is two collections:
//!
//! * `<bucket>.files`: one metadata document per file,
//!   `{_id, filename, contentType, length, chunkSize, uploadDate, metadata: {…client metadata…, name,
//!   _acl, _created*, _modified*, _version: 0}}`. Its ACL (`metadata._acl`) decides every access to the
//!   file; the store and the security crate read it there for every `*.files` collection.
//! * `<bucket>.chunks`: the content, `{_id, files_id, n, data}` with `data` base64 and `n` counting from
//!   0, [`CHUNK_SIZE`] bytes each but the last. Chunks carry no ACL: clients never reach them through
//!   document commands (refused by `flowkeep_security::policy`), only through [`Platform::download_file`]
//!   after the metadata check, which reads them on a named system path.
//!
//! # Consistency
//!
//! An upload writes the chunks first and the metadata document last, so a file becomes visible only
//! whole; if a write fails, the chunks already written are removed. (If the process dies in between,
//! chunks without a metadata document stay behind, invisible to every command.) Deleting the metadata
//! document through the document commands deletes the chunks too.
//!
//! # Default ACL
//!
//! As in the reference: the uploader and `admins` get full control (by the same normalisation as any
//! inserted document), `filestore admins` full control, `filestore users` read. Client metadata carrying
//! its own `_acl` replaces the two filestore entries and is normalised like a document's ACL.

use crate::changes::ChangeOperation;
use crate::documents::{acl_error, check_collection, now_string, Access};
use crate::error::{CoreError, Result};
use crate::history::{self, Change};
use crate::platform::Platform;
use crate::scope::store_scope;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use flowkeep_model::{new_object_id, Rights};
use flowkeep_security::acl::acl_to_value;
use flowkeep_security::{normalize_acl, parse_acl, policy, wellknown, Ace, Caller, WriteKind};
use flowkeep_store::{FindOptions, IndexOptions, Scope};
use serde_json::{json, Map, Value};

/// Bytes per chunk: 255 KiB, GridFS's default. Files migrated from OpenIAP Flow's GridFS keep their
/// layout, and one stored chunk (≈ 340 KB as base64) stays small next to the store's document limit, so
/// reading or re-checking a chunk row never handles megabytes at once. Downloads read each file's own
/// `chunkSize`, so any size written earlier reads back.
pub const CHUNK_SIZE: usize = 255 * 1024;

/// Chunks written per store transaction during an upload: bounds the memory of the base64 copies
/// (≈ 5.4 MB per batch) whatever the file size.
const CHUNK_INSERT_BATCH: usize = 16;

/// The longest file name accepted, in bytes.
pub const MAX_FILENAME_BYTES: usize = 1024;

/// The default bucket.
pub const DEFAULT_BUCKET: &str = "fs";

/// Stamp fields a client cannot set in file metadata.
const SYSTEM_METADATA_FIELDS: [&str; 7] =
    ["_created", "_createdby", "_createdbyid", "_modified", "_modifiedby", "_modifiedbyid", "_version"];

/// An upload request.
#[derive(Debug, Clone, Default)]
pub struct FileUpload {
    /// `fs` (the default; `""`, `files`, `fs` and `fs.files` all mean it) or another bucket name.
    pub bucket: String,
    pub filename: String,
    pub mimetype: String,
    /// Client metadata merged into the file's `metadata` (an object, or `null`).
    pub metadata: Value,
}

/// A stored file's description.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub id: String,
    pub filename: String,
    pub mimetype: String,
    /// Content length in bytes.
    pub length: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// The file's `metadata` as the caller sees it.
    pub metadata: Value,
}

/// A new file id: 24 hex characters like an ObjectId, but all random. Chunks are written under this id
/// before the metadata document exists; an ObjectId's time and counter could be predicted by a client,
/// who might then insert a metadata document of its own with that `_id` through the document commands
/// and so reach another user's content. 96 random bits cannot be guessed.
fn new_file_id() -> String {
    rand::random::<[u8; 12]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// The metadata and chunk collections of `bucket` (`""`, `fs`, `files` and `fs.files` all mean `fs`;
/// `x.files` means bucket `x`).
pub fn bucket_collections(bucket: &str) -> Result<(String, String)> {
    let bucket = bucket.trim();
    let base = match bucket {
        "" | "fs" | "files" | "fs.files" => DEFAULT_BUCKET,
        other => other.strip_suffix(".files").unwrap_or(other),
    };
    if base.is_empty() {
        return Err(CoreError::InvalidRequest(format!("bucket: '{bucket}' is not a bucket name")));
    }
    Ok((format!("{base}.files"), format!("{base}.chunks")))
}

/// The chunk collection belonging to metadata collection `files_collection` (`x.files` → `x.chunks`).
pub(crate) fn chunks_collection_of(files_collection: &str) -> String {
    let base = files_collection.strip_suffix(".files").unwrap_or(files_collection);
    format!("{base}.chunks")
}

fn not_found() -> CoreError {
    // The same answer for a missing file and one the caller may not read: existence is not revealed.
    CoreError::NotFound("file not found".into())
}

fn damaged(collection: &str, id: &str, what: &str) -> CoreError {
    tracing::error!(collection, id, what, "stored file is damaged");
    CoreError::Internal("the stored file is incomplete or damaged".into())
}

/// A non-negative integer field (integral doubles too, as migrated data may carry them).
fn count_field(doc: &Value, field: &str) -> Option<u64> {
    let n = doc.get(field)?;
    n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15).map(|f| f as u64))
}

/// The description of the stored metadata document `doc`, with its `metadata` as the caller sees it.
fn describe(doc: &Value, metadata: Value, chunks: u64) -> StoredFile {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let mut mimetype = text(doc.get("contentType"));
    if mimetype.is_empty() {
        // Older OpenIAP clients put the type into the metadata.
        mimetype = text(doc.get("metadata").and_then(|m| m.get("mimetype")));
    }
    StoredFile {
        id: text(doc.get("_id")),
        filename: text(doc.get("filename")),
        mimetype,
        length: count_field(doc, "length").unwrap_or(0),
        chunks,
        metadata,
    }
}

impl Platform {
    /// Stores `content` as a new file owned by `caller` and returns its description.
    pub async fn upload_file(&self, caller: &Caller, upload: FileUpload, content: Vec<u8>) -> Result<StoredFile> {
        policy::authorize_file_upload(caller)?;
        let (files, chunks) = bucket_collections(&upload.bucket)?;
        check_collection(&files, Access::Write)?;
        if content.len() > self.config.max_file_bytes {
            return Err(CoreError::InvalidRequest(format!(
                "file: {} bytes is more than the largest file allowed ({} bytes)",
                content.len(),
                self.config.max_file_bytes
            )));
        }
        let filename = upload.filename.trim().to_string();
        if filename.is_empty() {
            return Err(CoreError::InvalidRequest("filename: a file name is required".into()));
        }
        if filename.len() > MAX_FILENAME_BYTES || filename.contains('\0') {
            return Err(CoreError::InvalidRequest(format!(
                "filename: at most {MAX_FILENAME_BYTES} bytes, without NUL characters"
            )));
        }
        let mimetype = match upload.mimetype.trim() {
            "" => "application/octet-stream".to_string(),
            m => m.to_string(),
        };
        let now = now_string();
        let id = new_file_id();
        let doc = self.file_document(caller, &id, &filename, &mimetype, content.len(), upload.metadata, &now)?;
        caller.authorize_document(&files, &doc, Rights::CREATE).map_err(|e| CoreError::AccessDenied(e.to_string()))?;

        self.ensure_file_indexes(&files, &chunks).await?;
        let written = match self.write_chunks(&chunks, &id, &content).await {
            Ok(n) => n,
            Err(e) => {
                self.remove_chunks(&chunks, &id).await;
                return Err(e);
            }
        };
        // Last: only now does the file become visible, whole.
        let stored = match self.store.insert_one(&files, doc).await {
            Ok(stored) => stored,
            Err(e) => {
                self.remove_chunks(&chunks, &id).await;
                return Err(e.into());
            }
        };
        if history::keeps_history(&self.config, &files) {
            let change = Change { caller, now: &now, reason: None };
            let entry = history::base_entry(&files, &stored, &change);
            if let Err(e) = self.write_history(&files, vec![entry]).await {
                tracing::error!(error = %e, collection = %files, "writing history of an upload failed");
            }
        }
        self.publish_change(&files, ChangeOperation::Insert, stored.clone());
        let view = self.client_view(&files, stored.clone())?;
        Ok(describe(&stored, view.get("metadata").cloned().unwrap_or(Value::Null), written))
    }

    /// Finds a file the caller may read, by `id` or else by `filename` (the newest with that name), in
    /// `bucket`, and returns its description and content chunks in order.
    pub async fn download_file(
        &self,
        caller: &Caller,
        bucket: &str,
        id: Option<&str>,
        filename: Option<&str>,
    ) -> Result<(StoredFile, Vec<Vec<u8>>)> {
        let (files, chunks) = bucket_collections(bucket)?;
        check_collection(&files, Access::Read)?;
        let scope = store_scope(caller, Rights::READ);
        let doc = match (id.filter(|i| !i.is_empty()), filename.filter(|f| !f.is_empty())) {
            (Some(id), _) => self.store.find_one(&files, &scope, &json!({"_id": id}), None).await?,
            (None, Some(name)) => {
                // Uploads in the same millisecond fall back to the id, which rises within a process.
                let newest = FindOptions { sort: Some(json!({"uploadDate": -1, "_id": -1})), ..FindOptions::limit(1) };
                self.store.find(&files, &scope, &json!({"filename": name}), &newest).await?.pop()
            }
            (None, None) => return Err(CoreError::InvalidRequest("download: an id or a filename is required".into())),
        };
        let Some(doc) = doc else { return Err(not_found()) };
        // The scope decided already; the same decision on the document itself guards against a scope and
        // a document check ever disagreeing.
        if !caller.can_on_document(&files, &doc, Rights::READ) {
            return Err(not_found());
        }
        let file_id = doc.get("_id").and_then(Value::as_str).unwrap_or_default().to_string();
        let content = self.read_chunks(&files, &chunks, &file_id, &doc).await?;
        let view = self.client_view(&files, doc.clone())?;
        let described = describe(&doc, view.get("metadata").cloned().unwrap_or(Value::Null), content.len() as u64);
        Ok((described, content))
    }

    /// The metadata document of a new file (see the module docs for its shape and ACL).
    #[allow(clippy::too_many_arguments)]
    fn file_document(
        &self,
        caller: &Caller,
        id: &str,
        filename: &str,
        mimetype: &str,
        length: usize,
        metadata: Value,
        now: &str,
    ) -> Result<Value> {
        let mut meta = match metadata {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            _ => return Err(CoreError::InvalidRequest("metadata: must be an object".into())),
        };
        let requested = match meta.remove("_acl") {
            None | Some(Value::Null) => vec![
                Ace::allow(wellknown::FILESTORE_ADMINS, "filestore admins", Rights::FULL_CONTROL),
                Ace::allow(wellknown::FILESTORE_USERS, "filestore users", Rights::READ),
            ],
            Some(acl) => parse_acl(&acl).map_err(acl_error)?,
        };
        let acl = normalize_acl(&requested, WriteKind::Insert(caller.as_creator()), &self.normalize_options())
            .map_err(acl_error)?;
        for field in SYSTEM_METADATA_FIELDS {
            meta.remove(field);
        }
        meta.insert("name".into(), Value::String(filename.to_string()));
        meta.insert("_acl".into(), acl_to_value(&acl));
        for (at, by, byid) in
            [("_created", "_createdby", "_createdbyid"), ("_modified", "_modifiedby", "_modifiedbyid")]
        {
            meta.insert(at.into(), Value::String(now.to_string()));
            meta.insert(by.into(), Value::String(caller.name().to_string()));
            meta.insert(byid.into(), Value::String(caller.user_id().to_string()));
        }
        meta.insert("_version".into(), Value::from(0));
        Ok(json!({
            "_id": id,
            "filename": filename,
            "contentType": mimetype,
            "length": length,
            "chunkSize": CHUNK_SIZE,
            "uploadDate": now,
            "metadata": meta,
        }))
    }

    /// Creates the indexes GridFS drivers create: chunks by `(files_id, n)` (unique), files by
    /// `(filename, uploadDate)`. Idempotent in the store.
    async fn ensure_file_indexes(&self, files: &str, chunks: &str) -> Result<()> {
        let unique = IndexOptions { unique: true, ..IndexOptions::default() };
        self.store.create_index(chunks, &json!({"files_id": 1, "n": 1}), &unique).await?;
        // Clients may index the files collection themselves; a conflicting index of theirs only costs
        // speed, so it does not fail the upload.
        if let Err(e) =
            self.store.create_index(files, &json!({"filename": 1, "uploadDate": 1}), &IndexOptions::default()).await
        {
            tracing::warn!(error = %e, collection = files, "could not create the files index");
        }
        Ok(())
    }

    /// Writes `content` as chunks of file `id`; returns how many.
    async fn write_chunks(&self, chunks: &str, id: &str, content: &[u8]) -> Result<u64> {
        let mut n: u64 = 0;
        let mut batch = Vec::with_capacity(CHUNK_INSERT_BATCH);
        for piece in content.chunks(CHUNK_SIZE) {
            batch.push(json!({"_id": new_object_id(), "files_id": id, "n": n, "data": BASE64.encode(piece)}));
            n += 1;
            if batch.len() == CHUNK_INSERT_BATCH {
                // Inserts take no scope: chunks get no ACL, so no client scope ever admits them.
                self.store.insert_many(chunks, std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            self.store.insert_many(chunks, batch).await?;
        }
        Ok(n)
    }

    /// The content of file `file` (stored metadata document `doc`), chunk by chunk, checked against its
    /// `length`.
    async fn read_chunks(&self, files: &str, chunks: &str, file_id: &str, doc: &Value) -> Result<Vec<Vec<u8>>> {
        // Named system path: chunks carry no ACL; the caller's READ on the file's metadata document was
        // checked by the caller of this function.
        let in_order = FindOptions { sort: Some(json!({"n": 1})), ..FindOptions::default() };
        let rows = self.store.find(chunks, &Scope::system(), &json!({"files_id": file_id}), &in_order).await?;
        let mut content = Vec::with_capacity(rows.len());
        let mut total: u64 = 0;
        for (i, row) in rows.iter().enumerate() {
            if count_field(row, "n") != Some(i as u64) {
                return Err(damaged(files, file_id, "chunk numbers are not 0, 1, 2, …"));
            }
            let data = row
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| BASE64.decode(d).ok())
                .ok_or_else(|| damaged(files, file_id, "a chunk's data is not base64"))?;
            total += data.len() as u64;
            content.push(data);
        }
        if total != count_field(doc, "length").unwrap_or(0) {
            return Err(damaged(files, file_id, "content length differs from the metadata"));
        }
        Ok(content)
    }

    /// Removes the chunks of file `id` after a failed upload; a failure is logged (the chunks are
    /// invisible without their metadata document).
    async fn remove_chunks(&self, chunks: &str, id: &str) {
        // Named system path: these chunks were written by this upload and belong to no visible file.
        if let Err(e) = self.store.delete_many(chunks, &Scope::system(), &json!({"files_id": id})).await {
            tracing::error!(error = %e, collection = chunks, id, "could not remove the chunks of a failed upload");
        }
    }

    /// Deletes the chunks of the just-deleted metadata document `file` of `files_collection`. Called by
    /// the delete commands after the caller's DELETE on the metadata document was checked and the
    /// document removed; a failure is logged, since the delete itself has committed.
    pub(crate) async fn delete_chunks_of(&self, files_collection: &str, file: &Value) {
        let Some(id) = file.get("_id").and_then(Value::as_str) else { return };
        let chunks = chunks_collection_of(files_collection);
        // Named system path: chunks carry no ACL; the file's own ACL was checked for the delete.
        if let Err(e) = self.store.delete_many(&chunks, &Scope::system(), &json!({"files_id": id})).await {
            tracing::error!(error = %e, collection = %chunks, id, "could not delete the chunks of a deleted file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for alias in ["", " ", "fs", "files", "fs.files"] {
            assert_eq!(bucket_collections(alias).ok(), Some(("fs.files".to_string(), "fs.chunks".to_string())));
        }
        assert_eq!(
            bucket_collections("photos.files").ok(),
            Some(("photos.files".to_string(), "photos.chunks".to_string()))
        );
        assert_eq!(bucket_collections("photos").ok(), Some(("photos.files".to_string(), "photos.chunks".to_string())));
        assert!(bucket_collections(".files").is_err());
        assert_eq!(chunks_collection_of("fs.files"), "fs.chunks");
    }

    #[test]
    fn file_ids_look_like_object_ids_and_differ() {
        let (a, b) = (new_file_id(), new_file_id());
        assert!(flowkeep_model::ids::is_object_id(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn counts_accept_integral_doubles_only() {
        assert_eq!(count_field(&json!({"n": 3}), "n"), Some(3));
        assert_eq!(count_field(&json!({"n": 3.0}), "n"), Some(3));
        assert_eq!(count_field(&json!({"n": 3.5}), "n"), None);
        assert_eq!(count_field(&json!({"n": -1}), "n"), None);
        assert_eq!(count_field(&json!({"n": "3"}), "n"), None);
    }
}
