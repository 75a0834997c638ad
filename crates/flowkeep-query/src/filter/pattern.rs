//! Regular expressions in filters: `{$regex, $options}` and the OpenIAP wire form `"__REGEXP /pattern/flags"`.
//!
//! Patterns compile with the `regex` crate, which guarantees matching in time linear in the input. The
//! price is that backreferences and lookaround (which need backtracking) are refused with
//! [`QueryError::BadRegex`] instead of being accepted as in MongoDB's PCRE.

use crate::error::{QueryError, Result};
use crate::limits::Limits;
use serde_json::Value;

/// The prefix by which the OpenIAP clients send a JavaScript `RegExp` inside JSON.
pub const WIRE_PREFIX: &str = "__REGEXP ";

/// Upper bound on the compiled program size, so a short but explosive pattern (`(a{1000}){1000}`)
/// is refused instead of eating memory.
const COMPILED_SIZE_LIMIT: usize = 8 * 1024 * 1024;

/// A compiled query regular expression.
#[derive(Debug, Clone)]
pub struct QueryRegex {
    pattern: String,
    re: regex::Regex,
}

impl QueryRegex {
    /// Compiles `pattern` with MongoDB `$options` (`i`, `m`, `s`, `x`; `u` is accepted and ignored because
    /// matching is always Unicode-aware). The JavaScript-only flags `g`, `y` and `d` of the wire form are
    /// ignored too, since they do not change whether a string matches.
    pub fn new(pattern: &str, options: &str, limits: &Limits) -> Result<QueryRegex> {
        if pattern.len() > limits.max_regex_len {
            return Err(QueryError::TooLarge {
                what: "regular expression".into(),
                size: pattern.len(),
                limit: limits.max_regex_len,
            });
        }
        let mut builder = regex::RegexBuilder::new(pattern);
        builder.size_limit(COMPILED_SIZE_LIMIT);
        for flag in options.chars() {
            match flag {
                'i' => builder.case_insensitive(true),
                'm' => builder.multi_line(true),
                's' => builder.dot_matches_new_line(true),
                'x' => builder.ignore_whitespace(true),
                'u' | 'g' | 'y' | 'd' => &mut builder,
                other => {
                    return Err(QueryError::BadRegex {
                        pattern: pattern.to_string(),
                        message: format!("unsupported regular expression option '{other}'"),
                    })
                }
            };
        }
        let re = builder
            .build()
            .map_err(|e| QueryError::BadRegex { pattern: pattern.to_string(), message: describe(&e) })?;
        Ok(QueryRegex { pattern: pattern.to_string(), re })
    }

    /// Parses the wire form `"__REGEXP /pattern/flags"`; `None` if `s` is not in that form.
    pub fn from_wire(s: &str, limits: &Limits) -> Option<Result<QueryRegex>> {
        let (pattern, flags) = split_wire(s)?;
        Some(QueryRegex::new(pattern, flags, limits))
    }

    /// The source pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Does the regex match this string?
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// Does the regex match this value? Only strings can match. ISO-8601 date strings are dates by the
    /// wire convention, but a regex still sees their text: a pragmatic choice, since a client that sends a
    /// regex against a date field means the text it stored (MongoDB would never match a real date).
    pub fn matches_value(&self, v: &Value) -> bool {
        matches!(v, Value::String(s) if self.re.is_match(s))
    }
}

/// True if `s` is a wire-form regex.
pub fn is_wire_regex(s: &str) -> bool {
    s.starts_with(WIRE_PREFIX)
}

/// Splits `"__REGEXP /pattern/flags"` into pattern and flags: the flags follow the *last* `/`, as in
/// JavaScript's `RegExp.prototype.toString`. Without the slashes, the whole rest is the pattern.
pub(crate) fn split_wire(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix(WIRE_PREFIX)?;
    if let Some(body) = rest.strip_prefix('/') {
        if let Some(last) = body.rfind('/') {
            return Some((body.get(..last)?, body.get(last + 1..)?));
        }
    }
    Some((rest, ""))
}

/// The regex crate's syntax errors span several lines with a caret diagram; keep the line that says
/// what is wrong, and explain the linear-time restriction the client is most likely to hit.
fn describe(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let line = text.lines().find_map(|l| l.trim().strip_prefix("error:")).unwrap_or(text).trim();
            format!("{line} (only linear-time syntax is supported: no backreferences or lookaround)")
        }
        regex::Error::CompiledTooBig(limit) => format!("the compiled pattern exceeds {limit} bytes"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn re(p: &str, o: &str) -> Result<QueryRegex> {
        QueryRegex::new(p, o, &Limits::default())
    }

    #[test]
    fn flags_change_matching() {
        assert!(!re("^abc$", "").unwrap().is_match("ABC"));
        assert!(re("^abc$", "i").unwrap().is_match("ABC"));
        assert!(!re("^b", "").unwrap().is_match("a\nb"));
        assert!(re("^b", "m").unwrap().is_match("a\nb"));
        assert!(!re("a.b", "").unwrap().is_match("a\nb"));
        assert!(re("a.b", "s").unwrap().is_match("a\nb"));
        assert!(re("a b c", "x").unwrap().is_match("abc"));
        assert!(re("é", "u").unwrap().is_match("café"));
        assert!(matches!(re("a", "q"), Err(QueryError::BadRegex { .. })));
    }

    #[test]
    fn backtracking_features_are_refused_with_the_pattern_named() {
        for p in [r"(a)\1", "a(?=b)", "(?<!a)b", "(a"] {
            match re(p, "") {
                Err(QueryError::BadRegex { pattern, message }) => {
                    assert_eq!(pattern, p);
                    assert!(!message.contains('\n'), "{message}");
                }
                other => panic!("{p}: {other:?}"),
            }
        }
    }

    #[test]
    fn length_limit_is_enforced() {
        let limits = Limits { max_regex_len: 4, ..Limits::default() };
        assert!(QueryRegex::new("abcd", "", &limits).is_ok());
        assert!(matches!(QueryRegex::new("abcde", "", &limits), Err(QueryError::TooLarge { .. })));
    }

    #[test]
    fn wire_form() {
        let l = Limits::default();
        assert!(QueryRegex::from_wire("hello", &l).is_none());
        let r = QueryRegex::from_wire("__REGEXP /^a\\/b/gi", &l).unwrap().unwrap();
        assert_eq!(r.pattern(), "^a\\/b");
        assert!(r.is_match("A/B"));
        let bare = QueryRegex::from_wire("__REGEXP ab", &l).unwrap().unwrap();
        assert!(bare.is_match("xaby"));
        assert!(r.matches_value(&json!("a/bc")));
        assert!(!r.matches_value(&json!(5)));
    }
}
