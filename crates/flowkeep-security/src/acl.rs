//! Access-control lists: the entry type [`Ace`], parsing `_acl` values, the decision function
//! [`allows`], normalisation on write ([`normalize_acl`]) and who may change an ACL ([`may_change_acl`]).
//!
//! # Decision semantics (deny wins)
//!
//! A principal set `P` (a user id plus its role ids) holds right mask `m` on an ACL iff
//! * some entry with `deny == false`, `_id ∈ P` has **all** bits of `m`, and
//! * no entry with `deny == true`, `_id ∈ P` has **any** bit of `m`.
//!
//! This is, bit for bit, the scope the store evaluates (`flowkeep_store::Scope::Acl`), so a single
//! document check here and a pushed-down query in the store always agree. The reference ignores deny
//! entries (and even lets a deny entry *grant* its bits); we enforce them on purpose.
//!
//! # Two parsers
//!
//! * [`parse_stored_acl`] reads an ACL exactly as the store does (non-integer rights count as 0, entries
//!   without a string `_id` are skipped, `deny` only when it is the boolean `true`). Use it for documents
//!   at rest, so in-memory checks equal the store's view.
//! * [`parse_acl`] reads client input for a write: strict about shape (an ambiguous `deny` is an error,
//!   never silently an allow), lenient about the rights format (numbers, integral doubles, `-1`, and the
//!   legacy base64 bitmap), and returns numeric rights that [`normalize_acl`] then cleans up.

use std::collections::HashMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use flowkeep_model::Rights;
use serde::Serialize;
use serde_json::Value;

use crate::error::SecurityError;
use crate::wellknown;

/// One access-control entry: `{_id, name, rights, deny}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Ace {
    /// The principal: a user, role or customer id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Display name of the principal (informational only; decisions use `id`).
    pub name: String,
    /// The rights bits this entry grants (or, when `deny`, denies).
    pub rights: Rights,
    /// A deny entry takes its bits away from the principal, whatever other entries grant.
    /// Written out only when true (the reference deletes `deny: false`).
    #[serde(skip_serializing_if = "is_false")]
    pub deny: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Ace {
    /// An allowing entry.
    pub fn allow(id: impl Into<String>, name: impl Into<String>, rights: Rights) -> Ace {
        Ace { id: id.into(), name: name.into(), rights, deny: false }
    }

    /// A denying entry.
    pub fn deny(id: impl Into<String>, name: impl Into<String>, rights: Rights) -> Ace {
        Ace { id: id.into(), name: name.into(), rights, deny: true }
    }
}

/// Upper bound on the length of a principal id in client input. Real ids are 24 hex characters; the
/// bound only keeps absurd input out.
const MAX_ID_LEN: usize = 256;
/// Upper bound on a legacy base64 rights string. The reference's bitmap was 1000 bits (125 bytes,
/// 168 base64 characters); anything far longer is not a rights value.
const MAX_LEGACY_RIGHTS_LEN: usize = 1024;
/// The 16 rights bits that exist; full control is all of them.
const RIGHTS_MASK: u32 = Rights::FULL_CONTROL.0;

/// The decision function: true iff `principals` hold every bit of `right` on `acl` (see the module docs:
/// an allowing entry with all bits, and no denying entry with any bit). With an empty `right` any
/// allowing entry of a listed principal suffices, as in the store.
pub fn allows(principals: &[String], acl: &[Ace], right: Rights) -> bool {
    let listed = |ace: &&Ace| principals.contains(&ace.id);
    let granted = acl.iter().filter(listed).any(|ace| !ace.deny && ace.rights.contains(right));
    granted && !acl.iter().filter(listed).any(|ace| ace.deny && ace.rights.intersects(right))
}

/// True if some deny entry of `principals` takes away any bit of `right`.
pub(crate) fn denied_any(principals: &[String], acl: &[Ace], right: Rights) -> bool {
    acl.iter().any(|ace| ace.deny && ace.rights.intersects(right) && principals.contains(&ace.id))
}

