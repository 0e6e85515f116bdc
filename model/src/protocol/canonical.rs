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
    // serde_json's own escaping, written straight into `out` (no copy of
    // the string). Serializing a `str` into a `Vec` cannot fail: the only
    // errors of `to_writer` are the writer's, and a `Vec` never refuses.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The canonical JSON of an object whose members are given as canonical
/// bytes already (from [`canonical_json`] or this function): the members
/// sorted by key, compact. The same bytes as [`canonical_json`] of the
/// object built from the same members, without building it: roleoutd
/// keeps the canonical bytes of a build and writes each envelope around
/// them.
pub fn canonical_object(members: &mut [(&str, &[u8])]) -> Vec<u8> {
    members.sort_unstable_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
    let length = members
        .iter()
        .map(|(key, value)| key.len() + value.len() + 4)
        .sum::<usize>();
    let mut out = Vec::with_capacity(length + 2);
    out.push(b'{');
    for (index, (key, member)) in members.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(key, &mut out);
        out.push(b':');
        out.extend_from_slice(member);
    }
    out.push(b'}');
    out
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_of_canonical_members_is_the_canonical_object() {
        let whole = json!({
            "zeta": [1, {"b": 2, "a": "x"}],
            "alpha": "\u{1}",
            "mid": {"k": null, "j": true},
        });
        let Value::Object(map) = &whole else {
            unreachable!("an object literal")
        };
        let parts: Vec<(String, Vec<u8>)> = map
            .iter()
            .map(|(key, value)| (key.clone(), canonical_json(value)))
            .collect();
        let mut members: Vec<(&str, &[u8])> = parts
            .iter()
            .rev()
            .map(|(key, bytes)| (key.as_str(), bytes.as_slice()))
            .collect();
        assert_eq!(canonical_object(&mut members), canonical_json(&whole));
    }

    #[test]
    fn escapes_are_serde_json_escapes() {
        let value = json!({"\u{1}\n": "\"\\\u{7f}é"});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            "{\"\\u0001\\n\":\"\\\"\\\\\u{7f}é\"}"
        );
    }
}
