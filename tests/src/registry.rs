//! A local Docker registry for the tests of `docker/login-action` and
//! `docker/build-push-action`: `gantry/registry` on a loopback port, with htpasswd auth.

use std::process::Command;

use crate::{docker_required, image_exists, text};

/// A `gantry/registry` with htpasswd (bcrypt) auth on a loopback port; removed on drop.
pub struct Registry {
    pub id: String,
    pub port: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

pub fn registry_with_htpasswd(user: &str, password: &str) -> Option<Registry> {
    if !image_exists("gantry/registry:latest") {
        assert!(!docker_required(), "gantry/registry:latest missing");
        eprintln!("SKIP: no gantry/registry:latest");
        return None;
    }
    // bcrypt from the Debian image's python (libxcrypt), the only hash the registry takes.
    let hash = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            "dev.gantry.test=registry",
            "gantry/debian:bookworm",
            "python3",
            "-W",
            "ignore",
            "-c",
            "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            password,
        ])
        .output()
        .unwrap();
    let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
    assert!(hash.starts_with("$2"), "no bcrypt hash: {hash}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
    let out = Command::new("docker")
        .args([
            "run",
            "-d",
            "--label",
            "dev.gantry.test=registry",
            "-p",
            "127.0.0.1::5000",
            "-v",
            &format!("{}:/auth:ro", dir.path().display()),
            "-e",
            "REGISTRY_AUTH=htpasswd",
            "-e",
            "REGISTRY_AUTH_HTPASSWD_REALM=gantry-test",
            "-e",
            "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
            "gantry/registry:latest",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let port = Command::new("docker")
        .args(["port", &id, "5000/tcp"])
        .output()
        .unwrap();
    let port = String::from_utf8_lossy(&port.stdout)
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_default()
        .trim()
        .to_string();
    let reg = Registry {
        id,
        port,
        _dir: dir,
    };
    // Wait until it answers.
    for _ in 0..100 {
        if std::net::TcpStream::connect(format!("127.0.0.1:{}", reg.port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    Some(reg)
}
