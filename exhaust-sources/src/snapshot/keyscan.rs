//! Finding one top-level string field of a JSON object without building a
//! JSON value.
//!
//! Indexing a table needs only each line's key (`user_id`, `key`,
//! `batchid`, ...), and most lines of the large tables are never read again
//! for a given batch. Parsing them whole with `serde_json` was most of the
//! reader's time (BENCHMARKS.md); this walks the object's top level, skips
//! the values of other fields without decoding them, and stops at the field
//! it wants, which the snapshot's writers put first or nearly so.
//!
//! It is a scanner, not a validator: it checks the structure it walks
//! (quotes, brackets, separators) and refuses what is not an object, but
//! does not check numbers or the parts of a line after the field. A line is
//! parsed in full (with `serde_json`) when a lookup reads it.

use std::borrow::Cow;

/// Why a line's key could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError(pub(crate) String);

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, ScanError>;

fn err<T>(what: &str, at: usize) -> Result<T> {
    Err(ScanError(format!("{what} at column {}", at + 1)))
}

/// The string value of the top-level field `field` of the JSON object in
/// `line`; `None` when the field is absent or `null`. Strings without
/// escapes are borrowed from the line.
pub(crate) fn top_level_str<'a>(line: &'a [u8], field: &str) -> Result<Option<Cow<'a, str>>> {
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return err("expected a JSON object", i);
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        if line.get(i) != Some(&b'"') {
            return err("expected a field name", i);
        }
        let (name_end, name_escaped) = string_end(line, i)?;
        let name = &line[i + 1..name_end];
        let is_field = if name_escaped {
            decode_string(&line[i..=name_end], i)?.as_ref() == field
        } else {
            name == field.as_bytes()
        };
        i = skip_ws(line, name_end + 1);
        if line.get(i) != Some(&b':') {
            return err("expected ':'", i);
        }
        i = skip_ws(line, i + 1);
        if is_field {
            return match line.get(i) {
                Some(b'"') => {
                    let (end, escaped) = string_end(line, i)?;
                    if escaped {
                        decode_string(&line[i..=end], i).map(Some)
                    } else {
                        match std::str::from_utf8(&line[i + 1..end]) {
                            Ok(s) => Ok(Some(Cow::Borrowed(s))),
                            Err(_) => err("invalid UTF-8", i),
                        }
                    }
                }
                Some(b'n') if line[i..].starts_with(b"null") => Ok(None),
                _ => Err(ScanError(format!("field {field} is not a string"))),
            };
        }
        i = skip_value(line, i)?;
        i = skip_ws(line, i);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => return Ok(None),
            _ => return err("expected ',' or '}'", i),
        }
    }
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = line.get(i) {
        i += 1;
    }
    i
}

/// The position of the closing quote of the string opening at `start`, and
/// whether it holds an escape.
fn string_end(line: &[u8], start: usize) -> Result<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        match memchr::memchr2(b'"', b'\\', &line[i.min(line.len())..]) {
            Some(n) if line[i + n] == b'"' => return Ok((i + n, escaped)),
            Some(n) => {
                escaped = true;
                // The escaped character, whatever it is, cannot end the string.
                i += n + 2;
            }
            None => return err("unterminated string", start),
        }
    }
}

fn decode_string(quoted: &[u8], at: usize) -> Result<Cow<'static, str>> {
    serde_json::from_slice::<String>(quoted)
        .map(Cow::Owned)
        .or_else(|e| err(&format!("bad string ({e})"), at))
}

/// Skips the value starting at `i`; the position after it.
fn skip_value(line: &[u8], i: usize) -> Result<usize> {
    match line.get(i) {
        Some(b'"') => Ok(string_end(line, i)?.0 + 1),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&b) = line.get(j) {
                match b {
                    b'"' => j = string_end(line, j)?.0,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            err("unterminated object or list", i)
        }
        Some(_) => {
            // A number, true, false or null: up to the next separator.
            let mut j = i;
            while let Some(&b) = line.get(j) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                j += 1;
            }
            if j == i {
                return err("expected a value", i);
            }
            Ok(j)
        }
        None => err("expected a value", i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(line: &str, field: &str) -> Result<Option<String>> {
        top_level_str(line.as_bytes(), field).map(|o| o.map(Cow::into_owned))
    }

    #[test]
    fn finds_top_level_fields_only() {
        let line = r#"{"a": {"user_id": "inner", "x": [1, {"y": "}"}]}, "n": -1.5e3, "t": true, "user_id": "u1", "z": null}"#;
        assert_eq!(get(line, "user_id"), Ok(Some("u1".into())));
        assert_eq!(get(line, "z"), Ok(None));
        assert_eq!(get(line, "missing"), Ok(None));
        assert_eq!(get("{}", "a"), Ok(None));
        assert_eq!(get(" { \"a\" : \"b\" } ", "a"), Ok(Some("b".into())));
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            get(r#"{"k\u0065y": "user:\"q\"\\", "key": "second"}"#, "key"),
            Ok(Some(r#"user:"q"\"#.into()))
        );
        assert_eq!(
            get(r#"{"s": "a \"key\": \"x\"", "key": "y"}"#, "key"),
            Ok(Some("y".into()))
        );
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "",
            "[1]",
            "\"key\"",
            "{\"",
            "{\"key\"",
            "{\"key\":",
            "{\"key\": 1}",
            "{\"a\": 1 \"key\": \"x\"}",
            "{\"a\": {\"b\": \"}",
            "{\"a\": \"\\",
            "{\"a\":,\"key\":\"x\"}",
        ] {
            assert!(get(bad, "key").is_err(), "{bad:?}");
        }
        assert!(top_level_str(b"{\"key\": \"\xff\"}", "key").is_err());
    }
}
