//! The admin pages: `/admin/queue` (the queue, running jobs, actions, refs that failed on
//! their own, the audit log, failed sign-ins), `/admin/deliveries`, and per project
//! `/admin/projects/{project}` (its failed refs and releases) and `…/releases/{version}` (a
//! release's whole build log), behind a login with an admin token. Every action goes through `admin::AdminActions`, as
//! the API's and the CLI's do, then redirects back (303) with a message. The queue and
//! deliveries pages reload themselves.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::client::ClientAddress;
use super::pages::{Page, find_project, find_release};
use super::session::{AdminForm, AdminSession, CheckedForm, Flash, Session};
use super::views::ProjectView;
use crate::admin::audit::{self, AuditEntryView};
use crate::admin::throttle::{self, AuthFailureView};
use crate::admin::tokens::Scope;
use crate::admin::{AdminError, FailureKind};
use crate::deliveries::{self, DeliveryView, RefusalCountView};
use crate::error::{AppError, Missing};
use crate::problems::{self, Problem};
use crate::queue::{QueueItemView, QueueState};
use crate::{projects, releases};

/// How often the pages reload themselves, in seconds.
const REFRESH_SECONDS: u32 = 10;
/// Audit entries on the queue page.
const AUDIT_SHOWN: u64 = 50;
/// Addresses on the queue page's failed sign-ins.
const AUTH_FAILURES_SHOWN: u64 = 50;
/// Failed refs on the queue page (a project's page shows all of its own).
const PROBLEMS_SHOWN: u64 = 50;
/// Deliveries per project on the deliveries page; with `?project=` one project shows more.
const DELIVERIES_PER_PROJECT: u64 = 20;
const DELIVERIES_OF_ONE_PROJECT: u64 = 200;
/// Rows of counted refusals (per minute, address and reason) on the deliveries page.
const COUNTED_SHOWN: u64 = 100;

pub async fn home() -> Redirect {
    Redirect::to("/admin/queue")
}

#[derive(Template)]
#[template(path = "admin-login.html")]
pub struct LoginPage {
    csrf: String,
    error: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, AppError> {
    if session.who(&state.tokens).await?.is_some() {
        return Ok(Redirect::to("/admin/queue").into_response());
    }
    let page = LoginPage {
        csrf: session.csrf(),
        error: None,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}

/// Checks the token like `Authorization: Bearer` does, under the same budget of failures per
/// client address (`admin::throttle`); a good one opens a session. An empty field is no
/// attempt, so it spends nothing.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    form: CheckedForm,
) -> Result<Response, AppError> {
    let presented = form.fields.get("token").unwrap_or_default();
    if presented.trim().is_empty() {
        let error = "Enter an admin token.".to_string();
        return Ok(login_again(form.session, StatusCode::UNAUTHORIZED, error));
    }
    let attempt = match state.auth_throttle.check(address, FailureKind::Login).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            let seconds = wait.seconds();
            let error = format!(
                "Too many failed sign-ins from your address: no token from it is checked for \
                 {seconds} s. Try again then."
            );
            let mut answer = login_again(form.session, StatusCode::TOO_MANY_REQUESTS, error);
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(answer);
        }
    };
    let who = match state.tokens.authenticate(presented).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            attempt.failed();
            let error = "That token is not valid: unknown, revoked, or not configured.".into();
            return Ok(login_again(form.session, StatusCode::UNAUTHORIZED, error));
        }
        // Not proven is a failure too (see `web::auth`).
        Err(e) => {
            attempt.failed();
            return Err(e.into());
        }
    };
    drop(attempt);
    if who.scope != Scope::Admin {
        let error = format!(
            "That token's scope is {}: the admin pages need an admin token.",
            who.describe_scope()
        );
        return Ok(login_again(form.session, StatusCode::FORBIDDEN, error));
    }
    state.actions.record_login(&who.actor).await?;
    let session = form.session.sign_in(&who, &state.tokens)?;
    Ok((session.into_jar(), Redirect::to("/admin/queue")).into_response())
}

/// The login form again, with why the last try did not sign in.
fn login_again(session: Session, status: StatusCode, error: String) -> Response {
    let page = LoginPage {
        csrf: session.csrf(),
        error: Some(error),
    };
    (status, session.into_jar(), Page(page)).into_response()
}

pub async fn logout(State(state): State<AppState>, form: AdminForm) -> Result<Response, AppError> {
    let (sid, expires) = form.session.id();
    state.actions.logout(&form.actor, &sid, expires).await?;
    Ok((form.session.sign_out(), Redirect::to("/admin/login")).into_response())
}

#[derive(Template)]
#[template(path = "admin-queue.html")]
pub struct QueuePage {
    actor: String,
    csrf: String,
    flash: Option<Flash>,
    refresh_seconds: u32,
    paused: bool,
    running: Vec<QueueItemView>,
    items: Vec<QueueItemView>,
    pending: usize,
    failed: usize,
    projects: Vec<String>,
    /// (project, problem), newest first.
    problems: Vec<(String, Problem)>,
    audit: Vec<AuditEntryView>,
    /// Per client address, newest first.
    auth_failures: Vec<AuthFailureView>,
}

