//! The execution plan: a petgraph DAG of job runs (matrix legs as nodes when they can be
//! expanded up front), with cheap "what is ready now" queries for the engine.

use std::collections::HashSet;
use std::time::Duration;

use gantry_expr::{EvalContext, MapContext};
use gantry_workflow::Workflow;
use indexmap::{IndexMap, IndexSet};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value as J;

use crate::PlanError;
use crate::dag::JobGraph;
use crate::matrix::MatrixFilter;
use crate::strategy;

/// Options for [`plan`].
#[derive(Default)]
pub struct PlanOptions<'a> {
    /// `-j JOB` (repeatable): run these jobs and everything they transitively need.
    /// Empty means every job.
    pub only_jobs: Vec<String>,
    /// `--matrix K:V` filters (act's semantics, see [`crate::matrix::filter_legs`]).
    pub matrix_filters: Vec<MatrixFilter>,
    /// Contexts for strategy expressions known before the run (github, inputs, vars).
    /// `None`: any strategy with an expression is left as a deferred node.
    pub ctx: Option<&'a dyn EvalContext>,
}

/// What one node of the plan runs.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A job without a matrix.
    Job,
    /// One matrix leg: `strategy.job-index`, `strategy.job-total` and the `matrix` context.
    Leg {
        index: usize,
        total: usize,
        matrix: IndexMap<String, J>,
    },
    /// A job whose strategy can only be evaluated when it starts (it reads `needs`, or no
    /// contexts were given): the engine expands it with [`strategy::expand_job`] and the
    /// node finishes when all its legs finished.
    Deferred,
    /// `--matrix` filters removed every leg: nothing to run (report the job as skipped).
    NoLegs,
}

/// One node of the plan graph.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanNode {
    pub job_id: String,
    /// Display name: `build (ubuntu, 18)`; for deferred nodes the job's name.
    pub name: String,
    pub kind: NodeKind,
}

/// Per-job facts of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    pub id: String,
    /// Direct `needs`, as written.
    pub needs: Vec<String>,
    /// Every job transitively needed (the ancestors the job-level `success()` checks, §3.9).
    pub ancestors: Vec<String>,
    /// The nodes of this job (one, or one per leg), in leg order.
    pub nodes: Vec<NodeIndex>,
    /// `strategy.fail-fast` (default true): a failing leg cancels the other legs of `nodes`.
    pub fail_fast: bool,
    /// `strategy.max-parallel`: at most this many of `nodes` at once; `None` unbounded.
    pub max_parallel: Option<usize>,
    /// Topological layer ("stage"): 0 for jobs without needs.
    pub layer: usize,
}

/// The plan of one workflow run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Edges go from a need to its dependent; every leg of a dependent depends on every
    /// leg of each of its needs.
    pub graph: DiGraph<PlanNode, ()>,
    /// Selected jobs in file order.
    pub jobs: IndexMap<String, JobPlan>,
    /// A topological order of all nodes.
    pub order: Vec<NodeIndex>,
    /// Job ids by topological layer.
    pub layers: Vec<Vec<String>>,
}

