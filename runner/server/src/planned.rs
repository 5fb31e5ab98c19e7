//! The job rows a run is queued with: one per planned job or matrix leg, in file order, and
//! a reusable-workflow call the server can read here replaced by its callee's jobs
//! (`call / build`), as GitHub lists and draws them. The engine's events take these rows by
//! the same keys and names (`call/build`; a leg of a matrix over the call: `call (1) /
//! build`), so the run page shows a call's jobs, and the edges into and out of them,
//! before the call starts.
//!
//! Read here: a call of a workflow of the same commit (`./.github/workflows/x.yml`, `$/…`),
//! and a call of another repository pinned to a full commit sha whose checkout the
//! engine's resolver cache already holds (the engine answers a full sha from that cache
//! without asking the network, so it runs exactly the file read here). A call pinned to a
//! branch or tag is re-resolved by the engine when it starts, so a copy read now could
//! name other jobs; such a call, a matrix that needs values known only at run time, and a
//! callee with errors keep one row per leg; the engine's jobs replace it when they start.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use gantry_engine::actions::{UsesRef, cached_commit_dir, parse_uses};
use gantry_plan::{NodeKind, Plan, PlanOptions};
use gantry_workflow::Workflow;

use crate::mirror::WorkflowFile;
use crate::store_runs::NewJob;

/// GitHub's nesting limit of reusable workflows (the top one and nine called).
const MAX_DEPTH: usize = 10;

/// The most rows expanding calls may produce. A commit's workflows could call each other
/// many times per level (k calls, 10 levels: k^10 jobs); past this the calls stay one row
/// each, and the engine's own limits decide what runs.
const MAX_ROWS: usize = 1000;

/// The largest callee file read from the resolver cache (a regular file; GitHub refuses
/// workflow files far smaller).
const MAX_CACHED_FILE: u64 = 1 << 20;

/// What callees are read from: the workflows of the run's commit, and the engine's
/// resolver cache (`<root>/<owner>/<repo>/<sha>/`, as `ActionResolver` lays it out).
pub struct Callees<'a> {
    pub files: &'a [WorkflowFile],
    pub cache_root: Option<&'a Path>,
}

/// Where one workflow's `./` calls point: the run's commit, or the cached checkout of the
/// repository a remote callee came from (the engine resolves them against that checkout).
#[derive(Clone)]
enum Tree {
    Commit,
    Cached(PathBuf),
}

/// The rows of `plan` (of `wf`), with the calls expanded that `callees` can read.
/// Blocking (it may read the resolver cache).
pub fn rows(wf: &Workflow, plan: &Plan, callees: &Callees) -> Vec<NewJob> {
    for max_depth in [MAX_DEPTH, 1] {
        let mut out = Vec::new();
        let level = Level {
            key_prefix: String::new(),
            name_prefix: String::new(),
            entry_needs: Vec::new(),
            tree: Tree::Commit,
            depth: 1,
            max_depth,
        };
        if push_level(&mut out, wf, plan, callees, &level).is_some() {
            return out;
        }
    }
    // Without expansion there is one row per planned leg, which the plan already bounds.
    Vec::new()
}

/// Where one workflow's jobs go among the rows.
struct Level {
    /// `call/` for the jobs of a call's callee (keys as the engine's `job_id`; every leg
    /// of a matrix over the call has the same).
    key_prefix: String,
    /// `call / `, `call (1) / ` (names as the engine shows them).
    name_prefix: String,
    /// The caller's needs: what the callee's jobs without needs wait for.
    entry_needs: Vec<String>,
    tree: Tree,
    depth: usize,
    max_depth: usize,
}

