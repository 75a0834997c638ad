//! The audit trail: entries of the `audit` collection chained by a keyed hash, so removing, reordering or
//! editing an entry is detected by [`AuditChain::verify`].
//!
//! # The chain
//!
//! Every [`AuditEntry`] has a `seq` rising by one from 1, the `prev` hash of the entry before it
//! ([`GENESIS`] for seq 1), and its own `hash`:
//!
//! ```text
//! hash = hex(HMAC-SHA256(audit key, "flowkeep-audit-v1\n" ‖ canonical JSON of the entry without `hash`))
//! ```
//!
//! The HMAC is keyed with a key used for nothing else, so someone who can write the database but does not
//! hold the master key cannot forge a consistent chain: an edited entry no longer matches its hash, and a
//! re-hashed one does not either.
//!
//! The canonical JSON is [RFC 8785 (JCS)](https://www.rfc-editor.org/rfc/rfc8785): object keys sorted by
//! UTF-16 code units, no whitespace, strings escaped as `JSON.stringify` does, and numbers written as
//! ECMAScript writes them, so `1.0` and `1` hash the same; the one deviation is that integers beyond 2⁵³
//! are written exactly instead of rounded. The canonicaliser is the small [`canonical_json`] below rather
//! than a dependency: it is about sixty lines, the entries only need determinism within Flowkeep, and it
//! keeps the number rules (which decide whether a hash survives a store round trip that turns `1.0` into
//! `1`) in our hands. It is computed from the typed entry, not from the stored document, so fields the
//! store adds (`_id`, `_acl`, `_created`, `_type`, …) are not covered; optional fields that are `None` are
//! left out rather than written as `null`, so adding an optional field in a later version does not change
//! the hash of older entries.
//!
//! # What verification reports
//!
//! [`AuditChain::verify_with`] takes the entries as the store returned them (normally sorted by `seq`) and
//! reports each [`Problem`]: an entry whose hash does not match (**altered**, including a `prev` or `seq`
//! edit and a re-hash with another key), a gap in `seq` (**removed**), an entry stored after one with a
//! higher `seq` (**reordered**), an authentic entry whose `prev` is not its predecessor's hash (**broken
//! link**: only someone holding the key can cause it), a repeated `seq`, and, given the last known head,
//! a **truncated** tail. Removing the newest entries cannot be seen from the entries alone; keep the head
//! (`seq` and `hash`) somewhere else (the log, a monitoring system) and pass it as
//! [`VerifyOptions::expected_head`].
//!
//! # Retention: checkpoints
//!
//! Old entries may be deleted without breaking verification, through a [`AuditKind::Checkpoint`] entry:
//!
//! 1. Pick `k`, the `seq` of the newest entry to delete.
//! 2. Append [`AuditChain::checkpoint`]: an ordinary chained entry at the head that records the `seq` and
//!    `hash` of entry `k` (the last removed entry) in [`AuditEntry::checkpoint`].
//! 3. Delete the entries with `seq ≤ k` (in ascending order; an interrupted deletion is simply resumed).
//!
//! [`AuditChain::verify_with`] then accepts a chain whose first entry `f` follows a recorded checkpoint
//! (`f.seq = k + 1` and `f.prev = hash(k)`), including a chain that starts at the checkpoint itself
//! (`k = checkpoint.seq − 1`). Entries at or below the newest checkpoint's `k` that are still present
//! (a deletion in progress) are fine. A first entry that no authentic checkpoint accounts for is reported
//! as the removal of everything before it; since checkpoints are keyed, deleting more than retention did
//! is detected too. The checkpoint that anchors the start is newer than every deleted entry, so a later
//! retention run deletes it only after writing a newer one.

use std::cmp::Ordering;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::SecurityError;

/// The `prev` of the first entry (seq 1): 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain-separation label hashed before the canonical entry, so this HMAC can never be confused with
/// one computed for another purpose.
const HASH_LABEL: &[u8] = b"flowkeep-audit-v1\n";

type HmacSha256 = Hmac<Sha256>;