/// Where a document of `collection` keeps its ACL: `metadata._acl` in GridFS-style file collections
/// (name ending in `.files`), `_acl` everywhere else. Mirrors the store.
pub fn acl_value<'a>(collection: &str, doc: &'a Value) -> Option<&'a Value> {
    if collection.ends_with(".files") {
        doc.get("metadata").and_then(|m| m.get("_acl"))
    } else {
        doc.get("_acl")
    }
}

/// The ACL of a stored document of `collection`, read exactly as the store reads it (see
/// [`parse_stored_acl`]).
pub fn document_acl(collection: &str, doc: &Value) -> Vec<Ace> {
    parse_stored_acl(acl_value(collection, doc))
}

/// Reads a stored `_acl` value the way the store evaluates it, so that in-memory checks equal the
/// store's scope:
/// * not an array (or missing) → no entries (only unrestricted callers see such a document; the
///   reference allows everyone here, we do not);
/// * entries without a string `_id` are skipped;
/// * `rights`: an integer (its low 32 bits, two's complement, which gives the same answer as the store's
///   64-bit `rights & mask` for every mask), an integral double as that integer, anything else 0
///   (a legacy base64 string grants and denies nothing until it is rewritten by [`parse_acl`]);
/// * `deny` only when it is the boolean `true`.
pub fn parse_stored_acl(acl: Option<&Value>) -> Vec<Ace> {
    let Some(Value::Array(items)) = acl else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let id = item.get("_id")?.as_str()?.to_string();
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let rights = item.get("rights").map(stored_rights).unwrap_or(Rights::NONE);
            let deny = item.get("deny") == Some(&Value::Bool(true));
            Some(Ace { id, name, rights, deny })
        })
        .collect()
}

/// The store's reading of a rights value, narrowed to 32 bits (see [`parse_stored_acl`]).
fn stored_rights(v: &Value) -> Rights {
    let wide: i64 = match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => f as i64,
            _ => 0,
        },
        _ => 0,
    };
    Rights((wide as u64 & 0xffff_ffff) as u32)
}

/// Parses an `_acl` from client input for a write.
///
/// * `null` is an empty ACL (normalisation then adds admins and the creator); anything else but an
///   array is an error.
/// * Each entry must be an object with a non-empty string `_id`. `name` is informational: a non-string
///   name is read as empty.
/// * `rights` is required: an integer 0..=65535, `-1` (the API's "full control", stored as 65535), an
///   integral double, or the legacy base64 bitmap (a string, or a BSON binary in extended JSON:
///   `{"$binary": "…"}` or `{"$binary": {"base64": "…"}}`) — see [`legacy_rights`].
/// * `deny` must be a boolean, `null` or absent. Anything else is refused: guessing would risk turning an
///   intended deny into an allow.
pub fn parse_acl(value: &Value) -> Result<Vec<Ace>, SecurityError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(SecurityError::InvalidAcl("_acl must be an array".into())),
    };
    items.iter().enumerate().map(|(i, item)| parse_ace(item).map_err(|e| invalid(format!("entry {i}: {e}")))).collect()
}

fn invalid(msg: String) -> SecurityError {
    SecurityError::InvalidAcl(msg)
}

fn parse_ace(item: &Value) -> Result<Ace, String> {
    let Value::Object(obj) = item else { return Err("an entry must be an object".into()) };
    let id = match obj.get("_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s.clone(),
        Some(Value::String(s)) if s.is_empty() => return Err("_id must not be empty".into()),
        Some(Value::String(_)) => return Err(format!("_id is longer than {MAX_ID_LEN} characters")),
        _ => return Err("_id must be a string".into()),
    };
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let rights = match obj.get("rights") {
        None | Some(Value::Null) => return Err("rights is missing".into()),
        Some(v) => input_rights(v)?,
    };
    let deny = match obj.get("deny") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("deny must be a boolean".into()),
    };
    Ok(Ace { id, name, rights, deny })
}

