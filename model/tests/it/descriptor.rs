//! The XML descriptor format: good descriptors that use every element
//! round-trip through `to_xml` and validate against the JSON schema; the
//! corpus of broken and hostile descriptors under `tests/corpus/` gives the
//! exact first error each one must; arbitrary and mutated bytes never
//! panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use roleout_model::command::{DEFAULT_TIMEOUT_SECS, ExitMeaning, InstallerKind, Phase};
use roleout_model::condition::{Condition, RunPolicy};
use roleout_model::descriptor::{
    self, Descriptor, MAX_DEPTH, MAX_ELEMENTS, MAX_SIZE, Parsed, Severity, descriptor_schema,
    parse, to_xml,
};
use roleout_model::ids::Sha256;
use roleout_model::product::{DEFAULT_PRIORITY, ProductSource};
use roleout_model::suite::{SuiteSource, Translation};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A product that uses every product element and attribute.
fn full_product() -> String {
    r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Notes client, every element of a product descriptor. -->
<product xmlns="urn:roleout:descriptor:1" id="notes-client" version="9.0.1" priority="40">
  <platform os="linux" arch="x86_64 aarch64"/>
  <description vendor="Lotus" licence="Proprietary" media="notes-9.0.1">
    <name lang="en">Notes Client</name><name lang="de">Notes-Client</name>
    <summary>Mail client</summary>
  </description>
  <description role="developer" vendor="Lotus"><name>Notes Client (designer)</name></description>
  <size installed="524288000"/>
  <capabilities><provides name="mail-client" version="9.0"/><provides name="calendar"/></capabilities>
  <dependencies>
    <prerequisite product="jre" version="&gt;=1.8"/>
    <corequisite product="notes-help"/>
    <requires capability="java-runtime" version="&gt;=1.8, &lt;2"/>
    <requires-system package="libc6" manager="dpkg" version="&gt;=2.34"/>
    <requires-system file="{{ root }}/usr/lib/libnotes.so" provider="notes-libs"/>
  </dependencies>
  <conflicts><product id="notes-client-legacy" version="&lt;9"/><capability name="mail-client-legacy"/></conflicts>
  <variables>
    <string name="install_dir" default="/opt/notes" min-length="1" max-length="200" allowed-chars="/abcdefghijklmnopqrstuvwxyz_" forbidden-chars=";|&amp;" pattern="/.*" required="true" validators="no-spaces">
      <label lang="en">Install directory</label><label lang="de">Installationsverzeichnis</label></string>
    <boolean name="desktop_icon" default="true"/>
    <integer name="port" default="1352" min="1" max="65535"/>
    <password name="admin_password" min-length="8"/>
    <choice name="edition" default="standard"><option>standard</option><option>pro</option></choice>
    <path name="data_dir" default="data" relative="true"/>
  </variables>
  <fileset><file path="notes.deb" sha256="SHA" size="1234" source="https://example.org/notes.deb" mode="0644"/></fileset>
  <fileset role="developer"><file path="designer/notes-designer.deb" sha256="SHA" size="99"/></fileset>
  <version-check><package manager="dpkg" name="notes" version="&gt;=9.0.1"/></version-check>
  <incremental run="once">
    <all>
      <os family="linux" distribution="debian ubuntu" version="&gt;=12"/>
      <arch names="x86_64 aarch64"/>
      <hardware fact="memory.bytes" at-least="4294967296"/>
      <hardware fact="dmi.product-name" matches="^PowerEdge"/>
      <hardware fact="hypervisor"/>
      <any>
        <file-exists path="/etc/notes"/>
        <file-sha256 path="/etc/notes/key" sha256="SHA"/>
      </any>
      <not><process-not-running name="notes"/></not>
      <file-version path="/opt/notes/VERSION" pattern="v(\S+)" version="&lt;9.0.1"/>
      <command exit-code="1" output="^missing"><arg>/usr/bin/test</arg><arg>-e</arg><arg>/opt/notes</arg></command>
      <command output="^notes (\S+)" version="&lt;{{ version }}"><arg>/opt/notes/bin/notes</arg><arg>--version</arg></command>
      <package manager="rpm" name="notes"/>
    </all>
  </incremental>
  <pre-install><arg>/bin/true</arg></pre-install>
  <install kind="deb" timeout="600" check-interval="5" retries="2" working-dir="{{ payload }}">
    <arg>dpkg</arg><arg>-i</arg><arg>{{ payload }}/notes.deb</arg>
    <env name="DEBIAN_FRONTEND">noninteractive</env>
    <env name="NOTES_PASSWORD">{{ admin_password }}</env>
    <response-file path="answers.txt">dir={{ install_dir }}
port={{ port }}
</response-file>
    <outcome success-codes="0" reboot-codes="3010" retry-codes="75" log="/var/log/notes.log"
             success-pattern="Installation complete" failure-pattern="^ERROR">
      <success-pattern>also ok</success-pattern><failure-pattern>^FATAL</failure-pattern>
    </outcome>
  </install>
  <post-install role="administrator"><arg>/opt/notes/bin/admin-setup</arg><arg> spaced &amp; &lt;kept&gt; </arg></post-install>
  <post-install role="developer end-user" shell="false"><arg>/opt/notes/bin/user-setup</arg></post-install>
  <uninstall kind="deb"><arg>dpkg</arg><arg>-r</arg><arg>notes</arg></uninstall>
</product>
"#
    .replace("SHA", SHA)
}

