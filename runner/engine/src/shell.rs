//! Shells for `run` steps (GHA-SEMANTICS §5.1, `actions/runner` `ScriptHandlerHelpers` and
//! `ScriptHandler`), the script file, and the default display name of a `run` step (§1.4).

use std::path::{Path, PathBuf};

/// A resolved `shell:`: program, argument template (containing `{0}`) and script details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// Program as written (`bash`, `/usr/bin/env`, `python3`…), looked up on the job's PATH.
    pub program: String,
    /// Argument string with `{0}` where the script path goes, parsed like .NET does.
    pub args_template: String,
    /// Script file extension including the dot (`.sh`), or empty.
    pub extension: &'static str,
    /// Built-in name whose content fix-ups apply (`pwsh`, `powershell`, `cmd`), if any.
    fixups: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error(
        "Invalid shell option. Shell must be a valid built-in (bash, sh, cmd, powershell, pwsh) or a format string containing '{{0}}'"
    )]
    Invalid,
}

/// Default argument templates of the built-in shells.
fn builtin_args(name: &str) -> Option<&'static str> {
    Some(match name {
        "bash" => "--noprofile --norc -e -o pipefail {0}",
        "sh" => "-e {0}",
        "python" => "{0}",
        "pwsh" | "powershell" => "-command \". '{0}'\"",
        "cmd" => "/D /E:ON /V:OFF /S /C \"CALL \"{0}\"\"",
        _ => return None,
    })
}

/// Script extension chosen by the program's file name without extension.
fn extension_for(program: &str) -> &'static str {
    let base = Path::new(program)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(program);
    match base {
        "bash" | "sh" => ".sh",
        "pwsh" | "powershell" => ".ps1",
        "cmd" => ".cmd",
        "python" => ".py",
        _ => "",
    }
}

fn fixups_for(program: &str) -> Option<&'static str> {
    let base = Path::new(program)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(program);
    match base {
        "pwsh" => Some("pwsh"),
        "powershell" => Some("powershell"),
        "cmd" => Some("cmd"),
        _ => None,
    }
}

impl Shell {
    /// Resolves `shell:` (the step's, else the defaults', already chosen by the caller) on a
    /// non-Windows runner. `bash_on_path`: whether `bash` is found on the job's PATH (only
    /// consulted when `shell` is unset).
    pub fn resolve(shell: Option<&str>, bash_on_path: bool) -> Result<Shell, ShellError> {
        let shell = shell.filter(|s| !s.is_empty());
        let Some(shell) = shell else {
            let program = if bash_on_path { "bash" } else { "sh" };
            return Ok(Shell {
                program: program.to_string(),
                args_template: "-e {0}".to_string(),
                extension: ".sh",
                fixups: None,
            });
        };
        let (program, args) = match shell.split_once(' ') {
            Some((p, a)) => (p, a.trim_start()),
            None => (shell, ""),
        };
        let args_template = if args.is_empty() {
            builtin_args(program).ok_or(ShellError::Invalid)?
        } else {
            args
        };
        if !args_template.contains("{0}") {
            return Err(ShellError::Invalid);
        }
        Ok(Shell {
            program: program.to_string(),
            args_template: args_template.to_string(),
            extension: extension_for(program),
            fixups: fixups_for(program),
        })
    }

    /// The `shell:` line of the log header: `<program path> <template>`.
    pub fn display(&self, program_path: Option<&Path>) -> String {
        let prog = program_path.map_or_else(|| self.program.clone(), |p| p.display().to_string());
        format!("{prog} {}", self.args_template)
    }

    /// Applies the content fix-ups (pwsh/powershell error preference and exit code, cmd
    /// `@echo off`).
    pub fn fix_up_script(&self, contents: &str) -> String {
        match self.fixups {
            Some("pwsh" | "powershell") => format!(
                "$ErrorActionPreference = 'stop'\n{contents}\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) {{ exit $LASTEXITCODE }}"
            ),
            Some("cmd") => format!("@echo off\n{contents}"),
            _ => contents.to_string(),
        }
    }

