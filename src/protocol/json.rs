//! A JSON reader made for DDP frames: it reads the text straight into
//! [`serde_json::Value`]s without serde's deserializer machinery (which is
//! most of what a generic reader costs in the wasm), reads strings as
//! JavaScript's `JSON.parse` does (a lone UTF-16 surrogate escape becomes
//! U+FFFD instead of failing the frame), gives numbers their exact value
//! (Rust's own correctly rounded float parsing), keeps object keys in the
//! sender's order, and refuses nesting deeper than [`MAX_DEPTH`] instead
//! of overflowing the stack.

use serde_json::{Map, Number, Value};
use std::borrow::Cow;

/// How deeply arrays and objects may nest (serde_json's limit too).
pub const MAX_DEPTH: usize = 128;

/// Why a text is not JSON: what was wrong and the byte offset where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub what: &'static str,
    pub at: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Reads `text` as one JSON value (white space around it allowed).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let mut r = Reader::new(text);
    let v = r.value()?;
    r.end()?;
    Ok(v)
}

/// Reads JSON text, one piece at a time, for callers that walk the top
/// level themselves (the frame reader reads a frame's keys one by one).
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader { text, at: 0, depth: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, JsonError> {
        Err(JsonError { what, at: self.at })
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not white space (not consumed).
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.eat(b) {
            Ok(())
        } else {
            self.fail(what)
        }
    }

    /// Only white space is left.
    pub fn end(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("trailing characters"),
        }
    }

    /// Reads any value.
    pub fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => {
                let entries = self.object_entries()?;
                Ok(Value::Object(entries.into_iter().collect()))
            }
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::String(self.string_cow()?.into_owned())),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.fail("expected a value"),
            None => self.fail("unexpected end of the text"),
        }
    }

    /// Reads an object whose map is made at exactly its size (a document's
    /// fields are kept as long as the document).
    pub fn exact_object(&mut self) -> Result<Value, JsonError> {
        if self.peek() != Some(b'{') {
            return self.value();
        }
        let entries = self.object_entries()?;
        let mut map = Map::with_capacity(entries.len());
        map.extend(entries);
        Ok(Value::Object(map))
    }

    fn word(&mut self, word: &'static str, v: Value) -> Result<Value, JsonError> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(v)
        } else {
            self.fail("expected a value")
        }
    }

    fn nest(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.nest()?;
        self.at += 1; // [
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                items.push(self.value()?);
                if self.eat(b']') {
                    break;
                }
                self.expect(b',', "expected , or ]")?;
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn object_entries(&mut self) -> Result<Vec<(String, Value)>, JsonError> {
        let mut entries = Vec::new();
        self.object(|r, key| {
            let v = r.value()?;
            entries.push((key.into_owned(), v));
            Ok(())
        })?;
        Ok(entries)
    }

    /// Reads an object, handing each key to `entry`, which must read its
    /// value from the reader.
    pub fn object(&mut self, mut entry: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), JsonError>) -> Result<(), JsonError> {
        self.nest()?;
        self.expect(b'{', "expected an object")?;
        if !self.eat(b'}') {
            loop {
                if self.peek() != Some(b'"') {
                    return self.fail("expected a key");
                }
                let key = self.string_cow()?;
                self.expect(b':', "expected :")?;
                entry(self, key)?;
                if self.eat(b'}') {
                    break;
                }
                self.expect(b',', "expected , or }")?;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let digits = self.text.get(self.at..self.at + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits.and_then(|d| u16::from_str_radix(d, 16).ok()) {
            Some(u) => {
                self.at += 4;
                Ok(u)
            }
            None => self.fail("bad \\u escape"),
        }
    }

    /// Reads a string (the reader is at its opening quote), borrowed from
    /// the text when it holds no escape.
    pub fn string_cow(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.at += 1; // "
        let b = self.bytes();
        let text: &'a str = self.text;
        let start = self.at;
        // The common case: no escape, no copy.
        while let Some(&c) = b.get(self.at) {
            match c {
                b'"' => {
                    self.at += 1;
                    return Ok(Cow::Borrowed(&text[start..self.at - 1]));
                }
                b'\\' => break,
                0..=0x1f => return self.fail("control character in a string"),
                _ => self.at += 1,
            }
        }
        let mut s = String::from(&self.text[start..self.at]);
        loop {
            let Some(&c) = b.get(self.at) else {
                return self.fail("unterminated string");
            };
            match c {
                b'"' => {
                    self.at += 1;
                    return Ok(Cow::Owned(s));
                }
                b'\\' => {
                    self.at += 1;
                    let Some(&e) = b.get(self.at) else {
                        return self.fail("unterminated string");
                    };
                    self.at += 1;
                    match e {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\u{8}'),
                        b'f' => s.push('\u{c}'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            let c = match unit {
                                0xD800..=0xDBFF if self.text[self.at..].starts_with("\\u") => {
                                    let back = self.at;
                                    self.at += 2;
                                    let low = self.hex4()?;
                                    if (0xDC00..=0xDFFF).contains(&low) {
                                        let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                                        char::from_u32(code).unwrap_or('\u{fffd}')
                                    } else {
                                        // A lone high surrogate; the escape after it is read on its own.
                                        self.at = back;
                                        '\u{fffd}'
                                    }
                                }
                                // A lone surrogate: what TextDecoder makes of it.
                                0xD800..=0xDFFF => '\u{fffd}',
                                u => char::from_u32(u32::from(u)).unwrap_or('\u{fffd}'),
                            };
                            s.push(c);
                        }
                        _ => return self.fail("bad escape"),
                    }
                }
                0..=0x1f => return self.fail("control character in a string"),
                _ => {
                    // Copy up to the next quote or backslash in one piece.
                    let from = self.at;
                    while let Some(&c) = b.get(self.at) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.at += 1;
                    }
                    s.push_str(&self.text[from..self.at]);
                }
            }
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.at;
        while self.bytes().get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - from
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let (start, integer) = self.number_text()?;
        match number_value(&self.text[start..self.at], integer) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.at = start;
                self.fail("number out of range")
            }
        }
    }

    /// Skips a number, refusing it as [`Reader::number`] would (out of
    /// the doubles' range) without converting it unless it is near the edge.
    fn skip_number(&mut self) -> Result<(), JsonError> {
        let (start, integer) = self.number_text()?;
        if in_range(&self.text[start..self.at], integer) {
            Ok(())
        } else {
            self.at = start;
            self.fail("number out of range")
        }
    }

    /// Reads past a number's text: where it started, and whether it is an
    /// integer (no fraction, no exponent).
    fn number_text(&mut self) -> Result<(usize, bool), JsonError> {
        let start = self.at;
        let b = self.bytes();
        if b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match b.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail("bad number"),
        }
        let mut integer = true;
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            integer = false;
            if self.digits() == 0 {
                return self.fail("bad number");
            }
        }
        if let Some(b'e' | b'E') = b.get(self.at) {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = b.get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.fail("bad number");
            }
        }
        Ok((start, integer))
    }
}

