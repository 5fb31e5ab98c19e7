//! Matrix evaluation at dispatch time. The engine expands a job's matrix when the job
//! becomes ready, because a matrix may depend on `needs.*.outputs`
//! (`${{ fromJSON(needs.prepare.outputs.matrix) }}`); the expansion itself (GHA-SEMANTICS
//! §6.4, exact MatrixBuilder rules) is `gantry_plan::matrix`.

use gantry_workflow::Node;
use serde_json::{Map, Value as J};

use crate::expr_scope::Ctx;

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
