//! Groups / Group / Machine (Fig. 7): target machines and the products
//! chosen for them, kept between customization sessions as an `.ini` file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{GroupName, MachineId, ProductId, SuiteId};

/// A target machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Machine {
    /// Its name.
    pub name: MachineId,
    /// Its IP address, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// OS family (`linux`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Architecture (`x86_64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Other hardware facts (`memory-mb = 16384`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    /// Products chosen for this machine beyond its group's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<ProductId>,
}

/// A group of machines that get the same products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Group {
    /// Its name.
    pub name: GroupName,
    /// The suite the products come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<SuiteId>,
    /// Products chosen for the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<ProductId>,
    /// Its machines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<Machine>,
}

/// Every group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Groups {
    /// The groups, in order.
    pub groups: Vec<Group>,
}

/// Why a groups file could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IniError {
    /// The file breaks the format.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file's name, as given.
        file: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The groups hold something the format cannot carry.
    #[error("cannot write the groups file: {section}: {message}")]
    Write {
        /// The section at fault (`[machine pc-001]`).
        section: String,
        /// What is wrong.
        message: String,
    },
}

/// Keys of a `[group NAME]` section.
const GROUP_KEYS: [&str; 2] = ["suite", "products"];
/// Keys of a `[machine NAME]` section, besides `fact.NAME`.
const MACHINE_KEYS: [&str; 5] = ["group", "ip", "os", "arch", "products"];
/// Prefix of hardware-fact keys.
const FACT_PREFIX: &str = "fact.";

/// Whether `name` can be a fact key: ASCII letters, digits, `-`, `_`, `.`.
fn valid_fact_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why a value cannot be written as is, if it cannot. The reader trims
/// values and reads one line each, so surrounding spaces and control
/// characters (a newline above all) would not come back.
fn unwritable_value(value: &str) -> Option<&'static str> {
    if value.chars().any(char::is_control) {
        Some("it contains a newline or another control character")
    } else if value.trim() != value {
        Some("it starts or ends with white space, which reading would drop")
    } else {
        None
    }
}