/// A number's text (without its sign) split at its exponent: the digits
/// and point before it, and the exponent's text ("0" when there is none).
fn mantissa_and_exponent(text: &str) -> (&str, &str) {
    match text.find(['e', 'E']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "0"),
    }
}

/// Whether `text`, a well-formed JSON number, is within the doubles' range:
/// decided from its decimal exponent, converting it only near ±1.8e308.
fn in_range(text: &str, integer: bool) -> bool {
    let (mantissa, exp) = mantissa_and_exponent(text.strip_prefix('-').unwrap_or(text));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The power of ten of the first significant digit, before the exponent.
    let lead = match whole.trim_start_matches('0') {
        w if !w.is_empty() => w.len() as i64 - 1,
        _ => match fraction.find(|c| c != '0') {
            Some(i) => -(i as i64) - 1,
            None => return true, // zero
        },
    };
    let exp: i64 = match exp.parse() {
        Ok(e) => e,
        // Too many digits for an i64: beyond any double either way.
        Err(_) => return exp.starts_with('-'),
    };
    match lead.saturating_add(exp) {
        m if m < 308 => true,
        m if m > 308 => false,
        _ => number_value(text, integer).is_some(),
    }
}

/// The value of `text`, a well-formed JSON number (`integer` when it has
/// no fraction and no exponent): an integer when it fits 64 bits, else the
/// nearest double (`None` beyond the doubles' range).
fn number_value(text: &str, integer: bool) -> Option<Number> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if integer {
        let m = digits.bytes().try_fold(0u64, |m, b| m.checked_mul(10)?.checked_add(u64::from(b - b'0')));
        match m {
            Some(m) if !negative => return Some(m.into()),
            // (`-0` is not an integer: JSON.parse reads it as the double -0.)
            Some(m) if m <= 1 << 63 && m != 0 => return Some((m as i64).wrapping_neg().into()),
            _ => {}
        }
    }
    Number::from_f64(exact_decimal(negative, digits).unwrap_or_else(|| crate::platform::parse_f64(text)))
}

