//! Scopes: which documents an operation may see or touch.
//!
//! The security layer builds a [`Scope`] from the caller (user id plus resolved role ids, and the right
//! the operation needs); the store only evaluates it. Every read and every filtered write takes one.
//! The one unscoped value is [`Scope::system()`]: grep for it to audit every use.

use flowkeep_model::Rights;
use serde_json::Value;

/// Which documents an operation may see or touch.
///
/// [`Scope::Acl`]: a document is in scope iff its ACL has
/// * an entry with `deny != true`, `_id` among `principals` and `rights & mask == mask`, and
/// * no entry with `deny == true`, `_id` among `principals` and `rights & mask != 0`,
///
/// where `mask` is `rights`. The ACL is the array `_acl` of the document, except in GridFS-style file
/// collections (name ending in `.files`) where it is `metadata._acl`. An entry whose `rights` is not an
/// integer counts as rights 0; an `_acl` that is not an array has no entries (so only [`Scope::System`]
/// sees such a document). With an empty mask every allowing entry of a listed principal suffices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every document, no ACL check. Construct it only with [`Scope::system()`] (outside this crate the
    /// variant cannot be built directly, so every unscoped operation names that constructor).
    #[non_exhaustive]
    System,
    /// Documents whose ACL grants `rights` to one of `principals` (user id and role ids) and denies none
    /// of those bits to any of them.
    Acl {
        /// The principal ids (user and every role it holds, transitively).
        principals: Vec<String>,
        /// The rights bits the operation needs.
        rights: Rights,
    },
}

impl Scope {
    /// The unscoped system context. **Only bootstrap and housekeeping code may use it**; every request
    /// made for a user goes through a scope built by the security layer.
    pub fn system() -> Scope {
        Scope::System
    }

    /// A scope for `principals` needing `rights`.
    pub fn acl<I, S>(principals: I, rights: Rights) -> Scope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope::Acl { principals: principals.into_iter().map(Into::into).collect(), rights }
    }

    /// True for [`Scope::System`].
    pub fn is_system(&self) -> bool {
        matches!(self, Scope::System)
    }

    /// The same principals needing `rights` instead (the system scope stays the system scope). `$lookup`
    /// reads foreign collections through `self.with_rights(Rights::READ)`.
    pub fn with_rights(&self, rights: Rights) -> Scope {
        match self {
            Scope::System => Scope::System,
            Scope::Acl { principals, .. } => Scope::Acl { principals: principals.clone(), rights },
        }
    }

    /// Evaluates the scope on one document of `collection` in memory. Backends that evaluate scopes in
    /// their query language must agree with this; it is the reference the tests compare against.
    pub fn admits(&self, collection: &str, doc: &Value) -> bool {
        let (principals, mask) = match self {
            Scope::System => return true,
            Scope::Acl { principals, rights } => (principals, i64::from(rights.0)),
        };
        let entries = acl_entries(collection, doc);
        let listed = |e: &&AclEntry| principals.contains(&e.principal);
        let allowed = entries.iter().filter(listed).any(|e| !e.deny && e.rights & mask == mask);
        let denied = entries.iter().filter(listed).any(|e| e.deny && e.rights & mask != 0);
        allowed && !denied
    }
}

/// One entry of a document's ACL, normalised for evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// The principal (`_id` of the entry).
    pub principal: String,
    /// The rights bits; non-integer rights count as 0.
    pub rights: i64,
    /// True only when the entry's `deny` is the boolean `true`.
    pub deny: bool,
}

/// True if `collection` is a GridFS-style file collection, whose documents keep their ACL in
/// `metadata._acl`.
pub fn is_files_collection(collection: &str) -> bool {
    collection.ends_with(".files")
}

/// The ACL entries of `doc` in `collection` (see [`Scope`] for where the ACL lives). Entries without a
/// string `_id` are skipped: no principal can match them.
pub fn acl_entries(collection: &str, doc: &Value) -> Vec<AclEntry> {
    let acl =
        if is_files_collection(collection) { doc.get("metadata").and_then(|m| m.get("_acl")) } else { doc.get("_acl") };
    let Some(Value::Array(items)) = acl else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let principal = item.get("_id")?.as_str()?.to_string();
            let rights = item.get("rights").map(rights_value).unwrap_or(0);
            let deny = item.get("deny") == Some(&Value::Bool(true));
            Some(AclEntry { principal, rights, deny })
        })
        .collect()
}

/// The rights bits of a JSON value: integers as they are, integral doubles as integers, all else 0.
fn rights_value(v: &Value) -> i64 {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => f as i64,
            _ => 0,
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allow_and_deny() {
        let doc = json!({"_acl": [
            {"_id": "u1", "rights": 65535},
            {"_id": "r1", "rights": 2},
            {"_id": "r2", "rights": 4, "deny": true},
        ]});
        assert!(Scope::acl(["u1"], Rights::READ).admits("c", &doc));
        assert!(Scope::acl(["r1"], Rights::READ).admits("c", &doc));
        assert!(!Scope::acl(["r1"], Rights::UPDATE).admits("c", &doc));
        assert!(!Scope::acl(["u1", "r2"], Rights::UPDATE).admits("c", &doc), "deny wins");
        assert!(Scope::acl(["u1", "r2"], Rights::READ).admits("c", &doc), "deny of other bits does not matter");
        assert!(!Scope::acl(Vec::<String>::new(), Rights::READ).admits("c", &doc));
        assert!(Scope::system().admits("c", &json!({})));
    }

    #[test]
    fn files_collections_use_metadata_acl() {
        let doc = json!({"metadata": {"_acl": [{"_id": "u1", "rights": 2}]}, "_acl": [{"_id": "u2", "rights": 2}]});
        assert!(Scope::acl(["u1"], Rights::READ).admits("fs.files", &doc));
        assert!(!Scope::acl(["u2"], Rights::READ).admits("fs.files", &doc));
        assert!(Scope::acl(["u2"], Rights::READ).admits("fs", &doc));
    }

    #[test]
    fn odd_rights_count_as_zero() {
        let doc = json!({"_acl": [{"_id": "u1", "rights": "65535"}, {"_id": "u2", "rights": 2.0}, {"_id": 5}]});
        assert!(!Scope::acl(["u1"], Rights::READ).admits("c", &doc));
        assert!(Scope::acl(["u2"], Rights::READ).admits("c", &doc));
        assert!(!Scope::acl(["u1"], Rights::READ).admits("c", &json!({"_acl": {"_id": "u1", "rights": 2}})));
    }
}