/// The 32-byte key of the audit chain, zeroized on drop. Derive it for this purpose only.
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl AuditKey {
    /// Wraps key material.
    pub fn new(key: [u8; 32]) -> Self {
        AuditKey(Zeroizing::new(key))
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// What happened. Stored as a snake_case string; kinds this version does not know are kept in
/// [`AuditKind::Other`] so newer entries still verify.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AuditKind {
    /// A successful sign-in (password, token, federated, web).
    LoginSuccess,
    /// A refused sign-in (unknown user, wrong password, disabled user, throttled).
    LoginFailed,
    /// A user started impersonating another.
    Impersonate,
    /// An impersonation was refused.
    ImpersonateFailed,
    /// An impersonation was reverted.
    ImpersonateReverted,
    /// A token was issued outside a sign-in (refresh, agent token, OIDC).
    TokenIssued,
    /// A password was set or changed.
    PasswordChanged,
    /// The ACL of a user or role changed.
    AclChanged,
    /// The members of a role changed.
    MembershipChanged,
    /// A collection was created.
    CollectionCreated,
    /// A collection was dropped.
    CollectionDropped,
    /// An index was created.
    IndexCreated,
    /// An index was dropped.
    IndexDropped,
    /// A workitem queue was purged.
    WorkitemQueuePurged,
    /// Registering, consuming or sending to a queue or exchange was refused.
    QueueAccessDenied,
    /// A key was generated or rotated.
    KeyRotated,
    /// Retention removed older entries; see the module docs.
    Checkpoint,
    /// A kind this version does not know (written by a newer version).
    Other(String),
}

impl AuditKind {
    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            AuditKind::LoginSuccess => "login_success",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Impersonate => "impersonate",
            AuditKind::ImpersonateFailed => "impersonate_failed",
            AuditKind::ImpersonateReverted => "impersonate_reverted",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::AclChanged => "acl_changed",
            AuditKind::MembershipChanged => "membership_changed",
            AuditKind::CollectionCreated => "collection_created",
            AuditKind::CollectionDropped => "collection_dropped",
            AuditKind::IndexCreated => "index_created",
            AuditKind::IndexDropped => "index_dropped",
            AuditKind::WorkitemQueuePurged => "workitem_queue_purged",
            AuditKind::QueueAccessDenied => "queue_access_denied",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::Checkpoint => "checkpoint",
            AuditKind::Other(s) => s,
        }
    }

    /// The `_type` OpenIAP Flow gives an audit document of this kind (`signin`, `impersonate`,
    /// `collection`, `workitemqueue`), for a store layer that writes it beside the entry so OpenIAP
    /// clients can still filter on it; `None` for kinds the reference does not audit.
    pub fn legacy_type(&self) -> Option<&'static str> {
        match self {
            AuditKind::LoginSuccess | AuditKind::LoginFailed | AuditKind::TokenIssued => Some("signin"),
            AuditKind::Impersonate | AuditKind::ImpersonateFailed | AuditKind::ImpersonateReverted => {
                Some("impersonate")
            }
            AuditKind::CollectionCreated | AuditKind::CollectionDropped => Some("collection"),
            AuditKind::WorkitemQueuePurged => Some("workitemqueue"),
            _ => None,
        }
    }
}

impl From<String> for AuditKind {
    fn from(s: String) -> Self {
        const KNOWN: [AuditKind; 17] = [
            AuditKind::LoginSuccess,
            AuditKind::LoginFailed,
            AuditKind::Impersonate,
            AuditKind::ImpersonateFailed,
            AuditKind::ImpersonateReverted,
            AuditKind::TokenIssued,
            AuditKind::PasswordChanged,
            AuditKind::AclChanged,
            AuditKind::MembershipChanged,
            AuditKind::CollectionCreated,
            AuditKind::CollectionDropped,
            AuditKind::IndexCreated,
            AuditKind::IndexDropped,
            AuditKind::WorkitemQueuePurged,
            AuditKind::QueueAccessDenied,
            AuditKind::KeyRotated,
            AuditKind::Checkpoint,
        ];
        KNOWN.into_iter().find(|k| k.as_str() == s).unwrap_or(AuditKind::Other(s))
    }
}

impl From<AuditKind> for String {
    fn from(k: AuditKind) -> Self {
        k.as_str().to_owned()
    }
}

/// A user or role, by id and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The `_id`, when known (a failed login for an unknown user has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name or username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Who acted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's `_id`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The username (for a failed login: the name that was tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The real user behind an impersonated identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impostor: Option<Principal>,
}

/// What was acted on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The document `_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The document's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The client that made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The agent (for example `openiap-client`, `nodered`, `browser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What a [`AuditKind::Checkpoint`] records: the `seq` and `hash` of the last entry retention removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMark {
    /// The `seq` of the last removed entry.
    pub seq: u64,
    /// Its `hash`.
    pub hash: String,
}

