//! GitLab's project webhooks (docs.gitlab.com/api/project_webhooks).

use super::*;

/// The hook's event switches and their defaults; `enable_ssl_verification` too.
const SWITCHES: [(&str, bool); 16] = [
    ("push_events", true),
    ("tag_push_events", false),
    ("issues_events", false),
    ("confidential_issues_events", false),
    ("merge_requests_events", false),
    ("note_events", false),
    ("confidential_note_events", false),
    ("job_events", false),
    ("pipeline_events", false),
    ("wiki_page_events", false),
    ("deployment_events", false),
    ("releases_events", false),
    ("feature_flag_events", false),
    ("emoji_events", false),
    ("resource_access_token_events", false),
    ("enable_ssl_verification", true),
];

const TEXTS: [&str; 4] = [
    "name",
    "description",
    "push_events_branch_filter",
    "custom_webhook_template",
];

pub(super) fn routes() -> Router<Host> {
    Router::new()
        .route("/api/v4/projects/{id}/hooks", get(list).post(create))
        .route(
            "/api/v4/projects/{id}/hooks/{hook_id}",
            get(show).put(update).delete(remove),
        )
        .route(
            "/api/v4/projects/{id}/hooks/{hook_id}/test/{trigger}",
            post(test),
        )
}

/// A parameter Grape refuses (missing, or of the wrong type): 400 with `error`.
fn bad_param(message: String) -> Reply {
    Reply::new(400, json!({"error": message}))
}

fn hook_not_found() -> Reply {
    Reply::new(404, json!({"message": "404 Not found"}))
}

/// The project is named by its number or by its URL-encoded path (which the router has
/// decoded).
fn check(repo: &Repository, id: &str) -> Result<(), Reply> {
    if id == GITLAB_PROJECT_ID.to_string() || repo.is(id) {
        Ok(())
    } else {
        Err(Reply::new(404, json!({"message": "404 Project Not Found"})))
    }
}

/// The request's parameters: GitLab reads them from the query string and from a JSON or
/// form body alike.
fn params(
    query: Vec<(String, String)>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, Reply> {
    let mut params: Map<String, Value> = query
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let content_type = header(headers, "content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/json") {
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            _ => return Err(bad_param("The JSON body could not be parsed".into())),
        }
    } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        for (key, value) in form_urlencoded::parse(body) {
            params.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    Ok(params)
}

/// A Boolean parameter as Grape reads one: `true`/`false`, or their spellings in text.
fn switch(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, Reply> {
    let invalid = || bad_param(format!("{name} is invalid"));
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(Some(true)),
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(Some(false)),
            _ => Err(invalid()),
        },
        Some(Value::Number(number)) => match number.as_u64() {
            Some(1) => Ok(Some(true)),
            Some(0) => Ok(Some(false)),
            _ => Err(invalid()),
        },
        Some(_) => Err(invalid()),
    }
}

/// A String parameter: text, or a number Grape turns into text.
fn text(params: &Map<String, Value>, name: &str) -> Result<Option<String>, Reply> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(bad_param(format!("{name} is invalid"))),
    }
}

/// `url`, which both creating and editing a hook require.
fn url(params: &Map<String, Value>) -> Result<String, Reply> {
    let Some(url) = text(params, "url")? else {
        return Err(bad_param("url is missing".into()));
    };
    if !is_web_url(&url) {
        return Err(Reply::new(
            422,
            json!({"message": {"url": ["is blocked: Only allowed schemes are http, https"]}}),
        ));
    }
    Ok(url)
}