fn input_rights(v: &Value) -> Result<Rights, String> {
    match v {
        Value::Number(n) => {
            let int = match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                (None, Some(f)) if f.fract() == 0.0 && f.abs() <= 65535.0 => f as i64,
                _ => return Err(format!("rights {n} is not an integer bitmask")),
            };
            match int {
                -1 => Ok(Rights::FULL_CONTROL),
                0..=65535 => Ok(Rights(int as u32)),
                _ => Err(format!("rights {int} is outside 0..=65535")),
            }
        }
        Value::String(s) => legacy_rights(s).map_err(|e| e.to_string()),
        Value::Object(obj) => {
            let b64 = match obj.get("$binary") {
                Some(Value::String(s)) => s.as_str(),
                Some(Value::Object(inner)) => inner.get("base64").and_then(Value::as_str).unwrap_or(""),
                _ => return Err("rights must be a number or a legacy base64 bitmap".into()),
            };
            legacy_rights(b64).map_err(|e| e.to_string())
        }
        _ => Err("rights must be a number or a legacy base64 bitmap".into()),
    }
}

/// Base64 as the legacy clients wrote it: standard alphabet, padding optional.
const LEGACY_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Converts a legacy base64 rights bitmap to the numeric bitmask.
///
/// **The format** (old OpenFlow `Ace`, and OpenRPA ≤ 1.4.44): `rights` was a bitmap of
/// `ace_right_bits = 1000` bits held in a byte array (125 bytes), stored as BSON binary and sent as its
/// base64 text. Right `r` (API constant 1 = create … 5 = invoke) is bit `r − 1`, and bit `b` lives in
/// byte `b / 8` at position `b % 8` counted from the least significant bit: a little-endian bit array.
/// So byte 0 = `0b0000_0010` is read, byte 0 = `0b0001_1111` is create…invoke, and "full control" set
/// every byte to `0xFF` (base64 `"////…//8="`, 168 characters). "None" was all zeros, except that the
/// reference documents `"AAAA…AIA="`, whose only set bit (999) is far outside the rights bits.
///
/// **Our conversion** keeps bits 0–15 (bytes 0 and 1): `rights = byte0 | byte1 << 8`. Legacy full control
/// therefore becomes 65535, i.e. full control. The reference copies only bits 0–14 and turns it into
/// 32767, which then no longer counts as full control — a quirk we do not reproduce. Bits above 15 mean
/// nothing and are dropped; missing bytes count as 0; an empty string is no rights.
pub fn legacy_rights(b64: &str) -> Result<Rights, SecurityError> {
    if b64.len() > MAX_LEGACY_RIGHTS_LEN {
        return Err(invalid(format!("legacy rights string is longer than {MAX_LEGACY_RIGHTS_LEN} characters")));
    }
    let bytes = LEGACY_B64
        .decode(b64.trim())
        .map_err(|e| invalid(format!("legacy rights string is not valid base64 ({e})")))?;
    let byte = |i: usize| u32::from(bytes.get(i).copied().unwrap_or(0));
    Ok(Rights(byte(0) | byte(1) << 8))
}

/// Writes an ACL back as the `_acl` JSON array (numeric rights, `deny` only when true).
pub fn acl_to_value(acl: &[Ace]) -> Value {
    Value::Array(
        acl.iter()
            .map(|ace| {
                let mut obj = serde_json::Map::new();
                obj.insert("_id".into(), Value::String(ace.id.clone()));
                obj.insert("name".into(), Value::String(ace.name.clone()));
                obj.insert("rights".into(), Value::from(ace.rights.0));
                if ace.deny {
                    obj.insert("deny".into(), Value::Bool(true));
                }
                Value::Object(obj)
            })
            .collect(),
    )
}

/// Rights a new user gets on its own document: full control minus delete (OpenIAP's 65527), so it finds
/// itself in queries and can keep its profile up to date, but cannot delete itself.
pub const USER_SELF_RIGHTS: Rights = Rights(Rights::FULL_CONTROL.0 & !Rights::DELETE.0);

/// The entry a new user document gets for the user itself (reference §4.1 step 8), added before
/// [`normalize_acl`] merges the requested ACL.
pub fn user_self_entry(user_id: &str, name: &str) -> Ace {
    Ace::allow(user_id, name, USER_SELF_RIGHTS)
}

/// Options of [`normalize_acl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Most entries an ACL may have after merging (reference `max_ace_count`, default 128). An ACL over
    /// the limit is refused, not truncated: truncating could drop a deny entry and so widen access.
    pub max_ace_count: usize,
    /// Give `admins` full control on every document (reference `force_add_admins`, default true).
    pub force_admins: bool,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions { max_ace_count: 128, force_admins: true }
    }
}