/// An entry to append: everything but the chain fields, which [`AuditChain::append`] fills in.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    /// When it happened. This crate reads no clock; the caller passes the time.
    pub ts: DateTime<Utc>,
    /// What happened.
    pub kind: AuditKind,
    /// Who acted.
    pub actor: Actor,
    /// What was acted on.
    pub target: Target,
    /// The client.
    pub client: Client,
    /// The remote address.
    pub address: Option<String>,
    /// Why (for example why a login failed).
    pub reason: Option<String>,
    /// Anything else, as JSON (`null` for nothing).
    pub details: Value,
}

impl AuditDraft {
    /// A draft of `kind` at `ts` with everything else empty.
    pub fn new(kind: AuditKind, ts: DateTime<Utc>) -> Self {
        AuditDraft {
            ts,
            kind,
            actor: Actor::default(),
            target: Target::default(),
            client: Client::default(),
            address: None,
            reason: None,
            details: Value::Null,
        }
    }
}

/// One entry of the `audit` collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, rising by one.
    pub seq: u64,
    /// When it happened: ISO-8601 UTC with milliseconds (`2026-05-01T12:00:00.000Z`).
    pub ts: String,
    /// What happened.
    pub kind: AuditKind,
    /// Who acted.
    #[serde(default)]
    pub actor: Actor,
    /// What was acted on.
    #[serde(default)]
    pub target: Target,
    /// The client.
    #[serde(default)]
    pub client: Client,
    /// The remote address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
    /// For [`AuditKind::Checkpoint`]: the last entry retention removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointMark>,
    /// The `hash` of the previous entry, hex; [`GENESIS`] for seq 1.
    pub prev: String,
    /// HMAC-SHA256 of this entry without `hash`, hex.
    pub hash: String,
}

/// A known point of the chain, kept outside the database, to detect a truncated tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The `seq` of the newest entry known to exist.
    pub seq: u64,
    /// Its `hash`.
    pub hash: String,
}

/// Options of [`AuditChain::verify_with`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The newest entry known from elsewhere; without it a removed tail cannot be seen.
    pub expected_head: Option<Head>,
}

/// One thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entries `first..=last` are missing (a gap in `seq`, or missing at the start with no checkpoint
    /// accounting for them).
    Removed {
        /// First missing `seq`.
        first: u64,
        /// Last missing `seq`.
        last: u64,
    },
    /// The entry's hash does not match its content: it was edited, or re-hashed without the key.
    Altered {
        /// The `seq` the entry claims.
        seq: u64,
    },
    /// The entry is stored after an entry with a higher `seq`.
    Reordered {
        /// The `seq` of the misplaced entry.
        seq: u64,
        /// The `seq` of the entry stored just before it.
        after: u64,
    },
    /// The entry and its predecessor are both authentic, but its `prev` is not the predecessor's hash
    /// (or not [`GENESIS`] for seq 1): the chain was rebuilt by someone holding the key, or mixed with
    /// another chain.
    BrokenLink {
        /// The `seq` of the entry whose `prev` does not match.
        seq: u64,
    },
    /// More than one entry has this `seq`.
    Duplicate {
        /// The repeated `seq`.
        seq: u64,
    },
    /// The chain ends before the expected head: newest entries were removed.
    Truncated {
        /// The last `seq` present (0 for an empty chain).
        last_seq: u64,
        /// The `seq` of the expected head.
        expected: u64,
    },
    /// The entry at the expected head's `seq` has another hash.
    HeadMismatch {
        /// The head's `seq`.
        seq: u64,
    },
}

impl Problem {
    /// The `seq` the problem is about (the first one for a range), for sorting and display.
    pub fn seq(&self) -> u64 {
        match *self {
            Problem::Removed { first, .. } => first,
            Problem::Altered { seq }
            | Problem::Reordered { seq, .. }
            | Problem::BrokenLink { seq }
            | Problem::Duplicate { seq }
            | Problem::HeadMismatch { seq } => seq,
            Problem::Truncated { last_seq, .. } => last_seq.saturating_add(1),
        }
    }
}

/// The result of [`AuditChain::verify_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many entries were checked.
    pub checked: usize,
    /// Every problem found, sorted by [`Problem::seq`]; empty for an intact chain.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Appends to and verifies the audit chain with the audit key.
#[derive(Debug)]
pub struct AuditChain {
    key: AuditKey,
}

