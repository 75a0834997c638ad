//! [`Caller`]: the resolved identity a request runs as, and every question a handler asks about it
//! (may it do this to this document, which store scope may it see, may it change this ACL).
//!
//! # Why a `Caller` cannot be forged
//!
//! Its fields are private and it implements neither `Default` nor `Deserialize`, so no other crate can
//! write a struct literal or decode one. The only ways to get one are
//! * [`Caller::resolve`]: from a user document and the role graph, after checking the document (a user,
//!   with an id and a username, not disabled, not root);
//! * [`Caller::impersonate`]: from an existing caller who may read and update the target user;
//! * [`Caller::system_root`]: the explicitly named system identity for bootstrap and housekeeping —
//!   grep for it to audit every unrestricted use.
//!
//! This guarantees that every `Caller` went through these checks, not that its inputs are authentic:
//! loading the user document for a verified token is the token layer's job (a later step).
//!
//! ```compile_fail
//! // Other crates cannot build a Caller by hand:
//! let forged = flowkeep_security::Caller { user_id: String::new() };
//! ```

use flowkeep_model::Rights;
use serde_json::Value;

use crate::acl::{allows, document_acl, may_change_acl, Ace, Creator};
use crate::error::SecurityError;
use crate::roles::{RoleGraph, RoleRef};
use crate::wellknown;

/// The real user behind an impersonated [`Caller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impostor {
    user_id: String,
    username: String,
}

impl Impostor {
    /// The impostor's user id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The impostor's username.
    pub fn username(&self) -> &str {
        &self.username
    }
}

/// Which documents a store operation may touch, as pure data for the store layer to turn into its own
/// scope type (this crate does not depend on the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeSpec {
    /// No ACL restriction (admins and root). Maps to the store's system scope.
    Unrestricted,
    /// Documents whose ACL grants `rights` to one of `principals` and denies none of those bits to any of
    /// them — exactly [`allows`].
    Principals {
        /// The user id followed by every effective role id.
        principals: Vec<String>,
        /// The rights bits the operation needs.
        rights: Rights,
    },
}

/// The identity a request runs as: user, effective roles, admin and root flags, optional impostor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    user_id: String,
    username: String,
    name: String,
    roles: Vec<RoleRef>,
    principals: Vec<String>,
    is_admin: bool,
    is_root: bool,
    is_guest: bool,
    roles_truncated: bool,
    impostor: Option<Impostor>,
}

