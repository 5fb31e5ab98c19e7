//! JavaScript actions (`using: node12|16|20|24`, GHA-SEMANTICS §8.3): stages with their
//! conditions, the node program (host node, the job image's node, or a node runtime copied
//! into the job's temp dir, which containers mount), `STATE_*` from `GITHUB_STATE`.

use std::path::{Path, PathBuf};

use gantry_workflow::{Action, ActionRuns};
use indexmap::IndexMap;

/// A stage of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pre,
    Main,
    Post,
}

/// One runnable stage: script (node) or entrypoint (docker), and its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    pub stage: Stage,
    /// Script path relative to the action dir (node) or entrypoint (docker; `None` = image's).
    pub target: Option<String>,
    /// `pre-if`/`post-if` as written (default `always()`), evaluated unwrapped; `None` for main.
    pub condition: Option<String>,
}

/// The stages of a node or docker action. Local (`./`) actions get no pre stage (§8.1).
pub fn stages(action: &Action, local: bool) -> Vec<StageSpec> {
    let cond = |c: &Option<String>| {
        Some(
            c.clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "always()".into()),
        )
    };
    let mut out = Vec::new();
    match &action.runs {
        ActionRuns::Node {
            main,
            pre,
            pre_if,
            post,
            post_if,
            ..
        } => {
            if let (Some(p), false) = (pre, local) {
                out.push(StageSpec {
                    stage: Stage::Pre,
                    target: Some(p.clone()),
                    condition: cond(pre_if),
                });
            }
            out.push(StageSpec {
                stage: Stage::Main,
                target: Some(main.clone()),
                condition: None,
            });
            if let Some(p) = post {
                out.push(StageSpec {
                    stage: Stage::Post,
                    target: Some(p.clone()),
                    condition: cond(post_if),
                });
            }
        }
        ActionRuns::Docker {
            entrypoint,
            pre_entrypoint,
            pre_if,
            post_entrypoint,
            post_if,
            ..
        } => {
            if let (Some(p), false) = (pre_entrypoint, local) {
                out.push(StageSpec {
                    stage: Stage::Pre,
                    target: Some(p.clone()),
                    condition: cond(pre_if),
                });
            }
            out.push(StageSpec {
                stage: Stage::Main,
                target: entrypoint.clone(),
                condition: None,
            });
            if let Some(p) = post_entrypoint {
                out.push(StageSpec {
                    stage: Stage::Post,
                    target: Some(p.clone()),
                    condition: cond(post_if),
                });
            }
        }
        ActionRuns::Composite { .. } => out.push(StageSpec {
            stage: Stage::Main,
            target: None,
            condition: None,
        }),
    }
    out
}

/// The major node version an action asks for (`node20` → 20); 12 and 16 run on a newer node.
pub fn required_major(using: &str) -> Result<u32, String> {
    match using.trim().to_ascii_lowercase().as_str() {
        "node12" | "node16" | "node20" => Ok(20),
        "node24" => Ok(24),
        other => Err(format!(
            "'using: {other}' is not supported, use 'docker', 'node12', 'node16', 'node20' or 'node24' instead"
        )),
    }
}

/// A node program and its version.
#[derive(Debug, Clone)]
pub struct NodeRuntime {
    /// Program path in the job's view.
    pub program: String,
    pub version: String,
}

