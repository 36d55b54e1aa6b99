//! The parsed config: jsonc-parser's lossless CST plus the file's style (indentation unit,
//! newline, trailing commas), finding our plugin entry in it, and putting new items in with the
//! file's own layout.

use std::path::Path;

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{
    CstArray, CstContainerNode, CstInputValue, CstNewlineKind, CstNode, CstObject, CstObjectProp,
    CstRootNode, CstStringLit,
};

use super::{EditError, options_from_value};
use crate::config::{self, ConfigError, Options};

/// A parsed config: the CST (which must outlive every node taken from it) and its style.
pub(super) struct Document<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) value: serde_json::Value,
    pub(super) root: CstRootNode,
    pub(super) style: Style,
}

/// Our plugin entry in `plugin`.
pub(super) struct Entry {
    pub(super) spec: String,
    pub(super) node: EntryNode,
}

pub(super) enum EntryNode {
    /// `"opencode-remote-provider[@version]"`.
    Bare(CstStringLit),
    /// `["opencode-remote-provider", {options}]` (options may be missing).
    Pair(CstArray),
}

/// Where a new item goes.
pub(super) enum Target {
    /// At the end of an array.
    Element(CstArray),
    /// At the end of an object, under this key.
    Property(CstObject, String),
}

/// A placeholder put into the CST, and what replaces it in the printed text.
pub(super) struct Insertion {
    pub(super) marker: String,
    pub(super) value: CstInputValue,
    /// Indentation of the item's line, when the CST put it on a line of its own.
    pub(super) indent: Option<String>,
    /// Whether to lay out the value over several lines when it sits inside a line.
    pub(super) multiline: bool,
}

/// How the file is written, for the text we add.
pub(super) struct Style {
    pub(super) unit: String,
    pub(super) newline: &'static str,
    pub(super) trailing_commas: bool,
}

impl<'a> Document<'a> {
    pub(super) fn parse(text: &'a str, path: &'a Path) -> Result<Self, EditError> {
        let value = config::parse_jsonc(text, path)?;
        let options = ParseOptions {
            allow_comments: true,
            allow_loose_object_property_names: false,
            allow_trailing_commas: true,
        };
        let root = CstRootNode::parse(text, &options).map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let style = Style {
            unit: root
                .single_indent_text()
                .filter(|unit| !unit.is_empty())
                .unwrap_or_else(|| "  ".to_owned()),
            newline: match root.newline_kind() {
                CstNewlineKind::CarriageReturnLineFeed => "\r\n",
                CstNewlineKind::LineFeed => "\n",
            },
            trailing_commas: root
                .object_value()
                .is_some_and(|object| object.uses_trailing_commas()),
        };
        Ok(Document {
            path,
            text,
            value,
            root,
            style,
        })
    }

    pub(super) fn shape(&self, key: &str, expected: &'static str) -> EditError {
        EditError::Shape {
            path: self.path.to_owned(),
            key: key.to_owned(),
            expected,
        }
    }

    pub(super) fn path_based(&self, spec: String) -> EditError {
        EditError::PathBased {
            path: self.path.to_owned(),
            spec,
        }
    }

    pub(super) fn root_object(&self) -> Result<CstObject, EditError> {
        self.root
            .object_value()
            .ok_or_else(|| self.shape("the top level", "an object"))
    }

    /// The first `plugin` entry that is ours, as [`config::plugin_options`] picks it.
    pub(super) fn find_entry(&self) -> Result<Option<Entry>, EditError> {
        if self.root.value().is_none() {
            return Ok(None);
        }
        let Some(plugin) = self.root_object()?.get("plugin") else {
            return Ok(None);
        };
        let plugins = plugin
            .array_value()
            .ok_or_else(|| self.shape("\"plugin\"", "an array"))?;
        let spec_of = |node: Option<&CstNode>| {
            node.and_then(CstNode::as_string_lit)
                .and_then(|lit| lit.decoded_value().ok())
                .filter(|spec| config::is_plugin_specifier(spec))
        };
        for element in plugins.elements() {
            if let Some(spec) = spec_of(Some(&element)) {
                if let Some(lit) = element.as_string_lit() {
                    return Ok(Some(Entry {
                        spec,
                        node: EntryNode::Bare(lit),
                    }));
                }
            } else if let Some(pair) = element.as_array()
                && let Some(spec) = spec_of(pair.elements().first())
            {
                return Ok(Some(Entry {
                    spec,
                    node: EntryNode::Pair(pair),
                }));
            }
        }
        Ok(None)
    }