/// A suite that uses every suite element and attribute.
fn full_suite() -> String {
    r#"<suite xmlns="urn:roleout:descriptor:1" id="domino" version="1.0">
  <description vendor="ACME IT"><name lang="en">Domino workstation</name><summary>Mail and calendar</summary></description>
  <capabilities><provides name="groupware" version="9"/><requires capability="mail-client" version="&gt;=9"/></capabilities>
  <categories><category name="mail"><label lang="en">Mail</label><product ref="notes-client"/></category></categories>
  <groups><group name="notes"><label>Notes</label><product ref="notes-client"/><product ref="notes-help"/></group></groups>
  <variables>
    <string name="mail_server" default="mail.example.org"/>
    <choice name="size" default="small"><option>small</option><option>large</option></choice>
    <path name="dir" default="/srv"/>
  </variables>
  <variables role="administrator"><string name="mail_server"/></variables>
  <presentation>
    <variable name="mail_server" order="1"><label lang="en">Mail server</label><help lang="en">Host name</help></variable>
    <variable name="size" order="2" widget="select"/>
    <variable name="dir" widget="file"/>
  </presentation>
  <linkage>
    <link variable="mail_server" product="notes-client" product-variable="server"/>
    <link variable="size" product="notes-client" product-variable="size"><map from="small" to="S"/><map from="large" to="L"/></link>
    <link variable="dir" product="notes-help" product-variable="dir" template="{{ value }}/data"/>
  </linkage>
  <incremental run="always"/>
  <policy on-failure="continue"/>
  <policy role="administrator"/>
  <products>
    <product ref="notes-client" version="&gt;=9"/>
    <product ref="notes-help"/>
    <product ref="admin-tools" role="administrator developer"/>
  </products>
</suite>
"#
    .to_owned()
}

fn parsed(name: &str, text: &str) -> Parsed {
    parse(name, text.as_bytes())
}

/// Parses text that must be accepted, showing the diagnostics if not.
fn accepted(text: &str) -> Descriptor {
    let result = parsed("good.xml", text);
    let shown: Vec<String> = result.diagnostics.iter().map(ToString::to_string).collect();
    assert!(!result.has_errors(), "{}", shown.join("\n"));
    result.descriptor.expect("no errors, so a descriptor")
}

fn product_of(descriptor: &Descriptor) -> &ProductSource {
    match descriptor {
        Descriptor::Product(product) => product,
        Descriptor::Suite(_) => panic!("expected a product"),
    }
}