    /// Writes the script (after fix-ups, UTF-8 without BOM) to `<dir>/<uuid><ext>`, returning
    /// the host path. `ready` is a blank script already renamed for this step (see
    /// [`crate::envfile::spare::Leftovers`]); it is used when it is still there.
    pub fn write_script(
        &self,
        spares: &crate::envfile::spare::SparePool,
        dir: &Path,
        contents: &str,
        ready: Option<PathBuf>,
    ) -> std::io::Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let text = self.fix_up_script(contents);
        let reused = ready
            .and_then(|p| {
                // Never through a symlink a step may have put there.
                let f = std::fs::File::options()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&p)
                    .ok()?;
                Some((p, f))
            })
            .or_else(|| {
                // A spare (blank) inode from an earlier step, see `envfile::spare`.
                let p = dir.join(format!("{}{}", uuid::Uuid::new_v4(), self.extension));
                spares.take(dir, &p).map(|f| (p, f))
            });
        if let Some((path, mut f)) = reused {
            // The spare holds zero bytes: write over them and cut the rest (cutting within
            // the file's last block frees nothing).
            let meta = f.metadata()?;
            let old_len = meta.len();
            // Scripts may hold secrets: owner-only, whatever the spare was before.
            if meta.permissions().mode() & 0o777 != 0o600 {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(text.as_bytes())?;
            if old_len > text.len() as u64 {
                f.set_len(text.len() as u64)?;
            }
            return Ok(path);
        }
        let path = dir.join(format!("{}{}", uuid::Uuid::new_v4(), self.extension));
        // Created owner-only (0600): a script may hold secrets.
        let create = |p: &Path| {
            std::fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)?
                .write_all(text.as_bytes())
        };
        match create(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                create(&path)?;
            }
            r => r?,
        }
        Ok(path)
    }

    /// Disposes of a script after its step: parked as a spare inode for a later step's
    /// script or file commands, or deleted.
    pub fn discard_script(spares: &crate::envfile::spare::SparePool, dir: &Path, path: &Path) {
        if !spares.park(dir, path) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The argv for running the script at `script_path` (in the job's view): `{0}` replaced
    /// by the path with `"` escaped as `\"`, then split like .NET splits an argument string.
    pub fn argv(&self, program_path: &str, script_path: &str) -> Vec<String> {
        let args = self
            .args_template
            .replace("{0}", &script_path.replace('"', "\\\""));
        let mut argv = vec![program_path.to_string()];
        argv.extend(split_arguments(&args));
        argv
    }
}

/// Splits an argument string like .NET's `Process` on Unix (`ParseArgumentsIntoList`):
/// whitespace separates, `"` groups, `""` inside quotes is a literal quote, and backslashes
/// are literal except before a `"` (pairs become one backslash, an odd one escapes the quote).
pub fn split_arguments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        if i == chars.len() {
            break;
        }
        let mut arg = String::new();
        let mut in_quotes = false;
        while i < chars.len() {
            let mut backslashes = 0;
            while i < chars.len() && chars[i] == '\\' {
                i += 1;
                backslashes += 1;
            }
            if backslashes > 0 {
                if i >= chars.len() || chars[i] != '"' {
                    arg.extend(std::iter::repeat_n('\\', backslashes));
                } else {
                    arg.extend(std::iter::repeat_n('\\', backslashes / 2));
                    if backslashes % 2 != 0 {
                        arg.push('"');
                        i += 1;
                    }
                }
                continue;
            }
            let c = chars[i];
            if c == '"' {
                if in_quotes && i + 1 < chars.len() && chars[i + 1] == '"' {
                    arg.push('"');
                    i += 1;
                } else {
                    in_quotes = !in_quotes;
                }
                i += 1;
                continue;
            }
            if (c == ' ' || c == '\t') && !in_quotes {
                break;
            }
            arg.push(c);
            i += 1;
        }
        out.push(arg);
    }
    out
}

pub use gantry_backend::host::which;

/// [`which`] results of a run, per (program, PATH). Only programs found are kept: one
/// installed into a PATH directory by an earlier step is still found by a later one, and a
/// run of many small jobs walks PATH once instead of once per job.
#[derive(Default)]
pub struct ProgramCache {
    found: std::sync::Mutex<std::collections::HashMap<(String, String), PathBuf>>,
}

impl ProgramCache {
    pub fn which(&self, program: &str, path: &str) -> Option<PathBuf> {
        let key = (program.to_string(), path.to_string());
        let lock = || self.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = lock().get(&key) {
            return Some(p.clone());
        }
        let found = which(program, path)?;
        lock().insert(key, found.clone());
        Some(found)
    }
}

