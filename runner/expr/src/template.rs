//! `${{ }}` templates in YAML scalars (spec §1.1) and `if:` condition processing (§3.10).

use crate::{ErrorKind, EvalContext, Expr, ExprError, ParseOptions, Value, parse_with};

/// One part of a multi-part template.
#[derive(Clone, Debug)]
pub enum TemplatePart {
    /// Literal text.
    Literal(String),
    /// An expression; its value is converted with [`Value::as_string`].
    Expr(Expr),
}

/// A scalar after splitting it into literal text and `${{ }}` expressions.
#[derive(Clone, Debug)]
pub enum Template {
    /// No expression (or a single expression that is only a string literal).
    Literal(String),
    /// Exactly one expression and nothing else: the value keeps its type.
    Expr(Expr),
    /// Several parts: the result is always a string (`format('lit{0}lit', expr…)`).
    Format {
        /// The parts in order.
        parts: Vec<TemplatePart>,
    },
}

impl Template {
    /// Splits a scalar with every known context allowed. Errors carry in `position` the
    /// byte offset of the failing `${{` within the scalar.
    pub fn parse(src: &str) -> Result<Template, ExprError> {
        Self::parse_with(src, &ParseOptions::default())
    }

    /// Splits a scalar with explicit parse options.
    pub fn parse_with(src: &str, opts: &ParseOptions) -> Result<Template, ExprError> {
        let Some(mut start) = src.find("${{") else {
            return Ok(Template::Literal(src.to_string()));
        };
        let b = src.as_bytes();
        let mut parts: Vec<TemplatePart> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if i == start {
                let mut end = None;
                let mut in_str = false;
                let mut j = i + 3;
                while j < b.len() {
                    if b[j] == b'\'' {
                        in_str = !in_str;
                    } else if !in_str && b[j] == b'}' && b[j - 1] == b'}' {
                        end = Some(j);
                        break;
                    }
                    j += 1;
                }
                let Some(end) = end else {
                    return Err(template_error(
                        "The expression is not closed. An unescaped ${{ sequence was found, but the closing }} sequence was not found.".into(),
                        start,
                    ));
                };
                let raw = src[start + 3..end - 1].trim();
                if raw.is_empty() {
                    return Err(template_error("An expression was expected".into(), start));
                }
                let e = parse_with(raw, opts)
                    .map_err(|e| template_error(e.located_message(raw), start).with_kind(e.kind))?;
                parts.push(TemplatePart::Expr(e));
                i = end + 1;
                match src[i..].find("${{") {
                    Some(p) => start = p + i,
                    None => start = usize::MAX,
                }
            } else if i < start && start != usize::MAX {
                parts.push(TemplatePart::Literal(src[i..start].to_string()));
                i = start;
            } else {
                parts.push(TemplatePart::Literal(src[i..].to_string()));
                break;
            }
        }
        if parts.len() == 1 {
            return Ok(match parts.pop().expect("one part") {
                TemplatePart::Expr(e) => match e.as_string_literal() {
                    Some(s) => Template::Literal(s.to_string()),
                    None => Template::Expr(e),
                },
                TemplatePart::Literal(s) => Template::Literal(s),
            });
        }
        Ok(Template::Format { parts })
    }

    /// True unless the template is a plain literal.
    pub fn has_expressions(&self) -> bool {
        !matches!(self, Template::Literal(_))
    }

    /// Evaluates: a literal gives a string, a single expression keeps its type, several
    /// parts give a string.
    pub fn eval(&self, ctx: &dyn EvalContext) -> Result<Value, ExprError> {
        match self {
            Template::Literal(s) => Ok(Value::string(s)),
            Template::Expr(e) => e.eval(ctx),
            Template::Format { parts } => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        TemplatePart::Literal(s) => out.push_str(s),
                        TemplatePart::Expr(e) => out.push_str(&e.eval(ctx)?.as_string()),
                    }
                }
                Ok(Value::string(out))
            }
        }
    }

    /// Lowercased context names used by any expression part (each once).
    pub fn referenced_contexts(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        for e in self.exprs() {
            for c in e.referenced_contexts() {
                if !seen.contains(&c) {
                    seen.push(c);
                }
            }
        }
        seen.into_iter()
    }

    /// Lowercased function names called by any expression part (each once).
    pub fn called_functions(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        for e in self.exprs() {
            for c in e.called_functions() {
                if !seen.contains(&c) {
                    seen.push(c);
                }
            }
        }
        seen.into_iter()
    }

    /// The expressions in order.
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            Template::Literal(_) => Vec::new(),
            Template::Expr(e) => vec![e],
            Template::Format { parts } => parts
                .iter()
                .filter_map(|p| match p {
                    TemplatePart::Expr(e) => Some(e),
                    TemplatePart::Literal(_) => None,
                })
                .collect(),
        }
    }

    /// The single expression the runner converts this template to: the inner text for one
    /// expression, `format('…{0}…', e0, …)` for several parts, `None` for a literal.
    pub fn converted_expr(&self) -> Option<String> {
        match self {
            Template::Literal(_) => None,
            Template::Expr(e) => Some(e.source().to_string()),
            Template::Format { parts } => {
                let mut fmt = String::new();
                let mut args = String::new();
                let mut n = 0;
                for p in parts {
                    match p {
                        TemplatePart::Literal(s) => fmt
                            .push_str(&s.replace('\'', "''").replace('{', "{{").replace('}', "}}")),
                        TemplatePart::Expr(e) => {
                            fmt.push_str(&format!("{{{n}}}"));
                            n += 1;
                            args.push_str(", ");
                            args.push_str(e.source());
                        }
                    }
                }
                Some(format!("format('{fmt}'{args})"))
            }
        }
    }
}

fn template_error(msg: String, pos: usize) -> ExprError {
    ExprError {
        kind: ErrorKind::Parsing,
        message: msg,
        position: Some(pos),
    }
}

impl ExprError {
    fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

/// `if:` processing exactly as the runner's `ConvertToIfCondition` (spec §3.10): strips an
/// outer `${{ }}` (mixed text becomes `format(…)`), an empty condition becomes `success()`,
/// and a condition that calls no status function is wrapped as `success() && (<cond>)`.
/// A condition that fails to parse is wrapped too; parsing it again reports the error.
pub fn if_condition(src: &str) -> String {
    let opts = ParseOptions {
        status_function_args: true,
        ..ParseOptions::default()
    };
    let cond = match Template::parse_with(src, &opts) {
        Ok(Template::Literal(s)) => s,
        Ok(t) => t.converted_expr().unwrap_or_default(),
        Err(_) => src.to_string(),
    };
    if cond.trim().is_empty() {
        return "success()".to_string();
    }
    match parse_with(&cond, &opts) {
        Ok(e) if e.is_empty() => "success()".to_string(),
        Ok(e) if e.uses_status_function() => cond,
        _ => format!("success() && ({cond})"),
    }
}
