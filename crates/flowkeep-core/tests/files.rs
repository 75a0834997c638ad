//! Files end to end over a temporary SQLite store: multi-chunk round trips, the default ACL (uploader,
//! admins, filestore roles) in `metadata._acl`, NotFound for files a caller may not read, chunks deleted
//! with their metadata document, size and guest limits, and chunks unreachable through document commands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;

use flowkeep_core::documents::QueryRequest;
use flowkeep_core::files::{FileUpload, CHUNK_SIZE};
use flowkeep_core::{Caller, CoreError, Platform, PlatformConfig};
use flowkeep_security::{wellknown, RoleGraph};
use flowkeep_store::Scope;
use serde_json::{json, Value};

struct World {
    p: Platform,
    alice: Caller,
    bob: Caller,
    /// A member of `filestore users`.
    carol: Caller,
    admin: Caller,
    guest: Caller,
}

async fn world_with(config: PlatformConfig) -> World {
    let p = common::platform(config).await;
    let roles = [
        json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "members": [{"_id": "u-admin"}]}),
        json!({"_id": wellknown::FILESTORE_USERS, "_type": "role", "name": "filestore users",
            "members": [{"_id": "u-carol"}]}),
    ];
    let graph = RoleGraph::from_role_docs(&roles);
    World {
        alice: Caller::resolve(&user("u-alice", "alice"), &graph).unwrap(),
        bob: Caller::resolve(&user("u-bob", "bob"), &graph).unwrap(),
        carol: Caller::resolve(&user("u-carol", "carol"), &graph).unwrap(),
        admin: Caller::resolve(&user("u-admin", "boss"), &graph).unwrap(),
        guest: Caller::resolve(&user(wellknown::GUEST, "guest"), &graph).unwrap(),
        p,
    }
}

async fn world() -> World {
    world_with(PlatformConfig::default()).await
}

/// Deterministic bytes that differ from chunk to chunk (a repeating pattern would hide misordering).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn upload(filename: &str, metadata: Value) -> FileUpload {
    FileUpload { bucket: String::new(), filename: filename.into(), mimetype: "application/pdf".into(), metadata }
}

async fn chunk_count(p: &Platform, chunks: &str, files_id: &str) -> u64 {
    p.store().count(chunks, &Scope::system(), &json!({"files_id": files_id})).await.unwrap()
}

