//! GitHub's filter pattern syntax (branches, tags, paths) and cron strings.
//! Owned by the planning work; validation calls `check_glob` / `check_cron`.
//!
//! Patterns follow GHA-SEMANTICS §2.3 (the translation act's `workflowpattern` uses):
//! `**/` → `(.+/)?`, `**` → `.*`, `*` → `[^/]*`, `?`/`+` quantify the previous atom (literal at
//! position 0), `[a-z0-9]` classes with alphanumeric members and ranges only, `\c` escapes
//! `c`, a leading `!` negates, every other character is literal. The result is anchored.

use regex::Regex;

/// Why a filter pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    /// `problems`: what is wrong, with 0-based char offsets after a leading `!`.
    #[error("invalid pattern '{pattern}': {problems}")]
    Invalid { pattern: String, problems: String },
}

/// A compiled branch/tag/path filter pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as written (including a leading `!`).
    pub source: String,
    /// A leading `!`: a match excludes instead of including.
    pub negative: bool,
    /// The anchored regex the pattern (without `!`) translates to.
    pub regex: Regex,
}

impl Pattern {
    /// Compiles a pattern; `Err` says what is wrong (positions are 0-based char offsets
    /// within the pattern after a leading `!`).
    pub fn compile(pattern: &str) -> Result<Pattern, PatternError> {
        let (negative, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let re = to_regex(body)?;
        let regex = Regex::new(&re).map_err(|e| PatternError::Invalid {
            pattern: pattern.to_string(),
            problems: e.to_string().lines().last().unwrap_or("").to_string(),
        })?;
        Ok(Pattern {
            source: pattern.to_string(),
            negative,
            regex,
        })
    }

    /// True when the regex matches the whole item (the `!` is not applied here).
    pub fn is_match(&self, item: &str) -> bool {
        self.regex.is_match(item)
    }

    /// The regex text (anchored).
    pub fn regex_str(&self) -> &str {
        self.regex.as_str()
    }
}

/// Translates a pattern (without a leading `!`) into an anchored regex string.
pub fn to_regex(pattern: &str) -> Result<String, PatternError> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^");
    let mut errors: Vec<String> = Vec::new();
    let mut pos = 0;
    let lit = |out: &mut String, c: char| out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
    while pos < p.len() {
        match p[pos] {
            '*' => {
                if p.get(pos + 1) == Some(&'*') {
                    if p.get(pos + 2) == Some(&'/') {
                        out.push_str("(.+/)?");
                        pos += 3;
                    } else {
                        out.push_str(".*");
                        pos += 2;
                    }
                } else {
                    out.push_str("[^/]*");
                    pos += 1;
                }
            }
            c @ ('+' | '?') => {
                if pos > 0 {
                    out.push(c);
                } else {
                    lit(&mut out, c);
                }
                pos += 1;
            }
            '[' => {
                pos += 1;
                if p.get(pos) == Some(&']') {
                    errors.push(format!("position {pos}: unexpected empty brackets '[]'"));
                    pos += 1;
                    continue;
                }
                out.push('[');
                let start = pos;
                while pos < p.len() && p[pos] != ']' {
                    let c = p[pos];
                    if c == '-' {
                        if pos <= start || pos + 1 >= p.len() || p[pos + 1] == ']' {
                            errors.push(format!("position {pos}: invalid range"));
                            pos += 1;
                            continue;
                        }
                        let (a, b) = (p[pos - 1], p[pos + 1]);
                        let ok = a <= b
                            && ((a.is_ascii_digit() && b.is_ascii_digit())
                                || (a.is_ascii_alphabetic() && b.is_ascii_alphabetic()));
                        if !ok {
                            errors.push(format!(
                                "position {pos}: ranges can only include a-z, A-Z, A-z and 0-9"
                            ));
                            pos += 1;
                            continue;
                        }
                        out.push('-');
                        lit(&mut out, b);
                        pos += 2;
                    } else {
                        if !c.is_ascii_alphanumeric() {
                            errors.push(format!(
                                "position {pos}: character classes can only include a-z, A-Z and 0-9, not '{c}'"
                            ));
                        } else {
                            lit(&mut out, c);
                        }
                        pos += 1;
                    }
                }
                if pos >= p.len() {
                    errors.push(format!(
                        "position {pos}: missing closing bracket ']' after '['"
                    ));
                }
                out.push(']');
                pos += 1;
            }
            '\\' => {
                match p.get(pos + 1) {
                    Some(&c) => lit(&mut out, c),
                    None => errors.push(format!("position {pos}: missing symbol after \\")),
                }
                pos += 2;
            }
            c => {
                lit(&mut out, c);
                pos += 1;
            }
        }
    }
    if !errors.is_empty() {
        return Err(PatternError::Invalid {
            pattern: pattern.to_string(),
            problems: errors.join(", "),
        });
    }
    out.push('$');
    Ok(out)
}

