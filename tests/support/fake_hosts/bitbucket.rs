//! Bitbucket Cloud's repository webhooks
//! (developer.atlassian.com/cloud/bitbucket/rest/api-group-repositories, "webhooks").

use super::*;

/// The events a repository's webhook may subscribe to.
const EVENTS: [&str; 25] = [
    "repo:push",
    "repo:fork",
    "repo:updated",
    "repo:commit_comment_created",
    "repo:commit_status_created",
    "repo:commit_status_updated",
    "repo:imported",
    "repo:transfer",
    "issue:created",
    "issue:updated",
    "issue:comment_created",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:approved",
    "pullrequest:unapproved",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
    "pullrequest:comment_updated",
    "pullrequest:comment_deleted",
    "pullrequest:comment_resolved",
    "pullrequest:comment_reopened",
    "pullrequest:changes_request_created",
    "pullrequest:changes_request_removed",
    "pullrequest:push",
];

pub(super) fn routes() -> Router<Host> {
    Router::new()
        .route(
            "/2.0/repositories/{workspace}/{slug}/hooks",
            get(list).post(create),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/hooks/{uid}",
            get(show).put(update).delete(remove),
        )
}

pub(super) fn error(status: u16, message: &str, fields: Option<Value>) -> Reply {
    let mut error = json!({"message": message});
    if let Some(fields) = fields {
        error["fields"] = fields;
    }
    Reply::new(status, json!({"type": "error", "error": error}))
}

fn check(repo: &Repository, workspace: &str, slug: &str) -> Result<(), Reply> {
    if repo.is(&format!("{workspace}/{slug}")) {
        Ok(())
    } else {
        Err(error(
            404,
            &format!("Repository {workspace}/{slug} not found"),
            None,
        ))
    }
}

fn hook_not_found() -> Reply {
    error(404, "Resource not found", None)
}

/// The hook a path names by its `{uuid}` (the router has decoded `%7B…%7D`).
fn find(state: &HostState, uid: &str) -> Option<usize> {
    state
        .hooks
        .iter()
        .position(|hook| hook.uuid.eq_ignore_ascii_case(uid))
}

fn fields(raw: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice(raw) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(error(400, "Bad request", None)),
    }
}

/// Checks and sets what `fields` gives. `required` (creating a hook): `url`,
/// `description` and a non-empty `events` must be there. Every problem is named in
/// `fields`, as Bitbucket names them.
fn apply(hook: &mut Hook, fields: &Map<String, Value>, required: bool) -> Result<(), Reply> {
    let mut problems = Map::new();
    let mut problem = |field: &str, message: String| {
        problems.insert(field.to_string(), json!([message]));
    };
    let required_message = || "This field is required.".to_string();
    match fields.get("url") {
        None | Some(Value::Null) if required => problem("url", required_message()),
        None | Some(Value::Null) => {}
        Some(Value::String(url)) if is_web_url(url) => hook.view["url"] = url.clone().into(),
        Some(_) => problem("url", "Enter a valid URL.".into()),
    }
    match fields.get("description") {
        None | Some(Value::Null) if required => problem("description", required_message()),
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => hook.view["description"] = text.clone().into(),
        Some(_) => problem("description", "Not a valid string.".into()),
    }
    match fields.get("events") {
        None | Some(Value::Null) if required => problem("events", required_message()),
        None | Some(Value::Null) => {}
        Some(Value::Array(events)) if events.is_empty() => {
            problem("events", required_message());
        }
        Some(Value::Array(events)) => {
            let mut names = Vec::new();
            for event in events {
                match event.as_str() {
                    Some(name) if EVENTS.contains(&name) => names.push(name.to_string()),
                    _ => problem("events", format!("Invalid event: {event}")),
                }
            }
            names.sort();
            names.dedup();
            hook.view["events"] = json!(names);
        }
        Some(_) => problem("events", "Expected a list of items.".into()),
    }
    for name in ["active", "skip_cert_verification"] {
        match fields.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(value)) => hook.view[name] = (*value).into(),
            Some(_) => problem(name, "Must be a valid boolean.".into()),
        }
    }
    // Absent: unchanged; null or empty: removed.
    match fields.get("secret") {
        None => {}
        Some(Value::Null) => hook.secret = None,
        Some(Value::String(secret)) => {
            hook.secret = (!secret.is_empty()).then(|| secret.clone());
        }
        Some(_) => problem("secret", "Not a valid string.".into()),
    }
    if !problems.is_empty() {
        return Err(error(400, "Bad request", Some(Value::Object(problems))));
    }
    hook.view["secret_set"] = hook.secret.is_some().into();
    Ok(())
}

