//! What the docs checks read from a Markdown page, by pulldown-cmark (a CommonMark parser with
//! GitHub's extensions, the one rustdoc uses): fenced code blocks with their info string, inline
//! code, links and images, heading anchors as GitHub makes them, HTML anchors and comments, and
//! bullet lists. Everything carries its line, for the problem messages.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// A fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The info string after the fence, trimmed: "json policy", "sh", "".
    pub info: String,
    pub text: String,
    pub line: usize,
    /// The HTML comment block right before it (nothing between), e.g. `<!-- demo-output -->`.
    pub comment_before: Option<String>,
}

impl Block {
    /// The info string's words: "json policy-rejected" -> ["json", "policy-rejected"].
    pub fn words(&self) -> Vec<&str> {
        self.info.split_whitespace().collect()
    }
}

/// A table cell: its text (inline code without its backticks) and its inline code spans.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub text: String,
    pub code: Vec<String>,
}

/// A table: its header cells and its rows, each with its line.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub line: usize,
    pub header: Vec<Cell>,
    pub rows: Vec<(usize, Vec<Cell>)>,
}

impl Table {
    /// The column whose header reads `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|c| c.text.trim().eq_ignore_ascii_case(name))
    }
}

/// A link or an image, as written (reference links resolved).
#[derive(Debug, Clone)]
pub struct Link {
    pub dest: String,
    pub line: usize,
    pub image: bool,
}

/// One block-level element, in page order: what "the block right after" means.
#[derive(Debug, Clone)]
pub enum Item {
    Code(Block),
    Heading,
    /// A paragraph, list, table, quote or HTML block.
    Other,
}

#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Inline code spans: (text, line).
    pub code_spans: Vec<(String, usize)>,
    pub links: Vec<Link>,
    /// The anchors a link can point at: headings' (GitHub's rules), and HTML `id`/`name`.
    pub anchors: Vec<String>,
    /// Bullet lists: per item, its first inline code span if the item starts with one.
    pub bullet_lists: Vec<Vec<Option<String>>>,
    pub tables: Vec<Table>,
}

impl Page {
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.items.iter().filter_map(|i| match i {
            Item::Code(b) => Some(b),
            _ => None,
        })
    }
}

/// GitHub's anchor for a heading's text: lowercased; every character that is not a letter, a
/// mark, a number, `_`, `-` or a space dropped; spaces made `-` (not collapsed).
pub fn github_anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `id="..."` and `name="..."` values in a piece of HTML.
fn html_attributes<'a>(html: &'a str, names: &[&str]) -> Vec<&'a str> {
    let mut found = Vec::new();
    for name in names {
        for quote in ['"', '\''] {
            let key = format!(" {name}={quote}");
            let mut rest = html;
            while let Some(at) = rest.find(&key) {
                let value = &rest[at + key.len()..];
                match value.find(quote) {
                    Some(end) => {
                        found.push(&value[..end]);
                        rest = &value[end..];
                    }
                    None => break,
                }
            }
        }
    }
    found
}

enum Kind {
    Block,
    Inline,
}

