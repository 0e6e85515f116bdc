//! The third pass: the parsed model, in its serde JSON form, against
//! `schemas/descriptor.schema.json`.
//!
//! The schema is the published contract of the parsed model (other tools
//! read and write the JSON form). Checking every parse against it keeps
//! the two from drifting apart: a model the schema refuses is reported as
//! an error rather than stored.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use super::Descriptor;

/// The schema text, compiled into the crate.
const SCHEMA: &str = include_str!("../../../schemas/descriptor.schema.json");

/// Longest schema reason kept in a diagnostic, in characters.
const MAX_REASON: usize = 200;

/// The schema as JSON.
pub fn descriptor_schema() -> Value {
    // The schema is a file of this crate, checked by its tests; were it
    // broken, Null makes every validation report the problem instead.
    serde_json::from_str(SCHEMA).unwrap_or(Value::Null)
}

fn validator() -> &'static Result<Validator, String> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA)
            .map_err(|error| format!("the descriptor schema is not JSON: {error}"))?;
        jsonschema::draft202012::new(&schema)
            .map_err(|error| format!("the descriptor schema does not compile: {error}"))
    })
}

/// The schema errors of `descriptor`, each as a message naming the JSON
/// pointer of the offending value; empty when it conforms.
pub(super) fn check(descriptor: &Descriptor) -> Vec<String> {
    let validator = match validator() {
        Ok(validator) => validator,
        Err(message) => return vec![message.clone()],
    };
    let value = match serde_json::to_value(descriptor) {
        Ok(value) => value,
        Err(error) => {
            return vec![format!(
                "the descriptor does not serialize to JSON: {error}"
            )];
        }
    };
    validator
        .iter_errors(&value)
        .map(|error| {
            // jsonschema's message quotes the offending value, which can be
            // a whole subtree: keep the diagnostic to one readable line.
            let mut reason: String = error.to_string().chars().take(MAX_REASON).collect();
            if reason.len() < error.to_string().len() {
                reason.push_str("...");
            }
            format!(
                "the parsed descriptor breaks schemas/descriptor.schema.json at {}: {reason}",
                match error.instance_path().as_str() {
                    "" => "/",
                    path => path,
                }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_errors_name_the_json_pointer() {
        let text = r#"<product xmlns="urn:roleout:descriptor:1" id="x" version="1"/>"#;
        let descriptor = super::super::parse("x.xml", text.as_bytes())
            .descriptor
            .unwrap();
        assert!(check(&descriptor).is_empty());
        // A value the reader would never make, to hear the schema speak.
        let mut value = serde_json::to_value(&descriptor).unwrap();
        value["product"]["platform"]["os"] = serde_json::json!([1]);
        let validator = validator().as_ref().unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|error| error.instance_path().as_str().to_owned())
            .collect();
        assert_eq!(errors, ["/product/platform/os/0"]);
    }

    #[test]
    fn the_schema_compiles() {
        assert!(validator().is_ok(), "{:?}", validator().as_ref().err());
        assert!(descriptor_schema().is_object());
    }
}
