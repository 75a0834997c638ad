//! Work-item commands over `Hub::serve_connection`: queue add/duplicate/update/delete (with purge), push
//! and pop in priority order, an empty pop, successful/retry/failed updates, inline gzip files and
//! `includefiles` on pop, the rights of two users, a stale lease refused, and malformed requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use flowkeep_protocol::wire;
use prost_types::Timestamp;
use serde_json::{json, Value};

fn wiq(name: &str) -> wire::WorkItemQueue {
    wire::WorkItemQueue { name: name.into(), maxretries: 3, ..Default::default() }
}

async fn add_queue(c: &mut Client, queue: wire::WorkItemQueue, skiprole: bool) -> wire::WorkItemQueue {
    let r: wire::AddWorkItemQueueResponse =
        c.ok("addworkitemqueue", &wire::AddWorkItemQueueRequest { workitemqueue: Some(queue), skiprole }).await;
    r.workitemqueue.expect("addworkitemqueue must answer with the queue")
}

fn push_request(queue: &str, payload: Value) -> wire::PushWorkitemRequest {
    wire::PushWorkitemRequest { wiq: queue.into(), payload: payload.to_string(), ..Default::default() }
}

async fn push(c: &mut Client, request: wire::PushWorkitemRequest) -> wire::Workitem {
    let r: wire::PushWorkitemResponse = c.ok("pushworkitem", &request).await;
    r.workitem.expect("pushworkitem answers with the item")
}

fn pop_request(queue: &str) -> wire::PopWorkitemRequest {
    wire::PopWorkitemRequest { wiq: queue.into(), ..Default::default() }
}

async fn pop(c: &mut Client, queue: &str) -> Option<wire::Workitem> {
    let r: wire::PopWorkitemResponse = c.ok("popworkitem", &pop_request(queue)).await;
    r.workitem
}

async fn update(c: &mut Client, item: wire::Workitem) -> wire::Workitem {
    let r: wire::UpdateWorkitemResponse =
        c.ok("updateworkitem", &wire::UpdateWorkitemRequest { workitem: Some(item), ..Default::default() }).await;
    r.workitem.expect("updateworkitem answers with the item")
}

fn with_state(item: &wire::Workitem, state: &str) -> wire::Workitem {
    wire::Workitem { state: state.into(), ..item.clone() }
}

