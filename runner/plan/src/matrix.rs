//! Matrix expansion exactly as GitHub's `MatrixBuilder` (GHA-SEMANTICS §6.4), the job
//! display names of legs (`JobNameBuilder`), and act's `--matrix K:V` filter.
//!
//! Input is the matrix after expression evaluation, as a JSON object in YAML key order
//! (`serde_json` is built with `preserve_order`).

use gantry_expr::Value;
use indexmap::IndexMap;
use serde_json::Value as J;

/// The most legs one matrix may produce [D].
pub const MAX_LEGS: usize = 256;

/// One combination of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// The `matrix` context of the leg: the combination plus include extras, in order.
    pub values: IndexMap<String, J>,
    /// The scalar values shown in the display name: leaves of the combination before
    /// include extras were merged (for an unmatched include: all of its values).
    pub name_values: Vec<String>,
}

impl Leg {
    /// `"<job name> (v1, v2, …)"`, see [`display_name`].
    pub fn display_name(&self, job_name: &str) -> String {
        display_name(job_name, &self.name_values)
    }
}

/// GitHub's `JobNameBuilder`: `"name (a, b)"`, or just `name` without segments; truncated
/// to 100 characters ending in `...`. Empty segments are skipped.
pub fn display_name(job_name: &str, segments: &[String]) -> String {
    let segs: Vec<&str> = segments
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    let name = if segs.is_empty() {
        job_name.to_string()
    } else {
        format!("{job_name} ({})", segs.join(", "))
    };
    // C# measures UTF-16 code units; counting chars is equal for the BMP.
    if name.chars().count() > 100 {
        let mut s: String = name.chars().take(97).collect();
        s.push_str("...");
        s
    } else {
        name
    }
}

/// Leaf comparisons of an include filter or exclude item: `matrix[path] == literal`.
#[derive(Debug, Clone)]
struct Filter {
    leaves: Vec<(Vec<J>, J)>,
}

impl Filter {
    fn new(entries: &[(&String, &J)]) -> Filter {
        let mut leaves = Vec::new();
        for (k, v) in entries {
            flatten(vec![J::String((*k).clone())], v, &mut leaves);
        }
        Filter { leaves }
    }

    /// An empty filter matches every combination.
    fn matches(&self, combo: &IndexMap<String, J>) -> bool {
        self.leaves.iter().all(|(path, lit)| {
            let found = lookup(combo, path);
            let left = found.map(Value::from_json).unwrap_or(Value::Null);
            left.loose_eq(&Value::from_json(lit))
        })
    }
}

fn flatten(path: Vec<J>, v: &J, out: &mut Vec<(Vec<J>, J)>) {
    match v {
        J::Object(m) => {
            for (k, v) in m {
                let mut p = path.clone();
                p.push(J::String(k.clone()));
                flatten(p, v, out);
            }
        }
        J::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(J::from(i));
                flatten(p, v, out);
            }
        }
        leaf => out.push((path, leaf.clone())),
    }
}

