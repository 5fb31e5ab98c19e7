//! JSON conversions: `fromJSON` parsing (keeps key order), `toJSON` pretty printing in the
//! runner's format, and conversion to/from `serde_json::Value`.

use crate::value::{Array, Object, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// Why JSON text did not parse (the message `fromJSON` reports, e.g. "Unexpected end of
/// JSON input").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Parses strict JSON text (RFC 8259) into a value, keeping object key order. Every number
/// becomes a double; numbers too large for a double become infinite (as .NET parses them).
pub fn parse_json(text: &str) -> Result<Value, JsonError> {
    parse_json_max_depth(text, 512).map_err(JsonError)
}

/// [`parse_json`] with a nesting limit (`fromJSON` uses Newtonsoft's default of 64).
pub(crate) fn parse_json_max_depth(text: &str, max_depth: usize) -> Result<Value, String> {
    let mut p = JsonParser {
        b: text.as_bytes(),
        i: 0,
        depth: 0,
        max_depth,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!(
            "Unexpected non-whitespace character after JSON at position {}",
            p.i
        ));
    }
    Ok(v)
}

struct JsonParser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    max_depth: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        if self.i >= self.b.len() {
            Err("Unexpected end of JSON input".into())
        } else {
            Err(format!("{what} in JSON at position {}", self.i))
        }
    }

    fn lit(&mut self, word: &[u8], v: Value) -> Result<Value, String> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("Unexpected token")
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        let Some(&c) = self.b.get(self.i) else {
            return self.err("Unexpected end");
        };
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => Ok(Value::String(Arc::from(self.string()?))),
            b't' => self.lit(b"true", Value::Bool(true)),
            b'f' => self.lit(b"false", Value::Bool(false)),
            b'n' => self.lit(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.err("Unexpected token"),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err("JSON nested too deeply".into());
        }
        self.i += 1;
        self.ws();
        Ok(())
    }

    fn array(&mut self) -> Result<Value, String> {
        self.enter()?;
        let mut items = Vec::new();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::array(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::array(items));
                }
                _ => return self.err("Expected ',' or ']'"),
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.enter()?;
        let mut o = Object::new();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::object(o));
        }
        loop {
            if self.b.get(self.i) != Some(&b'"') {
                return self.err("Expected double-quoted property name");
            }
            let k = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return self.err("Expected ':' after property name");
            }
            self.i += 1;
            self.ws();
            let v = self.value()?;
            o.insert_json(k, v);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::object(o));
                }
                _ => return self.err("Expected ',' or '}'"),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .ok_or("Unexpected end of JSON input")?;
        let s = std::str::from_utf8(h).map_err(|_| "Bad Unicode escape".to_string())?;
        let v = u32::from_str_radix(s, 16)
            .map_err(|_| format!("Bad Unicode escape in JSON at position {}", self.i))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.b.len()
                && !matches!(self.b[self.i], b'"' | b'\\')
                && self.b[self.i] >= 0x20
            {
                self.i += 1;
            }
            // The input is a &str and we only split at ASCII bytes, so this is valid UTF-8.
            out.push_str(std::str::from_utf8(&self.b[start..self.i]).unwrap_or_default());
            match self.b.get(self.i) {
                None => return Err("Unterminated string in JSON".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err("Unterminated string in JSON".into());
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut c = self.hex4()?;
                            if (0xD800..0xDC00).contains(&c) && self.b[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                                } else {
                                    self.i = save;
                                }
                            }
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.i -= 1;
                            return self.err("Bad escaped character");
                        }
                    }
                }
                Some(_) => return self.err("Bad control character in string literal"),
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
            }
            _ => return self.err("No number after minus sign"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return self.err("Unterminated fractional number");
            }
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return self.err("Exponent part is missing a number");
            }
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("0");
        Ok(Value::Number(s.parse::<f64>().unwrap_or(f64::NAN)))
    }
}

impl Value {
    /// Converts from `serde_json` (numbers become doubles). Object key order is that of
    /// `serde_json::Map` (sorted unless its `preserve_order` feature is on); use
    /// [`parse_json`](crate::parse_json) on the text to keep the document's order.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::string(s),
            serde_json::Value::Array(a) => Value::array(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(m) => {
                let mut o = Object::new();
                for (k, v) in m {
                    o.insert_json(k.clone(), Value::from_json(v));
                }
                Value::object(o)
            }
        }
    }

    /// Converts to `serde_json`. Non-finite numbers become the strings "NaN", "Infinity",
    /// "-Infinity"; integral numbers become JSON integers.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(a) => {
                serde_json::Value::Array(a.items.iter().map(Value::to_json).collect())
            }
            Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Compact JSON text in key insertion order; non-finite numbers become the strings
    /// "NaN", "Infinity", "-Infinity" (like [`Value::to_json`]).
    pub fn to_json_compact(&self) -> String {
        let mut out = String::new();
        write_compact(self, &mut out);
        out
    }

    /// `toJSON()`: the runner's pretty-printed JSON (2-space indent, `"key": value`).
    pub fn to_json_pretty(&self) -> String {
        let mut out = String::new();
        write_pretty(self, 0, &mut out);
        out
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    if n.is_nan() {
        return serde_json::Value::String("NaN".into());
    }
    if n.is_infinite() {
        return serde_json::Value::String(if n > 0.0 { "Infinity" } else { "-Infinity" }.into());
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

fn write_compact(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match number_to_json(*n) {
            serde_json::Value::String(s) => write_json_string(&s, out),
            j => {
                let _ = write!(out, "{j}");
            }
        },
        Value::String(s) => write_json_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(v, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_compact(v, out);
            }
            out.push('}');
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_pretty(v: &Value, depth: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => out.push_str(&v.as_string()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(a) => write_array(a, depth, out),
        Value::Object(o) => {
            if o.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_json_string(k, out);
                out.push_str(": ");
                write_pretty(v, depth + 1, out);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

fn write_array(a: &Array, depth: usize, out: &mut String) {
    if a.items.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, v) in a.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        indent(out, depth + 1);
        write_pretty(v, depth + 1, out);
    }
    indent(out, depth);
    out.push(']');
}

/// Writes a JSON string literal.
pub(crate) fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // The runner's serializer (Newtonsoft.Json, default escaping) also escapes
            // NEXT LINE and the two Unicode line/paragraph separators, which JavaScript
            // treats as line breaks.
            c if (c as u32) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl serde::Serialize for Value {
    /// Serializes like [`Value::to_json`] (key order kept, non-finite numbers as strings).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match number_to_json(*n) {
                serde_json::Value::String(t) => s.serialize_str(&t),
                serde_json::Value::Number(num) => num.serialize(s),
                _ => s.serialize_unit(),
            },
            Value::String(t) => s.serialize_str(t),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.items.len()))?;
                for v in &a.items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, v) in o.iter() {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_json_string;

    #[test]
    fn escapes_like_the_runner() {
        let mut out = String::new();
        write_json_string("a\u{2028}b\u{2029}c\u{85}d\u{1}e\u{7f}é", &mut out);
        // U+007F and non-ASCII letters stay raw, as Newtonsoft.Json writes them.
        assert_eq!(out, "\"a\\u2028b\\u2029c\\u0085d\\u0001e\u{7f}é\"");
    }
}