impl Caller {
    /// Resolves a user document to a caller, with its effective roles from `graph`.
    ///
    /// Refused: a document that is not an object of `_type` `"user"` (any case), without a non-empty
    /// string `_id` or `username`; the root user ([`SecurityError::RootIsNotALogin`]: root is a system
    /// identity, see [`Caller::system_root`]); a disabled user. `disabled` counts as set unless it is
    /// absent, `null` or `false` — an odd value fails closed.
    ///
    /// Every user except the guest (id [`wellknown::GUEST`] or username `guest`) is implicitly in
    /// `users`. The caller is an admin when `admins` is among its effective roles.
    pub fn resolve(user_doc: &Value, graph: &RoleGraph) -> Result<Caller, SecurityError> {
        let Value::Object(doc) = user_doc else { return Err(SecurityError::InvalidUser("not an object".into())) };
        let is_user = doc.get("_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("user"));
        if !is_user {
            return Err(SecurityError::InvalidUser("_type is not user".into()));
        }
        let user_id = match doc.get("_id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(SecurityError::InvalidUser("_id must be a non-empty string".into())),
        };
        if user_id == wellknown::ROOT {
            return Err(SecurityError::RootIsNotALogin);
        }
        let username = match doc.get("username") {
            Some(Value::String(u)) if !u.is_empty() => u.clone(),
            _ => return Err(SecurityError::InvalidUser("username must be a non-empty string".into())),
        };
        if !matches!(doc.get("disabled"), None | Some(Value::Null) | Some(Value::Bool(false))) {
            return Err(SecurityError::UserDisabled(username));
        }
        let name = doc.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(&username).to_string();
        let is_guest = user_id == wellknown::GUEST || username.eq_ignore_ascii_case("guest");
        let effective = graph.effective_roles(&user_id, !is_guest);
        Ok(Caller::build(user_id, username, name, effective.roles, false, is_guest, effective.truncated, None))
    }

    /// The root system identity, for bootstrap and housekeeping only: unrestricted everywhere, not
    /// subject to the reserved-name guard. Never hand it to a request made for a user.
    pub fn system_root() -> Caller {
        let admins = RoleRef { id: wellknown::ADMINS.into(), name: "admins".into() };
        Caller::build(wellknown::ROOT.into(), "root".into(), "root".into(), vec![admins], true, false, false, None)
    }

    /// This caller impersonating the user `target_doc` (reference §3.5): the caller must be allowed to
    /// read **and** update the target's user document, and the target must resolve like any login (not
    /// disabled, not root). The result acts as the target and remembers the real user as its impostor
    /// (the original impostor if this caller is itself impersonating).
    pub fn impersonate(&self, target_doc: &Value, graph: &RoleGraph) -> Result<Caller, SecurityError> {
        self.authorize_document("users", target_doc, Rights::READ | Rights::UPDATE)
            .map_err(|e| SecurityError::AccessDenied(format!("cannot impersonate: {e}")))?;
        let mut target = Caller::resolve(target_doc, graph)?;
        let real = match &self.impostor {
            Some(original) => original.clone(),
            None => Impostor { user_id: self.user_id.clone(), username: self.username.clone() },
        };
        target.impostor = Some(real);
        Ok(target)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        user_id: String,
        username: String,
        name: String,
        roles: Vec<RoleRef>,
        is_root: bool,
        is_guest: bool,
        roles_truncated: bool,
        impostor: Option<Impostor>,
    ) -> Caller {
        let is_admin = is_root || roles.iter().any(|r| r.id == wellknown::ADMINS);
        let principals = std::iter::once(user_id.clone()).chain(roles.iter().map(|r| r.id.clone())).collect();
        Caller { user_id, username, name, roles, principals, is_admin, is_root, is_guest, roles_truncated, impostor }
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The username (login name).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The display name (the user's `name`, else its username).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The effective roles, sorted by name.
    pub fn roles(&self) -> &[RoleRef] {
        &self.roles
    }

    /// The user id followed by every effective role id: the principal set ACLs are checked against.
    pub fn principals(&self) -> &[String] {
        &self.principals
    }

    /// Member of `admins` (directly or through nested roles), or root.
    pub fn is_admin(&self) -> bool {
        self.is_admin
    }

    /// The root system identity ([`Caller::system_root`]).
    pub fn is_root(&self) -> bool {
        self.is_root
    }

    /// The guest user (no implicit `users` role).
    pub fn is_guest(&self) -> bool {
        self.is_guest
    }

    /// True if the role closure hit the depth limit (see
    /// [`EffectiveRoles::truncated`](crate::roles::EffectiveRoles::truncated)); worth a warning in the log.
    pub fn roles_truncated(&self) -> bool {
        self.roles_truncated
    }

    /// The real user when this caller is an impersonation.
    pub fn impostor(&self) -> Option<&Impostor> {
        self.impostor.as_ref()
    }

    /// Admins and root: no ACL restricts them.
    pub fn is_unrestricted(&self) -> bool {
        self.is_admin || self.is_root
    }

    /// May this caller use `right` on a document with this ACL? Admins and root always may; everyone else
    /// per [`allows`]. This is the bare ACL question; [`Caller::authorize_document`] adds the
    /// reserved-name guard and the self rule.
    pub fn can(&self, acl: &[Ace], right: Rights) -> bool {
        self.is_unrestricted() || allows(&self.principals, acl, right)
    }

    /// The store scope for an operation needing `right`: unrestricted for admins and root, otherwise this
    /// caller's principals with `right`. Evaluated by the store, it admits exactly the documents for
    /// which [`Caller::can`] is true.
    pub fn scope_for(&self, right: Rights) -> ScopeSpec {
        if self.is_unrestricted() {
            ScopeSpec::Unrestricted
        } else {
            ScopeSpec::Principals { principals: self.principals.clone(), rights: right }
        }
    }

    /// The scope of reads (query, count, distinct, aggregate and each `$lookup`).
    pub fn read_scope(&self) -> ScopeSpec {
        self.scope_for(Rights::READ)
    }

    /// May this caller use `right` on the stored document `doc` of `collection`? Checked in the order of
    /// the reference's `hasAuthorization` (§1.3 B):
    ///
    /// 1. root may do anything;
    /// 2. the reserved-name guard: a `user` or `role` document breaking it (see
    ///    [`wellknown::reserved_name_violation`]; for users the `username` is checked as well as the
    ///    `name`) is refused to everyone else, admins included;
    /// 3. the self rule: in `users`, a caller may do anything to its own `_type: "user"` document except
    ///    delete it ("cannot delete yourself" — admins included), whatever the ACL says;
    /// 4. admins may do anything else;
    /// 5. otherwise the document's ACL decides, per [`allows`] (deny wins). A missing or non-array ACL
    ///    grants nothing — the reference allows everything there; we fail closed, as the store does.
    pub fn authorize_document(&self, collection: &str, doc: &Value, right: Rights) -> Result<(), SecurityError> {
        if self.is_root {
            return Ok(());
        }
        if let Some(reason) = reserved_violation(doc) {
            return Err(SecurityError::ReservedName(reason));
        }
        if self.is_own_user_doc(collection, doc) {
            if right.intersects(Rights::DELETE) {
                return Err(SecurityError::AccessDenied("you cannot delete yourself".into()));
            }
            return Ok(());
        }
        if self.is_admin {
            return Ok(());
        }
        if allows(&self.principals, &document_acl(collection, doc), right) {
            Ok(())
        } else {
            Err(SecurityError::AccessDenied(format!("{} right needed on this document", rights_words(right))))
        }
    }

    /// [`Caller::authorize_document`] as a yes/no.
    pub fn can_on_document(&self, collection: &str, doc: &Value, right: Rights) -> bool {
        self.authorize_document(collection, doc, right).is_ok()
    }

    /// May this caller replace the ACL of the stored document `old_doc` with `new_acl`? Admins, root and a
    /// user changing its own user document may; everyone else needs [`may_change_acl`] (update on the old
    /// and the new ACL, and keeping its own read and update — refused rather than silently re-added).
    /// The separate question "may it update this document at all" is [`Caller::authorize_document`].
    pub fn authorize_acl_change(
        &self,
        collection: &str,
        old_doc: &Value,
        new_acl: &[Ace],
    ) -> Result<(), SecurityError> {
        if self.is_unrestricted() || self.is_own_user_doc(collection, old_doc) {
            return Ok(());
        }
        may_change_acl(&self.principals, &document_acl(collection, old_doc), new_acl)
    }

    /// This caller as the creator of a new document, for [`crate::acl::normalize_acl`].
    pub fn as_creator(&self) -> Creator<'_> {
        Creator {
            id: &self.user_id,
            name: &self.name,
            principals: &self.principals,
            unrestricted: self.is_unrestricted(),
        }
    }

    /// Whether `doc` (in `collection`) is this caller's own user document, to which the self rule applies
    /// (any right but delete, whatever its ACL says). The core asks this before it bypasses the ACL scope
    /// for that one document.
    pub fn is_own_user_doc(&self, collection: &str, doc: &Value) -> bool {
        collection == "users"
            && doc.get("_type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("user"))
            && doc.get("_id").and_then(Value::as_str) == Some(self.user_id.as_str())
    }
}

/// The reserved-name guard applied to a document: `name`, and for users also `username` (a second
/// "root" login is as misleading as a second "root" display name; the reference checks `name` only).
fn reserved_violation(doc: &Value) -> Option<String> {
    let doc_type = doc.get("_type").and_then(Value::as_str).unwrap_or_default();
    let id = doc.get("_id").and_then(Value::as_str).unwrap_or_default();
    let name = doc.get("name").and_then(Value::as_str).unwrap_or_default();
    wellknown::reserved_name_violation(doc_type, id, name).or_else(|| {
        let username = doc.get("username").and_then(Value::as_str)?;
        if doc_type.eq_ignore_ascii_case("user") {
            wellknown::reserved_name_violation(doc_type, id, username)
        } else {
            None
        }
    })
}

/// "read", "read+update", … for error messages.
fn rights_words(right: Rights) -> String {
    const WORDS: [(Rights, &str); 5] = [
        (Rights::CREATE, "create"),
        (Rights::READ, "read"),
        (Rights::UPDATE, "update"),
        (Rights::DELETE, "delete"),
        (Rights::INVOKE, "invoke"),
    ];
    if right == Rights::FULL_CONTROL {
        return "full control".into();
    }
    let words: Vec<&str> = WORDS.iter().filter(|(r, _)| right.contains(*r)).map(|(_, w)| *w).collect();
    if words.is_empty() {
        format!("rights {}", right.0)
    } else {
        words.join("+")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::acl::acl_to_value;
    use serde_json::json;

    fn user(id: &str, username: &str) -> Value {
        json!({"_id": id, "_type": "user", "username": username, "name": username})
    }

    fn role(id: &str, name: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members.iter().map(|m| json!({"_id": m})).collect();
        json!({"_id": id, "_type": "role", "name": name, "members": members})
    }

    fn graph() -> RoleGraph {
        RoleGraph::from_role_docs(&[
            role("r-team", "team", &["alice"]),
            role("r-ops", "ops", &["r-team", "carol"]),
            role(wellknown::ADMINS, "admins", &["r-ops", "root"]),
            role("r-readers", "readers", &["bob"]),
        ])
    }

    fn doc(acl: &[Ace]) -> Value {
        json!({"_id": "d1", "_type": "thing", "name": "x", "_acl": acl_to_value(acl)})
    }

    #[test]
    fn resolve_validates_the_user_document() {
        let g = graph();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        assert_eq!(bob.principals(), ["bob", "r-readers", wellknown::USERS]);
        assert!(!bob.is_admin() && !bob.is_root() && !bob.is_guest());
        assert_eq!(bob.roles().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["readers", "users"]);

        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        assert!(alice.is_admin(), "admins through team → ops → admins");
        assert!(!alice.is_root());

        let guest = Caller::resolve(&user(wellknown::GUEST, "guest"), &g).unwrap();
        assert!(guest.is_guest());
        assert_eq!(guest.principals(), [wellknown::GUEST]);

        let bad: Vec<(Value, &str)> = vec![
            (json!("bob"), "invalid"),
            (json!({"_id": "bob", "username": "bob"}), "invalid"),
            (json!({"_id": "bob", "_type": "role", "username": "bob"}), "invalid"),
            (json!({"_id": "", "_type": "user", "username": "bob"}), "invalid"),
            (json!({"_id": 5, "_type": "user", "username": "bob"}), "invalid"),
            (json!({"_id": "bob", "_type": "user"}), "invalid"),
            (json!({"_id": "bob", "_type": "user", "username": ""}), "invalid"),
            (json!({"_id": "bob", "_type": "user", "username": "bob", "disabled": true}), "disabled"),
            (json!({"_id": "bob", "_type": "user", "username": "bob", "disabled": "yes"}), "disabled"),
            (json!({"_id": "bob", "_type": "user", "username": "bob", "disabled": 1}), "disabled"),
            (user(wellknown::ROOT, "root"), "root"),
        ];
        for (d, kind) in bad {
            let got = Caller::resolve(&d, &g);
            let ok = match kind {
                "invalid" => matches!(got, Err(SecurityError::InvalidUser(_))),
                "disabled" => matches!(got, Err(SecurityError::UserDisabled(_))),
                _ => got == Err(SecurityError::RootIsNotALogin),
            };
            assert!(ok, "{d}: {got:?}");
        }
        let enabled = json!({"_id": "bob", "_type": "User", "username": "bob", "disabled": false});
        assert!(Caller::resolve(&enabled, &g).is_ok());
    }

    #[test]
    fn system_root_is_unrestricted() {
        let root = Caller::system_root();
        assert!(root.is_root() && root.is_admin() && root.is_unrestricted());
        assert_eq!(root.user_id(), wellknown::ROOT);
        assert_eq!(root.read_scope(), ScopeSpec::Unrestricted);
        // root even passes the reserved-name guard and may delete "itself"
        let fake_admins = json!({"_id": "x", "_type": "role", "name": "admins"});
        assert!(root.can_on_document("users", &fake_admins, Rights::UPDATE));
        assert!(root.can_on_document("users", &user(wellknown::ROOT, "root"), Rights::DELETE));
    }

    #[test]
    fn scopes() {
        let g = graph();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        assert_eq!(
            bob.read_scope(),
            ScopeSpec::Principals {
                principals: vec!["bob".into(), "r-readers".into(), wellknown::USERS.into()],
                rights: Rights::READ
            }
        );
        assert_eq!(
            bob.scope_for(Rights::DELETE),
            ScopeSpec::Principals { principals: bob.principals().to_vec(), rights: Rights::DELETE }
        );
        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        assert_eq!(alice.scope_for(Rights::DELETE), ScopeSpec::Unrestricted);
    }

    #[test]
    fn can_and_documents() {
        let g = graph();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        let readable = [Ace::allow("r-readers", "readers", Rights::READ)];
        let denied =
            [Ace::allow("r-readers", "readers", Rights::READ), Ace::deny(wellknown::USERS, "users", Rights::READ)];
        // (caller, doc, right, expected)
        let cases = [
            (&bob, doc(&readable), Rights::READ, true),
            (&bob, doc(&readable), Rights::UPDATE, false),
            (&bob, doc(&denied), Rights::READ, false),
            (&alice, doc(&denied), Rights::READ, true), // admins are unrestricted, as in their scope
            (&alice, doc(&[]), Rights::DELETE, true),
            (&bob, json!({"_id": "d", "_type": "x"}), Rights::READ, false), // no ACL: fail closed
            (&bob, json!({"_id": "d", "_acl": "junk"}), Rights::READ, false),
        ];
        for (i, (caller, d, right, expected)) in cases.iter().enumerate() {
            assert_eq!(caller.can_on_document("entities", d, *right), *expected, "case {i}");
            let acl = document_acl("entities", d);
            assert_eq!(caller.can(&acl, *right), *expected, "can, case {i}");
        }
        // files keep their ACL in metadata._acl
        let file = json!({"_id": "f", "metadata": {"_acl": acl_to_value(&readable)}});
        assert!(bob.can_on_document("fs.files", &file, Rights::READ));
        assert!(!bob.can_on_document("entities", &file, Rights::READ));
    }

    #[test]
    fn self_rule() {
        let g = graph();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        let own = json!({"_id": "bob", "_type": "user", "username": "bob", "name": "Bob", "_acl": []});
        assert!(bob.can_on_document("users", &own, Rights::READ));
        assert!(bob.can_on_document("users", &own, Rights::UPDATE));
        assert_eq!(
            bob.authorize_document("users", &own, Rights::DELETE),
            Err(SecurityError::AccessDenied("you cannot delete yourself".into()))
        );
        // only the own user document in `users`
        assert!(!bob.can_on_document("entities", &own, Rights::READ));
        let own_role_id = json!({"_id": "bob", "_type": "role", "name": "b", "_acl": []});
        assert!(!bob.can_on_document("users", &own_role_id, Rights::READ));
        // admins cannot delete themselves either, but may delete others
        let alice_doc = user("alice", "alice");
        assert!(!alice.can_on_document("users", &alice_doc, Rights::DELETE));
        assert!(alice.can_on_document("users", &own, Rights::DELETE));
    }

    #[test]
    fn reserved_name_guard_applies_to_admins() {
        let g = graph();
        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        let acl = acl_to_value(&[Ace::allow(wellknown::ADMINS, "admins", Rights::FULL_CONTROL)]);
        let fake_admins = json!({"_id": "r9", "_type": "role", "name": "Admins", "_acl": acl});
        assert!(matches!(
            alice.authorize_document("users", &fake_admins, Rights::READ),
            Err(SecurityError::ReservedName(_))
        ));
        let renamed = json!({"_id": wellknown::ADMINS, "_type": "role", "name": "superusers", "_acl": acl});
        assert!(!alice.can_on_document("users", &renamed, Rights::UPDATE));
        let real = json!({"_id": wellknown::ADMINS, "_type": "role", "name": "admins", "_acl": acl});
        assert!(alice.can_on_document("users", &real, Rights::UPDATE));
        let fake_root_login = json!({"_id": "u7", "_type": "user", "name": "Robert", "username": "root", "_acl": acl});
        assert!(!alice.can_on_document("users", &fake_root_login, Rights::READ));
    }

    #[test]
    fn acl_change_rules() {
        let g = graph();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        let rw = Rights::READ | Rights::UPDATE;
        let old = doc(&[Ace::allow("bob", "bob", rw)]);
        let keeps = [Ace::allow("r-readers", "", rw), Ace::allow("carol", "", Rights::READ)];
        assert_eq!(bob.authorize_acl_change("entities", &old, &keeps), Ok(()));
        let loses = [Ace::allow("carol", "", Rights::FULL_CONTROL)];
        assert_eq!(bob.authorize_acl_change("entities", &old, &loses), Err(SecurityError::SelfLockout("update")));
        let read_only = doc(&[Ace::allow("bob", "bob", Rights::READ)]);
        assert!(matches!(
            bob.authorize_acl_change("entities", &read_only, &keeps),
            Err(SecurityError::AccessDenied(_))
        ));
        assert_eq!(alice.authorize_acl_change("entities", &read_only, &loses), Ok(()));
        let own = json!({"_id": "bob", "_type": "user", "username": "bob", "_acl": []});
        assert_eq!(bob.authorize_acl_change("users", &own, &loses), Ok(()), "self rule");
    }

    #[test]
    fn impersonation() {
        let g = graph();
        let alice = Caller::resolve(&user("alice", "alice"), &g).unwrap();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        let carol_doc = json!({"_id": "carol", "_type": "user", "username": "carol",
            "_acl": acl_to_value(&[Ace::allow("bob", "bob", Rights::READ)])});
        let as_carol = alice.impersonate(&carol_doc, &g).unwrap();
        assert_eq!(as_carol.user_id(), "carol");
        assert!(as_carol.is_admin(), "carol is in ops → admins");
        assert_eq!(as_carol.impostor().map(Impostor::user_id), Some("alice"));
        // bob can read carol but not update: refused
        assert!(matches!(bob.impersonate(&carol_doc, &g), Err(SecurityError::AccessDenied(_))));
        // chained impersonation keeps the real user
        let dave_doc = json!({"_id": "dave", "_type": "user", "username": "dave",
            "_acl": acl_to_value(&[Ace::allow("carol", "", Rights::READ | Rights::UPDATE)])});
        let as_dave = as_carol.impersonate(&dave_doc, &g).unwrap();
        assert_eq!(as_dave.impostor().map(Impostor::username), Some("alice"));
        // root cannot be impersonated; disabled users neither
        assert_eq!(alice.impersonate(&user(wellknown::ROOT, "root"), &g), Err(SecurityError::RootIsNotALogin));
        let disabled = json!({"_id": "eve", "_type": "user", "username": "eve", "disabled": true});
        assert!(matches!(alice.impersonate(&disabled, &g), Err(SecurityError::UserDisabled(_))));
    }

    #[test]
    fn creator_and_words() {
        let g = graph();
        let bob = Caller::resolve(&user("bob", "bob"), &g).unwrap();
        let c = bob.as_creator();
        assert_eq!((c.id, c.name, c.unrestricted), ("bob", "bob", false));
        assert_eq!(rights_words(Rights::READ | Rights::UPDATE), "read+update");
        assert_eq!(rights_words(Rights::FULL_CONTROL), "full control");
        assert_eq!(rights_words(Rights(1 << 10)), "rights 1024");
    }
}