/// The principal creating a document, for [`WriteKind::Insert`]. [`crate::Caller::as_creator`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Creator<'a> {
    /// The creating user's id (gets the personal entry).
    pub id: &'a str,
    /// The creating user's name (display name of that entry).
    pub name: &'a str,
    /// The user id and every role id of the creator.
    pub principals: &'a [String],
    /// True for admins and root: they pass every check, so no personal entry is added for them.
    pub unrestricted: bool,
}

/// Whether an ACL is normalised for a new document or for an update.
#[derive(Debug, Clone, Copy)]
pub enum WriteKind<'a> {
    /// A new document: the creator gets full control unless already covered.
    Insert(Creator<'a>),
    /// A changed document: who may change the ACL is [`may_change_acl`]'s question, asked separately.
    Update,
}

/// Cleans an ACL for writing (the reference's `CleanACL` plus the insert defaults, reference §4.1):
///
/// 1. rights are cut to the 16 defined bits, entries with an empty `_id` are refused;
/// 2. entries with the same `(_id, deny)` are merged (rights OR-ed, first non-empty name kept, position
///    of the first occurrence kept). Merging deny entries never changes a decision. Merging allow entries
///    never changes a single-right decision; for a multi-right request it makes what one principal's
///    entries grant *together* count (`{r1: read}, {r1: update}` then grants read+update), which is what
///    the writer meant — the store, like `$elemMatch`, needs all requested bits in one entry;
/// 3. entries with no rights are dropped (they neither grant nor deny anything);
/// 4. with `force_admins`, `admins` gets exactly full control and any deny entry naming `admins` is
///    dropped (admins are unrestricted anyway; such an entry would only mislead a reader);
/// 5. on insert by a restricted creator who lacks full control: if a deny entry in the ACL takes the
///    creator's read or update away the write is refused ([`SecurityError::SelfLockout`]), otherwise the
///    creator's own entry is raised to full control. A creator may still deny itself other bits (say
///    delete) on purpose;
/// 6. more than `max_ace_count` entries is refused ([`SecurityError::TooManyAces`]).
///
/// Not done here (needs the store): dropping entries of unknown principals and refreshing names.
pub fn normalize_acl(acl: &[Ace], kind: WriteKind<'_>, opts: &NormalizeOptions) -> Result<Vec<Ace>, SecurityError> {
    let mut out: Vec<Ace> = Vec::with_capacity(acl.len() + 2);
    let mut slot: HashMap<(String, bool), usize> = HashMap::new();
    for ace in acl {
        if ace.id.is_empty() {
            return Err(invalid("an entry has an empty _id".into()));
        }
        let rights = Rights(ace.rights.0 & RIGHTS_MASK);
        match slot.get(&(ace.id.clone(), ace.deny)).and_then(|&i| out.get_mut(i)) {
            Some(existing) => {
                existing.rights = existing.rights | rights;
                if existing.name.is_empty() {
                    existing.name.clone_from(&ace.name);
                }
            }
            None => {
                slot.insert((ace.id.clone(), ace.deny), out.len());
                out.push(Ace { rights, ..ace.clone() });
            }
        }
    }
    out.retain(|ace| ace.rights != Rights::NONE);

    if opts.force_admins {
        out.retain(|ace| !(ace.deny && ace.id == wellknown::ADMINS));
        set_full_control(&mut out, wellknown::ADMINS, "admins");
    }

    if let WriteKind::Insert(creator) = kind {
        if !creator.unrestricted && !allows(creator.principals, &out, Rights::FULL_CONTROL) {
            if denied_any(creator.principals, &out, Rights::READ) {
                return Err(SecurityError::SelfLockout("read"));
            }
            if denied_any(creator.principals, &out, Rights::UPDATE) {
                return Err(SecurityError::SelfLockout("update"));
            }
            set_full_control(&mut out, creator.id, creator.name);
        }
    }

    if out.len() > opts.max_ace_count {
        return Err(SecurityError::TooManyAces { count: out.len(), max: opts.max_ace_count });
    }
    Ok(out)
}

