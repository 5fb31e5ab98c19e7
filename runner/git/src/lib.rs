//! Git for Gantry: fetching over any transport git2 knows (file, HTTPS with the system's
//! trust store, proxies and credentials: [`transport`]), and building a job's own `.git`
//! from the run's repository ([`repo`]). Shared by the action resolver, `actions/checkout`
//! and job workspaces.

pub mod repo;
pub mod transport;

use transport::{Attempt, FetchError, GitCredentials};

/// Fetches every branch and tag of `url` into `repo` (and `git_ref` itself when it is a
/// commit no branch or tag reaches), over any transport git2 knows (file, HTTPS).
pub fn fetch_into(
    repo: &git2::Repository,
    url: &str,
    creds: &GitCredentials,
    git_ref: &str,
) -> Result<(), FetchError> {
    let attempt = Attempt::default();
    let fail = |e: git2::Error| FetchError::new(url, &e, &attempt);
    let mut remote = repo.remote_anonymous(url).map_err(fail)?;
    let specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
    let mut opts = transport::fetch_options(url, creds, &attempt);
    opts.download_tags(git2::AutotagOption::All);
    remote.fetch(&specs, Some(&mut opts), None).map_err(fail)?;
    if is_full_sha(git_ref)
        && repo
            .find_commit(git2::Oid::from_str(git_ref).unwrap())
            .is_err()
    {
        // A commit not reachable from any branch or tag: ask for it directly.
        let attempt = Attempt::default();
        let mut opts = transport::fetch_options(url, creds, &attempt);
        let _ = remote.fetch(&[git_ref], Some(&mut opts), None);
    }
    Ok(())
}

/// A 7 to 40 digit hexadecimal string (a short or full commit sha).
pub fn is_hex_sha(s: &str) -> bool {
    (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A full 40 digit commit sha.
pub fn is_full_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
