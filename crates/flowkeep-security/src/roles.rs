//! Effective roles: the transitive closure over role membership (reference §2.2), computed from role
//! documents given as plain input. Loading those documents and caching the result is the caller's job.
//!
//! A role document lists its members as `members: [{_id, name}]`; a member is a user or another role.
//! A user's effective roles are the roles that list it, the roles that list those, and so on, plus the
//! implicit `users` role for every non-guest user (and whatever `users` is itself a member of).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::wellknown;

/// A role a principal holds: its id and display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleRef {
    /// The role id.
    pub id: String,
    /// The role name (the well-known name, or the id, when the role document was not given).
    pub name: String,
}

/// Options of a [`RoleGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleGraphOptions {
    /// How many membership steps the closure follows: 1 = direct memberships only. The reference's
    /// default path has no limit and its `$graphLookup` path uses 2; we default to 16, deep enough for
    /// any sensible hierarchy and a bound on work.
    pub max_depth: usize,
}

impl Default for RoleGraphOptions {
    fn default() -> Self {
        RoleGraphOptions { max_depth: 16 }
    }
}

/// The result of a closure: roles sorted by name (then id), and whether the depth limit cut it short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRoles {
    /// The roles, sorted by name, then by id, without duplicates.
    pub roles: Vec<RoleRef>,
    /// True if some role lay beyond `max_depth` and was left out.
    ///
    /// We truncate rather than fail on purpose: any user may create roles and put anyone in them, so a
    /// hard error would let one user lock another out by nesting a long chain of roles above them.
    /// Truncation cannot be abused the same way: the closure follows shortest paths, and adding
    /// memberships only shortens paths, so nobody can push a role that is within the limit beyond it.
    /// The flag lets the server warn about a legitimately deeper hierarchy.
    pub truncated: bool,
}

/// Role membership as a graph: for each principal, the roles that list it as a member.
#[derive(Debug, Clone, Default)]
pub struct RoleGraph {
    names: HashMap<String, String>,
    member_of: HashMap<String, Vec<String>>,
    options: RoleGraphOptions,
}

impl RoleGraph {
    /// Builds the graph from role documents with default options. See [`RoleGraph::with_options`].
    pub fn from_role_docs(docs: &[Value]) -> RoleGraph {
        RoleGraph::with_options(docs, RoleGraphOptions::default())
    }

    /// Builds the graph from role documents (`{_id, _type: "role", name, members: [{_id, name}]}`).
    ///
    /// Input is read leniently and never fails: documents whose `_type` is present and not `role`, or
    /// whose `_id` is not a string, are skipped; members may be `{_id}` objects or (legacy) plain id
    /// strings; anything else in `members` is ignored. A role listed twice has its members united.
    pub fn with_options(docs: &[Value], options: RoleGraphOptions) -> RoleGraph {
        let mut graph = RoleGraph { options, ..RoleGraph::default() };
        let mut edges: HashSet<(String, String)> = HashSet::new();
        for doc in docs {
            let is_role = doc.get("_type").and_then(Value::as_str).is_none_or(|t| t.eq_ignore_ascii_case("role"));
            let Some(role_id) = doc.get("_id").and_then(Value::as_str).filter(|_| is_role) else { continue };
            let name = doc.get("name").and_then(Value::as_str).unwrap_or_default();
            let entry = graph.names.entry(role_id.to_string()).or_default();
            if entry.is_empty() {
                *entry = name.to_string();
            }
            let Some(Value::Array(members)) = doc.get("members") else { continue };
            for member in members {
                let member_id = match member {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(_) => member.get("_id").and_then(Value::as_str),
                    _ => None,
                };
                let Some(member_id) = member_id.filter(|m| !m.is_empty()) else { continue };
                if edges.insert((member_id.to_string(), role_id.to_string())) {
                    graph.member_of.entry(member_id.to_string()).or_default().push(role_id.to_string());
                }
            }
        }
        graph
    }

    /// The options this graph resolves with.
    pub fn options(&self) -> RoleGraphOptions {
        self.options
    }

    /// The display name of a role: its document's name, else its well-known name, else its id.
    pub fn role_name(&self, id: &str) -> String {
        match self.names.get(id).filter(|n| !n.is_empty()) {
            Some(name) => name.clone(),
            None => wellknown::well_known_name(id).unwrap_or(id).to_string(),
        }
    }