/// A gzip member holding `data` in stored deflate blocks (the core inflates it with a real decoder).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let len = u16::try_from(chunk.len()).unwrap();
        out.push(u8::from(chunks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

fn file(name: &str, bytes: Vec<u8>, compressed: bool) -> wire::WorkitemFile {
    wire::WorkitemFile { filename: name.into(), id: "findme".into(), compressed, file: bytes }
}

#[tokio::test]
async fn queue_add_duplicate_update_and_delete() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;

    let created =
        add_queue(&mut c, wire::WorkItemQueue { maxretries: 0, retrydelay: 7, ..wiq("invoices") }, false).await;
    assert_eq!(created.name, "invoices");
    assert_eq!(created.id.len(), 24, "{created:?}");
    assert_eq!(created.maxretries, 3, "below 1 means 3");
    assert_eq!(created.retrydelay, 7);
    assert!(!created.usersrole.is_empty(), "a users role unless skiprole");
    assert!(created.acl.iter().any(|a| a.id == created.usersrole && a.rights == 65535), "{:?}", created.acl);
    assert!(created.created.is_some() && !created.createdby.is_empty() && !created.createdbyid.is_empty());

    // Duplicate names are refused.
    let (message, code) = c
        .err(
            "addworkitemqueue",
            &wire::AddWorkItemQueueRequest { workitemqueue: Some(wiq("invoices")), skiprole: true },
        )
        .await;
    assert_eq!(code, 409, "{message}");

    // Update by _id renames; the reply carries the stored queue.
    let renamed = wire::WorkItemQueue {
        name: "bills".into(),
        maxretries: 5,
        amqpqueue: "billq".into(),
        acl: vec![],
        ..created.clone()
    };
    let r: wire::UpdateWorkItemQueueResponse = c
        .ok(
            "updateworkitemqueue",
            &wire::UpdateWorkItemQueueRequest { workitemqueue: Some(renamed), ..Default::default() },
        )
        .await;
    let updated = r.workitemqueue.unwrap();
    assert_eq!((updated.id.as_str(), updated.name.as_str()), (created.id.as_str(), "bills"));
    assert_eq!((updated.maxretries, updated.amqpqueue.as_str()), (5, "billq"));
    assert!(updated.version > created.version, "{} > {}", updated.version, created.version);
    assert_eq!(updated.acl, created.acl, "an empty acl keeps the stored one");

    // An item blocks a plain delete; purge deletes the items too.
    push(&mut c, push_request("bills", json!({"n": 1}))).await;
    let delete = wire::DeleteWorkItemQueueRequest { wiq: "bills".into(), ..Default::default() };
    let (message, code) = c.err("deleteworkitemqueue", &delete).await;
    assert_eq!(code, 409, "{message}");
    let _: wire::DeleteWorkItemQueueResponse =
        c.ok("deleteworkitemqueue", &wire::DeleteWorkItemQueueRequest { purge: true, ..delete.clone() }).await;
    assert!(query(&mut c, "workitems", json!({"wiqid": created.id})).await.is_empty());
    assert!(query(&mut c, "mq", json!({"_id": created.id})).await.is_empty());
    let (message, code) = c.err("pushworkitem", &push_request("bills", json!({}))).await;
    assert_eq!((message.as_str(), code), ("Work item queue not found", 404));
    let (message, code) = c.err("deleteworkitemqueue", &delete).await;
    assert_eq!((message.as_str(), code), ("Work item queue not found", 404));
}

#[tokio::test]
async fn push_and_pop_in_priority_order() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    let queue = add_queue(&mut c, wiq("orders"), true).await;

    let first = push(
        &mut c,
        wire::PushWorkitemRequest { name: "five".into(), priority: 5, ..push_request("orders", json!({"p": 5})) },
    )
    .await;
    assert_eq!((first.state.as_str(), first.priority, first.retries), ("new", 5, 0));
    assert_eq!((first.wiq.as_str(), first.wiqid.as_str()), ("orders", queue.id.as_str()));
    assert!(first.nextrun.is_some() && first.lastrun.is_none());
    let default = push(&mut c, push_request("orders", json!(42))).await;
    assert_eq!(default.priority, 2, "priority 0 means the default");
    assert_eq!(parse(&default.payload), json!({"value": 42}), "non-objects are wrapped");
    assert_eq!(default.name, "New work item");

    // pushworkitems: the request's priority is the default, an item's own wins; by queue id.
    let later = Timestamp { seconds: chrono::Utc::now().timestamp() + 3600, nanos: 0 };
    let many = wire::PushWorkitemsRequest {
        wiqid: queue.id.clone(),
        priority: 3,
        items: vec![
            wire::Workitem { name: "three".into(), payload: r#"{"p":3}"#.into(), ..Default::default() },
            wire::Workitem { name: "one".into(), payload: r#"{"p":1}"#.into(), priority: 1, ..Default::default() },
            wire::Workitem { name: "future".into(), priority: -10, nextrun: Some(later), ..Default::default() },
        ],
        ..Default::default()
    };
    let pushed: wire::PushWorkitemsResponse = c.ok("pushworkitems", &many).await;
    assert_eq!(pushed.workitems.iter().map(|w| w.priority).collect::<Vec<_>>(), vec![3, 1, -10]);
    assert_eq!(pushed.workitems[2].nextrun, Some(later), "nextrun round-trips");
    assert_eq!(parse(&pushed.workitems[2].payload), json!({}), "an empty payload is {{}}");

    let mut names = Vec::new();
    while let Some(item) = pop(&mut c, "orders").await {
        assert_eq!(item.state, "processing");
        assert!(item.lastrun.is_some() && item.nextrun.is_none(), "{item:?}");
        assert_eq!(item.username, ADMIN);
        let payload = parse(&item.payload);
        assert!(payload["_lease"]["token"].as_str().is_some_and(|t| !t.is_empty()), "{payload}");
        names.push(item.name);
    }
    assert_eq!(names, vec!["one", "New work item", "three", "five"], "the future item is not due");

    // An empty pop is a reply without a workitem, not an error (also by id).
    let reply =
        c.request("popworkitem", &wire::PopWorkitemRequest { wiqid: queue.id.clone(), ..Default::default() }).await;
    assert_eq!(reply.command, "popworkitemreply");
    let r: wire::PopWorkitemResponse = decode(&reply);
    assert!(r.workitem.is_none());

    // deleteworkitem removes the not-yet-due item.
    let future = pushed.workitems[2].id.clone();
    let _: wire::DeleteWorkitemResponse = c.ok("deleteworkitem", &wire::DeleteWorkitemRequest { id: future }).await;
    assert!(query(&mut c, "workitems", json!({"name": "future"})).await.is_empty());
    let (message, code) =
        c.err("deleteworkitem", &wire::DeleteWorkitemRequest { id: "0123456789abcdef01234567".into() }).await;
    assert_eq!(code, 404, "{message}");
}

#[tokio::test]
async fn updates_successful_retry_and_failed() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    add_queue(&mut c, wire::WorkItemQueue { maxretries: 2, ..wiq("jobs") }, true).await;
    add_queue(&mut c, wiq("done"), true).await;

    // successful, chained to the success queue named on the item
    push(&mut c, wire::PushWorkitemRequest { success_wiq: "done".into(), ..push_request("jobs", json!({"n": 1})) })
        .await;
    let item = pop(&mut c, "jobs").await.unwrap();
    assert_eq!(item.success_wiq, "done");
    let mut payload = parse(&item.payload);
    payload["result"] = json!("ok");
    let done = update(&mut c, wire::Workitem { payload: payload.to_string(), ..with_state(&item, "successful") }).await;
    assert_eq!(done.state, "successful");
    assert_eq!(parse(&done.payload)["result"], "ok");
    assert!(parse(&done.payload).get("_lease").is_none(), "no lease once done");
    let copy = pop(&mut c, "done").await.unwrap();
    assert_eq!(parse(&copy.payload)["result"], "ok");

    // retry until maxretries, then failed
    push(&mut c, push_request("jobs", json!({"n": 2}))).await;
    let item = pop(&mut c, "jobs").await.unwrap();
    let retried =
        update(&mut c, wire::Workitem { errormessage: "try again".into(), ..with_state(&item, "retry") }).await;
    assert_eq!((retried.state.as_str(), retried.retries), ("new", 1));
    assert_eq!(retried.errormessage, "try again");
    assert!(retried.nextrun.is_some());
    let item = pop(&mut c, "jobs").await.unwrap();
    assert_eq!(item.retries, 1);
    let failed = update(&mut c, with_state(&item, "retry")).await;
    assert_eq!(failed.state, "failed", "retries + 1 reached maxretries 2");
    assert_eq!(failed.errormessage, "try again", "an empty errormessage keeps the stored one");
    assert!(pop(&mut c, "jobs").await.is_none());

    // ignoremaxretries runs it again; an unknown state is a 400
    let r: wire::UpdateWorkitemResponse = c
        .ok(
            "updateworkitem",
            &wire::UpdateWorkitemRequest {
                workitem: Some(with_state(&failed, "retry")),
                ignoremaxretries: true,
                files: vec![],
            },
        )
        .await;
    assert_eq!(r.workitem.unwrap().state, "new");
    let (message, code) = c
        .err(
            "updateworkitem",
            &wire::UpdateWorkitemRequest { workitem: Some(with_state(&failed, "done")), ..Default::default() },
        )
        .await;
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("state"), "{message}");

    // a business error fails at once
    let item = pop(&mut c, "jobs").await.unwrap();
    let business = update(&mut c, wire::Workitem { errortype: "business".into(), ..with_state(&item, "retry") }).await;
    assert_eq!((business.state.as_str(), business.errortype.as_str()), ("failed", "business"));
}

