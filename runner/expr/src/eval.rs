//! Tree-walking evaluator: operators, property access, indexing and `*` filters (spec §3.6–§3.7).

use crate::functions::call;
use crate::parser::{CmpOp, Node};
use crate::value::{Array, Value};
use crate::{EvalContext, ExprError};
use std::cmp::Ordering;
use std::sync::Arc;

pub(crate) fn eval(node: &Node, ctx: &dyn EvalContext) -> Result<Value, ExprError> {
    match node {
        Node::Lit(v) => Ok(v.clone()),
        Node::Ctx(name) => Ok(ctx.context(name).unwrap_or(Value::Null)),
        Node::Wildcard => Ok(Value::Null),
        Node::Not(a) => Ok(Value::Bool(!eval(a, ctx)?.is_truthy())),
        Node::And(items) => {
            let mut last = Value::Null;
            for n in items {
                last = eval(n, ctx)?;
                if !last.is_truthy() {
                    return Ok(last);
                }
            }
            Ok(last)
        }
        Node::Or(items) => {
            let mut last = Value::Null;
            for n in items {
                last = eval(n, ctx)?;
                if last.is_truthy() {
                    return Ok(last);
                }
            }
            Ok(last)
        }
        Node::Cmp(op, a, b) => {
            let l = eval(a, ctx)?;
            let r = eval(b, ctx)?;
            Ok(Value::Bool(compare(*op, &l, &r)))
        }
        Node::Index(a, b) => {
            let left = eval(a, ctx)?;
            index(&left, b, ctx)
        }
        Node::Call(f, args) => call(*f, args, ctx),
    }
}

pub(crate) fn compare(op: CmpOp, l: &Value, r: &Value) -> bool {
    match op {
        CmpOp::Eq => l.loose_eq(r),
        CmpOp::Ne => !l.loose_eq(r),
        CmpOp::Lt => l.loose_cmp(r) == Some(Ordering::Less),
        CmpOp::Gt => l.loose_cmp(r) == Some(Ordering::Greater),
        CmpOp::Le => l.loose_eq(r) || l.loose_cmp(r) == Some(Ordering::Less),
        CmpOp::Ge => l.loose_eq(r) || l.loose_cmp(r) == Some(Ordering::Greater),
    }
}

/// The evaluated index of `a[i]` (C# `IndexHelper`).
enum Idx {
    Wildcard,
    Val(Value),
}

impl Idx {
    fn string(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Idx::Val(v) if v.is_primitive() => Some(v.as_string()),
            _ => None,
        }
    }

    fn integer(&self) -> Option<usize> {
        match self {
            Idx::Val(v) => {
                let d = v.to_number();
                if d.is_nan() || d < 0.0 {
                    return None;
                }
                let d = d.floor();
                if d > f64::from(i32::MAX) {
                    return None;
                }
                Some(d as usize)
            }
            Idx::Wildcard => None,
        }
    }
}

fn filtered(items: Vec<Value>) -> Value {
    Value::Array(Arc::new(Array {
        items,
        filtered: true,
    }))
}

fn index(left: &Value, idx_node: &Node, ctx: &dyn EvalContext) -> Result<Value, ExprError> {
    let is_wild = matches!(idx_node, Node::Wildcard);
    match left {
        Value::Object(_) | Value::Array(_) => {}
        _ => {
            return Ok(if is_wild {
                filtered(Vec::new())
            } else {
                Value::Null
            });
        }
    }
    let idx = if is_wild {
        Idx::Wildcard
    } else {
        Idx::Val(eval(idx_node, ctx)?)
    };
    match left {
        Value::Array(arr) if arr.filtered => {
            let mut out = Vec::new();
            for item in &arr.items {
                match item {
                    Value::Object(o) => match &idx {
                        Idx::Wildcard => out.extend(o.values().cloned()),
                        _ => {
                            if let Some(v) = idx.string().and_then(|k| o.get(&k).cloned()) {
                                out.push(v);
                            }
                        }
                    },
                    Value::Array(a) => match &idx {
                        Idx::Wildcard => out.extend(a.items.iter().cloned()),
                        _ => {
                            if let Some(v) = idx.integer().and_then(|i| a.items.get(i)) {
                                out.push(v.clone());
                            }
                        }
                    },
                    _ => {}
                }
            }
            Ok(filtered(out))
        }
        Value::Object(o) => Ok(match &idx {
            Idx::Wildcard => filtered(o.values().cloned().collect()),
            _ => idx
                .string()
                .and_then(|k| o.get(&k).cloned())
                .unwrap_or(Value::Null),
        }),
        Value::Array(a) => Ok(match &idx {
            Idx::Wildcard => filtered(a.items.clone()),
            _ => idx
                .integer()
                .and_then(|i| a.items.get(i).cloned())
                .unwrap_or(Value::Null),
        }),
        _ => Ok(Value::Null),
    }
}
