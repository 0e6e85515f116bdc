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

use std::borrow::Cow;
use std::io::Write as _;

use serde::ser::{self, Serialize};
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
            // serde_json's map iterates sorted unless `preserve_order` is on;
            // sorting only then saves a sort per object.
            let sorted = entries
                .windows(2)
                .all(|pair| pair[0].0.as_bytes() < pair[1].0.as_bytes());
            if !sorted {
                entries.sort_unstable_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            }
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

/// The canonical JSON bytes of any serializable value: the same bytes as
/// [`canonical_json`] of `serde_json::to_value(value)`, without building
/// the `Value` tree. A build of 10,000 products is a suite of about 8 MB;
/// as a `Value` it is a million small allocations made, walked and freed.
///
/// Members of an object are written where they fall in the output, and an
/// object whose members did not come in key order is reordered in place
/// when it ends. What the direct writer does not handle exactly as
/// `to_value` would (floats of 32 bits, 128-bit integers, non-string map
/// keys other than integers and booleans, serde_json's raw values) makes
/// it give up, and the value is written through `to_value` instead; so are
/// the errors `to_value` reports.
pub fn canonical_json_of<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    match value.serialize(Writer { out: &mut out }) {
        Ok(()) => Ok(out),
        Err(_) => Ok(canonical_json(&serde_json::to_value(value)?)),
    }
}

/// The error that sends a value to the `to_value` path.
fn unsupported(what: &str) -> serde_json::Error {
    ser::Error::custom(format_args!("the canonical writer does not take {what}"))
}

