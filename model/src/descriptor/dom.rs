//! The first pass over a descriptor: bytes to a small element tree with
//! positions, under the limits of the format.
//!
//! quick-xml does the tokenizing; this module decides what is allowed. It
//! is where hostile input is stopped: a DOCTYPE (and with it every entity
//! trick and external reference) is refused before anything it declares
//! could be used, unknown entities are refused, and size, depth, element
//! count and attribute limits are checked as the tree grows, so a hostile
//! file costs at most a bounded amount of memory and time.

use std::cell::Cell;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::{MAX_ATTRIBUTE_LENGTH, MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS, MAX_SIZE, NAMESPACE};

/// An element with its position and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    /// The element's name.
    pub(super) name: String,
    /// Line of its `<`, from 1.
    pub(super) line: u32,
    /// Column of its `<`, from 1.
    pub(super) column: u32,
    /// Its path from the root (`/product/fileset[2]/file`).
    pub(super) path: String,
    /// Its attributes in document order (namespace declarations left out).
    pub(super) attributes: Vec<Attribute>,
    /// Its children in document order.
    pub(super) children: Vec<Node>,
}

/// An attribute with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Attribute {
    /// Its name.
    pub(super) name: String,
    /// Its value, entities replaced and white space normalized as XML says.
    pub(super) value: String,
    /// Line of its name.
    pub(super) line: u32,
    /// Column of its name.
    pub(super) column: u32,
}

/// Character data with the position where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text {
    /// The text, references replaced; adjacent pieces (text, CDATA,
    /// references, text around a comment) are joined.
    pub(super) text: String,
    /// Line where it starts.
    pub(super) line: u32,
    /// Column where it starts.
    pub(super) column: u32,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    /// An element.
    Element(Element),
    /// Character data.
    Text(Text),
}

impl Element {
    /// The child elements.
    pub(super) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    /// The attribute called `name`.
    pub(super) fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
    }
}

/// Why the text is not a descriptor at all; reading stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub(super) line: u32,
    pub(super) column: u32,
    pub(super) path: String,
    pub(super) message: String,
}

/// A parsed document: its root element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Document {
    root: Element,
}

/// Byte offsets of line starts, to turn an offset into line and column.
///
/// Columns count characters, which means scanning the line; positions are
/// asked for in increasing order, so the last answer is kept and the scan
/// goes on from there. Without that, a hostile one-line file with many
/// elements would cost time quadratic in its length.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
    /// The last answer: byte offset, line index, column (from 0).
    last: Cell<(usize, usize, usize)>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, byte)| *byte == b'\n')
                .map(|(index, _)| index + 1),
        );
        Self {
            text,
            starts,
            last: Cell::new((0, 0, 0)),
        }
    }

    /// Line and column (in characters) of byte `offset`, both from 1.
    fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let (last_offset, last_line, last_column) = self.last.get();
        let (from, base) = if last_line == line && last_offset <= offset {
            (last_offset, last_column)
        } else {
            (start, 0)
        };
        let column = base
            + self
                .text
                .get(from..offset)
                .map_or(offset - from, |between| between.chars().count());
        self.last.set((offset, line, column));
        (saturate(line + 1), saturate(column + 1))
    }
}

fn saturate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Line and column of a byte offset in raw (possibly non-UTF-8) bytes.
fn byte_position(bytes: &[u8], offset: usize) -> (u32, u32) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |index| index + 1);
    // Count characters as UTF-8 lead bytes: the bytes before the bad one
    // on its line are valid UTF-8.
    let column = before[line_start..]
        .iter()
        .filter(|byte| (**byte & 0xC0) != 0x80)
        .count()
        + 1;
    (saturate(line), saturate(column))
}

/// Whether XML 1.0 allows `character` in a document.
fn is_xml_char(character: char) -> bool {
    matches!(character, '\t' | '\n' | '\r')
        || (character >= ' ' && !matches!(character, '\u{FFFE}' | '\u{FFFF}'))
}