fn suite_of(descriptor: &Descriptor) -> &SuiteSource {
    match descriptor {
        Descriptor::Suite(suite) => suite,
        Descriptor::Product(_) => panic!("expected a suite"),
    }
}

/// parse -> to_xml -> parse gives the same model, and the canonical text
/// is a fixed point.
fn assert_round_trip(descriptor: &Descriptor) {
    let xml = to_xml(descriptor);
    let again = accepted(&xml);
    assert_eq!(
        &again, descriptor,
        "round trip changed the model; text:\n{xml}"
    );
    assert_eq!(to_xml(&again), xml, "canonical text is not stable");
}

fn schema_validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&descriptor_schema()).expect("the schema compiles")
}

fn schema_errors(value: &serde_json::Value) -> Vec<String> {
    schema_validator()
        .iter_errors(value)
        .map(|error| format!("{}: {error}", error.instance_path().as_str()))
        .collect()
}

#[test]
fn a_product_using_every_element_round_trips() {
    let descriptor = accepted(&full_product());
    let product = product_of(&descriptor);
    assert_eq!(product.id.as_str(), "notes-client");
    assert_eq!(product.priority, 40);
    assert_eq!(product.platform.arch, ["x86_64", "aarch64"]);
    assert_eq!(product.description.versions.len(), 2);
    let description = product.description.default_version().unwrap();
    assert_eq!(description.name.get(&["de"]), Some("Notes-Client"));
    assert_eq!(description.summary.get(&[]), Some("Mail client"));
    let variables = product.variables.default_version().unwrap();
    assert_eq!(variables.len(), 6);
    assert_eq!(variables[4].rules.choices, ["standard", "pro"]);
    assert_eq!(variables[0].rules.forbidden_chars.as_deref(), Some(";|&"));
    assert_eq!(product.fileset.versions[1].roles.len(), 1);
    assert_eq!(product.fileset.versions[0].value.files[0].mode, Some(0o644));
    let install = product.commands[&Phase::Install].default_version().unwrap();
    assert_eq!(install.argv, ["dpkg", "-i", "{{ payload }}/notes.deb"]);
    assert_eq!(install.timeout_secs, 600);
    assert_eq!(
        install.outcome.exit_codes.meaning(3010),
        ExitMeaning::Reboot
    );
    assert_eq!(install.outcome.exit_codes.meaning(75), ExitMeaning::Retry);
    let log = install.outcome.log.as_ref().unwrap();
    assert_eq!(
        log.success.len(),
        2,
        "attribute pattern and element pattern"
    );
    assert_eq!(log.failure[1].as_str(), "^FATAL");
    let response = install.response_file.as_ref().unwrap();
    assert_eq!(response.content, "dir={{ install_dir }}\nport={{ port }}\n");
    let post = &product.commands[&Phase::PostInstall];
    assert_eq!(post.versions.len(), 2);
    assert!(post.default_version().is_none());
    assert_eq!(
        post.versions[0].value.argv[1], " spaced & <kept> ",
        "text kept exactly"
    );
    let incremental = product.incremental.default_version().unwrap();
    assert_eq!(incremental.run, RunPolicy::Once);
    let Some(Condition::All(conditions)) = &incremental.when else {
        panic!("expected <all>");
    };
    assert_eq!(conditions.len(), 11);
    let Condition::Command { versions, .. } = &conditions[9] else {
        panic!("expected the versioned <command>");
    };
    assert_eq!(
        versions.as_ref().map(ToString::to_string).as_deref(),
        Some("<9.0.1"),
        "{{{{ version }}}} is the product's version"
    );
    let dependencies = product.dependencies.default_version().unwrap();
    assert_eq!(dependencies.system.len(), 2);
    assert_eq!(
        dependencies.system[0].need.to_string(),
        "dpkg package libc6 (>=2.34)"
    );
    assert_eq!(
        dependencies.system[1].provider.as_ref().map(|p| p.as_str()),
        Some("notes-libs")
    );
    assert_round_trip(&descriptor);
}