#[tokio::test]
async fn files_inline_gzip_and_includefiles() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    add_queue(&mut c, wiq("docs"), true).await;
    let text = b"a workitem attachment ".repeat(5000);

    let pushed = push(
        &mut c,
        wire::PushWorkitemRequest {
            files: vec![
                file("dir/report.txt", gzip(&text), true),
                file("plain.bin", vec![1, 2, 3], false),
                wire::WorkitemFile::default(),
            ],
            ..push_request("docs", json!({}))
        },
    )
    .await;
    let names: Vec<&str> = pushed.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, vec!["report.txt", "plain.bin"]);
    assert!(pushed.files.iter().all(|f| f.id.len() == 24 && f.file.is_empty()), "{:?}", pushed.files);

    // includefiles without compression: the bytes as stored
    let r: wire::PopWorkitemResponse =
        c.ok("popworkitem", &wire::PopWorkitemRequest { includefiles: true, ..pop_request("docs") }).await;
    let item = r.workitem.unwrap();
    assert_eq!(item.files[0].file, text);
    assert_eq!(item.files[1].file, vec![1, 2, 3]);
    assert!(!item.files[0].compressed);

    // the popped item echoed back with its inline copies keeps the same files (no re-upload); a bare
    // filename in `files` removes one, bytes add one
    let done = update(&mut c, with_state(&item, "successful")).await;
    assert_eq!(
        done.files.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        pushed.files.iter().map(|f| f.id.clone()).collect::<Vec<_>>()
    );
    let r: wire::UpdateWorkitemResponse = c
        .ok(
            "updateworkitem",
            &wire::UpdateWorkitemRequest {
                workitem: Some(wire::Workitem { id: done.id.clone(), ..Default::default() }),
                files: vec![
                    wire::WorkitemFile { filename: "plain.bin".into(), ..Default::default() },
                    file("result.txt", b"result".to_vec(), false),
                ],
                ..Default::default()
            },
        )
        .await;
    let updated = r.workitem.unwrap();
    let names: Vec<&str> = updated.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, vec!["report.txt", "result.txt"]);
    // as the official client does: an echoed file with its id cleared removes it
    let mut echo = updated.clone();
    echo.files[0].id = String::new();
    let names: Vec<String> = update(&mut c, echo).await.files.into_iter().map(|f| f.filename).collect();
    assert_eq!(names, vec!["result.txt"]);

    // includefiles with compression: a zlib stream; pushing it back compressed stores the same bytes
    push(
        &mut c,
        wire::PushWorkitemRequest {
            files: vec![file("again.txt", gzip(&text), true)],
            ..push_request("docs", json!({}))
        },
    )
    .await;
    let r: wire::PopWorkitemResponse = c
        .ok("popworkitem", &wire::PopWorkitemRequest { includefiles: true, compressed: true, ..pop_request("docs") })
        .await;
    let zipped = r.workitem.unwrap().files.remove(0);
    assert!(zipped.compressed);
    assert_eq!(zipped.file[0], 0x78, "a zlib header");
    push(
        &mut c,
        wire::PushWorkitemRequest {
            files: vec![file("third.txt", zipped.file, true)],
            ..push_request("docs", json!({}))
        },
    )
    .await;
    let r: wire::PopWorkitemResponse =
        c.ok("popworkitem", &wire::PopWorkitemRequest { includefiles: true, ..pop_request("docs") }).await;
    assert_eq!(r.workitem.unwrap().files[0].file, text, "the core inflated the zlib stream to the original");

    // a file too large for the connection's reply limit is listed by id only
    let small = flowkeep_protocol::ConnectionInfo { max_outbound_bytes: 50_000, ..info() };
    let mut tight = connect_with(&hub, small, 16, 64);
    tight.signin(ADMIN, ADMIN_PASSWORD).await;
    push(
        &mut c,
        wire::PushWorkitemRequest {
            files: vec![file("big.txt", text.clone(), false), file("small.txt", b"s".to_vec(), false)],
            ..push_request("docs", json!({}))
        },
    )
    .await;
    let r: wire::PopWorkitemResponse =
        tight.ok("popworkitem", &wire::PopWorkitemRequest { includefiles: true, ..pop_request("docs") }).await;
    let files = r.workitem.unwrap().files;
    assert!(files[0].file.is_empty() && files[0].id.len() == 24, "too big to inline");
    assert_eq!(files[1].file, b"s");

    // bytes that are not gzip or zlib are refused
    let (message, code) = c
        .err(
            "pushworkitem",
            &wire::PushWorkitemRequest {
                files: vec![file("x.txt", b"not gzip".to_vec(), true)],
                ..push_request("docs", json!({}))
            },
        )
        .await;
    assert_eq!(code, 400, "{message}");
}