fn join_products(products: &[ProductId]) -> String {
    products
        .iter()
        .map(ProductId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Groups {
    /// Writes the groups as an `.ini` file: each `[group NAME]` section
    /// followed by the `[machine NAME]` sections of its machines, keys in a
    /// fixed order, absent values left out. [`Groups::from_ini`] reads the
    /// result back to equal groups.
    ///
    /// Fails on what would not come back the same: two groups or two
    /// machines of one name, a value with a newline (or another control
    /// character) or surrounding white space, a fact name outside ASCII
    /// letters, digits, `-`, `_` and `.`.
    pub fn to_ini(&self) -> Result<String, IniError> {
        let mut group_names = BTreeMap::new();
        let mut machine_names = BTreeMap::new();
        let mut text = String::from("; Roleout machine groups\n");
        for group in &self.groups {
            let section = format!("[group {}]", group.name);
            if group_names.insert(group.name.as_str(), ()).is_some() {
                return Err(IniError::Write {
                    section,
                    message: "two groups have this name".to_owned(),
                });
            }
            text.push('\n');
            text.push_str(&section);
            text.push('\n');
            if let Some(suite) = &group.suite {
                text.push_str(&format!("suite = {suite}\n"));
            }
            if !group.products.is_empty() {
                text.push_str(&format!("products = {}\n", join_products(&group.products)));
            }
            for machine in &group.machines {
                let section = format!("[machine {}]", machine.name);
                let fail = |message: String| IniError::Write {
                    section: section.clone(),
                    message,
                };
                if machine_names.insert(machine.name.as_str(), ()).is_some() {
                    return Err(fail("two machines have this name".to_owned()));
                }
                text.push('\n');
                text.push_str(&section);
                text.push('\n');
                text.push_str(&format!("group = {}\n", group.name));
                let fields = [
                    ("ip", &machine.ip),
                    ("os", &machine.os),
                    ("arch", &machine.arch),
                ];
                for (key, value) in fields {
                    if let Some(value) = value {
                        if let Some(reason) = unwritable_value(value) {
                            return Err(fail(format!("the value of {key}: {reason}")));
                        }
                        text.push_str(&format!("{key} = {value}\n"));
                    }
                }
                if !machine.products.is_empty() {
                    text.push_str(&format!(
                        "products = {}\n",
                        join_products(&machine.products)
                    ));
                }
                for (name, value) in &machine.facts {
                    if !valid_fact_name(name) {
                        return Err(fail(format!(
                            "the fact name {name:?} may hold only ASCII letters, digits, '-', '_' and '.'"
                        )));
                    }
                    if let Some(reason) = unwritable_value(value) {
                        return Err(fail(format!("the value of fact {name}: {reason}")));
                    }
                    text.push_str(&format!("{FACT_PREFIX}{name} = {value}\n"));
                }
            }
        }
        Ok(text)
    }

    /// Reads an `.ini` file written by [`Groups::to_ini`] or by hand.
    /// `name` is the file's name, for error messages (`groups.ini:12: …`).
    ///
    /// Lines starting with `;` or `#` are comments (a `;` later in a line
    /// is part of the value). Keys and values are trimmed. Lists are
    /// comma-separated. A machine's section may come before its group's.
    /// Refused, each with its line: unknown sections and keys, a section
    /// or key given twice, a machine without `group` or naming a group that
    /// is not in the file, invalid names, control characters in a value.
    pub fn from_ini(name: &str, text: &str) -> Result<Groups, IniError> {
        IniReader::new(name).read(text)
    }
}

/// The section being read.
enum Section {
    Group(usize),
    Machine(usize),
}

/// A machine read before its group is known to exist.
struct PendingMachine {
    machine: Machine,
    group: Option<(GroupName, usize)>,
    section_line: usize,
}

struct IniReader<'a> {
    file: &'a str,
    groups: Vec<Group>,
    machines: Vec<PendingMachine>,
    /// Line of each section header, by `kind name`.
    sections: BTreeMap<String, usize>,
    /// Keys seen in the current section.
    keys: BTreeMap<String, usize>,
}

impl<'a> IniReader<'a> {
    fn new(file: &'a str) -> Self {
        Self {
            file,
            groups: Vec::new(),
            machines: Vec::new(),
            sections: BTreeMap::new(),
            keys: BTreeMap::new(),
        }
    }

    fn error(&self, line: usize, message: impl Into<String>) -> IniError {
        IniError::Parse {
            file: self.file.to_owned(),
            line,
            message: message.into(),
        }
    }

    fn read(mut self, text: &str) -> Result<Groups, IniError> {
        let mut section: Option<Section> = None;
        for (index, raw_line) in text.split('\n').enumerate() {
            let number = index + 1;
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            if line.chars().any(|c| c.is_control() && c != '\t') {
                return Err(self.error(number, "the line contains a control character"));
            }
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                section = Some(self.header(number, header)?);
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(self.error(
                    number,
                    format!("expected `key = value` or a `[section]`, found {line:?}"),
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            if value.contains('\t') {
                return Err(self.error(number, format!("the value of {key} contains a tab")));
            }
            if let Some(first) = self.keys.insert(key.to_owned(), number) {
                return Err(self.error(
                    number,
                    format!("the key {key} is given twice in this section (first at line {first})"),
                ));
            }
            match section {
                None => {
                    return Err(self.error(
                        number,
                        format!("the key {key} comes before any [group …] or [machine …] section"),
                    ));
                }
                Some(Section::Group(group)) => self.group_key(number, group, key, value)?,
                Some(Section::Machine(machine)) => self.machine_key(number, machine, key, value)?,
            }
        }
        self.finish()
    }

    fn header(&mut self, number: usize, header: &str) -> Result<Section, IniError> {
        let Some(inner) = header.strip_suffix(']') else {
            return Err(self.error(number, "a section header must end with ']'"));
        };
        let inner = inner.trim();
        let (kind, name) = inner
            .split_once(char::is_whitespace)
            .map(|(kind, name)| (kind, name.trim()))
            .unwrap_or((inner, ""));
        let key = format!("{kind} {name}");
        if let Some(first) = self.sections.get(&key) {
            return Err(self.error(
                number,
                format!("the section [{key}] appears twice (first at line {first})"),
            ));
        }
        let section = match kind {
            "group" => {
                let name =
                    GroupName::new(name).map_err(|error| self.error(number, error.to_string()))?;
                self.groups.push(Group {
                    name,
                    suite: None,
                    products: Vec::new(),
                    machines: Vec::new(),
                });
                Section::Group(self.groups.len() - 1)
            }
            "machine" => {
                let name =
                    MachineId::new(name).map_err(|error| self.error(number, error.to_string()))?;
                self.machines.push(PendingMachine {
                    machine: Machine {
                        name,
                        ip: None,
                        os: None,
                        arch: None,
                        facts: BTreeMap::new(),
                        products: Vec::new(),
                    },
                    group: None,
                    section_line: number,
                });
                Section::Machine(self.machines.len() - 1)
            }
            other => {
                return Err(self.error(
                    number,
                    format!(
                        "unknown section kind {other:?}: expected [group NAME] or [machine NAME]"
                    ),
                ));
            }
        };
        self.sections.insert(key, number);
        self.keys.clear();
        Ok(section)
    }

    fn products(&self, number: usize, value: &str) -> Result<Vec<ProductId>, IniError> {
        if value.is_empty() {
            return Ok(Vec::new());
        }
        value
            .split(',')
            .map(|item| {
                ProductId::new(item.trim())
                    .map_err(|error| self.error(number, format!("in products: {error}")))
            })
            .collect()
    }

    fn group_key(
        &mut self,
        number: usize,
        group: usize,
        key: &str,
        value: &str,
    ) -> Result<(), IniError> {
        match key {
            "suite" => {
                let suite =
                    SuiteId::new(value).map_err(|error| self.error(number, error.to_string()))?;
                self.groups[group].suite = Some(suite);
            }
            "products" => self.groups[group].products = self.products(number, value)?,
            other => {
                return Err(self.error(
                    number,
                    format!(
                        "unknown key {other:?} in a group section (known: {})",
                        GROUP_KEYS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn machine_key(
        &mut self,
        number: usize,
        machine: usize,
        key: &str,
        value: &str,
    ) -> Result<(), IniError> {
        match key {
            "group" => {
                let group =
                    GroupName::new(value).map_err(|error| self.error(number, error.to_string()))?;
                self.machines[machine].group = Some((group, number));
            }
            "ip" => self.machines[machine].machine.ip = Some(value.to_owned()),
            "os" => self.machines[machine].machine.os = Some(value.to_owned()),
            "arch" => self.machines[machine].machine.arch = Some(value.to_owned()),
            "products" => self.machines[machine].machine.products = self.products(number, value)?,
            other => match other.strip_prefix(FACT_PREFIX) {
                Some(fact) if valid_fact_name(fact) => {
                    self.machines[machine]
                        .machine
                        .facts
                        .insert(fact.to_owned(), value.to_owned());
                }
                Some(fact) => {
                    return Err(self.error(
                        number,
                        format!(
                            "the fact name {fact:?} may hold only ASCII letters, digits, '-', '_' and '.'"
                        ),
                    ));
                }
                None => {
                    return Err(self.error(
                        number,
                        format!(
                            "unknown key {other:?} in a machine section (known: {}, fact.NAME)",
                            MACHINE_KEYS.join(", ")
                        ),
                    ));
                }
            },
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Groups, IniError> {
        let machines = std::mem::take(&mut self.machines);
        for pending in machines {
            let Some((group_name, line)) = pending.group else {
                return Err(self.error(
                    pending.section_line,
                    format!("machine {} has no `group = …` key", pending.machine.name),
                ));
            };
            let Some(group) = self
                .groups
                .iter_mut()
                .find(|group| group.name == group_name)
            else {
                return Err(self.error(
                    line,
                    format!(
                        "machine {} names the group {group_name}, which has no [group {group_name}] section",
                        pending.machine.name
                    ),
                ));
            };
            group.machines.push(pending.machine);
        }
        Ok(Groups {
            groups: self.groups,
        })
    }
}

#[cfg(test)]
// A test that unwraps fails loudly, which is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EXAMPLE: &str = "\
; comment
[group developers]
suite = domino
products = notes-client, notes-designer

[machine pc-001]
group = developers
ip = 10.0.0.1
os = linux
arch = x86_64
products = extra-tool
fact.memory-mb = 16384
";

    fn product(name: &str) -> ProductId {
        ProductId::new(name).unwrap()
    }

    fn example() -> Groups {
        Groups {
            groups: vec![Group {
                name: GroupName::new("developers").unwrap(),
                suite: Some(SuiteId::new("domino").unwrap()),
                products: vec![product("notes-client"), product("notes-designer")],
                machines: vec![Machine {
                    name: MachineId::new("pc-001").unwrap(),
                    ip: Some("10.0.0.1".to_owned()),
                    os: Some("linux".to_owned()),
                    arch: Some("x86_64".to_owned()),
                    facts: [("memory-mb".to_owned(), "16384".to_owned())].into(),
                    products: vec![product("extra-tool")],
                }],
            }],
        }
    }

    fn parse_error(text: &str) -> (usize, String) {
        match Groups::from_ini("groups.ini", text).unwrap_err() {
            IniError::Parse {
                file,
                line,
                message,
            } => {
                assert_eq!(file, "groups.ini");
                (line, message)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reads_the_documented_example() {
        assert_eq!(Groups::from_ini("groups.ini", EXAMPLE).unwrap(), example());
    }

    #[test]
    fn writes_what_it_reads() {
        let text = example().to_ini().unwrap();
        assert!(
            text.contains("[group developers]\nsuite = domino\n"),
            "{text}"
        );
        assert!(text.contains("fact.memory-mb = 16384\n"), "{text}");
        assert_eq!(Groups::from_ini("x", &text).unwrap(), example());
    }

    #[test]
    fn tolerates_hand_editing() {
        let text = "\r\n# hash comment\r\n[machine pc-002]\r\n  group=developers  \r\nip = 10.0.0.2 ; not a comment\r\n\r\n[ group   developers ]\r\nproducts =\r\n";
        let groups = Groups::from_ini("groups.ini", text).unwrap();
        assert_eq!(groups.groups.len(), 1);
        let group = &groups.groups[0];
        assert!(group.products.is_empty());
        assert_eq!(
            group.machines[0].ip.as_deref(),
            Some("10.0.0.2 ; not a comment")
        );
        assert_eq!(Groups::from_ini("e", "").unwrap(), Groups::default());
    }

    #[test]
    fn machines_join_their_groups_in_file_order() {
        let text = "\
[machine b]
group = two
[group one]
[machine a]
group = one
[group two]
[machine c]
group = two
";
        let groups = Groups::from_ini("groups.ini", text).unwrap();
        let layout: Vec<(String, Vec<String>)> = groups
            .groups
            .iter()
            .map(|group| {
                (
                    group.name.to_string(),
                    group.machines.iter().map(|m| m.name.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            layout,
            [
                ("one".to_owned(), vec!["a".to_owned()]),
                ("two".to_owned(), vec!["b".to_owned(), "c".to_owned()]),
            ]
        );
    }

    #[test]
    fn refusals_name_the_line() {
        let cases: [(&str, usize, &str); 12] = [
            ("[group a]\ncolour = red\n", 2, "unknown key \"colour\""),
            (
                "[machine m]\ngroup = a\nram = 1\n[group a]\n",
                3,
                "unknown key \"ram\"",
            ),
            (
                "[group a]\n[group a]\n",
                2,
                "appears twice (first at line 1)",
            ),
            (
                "[group a]\n[machine m]\ngroup = a\n[machine m]\ngroup = a\n",
                4,
                "appears twice",
            ),
            (
                "[machine m]\ngroup = nowhere\n",
                2,
                "which has no [group nowhere] section",
            ),
            (
                "[group a]\n\n[machine m]\nip = 1.2.3.4\n",
                3,
                "has no `group = …` key",
            ),
            (
                "[group a]\nsuite = x\nsuite = y\n",
                3,
                "given twice in this section (first at line 2)",
            ),
            ("suite = x\n", 1, "before any"),
            ("[group a]\njust words\n", 2, "expected `key = value`"),
            ("[host a]\n", 1, "unknown section kind \"host\""),
            ("[group a\n", 1, "must end with ']'"),
            ("[group a]\nproducts = x, , y\n", 2, "in products"),
        ];
        for (text, line, needle) in cases {
            let (found_line, message) = parse_error(text);
            assert_eq!(found_line, line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message}");
        }
        // Invalid names, control characters, bad fact names.
        assert_eq!(parse_error("[group a b]\n").0, 1);
        assert_eq!(parse_error("[group a]\nsuite = has space\n").0, 2);
        assert_eq!(
            parse_error("[group a]\n[machine m]\ngroup = a\nos = li\u{7}nux\n").0,
            4
        );
        assert_eq!(
            parse_error("[group a]\n[machine m]\ngroup = a\nos = li\rnux\n").0,
            4
        );
        assert_eq!(
            parse_error("[group a]\n[machine m]\ngroup = a\nos = li\tnux\n").0,
            4
        );
        assert_eq!(
            parse_error("[group a]\n[machine m]\ngroup = a\nfact. = 1\n").0,
            4
        );
        let error = Groups::from_ini("site/groups.ini", "[group a]\nx = 1\n").unwrap_err();
        assert!(
            error.to_string().starts_with("site/groups.ini:2: "),
            "{error}"
        );
    }

    #[test]
    fn refuses_to_write_what_would_not_come_back() {
        let mut newline = example();
        newline.groups[0].machines[0].os = Some("linux\nip = 6.6.6.6".to_owned());
        let mut spaces = example();
        spaces.groups[0].machines[0].arch = Some(" x86_64".to_owned());
        let mut fact_name = example();
        fact_name.groups[0].machines[0]
            .facts
            .insert("a = b".to_owned(), "1".to_owned());
        let mut fact_value = example();
        fact_value.groups[0].machines[0]
            .facts
            .insert("cpu".to_owned(), "a\tb".to_owned());
        let mut twin_machine = example();
        let machine = twin_machine.groups[0].machines[0].clone();
        twin_machine.groups[0].machines.push(machine);
        let mut twin_group = example();
        let group = twin_group.groups[0].clone();
        twin_group.groups.push(group);
        for (groups, needle) in [
            (newline, "newline"),
            (spaces, "white space"),
            (fact_name, "fact name"),
            (fact_value, "control character"),
            (twin_machine, "two machines"),
            (twin_group, "two groups"),
        ] {
            let error = groups.to_ini().unwrap_err();
            assert!(error.to_string().contains(needle), "{error}");
        }
    }

    fn name_text() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{0,6}"
    }

    fn value_text() -> impl Strategy<Value = String> {
        // Any printable text; the format trims values, so none starts or
        // ends with white space.
        "\\PC{0,12}".prop_map(|text| text.trim().to_owned())
    }

    fn products() -> impl Strategy<Value = Vec<ProductId>> {
        proptest::collection::vec(name_text().prop_map(|name| product(&name)), 0..4)
    }

    fn machine(index: usize) -> impl Strategy<Value = Machine> {
        (
            name_text(),
            proptest::option::of(value_text()),
            proptest::option::of(value_text()),
            proptest::option::of(value_text()),
            proptest::collection::btree_map(name_text(), value_text(), 0..3),
            products(),
        )
            .prop_map(move |(name, ip, os, arch, facts, products)| Machine {
                // The index keeps names unique, as the format requires.
                name: MachineId::new(format!("{name}-{index}")).unwrap(),
                ip,
                os,
                arch,
                facts,
                products,
            })
    }

    fn groups() -> impl Strategy<Value = Groups> {
        proptest::collection::vec(
            (
                name_text(),
                proptest::option::of(name_text()),
                products(),
                0usize..3,
            ),
            0..4,
        )
        .prop_flat_map(|shapes| {
            let mut next_machine = 0;
            let groups: Vec<_> = shapes
                .into_iter()
                .enumerate()
                .map(|(index, (name, suite, products, machine_count))| {
                    let machines: Vec<_> = (next_machine..next_machine + machine_count)
                        .map(machine)
                        .collect();
                    next_machine += machine_count;
                    machines.prop_map(move |machines| Group {
                        name: GroupName::new(format!("{name}-{index}")).unwrap(),
                        suite: suite.as_deref().map(|suite| SuiteId::new(suite).unwrap()),
                        products: products.clone(),
                        machines,
                    })
                })
                .collect();
            groups.prop_map(|groups| Groups { groups })
        })
    }

    proptest! {
        #[test]
        fn ini_round_trip_is_exact(groups in groups()) {
            let text = groups.to_ini().unwrap();
            let read = Groups::from_ini("groups.ini", &text);
            prop_assert_eq!(read.as_ref(), Ok(&groups), "{}", text);
            // Writing again gives the same text.
            prop_assert_eq!(read.unwrap().to_ini().unwrap(), text);
        }
    }
}
