//! Expression values, conversions (spec §3.3–§3.5) and C# `G15` number formatting.

use indexmap::IndexMap;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

/// An expression value. Arrays and objects are reference-counted, so cloning a value (for
/// example when indexing a large context) is cheap, and `==` on them is reference equality.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An IEEE double.
    Number(f64),
    /// A string.
    String(Arc<str>),
    /// An array (possibly a filtered array produced by `*`).
    Array(Arc<Array>),
    /// An object with case-insensitive keys in insertion order.
    Object(Arc<Object>),
}

/// An array value. `filtered` marks the result of a `*` filter: further `.x` / `[i]` are
/// applied to each element (spec §3.7).
#[derive(Clone, Debug, Default)]
pub struct Array {
    /// The elements.
    pub items: Vec<Value>,
    /// True for the result of a `*` filter.
    pub filtered: bool,
}

impl Array {
    /// A plain (unfiltered) array.
    pub fn new(items: Vec<Value>) -> Self {
        Array {
            items,
            filtered: false,
        }
    }
}

/// An object: keys are looked up case-insensitively (`OrdinalIgnoreCase`), and keep their
/// original spelling and insertion order.
#[derive(Clone, Debug, Default)]
pub struct Object {
    map: IndexMap<Box<str>, (Box<str>, Value)>,
    case_sensitive: bool,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty object with case-sensitive keys: the runner's `env` context on Linux and
    /// macOS (`CaseSensitiveDictionaryContextData`, spec §3.3).
    pub fn new_case_sensitive() -> Self {
        Object {
            map: IndexMap::new(),
            case_sensitive: true,
        }
    }

    /// True for an object made by [`Object::new_case_sensitive`].
    pub fn is_case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    fn key_of<'k>(&self, key: &'k str) -> Cow<'k, str> {
        if self.case_sensitive {
            Cow::Borrowed(key)
        } else {
            fold_key(key)
        }
    }

    /// Inserts or replaces a value. On replacement the first key spelling and position stay.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key: String = key.into();
        let folded = self.key_of(&key).into_owned().into_boxed_str();
        match self.map.get_mut(&folded) {
            Some(slot) => slot.1 = value,
            None => {
                self.map.insert(folded, (key.into_boxed_str(), value));
            }
        }
    }

    /// JSON-object insertion: an exact duplicate key replaces the value; a key differing
    /// only in case keeps the first entry.
    pub(crate) fn insert_json(&mut self, key: String, value: Value) {
        let k = self.key_of(&key).into_owned();
        match self.map.get_mut(k.as_str()) {
            Some(slot) => {
                if *slot.0 == *key {
                    slot.1 = value;
                }
            }
            None => self.insert(key, value),
        }
    }

    /// Lookup: case-insensitive unless the object is case-sensitive.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let folded = self.key_of(key);
        self.map.get(folded.as_ref()).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries in insertion order with their original key spelling.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.map.values().map(|(k, v)| (k.as_ref(), v))
    }

    /// Values in insertion order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.map.values().map(|(_, v)| v)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::string(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Arc::from(s))
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::array(items)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::object(o)
    }
}

impl FromIterator<(String, Value)> for Object {
    fn from_iter<T: IntoIterator<Item = (String, Value)>>(iter: T) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

/// Simple upper-case mapping of one char as .NET `OrdinalIgnoreCase` does; non-ASCII chars
/// never fold onto ASCII ones.
fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) if !u.is_ascii() => u,
        _ => c,
    }
}

/// Folds a key for case-insensitive lookup (lowercase ASCII fast path without allocation).
pub(crate) fn fold_key(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_ascii_lowercase()
                    } else {
                        fold_char(c)
                    }
                })
                .collect(),
        )
    }
}

/// `String.Equals(a, b, OrdinalIgnoreCase)`.
pub fn str_eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    cmp_ignore_case(a, b) == Ordering::Equal
}

