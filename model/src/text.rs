//! Localized strings: one text per language tag, with a fallback chain.
//!
//! Descriptors carry `lang` attributes; the directory stores the same texts
//! as `;lang-xx` attribute options. The untagged text is stored under the
//! empty tag and is the last resort before "any text at all".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A text in several languages. Keys are lowercase BCP 47 tags ("en",
/// "de", "pt-br"); the empty key holds the untagged text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocalizedText(BTreeMap<String, String>);

impl LocalizedText {
    /// An untagged text.
    pub fn plain(text: impl Into<String>) -> Self {
        let mut map = BTreeMap::new();
        map.insert(String::new(), text.into());
        Self(map)
    }

    /// Sets the text for `lang` ("" for untagged). Tags are lowered.
    pub fn insert(&mut self, lang: &str, text: impl Into<String>) {
        self.0.insert(lang.to_ascii_lowercase(), text.into());
    }

    /// True when there is no text in any language.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (tag, text) pair, untagged first, then by tag.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(lang, text)| (lang.as_str(), text.as_str()))
    }

    /// The text for the first of `preferred` that has one, trying each tag
    /// and then its primary subtag ("pt-br" then "pt"); then English, then
    /// the untagged text, then any text. `None` only when empty.
    pub fn get(&self, preferred: &[&str]) -> Option<&str> {
        for lang in preferred {
            let lang = lang.to_ascii_lowercase();
            if let Some(text) = self.0.get(&lang) {
                return Some(text);
            }
            if let Some((primary, _)) = lang.split_once('-') {
                if let Some(text) = self.0.get(primary) {
                    return Some(text);
                }
            }
        }
        self.0
            .get("en")
            .or_else(|| self.0.get(""))
            .or_else(|| self.0.values().next())
            .map(String::as_str)
    }

    /// The text with no language preference (see [`LocalizedText::get`]).
    pub fn default_text(&self) -> Option<&str> {
        self.get(&[])
    }
}

/// The languages a person asked for through the POSIX locale settings,
/// most wanted first, as language tags for [`LocalizedText::get`]:
/// `LANGUAGE` (a colon-separated list) when set, else the first of
/// `LC_ALL`, `LC_MESSAGES` and `LANG` that is set. `de_AT.UTF-8@euro`
/// becomes `de-at`; `C` and `POSIX` ask for nothing. The caller reads the
/// environment (this crate reads none) and passes the values in that
/// order: `[LANGUAGE, LC_ALL, LC_MESSAGES, LANG]`.
pub fn languages_from_locale(settings: [Option<&str>; 4]) -> Vec<String> {
    let [language, all, messages, lang] = settings;
    let tag = |locale: &str| -> Option<String> {
        let base = locale.split(['.', '@']).next().unwrap_or("").trim();
        if base.is_empty() || base == "C" || base == "POSIX" {
            return None;
        }
        Some(base.replace('_', "-").to_ascii_lowercase())
    };
    let main = [all, messages, lang]
        .into_iter()
        .flatten()
        .find(|value| !value.is_empty());
    // GNU gettext ignores LANGUAGE when the locale is C.
    if main.is_some_and(|value| tag(value).is_none()) {
        return Vec::new();
    }
    let mut wanted: Vec<String> = language
        .filter(|value| !value.is_empty())
        .map(|value| value.split(':').filter_map(tag).collect())
        .unwrap_or_default();
    if let Some(found) = main.and_then(tag)
        && !wanted.contains(&found)
    {
        wanted.push(found);
    }
    wanted
}

/// [`languages_from_locale`] of the settings `read` gives for `LANGUAGE`,
/// `LC_ALL`, `LC_MESSAGES` and `LANG` (the caller passes a reader of its
/// environment; this crate reads none).
pub fn languages_from(read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let values = ["LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"].map(read);
    languages_from_locale([
        values[0].as_deref(),
        values[1].as_deref(),
        values[2].as_deref(),
        values[3].as_deref(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_chain() {
        let mut text = LocalizedText::plain("Mail");
        text.insert("de", "Post");
        text.insert("pt-BR", "Correio");
        assert_eq!(text.get(&["de-AT"]), Some("Post"));
        assert_eq!(text.get(&["pt-br"]), Some("Correio"));
        assert_eq!(text.get(&["fr"]), Some("Mail"));
        text.insert("en", "Mail (en)");
        assert_eq!(text.get(&["fr"]), Some("Mail (en)"));
        assert_eq!(LocalizedText::default().get(&["fr"]), None);
    }

    #[test]
    fn languages_come_from_the_locale() {
        assert_eq!(
            languages_from_locale([None, None, None, Some("de_AT.UTF-8")]),
            ["de-at"]
        );
        assert_eq!(
            languages_from_locale([Some("fr:pt_BR"), None, None, Some("de_DE.UTF-8")]),
            ["fr", "pt-br", "de-de"]
        );
        assert_eq!(
            languages_from_locale([None, Some("sv_SE"), Some("de_DE"), Some("en_US")]),
            ["sv-se"]
        );
        assert!(languages_from_locale([Some("de"), None, None, Some("C.UTF-8")]).is_empty());
        assert!(languages_from_locale([None, None, None, None]).is_empty());
        let mut text = LocalizedText::plain("Mail server");
        text.insert("de", "Mailserver");
        let wanted = languages_from_locale([None, None, None, Some("de_AT.UTF-8")]);
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        assert_eq!(text.get(&wanted), Some("Mailserver"));
    }
}