/// Pushes the rows of one workflow's plan; returns the keys its last jobs have (what a job
/// needing the whole call waits for), or `None` once expanding calls made more than
/// [`MAX_ROWS`] rows.
fn push_level(
    out: &mut Vec<NewJob>,
    wf: &Workflow,
    plan: &Plan,
    callees: &Callees,
    level: &Level,
) -> Option<Vec<String>> {
    let start = out.len();
    // Caller key → the keys of its callee's last jobs.
    let mut ends: HashMap<String, Vec<String>> = HashMap::new();
    for (job_id, jp) in &plan.jobs {
        let job = &wf.jobs[job_id];
        let key = format!("{}{job_id}", level.key_prefix);
        let mut needs: Vec<String> = jp
            .needs
            .iter()
            .map(|n| format!("{}{n}", level.key_prefix))
            .collect();
        if needs.is_empty() {
            needs = level.entry_needs.clone();
        }
        if level.depth < level.max_depth
            && expandable_legs(job, plan, &jp.nodes)
            && let Some((callee, callee_plan, tree)) = callee(job, &level.tree, callees)
        {
            // Every leg runs the callee's whole graph under its own name; the keys are the
            // same for all legs, so the last keys are too.
            let mut last = Vec::new();
            for &node in &jp.nodes {
                let inner = Level {
                    key_prefix: format!("{key}/"),
                    name_prefix: format!("{}{} / ", level.name_prefix, plan.node(node).name),
                    entry_needs: needs.clone(),
                    tree: tree.clone(),
                    depth: level.depth + 1,
                    max_depth: level.max_depth,
                };
                last = push_level(out, &callee, &callee_plan, callees, &inner)?;
            }
            ends.insert(key, last);
            continue;
        }
        for &n in &jp.nodes {
            out.push(NewJob {
                key: key.clone(),
                name: format!("{}{}", level.name_prefix, plan.node(n).name),
                needs: needs.clone(),
                labels: job
                    .runs_on
                    .as_ref()
                    .map(|r| r.labels.iter().map(|l| l.value.clone()).collect())
                    .unwrap_or_default(),
                environment: job.environment.as_ref().map(|e| e.name.value.clone()),
            });
        }
        if level.max_depth > 1 && out.len() > MAX_ROWS {
            return None;
        }
    }
    // A job needing a call waits for the call's last jobs.
    for row in &mut out[start..] {
        if row.needs.iter().any(|n| ends.contains_key(n)) {
            row.needs = row
                .needs
                .iter()
                .flat_map(|n| ends.get(n).cloned().unwrap_or_else(|| vec![n.clone()]))
                .collect();
        }
    }
    // This workflow's last jobs: those no other job of it needs.
    let needed: Vec<&String> = plan.jobs.values().flat_map(|j| j.needs.iter()).collect();
    let last = plan
        .jobs
        .keys()
        .filter(|id| !needed.contains(id))
        .flat_map(|id| {
            let key = format!("{}{id}", level.key_prefix);
            ends.get(&key).cloned().unwrap_or_else(|| vec![key])
        })
        .collect();
    Some(last)
}

/// Whether the planned legs of a call are the ones the engine will run: one plain job, or
/// a matrix the plan expanded with static values. A matrix from `needs` or other run-time
/// values (a deferred node) is expanded only when it starts; legs whose name is an
/// expression are named only then (the plan keeps the expression), so no row could
/// carry their name now.
fn expandable_legs(
    job: &gantry_workflow::Job,
    plan: &Plan,
    nodes: &[gantry_plan::NodeIndex],
) -> bool {
    let legs = nodes.iter().map(|&n| &plan.node(n).kind);
    match nodes {
        [n] if plan.node(*n).kind == NodeKind::Job => true,
        [_, ..] => {
            !job.display_name().contains("${{")
                && legs.into_iter().all(|k| matches!(k, NodeKind::Leg { .. }))
        }
        [] => false,
    }
}