/// `String.Compare(a, b, OrdinalIgnoreCase)`: UTF-16 code units after simple upper-casing.
pub fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let x = a.bytes().map(|c| c.to_ascii_uppercase());
        let y = b.bytes().map(|c| c.to_ascii_uppercase());
        return x.cmp(y);
    }
    let mut buf = [0u16; 2];
    let x: Vec<u16> = a
        .chars()
        .flat_map(|c| fold_char(c).encode_utf16(&mut buf).to_vec())
        .collect();
    let y: Vec<u16> = b
        .chars()
        .flat_map(|c| fold_char(c).encode_utf16(&mut buf).to_vec())
        .collect();
    x.cmp(&y)
}

/// Case-insensitive substring search (`IndexOf(.., OrdinalIgnoreCase) >= 0`).
pub fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let h = hay.as_bytes();
        let n = needle.as_bytes();
        return h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    let h: Vec<char> = hay.chars().map(fold_char).collect();
    let n: Vec<char> = needle.chars().map(fold_char).collect();
    h.windows(n.len()).any(|w| w == n.as_slice())
}

/// Case-insensitive prefix test.
pub fn starts_with_ignore_case(s: &str, p: &str) -> bool {
    let mut sc = s.chars().map(fold_char);
    p.chars().map(fold_char).all(|c| sc.next() == Some(c))
}

/// Case-insensitive suffix test.
pub fn ends_with_ignore_case(s: &str, p: &str) -> bool {
    let mut sc = s.chars().rev().map(fold_char);
    p.chars().rev().map(fold_char).all(|c| sc.next() == Some(c))
}

impl Value {
    /// A string value.
    pub fn string(s: impl AsRef<str>) -> Value {
        Value::String(Arc::from(s.as_ref()))
    }

