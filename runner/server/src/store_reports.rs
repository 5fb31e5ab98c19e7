//! What a run reports besides its log, as the store keeps it: annotations, step summaries,
//! a deployment's health measurements and outcome (migration `0005_run_reports.sql`), and
//! the artifacts' files under the data directory. Everything is masked before it is
//! written here (the recorder masks again what the engine already masked).

use std::path::{Path, PathBuf};

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::{ArtifactRecord, Result, Store, now};

/// One annotation, in GitHub's check-run terms (`level`: notice, warning, failure).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnnotationRecord {
    pub id: i64,
    pub run_id: i64,
    pub job_id: i64,
    pub level: String,
    pub message: String,
    pub title: Option<String>,
    pub path: Option<String>,
    pub start_line: Option<i64>,
    pub start_column: Option<i64>,
    pub created_at: String,
}

/// A new annotation (the store gives it an id and a time).
#[derive(Debug, Clone, Default)]
pub struct NewAnnotation {
    pub level: String,
    pub message: String,
    pub title: Option<String>,
    pub path: Option<String>,
    pub start_line: Option<i64>,
    pub start_column: Option<i64>,
}

/// A step's `$GITHUB_STEP_SUMMARY` Markdown (`step` counts from 1, as the API's steps).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SummaryRecord {
    pub job_id: i64,
    pub step: i64,
    pub markdown: String,
}

/// One health-check measurement of a deployment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthRecord {
    pub run_id: i64,
    pub environment: String,
    pub probe: String,
    pub seq: i64,
    /// `successful`, `failed` or `error`.
    pub phase: String,
    pub status_code: Option<i64>,
    pub value: Option<String>,
    pub latency_ms: i64,
    pub message: Option<String>,
    pub measured_at: String,
}

/// How a deployment ended: `succeeded`, `failed`, or `rolled_back` (to `to_sha`, with
/// `healthy` the verdict of the health check after the rollback).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutcomeRecord {
    pub run_id: i64,
    pub environment: String,
    pub kind: String,
    pub sha: String,
    pub to_sha: Option<String>,
    pub healthy: Option<bool>,
    pub url: Option<String>,
    pub message: String,
    pub created_at: String,
}

/// Where an artifact's zip lives: `<data>/artifacts/<run>/<artifact id>.zip`.
pub fn artifact_zip(data: &Path, run_id: i64, artifact_id: i64) -> PathBuf {
    data.join("artifacts")
        .join(run_id.to_string())
        .join(format!("{artifact_id}.zip"))
}

