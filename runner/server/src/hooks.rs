//! `POST /hooks/{github,gitea,forgejo,gitlab}`: a delivery is verified (HMAC-SHA256 over
//! the exact bytes received, or GitLab's token, compared in constant time) before its body
//! is parsed, de-duplicated by its delivery id, recorded with its payload, and answered at
//! once with 202; fetching and queueing runs happen after the answer (`processing`), and a
//! delivery whose processing a crash or a stop interrupted is processed when the server
//! starts again.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value as J, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Forge, Repository};
use crate::processing::{self, Processing};
use crate::state::App;
use crate::store::Admission;
use crate::trigger;

/// GitHub does not deliver payloads over 25 MB; neither do we accept them.
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;

/// The headers a forge puts its event, delivery id and signature in.
struct ForgeHeaders {
    event: &'static str,
    delivery: &'static [&'static str],
    signature: &'static str,
}

fn headers_of(forge: Forge) -> ForgeHeaders {
    match forge {
        Forge::Github => ForgeHeaders {
            event: "x-github-event",
            delivery: &["x-github-delivery"],
            signature: "x-hub-signature-256",
        },
        Forge::Gitea => ForgeHeaders {
            event: "x-gitea-event",
            delivery: &["x-gitea-delivery"],
            signature: "x-gitea-signature",
        },
        Forge::Forgejo => ForgeHeaders {
            event: "x-forgejo-event",
            delivery: &["x-forgejo-delivery"],
            signature: "x-forgejo-signature",
        },
        Forge::Gitlab => ForgeHeaders {
            event: "x-gitlab-event",
            // `Idempotency-Key` is the same on every retry of a delivery (automatic, or
            // "Resend request"); `X-Gitlab-Event-UUID` is new for each request, so it
            // de-duplicates nothing. It is the id only from GitLab before 17.4, which
            // sends no key.
            delivery: &["idempotency-key", "x-gitlab-event-uuid"],
            signature: "x-gitlab-token",
        },
    }
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// Does `sig` (the header's value) sign `body` with `secret`?
fn signature_matches(forge: Forge, sig: &str, secret: &str, body: &[u8]) -> bool {
    match forge {
        // GitLab sends the secret itself; compare hashes so the time does not depend on
        // where the strings differ or on their lengths.
        Forge::Gitlab => {
            let a: [u8; 32] = Sha256::digest(sig.as_bytes()).into();
            let b: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            bool::from(a.ct_eq(&b))
        }
        _ => {
            let hex_sig = if forge == Forge::Github {
                match sig.strip_prefix("sha256=") {
                    Some(h) => h,
                    None => return false,
                }
            } else {
                sig
            };
            let Ok(expected) = hex::decode(hex_sig.trim()) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                return false;
            };
            mac.update(body);
            // `verify_slice` compares in constant time (subtle underneath).
            mac.verify_slice(&expected).is_ok()
        }
    }
}

struct Refusal {
    result: &'static str,
    status: StatusCode,
    reason: String,
}

fn refuse(result: &'static str, status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        result,
        status,
        reason: reason.into(),
    }
}

/// The body as JSON: GitHub may send `application/x-www-form-urlencoded` with a `payload`
/// field (the signature covers the form body). The form's `payload` text is returned too
/// (what is stored for processing); a JSON body is its own text.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<(J, Option<String>), String> {
    let form = header(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| format!("form body: {e}"))?;
        let payload = fields
            .into_iter()
            .find(|(k, _)| k == "payload")
            .ok_or("form body without a 'payload' field")?
            .1;
        let json =
            serde_json::from_str(&payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        Ok((json, Some(payload)))
    } else {
        let json = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        Ok((json, None))
    }
}

/// A delivery whose signature and repository were checked.
struct Verified {
    repo: Repository,
    payload: J,
    body: Bytes,
    /// A form-encoded body's `payload` field.
    form_payload: Option<String>,
}

/// The payload's JSON text as stored for processing: the body itself when it is JSON (no
/// copy, no re-encoding), the form's field otherwise.
fn payload_text<'a>(body: &'a [u8], form_payload: &'a Option<String>, payload: &J) -> Cow<'a, str> {
    match (form_payload, std::str::from_utf8(body)) {
        (Some(p), _) => Cow::Borrowed(p),
        (None, Ok(text)) => Cow::Borrowed(text),
        (None, Err(_)) => Cow::Owned(payload.to_string()),
    }
}