pub async fn queue(
    State(state): State<AppState>,
    AdminSession { mut session, actor }: AdminSession,
) -> Result<Response, AppError> {
    let listing = state.queue.list().await?;
    let projects = projects::list(&state.db)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let audit = audit::recent(&state.db, AUDIT_SHOWN).await?;
    let auth_failures = throttle::recent_failures(&state.db, AUTH_FAILURES_SHOWN).await?;
    let problems = problems::recent(&state.db, PROBLEMS_SHOWN).await?;
    let count = |state: QueueState| listing.items.iter().filter(|i| i.state == state).count();
    let page = QueuePage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        flash: session.take_flash(),
        refresh_seconds: REFRESH_SECONDS,
        paused: listing.paused,
        running: listing
            .items
            .iter()
            .filter(|i| i.state == QueueState::Running)
            .cloned()
            .collect(),
        pending: count(QueueState::Pending),
        failed: count(QueueState::Failed),
        items: listing.items,
        projects,
        problems,
        audit,
        auth_failures,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}

/// Back to the queue page with what the action did, or why it did nothing. Only a fault of
/// baler's own (a 5xx) becomes an error page.
fn done(form: AdminForm, outcome: Result<String, AdminError>) -> Result<Response, AppError> {
    done_at(form, outcome, "/admin/queue")
}

/// Back to `page` with what the action did, or why it did nothing, as [`done`].
pub(super) fn done_at(
    form: AdminForm,
    outcome: Result<String, AdminError>,
    page: &str,
) -> Result<Response, AppError> {
    let flash = match outcome {
        Ok(message) => Flash {
            error: false,
            message,
        },
        Err(e) => {
            let e = AppError::from(e);
            if e.status().is_server_error() {
                return Err(e);
            }
            Flash {
                error: true,
                message: e.to_string(),
            }
        }
    };
    let mut session = form.session;
    session.set_flash(flash);
    Ok((session.into_jar(), Redirect::to(page)).into_response())
}

pub async fn pause(State(state): State<AppState>, form: AdminForm) -> Result<Response, AppError> {
    let outcome = state.actions.pause(&form.actor).await.map(|()| {
        "Paused: running jobs finish, no new job starts; webhooks still queue.".to_string()
    });
    done(form, outcome)
}

pub async fn resume(State(state): State<AppState>, form: AdminForm) -> Result<Response, AppError> {
    let outcome = state
        .actions
        .resume(&form.actor)
        .await
        .map(|()| "Resumed: workers claim items again.".to_string());
    done(form, outcome)
}

/// Needs the form's `confirm` box ticked: flushing cannot be undone.
pub async fn flush(State(state): State<AppState>, form: AdminForm) -> Result<Response, AppError> {
    let outcome = if form.fields.get("confirm") == Some("yes") {
        state
            .actions
            .flush(&form.actor)
            .await
            .map(|removed| format!("Flushed: removed {removed} pending items."))
    } else {
        Err(AdminError::Invalid(
            "Nothing was flushed: tick the box to confirm that every pending item goes.".into(),
        ))
    };
    done(form, outcome)
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: AdminForm,
) -> Result<Response, AppError> {
    let outcome = state
        .actions
        .delete(&form.actor, id)
        .await
        .map(|()| format!("Deleted item {id}."));
    done(form, outcome)
}

pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: AdminForm,
) -> Result<Response, AppError> {
    let outcome = state.actions.retry(&form.actor, id).await.map(|queued| {
        format!(
            "Item {id} queued again as item {} at position {}.",
            queued.item, queued.position
        )
    });
    done(form, outcome)
}

/// The project comes from the form's `project` field (a select on the page).
pub async fn rebuild(State(state): State<AppState>, form: AdminForm) -> Result<Response, AppError> {
    let project = form.fields.get("project").unwrap_or_default().to_string();
    let outcome = state
        .actions
        .rebuild(&form.actor, &project)
        .await
        .map(|queued| {
            format!(
                "Rebuild of {project} queued as item {} at position {}.",
                queued.item, queued.position
            )
        });
    done(form, outcome)
}

