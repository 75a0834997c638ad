//! The well-known principals of OpenIAP Flow (exact ids and names, reference §2.3) and the reserved-name
//! guard (reference §1.3 B.2).
//!
//! Clients and existing data depend on these ids, so they never change. The guard keeps anyone from
//! creating a user or role that *looks like* a built-in one (a second "admins" role, or the real admins
//! role renamed), which would confuse people reading an ACL and could trick an admin into granting access.

/// The internal superuser. A system identity: it bypasses every check and never logs in.
pub const ROOT: &str = "59f1f6e6f0a22200126638d8";
/// The admins role: its members see everything and get full control on every document.
pub const ADMINS: &str = "5a1702fa245d9013697656fb";
/// The users role: every non-guest user is implicitly a member.
pub const USERS: &str = "5a17f157c4815318c8536c21";
/// Legacy robots role.
pub const ROBOTS: &str = "5ac0850ca538fee1ebdb996c";
/// Customer admins (multi-tenant mode).
pub const CUSTOMER_ADMINS: &str = "5a1702fa245d9013697656fc";
/// Resellers (multi-tenant mode).
pub const RESELLERS: &str = "5a1702fa245d9013697656fd";
/// Legacy Node-RED users role.
pub const NODERED_USERS: &str = "5a23f18a2e8987292ddbe061";
/// Legacy Node-RED admins role.
pub const NODERED_ADMINS: &str = "5a17f157c4815318c8536c20";
/// Legacy Node-RED API users role.
pub const NODERED_API_USERS: &str = "5a17f157c4815318c8536c22";
/// File store users (read on uploaded files in single-tenant mode).
pub const FILESTORE_USERS: &str = "5b6ab63c8d4a64b7c47f4a8f";
/// File store admins (full control on uploaded files).
pub const FILESTORE_ADMINS: &str = "5b6ab63c8d4a64b7c47f4a8e";
/// Legacy robot users role.
pub const ROBOT_USERS: &str = "5aef0142f3683977b0aa3dd3";
/// Legacy robot admins role.
pub const ROBOT_ADMINS: &str = "5aef0142f3683977b0aa3dd2";
/// Legacy personal Node-RED users role.
pub const PERSONAL_NODERED_USERS: &str = "5a23f18a2e8987292ddbe062";
/// Legacy robot agent users role.
pub const ROBOT_AGENT_USERS: &str = "5f33c29d8fe78504bd259a04";
/// The guest user (only usable when guest access is enabled). Gets no implicit `users` role.
pub const GUEST: &str = "65cb30c40ff51e174095573c";
/// Workitem queue admins: member of every workitem queue's users role.
pub const WORKITEM_QUEUE_ADMINS: &str = "625440c4231309af5f2052cd";
/// Workitem queue users.
pub const WORKITEM_QUEUE_USERS: &str = "62544134231309e2cd2052ce";

/// Whether a well-known principal is a user or a role document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A `_type: "user"` document.
    User,
    /// A `_type: "role"` document.
    Role,
}

/// One well-known principal: its fixed id, its canonical name and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WellKnown {
    /// The fixed 24-hex id.
    pub id: &'static str,
    /// The name as the reference creates it (lower case).
    pub name: &'static str,
    /// User or role.
    pub kind: PrincipalKind,
}

const fn wk(id: &'static str, name: &'static str, kind: PrincipalKind) -> WellKnown {
    WellKnown { id, name, kind }
}

/// The 18 well-known principals (`WellknownIdsArray` of the reference), in the reference's order.
pub const WELL_KNOWN: [WellKnown; 18] = [
    wk(ROOT, "root", PrincipalKind::User),
    wk(ADMINS, "admins", PrincipalKind::Role),
    wk(USERS, "users", PrincipalKind::Role),
    wk(ROBOTS, "robots", PrincipalKind::Role),
    wk(CUSTOMER_ADMINS, "customer admins", PrincipalKind::Role),
    wk(RESELLERS, "resellers", PrincipalKind::Role),
    wk(NODERED_USERS, "nodered users", PrincipalKind::Role),
    wk(NODERED_ADMINS, "nodered admins", PrincipalKind::Role),
    wk(NODERED_API_USERS, "nodered api users", PrincipalKind::Role),
    wk(FILESTORE_USERS, "filestore users", PrincipalKind::Role),
    wk(FILESTORE_ADMINS, "filestore admins", PrincipalKind::Role),
    wk(ROBOT_USERS, "robot users", PrincipalKind::Role),
    wk(ROBOT_ADMINS, "robot admins", PrincipalKind::Role),
    wk(PERSONAL_NODERED_USERS, "personal nodered users", PrincipalKind::Role),
    wk(ROBOT_AGENT_USERS, "robot agent users", PrincipalKind::Role),
    wk(GUEST, "guest", PrincipalKind::User),
    wk(WORKITEM_QUEUE_ADMINS, "workitem queue admins", PrincipalKind::Role),
    wk(WORKITEM_QUEUE_USERS, "workitem queue users", PrincipalKind::Role),
];