pub async fn github(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    receive(app, Forge::Github, headers, body).await
}
pub async fn gitea(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    receive(app, Forge::Gitea, headers, body).await
}
pub async fn forgejo(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    receive(app, Forge::Forgejo, headers, body).await
}
pub async fn gitlab(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    receive(app, Forge::Gitlab, headers, body).await
}

async fn receive(app: Arc<App>, forge: Forge, headers: HeaderMap, body: Body) -> Response {
    let h = headers_of(forge);
    let event = header(&headers, h.event).map(str::to_string);
    let delivery = h
        .delivery
        .iter()
        .find_map(|n| header(&headers, n))
        .map(str::to_string);
    let checked = check(
        &app,
        forge,
        &headers,
        body,
        event.as_deref(),
        delivery.as_deref(),
    )
    .await;
    let verified = match checked {
        Ok(ok) => ok,
        Err((r, repo_name)) => {
            tracing::warn!(forge = forge.as_str(), result = r.result, reason = %r.reason, "webhook refused");
            let rec = app
                .store
                .record_delivery(
                    forge.as_str(),
                    delivery.as_deref(),
                    event.as_deref(),
                    repo_name.as_deref(),
                    r.result,
                    r.status.as_u16(),
                    &r.reason,
                )
                .await;
            if let Err(e) = rec {
                tracing::error!("recording a delivery: {e}");
            }
            return (r.status, axum::Json(json!({ "message": r.reason }))).into_response();
        }
    };
    let event = event.unwrap_or_default();
    let delivery = delivery.unwrap_or_default();
    // What the delivery is worth is decided from its payload alone, so that claiming its
    // id and recording it, with the payload when it is to be processed, are one statement
    // (one commit on the request path).
    let Verified {
        repo,
        payload,
        body,
        form_payload,
    } = verified;
    let text = payload_text(&body, &form_payload, &payload);
    let (result, status, reason, incoming) = if event == "ping" {
        ("ping", StatusCode::OK, "pong".to_string(), None)
    } else {
        match trigger::from_webhook(forge, &event, payload) {
            Ok(Some(i)) => (
                "accepted",
                StatusCode::ACCEPTED,
                format!("{event} accepted; runs are queued in the background"),
                Some(i),
            ),
            Ok(None) => (
                "ignored",
                StatusCode::ACCEPTED,
                format!("event '{event}' starts nothing on this server"),
                None,
            ),
            Err(e) => ("bad_payload", StatusCode::BAD_REQUEST, e, None),
        }
    };
    let duplicate = format!("delivery {delivery} was received before; nothing started");
    let admitted = app
        .store
        .admit_delivery(
            forge.as_str(),
            &delivery,
            &event,
            &repo.name,
            result,
            status.as_u16(),
            &reason,
            &duplicate,
            incoming.is_some().then_some(&*text),
        )
        .await;
    match admitted {
        Err(e) => store_failure(e),
        Ok(Admission::Duplicate(_)) => {
            // If the first copy was recorded but is not processed (the server that took
            // it stopped first), this one gets it processed; otherwise nothing happens.
            tokio::spawn(processing::redelivered(app.clone(), forge, delivery));
            (StatusCode::OK, axum::Json(json!({ "message": duplicate }))).into_response()
        }
        Ok(Admission::New(id)) => match incoming {
            // The forge gives up after 10 s: answer now, fetch and plan afterwards. The
            // row holds the payload, so a stop before the runs are queued loses nothing.
            Some(incoming) => {
                let held = Processing::begin(&app, id);
                tokio::spawn(async move {
                    if let Some(held) = held {
                        processing::process(&app, &repo, incoming, delivery, held).await;
                    }
                });
                (
                    status,
                    axum::Json(json!({ "message": reason, "delivery": id })),
                )
                    .into_response()
            }
            None => (status, axum::Json(json!({ "message": reason }))).into_response(),
        },
    }
}