#[test]
fn a_suite_using_every_element_round_trips() {
    let descriptor = accepted(&full_suite());
    let suite = suite_of(&descriptor);
    assert_eq!(suite.members.len(), 3);
    assert_eq!(suite.members[2].roles.len(), 2);
    assert_eq!(suite.variables.versions.len(), 2);
    let presentation = suite.presentation.default_version().unwrap();
    assert_eq!(presentation[2].order, 3, "order defaults to the position");
    let linkage = suite.linkage.default_version().unwrap();
    assert_eq!(linkage[0].translation, Translation::Identity);
    let Translation::Map(table) = &linkage[1].translation else {
        panic!("expected a map");
    };
    assert_eq!(table["large"], "L");
    assert_eq!(
        linkage[2].translation,
        Translation::Template("{{ value }}/data".to_owned())
    );
    assert_eq!(suite.policy.versions.len(), 2);
    assert_round_trip(&descriptor);
}

#[test]
fn defaults_are_filled_in_and_left_out_again() {
    let text = r#"<product xmlns="urn:roleout:descriptor:1" id="tiny" version="1">
  <install><arg>/bin/true</arg></install>
  <incremental/>
</product>"#;
    let descriptor = accepted(text);
    let product = product_of(&descriptor);
    assert_eq!(product.priority, DEFAULT_PRIORITY);
    let install = product.commands[&Phase::Install].default_version().unwrap();
    assert_eq!(install.kind, InstallerKind::Generic);
    assert_eq!(install.timeout_secs, DEFAULT_TIMEOUT_SECS);
    assert_eq!(install.outcome.exit_codes.success, [0]);
    let incremental = product.incremental.default_version().unwrap();
    assert_eq!(
        (incremental.run, incremental.when.is_none()),
        (RunPolicy::OnChange, true)
    );
    let xml = to_xml(&descriptor);
    for absent in ["priority", "timeout", "kind", "outcome", "run"] {
        assert!(!xml.contains(absent), "{absent} in\n{xml}");
    }
    assert_round_trip(&descriptor);
}

#[test]
fn awkward_text_round_trips() {
    // Characters XML would otherwise change: quotes, markup characters,
    // tabs and newlines in attributes, carriage returns in text.
    let mut descriptor = accepted(&full_product());
    let Descriptor::Product(product) = &mut descriptor else {
        panic!("expected a product")
    };
    let description = &mut product.description.versions[0].value;
    description.vendor = "Tab\there \"quoted\" <b> & 'single'\nline two\r\nthree".to_owned();
    description.summary.insert("fr", "  leading and trailing  ");
    let install = product.commands.get_mut(&Phase::Install).unwrap();
    install.versions[0]
        .value
        .argv
        .push("a\r\nb\tc ]]> d".to_owned());
    install.versions[0]
        .value
        .env
        .insert("EMPTY".to_owned(), String::new());
    assert_round_trip(&descriptor);
}

#[test]
fn the_json_form_follows_the_schema_and_reads_back() {
    for text in [full_product(), full_suite()] {
        let descriptor = accepted(&text);
        let value = serde_json::to_value(&descriptor).unwrap();
        assert_eq!(schema_errors(&value), Vec::<String>::new());
        let key = if text.contains("<suite") {
            "suite"
        } else {
            "product"
        };
        assert!(value.get(key).is_some(), "externally tagged as {key}");
        let back: Descriptor = serde_json::from_value(value).unwrap();
        assert_eq!(back, descriptor);
    }
}