/// The callee of `job` when it is a call that can be read here (see the module docs) and
/// parses and plans, with the tree its own `./` calls are read from.
fn callee(
    job: &gantry_workflow::Job,
    tree: &Tree,
    callees: &Callees,
) -> Option<(Workflow, Plan, Tree)> {
    let uses = job.uses.as_ref()?.value.trim();
    // The engine's own parser: the same `./`, `$/` and `owner/repo/…@ref` rules.
    let (path, text, tree) = match parse_uses(uses).ok()? {
        UsesRef::LocalWorkflow { path } => {
            let rel = path.trim_start_matches("./").to_string();
            let text = match tree {
                Tree::Commit => callees
                    .files
                    .iter()
                    .find(|f| f.path == rel)
                    .map(|f| f.text.clone())?,
                Tree::Cached(root) => read_cached(root, &rel)?,
            };
            (rel, text, tree.clone())
        }
        UsesRef::RemoteWorkflow(r) => {
            let root = cached_commit_dir(callees.cache_root?, &r)?;
            let text = read_cached(&root, &r.path)?;
            (r.path.clone(), text, Tree::Cached(root))
        }
        _ => return None,
    };
    let loaded = gantry_workflow::parse_workflow(&path, &text);
    if loaded.has_errors() {
        return None;
    }
    let callee = loaded.value?;
    let plan = gantry_plan::plan(&callee, &PlanOptions::default()).ok()?;
    Some((callee, plan, tree))
}