fn store_failure(e: crate::store::StoreError) -> Response {
    tracing::error!("store: {e}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "message": "the run store is unavailable" })),
    )
        .into_response()
}

type Checked = Result<Verified, (Refusal, Option<String>)>;

/// Size, signature, then (only once verified) the body and the repository it names.
async fn check(
    app: &App,
    forge: Forge,
    headers: &HeaderMap,
    body: Body,
    event: Option<&str>,
    delivery: Option<&str>,
) -> Checked {
    let too_big = || {
        refuse(
            "oversized",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload over {MAX_PAYLOAD} bytes"),
        )
    };
    let declared = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD as u64) {
        return Err((too_big(), None));
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_PAYLOAD)
        .await
        .map_err(|_| (too_big(), None))?;
    let h = headers_of(forge);
    let Some(sig) = header(headers, h.signature) else {
        return Err((
            refuse(
                "unsigned",
                StatusCode::UNAUTHORIZED,
                format!("no {} header", h.signature),
            ),
            None,
        ));
    };
    // Which repositories' secrets sign these bytes? Every candidate is checked, so the
    // time taken does not tell which one matched.
    let signed_by: Vec<&Repository> = app
        .cfg
        .repositories
        .iter()
        .filter(|r| r.forge == forge)
        .filter(|r| signature_matches(forge, sig, r.webhook_secret.expose(), &bytes))
        .collect();
    if signed_by.is_empty() {
        return Err((
            refuse(
                "forged",
                StatusCode::UNAUTHORIZED,
                format!("{} does not match any repository's secret", h.signature),
            ),
            None,
        ));
    }
    if event.is_none() || delivery.is_none() {
        return Err((
            refuse(
                "bad_payload",
                StatusCode::BAD_REQUEST,
                format!("missing {} or {} header", h.event, h.delivery.join(" / ")),
            ),
            None,
        ));
    }
    let (payload, form_payload) = parse_body(headers, &bytes)
        .map_err(|e| (refuse("bad_payload", StatusCode::BAD_REQUEST, e), None))?;
    let Some(named) = trigger::payload_repository(forge, &payload) else {
        return Err((
            refuse(
                "bad_payload",
                StatusCode::BAD_REQUEST,
                "the payload names no repository",
            ),
            None,
        ));
    };
    match app.cfg.repository(&named) {
        None => Err((
            refuse(
                "unknown_repository",
                StatusCode::NOT_FOUND,
                format!("repository {named} is not configured on this server"),
            ),
            Some(named),
        )),
        Some(r) if r.forge != forge => Err((
            refuse(
                "unknown_repository",
                StatusCode::NOT_FOUND,
                format!(
                    "repository {named} is configured for {}, not {}",
                    r.forge.as_str(),
                    forge.as_str()
                ),
            ),
            Some(named),
        )),
        Some(r) if !signed_by.iter().any(|s| s.name == r.name) => Err((
            refuse(
                "forged",
                StatusCode::UNAUTHORIZED,
                format!("{} does not match {named}'s secret", h.signature),
            ),
            Some(named),
        )),
        Some(r) => Ok(Verified {
            repo: r.clone(),
            payload,
            body: bytes,
            form_payload,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn github_and_gitea_signatures() {
        let body = br#"{"a":1}"#;
        let hex = sign("s3cret", body);
        assert!(signature_matches(
            Forge::Github,
            &format!("sha256={hex}"),
            "s3cret",
            body
        ));
        assert!(
            !signature_matches(Forge::Github, &hex, "s3cret", body),
            "prefix required"
        );
        assert!(!signature_matches(
            Forge::Github,
            &format!("sha256={hex}"),
            "other",
            body
        ));
        assert!(!signature_matches(
            Forge::Github,
            &format!("sha256={hex}"),
            "s3cret",
            b"{}"
        ));
        assert!(signature_matches(Forge::Gitea, &hex, "s3cret", body));
        assert!(signature_matches(Forge::Forgejo, &hex, "s3cret", body));
        assert!(!signature_matches(Forge::Gitea, "zz", "s3cret", body));
        assert!(signature_matches(Forge::Gitlab, "s3cret", "s3cret", body));
        assert!(!signature_matches(Forge::Gitlab, "s3cre", "s3cret", body));
    }
}
