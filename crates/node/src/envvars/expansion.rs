//! `$(VAR)` references in values, commands and arguments, expanded as the kubelet's
//! `third_party/forked/golang/expansion` does.

use std::collections::HashMap;

/// Expands `$(VAR)` references in `s` (a command or an argument) against `env` as the kubelet
/// does: `$(NAME)` becomes the value of `NAME` when `env` defines it (the last definition wins)
/// and stays as written otherwise; `$$` becomes `$`; any other `$` is kept.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expand_with(s, |name| map.get(name).copied())
}

/// `expansion.Expand` with a lookup; unknown names are left as `$(NAME)`.
pub(super) fn expand_with<'a>(s: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if after.is_empty() {
            // A trailing `$` is kept.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(close) => {
                    let name = &tail[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[close + 1..];
                }
                None => {
                    // An unclosed reference is kept as written.
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion() {
        let env = s(&[("A", "alpha"), ("B", "$(A)"), ("EMPTY", "")]);
        assert_eq!(expand("$(A)-$(A)", &env), "alpha-alpha");
        assert_eq!(expand("x$(UNKNOWN)y", &env), "x$(UNKNOWN)y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$$$(A)", &env), "$alpha");
        assert_eq!(expand("a$$b", &env), "a$b");
        assert_eq!(expand("$A $", &env), "$A $");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("$(EMPTY)|", &env), "|");
        assert_eq!(expand("$()", &env), "$()");
        assert_eq!(expand("é$é$(A)", &env), "é$éalpha");
        // No recursive expansion.
        assert_eq!(expand("$(B)", &env), "$(A)");
    }
}
