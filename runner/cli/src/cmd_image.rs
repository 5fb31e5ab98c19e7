//! `gantry image build [NAME...] [--force]`: build Gantry's local images (no registry needed).
//!
//! The build script and Dockerfiles are embedded in the binary, so this works from any
//! directory: they are written to a temporary directory and `build-images.sh` runs there.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// `docker/build-images.sh`, embedded.
pub const BUILD_SCRIPT: &str = include_str!("../../../docker/build-images.sh");
/// The files `build-images.sh` reads beside itself, embedded (path under `docker/`, text).
const SUPPORT_FILES: [(&str, &str); 6] = [
    (
        "busybox/Dockerfile",
        include_str!("../../../docker/busybox/Dockerfile"),
    ),
    (
        "registry/Dockerfile",
        include_str!("../../../docker/registry/Dockerfile"),
    ),
    (
        "registry/config.yml",
        include_str!("../../../docker/registry/config.yml"),
    ),
    (
        "postgres/Dockerfile",
        include_str!("../../../docker/postgres/Dockerfile"),
    ),
    (
        "postgres/docker-entrypoint.sh",
        include_str!("../../../docker/postgres/docker-entrypoint.sh"),
    ),
    ("README.md", include_str!("../../../docker/README.md")),
];

/// Image names accepted by `gantry image build` (`all` is busybox and debian).
pub const IMAGE_NAMES: [&str; 5] = ["busybox", "debian", "registry", "postgres", "all"];

/// How `gantry image build` builds.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Rebuild images that exist.
    pub force: bool,
    /// `--python X.Y`: a debian variant from the suite whose python3 has that version.
    pub python: Option<String>,
    /// `--node N`: a debian variant with that nodejs major and npm.
    pub node: Option<String>,
}

/// Build the named images (none means `all`). Existing images are skipped unless `force`.
/// Returns the script's exit code.
pub fn run(names: &[String], opts: &Options) -> anyhow::Result<i32> {
    for n in names {
        if !IMAGE_NAMES.contains(&n.as_str()) {
            bail!(
                "unknown image '{n}' (expected one of: {})",
                IMAGE_NAMES.join(", ")
            );
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("gantry-image-build-{}-{nanos}", std::process::id()));
    let script = write_files(&dir).context("writing the embedded build script")?;
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if opts.force {
        cmd.arg("--force");
    }
    if let Some(v) = &opts.python {
        cmd.args(["--python", v]);
    }
    if let Some(v) = &opts.node {
        cmd.args(["--node", v]);
    }
    cmd.args(names);
    let status = cmd.status().context("running bash (is it installed?)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(status?.code().unwrap_or(1))
}

/// Write the embedded script and the files it reads under `dir` (as in `docker/`); returns
/// the script path.
pub fn write_files(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    for (rel, text) in SUPPORT_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        if rel.ends_with(".sh") {
            // An image's entrypoint keeps its executable bit through COPY.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let script = dir.join("build-images.sh");
    std::fs::write(&script, BUILD_SCRIPT)?;
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_rejected_before_running_anything() {
        let err = run(&["windows".to_string()], &Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown image 'windows'"), "{err}");
    }

    #[test]
    fn embedded_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_files(dir.path()).unwrap();
        assert!(
            std::fs::read_to_string(script)
                .unwrap()
                .contains("debootstrap")
        );
        for f in [
            "busybox/Dockerfile",
            "registry/config.yml",
            "postgres/docker-entrypoint.sh",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
    }
}
