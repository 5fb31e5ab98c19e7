//! The approval banner of a waiting run and the form it posts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::approve::{self, DecideError, Pending};
use super::auth::{self, Viewer};
use super::run::find_run;
use super::view::{self, UiError};
use crate::config::Role;
use crate::state::App;

pub fn banner(pending: &[Pending], v: &Viewer, action: &str) -> Markup {
    html! {
        div #banner data-swap="" {
            @for p in pending {
                section.banner role="status" aria-label={"Waiting for review: " (p.environment)} {
                    h2 { "‖ Waiting for review: " strong { (p.environment) } }
                    p {
                        "Reviewers: " (p.reviewers.join(", ")) ". "
                        (p.still_needed) " of " (p.required) " approvals still needed"
                        @if !p.approved_by.is_empty() { " (approved by " (p.approved_by.join(", ")) ")" }
                        ". "
                        @if !p.wait_timer.is_zero() { "Wait timer: " (p.wait_timer.as_secs()) " s. " }
                        "Waiting since " (view::time(&p.waiting_since)) "."
                    }
                    @match &p.viewer_refusal {
                        None => {
                            form.review method="post" action=(action) {
                                (view::csrf_input(v))
                                input type="hidden" name="environment" value=(p.environment);
                                label for={"comment-" (p.environment)} { "Comment" }
                                textarea id={"comment-" (p.environment)} name="comment" rows="2" {}
                                div.buttons {
                                    button.primary #approve type="submit" name="decision" value="approve" { "Approve and deploy" }
                                    button.danger #reject type="submit" name="decision" value="reject" { "Reject" }
                                }
                            }
                        }
                        Some(why) => { p.muted { (why) } }
                    }
                }
            }
        }
    }
}

pub async fn post(
    State(app): State<Arc<App>>,
    Path((owner, repo, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, UiError> {
    let v = auth::check_post(&app, &headers, &form).await?;
    let r = view::repository(&app, &v, &owner, &repo, Role::Write)?;
    let run = find_run(&app, &r.name, &run_id).await?;
    let env = form.get("environment").map(String::as_str).unwrap_or("");
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            return Err(UiError::Conflict(
                "decision must be approve or reject".into(),
            ));
        }
    };
    let comment = form.get("comment").map(String::as_str).unwrap_or("");
    match approve::decide(&app, r, &run, &v.user, env, approve, comment).await {
        Ok(()) => Ok(Redirect::to(&format!("/{}/actions/runs/{}", r.name, run.id)).into_response()),
        Err(DecideError::Refused(m)) => Err(UiError::Forbidden(m)),
        Err(DecideError::NotWaiting(m)) => Err(UiError::Conflict(m)),
        Err(DecideError::Store(e)) => Err(e.into()),
    }
}