/// `matrix[k1][k2]…`: object keys are case-insensitive, array indexes numeric.
fn lookup<'a>(combo: &'a IndexMap<String, J>, path: &[J]) -> Option<&'a J> {
    let first = path.first()?.as_str()?;
    let mut cur = combo
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(first))
        .map(|(_, v)| v)?;
    for seg in &path[1..] {
        cur = match (cur, seg) {
            (J::Object(m), J::String(k)) => m
                .iter()
                .find(|(mk, _)| mk.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)?,
            (J::Array(a), J::Number(n)) => a.get(n.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Scalar leaves in pre-order, as their expression string conversion (`Traverse(omitKeys)`).
fn name_segments<'a>(values: impl Iterator<Item = &'a J>, out: &mut Vec<String>) {
    for v in values {
        match v {
            J::Object(m) => name_segments(m.values(), out),
            J::Array(a) => name_segments(a.iter(), out),
            J::Null => {}
            scalar => out.push(Value::from_json(scalar).as_string().into_owned()),
        }
    }
}

struct Include {
    filter_entries: IndexMap<String, J>,
    filter: Filter,
    extra: IndexMap<String, J>,
    used: bool,
}

/// Why a matrix does not expand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    /// The matrix is not shaped as GitHub accepts; the text is GitHub's parser's.
    #[error("{0}")]
    Shape(String),
    #[error("Strategy produced more than {max} jobs; a matrix may produce at most {max}")]
    TooManyLegs { max: usize },
}

/// Expands an evaluated matrix (a JSON object) into its legs, in GitHub's order.
/// Errors use the texts of GitHub's parser.
pub fn expand(matrix: &J) -> Result<Vec<Leg>, MatrixError> {
    let legs = legs_of(matrix).map_err(MatrixError::Shape)?;
    if legs.len() > MAX_LEGS {
        return Err(MatrixError::TooManyLegs { max: MAX_LEGS });
    }
    Ok(legs)
}

fn legs_of(matrix: &J) -> Result<Vec<Leg>, String> {
    let J::Object(map) = matrix else {
        return Err(format!(
            "Matrix must be a mapping, got {}",
            Value::from_json(matrix).kind_name()
        ));
    };
    let mut vectors: IndexMap<&str, &Vec<J>> = IndexMap::new();
    let mut include_v: Option<&J> = None;
    let mut exclude_v: Option<&J> = None;
    for (k, v) in map {
        match k.as_str() {
            "include" => include_v = Some(v),
            "exclude" => exclude_v = Some(v),
            name => match v {
                J::Array(a) if a.is_empty() => {
                    return Err(format!(
                        "Matrix vector '{name}' does not contain any values"
                    ));
                }
                J::Array(a) => {
                    vectors.insert(name, a);
                }
                other => {
                    return Err(format!(
                        "Matrix vector '{name}' must be a sequence, got {}",
                        Value::from_json(other).kind_name()
                    ));
                }
            },
        }
    }
    let seq = |v: Option<&J>, what: &str| -> Result<Vec<J>, String> {
        match v {
            None | Some(J::Null) => Ok(vec![]),
            Some(J::Array(a)) => Ok(a.clone()),
            Some(o) => Err(format!(
                "Matrix {what} must be a sequence, got {}",
                Value::from_json(o).kind_name()
            )),
        }
    };
    let include_items = seq(include_v, "include")?;
    let exclude_items = seq(exclude_v, "exclude")?;
    if vectors.is_empty() && include_items.is_empty() {
        return Err("Matrix must define at least one vector".into());
    }

    let mut excludes = Vec::new();
    for item in &exclude_items {
        let J::Object(m) = item else {
            return Err("Matrix exclude item must be a mapping".into());
        };
        if m.is_empty() {
            return Err("Matrix exclude filter must not be empty".into());
        }
        for k in m.keys() {
            if !vectors.contains_key(k.as_str()) {
                return Err(format!(
                    "Matrix exclude key '{k}' does not match any key within the matrix"
                ));
            }
        }
        let entries: Vec<(&String, &J)> = m.iter().collect();
        excludes.push(Filter::new(&entries));
    }

    let mut includes = Vec::new();
    for item in &include_items {
        let J::Object(m) = item else {
            return Err("Matrix include item must be a mapping".into());
        };
        let mut filter_entries = IndexMap::new();
        let mut extra = IndexMap::new();
        for (k, v) in m {
            if vectors.contains_key(k.as_str()) {
                filter_entries.insert(k.clone(), v.clone());
            } else {
                extra.insert(k.clone(), v.clone());
            }
        }
        if filter_entries.is_empty() && extra.is_empty() {
            return Err("Matrix include mapping does not contain any values".into());
        }
        let entries: Vec<(&String, &J)> = filter_entries.iter().collect();
        includes.push(Include {
            filter: Filter::new(&entries),
            filter_entries,
            extra,
            used: false,
        });
    }

    let mut product: usize = if vectors.is_empty() { 0 } else { 1 };
    for v in vectors.values() {
        product = product
            .checked_mul(v.len())
            .ok_or("Matrix is too large (the product overflows)")?;
    }
    let mut legs = Vec::new();
    for index in 0..product {
        let mut combo: IndexMap<String, J> = IndexMap::new();
        let mut block = product;
        for (name, vector) in &vectors {
            block /= vector.len();
            combo.insert(
                (*name).to_string(),
                vector[(index / block) % vector.len()].clone(),
            );
        }
        if excludes.iter().any(|f| f.matches(&combo)) {
            continue;
        }
        let mut extra: IndexMap<String, J> = IndexMap::new();
        for inc in includes.iter_mut() {
            if inc.filter.matches(&combo) {
                inc.used = true;
                for (k, v) in &inc.extra {
                    extra.insert(k.clone(), v.clone());
                }
            }
        }
        let mut name_values = Vec::new();
        name_segments(combo.values(), &mut name_values);
        combo.extend(extra);
        legs.push(Leg {
            values: combo,
            name_values,
        });
        if legs.len() > MAX_LEGS {
            break;
        }
    }
    for inc in includes.iter().filter(|i| !i.used) {
        let mut values = inc.filter_entries.clone();
        values.extend(inc.extra.clone());
        let mut name_values = Vec::new();
        name_segments(values.values(), &mut name_values);
        legs.push(Leg {
            values,
            name_values,
        });
    }
    Ok(legs)
}

/// [`expand`] returning only the `matrix` context of each leg.
pub fn expand_values(matrix: &J) -> Result<Vec<IndexMap<String, J>>, MatrixError> {
    Ok(expand(matrix)?.into_iter().map(|l| l.values).collect())
}

/// One `--matrix K:V` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixFilter {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for MatrixFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((k, v)) if !k.is_empty() => Ok(MatrixFilter {
                key: k.to_string(),
                value: v.to_string(),
            }),
            _ => Err(format!("invalid matrix filter '{s}': expected KEY:VALUE")),
        }
    }
}

