//! Exchange routing rules of the in-process broker, written to behave like RabbitMQ's: direct (exact
//! key), fanout (everything), topic (dot-separated words; `*` is exactly one word, `#` zero or more) and
//! headers (`x-match` all or any over the binding's non-`x-` headers).

use crate::{Binding, ExchangeKind, Headers, HeadersMatch};

/// Whether a message with this routing key and these headers goes through this binding.
pub(crate) fn matches(kind: ExchangeKind, binding: &Binding, routing_key: &str, headers: &Headers) -> bool {
    match kind {
        ExchangeKind::Fanout => true,
        ExchangeKind::Direct => binding.routing_key == routing_key,
        ExchangeKind::Topic => topic_matches(&binding.routing_key, routing_key),
        ExchangeKind::Headers => headers_match(binding, headers),
    }
}

/// Topic pattern matching over dot-separated words.
pub(crate) fn topic_matches(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    // Iterative matching with backtracking to the last `#` (like glob matching); linear-ish in practice
    // and never recursive, so a hostile pattern cannot blow the stack.
    let (mut p, mut k) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() && pattern[p] == "#" {
            star = Some((p, k));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == "*" || pattern[p] == key[k]) {
            p += 1;
            k += 1;
        } else if let Some((sp, sk)) = star {
            p = sp + 1;
            k = sk + 1;
            star = Some((sp, sk + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == "#" {
        p += 1;
    }
    p == pattern.len()
}

fn headers_match(binding: &Binding, headers: &Headers) -> bool {
    let mut wanted = binding.headers.iter().filter(|(k, _)| !k.starts_with("x-")).peekable();
    if wanted.peek().is_none() {
        // RabbitMQ: an empty `all` binding matches everything, an empty `any` binding nothing.
        return binding.headers_match == HeadersMatch::All;
    }
    let mut hit = |(k, v): (&String, &String)| headers.get(k) == Some(v);
    match binding.headers_match {
        HeadersMatch::All => wanted.all(&mut hit),
        HeadersMatch::Any => wanted.any(&mut hit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#", "", true),
            ("#", "x.y", true),
            ("#.c", "a.b.c", true),
            ("#.c", "c", true),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.x.y.c", true),
            ("a.#.c", "a.x.y.d", false),
            ("*", "a.b", false),
            ("*.*", "a.b", true),
            ("a.b", "a.b.c", false),
            ("#.#", "a", true),
        ];
        for (pattern, key, want) in cases {
            assert_eq!(topic_matches(pattern, key), want, "{pattern} vs {key}");
        }
    }

    #[test]
    fn headers() {
        let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let msg: Headers = h(&[("a", "1"), ("b", "2")]);
        let all = Binding::headers(h(&[("a", "1"), ("b", "2"), ("x-ignored", "z")]), HeadersMatch::All);
        assert!(matches(ExchangeKind::Headers, &all, "", &msg));
        let all_miss = Binding::headers(h(&[("a", "1"), ("c", "3")]), HeadersMatch::All);
        assert!(!matches(ExchangeKind::Headers, &all_miss, "", &msg));
        let any = Binding::headers(h(&[("a", "9"), ("b", "2")]), HeadersMatch::Any);
        assert!(matches(ExchangeKind::Headers, &any, "", &msg));
        assert!(matches(ExchangeKind::Headers, &Binding::default(), "", &msg));
        assert!(!matches(ExchangeKind::Headers, &Binding::headers(Headers::new(), HeadersMatch::Any), "", &msg));
    }
}
