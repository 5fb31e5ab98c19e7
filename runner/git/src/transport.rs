//! Git over the network for action sources, reusable workflows and checkouts of other
//! repositories: TLS (OpenSSL through libgit2: the system trust store, `SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, git's `http.sslCAInfo`/`http.sslCAPath`), a token or git's credential
//! helper for authentication (from the user's git configuration, `GIT_CONFIG_GLOBAL`
//! honoured), proxies from `HTTPS_PROXY`/`NO_PROXY` (or git's `http.proxy`), and errors that say which of certificate, authentication or not-found went wrong.
//! Credentials are handed to libgit2 through a callback only, so they never become part
//! of a URL that an error or a log line could show.

use std::cell::Cell;
use std::fmt;
use std::sync::Once;

/// Tokens for git over HTTPS. `Debug` never shows them.
#[derive(Clone, Default)]
pub struct GitCredentials {
    /// `GANTRY_GIT_TOKEN`: sent to every HTTPS source.
    pub any_host: Option<String>,
    /// `GITHUB_TOKEN` (environment or `--secret`): sent to github.com only, so that a
    /// GitHub token never reaches a mirror or another forge.
    pub github: Option<String>,
}

impl fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitCredentials")
            .field("any_host", &self.any_host.as_ref().map(|_| "***"))
            .field("github", &self.github.as_ref().map(|_| "***"))
            .finish()
    }
}

impl GitCredentials {
    /// From `GANTRY_GIT_TOKEN` and `GITHUB_TOKEN` (`secrets` first, then `env`); empty
    /// values count as unset.
    pub fn from_sources(
        env: impl Fn(&str) -> Option<String>,
        secrets: &indexmap::IndexMap<String, String>,
    ) -> Self {
        let pick = |name: &str| {
            secrets
                .get(name)
                .cloned()
                .or_else(|| env(name))
                .filter(|v| !v.is_empty())
        };
        GitCredentials {
            any_host: pick("GANTRY_GIT_TOKEN"),
            github: pick("GITHUB_TOKEN"),
        }
    }

    /// The token to offer `url`'s host, if any.
    pub fn token_for(&self, url: &str) -> Option<&str> {
        if let Some(t) = &self.any_host {
            return Some(t);
        }
        let host = host_of(url)?;
        (host.eq_ignore_ascii_case("github.com")
            || host.to_ascii_lowercase().ends_with(".github.com"))
        .then_some(self.github.as_deref())
        .flatten()
    }

    /// Every token value (for masking).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.any_host
            .iter()
            .chain(self.github.iter())
            .map(String::as_str)
    }
}

/// The host of an `https://` / `http://` URL (without user info and port).
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit('@').next()?;
    Some(host.split(':').next().unwrap_or(host))
}

/// `url` with any user info (`user:token@`) replaced by `***@`, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_string(),
    }
}

/// The user's git configuration as git reads it. libgit2 knows `~/.gitconfig`, the XDG file
/// and the system file but not `GIT_CONFIG_GLOBAL`, which git (and tools that set up a
/// throw-away configuration, as GitHub's checkout does) use to name the global file instead
/// of those two: when it is set, that file is the global level (over the system file
/// unless `GIT_CONFIG_NOSYSTEM`), as with git.
fn user_config() -> Result<git2::Config, git2::Error> {
    let global = std::env::var_os("GIT_CONFIG_GLOBAL").filter(|v| !v.is_empty());
    let Some(global) = global else {
        return git2::Config::open_default();
    };
    let mut cfg = git2::Config::new()?;
    let nosystem = std::env::var("GIT_CONFIG_NOSYSTEM")
        .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"));
    if !nosystem && let Ok(system) = git2::Config::find_system() {
        cfg.add_file(&system, git2::ConfigLevel::System, false)?;
    }
    let global = std::path::Path::new(&global);
    // A missing file (or `/dev/null`) is an empty configuration, as for git.
    if global.is_file() {
        cfg.add_file(global, git2::ConfigLevel::Global, false)?;
    }
    Ok(cfg)
}

/// Adds git's `http.sslCAInfo` / `http.sslCAPath` (from the user's git configuration) to
/// libgit2's trust store once per process. `SSL_CERT_FILE`/`SSL_CERT_DIR` need nothing:
/// OpenSSL reads them itself.
fn init_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(cfg) = user_config() else {
            return;
        };
        let file = cfg.get_path("http.sslCAInfo").ok();
        let dir = cfg.get_path("http.sslCAPath").ok();
        // SAFETY: called once, before any fetch of this process uses the TLS context.
        unsafe {
            if let Some(f) = file
                && let Err(e) = git2::opts::set_ssl_cert_file(&f)
            {
                tracing::warn!("git http.sslCAInfo {}: {}", f.display(), e.message());
            }
            if let Some(d) = dir
                && let Err(e) = git2::opts::set_ssl_cert_dir(&d)
            {
                tracing::warn!("git http.sslCAPath {}: {}", d.display(), e.message());
            }
        }
    });
}

/// What one fetch tried, for the error message.
#[derive(Default)]
pub struct Attempt {
    /// Credentials were asked for (the server wants authentication).
    asked: Cell<bool>,
    /// What was offered: a token, git's credential helper, or nothing.
    offered: Cell<Option<&'static str>>,
}