/// The double of a decimal whose digits fit 2⁵³ and whose power of ten is
/// at most 22 either way: both are exact doubles, so one multiplication or
/// division rounds once, correctly (Clinger's fast path). `None` for the
/// rest, which the platform's parser reads.
fn exact_decimal(negative: bool, text: &str) -> Option<f64> {
    let (mantissa, exp) = mantissa_and_exponent(text);
    let exp = exp.strip_prefix('+').unwrap_or(exp);
    let exp: i32 = if exp.len() > 5 { return None } else { exp.parse().ok()? };
    let (mut m, mut scale, mut digits, mut in_fraction) = (0u64, 0i32, 0u32, false);
    for b in mantissa.bytes() {
        if b == b'.' {
            in_fraction = true;
            continue;
        }
        if m > 0 || b != b'0' {
            digits += 1;
            if digits > 15 {
                return None;
            }
            m = m * 10 + u64::from(b - b'0');
        }
        if in_fraction {
            scale -= 1;
        }
    }
    let sign = if negative { -1.0 } else { 1.0 };
    if m == 0 {
        return Some(sign * 0.0);
    }
    let e = exp + scale;
    if !(-22..=22).contains(&e) {
        return None;
    }
    let mut p = 1.0f64;
    for _ in 0..e.unsigned_abs() {
        p *= 10.0;
    }
    let v = m as f64;
    Some(sign * if e < 0 { v / p } else { v * p })
}

/// Appends `v` as compact JSON text, as `JSON.stringify` writes it (object
/// keys in their order; numbers as JavaScript writes them).
pub fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => write_array(items, out),
        Value::Object(m) => write_object(m.iter(), out),
    }
}

/// Appends `items` as a JSON array.
pub fn write_array(items: &[Value], out: &mut String) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_value(item, out);
    }
    out.push(']');
}

/// Appends an object of `fields` as compact JSON text.
pub fn write_object<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        write_value(v, out);
    }
    out.push('}');
}

/// `v` as compact JSON text.
pub fn to_text(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out);
    out
}

/// Appends a JSON number.
pub fn write_number(n: &Number, out: &mut String) {
    if let Some(u) = n.as_u64() {
        write_u64(u, out);
    } else if let Some(i) = n.as_i64() {
        out.push('-');
        write_u64(i.unsigned_abs(), out);
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f.fract() == 0.0 && f.abs() < 1e15 {
            // A whole double: written as the integer it is ("3", not "3.0").
            if f < 0.0 {
                out.push('-');
            }
            write_u64(f.abs() as u64, out);
        } else {
            crate::platform::write_f64(f, out);
        }
    }
}

