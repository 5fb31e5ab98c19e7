//! Tree-walking evaluator: operators, property access, indexing and `*` filters (spec §3.6–§3.7).

use crate::functions::call;
use crate::parser::{CmpOp, Node};
use crate::value::{Array, Value};
use crate::{ErrorKind, EvalContext, ExprError};

/// Maximum memory of string results held at once while evaluating (bytes, UTF-16 like the
/// C# runner's `MemoryCounter`, 1 MiB).
pub(crate) const MAX_MEMORY: usize = 1024 * 1024;
const STRING_OVERHEAD: usize = 26;

/// Evaluation state: the host context and the memory held by function results per call
/// depth (a deeper level is released when its parent call completes).
pub(crate) struct Ev<'a> {
    pub ctx: &'a dyn EvalContext,
    mem: Vec<usize>,
    depth: usize,
}

impl<'a> Ev<'a> {
    pub(crate) fn new(ctx: &'a dyn EvalContext) -> Self {
        Ev {
            ctx,
            mem: Vec::new(),
            depth: 0,
        }
    }

    fn account(&mut self, v: &Value) -> Result<(), ExprError> {
        let Value::String(s) = v else { return Ok(()) };
        self.mem.truncate(self.depth + 1);
        self.mem.resize(self.depth + 1, 0);
        self.mem[self.depth] += STRING_OVERHEAD + 2 * s.len();
        if self.mem.iter().sum::<usize>() > MAX_MEMORY {
            return Err(ExprError::new(
                ErrorKind::Evaluation,
                "The maximum allowed memory size was exceeded",
            ));
        }
        Ok(())
    }
}
use std::cmp::Ordering;
use std::sync::Arc;

pub(crate) fn eval(node: &Node, ev: &mut Ev) -> Result<Value, ExprError> {
    match node {
        Node::Lit(v) => Ok(v.clone()),
        Node::Ctx(name) => Ok(ev.ctx.context(name).unwrap_or(Value::Null)),
        Node::Wildcard => Ok(Value::Null),
        Node::Not(a) => Ok(Value::Bool(!eval(a, ev)?.is_truthy())),
        Node::And(items) => {
            let mut last = Value::Null;
            for n in items {
                last = eval(n, ev)?;
                if !last.is_truthy() {
                    return Ok(last);
                }
            }
            Ok(last)
        }
        Node::Or(items) => {
            let mut last = Value::Null;
            for n in items {
                last = eval(n, ev)?;
                if last.is_truthy() {
                    return Ok(last);
                }
            }
            Ok(last)
        }
        Node::Cmp(op, a, b) => {
            let l = eval(a, ev)?;
            let r = eval(b, ev)?;
            Ok(Value::Bool(compare(*op, &l, &r)))
        }
        Node::Index(a, b) => {
            let left = eval(a, ev)?;
            index(&left, b, ev)
        }
        Node::Call(f, args) => {
            ev.depth += 1;
            let r = call(*f, args, ev);
            ev.depth -= 1;
            let r = r?;
            ev.account(&r)?;
            Ok(r)
        }
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

fn index(left: &Value, idx_node: &Node, ev: &mut Ev) -> Result<Value, ExprError> {
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
        Idx::Val(eval(idx_node, ev)?)
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
