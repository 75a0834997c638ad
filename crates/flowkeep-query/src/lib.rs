//! The MongoDB query language over `serde_json::Value`: filters, update operators, projection, sort and
//! aggregation. Pure and synchronous: no IO, no clock except what the caller passes in.
//!
//! This crate is the single source of truth for query semantics wherever Flowkeep evaluates queries
//! itself: the embedded store re-checks every candidate row with [`Filter::matches`], watch filters
//! use it, and tests compare it with an independent implementation.
//!
//! Everything a client sends is parsed first ([`Filter::parse`], [`Update::parse`], …) into a typed form
//! that can only be built from valid input, checked against [`Limits`]; evaluation then cannot fail on
//! shape, only on data (e.g. `$inc` on a string). Server-side JavaScript is refused.
//!
//! Wire conventions of OpenIAP: ISO-8601 date-time strings are dates ([`value`]), a string
//! `"__REGEXP /pattern/flags"` in a filter is a regular expression, and `_id` is a plain string.

pub mod aggregate;
pub mod error;
pub mod expr;
pub mod filter;
pub mod find;
pub mod limits;
pub mod path;
pub mod projection;
pub mod sort;
pub mod update;
pub mod value;

pub use aggregate::{LookupSource, Pipeline};
pub use error::{QueryError, Result};
pub use expr::Expr;
pub use filter::{Filter, HintPredicate, IndexHint};
pub use find::FindQuery;
pub use limits::Limits;
pub use path::FieldPath;
pub use projection::Projection;
pub use sort::SortSpec;
pub use update::{Update, UpdateContext};
