//! HTML made readable for a model, without a DOM: a forgiving tag scanner that turns a page
//! into Markdown (headings, paragraphs, links, emphasis, code, lists, quotes, images) or into
//! plain text. `script`, `style`, `noscript`, `template`, `svg` and `head` content is dropped,
//! entities are decoded, and whitespace is collapsed as a browser would outside `pre`.

/// Elements whose content is never shown.
const HIDDEN: [&str; 7] = [
    "script", "style", "noscript", "template", "svg", "head", "iframe",
];

/// Elements that break the flow into blocks.
const BLOCKS: [&str; 22] = [
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "table",
    "tr",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "address",
    "details",
    "summary",
    "body",
];

/// What to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Markdown.
    Markdown,
    /// Plain text.
    Text,
}

struct Tag<'a> {
    name: String,
    closing: bool,
    attrs: &'a str,
}

/// Splits `html` into text and tags (comments and doctypes skipped).
fn scan(html: &str) -> Vec<Result<&str, Tag<'_>>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        if at > 0 {
            out.push(Ok(&rest[..at]));
        }
        rest = &rest[at..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(end) = rest.find('>') else {
            out.push(Ok(rest));
            rest = "";
            break;
        };
        let inner = &rest[1..end];
        if inner.starts_with('!') || inner.starts_with('?') {
            rest = &rest[end + 1..];
            continue;
        }
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(inner) => (true, inner),
            None => (false, inner),
        };
        let name_len = inner
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(inner.len());
        let name = inner[..name_len].to_ascii_lowercase();
        let is_tag = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !is_tag {
            // A lone `<` in text.
            out.push(Ok("<"));
            rest = &rest[1..];
            continue;
        }
        rest = &rest[end + 1..];
        out.push(Err(Tag {
            name,
            closing,
            attrs: &inner[name_len..],
        }));
    }
    if !rest.is_empty() {
        out.push(Ok(rest));
    }
    out
}

/// The value of attribute `name`, decoded.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = attrs.len() - after.len() + 1;
        let value = attrs[value_start..].trim_start();
        let parsed = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or(""),
        };
        return Some(decode(parsed));
    }
    None
}

/// Decodes the common named entities and numeric references.
pub fn decode(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').filter(|end| *end <= 10);
        let decoded = end.and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "hellip" => Some('…'),
                "copy" => Some('©'),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Builds the output: inline text with collapsed spaces, block breaks as blank lines.
struct Out {
    text: String,
    pending_space: bool,
}

impl Out {
    fn inline(&mut self, piece: &str) {
        if piece.is_empty() {
            return;
        }
        if self.pending_space && !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
            self.text.push(' ');
        }
        self.pending_space = false;
        self.text.push_str(piece);
    }

    fn words(&mut self, text: &str) {
        let starts = text.starts_with(char::is_whitespace);
        let ends = text.ends_with(char::is_whitespace);
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            self.pending_space |= !text.is_empty();
            return;
        }
        self.pending_space |= starts;
        self.inline(&words.join(" "));
        self.pending_space = ends;
    }

    fn block(&mut self) {
        let trimmed = self.text.trim_end_matches(' ').len();
        self.text.truncate(trimmed);
        if self.text.is_empty() {
            return;
        }
        while !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
        self.pending_space = false;
    }

    fn line(&mut self) {
        let trimmed = self.text.trim_end_matches(' ').len();
        self.text.truncate(trimmed);
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.pending_space = false;
    }
}

