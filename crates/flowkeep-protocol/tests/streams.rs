//! Watches and file streaming over `Hub::serve_connection`: change events for those who may read the
//! document (and only them), JSONPath filters, unwatch; upload of a multi-MiB file in 1 MiB chunks and its
//! download as chunks followed by the reply without `endstream`; the upload size cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use flowkeep_protocol::{wire, ProtocolConfig};
use serde_json::json;
use std::time::Duration;

async fn watch(c: &mut Client, collection: &str, paths: &[&str]) -> String {
    let request = wire::WatchRequest {
        collectionname: collection.into(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    };
    let r: wire::WatchResponse = c.ok("watch", &request).await;
    assert!(!r.id.is_empty());
    r.id
}

async fn next_event(c: &mut Client) -> wire::WatchEvent {
    let e = c.next_where(|e| e.command == "watchevent").await;
    assert!(e.rid.is_empty());
    decode(&e)
}

#[tokio::test]
async fn watch_events_reach_readers_only() {
    let hub = hub().await;
    let (mut admin, _) = admin(&hub).await;
    let (mut bob, _, _) = user(&hub, &mut admin, "bob").await;
    let admin_watch = watch(&mut admin, "entities", &[""]).await;
    let bob_watch = watch(&mut bob, "entities", &[]).await;

    let doc = insert(&mut admin, "entities", json!({"name": "private"})).await;
    let e = next_event(&mut admin).await;
    assert_eq!((e.id.as_str(), e.operation.as_str()), (admin_watch.as_str(), "insert"));
    assert_eq!(parse(&e.document)["_id"], doc["_id"]);

    // bob may not read the admin's document: his first event is for his own insert
    let own = insert(&mut bob, "entities", json!({"name": "bob's"})).await;
    let e = next_event(&mut bob).await;
    assert_eq!(e.id, bob_watch);
    assert_eq!(parse(&e.document)["_id"], own["_id"], "bob saw {}", e.document);
    // the admin sees bob's too
    let e = next_event(&mut admin).await;
    assert_eq!(parse(&e.document)["_id"], own["_id"]);

    // updates and deletes
    let id = own["_id"].as_str().unwrap().to_owned();
    let update = wire::UpdateOneRequest {
        collectionname: "entities".into(),
        item: json!({"_id": id, "name": "bob's 2"}).to_string(),
        ..Default::default()
    };
    let _: wire::UpdateOneResponse = bob.ok("updateone", &update).await;
    let e = next_event(&mut bob).await;
    assert!(matches!(e.operation.as_str(), "update" | "replace"), "{}", e.operation);
    assert_eq!(parse(&e.document)["name"], "bob's 2");
    let _: wire::DeleteOneResponse = bob
        .ok("deleteone", &wire::DeleteOneRequest { collectionname: "entities".into(), id, ..Default::default() })
        .await;
    assert_eq!(next_event(&mut bob).await.operation, "delete");

    // another collection is not watched
    insert(&mut bob, "other", json!({"name": "elsewhere"})).await;
    assert!(bob.quiet_for(Duration::from_millis(300)).await.is_none());

    // unwatch stops the events; unwatching again is an error
    let _: wire::UnWatchResponse = bob.ok("unwatch", &wire::UnWatchRequest { id: bob_watch.clone() }).await;
    insert(&mut bob, "entities", json!({"name": "unwatched"})).await;
    assert!(bob.quiet_for(Duration::from_millis(300)).await.is_none());
    let (_, code) = bob.err("unwatch", &wire::UnWatchRequest { id: bob_watch }).await;
    assert_eq!(code, 404);
    let clients = hub.clients();
    assert!(clients.iter().any(|c| c.username.as_deref() == Some(ADMIN) && c.watches == 1));
}

#[tokio::test]
async fn watch_paths_filter_events() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let id = watch(&mut c, "entities", &["$[?@.kind == 'wanted']"]).await;
    insert(&mut c, "entities", json!({"kind": "unwanted"})).await;
    insert(&mut c, "entities", json!({"kind": "wanted", "n": 1})).await;
    let e = next_event(&mut c).await;
    assert_eq!(e.id, id);
    assert_eq!(parse(&e.document)["n"], 1);
    let (message, _) =
        c.err("watch", &wire::WatchRequest { collectionname: "entities".into(), paths: vec!["$[".into()] }).await;
    assert!(message.starts_with("paths[0]:"), "{message}");
    let (message, _) = c.err("watch", &wire::WatchRequest::default()).await;
    assert!(message.starts_with("collectionname:"), "{message}");
}

