//! Matrix evaluation and expansion at dispatch time (GHA-SEMANTICS §6.4). The engine
//! expands a job's matrix when the job becomes ready, because a matrix may depend on
//! `needs.*.outputs` (`${{ fromJSON(needs.prepare.outputs.matrix) }}`).

use gantry_expr::Value;
use gantry_workflow::Node;
use serde_json::{Map, Value as J};

use crate::evalctx::Ctx;

/// Evaluates a matrix as written (keys and scalar values may hold `${{ }}`) to JSON.
pub fn eval_node(node: &Node, ctx: &Ctx) -> Result<J, String> {
    Ok(match node {
        Node::Null => J::Null,
        Node::Bool(b) => J::Bool(*b),
        Node::Number(n) => serde_json::Number::from_f64(*n)
            .map(J::Number)
            .unwrap_or(J::Null),
        Node::String(s) => {
            if s.contains("${{") {
                ctx.eval_template(s).map_err(|e| e.to_string())?.to_json()
            } else {
                J::String(s.clone())
            }
        }
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                // An item that is one expression yielding an array is spliced into the
                // sequence (`- ${{ fromJSON('[...]') }}` adds several values).
                let v = eval_node(&i.value, ctx)?;
                match (&i.value, v) {
                    (Node::String(src), J::Array(a)) if src.contains("${{") => out.extend(a),
                    (_, v) => out.push(v),
                }
            }
            J::Array(out)
        }
        Node::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let key = ctx.eval_string(&k.value).map_err(|e| e.to_string())?;
                m.insert(key, eval_node(&v.value, ctx)?);
            }
            J::Object(m)
        }
    })
}

/// One leg: the combination (with include extras) and the values used in its display name.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub values: Map<String, J>,
    pub name_values: Vec<String>,
}

fn leaves(prefix: &mut Vec<J>, v: &J, out: &mut Vec<(Vec<J>, J)>) {
    match v {
        J::Object(m) => {
            for (k, x) in m {
                prefix.push(J::String(k.clone()));
                leaves(prefix, x, out);
                prefix.pop();
            }
        }
        J::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                prefix.push(J::from(i));
                leaves(prefix, x, out);
                prefix.pop();
            }
        }
        _ => out.push((prefix.clone(), v.clone())),
    }
}

fn lookup<'a>(combo: &'a Map<String, J>, path: &[J]) -> Option<&'a J> {
    let mut cur: Option<&J> = None;
    for (i, p) in path.iter().enumerate() {
        let next = if i == 0 {
            let key = p.as_str()?;
            combo
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        } else {
            match (cur?, p) {
                (J::Object(m), J::String(k)) => m
                    .iter()
                    .find(|(kk, _)| kk.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v),
                (J::Array(a), J::Number(n)) => a.get(n.as_u64()? as usize),
                _ => None,
            }
        };
        cur = next;
    }
    cur
}

/// Whether every leaf of `item` equals (loosely) the value at the same path in `combo`.
fn matches(combo: &Map<String, J>, item: &Map<String, J>) -> bool {
    let mut ls = Vec::new();
    leaves(&mut Vec::new(), &J::Object(item.clone()), &mut ls);
    ls.iter().all(|(path, lit)| {
        let actual = lookup(combo, path)
            .map(Value::from_json)
            .unwrap_or(Value::Null);
        actual.loose_eq(&Value::from_json(lit))
    })
}

fn scalar_names(v: &J, out: &mut Vec<String>) {
    match v {
        J::Object(m) => m.values().for_each(|x| scalar_names(x, out)),
        J::Array(a) => a.iter().for_each(|x| scalar_names(x, out)),
        other => out.push(Value::from_json(other).as_string().into_owned()),
    }
}

