//! `gantry graph [-W PATH]... [--format text|dot|mermaid]`: the job graph of each workflow
//! (edges from a need to its dependent; matrix jobs show their leg count).
//! Exit 0, or 1 when a workflow file has errors or its jobs cannot be planned.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use gantry_plan::{NodeKind, Plan};
use gantry_workflow::Workflow;

use crate::cmd_list::{Output, load_all, planned};

fn label(wf: &Workflow, p: &Plan, id: &str) -> String {
    let jp = &p.jobs[id];
    let name = wf.jobs[id].display_name();
    let mut l = if name == id {
        id.to_string()
    } else {
        format!("{id}: {name}")
    };
    match &p.node(jp.nodes[0]).kind {
        NodeKind::Leg { total, .. } => {
            let _ = write!(l, " [{total} legs]");
        }
        NodeKind::Deferred => l.push_str(" [matrix at run time]"),
        NodeKind::NoLegs => l.push_str(" [no legs]"),
        NodeKind::Job => {}
    }
    l
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn mermaid_text(s: &str) -> String {
    // Mermaid labels in quotes; `"` must be written as an entity.
    format!("\"{}\"", s.replace('"', "#quot;"))
}

/// Mermaid node ids must be simple; job ids may contain `-` which is fine, others are not.
fn mermaid_id(i: usize, id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("j{i}_{clean}")
}

fn text(wf: &Workflow, p: &Plan, out: &mut String) {
    for (stage, ids) in p.layers.iter().enumerate() {
        let _ = writeln!(out, "  stage {stage}:");
        for id in ids {
            let needs = &p.jobs[id].needs;
            if needs.is_empty() {
                let _ = writeln!(out, "    {}", label(wf, p, id));
            } else {
                let _ = writeln!(out, "    {} <- {}", label(wf, p, id), needs.join(", "));
            }
        }
    }
}

fn dot(wf: &Workflow, p: &Plan, out: &mut String) {
    let _ = writeln!(out, "digraph {} {{", dot_quote(wf.display_name()));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box];");
    for id in p.jobs.keys() {
        let _ = writeln!(
            out,
            "  {} [label={}];",
            dot_quote(id),
            dot_quote(&label(wf, p, id))
        );
    }
    for (id, jp) in &p.jobs {
        for n in &jp.needs {
            let _ = writeln!(out, "  {} -> {};", dot_quote(n), dot_quote(id));
        }
    }
    let _ = writeln!(out, "}}");
}

fn mermaid(wf: &Workflow, p: &Plan, out: &mut String) {
    let ids: Vec<&String> = p.jobs.keys().collect();
    let mid = |id: &str| {
        let i = ids.iter().position(|x| *x == id).unwrap_or(0);
        mermaid_id(i, id)
    };
    let _ = writeln!(out, "flowchart LR");
    let _ = writeln!(out, "  %% {}", wf.display_name());
    for id in &ids {
        let _ = writeln!(out, "  {}[{}]", mid(id), mermaid_text(&label(wf, p, id)));
    }
    for (id, jp) in &p.jobs {
        for n in &jp.needs {
            let _ = writeln!(out, "  {} --> {}", mid(n), mid(id));
        }
    }
}

/// Runs `gantry graph`.
pub fn run(workflow_paths: &[PathBuf], format: &str) -> anyhow::Result<i32> {
    graph(workflow_paths, format)?.emit()
}

pub(crate) fn graph(workflow_paths: &[PathBuf], format: &str) -> anyhow::Result<Output> {
    if !matches!(format, "text" | "dot" | "mermaid") {
        bail!("unknown graph format '{format}' (expected text, dot or mermaid)");
    }
    let files = load_all(workflow_paths)?;
    let mut code = 0;
    let mut out = String::new();
    let mut err = String::new();
    for (f, wf, p) in planned(&files, &mut err, &mut code) {
        match format {
            "text" => {
                let _ = writeln!(out, "{} ({})", wf.display_name(), f.path.display());
                text(wf, &p, &mut out);
            }
            "dot" => dot(wf, &p, &mut out),
            _ => mermaid(wf, &p, &mut out),
        }
    }
    Ok(Output {
        stdout: out,
        stderr: err,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd_list::tests::repo;

    #[test]
    fn formats() {
        let d = repo();
        let ci = vec![d.path().join(".github/workflows/ci.yml")];
        let o = graph(&ci, "text").unwrap();
        assert_eq!(o.code, 0);
        assert!(o.stdout.contains("  stage 0:\n    build [4 legs]\n    lint\n  stage 1:\n    deploy: Deploy \"prod\" <- build, lint\n"), "{}", o.stdout);
        let o = graph(&ci, "dot").unwrap();
        assert!(o.stdout.starts_with("digraph \"CI\" {"));
        assert!(
            o.stdout
                .contains("  \"build\" -> \"deploy\";\n  \"lint\" -> \"deploy\";")
        );
        assert!(
            o.stdout.contains("label=\"deploy: Deploy \\\"prod\\\"\""),
            "{}",
            o.stdout
        );
        let o = graph(&ci, "mermaid").unwrap();
        assert!(o.stdout.starts_with("flowchart LR\n"));
        assert!(o.stdout.contains("j0_build --> j2_deploy"), "{}", o.stdout);
        assert!(o.stdout.contains("#quot;prod#quot;"));
        assert!(graph(&ci, "svg").is_err());
    }
}