    /// A plain array value.
    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Arc::new(Array::new(items)))
    }

    /// An object value.
    pub fn object(o: Object) -> Value {
        Value::Object(Arc::new(o))
    }

    /// Object member lookup (case rules of the object); `None` for non-objects.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(o) => o.get(key),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(&a.items),
            _ => None,
        }
    }

    /// The object, if this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The kind name: "Null", "Boolean", "Number", "String", "Array", "Object".
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Bool(_) => "Boolean",
            Value::Number(_) => "Number",
            Value::String(_) => "String",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
        }
    }

    /// True for null, booleans, numbers and strings.
    pub fn is_primitive(&self) -> bool {
        !matches!(self, Value::Array(_) | Value::Object(_))
    }

    /// Truthiness as `if:` sees it (spec §3.4).
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => !(*n == 0.0 || n.is_nan()),
            Value::String(s) => !s.is_empty(),
            _ => true,
        }
    }

    /// The string conversion used by `${{ }}` interpolation and `format()` (spec §3.4).
    pub fn as_string(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed(""),
            Value::Bool(true) => Cow::Borrowed("true"),
            Value::Bool(false) => Cow::Borrowed("false"),
            Value::Number(n) => Cow::Owned(format_number(*n)),
            Value::String(s) => Cow::Borrowed(s),
            Value::Array(_) => Cow::Borrowed("Array"),
            Value::Object(_) => Cow::Borrowed("Object"),
        }
    }

    /// Conversion to number (spec §3.4).
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => parse_number(s),
            _ => f64::NAN,
        }
    }

    /// Loose equality `==` (spec §3.5).
    pub fn loose_eq(&self, other: &Value) -> bool {
        let (l, r) = coerce(self, other);
        match (&*l, &*r) {
            (Value::Null, Value::Null) => true,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => str_eq_ignore_case(a, b),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => Arc::ptr_eq(a, b),
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Loose ordering for `<` / `>`: `None` when the operands are not comparable.
    pub fn loose_cmp(&self, other: &Value) -> Option<Ordering> {
        let (l, r) = coerce(self, other);
        match (&*l, &*r) {
            (Value::Number(a), Value::Number(b)) => a.partial_cmp(b),
            (Value::String(a), Value::String(b)) => Some(cmp_ignore_case(a, b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn coerce<'a>(l: &'a Value, r: &'a Value) -> (Cow<'a, Value>, Cow<'a, Value>) {
    use Value::*;
    match (l, r) {
        (Number(_), String(_)) => (Cow::Borrowed(l), Cow::Owned(Number(r.to_number()))),
        (String(_), Number(_)) => (Cow::Owned(Number(l.to_number())), Cow::Borrowed(r)),
        _ if std::mem::discriminant(l) == std::mem::discriminant(r) => {
            (Cow::Borrowed(l), Cow::Borrowed(r))
        }
        (Bool(_) | Null, _) => {
            let n = Number(l.to_number());
            let (a, b) = coerce(&n, r);
            (Cow::Owned(a.into_owned()), Cow::Owned(b.into_owned()))
        }
        (_, Bool(_) | Null) => {
            let n = Number(r.to_number());
            let (a, b) = coerce(l, &n);
            (Cow::Owned(a.into_owned()), Cow::Owned(b.into_owned()))
        }
        _ => (Cow::Borrowed(l), Cow::Borrowed(r)),
    }
}

/// `ExpressionUtility.ParseNumber`: trims, `""` → 0, invariant decimal, `0x` (Int32,
/// two's complement like `Int32.TryParse(.., AllowHexSpecifier)`), `0o`, `Infinity`, else NaN.
pub fn parse_number(s: &str) -> f64 {
    let s = s.trim_matches(|c: char| c.is_whitespace());
    if s.is_empty() {
        return 0.0;
    }
    if let Some(v) = parse_decimal(s) {
        return v;
    }
    let b = s.as_bytes();
    if b.len() > 2 && b[0] == b'0' && b[1] == b'x' && b[2..].iter().all(u8::is_ascii_hexdigit) {
        let digits = s[2..].trim_start_matches('0');
        if digits.len() <= 8 {
            let v =
                u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16).unwrap_or(0);
            return f64::from(v as i32);
        }
        return f64::NAN;
    }
    if b.len() > 2
        && b[0] == b'0'
        && b[1] == b'o'
        && b[2..].iter().all(|c| (b'0'..=b'7').contains(c))
    {
        return match u64::from_str_radix(&s[2..], 8) {
            Ok(v) if v <= u64::from(u32::MAX) => f64::from(v as u32 as i32),
            _ => f64::NAN,
        };
    }
    f64::NAN
}

/// `Double.TryParse(s, AllowLeadingSign | AllowDecimalPoint | AllowExponent, Invariant)`.
fn parse_decimal(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = matches!(b.first(), Some(b'-'));
    if matches!(b.first(), Some(b'-' | b'+')) {
        i = 1;
    }
    let rest = &s[i..];
    if rest.eq_ignore_ascii_case("infinity") {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if rest.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    let start_digits = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut ndigits = i - start_digits;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        ndigits += i - f;
    }
    if ndigits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Formats a number like .NET `double.ToString("G15", InvariantCulture)`.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if n == 0.0 {
        // Negative zero prints as "0" (GitHub's cross-implementation test data).
        return "0".into();
    }
    // 15 significant digits, correctly rounded.
    let sci = format!("{:.14e}", n);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if !(-4..15).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g15() {
        assert_eq!(format_number(1.0), "1");
        assert_eq!(format_number(1.5), "1.5");
        assert_eq!(format_number(1e15), "1E+15");
        assert_eq!(format_number(123456789012345.0), "123456789012345");
        assert_eq!(format_number(0.0001), "0.0001");
        assert_eq!(format_number(0.00001), "1E-05");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
        assert_eq!(format_number(-2.5e-10), "-2.5E-10");
        assert_eq!(format_number(1e100), "1E+100");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(" 0x1F "), 31.0);
        assert_eq!(parse_number("0xFFFFFFFF"), -1.0);
        assert_eq!(parse_number("0o17"), 15.0);
        assert!(parse_number("0X1F").is_nan());
        assert!(parse_number("1e").is_nan());
        assert_eq!(parse_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(parse_number(""), 0.0);
    }
}
