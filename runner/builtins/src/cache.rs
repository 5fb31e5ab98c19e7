//! `actions/cache`, `actions/cache/restore`, `actions/cache/save` over a local store shared
//! across runs: `<cache_dir>/<id>/` with `meta.json` and the saved paths under `files/`.
//! An entry is written to a temp dir and renamed into place, and never changed afterwards,
//! so concurrent jobs and runs are safe (the first writer of a key wins, as on GitHub).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::files;
use super::{ActionEnv, ActionResult, BuiltinAction, BuiltinError, input, input_bool, input_lines};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Restore now, save at job end (the post stage).
    Both,
    Restore,
    Save,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: String,
    /// Hash of the path list: an entry only restores for the same paths (GitHub's version).
    pub version: String,
    pub created_ns: u128,
    pub paths: Vec<String>,
    #[serde(skip)]
    pub dir: PathBuf,
}

fn hash(s: &str) -> String {
    git2::Oid::hash_object(git2::ObjectType::Blob, s.as_bytes())
        .map(|o| o.to_string())
        .unwrap_or_default()
}

fn version(paths: &[String]) -> String {
    hash(&paths.join("\n"))
}

/// Every entry in the store.
pub fn entries(store: &Path) -> Vec<CacheEntry> {
    let Ok(rd) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let b = std::fs::read(e.path().join("meta.json")).ok()?;
            let mut m: CacheEntry = serde_json::from_slice(&b).ok()?;
            m.dir = e.path();
            Some(m)
        })
        .collect()
}

/// Finds the entry for `key` (exact) or the newest whose key starts with one of
/// `restore_keys` (tried in order). Returns the entry and whether it was an exact match.
pub fn lookup(
    store: &Path,
    key: &str,
    restore_keys: &[String],
    paths: &[String],
) -> Option<(CacheEntry, bool)> {
    let v = version(paths);
    let mut all: Vec<CacheEntry> = entries(store)
        .into_iter()
        .filter(|e| e.version == v)
        .collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.created_ns));
    if let Some(e) = all.iter().find(|e| e.key == key) {
        return Some((e.clone(), true));
    }
    for rk in restore_keys {
        if let Some(e) = all.iter().find(|e| e.key == *rk) {
            return Some((e.clone(), false));
        }
        if let Some(e) = all.iter().find(|e| e.key.starts_with(rk.as_str())) {
            return Some((e.clone(), false));
        }
    }
    None
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Copies an entry's files back.
pub fn restore(entry: &CacheEntry, env: &ActionEnv<'_>) -> Result<usize, String> {
    let mut n = 0;
    for (i, p) in entry.paths.iter().enumerate() {
        let src = entry.dir.join("files").join(i.to_string());
        if !src.exists() {
            continue;
        }
        let dest = if has_glob(p) {
            files::place(env, "path", "")?
        } else {
            files::place(env, "path", p)?
        };
        n += files::copy_in("path", &src, &dest)?;
    }
    Ok(n)
}

/// Saves `paths` under `key`. `Ok(false)` when an entry for the key exists already.
pub fn save(
    store: &Path,
    key: &str,
    paths: &[String],
    env: &ActionEnv<'_>,
) -> Result<bool, String> {
    let v = version(paths);
    let id = hash(&format!("{key}\n{v}"));
    let dest = store.join(&id);
    if dest.join("meta.json").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(store).map_err(|e| e.to_string())?;
    let tmp = store.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut count = 0;
    let mut work = || -> Result<(), String> {
        for (i, p) in paths.iter().enumerate() {
            let out = tmp.join("files").join(i.to_string());
            let found = files::collect(env, "path", std::slice::from_ref(p))?;
            // A glob's files keep their workspace paths; a named file or directory is
            // stored as itself.
            let base = if has_glob(p) {
                env.workspace.clone()
            } else {
                files::place(env, "path", p)?.host_path()
            };
            for f in found.files {
                let host = f.host_path();
                let rel = host
                    .strip_prefix(&base)
                    .map_err(|_| format!("input 'path': '{p}' leaves the workspace"))?;
                let dst = if rel.as_os_str().is_empty() {
                    out.clone()
                } else {
                    out.join(rel)
                };
                files::copy_out(&f.place, &dst)?;
                count += 1;
            }
        }
        let meta = CacheEntry {
            key: key.to_string(),
            version: v.clone(),
            created_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            paths: paths.to_vec(),
            dir: PathBuf::new(),
        };
        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        std::fs::write(
            tmp.join("meta.json"),
            serde_json::to_vec_pretty(&meta).unwrap(),
        )
        .map_err(|e| e.to_string())
    };
    if let Err(e) = work() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if count == 0 {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!(
            "Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved ({})",
            paths.join(", ")
        ));
    }
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another job saved the same key first.
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(false);
    }
    Ok(true)
}