/// Builds the plan of a workflow: checks `needs` (unknown, cycles), applies `-j`, expands
/// matrices that do not depend on `needs`, and wires the DAG.
pub fn plan(wf: &Workflow, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let full = JobGraph::new(wf)?;
    let selected: IndexSet<String> = if opts.only_jobs.is_empty() {
        full.needs.keys().cloned().collect()
    } else {
        full.closure(&opts.only_jobs)?
    };
    let sub = JobGraph::from_needs(
        full.needs
            .iter()
            .filter(|(k, _)| selected.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )?;
    let layers = sub.layers();
    let empty = MapContext::new();
    let mut graph: DiGraph<PlanNode, ()> = DiGraph::new();
    let mut jobs: IndexMap<String, JobPlan> = IndexMap::new();
    for id in &selected {
        let job = &wf.jobs[id];
        let deferred =
            strategy::uses_needs(job) || (opts.ctx.is_none() && strategy::has_expressions(job));
        let mut fail_fast = true;
        let mut max_parallel = None;
        let mut nodes = Vec::new();
        if deferred {
            nodes.push(graph.add_node(PlanNode {
                job_id: id.clone(),
                name: job.display_name().to_string(),
                kind: NodeKind::Deferred,
            }));
        } else {
            let ctx: &dyn EvalContext = opts.ctx.unwrap_or(&empty);
            let exp = strategy::expand_job(job, ctx, &opts.matrix_filters).map_err(|message| {
                PlanError::Strategy {
                    job: id.clone(),
                    message: message.to_string(),
                }
            })?;
            fail_fast = exp.fail_fast;
            max_parallel = exp.max_parallel;
            match exp.legs {
                None => nodes.push(graph.add_node(PlanNode {
                    job_id: id.clone(),
                    name: job.display_name().to_string(),
                    kind: NodeKind::Job,
                })),
                Some(legs) if legs.is_empty() => nodes.push(graph.add_node(PlanNode {
                    job_id: id.clone(),
                    name: job.display_name().to_string(),
                    kind: NodeKind::NoLegs,
                })),
                Some(legs) => {
                    let total = legs.len();
                    for (index, leg) in legs.into_iter().enumerate() {
                        let name = strategy::leg_display_name(job, &leg);
                        nodes.push(graph.add_node(PlanNode {
                            job_id: id.clone(),
                            name,
                            kind: NodeKind::Leg {
                                index,
                                total,
                                matrix: leg.values,
                            },
                        }));
                    }
                }
            }
        }
        let layer = layers.iter().position(|l| l.contains(id)).unwrap_or(0);
        jobs.insert(
            id.clone(),
            JobPlan {
                id: id.clone(),
                needs: sub.needs[id].clone(),
                ancestors: sub.ancestors(id),
                nodes,
                fail_fast,
                max_parallel,
                layer,
            },
        );
    }
    for jp in jobs.values() {
        for need in &jp.needs {
            for &from in &jobs[need].nodes {
                for &to in &jp.nodes {
                    graph.add_edge(from, to, ());
                }
            }
        }
    }
    let order = petgraph::algo::toposort(&graph, None)
        .map_err(|c| PlanError::Cycle(vec![graph[c.node_id()].job_id.clone()]))?;
    Ok(Plan {
        graph,
        jobs,
        order,
        layers,
    })
}

impl Plan {
    /// The node's data.
    pub fn node(&self, n: NodeIndex) -> &PlanNode {
        &self.graph[n]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// True when no job was selected.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Nodes with no predecessors: they start at once.
    pub fn roots(&self) -> Vec<NodeIndex> {
        self.order
            .iter()
            .copied()
            .filter(|&n| {
                self.graph
                    .neighbors_directed(n, Direction::Incoming)
                    .next()
                    .is_none()
            })
            .collect()
    }

    /// What a node waits for: its predecessors (all legs of each need).
    pub fn waits_for(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, Direction::Incoming)
            .collect();
        v.sort();
        v
    }

    /// The nodes that directly depend on `n`.
    pub fn dependents(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, Direction::Outgoing)
            .collect();
        v.sort();
        v
    }

    /// Nodes not in `finished` whose predecessors are all in `finished`, in topological
    /// order. O(nodes + edges); use [`Plan::tracker`] for incremental updates.
    pub fn ready_after(&self, finished: &HashSet<NodeIndex>) -> Vec<NodeIndex> {
        self.order
            .iter()
            .copied()
            .filter(|n| !finished.contains(n))
            .filter(|&n| {
                self.graph
                    .neighbors_directed(n, Direction::Incoming)
                    .all(|p| finished.contains(&p))
            })
            .collect()
    }

    /// An in-degree counter for incremental scheduling.
    pub fn tracker(&self) -> ReadyTracker {
        let remaining = self
            .graph
            .node_indices()
            .map(|n| {
                self.graph
                    .neighbors_directed(n, Direction::Incoming)
                    .count()
            })
            .collect();
        ReadyTracker {
            remaining,
            finished: vec![false; self.graph.node_count()],
        }
    }

    /// The job a node belongs to.
    pub fn job_of(&self, n: NodeIndex) -> &JobPlan {
        &self.jobs[&self.graph[n].job_id]
    }

    /// The longest path through the DAG by the given node durations (nodes without a
    /// duration count as zero): total and nodes in order. For the run summary.
    pub fn critical_path(
        &self,
        duration: impl Fn(NodeIndex) -> Option<Duration>,
    ) -> (Duration, Vec<NodeIndex>) {
        let n = self.graph.node_count();
        let mut best: Vec<Duration> = vec![Duration::ZERO; n];
        let mut prev: Vec<Option<NodeIndex>> = vec![None; n];
        for &v in &self.order {
            let start = self
                .graph
                .neighbors_directed(v, Direction::Incoming)
                .max_by_key(|p| (best[p.index()], std::cmp::Reverse(p.index())));
            let base = start.map_or(Duration::ZERO, |p| best[p.index()]);
            prev[v.index()] = start;
            best[v.index()] = base + duration(v).unwrap_or(Duration::ZERO);
        }
        let Some(end) = self
            .order
            .iter()
            .copied()
            .max_by_key(|v| (best[v.index()], std::cmp::Reverse(v.index())))
        else {
            return (Duration::ZERO, vec![]);
        };
        let mut path = vec![end];
        while let Some(p) = prev[path[path.len() - 1].index()] {
            path.push(p);
        }
        path.reverse();
        (best[end.index()], path)
    }
}

/// Incremental readiness: start with [`ReadyTracker::initial`], then call
/// [`ReadyTracker::finish`] as each node ends; it returns the nodes that just became ready.
#[derive(Debug, Clone)]
pub struct ReadyTracker {
    remaining: Vec<usize>,
    finished: Vec<bool>,
}

impl ReadyTracker {
    /// The nodes ready before anything ran (the roots), in topological order.
    pub fn initial(&self, plan: &Plan) -> Vec<NodeIndex> {
        plan.order
            .iter()
            .copied()
            .filter(|n| self.remaining[n.index()] == 0 && !self.finished[n.index()])
            .collect()
    }

    /// Marks `n` finished (any result); returns dependents whose predecessors are now all
    /// finished. Finishing a node twice is a no-op.
    pub fn finish(&mut self, plan: &Plan, n: NodeIndex) -> Vec<NodeIndex> {
        if std::mem::replace(&mut self.finished[n.index()], true) {
            return vec![];
        }
        let mut ready = Vec::new();
        for d in plan.dependents(n) {
            let r = &mut self.remaining[d.index()];
            *r -= 1;
            if *r == 0 {
                ready.push(d);
            }
        }
        ready
    }

    /// True when every node finished.
    pub fn all_finished(&self) -> bool {
        self.finished.iter().all(|f| *f)
    }
}
