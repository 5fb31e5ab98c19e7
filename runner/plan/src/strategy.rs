//! Evaluating a job's `strategy` (matrix, fail-fast, max-parallel) with the contexts GitHub
//! allows there (github, needs, vars, inputs; §6.4) and expanding it into legs.

use gantry_expr::{EvalContext, Template, Value};
use gantry_workflow::{Job, Node, OrExpr, Spanned};
use serde_json::Value as J;

use crate::matrix::{self, Leg, MatrixError, MatrixFilter};

/// A job's expanded strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct JobExpansion {
    /// The legs; `None` when the job has no matrix (a single run).
    pub legs: Option<Vec<Leg>>,
    /// `strategy.fail-fast` (default true).
    pub fail_fast: bool,
    /// `strategy.max-parallel`; `None` is unbounded.
    pub max_parallel: Option<usize>,
}

impl JobExpansion {
    /// `strategy.job-total`: the number of legs (1 without a matrix).
    pub fn total(&self) -> usize {
        self.legs.as_ref().map_or(1, Vec::len)
    }
}

/// Why a job's strategy does not evaluate or expand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    /// An expression in `strategy` does not parse or evaluate (located in its text).
    #[error("{0}")]
    Expression(String),
    /// A value of the wrong kind, e.g. `strategy.fail-fast must be a boolean, got string`.
    #[error("{field} must be {expected}, got {got}")]
    WrongKind {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
    /// A matrix given as one expression evaluated to a string that is not JSON.
    #[error("{0}")]
    NotJson(String),
    #[error(transparent)]
    Matrix(#[from] MatrixError),
}

fn template(s: &str) -> Result<Template, String> {
    Template::parse(s).map_err(|e| e.located_message(s))
}

fn visit_strings<'a>(node: &'a Node, f: &mut dyn FnMut(&'a str)) {
    match node {
        Node::String(s) => f(s),
        Node::Seq(items) => items.iter().for_each(|i| visit_strings(&i.value, f)),
        Node::Map(entries) => {
            for (k, v) in entries {
                f(&k.value);
                visit_strings(&v.value, f);
            }
        }
        _ => {}
    }
}

/// Every expression text of a job's strategy (matrix scalars and keys, fail-fast,
/// max-parallel).
fn strategy_texts(job: &Job) -> Vec<&str> {
    let mut out = Vec::new();
    let Some(s) = &job.strategy else {
        return out;
    };
    if let Some(m) = &s.matrix {
        visit_strings(&m.value, &mut |t| {
            if t.contains("${{") {
                out.push(t)
            }
        });
    }
    if let Some(Spanned {
        value: OrExpr::Expr(e),
        ..
    }) = &s.fail_fast
    {
        out.push(e);
    }
    if let Some(Spanned {
        value: OrExpr::Expr(e),
        ..
    }) = &s.max_parallel
    {
        out.push(e);
    }
    out
}

/// True when the strategy contains any `${{ }}` expression.
pub fn has_expressions(job: &Job) -> bool {
    !strategy_texts(job).is_empty()
}

/// True when the strategy reads the `needs` context, so it can only be expanded once the
/// job's needs finished (e.g. `${{ fromJSON(needs.setup.outputs.matrix) }}`).
pub fn uses_needs(job: &Job) -> bool {
    strategy_texts(job).into_iter().any(|t| {
        let t = if t.contains("${{") {
            t.to_string()
        } else {
            format!("${{{{ {t} }}}}")
        };
        match Template::parse(&t) {
            Ok(tp) => tp.referenced_contexts().any(|c| c == "needs"),
            // Unparsable: let the engine report it when the job starts.
            Err(_) => t.contains("needs"),
        }
    })
}

/// Evaluates a matrix node: strings holding `${{ }}` become the expression's value (a
/// single expression keeps its type), mapping keys are evaluated to strings. As act does
/// (and GitHub, undocumented): a sequence item that is an expression yielding a sequence
/// is spliced into the sequence, and a `${{ insert }}` key merges its mapping value into
/// the mapping it stands in.
pub fn eval_node(node: &Node, ctx: &dyn EvalContext) -> Result<J, StrategyError> {
    eval_node_text(node, ctx).map_err(StrategyError::Expression)
}

fn eval_node_text(node: &Node, ctx: &dyn EvalContext) -> Result<J, String> {
    Ok(match node {
        Node::String(s) if s.contains("${{") => template(s)?
            .eval(ctx)
            .map_err(|e| e.located_message(s))?
            .to_json(),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match (&i.value, eval_node_text(&i.value, ctx)?) {
                    (Node::String(_), J::Array(a)) => out.extend(a),
                    (_, v) => out.push(v),
                }
            }
            J::Array(out)
        }
        Node::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, v) in entries {
                let value = eval_node_text(&v.value, ctx)?;
                if is_insert(&k.value) {
                    let J::Object(inserted) = value else {
                        return Err(format!(
                            "{}: the value of an insert directive must be a mapping, got {}",
                            k.value,
                            Value::from_json(&value).kind_name()
                        ));
                    };
                    m.extend(inserted);
                    continue;
                }
                let key = if k.value.contains("${{") {
                    template(&k.value)?
                        .eval(ctx)
                        .map_err(|e| e.located_message(&k.value))?
                        .as_string()
                        .into_owned()
                } else {
                    k.value.clone()
                };
                m.insert(key, value);
            }
            J::Object(m)
        }
        other => other.to_json(),
    })
}

