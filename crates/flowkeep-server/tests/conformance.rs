//! Conformance: the published `openiap-client` 0.0.41 drives a Flowkeep server over both of its
//! transports, gRPC (`SetupStream`) and WebSocket (`/ws/v2`). Every check runs once per transport, as
//! `grpc::<check>` and `ws::<check>`. One server serves the whole file and each check works in collections
//! and with users of its own; only the lifecycle check starts (and restarts) a server of its own.
//!
//! `CONFORMANCE_LOG=<filter>` (e.g. `flowkeep_protocol=debug,openiap=debug`) prints server and client
//! logs to the console.

#[path = "conformance/collections.rs"]
mod collections;
#[path = "conformance/documents.rs"]
mod documents;
#[path = "conformance/files.rs"]
mod files;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/isolation.rs"]
mod isolation;
#[path = "conformance/lifecycle.rs"]
mod lifecycle;
#[path = "conformance/misc.rs"]
mod misc;
#[path = "conformance/signin.rs"]
mod signin;
#[path = "conformance/watch.rs"]
mod watch;

/// Generates one `#[tokio::test]` per check in a module per transport.
macro_rules! over_both_transports {
    ($($module:ident :: $check:ident),* $(,)?) => {
        mod grpc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    crate::$module::$check(crate::harness::Transport::Grpc).await;
                }
            )*
        }
        mod ws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    crate::$module::$check(crate::harness::Transport::Ws).await;
                }
            )*
        }
    };
}

over_both_transports!(
    signin::signin_with_password,
    signin::signin_with_jwt,
    signin::bad_login_is_refused,
    documents::query_count_distinct_aggregate,
    documents::query_conventions,
    documents::insert_update_delete,
    documents::insert_or_update,
    documents::document_versions,
    documents::concurrent_requests,
    documents::large_messages,
    collections::create_list_drop_collections,
    collections::list_collections_conventions,
    collections::create_get_drop_indexes,
    misc::getclients,
    misc::ensure_customer,
    misc::readme_example,
    watch::watch_events_and_unwatch,
    watch::watch_respects_read_access,
    watch::watch_paths_filter,
    files::upload_download_round_trip,
    isolation::second_user_cannot_see_or_change,
    isolation::secrets_and_reserved_collections,
    lifecycle::restart_and_reconnect,
);