/// Checks a branch/tag/path filter pattern; `Err` says what is wrong.
pub fn check_glob(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    Pattern::compile(pattern).map(|_| ())
}

/// Checks a whole include list (`branches`, `tags`, `paths`): every pattern must compile,
/// and a negative pattern needs at least one positive pattern in the list [D]. Returns the
/// index of the offending pattern with the message.
pub fn check_filter_list(patterns: &[&str]) -> Result<(), (usize, String)> {
    for (i, p) in patterns.iter().enumerate() {
        check_glob(p).map_err(|e| (i, e.to_string()))?;
    }
    if !patterns.is_empty() && patterns.iter().all(|p| p.starts_with('!')) {
        return Err((
            0,
            "a negative pattern ('!') needs at least one positive pattern in the same list; use the -ignore filter to only exclude".into(),
        ));
    }
    Ok(())
}

/// A parsed cron expression (5 POSIX fields, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// Allowed minutes (bit i = minute i), 0–59.
    pub minutes: u64,
    /// Allowed hours, 0–23.
    pub hours: u32,
    /// Allowed days of month, 1–31.
    pub days_of_month: u32,
    /// Allowed months, 1–12.
    pub months: u16,
    /// Allowed days of week, 0–6 (Sunday 0; 7 is accepted as Sunday).
    pub days_of_week: u8,
    /// Day-of-month field was `*` (POSIX: if one of dom/dow is restricted, either matches).
    pub dom_star: bool,
    pub dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn parse_field(
    field: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            // day of week accepts 7 as Sunday
            let hi = if what == "day of week" { 7 } else { max };
            if n < min || n > hi {
                return Err(format!("{what} value {n} is out of range {min}-{max}"));
            }
            return Ok(if what == "day of week" && n == 7 {
                0
            } else {
                n
            });
        }
        let up = s.to_ascii_uppercase();
        names
            .iter()
            .position(|n| *n == up)
            .map(|i| i as u32 + name_base)
            .ok_or_else(|| format!("invalid {what} value '{s}'"))
    };
    let mut bits = 0u64;
    for part in field.split(',') {
        if part.is_empty() {
            return Err(format!("empty list item in {what} field '{field}'"));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("invalid step '{s}' in {what} field"))?;
                if step == 0 {
                    return Err(format!("step 0 in {what} field"));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            // `FRI-SUN`/`5-7` style wrap is not POSIX; reject reversed ranges.
            let b = if what == "day of week" && b == 0 && a > 0 {
                7
            } else {
                b
            };
            if a > b {
                return Err(format!("invalid range '{range}' in {what} field"));
            }
            (a, b)
        } else {
            let v = value(range)?;
            (v, if step.is_some() { max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut i = lo;
        while i <= hi {
            let v = if what == "day of week" && i == 7 {
                0
            } else {
                i
            };
            bits |= 1u64 << v;
            i += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses a 5-field cron string (`minute hour day-of-month month day-of-week`).
    pub fn parse(cron: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = cron.split_whitespace().collect();
        if cron.trim_start().starts_with('@') {
            return Err(format!(
                "cron macros such as '{}' are not supported; use 5 fields (minute hour day-of-month month day-of-week)",
                fields.first().copied().unwrap_or("")
            ));
        }
        if fields.len() != 5 {
            return Err(format!(
                "a cron expression needs 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        }
        let minutes = parse_field(fields[0], "minute", 0, 59, &[], 0)?;
        let hours = parse_field(fields[1], "hour", 0, 23, &[], 0)? as u32;
        let dom = parse_field(fields[2], "day of month", 1, 31, &[], 0)? as u32;
        let months = parse_field(fields[3], "month", 1, 12, &MONTHS, 1)? as u16;
        let dow = parse_field(fields[4], "day of week", 0, 6, &DAYS, 0)? as u8;
        Ok(Cron {
            minutes,
            hours,
            days_of_month: dom,
            months,
            days_of_week: dow,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        })
    }

    /// True when the schedule fires at this UTC minute. `dow` is 0 (Sunday) to 6.
    pub fn matches(&self, minute: u32, hour: u32, dom: u32, month: u32, dow: u32) -> bool {
        if self.minutes & (1 << minute) == 0
            || self.hours & (1 << hour) == 0
            || self.months & (1 << month) == 0
        {
            return false;
        }
        let d = self.days_of_month & (1 << dom) != 0;
        let w = self.days_of_week & (1 << dow) != 0;
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (false, true) => d,
            (true, false) => w,
            (false, false) => d || w,
        }
    }

    /// The shortest gap in minutes between two firings within one day pattern (an
    /// approximation over the minute and hour fields), used for the 5-minute warning.
    pub fn min_interval_minutes(&self) -> u32 {
        let mut times: Vec<u32> = Vec::new();
        for h in 0..24 {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            for m in 0..60 {
                if self.minutes & (1u64 << m) != 0 {
                    times.push(h * 60 + m);
                }
            }
        }
        if times.len() < 2 {
            return 24 * 60;
        }
        let mut best = times[0] + 24 * 60 - times[times.len() - 1];
        for w in times.windows(2) {
            best = best.min(w[1] - w[0]);
        }
        best
    }
}

/// Checks a 5-field POSIX cron string as GitHub accepts it; `Err` says what is wrong.
/// Schedules more frequent than every 5 minutes are accepted (GitHub runs them at most
/// every 5 minutes); see [`cron_warning`].
pub fn check_cron(cron: &str) -> Result<(), String> {
    Cron::parse(cron).map(|_| ())
}

/// A warning for a valid cron string that fires more often than every 5 minutes.
pub fn cron_warning(cron: &str) -> Option<String> {
    let c = Cron::parse(cron).ok()?;
    let gap = c.min_interval_minutes();
    (gap < 5).then(|| {
        format!("the schedule '{cron}' fires every {gap} minute(s); GitHub runs scheduled workflows at most once every 5 minutes")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::compile(p).unwrap().is_match(s)
    }

    #[test]
    fn translation() {
        let cases = [
            ("**/", "^(.+/)?$"),
            ("**", "^.*$"),
            ("*", "^[^/]*$"),
            ("a?", "^a?$"),
            ("?a", "^\\?a$"),
            ("+a", "^\\+a$"),
            ("v[12].[0-9]+", "^v[12]\\.[0-9]+$"),
            ("\\!x", "^!x$"),
            ("a.b", "^a\\.b$"),
        ];
        for (p, r) in cases {
            assert_eq!(to_regex(p).unwrap(), r, "pattern {p}");
        }
    }

    #[test]
    fn matching_docs_examples() {
        let yes = [
            ("feature/*", "feature/my-branch"),
            ("feature/**", "feature/beta-a/my-branch"),
            ("*", "main"),
            ("**", "all/the/branches"),
            ("*feature", "feature"),
            ("v2*", "v2.9"),
            ("v[12].[0-9]+.[0-9]+", "v1.10.1"),
            ("*.jsx?", "page.js"),
            ("*.jsx?", "page.jsx"),
            ("**.js", "src/js/app.js"),
            ("docs/**/*.md", "docs/README.md"),
            ("docs/**/*.md", "docs/a/markdown/file.md"),
            ("**/docs/**", "docs/hello.md"),
            ("**/README.md", "README.md"),
            ("**/*src/**", "my-src/code/js/app.js"),
            ("**/migrate-*.sql", "db/sept/migrate-v1.sql"),
            ("escape\\\\backslash", "escape\\backslash"),
            ("[A-z]x", "Qx"),
        ];
        for (p, s) in yes {
            assert!(m(p, s), "{p} should match {s}");
        }
        let no = [
            ("feature/*", "feature/a/b"),
            ("*", "path/with/slash"),
            (".yml", "fyml"),
            ("v[12].[0-9]+.[0-9]+", "v3.0.0"),
            ("*.md", "docs/hello.md"),
            ("docs/*", "docs/a/b.md"),
            ("main", "main2"),
            ("main", "xmain"),
        ];
        for (p, s) in no {
            assert!(!m(p, s), "{p} should not match {s}");
        }
    }

    #[test]
    fn negation_and_errors() {
        let p = Pattern::compile("!docs/**").unwrap();
        assert!(p.negative);
        assert!(p.is_match("docs/a.md"));
        for bad in ["[]", "[a-", "[!-z]", "[a_b]", "x\\", "[z-a]", "[a-9]"] {
            assert!(check_glob(bad).is_err(), "{bad} should be rejected");
        }
        assert!(check_glob("").is_err());
        assert!(check_glob("releases/**-alpha").is_ok());
        assert!(check_filter_list(&["!a"]).is_err());
        assert!(check_filter_list(&["*", "!a"]).is_ok());
        assert_eq!(check_filter_list(&["a", "[]"]).unwrap_err().0, 1);
    }

    #[test]
    fn cron() {
        for ok in [
            "0 0 * * *",
            "*/15 * * * *",
            "30 5,17 * * 1-5",
            "0 12 1 JAN,jul MON",
            "0 0 * * 7",
            "0 0 1-31/2 * SUN-SAT",
            "* * * * *",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}: {:?}", check_cron(ok));
        }
        for bad in [
            "@daily",
            "0 0 * *",
            "0 0 * * * *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 0 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            ",1 * * * *",
        ] {
            assert!(check_cron(bad).is_err(), "{bad} should be rejected");
        }
        assert!(cron_warning("* * * * *").is_some());
        assert!(cron_warning("*/5 * * * *").is_none());
        let c = Cron::parse("30 5 * * 1-5").unwrap();
        assert!(c.matches(30, 5, 3, 6, 1));
        assert!(!c.matches(30, 5, 3, 6, 0));
        let c = Cron::parse("0 0 13 * 5").unwrap();
        assert!(c.matches(0, 0, 13, 1, 2) && c.matches(0, 0, 1, 1, 5));
    }
}