#[tokio::test]
async fn upload_and_download_in_chunks() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let content: Vec<u8> = (0..(3 * 1024 * 1024 + 12345)).map(|i: u32| (i % 251) as u8).collect();
    let request = wire::UploadRequest {
        filename: "big.bin".into(),
        mimetype: "application/octet-stream".into(),
        metadata: json!({"purpose": "test"}).to_string(),
        collectionname: "fs.files".into(),
    };
    let upload = c.envelope("upload", &request);
    let id = c.send(upload).await;
    let begin = wire::Envelope {
        command: "beginstream".into(),
        rid: id.clone(),
        data: Some(flowkeep_protocol::codec::to_any(&wire::BeginStream::default())),
        ..Default::default()
    };
    c.send(begin).await;
    for chunk in content.chunks(1024 * 1024) {
        let env = wire::Envelope {
            command: "stream".into(),
            rid: id.clone(),
            data: Some(flowkeep_protocol::codec::to_any(&wire::Stream { data: chunk.to_vec() })),
            ..Default::default()
        };
        c.send(env).await;
    }
    let end = wire::Envelope {
        command: "endstream".into(),
        rid: id.clone(),
        data: Some(flowkeep_protocol::codec::to_any(&wire::EndStream {})),
        ..Default::default()
    };
    c.send(end).await;
    // nothing answers the chunks: the next envelope is the upload's reply
    let reply = c.next().await;
    assert_eq!((reply.command.as_str(), reply.rid.as_str()), ("uploadreply", id.as_str()), "{}", error_text(&reply));
    let uploaded: wire::UploadResponse = decode(&reply);
    assert_eq!(uploaded.filename, "big.bin");
    assert_eq!(uploaded.bytes as usize, content.len());
    assert!(uploaded.chunks > 1);
    assert!(uploaded.mb > 3.0);

    // the metadata document
    let files = query(&mut c, "files", json!({"_id": uploaded.id})).await;
    assert_eq!(files[0]["metadata"]["purpose"], "test");

    // download: stream chunks, then the reply, no endstream
    let request = wire::DownloadRequest { id: uploaded.id.clone(), ..Default::default() };
    let env = c.envelope("download", &request);
    let did = c.send(env).await;
    let mut received = Vec::new();
    loop {
        let e = c.next().await;
        assert_eq!(e.rid, did);
        match e.command.as_str() {
            "stream" => {
                let s: wire::Stream = decode(&e);
                assert!(s.data.len() <= 1024 * 1024);
                received.extend_from_slice(&s.data);
            }
            "downloadreply" => {
                let r: wire::DownloadResponse = decode(&e);
                assert_eq!((r.id.as_str(), r.filename.as_str()), (uploaded.id.as_str(), "big.bin"));
                assert_eq!(r.mimetype, "application/octet-stream");
                break;
            }
            other => panic!("unexpected {other}: {}", error_text(&e)),
        }
    }
    assert!(received == content, "downloaded {} bytes, uploaded {}", received.len(), content.len());
    assert!(c.quiet_for(Duration::from_millis(200)).await.is_none(), "no endstream after the reply");

    // by filename, and errors
    let r = c.request("download", &wire::DownloadRequest { filename: "big.bin".into(), ..Default::default() }).await;
    assert_eq!(r.command, "downloadreply");
    let (_, code) =
        c.err("download", &wire::DownloadRequest { id: "0123456789abcdef01234567".into(), ..Default::default() }).await;
    assert_eq!(code, 404);
    let (message, _) = c.err("download", &wire::DownloadRequest::default()).await;
    assert!(message.starts_with("id:"), "{message}");
}