/// Default display name of a `run` step: `Run <first non-blank line>`.
pub fn run_display_name(script: &str) -> String {
    let first = script.trim_start_matches([' ', '\t', '\r', '\n']);
    let first = first.split(['\r', '\n']).next().unwrap_or("");
    format!("Run {first}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_cache_keeps_only_programs_found() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().display().to_string();
        let cache = ProgramCache::default();
        assert_eq!(cache.which("tool", &path), None);
        // Installed by an earlier step: found by a later one (misses are not kept).
        let tool = tmp.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(cache.which("tool", &path), Some(tool.clone()));
        // A hit is kept for the run: no PATH walk per job.
        std::fs::remove_file(&tool).unwrap();
        assert_eq!(cache.which("tool", &path), Some(tool));
        assert_eq!(cache.which("tool", "/nonexistent"), None);
    }

    #[test]
    fn builtins() {
        let s = Shell::resolve(None, true).unwrap();
        assert_eq!(
            (s.program.as_str(), s.args_template.as_str(), s.extension),
            ("bash", "-e {0}", ".sh")
        );
        let s = Shell::resolve(None, false).unwrap();
        assert_eq!(s.program, "sh");
        let s = Shell::resolve(Some("bash"), false).unwrap();
        assert_eq!(s.args_template, "--noprofile --norc -e -o pipefail {0}");
        assert_eq!(
            s.argv("/bin/bash", "/t/x.sh"),
            [
                "/bin/bash",
                "--noprofile",
                "--norc",
                "-e",
                "-o",
                "pipefail",
                "/t/x.sh"
            ]
        );
        let s = Shell::resolve(Some("sh"), true).unwrap();
        assert_eq!(s.argv("sh", "/t/x.sh"), ["sh", "-e", "/t/x.sh"]);
        let s = Shell::resolve(Some("python"), true).unwrap();
        assert_eq!(
            (s.extension, s.argv("python", "/t/a b.py")),
            (
                ".py",
                vec!["python".to_string(), "/t/a".into(), "b.py".into()]
            )
        );
        let s = Shell::resolve(Some("pwsh"), true).unwrap();
        assert_eq!(s.extension, ".ps1");
        assert_eq!(
            s.argv("pwsh", "/t/x.ps1"),
            ["pwsh", "-command", ". '/t/x.ps1'"]
        );
        let fixed = s.fix_up_script("Write-Host hi");
        assert!(fixed.starts_with("$ErrorActionPreference = 'stop'\nWrite-Host hi\n"));
        assert!(fixed.ends_with("{ exit $LASTEXITCODE }"));
        assert_eq!(
            Shell::resolve(Some("cmd"), true)
                .unwrap()
                .fix_up_script("x"),
            "@echo off\nx"
        );
    }

    #[test]
    fn custom() {
        let s = Shell::resolve(Some("bash {0}"), true).unwrap();
        assert_eq!(
            (s.extension, s.argv("bash", "/t/x.sh")),
            (".sh", vec!["bash".to_string(), "/t/x.sh".into()])
        );
        let s = Shell::resolve(Some("perl -w {0}"), true).unwrap();
        assert_eq!(
            (s.extension, s.argv("perl", "/t/x")),
            ("", vec!["perl".to_string(), "-w".into(), "/t/x".into()])
        );
        let s = Shell::resolve(Some("/usr/bin/python3 -u \"{0}\""), true).unwrap();
        assert_eq!(s.extension, "");
        assert_eq!(
            s.argv("/usr/bin/python3", "/t/a \"b\".py"),
            ["/usr/bin/python3", "-u", "/t/a \"b\".py"]
        );
        assert_eq!(Shell::resolve(Some("perl"), true), Err(ShellError::Invalid));
        assert_eq!(
            Shell::resolve(Some("bash -e"), true),
            Err(ShellError::Invalid)
        );
        assert!(ShellError::Invalid.to_string().contains("'{0}'"));
    }

    #[test]
    fn dotnet_argument_splitting() {
        assert_eq!(split_arguments(r#"a "b c" d"#), ["a", "b c", "d"]);
        assert_eq!(
            split_arguments(r#"a\\b "x\"y" "p""q" \\\"z"#),
            [r"a\\b", r#"x"y"#, r#"p"q"#, r#"\"z"#]
        );
        assert_eq!(split_arguments("  \t "), Vec::<String>::new());
        assert_eq!(split_arguments(r#""""#), [""]);
    }

    #[test]
    fn script_file_and_which() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Shell::resolve(Some("bash"), true).unwrap();
        let p = s
            .write_script(&Default::default(), tmp.path(), "echo hé\n", None)
            .unwrap();
        assert_eq!(p.extension().unwrap(), "sh");
        assert_eq!(std::fs::read(&p).unwrap(), "echo hé\n".as_bytes());
        assert!(which("sh", "/nonexistent:/bin:/usr/bin").is_some());
        assert!(which("definitely-not-a-program-xyz", "/bin:/usr/bin").is_none());
        assert_eq!(which("/bin/sh", ""), Some(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn display_names() {
        assert_eq!(run_display_name("\n\n  echo hi\necho 2"), "Run echo hi");
        assert_eq!(run_display_name("echo a\r\nb"), "Run echo a");
        assert_eq!(run_display_name(""), "Run ");
    }
}
