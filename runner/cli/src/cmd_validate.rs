//! `gantry validate [PATH...]`: load workflow files (and `action.yml`) and report every
//! problem. Exit 0 when clean (warnings allowed), 1 when errors were found, 2 on a usage
//! error (a path that does not exist).

use gantry_workflow::{Diagnostic, Severity};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What kind of file a path is validated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Workflow,
    Action,
    /// `.gantry/config.yml`: delivery rules (environments, health checks, notifications).
    GantryConfig,
}

fn kind_of(path: &Path) -> Kind {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "action.yml" || name == "action.yaml" {
        Kind::Action
    } else if (name == "config.yml" || name == "config.yaml")
        && path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            == Some(".gantry")
    {
        Kind::GantryConfig
    } else {
        Kind::Workflow
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml") | Some("yaml")
    )
}

/// Expands the arguments into files: a directory means every `*.yml`/`*.yaml` in it
/// (sorted). `Err` names a path that does not exist.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PathBuf> {
    // Default: the workflows, plus Gantry's own config when the repository has one.
    let mut default = vec![PathBuf::from(".github/workflows")];
    if Path::new(".gantry/config.yml").is_file() {
        default.push(PathBuf::from(".gantry/config.yml"));
    }
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|_| p.clone())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && is_yaml(f))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(p.clone());
        }
    }
    Ok(files)
}

/// Validates one file: its diagnostics and source text (for snippets).
fn validate_file(path: &Path) -> (Vec<Diagnostic>, String) {
    let read = gantry_workflow::read_source(path);
    let diags = match kind_of(path) {
        Kind::Action => gantry_workflow::load_action_dir(path.parent().unwrap_or(Path::new(".")))
            .diagnostics
            .into_iter()
            .map(|mut d| {
                d.file = path.display().to_string();
                d
            })
            .collect(),
        Kind::GantryConfig => {
            gantry_delivery::validate_config_with(path, gantry_workflow::parse_tree)
        }
        // Parse the text already read (1 MB workflows: one read, one copy).
        Kind::Workflow => match &read {
            Ok(text) => {
                gantry_workflow::parse_workflow(&path.display().to_string(), text).diagnostics
            }
            Err(d) => vec![(**d).clone()],
        },
    };
    // Invalid UTF-8: the text before the bad byte is unchanged by the lossy decoding,
    // so the snippet still points at it.
    let source = read.unwrap_or_else(|_| {
        std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    });
    (diags, source)
}

fn json_line(d: &Diagnostic) -> String {
    serde_json::json!({
        "file": d.file,
        "line": d.span.line,
        "col": d.span.col,
        "severity": d.severity.as_str(),
        "message": d.message,
    })
    .to_string()
}

pub fn run(paths: &[PathBuf], json: bool) -> anyhow::Result<i32> {
    let files = match collect(paths) {
        Ok(f) => f,
        Err(missing) => {
            eprintln!(
                "gantry validate: {}: no such file or directory",
                missing.display()
            );
            return Ok(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for f in &files {
        let (diags, text) = validate_file(f);
        errors += diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        warnings += diags
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        if json {
            for d in &diags {
                writeln!(out, "{}", json_line(d))?;
            }
        } else if !diags.is_empty() {
            write!(out, "{}", gantry_workflow::render(&diags, &text))?;
        }
    }
    if !json {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        writeln!(
            out,
            "{}: {}, {}",
            plural(files.len(), "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        )?;
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

/// Flags of `gantry validate --preflight`: what a run would be given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PreflightArgs {
    /// Also check what a run would miss (images, actions, secrets, inputs) for EVENT.
    #[arg(long)]
    pub preflight: bool,
    /// The event to check for (with --preflight).
    #[arg(long = "event", default_value = "push")]
    pub event: String,
    /// Secrets a run would be given (K=V or K), with --preflight.
    #[arg(short = 's', long = "secret")]
    pub secret: Vec<String>,
    #[arg(long = "secret-file")]
    pub secret_file: Option<PathBuf>,
    #[arg(long = "input")]
    pub input: Vec<String>,
    #[arg(short = 'P', long = "platform")]
    pub platform: Vec<String>,
    #[arg(long = "image", value_name = "NAME=LOCAL")]
    pub image: Vec<String>,
    #[arg(long = "host")]
    pub host: bool,
    #[arg(long = "offline")]
    pub offline: bool,
}

/// Prints the preflight findings of a prepared run; returns how many there are.
pub async fn print_preflight(cfg: &gantry_engine::run::RunConfig, json: bool) -> usize {
    let findings = gantry_engine::preflight::check(cfg).await;
    for f in &findings {
        if json {
            println!("{}", serde_json::json!({"preflight": f}));
        } else {
            println!("preflight: {f}");
        }
    }
    if !json {
        println!(
            "preflight: {} missing piece{}",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
    }
    findings.len()
}

/// `gantry validate --preflight`: validation, then the preflight of a run of `pre.event`
/// with the given flags. Exit 1 when either found a problem.
pub async fn run_with_preflight(
    paths: &[PathBuf],
    json: bool,
    pre: PreflightArgs,
) -> anyhow::Result<i32> {
    let code = run(paths, json)?;
    if code == 2 || !pre.preflight {
        return Ok(code);
    }
    let workflows: Vec<PathBuf> = collect(paths)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| kind_of(f) == Kind::Workflow)
        .collect();
    let args = crate::cmd_run::RunArgs {
        event: Some(pre.event),
        workflows,
        secret: pre.secret,
        secret_file: pre.secret_file,
        input: pre.input,
        platform: pre.platform,
        image: pre.image,
        host: pre.host,
        offline: pre.offline,
        dry_run: true,
        ..Default::default()
    };
    let request = crate::cmd_run::request_from_args(&args, indexmap::IndexMap::new(), None)?;
    let p = crate::cmd_run::prepare(request, &args)?;
    let n = print_preflight(p.config(), json).await;
    Ok(if n > 0 { 1 } else { code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of(Path::new("a/action.yml")), Kind::Action);
        assert_eq!(kind_of(Path::new(".gantry/config.yml")), Kind::GantryConfig);
        assert_eq!(
            kind_of(Path::new(".github/workflows/ci.yml")),
            Kind::Workflow
        );
    }

    #[test]
    fn exit_codes() {
        let dir = std::env::temp_dir().join(format!("gantry-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yml");
        std::fs::write(
            &good,
            "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n",
        )
        .unwrap();
        assert_eq!(run(std::slice::from_ref(&good), true).unwrap(), 0);
        let bad = dir.join("bad.yml");
        std::fs::write(
            &bad,
            "on: push\njobs:\n  a:\n    steps:\n      - run: echo\n",
        )
        .unwrap();
        assert_eq!(run(&[bad], true).unwrap(), 1);
        assert_eq!(run(&[dir.join("missing.yml")], false).unwrap(), 2);
        std::fs::remove_dir_all(&dir).ok();
    }
}
