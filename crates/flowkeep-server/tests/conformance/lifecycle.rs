//! Server lifecycle as a client sees it: with clients connected, the server stops promptly (connections
//! end by themselves, well within the drain timeout), and after a restart on the same ports and data the
//! client reconnects and signs in again by itself, and finds its data.

use crate::harness::*;
use openiap_client::{Client, InsertOneRequest, QueryRequest};
use serde_json::json;
use std::time::{Duration, Instant};

/// Less than the server's drain timeout (10 s): connections must end by themselves, not be cut.
const STOPS_WITHIN: Duration = Duration::from_secs(8);
/// The client's reconnect back-off starts at 1 s and grows by 0.5 s per attempt.
const RECONNECTS_WITHIN: Duration = Duration::from_secs(20);

pub async fn restart_and_reconnect(t: Transport) {
    let dir = tempfile::tempdir().expect("data folder");
    let first = ServerThread::start(dir.path(), 0, 0);
    let (http_port, grpc_port) = (first.http_port, first.grpc_port);
    let url = first.url(t, Some((ADMIN, ADMIN_PASSWORD)));
    // Automatic reconnects stay on (the client's default), unlike the other tests.
    let client = Client::new();
    client.set_default_timeout(REQUEST_TIMEOUT);
    ok(client.connect_async(&url).await, t, "connect");
    let item = json!({"name": "survives a restart"}).to_string();
    let request = InsertOneRequest { collectionname: "restart".into(), item, ..Default::default() };
    ok(client.insert_one(request, env()).await, t, "insertone");
    // A guest connection too: it is not signed in and must not hold the shutdown up either.
    let guest = connect_url(&first.url(t, None)).await.unwrap_or_else(|e| panic!("{t:?}: guest connect: {e}"));

    let began = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || first.stop(Duration::from_secs(30))).await.expect("join");
    let took = began.elapsed();
    let outcome = stopped.unwrap_or_else(|e| panic!("{t:?}: {e}"));
    assert!(outcome.starts_with("Ok"), "{t:?}: stop failed: {outcome}");
    assert!(took < STOPS_WITHIN, "{t:?}: stopping with clients connected took {took:?}");
    eprintln!("{t:?}: stopped with two clients connected in {took:?}");
    guest.disconnect();

    let second = ServerThread::start(dir.path(), http_port, grpc_port);
    let restarted = Instant::now();
    let deadline = restarted + RECONNECTS_WITHIN;
    let request = QueryRequest::with_query("restart", "{}");
    let docs = loop {
        match client.query(request.clone(), env()).await {
            Ok(reply) => break parse_array(&reply.results, "queryreply results"),
            Err(e) => {
                assert!(Instant::now() < deadline, "{t:?}: no reconnect within {RECONNECTS_WITHIN:?}: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert_eq!(column(&docs, "name"), [json!("survives a restart")], "signed in again, data kept: {docs:?}");
    eprintln!("{t:?}: reconnected {:?} after the restart", restarted.elapsed());
    assert_eq!(client.get_user().map(|u| u.username), Some(ADMIN.to_string()));
    client.disconnect();
    let outcome = tokio::task::spawn_blocking(move || second.stop(Duration::from_secs(30))).await.expect("join");
    assert!(outcome.is_ok_and(|o| o.starts_with("Ok")), "{t:?}: the second stop");
}
