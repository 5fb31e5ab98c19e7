//! The GitHub Actions expression language, matching GitHub's C# runner
//! (`actions/runner` `DTExpressions2`): lexer, parser, evaluator, built-in functions and
//! `${{ }}` templates. See `shared/spec/GHA-SEMANTICS.md` §1.1 and §3.
//!
//! ```
//! use gantry_expr::{parse, MapContext, Value};
//! let mut ctx = MapContext::new();
//! ctx.insert("github", Value::from_json(&serde_json::json!({"ref": "refs/heads/main"})));
//! let e = parse("startsWith(github.REF, 'refs/heads/')").unwrap();
//! assert!(e.eval(&ctx).unwrap().is_truthy());
//! ```

mod eval;
mod functions;
mod hashfiles;
mod json;
mod lexer;
mod parser;
mod template;
mod value;

pub use hashfiles::hash_files;
pub use json::{JsonError, parse_json};
pub use parser::{ALL_CONTEXTS, Func, MAX_DEPTH, MAX_LENGTH, MAX_NESTING, ParseOptions};
pub use template::{Template, TemplatePart, if_condition};
pub use value::{Array, Object, Value, format_number, parse_number};

use indexmap::IndexMap;
use std::fmt;
use std::path::PathBuf;

/// The phase an error comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Invalid token (unexpected symbol, unclosed string, bad number, too long).
    Lexing,
    /// Invalid structure or names (unknown context/function, arity, depth).
    Parsing,
    /// Runtime failure (format, fromJSON, case, hashFiles, host errors).
    Evaluation,
}

impl ErrorKind {
    /// "lexing", "parsing" or "evaluation".
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Lexing => "lexing",
            ErrorKind::Parsing => "parsing",
            ErrorKind::Evaluation => "evaluation",
        }
    }
}

/// An expression error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    /// Phase.
    pub kind: ErrorKind,
    /// Message, e.g. `Unrecognized named-value: 'foo'`.
    pub message: String,
    /// For lexing/parsing errors at a token: 0-based char offset within the expression.
    pub position: Option<usize>,
}

impl ExprError {
    /// An error without position.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ExprError {
            kind,
            message: message.into(),
            position: None,
        }
    }

    /// An error at a char offset of `expr`.
    pub(crate) fn located(kind: ErrorKind, message: String, pos: usize, _expr: &str) -> Self {
        ExprError {
            kind,
            message,
            position: Some(pos),
        }
    }

    /// The C# runner's long form: `… Located at position N within expression: EXPR`.
    pub fn located_message(&self, expr: &str) -> String {
        match self.position {
            Some(p) => format!(
                "{}. Located at position {} within expression: {}",
                self.message,
                p + 1,
                expr
            ),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExprError {}

/// The status-check functions (spec §3.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusFunction {
    /// `success()`
    Success,
    /// `failure()`
    Failure,
    /// `cancelled()`
    Cancelled,
    /// `always()`
    Always,
}

/// What an expression is evaluated against. Implemented by the host (engine, planner).
pub trait EvalContext {
    /// The context value for a lowercase name such as `"github"`; `None` evaluates as null.
    fn context(&self, name_lowercase: &str) -> Option<Value>;

    /// Answers a status function. Job-level versus step-level meaning is the host's concern.
    /// Default: `success()`/`always()` true, `failure()`/`cancelled()` false.
    fn status(&self, f: StatusFunction) -> Result<bool, ExprError> {
        Ok(matches!(
            f,
            StatusFunction::Success | StatusFunction::Always
        ))
    }

    /// Job-level `success('a','b')` / `failure('a')` with job ids (only parsed when
    /// [`ParseOptions::status_function_args`] is set). Default: ignores the ids.
    fn status_with_args(&self, f: StatusFunction, _job_ids: &[String]) -> Result<bool, ExprError> {
        self.status(f)
    }

    /// `hashFiles(patterns…)`: lowercase hex or `""` when nothing matched.
    fn hash_files(&self, _patterns: &[String]) -> Result<String, ExprError> {
        Err(ExprError::new(
            ErrorKind::Evaluation,
            "hashFiles not available here",
        ))
    }
}

/// A simple context: a map of named values, optionally a workspace for `hashFiles`.
#[derive(Clone, Debug, Default)]
pub struct MapContext {
    /// Contexts by lowercase name.
    pub values: IndexMap<String, Value>,
    /// Workspace directory for `hashFiles`; `None` makes `hashFiles` an error.
    pub workspace: Option<PathBuf>,
}

impl MapContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a named value; the name is lowercased.
    pub fn insert(&mut self, name: &str, value: Value) -> &mut Self {
        self.values.insert(name.to_ascii_lowercase(), value);
        self
    }

    /// Sets the workspace used by `hashFiles`.
    pub fn with_workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Some(dir.into());
        self
    }

    /// Builds a context from a JSON object `{ "github": {...}, "env": {...}, ... }`.
    pub fn from_json_str(text: &str) -> Result<Self, ExprError> {
        let v = parse_json(text).map_err(|e| ExprError::new(ErrorKind::Evaluation, e.0))?;
        let mut c = MapContext::new();
        if let Value::Object(o) = v {
            for (k, v) in o.iter() {
                c.insert(k, v.clone());
            }
            Ok(c)
        } else {
            Err(ExprError::new(
                ErrorKind::Evaluation,
                "context JSON must be an object",
            ))
        }
    }
}

