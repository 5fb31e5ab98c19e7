//! `docker/metadata-action`: image tags and OCI labels from the git ref, sha and semver tags,
//! with the action's `tags:` rule syntax (`type=ref,event=branch`, `type=semver,pattern=…`,
//! `type=sha`, `type=raw,value=…`, `type=edge`, `type=schedule`) and `flavor`
//! (`latest=auto|true|false`, `prefix=`, `suffix=`).

use async_trait::async_trait;
use indexmap::IndexMap;

use super::{
    ActionEnv, ActionResult, BuiltinAction, BuiltinError, GithubFacts, input, input_lines,
    input_list,
};

pub struct Metadata;

/// The result of applying the rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    pub version: String,
    /// `image:tag` for every image (or the bare tags without images).
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Flavor {
    latest: String,
    prefix: String,
    prefix_latest: bool,
    suffix: String,
    suffix_latest: bool,
}

fn parse_attrs(line: &str) -> IndexMap<String, String> {
    let mut m = IndexMap::new();
    for part in line.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) => {
                m.insert(
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                );
            }
            None => {
                m.insert("value".into(), part.to_string());
            }
        }
    }
    m
}

fn parse_flavor(lines: &[String]) -> Flavor {
    let mut f = Flavor {
        latest: "auto".into(),
        ..Default::default()
    };
    for l in lines {
        for (k, v) in parse_attrs(l) {
            match k.as_str() {
                "latest" => f.latest = v,
                "prefix" => f.prefix = v,
                "suffix" => f.suffix = v,
                "onlatest" => {
                    // applies to the prefix/suffix defined on the same line
                    let b = v == "true";
                    if l.contains("prefix=") {
                        f.prefix_latest = b;
                    }
                    if l.contains("suffix=") {
                        f.suffix_latest = b;
                    }
                }
                _ => {}
            }
        }
    }
    f
}

/// Docker tag sanitizing: anything but `[A-Za-z0-9._-]` becomes `-`.
pub fn sanitize_tag(s: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    out.chars().take(128).collect()
}

struct Facts<'a> {
    g: &'a GithubFacts,
    branch: Option<String>,
    tag: Option<String>,
    pr: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
}

impl Facts<'_> {
    fn is_default_branch(&self) -> bool {
        self.branch.as_deref() == Some(self.g.default_branch().as_str())
    }

    fn date(&self, fmt: &str) -> String {
        let f = fmt
            .replace("YYYY", "%Y")
            .replace("MM", "%m")
            .replace("DD", "%d")
            .replace("HH", "%H")
            .replace("mm", "%M")
            .replace("ss", "%S");
        self.now.format(&f).to_string()
    }

    /// Global expressions: `{{branch}}`, `{{tag}}`, `{{sha}}`, `{{base_ref}}`,
    /// `{{is_default_branch}}`, `{{date 'YYYYMMDD'}}`.
    fn expand(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find("}}") else {
                out.push_str(&rest[i..]);
                return out;
            };
            let inner = rest[i + 2..i + j].trim();
            let val = match inner {
                "branch" => self.branch.clone().unwrap_or_default(),
                "tag" => self.tag.clone().unwrap_or_default(),
                "sha" => self.g.sha.chars().take(7).collect(),
                "base_ref" => self.g.base_ref.clone(),
                "is_default_branch" => self.is_default_branch().to_string(),
                d if d.starts_with("date") => {
                    let fmt = d
                        .trim_start_matches("date")
                        .trim()
                        .trim_matches(['\'', '"']);
                    self.date(if fmt.is_empty() { "YYYYMMDD" } else { fmt })
                }
                other => format!("{{{{{other}}}}}"),
            };
            out.push_str(&val);
            rest = &rest[i + j + 2..];
        }
        out.push_str(rest);
        out
    }
}

struct Semver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
}

fn parse_semver(s: &str) -> Option<Semver> {
    let s = s.trim().trim_start_matches(['v', 'V', '=']);
    let (core, _build) = s.split_once('+').unwrap_or((s, ""));
    let (core, pre) = core.split_once('-').unwrap_or((core, ""));
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 {
        return None;
    }
    let n = |x: &str| x.parse::<u64>().ok();
    Some(Semver {
        major: n(nums[0])?,
        minor: n(nums[1])?,
        patch: n(nums[2])?,
        pre: pre.to_string(),
    })
}

