//! The structural reader: checks the YAML tree against GitHub's workflow schema the way
//! GitHub's template reader does (one-of definitions, strict mappings, allowed contexts
//! for `${{ }}`), reporting every problem in document order. Definitions follow
//! `workflow-v1.0.json` (spec §1, §2, §4.2); the table is in `schema_defs.rs`.

use crate::Diagnostics;
use crate::exprs;
use crate::load::{YKind, YNode};
use std::collections::HashMap;
use std::sync::OnceLock;

#[path = "schema_defs.rs"]
mod defs;

/// Context and function bits: what expressions under a definition may use.
pub(crate) mod ctx {
    pub const GITHUB: u32 = 1;
    pub const INPUTS: u32 = 1 << 1;
    pub const VARS: u32 = 1 << 2;
    pub const NEEDS: u32 = 1 << 3;
    pub const STRATEGY: u32 = 1 << 4;
    pub const MATRIX: u32 = 1 << 5;
    pub const SECRETS: u32 = 1 << 6;
    pub const STEPS: u32 = 1 << 7;
    pub const JOB: u32 = 1 << 8;
    pub const RUNNER: u32 = 1 << 9;
    pub const ENV: u32 = 1 << 10;
    pub const JOBS: u32 = 1 << 11;
    pub const F_ALWAYS: u32 = 1 << 12;
    pub const F_FAILURE: u32 = 1 << 13;
    pub const F_CANCELLED: u32 = 1 << 14;
    pub const F_SUCCESS: u32 = 1 << 15;
    pub const F_HASHFILES: u32 = 1 << 16;
    /// `success(job…)` / `failure(job…)` take arguments (job-level `if`).
    pub const F_STATUS_ARGS: u32 = 1 << 17;

    pub const NAMES: &[(u32, &str)] = &[
        (GITHUB, "github"),
        (INPUTS, "inputs"),
        (VARS, "vars"),
        (NEEDS, "needs"),
        (STRATEGY, "strategy"),
        (MATRIX, "matrix"),
        (SECRETS, "secrets"),
        (STEPS, "steps"),
        (JOB, "job"),
        (RUNNER, "runner"),
        (ENV, "env"),
        (JOBS, "jobs"),
    ];
    pub const STATUS: u32 = F_ALWAYS | F_FAILURE | F_CANCELLED | F_SUCCESS;
    pub const GIV: u32 = GITHUB | INPUTS | VARS;
    pub const GIVN: u32 = GIV | NEEDS;
    pub const GIVNSM: u32 = GIVN | STRATEGY | MATRIX;
    pub const STEP: u32 = GIVNSM | SECRETS | STEPS | JOB | RUNNER | ENV | F_HASHFILES;
    pub const JOB_IF: u32 = GIVN | STATUS | F_STATUS_ARGS;
    pub const STEP_IF: u32 = (STEP & !SECRETS) | STATUS;
}

/// Options of the reader (GitHub's experimental features).
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// `background:` steps and `wait` / `wait-all` / `cancel` steps (default on: GitHub's
    /// parser accepts them).
    pub allow_background_steps: bool,
    /// Maximum nesting of mappings and sequences ("Maximum object depth exceeded").
    pub max_depth: usize,
    /// Maximum file size in characters, when set.
    pub max_file_size: Option<usize>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            allow_background_steps: true,
            max_depth: 50,
            max_file_size: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Workflow,
    Action,
}