/// Appends the decimal digits of `n`.
pub fn write_u64(mut n: u64, out: &mut String) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters
/// escaped as `JSON.stringify` escapes them.
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[from..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

/// `s` as a JSON string literal (for names quoted in error messages).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(s, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Skipping a value: its text instead of its value (a document's fields are
// kept as their JSON text, see `super::doc`). Kept apart from the reading
// above; strings and numbers are checked by the same code that reads them,
// so a skipped value is exactly a value `Reader::value` accepts.

impl<'a> Reader<'a> {
    /// The byte offset the reader is at.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Checks the next value as [`Reader::value`] would read it, without
    /// building it, and returns its text (white space inside it included).
    pub fn skip_value(&mut self) -> Result<&'a str, JsonError> {
        self.skip_ws();
        let start = self.at;
        self.skip_any()?;
        Ok(&self.text[start..self.at])
    }

    fn skip_any(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => self.object(|r, _| r.skip_any()),
            Some(b'[') => {
                self.nest()?;
                self.at += 1; // [
                if !self.eat(b']') {
                    loop {
                        self.skip_any()?;
                        if self.eat(b']') {
                            break;
                        }
                        self.expect(b',', "expected , or ]")?;
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            Some(b'"') => self.string_cow().map(drop),
            Some(b't') => self.word("true", Value::Null).map(drop),
            Some(b'f') => self.word("false", Value::Null).map(drop),
            Some(b'n') => self.word("null", Value::Null).map(drop),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            Some(_) => self.fail("expected a value"),
            None => self.fail("unexpected end of the text"),
        }
    }
}

// Native only: proptest is not built for wasm32 (wasm-pack test builds the lib's tests too).
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_value() {
        let text = r#" {"a": [1, -2, 3.5, -0.0, 1e3, 2E-2, 18446744073709551615, -9223372036854775808, 18446744073709551616],
            "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "t": true, "f": false, "n": null, "o": {}, "e": [], "dup": 1, "dup": 2} "#;
        assert_eq!(parse(text).unwrap(), serde_json::from_str::<Value>(text).unwrap());
        let Value::Object(m) = parse(r#"{"z":1,"a":2,"z":3}"#).unwrap() else { panic!() };
        assert_eq!(m.keys().collect::<Vec<_>>(), ["z", "a"], "the sender's order; a repeated key keeps its place");
        assert_eq!(m["z"], 3, "the last value wins");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(parse(r#""a\ud83d""#).unwrap(), "a\u{fffd}");
        assert_eq!(parse(r#""\udc00b""#).unwrap(), "\u{fffd}b");
        assert_eq!(parse(r#""\ud83d\ud83d\ude00""#).unwrap(), "\u{fffd}😀");
        assert_eq!(parse(r#""\ud83d\n""#).unwrap(), "\u{fffd}\n");
        assert_eq!(parse(r#"{"\ud800":1}"#).unwrap(), serde_json::json!({"\u{fffd}": 1}));
    }

    #[test]
    fn bad_text_is_an_error_with_its_place() {
        for (bad, at) in [
            ("", 0),
            ("{", 1),
            ("[1,]", 3),
            ("{\"a\" 1}", 5),
            ("{\"a\":1,}", 7),
            ("01", 1),
            ("1.", 2),
            ("-", 1),
            ("1e", 2),
            ("\"abc", 4),
            ("\"a\u{1}\"", 2),
            ("\"\\x\"", 3),
            ("\"\\u12\"", 3),
            ("tru", 0),
            ("1 2", 2),
            ("1e400", 0),
            ("{1:2}", 1),
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.at, at, "{bad:?}: {e}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "serde_json agrees that {bad:?} is not JSON");
        }
        let deep = "[".repeat(100_000);
        assert_eq!(parse(&deep).unwrap_err().what, "nested too deeply");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    // proptest is a native dev-dependency: the property tests run natively.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value (numbers of every kind, any strings, nesting).
        pub(crate) fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
                (-1e6f64..1e6).prop_map(Value::from),
                "\\PC{0,12}".prop_map(Value::String),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(5, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec((any::<String>(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            /// Whatever serde_json writes, this reader reads back to the same
            /// value (numbers exactly), compact or pretty.
            #[test]
            fn reads_back_what_serde_json_writes(v in json_value()) {
                let compact = serde_json::to_string(&v).unwrap();
                prop_assert_eq!(parse(&compact).unwrap(), v.clone());
                let pretty = serde_json::to_string_pretty(&v).unwrap();
                prop_assert_eq!(parse(&pretty).unwrap(), v);
            }

            /// On any text (cut, mutated JSON or noise), this reader and
            /// serde_json agree on whether it is JSON and on its value, but
            /// for the lone surrogates that only this reader accepts.
            #[test]
            fn agrees_with_serde_json_on_any_text(v in json_value(), cut in any::<prop::sample::Index>(), junk in "[\\[\\]{}:,\"\\\\0-9eE.+ -]{0,3}") {
                let text = serde_json::to_string(&v).unwrap();
                let at = cut.index(text.len() + 1);
                let mut mutated = String::new();
                if let (Some(head), Some(tail)) = (text.get(..at), text.get(at..)) {
                    mutated = format!("{head}{junk}{tail}");
                }
                for t in [&text, &mutated] {
                    let ours = parse(t);
                    let theirs = serde_json::from_str::<Value>(t);
                    match (&ours, &theirs) {
                        (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", t),
                        (Err(_), Err(_)) => {}
                        (Ok(_), Err(e)) => prop_assert!(e.to_string().contains("surrogate") || e.to_string().contains("unicode"), "{} only ours: {}", t, e),
                        (Err(e), Ok(_)) => prop_assert!(false, "{} only serde_json: {}", t, e),
                    }
                }
            }

            /// Skipping a number refuses exactly what reading it refuses
            /// (out of the doubles' range), decided mostly without
            /// converting it.
            #[test]
            fn a_skipped_number_is_in_range_as_a_read_one(
                neg in any::<bool>(), whole in "(0|[1-9][0-9]{0,4})", zeros in 0usize..6, fraction in "[0-9]{0,20}",
                exp in prop_oneof![-400i64..400, 300i64..320, Just(99_999_999_999_999_999)], exp_sign in any::<bool>(),
            ) {
                let frac = if fraction.is_empty() && zeros == 0 { String::new() } else { format!(".{}{fraction}", "0".repeat(zeros)) };
                let e = if exp_sign { format!("e{exp}") } else { String::new() };
                let text = format!("{}{whole}{frac}{e}", if neg { "-" } else { "" });
                let integer = frac.is_empty() && e.is_empty();
                prop_assert_eq!(in_range(&text, integer), number_value(&text, integer).is_some(), "{}", text);
                for edge in ["1.7976931348623157e308", "1.7976931348623158e308", "1.797693134862315807e308", "1.7976931348623159e308",
                             "179.76931348623157e306", "0.00017976931348623157e312", "-1.8e308", "1e308", "9.9e307", "0e999999999999999999999"] {
                    prop_assert_eq!(in_range(edge, false), number_value(edge, false).is_some(), "{}", edge);
                }
            }

            /// What the writer writes reads back to the same JSON value
            /// (a double exactly; a whole double as the integer it equals),
            /// and, numbers apart, is the text serde_json writes.
            #[test]
            fn the_writer_round_trips(v in json_value()) {
                let text = to_text(&v);
                let back = parse(&text).unwrap();
                prop_assert!(same_json(&back, &v), "{} read back as {:?}", text, back);
                prop_assert_eq!(serde_json::from_str::<Value>(&text).ok().map(|b| same_json(&b, &v)), Some(true));
                if !has_float(&v) {
                    prop_assert_eq!(text, serde_json::to_string(&v).unwrap());
                }
            }
        }

        /// Equal as JSON values: numbers by value (integers exactly).
        fn same_json(a: &Value, b: &Value) -> bool {
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
                    (Some(i), Some(j)) => i == j,
                    _ => x.as_f64() == y.as_f64(),
                },
                (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
                (Value::Object(x), Value::Object(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|((k, a), (l, b))| k == l && same_json(a, b))
                }
                _ => a == b,
            }
        }

        fn has_float(v: &Value) -> bool {
            match v {
                Value::Number(n) => n.is_f64(),
                Value::Array(a) => a.iter().any(has_float),
                Value::Object(m) => m.values().any(has_float),
                _ => false,
            }
        }
    }
}