impl AuditChain {
    /// A chain keyed with `key`.
    pub fn new(key: AuditKey) -> Self {
        AuditChain { key }
    }

    /// The entry that follows `prev` (the current head, `None` for an empty chain): `seq` one higher,
    /// `prev` its hash, and its own hash. Appending must be serialised by the caller (one writer, or a
    /// unique index on `seq` and a retry), as two entries appended to the same head would share a `seq`.
    pub fn append(&self, prev: Option<&AuditEntry>, draft: AuditDraft) -> Result<AuditEntry, SecurityError> {
        self.append_with(prev, draft, None)
    }

    /// A [`AuditKind::Checkpoint`] entry after `head` recording `last_removed`, the newest entry retention
    /// is about to delete (see the module docs). `last_removed` must be older than `head`.
    pub fn checkpoint(
        &self,
        head: &AuditEntry,
        last_removed: &AuditEntry,
        ts: DateTime<Utc>,
    ) -> Result<AuditEntry, SecurityError> {
        if last_removed.seq >= head.seq.saturating_add(1) {
            return Err(SecurityError::Audit("a checkpoint can only record an entry older than itself".into()));
        }
        let mark = CheckpointMark { seq: last_removed.seq, hash: last_removed.hash.clone() };
        self.append_with(Some(head), AuditDraft::new(AuditKind::Checkpoint, ts), Some(mark))
    }

    fn append_with(
        &self,
        prev: Option<&AuditEntry>,
        draft: AuditDraft,
        checkpoint: Option<CheckpointMark>,
    ) -> Result<AuditEntry, SecurityError> {
        let (seq, prev_hash) = match prev {
            None => (1, GENESIS.to_owned()),
            Some(p) => (
                p.seq.checked_add(1).ok_or_else(|| SecurityError::Audit("the sequence number overflows".into()))?,
                p.hash.clone(),
            ),
        };
        let mut entry = AuditEntry {
            seq,
            ts: draft.ts.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: draft.kind,
            actor: draft.actor,
            target: draft.target,
            client: draft.client,
            address: draft.address,
            reason: draft.reason,
            details: draft.details,
            checkpoint,
            prev: prev_hash,
            hash: String::new(),
        };
        entry.hash = hex::encode(self.mac(&entry)?.finalize().into_bytes());
        Ok(entry)
    }

