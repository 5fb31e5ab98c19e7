//! The structural reader: checks the YAML tree against GitHub's workflow schema the way
//! GitHub's template reader does (one-of definitions, strict mappings, allowed contexts
//! for `${{ }}`), reporting every problem in document order. Definitions follow
//! `workflow-v1.0.json` (spec §1, §2, §4.2); the table is in `schema_defs.rs`.

use crate::Diagnostics;
use crate::exprs;
use crate::load::{YKind, YNode};
use std::borrow::Cow;
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

/// One schema definition. `R` names other definitions: their names (`String`) while the
/// table is built in `schema_defs.rs`, their index in [`Schema::defs`] once resolved.
#[derive(Debug)]
pub(crate) struct Def<R = String> {
    pub ctx: u32,
    pub kind: Kind<R>,
}

#[derive(Debug)]
pub(crate) enum Kind<R = String> {
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
    Seq(R),
    Map(MapDef<R>),
    OneOf(Vec<R>),
}

#[derive(Debug, Default)]
pub(crate) struct MapDef<R = String> {
    /// property → (definition, required)
    pub props: Vec<(&'static str, R, bool)>,
    pub loose: Option<(R, R)>,
}

/// A definition's index in [`Schema::defs`]: the reader visits every node with one, so
/// it must not hash a name each time.
type Id = usize;

impl MapDef<Id> {
    fn prop(&self, key: &str) -> Option<Id> {
        self.props.iter().find(|p| p.0 == key).map(|p| p.1)
    }
}

/// What the reader needs to know about a definition, computed once from its one-of
/// alternatives (in their order).
struct Shape {
    /// The concrete definitions behind it (one-of alternatives expanded).
    concrete: Vec<Id>,
    /// What the items of a sequence are read as, when a sequence is allowed.
    seq_item: Option<Id>,
    /// Any mapping is accepted (an `any` alternative).
    any_map: bool,
    /// The mapping alternatives.
    maps: Vec<Id>,
}

pub(crate) struct Schema {
    defs: Vec<Def<Id>>,
    shapes: Vec<Shape>,
    any: Id,
    workflow_root: Id,
    action_root: Id,
}

impl Schema {
    /// Resolves the names in the table to indexes (a dangling name is a bug in the table).
    fn new(named: HashMap<String, Def>) -> Schema {
        let mut names: Vec<String> = named.keys().cloned().collect();
        names.sort_unstable();
        let index: HashMap<&str, Id> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let id = |n: &str| -> Id {
            *index
                .get(n)
                .unwrap_or_else(|| panic!("schema definition '{n}' missing"))
        };
        let mut named = named;
        let defs: Vec<Def<Id>> = names
            .iter()
            .map(|n| {
                let d = named.remove(n).expect("named definition");
                let kind = match d.kind {
                    Kind::Null => Kind::Null,
                    Kind::Bool => Kind::Bool,
                    Kind::Number => Kind::Number,
                    Kind::Str {
                        constant,
                        non_empty,
                    } => Kind::Str {
                        constant,
                        non_empty,
                    },
                    Kind::Allowed(list) => Kind::Allowed(list),
                    Kind::Any => Kind::Any,
                    Kind::Seq(item) => Kind::Seq(id(&item)),
                    Kind::Map(m) => Kind::Map(MapDef {
                        props: m.props.iter().map(|(k, d, r)| (*k, id(d), *r)).collect(),
                        loose: m.loose.map(|(k, v)| (id(&k), id(&v))),
                    }),
                    Kind::OneOf(list) => Kind::OneOf(list.iter().map(|n| id(n)).collect()),
                };
                Def { ctx: d.ctx, kind }
            })
            .collect();
        fn expand(defs: &[Def<Id>], d: Id, out: &mut Vec<Id>) {
            match &defs[d].kind {
                Kind::OneOf(list) => list.iter().for_each(|n| expand(defs, *n, out)),
                _ => out.push(d),
            }
        }
        let any = id("any");
        let shapes = (0..defs.len())
            .map(|d| {
                let mut concrete = Vec::new();
                expand(&defs, d, &mut concrete);
                let seq_item = concrete.iter().find_map(|n| match &defs[*n].kind {
                    Kind::Seq(item) => Some(*item),
                    Kind::Any => Some(any),
                    _ => None,
                });
                let any_map = concrete.iter().any(|n| matches!(defs[*n].kind, Kind::Any));
                let maps = concrete
                    .iter()
                    .copied()
                    .filter(|n| matches!(defs[*n].kind, Kind::Map(_)))
                    .collect();
                Shape {
                    concrete,
                    seq_item,
                    any_map,
                    maps,
                }
            })
            .collect();
        Schema {
            any,
            workflow_root: id("workflow-root-strict"),
            action_root: id("action-root"),
            defs,
            shapes,
        }
    }

