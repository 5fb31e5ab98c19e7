//! Parser: builds the expression tree from the lexer's tokens with GitHub's precedence,
//! and enforces GitHub's length (21,000) and tree-depth (50) limits, plus a nesting guard
//! (100) for the parentheses that GitHub's iterative parser does not count.

use crate::lexer::{Kind, Lexer, Op, Token};
use crate::value::Value;
use crate::{ErrorKind, ExprError};

/// Maximum expression length in characters (`ExpressionConstants.MaxLength`).
pub const MAX_LENGTH: usize = 21_000;
/// Maximum tree depth (`ExpressionConstants.MaxDepth`).
pub const MAX_DEPTH: usize = 50;

/// Every context name the runner knows.
pub const ALL_CONTEXTS: &[&str] = &[
    "github", "env", "vars", "secrets", "matrix", "steps", "needs", "inputs", "job", "jobs",
    "runner", "strategy",
];

/// Which names the parser accepts (spec §4.2: only the contexts allowed for a key are
/// recognised; unknown names are parse errors).
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// Allowed context (named-value) names, lowercase.
    pub contexts: Vec<String>,
    /// Job-level `if:` lets `success()`/`failure()` take job ids as arguments.
    pub status_function_args: bool,
    /// Recognise `success()`, `failure()`, `cancelled()`, `always()` (only in `if:` keys).
    pub status_functions: bool,
    /// Recognise `hashFiles()` (step-level keys only).
    pub hash_files: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            contexts: ALL_CONTEXTS.iter().map(|s| s.to_string()).collect(),
            status_function_args: false,
            status_functions: true,
            hash_files: true,
        }
    }
}

impl ParseOptions {
    /// Options recognising only `contexts` (case-insensitive).
    pub fn with_contexts<S: AsRef<str>>(contexts: &[S]) -> Self {
        ParseOptions {
            contexts: contexts
                .iter()
                .map(|s| s.as_ref().to_ascii_lowercase())
                .collect(),
            ..ParseOptions::default()
        }
    }

    pub(crate) fn allows_context(&self, name: &str) -> bool {
        self.contexts.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// `contains(search, item)`
    Contains,
    /// `startsWith(s, v)`
    StartsWith,
    /// `endsWith(s, v)`
    EndsWith,
    /// `format(fmt, args…)`
    Format,
    /// `join(x, sep)`
    Join,
    /// `toJSON(v)`
    ToJson,
    /// `fromJSON(s)`
    FromJson,
    /// `hashFiles(patterns…)`
    HashFiles,
    /// `case(p1, v1, …, default)`
    Case,
    /// `success()`
    Success,
    /// `failure()`
    Failure,
    /// `cancelled()`
    Cancelled,
    /// `always()`
    Always,
}

impl Func {
    /// Looks a function up by name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name.to_ascii_lowercase().as_str() {
            "contains" => Func::Contains,
            "startswith" => Func::StartsWith,
            "endswith" => Func::EndsWith,
            "format" => Func::Format,
            "join" => Func::Join,
            "tojson" => Func::ToJson,
            "fromjson" => Func::FromJson,
            "hashfiles" => Func::HashFiles,
            "case" => Func::Case,
            "success" => Func::Success,
            "failure" => Func::Failure,
            "cancelled" => Func::Cancelled,
            "always" => Func::Always,
            _ => return None,
        })
    }

    /// The canonical lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Contains => "contains",
            Func::StartsWith => "startswith",
            Func::EndsWith => "endswith",
            Func::Format => "format",
            Func::Join => "join",
            Func::ToJson => "tojson",
            Func::FromJson => "fromjson",
            Func::HashFiles => "hashfiles",
            Func::Case => "case",
            Func::Success => "success",
            Func::Failure => "failure",
            Func::Cancelled => "cancelled",
            Func::Always => "always",
        }
    }
}

