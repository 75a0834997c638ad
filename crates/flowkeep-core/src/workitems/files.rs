//! The files of workitems: inline content (gzip or zlib when compressed) stored through
//! [`Platform::upload_file`] with metadata `{wi, wiq, wiqid, uniquename}` and the queue's ACL, references
//! to files already stored, reconciliation by file name on update, deletion with the item and
//! duplication into a chained queue.
//!
//! An item *owns* the files uploaded for it (`metadata.wi` is its `_id`): those are deleted with it.
//! A file only referenced by `_id` is someone else's: it must be readable by the caller when referenced
//! (otherwise chaining, which copies files on a system path, would hand out files the caller cannot read),
//! and removing the reference never deletes the file.

use super::{id_of, text, WorkitemFile, MAX_ITEM_FILES};
use crate::error::{CoreError, Result};
use crate::files::{bucket_collections, FileUpload};
use crate::platform::Platform;
use crate::scope::store_scope;
use flate2::read::{GzDecoder, ZlibDecoder};
use flowkeep_model::Rights;
use flowkeep_security::Caller;
use serde_json::{json, Value};
use std::io::Read;

/// What the OpenIAP client sends as `_id` of an inline file.
const FINDME: &str = "findme";

/// The base name of a path (after the last `/` or `\`).
pub(crate) fn basename(name: &str) -> String {
    let name = name.trim();
    name.rsplit(['/', '\\']).find(|s| !s.is_empty()).unwrap_or(name).to_string()
}

/// The file id a request names, or empty (`findme` counts as empty).
fn named_id(file: &WorkitemFile) -> &str {
    let id = file.id.trim();
    if id.eq_ignore_ascii_case(FINDME) {
        ""
    } else {
        id
    }
}

/// The content of an inline file, decompressed when `compressed` (gzip, or zlib, detected by the header
/// as pako does), refusing more than `max` bytes either way.
pub(crate) fn inline_content(file: &WorkitemFile, max: usize) -> Result<Vec<u8>> {
    let too_big = || CoreError::InvalidRequest(format!("files: '{}' is larger than {max} bytes", file.filename));
    if !file.compressed {
        if file.file.len() > max {
            return Err(too_big());
        }
        return Ok(file.file.clone());
    }
    let reader: Box<dyn Read + '_> = if file.file.starts_with(&[0x1f, 0x8b]) {
        Box::new(GzDecoder::new(file.file.as_slice()))
    } else {
        Box::new(ZlibDecoder::new(file.file.as_slice()))
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CoreError::InvalidRequest(format!("files: '{}' is not valid gzip or zlib: {e}", file.filename)))?;
    if out.len() > max {
        return Err(too_big());
    }
    Ok(out)
}

/// Checks the shape of a request's file list.
pub(crate) fn check_files(files: &[WorkitemFile]) -> Result<()> {
    if files.len() > MAX_ITEM_FILES {
        return Err(CoreError::InvalidRequest(format!("files: at most {MAX_ITEM_FILES} per workitem")));
    }
    if files.iter().any(|f| basename(&f.filename).is_empty()) {
        return Err(CoreError::InvalidRequest("files: every file needs a filename".into()));
    }
    Ok(())
}

impl Platform {
    /// Stores or references `file` for item `item_id` of `queue` as `caller`; returns the item's entry
    /// `{name, filename, _id}`. Inline content is uploaded with the queue's ACL; a reference must be a
    /// file the caller may read.
    pub(crate) async fn attach_file(
        &self,
        caller: &Caller,
        item_id: &str,
        queue: &Value,
        file: &WorkitemFile,
    ) -> Result<Value> {
        let name = file.filename.trim().to_string();
        let base = basename(&name);
        if file.file.is_empty() {
            let id = named_id(file);
            let (files, _) = bucket_collections("")?;
            let readable =
                self.store.find_one(&files, &store_scope(caller, Rights::READ), &json!({"_id": id}), None).await?;
            if id.is_empty() || readable.is_none() {
                return Err(CoreError::NotFound(format!("files: file '{name}' not found")));
            }
            return Ok(json!({"name": name, "filename": base, "_id": id}));
        }
        let content = inline_content(file, self.config.max_file_bytes)?;
        let stored = self.upload_owned_file(caller, item_id, queue, &base, content).await?;
        Ok(json!({"name": name, "filename": base, "_id": stored}))
    }