/// Names reserved for well-known ids (`WellknownNamesArray` of the reference, lower case): a user or
/// role with one of these names must have a well-known id.
pub const RESERVED_NAMES: &[&str] = &[
    "root",
    "admins",
    "users",
    "user",
    "admin",
    "nodered",
    "administrator",
    "workflow",
    "robots",
    "robot",
    "nodered_users",
    "nodered_admins",
    "nodered_api_users",
    "filestore_users",
    "filestore_admins",
    "robot_users",
    "robot_admins",
    "personal_nodered_users",
    "robot_agent_users",
    "customer_admins",
    "nodered users",
    "nodered admins",
    "nodered api users",
    "filestore users",
    "filestore admins",
    "robot users",
    "robot admins",
    "personal nodered users",
    "robot agent users",
    "customer admins",
    "workitem queue admins",
    "workitem queue users",
    "reseller",
    "resellers",
];

/// The well-known principal with this id, if any.
pub fn well_known(id: &str) -> Option<&'static WellKnown> {
    WELL_KNOWN.iter().find(|w| w.id == id)
}

/// True if `id` is one of the 18 well-known ids.
pub fn is_well_known_id(id: &str) -> bool {
    well_known(id).is_some()
}

/// The canonical name of a well-known id (`"admins"` for [`ADMINS`]).
pub fn well_known_name(id: &str) -> Option<&'static str> {
    well_known(id).map(|w| w.name)
}

