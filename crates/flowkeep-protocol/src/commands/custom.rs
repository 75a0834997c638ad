//! `customcommand` (only `getclients` so far) and `ensurecustomer`.
//!
//! `getclients` answers a JSON array of the live connections the caller may see (the rule is the
//! security crate's: admins see every connection, others their own user's), each
//! `{id, userid, username, name, agent, version, transport, remote, connected, watches}`. Any other custom
//! command is refused naming it.

use crate::codec::{decode, to_json, ProtocolError, Result};
use crate::commands::reply_command;
use crate::connection::{Connection, Reply};
use crate::wire;
use flowkeep_core::Caller;
use flowkeep_security::policy;
use serde_json::{Map, Value};

/// `customcommand`.
pub(crate) async fn custom_command(conn: &mut Connection, caller: &Caller, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::CustomCommandRequest = decode(envelope)?;
    let command = request.command.trim().to_ascii_lowercase();
    let result = match command.as_str() {
        "getclients" => {
            let visible: Vec<Value> = conn
                .hub
                .registry
                .snapshot()
                .into_iter()
                .filter(|entry| policy::may_see_client(caller, entry.user_id.as_deref().unwrap_or_default()))
                .map(|entry| entry.to_json())
                .collect();
            to_json(&Value::Array(visible))
        }
        "" => return Err(ProtocolError::field("command", "is required")),
        other => return Err(ProtocolError::field("command", format!("unknown custom command '{other}'"))),
    };
    Ok(Reply::new(&reply_command(envelope), &wire::CustomCommandResponse { result }))
}

/// The JSON form of a wire `Customer` (`id` → `_id`; empty fields left out).
fn customer_json(c: &wire::Customer) -> Value {
    let mut map = Map::new();
    let mut text = |key: &str, value: &str| {
        if !value.is_empty() {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    };
    text("_id", &c.id);
    text("_type", &c.r#type);
    text("stripeid", &c.stripeid);
    text("userid", &c.userid);
    text("name", &c.name);
    text("country", &c.country);
    text("email", &c.email);
    text("address", &c.address);
    text("vattype", &c.vattype);
    text("vatnumber", &c.vatnumber);
    text("taxrate", &c.taxrate);
    text("coupon", &c.coupon);
    text("memory", &c.memory);
    text("openflowuserplan", &c.openflowuserplan);
    text("supportplan", &c.supportplan);
    text("supporthourplan", &c.supporthourplan);
    text("subscriptionid", &c.subscriptionid);
    text("admins", &c.admins);
    text("users", &c.users);
    text("customattr1", &c.customattr1);
    text("customattr2", &c.customattr2);
    text("customattr3", &c.customattr3);
    text("customattr4", &c.customattr4);
    text("customattr5", &c.customattr5);
    if c.tax != 0 {
        map.insert("tax".into(), c.tax.into());
    }
    if c.hascard {
        map.insert("hascard".into(), true.into());
    }
    if !c.domains.is_empty() {
        map.insert("domains".into(), c.domains.clone().into());
    }
    if c.dbusage != 0 {
        map.insert("dbusage".into(), c.dbusage.into());
    }
    if c.dblocked {
        map.insert("dblocked".into(), true.into());
    }
    Value::Object(map)
}

/// The wire `Customer` of a customer document.
fn wire_customer(doc: &Value) -> wire::Customer {
    let text = |key: &str| doc.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let int = |key: &str| doc.get(key).and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok()).unwrap_or(0);
    let flag = |key: &str| doc.get(key).and_then(Value::as_bool).unwrap_or(false);
    wire::Customer {
        id: text("_id"),
        r#type: text("_type"),
        stripeid: text("stripeid"),
        userid: text("userid"),
        name: text("name"),
        country: text("country"),
        email: text("email"),
        address: text("address"),
        vattype: text("vattype"),
        vatnumber: text("vatnumber"),
        taxrate: text("taxrate"),
        tax: int("tax"),
        coupon: text("coupon"),
        hascard: flag("hascard"),
        memory: text("memory"),
        openflowuserplan: text("openflowuserplan"),
        supportplan: text("supportplan"),
        supporthourplan: text("supporthourplan"),
        subscriptionid: text("subscriptionid"),
        admins: text("admins"),
        users: text("users"),
        customattr1: text("customattr1"),
        customattr2: text("customattr2"),
        customattr3: text("customattr3"),
        customattr4: text("customattr4"),
        customattr5: text("customattr5"),
        domains: doc
            .get("domains")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        dbusage: int("dbusage"),
        dblocked: flag("dblocked"),
    }
}

/// `ensurecustomer`: `stripe` is ignored (no billing integration).
pub(crate) async fn ensure_customer(
    conn: &mut Connection,
    caller: &Caller,
    envelope: &wire::Envelope,
) -> Result<Reply> {
    let request: wire::EnsureCustomerRequest = decode(envelope)?;
    let Some(customer) = &request.customer else {
        return Err(ProtocolError::field("customer", "is required"));
    };
    if customer.id.trim().is_empty() && customer.name.trim().is_empty() {
        return Err(ProtocolError::field("customer", "needs an _id or a name"));
    }
    let ensure_as = Some(request.ensureas.trim()).filter(|s| !s.is_empty());
    let doc = conn.hub.platform.ensure_customer(caller, customer_json(customer), ensure_as).await?;
    let response = wire::EnsureCustomerResponse { customer: Some(wire_customer(&doc)), stripe: None };
    Ok(Reply::new(&reply_command(envelope), &response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_round_trip() {
        let c = wire::Customer {
            id: "c1".into(),
            name: "Acme".into(),
            domains: vec!["acme.test".into()],
            tax: 21,
            ..Default::default()
        };
        let json = customer_json(&c);
        assert_eq!(json["_id"], "c1");
        assert!(json.get("email").is_none());
        assert_eq!(wire_customer(&json), c);
    }
}
