//! Hostile tests of environment secrets and the production gate with the real `gantry`
//! binary (host jobs, real processes): environment secrets probed from a job without an
//! environment, from a job of another environment, from a job that runs while production
//! waits for review, and from the admitted job (which must see them); an environment
//! named in another case; a self-review in another case; a hand-forged approval file; and
//! `gantry approve` on a run that was killed while it waited; and container jobs (Docker).
//!
//! Jobs write what they can see to files outside the repository, so the probes read the
//! truth and not Gantry's masked output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gantry_tests::*;
use serde_json::Value;

const DEPLOY_TOKEN: &str = "prod-tok-9f8e7d6c";
const STAGING_TOKEN: &str = "stage-tok-1a2b3c4d";
const REPO_TOKEN: &str = "repo-tok-55aa66bb";

/// A step that records the job's `secrets` context, two secrets, a var, `$TOKEN` and its
/// whole process environment under `probe/<job>.*`.
fn probe_steps(probe: &Path) -> String {
    format!(
        r#"    steps:
      - run: |
          cat > "{p}/${{{{ github.job }}}}.txt" <<'END'
          secrets=${{{{ toJSON(secrets) }}}}
          deploy=[${{{{ secrets.DEPLOY_TOKEN }}}}]
          staging=[${{{{ secrets.staging_token }}}}]
          region=[${{{{ vars.REGION }}}}]
          END
          echo "token_env=[$TOKEN]" >> "{p}/${{{{ github.job }}}}.txt"
          env > "{p}/${{{{ github.job }}}}.env"
          touch "{p}/${{{{ github.job }}}}.done"
"#,
        p = probe.display()
    )
}

/// `gantry run push` on the host as actor `alice`, secrets from a file outside the
/// repository plus `-s DEPLOY_TOKEN` read from Gantry's own environment.
fn run_command(repo: &Path, secrets_file: &Path) -> Command {
    let mut cmd = Command::new(gantry_bin());
    cmd.args(["run", "push", "--host", "--offline", "--jobs", "8", "-a"])
        .arg("alice")
        .arg("--secret-file")
        .arg(secrets_file)
        .args(["-s", "DEPLOY_TOKEN"])
        .env("DEPLOY_TOKEN", DEPLOY_TOKEN)
        .env_remove("GANTRY_LOG")
        .current_dir(repo)
        .stdin(Stdio::null());
    cmd
}

struct Setup {
    repo: tempfile::TempDir,
    outside: tempfile::TempDir,
}

impl Setup {
    /// A repository with `config` and a workflow of `jobs(probe directory)`.
    fn new(config: &str, jobs: impl FnOnce(&Path) -> String) -> Setup {
        let outside = tempfile::tempdir().unwrap();
        let probe = outside.path().join("probe");
        std::fs::create_dir_all(&probe).unwrap();
        let jobs = jobs(&probe);
        std::fs::write(
            outside.path().join("secrets.env"),
            format!("STAGING_TOKEN={STAGING_TOKEN}\nREPO_TOKEN={REPO_TOKEN}\n"),
        )
        .unwrap();
        let workflow = format!("name: ship\non: push\njobs:\n{jobs}");
        let repo = git_repo_with(&[
            (".github/workflows/ship.yml", &workflow),
            (".gantry/config.yml", config),
        ]);
        Setup { repo, outside }
    }

    fn probe(&self) -> PathBuf {
        self.outside.path().join("probe")
    }

    fn command(&self) -> Command {
        run_command(self.repo.path(), &self.outside.path().join("secrets.env"))
    }

