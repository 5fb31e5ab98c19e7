//! The typed model of a workflow file and of an action's `action.yml`.
//!
//! Plain data, produced by the loader (`load.rs`, the only module that sees YAML) and
//! consumed by validation, planning and the engine. Values that may contain `${{ }}` are
//! kept as raw text ([`Spanned<String>`]) and evaluated where GitHub evaluates them, with
//! `gantry_expr::Template`. Everything a later check may point at carries a [`Span`].

use indexmap::IndexMap;

/// A position in a source file: 1-based line and column, 0-based byte offset and length.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
    pub line: u32,
    pub col: u32,
}

impl Span {
    /// The start of a file (1:1), for problems with the file as a whole.
    pub const FILE_START: Span = Span {
        offset: 0,
        len: 0,
        line: 1,
        col: 1,
    };
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A YAML value after the core-schema scalar rules, with positions. Used where the model
/// keeps free-form data (matrix, `with` of reusable workflows, event payload defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Node {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// Converts to JSON, dropping positions (strings stay unevaluated).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Node::Null => J::Null,
            Node::Bool(b) => J::Bool(*b),
            Node::Number(n) => serde_json::Number::from_f64(*n)
                .map(J::Number)
                .unwrap_or(J::Null),
            Node::String(s) => J::String(s.clone()),
            Node::Seq(items) => J::Array(items.iter().map(|i| i.value.to_json()).collect()),
            Node::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A literal value of type `T`, or a `${{ }}` expression to evaluate to one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OrExpr<T> {
    Value(T),
    Expr(String),
}

/// A string map such as `env:` or `with:`; values are raw text (scalars converted to
/// strings as GitHub does), or one expression that must evaluate to a mapping.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum StringMap {
    #[default]
    Empty,
    Map(IndexMap<String, Spanned<String>>),
    Expr(Spanned<String>),
}

impl StringMap {
    pub fn is_empty(&self) -> bool {
        match self {
            StringMap::Empty => true,
            StringMap::Map(m) => m.is_empty(),
            StringMap::Expr(_) => false,
        }
    }
}

/// A whole workflow file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Workflow {
    /// The path as given to the loader (used in diagnostics and `github.workflow_ref`).
    pub path: String,
    pub name: Option<Spanned<String>>,
    pub run_name: Option<Spanned<String>>,
    pub on: Triggers,
    pub permissions: Option<Spanned<Permissions>>,
    pub env: StringMap,
    pub defaults: Defaults,
    pub concurrency: Option<Spanned<Concurrency>>,
    /// Jobs in file order, keyed by job id.
    pub jobs: IndexMap<String, Job>,
}

impl Workflow {
    /// The display name: `name:` or, as GitHub does, the file path.
    pub fn display_name(&self) -> &str {
        self.name
            .as_ref()
            .map(|n| n.value.as_str())
            .unwrap_or(self.path.as_str())
    }
}

/// `on:` in any of its three forms, normalised to a map of event name → filters.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Triggers {
    pub events: IndexMap<String, EventTrigger>,
    pub span: Span,
}

/// The filters and settings of one event under `on:`. Absent lists are `None` (no filter);
/// a present empty list is `Some(vec![])`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EventTrigger {
    pub span: Span,
    pub types: Option<Vec<Spanned<String>>>,
    pub branches: Option<Vec<Spanned<String>>>,
    pub branches_ignore: Option<Vec<Spanned<String>>>,
    pub tags: Option<Vec<Spanned<String>>>,
    pub tags_ignore: Option<Vec<Spanned<String>>>,
    pub paths: Option<Vec<Spanned<String>>>,
    pub paths_ignore: Option<Vec<Spanned<String>>>,
    /// `workflow_run.workflows`.
    pub workflows: Option<Vec<Spanned<String>>>,
    /// `schedule: [{cron}]`.
    pub cron: Vec<Spanned<String>>,
    /// `workflow_dispatch.inputs` / `workflow_call.inputs`.
    pub inputs: IndexMap<String, InputDef>,
    /// `workflow_call.outputs`.
    pub outputs: IndexMap<String, CallOutputDef>,
    /// `workflow_call.secrets`.
    pub secrets: IndexMap<String, CallSecretDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum InputType {
    #[default]
    String,
    Boolean,
    Number,
    Choice,
    Environment,
}

