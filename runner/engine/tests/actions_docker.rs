//! Docker container actions: args and env assembly, and (when a daemon answers) a
//! Dockerfile action built once per content hash and run with the GitHub mounts.

use gantry_engine::actions::docker_action::{self, DockerActionPaths, ImageSource};
use gantry_engine::actions::{inputs::resolve_inputs, load_action};
use indexmap::IndexMap;

#[test]
fn args_split_and_translation() {
    assert_eq!(
        docker_action::split_args(r#"a "b c"  d\"e """#),
        ["a", "b c", "d\"e", ""]
    );
    assert_eq!(docker_action::split_args("  "), Vec::<String>::new());
    let args = docker_action::assemble_args(&[], Some("--x \"y z\""), |s| Ok(s.into())).unwrap();
    assert_eq!(args, ["--x", "y z"]);
    let args = docker_action::assemble_args(
        &["${{ inputs.a }}".into(), "lit".into()],
        Some("ignored"),
        |s| Ok(s.replace("${{ inputs.a }}", "A")),
    )
    .unwrap();
    assert_eq!(args, ["A", "lit"]);
    assert_eq!(
        docker_action::image_source("Dockerfile"),
        ImageSource::Dockerfile("Dockerfile".into())
    );
    assert_eq!(
        docker_action::image_source("docker://alpine:3"),
        ImageSource::Image("alpine:3".into())
    );

    let tmp = tempfile::tempdir().unwrap();
    let paths = DockerActionPaths {
        workspace: tmp.path().join("ws"),
        temp: tmp.path().join("temp"),
    };
    let fc = paths.temp.join("_runner_file_commands/set_output_1");
    let mut step_env = IndexMap::new();
    step_env.insert("GITHUB_OUTPUT".to_string(), fc.display().to_string());
    step_env.insert(
        "GITHUB_WORKSPACE".to_string(),
        paths.workspace.display().to_string(),
    );
    step_env.insert("INPUT_WHO".to_string(), "me".to_string());
    step_env.insert("PATH".to_string(), "/host/bin".to_string());
    let mut runs_env = IndexMap::new();
    runs_env.insert("INPUT_WHO".to_string(), "not-overridden".to_string());
    runs_env.insert("EXTRA".to_string(), "1".to_string());
    let spec = docker_action::assemble(
        "img",
        Some("/entry.sh".into()),
        vec![],
        &step_env,
        &runs_env,
        &paths,
        Some("net".into()),
    );
    assert_eq!(
        spec.env["GITHUB_OUTPUT"],
        "/github/file_commands/set_output_1"
    );
    assert_eq!(spec.env["GITHUB_WORKSPACE"], "/github/workspace");
    assert_eq!(spec.env["INPUT_WHO"], "me");
    assert_eq!(spec.env["EXTRA"], "1");
    assert_eq!(spec.env["HOME"], "/github/home");
    assert!(!spec.env.contains_key("PATH"));
    assert_eq!(spec.workdir, "/github/workspace");
    for m in [
        "/github/workspace",
        "/github/file_commands",
        "/github/home",
        "/github/workflow",
    ] {
        assert!(spec.mounts.iter().any(|(_, c)| c == m), "{m}");
    }
}

/// CI (`GANTRY_REQUIRE_DOCKER=1`): a missing daemon or image fails instead of skipping.
fn docker_required() -> bool {
    std::env::var("GANTRY_REQUIRE_DOCKER").as_deref() == Ok("1")
}

fn docker_available() -> bool {
    let ok = std::process::Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            !docker_required(),
            "GANTRY_REQUIRE_DOCKER=1 but no Docker daemon answers"
        );
        eprintln!(
            "SKIPPED: no Docker daemon answers (set GANTRY_REQUIRE_DOCKER=1 to fail instead)"
        );
    }
    ok
}