/// Raises the (single, merged) allow entry of `id` to full control, or appends one.
fn set_full_control(acl: &mut Vec<Ace>, id: &str, name: &str) {
    match acl.iter_mut().find(|ace| !ace.deny && ace.id == id) {
        Some(ace) => {
            ace.rights = Rights::FULL_CONTROL;
            if ace.name.is_empty() {
                ace.name = name.to_string();
            }
        }
        None => acl.push(Ace::allow(id, name, Rights::FULL_CONTROL)),
    }
}

/// Who may change an ACL (reference §4.4): the caller needs update on the current ACL **and** on the new
/// one, and must keep read on the new one.
///
/// The reference silently re-adds a full-control entry for a caller who would lose read or update. We
/// refuse instead ([`SecurityError::SelfLockout`]): with deny entries enforced a re-added allow could not
/// undo a deny anyway, and a clear error tells the client its ACL was not what it asked for. This is the
/// bare ACL rule; [`crate::Caller::authorize_acl_change`] adds the admin bypass and the self rule.
pub fn may_change_acl(principals: &[String], old: &[Ace], new: &[Ace]) -> Result<(), SecurityError> {
    if !allows(principals, old, Rights::UPDATE) {
        return Err(SecurityError::AccessDenied("changing the ACL needs update on the current ACL".into()));
    }
    if !allows(principals, new, Rights::UPDATE) {
        return Err(SecurityError::SelfLockout("update"));
    }
    if !allows(principals, new, Rights::READ) {
        return Err(SecurityError::SelfLockout("read"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// A legacy bitmap the way the reference wrote it: 125 bytes, little-endian bit order, base64.
    fn legacy_bitmap(rights_api: &[u32], full: bool) -> String {
        let mut bytes = [0u8; 125];
        if full {
            bytes = [0xff; 125];
        }
        for r in rights_api {
            let bit = (r - 1) as usize;
            bytes[bit / 8] |= 1 << (bit % 8);
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn allows_table() {
        let u = "u1";
        let r = "r1";
        let acl = |entries: &[(&str, u32, bool)]| -> Vec<Ace> {
            entries
                .iter()
                .map(|(id, rights, deny)| Ace {
                    id: id.to_string(),
                    name: String::new(),
                    rights: Rights(*rights),
                    deny: *deny,
                })
                .collect()
        };
        // (acl, principals, right, expected)
        let cases: Vec<(Vec<Ace>, Vec<String>, Rights, bool)> = vec![
            (acl(&[(u, 2, false)]), p(&[u]), Rights::READ, true),
            (acl(&[(u, 2, false)]), p(&[u]), Rights::UPDATE, false),
            (acl(&[(u, 2, false)]), p(&["other"]), Rights::READ, false),
            (acl(&[]), p(&[u]), Rights::READ, false),
            (acl(&[(r, 6, false)]), p(&[u, r]), Rights::READ | Rights::UPDATE, true),
            // all bits must come from one entry, as in the store's element match
            (acl(&[(u, 2, false), (r, 4, false)]), p(&[u, r]), Rights::READ | Rights::UPDATE, false),
            // deny wins, whoever grants
            (acl(&[(u, 65535, false), (u, 2, true)]), p(&[u]), Rights::READ, false),
            (acl(&[(u, 65535, false), (r, 2, true)]), p(&[u, r]), Rights::READ, false),
            (acl(&[(r, 65535, false), (u, 8, true)]), p(&[u, r]), Rights::DELETE, false),
            // a deny of other bits does not matter
            (acl(&[(u, 65535, false), (u, 8, true)]), p(&[u]), Rights::READ, true),
            // a deny for someone outside the set does not matter
            (acl(&[(u, 2, false), ("x", 2, true)]), p(&[u]), Rights::READ, true),
            // a deny entry never grants (the reference's quirk)
            (acl(&[(u, 2, true)]), p(&[u]), Rights::READ, false),
            // deny of any bit of a multi-bit mask
            (acl(&[(u, 6, false), (u, 4, true)]), p(&[u]), Rights::READ | Rights::UPDATE, false),
            // empty mask: any allowing entry of a listed principal
            (acl(&[(u, 0, false)]), p(&[u]), Rights::NONE, true),
            (acl(&[(u, 0, true)]), p(&[u]), Rights::NONE, false),
            (acl(&[(u, 65535, false)]), p(&[u]), Rights::FULL_CONTROL, true),
            (acl(&[(u, 65527, false)]), p(&[u]), Rights::FULL_CONTROL, false),
        ];
        for (i, (acl, principals, right, expected)) in cases.iter().enumerate() {
            assert_eq!(allows(principals, acl, *right), *expected, "case {i}");
        }
    }

    #[test]
    fn legacy_bitmap_vectors() {
        let full = legacy_bitmap(&[], true);
        assert_eq!(full.len(), 168);
        assert!(full.starts_with("////") && full.ends_with("//8="), "{full}");
        assert_eq!(legacy_rights(&full).unwrap(), Rights::FULL_CONTROL, "full control is 65535, not 32767");
        let read_only = legacy_bitmap(&[2], false);
        assert!(read_only.starts_with("AgAA"), "{read_only}");
        assert_eq!(legacy_rights(&read_only).unwrap(), Rights::READ);
        let crud = legacy_bitmap(&[1, 2, 3, 4, 5], false);
        assert_eq!(legacy_rights(&crud).unwrap(), Rights(31));
        // the reference's "none": only bit 999 set
        let none = format!("{}AIA=", "A".repeat(164));
        assert_eq!(legacy_rights(&none).unwrap(), Rights::NONE);
        // short forms seen in older clients: two bytes
        assert_eq!(legacy_rights("//8=").unwrap(), Rights::FULL_CONTROL);
        assert_eq!(legacy_rights("//8").unwrap(), Rights::FULL_CONTROL, "padding optional");
        assert_eq!(legacy_rights("AgA=").unwrap(), Rights::READ);
        assert_eq!(legacy_rights("").unwrap(), Rights::NONE);
        assert!(legacy_rights("not base64!").is_err());
        assert!(legacy_rights(&"A".repeat(2000)).is_err());
    }

    #[test]
    fn parse_acl_table() {
        let full = legacy_bitmap(&[], true);
        let got = parse_acl(&json!([
            {"_id": "a", "name": "A", "rights": 2},
            {"_id": "b", "rights": 6.0, "deny": true},
            {"_id": "c", "name": "C", "rights": -1, "deny": null},
            {"_id": "d", "rights": full},
            {"_id": "e", "rights": {"$binary": "AgA=", "$type": "00"}},
            {"_id": "f", "rights": {"$binary": {"base64": "BAA=", "subType": "00"}}, "name": 7},
        ]))
        .unwrap();
        let rights: Vec<(String, u32, bool)> = got.iter().map(|a| (a.id.clone(), a.rights.0, a.deny)).collect();
        assert_eq!(
            rights,
            vec![
                ("a".into(), 2, false),
                ("b".into(), 6, true),
                ("c".into(), 65535, false),
                ("d".into(), 65535, false),
                ("e".into(), 2, false),
                ("f".into(), 4, false),
            ]
        );
        assert_eq!(got[0].name, "A");
        assert_eq!(got[5].name, "");
        assert_eq!(parse_acl(&Value::Null).unwrap(), vec![]);
        for bad in [
            json!({"_id": "a"}),
            json!([{"_id": "a"}]),
            json!([{"_id": "", "rights": 2}]),
            json!([{"_id": 5, "rights": 2}]),
            json!([{"rights": 2}]),
            json!([{"_id": "a", "rights": 2, "deny": "true"}]),
            json!([{"_id": "a", "rights": 2, "deny": 1}]),
            json!([{"_id": "a", "rights": 2.5}]),
            json!([{"_id": "a", "rights": 65536}]),
            json!([{"_id": "a", "rights": -2}]),
            json!([{"_id": "a", "rights": true}]),
            json!([{"_id": "a", "rights": "%%%"}]),
            json!([{"_id": "a", "rights": 1e300}]),
            json!(["a"]),
            json!([{"_id": "x".repeat(300), "rights": 2}]),
        ] {
            assert!(matches!(parse_acl(&bad), Err(SecurityError::InvalidAcl(_))), "{bad}");
        }
    }

    #[test]
    fn stored_acl_mirrors_store() {
        let doc = json!({"_acl": [
            {"_id": "a", "rights": 2},
            {"_id": "b", "rights": "//8="},
            {"_id": "c", "rights": 6.0, "deny": true},
            {"_id": "d", "rights": 4, "deny": "true"},
            {"rights": 2},
            {"_id": 5, "rights": 2},
            {"_id": "e", "rights": -1},
            {"_id": "f"},
        ]});
        let acl = document_acl("entities", &doc);
        let got: Vec<(&str, u32, bool)> = acl.iter().map(|a| (a.id.as_str(), a.rights.0, a.deny)).collect();
        assert_eq!(
            got,
            vec![
                ("a", 2, false),
                ("b", 0, false),
                ("c", 6, true),
                ("d", 4, false),
                ("e", u32::MAX, false),
                ("f", 0, false)
            ]
        );
        assert!(document_acl("entities", &json!({"_acl": {"_id": "a"}})).is_empty());
        assert!(document_acl("entities", &json!({})).is_empty());
        let file = json!({"metadata": {"_acl": [{"_id": "a", "rights": 2}]}, "_acl": [{"_id": "z", "rights": 2}]});
        assert_eq!(document_acl("fs.files", &file)[0].id, "a");
        assert_eq!(document_acl("entities", &file)[0].id, "z");
    }

    #[test]
    fn acl_round_trips_to_json() {
        let acl = vec![Ace::allow("a", "A", Rights::READ), Ace::deny("b", "B", Rights::DELETE)];
        let v = acl_to_value(&acl);
        assert_eq!(
            v,
            json!([{"_id": "a", "name": "A", "rights": 2}, {"_id": "b", "name": "B", "rights": 8, "deny": true}])
        );
        assert_eq!(serde_json::to_value(&acl).unwrap(), v);
        assert_eq!(parse_acl(&v).unwrap(), acl);
        assert_eq!(parse_stored_acl(Some(&v)), acl);
    }

    fn creator<'a>(principals: &'a [String]) -> Creator<'a> {
        Creator { id: "u1", name: "alice", principals, unrestricted: false }
    }

    #[test]
    fn normalize_merges_drops_and_forces_admins() {
        let acl = vec![
            Ace::allow("r1", "", Rights::READ),
            Ace::allow("r1", "readers", Rights::UPDATE),
            Ace::allow("r2", "nobody", Rights::NONE),
            Ace::deny("r3", "", Rights::NONE),
            Ace::deny("r1", "", Rights::DELETE),
            Ace::deny(wellknown::ADMINS, "admins", Rights::READ),
            Ace::allow(wellknown::ADMINS, "admins", Rights(65527)),
            Ace::allow("r4", "", Rights(0x1_0002)),
        ];
        let out = normalize_acl(&acl, WriteKind::Update, &NormalizeOptions::default()).unwrap();
        assert_eq!(
            out,
            vec![
                Ace::allow("r1", "readers", Rights(6)),
                Ace::deny("r1", "", Rights::DELETE),
                Ace::allow(wellknown::ADMINS, "admins", Rights::FULL_CONTROL),
                Ace::allow("r4", "", Rights::READ),
            ]
        );
        let empty = normalize_acl(&[], WriteKind::Update, &NormalizeOptions::default()).unwrap();
        assert_eq!(empty, vec![Ace::allow(wellknown::ADMINS, "admins", Rights::FULL_CONTROL)]);
        let no_force = NormalizeOptions { force_admins: false, ..Default::default() };
        assert_eq!(normalize_acl(&[], WriteKind::Update, &no_force).unwrap(), vec![]);
        assert!(matches!(
            normalize_acl(&[Ace::allow("", "", Rights::READ)], WriteKind::Update, &no_force),
            Err(SecurityError::InvalidAcl(_))
        ));
    }

    #[test]
    fn normalize_on_insert_gives_creator_full_control() {
        let me = p(&["u1", "r1", wellknown::USERS]);
        let opts = NormalizeOptions::default();
        // nothing given: admins + creator
        let out = normalize_acl(&[], WriteKind::Insert(creator(&me)), &opts).unwrap();
        assert_eq!(
            out,
            vec![
                Ace::allow(wellknown::ADMINS, "admins", Rights::FULL_CONTROL),
                Ace::allow("u1", "alice", Rights::FULL_CONTROL)
            ]
        );
        // already covered through a role: no personal entry
        let out =
            normalize_acl(&[Ace::allow("r1", "team", Rights::FULL_CONTROL)], WriteKind::Insert(creator(&me)), &opts)
                .unwrap();
        assert!(!out.iter().any(|a| a.id == "u1"));
        // partial own entry is raised
        let out = normalize_acl(&[Ace::allow("u1", "", Rights::READ)], WriteKind::Insert(creator(&me)), &opts).unwrap();
        assert!(out.contains(&Ace::allow("u1", "alice", Rights::FULL_CONTROL)));
        // a deliberate self-deny of delete is kept
        let out =
            normalize_acl(&[Ace::deny("u1", "", Rights::DELETE)], WriteKind::Insert(creator(&me)), &opts).unwrap();
        assert!(allows(&me, &out, Rights::READ | Rights::UPDATE | Rights::INVOKE));
        assert!(!allows(&me, &out, Rights::DELETE));
        // denying oneself read or update is refused
        for (deny, what) in [(Rights::READ, "read"), (Rights::UPDATE, "update")] {
            let got = normalize_acl(&[Ace::deny("r1", "", deny)], WriteKind::Insert(creator(&me)), &opts);
            assert_eq!(got, Err(SecurityError::SelfLockout(what)));
        }
        // unrestricted creators (admins, root) get no personal entry
        let admin = Creator { unrestricted: true, ..creator(&me) };
        let out = normalize_acl(&[], WriteKind::Insert(admin), &opts).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn max_ace_count_is_refused_not_truncated() {
        let acl: Vec<Ace> = (0..5).map(|i| Ace::allow(format!("p{i}"), "", Rights::READ)).collect();
        let opts = NormalizeOptions { max_ace_count: 5, force_admins: true };
        assert_eq!(normalize_acl(&acl, WriteKind::Update, &opts), Err(SecurityError::TooManyAces { count: 6, max: 5 }));
        // duplicates merge before counting
        let dup: Vec<Ace> = (0..50).map(|_| Ace::allow("p", "", Rights::READ)).collect();
        assert_eq!(normalize_acl(&dup, WriteKind::Update, &opts).unwrap().len(), 2);
    }

    #[test]
    fn may_change_acl_rules() {
        let me = p(&["u1", "r1"]);
        let rw = Rights::READ | Rights::UPDATE;
        let old_ok = vec![Ace::allow("r1", "", rw)];
        let old_read = vec![Ace::allow("r1", "", Rights::READ)];
        let new_ok = vec![Ace::allow("u1", "", rw), Ace::allow("x", "", Rights::FULL_CONTROL)];
        assert_eq!(may_change_acl(&me, &old_ok, &new_ok), Ok(()));
        assert!(matches!(may_change_acl(&me, &old_read, &new_ok), Err(SecurityError::AccessDenied(_))));
        assert_eq!(
            may_change_acl(&me, &old_ok, &[Ace::allow("u1", "", Rights::READ)]),
            Err(SecurityError::SelfLockout("update"))
        );
        assert_eq!(
            may_change_acl(&me, &old_ok, &[Ace::allow("u1", "", Rights::UPDATE)]),
            Err(SecurityError::SelfLockout("read"))
        );
        let self_deny = vec![Ace::allow("u1", "", rw), Ace::deny("r1", "", Rights::READ)];
        assert_eq!(may_change_acl(&me, &old_ok, &self_deny), Err(SecurityError::SelfLockout("read")));
        // a deny on the old ACL blocks the change
        let old_denied = vec![Ace::allow("r1", "", rw), Ace::deny("u1", "", Rights::UPDATE)];
        assert!(matches!(may_change_acl(&me, &old_denied, &new_ok), Err(SecurityError::AccessDenied(_))));
    }
}