/// One schema definition.
#[derive(Debug)]
pub(crate) struct Def {
    pub ctx: u32,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    /// A string, optionally a fixed constant and/or required non-empty.
    Str {
        constant: Option<&'static str>,
        non_empty: bool,
    },
    /// A string from a fixed list.
    Allowed(Vec<&'static str>),
    Any,
    Seq(String),
    Map(MapDef),
    OneOf(Vec<String>),
}

#[derive(Debug, Default)]
pub(crate) struct MapDef {
    /// property → (definition, required)
    pub props: Vec<(&'static str, String, bool)>,
    pub loose: Option<(String, String)>,
}

impl MapDef {
    fn prop(&self, key: &str) -> Option<&(&'static str, String, bool)> {
        self.props.iter().find(|p| p.0 == key)
    }
}

pub(crate) struct Schema {
    defs: HashMap<String, Def>,
    /// Each definition with its one-of alternatives expanded (computed once).
    expanded: HashMap<String, Vec<String>>,
}

impl Schema {
    fn get(&self, name: &str) -> &Def {
        self.defs
            .get(name)
            .unwrap_or_else(|| panic!("schema definition '{name}' missing"))
    }

    fn new(defs: HashMap<String, Def>) -> Schema {
        fn expand(defs: &HashMap<String, Def>, name: &str, out: &mut Vec<String>) {
            match defs.get(name).map(|d| &d.kind) {
                Some(Kind::OneOf(list)) => list.iter().for_each(|n| expand(defs, n, out)),
                _ => out.push(name.to_string()),
            }
        }
        let expanded = defs
            .keys()
            .map(|k| {
                let mut v = Vec::new();
                expand(&defs, k, &mut v);
                (k.clone(), v)
            })
            .collect();
        Schema { defs, expanded }
    }

    /// The concrete definitions behind `name` (one-of alternatives expanded).
    fn concrete(&self, name: &str) -> &[String] {
        self.expanded.get(name).map_or(&[], Vec::as_slice)
    }
}

fn schema(opts: &ReaderOptions) -> &'static Schema {
    static PLAIN: OnceLock<Schema> = OnceLock::new();
    static BG: OnceLock<Schema> = OnceLock::new();
    if opts.allow_background_steps {
        BG.get_or_init(|| Schema::new(defs::build(true)))
    } else {
        PLAIN.get_or_init(|| Schema::new(defs::build(false)))
    }
}

/// Checks `root` against the schema, adding structural diagnostics.
pub(crate) fn read(root: &YNode, which: Root, opts: &ReaderOptions, diags: &mut Diagnostics) {
    let schema = schema(opts);
    let mut r = Reader {
        schema,
        diags,
        max_depth: opts.max_depth,
        depth_reported: false,
    };
    let name = match which {
        Root::Workflow => "workflow-root-strict",
        Root::Action => "action-root",
    };
    r.read(root, name, 0, 0);
}

const MAX_DEPTH: usize = 200;

struct Reader<'a> {
    schema: &'static Schema,
    diags: &'a mut Diagnostics,
    max_depth: usize,
    depth_reported: bool,
}