    fn map(&self, d: Id) -> &MapDef<Id> {
        match &self.defs[d].kind {
            Kind::Map(m) => m,
            _ => unreachable!("shape lists only mapping definitions as maps"),
        }
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
    let def = match which {
        Root::Workflow => schema.workflow_root,
        Root::Action => schema.action_root,
    };
    r.read(root, def, 0, 0);
}

const MAX_DEPTH: usize = 200;

struct Reader<'a> {
    schema: &'static Schema,
    diags: &'a mut Diagnostics,
    max_depth: usize,
    depth_reported: bool,
}

/// The keys seen in one mapping, compared the way GitHub does (`ToUpperInvariant`). An
/// ASCII key is kept as written and compared ignoring ASCII case; any other key is kept
/// uppercased. Uppercased text has no ASCII lowercase letters, so comparing ignoring ASCII
/// case is the same as comparing the uppercased forms, without an allocation per key.
#[derive(Default)]
struct SeenKeys<'k> {
    keys: Vec<Cow<'k, str>>,
    /// ASCII-uppercased keys, once the mapping is large (a `jobs:` map with a thousand
    /// jobs made the linear scan quadratic).
    index: Option<std::collections::HashSet<String>>,
}

/// Keys scanned linearly up to this count; a hash set from there on.
const SEEN_INDEX_FROM: usize = 16;

impl<'k> SeenKeys<'k> {
    fn contains(&self, s: &str) -> bool {
        let upper;
        let form = if s.is_ascii() {
            s
        } else {
            upper = s.to_uppercase();
            &upper
        };
        match &self.index {
            // `eq_ignore_ascii_case` is equality of the ASCII-uppercased forms.
            Some(index) => index.contains(&form.to_ascii_uppercase()),
            None => self.keys.iter().any(|k| k.eq_ignore_ascii_case(form)),
        }
    }

    /// Adds `s` (not checked: see [`SeenKeys::contains`]).
    fn add(&mut self, s: Cow<'k, str>) {
        let key = match s {
            Cow::Borrowed(b) if b.is_ascii() => s,
            _ => Cow::Owned(s.to_uppercase()),
        };
        match &mut self.index {
            Some(index) => {
                index.insert(key.to_ascii_uppercase());
            }
            None if self.keys.len() >= SEEN_INDEX_FROM => {
                let mut index: std::collections::HashSet<String> =
                    self.keys.iter().map(|k| k.to_ascii_uppercase()).collect();
                index.insert(key.to_ascii_uppercase());
                self.index = Some(index);
            }
            None => {}
        }
        self.keys.push(key);
    }
}

/// A mapping key as text: borrowed for strings, converted for other scalars.
fn key_text(k: &YNode) -> Option<Cow<'_, str>> {
    match &k.kind {
        YKind::Seq(_) | YKind::Map(_) => None,
        YKind::Str(s, _) => Some(Cow::Borrowed(s)),
        _ => k.scalar_string().map(Cow::Owned),
    }
}

