//! Canonical JSON: the exact bytes a signature covers.
//!
//! roleoutd signs what it serves and the installer checks the signature
//! over bytes it computes itself from the parsed body, so both sides must
//! turn one JSON value into the same bytes whatever order the keys came
//! in. The rule: object keys sorted by their UTF-8 bytes at every level, no
//! white space, strings and numbers written as `serde_json` writes them.
//! Keys are sorted here rather than trusting the map order of
//! `serde_json::Value`, which the `preserve_order` feature (pulled in by any
//! crate of a build) would turn into insertion order.

use serde_json::Value;

/// The canonical JSON bytes of `value`: keys sorted by their UTF-8 bytes
/// recursively, compact.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            out.push(b'{');
            for (index, (key, member)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(text) => write_string(text, out),
        // `Display` of a JSON value is its compact serde_json text and
        // cannot fail, unlike `to_writer`, whose error type covers I/O.
        leaf => out.extend_from_slice(leaf.to_string().as_bytes()),
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // Through `Value`'s `Display` so that escaping is serde_json's own.
    let quoted = Value::String(text.to_owned()).to_string();
    out.extend_from_slice(quoted.as_bytes());
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn escapes_are_serde_json_escapes() {
        let value = json!({"\u{1}\n": "\"\\\u{7f}é"});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            "{\"\\u0001\\n\":\"\\\"\\\\\u{7f}é\"}"
        );
    }
}
