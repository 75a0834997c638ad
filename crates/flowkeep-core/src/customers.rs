//! Customers: `_type: customer` documents in `users`, found or created by `ensurecustomer`; and `explain`
//! of a query.
//!
//! `ensurecustomer` looks the customer up with the caller's read scope, by `_id` and then by `name`, so it
//! finds only customers the caller may read. If there is none, only admins may create one
//! (`flowkeep_security::policy::authorize_customer_create`): the new document goes through the normal
//! insert path, so the `users` rules, ACL normalisation, history and audit apply as to any principal.
//! Unlike the reference we create no `<name> admins`/`<name> users` roles and set no `customerid` on the
//! creator: multi-tenancy is not implemented yet.

use crate::documents::{acl_error, USERS};
use crate::error::{CoreError, Result};
use crate::platform::Platform;
use crate::scope::store_scope;
use flowkeep_model::Rights;
use flowkeep_security::acl::acl_to_value;
use flowkeep_security::{parse_acl, policy, Ace, Caller};
use serde_json::{json, Map, Value};

/// The `_type` of customer documents.
pub const CUSTOMER_TYPE: &str = "customer";

/// A non-empty string field of a request (`None` when absent, `null` or empty).
fn optional_text(map: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(CoreError::InvalidRequest(format!("{field}: must be a string"))),
    }
}

impl Platform {
    /// Finds the customer by `_id` or else `name`, or creates it, and returns it as the caller sees it.
    /// `ensure_as`: create it on behalf of this user id (the user then administers it).
    pub async fn ensure_customer(&self, caller: &Caller, customer: Value, ensure_as: Option<&str>) -> Result<Value> {
        let Value::Object(mut map) = customer else {
            return Err(CoreError::InvalidRequest("customer: must be a JSON object".into()));
        };
        let id = optional_text(&map, "_id")?;
        let name = optional_text(&map, "name")?;
        if id.is_none() && name.is_none() {
            return Err(CoreError::InvalidRequest("customer: an _id or a name is required".into()));
        }
        let read = store_scope(caller, Rights::READ);
        let lookups = [id.as_ref().map(|id| json!({"_id": id})), name.as_ref().map(|n| json!({"name": n}))];
        for by in lookups.into_iter().flatten() {
            let filter = json!({"$and": [by, {"_type": CUSTOMER_TYPE}]});
            if let Some(found) = self.store.find_one(USERS, &read, &filter, None).await? {
                return self.client_view(USERS, found);
            }
        }

        // Asked before anything else is looked at, so a refused caller learns nothing more.
        policy::authorize_customer_create(caller)?;
        let Some(name) = name else {
            return Err(CoreError::InvalidRequest("customer: a name is required to create a customer".into()));
        };
        map.insert("_type".into(), Value::String(CUSTOMER_TYPE.into()));
        map.insert("name".into(), Value::String(name));
        if let Some(target_id) = ensure_as.filter(|t| !t.is_empty()) {
            let target = self
                .store
                .find_one(USERS, &read, &json!({"_id": target_id}), None)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("ensureas: user '{target_id}' not found")))?;
            policy::authorize_ensure_as(caller, &target)?;
            let target_name = target
                .get("name")
                .or_else(|| target.get("username"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let mut acl = match map.remove("_acl") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => parse_acl(&v).map_err(acl_error)?,
            };
            acl.push(Ace::allow(target_id, target_name, Rights::FULL_CONTROL));
            map.insert("_acl".into(), acl_to_value(&acl));
        }
        self.insert_one(caller, USERS, Value::Object(map)).await
    }

    /// How `find` would run for `request` (pushdown, plan), as the caller.
    pub async fn explain_query(
        &self,
        caller: &Caller,
        collection: &str,
        request: &crate::documents::QueryRequest,
    ) -> Result<Value> {
        let Some(find) = self.prepare_find(caller, collection, request).await? else {
            // The query would return nothing without reaching the store.
            return Ok(json!({"backend": self.store.backend(), "runs": false, "reason": "guests never read audit"}));
        };
        Ok(self.store.explain_find(collection, &find.scope, &find.filter, &find.options).await?)
    }
}
