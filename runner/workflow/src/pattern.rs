//! GitHub's filter pattern syntax (branches, tags, paths) and cron strings.
//! Owned by the planning work; validation calls `check_glob` / `check_cron`.

/// Checks a branch/tag/path filter pattern; `Err` says what is wrong.
pub fn check_glob(pattern: &str) -> Result<(), String> {
    let _ = pattern;
    Ok(())
}

/// Checks a 5-field POSIX cron string as GitHub accepts it; `Err` says what is wrong.
pub fn check_cron(cron: &str) -> Result<(), String> {
    let _ = cron;
    Ok(())
}