fn annotation_from_row(r: &AnyRow) -> Result<AnnotationRecord> {
    Ok(AnnotationRecord {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        job_id: r.try_get(2)?,
        level: r.try_get(3)?,
        message: r.try_get(4)?,
        title: r.try_get(5)?,
        path: r.try_get(6)?,
        start_line: r.try_get(7)?,
        start_column: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

const ANNOTATION_COLUMNS: &str = "id, run_id, job_id, level, message, title, path, \
     start_line, start_column, created_at";

impl Store {
    pub async fn record_annotation(
        &self,
        run_id: i64,
        job_id: i64,
        a: &NewAnnotation,
    ) -> Result<i64> {
        let id = self.next_id(&self.pool, "annotations").await?;
        sqlx::query(
            "INSERT INTO annotations (id, run_id, job_id, level, message, title, path, \
             start_line, start_column, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(run_id)
        .bind(job_id)
        .bind(&a.level)
        .bind(&a.message)
        .bind(a.title.as_deref())
        .bind(a.path.as_deref())
        .bind(a.start_line)
        .bind(a.start_column)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// A run's annotations (every attempt's), oldest first.
    pub async fn run_annotations(&self, run_id: i64) -> Result<Vec<AnnotationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE run_id = $1 ORDER BY id"
        ))
        .bind(run_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(annotation_from_row).collect()
    }

    /// A job's (check run's) annotations, oldest first.
    pub async fn job_annotations(&self, job_id: i64) -> Result<Vec<AnnotationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE job_id = $1 ORDER BY id"
        ))
        .bind(job_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(annotation_from_row).collect()
    }

    /// Stores (or replaces) a step's summary.
    pub async fn set_step_summary(
        &self,
        run_id: i64,
        job_id: i64,
        step: i64,
        markdown: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO step_summaries (job_id, step, run_id, markdown) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job_id, step) DO UPDATE SET markdown = excluded.markdown",
        )
        .bind(job_id)
        .bind(step)
        .bind(run_id)
        .bind(markdown)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A run's step summaries, by job then step.
    pub async fn run_summaries(&self, run_id: i64) -> Result<Vec<SummaryRecord>> {
        let rows = sqlx::query(
            "SELECT job_id, step, markdown FROM step_summaries WHERE run_id = $1 \
             ORDER BY job_id, step",
        )
        .bind(run_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SummaryRecord {
                    job_id: r.try_get(0)?,
                    step: r.try_get(1)?,
                    markdown: r.try_get(2)?,
                })
            })
            .collect()
    }

    pub async fn record_health(&self, h: &HealthRecord) -> Result<()> {
        let id = self.next_id(&self.pool, "health_measurements").await?;
        sqlx::query(
            "INSERT INTO health_measurements (id, run_id, environment, probe, seq, phase, \
             status_code, value, latency_ms, message, measured_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(h.run_id)
        .bind(&h.environment)
        .bind(&h.probe)
        .bind(h.seq)
        .bind(&h.phase)
        .bind(h.status_code)
        .bind(h.value.as_deref())
        .bind(h.latency_ms)
        .bind(h.message.as_deref())
        .bind(&h.measured_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The health measurements of a run's deployment to `environment`, in order.
    pub async fn health(&self, run_id: i64, environment: &str) -> Result<Vec<HealthRecord>> {
        let rows = sqlx::query(
            "SELECT run_id, environment, probe, seq, phase, status_code, value, latency_ms, \
             message, measured_at FROM health_measurements \
             WHERE run_id = $1 AND environment = $2 ORDER BY id",
        )
        .bind(run_id)
        .bind(environment)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HealthRecord {
                    run_id: r.try_get(0)?,
                    environment: r.try_get(1)?,
                    probe: r.try_get(2)?,
                    seq: r.try_get(3)?,
                    phase: r.try_get(4)?,
                    status_code: r.try_get(5)?,
                    value: r.try_get(6)?,
                    latency_ms: r.try_get(7)?,
                    message: r.try_get(8)?,
                    measured_at: r.try_get(9)?,
                })
            })
            .collect()
    }

    pub async fn record_outcome(&self, o: &OutcomeRecord) -> Result<()> {
        let id = self.next_id(&self.pool, "deployment_outcomes").await?;
        sqlx::query(
            "INSERT INTO deployment_outcomes (id, run_id, environment, kind, sha, to_sha, \
             healthy, url, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(o.run_id)
        .bind(&o.environment)
        .bind(&o.kind)
        .bind(&o.sha)
        .bind(o.to_sha.as_deref())
        .bind(o.healthy.map(i64::from))
        .bind(o.url.as_deref())
        .bind(&o.message)
        .bind(&o.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How a run's deployment to `environment` ended (a rollback follows the failure).
    pub async fn outcomes(&self, run_id: i64, environment: &str) -> Result<Vec<OutcomeRecord>> {
        let rows = sqlx::query(
            "SELECT run_id, environment, kind, sha, to_sha, healthy, url, message, created_at \
             FROM deployment_outcomes WHERE run_id = $1 AND environment = $2 ORDER BY id",
        )
        .bind(run_id)
        .bind(environment)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let healthy: Option<i64> = r.try_get(5)?;
                Ok(OutcomeRecord {
                    run_id: r.try_get(0)?,
                    environment: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    sha: r.try_get(3)?,
                    to_sha: r.try_get(4)?,
                    healthy: healthy.map(|h| h != 0),
                    url: r.try_get(6)?,
                    message: r.try_get(7)?,
                    created_at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// One artifact of `repo` (its run must be the repository's), for the API.
    pub async fn repo_artifact(&self, repo: &str, id: i64) -> Result<Option<ArtifactRecord>> {
        let row = sqlx::query(
            "SELECT a.id, a.run_id, a.name, a.size_in_bytes, a.created_at, a.expires_at \
             FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE a.id = $1 AND r.repo = $2",
        )
        .bind(id)
        .bind(repo)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(ArtifactRecord::from_row).transpose()
    }
}

/// The engine's artifact store of a server run: `actions/upload-artifact` writes under
/// `<repository root>/.gantry/runs/<run>/artifacts` (see `gantry_engine`'s `artifact`
/// built-in), the repository root being the run's workspace.
pub fn engine_run_dir(data: &Path, run_id: i64) -> PathBuf {
    crate::workspace::work_dir(data, run_id)
        .join("repo")
        .join(".gantry")
        .join("runs")
        .join(run_id.to_string())
}

/// Artifacts the engine stored for the run that are not recorded yet (`seen` holds the
/// engine's artifact ids already taken): each is zipped into the data directory and
/// recorded. Returns how many were added.
pub async fn collect_artifacts(
    store: &Store,
    data: &Path,
    run_id: i64,
    seen: &mut std::collections::HashSet<u64>,
) -> Result<usize> {
    use gantry_engine::actions::builtin::artifact::list_artifacts;
    let run_dir = engine_run_dir(data, run_id);
    let found = tokio::task::spawn_blocking(move || list_artifacts(&run_dir))
        .await
        .unwrap_or_default();
    let mut added = 0;
    for info in found {
        if !seen.insert(info.id) {
            continue;
        }
        let days = i64::from(info.retention_days.unwrap_or(90).max(1));
        let expires = (chrono::Utc::now() + chrono::Duration::days(days))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let id = store
            .record_artifact(run_id, &info.name, info.size as i64, &expires)
            .await?;
        let zip = artifact_zip(data, run_id, id);
        let src = info.path.clone();
        tokio::task::spawn_blocking(move || zip_dir(&src, &zip))
            .await
            .map_err(std::io::Error::other)??;
        added += 1;
    }
    Ok(added)
}

/// Writes the regular files under `dir` (paths relative to it, `/`-separated) into a zip
/// at `to`, deflated, through a temporary file renamed into place. Symbolic links are left
/// out: an artifact is what the job uploaded, never what a link points at on the server.
pub fn zip_dir(dir: &Path, to: &Path) -> std::io::Result<()> {
    use zip::write::SimpleFileOptions;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            // `file_type` does not follow links: a link is neither a dir nor a file here.
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let tmp = to.with_extension("zip.tmp");
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(&tmp)?));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true)
        .unix_permissions(0o644);
    for f in &files {
        let rel = f.strip_prefix(dir).unwrap_or(f);
        let name: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        zip.start_file(name.join("/"), options)
            .map_err(std::io::Error::other)?;
        std::io::copy(&mut std::fs::File::open(f)?, &mut zip)?;
    }
    let out = zip.finish().map_err(std::io::Error::other)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_holds_every_file_with_its_relative_path() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("a");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("one.txt"), "hello\n").unwrap();
        std::fs::write(src.join("sub/two.bin"), [0u8, 1, 2, 255]).unwrap();
        // A link out of the artifact (to a server file) must not carry that file along.
        std::os::unix::fs::symlink("/etc/hostname", src.join("leak")).unwrap();
        std::os::unix::fs::symlink("/etc", src.join("leakdir")).unwrap();
        let to = tmp.path().join("out/1.zip");
        zip_dir(&src, &to).unwrap();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&to).unwrap()).unwrap();
        let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["one.txt", "sub/two.bin"]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut z.by_name("one.txt").unwrap(), &mut text).unwrap();
        assert_eq!(text, "hello\n");
        let mut bin = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("sub/two.bin").unwrap(), &mut bin).unwrap();
        assert_eq!(bin, [0u8, 1, 2, 255]);
    }
}
