//! The job-level `needs` graph (GHA-SEMANTICS §6.1): unknown needs, cycles (named), the
//! `-j JOB` closure, ancestors (§3.9) and topological layers ("stages").

use gantry_workflow::Workflow;
use indexmap::{IndexMap, IndexSet};

use crate::PlanError;

/// Job id → direct needs, in file order; checked for unknown needs and cycles.
#[derive(Debug, Clone)]
pub struct JobGraph {
    pub needs: IndexMap<String, Vec<String>>,
}

impl JobGraph {
    /// Builds and checks the graph of a workflow.
    pub fn new(wf: &Workflow) -> Result<JobGraph, PlanError> {
        let needs: IndexMap<String, Vec<String>> = wf
            .jobs
            .iter()
            .map(|(id, j)| {
                (
                    id.clone(),
                    j.needs.iter().map(|n| n.value.clone()).collect(),
                )
            })
            .collect();
        JobGraph::from_needs(needs)
    }

    /// Builds and checks a graph from job id → needs.
    pub fn from_needs(needs: IndexMap<String, Vec<String>>) -> Result<JobGraph, PlanError> {
        for (id, ns) in &needs {
            for n in ns {
                if !needs.contains_key(n) {
                    return Err(PlanError::UnknownNeed {
                        job: id.clone(),
                        need: n.clone(),
                    });
                }
            }
        }
        let g = JobGraph { needs };
        if let Some(cycle) = g.find_cycle() {
            return Err(PlanError::Cycle(cycle));
        }
        Ok(g)
    }

    /// A cycle as `[a, b, c, a]` (each job needs the next), if any.
    fn find_cycle(&self) -> Option<Vec<String>> {
        // 0 = unvisited, 1 = on stack, 2 = done
        let mut state: IndexMap<&str, u8> = self.needs.keys().map(|k| (k.as_str(), 0)).collect();
        let mut stack: Vec<&str> = Vec::new();
        fn dfs<'a>(
            g: &'a JobGraph,
            id: &'a str,
            state: &mut IndexMap<&'a str, u8>,
            stack: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            state.insert(id, 1);
            stack.push(id);
            for n in &g.needs[id] {
                match state[n.as_str()] {
                    1 => {
                        let start = stack.iter().position(|s| *s == n).unwrap_or(0);
                        let mut cyc: Vec<String> =
                            stack[start..].iter().map(|s| s.to_string()).collect();
                        cyc.push(n.clone());
                        return Some(cyc);
                    }
                    0 => {
                        if let Some(c) = dfs(g, n, state, stack) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            stack.pop();
            state.insert(id, 2);
            None
        }
        let ids: Vec<&str> = self.needs.keys().map(String::as_str).collect();
        for id in ids {
            if state[id] == 0
                && let Some(c) = dfs(self, id, &mut state, &mut stack)
            {
                return Some(c);
            }
        }
        None
    }

    /// The selected jobs and everything they transitively need, in file order.
    pub fn closure(&self, selected: &[String]) -> Result<IndexSet<String>, PlanError> {
        let mut keep: IndexSet<String> = IndexSet::new();
        let mut todo: Vec<String> = Vec::new();
        for s in selected {
            if !self.needs.contains_key(s) {
                return Err(PlanError::UnknownJob(s.clone()));
            }
            todo.push(s.clone());
        }
        while let Some(j) = todo.pop() {
            if keep.insert(j.clone()) {
                todo.extend(self.needs[&j].iter().cloned());
            }
        }
        Ok(self
            .needs
            .keys()
            .filter(|k| keep.contains(*k))
            .cloned()
            .collect())
    }

    /// Every job `id` transitively needs, in file order.
    pub fn ancestors(&self, id: &str) -> Vec<String> {
        let mut set = self.closure(&[id.to_string()]).unwrap_or_default();
        set.shift_remove(id);
        set.into_iter().collect()
    }

    /// Topological layers: layer 0 has no needs, layer n needs something in layer n-1.
    /// Within a layer, file order.
    pub fn layers(&self) -> Vec<Vec<String>> {
        let mut depth: IndexMap<&str, usize> = IndexMap::new();
        fn d<'a>(g: &'a JobGraph, id: &'a str, depth: &mut IndexMap<&'a str, usize>) -> usize {
            if let Some(x) = depth.get(id) {
                return *x;
            }
            let v = g.needs[id]
                .iter()
                .map(|n| d(g, n, depth) + 1)
                .max()
                .unwrap_or(0);
            depth.insert(id, v);
            v
        }
        let mut layers: Vec<Vec<String>> = Vec::new();
        for id in self.needs.keys() {
            let l = d(self, id, &mut depth);
            if layers.len() <= l {
                layers.resize(l + 1, Vec::new());
            }
            layers[l].push(id.clone());
        }
        layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(spec: &[(&str, &[&str])]) -> Result<JobGraph, PlanError> {
        JobGraph::from_needs(
            spec.iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn cycle_is_named() {
        let e = g(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the jobs' needs form a cycle: a -> c -> b -> a"
        );
        let e = g(&[("a", &["a"])]).unwrap_err();
        assert_eq!(e.to_string(), "the jobs' needs form a cycle: a -> a");
        let e = g(&[("a", &["zz"])]).unwrap_err();
        assert_eq!(e.to_string(), "job 'a' needs 'zz', which does not exist");
    }

    #[test]
    fn closure_and_layers() {
        let gr = g(&[
            ("lint", &[]),
            ("build", &[]),
            ("test", &["build"]),
            ("deploy", &["test", "lint"]),
            ("docs", &[]),
        ])
        .unwrap();
        let c: Vec<String> = gr
            .closure(&["deploy".into()])
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(c, ["lint", "build", "test", "deploy"]);
        let c: Vec<String> = gr.closure(&["test".into()]).unwrap().into_iter().collect();
        assert_eq!(c, ["build", "test"]);
        assert!(matches!(
            gr.closure(&["nope".into()]),
            Err(PlanError::UnknownJob(_))
        ));
        assert_eq!(
            gr.layers(),
            vec![vec!["lint", "build", "docs"], vec!["test"], vec!["deploy"]]
        );
        assert_eq!(gr.ancestors("deploy"), ["lint", "build", "test"]);
    }
}
