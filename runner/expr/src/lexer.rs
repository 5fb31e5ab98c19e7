//! Lexer: a port of the C# runner's `LexicalAnalyzer`, including its rules for which token
//! may follow which (an illegal sequence is an "Unexpected symbol").

use crate::parser::{ParseOptions, function_arity};
use crate::value::parse_number;
use crate::{ErrorKind, ExprError};

/// Token kinds (C# `TokenKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    StartGroup,
    StartIndex,
    StartParameters,
    EndGroup,
    EndIndex,
    EndParameters,
    Separator,
    Dereference,
    Wildcard,
    Op(Op),
    Null,
    Boolean,
    Number,
    String,
    PropertyName,
    Function,
    NamedValue,
}

/// Operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Clone, Debug)]
pub(crate) struct Token<'a> {
    pub kind: Kind,
    /// Char offset in the expression.
    pub pos: usize,
    /// Raw text.
    pub raw: &'a str,
    pub num: f64,
    pub bool_val: bool,
    /// Unescaped string-literal value.
    pub str_val: String,
}

fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '(' | '[' | ')' | ']' | ',' | '.' | '!' | '>' | '<' | '=' | '&' | '|'
    ) || c.is_whitespace()
}

/// `[A-Za-z_][A-Za-z0-9_-]*`
pub(crate) fn is_legal_keyword(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) struct Lexer<'a> {
    chars: Vec<char>,
    /// Byte offset of each char (only for non-ASCII sources).
    offs: Option<Vec<usize>>,
    src: &'a str,
    i: usize,
    last: Option<Kind>,
    last_raw: &'a str,
    last_pos: usize,
    unclosed: Vec<Kind>,
    opts: &'a ParseOptions,
    /// Open function calls: (name, argument count, position of the name).
    calls: Vec<(&'a str, usize, usize)>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, opts: &'a ParseOptions) -> Self {
        Lexer {
            chars: src.chars().collect(),
            offs: (!src.is_ascii()).then(|| src.char_indices().map(|(i, _)| i).collect()),
            src,
            i: 0,
            last: None,
            last_raw: "",
            last_pos: 0,
            unclosed: Vec::new(),
            opts,
            calls: Vec::new(),
        }
    }

    fn parse_error(&self, msg: String, pos: usize) -> ExprError {
        ExprError::located(ErrorKind::Parsing, msg, pos, self.src)
    }

    /// Name and arity checks, done token by token like the C# parser does.
    fn check_names(&mut self, tok: &Token, last_pos: usize) -> Result<(), ExprError> {
        if self.last == Some(Kind::StartParameters)
            && tok.kind != Kind::EndParameters
            && let Some(top) = self.calls.last_mut()
        {
            top.1 = 1;
        }
        match tok.kind {
            Kind::NamedValue if !self.opts.allows_context(tok.raw) => {
                Err(self.parse_error(format!("Unrecognized named-value: '{}'", tok.raw), tok.pos))
            }
            Kind::Function if function_arity(tok.raw, self.opts).is_none() => {
                Err(self.parse_error(format!("Unrecognized function: '{}'", tok.raw), tok.pos))
            }
            Kind::StartParameters => {
                self.calls.push((self.last_raw, 0, last_pos));
                Ok(())
            }
            Kind::Separator => {
                if let Some(top) = self.calls.last_mut() {
                    top.1 += 1;
                }
                Ok(())
            }
            Kind::EndParameters => {
                let (name, count, pos) = self.calls.pop().unwrap_or_default();
                let (min, max) = function_arity(name, self.opts).unwrap_or((0, usize::MAX));
                if count < min {
                    Err(self.parse_error(format!("Too few parameters supplied: '{name}'"), pos))
                } else if count > max {
                    Err(self.parse_error(format!("Too many parameters supplied: '{name}'"), pos))
                } else if name.eq_ignore_ascii_case("case") && count % 2 == 0 {
                    Err(self.parse_error(
                        format!("Even number of parameters supplied, requires an odd number of parameters: '{name}'"),
                        pos,
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// True when a `(`, `[` or function `(` is still open.
    pub fn has_unclosed(&self) -> bool {
        !self.unclosed.is_empty()
    }

    fn unexpected(&self, raw: &str, pos: usize) -> ExprError {
        ExprError::located(
            ErrorKind::Lexing,
            format!("Unexpected symbol: '{raw}'"),
            pos,
            self.src,
        )
    }

    /// A valid token in a place where it may not appear.
    fn misplaced(&self, tok: &Token) -> ExprError {
        ExprError::located(
            ErrorKind::Parsing,
            format!("Unexpected symbol: '{}'", tok.raw),
            tok.pos,
            self.src,
        )
    }

    fn byte(&self, i: usize) -> usize {
        match &self.offs {
            None => i,
            Some(o) => o.get(i).copied().unwrap_or(self.src.len()),
        }
    }

    fn text(&self, a: usize, b: usize) -> &'a str {
        &self.src[self.byte(a)..self.byte(b)]
    }

    /// Reads all tokens.
    pub fn tokenize(mut self) -> Result<(Vec<Token<'a>>, bool), ExprError> {
        let mut out = Vec::new();
        while let Some(t) = self.next_token()? {
            out.push(t);
        }
        let unclosed = self.has_unclosed();
        Ok((out, unclosed))
    }

    fn next_token(&mut self) -> Result<Option<Token<'a>>, ExprError> {
        while self.i < self.chars.len() && self.chars[self.i].is_whitespace() {
            self.i += 1;
        }
        if self.i >= self.chars.len() {
            return Ok(None);
        }
        let c = self.chars[self.i];
        let start = self.i;
        let mut tok = Token {
            kind: Kind::Null,
            pos: start,
            raw: "",
            num: 0.0,
            bool_val: false,
            str_val: String::new(),
        };
        match c {
            '(' => {
                self.i += 1;
                tok.kind = if self.last == Some(Kind::Function) {
                    Kind::StartParameters
                } else {
                    Kind::StartGroup
                };
            }
            '[' => {
                self.i += 1;
                tok.kind = Kind::StartIndex;
            }
            ')' => {
                self.i += 1;
                tok.kind = if self.unclosed.last() == Some(&Kind::StartParameters) {
                    Kind::EndParameters
                } else {
                    Kind::EndGroup
                };
            }
            ']' => {
                self.i += 1;
                tok.kind = Kind::EndIndex;
            }
            ',' => {
                self.i += 1;
                tok.kind = Kind::Separator;
            }
            '*' => {
                self.i += 1;
                tok.kind = Kind::Wildcard;
            }
            '\'' => self.read_string(&mut tok)?,
            '!' | '>' | '<' | '=' | '&' | '|' => self.read_operator(&mut tok)?,
            '.' if !matches!(
                self.last,
                None | Some(
                    Kind::Separator
                        | Kind::StartGroup
                        | Kind::StartIndex
                        | Kind::StartParameters
                        | Kind::Op(_)
                )
            ) =>
            {
                self.i += 1;
                tok.kind = Kind::Dereference;
            }
            '.' | '-' | '+' | '0'..='9' => self.read_number(&mut tok)?,
            _ => self.read_keyword(&mut tok)?,
        }
        if tok.raw.is_empty() {
            tok.raw = self.text(start, self.i);
        }
        self.check_legal(&tok)?;
        self.check_names(&tok, self.last_pos)?;
        self.last = Some(tok.kind);
        self.last_pos = tok.pos;
        self.last_raw = tok.raw;
        Ok(Some(tok))
    }

    fn read_number(&mut self, tok: &mut Token<'a>) -> Result<(), ExprError> {
        let start = self.i;
        self.i += 1;
        while self.i < self.chars.len()
            && (!is_boundary(self.chars[self.i]) || self.chars[self.i] == '.')
        {
            self.i += 1;
        }
        let raw = self.text(start, self.i);
        let d = parse_number(raw);
        if d.is_nan() {
            return Err(self.unexpected(raw, start));
        }
        tok.kind = Kind::Number;
        tok.num = d;
        tok.raw = raw;
        Ok(())
    }

    fn read_keyword(&mut self, tok: &mut Token<'a>) -> Result<(), ExprError> {
        let start = self.i;
        self.i += 1;
        while self.i < self.chars.len() && !is_boundary(self.chars[self.i]) {
            self.i += 1;
        }
        let raw = self.text(start, self.i);
        if !is_legal_keyword(raw) {
            return Err(self.unexpected(raw, start));
        }
        tok.kind = if self.last == Some(Kind::Dereference) {
            Kind::PropertyName
        } else {
            match raw {
                "null" => Kind::Null,
                "true" => {
                    tok.bool_val = true;
                    Kind::Boolean
                }
                "false" => Kind::Boolean,
                "NaN" => {
                    tok.num = f64::NAN;
                    Kind::Number
                }
                "Infinity" => {
                    tok.num = f64::INFINITY;
                    Kind::Number
                }
                _ => {
                    let mut j = self.i;
                    while j < self.chars.len() && self.chars[j].is_whitespace() {
                        j += 1;
                    }
                    if j < self.chars.len() && self.chars[j] == '(' {
                        Kind::Function
                    } else {
                        Kind::NamedValue
                    }
                }
            }
        };
        tok.raw = raw;
        Ok(())
    }

    fn read_string(&mut self, tok: &mut Token<'a>) -> Result<(), ExprError> {
        let start = self.i;
        self.i += 1;
        let mut s = String::new();
        let mut closed = false;
        while self.i < self.chars.len() {
            let c = self.chars[self.i];
            self.i += 1;
            if c == '\'' {
                if self.i >= self.chars.len() || self.chars[self.i] != '\'' {
                    closed = true;
                    break;
                }
                self.i += 1;
            }
            s.push(c);
        }
        let raw = self.text(start, self.i);
        if !closed {
            return Err(self.unexpected(raw, start));
        }
        tok.kind = Kind::String;
        tok.str_val = s;
        tok.raw = raw;
        Ok(())
    }

    fn read_operator(&mut self, tok: &mut Token<'a>) -> Result<(), ExprError> {
        let start = self.i;
        if self.i + 1 < self.chars.len() {
            let two = (self.chars[self.i], self.chars[self.i + 1]);
            let op = match two {
                ('!', '=') => Some(Op::Ne),
                ('>', '=') => Some(Op::Ge),
                ('<', '=') => Some(Op::Le),
                ('=', '=') => Some(Op::Eq),
                ('&', '&') => Some(Op::And),
                ('|', '|') => Some(Op::Or),
                _ => None,
            };
            if let Some(op) = op {
                self.i += 2;
                tok.kind = Kind::Op(op);
                return Ok(());
            }
        }
        let op = match self.chars[self.i] {
            '!' => Some(Op::Not),
            '>' => Some(Op::Gt),
            '<' => Some(Op::Lt),
            _ => None,
        };
        self.i += 1;
        if let Some(op) = op {
            tok.kind = Kind::Op(op);
            return Ok(());
        }
        while self.i < self.chars.len() && !is_boundary(self.chars[self.i]) {
            self.i += 1;
        }
        Err(self.unexpected(self.text(start, self.i), start))
    }

    fn check_legal(&mut self, tok: &Token) -> Result<(), ExprError> {
        use Kind::*;
        let last = self.last;
        let after_value = matches!(
            last,
            Some(
                EndGroup
                    | EndParameters
                    | EndIndex
                    | Wildcard
                    | Null
                    | Boolean
                    | Number
                    | String
                    | PropertyName
                    | NamedValue
            )
        );
        let at_operand_start = matches!(
            last,
            None | Some(Separator | StartGroup | StartParameters | StartIndex | Op(_))
        );
        let legal = match tok.kind {
            StartGroup => at_operand_start,
            StartIndex | Dereference => {
                matches!(
                    last,
                    Some(
                        EndGroup | EndParameters | EndIndex | Wildcard | PropertyName | NamedValue
                    )
                )
            }
            StartParameters => last == Some(Function),
            EndGroup | EndIndex | Separator => after_value,
            EndParameters => after_value || last == Some(StartParameters),
            Wildcard => matches!(last, Some(StartIndex | Dereference)),
            Op(crate::lexer::Op::Not) => at_operand_start,
            Op(_) => after_value,
            Null | Boolean | Number | String | Function | NamedValue => at_operand_start,
            PropertyName => last == Some(Dereference),
        };
        if !legal {
            return Err(self.misplaced(tok));
        }
        match tok.kind {
            StartGroup | StartIndex | StartParameters => self.unclosed.push(tok.kind),
            EndGroup | EndIndex | EndParameters => {
                let want = match tok.kind {
                    EndGroup => StartGroup,
                    EndIndex => StartIndex,
                    _ => StartParameters,
                };
                if self.unclosed.last() != Some(&want) {
                    return Err(self.misplaced(tok));
                }
                self.unclosed.pop();
            }
            Separator if self.unclosed.last() != Some(&StartParameters) => {
                return Err(self.misplaced(tok));
            }
            _ => {}
        }
        Ok(())
    }
}
