//! `docker/setup-buildx-action`, `docker/login-action` and `docker/build-push-action` on the
//! local daemon through the Docker backend's `Daemon` (classic builder; no buildx). Registry
//! credentials from `login-action` live in memory only (never written to disk) for the rest
//! of the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use indexmap::IndexMap;

use super::files;
use super::{
    ActionEnv, ActionResult, BuiltinAction, BuiltinError, input, input_bool, input_lines,
    input_list,
};
use gantry_backend::docker::{BuildFailure, BuildSpec, Daemon, RegistryLogin};

/// Logins by (run dir, registry host).
static LOGINS: Mutex<Vec<(PathBuf, String, RegistryLogin)>> = Mutex::new(Vec::new());

/// The registry host of an image reference (`docker.io` for Docker Hub).
pub fn registry_of(image: &str) -> String {
    let first = image.split('/').next().unwrap_or("");
    if image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        first.to_string()
    } else {
        "docker.io".to_string()
    }
}

fn credentials_for(run_dir: &Path, registry: &str) -> Option<RegistryLogin> {
    LOGINS
        .lock()
        .unwrap()
        .iter()
        .find(|(r, reg, _)| r == run_dir && reg == registry)
        .map(|(_, _, c)| c.clone())
}

/// A ustar archive of a directory (the build context), `.git` and `.dockerignore`d
/// top-level names left out.
pub fn tar_dir(dir: &Path) -> Result<Vec<u8>, String> {
    let ignore: Vec<String> = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| {
            t.lines()
                .map(|l| l.trim().trim_end_matches('/').to_string())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for f in files::walk(dir) {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        if rel == ".git" || rel.starts_with(".git/") {
            continue;
        }
        if ignore
            .iter()
            .any(|i| rel == *i || rel.starts_with(&format!("{i}/")))
        {
            continue;
        }
        let data = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            f.metadata()
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o644)
        };
        if rel.len() > 99 {
            tar_header(&mut out, "././@LongLink", rel.len() as u64 + 1, 0o644, b'L');
            out.extend_from_slice(rel.as_bytes());
            out.push(0);
            pad(&mut out);
        }
        tar_header(&mut out, &rel, data.len() as u64, mode, b'0');
        out.extend_from_slice(&data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    Ok(out)
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.extend(std::iter::repeat_n(0u8, 512 - rem));
    }
}

fn tar_header(out: &mut Vec<u8>, name: &str, size: u64, mode: u32, kind: u8) {
    let mut h = [0u8; 512];
    let nb = name.as_bytes();
    let n = nb.len().min(99);
    h[..n].copy_from_slice(&nb[..n]);
    let octal = |h: &mut [u8; 512], off: usize, len: usize, v: u64| {
        let s = format!("{:0width$o}", v, width = len - 1);
        h[off..off + len - 1].copy_from_slice(&s.as_bytes()[s.len() - (len - 1)..]);
    };
    octal(&mut h, 100, 8, mode as u64);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
}

/// Builds `spec` (its context sent as a tar archive); a failure keeps the whole build log
/// ([`BuildFailure::message`] prints it).
pub async fn build_image(
    daemon: &Daemon,
    spec: &BuildSpec,
) -> Result<(String, Vec<String>), BuildFailure> {
    let tar = tar_dir(&spec.context).map_err(|error| BuildFailure {
        error,
        log: Vec::new(),
    })?;
    daemon.build(spec, tar).await
}