/// The text a leg value is compared with in `--matrix K:V` (act prints it with `%v`;
/// strings raw, numbers and booleans as expressions print them, others as JSON).
pub fn filter_text(v: &J) -> String {
    match v {
        J::Object(_) | J::Array(_) => v.to_string(),
        scalar => Value::from_json(scalar).as_string().into_owned(),
    }
}

/// act's `--matrix` semantics: a leg is kept when, for every key it has that some filter
/// names, its value equals one of the values given for that key. Filters on the same key
/// are alternatives; filters on different keys must all hold; legs without the key stay.
pub fn filter_legs(legs: Vec<Leg>, filters: &[MatrixFilter]) -> Vec<Leg> {
    if filters.is_empty() {
        return legs;
    }
    legs.into_iter()
        .filter(|leg| {
            leg.values.iter().all(|(k, v)| {
                let allowed: Vec<&str> = filters
                    .iter()
                    .filter(|f| &f.key == k)
                    .map(|f| f.value.as_str())
                    .collect();
                allowed.is_empty() || allowed.contains(&filter_text(v).as_str())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(legs: &[Leg]) -> Vec<String> {
        legs.iter().map(|l| l.display_name("t")).collect()
    }

    #[test]
    fn product_order_first_key_outermost() {
        let legs = expand(&json!({"os": ["a", "b"], "v": [1, 2]})).unwrap();
        assert_eq!(
            names(&legs),
            ["t (a, 1)", "t (a, 2)", "t (b, 1)", "t (b, 2)"]
        );
        assert_eq!(legs[1].values["v"], json!(2));
        let keys: Vec<&String> = legs[0].values.keys().collect();
        assert_eq!(keys, ["os", "v"]);
    }

    #[test]
    fn filter_semantics() {
        let legs = expand(&json!({"os": ["ubuntu", "windows"], "node": [18, 20]})).unwrap();
        let f: Vec<MatrixFilter> = vec!["os:ubuntu".parse().unwrap()];
        assert_eq!(filter_legs(legs.clone(), &f).len(), 2);
        let f: Vec<MatrixFilter> = ["os:ubuntu", "os:windows", "node:20"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let kept = filter_legs(legs, &f);
        assert_eq!(names(&kept), ["t (ubuntu, 20)", "t (windows, 20)"]);
        assert!("nocolon".parse::<MatrixFilter>().is_err());
    }

    #[test]
    fn name_truncation_and_types() {
        let long = "x".repeat(120);
        let n = display_name("job", &[long]);
        assert_eq!(n.chars().count(), 100);
        assert!(n.ends_with("..."));
        let legs = expand(&json!({"a": [true, 1.5, {"k": "v", "n": null}, ""]})).unwrap();
        assert_eq!(names(&legs), ["t (true)", "t (1.5)", "t (v)", "t"]);
    }
}
