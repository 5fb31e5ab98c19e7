//! Docker container actions (GHA-SEMANTICS §7.5): the image (a `Dockerfile` built by the
//! Docker daemon and cached by content hash, or a pulled `docker://` image), entrypoint and
//! args, environment, and the mounts GitHub uses (`/github/workspace`, `/github/file_commands`,
//! `/github/home`, `/github/workflow`, `/github/runner_temp`).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

pub use crate::backend::docker::DockerRunSpec;
use crate::backend::docker::{BuildSpec, Daemon};

use super::builtin::docker::build_image;
use super::builtin::files;

/// Where the action's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Build this Dockerfile (path relative to the action dir) with the action dir as context.
    Dockerfile(String),
    /// Use (pull when missing) this image.
    Image(String),
}

/// `runs.image` → source: `docker://img`, or a file whose name ends in `Dockerfile` or
/// starts with `Dockerfile.`.
pub fn image_source(image: &str) -> ImageSource {
    if let Some(i) = image.strip_prefix("docker://") {
        return ImageSource::Image(i.to_string());
    }
    ImageSource::Dockerfile(image.to_string())
}

/// Splits `with.args` like a process-argument parser: whitespace separates, double quotes
/// group (and are removed), `\"` is a literal quote.
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
                has = true;
            }
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// Host directories of the job that a docker action sees.
#[derive(Debug, Clone)]
pub struct DockerActionPaths {
    pub workspace: PathBuf,
    /// RUNNER_TEMP on the host (holds `_runner_file_commands`, `_github_home`, `_github_workflow`).
    pub temp: PathBuf,
}

/// The args: `runs.args` each evaluated with `inputs` (done by `eval`), else `with.args`
/// word-split.
pub fn assemble_args(
    runs_args: &[String],
    with_args: Option<&str>,
    mut eval: impl FnMut(&str) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    if !runs_args.is_empty() {
        return runs_args.iter().map(|a| eval(a)).collect();
    }
    Ok(with_args.map(split_args).unwrap_or_default())
}

/// Translates a host path under the workspace or temp dir to the docker action's view.
pub fn translate(p: &str, paths: &DockerActionPaths) -> String {
    let path = Path::new(p);
    let fc = paths.temp.join(crate::envfile::FILE_COMMANDS_DIR);
    let map: [(&Path, &str); 4] = [
        (&fc, "/github/file_commands"),
        (&paths.workspace, "/github/workspace"),
        (&paths.temp.join("_github_home"), "/github/home"),
        (&paths.temp.join("_github_workflow"), "/github/workflow"),
    ];
    for (host, cont) in map {
        if let Ok(rel) = path.strip_prefix(host) {
            return if rel.as_os_str().is_empty() {
                cont.to_string()
            } else {
                format!("{cont}/{}", rel.display())
            };
        }
    }
    if let Ok(rel) = path.strip_prefix(&paths.temp) {
        return format!("/github/runner_temp/{}", rel.display())
            .trim_end_matches('/')
            .to_string();
    }
    p.to_string()
}