#[test]
fn the_schema_refuses_what_the_model_refuses() {
    let value = serde_json::to_value(accepted(&full_product())).unwrap();
    let broken = [
        ("/product/id", serde_json::json!("notes client")),
        ("/product/version", serde_json::json!("beta")),
        (
            "/product/fileset/0/value/files/0/sha256",
            serde_json::json!("abc"),
        ),
        (
            "/product/dependencies/0/value/prerequisites/0/versions",
            serde_json::json!(">=1.0,,<2"),
        ),
        (
            "/product/commands/install/0/value/kind",
            serde_json::json!("exe"),
        ),
        ("/product/size/0/value/installed", serde_json::json!(-1)),
        (
            "/product/variables/0/value/0/kind",
            serde_json::json!("float"),
        ),
    ];
    for (pointer, replacement) in broken {
        let mut copy = value.clone();
        *copy.pointer_mut(pointer).unwrap() = replacement;
        let errors = schema_errors(&copy);
        assert!(!errors.is_empty(), "{pointer} accepted");
        assert!(
            errors.iter().any(|error| error.starts_with(pointer)),
            "{errors:?}"
        );
        assert!(
            serde_json::from_value::<Descriptor>(copy).is_err(),
            "serde accepts {pointer}"
        );
    }
    let mut unknown = value.clone();
    unknown["product"]["colour"] = serde_json::json!("blue");
    assert!(!schema_errors(&unknown).is_empty());
    let mut two_tags = value;
    two_tags["suite"] = serde_json::json!({});
    assert!(!schema_errors(&two_tags).is_empty());
}

