//! Text that leaves us for somewhere it could be misread: a terminal (control characters
//! escaped), a shell (quoted), a systemd unit (quoted, `%` and `$` escaped), Go's JSON (etcdctl's
//! exact string escapes), and JSON documents with Go's `omitempty`. A leaf: it imports nothing
//! of the crate.

/// Make text from a file or a server safe to print: control characters become escapes.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A JSON object without the fields Go's `omitempty` leaves out of etcdctl's documents: zero
/// numbers, `false`, empty strings and lists (nested objects are kept).
pub fn omit_empty(map: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    use serde_json::Value;
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    };
    Value::Object(map.into_iter().filter(|(_, v)| !empty(v)).collect())
}

/// Quote a value for a shell when it needs it. A value with control characters (an escape
/// sequence in a manifest, say) is written as `$'...'` with `\xNN` escapes, so that nothing raw
/// reaches the terminal and the shell still gets the exact bytes.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.,:=_-@+".contains(c))
    {
        return v.to_string();
    }
    if !v.chars().any(char::is_control) {
        return format!("'{}'", v.replace('\'', "'\\''"));
    }
    let mut out = String::from("$'");
    for c in v.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// One word of `ExecStart=`: quoted when needed, `%` and `$` escaped (systemd expands both).
pub fn systemd_quote(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@+%$".contains(&b));
    if plain {
        return escaped;
    }
    let mut out = String::from("\"");
    for c in escaped.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string as Go's encoding/json writes it, HTML-safe escapes included.
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_never_lets_control_characters_through() {
        assert_eq!(shell_quote("/etc/x.crt"), "/etc/x.crt");
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(
            shell_quote("x\u{1b}]0;t\u{7}\ny'"),
            "$'x\\x1b]0;t\\x07\\x0ay\\''"
        );
    }

    #[test]
    fn escape_control_characters() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
    }

    #[test]
    fn go_escaping() {
        assert_eq!(
            go_json_string("a<b>&\"\\\n\u{1}"),
            r#""a\u003cb\u003e\u0026\"\\\n\u0001""#
        );
    }
}
