//! Where a JSON path points in JSON text: the line and column of the value it names, or of its
//! deepest ancestor present (a missing field is reported at the object that misses it).

use dial::core::policy::Segment;

/// The (line, column), both from 1, of the value at `path` in `text`.
pub fn locate(text: &[u8], path: &[Segment]) -> (usize, usize) {
    let mut scanner = Scanner { text, at: 0 };
    scanner.whitespace();
    let offset = scanner.find(path);
    line_column(text, offset)
}

/// The (line, column), both from 1, of a byte offset; columns count characters.
pub fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |l| String::from_utf8_lossy(l).chars().count())
        + 1;
    (line, column)
}

struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The offset of the value at `path`, starting at the value under the cursor, or of the
    /// deepest ancestor present.
    fn find(&mut self, path: &[Segment]) -> usize {
        let here = self.at;
        let Some((segment, rest)) = path.split_first() else {
            return here;
        };
        let next = match (segment, self.peek()) {
            (Segment::Key(want), Some(b'{')) => self.member(want),
            (Segment::Index(want), Some(b'[')) => self.item(*want),
            _ => None,
        };
        match next {
            Some(at) => {
                self.at = at;
                self.find(rest)
            }
            None => here,
        }
    }

    /// The offset of the last member called `want` of the object under the cursor (a repeated
    /// key is reported at its repetition).
    fn member(&mut self, want: &str) -> Option<usize> {
        self.at += 1;
        let mut found = None;
        loop {
            self.whitespace();
            match self.peek()? {
                b'}' => return found,
                b',' => {
                    self.at += 1;
                    continue;
                }
                b'"' => {}
                _ => return found,
            }
            let key_start = self.at;
            self.string()?;
            let key: Option<String> = self
                .text
                .get(key_start..self.at)
                .and_then(|k| serde_json::from_slice(k).ok());
            self.whitespace();
            if self.peek()? != b':' {
                return found;
            }
            self.at += 1;
            self.whitespace();
            if key.as_deref() == Some(want) {
                found = Some(self.at);
            }
            self.skip()?;
        }
    }

    /// The offset of item `want` of the array under the cursor.
    fn item(&mut self, want: usize) -> Option<usize> {
        self.at += 1;
        let mut index = 0;
        loop {
            self.whitespace();
            match self.peek()? {
                b']' => return None,
                b',' => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            if index == want {
                return Some(self.at);
            }
            self.skip()?;
            index += 1;
        }
    }

    /// Moves past the string under the cursor.
    fn string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                _ => self.at += 1,
            }
        }
    }

    /// Moves past the value under the cursor.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segments: &[&str]) -> Vec<Segment> {
        segments
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(s.to_string()),
            })
            .collect()
    }

    const DOC: &str = "{\n  \"releases\": [\n    { \"name\": \"a\", \"subsets\": [ {\"w\": 1}, {\"w\": [2, {\"x\": \"}\"}]} ] }\n  ],\n  \"k\": \"v\"\n}\n";

    #[test]
    fn finds_values_and_falls_back_to_ancestors() {
        let t = DOC.as_bytes();
        assert_eq!(locate(t, &[]), (1, 1));
        assert_eq!(locate(t, &path(&["releases"])), (2, 15));
        assert_eq!(locate(t, &path(&["releases", "0", "name"])), (3, 15));
        assert_eq!(
            locate(t, &path(&["releases", "0", "subsets", "1", "w"])),
            (3, 49)
        );
        assert_eq!(locate(t, &path(&["k"])), (5, 8));
        // Missing: the deepest ancestor present.
        assert_eq!(locate(t, &path(&["releases", "0", "nope"])), (3, 5));
        assert_eq!(locate(t, &path(&["releases", "7"])), (2, 15));
        assert_eq!(locate(b"[1,2]", &path(&["releases"])), (1, 1));
        assert_eq!(locate(b"", &path(&["releases"])), (1, 1));
        assert_eq!(locate(b"{\"a\": 1, \"a\": 2}", &path(&["a"])), (1, 15));
    }
}
