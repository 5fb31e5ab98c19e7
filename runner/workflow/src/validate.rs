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

/// `needs` must name existing jobs, the graph must be acyclic and have a root.
pub(crate) fn job_graph(jobs: &IndexMap<String, Job>, jobs_span: Span, d: &mut Diagnostics) {
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
    if jobs.is_empty() || !ok {
        return;
    }
    if jobs.values().all(|j| !j.needs.is_empty()) {
        let span = jobs.values().next().map_or(jobs_span, |j| j.id.span);
        d.semantic(
            span,
            "The workflow must contain at least one job with no dependencies.",
        );
    }
    // Cycle detection: iterative DFS with colours; report each cycle once.
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
    let mut colour = vec![0u8; adj.len()]; // 0 new, 1 on stack, 2 done
    for start in 0..adj.len() {
        if colour[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next < adj[node].len() {
                let to = adj[node][*next];
                *next += 1;
                match colour[to] {
                    0 => {
                        colour[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut names: Vec<&str> = stack[pos..]
                            .iter()
                            .map(|(n, _)| jobs.get_index(*n).map_or("", |(k, _)| k.as_str()))
                            .collect();
                        names.push(jobs.get_index(to).map_or("", |(k, _)| k.as_str()));
                        let (_, job) = jobs.get_index(to).expect("job");
                        d.semantic(
                            job.id.span,
                            format!("Dependency cycle: {}", names.join(" -> ")),
                        );
                    }
                    _ => {}
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
}