/// Sets what `params` gives on `hook`: the URL, switches, texts and token.
fn apply(hook: &mut Hook, params: &Map<String, Value>) -> Result<(), Reply> {
    hook.view["url"] = url(params)?.into();
    for (name, _) in SWITCHES {
        if let Some(value) = switch(params, name)? {
            hook.view[name] = value.into();
        }
    }
    for name in TEXTS {
        if let Some(value) = text(params, name)? {
            hook.view[name] = value.into();
        }
    }
    if let Some(strategy) = text(params, "branch_filter_strategy")? {
        if !matches!(strategy.as_str(), "wildcard" | "regex" | "all_branches") {
            return Err(bad_param(
                "branch_filter_strategy does not have a valid value".into(),
            ));
        }
        hook.view["branch_filter_strategy"] = strategy.into();
    }
    if let Some(token) = text(params, "token")? {
        hook.secret = (!token.is_empty()).then_some(token);
    }
    Ok(())
}

/// A hook as `POST /projects/:id/hooks` makes one from `params`.
pub(super) fn new_hook(state: &mut HostState, params: &Map<String, Value>) -> Result<Hook, Reply> {
    let mut hook = Hook {
        id: 0,
        uuid: String::new(),
        secret: None,
        view: json!({
            "id": 0,
            "url": "",
            "name": "",
            "description": "",
            "project_id": GITLAB_PROJECT_ID,
            "push_events_branch_filter": "",
            "branch_filter_strategy": "wildcard",
            "repository_update_events": false,
            "custom_webhook_template": "",
            "alert_status": "executable",
            "disabled_until": null,
            "url_variables": [],
            "custom_headers": [],
            "created_at": now(),
        }),
    };
    for (name, default) in SWITCHES {
        hook.view[name] = default.into();
    }
    apply(&mut hook, params)?;
    hook.id = state.next_id();
    hook.view["id"] = hook.id.into();
    Ok(hook)
}

