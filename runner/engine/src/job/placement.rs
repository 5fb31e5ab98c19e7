//! Where a job runs, from its `runs-on` labels, as act users expect: `-P LABEL=…` first
//! (an image, or `host` / act's `-self-hosted`), then `--host`, then Gantry's own images
//! (`ubuntu-*` and `linux` → the Debian image, `busybox`). A label Gantry cannot provide
//! (`windows-*`, `macos-*`, `self-hosted` or any other without a mapping) makes the job
//! skipped with a message naming `-P`, rather than run on this machine by surprise.

use gantry_expr::Value;
use gantry_workflow::Job;

use super::at;
use crate::backend::Placement;
use crate::backend::registry::default_placement;
use crate::expr_scope::Ctx;
use crate::run::RunShared;

/// The outcome of the placement choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementChoice {
    Run(Placement),
    /// No platform for these labels: the job is skipped, for this reason.
    Unavailable(String),
}

/// The job's `runs-on` labels, evaluated.
fn labels(job: &Job, ctx: &Ctx) -> Result<Vec<String>, String> {
    let mut labels = Vec::new();
    if let Some(ro) = &job.runs_on {
        for l in &ro.labels {
            match ctx
                .eval_template(&l.value)
                .map_err(|e| at(l, &e.to_string()))?
            {
                Value::Array(a) => {
                    for x in &a.items {
                        labels.push(x.as_string().into_owned());
                    }
                }
                v => labels.push(v.as_string().into_owned()),
            }
        }
    }
    Ok(labels)
}

pub fn choose_placement(
    shared: &RunShared,
    job: &Job,
    ctx: &Ctx,
) -> Result<PlacementChoice, String> {
    let labels = labels(job, ctx)?;
    Ok(choose(&labels, &shared.cfg.platforms, shared.cfg.all_host))
}

/// Labels of an operating system Gantry cannot run (not even with `--host`).
fn foreign_os(label: &str) -> bool {
    let l = label.to_ascii_lowercase();
    l.starts_with("windows") || l.starts_with("macos") || l == "macos"
}

/// The choice for `labels` given the `-P` mappings and `--host`.
pub fn choose(
    labels: &[String],
    platforms: &indexmap::IndexMap<String, Placement>,
    all_host: bool,
) -> PlacementChoice {
    for l in labels {
        if let Some((_, p)) = platforms.iter().find(|(k, _)| k.eq_ignore_ascii_case(l)) {
            return PlacementChoice::Run(p.clone());
        }
    }
    if labels.is_empty() {
        return PlacementChoice::Run(Placement::host());
    }
    let foreign: Vec<&String> = labels.iter().filter(|l| foreign_os(l)).collect();
    if all_host && foreign.is_empty() {
        return PlacementChoice::Run(Placement::host());
    }
    if foreign.is_empty() {
        for l in labels {
            if let Some(p) = default_placement(l) {
                return PlacementChoice::Run(p);
            }
        }
    }
    let shown = labels.join(", ");
    let first = foreign.first().copied().unwrap_or(&labels[0]);
    let what = if foreign.is_empty() {
        "no platform Gantry provides matches it"
    } else {
        "Gantry runs Linux jobs only"
    };
    PlacementChoice::Unavailable(format!(
        "runs-on [{shown}]: {what}; map the label with -P {first}=IMAGE (a local Docker image) \
         or -P {first}=host (act's spelling: -P {first}=-self-hosted) to run it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_as_act() {
        let none = IndexMap::new();
        let debian = PlacementChoice::Run(Placement::image(crate::backend::docker::DEBIAN_IMAGE));
        assert_eq!(choose(&l(&["ubuntu-latest"]), &none, false), debian);
        assert_eq!(choose(&l(&["ubuntu-slim"]), &none, false), debian);
        assert_eq!(choose(&l(&["ubuntu-26.04"]), &none, false), debian);
        assert_eq!(choose(&l(&["self-hosted", "linux"]), &none, false), debian);
        assert_eq!(
            choose(&l(&["ubuntu-latest"]), &none, true),
            PlacementChoice::Run(Placement::host())
        );
        for skipped in [
            &["windows-latest"][..],
            &["macos-14"],
            &["self-hosted"],
            &["gpu-box"],
        ] {
            let c = choose(&l(skipped), &none, false);
            let PlacementChoice::Unavailable(why) = c else {
                panic!("{skipped:?} not skipped: {c:?}");
            };
            assert!(why.contains(&format!("-P {}=", skipped[0])), "{why}");
        }
        // --host does not make a Windows job a Linux one.
        assert!(matches!(
            choose(&l(&["windows-latest"]), &none, true),
            PlacementChoice::Unavailable(_)
        ));
        assert_eq!(
            choose(&l(&["self-hosted"]), &none, true),
            PlacementChoice::Run(Placement::host())
        );
        let mut p = IndexMap::new();
        p.insert("windows-latest".to_string(), Placement::host());
        p.insert("gpu-box".to_string(), Placement::image("x/y"));
        assert_eq!(
            choose(&l(&["windows-latest"]), &p, false),
            PlacementChoice::Run(Placement::host())
        );
        assert_eq!(
            choose(&l(&["GPU-box"]), &p, false),
            PlacementChoice::Run(Placement::image("x/y"))
        );
    }
}
