//! Built-in functions (spec §3.8–§3.9).

use crate::eval::{Ev, eval};
use crate::json::parse_json_max_depth;
use crate::parser::{Func, Node};
use crate::value::{Value, contains_ignore_case, ends_with_ignore_case, starts_with_ignore_case};
use crate::{ErrorKind, ExprError, StatusFunction};

fn eval_err(msg: impl Into<String>) -> ExprError {
    ExprError::new(ErrorKind::Evaluation, msg)
}

pub(crate) fn call(f: Func, args: &[Node], ev: &mut Ev) -> Result<Value, ExprError> {
    match f {
        Func::Contains => {
            let left = eval(&args[0], ev)?;
            match &left {
                l if l.is_primitive() => {
                    let right = eval(&args[1], ev)?;
                    if right.is_primitive() {
                        return Ok(Value::Bool(contains_ignore_case(
                            &l.as_string(),
                            &right.as_string(),
                        )));
                    }
                    Ok(Value::Bool(false))
                }
                Value::Array(a) if !a.items.is_empty() => {
                    let right = eval(&args[1], ev)?;
                    Ok(Value::Bool(a.items.iter().any(|item| right.loose_eq(item))))
                }
                _ => Ok(Value::Bool(false)),
            }
        }
        Func::StartsWith | Func::EndsWith => {
            let left = eval(&args[0], ev)?;
            if !left.is_primitive() {
                return Ok(Value::Bool(false));
            }
            let right = eval(&args[1], ev)?;
            if !right.is_primitive() {
                return Ok(Value::Bool(false));
            }
            let (l, r) = (left.as_string(), right.as_string());
            Ok(Value::Bool(if f == Func::StartsWith {
                starts_with_ignore_case(&l, &r)
            } else {
                ends_with_ignore_case(&l, &r)
            }))
        }
        Func::Format => format(args, ev),
        Func::Join => {
            let items = eval(&args[0], ev)?;
            match &items {
                Value::Array(a) if !a.items.is_empty() => {
                    let mut out = a.items[0].as_string().into_owned();
                    if a.items.len() > 1 {
                        let mut sep = std::borrow::Cow::Borrowed(",");
                        if let Some(n) = args.get(1) {
                            let s = eval(n, ev)?;
                            if s.is_primitive() {
                                sep = std::borrow::Cow::Owned(s.as_string().into_owned());
                            }
                        }
                        for item in &a.items[1..] {
                            out.push_str(&sep);
                            out.push_str(&item.as_string());
                        }
                    }
                    Ok(Value::string(out))
                }
                v if v.is_primitive() => Ok(Value::string(v.as_string())),
                _ => Ok(Value::string("")),
            }
        }
        Func::ToJson => Ok(Value::string(eval(&args[0], ev)?.to_json_pretty())),
        Func::FromJson => {
            let v = eval(&args[0], ev)?;
            let s = v.as_string();
            if s.trim().is_empty() {
                return Err(eval_err("Error parsing fromJson: empty input"));
            }
            parse_json_max_depth(&s, 64)
                .map_err(|e| eval_err(format!("Error parsing JSON when evaluating fromJson: {e}")))
        }
        Func::HashFiles => {
            let mut patterns = Vec::with_capacity(args.len());
            for a in args {
                patterns.push(eval(a, ev)?.as_string().into_owned());
            }
            Ok(Value::string(ev.ctx.hash_files(&patterns)?))
        }
        Func::Case => {
            let mut i = 0;
            while i + 1 < args.len() {
                match eval(&args[i], ev)? {
                    Value::Bool(true) => return eval(&args[i + 1], ev),
                    Value::Bool(false) => {}
                    _ => return Err(eval_err("case predicate must evaluate to a boolean value")),
                }
                i += 2;
            }
            eval(&args[args.len() - 1], ev)
        }
        Func::Success | Func::Failure | Func::Cancelled | Func::Always => {
            let sf = match f {
                Func::Success => StatusFunction::Success,
                Func::Failure => StatusFunction::Failure,
                Func::Cancelled => StatusFunction::Cancelled,
                _ => StatusFunction::Always,
            };
            if args.is_empty() {
                return Ok(Value::Bool(ev.ctx.status(sf)?));
            }
            let mut ids = Vec::with_capacity(args.len());
            for a in args {
                ids.push(eval(a, ev)?.as_string().into_owned());
            }
            Ok(Value::Bool(ev.ctx.status_with_args(sf, &ids)?))
        }
    }
}