/// `html` as Markdown or plain text.
pub fn convert(html: &str, style: Style) -> String {
    let md = style == Style::Markdown;
    let mut out = Out {
        text: String::new(),
        pending_space: false,
    };
    let mut hidden: Option<String> = None;
    let mut pre = 0usize;
    let mut lists: Vec<(bool, usize)> = Vec::new();
    let mut links: Vec<Option<String>> = Vec::new();
    for token in scan(html) {
        if let Some(name) = &hidden {
            if let Err(tag) = &token
                && tag.closing
                && &tag.name == name
            {
                hidden = None;
            }
            continue;
        }
        let tag = match token {
            Ok(text) => {
                if pre > 0 {
                    out.inline(&decode(text));
                } else {
                    out.words(&decode(text));
                }
                continue;
            }
            Err(tag) => tag,
        };
        let name = tag.name.as_str();
        if HIDDEN.contains(&name) {
            if !tag.closing && !tag.attrs.trim_end().ends_with('/') {
                hidden = Some(tag.name.clone());
            }
            continue;
        }
        match (name, tag.closing) {
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", false) => {
                out.block();
                if md {
                    let level = usize::from(name.as_bytes()[1] - b'0');
                    out.inline(&format!("{} ", "#".repeat(level)));
                }
            }
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => out.block(),
            ("br", _) => out.line(),
            ("hr", _) => {
                out.block();
                if md {
                    out.inline("---");
                    out.block();
                }
            }
            ("pre", false) => {
                out.block();
                pre += 1;
                if md {
                    out.text.push_str("```\n");
                }
            }
            ("pre", true) => {
                pre = pre.saturating_sub(1);
                if md {
                    if !out.text.ends_with('\n') {
                        out.text.push('\n');
                    }
                    out.text.push_str("```");
                }
                out.block();
            }
            ("code" | "kbd" | "samp", _) if md && pre == 0 => out.inline("`"),
            ("strong" | "b", _) if md => out.inline("**"),
            ("em" | "i", _) if md => out.inline("_"),
            ("blockquote", false) => {
                out.block();
                if md {
                    out.inline("> ");
                }
            }
            ("ul" | "ol", false) => {
                out.line();
                lists.push((name == "ol", 0));
            }
            ("ul" | "ol", true) => {
                lists.pop();
                out.block();
            }
            ("li", false) => {
                out.line();
                let depth = lists.len().saturating_sub(1);
                let marker = match lists.last_mut() {
                    Some((true, n)) => {
                        *n += 1;
                        format!("{n}. ")
                    }
                    _ => "- ".to_owned(),
                };
                out.inline(&format!("{}{marker}", "  ".repeat(depth)));
            }
            ("li", true) => out.line(),
            ("a", false) => {
                let href = attr(tag.attrs, "href").filter(|h| !h.starts_with("javascript:"));
                if md && href.is_some() {
                    out.inline("[");
                }
                links.push(href);
            }
            ("a", true) => {
                if let Some(Some(href)) = links.pop()
                    && md
                {
                    out.text.push_str(&format!("]({href})"));
                }
            }
            ("img", _) if md => {
                let alt = attr(tag.attrs, "alt").unwrap_or_default();
                if let Some(src) = attr(tag.attrs, "src") {
                    out.inline(&format!("![{alt}]({src})"));
                }
            }
            ("td" | "th", false) => out.inline(if md { "| " } else { " " }),
            (block, _) if BLOCKS.contains(&block) => out.block(),
            _ => {}
        }
    }
    out.text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style>
<script>var x = "<p>not shown</p>";</script></head><body>
<h1>Install   guide</h1><p>Run <code>make&nbsp;install</code> as <b>root</b> &amp; see
<a href="https://example.org/docs?a=1&amp;b=2">the docs</a>.</p><!-- a comment -->
<ul><li>one</li><li>two <i>items</i></li></ul><ol><li>first</li><li>second</li></ol>
<pre>fn main() {
    say("&lt;hi&gt;");
}</pre><p>Line<br>break &#8212; &#x41;</p><img src="/a.png" alt="logo"></body></html>"#;

    #[test]
    fn html_should_become_markdown() {
        let md = convert(PAGE, Style::Markdown);
        assert!(md.starts_with("# Install guide\n\nRun `make install` as **root** & see [the docs](https://example.org/docs?a=1&b=2)."), "{md}");
        assert!(md.contains("- one\n- two _items_"), "{md}");
        assert!(md.contains("1. first\n2. second"), "{md}");
        assert!(
            md.contains("```\nfn main() {\n    say(\"<hi>\");\n}\n```"),
            "{md}"
        );
        assert!(md.contains("Line\nbreak — A"), "{md}");
        assert!(md.contains("![logo](/a.png)"), "{md}");
        assert!(!md.contains("not shown") && !md.contains("color"), "{md}");
    }

    #[test]
    fn html_should_become_plain_text() {
        let text = convert(PAGE, Style::Text);
        assert!(
            text.starts_with("Install guide\n\nRun make install as root & see the docs."),
            "{text}"
        );
        assert!(
            !text.contains("<b>") && !text.contains("**") && !text.contains("[the"),
            "{text}"
        );
    }

    #[test]
    fn broken_html_should_not_lose_text() {
        assert_eq!(convert("a < b and <3 >", Style::Text), "a < b and <3 >");
        assert_eq!(convert("<p>open <b>bold", Style::Markdown), "open **bold");
        assert_eq!(convert("<script>never closed", Style::Text), "");
    }
}