/// A name reduced for comparison: lower case, without whitespace, `_` and `-`.
///
/// The reference compares some pairs without spaces ("noderedusers") and lists others with spaces or
/// underscores; comparing reduced forms covers every spelling at once ("Nodered_Users", "nodered users",
/// "noderedusers"), so the guard can only be stricter than the reference, never weaker.
fn reduce(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace() && *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

/// The reserved-name guard (reference §1.3 B.2): why a document of type `doc_type` with this `id` and
/// `name` must be refused, or `None` if it is fine.
///
/// Only `user` and `role` documents are guarded (compared case-insensitively, as the reference
/// lower-cases `_type`). A violation is:
/// * a well-known id whose name is not its canonical name (the real `admins` role renamed), or
/// * a canonical well-known name on another id (a second "admins"), or
/// * any [`RESERVED_NAMES`] name on an id that is not well-known (a role named "administrator").
///
/// Names are compared in reduced form (see the note on the private `reduce`), so "Admins", "ad mins"
/// and "nodered_users" all count. The reference lets root skip this guard; [`crate::Caller`] does the
/// same, the function itself knows nothing of callers.
pub fn reserved_name_violation(doc_type: &str, id: &str, name: &str) -> Option<String> {
    if !doc_type.eq_ignore_ascii_case("user") && !doc_type.eq_ignore_ascii_case("role") {
        return None;
    }
    let reduced = reduce(name);
    if let Some(own) = well_known(id) {
        if reduced != reduce(own.name) {
            return Some(format!("the well-known {} {id} must be named '{}', not '{name}'", kind_word(own), own.name));
        }
        return None;
    }
    if let Some(other) = WELL_KNOWN.iter().find(|w| reduce(w.name) == reduced) {
        return Some(format!("the name '{name}' belongs to the well-known {} {}", kind_word(other), other.id));
    }
    if RESERVED_NAMES.iter().any(|r| reduce(r) == reduced) {
        return Some(format!("the name '{name}' is reserved for built-in principals"));
    }
    None
}

fn kind_word(w: &WellKnown) -> &'static str {
    match w.kind {
        PrincipalKind::User => "user",
        PrincipalKind::Role => "role",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn eighteen_distinct_ids_and_names() {
        let ids: HashSet<_> = WELL_KNOWN.iter().map(|w| w.id).collect();
        let names: HashSet<_> = WELL_KNOWN.iter().map(|w| w.name).collect();
        assert_eq!(ids.len(), 18);
        assert_eq!(names.len(), 18);
        assert!(WELL_KNOWN.iter().all(|w| flowkeep_model::ids::is_object_id(w.id) && w.id == w.id.to_lowercase()));
    }

    #[test]
    fn exact_reference_values() {
        // Spot checks against reference §2.3, typed out separately from the table above.
        let table = [
            ("root", "59f1f6e6f0a22200126638d8"),
            ("admins", "5a1702fa245d9013697656fb"),
            ("users", "5a17f157c4815318c8536c21"),
            ("robots", "5ac0850ca538fee1ebdb996c"),
            ("customer admins", "5a1702fa245d9013697656fc"),
            ("resellers", "5a1702fa245d9013697656fd"),
            ("nodered users", "5a23f18a2e8987292ddbe061"),
            ("nodered admins", "5a17f157c4815318c8536c20"),
            ("nodered api users", "5a17f157c4815318c8536c22"),
            ("filestore users", "5b6ab63c8d4a64b7c47f4a8f"),
            ("filestore admins", "5b6ab63c8d4a64b7c47f4a8e"),
            ("robot users", "5aef0142f3683977b0aa3dd3"),
            ("robot admins", "5aef0142f3683977b0aa3dd2"),
            ("personal nodered users", "5a23f18a2e8987292ddbe062"),
            ("robot agent users", "5f33c29d8fe78504bd259a04"),
            ("guest", "65cb30c40ff51e174095573c"),
            ("workitem queue admins", "625440c4231309af5f2052cd"),
            ("workitem queue users", "62544134231309e2cd2052ce"),
        ];
        for (name, id) in table {
            assert_eq!(well_known_name(id), Some(name), "{id}");
        }
        assert_eq!(well_known(ROOT).map(|w| w.kind), Some(PrincipalKind::User));
        assert_eq!(well_known(GUEST).map(|w| w.kind), Some(PrincipalKind::User));
        assert_eq!(well_known(ADMINS).map(|w| w.kind), Some(PrincipalKind::Role));
        assert!(!is_well_known_id("5a1702fa245d9013697656fe"));
    }

    #[test]
    fn reserved_names_cover_reference_lists() {
        assert_eq!(RESERVED_NAMES.len(), 34);
        let set: HashSet<_> = RESERVED_NAMES.iter().collect();
        assert_eq!(set.len(), RESERVED_NAMES.len(), "no duplicates");
        assert!(RESERVED_NAMES.iter().all(|n| *n == n.to_lowercase()));
    }

    #[test]
    fn guard_table() {
        let fresh = "64b000000000000000000001";
        // (type, id, name, violation expected)
        let cases: &[(&str, &str, &str, bool)] = &[
            ("role", ADMINS, "admins", false),
            ("role", ADMINS, "Admins", false),
            ("role", ADMINS, "superusers", true), // the real admins role renamed
            ("role", ADMINS, "", true),
            ("role", fresh, "admins", true), // a second admins
            ("role", fresh, "ADMINS", true),
            ("role", fresh, " admins ", true),
            ("user", fresh, "root", true),
            ("user", ROOT, "root", false),
            ("user", GUEST, "guest", false),
            ("user", fresh, "guest", true),
            ("role", NODERED_USERS, "nodered users", false),
            ("role", NODERED_USERS, "noderedusers", false),
            ("role", NODERED_USERS, "nodered_users", false),
            ("role", fresh, "nodered_users", true),
            ("role", fresh, "Nodered Users", true),
            ("role", fresh, "workitem queue admins", true),
            ("role", WORKITEM_QUEUE_ADMINS, "workitem queue admins", false),
            ("role", WORKITEM_QUEUE_ADMINS, "workitem queue users", true), // swapped pair
            ("role", fresh, "administrator", true),                        // names-array only
            ("role", fresh, "admin", true),
            ("user", fresh, "user", true),
            ("role", fresh, "workflow", true),
            ("role", fresh, "reseller", true),
            ("role", fresh, "sales", false),
            ("user", fresh, "Alice", false),
            ("role", fresh, "admins team", false),
            ("customer", fresh, "admins", false), // only users and roles are guarded
            ("entity", ADMINS, "whatever", false),
            ("ROLE", fresh, "admins", true), // _type compared case-insensitively
        ];
        for (ty, id, name, expected) in cases {
            let got = reserved_name_violation(ty, id, name);
            assert_eq!(got.is_some(), *expected, "{ty} {id} {name:?}: {got:?}");
        }
    }
}