    /// Uploads `content` as a file owned by item `item_id` of `queue`, as `caller`; returns its id.
    async fn upload_owned_file(
        &self,
        caller: &Caller,
        item_id: &str,
        queue: &Value,
        filename: &str,
        content: Vec<u8>,
    ) -> Result<String> {
        let metadata = json!({
            "wi": item_id,
            "wiq": text(queue, "name"),
            "wiqid": id_of(queue),
            "uniquename": format!("{item_id}/{filename}"),
            "_acl": queue.get("_acl").cloned().unwrap_or(Value::Null),
        });
        let upload = FileUpload { bucket: String::new(), filename: filename.into(), mimetype: String::new(), metadata };
        Ok(self.upload_file(caller, upload, content).await?.id)
    }

    /// Deletes the files owned by item `item_id` among `ids` (all its files when `ids` is `None`); files
    /// merely referenced are left alone. Named system path: called after the caller was authorized to
    /// change or delete the item, whose files these are. Failures are logged.
    pub(crate) async fn delete_owned_files(&self, item_id: &str, ids: Option<&[String]>) {
        let Ok((files, _)) = bucket_collections("") else { return };
        let filter = match ids {
            Some(ids) => json!({"_id": {"$in": ids}, "metadata.wi": item_id}),
            None => json!({"metadata.wi": item_id}),
        };
        if let Err(e) = self.delete_many(&Caller::system_root(), &files, &filter).await {
            tracing::error!(error = %e, item_id, "could not delete the files of a workitem");
        }
    }

    /// Copies the files of `entries` to new files owned by item `item_id` of queue `target`, for an item
    /// chained into another queue; returns the new entries. Named system path: the copy is made by the
    /// system after the chaining was decided; each reference was checked readable when it was attached.
    /// A file that cannot be read any more is left out (logged).
    pub(crate) async fn copy_files(&self, entries: &[Value], item_id: &str, target: &Value) -> Vec<Value> {
        let root = Caller::system_root();
        let mut copied = Vec::new();
        for entry in entries {
            let (id, name) = (text(entry, "_id"), text(entry, "name"));
            let base = match text(entry, "filename") {
                f if f.is_empty() => basename(&name),
                f => f,
            };
            let content = match self.download_file(&root, "", Some(&id), None).await {
                Ok((_, chunks)) => chunks.concat(),
                Err(e) => {
                    tracing::warn!(error = %e, file = %id, "a workitem file could not be read for chaining");
                    continue;
                }
            };
            match self.upload_owned_file(&root, item_id, target, &base, content).await {
                Ok(new_id) => copied.push(json!({"name": name, "filename": base, "_id": new_id})),
                Err(e) => tracing::warn!(error = %e, file = %id, "a workitem file could not be copied for chaining"),
            }
        }
        copied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn file(bytes: Vec<u8>, compressed: bool) -> WorkitemFile {
        WorkitemFile { filename: "dir/a.txt".into(), id: FINDME.into(), file: bytes, compressed }
    }

    #[test]
    fn inline_content_gzip_zlib_and_limits() {
        let plain = b"hello workitem ".repeat(100);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&plain).ok();
        let gz = gz.finish().unwrap_or_default();
        let mut zl = ZlibEncoder::new(Vec::new(), Compression::default());
        zl.write_all(&plain).ok();
        let zl = zl.finish().unwrap_or_default();
        assert_eq!(inline_content(&file(gz.clone(), true), 10_000).ok(), Some(plain.clone()));
        assert_eq!(inline_content(&file(zl, true), 10_000).ok(), Some(plain.clone()));
        assert_eq!(inline_content(&file(plain.clone(), false), 10_000).ok(), Some(plain.clone()));
        assert!(inline_content(&file(gz, true), 100).is_err(), "a bomb stops at the limit");
        assert!(inline_content(&file(plain.clone(), false), 100).is_err());
        assert!(inline_content(&file(b"not compressed".to_vec(), true), 10_000).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(basename("dir/sub\\a.txt"), "a.txt");
        assert_eq!(basename("a.txt"), "a.txt");
        assert_eq!(basename("dir/"), "dir");
        assert_eq!(named_id(&file(Vec::new(), false)), "");
        assert!(check_files(&[WorkitemFile::default()]).is_err());
    }
}