/// An input of `workflow_dispatch` or `workflow_call`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputDef {
    pub span: Span,
    pub description: Option<String>,
    pub required: bool,
    pub input_type: InputType,
    /// The default as written (string, bool or number; may be an expression for workflow_call).
    pub default: Option<Spanned<Node>>,
    /// `choice` options.
    pub options: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CallOutputDef {
    pub description: Option<String>,
    pub value: Spanned<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CallSecretDef {
    pub description: Option<String>,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Permissions {
    ReadAll,
    WriteAll,
    /// scope → `read` | `write` | `none`; empty map is `{}` (no permissions).
    Map(IndexMap<String, String>),
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Defaults {
    pub shell: Option<Spanned<String>>,
    pub working_directory: Option<Spanned<String>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Concurrency {
    pub group: Spanned<String>,
    pub cancel_in_progress: Option<Spanned<OrExpr<bool>>>,
}

/// One job: a normal job, or a reusable-workflow caller when `uses` is set.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Job {
    pub id: Spanned<String>,
    pub span: Span,
    pub name: Option<Spanned<String>>,
    pub needs: Vec<Spanned<String>>,
    /// The raw `if:` (not yet wrapped; see `gantry_expr::if_condition`).
    pub if_cond: Option<Spanned<String>>,
    pub runs_on: Option<RunsOn>,
    pub environment: Option<Environment>,
    pub concurrency: Option<Spanned<Concurrency>>,
    pub outputs: IndexMap<String, Spanned<String>>,
    pub env: StringMap,
    pub defaults: Defaults,
    pub steps: Vec<Step>,
    pub timeout_minutes: Option<Spanned<OrExpr<f64>>>,
    /// How long the clean-up after a cancellation may take (GitHub's default: 5).
    pub cancel_timeout_minutes: Option<Spanned<OrExpr<f64>>>,
    pub strategy: Option<Strategy>,
    pub continue_on_error: Option<Spanned<OrExpr<bool>>>,
    pub container: Option<Container>,
    pub services: IndexMap<String, Container>,
    pub permissions: Option<Spanned<Permissions>>,
    /// Reusable workflow reference (`owner/repo/.github/workflows/f.yml@ref` or `./...`).
    pub uses: Option<Spanned<String>>,
    /// Inputs for a reusable workflow (free-form values, may be expressions).
    pub with: IndexMap<String, Spanned<Node>>,
    pub secrets: Option<CallSecrets>,
}

impl Job {
    /// The display name: `name:` (may contain expressions) or the job id.
    pub fn display_name(&self) -> &str {
        self.name
            .as_ref()
            .map(|n| n.value.as_str())
            .unwrap_or(self.id.value.as_str())
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum CallSecrets {
    Inherit,
    Map(IndexMap<String, Spanned<String>>),
}

/// `runs-on`: every label must match. Entries are raw text and may be expressions; one
/// that evaluates to an array contributes each element.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunsOn {
    pub span: Span,
    pub labels: Vec<Spanned<String>>,
    pub group: Option<Spanned<String>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Environment {
    pub span: Span,
    pub name: Spanned<String>,
    pub url: Option<Spanned<String>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Strategy {
    pub span: Span,
    /// The matrix as written (a mapping, or a string expression such as `${{ fromJSON(x) }}`).
    pub matrix: Option<Spanned<Node>>,
    pub fail_fast: Option<Spanned<OrExpr<bool>>>,
    pub max_parallel: Option<Spanned<OrExpr<f64>>>,
}

/// A job container or a service container.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Container {
    pub span: Span,
    pub image: Spanned<String>,
    pub credentials: Option<ContainerCredentials>,
    pub env: StringMap,
    pub ports: Vec<Spanned<String>>,
    pub volumes: Vec<Spanned<String>>,
    pub options: Option<Spanned<String>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContainerCredentials {
    pub username: Spanned<String>,
    pub password: Spanned<String>,
}

/// One step of a job or a composite action.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub span: Span,
    pub id: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub if_cond: Option<Spanned<String>>,
    pub uses: Option<Spanned<String>>,
    pub run: Option<Spanned<String>>,
    pub shell: Option<Spanned<String>>,
    pub with: StringMap,
    pub env: StringMap,
    pub working_directory: Option<Spanned<String>>,
    pub continue_on_error: Option<Spanned<OrExpr<bool>>>,
    pub timeout_minutes: Option<Spanned<OrExpr<f64>>>,
    /// `parallel:` group: these steps run at once, and the group ends when all have
    /// ended (empty for an ordinary step).
    pub parallel: Vec<Step>,
    /// `background: true`: the step runs while the job goes on; `wait`, `wait-all` and
    /// `cancel` steps (and the job's end) take it back.
    pub background: bool,
    /// A `wait`, `wait-all` or `cancel` step: it runs nothing itself.
    pub control: Option<StepControl>,
}

/// What a `wait`, `wait-all` or `cancel` step does with background steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StepControl {
    /// `wait: id` or `wait: [ids]`: until those background steps have ended.
    Wait(Vec<Spanned<String>>),
    /// `wait-all:`: until every background step started so far has ended.
    WaitAll,
    /// `cancel: id`: stops that background step (as a cancellation stops a step).
    Cancel(Spanned<String>),
}

/// An action's metadata file (`action.yml` / `action.yaml`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Action {
    pub path: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub inputs: IndexMap<String, ActionInput>,
    pub outputs: IndexMap<String, ActionOutput>,
    pub runs: ActionRuns,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ActionInput {
    pub description: Option<String>,
    pub required: bool,
    /// May contain expressions (github, strategy, matrix, job, runner, hashFiles).
    pub default: Option<Spanned<String>>,
    pub deprecation_message: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ActionOutput {
    pub description: Option<String>,
    /// Composite actions only: the expression mapping a step output.
    pub value: Option<Spanned<String>>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ActionRuns {
    /// `using: node12|node16|node20|node24`.
    Node {
        using: String,
        main: String,
        pre: Option<String>,
        pre_if: Option<String>,
        post: Option<String>,
        post_if: Option<String>,
    },
    Docker {
        image: String,
        env: IndexMap<String, Spanned<String>>,
        entrypoint: Option<String>,
        args: Vec<Spanned<String>>,
        pre_entrypoint: Option<String>,
        pre_if: Option<String>,
        post_entrypoint: Option<String>,
        post_if: Option<String>,
    },
    Composite {
        steps: Vec<Step>,
    },
}
