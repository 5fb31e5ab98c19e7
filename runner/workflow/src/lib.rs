//! Workflow and action files: load YAML (with positions) into a typed model, validate it,
//! and report every problem as a positioned diagnostic.
//!
//! ```
//! let loaded = gantry_workflow::parse_workflow(
//!     "ci.yml",
//!     "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n",
//! );
//! assert!(!loaded.has_errors());
//! assert_eq!(loaded.value.unwrap().jobs["build"].steps.len(), 1);
//! ```

mod action;
pub mod action_inputs;
mod calls;
pub mod diagnostic;
mod exprs;
mod job;
mod load;
pub mod model;
pub mod pattern;
mod render;
mod schema;
mod step;
mod validate;
mod workflow;

pub use calls::{CallOptions, PermissionsPolicy, Resolver, check_workflow_calls};
pub use diagnostic::{Diagnostic, Loaded, Severity};
pub use model::*;
pub use render::render;
pub use schema::ReaderOptions;

use std::path::Path;

/// Parses and validates a workflow file's text. `path` is used in diagnostics.
pub fn parse_workflow(path: &str, text: &str) -> Loaded<Workflow> {
    parse_workflow_with(path, text, &ReaderOptions::default())
}

/// [`parse_workflow`] with reader options (experimental features).
pub fn parse_workflow_with(path: &str, text: &str, opts: &ReaderOptions) -> Loaded<Workflow> {
    let mut diags = Diagnostics::new(path);
    if let Some(max) = opts.max_file_size
        && text.chars().count() > max
    {
        diags.error(
            Span::FILE_START,
            format!("The maximum file size of {max} characters has been exceeded"),
        );
        return diags.finish(None);
    }
    let Some(root) = load_root(text, &mut diags) else {
        return diags.finish(None);
    };
    schema::read(&root, schema::Root::Workflow, opts, &mut diags);
    let wf = workflow::convert(path, &root, &mut diags);
    diags.finish(Some(wf))
}

/// Parses any YAML document into the positioned [`Node`] tree (core schema, duplicate
/// keys and syntax errors reported). Other Gantry files (`.gantry/config.yml`) are read
/// through this, so YAML stays behind this crate.
pub fn parse_tree(path: &str, text: &str) -> Loaded<Spanned<Node>> {
    let mut diags = Diagnostics::new(path);
    let root = load_root(text, &mut diags);
    diags.finish(root.map(|r| r.to_node()))
}

/// Reads and parses a workflow file; an I/O error or invalid UTF-8 becomes a diagnostic.
pub fn load_workflow(path: &Path) -> Loaded<Workflow> {
    let name = path.display().to_string();
    match read_source(path) {
        Ok(text) => parse_workflow(&name, &text),
        Err(d) => Loaded {
            value: None,
            diagnostics: vec![*d],
        },
    }
}

/// Reads a YAML file as UTF-8 text. Invalid UTF-8 is reported at the line and column of
/// the first offending byte; an I/O error at 1:1.
pub fn read_source(path: &Path) -> Result<String, Box<Diagnostic>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Box::new(io_diagnostic(&name, &e)))?;
    decode_source(&name, bytes).map_err(Box::new)
}

/// `bytes` as UTF-8, or an error diagnostic at the first byte that is not.
pub fn decode_source(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let bad = e.utf8_error().valid_up_to();
        // The prefix is valid UTF-8, so columns are counted in characters as elsewhere.
        let valid = std::str::from_utf8(&bytes[..bad]).unwrap_or_default();
        let line_start = valid.rfind('\n').map_or(0, |p| p + 1);
        Diagnostic {
            file: name.to_string(),
            span: Span {
                offset: bad,
                len: 0,
                line: valid.matches('\n').count() as u32 + 1,
                col: valid[line_start..].chars().count() as u32 + 1,
            },
            severity: Severity::Error,
            message: format!(
                "invalid UTF-8 (byte 0x{:02X} at offset {bad}): YAML files must be UTF-8",
                bytes[bad]
            ),
        }
    })
}