enum Seg {
    Lit(String),
    Arg(usize, Option<String>),
}

/// `format()` exactly as the C# `Format` function parses it.
fn format(args: &[Node], ev: &mut Ev) -> Result<Value, ExprError> {
    let fmt_v = eval(&args[0], ev)?;
    let fmt = fmt_v.as_string();
    let nargs = args.len() - 1;
    let invalid = || eval_err(format!("The following format string is invalid: {fmt}"));
    let b = fmt.as_bytes();
    let mut segs: Vec<Seg> = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < b.len() {
        let lb = fmt[i..].find('{').map(|p| p + i);
        let rb = fmt[i..].find('}').map(|p| p + i);
        match (lb, rb) {
            (Some(l), r) if r.is_none_or(|r| r > l) => {
                if b.get(l + 1) == Some(&b'{') {
                    lit.push_str(&fmt[i..=l]);
                    i = l + 2;
                    continue;
                }
                // `{N}` or `{N:spec}`: needs a `}` somewhere after `{` + 1.
                if r.is_some_and(|r| r > l + 1) {
                    let ds = l + 1;
                    let mut de = ds;
                    while de < b.len() && b[de].is_ascii_digit() {
                        de += 1;
                    }
                    let idx = if de > ds {
                        fmt[ds..de].parse::<u8>().ok()
                    } else {
                        None
                    };
                    if let Some(idx) = idx
                        && let Some((spec, close)) = read_spec(b, de)
                    {
                        if usize::from(idx) >= nargs {
                            return Err(eval_err(format!(
                                "The following format string references more arguments than were supplied: {fmt}"
                            )));
                        }
                        lit.push_str(&fmt[i..l]);
                        if !lit.is_empty() {
                            segs.push(Seg::Lit(std::mem::take(&mut lit)));
                        }
                        segs.push(Seg::Arg(usize::from(idx), spec));
                        i = close + 1;
                        continue;
                    }
                }
                return Err(invalid());
            }
            (_, Some(r)) => {
                if b.get(r + 1) == Some(&b'}') {
                    lit.push_str(&fmt[i..=r]);
                    i = r + 2;
                } else {
                    return Err(invalid());
                }
            }
            _ => {
                lit.push_str(&fmt[i..]);
                break;
            }
        }
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    let mut cache: Vec<Option<Value>> = vec![None; nargs];
    let mut out = String::new();
    for s in &segs {
        match s {
            Seg::Lit(t) => out.push_str(t),
            Seg::Arg(i, spec) => {
                if cache[*i].is_none() {
                    cache[*i] = Some(eval(&args[i + 1], ev)?);
                }
                let v = cache[*i].as_ref().expect("cached");
                if let Some(spec) = spec {
                    return Err(eval_err(format!(
                        "The format specifiers '{spec}' are not valid for objects of type '{}'",
                        v.kind_name()
                    )));
                }
                out.push_str(&v.as_string());
            }
        }
    }
    Ok(Value::string(out))
}

/// Reads `}` or `:spec}` starting at `start`; returns the spec (None when absent) and the
/// position of the closing brace.
fn read_spec(b: &[u8], start: usize) -> Option<(Option<String>, usize)> {
    match b.get(start) {
        Some(b'}') => return Some((None, start)),
        Some(b':') => {}
        _ => return None,
    }
    let mut spec = Vec::new();
    let mut i = start + 1;
    loop {
        let c = *b.get(i)?;
        if c != b'}' {
            spec.push(c);
            i += 1;
        } else if b.get(i + 1) == Some(&b'}') {
            spec.push(b'}');
            i += 2;
        } else {
            return Some((Some(String::from_utf8_lossy(&spec).into_owned()), i));
        }
    }
}