/// Fetch options for `url`: credentials (asked once: a refused token is not retried),
/// automatic proxy detection, TLS set up.
pub fn fetch_options<'a>(
    url: &str,
    creds: &'a GitCredentials,
    attempt: &'a Attempt,
) -> git2::FetchOptions<'a> {
    init_tls();
    let token = creds.token_for(url).map(str::to_string);
    let mut cb = git2::RemoteCallbacks::new();
    cb.credentials(move |url, username, allowed| {
        // ssh asks for the user name first when the URL has none; that is not an attempt.
        if allowed == git2::CredentialType::USERNAME {
            return git2::Cred::username("git");
        }
        if attempt.asked.replace(true) {
            return Err(git2::Error::from_str("credentials refused"));
        }
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            attempt.offered.set(Some("the ssh agent's keys"));
            return git2::Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if !allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            return Err(git2::Error::from_str("no usable credential type"));
        }
        if let Some(t) = &token {
            attempt.offered.set(Some("a token"));
            // GitHub's convention for tokens; other forges accept any user name.
            return git2::Cred::userpass_plaintext(username.unwrap_or("x-access-token"), t);
        }
        if let Ok(cfg) = user_config()
            && let Ok(c) = git2::Cred::credential_helper(&cfg, url, username)
        {
            attempt.offered.set(Some("git's credential helper"));
            return Ok(c);
        }
        Err(git2::Error::from_str("no credentials"))
    });
    let mut proxy = git2::ProxyOptions::new();
    proxy.auto();
    let mut opts = git2::FetchOptions::new();
    opts.remote_callbacks(cb);
    opts.proxy_options(proxy);
    opts
}

/// What went wrong with a fetch, for callers that treat them differently (the resolver
/// tells a refused token from a missing repository; tests assert the kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailure {
    /// The server's TLS certificate is not trusted.
    Certificate,
    /// The server wants credentials, and none or refused ones were offered.
    Authentication,
    /// No such repository (HTTP 404).
    NotFound,
    /// This build of git2 cannot speak TLS.
    NoTls,
    Other,
}

/// A failed fetch: its kind and a sentence that names the URL (without credentials) and
/// says what to do about certificate, authentication and not-found failures.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub kind: FetchFailure,
    message: String,
}

/// What an authentication failure tells the user to do, for the command line.
pub const CLI_AUTH_HINT: &str = "set GANTRY_GIT_TOKEN (any host) or GITHUB_TOKEN / --secret \
     GITHUB_TOKEN (github.com), or configure a git credential helper";

impl FetchError {
    pub fn new(url: &str, e: &git2::Error, attempt: &Attempt) -> Self {
        Self::with_auth_hint(url, e, attempt, CLI_AUTH_HINT)
    }

    /// [`FetchError::new`] whose authentication failure says `auth_hint` (what to set)
    /// instead of the command line's options: the server names its config key.
    pub fn with_auth_hint(url: &str, e: &git2::Error, attempt: &Attempt, auth_hint: &str) -> Self {
        let shown = redact_url(url);
        let msg = e.message();
        let lower = msg.to_ascii_lowercase();
        let (kind, message) = if e.code() == git2::ErrorCode::Certificate
            || e.class() == git2::ErrorClass::Ssl
            || lower.contains("certificate")
        {
            (
                FetchFailure::Certificate,
                format!(
                    "{shown}: TLS certificate not trusted ({msg}); point SSL_CERT_FILE (or \
                     git's http.sslCAInfo) at the CA bundle that signs the server's certificate"
                ),
            )
        } else if e.code() == git2::ErrorCode::Auth
            || attempt.asked.get()
            || lower.contains("401")
            || lower.contains("authentication")
        {
            let how = match attempt.offered.get() {
                Some(what) => format!("{what} was offered and refused"),
                None => "no credentials were offered".to_string(),
            };
            (
                FetchFailure::Authentication,
                format!("{shown}: authentication required ({how}); {auth_hint}"),
            )
        } else if lower.contains("404") || lower.contains("not found") {
            (
                FetchFailure::NotFound,
                format!("{shown}: repository not found (HTTP 404)"),
            )
        } else if lower.contains("there is no tls stream available") {
            (
                FetchFailure::NoTls,
                format!("{shown}: this build of Gantry has no TLS support for git ({msg})"),
            )
        } else {
            (FetchFailure::Other, format!("{shown}: {msg}"))
        };
        FetchError { kind, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_hosts() {
        assert_eq!(
            redact_url("https://u:tok@example.com/o/r"),
            "https://***@example.com/o/r"
        );
        assert_eq!(
            redact_url("https://example.com/o/r"),
            "https://example.com/o/r"
        );
        assert_eq!(redact_url("file:///srv/o/r.git"), "file:///srv/o/r.git");
        let c = GitCredentials {
            any_host: None,
            github: Some("gh".into()),
        };
        assert_eq!(c.token_for("https://github.com/o/r"), Some("gh"));
        assert_eq!(c.token_for("https://mirror.example/o/r"), None);
        assert!(!format!("{c:?}").contains("gh\""));
        let c = GitCredentials {
            any_host: Some("any".into()),
            github: Some("gh".into()),
        };
        assert_eq!(c.token_for("https://mirror.example:8443/o/r"), Some("any"));
    }
}