pub fn parse(text: &str) -> Page {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| line_starts.partition_point(|s| *s <= offset);

    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut page = Page::default();
    let mut heading: Option<String> = None;
    let mut seen_headings: Vec<String> = Vec::new();
    let mut code: Option<Block> = None;
    let mut depth = 0usize;
    let mut last_comment: Option<String> = None;
    // Bullet lists being read (nested ones too), and whether the current item has had inline
    // content yet.
    let mut lists: Vec<(bool, Vec<Option<String>>)> = Vec::new();
    let mut item_open = false;
    // The table being read, and the cell being read in it.
    let mut table: Option<Table> = None;
    let mut cell: Option<Cell> = None;

    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        let line = line_of(range.start);
        let event_kind = if matches!(event, Event::Html(_)) {
            Kind::Block
        } else {
            Kind::Inline
        };
        match event {
            Event::Start(tag) => {
                if depth == 0 {
                    let comment = last_comment.take();
                    match &tag {
                        Tag::CodeBlock(kind) => {
                            let info = match kind {
                                CodeBlockKind::Fenced(info) => info.trim().to_string(),
                                CodeBlockKind::Indented => String::new(),
                            };
                            code = Some(Block {
                                info,
                                text: String::new(),
                                line,
                                comment_before: comment,
                            });
                        }
                        Tag::Heading { .. } => page.items.push(Item::Heading),
                        Tag::HtmlBlock => {}
                        _ => page.items.push(Item::Other),
                    }
                } else if let Tag::CodeBlock(kind) = &tag {
                    // A code block inside a list or quote: checked too, but it is no one's
                    // "block right after".
                    let info = match kind {
                        CodeBlockKind::Fenced(info) => info.trim().to_string(),
                        CodeBlockKind::Indented => String::new(),
                    };
                    code = Some(Block {
                        info,
                        text: String::new(),
                        line,
                        comment_before: None,
                    });
                }
                match tag {
                    Tag::Heading { .. } => heading = Some(String::new()),
                    Tag::Link { dest_url, .. } => page.links.push(Link {
                        dest: dest_url.to_string(),
                        line,
                        image: false,
                    }),
                    Tag::Image { dest_url, .. } => page.links.push(Link {
                        dest: dest_url.to_string(),
                        line,
                        image: true,
                    }),
                    Tag::List(start) => lists.push((start.is_none(), Vec::new())),
                    Tag::Table(_) => {
                        table = Some(Table {
                            line,
                            ..Table::default()
                        })
                    }
                    Tag::TableRow => {
                        if let Some(t) = table.as_mut() {
                            t.rows.push((line, Vec::new()));
                        }
                    }
                    Tag::TableCell => cell = Some(Cell::default()),
                    Tag::Item => {
                        if let Some((_, items)) = lists.last_mut() {
                            items.push(None);
                        }
                        item_open = true;
                    }
                    _ => {}
                }
                depth += 1;
            }
            Event::End(tag) => {
                depth = depth.saturating_sub(1);
                match tag {
                    TagEnd::Heading(_) => {
                        let text = heading.take().unwrap_or_default();
                        let base = github_anchor(&text);
                        let n = seen_headings.iter().filter(|h| **h == base).count();
                        page.anchors.push(if n == 0 {
                            base.clone()
                        } else {
                            format!("{base}-{n}")
                        });
                        seen_headings.push(base);
                    }
                    TagEnd::CodeBlock => {
                        if let Some(block) = code.take() {
                            if depth == 0 {
                                page.items.push(Item::Code(block));
                            } else {
                                page.items.push(Item::Code(Block {
                                    comment_before: None,
                                    ..block
                                }));
                            }
                        }
                    }
                    TagEnd::TableCell => {
                        if let (Some(t), Some(c)) = (table.as_mut(), cell.take()) {
                            match t.rows.last_mut() {
                                Some((_, cells)) => cells.push(c),
                                None => t.header.push(c),
                            }
                        }
                    }
                    TagEnd::Table => page.tables.extend(table.take()),
                    TagEnd::List(_) => {
                        if let Some((bullets, items)) = lists.pop() {
                            if bullets {
                                page.bullet_lists.push(items);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some(c) = cell.as_mut() {
                    c.text.push_str(&t);
                }
                if let Some(block) = code.as_mut() {
                    block.text.push_str(&t);
                } else if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
                if !t.trim().is_empty() {
                    item_open = false;
                }
            }
            Event::Code(c) => {
                if let Some(cell) = cell.as_mut() {
                    cell.text.push_str(&c);
                    cell.code.push(c.to_string());
                }
                if let Some(h) = heading.as_mut() {
                    h.push_str(&c);
                }
                if item_open {
                    if let Some(slot) = lists.last_mut().and_then(|(_, items)| items.last_mut()) {
                        *slot = Some(c.to_string());
                    }
                    item_open = false;
                }
                page.code_spans.push((c.to_string(), line));
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                // Event::Html is an HTML block's; a comment inline in a paragraph marks nothing.
                let block =
                    matches!(&event_kind, Kind::Block) && html.trim_start().starts_with("<!--");
                for anchor in html_attributes(&html, &["id", "name"]) {
                    page.anchors.push(anchor.to_string());
                }
                for dest in html_attributes(&html, &["href", "src"]) {
                    page.links.push(Link {
                        dest: dest.to_string(),
                        line,
                        image: html.contains("<img"),
                    });
                }
                if block {
                    last_comment = Some(html.trim().to_string());
                }
            }
            _ => {
                if item_open {
                    item_open = false;
                }
            }
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_as_github_makes_them() {
        assert_eq!(
            github_anchor("Native build (Envoy dynamic module)"),
            "native-build-envoy-dynamic-module"
        );
        assert_eq!(github_anchor("Command line: dial"), "command-line-dial");
        assert_eq!(
            github_anchor("`x-dial-assignment` and you"),
            "x-dial-assignment-and-you"
        );
        assert_eq!(github_anchor("A / B  tests_now"), "a--b--tests_now");
        let page = parse("# Intro\n\n## Intro\n\n### Intro\n\n<a id=\"here\"></a>\n");
        assert_eq!(page.anchors, ["intro", "intro-1", "intro-2", "here"]);
    }

    #[test]
    fn blocks_links_spans_and_lists() {
        let page = parse(
            "Run `make test`.\n\n<!-- demo-output -->\n```text\nout\n```\n\n\
             - `make lint`: lint\n- `make unit-test` and more\n- plain\n\n\
             [a](docs/x.md#y) ![i](img.svg)\n\n[r]: other.md\n\nsee [r]\n",
        );
        let blocks: Vec<&Block> = page.blocks().collect();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].info, "text");
        assert_eq!(blocks[0].text, "out\n");
        assert_eq!(blocks[0].line, 4);
        assert_eq!(
            blocks[0].comment_before.as_deref(),
            Some("<!-- demo-output -->")
        );
        assert_eq!(page.code_spans[0], ("make test".to_string(), 1));
        assert_eq!(
            page.bullet_lists,
            [vec![
                Some("make lint".to_string()),
                Some("make unit-test".to_string()),
                None
            ]]
        );
        let dests: Vec<(&str, bool)> = page
            .links
            .iter()
            .map(|l| (l.dest.as_str(), l.image))
            .collect();
        assert_eq!(
            dests,
            [
                ("docs/x.md#y", false),
                ("img.svg", true),
                ("other.md", false)
            ]
        );
    }

    #[test]
    fn tables_with_their_code_spans() {
        let page =
            parse("Text.\n\n| Field | Type |\n|---|---|\n| `a.b` | string |\n| *x* | `c`, `d` |\n");
        assert_eq!(page.tables.len(), 1);
        let t = &page.tables[0];
        assert_eq!(t.line, 3);
        assert_eq!(t.column("type"), Some(1));
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].0, 5);
        assert_eq!(t.rows[0].1[0].code, ["a.b"]);
        assert_eq!(t.rows[1].1[0].text, "x");
        assert_eq!(t.rows[1].1[1].text, "c, d");
        assert_eq!(t.rows[1].1[1].code, ["c", "d"]);
    }
}
