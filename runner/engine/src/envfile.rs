//! Environment files (GHA-SEMANTICS §5.3): the per-step `GITHUB_OUTPUT`, `GITHUB_ENV`,
//! `GITHUB_PATH`, `GITHUB_STATE` and `GITHUB_STEP_SUMMARY` files, their creation before a step
//! and their parsing after it.
//!
//! The key/value parser follows `actions/runner`'s `FileCommandManager` exactly, including
//! its quirks: lines are split on `\n` only (a `\r` before it stays in the value), values are
//! never trimmed, and the text before the first `=` is the key even when it is empty.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the directory under `RUNNER_TEMP` holding the per-step files.
pub const FILE_COMMANDS_DIR: &str = "_runner_file_commands";

/// Largest step summary accepted (1 MiB). Larger summaries are reported, not uploaded.
pub const STEP_SUMMARY_LIMIT: u64 = 1024 * 1024;

/// Env keys a step may not set through `GITHUB_ENV` (reported as an error annotation).
pub const BLOCKED_ENV_KEYS: &[&str] = &["NODE_OPTIONS"];

/// Whether `GITHUB_ENV` may not set `key` (case-sensitive, as on Linux).
pub fn is_blocked_env_key(key: &str) -> bool {
    BLOCKED_ENV_KEYS.contains(&key)
}

/// A parse error in a key/value file. The step that wrote the file fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// A non-empty line with neither `=` nor `<<`.
    #[error("Invalid format '{line}'")]
    InvalidFormat { line: String },
    /// `NAME<<DELIM` with an empty name or delimiter.
    #[error("Invalid format '{line}'. Name must not be empty and delimiter must not be empty")]
    EmptyNameOrDelimiter { line: String },
    /// `NAME<<DELIM` without a later line exactly equal to `DELIM`.
    #[error("Invalid value. Matching delimiter not found '{delimiter}'")]
    MissingDelimiter { delimiter: String },
}

/// Reads one line starting at `*index`: returns the line without its `\n` and whether a
/// newline ended it; `None` at the end of the text.
fn read_line<'a>(text: &'a str, index: &mut usize) -> Option<(&'a str, bool)> {
    if *index >= text.len() {
        return None;
    }
    let start = *index;
    match memchr::memchr(b'\n', &text.as_bytes()[start..]) {
        Some(off) => {
            *index = start + off + 1;
            Some((&text[start..start + off], true))
        }
        None => {
            *index = text.len();
            Some((&text[start..], false))
        }
    }
}

/// Parses the text of a `GITHUB_OUTPUT`, `GITHUB_ENV` or `GITHUB_STATE` file into
/// `(key, value)` pairs in file order (later pairs win when applied).
///
/// `NAME=VALUE` (when `=` comes before any `<<`) or a heredoc:
/// ```text
/// NAME<<DELIM
/// line 1
/// line 2
/// DELIM
/// ```
/// The heredoc value is the lines between, joined with their original newlines, without the
/// newline before the delimiter line. The delimiter line may be the last line of the file
/// with or without a trailing newline (as in `actions/runner`).
pub fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut pairs = Vec::new();
    let mut index = 0;
    while let Some((line, _)) = read_line(text, &mut index) {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                pairs.push((line[..e].to_string(), line[e + 1..].to_string()));
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                if name.is_empty() || delimiter.is_empty() {
                    return Err(EnvFileError::EmptyNameOrDelimiter {
                        line: line.to_string(),
                    });
                }
                let start = index;
                let mut end = index;
                loop {
                    match read_line(text, &mut index) {
                        None => {
                            return Err(EnvFileError::MissingDelimiter {
                                delimiter: delimiter.to_string(),
                            });
                        }
                        Some((l, _)) if l == delimiter => break,
                        Some((_, had_newline)) => {
                            // The newline ending this line is excluded from the value unless
                            // another value line follows. A value line without a newline is
                            // the end of the file, so the delimiter is missing.
                            end = if had_newline { index - 1 } else { index };
                        }
                    }
                }
                let value = if end > start { &text[start..end] } else { "" };
                pairs.push((name.to_string(), value.to_string()));
            }
            _ => {
                return Err(EnvFileError::InvalidFormat {
                    line: line.to_string(),
                });
            }
        }
    }
    Ok(pairs)
}