/// Writes one value at the end of `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn number(self, number: impl std::fmt::Display) -> Result<(), serde_json::Error> {
        // Writing to a Vec cannot fail.
        let _ = write!(self.out, "{number}");
        Ok(())
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, value: bool) -> Result<(), serde_json::Error> {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }

    fn serialize_i8(self, value: i8) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_i16(self, value: i16) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_i32(self, value: i32) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_i64(self, value: i64) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_u8(self, value: u8) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_u16(self, value: u16) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_u32(self, value: u32) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_u64(self, value: u64) -> Result<(), serde_json::Error> {
        self.number(value)
    }

    fn serialize_i128(self, _value: i128) -> Result<(), serde_json::Error> {
        Err(unsupported("128-bit integers"))
    }

    fn serialize_u128(self, _value: u128) -> Result<(), serde_json::Error> {
        Err(unsupported("128-bit integers"))
    }

    fn serialize_f32(self, _value: f32) -> Result<(), serde_json::Error> {
        // to_value widens to f64 and prints that; leave it to it.
        Err(unsupported("32-bit floats"))
    }

    fn serialize_f64(self, value: f64) -> Result<(), serde_json::Error> {
        // Exactly what the Value path prints (null when not finite).
        self.out
            .extend_from_slice(Value::from(value).to_string().as_bytes());
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), serde_json::Error> {
        write_string(value.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }

    fn serialize_str(self, value: &str) -> Result<(), serde_json::Error> {
        write_string(value, self.out);
        Ok(())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), serde_json::Error> {
        self.out.push(b'[');
        for (index, byte) in value.iter().enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            let _ = write!(self.out, "{byte}");
        }
        self.out.push(b']');
        Ok(())
    }

    fn serialize_none(self) -> Result<(), serde_json::Error> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), serde_json::Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), serde_json::Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), serde_json::Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        if name.starts_with("$serde_json") {
            return Err(unsupported(name));
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        // An object of one member needs no sorting.
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.push(b':');
        value.serialize(Writer {
            out: &mut *self.out,
        })?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a>, serde_json::Error> {
        self.out.push(b'[');
        Ok(Array {
            out: self.out,
            empty: true,
            close: b"]",
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, serde_json::Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Array<'a>, serde_json::Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Array<'a>, serde_json::Error> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.extend_from_slice(b":[");
        Ok(Array {
            out: self.out,
            empty: true,
            close: b"]}",
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, serde_json::Error> {
        Ok(Object::open(self.out, b"}"))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Object<'a>, serde_json::Error> {
        if name.starts_with("$serde_json") {
            return Err(unsupported(name));
        }
        Ok(Object::open(self.out, b"}"))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Object<'a>, serde_json::Error> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.push(b':');
        Ok(Object::open(self.out, b"}}"))
    }
}

/// An array being written: its elements in order.
struct Array<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
    /// What ends it: `]`, or `]}` for an enum variant's array.
    close: &'static [u8],
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn close(self) -> Result<(), serde_json::Error> {
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Array<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
}

/// One member of an object being written: its key and where its
/// `"key":value` bytes lie in the output.
struct Member {
    key: Cow<'static, str>,
    start: usize,
    end: usize,
}

/// An object being written: members are written as they come and put in
/// key order when it ends.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    /// Where the first member starts (just after `{`).
    start: usize,
    members: Vec<Member>,
    /// The key given by `serialize_key`, waiting for its value.
    key: Option<Cow<'static, str>>,
    /// What ends it: `}`, or `}}` for an enum variant's object.
    close: &'static [u8],
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>, close: &'static [u8]) -> Self {
        out.push(b'{');
        let start = out.len();
        Self {
            out,
            start,
            members: Vec::new(),
            key: None,
            close,
        }
    }

    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        if !self.members.is_empty() {
            self.out.push(b',');
        }
        let start = self.out.len();
        write_string(&key, self.out);
        self.out.push(b':');
        value.serialize(Writer {
            out: &mut *self.out,
        })?;
        self.members.push(Member {
            key,
            start,
            end: self.out.len(),
        });
        Ok(())
    }

    fn close(self) -> Result<(), serde_json::Error> {
        let Object {
            out,
            start,
            mut members,
            close,
            ..
        } = self;
        let sorted = members
            .windows(2)
            .all(|pair| pair[0].key.as_bytes() < pair[1].key.as_bytes());
        if !sorted {
            // A stable sort keeps equal keys in the order they came; the
            // last of them wins, as it does in a serde_json map.
            members.sort_by(|left, right| left.key.as_bytes().cmp(right.key.as_bytes()));
            let written = out.split_off(start);
            let mut first = true;
            for (index, member) in members.iter().enumerate() {
                let next_is_same = members
                    .get(index + 1)
                    .is_some_and(|next| next.key == member.key);
                if next_is_same {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&written[member.start - start..member.end - start]);
            }
        }
        out.extend_from_slice(close);
        Ok(())
    }
}

/// A map key as serde_json takes it: a string, or an integer or boolean
/// written as one.
fn map_key<T: Serialize + ?Sized>(key: &T) -> Result<String, serde_json::Error> {
    match serde_json::to_value(key)? {
        Value::String(text) => Ok(text),
        Value::Bool(value) => Ok(value.to_string()),
        Value::Number(number) if !number.is_f64() => Ok(number.to_string()),
        _ => Err(unsupported("this kind of map key")),
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), serde_json::Error> {
        self.key = Some(Cow::Owned(map_key(key)?));
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| unsupported("a map value without its key"))?;
        self.member(key, value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.member(Cow::Borrowed(key), value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.member(Cow::Borrowed(key), value)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.close()
    }
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
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    /// The reference: the canonical JSON of the serde_json value.
    fn through_value<T: Serialize>(value: &T) -> Vec<u8> {
        canonical_json(&serde_json::to_value(value).unwrap())
    }

    #[derive(Debug, Clone, Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Sample {
        zeta: Vec<Kind>,
        alpha: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mid_point: Option<i64>,
        map: BTreeMap<String, Tagged>,
        numbers: BTreeMap<u16, bool>,
        #[serde(flatten)]
        extra: BTreeMap<String, u8>,
        real: f64,
        letter: char,
        pair: (u8, String),
        nothing: (),
    }

    #[derive(Debug, Clone, Serialize)]
    enum Kind {
        Unit,
        Newtype(String),
        Tuple(i32, bool),
        Struct { zed: u8, and: String },
    }

    #[derive(Debug, Clone, Serialize)]
    #[serde(tag = "type", rename_all = "kebab-case")]
    enum Tagged {
        One { zed: u8, alpha: i8 },
        Two(Inner),
    }

    #[derive(Debug, Clone, Serialize)]
    struct Inner {
        second: u64,
        first: String,
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z-]{1,6}",
            "\\PC{0,6}",
            "[\\x00-\\x1f\"\\\\]{1,3}"
        ]
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Unit),
            text().prop_map(Kind::Newtype),
            (any::<i32>(), any::<bool>()).prop_map(|(a, b)| Kind::Tuple(a, b)),
            (any::<u8>(), text()).prop_map(|(zed, and)| Kind::Struct { zed, and }),
        ]
    }

    fn tagged() -> impl Strategy<Value = Tagged> {
        prop_oneof![
            (any::<u8>(), any::<i8>()).prop_map(|(zed, alpha)| Tagged::One { zed, alpha }),
            (any::<u64>(), text()).prop_map(|(second, first)| Tagged::Two(Inner { second, first })),
        ]
    }

    fn sample() -> impl Strategy<Value = Sample> {
        (
            prop::collection::vec(kind(), 0..4),
            prop::option::of(text()),
            prop::option::of(any::<i64>()),
            prop::collection::btree_map(text(), tagged(), 0..4),
            prop::collection::btree_map(any::<u16>(), any::<bool>(), 0..3),
            // Flattened keys may repeat the struct's own: the last wins.
            prop::collection::btree_map(
                prop_oneof![text(), Just("alpha".to_owned()), Just("real".to_owned())],
                any::<u8>(),
                0..3,
            ),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(0.1),
                Just(-0.0),
                Just(1e300)
            ],
            any::<char>(),
            (any::<u8>(), text()),
        )
            .prop_map(
                |(zeta, alpha, mid_point, map, numbers, extra, real, letter, pair)| Sample {
                    zeta,
                    alpha,
                    mid_point,
                    map,
                    numbers,
                    extra,
                    real,
                    letter,
                    pair,
                    nothing: (),
                },
            )
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_direct_writer_writes_the_bytes_of_the_value_path(value in sample()) {
            prop_assert_eq!(canonical_json_of(&value).unwrap(), through_value(&value));
        }

        #[test]
        fn the_direct_writer_writes_any_json_value_as_canonical_json(value in json_value()) {
            prop_assert_eq!(canonical_json_of(&value).unwrap(), canonical_json(&value));
        }
    }

    #[test]
    fn what_the_direct_writer_does_not_take_goes_through_the_value_path() {
        #[derive(Serialize)]
        struct Odd {
            small: f32,
            big: i128,
            huge: u128,
        }
        let odd = Odd {
            small: 0.1,
            big: -5,
            huge: 7,
        };
        assert_eq!(canonical_json_of(&odd).unwrap(), through_value(&odd));
        assert_eq!(
            String::from_utf8(canonical_json_of(&odd).unwrap()).unwrap(),
            format!("{{\"big\":-5,\"huge\":7,\"small\":{}}}", f64::from(0.1f32))
        );
        let too_big = [u128::MAX];
        assert!(canonical_json_of(&too_big).is_err());
        let float_keys = BTreeMap::from([(vec![1u8], 1)]);
        assert!(canonical_json_of(&float_keys).is_err());
    }

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