impl Reader<'_> {
    fn read(&mut self, node: &YNode, def: Id, parent_ctx: u32, depth: usize) {
        if depth >= self.max_depth.min(MAX_DEPTH) && !node.is_scalar() {
            if !self.depth_reported {
                self.depth_reported = true;
                self.diags.error(node.span, "Maximum object depth exceeded");
            }
            return;
        }
        let ctx = parent_ctx | self.schema.defs[def].ctx;
        let shape = &self.schema.shapes[def];
        match &node.kind {
            YKind::Seq(items) => match shape.seq_item {
                Some(item) => {
                    for it in items {
                        self.read(it, item, ctx, depth + 1);
                    }
                }
                None => self.diags.error(node.span, "A sequence was not expected"),
            },
            YKind::Map(entries) => {
                if shape.any_map {
                    self.read_any_map(entries, ctx, depth);
                } else if shape.maps.is_empty() {
                    self.diags.error(node.span, "A mapping was not expected");
                } else {
                    self.read_map(node, entries, &shape.maps, ctx, depth);
                }
            }
            _ => self.read_scalar(node, &shape.concrete, ctx),
        }
    }

    fn read_any_map(&mut self, entries: &[(YNode, YNode)], ctx: u32, depth: usize) {
        let mut seen = SeenKeys::default();
        let any = self.schema.any;
        for (k, v) in entries {
            if let Some(s) = key_text(k) {
                if is_insert(&s) {
                    // merged mapping
                } else if s.contains("${{") {
                    self.check_template(k, &s, ctx);
                } else {
                    self.check_dup(k, s, &mut seen);
                }
            }
            self.read(v, any, ctx, depth + 1);
        }
    }

    /// Reports `s` when the mapping already has it; otherwise remembers it.
    fn check_dup<'k>(&mut self, key: &YNode, s: Cow<'k, str>, seen: &mut SeenKeys<'k>) -> bool {
        if s.is_empty() {
            return false;
        }
        if seen.contains(&s) {
            self.diags
                .error(key.span, format!("'{s}' is already defined"));
            return true;
        }
        seen.add(s);
        false
    }

    fn read_map(
        &mut self,
        node: &YNode,
        entries: &[(YNode, YNode)],
        maps: &'static [Id],
        ctx: u32,
        depth: usize,
    ) {
        let schema = self.schema;
        let mut maps: Cow<'static, [Id]> = Cow::Borrowed(maps);
        let loose = schema.map(maps[0]).loose;
        let all_loose = maps.len() == 1 && schema.map(maps[0]).props.is_empty() && loose.is_some();
        let mut seen = SeenKeys::default();
        let mut has_expr_key = false;
        for (k, v) in entries {
            let Some(key) = key_text(k) else {
                self.diags.error(k.span, "A mapping key must be a string");
                continue;
            };
            if key.contains("${{") {
                has_expr_key = true;
                if is_insert(&key) && ctx != 0 {
                    // `${{ insert }}`: the value's mapping is merged into this one.
                    self.read(v, schema.any, ctx, depth + 1);
                    continue;
                }
                if ctx != 0 {
                    self.check_template(k, &key, ctx);
                    self.read(v, schema.any, ctx, depth + 1);
                } else {
                    self.diags.error(
                        k.span,
                        "A template expression is not allowed in this context",
                    );
                }
                continue;
            }
            if self.check_dup(k, key.clone(), &mut seen) {
                continue;
            }
            if !all_loose && let Some(def) = match_property_and_filter(schema, &mut maps, &key) {
                self.read(v, def, ctx, depth + 1);
                continue;
            }
            if let Some((kdef, vdef)) = loose {
                self.read_scalar_literal(k, kdef);
                self.read(v, vdef, ctx, depth + 1);
                continue;
            }
            self.diags
                .error(k.span, format!("Unexpected value '{key}'"));
        }
        if maps.len() > 1 {
            let mut hits: Vec<(&str, usize)> = Vec::new();
            for m in maps.iter() {
                for p in &schema.map(*m).props {
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
            for (name, _, required) in &schema.map(maps[0]).props {
                if *required && !seen.contains(name) {
                    self.diags
                        .error(node.span, format!("Required property is missing: {name}"));
                }
            }
        }
    }

    /// A scalar in a key position: validated against the key definition (no expressions).
    fn read_scalar_literal(&mut self, node: &YNode, def: Id) {
        let concrete = &self.schema.shapes[def].concrete;
        self.validate_literal(node, concrete);
    }

    fn read_scalar(&mut self, node: &YNode, concrete: &[Id], ctx: u32) {
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

    fn validate_literal(&mut self, node: &YNode, concrete: &[Id]) {
        if concrete
            .iter()
            .any(|n| self.literal_matches(*n, node, false))
        {
            return;
        }
        if !matches!(node.kind, YKind::Str(..))
            && concrete
                .iter()
                .any(|n| self.literal_matches(*n, node, true))
        {
            return;
        }
        let text = node.scalar_string().unwrap_or_default();
        self.diags
            .error(node.span, format!("Unexpected value '{text}'"));
    }

    fn literal_matches(&self, def: Id, node: &YNode, as_string: bool) -> bool {
        let kind = &self.schema.defs[def].kind;
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

fn str_matches(kind: &Kind<Id>, s: &str) -> bool {
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
fn match_property_and_filter(schema: &Schema, maps: &mut Cow<'_, [Id]>, key: &str) -> Option<Id> {
    let mut result = None;
    let mut missing = false;
    for m in maps.iter() {
        match schema.map(*m).prop(key) {
            Some(d) => result = Some(d),
            None => missing = true,
        }
    }
    if result.is_some() && missing {
        maps.to_mut().retain(|m| schema.map(*m).prop(key).is_some());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_keys_compare_like_to_uppercase() {
        // Small mappings scan, large ones use the index: both compare the same way.
        let filler: Vec<String> = (0..40).map(|i| format!("filler{i}")).collect();
        for extra in [0, 3, SEEN_INDEX_FROM, 40] {
            seen_keys_case(&filler[..extra]);
        }
    }

    fn seen_keys_case(filler: &[String]) {
        let keys = ["Job", "straße", "é"];
        let mut seen = SeenKeys::default();
        for k in filler {
            seen.add(Cow::Borrowed(k));
        }
        for k in keys {
            assert!(!seen.contains(k));
            seen.add(Cow::Borrowed(k));
        }
        assert!(filler.iter().all(|f| seen.contains(&f.to_uppercase())));
        for (k, dup) in [
            ("JOB", true),
            ("job", true),
            ("STRASSE", true),
            ("Straße", true),
            ("É", true),
            ("e", false),
            ("jobs", false),
        ] {
            assert_eq!(seen.contains(k), dup, "{k}");
            let by_uppercase = keys.iter().any(|s| s.to_uppercase() == k.to_uppercase());
            assert_eq!(by_uppercase, dup, "{k}");
        }
        seen.add(Cow::Owned("Maß".to_string()));
        assert!(seen.contains("MASS"));
    }

    #[test]
    fn every_name_resolves() {
        for bg in [true, false] {
            let s = schema(&ReaderOptions {
                allow_background_steps: bg,
                ..Default::default()
            });
            assert!(matches!(s.defs[s.any].kind, Kind::Any));
            assert!(!s.shapes[s.workflow_root].maps.is_empty());
            assert!(!s.shapes[s.action_root].maps.is_empty());
        }
    }
}