#[tokio::test]
async fn uploads_are_capped_and_others_cannot_download() {
    let config = ProtocolConfig { max_upload_bytes: 100_000, ..ProtocolConfig::default() };
    let hub = hub_with(config).await;
    let (mut admin, _) = admin(&hub).await;
    let request = wire::UploadRequest { filename: "too-big.bin".into(), ..Default::default() };
    let upload = admin.envelope("upload", &request);
    let id = admin.send(upload).await;
    for _ in 0..3 {
        let env = wire::Envelope {
            command: "stream".into(),
            rid: id.clone(),
            data: Some(flowkeep_protocol::codec::to_any(&wire::Stream { data: vec![7; 60_000] })),
            ..Default::default()
        };
        admin.send(env).await;
    }
    admin.send(wire::Envelope { command: "endstream".into(), rid: id.clone(), ..Default::default() }).await;
    let reply = admin.next().await;
    assert_eq!((reply.command.as_str(), reply.rid.as_str()), ("error", id.as_str()));
    assert!(error_text(&reply).contains("100000"), "{}", error_text(&reply));
    assert!(admin.quiet_for(Duration::from_millis(200)).await.is_none(), "one error per failed upload");

    // a small one works; with its own ACL (only the uploader and admins), bob may not download it
    let private = wire::UploadRequest {
        filename: "small.txt".into(),
        metadata: json!({"_acl": []}).to_string(),
        ..Default::default()
    };
    let upload = admin.envelope("upload", &private);
    let id = admin.send(upload).await;
    let env = wire::Envelope {
        command: "stream".into(),
        rid: id.clone(),
        data: Some(flowkeep_protocol::codec::to_any(&wire::Stream { data: b"hello".to_vec() })),
        ..Default::default()
    };
    admin.send(env).await;
    admin.send(wire::Envelope { command: "endstream".into(), rid: id.clone(), ..Default::default() }).await;
    let r: wire::UploadResponse = decode(&admin.reply_to(&id).await);
    let (mut bob, _, _) = user(&hub, &mut admin, "bob").await;
    let (_, code) = bob.err("download", &wire::DownloadRequest { id: r.id.clone(), ..Default::default() }).await;
    assert_eq!(code, 404);
    // not signed in: no upload
    let mut anon = connect(&hub);
    let (_, code) = anon.err("upload", &wire::UploadRequest { filename: "x".into(), ..Default::default() }).await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_and_continues() {
    let hub = hub().await;
    let (mut writer, _) = admin(&hub).await;
    let mut watcher = connect_with(&hub, info(), 4, 1);
    watcher.signin(ADMIN, ADMIN_PASSWORD).await;
    let id = watch(&mut watcher, "bulk", &[]).await;
    // more changes than the core's feed holds, while the watcher reads nothing
    let n = flowkeep_core::changes::CHANGE_FEED_CAPACITY + 500;
    let items: Vec<serde_json::Value> = (0..n).map(|i| json!({"i": i})).collect();
    let _: wire::InsertManyResponse = writer
        .ok(
            "insertmany",
            &wire::InsertManyRequest {
                collectionname: "bulk".into(),
                items: serde_json::Value::Array(items).to_string(),
                skipresults: true,
                ..Default::default()
            },
        )
        .await;
    let (mut events, mut lost) = (0usize, 0usize);
    while let Some(e) = watcher.quiet_for(Duration::from_millis(500)).await {
        match e.command.as_str() {
            "watchevent" => {
                let event: wire::WatchEvent = decode(&e);
                assert_eq!(event.id, id);
                events += 1;
            }
            "error" => {
                assert!(e.rid.is_empty());
                let error: wire::ErrorResponse = decode(&e);
                assert_eq!(error.code, 503);
                assert!(error.message.contains("missed"), "{}", error.message);
                lost += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(lost, 1, "one notice");
    assert!(events < n, "{events} events of {n}");
    // and it goes on with new changes
    insert(&mut writer, "bulk", json!({"after": true})).await;
    let e = next_event(&mut watcher).await;
    assert_eq!(parse(&e.document)["after"], true);
}

#[tokio::test]
async fn an_oversized_chunk_fails_its_upload_only() {
    let config = ProtocolConfig { max_message_bytes: 4096, ..ProtocolConfig::default() };
    let hub = hub_with(config).await;
    let (mut c, _) = admin(&hub).await;
    let upload = c.envelope("upload", &wire::UploadRequest { filename: "x.bin".into(), ..Default::default() });
    let id = c.send(upload).await;
    let chunk = wire::Envelope {
        command: "stream".into(),
        rid: id.clone(),
        data: Some(flowkeep_protocol::codec::to_any(&wire::Stream { data: vec![1; 8000] })),
        ..Default::default()
    };
    c.send(chunk).await;
    c.send(wire::Envelope { command: "endstream".into(), rid: id.clone(), ..Default::default() }).await;
    let reply = c.next().await;
    assert_eq!((reply.command.as_str(), reply.rid.as_str()), ("error", id.as_str()));
    assert!(error_text(&reply).contains("4096"), "{}", error_text(&reply));
    assert!(c.quiet_for(Duration::from_millis(200)).await.is_none());
    assert_eq!(query(&mut c, "users", json!({"username": ADMIN})).await.len(), 1);
}
