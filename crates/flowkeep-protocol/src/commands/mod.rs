//! Command dispatch: maps a request envelope to its family's handler, after the checks every command
//! shares (known command, offered by this server, caller resolved).
//!
//! * [`session`]: `signin`, `getelement`, token refresh.
//! * [`documents`]: `query`, `count`, `distinct`, `aggregate`, the inserts, updates and deletes,
//!   `getdocumentversion`.
//! * [`collections`]: `listcollections`, `createcollection`, `dropcollection`, the index commands.
//! * [`files`]: `upload` with its stream envelopes, `download`.
//! * [`watch`]: `watch`, `unwatch` and the delivery of change events.
//! * [`custom`]: `customcommand` (`getclients`) and `ensurecustomer`.
//! * [`queues`]: `registerqueue`, `registerexchange`, `unregisterqueue`, `queuemessage` and the delivery
//!   of `queueevent`s.
//! * [`workitems`]: the workitem queue commands and `pushworkitem(s)`, `popworkitem`, `updateworkitem`,
//!   `deleteworkitem`.
//!
//! Workflow and agent (container) commands are known but refused with a clear "not available" error, not
//! "unknown command".

pub(crate) mod collections;
pub(crate) mod custom;
pub(crate) mod documents;
pub(crate) mod files;
pub(crate) mod queues;
pub(crate) mod session;
pub(crate) mod watch;
pub(crate) mod workitems;

use crate::codec::{ProtocolError, Result};
use crate::connection::{Connection, Reply};
use crate::wire;

/// Workflow commands, which this server does not offer (yet).
const WORKFLOWS: &[&str] = &["createworkflowinstance"];

/// Agent (container) commands, which this server does not offer.
const AGENTS: &[&str] =
    &["startagent", "stopagent", "deleteagent", "deleteagentpod", "getagentpods", "getagentlog", "deletepackage"];

/// Commands that run as a caller.
const WITH_CALLER: &[&str] = &[
    "query",
    "count",
    "distinct",
    "aggregate",
    "insertone",
    "insertmany",
    "updateone",
    "updatedocument",
    "insertorupdateone",
    "insertorupdatemany",
    "deleteone",
    "deletemany",
    "getdocumentversion",
    "listcollections",
    "createcollection",
    "dropcollection",
    "createindex",
    "getindexes",
    "dropindex",
    "customcommand",
    "ensurecustomer",
    "watch",
    "unwatch",
    "upload",
    "download",
    "registerqueue",
    "registerexchange",
    "unregisterqueue",
    "queuemessage",
    "addworkitemqueue",
    "updateworkitemqueue",
    "deleteworkitemqueue",
    "pushworkitem",
    "pushworkitems",
    "popworkitem",
    "updateworkitem",
    "deleteworkitem",
];