fn is_loopback(registry: &str) -> bool {
    let host = registry.split(':').next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// The `WWW-Authenticate` challenge: scheme (`basic`, `bearer`) and its parameters.
fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, tail) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (&v[..end], &v[end..])
        };
        params.insert(k, val.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

/// What a registry answered, for an error: status and the start of the body, the password
/// removed.
async fn answer(r: reqwest::Response, password: &str) -> String {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let mut body: String = body.trim().chars().take(300).collect();
    if !password.is_empty() {
        body = body.replace(password, "***");
    }
    format!(
        "HTTP {status}{}",
        if body.is_empty() {
            String::new()
        } else {
            format!(": {body}")
        }
    )
}

/// Checks `username`/`password` against the registry's `/v2/` the way `docker login` does:
/// an anonymous request, then the challenge it answers with (`Basic`, or a `Bearer` token
/// from the realm with the credentials). Returns how the login was verified, or the
/// registry's answer.
pub async fn verify_login(
    registry: &str,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let host = if registry == "docker.io" || registry == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    };
    let scheme = if is_loopback(registry) {
        "http"
    } else {
        "https"
    };
    let base = format!("{scheme}://{host}/v2/");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let reach = |e: reqwest::Error| format!("cannot reach {base}: {}", e.without_url());
    let first = client.get(&base).send().await.map_err(reach)?;
    if first.status().is_success() {
        return Ok("the registry asks for no credentials (GET /v2/ answered 200)".into());
    }
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "{registry}: GET /v2/ answered {}",
            answer(first, password).await
        ));
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (kind, params) = parse_challenge(&challenge);
    match kind.as_str() {
        "basic" => {
            let r = client
                .get(&base)
                .basic_auth(username, Some(password))
                .send()
                .await
                .map_err(reach)?;
            if r.status().is_success() {
                Ok("Login Succeeded (Basic auth, verified with GET /v2/)".into())
            } else {
                Err(format!(
                    "{registry} refused the credentials of '{username}': {}",
                    answer(r, password).await
                ))
            }
        }
        "bearer" => {
            let realm = params.get("realm").ok_or_else(|| {
                format!("{registry}: a Bearer challenge without a realm: {challenge}")
            })?;
            let mut q = vec![("account", username.to_string())];
            if let Some(svc) = params.get("service") {
                q.push(("service", svc.clone()));
            }
            let r = client
                .get(realm)
                .query(&q)
                .basic_auth(username, Some(password))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot reach the token service {realm}: {}",
                        e.without_url()
                    )
                })?;
            if !r.status().is_success() {
                return Err(format!(
                    "{registry}: the token service {realm} refused the credentials of '{username}': {}",
                    answer(r, password).await
                ));
            }
            let body: serde_json::Value = r
                .json()
                .await
                .map_err(|e| format!("{registry}: the token service answered no JSON: {e}"))?;
            let token = body["token"]
                .as_str()
                .or(body["access_token"].as_str())
                .ok_or_else(|| format!("{registry}: the token service answered no token"))?;
            let r = client
                .get(&base)
                .bearer_auth(token)
                .send()
                .await
                .map_err(reach)?;
            if r.status().is_success() {
                Ok("Login Succeeded (Bearer token from the registry's realm, verified with GET /v2/)".into())
            } else {
                Err(format!(
                    "{registry} refused the token for '{username}': {}",
                    answer(r, password).await
                ))
            }
        }
        _ => Err(format!(
            "{registry}: GET /v2/ answered 401 with an unknown challenge '{challenge}'"
        )),
    }
}

pub struct SetupBuildx;

#[async_trait]
impl BuiltinAction for SetupBuildx {
    fn name(&self) -> &'static str {
        "docker/setup-buildx-action"
    }
    async fn run(
        &self,
        _inputs: &IndexMap<String, String>,
        _env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        res.log("Builds use the local Docker daemon through its API (docker/build-push-action is built in); no buildx builder is created.");
        res.output("name", "default");
        res.output("driver", "docker");
        res.output(
            "platforms",
            format!(
                "linux/{}",
                if cfg!(target_arch = "aarch64") {
                    "arm64"
                } else {
                    "amd64"
                }
            ),
        );
        res.output("nodes", "[]");
        Ok(res)
    }
}

pub struct Login;

#[async_trait]
impl BuiltinAction for Login {
    fn name(&self) -> &'static str {
        "docker/login-action"
    }
    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let registry = input(inputs, "registry")
            .map(|r| {
                r.trim()
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .unwrap_or_else(|| "docker.io".into());
        let username = input(inputs, "username").map(str::to_string);
        let password = input(inputs, "password").map(str::to_string);
        if let Some(p) = &password {
            res.masks.push(p.clone());
        }
        if username.is_none() || password.is_none() {
            return Err("Username and password required".into());
        }
        if env.offline && !is_loopback(&registry) {
            return Err(BuiltinError::Offline(format!(
                "offline: not logging in to {registry} (the credentials cannot be checked without the network; loopback registries are allowed)"
            )));
        }
        let how = verify_login(
            &registry,
            username.as_deref().unwrap_or_default(),
            password.as_deref().unwrap_or_default(),
        )
        .await?;
        res.log(format!("{registry}: {how}"));
        let creds = RegistryLogin {
            username,
            password,
            server: registry.clone(),
        };
        {
            let mut l = LOGINS.lock().unwrap();
            l.retain(|(r, reg, _)| !(r == &env.run_dir && reg == &registry));
            l.push((env.run_dir.clone(), registry.clone(), creds));
        }
        res.log(format!(
            "Credentials for {registry} kept in memory for this run"
        ));
        if input_bool(inputs, "logout", true) {
            res.post = true;
            res.state.insert("registry".into(), registry);
        }
        Ok(res)
    }
    async fn post(
        &self,
        _inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
        state: &IndexMap<String, String>,
    ) -> Result<ActionResult, BuiltinError> {
        let reg = state.get("registry").cloned().unwrap_or_default();
        LOGINS
            .lock()
            .unwrap()
            .retain(|(r, g, _)| !(r == &env.run_dir && g == &reg));
        let mut res = ActionResult::default();
        res.log(format!("Logged out of {reg}"));
        Ok(res)
    }
}

