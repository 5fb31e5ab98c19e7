//! Translation of a workflow's `container:`/`services:` fields into Docker API structures:
//! the `options:` string (a subset of `docker create` flags), `ports:` and `volumes:`.
//! Pure functions, unit-tested below.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{HealthConfig, PortBinding, PortMap};

/// What the supported `options:` flags contribute to a container.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedOptions {
    pub env: Vec<(String, String)>,
    pub health: Option<HealthConfig>,
    pub user: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub tmpfs: HashMap<String, String>,
    pub privileged: bool,
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
    pub shm_size: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub hostname: Option<String>,
    pub extra_hosts: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub init: bool,
    pub read_only: bool,
    pub security_opt: Vec<String>,
    /// `-v/--volume` given in options: handled like `volumes:` entries.
    pub volumes: Vec<String>,
    /// `-p/--publish` given in options: handled like `ports:` entries.
    pub ports: Vec<String>,
}

/// The flags accepted in `options:`, for error messages and docs.
pub const SUPPORTED_OPTIONS: &str = "--health-cmd, --health-interval, --health-timeout, \
--health-retries, --health-start-period, --no-healthcheck, -e/--env, --name (ignored), \
-u/--user, --entrypoint, -w/--workdir, --tmpfs, --privileged, --cpus, -m/--memory, --shm-size, \
--cap-add, --cap-drop, -h/--hostname, --add-host, -l/--label, --init, --read-only, \
--security-opt, -v/--volume, -p/--publish";