#[test]
fn warnings_do_not_refuse_a_descriptor() {
    let text = r#"<product xmlns="urn:roleout:descriptor:1" id="x" version="1">
  <variables><password name="admin_password"/></variables>
  <install shell="true"><arg>setup --password={{ admin_password }}</arg></install>
</product>"#;
    let result = parsed("warn.xml", text);
    assert!(result.descriptor.is_some());
    let warnings: Vec<String> = result
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("warn.xml:3:12: warning: shell=\"true\""),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("/bin/sh"));
    assert!(
        warnings[1].starts_with("warn.xml:3:25: warning: "),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("visible in process listings"));
    assert!(warnings[1].ends_with("(at /product/install/arg)"));
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = r#"<product xmlns="urn:roleout:descriptor:1" id="bad id" version="1">
  <size installed="lots" unit="MB"/>
  <fileset><file path="/abs" sha256="00" size="1"/></fileset>
  <install><env name="X">{{ broken</env></install>
  <frobnicate/>
</product>"#;
    let result = parsed("many.xml", text);
    assert!(result.descriptor.is_none());
    let errors: Vec<String> = result
        .errors()
        .map(|error| format!("{}:{} {}", error.line, error.column, error.path))
        .collect();
    assert_eq!(
        errors,
        [
            "1:43 /product@id",
            "2:9 /product/size@installed",
            "2:26 /product/size@unit",
            "3:18 /product/fileset/file@path",
            "3:30 /product/fileset/file@sha256",
            "4:3 /product/install",
            "4:12 /product/install/env",
            "5:3 /product/frobnicate",
        ]
    );
}

#[test]
fn suites_cross_check_their_names() {
    let text = r#"<suite xmlns="urn:roleout:descriptor:1" id="s" version="1">
  <categories><category name="c"><product ref="ghost"/></category></categories>
  <variables><string name="a"/><string name="a"/></variables>
  <presentation><variable name="b"/></presentation>
  <linkage><link variable="c" product="phantom" product-variable="d"/></linkage>
  <products><product ref="real"/></products>
</suite>"#;
    let result = parsed("suite.xml", text);
    let messages: Vec<String> = result.errors().map(|error| error.message.clone()).collect();
    assert_eq!(
        messages,
        [
            "product ghost is not in this suite's <products>",
            "a second variable named a; the first is at line 3",
            "variable b is not defined in this suite's <variables>",
            "variable c is not defined in this suite's <variables>",
            "product phantom is not in this suite's <products>",
        ]
    );
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[test]
fn every_corpus_file_gives_its_expected_first_error() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in &entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("xml") => {}
            Some("expected") => {
                assert!(path.with_extension("xml").exists(), "{name} has no .xml");
                continue;
            }
            _ => panic!("unexpected file {name} in the corpus"),
        }
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{name} has no .expected"));
        let result = parse(&name, &std::fs::read(path).unwrap());
        assert!(result.descriptor.is_none(), "{name} was accepted");
        let first = result
            .errors()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default();
        if first != expected.trim_end() {
            failures.push(format!(
                "{name}\n  expected {}\n  got      {first}",
                expected.trim_end()
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 40, "only {checked} corpus files");
}

#[test]
fn an_oversized_file_is_refused_before_it_is_read() {
    let mut text = full_product().into_bytes();
    text.extend(b"<!--");
    text.resize(MAX_SIZE + 1, b'x');
    let result = parse("huge.xml", &text);
    let errors: Vec<String> = result.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [format!(
            "huge.xml:1:1: error: the descriptor is {} bytes long; the limit is {MAX_SIZE} bytes (at /)",
            MAX_SIZE + 1
        )]
    );
}

#[test]
fn too_many_elements_are_refused() {
    let files: String = (0..=MAX_ELEMENTS)
        .map(|index| format!("<file path=\"f{index}\" sha256=\"{SHA}\" size=\"1\"/>"))
        .collect();
    let text = format!(
        "<product xmlns=\"urn:roleout:descriptor:1\" id=\"x\" version=\"1\"><fileset>{files}</fileset></product>"
    );
    assert!(text.len() < MAX_SIZE);
    let result = parsed("many.xml", &text);
    let first = result.errors().next().unwrap();
    assert!(
        first.message.contains("more than 20000 elements"),
        "{first}"
    );
}

#[test]
fn a_deep_but_legal_condition_round_trips() {
    let depth = MAX_DEPTH - 3;
    let text = format!(
        "<product xmlns=\"urn:roleout:descriptor:1\" id=\"x\" version=\"1\"><incremental>{}<arch names=\"x86_64\"/>{}</incremental></product>",
        "<not>".repeat(depth - 1),
        "</not>".repeat(depth - 1)
    );
    assert_round_trip(&accepted(&text));
}

/// Small edits of a good descriptor: remove a range, insert bytes, or
/// overwrite one byte.
#[derive(Debug, Clone)]
enum Edit {
    Remove(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
}

fn apply(text: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Remove(at, length) => {
            let start = at % text.len().max(1);
            let end = (start + length).min(text.len());
            text.drain(start..end);
        }
        Edit::Insert(at, bytes) => {
            let at = at % (text.len() + 1);
            text.splice(at..at, bytes.iter().copied());
        }
        Edit::Replace(at, byte) => {
            if !text.is_empty() {
                let at = at % text.len();
                text[at] = *byte;
            }
        }
    }
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    // Inserted bytes lean towards markup so that edits reach past the
    // tokenizer into the conversion.
    let markup = prop::sample::select(vec![
        b"<".to_vec(),
        b"/>".to_vec(),
        b"\"".to_vec(),
        b"&amp;".to_vec(),
        b"&#0;".to_vec(),
        b" role=\"developer\"".to_vec(),
        b"<all>".to_vec(),
        b"</all>".to_vec(),
        b"{{".to_vec(),
        b"<!DOCTYPE x>".to_vec(),
        b"\xFF".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, length)| Edit::Remove(at, length)),
        (any::<usize>(), markup).prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
    ]
}