/// The host's `node` on `path` and its version (`v20.20.2`).
pub fn host_node(path: &str) -> Result<NodeRuntime, String> {
    let program = crate::shell::which("node", path).ok_or(
        "JavaScript actions need Node.js: no `node` on PATH (install Node.js 20 or newer)",
    )?;
    // `node --version` once per binary (path and mtime) per process, not per stage.
    type Versions = std::collections::HashMap<(PathBuf, Option<std::time::SystemTime>), String>;
    static VERSIONS: std::sync::Mutex<Option<Versions>> = std::sync::Mutex::new(None);
    let key = (
        program.clone(),
        std::fs::metadata(&program).and_then(|m| m.modified()).ok(),
    );
    let cached = VERSIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key).cloned());
    let version = match cached {
        Some(v) => v,
        None => {
            let out = std::process::Command::new(&program)
                .arg("--version")
                .output()
                .map_err(|e| format!("{}: {e}", program.display()))?;
            let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
            VERSIONS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Default::default)
                .insert(key, v.clone());
            v
        }
    };
    Ok(NodeRuntime {
        program: program.display().to_string(),
        version,
    })
}

/// Whether `version` (`v20.1.0`) is at least `major`.
pub fn satisfies(version: &str, major: u32) -> bool {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= major)
}

/// `node <action_dir>/<script>`; `action_dir` in the job's view.
pub fn node_argv(node: &str, action_dir: &str, script: &str) -> Vec<String> {
    vec![
        node.to_string(),
        format!(
            "{}/{}",
            action_dir.trim_end_matches('/'),
            script.trim_start_matches("./")
        ),
    ]
}

/// Copies the action directory under the job's temp dir (`<temp>/_actions/<key>`), which
/// job containers mount, and returns the host path (translate it with `to_job_path`).
pub fn stage_action_dir(temp_host: &Path, action_dir: &Path, key: &str) -> Result<PathBuf, String> {
    let dest = temp_host
        .join("_actions")
        .join(crate::workspace::sanitize(key));
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = temp_host
        .join("_actions")
        .join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    super::builtin::files::copy_tree(action_dir, &tmp).map_err(|e| e.to_string())?;
    if std::fs::rename(&tmp, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(dest)
}

/// A node runtime for a container job: the image's `node` when it is new enough (checked by
/// the caller running `node --version` in the container: pass its output as
/// `image_node_version`), else a static node from `GANTRY_NODE_STATIC` (a path on the host)
/// copied to `<temp>/_gantry_node/node` (mounted with the temp dir). Returns the host path
/// to translate, or the image's program name.
pub fn container_node(
    image_node_version: Option<&str>,
    major: u32,
    temp_host: &Path,
) -> Result<ContainerNode, String> {
    if let Some(v) = image_node_version.filter(|v| satisfies(v, major)) {
        return Ok(ContainerNode::Image {
            version: v.trim().to_string(),
        });
    }
    if let Some(stat) = std::env::var_os("GANTRY_NODE_STATIC")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        let dir = temp_host.join("_gantry_node");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let dest = dir.join("node");
        if !dest.exists() {
            std::fs::copy(&stat, &dest).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755));
        }
        return Ok(ContainerNode::Mounted { host_path: dest });
    }
    Err(match image_node_version {
        Some(v) => format!(
            "the job image's node is {} but the action needs node{major}; set GANTRY_NODE_STATIC to a static node binary or use an image with a newer node",
            v.trim()
        ),
        None => format!(
            "the job image has no `node` and no static node runtime is configured (GANTRY_NODE_STATIC): JavaScript actions need node{major} inside the container"
        ),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerNode {
    /// Use `node` from the image's PATH.
    Image { version: String },
    /// Use this copied runtime (translate with `to_job_path`).
    Mounted { host_path: PathBuf },
}

/// `STATE_<key>` (key not upper-cased) for the later stages of the same action instance.
pub fn state_env(state: &IndexMap<String, String>) -> IndexMap<String, String> {
    state
        .iter()
        .map(|(k, v)| (format!("STATE_{k}"), v.clone()))
        .collect()
}

/// The host's node made runnable inside any Linux container of the same architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBundle {
    /// The dynamic loader to run node through (`None`: node is statically linked).
    pub loader: Option<PathBuf>,
    /// Directory of node's shared libraries (with `loader`).
    pub lib_dir: Option<PathBuf>,
    pub node: PathBuf,
}

impl NodeBundle {
    /// The command prefix (`node`, or `ld.so --library-path <lib> node`) with each path
    /// translated by `view`.
    pub fn argv(&self, view: impl Fn(&Path) -> String) -> Vec<String> {
        match (&self.loader, &self.lib_dir) {
            (Some(l), Some(d)) => vec![view(l), "--library-path".into(), view(d), view(&self.node)],
            _ => vec![view(&self.node)],
        }
    }
}

/// Links (or copies) `src` to `dest`.
fn link_or_copy(src: &Path, dest: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dest).map(|_| ())
}