/// Split a command line the way a POSIX shell would for plain words: whitespace separates,
/// single quotes are literal, double quotes allow `\"` and `\\`, backslash escapes outside.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated ' quote in: {s}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&n @ ('"' | '\\' | '$' | '`')) => {
                                cur.push(n);
                                chars.next();
                            }
                            _ => cur.push('\\'),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated \" quote in: {s}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next()
                    && n != '\n'
                {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Parse a Go-style duration (`10s`, `1m30s`, `500ms`, `2h`, `1.5s`) into nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<i64, String> {
    let err = || format!("invalid duration '{s}' (expected e.g. 10s, 500ms, 1m30s)");
    let s = s.trim();
    if s.is_empty() {
        return Err(err());
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

/// Parse a byte size as docker does (`512m`, `1g`, `1024k`, `1000000`, `2GB`).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let err = || format!("invalid size '{s}' (expected e.g. 512m, 1g)");
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let n: f64 = lower[..split].parse().map_err(|_| err())?;
    let mult = match &lower[split..] {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    Ok((n * mult) as i64)
}

fn parse_bool_flag(flag: &str, inline: Option<&str>) -> Result<bool, String> {
    match inline {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("option {flag}: expected true or false, got '{v}'")),
    }
}

/// Parse `options:`. Unknown flags are an error naming the supported ones.
pub fn parse_options(options: Option<&str>) -> Result<ParsedOptions, String> {
    let mut p = ParsedOptions::default();
    let Some(options) = options else {
        return Ok(p);
    };
    let words = split_words(options).map_err(|e| format!("options: {e}"))?;
    let mut i = 0;
    let mut health = HealthConfig::default();
    let mut has_health = false;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if !word.starts_with('-') || word == "-" {
            return Err(format!(
                "options: unexpected argument '{word}' (options holds `docker create` flags only)"
            ));
        }
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (word.clone(), None),
        };
        let is_bool = matches!(
            flag.as_str(),
            "--privileged" | "--init" | "--read-only" | "--no-healthcheck"
        );
        if is_bool {
            let on = parse_bool_flag(&flag, inline.as_deref())?;
            match flag.as_str() {
                "--privileged" => p.privileged = on,
                "--init" => p.init = on,
                "--read-only" => p.read_only = on,
                _ => {
                    if on {
                        has_health = true;
                        health.test = Some(vec!["NONE".into()]);
                    }
                }
            }
            continue;
        }
        // Short flags may carry their value attached (`-e=X` is not docker syntax, `-eX` is).
        let (flag, inline) = match (flag.as_str(), inline) {
            (f, None) if f.len() > 2 && !f.starts_with("--") => {
                (f[..2].to_string(), Some(f[2..].to_string()))
            }
            (_, inline) => (flag.clone(), inline),
        };
        let known = matches!(
            flag.as_str(),
            "--health-cmd"
                | "--health-interval"
                | "--health-timeout"
                | "--health-retries"
                | "--health-start-period"
                | "-e"
                | "--env"
                | "--name"
                | "-u"
                | "--user"
                | "--entrypoint"
                | "-w"
                | "--workdir"
                | "--tmpfs"
                | "--cpus"
                | "-m"
                | "--memory"
                | "--shm-size"
                | "--cap-add"
                | "--cap-drop"
                | "-h"
                | "--hostname"
                | "--add-host"
                | "-l"
                | "--label"
                | "--security-opt"
                | "-v"
                | "--volume"
                | "-p"
                | "--publish"
        );
        if !known {
            let why = if flag == "--network" || flag == "--net" {
                " (the job network is managed by gantry, as on GitHub)".to_string()
            } else {
                format!("; supported: {SUPPORTED_OPTIONS}")
            };
            return Err(format!("options: unsupported flag '{flag}'{why}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = words
                    .get(i)
                    .ok_or_else(|| format!("options: flag {flag} needs a value"))?;
                i += 1;
                v.clone()
            }
        };
        match flag.as_str() {
            "--health-cmd" => {
                has_health = true;
                health.test = Some(vec!["CMD-SHELL".into(), value]);
            }
            "--health-interval" => {
                has_health = true;
                health.interval = Some(parse_duration_ns(&value)?);
            }
            "--health-timeout" => {
                has_health = true;
                health.timeout = Some(parse_duration_ns(&value)?);
            }
            "--health-start-period" => {
                has_health = true;
                health.start_period = Some(parse_duration_ns(&value)?);
            }
            "--health-retries" => {
                has_health = true;
                health.retries = Some(value.parse().map_err(|_| {
                    format!("options: --health-retries expects a number, got '{value}'")
                })?);
            }
            "-e" | "--env" => match value.split_once('=') {
                Some((k, v)) => p.env.push((k.to_string(), v.to_string())),
                // `-e NAME` passes the variable through from gantry's environment.
                None => {
                    if let Ok(v) = std::env::var(&value) {
                        p.env.push((value, v));
                    }
                }
            },
            "--name" => {}
            "-u" | "--user" => p.user = Some(value),
            "--entrypoint" => p.entrypoint = Some(vec![value]),
            "-w" | "--workdir" => p.workdir = Some(value),
            "--tmpfs" => {
                let (path, opts) = value.split_once(':').unwrap_or((value.as_str(), ""));
                p.tmpfs.insert(path.to_string(), opts.to_string());
            }
            "--cpus" => {
                let cpus: f64 = value
                    .parse()
                    .map_err(|_| format!("options: --cpus expects a number, got '{value}'"))?;
                p.nano_cpus = Some((cpus * 1e9) as i64);
            }
            "-m" | "--memory" => p.memory = Some(parse_bytes(&value)?),
            "--shm-size" => p.shm_size = Some(parse_bytes(&value)?),
            "--cap-add" => p.cap_add.push(value),
            "--cap-drop" => p.cap_drop.push(value),
            "-h" | "--hostname" => p.hostname = Some(value),
            "--add-host" => p.extra_hosts.push(value),
            "-l" | "--label" => {
                let (k, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
                p.labels.push((k.to_string(), v.to_string()));
            }
            "--security-opt" => p.security_opt.push(value),
            "-v" | "--volume" => p.volumes.push(value),
            "-p" | "--publish" => p.ports.push(value),
            _ => unreachable!("flag list and match arms agree"),
        }
    }
    if has_health {
        p.health = Some(health);
    }
    Ok(p)
}

/// One `ports:` entry as (container port key like `80/tcp`, host binding).
pub fn parse_port(entry: &str) -> Result<(String, PortBinding), String> {
    let err = |why: &str| format!("ports: invalid entry '{entry}': {why}");
    let (spec, proto) = match entry.rsplit_once('/') {
        Some((s, p)) if matches!(p, "tcp" | "udp" | "sctp") => (s, p),
        Some(_) => return Err(err("protocol must be tcp, udp or sctp")),
        None => (entry, "tcp"),
    };
    // ip:host:container, host:container, container; an IPv6 ip may be bracketed.
    let parts: Vec<&str> = match spec.strip_prefix('[') {
        Some(rest) => {
            let (ip, rest) = rest.split_once(']').ok_or_else(|| err("unclosed ["))?;
            let rest = rest
                .strip_prefix(':')
                .ok_or_else(|| err("expected ':' after ]"))?;
            let mut v = vec![ip];
            v.extend(rest.splitn(2, ':'));
            v
        }
        None => spec
            .rsplitn(3, ':')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
    };
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(err("too many ':'")),
    };
    let is_port = |s: &str| s.parse::<u16>().is_ok();
    if !is_port(container) {
        return Err(err(
            "container port must be a number (ranges are not supported)",
        ));
    }
    if !host.is_empty() && !is_port(host) {
        return Err(err("host port must be a number (ranges are not supported)"));
    }
    Ok((
        format!("{container}/{proto}"),
        PortBinding {
            host_ip: (!ip.is_empty()).then(|| ip.to_string()),
            host_port: Some(host.to_string()),
        },
    ))
}

/// All `ports:` entries as a Docker port map.
pub fn port_map(entries: &[String]) -> Result<PortMap, String> {
    let mut map: PortMap = HashMap::new();
    for e in entries {
        let (key, binding) = parse_port(e.trim())?;
        map.entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    Ok(map)
}

/// The `job.services.<id>.ports` key for a Docker port key: `5432/tcp` → `5432`,
/// other protocols keep their suffix (`53/udp`).
pub fn port_key(docker_key: &str) -> String {
    docker_key
        .strip_suffix("/tcp")
        .unwrap_or(docker_key)
        .to_string()
}

/// A `volumes:` entry sorted for the Docker API.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSpec {
    /// `src:dst[:opts]` with a host path or a named volume: goes to `HostConfig.Binds`.
    Bind { bind: String, named: Option<String> },
    /// `dst` only: an anonymous volume (`Config.Volumes`).
    Anonymous(String),
}

/// Parse a `volumes:` entry; relative host paths (`./x`, `../x`) resolve against `base`.
pub fn parse_volume(entry: &str, base: &Path) -> Result<VolumeSpec, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("volumes: empty entry".into());
    }
    let parts: Vec<&str> = entry.split(':').collect();
    match parts.as_slice() {
        [dst] => Ok(VolumeSpec::Anonymous(dst.to_string())),
        [src, rest @ ..] if rest.len() <= 2 => {
            if !rest[0].starts_with('/') {
                return Err(format!(
                    "volumes: invalid entry '{entry}': the target must be an absolute path"
                ));
            }
            let (src, named) = if src.starts_with('/') {
                (src.to_string(), None)
            } else if src.starts_with('.') || src.starts_with('~') {
                let rel = src.trim_start_matches("~/");
                (base.join(rel).to_string_lossy().into_owned(), None)
            } else {
                (src.to_string(), Some(src.to_string()))
            };
            let mut bind = format!("{src}:{}", rest[0]);
            if let Some(opts) = rest.get(1) {
                bind.push(':');
                bind.push_str(opts);
            }
            Ok(VolumeSpec::Bind { bind, named })
        }
        _ => Err(format!(
            "volumes: invalid entry '{entry}' (expected src:dst[:ro])"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"--health-cmd "pg_isready -U \"me\"" --x 'a b'  c\ d"#).unwrap(),
            vec!["--health-cmd", r#"pg_isready -U "me""#, "--x", "a b", "c d"]
        );
        assert!(split_words("'open").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration_ns("10s").unwrap(), 10_000_000_000);
        assert_eq!(parse_duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration_ns("500ms").unwrap(), 500_000_000);
        assert!(parse_duration_ns("10").is_err());
        assert!(parse_duration_ns("5x").is_err());
        assert_eq!(parse_bytes("512m").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_bytes("1GB").unwrap(), 1024 * 1024 * 1024);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn options_common_flags() {
        let p = parse_options(Some(
            "--health-cmd \"pg_isready\" --health-interval 10s --health-timeout=5s \
             --health-retries 5 --health-start-period 1s -e A=1 --env B=2 --name x \
             --user 1000:1000 --entrypoint /bin/sh --workdir /w --tmpfs /run:size=1m \
             --privileged --cpus 1.5 --memory 512m",
        ))
        .unwrap();
        let h = p.health.unwrap();
        assert_eq!(h.test.unwrap(), vec!["CMD-SHELL", "pg_isready"]);
        assert_eq!(h.interval, Some(10_000_000_000));
        assert_eq!(h.timeout, Some(5_000_000_000));
        assert_eq!(h.retries, Some(5));
        assert_eq!(h.start_period, Some(1_000_000_000));
        assert_eq!(
            p.env,
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(p.user.as_deref(), Some("1000:1000"));
        assert_eq!(p.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(p.workdir.as_deref(), Some("/w"));
        assert_eq!(p.tmpfs.get("/run").map(String::as_str), Some("size=1m"));
        assert!(p.privileged);
        assert_eq!(p.nano_cpus, Some(1_500_000_000));
        assert_eq!(p.memory, Some(512 * 1024 * 1024));
    }

    #[test]
    fn options_errors() {
        let e = parse_options(Some("--frobnicate 3")).unwrap_err();
        assert!(
            e.contains("unsupported flag '--frobnicate'") && e.contains("--health-cmd"),
            "{e}"
        );
        let e = parse_options(Some("--network host")).unwrap_err();
        assert!(e.contains("managed by gantry"), "{e}");
        assert!(
            parse_options(Some("--health-retries"))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(parse_options(Some("postgres")).is_err());
    }

    #[test]
    fn ports() {
        let (k, b) = parse_port("8080").unwrap();
        assert_eq!(
            (k.as_str(), b.host_port.as_deref(), b.host_ip),
            ("8080/tcp", Some(""), None)
        );
        let (k, b) = parse_port("8080:80").unwrap();
        assert_eq!(
            (k.as_str(), b.host_port.as_deref()),
            ("80/tcp", Some("8080"))
        );
        let (k, b) = parse_port("127.0.0.1:5432:5432/tcp").unwrap();
        assert_eq!(k, "5432/tcp");
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        let (k, _) = parse_port("53/udp").unwrap();
        assert_eq!(port_key(&k), "53/udp");
        assert_eq!(port_key("5432/tcp"), "5432");
        assert!(parse_port("80-90").is_err());
        assert!(parse_port("80/xyz").is_err());
    }

    #[test]
    fn volumes() {
        let base = Path::new("/ws");
        assert_eq!(
            parse_volume("/data:/data:ro", base).unwrap(),
            VolumeSpec::Bind {
                bind: "/data:/data:ro".into(),
                named: None
            }
        );
        assert_eq!(
            parse_volume("./cfg:/cfg", base).unwrap(),
            VolumeSpec::Bind {
                bind: "/ws/./cfg:/cfg".into(),
                named: None
            }
        );
        assert_eq!(
            parse_volume("cache:/cache", base).unwrap(),
            VolumeSpec::Bind {
                bind: "cache:/cache".into(),
                named: Some("cache".into())
            }
        );
        assert_eq!(
            parse_volume("/anon", base).unwrap(),
            VolumeSpec::Anonymous("/anon".into())
        );
        assert!(parse_volume("a:b", base).is_err());
    }
}
