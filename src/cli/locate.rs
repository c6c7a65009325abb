//! Lines and columns in policy text. Where in the text a problem is, the core says (a byte
//! offset, `Problem::at`, or `policy::offset_of` for any path); this only counts lines.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "{\n  \"k\": \"é\", \"v\": 1\n}\n".as_bytes();
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (2, 3));
        // "é" is two bytes and one column.
        let v = text.windows(3).position(|w| w == b"\"v\"").unwrap();
        assert_eq!(line_column(text, v), (2, 13));
        assert_eq!(line_column(text, text.len()), (4, 1));
        assert_eq!(line_column(text, text.len() + 5), (4, 1));
    }
}