impl EvalContext for MapContext {
    fn context(&self, name_lowercase: &str) -> Option<Value> {
        self.values.get(name_lowercase).cloned()
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, ExprError> {
        match &self.workspace {
            Some(ws) => hash_files(ws, patterns),
            None => Err(ExprError::new(
                ErrorKind::Evaluation,
                "hashFiles not available here",
            )),
        }
    }
}

/// A parsed expression.
#[derive(Clone, Debug)]
pub struct Expr {
    root: Option<parser::Node>,
    source: String,
    contexts: Vec<String>,
    functions: Vec<String>,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses an expression recognising every known context ([`ALL_CONTEXTS`]).
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    parse_with(src, &ParseOptions::default())
}

/// Parses an expression with explicit options (allowed contexts, status-function args).
pub fn parse_with(src: &str, opts: &ParseOptions) -> Result<Expr, ExprError> {
    let root = parser::parse_tree(src, opts)?;
    let mut contexts: Vec<String> = Vec::new();
    let mut functions: Vec<String> = Vec::new();
    if let Some(r) = &root {
        r.visit(&mut |n| match n {
            parser::Node::Ctx(name) if !contexts.iter().any(|c| **c == **name) => {
                contexts.push(name.to_string());
            }
            parser::Node::Call(f, _) if !functions.iter().any(|c| c == f.name()) => {
                functions.push(f.name().to_string());
            }
            _ => {}
        });
    }
    Ok(Expr {
        root,
        source: src.to_string(),
        contexts,
        functions,
    })
}

impl Expr {
    /// Evaluates the expression. An empty expression evaluates to null.
    pub fn eval(&self, ctx: &dyn EvalContext) -> Result<Value, ExprError> {
        match &self.root {
            Some(r) => eval::eval(r, &mut eval::Ev::new(ctx)),
            None => Ok(Value::Null),
        }
    }

    /// Lowercased names of the contexts used, e.g. `"github"`, `"matrix"` (each once).
    pub fn referenced_contexts(&self) -> impl Iterator<Item = &str> {
        self.contexts.iter().map(String::as_str)
    }

    /// Lowercased names of the functions called, e.g. `"success"`, `"hashfiles"` (each once).
    pub fn called_functions(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(String::as_str)
    }

    /// True when a status function (`success`, `failure`, `cancelled`, `always`) is called.
    pub fn uses_status_function(&self) -> bool {
        self.called_functions()
            .any(|f| matches!(f, "success" | "failure" | "cancelled" | "always"))
    }

    /// True for an empty or whitespace-only expression.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// If the expression is exactly one string literal, its value.
    pub fn as_string_literal(&self) -> Option<&str> {
        match &self.root {
            Some(parser::Node::Lit(Value::String(s))) => Some(s),
            _ => None,
        }
    }
}
