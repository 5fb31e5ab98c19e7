//! `gantry image build [NAME...] [--force]`: build Gantry's local images (no registry needed).
//!
//! The build script and Dockerfiles are embedded in the binary, so this works from any
//! directory: they are written to a temporary directory and `build-images.sh` runs there.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// `docker/build-images.sh`, embedded.
pub const BUILD_SCRIPT: &str = include_str!("../../../docker/build-images.sh");
/// `docker/busybox/Dockerfile`, embedded.
pub const BUSYBOX_DOCKERFILE: &str = include_str!("../../../docker/busybox/Dockerfile");

/// Image names accepted by `gantry image build`.
pub const IMAGE_NAMES: [&str; 3] = ["busybox", "debian", "all"];

/// Build the named images (`busybox`, `debian`, `all`; none means all). Existing images are
/// skipped unless `force`. Returns the script's exit code.
pub fn run(names: &[String], force: bool) -> anyhow::Result<i32> {
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
    if force {
        cmd.arg("--force");
    }
    cmd.args(names);
    let status = cmd.status().context("running bash (is it installed?)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(status?.code().unwrap_or(1))
}

/// Write the embedded script and Dockerfiles under `dir` (`dir/build-images.sh`,
/// `dir/busybox/Dockerfile`); returns the script path.
pub fn write_files(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir.join("busybox"))?;
    std::fs::write(dir.join("busybox/Dockerfile"), BUSYBOX_DOCKERFILE)?;
    let script = dir.join("build-images.sh");
    std::fs::write(&script, BUILD_SCRIPT)?;
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_rejected_before_running_anything() {
        let err = run(&["windows".to_string()], false)
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
        assert!(dir.path().join("busybox/Dockerfile").exists());
    }
}