/// Decodes file bytes like .NET's `File.ReadAllText`: UTF-8, a leading BOM dropped, invalid
/// sequences replaced.
pub fn decode_text(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
}

/// Reads and parses a key/value file. A missing file yields no pairs.
pub fn read_key_value_file(path: &Path) -> Result<Vec<(String, String)>, EnvFileFailure> {
    if is_empty_file(path) {
        return Ok(Vec::new());
    }
    match read_command_file(path) {
        Ok(bytes) => parse_key_values(&decode_text(&bytes)).map_err(EnvFileFailure::Parse),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(EnvFileFailure::Io(e)),
    }
}

/// An existing empty file (most steps write no file command): one `stat` instead of
/// open, read and close. A symlink is never "empty": it is read by [`read_command_file`].
fn is_empty_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

/// Reads a file-command file (`<temp>/_runner_file_commands/<uuid>/<name>`) beneath the
/// job's temp directory: a step (in a container job, from inside the container) may have
/// replaced the file or its directory with a symlink, and Gantry reads it on the host, so
/// a link leading out of the temp directory is refused instead of followed.
pub fn read_command_file(path: &Path) -> io::Result<Vec<u8>> {
    let Some(temp) = path.ancestors().nth(3) else {
        return std::fs::read(path);
    };
    let rel = path.strip_prefix(temp).unwrap_or(path);
    let beneath = |e: gantry_beneath::BeneathError| {
        if e.is_not_found() {
            io::Error::from(io::ErrorKind::NotFound)
        } else {
            io::Error::other(e.to_string())
        }
    };
    let root = gantry_beneath::Root::open(temp, "the job's temp directory").map_err(beneath)?;
    root.read(rel).map_err(beneath)
}

/// Why a file command could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileFailure {
    #[error(transparent)]
    Parse(EnvFileError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Parses a `GITHUB_PATH` file: one directory per line (lines end at `\n`, `\r\n` or `\r`,
/// like .NET's `ReadAllLines`), empty lines skipped, no trimming.
pub fn parse_path_file(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, next) = match rest.find(['\r', '\n']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], &rest[i + skip..])
            }
            None => (rest, ""),
        };
        if !line.is_empty() {
            out.push(line.to_string());
        }
        rest = next;
    }
    out
}

