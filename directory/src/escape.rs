//! Escaping of values built into filters and DNs.
//!
//! Every value that Roleout puts into a search filter or a DN goes through
//! one of these two functions, even when it comes from a type that already
//! forbids the dangerous characters: a DN read back from the directory (a
//! member, a parent role) can hold anything, and a filter built from it
//! unescaped could match more than intended (fail open).

use std::borrow::Cow;

/// Escapes `value` for use as an assertion value in a filter
/// (`(cn=VALUE)`): `*`, `(`, `)`, `\` and NUL become `\2a`-style escapes
/// (RFC 4515).
pub fn filter_value(value: &str) -> Cow<'_, str> {
    ldap3::ldap_escape(value)
}

/// Escapes `value` for use as the value of an RDN (`cn=VALUE,ou=...`):
/// `"`, `+`, `,`, `;`, `<`, `=`, `>`, `\`, NUL, a leading space or `#`
/// and a trailing space are escaped (RFC 4514).
pub fn dn_value(value: &str) -> Cow<'_, str> {
    ldap3::dn_escape(value)
}

/// The filter `(ATTRIBUTE=VALUE)` with `value` escaped. `attribute` is
/// Roleout's own constant, never input.
pub fn equality(attribute: &str, value: &str) -> String {
    format!("({attribute}={})", filter_value(value))
}

/// `(&FILTER1FILTER2...)`, or the single filter itself. The parts must
/// already be complete, escaped filters.
pub fn and<'a>(filters: impl IntoIterator<Item = &'a str>) -> String {
    let filters: Vec<&str> = filters.into_iter().collect();
    match filters.as_slice() {
        [single] => (*single).to_owned(),
        many => format!("(&{})", many.concat()),
    }
}

/// The DN `ATTRIBUTE=VALUE,PARENT` with `value` escaped.
pub fn child_dn(attribute: &str, value: &str, parent: &str) -> String {
    format!("{attribute}={},{parent}", dn_value(value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn filter_values_cannot_open_a_filter() {
        assert_eq!(filter_value("*)(cn=*"), "\\2a\\29\\28cn=\\2a");
        assert_eq!(filter_value("a\0b"), "a\\00b");
        assert_eq!(filter_value("back\\slash"), "back\\5cslash");
        assert_eq!(filter_value("plain-name_1.0"), "plain-name_1.0");
        assert_eq!(equality("cn", "*"), "(cn=\\2a)");
        // The escaped filter still parses, as one equality assertion.
        assert!(ldap3::parse_filter(equality("cn", "*)(objectClass=*")).is_ok());
    }

    #[test]
    fn dn_values_cannot_add_an_rdn() {
        assert_eq!(dn_value("a,ou=evil"), "a\\2cou\\3devil");
        assert_eq!(dn_value("a+cn=b"), "a\\2bcn\\3db");
        assert_eq!(dn_value("say \"hi\""), "say \\22hi\\22");
        assert_eq!(dn_value("#leading"), "\\23leading");
        assert_eq!(dn_value(" leading"), "\\20leading");
        assert_eq!(dn_value("trailing "), "trailing\\20");
        assert_eq!(dn_value("mid#dle mid"), "mid#dle mid");
        assert_eq!(dn_value("nul\0"), "nul\\00");
        assert_eq!(
            child_dn("cn", "x,y", "ou=roles,dc=example,dc=org"),
            "cn=x\\2cy,ou=roles,dc=example,dc=org"
        );
    }

    /// Any characters, NUL and the special ones included.
    fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::collection::vec(proptest::char::any(), 0..40)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest::proptest! {
        #[test]
        fn any_value_stays_one_assertion(value in any_text()) {
            let escaped = filter_value(&value);
            proptest::prop_assert!(!escaped.contains(['*', '(', ')', '\0']));
            proptest::prop_assert!(ldap3::parse_filter(equality("cn", &value)).is_ok());
        }

        #[test]
        fn any_value_stays_one_rdn_value(value in any_text()) {
            let escaped = dn_value(&value);
            proptest::prop_assert!(!escaped.contains([',', '+', '"', ';', '<', '>', '=', '\0']));
            proptest::prop_assert!(!escaped.starts_with([' ', '#']) && !escaped.ends_with(' '));
        }
    }

    #[test]
    fn and_joins_complete_filters() {
        assert_eq!(and(["(a=1)"]), "(a=1)");
        assert_eq!(and(["(a=1)", "(b=2)"]), "(&(a=1)(b=2))");
    }
}