    /// The HMAC state over the label and the canonical entry without `hash`.
    fn mac(&self, entry: &AuditEntry) -> Result<HmacSha256, SecurityError> {
        let mut value = serde_json::to_value(entry).map_err(|e| SecurityError::Audit(e.to_string()))?;
        if let Value::Object(map) = &mut value {
            map.remove("hash");
        }
        let mut bytes = Vec::new();
        canonical_json(&value, &mut bytes);
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.key.0.as_slice())
            .map_err(|_| SecurityError::Crypto("audit key length".into()))?;
        mac.update(HASH_LABEL);
        mac.update(&bytes);
        Ok(mac)
    }

    /// Whether the entry's `hash` matches its content under this key (compared in constant time).
    pub fn is_authentic(&self, entry: &AuditEntry) -> bool {
        let Ok(claimed) = hex::decode(&entry.hash) else { return false };
        self.mac(entry).is_ok_and(|mac| mac.verify_slice(&claimed).is_ok())
    }

    /// [`AuditChain::verify_with`] without an expected head.
    pub fn verify(&self, entries: &[AuditEntry]) -> VerifyReport {
        self.verify_with(entries, &VerifyOptions::default())
    }

    /// Checks a chain given in stored order (normally sorted by `seq`) and reports every problem; see the
    /// module docs. Each single tampering is reported once, with the kind and `seq` it concerns: a link
    /// is only judged between two authentic entries, so an altered entry is not reported again as a
    /// broken link.
    pub fn verify_with(&self, entries: &[AuditEntry], options: &VerifyOptions) -> VerifyReport {
        let authentic: Vec<bool> = entries.iter().map(|e| self.is_authentic(e)).collect();
        let mut problems = Vec::new();
        for (entry, ok) in entries.iter().zip(&authentic) {
            if !ok {
                problems.push(Problem::Altered { seq: entry.seq });
            }
        }
        for pair in entries.windows(2) {
            if let [before, entry] = pair {
                if entry.seq < before.seq {
                    problems.push(Problem::Reordered { seq: entry.seq, after: before.seq });
                }
            }
        }

        // From here on, walk the entries in `seq` order (stable, so duplicates keep their stored order).
        let mut order: Vec<(&AuditEntry, bool)> = entries.iter().zip(authentic.iter().copied()).collect();
        order.sort_by_key(|(e, _)| e.seq);

        if let Some(&(first, first_ok)) = order.first() {
            self.check_start(first, first_ok, &order, &mut problems);
        }
        let mut last: Option<(&AuditEntry, bool)> = None;
        for &(entry, ok) in &order {
            if let Some((before, before_ok)) = last {
                match entry.seq.cmp(&before.seq.saturating_add(1)) {
                    Ordering::Less => {
                        problems.push(Problem::Duplicate { seq: entry.seq });
                        continue;
                    }
                    Ordering::Greater => problems.push(Problem::Removed { first: before.seq + 1, last: entry.seq - 1 }),
                    Ordering::Equal => {
                        if ok && before_ok && entry.prev != before.hash {
                            problems.push(Problem::BrokenLink { seq: entry.seq });
                        }
                    }
                }
            }
            last = Some((entry, ok));
        }

        if let Some(head) = &options.expected_head {
            let last_seq = last.map_or(0, |(e, _)| e.seq);
            if last_seq < head.seq {
                problems.push(Problem::Truncated { last_seq, expected: head.seq });
            } else if order.iter().any(|(e, _)| e.seq == head.seq && e.hash != head.hash) {
                problems.push(Problem::HeadMismatch { seq: head.seq });
            }
        }

        problems.sort_by_key(Problem::seq);
        VerifyReport { checked: entries.len(), problems }
    }

    /// Checks how the chain starts: at seq 1 after [`GENESIS`], or after the last entry an authentic
    /// checkpoint says retention removed.
    fn check_start(
        &self,
        first: &AuditEntry,
        first_ok: bool,
        order: &[(&AuditEntry, bool)],
        problems: &mut Vec<Problem>,
    ) {
        if first.seq <= 1 {
            if first_ok && first.prev != GENESIS {
                problems.push(Problem::BrokenLink { seq: first.seq });
            }
            return;
        }
        // Marks of authentic checkpoints; a mark is only meaningful for an entry older than its checkpoint.
        let marks: Vec<&CheckpointMark> = order
            .iter()
            .filter(|(e, ok)| *ok && e.kind == AuditKind::Checkpoint)
            .filter_map(|(e, _)| e.checkpoint.as_ref().filter(|m| m.seq < e.seq))
            .collect();
        if let Some(mark) = marks.iter().find(|m| m.seq.saturating_add(1) == first.seq) {
            if first_ok && first.prev != mark.hash {
                problems.push(Problem::BrokenLink { seq: first.seq });
            }
            return;
        }
        let removable = marks.iter().map(|m| m.seq).max().unwrap_or(0);
        if first.seq > removable.saturating_add(1) {
            problems.push(Problem::Removed { first: removable + 1, last: first.seq - 1 });
        }
        // Otherwise the start lies within what a checkpoint allowed to be removed: a deletion in progress.
    }
}

/// Writes `value` as canonical JSON (RFC 8785, see the module docs) into `out`.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                out.extend_from_slice(es_number(n.as_f64().unwrap_or(0.0)).as_bytes());
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    canonical_json(v, out);
                }
            }
            out.push(b'}');
        }
    }
}

/// serde_json escapes strings exactly as `JSON.stringify` (and so RFC 8785) does: `\"`, `\\`, the short
/// forms `\b \f \n \r \t`, other control characters as lower-case `\u00xx`, everything else literal.
fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serialising a `str` cannot fail; an empty write on the impossible error keeps this total.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A finite double as ECMAScript's `Number.prototype.toString` writes it (RFC 8785 §3.2.2.3).
fn es_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as ECMAScript requires: `d.ddddde<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    let n = exp.parse::<i64>().unwrap_or(0) + 1; // value = 0.digits × 10^n
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        // 0 < n < k here, so the split is inside the digits.
        let (int, frac) = digits.split_at_checked(n as usize).unwrap_or((digits.as_str(), ""));
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        // x ≠ 0, so there is at least one digit.
        let (d, rest) = digits.split_at_checked(1).unwrap_or(("0", ""));
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        if rest.is_empty() {
            format!("{d}e{sign}{}", e.abs())
        } else {
            format!("{d}.{rest}e{sign}{}", e.abs())
        }
    };
    if x < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests;