/// The five entities XML predefines: the only ones a descriptor may use.
fn predefined_entity(name: &str) -> Option<&'static str> {
    match name {
        "lt" => Some("<"),
        "gt" => Some(">"),
        "amp" => Some("&"),
        "quot" => Some("\""),
        "apos" => Some("'"),
        _ => None,
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// An element being read: the element and where its end is expected.
struct Open {
    element: Element,
}

struct Builder<'a> {
    lines: Lines<'a>,
    stack: Vec<Open>,
    root: Option<Element>,
    element_count: usize,
}

impl Builder<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> SyntaxError {
        let (line, column) = self.lines.position(offset);
        SyntaxError {
            line,
            column,
            path: self.current_path(),
            message: message.into(),
        }
    }

    fn error_at(&self, offset: usize, path: String, message: impl Into<String>) -> SyntaxError {
        let (line, column) = self.lines.position(offset);
        SyntaxError {
            line,
            column,
            path,
            message: message.into(),
        }
    }

    /// The path of a child called `name` of the open element.
    fn child_path(&self, name: &str) -> String {
        let parent: String = self
            .stack
            .iter()
            .map(|open| format!("/{}", open.element.name))
            .collect();
        format!("{parent}/{name}")
    }

    fn current_path(&self) -> String {
        if self.stack.is_empty() {
            return "/".to_owned();
        }
        self.stack
            .iter()
            .map(|open| format!("/{}", open.element.name))
            .collect()
    }

    /// Reads a start (or empty) tag at byte `offset` into an element.
    fn start(&mut self, tag: &BytesStart<'_>, offset: usize) -> Result<Element, SyntaxError> {
        let name = tag.name().as_ref().to_owned();
        let path = self.child_path(&name);
        if self.root.is_some() {
            return Err(self.error_at(
                offset,
                path.clone(),
                format!("a descriptor has one root element; <{name}> follows its end"),
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error_at(
                offset,
                path.clone(),
                format!("elements are nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.element_count += 1;
        if self.element_count > MAX_ELEMENTS {
            return Err(self.error_at(
                offset,
                path.clone(),
                format!("the descriptor has more than {MAX_ELEMENTS} elements"),
            ));
        }
        if name.contains(':') {
            return Err(self.error_at(
                offset,
                path.clone(),
                format!(
                    "element <{name}> has a namespace prefix; descriptors use only the default \
                     namespace {NAMESPACE}"
                ),
            ));
        }
        let (line, column) = self.lines.position(offset);
        let raw: &str = tag;
        // Attribute names are searched for after the element name, in order,
        // to give each one its own position.
        let mut cursor = tag.name().as_ref().len();
        let mut attributes = Vec::new();
        let mut namespace = None;
        for attribute in tag.attributes() {
            let attribute = attribute.map_err(|error| {
                self.error_at(
                    offset,
                    path.clone(),
                    format!("malformed attribute in <{name}>: {error}"),
                )
            })?;
            let key = attribute.key.as_ref().to_owned();
            let key_offset = find_attribute(raw, &key, cursor).unwrap_or(cursor);
            cursor = end_of_value(raw, key_offset + key.len());
            // +1: the tag's text starts after its `<`.
            let attribute_offset = offset + 1 + key_offset;
            let attribute_path = format!("{path}@{key}");
            if attributes.len() >= MAX_ATTRIBUTES {
                return Err(self.error_at(
                    attribute_offset,
                    attribute_path.clone(),
                    format!("<{name}> has more than {MAX_ATTRIBUTES} attributes"),
                ));
            }
            if attribute.value.len() > MAX_ATTRIBUTE_LENGTH {
                return Err(self.error_at(
                    attribute_offset,
                    attribute_path.clone(),
                    format!(
                        "attribute {key} of <{name}> is longer than {MAX_ATTRIBUTE_LENGTH} bytes"
                    ),
                ));
            }
            let value = attribute
                .normalized_value_with(XmlVersion::Implicit1_0, 1, predefined_entity)
                .map_err(|error| {
                    self.error_at(
                        attribute_offset,
                        attribute_path.clone(),
                        format!(
                            "attribute {key} of <{name}>: {error}; descriptors know only the \
                             entities &lt; &gt; &amp; &quot; &apos; and character references"
                        ),
                    )
                })?
                .into_owned();
            if let Some(bad) = value.chars().find(|c| !is_xml_char(*c)) {
                return Err(self.error_at(
                    attribute_offset,
                    attribute_path.clone(),
                    format!(
                        "attribute {key} of <{name}> holds the character U+{:04X}, which XML \
                         does not allow",
                        u32::from(bad)
                    ),
                ));
            }
            if key == "xmlns" {
                namespace = Some((value, attribute_offset, attribute_path));
                continue;
            }
            if key.contains(':') {
                return Err(self.error_at(
                    attribute_offset,
                    attribute_path.clone(),
                    format!(
                        "attribute {key} of <{name}> has a namespace prefix; descriptor \
                         attributes have none"
                    ),
                ));
            }
            let (line, column) = self.lines.position(attribute_offset);
            attributes.push(Attribute {
                name: key,
                value,
                line,
                column,
            });
        }
        match namespace {
            Some((value, _, _)) if value == NAMESPACE => {}
            Some((value, attribute_offset, attribute_path)) => {
                return Err(self.error_at(
                    attribute_offset,
                    attribute_path,
                    format!("<{name}> is in namespace {value:?}; descriptors use {NAMESPACE:?}"),
                ));
            }
            None if self.stack.is_empty() => {
                return Err(self.error_at(
                    offset,
                    path,
                    format!(
                        "the root element <{name}> must declare the descriptor namespace: \
                         xmlns=\"{NAMESPACE}\""
                    ),
                ));
            }
            None => {}
        }
        Ok(Element {
            name,
            line,
            column,
            path: String::new(),
            attributes,
            children: Vec::new(),
        })
    }

    /// Adds character data at `offset` to the open element.
    fn text(&mut self, text: &str, offset: usize) -> Result<(), SyntaxError> {
        if let Some(bad) = text.chars().find(|c| !is_xml_char(*c)) {
            return Err(self.error(
                offset,
                format!(
                    "the character U+{:04X} is not allowed in XML",
                    u32::from(bad)
                ),
            ));
        }
        let (line, column) = self.lines.position(offset);
        match self.stack.last_mut() {
            Some(open) => {
                if let Some(Node::Text(last)) = open.element.children.last_mut() {
                    last.text.push_str(text);
                } else {
                    open.element.children.push(Node::Text(Text {
                        text: text.to_owned(),
                        line,
                        column,
                    }));
                }
                Ok(())
            }
            None if text.trim().is_empty() => Ok(()),
            None => Err(self.error(
                offset,
                "text outside the root element; a descriptor is one <product> or <suite> \
                 element",
            )),
        }
    }

    /// Attaches a finished element to its parent, or makes it the root.
    fn finish(&mut self, element: Element) {
        match self.stack.last_mut() {
            Some(parent) => parent.element.children.push(Node::Element(element)),
            None => self.root = Some(element),
        }
    }
}

/// Where attribute `key` starts in a tag's text, searching from `from`:
/// the key must follow white space and be followed by `=` (after optional
/// white space).
fn find_attribute(raw: &str, key: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(found) = raw.get(start..)?.find(key) {
        let index = start + found;
        let before = raw[..index].chars().next_back();
        let after = raw[index + key.len()..].trim_start().starts_with('=');
        if before.is_some_and(char::is_whitespace) && after {
            return Some(index);
        }
        start = index + key.len();
    }
    None
}

/// The byte just past the quoted value that follows an attribute name
/// ending at `from` (`= "value"`), so that the search for the next name
/// does not look inside this value.
fn end_of_value(raw: &str, from: usize) -> usize {
    let Some(rest) = raw.get(from..) else {
        return from;
    };
    let after_equals = rest
        .trim_start()
        .strip_prefix('=')
        .unwrap_or(rest)
        .trim_start();
    let value_start = raw.len() - after_equals.len();
    match after_equals.chars().next() {
        Some(quote @ ('"' | '\'')) => after_equals[1..]
            .find(quote)
            .map_or(raw.len(), |end| value_start + 1 + end + 1),
        _ => from,
    }
}

impl Document {
    /// Reads `bytes` into a tree, or says why they are not a descriptor.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, SyntaxError> {
        let fail_at_start = |message: String| SyntaxError {
            line: 1,
            column: 1,
            path: "/".to_owned(),
            message,
        };
        if bytes.len() > MAX_SIZE {
            return Err(fail_at_start(format!(
                "the descriptor is {} bytes long; the limit is {MAX_SIZE} bytes",
                bytes.len()
            )));
        }
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                let offset = error.valid_up_to();
                let (line, column) = byte_position(bytes, offset);
                let hint = if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
                    " (the file looks like UTF-16: save it as UTF-8)"
                } else {
                    ""
                };
                return Err(SyntaxError {
                    line,
                    column,
                    path: "/".to_owned(),
                    message: format!(
                        "the descriptor is not UTF-8: byte 0x{:02X} here does not decode{hint}",
                        bytes.get(offset).copied().unwrap_or(0)
                    ),
                });
            }
        };
        if text.trim().is_empty() {
            return Err(fail_at_start(
                "the descriptor is empty; expected a <product> or <suite> element".to_owned(),
            ));
        }
        let mut builder = Builder {
            lines: Lines::new(text),
            stack: Vec::new(),
            root: None,
            element_count: 0,
        };
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_comments = true;
        reader.config_mut().check_end_names = true;
        loop {
            let offset = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(error) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(offset);
                    return Err(builder.error(at, format!("malformed XML: {error}")));
                }
            };
            match event {
                Event::Decl(declaration) => {
                    if offset != 0 {
                        return Err(builder.error(
                            offset,
                            "the XML declaration must be the very first thing in the file",
                        ));
                    }
                    check_declaration(&declaration)
                        .map_err(|message| builder.error(offset, message))?;
                }
                Event::DocType(_) => {
                    return Err(builder.error(
                        offset,
                        "DOCTYPE declarations are refused: descriptors have no DTD, so no \
                         entity definitions and no external references",
                    ));
                }
                Event::PI(_) => {
                    return Err(builder.error(
                        offset,
                        "processing instructions are not allowed in descriptors",
                    ));
                }
                Event::Comment(_) => {}
                Event::Start(tag) => {
                    let element = builder.start(&tag, offset)?;
                    builder.stack.push(Open { element });
                }
                Event::Empty(tag) => {
                    let element = builder.start(&tag, offset)?;
                    builder.finish(element);
                }
                Event::End(_) => {
                    // quick-xml checks that the end tag matches the open one.
                    if let Some(open) = builder.stack.pop() {
                        builder.finish(open.element);
                    }
                }
                Event::Text(text) => builder.text(&text.xml10_content(), offset)?,
                Event::CData(data) => builder.text(&data.xml10_content(), offset)?,
                Event::GeneralRef(reference) => {
                    let replaced = if reference.is_char_ref() {
                        match reference.resolve_char_ref() {
                            Ok(Some(character)) => character.to_string(),
                            _ => {
                                return Err(builder.error(
                                    offset,
                                    format!("&{}; is not a valid character reference", &*reference),
                                ));
                            }
                        }
                    } else {
                        match predefined_entity(&reference) {
                            Some(replacement) => replacement.to_owned(),
                            None => {
                                return Err(builder.error(
                                    offset,
                                    format!(
                                        "unknown entity &{};: descriptors know only &lt; &gt; \
                                         &amp; &quot; &apos; and character references",
                                        &*reference
                                    ),
                                ));
                            }
                        }
                    };
                    builder.text(&replaced, offset)?;
                }
                Event::Eof => break,
            }
        }
        if let Some(open) = builder.stack.last() {
            let element = &open.element;
            return Err(SyntaxError {
                line: element.line,
                column: element.column,
                path: builder.current_path(),
                message: format!("<{}> is never closed", element.name),
            });
        }
        let Some(mut root) = builder.root else {
            return Err(fail_at_start(
                "no root element; expected a <product> or <suite> element".to_owned(),
            ));
        };
        root.path = format!("/{}", root.name);
        assign_paths(&mut root);
        Ok(Self { root })
    }

    /// The root element.
    pub(super) fn root(&self) -> &Element {
        &self.root
    }
}