/// `per_page` 20 by default, at most 100; GitLab's page headers and a `Link` header with
/// prev and next as they apply, first and last always.
async fn list(
    State(host): State<Host>,
    Path(id): Path<String>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Reply> {
    check(&host.repo, &id)?;
    let hooks = host.state().views();
    let page = Page::of(
        param(&query, "page"),
        param(&query, "per_page"),
        20,
        100,
        hooks.len(),
    );
    let mut relations = Vec::new();
    if page.has_previous() {
        relations.push(("prev", page.number - 1));
    }
    if page.has_next() {
        relations.push(("next", page.number + 1));
    }
    relations.push(("first", 1));
    relations.push(("last", page.last()));
    let blank_unless = |holds: bool, page: usize| {
        if holds {
            page.to_string()
        } else {
            String::new()
        }
    };
    let mut response = Reply::new(200, Value::Array(page.items(&hooks))).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-page", page.number.to_string()),
        ("x-per-page", page.size.to_string()),
        (
            "x-next-page",
            blank_unless(page.has_next(), page.number + 1),
        ),
        (
            "x-prev-page",
            blank_unless(page.has_previous(), page.number - 1),
        ),
        ("x-total", page.total.to_string()),
        ("x-total-pages", page.last().to_string()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    if let Some(link) = link_header(&host.repo.origin, uri.path(), &query, &relations, ", ") {
        headers.insert("link", link);
    }
    Ok(response)
}

async fn create(
    State(host): State<Host>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &id)?;
    let params = params(query, &headers, &body)?;
    let mut state = host.state();
    let hook = new_hook(&mut state, &params)?;
    let view = hook.view.clone();
    state.hooks.push(hook);
    Ok(Reply::new(201, view))
}

async fn show(
    State(host): State<Host>,
    Path((id, hook_id)): Path<(String, String)>,
) -> Result<Reply, Reply> {
    check(&host.repo, &id)?;
    let state = host.state();
    let index = state.find(&hook_id).ok_or_else(hook_not_found)?;
    Ok(Reply::new(200, state.hooks[index].view.clone()))
}

/// Requires `url`, like creating; changes what is given.
async fn update(
    State(host): State<Host>,
    Path((id, hook_id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &id)?;
    let params = params(query, &headers, &body)?;
    let mut state = host.state();
    let index = state.find(&hook_id).ok_or_else(hook_not_found)?;
    let mut hook = state.hooks[index].clone();
    apply(&mut hook, &params)?;
    let view = hook.view.clone();
    state.hooks[index] = hook;
    Ok(Reply::new(200, view))
}

async fn remove(
    State(host): State<Host>,
    Path((id, hook_id)): Path<(String, String)>,
) -> Result<StatusCode, Reply> {
    check(&host.repo, &id)?;
    let mut state = host.state();
    let index = state.find(&hook_id).ok_or_else(hook_not_found)?;
    state.hooks.remove(index);
    Ok(StatusCode::NO_CONTENT)
}

/// GitLab runs the test while the request waits: 201 when the receiver answered 2xx,
/// else 422 with the receiver's answer (or the connection error) as the message. Only the
/// push and tag push triggers are faked.
async fn test(
    State(host): State<Host>,
    Path((id, hook_id, trigger)): Path<(String, String, String)>,
) -> Result<Reply, Reply> {
    check(&host.repo, &id)?;
    let tag = match trigger.as_str() {
        "push_events" => false,
        "tag_push_events" => true,
        _ => {
            return Err(bad_param("trigger does not have a valid value".into()));
        }
    };
    let hook = {
        let state = host.state();
        let index = state.find(&hook_id).ok_or_else(hook_not_found)?;
        state.hooks[index].clone()
    };
    let body = serde_json::to_vec(&push_payload(&host.repo, tag)).unwrap();
    let event = if tag { "Tag Push Hook" } else { "Push Hook" };
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("user-agent", "GitLab/17.5.0".to_string()),
        ("x-gitlab-event", event.to_string()),
        ("x-gitlab-instance", host.repo.origin.clone()),
        ("x-gitlab-webhook-uuid", uuid::Uuid::new_v4().to_string()),
        ("x-gitlab-event-uuid", uuid::Uuid::new_v4().to_string()),
        ("idempotency-key", uuid::Uuid::new_v4().to_string()),
    ];
    if let Some(token) = &hook.secret {
        headers.push(("x-gitlab-token", token.clone()));
    }
    match deliver(&host, hook.url(), headers, body).await {
        Ok(answered) if (200..300).contains(&answered.status) => {
            Ok(Reply::new(201, json!({"message": "201 Created"})))
        }
        Ok(answered) => Err(Reply::new(422, json!({"message": answered.body}))),
        Err(error) => Err(Reply::new(422, json!({"message": error}))),
    }
}

/// GitLab's push (or tag push) payload from `fixtures/webhooks/gitlab/push.json`, naming
/// the repository by its configured URL.
fn push_payload(repo: &Repository, tag: bool) -> Value {
    let mut payload = fixture("webhooks/gitlab/push.json");
    if tag {
        payload["object_kind"] = "tag_push".into();
        payload["event_name"] = "tag_push".into();
        payload["ref"] = "refs/tags/v1.0.0".into();
        payload["ref_protected"] = false.into();
    }
    let urls = repo.urls();
    let ssh = urls.ssh.clone().map_or(Value::Null, Value::String);
    payload["project_id"] = GITLAB_PROJECT_ID.into();
    let project = &mut payload["project"];
    project["id"] = GITLAB_PROJECT_ID.into();
    project["name"] = repo.name().into();
    project["namespace"] = repo.owner().into();
    project["path_with_namespace"] = repo.path.clone().into();
    project["web_url"] = urls.html.clone().into();
    project["git_http_url"] = urls.clone.clone().into();
    project["git_ssh_url"] = ssh.clone();
    let repository = &mut payload["repository"];
    repository["name"] = repo.name().into();
    repository["url"] = urls.ssh.unwrap_or_else(|| urls.clone.clone()).into();
    repository["homepage"] = urls.html.into();
    repository["git_http_url"] = urls.clone.into();
    repository["git_ssh_url"] = ssh;
    payload
}
