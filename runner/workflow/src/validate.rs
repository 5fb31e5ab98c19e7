//! Cross-cutting semantic checks: identifiers, the job dependency graph.

use crate::Diagnostics;
use crate::model::*;
use indexmap::IndexMap;

/// Job and step ids: `^[A-Za-z_][A-Za-z0-9_-]*$`, under 100 chars, not starting `__`.
pub(crate) fn check_id(id: &Spanned<String>, _what: &str, d: &mut Diagnostics) {
    let s = id.value.as_str();
    let mut chars = s.chars();
    let valid = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && s.len() < 100
        }
        _ => false,
    };
    if !valid {
        d.semantic(
            id.span,
            format!(
                "The identifier '{s}' is invalid. IDs may only contain alphanumeric characters, '_', and '-'. IDs must start with a letter or '_' and and must be less than 100 characters."
            ),
        );
    } else if s.starts_with("__") {
        d.semantic(
            id.span,
            format!("The identifier '{s}' is invalid. IDs starting with '__' are reserved."),
        );
    }
}

/// The graph must have a root, `needs` must name existing jobs, and there must be no
/// cycle (each edge on a cycle is reported, naming the cycle).
pub(crate) fn job_graph(jobs: &IndexMap<String, Job>, jobs_span: Span, d: &mut Diagnostics) {
    if jobs.is_empty() {
        return;
    }
    if jobs.values().all(|j| !j.needs.is_empty()) {
        let span = jobs.values().next().map_or(jobs_span, |j| j.id.span);
        d.semantic(
            span,
            "The workflow must contain at least one job with no dependencies.",
        );
    }
    let mut ok = true;
    for job in jobs.values() {
        for n in &job.needs {
            if !jobs.contains_key(&n.value) {
                ok = false;
                d.semantic(
                    n.span,
                    format!(
                        "Job '{}' depends on unknown job '{}'.",
                        job.id.value, n.value
                    ),
                );
            }
        }
    }
    if !ok {
        return;
    }
    let index: IndexMap<&str, usize> = jobs
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let adj: Vec<Vec<usize>> = jobs
        .values()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|n| index.get(n.value.as_str()).copied())
                .collect()
        })
        .collect();
    let in_cycle = cyclic_nodes(&adj);
    if !in_cycle.iter().any(|c| *c) {
        return;
    }
    for (i, job) in jobs.values().enumerate() {
        if !in_cycle[i] {
            continue;
        }
        for n in &job.needs {
            let to = index[n.value.as_str()];
            if let Some(path) = path_between(&adj, to, i) {
                let mut names = vec![job.id.value.as_str()];
                names.extend(
                    path.iter()
                        .map(|p| jobs.get_index(*p).map_or("", |(k, _)| k.as_str())),
                );
                d.semantic(
                    n.span,
                    format!(
                        "Job '{}' depends on job '{}' which creates a cycle in the dependency graph: {}",
                        job.id.value,
                        n.value,
                        names.join(" -> ")
                    ),
                );
            }
        }
    }
}

/// Nodes on some cycle (Tarjan's strongly connected components, iterative).
fn cyclic_nodes(adj: &[Vec<usize>]) -> Vec<bool> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut result = vec![false; n];
    let mut counter = 0;
    for s in 0..n {
        if index[s] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(s, 0)];
        index[s] = counter;
        low[s] = counter;
        counter += 1;
        stack.push(s);
        on_stack[s] = true;
        while let Some(&(v, ei)) = call.last() {
            if ei < adj[v].len() {
                call.last_mut().expect("frame").1 += 1;
                let w = adj[v][ei];
                if index[w] == usize::MAX {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let cyclic = comp.len() > 1 || adj[v].contains(&v);
                    for w in comp {
                        result[w] = cyclic;
                    }
                }
            }
        }
    }
    result
}

/// Shortest path `from` → … → `to` (both included), breadth-first.
fn path_between(adj: &[Vec<usize>], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut prev = vec![usize::MAX; adj.len()];
    let mut queue = std::collections::VecDeque::from([from]);
    prev[from] = from;
    while let Some(v) = queue.pop_front() {
        if v == to {
            let mut path = vec![to];
            let mut c = to;
            while c != from {
                c = prev[c];
                path.push(c);
            }
            path.reverse();
            return Some(path);
        }
        for &w in &adj[v] {
            if prev[w] == usize::MAX {
                prev[w] = v;
                queue.push_back(w);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_cycles() {
        let adj = vec![vec![], vec![0, 2], vec![1], vec![3]];
        assert_eq!(cyclic_nodes(&adj), vec![false, true, true, true]);
        assert_eq!(path_between(&adj, 2, 1), Some(vec![2, 1]));
    }
}