#[tokio::test]
async fn dockerfile_action_runs_with_mounts() {
    if !docker_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let adir = tmp.path().join("action");
    std::fs::create_dir_all(&adir).unwrap();
    std::fs::write(adir.join("action.yml"), "name: d\ninputs:\n  who:\n    description: w\n    default: you\nruns:\n  using: docker\n  image: Dockerfile\n  args:\n    - ${{ inputs.who }}\n    - second arg\n  env:\n    FROM_RUNS: r\n").unwrap();
    std::fs::write(adir.join("Dockerfile"), "FROM gantry/busybox:latest\nCOPY entry.sh /entry.sh\nENTRYPOINT [\"/bin/sh\", \"/entry.sh\"]\n").unwrap();
    std::fs::write(adir.join("entry.sh"), "echo \"arg1=$1 arg2=$2 input=$INPUT_WHO runs=$FROM_RUNS pwd=$(pwd)\"\necho \"out=$1\" >> \"$GITHUB_OUTPUT\"\nls /github/workspace\n").unwrap();
    let action = load_action(&adir).unwrap();
    let gantry_workflow::ActionRuns::Docker {
        image, args, env, ..
    } = &action.runs
    else {
        panic!()
    };
    let with: IndexMap<String, String> = [("who".to_string(), "gantry".to_string())]
        .into_iter()
        .collect();
    let inputs = resolve_inputs(Some(&action), &with, |s| Ok(s.to_string())).unwrap();
    let raw_args: Vec<String> = args.iter().map(|a| a.value.clone()).collect();
    let args = docker_action::assemble_args(&raw_args, None, |s| {
        Ok(s.replace("${{ inputs.who }}", &inputs.values["who"]))
    })
    .unwrap();
    let runs_env: IndexMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();

    let docker = match gantry_engine::backend::docker::Daemon::connect().await {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let (tag, _) = match docker_action::ensure_image(
        &docker,
        &docker_action::image_source(image),
        &adir,
        false,
    )
    .await
    {
        Ok(t) => t,
        Err(e) if e.contains("gantry/busybox") || e.contains("pull access denied") => {
            assert!(
                !docker_required(),
                "GANTRY_REQUIRE_DOCKER=1 but gantry/busybox:latest is missing (docker/build-images.sh busybox): {e}"
            );
            eprintln!(
                "SKIPPED: gantry/busybox:latest missing (docker/build-images.sh busybox): {e}"
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    // Built once per content hash.
    let (tag2, logs) =
        docker_action::ensure_image(&docker, &docker_action::image_source(image), &adir, false)
            .await
            .unwrap();
    assert_eq!(tag, tag2);
    assert!(logs[0].contains("cached"));

    let paths = DockerActionPaths {
        workspace: tmp.path().join("ws"),
        temp: tmp.path().join("temp"),
    };
    std::fs::create_dir_all(&paths.workspace).unwrap();
    std::fs::write(paths.workspace.join("marker.txt"), "").unwrap();
    let files =
        gantry_engine::envfile::FileCommandFiles::create(&Default::default(), &paths.temp).unwrap();
    let mut step_env = inputs.env();
    for (k, v) in files.env_vars(|p| p.display().to_string()) {
        step_env.insert(k.to_string(), v);
    }
    let spec = docker_action::assemble(&tag, None, args, &step_env, &runs_env, &paths, None);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let run = docker.run_container(&spec, tx, tokio_util::sync::CancellationToken::new());
    let collect = async {
        let mut s = Vec::new();
        while let Some(o) = rx.recv().await {
            match o {
                gantry_engine::backend::Output::Stdout(b)
                | gantry_engine::backend::Output::Stderr(b) => s.extend(b),
            }
        }
        String::from_utf8_lossy(&s).to_string()
    };
    let (status, out) = tokio::join!(run, collect);
    assert_eq!(
        status.unwrap(),
        gantry_engine::backend::ExitStatus::Code(0),
        "{out}"
    );
    assert!(
        out.contains("arg1=gantry arg2=second arg input=gantry runs=r pwd=/github/workspace"),
        "{out}"
    );
    assert!(out.contains("marker.txt"), "{out}");
    let outputs = gantry_engine::envfile::read_key_value_file(&files.output).unwrap();
    assert_eq!(outputs, vec![("out".to_string(), "gantry".to_string())]);
}

/// `--offline`: an action image that is not in the daemon is refused, naming how to provide
/// it, and no pull is tried (online, the same image is a failed pull instead).
#[tokio::test]
async fn offline_never_pulls_an_action_image() {
    if !docker_available() {
        return;
    }
    let docker = gantry_engine::backend::docker::Daemon::connect()
        .await
        .unwrap();
    let missing = ImageSource::Image("gantry-test/never-built:offline".into());
    let here = std::path::Path::new(".");
    let e = docker_action::ensure_image(&docker, &missing, here, true)
        .await
        .unwrap_err();
    assert!(e.contains("--offline does not pull"), "{e}");
    assert!(e.contains("--image"), "names the mapping option: {e}");
    let e = docker_action::ensure_image(&docker, &missing, here, false)
        .await
        .unwrap_err();
    assert!(e.contains("cannot be pulled"), "online it tries: {e}");
}
