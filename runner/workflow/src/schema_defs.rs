//! The schema table: workflow and action.yml definitions (spec §1, §2, §4.2, §8), written
//! after GitHub's `workflow-v1.0.json` structure.
//!
//! A data table, not logic: one entry per schema definition, so it is exempt from the
//! ~800-line module limit (DEVELOPERS.md); the code that walks it is in `schema.rs`.

use super::ctx::*;
use super::{Def, Kind, MapDef};
use std::collections::HashMap;

struct B {
    defs: HashMap<String, Def>,
}

impl B {
    fn def(&mut self, name: &str, ctx: u32, kind: Kind) {
        self.defs.insert(name.to_string(), Def { ctx, kind });
    }
    fn str(&mut self, name: &str, ctx: u32) {
        self.def(
            name,
            ctx,
            Kind::Str {
                constant: None,
                non_empty: false,
            },
        );
    }
    fn non_empty(&mut self, name: &str, ctx: u32) {
        self.def(
            name,
            ctx,
            Kind::Str {
                constant: None,
                non_empty: true,
            },
        );
    }
    fn constant(&mut self, name: &str, c: &'static str) {
        self.def(
            name,
            0,
            Kind::Str {
                constant: Some(c),
                non_empty: false,
            },
        );
    }
    fn one_of(&mut self, name: &str, ctx: u32, list: &[&str]) {
        self.def(
            name,
            ctx,
            Kind::OneOf(list.iter().map(|s| s.to_string()).collect()),
        );
    }
    fn seq(&mut self, name: &str, ctx: u32, item: &str) {
        self.def(name, ctx, Kind::Seq(item.to_string()));
    }
    fn map(&mut self, name: &str, ctx: u32, props: &[(&'static str, &str, bool)]) {
        let m = MapDef {
            props: props
                .iter()
                .map(|(k, d, r)| (*k, d.to_string(), *r))
                .collect(),
            loose: None,
        };
        self.def(name, ctx, Kind::Map(m));
    }
    fn loose(&mut self, name: &str, ctx: u32, key: &str, value: &str) {
        let m = MapDef {
            props: Vec::new(),
            loose: Some((key.to_string(), value.to_string())),
        };
        self.def(name, ctx, Kind::Map(m));
    }
}

/// Events and their activity types (`None`: the event takes no mapping at all).
const TYPED_EVENTS: &[(&str, &[&str])] = &[
    ("branch_protection_rule", &["created", "edited", "deleted"]),
    (
        "check_run",
        &["completed", "created", "rerequested", "requested_action"],
    ),
    ("check_suite", &["completed"]),
    (
        "discussion",
        &[
            "created",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "category_changed",
            "answered",
            "unanswered",
        ],
    ),
    ("discussion_comment", &["created", "edited", "deleted"]),
    ("image_version", &["created", "ready", "deleted"]),
    ("issue_comment", &["created", "edited", "deleted"]),
    (
        "issues",
        &[
            "opened",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "closed",
            "reopened",
            "assigned",
            "unassigned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "milestoned",
            "demilestoned",
            "typed",
            "untyped",
            "field_added",
            "field_removed",
        ],
    ),
    ("label", &["created", "edited", "deleted"]),
    ("merge_group", &["checks_requested"]),
    (
        "milestone",
        &["created", "closed", "opened", "edited", "deleted"],
    ),
    (
        "project",
        &["created", "closed", "reopened", "edited", "deleted"],
    ),
    (
        "project_card",
        &["created", "moved", "converted", "edited", "deleted"],
    ),
    (
        "project_column",
        &["created", "updated", "moved", "deleted"],
    ),
    ("pull_request", PR_TYPES),
    ("pull_request_comment", &["created", "edited", "deleted"]),
    ("pull_request_review", &["submitted", "edited", "dismissed"]),
    (
        "pull_request_review_comment",
        &["created", "edited", "deleted"],
    ),
    ("pull_request_target", PR_TYPES),
    ("registry_package", &["published", "updated"]),
    (
        "release",
        &[
            "published",
            "unpublished",
            "created",
            "edited",
            "deleted",
            "prereleased",
            "released",
        ],
    ),
    ("watch", &["started"]),
    ("workflow_run", &["requested", "completed", "in_progress"]),
];

const PR_TYPES: &[&str] = &[
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "opened",
    "edited",
    "closed",
    "reopened",
    "synchronize",
    "converted_to_draft",
    "locked",
    "unlocked",
    "enqueued",
    "dequeued",
    "milestoned",
    "demilestoned",
    "ready_for_review",
    "review_requested",
    "review_request_removed",
    "auto_merge_enabled",
    "auto_merge_disabled",
    "stacked",
];

const NULL_EVENTS: &[&str] = &[
    "create",
    "delete",
    "deployment",
    "deployment_status",
    "fork",
    "gollum",
    "page_build",
    "public",
    "status",
];

/// Every event name `on:` accepts.
pub(crate) fn event_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = TYPED_EVENTS.iter().map(|e| e.0).collect();
    v.extend_from_slice(NULL_EVENTS);
    v.extend_from_slice(&[
        "push",
        "repository_dispatch",
        "schedule",
        "workflow_call",
        "workflow_dispatch",
    ]);
    v
}

pub(super) fn build(background: bool) -> HashMap<String, Def> {
    let mut b = B {
        defs: HashMap::new(),
    };
    // Built-ins.
    b.def("null", 0, Kind::Null);
    b.def("boolean", 0, Kind::Bool);
    b.def("number", 0, Kind::Number);
    b.str("string", 0);
    b.def("any", 0, Kind::Any);
    b.seq("sequence", 0, "any");
    b.loose("mapping", 0, "string", "any");
    b.non_empty("non-empty-string", 0);
    b.seq("sequence-of-non-empty-string", 0, "non-empty-string");
    b.seq("sequence-of-string", 0, "string");
    b.one_of(
        "string-or-seq",
        0,
        &["non-empty-string", "sequence-of-non-empty-string"],
    );

    // Root.
    let root_props: Vec<(&'static str, &str, bool)> = vec![
        ("on", "on-strict", true),
        ("name", "string", false),
        ("description", "string", false),
        ("run-name", "run-name", false),
        ("defaults", "workflow-defaults", false),
        ("env", "workflow-env", false),
        ("permissions", "permissions", false),
        ("concurrency", "workflow-concurrency", false),
        ("jobs", "jobs", true),
    ];
    b.map("workflow-root-strict", 0, &root_props);
    b.str("run-name", GIV);

    // on:
    let names = event_names();
    b.def("on-string-strict", 0, Kind::Allowed(names.clone()));
    b.seq("on-sequence-strict", 0, "on-string-strict");
    b.one_of(
        "on-strict",
        0,
        &[
            "on-string-strict",
            "on-sequence-strict",
            "on-mapping-strict",
        ],
    );
    let mut on_props: Vec<(&'static str, String, bool)> = Vec::new();
    for (ev, types) in TYPED_EVENTS {
        let t1 = format!("{ev}-activity-type");
        let ts = format!("{ev}-activity-types");
        let act = format!("{ev}-activity");
        let map = format!("{ev}-mapping");
        b.def(&t1, 0, Kind::Allowed(types.to_vec()));
        b.seq(&ts, 0, &t1);
        b.one_of(&act, 0, &[&t1, &ts]);
        let mut props: Vec<(&'static str, &str, bool)> = vec![("types", &act, false)];
        match *ev {
            "push" => {}
            "pull_request" | "pull_request_target" => {
                props.extend([
                    ("branches", "string-or-seq", false),
                    ("branches-ignore", "string-or-seq", false),
                    ("paths", "string-or-seq", false),
                    ("paths-ignore", "string-or-seq", false),
                ]);
            }
            "merge_group" => {
                props.extend([
                    ("branches", "string-or-seq", false),
                    ("branches-ignore", "string-or-seq", false),
                ]);
            }
            "workflow_run" => {
                props.extend([
                    ("workflows", "string-or-seq", false),
                    ("branches", "string-or-seq", false),
                    ("branches-ignore", "string-or-seq", false),
                ]);
            }
            "image_version" => {
                props.extend([
                    ("names", "string-or-seq", false),
                    ("versions", "string-or-seq", false),
                ]);
            }
            _ => {}
        }
        b.map(&map, 0, &props);
        let evdef = format!("event-{ev}");
        b.one_of(&evdef, 0, &["null", &map]);
        on_props.push((ev, evdef, false));
    }
    for ev in NULL_EVENTS {
        on_props.push((ev, "null".to_string(), false));
    }
    b.map(
        "push-mapping",
        0,
        &[
            ("branches", "string-or-seq", false),
            ("branches-ignore", "string-or-seq", false),
            ("tags", "string-or-seq", false),
            ("tags-ignore", "string-or-seq", false),
            ("paths", "string-or-seq", false),
            ("paths-ignore", "string-or-seq", false),
        ],
    );
    b.one_of("event-push", 0, &["null", "push-mapping"]);
    on_props.push(("push", "event-push".into(), false));
    b.map(
        "repository-dispatch-mapping",
        0,
        &[("types", "sequence-of-non-empty-string", false)],
    );
    b.one_of(
        "event-repository_dispatch",
        0,
        &["null", "repository-dispatch-mapping"],
    );
    on_props.push((
        "repository_dispatch",
        "event-repository_dispatch".into(),
        false,
    ));
    b.map(
        "cron-mapping",
        0,
        &[
            ("cron", "non-empty-string", true),
            ("timezone", "non-empty-string", false),
        ],
    );
    b.seq("event-schedule", 0, "cron-mapping");
    on_props.push(("schedule", "event-schedule".into(), false));
    // workflow_call
    b.map(
        "workflow-call-mapping",
        0,
        &[
            ("inputs", "workflow-call-inputs", false),
            ("secrets", "workflow-call-secrets", false),
            ("outputs", "workflow-call-outputs", false),
        ],
    );
    b.one_of("event-workflow_call", 0, &["null", "workflow-call-mapping"]);
    on_props.push(("workflow_call", "event-workflow_call".into(), false));
    b.loose(
        "workflow-call-inputs",
        0,
        "non-empty-string",
        "workflow-call-input-definition",
    );
    b.map(
        "workflow-call-input-definition",
        0,
        &[
            ("description", "string", false),
            ("type", "workflow-call-input-type", true),
            ("required", "boolean", false),
            ("default", "workflow-call-input-default", false),
        ],
    );
    b.def(
        "workflow-call-input-type",
        0,
        Kind::Allowed(vec!["string", "boolean", "number"]),
    );
    b.one_of(
        "workflow-call-input-default",
        GIV,
        &["string", "boolean", "number"],
    );
    b.loose(
        "workflow-call-secrets",
        0,
        "non-empty-string",
        "workflow-call-secret-definition",
    );
    b.one_of(
        "workflow-call-secret-definition",
        0,
        &["null", "workflow-call-secret-mapping"],
    );
    b.map(
        "workflow-call-secret-mapping",
        0,
        &[
            ("description", "string", false),
            ("required", "boolean", false),
        ],
    );
    b.loose(
        "workflow-call-outputs",
        0,
        "non-empty-string",
        "workflow-call-output-definition",
    );
    b.map(
        "workflow-call-output-definition",
        0,
        &[
            ("description", "string", false),
            ("value", "workflow-output-context", true),
        ],
    );
    b.str("workflow-output-context", GIV | JOBS);
    // workflow_dispatch
    // GitHub ignores unknown keys under `workflow_dispatch` and accepts null inputs.
    b.def(
        "workflow-dispatch-mapping",
        0,
        Kind::Map(MapDef {
            props: vec![("inputs", "workflow-dispatch-inputs-or-null".into(), false)],
            loose: Some(("string".into(), "any".into())),
        }),
    );
    b.one_of(
        "workflow-dispatch-inputs-or-null",
        0,
        &["null", "workflow-dispatch-inputs"],
    );
    b.one_of(
        "workflow-dispatch-input-or-null",
        0,
        &["null", "workflow-dispatch-input"],
    );
    b.one_of(
        "event-workflow_dispatch",
        0,
        &["null", "workflow-dispatch-mapping"],
    );
    on_props.push(("workflow_dispatch", "event-workflow_dispatch".into(), false));
    b.loose(
        "workflow-dispatch-inputs",
        0,
        "non-empty-string",
        "workflow-dispatch-input-or-null",
    );
    b.map(
        "workflow-dispatch-input",
        0,
        &[
            ("description", "string", false),
            ("type", "workflow-dispatch-input-type", false),
            ("required", "boolean", false),
            ("default", "workflow-dispatch-input-default", false),
            ("options", "sequence-of-string", false),
        ],
    );
    b.def(
        "workflow-dispatch-input-type",
        0,
        Kind::Allowed(vec!["string", "boolean", "number", "environment", "choice"]),
    );
    b.one_of(
        "workflow-dispatch-input-default",
        0,
        &["string", "boolean", "number"],
    );
    let on_props_ref: Vec<(&'static str, &str, bool)> = on_props
        .iter()
        .map(|(k, d, r)| (*k, d.as_str(), *r))
        .collect();
    b.map("on-mapping-strict", 0, &on_props_ref);

    // permissions
    let any = "permission-level-any";
    b.def(any, 0, Kind::Allowed(vec!["read", "write", "none"]));
    b.def(
        "permission-level-read-or-none",
        0,
        Kind::Allowed(vec!["read", "none"]),
    );
    b.def(
        "permission-level-write-or-none",
        0,
        Kind::Allowed(vec!["write", "none"]),
    );
    b.map(
        "permissions-mapping",
        0,
        &[
            ("actions", any, false),
            ("artifact-metadata", any, false),
            ("attestations", any, false),
            ("checks", any, false),
            ("contents", any, false),
            ("copilot-requests", "permission-level-write-or-none", false),
            ("deployments", any, false),
            ("discussions", any, false),
            ("id-token", "permission-level-write-or-none", false),
            ("issues", any, false),
            ("models", "permission-level-read-or-none", false),
            ("packages", any, false),
            ("pages", any, false),
            ("pull-requests", any, false),
            ("repository-projects", any, false),
            ("security-events", any, false),
            ("statuses", any, false),
            (
                "vulnerability-alerts",
                "permission-level-read-or-none",
                false,
            ),
        ],
    );
    b.def(
        "permissions-shorthand",
        0,
        Kind::Allowed(vec!["read-all", "write-all"]),
    );
    b.one_of(
        "permissions",
        0,
        &["permissions-mapping", "permissions-shorthand"],
    );

    // defaults, env, concurrency
    b.map(
        "workflow-defaults",
        0,
        &[("run", "workflow-defaults-run", false)],
    );
    b.map(
        "workflow-defaults-run",
        0,
        &[
            ("shell", "non-empty-string", false),
            ("working-directory", "non-empty-string", false),
        ],
    );
    b.loose("workflow-env", GIV | SECRETS, "non-empty-string", "string");
    b.one_of(
        "workflow-concurrency",
        GIV,
        &["string", "concurrency-mapping"],
    );
    b.one_of(
        "job-concurrency",
        GIVNSM,
        &["non-empty-string", "concurrency-mapping"],
    );
    b.map(
        "concurrency-mapping",
        0,
        &[
            ("group", "non-empty-string", true),
            ("cancel-in-progress", "boolean", false),
            ("queue", "concurrency-queue", false),
        ],
    );
    b.def("concurrency-queue", 0, Kind::Allowed(vec!["single", "max"]));

    // jobs
    b.loose("jobs", 0, "non-empty-string", "job");
    b.one_of("job", 0, &["job-factory", "workflow-job"]);
    b.map(
        "job-factory",
        0,
        &[
            ("needs", "needs", false),
            ("if", "job-if", false),
            ("strategy", "strategy", false),
            ("name", "string-strategy-context", false),
            ("runs-on", "runs-on", true),
            ("timeout-minutes", "number-strategy-context", false),
            ("cancel-timeout-minutes", "number-strategy-context", false),
            ("continue-on-error", "boolean-strategy-context", false),
            ("container", "container", false),
            ("services", "services", false),
            ("env", "job-env", false),
            ("environment", "job-environment", false),
            ("permissions", "permissions", false),
            ("concurrency", "job-concurrency", false),
            ("outputs", "job-outputs", false),
            ("defaults", "job-defaults", false),
            ("steps", "steps", false),
            ("snapshot", "snapshot", false),
        ],
    );
    b.map(
        "workflow-job",
        0,
        &[
            ("name", "string-strategy-context", false),
            ("uses", "non-empty-string", true),
            ("with", "workflow-job-with", false),
            ("secrets", "workflow-job-secrets", false),
            ("needs", "needs", false),
            ("if", "job-if", false),
            ("permissions", "permissions", false),
            ("concurrency", "job-concurrency", false),
            ("strategy", "strategy", false),
        ],
    );
    b.loose(
        "workflow-job-with",
        0,
        "non-empty-string",
        "scalar-needs-context",
    );
    b.one_of(
        "scalar-needs-context",
        GIVNSM,
        &["string", "boolean", "number"],
    );
    b.one_of(
        "scalar-needs-context-with-secrets",
        GIVNSM | SECRETS,
        &["string", "boolean", "number"],
    );
    b.loose(
        "workflow-job-secrets-mapping",
        0,
        "non-empty-string",
        "scalar-needs-context-with-secrets",
    );
    b.constant("workflow-job-secrets-inherit", "inherit");
    b.one_of(
        "workflow-job-secrets",
        0,
        &[
            "workflow-job-secrets-mapping",
            "workflow-job-secrets-inherit",
        ],
    );
    b.one_of(
        "needs",
        0,
        &["sequence-of-non-empty-string", "non-empty-string"],
    );
    b.str("job-if", JOB_IF);
    b.map(
        "strategy",
        GIVN,
        &[
            ("fail-fast", "boolean", false),
            ("max-parallel", "number", false),
            ("matrix", "matrix", false),
        ],
    );
    b.def(
        "matrix",
        0,
        Kind::Map(MapDef {
            props: vec![
                ("include", "matrix-filter".into(), false),
                ("exclude", "matrix-filter".into(), false),
            ],
            loose: Some(("non-empty-string".into(), "sequence".into())),
        }),
    );
    b.seq("matrix-filter", 0, "matrix-filter-item");
    b.loose("matrix-filter-item", 0, "non-empty-string", "any");
    b.one_of("snapshot", 0, &["non-empty-string", "snapshot-mapping"]);
    b.map(
        "snapshot-mapping",
        0,
        &[
            ("image-name", "non-empty-string", true),
            ("if", "snapshot-if", false),
            ("version", "non-empty-string", false),
        ],
    );
    b.str("snapshot-if", GIVNSM);
    b.one_of(
        "runs-on",
        GIVNSM,
        &[
            "non-empty-string",
            "sequence-of-non-empty-string",
            "runs-on-mapping",
        ],
    );
    b.map(
        "runs-on-mapping",
        0,
        &[
            ("group", "non-empty-string", false),
            ("labels", "string-or-seq", false),
        ],
    );
    b.loose("job-env", GIVNSM | SECRETS, "non-empty-string", "string");
    b.one_of(
        "job-environment",
        GIVNSM,
        &["string", "job-environment-mapping"],
    );
    b.map(
        "job-environment-mapping",
        0,
        &[
            ("name", "job-environment-name", true),
            ("url", "string-runner-context-no-secrets", false),
            ("deployment", "boolean", false),
        ],
    );
    b.str("job-environment-name", GIVNSM);
    b.map("job-defaults", 0, &[("run", "job-defaults-run", false)]);
    b.map(
        "job-defaults-run",
        GIVNSM | ENV,
        &[
            ("shell", "non-empty-string", false),
            ("working-directory", "non-empty-string", false),
        ],
    );
    b.loose(
        "job-outputs",
        0,
        "non-empty-string",
        "string-runner-context",
    );
    b.str("string-strategy-context", GIVNSM);
    b.def("number-strategy-context", GIVNSM, Kind::Number);
    b.def("boolean-strategy-context", GIVNSM, Kind::Bool);
    let runner_ctx = GIVNSM | SECRETS | STEPS | JOB | RUNNER | ENV;
    b.str("string-runner-context", runner_ctx);
    b.str("string-runner-context-no-secrets", runner_ctx & !SECRETS);

    // steps
    b.seq("steps", 0, "steps-item");
    if background {
        b.one_of(
            "steps-item",
            0,
            &[
                "run-step",
                "regular-step",
                "wait-step",
                "wait-all-step",
                "cancel-step",
                "parallel-step",
            ],
        );
    } else {
        b.one_of("steps-item", 0, &["run-step", "regular-step"]);
    }
    let mut run_step: Vec<(&'static str, &str, bool)> = vec![
        ("name", "step-name", false),
        ("id", "non-empty-string", false),
        ("if", "step-if", false),
        ("timeout-minutes", "step-timeout-minutes", false),
        ("run", "string-steps-context", true),
        ("continue-on-error", "step-continue-on-error", false),
        ("env", "step-env", false),
        ("working-directory", "string-steps-context", false),
        ("shell", "non-empty-string", false),
    ];
    let mut regular_step: Vec<(&'static str, &str, bool)> = vec![
        ("name", "step-name", false),
        ("id", "non-empty-string", false),
        ("if", "step-if", false),
        ("continue-on-error", "step-continue-on-error", false),
        ("timeout-minutes", "step-timeout-minutes", false),
        ("uses", "non-empty-string", true),
        ("with", "step-with", false),
        ("env", "step-env", false),
    ];
    if background {
        run_step.push(("background", "boolean", false));
        regular_step.push(("background", "boolean", false));
        let common: [(&'static str, &str, bool); 3] = [
            ("name", "step-name", false),
            ("id", "non-empty-string", false),
            ("continue-on-error", "step-continue-on-error", false),
        ];
        let mut w = common.to_vec();
        w.push(("wait", "string-or-seq", true));
        b.map("wait-step", 0, &w);
        let mut wa = common.to_vec();
        wa.push(("wait-all", "wait-all-value", true));
        b.map("wait-all-step", 0, &wa);
        b.one_of("wait-all-value", 0, &["null", "boolean"]);
        let mut c = common.to_vec();
        c.push(("cancel", "non-empty-string", true));
        b.map("cancel-step", 0, &c);
        // `parallel:` runs its steps at once (each as a background step) and waits for
        // them all; the members are ordinary steps.
        b.map(
            "parallel-step",
            0,
            &[
                ("name", "step-name", false),
                ("id", "non-empty-string", false),
                ("parallel", "parallel-steps", true),
            ],
        );
        b.seq("parallel-steps", 0, "parallel-steps-item");
        b.one_of("parallel-steps-item", 0, &["run-step", "regular-step"]);
    }
    b.map("run-step", 0, &run_step);
    b.map("regular-step", 0, &regular_step);
    b.def("step-continue-on-error", STEP, Kind::Bool);
    b.str("step-if", STEP_IF);
    b.loose("step-env", STEP, "non-empty-string", "string");
    b.str("step-name", STEP);
    b.def("step-timeout-minutes", STEP, Kind::Number);
    b.loose("step-with", STEP, "non-empty-string", "string");
    b.str("string-steps-context", STEP);

    // containers
    b.one_of("container", GIVNSM, &["string", "container-mapping"]);
    let container_props: Vec<(&'static str, &str, bool)> = vec![
        ("image", "non-empty-string", false),
        ("options", "string", false),
        ("env", "container-env", false),
        ("ports", "sequence-of-non-empty-string", false),
        ("volumes", "sequence-of-non-empty-string", false),
        ("credentials", "container-registry-credentials", false),
    ];
    b.map("container-mapping", 0, &container_props);
    let mut service_props = container_props.clone();
    service_props.push(("entrypoint", "string", false));
    service_props.push(("command", "string", false));
    b.map("service-container-mapping", 0, &service_props);
    b.loose("services", GIVNSM, "non-empty-string", "services-container");
    b.one_of(
        "services-container",
        GIVNSM,
        &["non-empty-string", "service-container-mapping"],
    );
    b.map(
        "container-registry-credentials",
        GIV | SECRETS | ENV,
        &[
            ("username", "non-empty-string", false),
            ("password", "non-empty-string", false),
        ],
    );
    b.loose(
        "container-env",
        0,
        "non-empty-string",
        "string-runner-context",
    );

    action_defs(&mut b);
    b.defs
}

/// action.yml (spec §8). `runs` is checked by `action.rs` per `using`.
fn action_defs(b: &mut B) {
    b.map(
        "action-root",
        0,
        &[
            ("name", "string", false),
            ("author", "string", false),
            ("description", "string", false),
            ("inputs", "action-inputs", false),
            ("outputs", "action-outputs", false),
            ("runs", "action-runs", true),
            ("branding", "action-branding", false),
        ],
    );
    b.loose("action-inputs", 0, "non-empty-string", "action-input");
    b.map(
        "action-input",
        0,
        &[
            ("description", "string", false),
            ("required", "boolean", false),
            ("default", "action-input-default", false),
            ("deprecationMessage", "string", false),
        ],
    );
    b.str(
        "action-input-default",
        GITHUB | STRATEGY | MATRIX | JOB | RUNNER | F_HASHFILES,
    );
    b.loose("action-outputs", 0, "non-empty-string", "action-output");
    b.map(
        "action-output",
        0,
        &[
            ("description", "string", false),
            ("value", "action-output-value", false),
        ],
    );
    b.str(
        "action-output-value",
        GITHUB | STRATEGY | MATRIX | STEPS | INPUTS | JOB | RUNNER | ENV,
    );
    b.map(
        "action-branding",
        0,
        &[("icon", "string", false), ("color", "string", false)],
    );
    b.def(
        "action-runs",
        u32::MAX,
        Kind::Map(MapDef {
            props: Vec::new(),
            loose: Some(("string".into(), "any".into())),
        }),
    );
}