/// Either a descriptor and no error, or at least one error and no
/// descriptor; an accepted descriptor round-trips.
fn check_outcome(result: &Parsed) -> Result<(), TestCaseError> {
    match &result.descriptor {
        Some(descriptor) => {
            prop_assert!(!result.has_errors());
            let again = parse("again.xml", to_xml(descriptor).as_bytes());
            prop_assert_eq!(again.descriptor.as_ref(), Some(descriptor));
        }
        None => prop_assert!(result.has_errors()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_outcome(&parse("fuzz.xml", &bytes))?;
    }

    #[test]
    fn mutated_descriptors_never_panic(
        suite in any::<bool>(),
        edits in prop::collection::vec(edit_strategy(), 1..4),
    ) {
        let mut text = if suite { full_suite() } else { full_product() }.into_bytes();
        for edit in &edits {
            apply(&mut text, edit);
        }
        check_outcome(&parse("mutated.xml", &text))?;
    }
}

#[test]
fn the_complete_examples_of_the_reference_parse() {
    let reference =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("DESCRIPTOR.md"))
            .unwrap();
    let mut complete = 0;
    for block in reference.split("```xml\n").skip(1) {
        let code = block.split("```").next().unwrap();
        let trimmed = code.trim();
        let whole = (trimmed.starts_with("<product") && trimmed.ends_with("</product>"))
            || (trimmed.starts_with("<suite") && trimmed.ends_with("</suite>"));
        if whole {
            assert_round_trip(&accepted(trimmed));
            complete += 1;
        }
    }
    assert!(complete >= 1, "no complete example found");
}

#[test]
fn templates_may_use_any_role_versions_variables_and_the_built_ins_only() {
    // A variable only the developer version has, vars.x, built-ins and
    // filters: accepted.
    accepted(
        r#"<product xmlns="urn:roleout:descriptor:1" id="tool" version="1.0">
  <variables><string name="mode" default="user"/></variables>
  <variables role="developer"><string name="mode" default="dev"/><integer name="jobs" default="4"/></variables>
  <install>
    <arg>{{ root }}/opt/tool/install</arg>
    <arg>--mode={{ mode | upper }}</arg>
    <arg>--jobs={{ vars.jobs | default(value=1) }}</arg>
    <arg>--version={{ version }}</arg>
  </install>
</product>"#,
    );
    // An unknown name through vars.: refused, with the spelling meant.
    let result = parsed(
        "vars.xml",
        r#"<product xmlns="urn:roleout:descriptor:1" id="tool" version="1.0">
  <variables><string name="install_dir" default="/opt/tool"/></variables>
  <post-install><arg>{{ vars.instal_dir }}/bin/setup</arg></post-install>
</product>"#,
    );
    let errors: Vec<String> = result.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("uses instal_dir") && errors[0].contains("did you mean install_dir?"),
        "{errors:?}"
    );
}