/// Parses and validates an action's metadata file (`action.yml`).
pub fn parse_action(path: &str, text: &str) -> Loaded<Action> {
    let mut diags = Diagnostics::new(path);
    let Some(root) = load_root(text, &mut diags) else {
        return diags.finish(None);
    };
    schema::read(
        &root,
        schema::Root::Action,
        &ReaderOptions::default(),
        &mut diags,
    );
    let action = action::convert(path, &root, &mut diags);
    diags.finish(Some(action))
}

/// Loads `action.yml`, falling back to `action.yaml`, from an action directory.
pub fn load_action_dir(dir: &Path) -> Loaded<Action> {
    let yml = dir.join("action.yml");
    let path = if yml.exists() {
        yml
    } else {
        dir.join("action.yaml")
    };
    let name = path.display().to_string();
    match read_source(&path) {
        Ok(text) => parse_action(&name, &text),
        Err(d) => Loaded {
            value: None,
            diagnostics: vec![*d],
        },
    }
}

fn io_diagnostic(name: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: name.to_string(),
        span: Span::FILE_START,
        severity: Severity::Error,
        message: format!("cannot read file: {e}"),
    }
}

fn load_root(text: &str, diags: &mut Diagnostics) -> Option<load::YNode> {
    let (root, errors) = load::parse_yaml(text);
    let fatal = root.is_none();
    for e in errors {
        if fatal {
            diags.error(e.span, e.message);
        } else {
            diags.loader_error(e.span, e.message);
        }
    }
    match root {
        Some(r) if !matches!(r.kind, load::YKind::Null) => Some(r),
        Some(r) => {
            diags.error(r.span, "the file is empty: expected a mapping");
            None
        }
        None => {
            if !diags.has_errors() {
                diags.error(Span::FILE_START, "the file is empty: expected a mapping");
            }
            None
        }
    }
}

/// Collects diagnostics in two phases: structural (schema) problems first, then semantic
/// ones, each in discovery order — the order GitHub reports them.
pub(crate) struct Diagnostics {
    file: String,
    list: Vec<Diagnostic>,
    semantic: Vec<Diagnostic>,
    loader: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(file: &str) -> Self {
        Diagnostics {
            file: file.to_string(),
            list: Vec::new(),
            semantic: Vec::new(),
            loader: Vec::new(),
        }
    }

    /// A structural (schema-level) error.
    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        let d = self.make(span, Severity::Error, message.into());
        self.list.push(d);
    }

    /// A non-fatal loader error, placed by position among the structural ones.
    pub(crate) fn loader_error(&mut self, span: Span, message: impl Into<String>) {
        let d = self.make(span, Severity::Error, message.into());
        self.loader.push(d);
    }

    /// A semantic error (reported after all structural ones).
    pub(crate) fn semantic(&mut self, span: Span, message: impl Into<String>) {
        let d = self.make(span, Severity::Error, message.into());
        self.semantic.push(d);
    }

    pub(crate) fn warning(&mut self, span: Span, message: impl Into<String>) {
        let d = self.make(span, Severity::Warning, message.into());
        self.semantic.push(d);
    }

    fn make(&self, span: Span, severity: Severity, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            span,
            severity,
            message,
        }
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.list
            .iter()
            .chain(&self.semantic)
            .any(|d| d.severity == Severity::Error)
    }

    fn finish<T>(mut self, value: Option<T>) -> Loaded<T> {
        let ok = !self.has_errors() && self.loader.is_empty();
        // Loader problems (merge keys, tags) go where they occur among the structural ones.
        for d in std::mem::take(&mut self.loader) {
            let at = self
                .list
                .iter()
                .position(|x| x.span.offset > d.span.offset)
                .unwrap_or(self.list.len());
            self.list.insert(at, d);
        }
        self.list.append(&mut self.semantic);
        // Identical diagnostics (same place, same text) are reported once.
        let mut seen = std::collections::HashSet::new();
        self.list
            .retain(|d| seen.insert((d.span.offset, d.span.line, d.span.col, d.message.clone())));
        Loaded {
            value: if ok { value } else { None },
            diagnostics: self.list,
        }
    }
}