impl Reader<'_> {
    fn read(&mut self, node: &YNode, def_name: &str, parent_ctx: u32, depth: usize) {
        if depth >= self.max_depth.min(MAX_DEPTH) && !node.is_scalar() {
            if !self.depth_reported {
                self.depth_reported = true;
                self.diags.error(node.span, "Maximum object depth exceeded");
            }
            return;
        }
        let ctx = parent_ctx | self.schema.get(def_name).ctx;
        let concrete = self.schema.concrete(def_name);
        match &node.kind {
            YKind::Seq(items) => {
                let seq = concrete
                    .iter()
                    .find_map(|n| match &self.schema.get(n).kind {
                        Kind::Seq(item) => Some(item.as_str()),
                        Kind::Any => Some("any"),
                        _ => None,
                    });
                match seq {
                    Some(item) => {
                        for it in items {
                            self.read(it, item, ctx, depth + 1);
                        }
                    }
                    None => self.diags.error(node.span, "A sequence was not expected"),
                }
            }
            YKind::Map(entries) => {
                if concrete
                    .iter()
                    .any(|n| matches!(self.schema.get(n).kind, Kind::Any))
                {
                    self.read_any_map(entries, ctx, depth);
                    return;
                }
                let maps: Vec<&MapDef> = concrete
                    .iter()
                    .filter_map(|n| match &self.schema.get(n).kind {
                        Kind::Map(m) => Some(m),
                        _ => None,
                    })
                    .collect();
                if maps.is_empty() {
                    self.diags.error(node.span, "A mapping was not expected");
                    return;
                }
                self.read_map(node, entries, maps, ctx, depth);
            }
            _ => self.read_scalar(node, concrete, ctx),
        }
    }

    fn read_any_map(&mut self, entries: &[(YNode, YNode)], ctx: u32, depth: usize) {
        let mut seen: Vec<String> = Vec::new();
        for (k, v) in entries {
            if let Some(s) = k.scalar_string() {
                if is_insert(&s) {
                    // merged mapping
                } else if s.contains("${{") {
                    self.check_template(k, &s, ctx);
                } else {
                    self.check_dup(k, &s, &mut seen);
                }
            }
            self.read(v, "any", ctx, depth + 1);
        }
    }

    fn check_dup(&mut self, key: &YNode, s: &str, seen: &mut Vec<String>) -> bool {
        if s.is_empty() {
            return false;
        }
        let up = s.to_uppercase();
        if seen.contains(&up) {
            self.diags
                .error(key.span, format!("'{s}' is already defined"));
            return true;
        }
        seen.push(up);
        false
    }

    fn read_map(
        &mut self,
        node: &YNode,
        entries: &[(YNode, YNode)],
        mut maps: Vec<&MapDef>,
        ctx: u32,
        depth: usize,
    ) {
        let loose = maps[0].loose.clone();
        let all_loose = maps.len() == 1 && maps[0].props.is_empty() && loose.is_some();
        let mut seen: Vec<String> = Vec::new();
        let mut has_expr_key = false;
        for (k, v) in entries {
            let key: std::borrow::Cow<'_, str> = match &k.kind {
                YKind::Seq(_) | YKind::Map(_) => {
                    self.diags.error(k.span, "A mapping key must be a string");
                    continue;
                }
                YKind::Str(s, _) => std::borrow::Cow::Borrowed(s),
                _ => std::borrow::Cow::Owned(k.scalar_string().unwrap_or_default()),
            };
            if key.contains("${{") {
                has_expr_key = true;
                if is_insert(&key) && ctx != 0 {
                    // `${{ insert }}`: the value's mapping is merged into this one.
                    self.read(v, "any", ctx, depth + 1);
                    continue;
                }
                if ctx != 0 {
                    self.check_template(k, &key, ctx);
                    self.read(v, "any", ctx, depth + 1);
                } else {
                    self.diags.error(
                        k.span,
                        "A template expression is not allowed in this context",
                    );
                }
                continue;
            }
            if self.check_dup(k, &key, &mut seen) {
                continue;
            }
            if !all_loose && let Some(def) = match_property_and_filter(&mut maps, &key) {
                self.read(v, &def, ctx, depth + 1);
                continue;
            }
            if let Some((kdef, vdef)) = &loose {
                self.read_scalar_literal(k, kdef);
                self.read(v, vdef, ctx, depth + 1);
                continue;
            }
            self.diags
                .error(k.span, format!("Unexpected value '{key}'"));
        }
        if maps.len() > 1 {
            let mut hits: Vec<(&str, usize)> = Vec::new();
            for m in &maps {
                for p in &m.props {
                    match hits.iter_mut().find(|h| h.0 == p.0) {
                        Some(h) => h.1 += 1,
                        None => hits.push((p.0, 1)),
                    }
                }
            }
            let mut unique: Vec<&str> = hits.iter().filter(|h| h.1 == 1).map(|h| h.0).collect();
            unique.sort_unstable();
            self.diags.error(
                node.span,
                format!(
                    "There's not enough info to determine what you meant. Add one of these properties: {}",
                    unique.join(", ")
                ),
            );
        } else if !has_expr_key {
            for (name, _, required) in &maps[0].props {
                if *required && !seen.contains(&name.to_uppercase()) {
                    self.diags
                        .error(node.span, format!("Required property is missing: {name}"));
                }
            }
        }
    }

    /// A scalar in a key position: validated against the key definition (no expressions).
    fn read_scalar_literal(&mut self, node: &YNode, def: &str) {
        let concrete = self.schema.concrete(def);
        self.validate_literal(node, concrete);
    }

    fn read_scalar(&mut self, node: &YNode, concrete: &[String], ctx: u32) {
        if let YKind::Str(s, _) = &node.kind
            && s.contains("${{")
        {
            if ctx == 0 {
                // A lone string literal (`${{ 'x' }}`) collapses to text even here.
                match exprs::check_template(s, 0) {
                    Ok(Some(literal)) => {
                        let lit = YNode {
                            kind: YKind::Str(literal, false),
                            span: node.span,
                        };
                        self.validate_literal(&lit, concrete);
                    }
                    _ => self.diags.error(
                        node.span,
                        "A template expression is not allowed in this context",
                    ),
                }
                return;
            }
            if let Some(literal) = self.check_template(node, s, ctx) {
                let lit = YNode {
                    kind: YKind::Str(literal, false),
                    span: node.span,
                };
                self.validate_literal(&lit, concrete);
            }
            return;
        }
        self.validate_literal(node, concrete);
    }

    /// Parses `${{ }}` in `s` with the allowed contexts; reports errors. Returns the literal
    /// text when the template collapses to a literal.
    fn check_template(&mut self, node: &YNode, s: &str, ctx: u32) -> Option<String> {
        match exprs::check_template(s, ctx) {
            Ok(lit) => lit,
            Err(msg) => {
                self.diags.error(node.span, msg);
                None
            }
        }
    }

    fn validate_literal(&mut self, node: &YNode, concrete: &[String]) {
        if concrete
            .iter()
            .any(|n| self.literal_matches(n, node, false))
        {
            return;
        }
        if !matches!(node.kind, YKind::Str(..))
            && concrete.iter().any(|n| self.literal_matches(n, node, true))
        {
            return;
        }
        let text = node.scalar_string().unwrap_or_default();
        self.diags
            .error(node.span, format!("Unexpected value '{text}'"));
    }

    fn literal_matches(&self, def: &str, node: &YNode, as_string: bool) -> bool {
        let kind = &self.schema.get(def).kind;
        if as_string {
            let s = node.scalar_string().unwrap_or_default();
            return str_matches(kind, &s);
        }
        match (&node.kind, kind) {
            (_, Kind::Any) => true,
            (YKind::Null, Kind::Null) => true,
            (YKind::Bool(_), Kind::Bool) => true,
            (YKind::Number(_), Kind::Number) => true,
            (YKind::Str(s, _), k) => str_matches(k, s),
            _ => false,
        }
    }
}

fn str_matches(kind: &Kind, s: &str) -> bool {
    match kind {
        Kind::Str {
            constant,
            non_empty,
        } => constant.is_none_or(|c| c == s) && (!non_empty || !s.is_empty()),
        Kind::Allowed(list) => list.contains(&s),
        Kind::Any => true,
        _ => false,
    }
}

fn is_insert(key: &str) -> bool {
    let k = key.trim();
    k.strip_prefix("${{")
        .and_then(|r| r.strip_suffix("}}"))
        .is_some_and(|inner| inner.trim().eq_ignore_ascii_case("insert"))
}

/// GitHub's `matchPropertyAndFilter`: finds `key` among the candidate mappings' properties
/// and narrows the candidates to those that have it.
fn match_property_and_filter(maps: &mut Vec<&MapDef>, key: &str) -> Option<String> {
    let mut result = None;
    let mut missing = false;
    for m in maps.iter() {
        match m.prop(key) {
            Some(p) => result = Some(p.1.clone()),
            None => missing = true,
        }
    }
    if result.is_some() && missing {
        maps.retain(|m| m.prop(key).is_some());
    }
    result
}