/// Reads a `GITHUB_PATH` file; a missing file yields no entries.
pub fn read_path_file(path: &Path) -> io::Result<Vec<String>> {
    if is_empty_file(path) {
        return Ok(Vec::new());
    }
    match read_command_file(path) {
        Ok(bytes) => Ok(parse_path_file(&decode_text(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Adds `GITHUB_PATH` entries to the job's prepend list (oldest first): an entry already
/// present is removed and appended again.
pub fn add_path_entries(prepend: &mut Vec<String>, entries: impl IntoIterator<Item = String>) {
    for entry in entries {
        prepend.retain(|p| *p != entry);
        prepend.push(entry);
    }
}

/// Builds `PATH` from the prepend list (the most recently added first) and the original PATH.
pub fn build_path(prepend: &[String], original: &str) -> String {
    let mut parts: Vec<&str> = prepend.iter().rev().map(String::as_str).collect();
    if !original.is_empty() {
        parts.push(original);
    }
    parts.join(":")
}

/// Outcome of reading a step summary file.
#[derive(Debug, PartialEq, Eq)]
pub enum StepSummary {
    /// Missing or empty: nothing to show.
    Empty,
    /// Markdown, masked line by line (lines joined with `\n`, each ending with one).
    Markdown(String),
    /// Over [`STEP_SUMMARY_LIMIT`]: report this message as an error annotation; the step
    /// result is unaffected.
    TooLarge { message: String },
}

/// Reads `GITHUB_STEP_SUMMARY` after a step, masking each line with `mask`.
pub fn read_step_summary(
    path: &Path,
    mask: impl Fn(&str) -> Cow<'_, str>,
) -> io::Result<StepSummary> {
    let size = match std::fs::symlink_metadata(path) {
        // A link is read (beneath the temp dir) to learn its size.
        Ok(m) if m.is_symlink() => read_command_file(path)?.len() as u64,
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StepSummary::Empty),
        Err(e) => return Err(e),
    };
    if size == 0 {
        return Ok(StepSummary::Empty);
    }
    if size > STEP_SUMMARY_LIMIT {
        return Ok(StepSummary::TooLarge {
            message: format!(
                "$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of {}k, got {}k.",
                STEP_SUMMARY_LIMIT / 1024,
                size / 1024
            ),
        });
    }
    let bytes = read_command_file(path)?;
    let text = decode_text(&bytes);
    let mut out = String::with_capacity(text.len() + 1);
    for line in parse_lines_keep_empty(&text) {
        out.push_str(&mask(line));
        out.push('\n');
    }
    Ok(StepSummary::Markdown(out))
}

/// Lines as .NET `StreamReader.ReadLine` yields them (`\n`, `\r\n`, `\r` end a line; no
/// empty line after a final terminator).
fn parse_lines_keep_empty(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            Some(i) => {
                out.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                out.push(rest);
                rest = "";
            }
        }
    }
    out
}

/// The fresh, empty per-step files of §5.3 (host paths). They live in a directory of
/// their own, `<temp>/_runner_file_commands/<uuid>/`, so that one rename hands a recycled
/// set to a step (see [`spare`]); GitHub names them `set_output_<uuid>` and so on directly
/// in `_runner_file_commands`, a difference no step can rely on (the paths are opaque).
#[derive(Debug, Clone)]
pub struct FileCommandFiles {
    pub uuid: String,
    /// `<temp>/_runner_file_commands`.
    pub dir: PathBuf,
    /// `<temp>/_runner_file_commands/<uuid>`, holding the five files.
    pub step_dir: PathBuf,
    pub output: PathBuf,
    pub env: PathBuf,
    pub path: PathBuf,
    pub state: PathBuf,
    pub summary: PathBuf,
}

/// File names inside a step's file-command directory.
const FILE_NAMES: [&str; 5] = [
    "set_output",
    "set_env",
    "add_path",
    "save_state",
    "step_summary",
];

impl FileCommandFiles {
    /// Creates `<temp>/_runner_file_commands/<uuid>/{set_output,set_env,add_path,
    /// save_state,step_summary}`, empty, under one new uuid: a spare directory parked by an
    /// earlier step of the run when there is one, else new.
    pub fn create(spares: &spare::SparePool, runner_temp: &Path) -> io::Result<FileCommandFiles> {
        let dir = runner_temp.join(FILE_COMMANDS_DIR);
        let uuid = uuid::Uuid::new_v4().to_string();
        let step_dir = dir.join(&uuid);
        let taken = spares.take_dir(runner_temp, &step_dir)
            // A job's first step: its `_runner_file_commands` may not exist yet.
            || (!dir.is_dir()
                && std::fs::create_dir_all(&dir).is_ok()
                && spares.take_dir(runner_temp, &step_dir));
        if !taken {
            match std::fs::create_dir(&step_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&step_dir)?
                }
                Err(e) => return Err(e),
            }
            for name in FILE_NAMES {
                std::fs::File::create(step_dir.join(name))?;
            }
        }
        Ok(Self::at(dir, uuid, step_dir))
    }

    /// `(variable, path)` pairs to export, with paths translated to the job's view.
    pub fn env_vars(&self, to_job_path: impl Fn(&Path) -> String) -> [(&'static str, String); 5] {
        [
            ("GITHUB_OUTPUT", to_job_path(&self.output)),
            ("GITHUB_ENV", to_job_path(&self.env)),
            ("GITHUB_PATH", to_job_path(&self.path)),
            ("GITHUB_STATE", to_job_path(&self.state)),
            ("GITHUB_STEP_SUMMARY", to_job_path(&self.summary)),
        ]
    }

    /// The same directory, emptied and renamed to a fresh uuid for another step; `None`
    /// when it cannot be reused (it is left as it is: [`FileCommandFiles::remove`] it).
    pub fn renew(&self) -> Option<FileCommandFiles> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let step_dir = self.dir.join(&uuid);
        if !spare::renew_dir(&self.step_dir, &FILE_NAMES, &step_dir) {
            return None;
        }
        Some(Self::at(self.dir.clone(), uuid, step_dir))
    }

    fn at(dir: PathBuf, uuid: String, step_dir: PathBuf) -> FileCommandFiles {
        let [output, env, path, state, summary] = FILE_NAMES.map(|n| step_dir.join(n));
        FileCommandFiles {
            uuid,
            dir,
            step_dir,
            output,
            env,
            path,
            state,
            summary,
        }
    }

    /// Takes the files away from their paths (errors ignored; a later step gets new ones
    /// anyway): the directory is parked as a spare for later steps, or deleted.
    pub fn remove(&self, spares: &spare::SparePool) {
        let temp = self.dir.parent().unwrap_or(&self.dir);
        if !spares.park_dir(temp, &self.step_dir, &FILE_NAMES) {
            let _ = std::fs::remove_dir_all(&self.step_dir);
        }
    }
}

