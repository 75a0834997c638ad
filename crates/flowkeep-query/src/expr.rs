//! Aggregation expressions (`{$add: ["$a", 1]}`, `"$field"`, `"$$ROOT"`, literals), used by `$expr`,
//! `$project`, `$addFields`, `$group` and friends.

use crate::error::{QueryError, Result};
use crate::limits::Limits;
use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    source: Value,
}

impl Expr {
    /// Parses an expression.
    pub fn parse(expr: &Value, limits: &Limits) -> Result<Expr> {
        limits.check_input("expression", expr)?;
        Ok(Expr { source: expr.clone() })
    }

    /// Evaluates against `root` (the current document, `$$ROOT`). `None` means "missing" (`$$REMOVE`).
    pub fn eval(&self, _root: &Value) -> Result<Option<Value>> {
        let _ = &self.source;
        Err(QueryError::unknown("expression (not yet implemented)"))
    }
}
