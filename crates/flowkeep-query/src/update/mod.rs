//! Update operators (`$set`, `$inc`, `$push`, …) including the positional `$` and `$[]` forms.
//!
//! An update document is parsed once ([`Update::parse`]) into a typed list of operations, in document
//! order (operators in the order given, fields of each operator in the order given). Everything that can
//! be refused without looking at a stored document is refused here: unknown operators, malformed
//! arguments, paths that conflict with each other (`a` and `a.b`) and changes to the immutable `_id`.
//!
//! [`Update::apply`] then runs the operations against one document. It can still fail on *data*
//! (`$inc` on a string, `$push` on a number, a positional `$` without a match); in that case the
//! document is left exactly as it was, because the operations run on a copy that replaces the original
//! only when all of them succeeded.
//!
//! Semantics follow MongoDB, with these documented choices:
//! * `$inc`/`$mul` keep integers integral; a 64-bit overflow is an error (as in MongoDB, which refuses
//!   to overflow a `long`), never a silent wrap or a silent switch to a double.
//! * `$currentDate` writes the wire date string for both `{$type: "date"}` and `{$type: "timestamp"}`,
//!   since JSON has no timestamp type.
//! * Any operation on `_id` is refused, except `$setOnInsert: {_id: …}`, which upserts need to choose
//!   the new document's id; it fails at apply time if the seed already holds a different `_id`.
//! * `$[<identifier>]` (array filters) is refused with a clear error; `$` and `$[]` (also nested) work.

mod apply;
mod parse;
mod seed;
#[cfg(test)]
mod tests;

use crate::error::{QueryError, Result};
use crate::filter::Filter;
use crate::limits::Limits;
use crate::path::FieldPath;
use serde_json::Value;

/// A parsed operator update.
#[derive(Debug, Clone)]
pub struct Update {
    /// The operations in document order. Parsing guarantees that no two of them touch the same path
    /// or paths nested in each other, so their order only matters for the order of created fields.
    ops: Vec<parse::Op>,
}

/// What an update needs to know besides the document.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext<'a> {
    /// True when the update runs on a document being inserted by an upsert (`$setOnInsert` applies).
    pub is_insert: bool,
    /// The query that selected the document, for the positional `$` operator.
    pub query: Option<&'a Filter>,
    /// The current time in epoch milliseconds, for `$currentDate`.
    pub now_millis: i64,
}

/// True if `update` is an operator update (its keys start with `$`), false for a replacement document.
pub fn is_operator_update(update: &Value) -> bool {
    update.as_object().and_then(|m| m.keys().next()).is_some_and(|k| k.starts_with('$'))
}

impl Update {
    /// Parses an operator update document such as `{$set: {a: 1}, $inc: {"b.c": 2}}`.
    ///
    /// Refused here: a non-object or empty update, plain fields mixed with operators, unknown
    /// operators ([`crate::QueryError::UnknownOperator`]), operator arguments of the wrong shape,
    /// empty or malformed paths, two operations on the same or nested paths, operations on `_id` and
    /// `$[<identifier>]` array filters.
    pub fn parse(update: &Value, limits: &Limits) -> Result<Update> {
        limits.check_input("update", update)?;
        let ops = parse::parse_update(update, limits)?;
        Ok(Update { ops })
    }

    /// Applies the update to `doc`; returns whether the document changed.
    ///
    /// An update that leaves every byte of the document as it was (`$set` to the current value,
    /// `$addToSet` of a present element, `$unset` of a missing field…) returns `false`. On error `doc`
    /// is unchanged.
    pub fn apply(&self, doc: &mut Value, ctx: &UpdateContext<'_>) -> Result<bool> {
        // Work on a copy so that a failure half way through cannot leave a half-updated document.
        if self.ops.iter().any(|op| op.path.is_dynamic()) {
            self.check_concrete_conflicts(doc, ctx)?;
        }
        let mut work = doc.clone();
        for op in &self.ops {
            apply::apply_op(op, &mut work, ctx)?;
        }
        if apply::identical(doc, &work) {
            return Ok(false);
        }
        *doc = work;
        Ok(true)
    }

    /// Positional paths (`$`, `$[]`) can only be checked for conflicts once they are resolved against the
    /// document: `items.$[].v` and `items.0.v` both write `items.0.v` (MongoDB: "Update created a conflict").
    fn check_concrete_conflicts(&self, doc: &Value, ctx: &UpdateContext<'_>) -> Result<()> {
        let mut written: Vec<(FieldPath, usize)> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match &op.action {
                parse::Action::Rename(to) => {
                    written.push((op.path.raw.clone(), i));
                    written.push((to.raw.clone(), i));
                }
                parse::Action::SetOnInsert(_) if !ctx.is_insert => {}
                _ => written.extend(apply::resolve(op, doc, ctx)?.into_iter().map(|p| (p, i))),
            }
        }
        written.sort_by(|a, b| a.0.parts().cmp(b.0.parts()));
        for pair in written.windows(2) {
            if let [(shorter, i), (longer, j)] = pair {
                if i != j && longer.starts_with(shorter) {
                    return Err(QueryError::UpdateFailed {
                        op: self.ops.get(*j).map_or("update", |o| o.name).to_string(),
                        path: longer.dotted(),
                        message: format!("Update created a conflict at '{shorter}'"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The dotted paths this update may write, in document order, with positional parts (`$`, `$[]`)
    /// left as written. `$rename` contributes both its source and its target; `$setOnInsert` is listed
    /// even though it only writes on insert. A store can use this to know which indexes may change:
    /// an index on path `p` is affected if `p` and a listed path are equal or one lies inside the other.
    pub fn modified_paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            out.push(op.path.raw.clone());
            if let parse::Action::Rename(to) = &op.action {
                out.push(to.raw.clone());
            }
        }
        out
    }

    /// The document an upsert starts from: the equality conditions of `filter` (`{a: 1, "b.c": 2}` gives
    /// `{a: 1, b: {c: 2}}`), before this update is applied with `is_insert = true`.
    ///
    /// Equality conditions are top-level fields with a plain value (not an operator object and not a
    /// `"__REGEXP …"` regular expression), `{field: {$eq: v}}`, and the same inside the members of a
    /// top-level `$and`. Other operators (`$gt`, `$in`, `$or`, …) contribute nothing. `_id` is included
    /// when given. Two conditions on the same or nested paths are refused, as MongoDB does.
    pub fn upsert_seed(filter: &Value) -> Result<Value> {
        seed::upsert_seed(filter)
    }
}