/// Expands an evaluated matrix. `Ok(vec![])` never happens for a valid matrix.
pub fn expand(matrix: &J) -> Result<Vec<Leg>, String> {
    let J::Object(m) = matrix else {
        return Err("The matrix must be a mapping".into());
    };
    let mut vectors: Vec<(&String, &Vec<J>)> = Vec::new();
    let mut include: Vec<&J> = Vec::new();
    let mut exclude: Vec<&J> = Vec::new();
    for (k, v) in m {
        match k.as_str() {
            "include" => match v {
                J::Array(a) => include.extend(a.iter()),
                J::Null => {}
                _ => return Err("Matrix 'include' must be a sequence".into()),
            },
            "exclude" => match v {
                J::Array(a) => exclude.extend(a.iter()),
                J::Null => {}
                _ => return Err("Matrix 'exclude' must be a sequence".into()),
            },
            _ => match v {
                J::Array(a) if !a.is_empty() => vectors.push((k, a)),
                J::Array(_) => {
                    return Err(format!("Matrix vector '{k}' does not contain any values"));
                }
                _ => return Err(format!("Matrix vector '{k}' must be a sequence")),
            },
        }
    }
    if vectors.is_empty() && include.is_empty() {
        return Err("Matrix must define at least one vector".into());
    }
    let is_vector = |k: &str| vectors.iter().any(|(n, _)| n.as_str() == k);
    type Include = (Map<String, J>, Map<String, J>, bool);
    let mut incs: Vec<Include> = Vec::new();
    for inc in &include {
        let J::Object(o) = inc else {
            return Err("Matrix include items must be mappings".into());
        };
        let mut filter = Map::new();
        let mut extra = Map::new();
        for (k, v) in o {
            if is_vector(k) {
                filter.insert(k.clone(), v.clone());
            } else {
                extra.insert(k.clone(), v.clone());
            }
        }
        incs.push((filter, extra, false));
    }
    let mut excl: Vec<Map<String, J>> = Vec::new();
    for ex in &exclude {
        let J::Object(o) = ex else {
            return Err("Matrix exclude items must be mappings".into());
        };
        excl.push(o.clone());
    }
    // Cartesian product, first key outermost.
    let mut product: Vec<Map<String, J>> = if vectors.is_empty() {
        vec![]
    } else {
        vec![Map::new()]
    };
    for (k, vals) in &vectors {
        let mut next = Vec::with_capacity(product.len() * vals.len());
        for base in &product {
            for v in *vals {
                let mut c = base.clone();
                c.insert((*k).clone(), v.clone());
                next.push(c);
            }
        }
        product = next;
    }
    let mut legs = Vec::new();
    for combo in product {
        if excl.iter().any(|e| matches(&combo, e)) {
            continue;
        }
        let mut names = Vec::new();
        scalar_names(&J::Object(combo.clone()), &mut names);
        let mut values = combo.clone();
        for (filter, extra, used) in incs.iter_mut() {
            if matches(&combo, filter) {
                *used = true;
                for (k, v) in extra.iter() {
                    values.insert(k.clone(), v.clone());
                }
            }
        }
        legs.push(Leg {
            values,
            name_values: names,
        });
    }
    for (filter, extra, used) in incs {
        if used {
            continue;
        }
        let mut values = filter.clone();
        for (k, v) in extra {
            values.insert(k, v);
        }
        let mut names = Vec::new();
        scalar_names(&J::Object(values.clone()), &mut names);
        legs.push(Leg {
            values,
            name_values: names,
        });
    }
    if legs.len() > 256 {
        return Err(format!(
            "The matrix has {} jobs; at most 256 are allowed",
            legs.len()
        ));
    }
    Ok(legs)
}

/// `"<name> (v1, v2)"`, truncated to 100 characters.
pub fn leg_display_name(job_name: &str, leg: &Leg) -> String {
    if leg.name_values.is_empty() {
        return job_name.to_string();
    }
    let s = format!("{job_name} ({})", leg.name_values.join(", "));
    if s.chars().count() > 100 {
        let t: String = s.chars().take(97).collect();
        format!("{t}...")
    } else {
        s
    }
}

/// `--matrix K:V` filters: keep legs whose value at K equals V (as a string).
pub fn filter_legs(legs: Vec<Leg>, filters: &[(String, String)]) -> Vec<Leg> {
    if filters.is_empty() {
        return legs;
    }
    legs.into_iter()
        .filter(|l| {
            filters.iter().all(|(k, v)| match l.values.get(k) {
                Some(x) => Value::from_json(x).as_string() == v.as_str(),
                None => true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docs_example() {
        let m = json!({
            "fruit": ["apple", "pear"], "animal": ["cat", "dog"],
            "include": [
                {"color": "green"}, {"color": "pink", "animal": "cat"},
                {"fruit": "apple", "shape": "circle"}, {"fruit": "banana"},
                {"fruit": "banana", "animal": "cat"}
            ]
        });
        let legs = expand(&m).unwrap();
        assert_eq!(legs.len(), 6);
        assert_eq!(legs[0].values["color"], "pink");
        assert_eq!(legs[0].values["shape"], "circle");
        assert_eq!(legs[1].values["color"], "green");
        assert_eq!(
            legs[4].values,
            json!({"fruit": "banana"}).as_object().unwrap().clone()
        );
        assert_eq!(leg_display_name("t", &legs[0]), "t (apple, cat)");
    }

    #[test]
    fn exclude_and_include_only() {
        let legs = expand(&json!({"x": [1, 2], "exclude": [{"x": "1"}]})).unwrap();
        assert_eq!(legs.len(), 1);
        let legs = expand(&json!({"include": [{"def": "val"}]})).unwrap();
        assert_eq!(legs.len(), 1);
        assert!(expand(&json!({"x": []})).is_err());
    }
}