fn acl_of(meta: &Value) -> Vec<(String, u64)> {
    meta["_acl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["_id"].as_str().unwrap().to_string(), a["rights"].as_u64().unwrap()))
        .collect()
}

fn is_not_found<T: std::fmt::Debug>(r: &Result<T, CoreError>) -> bool {
    matches!(r, Err(CoreError::NotFound(m)) if m == "file not found")
}

#[tokio::test]
async fn a_multi_chunk_file_round_trips() {
    let w = world().await;
    let (p, alice) = (&w.p, &w.alice);
    let bytes = content(5_000_000, 1);
    let stored = p.upload_file(alice, upload("report.pdf", json!({"purpose": "test"})), bytes.clone()).await.unwrap();
    let expected_chunks = 5_000_000_u64.div_ceil(CHUNK_SIZE as u64);
    assert!(expected_chunks > 1);
    assert_eq!((stored.length, stored.chunks), (5_000_000, expected_chunks));
    assert_eq!((stored.filename.as_str(), stored.mimetype.as_str()), ("report.pdf", "application/pdf"));
    assert_eq!(stored.metadata["purpose"], "test");
    assert_eq!(stored.metadata["name"], "report.pdf");
    assert_eq!(chunk_count(p, "fs.chunks", &stored.id).await, expected_chunks);

    // The metadata document has the GridFS shape, its stamps and ACL in `metadata`.
    let raw =
        p.store().find_one("fs.files", &Scope::system(), &json!({"_id": stored.id}), None).await.unwrap().unwrap();
    assert_eq!(raw["length"], 5_000_000);
    assert_eq!(raw["chunkSize"], CHUNK_SIZE);
    assert_eq!(raw["contentType"], "application/pdf");
    assert!(raw["uploadDate"].as_str().unwrap().ends_with('Z'));
    assert!(raw.get("_acl").is_none());
    assert_eq!(raw["metadata"]["_createdbyid"], "u-alice");
    assert_eq!(raw["metadata"]["_version"], 0);
    let acl = acl_of(&raw["metadata"]);
    for entry in [
        (wellknown::FILESTORE_ADMINS.to_string(), 65535),
        (wellknown::FILESTORE_USERS.to_string(), 2),
        (wellknown::ADMINS.to_string(), 65535),
        ("u-alice".to_string(), 65535),
    ] {
        assert!(acl.contains(&entry), "{entry:?} in {acl:?}");
    }

    // Chunks are found through the index on `files_id`, not by scanning every stored chunk.
    let chunks_plan = p
        .store()
        .explain_find("fs.chunks", &Scope::system(), &json!({"files_id": stored.id}), &Default::default())
        .await
        .unwrap();
    assert!(!chunks_plan["pushdown"].as_array().unwrap().is_empty(), "{chunks_plan}");
    let names_plan = p
        .store()
        .explain_find("fs.files", &Scope::system(), &json!({"filename": "report.pdf"}), &Default::default())
        .await
        .unwrap();
    assert!(!names_plan["pushdown"].as_array().unwrap().is_empty(), "{names_plan}");

    // By id and by name, every byte back in order.
    let (file, chunks) = p.download_file(alice, "fs", Some(&stored.id), None).await.unwrap();
    assert_eq!(file, stored);
    assert_eq!(chunks.len() as u64, expected_chunks);
    assert_eq!(chunks.concat(), bytes);
    let (_, by_name) = p.download_file(alice, "fs.files", None, Some("report.pdf")).await.unwrap();
    assert_eq!(by_name.concat(), bytes);

    // By name means the newest file with that name.
    let newer = content(1000, 2);
    let second = p.upload_file(alice, upload("report.pdf", Value::Null), newer.clone()).await.unwrap();
    let (file, chunks) = p.download_file(alice, "files", None, Some("report.pdf")).await.unwrap();
    assert_eq!((file.id, chunks.concat()), (second.id, newer));

    // An empty file and another bucket.
    let empty = p
        .upload_file(alice, FileUpload { bucket: "photos".into(), ..upload("empty.bin", Value::Null) }, Vec::new())
        .await
        .unwrap();
    assert_eq!((empty.length, empty.chunks), (0, 0));
    let (_, chunks) = p.download_file(alice, "photos.files", Some(&empty.id), None).await.unwrap();
    assert!(chunks.is_empty());
    assert!(is_not_found(&p.download_file(alice, "fs", Some(&empty.id), None).await), "other bucket");
    assert!(matches!(p.download_file(alice, "fs", None, None).await, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn only_callers_who_may_read_the_metadata_get_the_file() {
    let w = world().await;
    let (p, alice, bob, carol) = (&w.p, &w.alice, &w.bob, &w.carol);
    let bytes = content(300_000, 3);
    let f = p.upload_file(alice, upload("private.txt", Value::Null), bytes.clone()).await.unwrap();

    // bob (not a filestore user): the same NotFound as for a file that does not exist.
    assert!(is_not_found(&p.download_file(bob, "fs", Some(&f.id), None).await));
    assert!(is_not_found(&p.download_file(bob, "fs", None, Some("private.txt")).await));
    assert!(is_not_found(&p.download_file(bob, "fs", Some("000000000000000000000000"), None).await));
    let all = QueryRequest { filter: json!({}), ..QueryRequest::default() };
    assert!(p.query(bob, "fs.files", &all).await.unwrap().is_empty());

    // filestore users read by default; admins see everything.
    let (_, chunks) = p.download_file(carol, "fs", Some(&f.id), None).await.unwrap();
    assert_eq!(chunks.concat(), bytes);
    assert_eq!(p.query(carol, "fs.files", &all).await.unwrap().len(), 1);
    assert_eq!(p.download_file(&w.admin, "", Some(&f.id), None).await.unwrap().1.concat(), bytes);

    // Client metadata with its own ACL replaces the filestore defaults and is normalised.
    let shared = p
        .upload_file(
            alice,
            upload("shared.txt", json!({"_acl": [{"_id": "u-bob", "name": "bob", "rights": 2}]})),
            bytes,
        )
        .await
        .unwrap();
    let acl = acl_of(&shared.metadata);
    assert!(acl.contains(&("u-bob".to_string(), 2)), "{acl:?}");
    assert!(acl.contains(&("u-alice".to_string(), 65535)), "creator raised to full control: {acl:?}");
    assert!(acl.contains(&(wellknown::ADMINS.to_string(), 65535)), "{acl:?}");
    assert!(!acl.iter().any(|(id, _)| id == wellknown::FILESTORE_USERS), "{acl:?}");
    assert!(p.download_file(bob, "fs", Some(&shared.id), None).await.is_ok());
    assert!(is_not_found(&p.download_file(carol, "fs", Some(&shared.id), None).await));

    // A deny entry wins over the filestore users grant.
    let denied = json!({"_acl": [
        {"_id": wellknown::FILESTORE_USERS, "rights": 2},
        {"_id": "u-carol", "rights": 2, "deny": true},
    ]});
    let d = p.upload_file(alice, upload("denied.txt", denied), vec![1, 2, 3]).await.unwrap();
    assert!(is_not_found(&p.download_file(carol, "fs", Some(&d.id), None).await));
    // A malformed ACL is refused, and nothing is left behind.
    let bad = p.upload_file(alice, upload("bad.txt", json!({"_acl": "everyone"})), vec![1]).await;
    assert!(matches!(bad, Err(CoreError::InvalidRequest(_))), "{bad:?}");
    let bad_meta = p.upload_file(alice, upload("bad.txt", json!([1])), vec![1]).await;
    assert!(matches!(bad_meta, Err(CoreError::InvalidRequest(_))), "{bad_meta:?}");
    assert_eq!(p.store().count("fs.files", &Scope::system(), &json!({"filename": "bad.txt"})).await.unwrap(), 0);
}

#[tokio::test]
async fn deleting_the_metadata_document_deletes_the_chunks() {
    let w = world().await;
    let (p, alice, bob) = (&w.p, &w.alice, &w.bob);
    let one = p.upload_file(alice, upload("one.bin", Value::Null), content(600_000, 4)).await.unwrap();
    let two = p.upload_file(alice, upload("two.bin", Value::Null), content(600_000, 5)).await.unwrap();
    let three = p.upload_file(alice, upload("three.bin", Value::Null), content(10, 6)).await.unwrap();
    assert_eq!(chunk_count(p, "fs.chunks", &one.id).await, 3);

    // Someone who may not delete the file leaves it whole.
    assert!(matches!(p.delete_one(bob, "fs.files", &one.id).await, Err(CoreError::NotFound(_))));
    assert_eq!(p.delete_many(bob, "fs.files", &json!({})).await.unwrap(), 0);
    assert_eq!(chunk_count(p, "fs.chunks", &one.id).await, 3);

    p.delete_one(alice, "fs.files", &one.id).await.unwrap();
    assert_eq!(chunk_count(p, "fs.chunks", &one.id).await, 0);
    assert_eq!(chunk_count(p, "fs.chunks", &two.id).await, 3, "other files keep theirs");
    assert!(is_not_found(&p.download_file(alice, "fs", Some(&one.id), None).await));

    assert_eq!(
        p.delete_many(alice, "fs.files", &json!({"filename": {"$in": ["two.bin", "three.bin"]}})).await.unwrap(),
        2
    );
    assert_eq!(chunk_count(p, "fs.chunks", &two.id).await, 0);
    assert_eq!(chunk_count(p, "fs.chunks", &three.id).await, 0);
    assert_eq!(p.store().count("fs.chunks", &Scope::system(), &json!({})).await.unwrap(), 0);
}

#[tokio::test]
async fn oversize_files_and_guests_are_refused() {
    let w = world_with(PlatformConfig { max_file_bytes: 1000, ..PlatformConfig::default() }).await;
    let (p, alice) = (&w.p, &w.alice);
    let big = p.upload_file(alice, upload("big.bin", Value::Null), vec![7; 1001]).await;
    assert!(matches!(&big, Err(CoreError::InvalidRequest(m)) if m.contains("1000")), "{big:?}");
    let guest = p.upload_file(&w.guest, upload("g.bin", Value::Null), vec![7; 10]).await;
    assert!(matches!(guest, Err(CoreError::AccessDenied(_))), "{guest:?}");
    let unnamed = p.upload_file(alice, upload("  ", Value::Null), vec![7; 10]).await;
    assert!(matches!(unnamed, Err(CoreError::InvalidRequest(_))), "{unnamed:?}");
    let reserved =
        p.upload_file(alice, FileUpload { bucket: "flowkeep.keys".into(), ..upload("k", Value::Null) }, vec![1]).await;
    assert!(matches!(reserved, Err(CoreError::AccessDenied(_))), "{reserved:?}");
    // The metadata document is written last; when it is refused (here: too large for the store), the
    // chunks already written are removed again.
    let huge = json!({"notes": "x".repeat(17 * 1024 * 1024)});
    let failed = p.upload_file(alice, upload("huge-meta.bin", huge), vec![7; 1000]).await;
    assert!(matches!(failed, Err(CoreError::InvalidRequest(_))), "{failed:?}");
    assert_eq!(p.store().count("fs.chunks", &Scope::system(), &json!({})).await.unwrap(), 0, "nothing left");
    assert_eq!(p.store().count("fs.files", &Scope::system(), &json!({})).await.unwrap(), 0);

    let at_limit = p.upload_file(alice, upload("ok.bin", Value::Null), vec![7; 1000]).await.unwrap();
    assert_eq!(at_limit.length, 1000);
    assert_eq!(PlatformConfig::default().max_file_bytes, 64 * 1024 * 1024);
}

#[tokio::test]
async fn chunks_are_unreachable_through_document_commands() {
    let w = world().await;
    let (p, alice, admin) = (&w.p, &w.alice, &w.admin);
    let f = p.upload_file(alice, upload("c.bin", Value::Null), content(1000, 7)).await.unwrap();
    let all = QueryRequest { filter: json!({}), ..QueryRequest::default() };
    for caller in [alice, admin] {
        let q = p.query(caller, "fs.chunks", &all).await;
        assert!(matches!(q, Err(CoreError::AccessDenied(_))), "{q:?}");
        assert!(matches!(p.count(caller, "fs.chunks", &json!({})).await, Err(CoreError::AccessDenied(_))));
        assert!(matches!(
            p.distinct(caller, "fs.chunks", "files_id", &json!({})).await,
            Err(CoreError::AccessDenied(_))
        ));
        let joined = p
            .aggregate(
                caller,
                "fs.files",
                &json!([{"$lookup": {"from": "fs.chunks", "localField": "_id", "foreignField": "files_id", "as": "c"}}]),
            )
            .await;
        assert!(matches!(joined, Err(CoreError::AccessDenied(_))), "{joined:?}");
        let insert = p.insert_one(caller, "fs.chunks", json!({"files_id": f.id, "n": 1, "data": ""})).await;
        assert!(matches!(insert, Err(CoreError::AccessDenied(_))), "{insert:?}");
        let delete = p.delete_many(caller, "fs.chunks", &json!({})).await;
        assert!(matches!(delete, Err(CoreError::AccessDenied(_))), "{delete:?}");
    }
    let listed = p.list_collections(admin, true).await.unwrap();
    assert!(listed.iter().all(|c| !c.name.ends_with(".chunks")), "{listed:?}");
    assert!(listed.iter().any(|c| c.name == "fs.files"));
    assert_eq!(chunk_count(p, "fs.chunks", &f.id).await, 1);
}

#[tokio::test]
async fn dropping_a_bucket_drops_its_content() {
    let w = world().await;
    w.p.upload_file(&w.alice, upload("a.bin", Value::Null), content(10, 3)).await.unwrap();
    let names = |all: Vec<flowkeep_store::CollectionInfo>| all.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert!(names(w.p.store().list_collections().await.unwrap()).contains(&"fs.chunks".to_string()));
    assert!(w.p.drop_collection(&w.admin, "fs.files").await.unwrap());
    let left = names(w.p.store().list_collections().await.unwrap());
    assert!(!left.iter().any(|n| n.starts_with("fs.")), "the bucket's metadata and chunks are gone: {left:?}");
}