/// Accepts only `version="1.0"` and, if given, a UTF-8 encoding.
fn check_declaration(declaration: &quick_xml::events::BytesDecl<'_>) -> Result<(), String> {
    let version = declaration
        .version()
        .map_err(|error| format!("malformed XML declaration: {error}"))?;
    if version != "1.0" {
        return Err(format!(
            "XML version {version:?} is not supported; descriptors are XML 1.0"
        ));
    }
    if let Some(encoding) = declaration.encoding() {
        let encoding = encoding.map_err(|error| format!("malformed XML declaration: {error}"))?;
        if !encoding.eq_ignore_ascii_case("utf-8") {
            return Err(format!(
                "the declared encoding {encoding:?} is not supported; descriptors are UTF-8"
            ));
        }
    }
    Ok(())
}

/// Gives every element below `element` its path; an index in brackets
/// tells apart siblings of the same name.
fn assign_paths(element: &mut Element) {
    let mut totals: Vec<(String, usize)> = Vec::new();
    for child in element.elements() {
        match totals.iter_mut().find(|(name, _)| *name == child.name) {
            Some((_, count)) => *count += 1,
            None => totals.push((child.name.clone(), 1)),
        }
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    let parent = element.path.clone();
    for node in &mut element.children {
        let Node::Element(child) = node else { continue };
        let total = totals
            .iter()
            .find(|(name, _)| *name == child.name)
            .map_or(1, |(_, count)| *count);
        let index = match seen.iter_mut().find(|(name, _)| *name == child.name) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                seen.push((child.name.clone(), 1));
                1
            }
        };
        child.path = if total > 1 {
            format!("{parent}/{}[{index}]", child.name)
        } else {
            format!("{parent}/{}", child.name)
        };
        assign_paths(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document, SyntaxError> {
        Document::parse(text.as_bytes())
    }

    const NS: &str = "xmlns=\"urn:roleout:descriptor:1\"";

    #[test]
    fn builds_a_tree_with_positions_and_paths() {
        let text = format!(
            "<product {NS} id=\"a\">\n  <fileset>\n    <file path=\"x\"/>\n  </fileset>\n  \
             <fileset role=\"dev\"/>\n</product>"
        );
        let document = parse(&text).unwrap();
        let root = document.root();
        assert_eq!(
            (root.name.as_str(), root.line, root.column),
            ("product", 1, 1)
        );
        assert_eq!(root.attributes.len(), 1, "xmlns is not an attribute");
        let id = root.attribute("id").unwrap();
        assert_eq!((id.line, id.column), (1, 43));
        let filesets: Vec<&Element> = root.elements().collect();
        assert_eq!(filesets[0].path, "/product/fileset[1]");
        assert_eq!(filesets[1].path, "/product/fileset[2]");
        let file = filesets[0].elements().next().unwrap();
        assert_eq!(file.path, "/product/fileset[1]/file");
        assert_eq!((file.line, file.column), (3, 5));
        let role = filesets[1].attribute("role").unwrap();
        assert_eq!((role.line, role.column), (5, 12));
    }

    #[test]
    fn attribute_positions_skip_look_alikes_inside_values() {
        let text = format!("<product {NS} x=\" y=1\" y='2'/>");
        let document = parse(&text).unwrap();
        let y = document.root().attribute("y").unwrap();
        assert_eq!((y.column, y.value.as_str()), (52, "2"));
    }

    #[test]
    fn text_joins_references_cdata_and_keeps_white_space() {
        let text = format!(
            "<product {NS}><arg> a &lt;&#65;&#x42;<![CDATA[<c>]]><!-- x -->d </arg></product>"
        );
        let document = parse(&text).unwrap();
        let arg = document.root().elements().next().unwrap();
        let Node::Text(text) = &arg.children[0] else {
            panic!("expected text")
        };
        assert_eq!(text.text, " a <AB<c>d ");
        assert_eq!(arg.children.len(), 1);
    }

    #[test]
    fn attribute_values_are_unescaped_and_normalized() {
        let text = format!("<product {NS} v=\"&gt;=1&#10;x\ny&amp;\"/>");
        let document = parse(&text).unwrap();
        assert_eq!(document.root().attribute("v").unwrap().value, ">=1\nx y&");
    }

    #[test]
    fn refuses_doctype_entities_and_bad_namespaces() {
        let doctype = parse(&format!(
            "<!DOCTYPE product [<!ENTITY x \"y\">]>\n<product {NS}>&x;</product>"
        ))
        .unwrap_err();
        assert!(doctype.message.contains("DOCTYPE"), "{doctype:?}");
        let entity = parse(&format!("<product {NS}>&x;</product>")).unwrap_err();
        assert!(entity.message.contains("unknown entity &x;"), "{entity:?}");
        let missing = parse("<product/>").unwrap_err();
        assert!(missing.message.contains("must declare"), "{missing:?}");
        let wrong = parse("<product xmlns=\"urn:other\"/>").unwrap_err();
        assert!(wrong.message.contains("urn:other"), "{wrong:?}");
        let prefixed = parse(&format!("<product {NS}><x:a/></product>")).unwrap_err();
        assert!(prefixed.message.contains("prefix"), "{prefixed:?}");
    }

    #[test]
    fn enforces_limits() {
        let deep = format!(
            "<product {NS}>{}{}</product>",
            "<all>".repeat(40),
            "</all>".repeat(40)
        );
        let error = parse(&deep).unwrap_err();
        assert!(error.message.contains("deeper"), "{error:?}");
        let many = format!(
            "<product {NS}>{}</product>",
            "<a/>".repeat(MAX_ELEMENTS + 1)
        );
        assert!(parse(&many).unwrap_err().message.contains("elements"));
        let attributes: String = (0..40).map(|index| format!(" a{index}=\"\"")).collect();
        let error = parse(&format!("<product {NS}{attributes}/>")).unwrap_err();
        assert!(error.message.contains("attributes"), "{error:?}");
        let long = format!(
            "<product {NS} a=\"{}\"/>",
            "x".repeat(MAX_ATTRIBUTE_LENGTH + 1)
        );
        assert!(parse(&long).unwrap_err().message.contains("longer"));
        let huge = vec![b' '; MAX_SIZE + 1];
        assert!(
            Document::parse(&huge)
                .unwrap_err()
                .message
                .contains("limit")
        );
    }

    #[test]
    fn refuses_bytes_that_are_not_a_document() {
        let error = Document::parse(b"<product>\n  \xFF</product>").unwrap_err();
        assert_eq!((error.line, error.column), (2, 3));
        assert!(error.message.contains("UTF-8"));
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(parse("just text").unwrap_err().message.contains("outside"));
        let control = parse(&format!("<product {NS}>\u{1}</product>")).unwrap_err();
        assert!(control.message.contains("U+0001"), "{control:?}");
        let unclosed = parse(&format!("<product {NS}><a>")).unwrap_err();
        assert!(
            unclosed.message.contains("never closed") || unclosed.message.contains("malformed")
        );
        let two = parse(&format!("<product {NS}/><suite {NS}/>")).unwrap_err();
        assert!(two.message.contains("one root"), "{two:?}");
    }
}