    /// Starts the run with its output thrown away (to be killed).
    fn spawn_quiet(&self) -> std::process::Child {
        self.command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.probe().join(name))
            .unwrap_or_else(|e| panic!("probe {name}: {e}"))
    }

    fn gantry(&self, args: &[&str]) -> Output {
        gantry(self.repo.path(), args)
    }

    /// The pending requests (`gantry approvals --json`).
    fn pending(&self) -> Vec<Value> {
        let out = self.gantry(&["approvals", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until a request is pending (and `also` holds); returns it.
    fn wait_pending(&self, also: impl Fn() -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            if let Some(p) = self.pending().into_iter().next()
                && also()
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no pending approval in time");
    }

    /// The request file under `.gantry/approvals/`.
    fn request_file(&self) -> PathBuf {
        std::fs::read_dir(self.repo.path().join(".gantry/approvals"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("a request file")
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [DEPLOY_TOKEN, STAGING_TOKEN, REPO_TOKEN] {
        assert!(!text.contains(s), "{what} shows secret {s}:\n{text}");
    }
}

const SCOPED_CONFIG: &str = r#"environments:
  production:
    reviewers: [Alice, bob]
    prevent_self_review: true
    secrets: [DEPLOY_TOKEN]
    vars: { REGION: eu-west-1 }
  staging:
    secrets: [STAGING_TOKEN]
"#;

/// Runs the command to its end in a thread (its output read as it comes).
fn spawn_run(mut cmd: Command) -> std::thread::JoinHandle<Output> {
    std::thread::spawn(move || cmd.output().expect("running gantry"))
}

fn join(run: std::thread::JoinHandle<Output>) -> Output {
    run.join().expect("the run thread")
}

#[test]
fn environment_secrets_reach_only_the_admitted_job_of_their_environment() {
    let s = Setup::new(SCOPED_CONFIG, |probe| {
        let steps = probe_steps(probe);
        let job = |name: &str, extra: &str| {
            format!("  {name}:\n    runs-on: ubuntu-latest\n{extra}{steps}")
        };
        [
            job("plain", ""),
            job("staging", "    environment: staging\n"),
            job("sneak", ""),
            job(
                "deploy",
                "    environment: PRODUCTION\n    env:\n      TOKEN: ${{ secrets.DEPLOY_TOKEN }}\n",
            ),
        ]
        .concat()
    });
    let probe = s.probe();
    let run = spawn_run(s.command());
    // Production waits for review while `sneak` runs beside it.
    let sneak_done = probe.join("sneak.done");
    let pending = s.wait_pending(|| sneak_done.exists());
    assert!(
        !probe.join("deploy.txt").exists(),
        "deploy ran before approval"
    );
    // `environment: PRODUCTION` got production's reviewers, under production's name.
    assert_eq!(pending["environment"], "production", "{pending}");
    let run_id = pending["run_id"].as_str().unwrap().to_string();

    // The run's actor is alice: `ALICE` is her, and may not approve.
    let own = s.gantry(&["approve", &run_id, "PRODUCTION", "--as", "ALICE"]);
    assert_eq!(own.status.code(), Some(1), "{}", text(&own));
    assert!(text(&own).contains("may not review"), "{}", text(&own));
    let ok = s.gantry(&["approve", &run_id, "Production", "--as", "BOB"]);
    assert!(ok.status.success(), "{}", text(&ok));

    let out = join(run);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_secret("the run's output", &text(&out));

    // No environment, another environment, and the job that ran during the wait: no
    // production secret in `secrets`, in an expression, or in the process environment.
    for job in ["plain", "sneak", "staging"] {
        let seen = s.read(&format!("{job}.txt"));
        assert!(
            seen.contains(REPO_TOKEN),
            "{job} misses the run-wide secret:\n{seen}"
        );
        assert!(seen.contains("deploy=[]"), "{job}:\n{seen}");
        assert!(seen.contains("region=[]"), "{job}:\n{seen}");
        assert!(seen.contains("token_env=[]"), "{job}:\n{seen}");
        assert!(
            !seen.contains(DEPLOY_TOKEN),
            "{job} saw production's secret:\n{seen}"
        );
        let env = s.read(&format!("{job}.env"));
        assert!(
            !env.contains(DEPLOY_TOKEN),
            "{job}'s process env has production's secret"
        );
        assert!(
            !env.contains(STAGING_TOKEN),
            "{job}'s process env has staging's secret"
        );
    }
    for job in ["plain", "sneak"] {
        let seen = s.read(&format!("{job}.txt"));
        assert!(
            seen.contains("staging=[]"),
            "{job} saw staging's secret:\n{seen}"
        );
    }
    let staging = s.read("staging.txt");
    assert!(
        staging.contains(&format!("staging=[{STAGING_TOKEN}]")),
        "{staging}"
    );

    // The admitted job sees its environment's secret and var, in the job env too, and
    // not another environment's.
    let deploy = s.read("deploy.txt");
    assert!(
        deploy.contains(&format!("deploy=[{DEPLOY_TOKEN}]")),
        "{deploy}"
    );
    assert!(
        deploy.contains(&format!("token_env=[{DEPLOY_TOKEN}]")),
        "{deploy}"
    );
    assert!(deploy.contains("region=[eu-west-1]"), "{deploy}");
    assert!(deploy.contains("staging=[]"), "{deploy}");
}

const TWO_OF_TWO: &str = r#"environments:
  production:
    reviewers: [bob, carol]
    required_approvals: 2
    approval_timeout: 4s
    secrets: [DEPLOY_TOKEN]
"#;

fn deploy_only(probe: &Path) -> String {
    format!(
        "  deploy:\n    runs-on: ubuntu-latest\n    environment: production\n{}",
        probe_steps(probe)
    )
}

#[test]
fn a_forged_approval_file_admits_nothing() {
    let s = Setup::new(TWO_OF_TWO, deploy_only);
    let run = spawn_run(s.command());
    s.wait_pending(|| true);
    // Rewrite the request as an attacker with write access to `.gantry/` would: state
    // approved, a reviewer list naming the attacker, one approval needed, and bob's
    // approval repeated in another case.
    let file = s.request_file();
    let mut req: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let at = chrono_now();
    req["state"] = "approved".into();
    req["reviewers"] = serde_json::json!(["mallory"]);
    req["required_approvals"] = 1.into();
    req["decisions"] = serde_json::json!([
        {"by": "mallory", "approved": true, "comment": "trust me", "at": at},
        {"by": "bob", "approved": true, "at": at},
        {"by": "BOB", "approved": true, "at": at},
    ]);
    let tmp = file.with_extension("forged");
    std::fs::write(&tmp, serde_json::to_vec(&req).unwrap()).unwrap();
    std::fs::rename(&tmp, &file).unwrap();

    let out = join(run);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("was not approved within 4s (1 of 2 approvals)"),
        "{all}"
    );
    assert!(
        !s.probe().join("deploy.txt").exists(),
        "the forged file admitted the job"
    );
    assert_no_secret("the run's output", &all);
}

fn chrono_now() -> String {
    // RFC 3339 in UTC, as the request file stores times.
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn approving_a_killed_run_is_refused_and_the_request_abandoned() {
    let s = Setup::new(TWO_OF_TWO, deploy_only);
    let mut child = s.spawn_quiet();
    let pending = s.wait_pending(|| true);
    let run_id = pending["run_id"].as_str().unwrap().to_string();
    child.kill().unwrap();
    child.wait().unwrap();

    let out = s.gantry(&["approve", &run_id, "production", "--as", "bob"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("run {run_id} no longer waits for this approval")),
        "{}",
        text(&out)
    );
    let req: Value = serde_json::from_slice(&std::fs::read(s.request_file()).unwrap()).unwrap();
    assert_eq!(req["state"], "abandoned", "{req}");
    assert_eq!(
        req["decisions"],
        serde_json::json!([]),
        "the refused decision was recorded"
    );
    assert!(
        s.pending().is_empty(),
        "an abandoned request is listed as pending"
    );

    // Without a decision first: `gantry approvals` finds the dead run's request and marks it.
    let mut child = s.spawn_quiet();
    let until = Instant::now() + Duration::from_secs(120);
    let second = loop {
        if let Some(p) = s
            .pending()
            .into_iter()
            .find(|p| p["run_id"] != run_id.as_str())
        {
            break p;
        }
        assert!(Instant::now() < until, "no second request");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = s.gantry(&["approvals"]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        text(&listed).contains(&format!(
            "run {} no longer waits for environment production",
            second["run_id"].as_str().unwrap()
        )),
        "{}",
        text(&listed)
    );
    assert!(
        text(&listed).contains("no pending approvals"),
        "{}",
        text(&listed)
    );
}

#[test]
fn container_jobs_get_environment_secrets_only_when_admitted() {
    if !docker_ready(&["gantry/busybox:latest"]) {
        return;
    }
    let config = "environments:\n  production:\n    secrets: [DEPLOY_TOKEN]\n";
    // Booleans and lengths are not masked, so the output tells what each job saw.
    let probe = r#"    container: gantry/busybox:latest
    env:
      TOKEN: ${{ secrets.DEPLOY_TOKEN }}
    steps:
      - run: |
          echo "probe ${{ github.job }} ctx=${{ secrets.DEPLOY_TOKEN != '' }} env=${#TOKEN} named=${DEPLOY_TOKEN+set}"
"#;
    let s = Setup::new(config, |_| {
        format!(
            "  boxed:\n    runs-on: ubuntu-latest\n{probe}  boxed-deploy:\n    runs-on: ubuntu-latest\n    environment: PRODUCTION\n{probe}"
        )
    });
    let out = s.command().output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_no_secret("the run's output", &all);
    assert!(all.contains("probe boxed ctx=false env=0 named="), "{all}");
    assert!(
        all.contains(&format!(
            "probe boxed-deploy ctx=true env={} named=",
            DEPLOY_TOKEN.len()
        )),
        "{all}"
    );
}