    /// The effective roles of `principal` (a user id): breadth-first over "is a member of", so each role
    /// is reached by its shortest path, visited once (cycles are harmless) and kept only within
    /// `max_depth` steps. With `implicit_users`, the `users` role counts as a direct membership (the
    /// reference adds it for every user but guest). The principal itself is never one of its roles.
    pub fn effective_roles(&self, principal: &str, implicit_users: bool) -> EffectiveRoles {
        let max_depth = self.options.max_depth.max(1);
        let mut seen: HashSet<&str> = HashSet::new();
        seen.insert(principal);
        let mut frontier: Vec<&str> = Vec::new();
        if implicit_users && seen.insert(wellknown::USERS) {
            frontier.push(wellknown::USERS);
        }
        for role in self.parents(principal) {
            if seen.insert(role) {
                frontier.push(role);
            }
        }
        let mut found: Vec<&str> = frontier.clone();
        let mut depth = 1;
        let mut truncated = false;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for role in &frontier {
                for parent in self.parents(role) {
                    if !seen.contains(parent) {
                        if depth >= max_depth {
                            truncated = true;
                            continue;
                        }
                        seen.insert(parent);
                        next.push(parent);
                    }
                }
            }
            if depth >= max_depth {
                break;
            }
            found.extend(next.iter().copied());
            frontier = next;
            depth += 1;
        }
        let mut roles: Vec<RoleRef> =
            found.into_iter().map(|id| RoleRef { id: id.to_string(), name: self.role_name(id) }).collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        EffectiveRoles { roles, truncated }
    }

    fn parents<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a str> {
        self.member_of.get(id).into_iter().flatten().map(String::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(id: &str, name: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members.iter().map(|m| json!({"_id": m, "name": m})).collect();
        json!({"_id": id, "_type": "role", "name": name, "members": members})
    }

    fn ids(e: &EffectiveRoles) -> Vec<&str> {
        e.roles.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn direct_transitive_and_implicit_users() {
        let g = RoleGraph::from_role_docs(&[
            role("ra", "alpha", &["u1"]),
            role("rb", "beta", &["ra"]),
            role("rc", "gamma", &["rb", "u2"]),
            role("rx", "unrelated", &["u3"]),
            role(wellknown::ADMINS, "admins", &["rc"]),
        ]);
        let e = g.effective_roles("u1", true);
        assert_eq!(ids(&e), vec![wellknown::ADMINS, "ra", "rb", "rc", wellknown::USERS], "sorted by name");
        assert!(!e.truncated);
        assert_eq!(e.roles.last().map(|r| r.name.as_str()), Some("users"), "name from the well-known table");
        let guest = g.effective_roles("u2", false);
        assert_eq!(ids(&guest), vec![wellknown::ADMINS, "rc"]);
        assert_eq!(ids(&g.effective_roles("nobody", false)), Vec::<&str>::new());
    }

    #[test]
    fn roles_that_users_is_member_of_are_inherited() {
        let g = RoleGraph::from_role_docs(&[role("everyone-extra", "extra", &[wellknown::USERS])]);
        assert_eq!(ids(&g.effective_roles("u1", true)), vec!["everyone-extra", wellknown::USERS]);
        assert!(g.effective_roles("u1", false).roles.is_empty(), "guest gets neither");
    }

    #[test]
    fn cycles_terminate() {
        let g = RoleGraph::from_role_docs(&[
            role("r1", "one", &["u1", "r3"]),
            role("r2", "two", &["r1"]),
            role("r3", "three", &["r2"]),
            role("self", "self", &["self", "u1"]),
            role("back", "back", &["r2", "u1"]), // u1 member again through another path
        ]);
        let e = g.effective_roles("u1", false);
        assert_eq!(ids(&e), vec!["back", "r1", "self", "r3", "r2"], "by name: back, one, self, three, two");
        assert!(!e.truncated);
        // a role that lists the user's own id as a parent never makes the user its own role
        let g = RoleGraph::from_role_docs(&[role("u1", "weird", &["r1"]), role("r1", "r", &["u1"])]);
        assert_eq!(ids(&g.effective_roles("u1", false)), vec!["r1"]);
    }

    #[test]
    fn depth_limit_truncates_by_shortest_path() {
        // chain u1 ∈ c1 ∈ c2 ∈ … ∈ c6
        let mut docs = vec![role("c1", "c1", &["u1"])];
        for i in 2..=6 {
            docs.push(role(&format!("c{i}"), &format!("c{i}"), &[&format!("c{}", i - 1)]));
        }
        let limited =
            |d| RoleGraph::with_options(&docs, RoleGraphOptions { max_depth: d }).effective_roles("u1", false);
        assert_eq!(ids(&limited(1)), vec!["c1"]);
        assert!(limited(1).truncated);
        assert_eq!(ids(&limited(3)), vec!["c1", "c2", "c3"]);
        assert!(limited(3).truncated);
        assert_eq!(limited(6).roles.len(), 6);
        assert!(!limited(6).truncated);
        assert_eq!(limited(0), limited(1), "0 is treated as 1");
        // a shortcut brings c6 within reach: depth is the shortest path
        docs.push(role("c6", "c6", &["u1"]));
        let e = RoleGraph::with_options(&docs, RoleGraphOptions { max_depth: 2 }).effective_roles("u1", false);
        assert_eq!(ids(&e), vec!["c1", "c2", "c6"]);
    }

    #[test]
    fn implicit_users_counts_as_depth_one() {
        let g = RoleGraph::with_options(
            &[role("a", "a", &[wellknown::USERS]), role("b", "b", &["a"])],
            RoleGraphOptions { max_depth: 2 },
        );
        let e = g.effective_roles("u1", true);
        assert_eq!(ids(&e), vec!["a", wellknown::USERS]);
        assert!(e.truncated);
    }

    #[test]
    fn lenient_input() {
        let g = RoleGraph::from_role_docs(&[
            json!({"_id": "r1", "_type": "role", "name": "legacy", "members": ["u1", 5, null, {"name": "no id"}, {"_id": ""}]}),
            json!({"_id": "r2", "_type": "user", "members": [{"_id": "u1"}]}), // not a role
            json!({"_id": 7, "_type": "role", "members": [{"_id": "u1"}]}),
            json!({"_id": "r3", "members": [{"_id": "u1"}]}), // _type absent: taken as a role
            json!({"_id": "r3", "_type": "Role", "name": "three", "members": [{"_id": "u1"}, {"_id": "u9"}]}),
            json!({"_id": "r4", "_type": "role", "name": "nomembers", "members": "u1"}),
            json!("not an object"),
        ]);
        let e = g.effective_roles("u1", false);
        assert_eq!(ids(&e), vec!["r1", "r3"]);
        assert_eq!(e.roles[1].name, "three", "name filled from the second doc");
        assert_eq!(ids(&g.effective_roles("u9", false)), vec!["r3"]);
        assert_eq!(g.role_name("unknown"), "unknown");
    }
}