/// A hook as `POST /repositories/{workspace}/{repo_slug}/hooks` makes one from `body`.
pub(super) fn new_hook(
    repo: &Repository,
    state: &mut HostState,
    body: &Value,
) -> Result<Hook, Reply> {
    let Some(fields) = body.as_object() else {
        return Err(error(400, "Bad request", None));
    };
    let uuid = format!("{{{}}}", uuid::Uuid::new_v4());
    let href = format!(
        "{}/2.0/repositories/{}/hooks/{}",
        repo.origin,
        repo.path,
        uuid.replace('{', "%7B").replace('}', "%7D")
    );
    let mut hook = Hook {
        id: 0,
        uuid: uuid.clone(),
        secret: None,
        view: json!({
            "type": "webhook_subscription",
            "uuid": uuid,
            "url": "",
            "description": "",
            "subject_type": "repository",
            "subject": {
                "type": "repository",
                "full_name": repo.path,
                "name": repo.name(),
                "uuid": BITBUCKET_REPOSITORY_UUID,
                "links": {"html": {"href": repo.urls().html}},
            },
            "active": true,
            "events": [],
            "secret_set": false,
            "skip_cert_verification": false,
            "created_at": now(),
            "links": {"self": {"href": href}},
        }),
    };
    apply(&mut hook, fields, true)?;
    hook.id = state.next_id();
    Ok(hook)
}

/// `pagelen` 10 by default, at most 100 (more is refused); `next` and `previous` as
/// absolute URLs, absent at the ends.
async fn list(
    State(host): State<Host>,
    Path((workspace, slug)): Path<(String, String)>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Reply, Reply> {
    check(&host.repo, &workspace, &slug)?;
    let asked = param(&query, "pagelen");
    if asked
        .and_then(|pagelen| pagelen.parse::<usize>().ok())
        .is_some_and(|pagelen| pagelen > 100)
    {
        return Err(error(400, "Invalid pagelen", None));
    }
    let hooks = host.state().views();
    let page = Page::of(param(&query, "page"), asked, 10, 100, hooks.len());
    let mut body = json!({
        "pagelen": page.size,
        "size": page.total,
        "page": page.number,
        "values": page.items(&hooks),
    });
    let origin = &host.repo.origin;
    if page.has_next() {
        body["next"] = page_url(origin, uri.path(), &query, "page", page.number + 1).into();
    }
    if page.has_previous() {
        body["previous"] = page_url(origin, uri.path(), &query, "page", page.number - 1).into();
    }
    Ok(Reply::new(200, body))
}

async fn create(
    State(host): State<Host>,
    Path((workspace, slug)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &workspace, &slug)?;
    let body = Value::Object(fields(&body)?);
    let mut state = host.state();
    let hook = new_hook(&host.repo, &mut state, &body)?;
    let view = hook.view.clone();
    state.hooks.push(hook);
    Ok(Reply::new(201, view))
}

async fn show(
    State(host): State<Host>,
    Path((workspace, slug, uid)): Path<(String, String, String)>,
) -> Result<Reply, Reply> {
    check(&host.repo, &workspace, &slug)?;
    let state = host.state();
    let index = find(&state, &uid).ok_or_else(hook_not_found)?;
    Ok(Reply::new(200, state.hooks[index].view.clone()))
}

/// Changes what is given (`url`, `description`, `events`, `active`, `secret`,
/// `skip_cert_verification`).
async fn update(
    State(host): State<Host>,
    Path((workspace, slug, uid)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &workspace, &slug)?;
    let fields = fields(&body)?;
    let mut state = host.state();
    let index = find(&state, &uid).ok_or_else(hook_not_found)?;
    let mut hook = state.hooks[index].clone();
    apply(&mut hook, &fields, false)?;
    let view = hook.view.clone();
    state.hooks[index] = hook;
    Ok(Reply::new(200, view))
}

async fn remove(
    State(host): State<Host>,
    Path((workspace, slug, uid)): Path<(String, String, String)>,
) -> Result<StatusCode, Reply> {
    check(&host.repo, &workspace, &slug)?;
    let mut state = host.state();
    let index = find(&state, &uid).ok_or_else(hook_not_found)?;
    state.hooks.remove(index);
    Ok(StatusCode::NO_CONTENT)
}