#[tokio::test]
async fn a_user_without_rights_cannot_push_or_pop() {
    let hub = hub().await;
    let (mut admin_client, _) = admin(&hub).await;
    let (mut bob, _, bob_id) = user(&hub, &mut admin_client, "bob").await;
    let queue = add_queue(&mut admin_client, wiq("private"), true).await;
    push(&mut admin_client, push_request("private", json!({"secret": true}))).await;

    let (message, code) = bob.err("pushworkitem", &push_request("private", json!({}))).await;
    assert_eq!((message.as_str(), code), ("Work item queue not found", 404));
    let (message, code) = bob.err("popworkitem", &pop_request("private")).await;
    assert_eq!((message.as_str(), code), ("Work item queue not found", 404));
    let bob_queue = add_queue(&mut bob, wiq("bobs"), true).await;
    assert!(bob_queue.acl.iter().any(|a| a.id == bob_id), "the creator gets rights");

    // read only is not enough to push or pop
    let mut acl = queue.acl.clone();
    acl.push(wire::Ace { id: bob_id.clone(), deny: false, rights: 2 });
    let grant = wire::WorkItemQueue { acl, ..queue.clone() };
    let _: wire::UpdateWorkItemQueueResponse = admin_client
        .ok(
            "updateworkitemqueue",
            &wire::UpdateWorkItemQueueRequest { workitemqueue: Some(grant), ..Default::default() },
        )
        .await;
    let (message, code) = bob.err("pushworkitem", &push_request("private", json!({}))).await;
    assert_eq!(code, 403, "{message}");
    let (message, code) = bob.err("popworkitem", &pop_request("private")).await;
    assert_eq!(code, 403, "{message}");

    // read and invoke on the queue: bob may push and pop (items get the queue's ACL)
    let mut acl = queue.acl.clone();
    acl.push(wire::Ace { id: bob_id.clone(), deny: false, rights: 2 | 16 });
    let grant = wire::WorkItemQueue { acl, ..queue.clone() };
    let _: wire::UpdateWorkItemQueueResponse = admin_client
        .ok(
            "updateworkitemqueue",
            &wire::UpdateWorkItemQueueRequest { workitemqueue: Some(grant), ..Default::default() },
        )
        .await;
    // items carry the queue's ACL of their push: the one pushed before the grant stays out of reach
    push(&mut admin_client, push_request("private", json!({"after": "grant"}))).await;
    let popped = pop(&mut bob, "private").await.unwrap();
    assert_eq!(parse(&popped.payload)["after"], "grant");
    assert_eq!(popped.username, "bob");
    assert!(pop(&mut bob, "private").await.is_none());
    push(&mut bob, push_request("private", json!({"from": "bob"}))).await;
    let first = pop(&mut admin_client, "private").await.unwrap();
    assert_eq!(parse(&first.payload)["secret"], true);
    // bob may not delete the queue (no delete right)
    let (message, code) = bob
        .err(
            "deleteworkitemqueue",
            &wire::DeleteWorkItemQueueRequest { wiq: "private".into(), purge: true, ..Default::default() },
        )
        .await;
    assert_eq!(code, 403, "{message}");
}

