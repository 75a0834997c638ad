//! Files: a 5 MB upload and its download come back byte for byte (by id and by filename); the metadata
//! and the ACL are stored; another user cannot download a file it may not read.

use crate::harness::*;
use openiap_client::{Client, DownloadRequest, DownloadResponse, OpenIAPError, UploadRequest, UploadResponse};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Uploads and downloads wait without a client timeout; the test does not.
const TRANSFER: Duration = Duration::from_secs(90);

/// 5 MB of reproducible, incompressible-looking bytes (so a chunking or offset bug cannot hide).
fn content() -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..5 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn upload(client: &Client, t: Transport, path: &Path, filename: &str, metadata: Value) -> UploadResponse {
    let request = UploadRequest {
        filename: filename.into(),
        mimetype: "application/octet-stream".into(),
        metadata: metadata.to_string(),
        collectionname: "fs.files".into(),
    };
    let upload = client.upload(request, env(), path.to_str().expect("utf-8 path"));
    let uploaded = tokio::time::timeout(TRANSFER, upload).await.unwrap_or_else(|_| panic!("{t:?}: upload hangs"));
    ok(uploaded, t, "upload")
}

async fn download(
    client: &Client,
    t: Transport,
    request: DownloadRequest,
    folder: &Path,
    local_name: Option<&str>,
) -> Result<DownloadResponse, OpenIAPError> {
    std::fs::create_dir_all(folder).expect("download folder");
    let download = client.download(request, env(), Some(folder.to_str().expect("utf-8 path")), local_name);
    tokio::time::timeout(TRANSFER, download).await.unwrap_or_else(|_| panic!("{t:?}: download hangs"))
}

/// A plain user uploads 5 MB with an ACL of its own and downloads it (by id and by filename) byte for
/// byte; a second user cannot. A file uploaded without an ACL gets the reference's default, which lets
/// every user read it (`filestore users`).
pub async fn upload_download_round_trip(t: Transport) {
    let admin = admin(t).await;
    let alice_user = create_user(&admin, t, "fileowner").await;
    let bob_user = create_user(&admin, t, "filereader").await;
    let alice = connect_user(t, &alice_user).await;
    let bob = connect_user(t, &bob_user).await;
    let folder = tempfile::tempdir().expect("temp folder");
    let bytes = content();
    let filename = format!("{}.bin", unique("conformance", t));
    let source = folder.path().join("source.bin");
    std::fs::write(&source, &bytes).expect("write the source file");

    let own_acl = json!([{"_id": alice_user.id, "name": alice_user.username, "rights": 65535}]);
    let metadata = json!({"purpose": "conformance", "transport": t.tag(), "_acl": own_acl});
    let uploaded = upload(&alice, t, &source, &filename, metadata).await;
    assert!(!uploaded.id.is_empty(), "the upload reply has the file id: {uploaded:?}");
    assert_eq!(uploaded.filename, filename, "{uploaded:?}");

    // The metadata document is a document like any other, readable through `files`.
    let stored = find(&alice, t, "files", json!({"_id": uploaded.id})).await;
    assert_eq!(stored.len(), 1, "the file's metadata document: {stored:?}");
    assert_eq!(stored[0]["filename"], json!(filename), "{stored:?}");
    assert_eq!(stored[0]["length"], json!(bytes.len()), "{stored:?}");
    assert_eq!(stored[0]["metadata"]["purpose"], json!("conformance"), "client metadata is merged: {stored:?}");
    let acl = stored[0]["metadata"]["_acl"].as_array().unwrap_or_else(|| panic!("metadata._acl: {stored:?}"));
    let own = acl.iter().find(|a| a["_id"] == json!(alice_user.id)).map(|a| a["rights"].clone());
    assert_eq!(own, Some(json!(65535)), "the uploader has full control: {acl:?}");
    assert!(!acl.iter().any(|a| a["name"] == json!("filestore users")), "the given ACL replaces the default: {acl:?}");

    // Download by id into a folder of our own.
    let into = folder.path().join("by-id");
    let downloaded = ok(download(&alice, t, DownloadRequest::id(&uploaded.id), &into, None).await, t, "download");
    assert_eq!(downloaded.id, uploaded.id);
    assert_eq!(downloaded.filename, format!("{}/{filename}", into.display()), "the client reports where it wrote");
    let got = std::fs::read(into.join(&filename)).unwrap_or_else(|e| panic!("{t:?}: reading the download: {e}"));
    assert_eq!(got.len(), bytes.len(), "{t:?}: downloaded size");
    assert!(got == bytes, "{t:?}: the downloaded bytes differ from the uploaded ones");

    // Download by filename, under another local name.
    let request = DownloadRequest::by_filename("fs.files", &filename);
    ok(download(&alice, t, request, &into, Some("again.bin")).await, t, "download by filename");
    assert!(std::fs::read(into.join("again.bin")).expect("read") == bytes, "{t:?}: by-filename bytes differ");

    // Bob may not read it, by id or by name; an unknown id is an error.
    let denied_folder = folder.path().join("denied");
    let denied = download(&bob, t, DownloadRequest::id(&uploaded.id), &denied_folder, None).await;
    assert!(denied.is_err(), "another user must not download alice's file: {denied:?}");
    let denied = download(&bob, t, DownloadRequest::by_filename("fs.files", &filename), &denied_folder, None).await;
    assert!(denied.is_err(), "nor by its name: {denied:?}");
    assert!(!denied_folder.join(&filename).exists(), "nothing was written for a refused download");
    assert!(find(&bob, t, "files", json!({"_id": uploaded.id})).await.is_empty(), "bob does not see it");
    let missing = download(&alice, t, DownloadRequest::id(&"e".repeat(24)), &denied_folder, None).await;
    assert!(missing.is_err(), "an unknown file id is an error: {missing:?}");

    // Without an ACL in the metadata, the default lets every user read the file.
    let small = folder.path().join("small.txt");
    std::fs::write(&small, b"shared with every user").expect("write");
    let shared_name = format!("{}.txt", unique("shared", t));
    let shared = upload(&alice, t, &small, &shared_name, json!({})).await;
    let shared_folder = folder.path().join("shared");
    ok(download(&bob, t, DownloadRequest::id(&shared.id), &shared_folder, None).await, t, "download (bob)");
    assert_eq!(std::fs::read(shared_folder.join(&shared_name)).expect("read"), b"shared with every user");
    bob.disconnect();
    alice.disconnect();
    admin.disconnect();
}
