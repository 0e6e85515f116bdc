//! Catalog entries as plain data, and the value encodings they use.
//!
//! The mapping works on [`CatalogEntry`] values (a DN and text values by
//! attribute description) rather than on ldap3 types, so that it stays a
//! pure function that unit tests, the LDIF exporter and the LDAP writer all
//! share.
//!
//! # Encodings
//!
//! LDAP values form a set: they have no order and cannot repeat. Lists whose
//! order matters (argv, file lists, exit codes, ...) are therefore stored
//! one value per element with a `{n}` prefix giving the element's position,
//! the same convention OpenLDAP uses for its own ordered attributes:
//! `roleoutArgv: {0}dpkg`, `roleoutArgv: {1}-i`. Readers sort by the prefix
//! and insist on positions 0..n without gaps or repeats.
//!
//! Free text is stored with the octet-string syntax, which (unlike
//! directoryString) accepts the empty string and keeps spaces exactly, so a
//! value reads back byte for byte. Localized text uses language options:
//! the untagged text under the bare attribute, `de` under `;lang-de`.

use std::collections::BTreeMap;
use std::fmt;

use roleout_model::ids::Sha256;
use roleout_model::text::LocalizedText;

use crate::catalog::CatalogError;

/// One directory entry of the catalog: its DN and its values by attribute
/// description (`roleoutName;lang-de`). Attribute descriptions are
/// compared without regard to case, as LDAP does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The entry's distinguished name.
    pub dn: String,
    /// Values by attribute description, `objectClass` included.
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl CatalogEntry {
    /// An entry with no attributes yet.
    pub fn new(dn: impl Into<String>) -> Self {
        Self {
            dn: dn.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Appends values to `description` (creating it).
    pub(crate) fn push(&mut self, description: &str, value: impl Into<String>) {
        self.attributes
            .entry(description.to_owned())
            .or_default()
            .push(value.into());
    }

    /// Removes every value of `description`.
    pub(crate) fn remove(&mut self, description: &str) {
        self.attributes
            .retain(|key, _| !key.eq_ignore_ascii_case(description));
    }

    /// Stores an ordered list as `{n}`-prefixed values; nothing when empty.
    pub(crate) fn push_ordered<I, S>(&mut self, description: &str, values: I)
    where
        I: IntoIterator<Item = S>,
        S: fmt::Display,
    {
        for (position, value) in values.into_iter().enumerate() {
            self.push(description, format!("{{{position}}}{value}"));
        }
    }

    /// Stores an optional single value.
    pub(crate) fn push_option(&mut self, description: &str, value: Option<impl Into<String>>) {
        if let Some(value) = value {
            self.push(description, value);
        }
    }

    /// Stores localized text under `name` and `name;lang-xx`. Language tags
    /// must be lowercase letters, digits and `-` (an attribute option's
    /// alphabet, lowercased because options compare without case and the
    /// model keeps tags lowercase).
    pub(crate) fn push_localized(
        &mut self,
        name: &str,
        text: &LocalizedText,
    ) -> Result<(), CatalogError> {
        for (lang, value) in text.iter() {
            if lang.is_empty() {
                self.push(name, value);
                continue;
            }
            let valid = lang
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid || lang.starts_with('-') {
                return Err(CatalogError::Unrepresentable {
                    what: format!("{name} text for language {lang:?}"),
                    reason: "a language tag may hold only lowercase letters, digits and '-'"
                        .to_owned(),
                });
            }
            self.push(&format!("{name};lang-{lang}"), value);
        }
        Ok(())
    }

    /// Every value of `description` (case-insensitive, exact options).
    pub fn values(&self, description: &str) -> Vec<&str> {
        self.iter_values(description).collect()
    }

    /// The values of `description`, without collecting them: readers look
    /// up a dozen attributes of each of tens of thousands of entries.
    pub(crate) fn iter_values<'a, 'b>(
        &'a self,
        description: &'b str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'b> {
        self.attributes
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(description))
            .flat_map(|(_, values)| values.iter().map(String::as_str))
    }

    /// Whether the entry has `objectClass` `class`.
    pub fn has_class(&self, class: &str) -> bool {
        self.iter_values("objectClass")
            .any(|value| value.eq_ignore_ascii_case(class))
    }

    /// At most one value of `description`.
    pub(crate) fn single(&self, description: &str) -> Result<Option<&str>, CatalogError> {
        let mut values = self.iter_values(description);
        let first = values.next();
        let more = values.count();
        if more == 0 {
            Ok(first)
        } else {
            Err(self.malformed(format!(
                "{description} has {} values where one is expected",
                more + 1
            )))
        }
    }

    /// Moves out the value of `description` when it has exactly one.
    pub(crate) fn take_single(&mut self, description: &str) -> Option<String> {
        let mut found = self
            .attributes
            .iter_mut()
            .filter(|(key, _)| key.eq_ignore_ascii_case(description));
        let (_, values) = found.next()?;
        if found.next().is_some() || values.len() != 1 {
            return None;
        }
        values.pop()
    }

    /// Exactly one value of `description`.
    pub(crate) fn required(&self, description: &str) -> Result<&str, CatalogError> {
        self.single(description)?
            .ok_or_else(|| self.malformed(format!("{description} is missing")))
    }

    /// A number stored with the integer syntax.
    pub(crate) fn number<T: std::str::FromStr>(
        &self,
        description: &str,
    ) -> Result<Option<T>, CatalogError> {
        self.single(description)?
            .map(|text| {
                text.parse::<T>().map_err(|_| {
                    self.malformed(format!(
                        "{description} value {text:?} is not a valid number"
                    ))
                })
            })
            .transpose()
    }

    /// A `TRUE`/`FALSE` value (absent is false).
    pub(crate) fn boolean(&self, description: &str) -> Result<bool, CatalogError> {
        match self.single(description)? {
            None | Some("FALSE") => Ok(false),
            Some("TRUE") => Ok(true),
            Some(other) => Err(self.malformed(format!(
                "{description} value {other:?} is neither TRUE nor FALSE"
            ))),
        }
    }

    /// The elements of an ordered list, in order (see the module comment).
    pub(crate) fn ordered(&self, description: &str) -> Result<Vec<&str>, CatalogError> {
        let values = self.values(description);
        let mut slots: Vec<Option<&str>> = vec![None; values.len()];
        for value in values {
            let parsed = value.strip_prefix('{').and_then(|rest| {
                let (position, element) = rest.split_once('}')?;
                let digits_only =
                    !position.is_empty() && position.bytes().all(|b| b.is_ascii_digit());
                let position: usize = if digits_only {
                    position.parse().ok()?
                } else {
                    return None;
                };
                Some((position, element))
            });
            let Some((position, element)) = parsed else {
                return Err(self.malformed(format!(
                    "{description} value {value:?} lacks its {{n}} position prefix"
                )));
            };
            match slots.get_mut(position) {
                Some(slot @ None) => *slot = Some(element),
                Some(Some(_)) => {
                    return Err(
                        self.malformed(format!("{description} has position {{{position}}} twice"))
                    );
                }
                None => {
                    return Err(self.malformed(format!(
                        "{description} position {{{position}}} is beyond its {} values",
                        slots.len()
                    )));
                }
            }
        }
        // Every position is filled: n values with distinct positions below n.
        Ok(slots.into_iter().flatten().collect())
    }

    /// Localized text stored under `name` and `name;lang-xx`.
    pub(crate) fn localized(&self, name: &str) -> Result<LocalizedText, CatalogError> {
        const OPTION: &[u8] = b";lang-";
        let mut text = LocalizedText::default();
        // Compared in place, without lowering copies: readers call this for
        // a few attributes of each of thousands of entries.
        for (key, values) in &self.attributes {
            let bytes = key.as_bytes();
            let lang = if key.eq_ignore_ascii_case(name) {
                ""
            } else if bytes.len() > name.len() + OPTION.len()
                && bytes[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && bytes[name.len()..name.len() + OPTION.len()].eq_ignore_ascii_case(OPTION)
            {
                // The bytes before are ASCII, so this is a character
                // boundary; insert lowers the tag.
                &key[name.len() + OPTION.len()..]
            } else {
                continue;
            };
            match values.as_slice() {
                [value] => text.insert(lang, value.clone()),
                _ => {
                    return Err(self.malformed(format!(
                        "{key} has {} values where one is expected",
                        values.len()
                    )));
                }
            }
        }
        Ok(text)
    }

    /// A JSON value stored in one attribute value.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        description: &str,
        text: &str,
    ) -> Result<T, CatalogError> {
        serde_json::from_str(text)
            .map_err(|error| self.malformed(format!("{description} holds invalid JSON: {error}")))
    }

    /// The error for a value this entry should not hold.
    pub(crate) fn malformed(&self, reason: String) -> CatalogError {
        CatalogError::Malformed {
            dn: self.dn.clone(),
            reason,
        }
    }
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Sha256 {
    Sha256::of(bytes)
}

/// Canonical JSON of a model value: serde's output, whose field order is
/// the declaration order and whose maps are sorted (`BTreeMap`), so equal
/// values give equal bytes.
pub(crate) fn canonical_json<T: serde::Serialize>(value: &T) -> Result<String, CatalogError> {
    serde_json::to_string(value).map_err(|error| CatalogError::Unrepresentable {
        what: "a catalog value".to_owned(),
        reason: format!("it does not serialize to JSON: {error}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn ordered_values_come_back_in_order() {
        let mut entry = CatalogEntry::new("cn=x");
        entry.push_ordered("roleoutArgv", ["b", "a", "a", ""]);
        // Shuffle as a server might.
        entry.attributes.get_mut("roleoutArgv").unwrap().reverse();
        assert_eq!(entry.ordered("roleoutargv").unwrap(), ["b", "a", "a", ""]);
    }

    #[test]
    fn ordered_values_refuse_gaps_repeats_and_missing_prefixes() {
        for bad in [
            vec!["{0}a", "{2}b"],
            vec!["{0}a", "{0}b"],
            vec!["a"],
            vec!["{x}a"],
        ] {
            let mut entry = CatalogEntry::new("cn=bad");
            for value in bad {
                entry.push("roleoutArgv", value);
            }
            let error = entry.ordered("roleoutArgv").unwrap_err();
            assert!(error.to_string().contains("cn=bad"), "{error}");
        }
    }

    #[test]
    fn localized_text_uses_language_options() {
        let mut text = LocalizedText::plain("Mail");
        text.insert("pt-BR", "Correio");
        let mut entry = CatalogEntry::new("cn=x");
        entry.push_localized("roleoutName", &text).unwrap();
        assert_eq!(entry.values("roleoutName;lang-pt-br"), ["Correio"]);
        assert_eq!(entry.localized("roleoutName").unwrap(), text);
        let mut odd = LocalizedText::default();
        odd.insert("de", "x");
        let mut json: serde_json::Value = serde_json::to_value(&odd).unwrap();
        json["x;y"] = "z".into();
        let odd: LocalizedText = serde_json::from_value(json).unwrap();
        assert!(entry.push_localized("roleoutName", &odd).is_err());
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            sha256(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