/// The project page's Connect button: as `baler project connect`, with the config file's
/// token; back to the project page with what happened.
pub async fn connect_project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: AdminForm,
) -> Result<Response, AppError> {
    use crate::connect::{ConnectError, Ping};
    let credentials = state.credentials(&name);
    let outcome = match state
        .connector
        .connect(&form.actor, &name, &credentials)
        .await
    {
        Ok(done) => {
            let ping = match &done.ping {
                Ping::Arrived { status } => format!("its ping arrived ({status})"),
                Ping::Refused { status, reason } => {
                    format!("its ping arrived but was refused ({status}: {reason})")
                }
                Ping::NotSeen { waited_seconds } => format!(
                    "its ping did not arrive within {waited_seconds} s: can the host reach {}?",
                    done.hook_url
                ),
                Ping::NotAsked { why } => why.clone(),
            };
            Ok(format!(
                "{} the {} webhook {} for {name}; {ping}.",
                if done.created { "Created" } else { "Updated" },
                done.provider,
                done.hook_id
            ))
        }
        Err(ConnectError::Admin(e)) => Err(e),
        // The host's refusal, or a missing token: for the admin to read on the page.
        Err(other) => Err(AdminError::Invalid(other.to_string())),
    };
    let page = format!("/admin/projects/{}", urlencoding_path(&name));
    done_at(form, outcome, &page)
}

/// A project name in a path: names are `[a-z0-9_]+`, so nothing needs escaping; anything else
/// (a forged form) is escaped rather than trusted.
fn urlencoding_path(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

/// One project's deliveries on the deliveries page.
pub struct DeliveryGroup {
    project: String,
    deliveries: Vec<DeliveryView>,
}

#[derive(Template)]
#[template(path = "admin-deliveries.html")]
pub struct DeliveriesPage {
    actor: String,
    csrf: String,
    refresh_seconds: u32,
    /// Set when the page shows one project.
    project: Option<String>,
    groups: Vec<DeliveryGroup>,
    /// Refusals that were counted rather than kept, newest first (on the all-projects page).
    counted: Vec<RefusalCountView>,
}

#[derive(serde::Deserialize)]
pub struct DeliveriesQuery {
    project: Option<String>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    AdminSession { session, actor }: AdminSession,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Response, AppError> {
    let rows = match &query.project {
        Some(project) => {
            deliveries::recent(&state.db, Some(project), DELIVERIES_OF_ONE_PROJECT).await?
        }
        None => deliveries::recent_per_project(&state.db, DELIVERIES_PER_PROJECT).await?,
    };
    // Rows come grouped by project already.
    let mut groups: Vec<DeliveryGroup> = Vec::new();
    for row in rows {
        match groups.last_mut() {
            Some(group) if group.project == row.project => group.deliveries.push(row),
            _ => groups.push(DeliveryGroup {
                project: row.project.clone(),
                deliveries: vec![row],
            }),
        }
    }
    let page = DeliveriesPage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        refresh_seconds: REFRESH_SECONDS,
        counted: match &query.project {
            Some(_) => Vec::new(),
            None => deliveries::recent_counts(&state.db, COUNTED_SHOWN).await?,
        },
        project: query.project,
        groups,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}

#[derive(Template)]
#[template(path = "admin-project.html")]
pub struct ProjectPage {
    actor: String,
    csrf: String,
    flash: Option<Flash>,
    project: ProjectView,
    /// Where its host sends webhooks (unknown without `public_url`).
    hook_url: Option<String>,
    /// Whether it has a webhook secret (none: every delivery is refused until connected).
    has_secret: bool,
    problems: Vec<Problem>,
    rescan: crate::schedule::RescanStatus,
}

/// One project for admins: the refs that failed on their own, and every release with a link
/// to its whole build log.
pub async fn project(
    State(state): State<AppState>,
    AdminSession { mut session, actor }: AdminSession,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    // Disabled projects too: admins still see their releases and problems.
    let project = find_project(&state, &name).await?;
    let has_secret = project.has_secret();
    let problems = problems::for_project(&state.db, project.id).await?;
    let rescan = crate::schedule::status(&state.db, project.id)
        .await?
        .ok_or_else(|| Missing::Project(name.clone()))?;
    let rows = releases::for_project(&state.db, project.id).await?;
    // Its Composer standing depends on the other projects' rows too (who owns the name).
    let standing = crate::publish::composer::Repository::load(&state.db)
        .await?
        .standing_of(project.id);
    let entry = crate::publish::composer::Entry {
        project,
        releases: rows,
        standing,
    };
    let page = ProjectPage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        flash: session.take_flash(),
        hook_url: state.connector.hook_url(&name).ok(),
        has_secret,
        project: ProjectView::new(&entry, &state.public_url),
        problems,
        rescan,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}

#[derive(Template)]
#[template(path = "admin-release.html")]
pub struct ReleasePage {
    actor: String,
    csrf: String,
    project: String,
    release: crate::releases::ListedRelease,
    /// Shown whole, the admin-only lines (repository location) included.
    build_log: String,
}

/// A release's whole build log, which the public release page shows without the lines that
/// name the repository's location.
pub async fn release(
    State(state): State<AppState>,
    AdminSession { session, actor }: AdminSession,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (project, found) = find_release(&state, &name, &version).await?;
    let page = ReleasePage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        project: project.name,
        build_log: crate::releases::build_log(&state.db, found.release.id).await?,
        release: found.release,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}