fn key_and_paths(inputs: &IndexMap<String, String>) -> Result<(String, Vec<String>), String> {
    let key = input(inputs, "key")
        .ok_or("Input required and not supplied: key")?
        .trim()
        .to_string();
    if key.len() > 512 {
        return Err(format!(
            "Key Validation Error: {key} cannot be larger than 512 characters."
        ));
    }
    if key.contains(',') {
        return Err(format!(
            "Key Validation Error: {key} cannot contain commas."
        ));
    }
    let paths = input_lines(inputs, "path");
    if paths.is_empty() {
        return Err("Input required and not supplied: path".into());
    }
    Ok((key, paths))
}

#[async_trait]
impl BuiltinAction for Cache {
    fn name(&self) -> &'static str {
        match self {
            Cache::Both => "actions/cache",
            Cache::Restore => "actions/cache/restore",
            Cache::Save => "actions/cache/save",
        }
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let (key, paths) = key_and_paths(inputs)?;
        if *self == Cache::Save {
            match save(&env.cache_dir, &key, &paths, env) {
                Ok(true) => res.log(format!("Cache saved with key: {key}")),
                Ok(false) => res.log(format!("Cache already exists for key: {key}; not saving")),
                Err(e) => res.warnings.push(e),
            }
            return Ok(res);
        }
        let restore_keys = input_lines(inputs, "restore-keys");
        let lookup_only = input_bool(inputs, "lookup-only", false);
        res.output("cache-primary-key", key.clone());
        let mut exact = false;
        match lookup(&env.cache_dir, &key, &restore_keys, &paths) {
            Some((entry, is_exact)) => {
                exact = is_exact;
                if !lookup_only {
                    let n = restore(&entry, env)?;
                    res.log(format!(
                        "Cache restored from key: {} ({n} file(s))",
                        entry.key
                    ));
                } else {
                    res.log(format!("Cache found for key: {} (lookup only)", entry.key));
                }
                res.output("cache-hit", is_exact.to_string());
                res.output("cache-matched-key", entry.key.clone());
            }
            None => {
                if input_bool(inputs, "fail-on-cache-miss", false) {
                    return Err(format!(
                        "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: {key}"
                    ).into());
                }
                res.log(format!(
                    "Cache not found for input keys: {}",
                    std::iter::once(key.clone())
                        .chain(restore_keys)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                res.output("cache-hit", "false");
            }
        }
        if *self == Cache::Both {
            res.post = true;
            res.state.insert("CACHE_KEY".into(), key);
            res.state.insert(
                "CACHE_RESULT".into(),
                if exact { "hit".into() } else { "miss".into() },
            );
        }
        Ok(res)
    }

    async fn post(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
        state: &IndexMap<String, String>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        if state.get("CACHE_RESULT").map(String::as_str) == Some("hit") {
            res.log("Cache hit occurred on the primary key, not saving cache.");
            return Ok(res);
        }
        if input_bool(inputs, "lookup-only", false) {
            return Ok(res);
        }
        let (_, paths) = key_and_paths(inputs)?;
        let key = state.get("CACHE_KEY").cloned().unwrap_or_default();
        match save(&env.cache_dir, &key, &paths, env) {
            Ok(true) => res.log(format!("Cache saved with key: {key}")),
            Ok(false) => res.log(format!("Cache already exists for key: {key}; not saving")),
            Err(e) => res.warnings.push(e),
        }
        Ok(res)
    }

    fn post_if(&self) -> &'static str {
        "success()"
    }
}