#[test]
fn a_shell_script_that_uses_dollar_zero_as_an_argument_is_warned_about() {
    let result = parsed(
        "dollar-zero.xml",
        r#"<product xmlns="urn:roleout:descriptor:1" id="tool" version="1.0">
  <install shell="true"><arg>cp "$0" /opt/tool</arg><arg>{{ payload }}/tool</arg></install>
</product>"#,
    );
    assert!(!result.has_errors());
    let warnings: Vec<String> = result
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .filter(|text| text.contains("uses $0"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", result.diagnostics);
    assert!(
        warnings[0].contains("the <arg> after the script is $1"),
        "{warnings:?}"
    );
}

/// A payload folder held in memory: path to content.
struct Folder(BTreeMap<&'static str, &'static [u8]>);

impl descriptor::PayloadFolder for Folder {
    fn digest_and_size(&self, path: &str) -> Result<(Sha256, u64), String> {
        let bytes = self.0.get(path).ok_or("no such file")?;
        Ok((Sha256::of(bytes), bytes.len() as u64))
    }
}

#[test]
fn file_digests_and_sizes_come_from_the_payload_folder_or_must_be_written() {
    let text = |file: &str| {
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="p" version="1"><fileset>{file}</fileset><install><arg>true</arg></install></product>"#
        )
    };
    let folder = Folder(BTreeMap::from([("p.deb", &b"package bytes"[..])]));
    // Left out and no folder: an error that says how to fill them.
    let bare = text(r#"<file path="p.deb"/>"#);
    let parsed = descriptor::parse("p.xml", bare.as_bytes());
    let messages: Vec<&str> = parsed.errors().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("has no sha256") && messages[0].contains("--payloads"));
    // Left out with the folder: filled in.
    let parsed = descriptor::parse_with("p.xml", bare.as_bytes(), Some(&folder));
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let descriptor = parsed.descriptor.unwrap();
    let file = &product_of(&descriptor).fileset.versions[0].value.files[0];
    assert_eq!(file.sha256, Sha256::of(b"package bytes"));
    assert_eq!(file.size, 13);
    // Written and stale: an error at the attribute.
    let stale = text(&format!(r#"<file path="p.deb" sha256="{SHA}" size="13"/>"#));
    let parsed = descriptor::parse_with("p.xml", stale.as_bytes(), Some(&folder));
    let errors: Vec<_> = parsed.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].path.ends_with("file@sha256"),
        "{}",
        errors[0].path
    );
    assert!(errors[0].message.contains("leave sha256 out"));
    // A file the folder lacks.
    let missing = text(r#"<file path="other.deb"/>"#);
    let parsed = descriptor::parse_with("p.xml", missing.as_bytes(), Some(&folder));
    assert!(
        parsed.errors().any(|d| d.message.contains("no such file")),
        "{:?}",
        parsed.diagnostics
    );
}

#[test]
fn version_ranges_take_the_products_version_and_nothing_else() {
    let text = |range: &str| {
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="p" version="2.5"><dependencies><prerequisite product="lib" version="{range}"/></dependencies><version-check><package manager="dpkg" name="p" version="{range}"/></version-check><install><arg>true</arg></install></product>"#
        )
    };
    let descriptor = accepted(&text("&gt;={{ version }}, &lt;3"));
    let product = product_of(&descriptor);
    let dependencies = product.dependencies.default_version().unwrap();
    assert_eq!(
        dependencies.prerequisites[0].versions.to_string(),
        ">=2.5, <3"
    );
    let parsed = parsed("p.xml", &text("&gt;={{ install_dir }}"));
    let errors: Vec<_> = parsed.errors().collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].message.contains("only {{ version }}"),
        "{}",
        errors[0].message
    );
    assert!(errors[0].path.ends_with("@version"));
}

#[test]
fn a_system_requirement_names_a_package_or_a_file() {
    let text = |requirement: &str| {
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="p" version="1"><dependencies>{requirement}</dependencies><install><arg>true</arg></install></product>"#
        )
    };
    for (requirement, expected) in [
        (
            r#"<requires-system package="libc6" file="/x"/>"#,
            "exactly one of package",
        ),
        (
            r#"<requires-system provider="q"/>"#,
            "exactly one of package",
        ),
        (r#"<requires-system package="libc6"/>"#, "manager"),
        (
            r#"<requires-system file="/x" version="1"/>"#,
            "version applies to a package",
        ),
        (
            r#"<requires-system file="{{ rot }}/x"/>"#,
            "did you mean root?",
        ),
    ] {
        let parsed = parsed("p.xml", &text(requirement));
        assert!(
            parsed.errors().any(|d| d.message.contains(expected)),
            "{requirement}: {:?}",
            parsed.diagnostics
        );
    }
}

#[test]
fn a_hardware_condition_names_a_known_fact_and_one_test() {
    let wrong = parsed(
        "hw.xml",
        r#"<product xmlns="urn:roleout:descriptor:1" id="x" version="1"><incremental><hardware fact="ram"/></incremental><install><arg>/bin/true</arg></install></product>"#,
    );
    let errors: Vec<String> = wrong.errors().map(ToString::to_string).collect();
    assert!(
        errors
            .iter()
            .any(|error| error.contains("\"ram\" is not a hardware fact")
                && error.contains("memory.bytes")),
        "{errors:?}"
    );
    let both = parsed(
        "hw.xml",
        r#"<product xmlns="urn:roleout:descriptor:1" id="x" version="1"><incremental><hardware fact="memory.bytes" matches="1" at-least="1"/></incremental><install><arg>/bin/true</arg></install></product>"#,
    );
    let errors: Vec<String> = both.errors().map(ToString::to_string).collect();
    assert!(
        errors.iter().any(|error| error.contains("not both")),
        "{errors:?}"
    );
}