pub mod spare;

#[cfg(test)]
mod tests {
    /// The tests' pool (each test works in its own directories, as runs do).
    static SPARES: std::sync::LazyLock<std::sync::Arc<spare::SparePool>> =
        std::sync::LazyLock::new(Default::default);
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse_key_values(text).unwrap()
    }
    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn simple_pairs() {
        assert_eq!(kv("KEY=value\n"), vec![p("KEY", "value")]);
        assert_eq!(
            kv("KEY=value=anothervalue\n"),
            vec![p("KEY", "value=anothervalue")]
        );
        assert_eq!(
            kv("EMPTY=\n\n\nA= spaced \n"),
            vec![p("EMPTY", ""), p("A", " spaced ")]
        );
        assert_eq!(kv("NOEOL=x"), vec![p("NOEOL", "x")]);
        assert_eq!(kv(""), vec![]);
        // `=` before `<<` is a plain pair.
        assert_eq!(kv("A=b<<EOF\n"), vec![p("A", "b<<EOF")]);
        // Empty key is kept (the runner does not reject it).
        assert_eq!(kv("=v\n"), vec![p("", "v")]);
    }

    #[test]
    fn heredoc() {
        assert_eq!(kv("KEY2<<EOF\nvalue2\nEOF\n"), vec![p("KEY2", "value2")]);
        assert_eq!(
            kv("K<<ghadelimiter_b8\nl1\n\nl3\nghadelimiter_b8\nNEXT=1\n"),
            vec![p("K", "l1\n\nl3"), p("NEXT", "1")]
        );
        assert_eq!(kv("K<<EOF\nEOF\n"), vec![p("K", "")]);
        assert_eq!(kv("K<<EOF\n\nEOF\n"), vec![p("K", "")]);
        assert_eq!(kv("K<<EOF\n\n\nEOF\n"), vec![p("K", "\n")]);
        // `<<` before `=`: the `=` belongs to the delimiter.
        assert_eq!(kv("K<<A=B\nv\nA=B\n"), vec![p("K", "v")]);
        // Delimiter as the last line without a newline is accepted.
        assert_eq!(kv("K<<EOF\nv\nEOF"), vec![p("K", "v")]);
        // Delimiter comparison is exact (no trimming).
        assert_eq!(
            parse_key_values("K<<EOF\nv\n EOF\n"),
            Err(EnvFileError::MissingDelimiter {
                delimiter: "EOF".into()
            })
        );
    }

    #[test]
    fn crlf_is_not_special_on_linux() {
        assert_eq!(kv("A=1\r\nB=2\r\n"), vec![p("A", "1\r"), p("B", "2\r")]);
        assert_eq!(kv("K<<EOF\r\nv\r\nEOF\r\n"), vec![p("K", "v\r")]);
        assert_eq!(
            parse_key_values("K<<EOF\r\nv\nEOF\n"),
            Err(EnvFileError::MissingDelimiter {
                delimiter: "EOF\r".into()
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_key_values("JUSTTEXT\n"),
            Err(EnvFileError::InvalidFormat {
                line: "JUSTTEXT".into()
            })
        );
        assert!(matches!(
            parse_key_values("<<EOF\nx\nEOF\n"),
            Err(EnvFileError::EmptyNameOrDelimiter { .. })
        ));
        assert!(matches!(
            parse_key_values("K<<\nx\n"),
            Err(EnvFileError::EmptyNameOrDelimiter { .. })
        ));
        let e = parse_key_values("K<<EOF\nvalue\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid value. Matching delimiter not found 'EOF'"
        );
        // Value line at EOF without newline and no delimiter.
        assert!(matches!(
            parse_key_values("K<<EOF\nvalue"),
            Err(EnvFileError::MissingDelimiter { .. })
        ));
        assert_eq!(
            parse_key_values("A=1\nbad\n").unwrap_err().to_string(),
            "Invalid format 'bad'"
        );
    }

    #[test]
    fn path_file() {
        assert_eq!(
            parse_path_file("/a\n\n/b\r\n/c\r/d"),
            vec!["/a", "/b", "/c", "/d"]
        );
        let mut prepend = vec!["/x".to_string(), "/y".to_string()];
        add_path_entries(&mut prepend, ["/z".to_string(), "/x".to_string()]);
        assert_eq!(prepend, vec!["/y", "/z", "/x"]);
        assert_eq!(
            build_path(&prepend, "/usr/bin:/bin"),
            "/x:/z:/y:/usr/bin:/bin"
        );
        assert_eq!(build_path(&[], "/bin"), "/bin");
    }

    #[test]
    fn command_files_replaced_by_links_out_of_temp_are_refused() {
        let (_tmp, temp) = job_temp();
        let f = FileCommandFiles::create(&SPARES, &temp).unwrap();
        let host = temp.parent().unwrap().join("host-secret");
        std::fs::write(&host, "HOST=secret-value\n").unwrap();
        std::fs::remove_file(&f.env).unwrap();
        std::os::unix::fs::symlink(&host, &f.env).unwrap();
        let e = read_key_value_file(&f.env).unwrap_err().to_string();
        assert!(e.contains("outside the job's temp directory"), "{e}");
        assert!(!e.contains("secret-value"));
        std::fs::remove_file(&f.summary).unwrap();
        std::os::unix::fs::symlink(&host, &f.summary).unwrap();
        assert!(read_step_summary(&f.summary, |l| Cow::Borrowed(l)).is_err());
        // The whole step directory swapped for a link to a host directory.
        let moved = temp.join("moved");
        std::fs::rename(&f.step_dir, &moved).unwrap();
        std::os::unix::fs::symlink(temp.parent().unwrap(), &f.step_dir).unwrap();
        std::fs::write(temp.parent().unwrap().join("set_output"), "k=v\n").unwrap();
        assert!(read_key_value_file(&f.output).is_err());
        assert!(read_path_file(&f.path).is_err());
        // A relative link that stays inside the temp dir is still read (an absolute one is
        // refused like RESOLVE_BENEATH does: in a container it names a container path).
        std::fs::remove_file(&f.step_dir).unwrap();
        std::fs::rename(&moved, &f.step_dir).unwrap();
        std::fs::write(temp.join("inside"), "A=1\n").unwrap();
        std::fs::remove_file(&f.state).unwrap();
        std::os::unix::fs::symlink("../../inside", &f.state).unwrap();
        assert_eq!(read_key_value_file(&f.state).unwrap(), vec![p("A", "1")]);
    }

    #[test]
    fn files_and_summary() {
        let tmp = tempfile::tempdir().unwrap();
        let f = FileCommandFiles::create(&SPARES, tmp.path()).unwrap();
        assert!(
            f.output
                .ends_with(format!("{FILE_COMMANDS_DIR}/{}/set_output", f.uuid))
        );
        assert!(f.dir.ends_with(FILE_COMMANDS_DIR));
        for (_, path) in f.env_vars(|p| p.display().to_string()) {
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        }
        assert_eq!(read_key_value_file(&f.env).unwrap(), vec![]);
        std::fs::write(&f.env, "\u{feff}A=1\n").unwrap();
        assert_eq!(read_key_value_file(&f.env).unwrap(), vec![p("A", "1")]);

        fn mask(s: &str) -> Cow<'_, str> {
            Cow::Owned(s.replace("hunter2", "***"))
        }
        assert_eq!(
            read_step_summary(&f.summary, mask).unwrap(),
            StepSummary::Empty
        );
        std::fs::write(&f.summary, "# T\r\npw hunter2\nend").unwrap();
        assert_eq!(
            read_step_summary(&f.summary, mask).unwrap(),
            StepSummary::Markdown("# T\npw ***\nend\n".into())
        );
        std::fs::write(&f.summary, vec![b'x'; STEP_SUMMARY_LIMIT as usize + 1]).unwrap();
        assert!(matches!(
            read_step_summary(&f.summary, mask).unwrap(),
            StepSummary::TooLarge { .. }
        ));
        f.remove(&SPARES);
        assert!(!f.output.exists());
        assert_eq!(read_path_file(&f.path).unwrap(), Vec::<String>::new());
    }

    /// A job's `_temp` in the `<root>/<job>/_temp` layout that spares are kept for.
    fn job_temp() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let temp = tmp.path().join("job").join("_temp");
        std::fs::create_dir_all(&temp).unwrap();
        (tmp, temp)
    }

    fn ino(p: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
    }

    #[test]
    fn spares_are_recycled_empty_under_new_names() {
        let (tmp, temp) = job_temp();
        let a = FileCommandFiles::create(&SPARES, &temp).unwrap();
        std::fs::write(&a.output, "secret=x\n").unwrap();
        let (dir_ino, out_ino) = (ino(&a.step_dir), ino(&a.output));
        a.remove(&SPARES);
        assert!(!a.step_dir.exists() && !a.output.exists());
        let spare_dir = tmp.path().join(spare::SPARE_DIR);
        // Parked emptied: nothing the step wrote survives it.
        for e in std::fs::read_dir(&spare_dir).unwrap() {
            for f in std::fs::read_dir(e.unwrap().path()).unwrap() {
                assert_eq!(f.unwrap().metadata().unwrap().len(), 0);
            }
        }
        let b = FileCommandFiles::create(&SPARES, &temp).unwrap();
        assert_ne!(a.uuid, b.uuid);
        assert_eq!((ino(&b.step_dir), ino(&b.output)), (dir_ino, out_ino));
        for (_, p) in b.env_vars(|p| p.display().to_string()) {
            assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        }
        // A directory a step added to (or took a file from) is deleted, not reused.
        std::fs::write(b.step_dir.join("extra"), "x").unwrap();
        b.remove(&SPARES);
        assert!(!b.step_dir.exists());
        assert_eq!(std::fs::read_dir(&spare_dir).unwrap().count(), 0);
        let c = FileCommandFiles::create(&SPARES, &temp).unwrap();
        assert!(!c.step_dir.join("extra").exists());
        std::fs::remove_file(&c.env).unwrap();
        std::os::unix::fs::symlink(&c.output, &c.env).unwrap();
        c.remove(&SPARES);
        assert!(!c.step_dir.exists());
        assert_eq!(std::fs::read_dir(&spare_dir).unwrap().count(), 0);
        // A script reuses a spare file and holds exactly its new text.
        let sh = crate::shell::Shell::resolve(Some("bash"), true).unwrap();
        let first = sh
            .write_script(&SPARES, &temp, "echo secret", None)
            .unwrap();
        let first_ino = ino(&first);
        crate::shell::Shell::discard_script(&SPARES, &temp, &first);
        for e in std::fs::read_dir(&spare_dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert!(bytes.iter().all(|b| *b == 0), "parked script kept its text");
        }
        let script = sh.write_script(&SPARES, &temp, "echo hi", None).unwrap();
        assert_eq!(ino(&script), first_ino);
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "echo hi");
        crate::shell::Shell::discard_script(&SPARES, &temp, &script);
        assert!(!script.exists());
        // A job whose `_runner_file_commands` does not exist yet still gets a spare, and
        // the pool keeps it until then.
        let a = FileCommandFiles::create(&SPARES, &temp).unwrap();
        let spare_ino = ino(&a.step_dir);
        a.remove(&SPARES);
        let temp2 = tmp.path().join("job2").join("_temp");
        std::fs::create_dir_all(&temp2).unwrap();
        let b = FileCommandFiles::create(&SPARES, &temp2).unwrap();
        assert_eq!(ino(&b.step_dir), spare_ino);
        b.remove(&SPARES);
        // Outside the `<root>/<job>/_temp` layout nothing is parked.
        let other = tmp.path().join("plain");
        std::fs::create_dir_all(&other).unwrap();
        let d = FileCommandFiles::create(&SPARES, &other).unwrap();
        d.remove(&SPARES);
        assert!(!d.step_dir.exists());
        assert!(spare::dir_for(&other).is_none());
    }

    #[test]
    fn leftovers_are_renamed_ahead_for_the_next_step_blank() {
        let (tmp, temp) = job_temp();
        let sh = crate::shell::Shell::resolve(Some("bash"), true).unwrap();
        let left = spare::Leftovers::new(SPARES.clone());
        left.set_ahead(true);

        // Step 1 writes outputs and a script with a secret in it.
        let a = FileCommandFiles::create(&SPARES, &temp).unwrap();
        std::fs::write(&a.output, "secret=x\n").unwrap();
        let script = sh
            .write_script(&SPARES, &temp, "echo s3cr3t-long-script", None)
            .unwrap();
        let (dir_ino, script_ino) = (ino(&a.step_dir), ino(&script));
        left.files(a.clone());
        left.script(&temp, script.clone());
        left.recycle();
        assert!(!a.step_dir.exists() && !script.exists());

        // Step 2 gets the same inodes under new names, emptied and blanked.
        let b = left.take_files().expect("files renamed ahead");
        assert_ne!(b.uuid, a.uuid);
        assert_eq!(b.step_dir.parent(), a.step_dir.parent());
        assert_eq!(ino(&b.step_dir), dir_ino);
        for (_, p) in b.env_vars(|p| p.display().to_string()) {
            assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        }
        let ready = left
            .take_script(&temp, ".sh")
            .expect("script renamed ahead");
        assert!(std::fs::read(&ready).unwrap().iter().all(|b| *b == 0));
        let next = sh
            .write_script(&SPARES, &temp, "echo hi", Some(ready.clone()))
            .unwrap();
        assert_eq!((next.clone(), ino(&next)), (ready, script_ino));
        assert_eq!(std::fs::read_to_string(&next).unwrap(), "echo hi");

        // Step 2 deletes RUNNER_TEMP's content and plants a symlink where step 3's script
        // will be: step 3 gets new files, and nothing is written through the link.
        left.files(b.clone());
        left.script(&temp, next.clone());
        left.recycle();
        let c_dir = left.ready_dir_for_tests();
        let c_script = left.ready_script_for_tests();
        std::fs::remove_dir_all(&c_dir).unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::remove_file(&c_script).unwrap();
        std::os::unix::fs::symlink(&victim, &c_script).unwrap();
        assert!(left.take_files().is_none());
        let c = FileCommandFiles::create(&SPARES, &temp).unwrap();
        assert!(c.step_dir.is_dir());
        let ready = left.take_script(&temp, ".sh");
        let written = sh
            .write_script(&SPARES, &temp, "echo three", ready)
            .unwrap();
        assert_ne!(written, c_script);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "echo three");

        // The last step's leftovers are parked (not renamed ahead) when the runner goes.
        left.set_ahead(false);
        left.files(c.clone());
        left.script(&temp, written.clone());
        drop(left);
        assert!(!c.step_dir.exists() && !written.exists());
        let names: Vec<_> = std::fs::read_dir(temp.join(FILE_COMMANDS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