/// `${{ insert }}` (any spacing inside the braces).
fn is_insert(key: &str) -> bool {
    key.trim()
        .strip_prefix("${{")
        .and_then(|r| r.strip_suffix("}}"))
        .is_some_and(|inner| inner.trim() == "insert")
}

fn eval_scalar(text: &str, ctx: &dyn EvalContext) -> Result<Value, String> {
    let t = if text.contains("${{") {
        template(text)?
    } else {
        template(&format!("${{{{ {text} }}}}"))?
    };
    t.eval(ctx).map_err(|e| e.located_message(text))
}

/// Evaluates and expands a job's strategy. `filters` are `--matrix K:V` filters.
pub fn expand_job(
    job: &Job,
    ctx: &dyn EvalContext,
    filters: &[MatrixFilter],
) -> Result<JobExpansion, StrategyError> {
    let Some(s) = &job.strategy else {
        return Ok(JobExpansion {
            legs: None,
            fail_fast: true,
            max_parallel: None,
        });
    };
    let fail_fast = match &s.fail_fast {
        None => true,
        Some(Spanned {
            value: OrExpr::Value(b),
            ..
        }) => *b,
        Some(Spanned {
            value: OrExpr::Expr(e),
            ..
        }) => match eval_scalar(e, ctx).map_err(StrategyError::Expression)? {
            Value::Bool(b) => b,
            other => {
                return Err(StrategyError::WrongKind {
                    field: "strategy.fail-fast",
                    expected: "a boolean",
                    got: other.kind_name().to_string(),
                });
            }
        },
    };
    let max_parallel = match &s.max_parallel {
        None => None,
        Some(Spanned { value, .. }) => {
            let n = match value {
                OrExpr::Value(n) => *n,
                OrExpr::Expr(e) => match eval_scalar(e, ctx).map_err(StrategyError::Expression)? {
                    Value::Number(n) => n,
                    other => {
                        return Err(StrategyError::WrongKind {
                            field: "strategy.max-parallel",
                            expected: "a number",
                            got: other.kind_name().to_string(),
                        });
                    }
                },
            };
            if n.is_nan() || n < 1.0 || n.fract() != 0.0 {
                return Err(StrategyError::WrongKind {
                    field: "strategy.max-parallel",
                    expected: "a positive integer",
                    got: n.to_string(),
                });
            }
            Some(n as usize)
        }
    };
    let legs = match &s.matrix {
        None => None,
        Some(m) => {
            let evaluated = match eval_node(&m.value, ctx)? {
                // A matrix given as one expression may evaluate to a JSON string.
                J::String(t) => {
                    serde_json::from_str(&t).map_err(|e| StrategyError::NotJson(e.to_string()))?
                }
                other => other,
            };
            let legs = matrix::expand(&evaluated)?;
            Some(matrix::filter_legs(legs, filters))
        }
    };
    Ok(JobExpansion {
        legs,
        fail_fast,
        max_parallel,
    })
}

/// The display name of one leg. A job `name:` containing `${{ }}` gets no suffix (GitHub
/// evaluates it per leg instead); otherwise the name (or id) plus the leg's values.
pub fn leg_display_name(job: &Job, leg: &Leg) -> String {
    let base = job.display_name();
    if base.contains("${{") {
        base.to_string()
    } else {
        leg.display_name(base)
    }
}
