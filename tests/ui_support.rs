//! Shared by the web UI browser tests: chromedriver and a fantoccini client, screenshots,
//! sign-in, waiting on the page, posts from inside the page, a cross-site attacker page.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver on a free port; killed on drop.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group, and the browsers it started are in it:
        // killing chromedriver alone left them running after every test.
        // SAFETY: signals the group this test started, nothing else.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

pub fn find_chromedriver() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// The browser, or None (with a loud message) when chromedriver is missing, unless
/// `GANTRY_REQUIRE_BROWSER=1`, which turns that into a failure.
pub async fn browser() -> Option<(Driver, Client)> {
    browser_with(&[], serde_json::json!({})).await
}

/// [`browser`] with more Chromium arguments (`--force-dark-mode`, a window size) and
/// profile preferences (JavaScript off).
pub async fn browser_with(
    extra_args: &[&str],
    prefs: serde_json::Value,
) -> Option<(Driver, Client)> {
    let Some(bin) = find_chromedriver() else {
        if std::env::var("GANTRY_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "GANTRY_REQUIRE_BROWSER=1 but chromedriver is missing (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!(
            "\n*** SKIPPED: the web UI browser tests need chromedriver (apt-get install chromium chromium-driver) ***\n"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), {
        let mut args: Vec<&str> = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ];
        if !extra_args.iter().any(|a| a.starts_with("--window-size")) {
            args.push("--window-size=1280,800");
        }
        args.extend_from_slice(extra_args);
        serde_json::json!({ "args": args, "prefs": prefs })
    });
    // octocrab's and fantoccini's rustls both link; choose the provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(c) => return Some((driver, c)),
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub fn shot_dir() -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ui");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(shot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits (up to 10 s) for an element matching `css`.
pub async fn wait_for(c: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Clicks the element matching `css`, then waits for one matching `then`.
pub async fn click_then(c: &Client, css: &str, then: &str, what: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, then, what).await;
}

pub async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    // Not signed in: the sign-in page, which returns to where we were going.
    let field = wait_for(c, "#token", "the sign-in page").await;
    field.send_keys(token).await.unwrap();
    click_then(c, "form button[type=submit]", "header .who", "signed in").await;
}

pub async fn sign_out(c: &Client) {
    click_then(c, "form[action='/logout'] button", "#token", "signed out").await;
}

/// Waits until `script` (a JS expression) is truthy in the page.
pub async fn until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = c
            .execute(&format!("return !!({script});"), vec![])
            .await
            .unwrap();
        if v == serde_json::Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; page:\n{}",
                c.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A form POST from inside the page (same origin, the session cookie attached): status.
pub async fn post_from_page(
    c: &Client,
    path: &str,
    fields: &[(&str, &str)],
    with_csrf: bool,
) -> u16 {
    let fields: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let script = r#"
        const [path, fields, withCsrf, done] = arguments;
        const body = new URLSearchParams(fields);
        const t = document.querySelector("input[name=_csrf]");
        if (withCsrf && t) body.set("_csrf", t.value);
        fetch(path, { method: "POST", body, redirect: "manual", credentials: "same-origin" })
            .then(r => done(r.status), e => done(String(e)));
    "#;
    let v = c
        .execute_async(script, vec![path.into(), fields.into(), with_csrf.into()])
        .await
        .unwrap();
    v.as_u64().unwrap_or_else(|| panic!("fetch failed: {v}")) as u16
}

/// A page on another origin that posts a form to the server as soon as it loads.
pub fn attacker_page(target: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten().take(4) {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let html = format!(
                "<!doctype html><form id=f method=post action=\"{target}\">\
                 <input name=decision value=approve></form><script>f.submit()</script>"
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    format!("http://{addr}/")
}