/// Builds the container spec: env = `step_env` (INPUT_*, env context, GITHUB_*, RUNNER_*,
/// file-command paths as host paths) translated, then `runs.env` (evaluated; not overriding
/// existing keys), `HOME`, `GITHUB_ACTIONS`, `CI`; the standard mounts.
pub fn assemble(
    image: &str,
    entrypoint: Option<String>,
    args: Vec<String>,
    step_env: &IndexMap<String, String>,
    runs_env: &IndexMap<String, String>,
    paths: &DockerActionPaths,
    network: Option<String>,
) -> DockerRunSpec {
    let mut env = IndexMap::new();
    for (k, v) in step_env {
        if k == "PATH" {
            continue; // the image's PATH stays
        }
        let val = if k.starts_with("GITHUB_") || k.starts_with("RUNNER_") {
            translate(v, paths)
        } else {
            v.clone()
        };
        env.insert(k.clone(), val);
    }
    for (k, v) in runs_env {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
    env.insert("GITHUB_WORKSPACE".into(), "/github/workspace".into());
    env.insert("HOME".into(), "/github/home".into());
    env.insert("GITHUB_ACTIONS".into(), "true".into());
    env.entry("CI".to_string()).or_insert_with(|| "true".into());
    let t = &paths.temp;
    for d in [
        "_github_home",
        "_github_workflow",
        crate::envfile::FILE_COMMANDS_DIR,
    ] {
        let _ = std::fs::create_dir_all(t.join(d));
    }
    let s = |p: PathBuf| p.display().to_string();
    let mut mounts = vec![
        (s(paths.workspace.clone()), "/github/workspace".to_string()),
        (
            s(t.join(crate::envfile::FILE_COMMANDS_DIR)),
            "/github/file_commands".to_string(),
        ),
        (s(t.join("_github_home")), "/github/home".to_string()),
        (
            s(t.join("_github_workflow")),
            "/github/workflow".to_string(),
        ),
        (s(t.clone()), "/github/runner_temp".to_string()),
    ];
    if Path::new("/var/run/docker.sock").exists() {
        mounts.push(("/var/run/docker.sock".into(), "/var/run/docker.sock".into()));
    }
    DockerRunSpec {
        image: image.to_string(),
        entrypoint: entrypoint.filter(|e| !e.is_empty()),
        args,
        env,
        mounts,
        workdir: "/github/workspace".into(),
        network,
    }
}

/// Content hash of a directory (paths, modes and contents).
pub fn dir_hash(dir: &Path) -> String {
    let mut buf = Vec::new();
    for f in files::walk(dir) {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .to_string();
        if rel.starts_with(".git/") {
            continue;
        }
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            f.metadata()
                .map(|m| m.permissions().mode() & 0o111)
                .unwrap_or(0)
        };
        let content = std::fs::read(&f).unwrap_or_default();
        let h = git2::Oid::hash_object(git2::ObjectType::Blob, &content)
            .map(|o| o.to_string())
            .unwrap_or_default();
        buf.extend_from_slice(format!("{rel}\0{mode:o}\0{h}\n").as_bytes());
    }
    git2::Oid::hash_object(git2::ObjectType::Blob, &buf)
        .map(|o| o.to_string())
        .unwrap_or_default()
}

/// Makes the action's image available: a Dockerfile is built once per content hash
/// (`gantry-action:<hash>`; reused across steps, jobs and runs), an image is pulled when
/// missing unless `offline`. Returns the image reference and log lines.
pub async fn ensure_image(
    daemon: &Daemon,
    source: &ImageSource,
    action_dir: &Path,
    offline: bool,
) -> Result<(String, Vec<String>), String> {
    match source {
        ImageSource::Dockerfile(file) => {
            let tag = format!("gantry-action:{}", &dir_hash(action_dir)[..20]);
            if daemon.has_image(&tag).await {
                return Ok((tag, vec!["Using the cached action image".into()]));
            }
            let spec = BuildSpec {
                context: action_dir.to_path_buf(),
                dockerfile: file.clone(),
                tags: vec![tag.clone()],
                ..Default::default()
            };
            let (_, logs) = build_image(daemon, &spec).await.map_err(|f| f.message())?;
            Ok((tag, logs))
        }
        ImageSource::Image(img) => {
            if daemon.has_image(img).await {
                return Ok((img.clone(), Vec::new()));
            }
            let hint = || {
                crate::backend::docker::missing_image_hint(
                    img,
                    crate::backend::docker::ImageUse::Named,
                )
            };
            if offline {
                return Err(format!(
                    "image '{img}' is not available locally and --offline does not pull; {}",
                    hint()
                ));
            }
            daemon.pull(img).await.map_err(|e| {
                format!(
                    "image '{img}' is not available locally and cannot be pulled ({e}); {}",
                    hint()
                )
            })?;
            Ok((img.clone(), vec![format!("Pulled {img}")]))
        }
    }
}