pub(crate) fn function_arity(name: &str, opts: &ParseOptions) -> Option<(usize, usize)> {
    let f = Func::from_name(name)?;
    if !opts.status_functions
        && matches!(
            f,
            Func::Success | Func::Failure | Func::Cancelled | Func::Always
        )
        || !opts.hash_files && f == Func::HashFiles
    {
        return None;
    }
    Some(match f {
        Func::Contains | Func::StartsWith | Func::EndsWith => (2, 2),
        Func::Format => (1, 255),
        Func::Join => (1, 2),
        Func::ToJson | Func::FromJson => (1, 1),
        Func::HashFiles => (1, 255),
        Func::Case => (3, 255),
        Func::Success | Func::Failure if opts.status_function_args => (0, 255),
        Func::Success | Func::Failure | Func::Cancelled | Func::Always => (0, 0),
    })
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A node of the expression tree.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Lit(Value),
    /// A context, by lowercase name.
    Ctx(Box<str>),
    Index(Box<Node>, Box<Node>),
    /// `*` inside `[ ]` or after `.`.
    Wildcard,
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

impl Node {
    fn depth_ok(&self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match self {
            Node::Lit(_) | Node::Ctx(_) | Node::Wildcard => true,
            Node::Index(a, b) | Node::Cmp(_, a, b) => {
                a.depth_ok(depth + 1) && b.depth_ok(depth + 1)
            }
            Node::Not(a) => a.depth_ok(depth + 1),
            Node::And(v) | Node::Or(v) | Node::Call(_, v) => {
                v.iter().all(|n| n.depth_ok(depth + 1))
            }
        }
    }

    pub(crate) fn visit(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        match self {
            Node::Lit(_) | Node::Ctx(_) | Node::Wildcard => {}
            Node::Index(a, b) | Node::Cmp(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Node::Not(a) => a.visit(f),
            Node::And(v) | Node::Or(v) | Node::Call(_, v) => v.iter().for_each(|n| n.visit(f)),
        }
    }
}

/// Parses `src` into a tree; `None` for an empty (whitespace-only) expression.
pub(crate) fn parse_tree(src: &str, opts: &ParseOptions) -> Result<Option<Node>, ExprError> {
    if src.chars().map(char::len_utf16).sum::<usize>() > MAX_LENGTH {
        return Err(ExprError::new(
            ErrorKind::Lexing,
            format!("Exceeded max expression length {MAX_LENGTH}"),
        ));
    }
    let (tokens, unclosed) = Lexer::new(src, opts).tokenize()?;
    let Some(last) = tokens.last() else {
        return Ok(None);
    };
    let last_is_op = !matches!(
        last.kind,
        Kind::EndGroup
            | Kind::EndIndex
            | Kind::EndParameters
            | Kind::Null
            | Kind::Boolean
            | Kind::Number
            | Kind::String
            | Kind::PropertyName
            | Kind::NamedValue
            | Kind::Wildcard
    );
    if unclosed || last_is_op {
        return Err(ExprError::located(
            ErrorKind::Parsing,
            format!("Unexpected end of expression: '{}'", last.raw),
            last.pos,
            src,
        ));
    }
    let mut p = Parser {
        toks: &tokens,
        i: 0,
        src,
        nest: 0,
    };
    let node = p.parse_or()?;
    if p.i != tokens.len() {
        let t = &tokens[p.i];
        return Err(ExprError::located(
            ErrorKind::Parsing,
            format!("Unexpected symbol: '{}'", t.raw),
            t.pos,
            src,
        ));
    }
    if !node.depth_ok(1) {
        return Err(ExprError::new(
            ErrorKind::Parsing,
            format!("Exceeded max expression depth {MAX_DEPTH}"),
        ));
    }
    Ok(Some(node))
}

/// Recursion guard for the recursive-descent parser. Parentheses make no tree node, so
/// C# accepts deeper paren nesting than `MAX_DEPTH`; beyond this many nested groups, calls,
/// indexes or `!` we stop with a nesting error instead of risking the stack.
pub const MAX_NESTING: usize = 100;

fn nesting_error() -> ExprError {
    ExprError::new(
        ErrorKind::Parsing,
        format!(
            "Exceeded max expression nesting {MAX_NESTING} (parentheses, calls, indexes and '!' \
             nested deeper than Gantry parses; GitHub's tree-depth limit is {MAX_DEPTH})"
        ),
    )
}

struct Parser<'t> {
    toks: &'t [Token<'t>],
    i: usize,
    src: &'t str,
    nest: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Kind> {
        self.toks.get(self.i).map(|t| t.kind)
    }

    fn end_error(&self) -> ExprError {
        let (raw, pos) = self
            .toks
            .get(self.i)
            .or(self.toks.last())
            .map(|t| (t.raw, t.pos))
            .unwrap_or_default();
        ExprError::located(
            ErrorKind::Parsing,
            format!("Unexpected end of expression: '{raw}'"),
            pos,
            self.src,
        )
    }

    fn expect(&mut self, k: Kind) -> Result<(), ExprError> {
        if self.peek() == Some(k) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.end_error())
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.nest += 1;
        if self.nest > MAX_NESTING {
            return Err(nesting_error());
        }
        Ok(())
    }

    /// Left-nested chains (`a.b.c…`, `a == b == c…`) also deepen the tree.
    fn chain(&self, n: &mut usize) -> Result<(), ExprError> {
        *n += 1;
        if *n + self.nest > MAX_NESTING {
            return Err(nesting_error());
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let r = self.parse_or_inner();
        self.nest -= 1;
        r
    }

    fn parse_or_inner(&mut self) -> Result<Node, ExprError> {
        let first = self.parse_and()?;
        if self.peek() != Some(Kind::Op(Op::Or)) {
            return Ok(first);
        }
        let mut items = Vec::new();
        push_flat(&mut items, first, true);
        while self.peek() == Some(Kind::Op(Op::Or)) {
            self.i += 1;
            let n = self.parse_and()?;
            push_flat(&mut items, n, true);
        }
        Ok(Node::Or(items))
    }

    fn parse_and(&mut self) -> Result<Node, ExprError> {
        let first = self.parse_eq()?;
        if self.peek() != Some(Kind::Op(Op::And)) {
            return Ok(first);
        }
        let mut items = Vec::new();
        push_flat(&mut items, first, false);
        while self.peek() == Some(Kind::Op(Op::And)) {
            self.i += 1;
            let n = self.parse_eq()?;
            push_flat(&mut items, n, false);
        }
        Ok(Node::And(items))
    }

    fn parse_eq(&mut self) -> Result<Node, ExprError> {
        let mut l = self.parse_cmp()?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Some(Kind::Op(Op::Eq)) => CmpOp::Eq,
                Some(Kind::Op(Op::Ne)) => CmpOp::Ne,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.parse_cmp()?;
            self.chain(&mut chain)?;
            l = Node::Cmp(op, Box::new(l), Box::new(r));
        }
    }

    fn parse_cmp(&mut self) -> Result<Node, ExprError> {
        let mut l = self.parse_unary()?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Some(Kind::Op(Op::Lt)) => CmpOp::Lt,
                Some(Kind::Op(Op::Le)) => CmpOp::Le,
                Some(Kind::Op(Op::Gt)) => CmpOp::Gt,
                Some(Kind::Op(Op::Ge)) => CmpOp::Ge,
                _ => return Ok(l),
            };
            self.i += 1;
            let r = self.parse_unary()?;
            self.chain(&mut chain)?;
            l = Node::Cmp(op, Box::new(l), Box::new(r));
        }
    }

    fn parse_unary(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(Kind::Op(Op::Not)) {
            self.i += 1;
            self.enter()?;
            let n = self.parse_unary();
            self.nest -= 1;
            return Ok(Node::Not(Box::new(n?)));
        }
        self.parse_postfix()
    }

    fn parse_postfix(&mut self) -> Result<Node, ExprError> {
        let mut n = self.parse_primary()?;
        let mut chain = 0;
        loop {
            match self.peek() {
                Some(Kind::Dereference) => {
                    self.i += 1;
                    let t = self.toks.get(self.i).ok_or_else(|| self.end_error())?;
                    let idx = match t.kind {
                        Kind::Wildcard => Node::Wildcard,
                        Kind::PropertyName => Node::Lit(Value::string(t.raw)),
                        _ => return Err(self.end_error()),
                    };
                    self.i += 1;
                    self.chain(&mut chain)?;
                    n = Node::Index(Box::new(n), Box::new(idx));
                }
                Some(Kind::StartIndex) => {
                    self.i += 1;
                    let idx = if self.peek() == Some(Kind::Wildcard)
                        && self.toks.get(self.i + 1).map(|t| t.kind) == Some(Kind::EndIndex)
                    {
                        self.i += 1;
                        Node::Wildcard
                    } else {
                        self.parse_or()?
                    };
                    self.expect(Kind::EndIndex)?;
                    self.chain(&mut chain)?;
                    n = Node::Index(Box::new(n), Box::new(idx));
                }
                _ => return Ok(n),
            }
        }
    }

    fn parse_primary(&mut self) -> Result<Node, ExprError> {
        let t = self.toks.get(self.i).ok_or_else(|| self.end_error())?;
        self.i += 1;
        Ok(match t.kind {
            Kind::Null => Node::Lit(Value::Null),
            Kind::Boolean => Node::Lit(Value::Bool(t.bool_val)),
            Kind::Number => Node::Lit(Value::Number(t.num)),
            Kind::String => Node::Lit(Value::string(&t.str_val)),
            Kind::NamedValue => Node::Ctx(t.raw.to_ascii_lowercase().into_boxed_str()),
            // `*` used as an operand (only reachable as `[*…`): evaluates to null.
            Kind::Wildcard => Node::Lit(Value::Null),
            Kind::Function => {
                let f = Func::from_name(t.raw).ok_or_else(|| self.end_error())?;
                self.expect(Kind::StartParameters)?;
                let mut args = Vec::new();
                if self.peek() == Some(Kind::EndParameters) {
                    self.i += 1;
                } else {
                    loop {
                        args.push(self.parse_or()?);
                        match self.peek() {
                            Some(Kind::Separator) => self.i += 1,
                            Some(Kind::EndParameters) => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(self.end_error()),
                        }
                    }
                }
                Node::Call(f, args)
            }
            Kind::StartGroup => {
                let n = self.parse_or()?;
                self.expect(Kind::EndGroup)?;
                n
            }
            _ => {
                self.i -= 1;
                return Err(self.end_error());
            }
        })
    }
}

fn push_flat(items: &mut Vec<Node>, n: Node, or: bool) {
    match n {
        Node::Or(v) if or => items.extend(v),
        Node::And(v) if !or => items.extend(v),
        n => items.push(n),
    }
}