/// Applies `tags` rules, `flavor` and `images` to the run's ref and sha.
pub fn compute(
    g: &GithubFacts,
    images: &[String],
    tag_rules: &[String],
    flavor: &[String],
    extra_labels: &[String],
) -> Result<(Meta, Vec<String>), String> {
    let mut warnings = Vec::new();
    let r = g.git_ref.as_str();
    let pr = r
        .strip_prefix("refs/pull/")
        .and_then(|x| x.split('/').next())
        .map(str::to_string)
        .or_else(|| {
            g.event
                .get("number")
                .map(|n| n.to_string().trim_matches('"').to_string())
        })
        .filter(|_| g.event_name.starts_with("pull_request"));
    let facts = Facts {
        g,
        branch: r
            .strip_prefix("refs/heads/")
            .map(str::to_string)
            .or_else(|| (!g.head_ref.is_empty()).then(|| g.head_ref.clone())),
        tag: r.strip_prefix("refs/tags/").map(str::to_string),
        pr,
        now: chrono::Utc::now(),
    };
    let flavor = parse_flavor(flavor);
    let default_rules = [
        "type=schedule",
        "type=ref,event=branch",
        "type=ref,event=tag",
        "type=ref,event=pr",
    ];
    let rules: Vec<String> = if tag_rules.is_empty() {
        default_rules.iter().map(|s| s.to_string()).collect()
    } else {
        tag_rules.to_vec()
    };

    // (priority, value, latest-eligible, own prefix/suffix given)
    let mut found: Vec<(i64, String, bool)> = Vec::new();
    for rule in &rules {
        let a = parse_attrs(rule);
        let ty = a.get("type").map(String::as_str).unwrap_or("raw");
        let enable = a
            .get("enable")
            .map(|e| facts.expand(e))
            .unwrap_or_else(|| "true".into());
        if enable.trim() != "true" {
            continue;
        }
        let (def_prio, value, eligible) = match ty {
            "schedule" => {
                if g.event_name != "schedule" {
                    continue;
                }
                let p = a
                    .get("pattern")
                    .cloned()
                    .unwrap_or_else(|| "nightly".into());
                (1000, facts.expand(&p), false)
            }
            "semver" | "pep440" => {
                let raw = match a.get("value") {
                    Some(v) => facts.expand(v),
                    None => match &facts.tag {
                        Some(t) => t.clone(),
                        None => continue,
                    },
                };
                let Some(v) = parse_semver(&raw) else {
                    continue;
                };
                let version = if v.pre.is_empty() {
                    format!("{}.{}.{}", v.major, v.minor, v.patch)
                } else {
                    format!("{}.{}.{}-{}", v.major, v.minor, v.patch, v.pre)
                };
                let mut pattern = a
                    .get("pattern")
                    .cloned()
                    .unwrap_or_else(|| "{{version}}".into());
                if !v.pre.is_empty() && !pattern.contains("{{raw}}") {
                    pattern = "{{version}}".into();
                }
                let val = pattern
                    .replace("{{version}}", &version)
                    .replace("{{raw}}", &raw)
                    .replace("{{major}}", &v.major.to_string())
                    .replace("{{minor}}", &v.minor.to_string())
                    .replace("{{patch}}", &v.patch.to_string());
                (900, val, v.pre.is_empty())
            }
            "match" => {
                warnings.push(format!("metadata-action (built-in): '{rule}': type=match is not supported; rule ignored"));
                continue;
            }
            "edge" => {
                let branch = a
                    .get("branch")
                    .cloned()
                    .unwrap_or_else(|| g.default_branch());
                if facts.branch.as_deref() != Some(branch.as_str()) {
                    continue;
                }
                (700, "edge".to_string(), false)
            }
            "ref" => match a.get("event").map(String::as_str) {
                Some("branch") => match &facts.branch {
                    Some(b) if facts.pr.is_none() => (600, b.clone(), false),
                    _ => continue,
                },
                Some("tag") => match &facts.tag {
                    Some(t) => (600, t.clone(), true),
                    None => continue,
                },
                Some("pr") => match &facts.pr {
                    Some(n) => (
                        600,
                        format!("{}{n}", if a.contains_key("prefix") { "" } else { "pr-" }),
                        false,
                    ),
                    None => continue,
                },
                other => {
                    return Err(format!(
                        "tags rule '{rule}': event must be branch, tag or pr (got {other:?})"
                    ));
                }
            },
            "raw" => {
                let Some(v) = a.get("value") else {
                    return Err(format!("tags rule '{rule}': raw needs value="));
                };
                (200, facts.expand(v), false)
            }
            "sha" => {
                let long = a.get("format").map(String::as_str) == Some("long");
                let sha: String = if long {
                    g.sha.clone()
                } else {
                    g.sha.chars().take(7).collect()
                };
                let prefix = if a.contains_key("prefix") {
                    String::new()
                } else {
                    "sha-".to_string()
                };
                (100, format!("{prefix}{sha}"), false)
            }
            other => return Err(format!("tags rule '{rule}': unknown type '{other}'")),
        };
        let prio = a
            .get("priority")
            .and_then(|p| p.parse().ok())
            .unwrap_or(def_prio);
        let (prefix, suffix) = match (a.get("prefix"), a.get("suffix")) {
            (None, None) if ty != "sha" => (flavor.prefix.clone(), flavor.suffix.clone()),
            (p, s) => (
                p.map(|p| facts.expand(p)).unwrap_or_default(),
                s.map(|s| facts.expand(s)).unwrap_or_default(),
            ),
        };
        let value = sanitize_tag(&format!("{prefix}{value}{suffix}"));
        if !value.is_empty() {
            found.push((prio, value, eligible));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut values: Vec<String> = Vec::new();
    for (_, v, _) in &found {
        if !values.contains(v) {
            values.push(v.clone());
        }
    }
    let want_latest = match flavor.latest.as_str() {
        "true" => true,
        "false" => false,
        _ => found.iter().any(|(_, _, e)| *e),
    };
    let version = values.first().cloned().unwrap_or_default();
    if want_latest {
        let l = format!(
            "{}latest{}",
            if flavor.prefix_latest {
                flavor.prefix.as_str()
            } else {
                ""
            },
            if flavor.suffix_latest {
                flavor.suffix.as_str()
            } else {
                ""
            }
        );
        if !values.contains(&l) {
            values.push(l);
        }
    }
    let images: Vec<String> = images
        .iter()
        .map(|i| {
            let a = parse_attrs(i);
            if a.contains_key("name") {
                a["name"].clone()
            } else {
                i.clone()
            }
        })
        .map(|i| i.to_ascii_lowercase())
        .collect();
    let tags = if images.is_empty() {
        values.clone()
    } else {
        images
            .iter()
            .flat_map(|img| values.iter().map(move |v| format!("{img}:{v}")))
            .collect()
    };
    let repo_url = format!(
        "{}/{}",
        if g.server_url.is_empty() {
            "https://github.com"
        } else {
            &g.server_url
        },
        g.repository
    );
    let title = g.repository.rsplit('/').next().unwrap_or("").to_string();
    let s = |p: &str| {
        g.event
            .pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let mut labels: IndexMap<String, String> = IndexMap::new();
    labels.insert(
        "org.opencontainers.image.created".into(),
        facts
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    labels.insert(
        "org.opencontainers.image.description".into(),
        s("/repository/description"),
    );
    labels.insert(
        "org.opencontainers.image.licenses".into(),
        s("/repository/license/spdx_id"),
    );
    labels.insert("org.opencontainers.image.revision".into(), g.sha.clone());
    labels.insert("org.opencontainers.image.source".into(), repo_url.clone());
    labels.insert("org.opencontainers.image.title".into(), title);
    labels.insert("org.opencontainers.image.url".into(), repo_url);
    labels.insert("org.opencontainers.image.version".into(), version.clone());
    for l in extra_labels {
        if let Some((k, v)) = l.split_once('=') {
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    Ok((
        Meta {
            version,
            tags,
            labels: labels.into_iter().collect(),
        },
        warnings,
    ))
}

#[async_trait]
impl BuiltinAction for Metadata {
    fn name(&self) -> &'static str {
        "docker/metadata-action"
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let images = input_list(inputs, "images");
        let (meta, warnings) = compute(
            &env.github,
            &images,
            &input_lines(inputs, "tags"),
            &input_lines(inputs, "flavor"),
            &input_lines(inputs, "labels"),
        )?;
        res.warnings = warnings;
        let sep_tags = input(inputs, "sep-tags").unwrap_or("\n");
        let sep_labels = input(inputs, "sep-labels").unwrap_or("\n");
        let labels: Vec<String> = meta
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        res.log(format!("Version: {}", meta.version));
        for t in &meta.tags {
            res.log(format!("Tag: {t}"));
        }
        let json = serde_json::json!({
            "tags": meta.tags,
            "labels": meta.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<String, serde_json::Value>>(),
        });
        res.output("version", meta.version.clone());
        res.output("tags", meta.tags.join(sep_tags));
        res.output("labels", labels.join(sep_labels));
        res.output(
            "annotations",
            labels
                .iter()
                .map(|l| format!("manifest:{l}"))
                .collect::<Vec<_>>()
                .join(sep_labels),
        );
        res.output("json", json.to_string());
        let bake = serde_json::json!({"target": {"docker-metadata-action": {"tags": meta.tags, "labels": json["labels"], "args": {"DOCKER_META_IMAGES": images.join(","), "DOCKER_META_VERSION": meta.version}}}});
        res.output("bake-file", bake.to_string());
        Ok(res)
    }
}
