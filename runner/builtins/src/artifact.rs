//! `actions/upload-artifact` and `actions/download-artifact` over a run-scoped store on
//! disk: `<run_dir>/artifacts/<name>/` holds the files, `<run_dir>/artifacts/.meta/<name>.json`
//! the record. Uploads go to a temp dir first and are renamed into place.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::files;
use super::{ActionEnv, ActionResult, BuiltinAction, BuiltinError, input, input_bool, input_lines};

/// One stored artifact (for the run summary).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArtifactInfo {
    pub id: u64,
    pub name: String,
    pub files: usize,
    pub size: u64,
    pub retention_days: Option<u32>,
    pub job: String,
    /// Host directory holding the files.
    pub path: PathBuf,
}

fn store(run_dir: &Path) -> PathBuf {
    run_dir.join("artifacts")
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.contains(['/', '\\', '"', ':', '<', '>', '|', '*', '?', '\r', '\n'])
        && n != "."
        && n != ".."
}

/// Artifacts of a run, oldest first.
pub fn list_artifacts(run_dir: &Path) -> Vec<ArtifactInfo> {
    let meta = store(run_dir).join(".meta");
    let mut out: Vec<ArtifactInfo> = std::fs::read_dir(meta)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter_map(|b| serde_json::from_slice(&b).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|a| a.id);
    out
}

pub struct Upload;

#[async_trait]
impl BuiltinAction for Upload {
    fn name(&self) -> &'static str {
        "actions/upload-artifact"
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let name = input(inputs, "name")
            .unwrap_or("artifact")
            .trim()
            .to_string();
        if !valid_name(&name) {
            return Err(format!("invalid artifact name '{name}'").into());
        }
        let lines = input_lines(inputs, "path");
        if lines.is_empty() {
            return Err("input 'path' is required".into());
        }
        let include_hidden = input_bool(inputs, "include-hidden-files", false);
        let mut found = files::collect(env, "path", &lines)?;
        if !include_hidden {
            found.files.retain(|f| {
                f.host_path()
                    .strip_prefix(&found.root)
                    .map(|r| {
                        !r.components()
                            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
                    })
                    .unwrap_or(true)
            });
        }
        if found.files.is_empty() {
            let msg = format!(
                "No files were found with the provided path: {}. No artifacts will be uploaded.",
                lines.join(", ")
            );
            return match input(inputs, "if-no-files-found").unwrap_or("warn") {
                "error" => Err(msg.into()),
                "ignore" => {
                    res.log(msg);
                    Ok(res)
                }
                _ => {
                    res.warnings.push(msg);
                    Ok(res)
                }
            };
        }
        let retention_days = match input(inputs, "retention-days") {
            Some(d) => Some(
                d.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("retention-days '{d}' is not a number"))?,
            ),
            None => None,
        };
        let overwrite = input_bool(inputs, "overwrite", false);
        let base = store(&env.run_dir);
        std::fs::create_dir_all(base.join(".meta")).map_err(|e| e.to_string())?;
        let tmp = base.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut size = 0;
        for f in &found.files {
            let host = f.host_path();
            let rel = host.strip_prefix(&found.root).unwrap_or(&host);
            let rel = if rel.as_os_str().is_empty() {
                Path::new(host.file_name().unwrap_or_default())
            } else {
                rel
            };
            if let Err(e) = files::copy_out(&f.place, &tmp.join(rel)) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
            size += f.len;
        }
        let dest = base.join(&name);
        if dest.exists() {
            if !overwrite {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(format!(
                    "an artifact named '{name}' already exists in this run (set overwrite: true to replace it)"
                ).into());
            }
            let old = base.join(format!(".old-{}", uuid::Uuid::new_v4().simple()));
            let _ = std::fs::rename(&dest, &old);
            let _ = std::fs::remove_dir_all(&old);
        }
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(format!("cannot store artifact '{name}': {e}").into());
        }
        let id = list_artifacts(&env.run_dir)
            .iter()
            .map(|a| a.id)
            .max()
            .unwrap_or(0)
            + 1;
        let info = ArtifactInfo {
            id,
            name: name.clone(),
            files: found.files.len(),
            size,
            retention_days,
            job: env.github.job.clone(),
            path: dest.clone(),
        };
        let meta = base.join(".meta").join(format!("{name}.json"));
        let mtmp = base
            .join(".meta")
            .join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&mtmp, serde_json::to_vec_pretty(&info).unwrap())
            .map_err(|e| e.to_string())?;
        std::fs::rename(&mtmp, &meta).map_err(|e| e.to_string())?;
        res.log(format!(
            "Uploaded artifact '{name}': {} file(s), {size} bytes",
            found.files.len()
        ));
        res.output("artifact-id", id.to_string());
        res.output("artifact-url", format!("file://{}", dest.display()));
        Ok(res)
    }
}

pub struct Download;

fn name_matches(pattern: &str, name: &str) -> bool {
    match gantry_workflow::pattern::Pattern::compile(pattern) {
        Ok(p) => p.is_match(name),
        Err(_) => pattern == name,
    }
}

#[async_trait]
impl BuiltinAction for Download {
    fn name(&self) -> &'static str {
        "actions/download-artifact"
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let dest = files::place(env, "path", input(inputs, "path").unwrap_or(""))?;
        let all = list_artifacts(&env.run_dir);
        if let Some(name) = input(inputs, "name") {
            let a = all
                .iter()
                .find(|a| a.name == name.trim())
                .ok_or_else(|| format!("Unable to find an artifact with the name: {name}"))?;
            let n = files::copy_in("path", &a.path, &dest)?;
            res.log(format!(
                "Downloaded artifact '{}' ({n} file(s)) to {}",
                a.name,
                dest.host_path().display()
            ));
        } else {
            let pattern = input(inputs, "pattern");
            let merge = input_bool(inputs, "merge-multiple", false);
            let chosen: Vec<&ArtifactInfo> = all
                .iter()
                .filter(|a| pattern.is_none_or(|p| name_matches(p, &a.name)))
                .collect();
            for a in &chosen {
                let d = if merge {
                    dest.clone()
                } else {
                    dest.join(Path::new(&a.name))
                };
                let n = files::copy_in("path", &a.path, &d)?;
                res.log(format!(
                    "Downloaded artifact '{}' ({n} file(s)) to {}",
                    a.name,
                    d.host_path().display()
                ));
            }
            if chosen.is_empty() {
                res.log("No artifacts to download");
            }
        }
        res.output("download-path", dest.host_path().display().to_string());
        Ok(res)
    }
}