pub struct BuildPush;

fn kv_lines(lines: Vec<String>) -> HashMap<String, String> {
    lines
        .into_iter()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[async_trait]
impl BuiltinAction for BuildPush {
    fn name(&self) -> &'static str {
        "docker/build-push-action"
    }
    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let context =
            files::place(env, "context", input(inputs, "context").unwrap_or("."))?.host_path();
        let dockerfile = match input(inputs, "file") {
            Some(f) => {
                let p = files::place(env, "file", f)?.host_path();
                p.strip_prefix(&context)
                    .map(|r| r.display().to_string())
                    .map_err(|_| {
                        format!(
                            "file '{f}' must be inside the context {}",
                            context.display()
                        )
                    })?
            }
            None => "Dockerfile".to_string(),
        };
        for unsupported in [
            "cache-from",
            "cache-to",
            "platforms",
            "secrets",
            "ssh",
            "outputs",
        ] {
            if input(inputs, unsupported).is_some() {
                res.log(format!(
                    "{unsupported}: ignored by the built-in (classic builder)"
                ));
            }
        }
        let spec = BuildSpec {
            context,
            dockerfile,
            tags: input_list(inputs, "tags"),
            labels: kv_lines(input_lines(inputs, "labels")),
            build_args: kv_lines(input_lines(inputs, "build-args")),
            target: input(inputs, "target").map(str::to_string),
            no_cache: input_bool(inputs, "no-cache", false),
            // `--offline`: base images come from the daemon as they are.
            pull: input_bool(inputs, "pull", false) && !env.offline,
        };
        if env.offline && input_bool(inputs, "pull", false) {
            res.log("offline: pull: true ignored (base images are used as the daemon has them)");
        }
        let daemon = Daemon::connect().await?;
        let (id, logs) = match build_image(&daemon, &spec).await {
            Ok(x) => x,
            Err(f) => return Err(f.message().into()),
        };
        res.logs.extend(logs);
        res.log(format!("Built {id}"));
        let mut digest = String::new();
        if input_bool(inputs, "push", false) {
            for t in &spec.tags {
                let registry = registry_of(t);
                if env.offline && !is_loopback(&registry) {
                    return Err(BuiltinError::Offline(format!(
                        "offline: not pushing {t} to {registry} (only loopback registries are reachable with --offline)"
                    )));
                }
                let creds = credentials_for(&env.run_dir, &registry);
                let (pushed, log) = match daemon.push(t, creds.as_ref()).await {
                    Ok(x) => x,
                    // The build's log and the pushes before stay in the message: an `Err`
                    // drops the result's lines, and nothing is lost on failure.
                    Err(f) => {
                        let mut m = f.message();
                        if creds.is_none() {
                            m.push_str(&format!(
                                "\n(no docker/login-action for {registry} in this run: the push went without credentials)"
                            ));
                        }
                        m.push_str("\nbefore the push:");
                        for l in &res.logs {
                            m.push_str("\n  ");
                            m.push_str(l);
                        }
                        return Err(m.into());
                    }
                };
                res.logs.extend(log);
                if !pushed.is_empty() {
                    digest = pushed;
                }
                res.log(format!("Pushed {t}"));
            }
        }
        res.output("imageid", id.clone());
        res.output(
            "digest",
            if digest.is_empty() {
                id.clone()
            } else {
                digest.clone()
            },
        );
        res.output(
            "metadata",
            serde_json::json!({"containerimage.digest": if digest.is_empty() { id } else { digest }, "image.name": spec.tags.join(",")}).to_string(),
        );
        Ok(res)
    }
}