/// Runs one request; `Ok(None)` when the reply comes later (an upload answers at its `endstream`) or
/// was already sent.
pub(crate) async fn dispatch(conn: &mut Connection, envelope: wire::Envelope) -> Result<Option<Reply>> {
    let command = envelope.command.as_str();
    match command {
        "signin" => return session::signin(conn, &envelope).await.map(Some),
        "getelement" => return Ok(Some(session::getelement(conn, &envelope))),
        c if WORKFLOWS.contains(&c) => {
            return Err(ProtocolError::NotAvailable(format!("{c}: workflows are not available on this server yet")))
        }
        c if AGENTS.contains(&c) => {
            return Err(ProtocolError::NotAvailable(format!("{c}: agents are not available on this server")))
        }
        "invokeopenrpa" => {
            return Err(ProtocolError::NotAvailable(
                "invokeopenrpa: Not implemented (clients invoke robots with registerqueue and queuemessage)".into(),
            ))
        }
        "" => return Err(ProtocolError::UnknownCommand("(empty)".into())),
        c if !WITH_CALLER.contains(&c) => return Err(ProtocolError::UnknownCommand(c.to_owned())),
        _ => {}
    }
    let caller = conn.caller(&envelope.jwt).await?;
    let reply = match command {
        "query" => documents::query(conn, &caller, &envelope).await?,
        "count" => documents::count(conn, &caller, &envelope).await?,
        "distinct" => documents::distinct(conn, &caller, &envelope).await?,
        "aggregate" => documents::aggregate(conn, &caller, &envelope).await?,
        "insertone" => documents::insert_one(conn, &caller, &envelope).await?,
        "insertmany" => documents::insert_many(conn, &caller, &envelope).await?,
        "updateone" => documents::update_one(conn, &caller, &envelope).await?,
        "updatedocument" => documents::update_document(conn, &caller, &envelope).await?,
        "insertorupdateone" => documents::insert_or_update_one(conn, &caller, &envelope).await?,
        "insertorupdatemany" => documents::insert_or_update_many(conn, &caller, &envelope).await?,
        "deleteone" => documents::delete_one(conn, &caller, &envelope).await?,
        "deletemany" => documents::delete_many(conn, &caller, &envelope).await?,
        "getdocumentversion" => documents::get_document_version(conn, &caller, &envelope).await?,
        "listcollections" => collections::list(conn, &caller, &envelope).await?,
        "createcollection" => collections::create(conn, &caller, &envelope).await?,
        "dropcollection" => collections::drop(conn, &caller, &envelope).await?,
        "createindex" => collections::create_index(conn, &caller, &envelope).await?,
        "getindexes" => collections::get_indexes(conn, &caller, &envelope).await?,
        "dropindex" => collections::drop_index(conn, &caller, &envelope).await?,
        "customcommand" => custom::custom_command(conn, &caller, &envelope).await?,
        "ensurecustomer" => custom::ensure_customer(conn, &caller, &envelope).await?,
        "watch" => watch::watch(conn, caller, &envelope).await?,
        "unwatch" => watch::unwatch(conn, &envelope)?,
        "upload" => return files::upload(conn, caller, &envelope).map(|()| None),
        "download" => files::download(conn, &caller, &envelope).await?,
        "registerqueue" => queues::register_queue(conn, &caller, &envelope).await?,
        "registerexchange" => queues::register_exchange(conn, &caller, &envelope).await?,
        "unregisterqueue" => queues::unregister_queue(conn, &envelope)?,
        "queuemessage" => queues::queue_message(conn, &caller, &envelope).await?,
        "addworkitemqueue" => workitems::add_queue(conn, &caller, &envelope).await?,
        "updateworkitemqueue" => workitems::update_queue(conn, &caller, &envelope).await?,
        "deleteworkitemqueue" => workitems::delete_queue(conn, &caller, &envelope).await?,
        "pushworkitem" => workitems::push(conn, &caller, &envelope).await?,
        "pushworkitems" => workitems::push_many(conn, &caller, &envelope).await?,
        "popworkitem" => workitems::pop(conn, &caller, &envelope).await?,
        "updateworkitem" => workitems::update(conn, &caller, &envelope).await?,
        "deleteworkitem" => workitems::delete(conn, &caller, &envelope).await?,
        other => return Err(ProtocolError::UnknownCommand(other.to_owned())),
    };
    Ok(Some(reply))
}

/// The reply command of a request: `<command>reply`.
pub(crate) fn reply_command(envelope: &wire::Envelope) -> String {
    format!("{}reply", envelope.command)
}

/// A collection name with OpenIAP's alias: `files` means `fs.files`.
pub(crate) fn alias(name: &str) -> String {
    match name.trim() {
        "files" => "fs.files".to_owned(),
        other => other.to_owned(),
    }
}

/// The collection of a document command: the alias applied, empty means `entities` (as the official
/// client defaults).
pub(crate) fn document_collection(name: &str) -> String {
    match alias(name) {
        n if n.is_empty() => "entities".to_owned(),
        n => n,
    }
}

/// The collection of a collection or index command: required, alias applied.
pub(crate) fn required_collection(name: &str) -> Result<String> {
    match alias(name) {
        n if n.is_empty() => Err(ProtocolError::field("collectionname", "is required")),
        n => Ok(n),
    }
}