/// Bundles the host's `node` under `<root>/<key>/` (key: path, size and mtime of the
/// binary), once: the binary, and for a dynamically linked node its libraries (found with
/// `ldd`) and the dynamic loader, so it runs in images without a compatible libc (busybox)
/// by starting the loader with `--library-path`. Hard links when `root` is on the same
/// file system, copies otherwise; built in a temp dir and renamed, so concurrent jobs are
/// safe.
pub fn bundle_node(node: &Path, root: &Path) -> Result<NodeBundle, String> {
    let node = std::fs::canonicalize(node).map_err(|e| format!("{}: {e}", node.display()))?;
    let meta = std::fs::metadata(&node).map_err(|e| format!("{}: {e}", node.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let key_src = format!("{}\0{}\0{mtime}", node.display(), meta.len());
    let key = git2::Oid::hash_object(git2::ObjectType::Blob, key_src.as_bytes())
        .map(|o| o.to_string()[..16].to_string())
        .unwrap_or_else(|_| "node".into());
    let dir = root.join(&key);
    // What ldd says decides the layout; it is cheap and also needed to reuse the dir.
    let out = std::process::Command::new("ldd")
        .arg(&node)
        .output()
        .map_err(|e| format!("cannot inspect {} with ldd: {e}", node.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let is_static = text.contains("not a dynamic executable") || text.contains("statically linked");
    let mut libs: Vec<PathBuf> = Vec::new();
    let mut loader: Option<PathBuf> = None;
    if !is_static {
        if !out.status.success() {
            return Err(format!("ldd {}: {}", node.display(), text.trim()));
        }
        for line in text.lines() {
            let line = line.trim();
            if let Some((_, rest)) = line.split_once("=>") {
                let p = rest.trim().split(" (").next().unwrap_or("").trim();
                if p == "not found" {
                    return Err(format!("{}: a library is missing: {line}", node.display()));
                }
                if p.starts_with('/') {
                    libs.push(PathBuf::from(p));
                }
            } else if line.starts_with('/') {
                let p = line.split(" (").next().unwrap_or("").trim();
                loader = Some(PathBuf::from(p));
            }
        }
        if loader.is_none() {
            return Err(format!("ldd {}: no dynamic loader listed", node.display()));
        }
    }
    let bundle = |d: &Path| NodeBundle {
        loader: loader
            .as_ref()
            .map(|l| d.join(l.file_name().unwrap_or_default())),
        lib_dir: loader.as_ref().map(|_| d.join("lib")),
        node: d.join("node"),
    };
    if dir.join("node").is_file() {
        return Ok(bundle(&dir));
    }
    let tmp = root.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let res = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(tmp.join("lib"))?;
        link_or_copy(&node, &tmp.join("node"))?;
        for l in &libs {
            let real = std::fs::canonicalize(l)?;
            link_or_copy(
                &real,
                &tmp.join("lib").join(l.file_name().unwrap_or_default()),
            )?;
        }
        if let Some(l) = &loader {
            let real = std::fs::canonicalize(l)?;
            link_or_copy(&real, &tmp.join(l.file_name().unwrap_or_default()))?;
        }
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("cannot bundle {}: {e}", node.display()));
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("node").is_file() {
            return Err(format!("cannot create {}", dir.display()));
        }
    }
    Ok(bundle(&dir))
}