/// The text of `rel` in the cached checkout at `root`: a regular file reached through real
/// directories only (a link could lead anywhere, a FIFO or device would block the
/// webhook), at most [`MAX_CACHED_FILE`] bytes.
fn read_cached(root: &Path, rel: &str) -> Option<String> {
    let mut p = root.to_path_buf();
    if !std::fs::symlink_metadata(&p).ok()?.is_dir() {
        return None;
    }
    for c in Path::new(rel).components() {
        let Component::Normal(c) = c else {
            return None;
        };
        p.push(c);
        let m = std::fs::symlink_metadata(&p).ok()?;
        if m.file_type().is_symlink() {
            return None;
        }
    }
    let m = std::fs::symlink_metadata(&p).ok()?;
    if !m.is_file() || m.len() > MAX_CACHED_FILE {
        return None;
    }
    std::fs::read_to_string(&p).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> WorkflowFile {
        WorkflowFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn rows_of(top: &str, files: &[WorkflowFile]) -> Vec<(String, String, Vec<String>)> {
        rows_with(top, files, None)
    }

    fn rows_with(
        top: &str,
        files: &[WorkflowFile],
        cache_root: Option<&Path>,
    ) -> Vec<(String, String, Vec<String>)> {
        let wf = gantry_workflow::parse_workflow("ci.yml", top)
            .value
            .unwrap();
        let plan = gantry_plan::plan(&wf, &PlanOptions::default()).unwrap();
        let callees = Callees { files, cache_root };
        rows(&wf, &plan, &callees)
            .into_iter()
            .map(|r| (r.key, r.name, r.needs))
            .collect()
    }

    const CALLED: &str = "on: workflow_call\njobs:\n  one:\n    runs-on: x\n    steps: [{run: a}]\n  two:\n    needs: one\n    strategy: {matrix: {n: [1, 2]}}\n    runs-on: x\n    steps: [{run: b}]\n";

    #[test]
    fn a_local_call_is_its_callees_jobs_with_the_edges_through_it() {
        let top = "on: push\njobs:\n  build:\n    runs-on: x\n    steps: [{run: a}]\n  call:\n    needs: build\n    uses: ./.github/workflows/called.yml\n  after:\n    needs: call\n    runs-on: x\n    steps: [{run: c}]\n";
        let files = [file(".github/workflows/called.yml", CALLED)];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rows_of(top, &files),
            vec![
                ("build".into(), "build".into(), vec![]),
                ("call/one".into(), "call / one".into(), s(&["build"])),
                ("call/two".into(), "call / two (1)".into(), s(&["call/one"])),
                ("call/two".into(), "call / two (2)".into(), s(&["call/one"])),
                ("after".into(), "after".into(), s(&["call/two"])),
            ]
        );
    }

    #[test]
    fn a_call_that_cannot_be_read_here_keeps_one_row() {
        let remote = "on: push\njobs:\n  call:\n    uses: acme/flows/.github/workflows/c.yml@v1\n";
        assert_eq!(
            rows_of(remote, &[]),
            vec![("call".into(), "call".into(), vec![])]
        );
        let missing = "on: push\njobs:\n  call:\n    uses: ./.github/workflows/gone.yml\n";
        assert_eq!(rows_of(missing, &[]).len(), 1);
    }

    #[test]
    fn calls_that_fan_out_past_the_row_limit_stay_one_row_each() {
        // Eight calls of itself per level, ten levels deep: 8^9 jobs if expanded.
        let mut fan = String::from("on: [push, workflow_call]\njobs:\n");
        for k in 0..8 {
            fan.push_str(&format!("  c{k}:\n    uses: ./.github/workflows/fan.yml\n"));
        }
        let files = [file(".github/workflows/fan.yml", &fan)];
        let r = rows_of(&fan, &files);
        let keys: Vec<&str> = r.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_static_matrix_over_a_call_is_each_legs_callee_jobs() {
        let top = "on: push\njobs:\n  build:\n    runs-on: x\n    steps: [{run: a}]\n  call:\n    needs: build\n    strategy: {matrix: {os: [lin, win]}}\n    uses: ./.github/workflows/called.yml\n  after:\n    needs: call\n    runs-on: x\n    steps: [{run: c}]\n";
        let files = [file(".github/workflows/called.yml", CALLED)];
        // Keys are the engine's `job_id`s (the same for every leg), names its display
        // names (`<leg> / <callee job>`).
        let mut want = vec![("build".into(), "build".into(), vec![])];
        for leg in ["lin", "win"] {
            want.push((
                "call/one".into(),
                format!("call ({leg}) / one"),
                strs(&["build"]),
            ));
            for n in [1, 2] {
                want.push((
                    "call/two".into(),
                    format!("call ({leg}) / two ({n})"),
                    strs(&["call/one"]),
                ));
            }
        }
        want.push(("after".into(), "after".into(), strs(&["call/two"])));
        assert_eq!(rows_of(top, &files), want);
    }

    #[test]
    fn a_matrix_over_a_call_known_only_at_run_time_keeps_its_rows() {
        let files = [file(".github/workflows/called.yml", CALLED)];
        // From `needs`: one row until the engine expands it.
        let dynamic = "on: push\njobs:\n  m:\n    runs-on: x\n    outputs: {v: '${{ steps.s.outputs.v }}'}\n    steps: [{id: s, run: a}]\n  call:\n    needs: m\n    strategy: {matrix: {n: '${{ fromJSON(needs.m.outputs.v) }}'}}\n    uses: ./.github/workflows/called.yml\n";
        let r = rows_of(dynamic, &files);
        assert_eq!(
            r[1..],
            [("call".into(), "call".into(), strs(&["m"]))],
            "{r:?}"
        );
        // Legs named by an expression: the plan does not know their names.
        let named = "on: push\njobs:\n  call:\n    name: 'on ${{ matrix.n }}'\n    strategy: {matrix: {n: [1, 2]}}\n    uses: ./.github/workflows/called.yml\n";
        let r = rows_of(named, &files);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r.iter().all(|(k, _, _)| k == "call"), "{r:?}");
    }

    #[test]
    fn a_matrix_over_a_call_past_the_row_limit_stays_one_row_per_leg() {
        let mut big = String::from("on: workflow_call\njobs:\n");
        for k in 0..30 {
            big.push_str(&format!(
                "  j{k}:\n    runs-on: x\n    steps: [{{run: a}}]\n"
            ));
        }
        let files = [file(".github/workflows/big.yml", &big)];
        // 40 legs of 30 jobs: 1,200 rows.
        let legs: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let top = format!(
            "on: push\njobs:\n  call:\n    strategy: {{matrix: {{n: [{}]}}}}\n    uses: ./.github/workflows/big.yml\n",
            legs.join(", ")
        );
        let r = rows_of(&top, &files);
        assert_eq!(r.len(), 40);
        assert!(r.iter().all(|(k, _, _)| k == "call"), "{:?}", &r[..3]);
        assert_eq!(r[39].1, "call (39)");
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// A resolver cache holding `acme/flows` at [`SHA`]: `c.yml` calls `./inner.yml` of
    /// its own repository.
    fn cache_with_flows() -> tempfile::TempDir {
        let cache = tempfile::tempdir().unwrap();
        let wf = cache
            .path()
            .join("acme/flows")
            .join(SHA)
            .join(".github/workflows");
        std::fs::create_dir_all(&wf).unwrap();
        std::fs::write(
            wf.join("c.yml"),
            "on: workflow_call\njobs:\n  lint:\n    runs-on: x\n    steps: [{run: a}]\n  deep:\n    needs: lint\n    uses: ./.github/workflows/inner.yml\n",
        )
        .unwrap();
        std::fs::write(
            wf.join("inner.yml"),
            "on: workflow_call\njobs:\n  leaf:\n    runs-on: x\n    steps: [{run: b}]\n",
        )
        .unwrap();
        cache
    }

    #[test]
    fn a_call_pinned_to_a_cached_sha_is_its_callees_jobs() {
        let cache = cache_with_flows();
        let top = format!(
            "on: push\njobs:\n  ext:\n    uses: Acme/Flows/.github/workflows/c.yml@{}\n  after:\n    needs: ext\n    runs-on: x\n    steps: [{{run: c}}]\n",
            SHA.to_uppercase()
        );
        // The commit has an `inner.yml` too: the callee's `./` call must not read it.
        let commit = [file(
            ".github/workflows/inner.yml",
            "on: workflow_call\njobs:\n  wrong:\n    runs-on: x\n    steps: [{run: x}]\n",
        )];
        assert_eq!(
            rows_with(&top, &commit, Some(cache.path())),
            vec![
                ("ext/lint".into(), "ext / lint".into(), vec![]),
                (
                    "ext/deep/leaf".into(),
                    "ext / deep / leaf".into(),
                    strs(&["ext/lint"])
                ),
                ("after".into(), "after".into(), strs(&["ext/deep/leaf"])),
            ]
        );
    }

    #[test]
    fn a_remote_call_the_engine_would_resolve_again_keeps_one_row() {
        let cache = cache_with_flows();
        let one = |uses: &str, root: Option<&Path>| {
            let top = format!("on: push\njobs:\n  ext:\n    uses: {uses}\n");
            let r = rows_with(&top, &[], root);
            assert_eq!(r, vec![("ext".into(), "ext".into(), vec![])], "{uses}");
        };
        let at = |r: &str| format!("acme/flows/.github/workflows/c.yml@{r}");
        // A tag or branch, even one the cache knows: the engine fetches it again.
        one(&at("v1"), Some(cache.path()));
        // A short sha, a sha the cache lacks, no cache.
        one(&at(&SHA[..12]), Some(cache.path()));
        one(&at(&"f".repeat(40)), Some(cache.path()));
        one(&at(SHA), None);
        // A callee file that is a link (it could lead anywhere) or not a file.
        let wf = cache
            .path()
            .join("acme/flows")
            .join(SHA)
            .join(".github/workflows");
        std::os::unix::fs::symlink(wf.join("c.yml"), wf.join("link.yml")).unwrap();
        std::fs::create_dir(wf.join("dir.yml")).unwrap();
        for f in ["link.yml", "dir.yml"] {
            one(
                &format!("acme/flows/.github/workflows/{f}@{SHA}"),
                Some(cache.path()),
            );
        }
    }
}