    /// Our entry, which must exist and be package-based.
    pub(super) fn package_entry(&self) -> Result<Entry, EditError> {
        let entry = self.find_entry()?.ok_or_else(|| EditError::NoEntry {
            path: self.path.to_owned(),
        })?;
        if config::is_path_specifier(&entry.spec) {
            return Err(self.path_based(entry.spec));
        }
        Ok(entry)
    }

    /// The options as the bridge reads them (validated).
    pub(super) fn options(&self) -> Result<Options, EditError> {
        let value = config::plugin_options(&self.value).ok_or_else(|| EditError::NoEntry {
            path: self.path.to_owned(),
        })?;
        Ok(options_from_value(value, self.path)?)
    }

    /// The options object of a `[spec, {options}]` entry; `None` when there is none yet.
    pub(super) fn options_object(&self, entry: &Entry) -> Result<Option<CstObject>, EditError> {
        match &entry.node {
            EntryNode::Bare(_) => Ok(None),
            EntryNode::Pair(pair) => match pair.elements().get(1) {
                None => Ok(None),
                Some(options) => options
                    .as_object()
                    .map(Some)
                    .ok_or_else(|| self.shape("the plugin options", "an object")),
            },
        }
    }

    pub(super) fn object_of(
        &self,
        prop: &CstObjectProp,
        key: &str,
    ) -> Result<CstObject, EditError> {
        prop.object_value()
            .ok_or_else(|| self.shape(&format!("`{key}`"), "an object"))
    }

    pub(super) fn array_of(&self, prop: &CstObjectProp, key: &str) -> Result<CstArray, EditError> {
        prop.array_value()
            .ok_or_else(|| self.shape(&format!("`{key}`"), "an array"))
    }

    /// A string the text does not contain, to stand in for a new item.
    pub(super) fn marker(&self) -> String {
        (0u32..)
            .map(|n| format!("__opencode_remote_new_item_{n}__"))
            .find(|marker| !self.text.contains(marker.as_str()))
            .unwrap_or_default()
    }

    /// Gives our entry its first options object: the whole entry becomes `[spec, options]`,
    /// except for a pair with comments inside, which keeps them and gets the object appended.
    pub(super) fn add_options(&self, entry: &Entry, options: CstInputValue) -> Insertion {
        let pair_with_comments = match &entry.node {
            EntryNode::Pair(pair) => pair
                .children()
                .iter()
                .any(CstNode::is_comment)
                .then(|| pair.clone()),
            EntryNode::Bare(_) => None,
        };
        if let Some(pair) = pair_with_comments {
            return self.insert(Target::Element(pair), options);
        }
        let marker = self.marker();
        let placeholder = CstInputValue::String(marker.clone());
        let plugins = match &entry.node {
            EntryNode::Bare(lit) => lit.parent(),
            EntryNode::Pair(pair) => pair.parent(),
        };
        let multiline = plugins.is_some_and(|plugins| plugins.to_string().contains('\n'));
        match &entry.node {
            EntryNode::Bare(lit) => {
                lit.clone().replace_with(placeholder);
            }
            EntryNode::Pair(pair) => {
                pair.clone().replace_with(placeholder);
            }
        }
        Insertion {
            marker,
            value: CstInputValue::Array(vec![CstInputValue::String(entry.spec.clone()), options]),
            indent: None,
            multiline,
        }
    }

    /// Puts a placeholder for `value` at the end of `target`. An empty container (nothing but
    /// whitespace inside) is replaced as a whole, so that its brackets get laid out too.
    pub(super) fn insert(&self, target: Target, value: CstInputValue) -> Insertion {
        let marker = self.marker();
        let placeholder = CstInputValue::String(marker.clone());
        let container: CstContainerNode = match &target {
            Target::Element(array) => array.clone().into(),
            Target::Property(object, _) => object.clone().into(),
        };
        let blank = container.children().iter().all(|child| {
            child.is_whitespace() || child.is_newline() || child.token_char().is_some()
        });
        if blank {
            let enclosing = container.parent().and_then(|parent| match parent {
                CstContainerNode::ObjectProp(prop) => prop.parent(),
                other => Some(other),
            });
            let multiline = enclosing.is_none_or(|enclosing| {
                enclosing.is_root() || enclosing.to_string().contains('\n')
            });
            let whole = match target {
                Target::Element(array) => {
                    array.replace_with(placeholder);
                    CstInputValue::Array(vec![value])
                }
                Target::Property(object, key) => {
                    object.replace_with(placeholder);
                    CstInputValue::Object(vec![(key, value)])
                }
            };
            return Insertion {
                marker,
                value: whole,
                indent: None,
                multiline,
            };
        }
        let items: Vec<CstNode> = match &target {
            Target::Element(array) => array.elements(),
            Target::Property(object, _) => {
                object.properties().into_iter().map(Into::into).collect()
            }
        };
        let indent = match items.last().map(|last| line_at(self.text, offset_of(last))) {
            Some((indent, true)) => indent.to_owned(),
            _ => {
                let (indent, _) = line_at(self.text, offset_of(&container.clone().into()));
                format!("{indent}{}", self.style.unit)
            }
        };
        let multiline = container.to_string().contains('\n');
        match target {
            Target::Element(array) => {
                array.append(placeholder);
            }
            Target::Property(object, key) => {
                object.append(&key, placeholder);
            }
        }
        Insertion {
            marker,
            value,
            indent: Some(indent),
            multiline,
        }
    }

