//! The one place where a caller becomes a store scope. Every command gets its scope here; nothing else in
//! the workspace builds a `flowkeep_store::Scope` from a caller.

use flowkeep_model::Rights;
use flowkeep_security::{Caller, ScopeSpec};
use flowkeep_store::Scope;

/// The store scope of `caller` for `right`: admins and root see everything (the unrestricted scope),
/// everyone else the documents whose ACL grants `right` to one of their principals (deny wins).
pub fn store_scope(caller: &Caller, right: Rights) -> Scope {
    match caller.scope_for(right) {
        // Admins and root are unrestricted by the security model; the store's unrestricted scope is
        // the named system scope.
        ScopeSpec::Unrestricted => Scope::system(),
        ScopeSpec::Principals { principals, rights } => Scope::acl(principals, rights),
    }
}