#[tokio::test]
async fn a_stale_lease_is_refused() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    add_queue(&mut c, wire::WorkItemQueue { maxretries: 5, ..wiq("leased") }, true).await;
    push(&mut c, push_request("leased", json!({"n": 1}))).await;

    let first = pop(&mut c, "leased").await.unwrap();
    // the item goes back (as its lease running out would do) and someone else pops it
    let back = update(&mut c, wire::Workitem { payload: String::new(), ..with_state(&first, "retry") }).await;
    assert_eq!(back.state, "new");
    let second = pop(&mut c, "leased").await.unwrap();
    assert_ne!(parse(&first.payload)["_lease"]["token"], parse(&second.payload)["_lease"]["token"]);

    // the first consumer echoes its old payload (old lease token): refused
    let (message, code) = c
        .err(
            "updateworkitem",
            &wire::UpdateWorkitemRequest { workitem: Some(with_state(&first, "successful")), ..Default::default() },
        )
        .await;
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("lease"), "{message}");
    // the current holder succeeds
    assert_eq!(update(&mut c, with_state(&second, "successful")).await.state, "successful");
}

#[tokio::test]
async fn malformed_requests_get_errors() {
    let hub = hub().await;
    let (mut c, _) = admin(&hub).await;
    add_queue(&mut c, wiq("strict"), true).await;

    let (message, code) = c
        .err(
            "pushworkitem",
            &wire::PushWorkitemRequest { payload: "{oops".into(), ..push_request("strict", json!({})) },
        )
        .await;
    assert!(message.starts_with("payload:") && code == 400, "{message}");
    let (message, _) = c.err("pushworkitem", &wire::QueryRequest::default()).await;
    assert!(message.contains("PushWorkitemRequest"), "{message}");
    let bad_time = wire::PushWorkitemRequest {
        nextrun: Some(Timestamp { seconds: 10, nanos: -5 }),
        ..push_request("strict", json!({}))
    };
    let (message, code) = c.err("pushworkitem", &bad_time).await;
    assert!(message.starts_with("nextrun:") && code == 400, "{message}");
    let (message, code) = c.err("pushworkitem", &wire::PushWorkitemRequest::default()).await;
    assert_eq!(code, 400, "no queue named: {message}");
    let many = wire::PushWorkitemsRequest {
        wiq: "strict".into(),
        items: vec![wire::Workitem::default(), wire::Workitem { payload: "[1,".into(), ..Default::default() }],
        ..Default::default()
    };
    let (message, code) = c.err("pushworkitems", &many).await;
    assert!(message.starts_with("items[1]: payload:") && code == 400, "{message}");
    assert!(query(&mut c, "workitems", json!({})).await.is_empty(), "all or nothing");

    let (message, code) = c.err("addworkitemqueue", &wire::AddWorkItemQueueRequest::default()).await;
    assert!(message.starts_with("workitemqueue:") && code == 400, "{message}");
    let (message, code) = c
        .err("addworkitemqueue", &wire::AddWorkItemQueueRequest { workitemqueue: Some(wiq("  ")), skiprole: true })
        .await;
    assert_eq!(code, 400, "{message}");
    let (message, code) = c.err("updateworkitemqueue", &wire::UpdateWorkItemQueueRequest::default()).await;
    assert!(message.starts_with("workitemqueue:") && code == 400, "{message}");
    let (message, code) = c.err("updateworkitem", &wire::UpdateWorkitemRequest::default()).await;
    assert!(message.starts_with("workitem:") && code == 400, "{message}");
    let (message, code) = c
        .err(
            "updateworkitem",
            &wire::UpdateWorkitemRequest { workitem: Some(wire::Workitem::default()), ..Default::default() },
        )
        .await;
    assert!(message.starts_with("workitem._id:") && code == 400, "{message}");
    let item = push(&mut c, push_request("strict", json!({}))).await;
    let (message, code) = c
        .err(
            "updateworkitem",
            &wire::UpdateWorkitemRequest {
                workitem: Some(wire::Workitem { payload: "nope".into(), ..item }),
                ..Default::default()
            },
        )
        .await;
    assert!(message.starts_with("workitem.payload:") && code == 400, "{message}");
    let (message, code) = c.err("deleteworkitem", &wire::DeleteWorkitemRequest::default()).await;
    assert!(message.starts_with("_id:") && code == 400, "{message}");
    let (message, code) = c.err("popworkitem", &wire::PopWorkitemRequest::default()).await;
    assert_eq!(code, 400, "{message}");
    let (message, code) = c.err("popworkitem", &pop_request("nosuchqueue")).await;
    assert_eq!((message.as_str(), code), ("Work item queue not found", 404));

    // garbage data never breaks the connection: every command answers with data
    let garbage: [Option<prost_types::Any>; 4] = [
        None,
        Some(prost_types::Any { type_url: String::new(), value: vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f] }),
        Some(prost_types::Any { type_url: String::new(), value: vec![0x0a, 0x03, b'{', b'}', b'x', 0x12, 0x01, b'['] }),
        Some(prost_types::Any { type_url: "type.googleapis.com/openiap.Nothing".into(), value: Vec::new() }),
    ];
    for command in [
        "addworkitemqueue",
        "updateworkitemqueue",
        "deleteworkitemqueue",
        "pushworkitem",
        "pushworkitems",
        "popworkitem",
        "updateworkitem",
        "deleteworkitem",
    ] {
        for data in &garbage {
            let id = c.send(wire::Envelope { command: command.into(), data: data.clone(), ..Default::default() }).await;
            let reply = c.reply_to(&id).await;
            assert!(reply.data.is_some(), "{command}: reply without data");
            // (a pushworkitems without items to a queue that does not exist is answered with no items)
            if reply.command == "error" {
                let e: wire::ErrorResponse = decode(&reply);
                assert!(!e.message.is_empty() && (400..500).contains(&e.code), "{command}: {e:?}");
            } else {
                assert_eq!(reply.command, "pushworkitemsreply", "{command} with {data:?}");
            }
        }
    }

    // the connection still works
    assert!(pop(&mut c, "strict").await.is_some());
}