    /// Prints the tree and writes the inserted value in place of its placeholder.
    pub(super) fn finish(&self, insertion: &Insertion) -> Result<String, EditError> {
        let text = self.root.to_string();
        let quoted = format!("\"{}\"", insertion.marker);
        let mut found = text.match_indices(&quoted).map(|(index, _)| index);
        let (Some(start), None) = (found.next(), found.next()) else {
            return Err(EditError::Unexpected {
                path: self.path.to_owned(),
                what: "the new item cannot be placed".into(),
            });
        };
        let end = start + quoted.len();
        let line_start = text[..start].rfind('\n').map_or(0, |index| index + 1);
        let before = &text[line_start..start];
        let rest = before.trim_start_matches([' ', '\t']);
        let leading = &before[..before.len() - rest.len()];
        // The CST puts a new property (`"key": "<marker>"`) or element on a line of its own
        // in multi-line containers, indented by its own guess; use ours.
        let own_line = rest.is_empty() || (rest.starts_with('"') && rest.ends_with("\": "));
        let mut changed = String::with_capacity(text.len() + 256);
        match (&insertion.indent, own_line) {
            (Some(indent), true) => {
                changed.push_str(&text[..line_start]);
                changed.push_str(indent);
                changed.push_str(rest);
                changed.push_str(&render(&insertion.value, indent, &self.style, true));
            }
            _ => {
                changed.push_str(&text[..start]);
                changed.push_str(&render(
                    &insertion.value,
                    leading,
                    &self.style,
                    insertion.multiline,
                ));
            }
        }
        changed.push_str(&text[end..]);
        Ok(changed)
    }
}

/// Byte offset of `node` in the printed document.
fn offset_of(node: &CstNode) -> usize {
    let mut offset = 0;
    let mut current = node.clone();
    while let Some(parent) = current.parent() {
        offset += current
            .previous_siblings()
            .map(|sibling| sibling.to_string().len())
            .sum::<usize>();
        current = parent.into();
    }
    offset
}

/// The indentation of the line containing `offset`, and whether only that indentation comes
/// before `offset` on the line.
fn line_at(text: &str, offset: usize) -> (&str, bool) {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
    let line = &text[start..];
    let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
    let indent = &line[..indent_len];
    (indent, start + indent_len == offset)
}

/// Writes `value` as JSON starting at a line indented by `indent`.
pub(super) fn render(
    value: &CstInputValue,
    indent: &str,
    style: &Style,
    multiline: bool,
) -> String {
    let mut out = String::new();
    render_into(&mut out, value, indent, style, multiline);
    out
}

fn render_into(
    out: &mut String,
    value: &CstInputValue,
    indent: &str,
    style: &Style,
    multiline: bool,
) {
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let (open, close, items): (char, char, Vec<(Option<&str>, &CstInputValue)>) = match value {
        CstInputValue::Null => return out.push_str("null"),
        CstInputValue::Bool(value) => return out.push_str(if *value { "true" } else { "false" }),
        CstInputValue::Number(number) => return out.push_str(number),
        CstInputValue::String(text) => return out.push_str(&quote(text)),
        CstInputValue::Array(items) => ('[', ']', items.iter().map(|item| (None, item)).collect()),
        CstInputValue::Object(props) => (
            '{',
            '}',
            props
                .iter()
                .map(|(key, item)| (Some(key.as_str()), item))
                .collect(),
        ),
    };
    out.push(open);
    let inner = format!("{indent}{}", style.unit);
    let count = items.len();
    for (index, (key, item)) in items.into_iter().enumerate() {
        let last = index + 1 == count;
        if multiline {
            out.push_str(style.newline);
            out.push_str(&inner);
        } else if index > 0 {
            out.push(' ');
        }
        if let Some(key) = key {
            out.push_str(&quote(key));
            out.push_str(": ");
        }
        render_into(out, item, &inner, style, multiline);
        if !last || (multiline && style.trailing_commas) {
            out.push(',');
        }
    }
    if multiline && count > 0 {
        out.push_str(style.newline);
        out.push_str(indent);
    }
    out.push(close);
}
