//! The job graph as SVG: one box per job key (matrix legs grouped in one box, one row per
//! leg), columns by depth in the `needs` graph, an edge per need. Colour and icon follow
//! the status; each job is a link to its log.

use std::collections::HashMap;

use maud::{Markup, html};

use super::view;
use crate::store_runs::JobRecord;

const COL_W: i64 = 230;
const BOX_W: i64 = 190;
const ROW_H: i64 = 28;
const HEAD_H: i64 = 30;
const GAP: i64 = 24;

struct Group<'a> {
    key: &'a str,
    jobs: Vec<&'a JobRecord>,
    needs: &'a [String],
    col: i64,
    y: i64,
}

impl Group<'_> {
    fn height(&self) -> i64 {
        if self.jobs.len() == 1 {
            ROW_H + 8
        } else {
            HEAD_H + ROW_H * self.jobs.len() as i64 + 6
        }
    }
}

fn glyph(status: &str) -> &'static str {
    match status {
        "success" => "✓",
        "failure" | "timed_out" => "✗",
        "cancelled" => "⊘",
        "skipped" => "⤼",
        "in_progress" => "◐",
        "waiting" => "‖",
        _ => "○",
    }
}

/// The status of a matrix group: the worst of its legs.
fn group_status<'a>(jobs: &[&'a JobRecord]) -> &'a str {
    let order = [
        "failure",
        "cancelled",
        "in_progress",
        "waiting",
        "queued",
        "skipped",
        "success",
    ];
    let shown: Vec<&str> = jobs
        .iter()
        .map(|j| view::shown_status(&j.status, j.conclusion.as_deref()))
        .collect();
    order
        .iter()
        .find(|o| shown.contains(o))
        .copied()
        .or_else(|| shown.first().copied())
        .unwrap_or("queued")
}

pub fn svg(jobs: &[JobRecord], job_href: &dyn Fn(i64) -> String) -> Markup {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for j in jobs {
        match index.get(j.key.as_str()) {
            Some(&i) => groups[i].jobs.push(j),
            None => {
                index.insert(&j.key, groups.len());
                groups.push(Group {
                    key: &j.key,
                    jobs: vec![j],
                    needs: &j.needs,
                    col: 0,
                    y: 0,
                });
            }
        }
    }
    // Depth: one more than the deepest need (needs form a DAG; the bound stops a cycle).
    for _ in 0..groups.len() {
        for i in 0..groups.len() {
            let col = groups[i]
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()))
                .map(|&k| groups[k].col + 1)
                .max()
                .unwrap_or(0);
            groups[i].col = col.min(groups.len() as i64);
        }
    }
    let mut heights: HashMap<i64, i64> = HashMap::new();
    for g in groups.iter_mut() {
        let y = heights.entry(g.col).or_insert(10);
        g.y = *y;
        *y += g.height() + GAP;
    }
    let width = groups.iter().map(|g| g.col + 1).max().unwrap_or(1) * COL_W;
    let height = heights.values().copied().max().unwrap_or(40);
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={"0 0 " (width) " " (height)} role="img" aria-label="Job graph" {
            @for g in &groups {
                @for n in g.needs {
                    @if let Some(&k) = index.get(n.as_str()) {
                        @let from = &groups[k];
                        @let (x1, y1) = (from.col * COL_W + 10 + BOX_W, from.y + 18);
                        @let (x2, y2) = (g.col * COL_W + 10, g.y + 18);
                        path.edge d={"M" (x1) " " (y1) " C" (x1 + 20) " " (y1) " " (x2 - 20) " " (y2) " " (x2) " " (y2)} {}
                    }
                }
            }
            @for g in &groups {
                @let x = g.col * COL_W + 10;
                @let st = group_status(&g.jobs);
                g class={"job st-" (st)} data-key=(g.key) {
                    rect x=(x) y=(g.y) width=(BOX_W) height=(g.height()) rx="6" {}
                    @if g.jobs.len() == 1 {
                        @let j = g.jobs[0];
                        (leg(j, x, g.y + 4, job_href))
                    } @else {
                        text.head x=(x + 10) y=(g.y + 20) { (glyph(st)) " " (g.key) " (" (g.jobs.len()) ")" }
                        @for (i, j) in g.jobs.iter().enumerate() {
                            (leg(j, x, g.y + HEAD_H + ROW_H * i as i64, job_href))
                        }
                    }
                }
            }
        }
    }
}

fn leg(j: &JobRecord, x: i64, y: i64, job_href: &dyn Fn(i64) -> String) -> Markup {
    let st = view::shown_status(&j.status, j.conclusion.as_deref());
    let name: String = j.name.chars().take(24).collect();
    html! {
        a href=(job_href(j.id)) class={"leg st-" (st)} data-job=(j.id) data-status=(st) {
            title { (j.name) ": " (st) }
            text x=(x + 10) y=(y + 19) { tspan.icon { (glyph(st)) } " " (name) }
        }
    }
}
