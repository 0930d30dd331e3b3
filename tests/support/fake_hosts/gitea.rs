//! Gitea's (and Forgejo's) repository webhooks (`/api/v1`, the swagger at /api/swagger).

use super::*;

/// The hook types Gitea accepts; Forgejo accepts these too (and `forgejo`, which Gitea
/// refuses, so it is refused here).
const TYPES: [&str; 11] = [
    "gitea",
    "gogs",
    "slack",
    "discord",
    "dingtalk",
    "telegram",
    "msteams",
    "feishu",
    "matrix",
    "wechatwork",
    "packagist",
];

pub(super) fn routes() -> Router<Host> {
    Router::new()
        .route("/api/v1/repos/{owner}/{repo}/hooks", get(list).post(create))
        .route(
            "/api/v1/repos/{owner}/{repo}/hooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/repos/{owner}/{repo}/hooks/{id}/tests", post(test))
}

pub(super) fn error(repo: &Repository, status: u16, message: &str) -> Reply {
    Reply::new(
        status,
        json!({"message": message, "url": format!("{}/api/swagger", repo.origin)}),
    )
}

fn not_found(repo: &Repository) -> Reply {
    error(repo, 404, "The target couldn't be found.")
}

fn check(repo: &Repository, owner: &str, name: &str) -> Result<(), Reply> {
    if repo.is(&format!("{owner}/{name}")) {
        Ok(())
    } else {
        Err(not_found(repo))
    }
}

/// A field of the wrong JSON type, which Gitea's decoder refuses.
fn mistyped(repo: &Repository, field: &str, expected: &str) -> Reply {
    error(
        repo,
        422,
        &format!("json: cannot unmarshal {field} of type {expected}"),
    )
}

fn fields(repo: &Repository, raw: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice(raw) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(error(repo, 422, "the body is not a JSON object")),
    }
}

/// `config`, a map of strings in Gitea.
fn config(repo: &Repository, value: &Value) -> Result<Map<String, Value>, Reply> {
    let Some(config) = value.as_object() else {
        return Err(mistyped(repo, "config", "map[string]string"));
    };
    if config.values().any(|value| !value.is_string()) {
        return Err(mistyped(repo, "config", "map[string]string"));
    }
    Ok(config.clone())
}

fn is_content_type(value: &Value) -> bool {
    matches!(value.as_str(), Some("json" | "form"))
}

/// Sets `events`, `active`, `branch_filter` and `authorization_header` where given.
fn apply(repo: &Repository, hook: &mut Hook, fields: &Map<String, Value>) -> Result<(), Reply> {
    match fields.get("events") {
        None | Some(Value::Null) => {}
        Some(Value::Array(events)) if events.iter().all(Value::is_string) => {
            // No events is Gitea's "push only".
            hook.view["events"] = if events.is_empty() {
                json!(["push"])
            } else {
                Value::Array(events.clone())
            };
        }
        Some(_) => return Err(mistyped(repo, "events", "[]string")),
    }
    match fields.get("active") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(active)) => hook.view["active"] = (*active).into(),
        Some(_) => return Err(mistyped(repo, "active", "bool")),
    }
    for name in ["branch_filter", "authorization_header"] {
        match fields.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => hook.view[name] = text.clone().into(),
            Some(_) => return Err(mistyped(repo, name, "string")),
        }
    }
    Ok(())
}

/// A hook as `POST /repos/{owner}/{repo}/hooks` makes one from `body`. `type` and
/// `config` with `url` and `content_type` are required; `active` is false unless given.
pub(super) fn new_hook(
    repo: &Repository,
    state: &mut HostState,
    body: &Value,
) -> Result<Hook, Reply> {
    let Some(fields) = body.as_object() else {
        return Err(error(repo, 422, "the body is not a JSON object"));
    };
    let kind = match fields.get("type") {
        Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(error(repo, 422, "[Type]: Required"));
        }
        Some(_) => return Err(mistyped(repo, "type", "string")),
    };
    if !TYPES.contains(&kind.as_str()) {
        return Err(error(repo, 422, &format!("Invalid hook type: {kind}")));
    }
    let config = match fields.get("config") {
        None | Some(Value::Null) => return Err(error(repo, 422, "[Config]: Required")),
        Some(value) => config(repo, value)?,
    };
    for name in ["url", "content_type"] {
        if !config.contains_key(name) {
            return Err(error(repo, 422, &format!("Missing config option: {name}")));
        }
    }
    if !is_content_type(&config["content_type"]) {
        return Err(error(repo, 422, "Invalid content type"));
    }
    if !config["url"].as_str().is_some_and(is_web_url) {
        return Err(error(repo, 422, "Invalid url"));
    }
    let now = now();
    let mut hook = Hook {
        id: 0,
        uuid: String::new(),
        secret: config
            .get("secret")
            .and_then(Value::as_str)
            .filter(|secret| !secret.is_empty())
            .map(str::to_string),
        view: json!({
            "id": 0,
            "type": kind,
            "branch_filter": "",
            "config": {"content_type": config["content_type"], "url": config["url"]},
            "events": ["push"],
            "authorization_header": "",
            "active": false,
            "updated_at": now,
            "created_at": now,
        }),
    };
    apply(repo, &mut hook, fields)?;
    hook.id = state.next_id();
    hook.view["id"] = hook.id.into();
    Ok(hook)
}

/// `limit` 30 by default (Gitea's `DEFAULT_PAGING_NUM`), at most 50 (`MAX_RESPONSE_ITEMS`);
/// `X-Total-Count`, and a `Link` header joined by bare commas, as Gitea writes it.
async fn list(
    State(host): State<Host>,
    Path((owner, name)): Path<(String, String)>,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Reply> {
    check(&host.repo, &owner, &name)?;
    let hooks = host.state().views();
    let page = Page::of(
        param(&query, "page"),
        param(&query, "limit"),
        30,
        50,
        hooks.len(),
    );
    let mut relations = Vec::new();
    if page.has_next() {
        relations.push(("next", page.number + 1));
        relations.push(("last", page.last()));
    }
    if page.has_previous() {
        relations.push(("first", 1));
        relations.push(("prev", page.number - 1));
    }
    let mut response = Reply::new(200, Value::Array(page.items(&hooks))).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(page.total));
    if let Some(link) = link_header(&host.repo.origin, uri.path(), &query, &relations, ",") {
        headers.insert("link", link);
    }
    Ok(response)
}

async fn create(
    State(host): State<Host>,
    Path((owner, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let body = Value::Object(fields(&host.repo, &body)?);
    let mut state = host.state();
    let hook = new_hook(&host.repo, &mut state, &body)?;
    let view = hook.view.clone();
    state.hooks.push(hook);
    Ok(Reply::new(201, view))
}

async fn show(
    State(host): State<Host>,
    Path((owner, name, id)): Path<(String, String, String)>,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let state = host.state();
    let index = state.find(&id).ok_or_else(|| not_found(&host.repo))?;
    Ok(Reply::new(200, state.hooks[index].view.clone()))
}

/// Changes what is given; in `config`, `url`, `content_type` and `secret`.
async fn update(
    State(host): State<Host>,
    Path((owner, name, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let repo = &host.repo;
    check(repo, &owner, &name)?;
    let fields = fields(repo, &body)?;
    let mut state = host.state();
    let index = state.find(&id).ok_or_else(|| not_found(repo))?;
    let mut hook = state.hooks[index].clone();
    if let Some(value) = fields.get("config").filter(|value| !value.is_null()) {
        let config = config(repo, value)?;
        if let Some(kind) = config.get("content_type") {
            if !is_content_type(kind) {
                return Err(error(repo, 422, "Invalid content type"));
            }
            hook.view["config"]["content_type"] = kind.clone();
        }
        if let Some(url) = config.get("url") {
            if !url.as_str().is_some_and(is_web_url) {
                return Err(error(repo, 422, "Invalid url"));
            }
            hook.view["config"]["url"] = url.clone();
        }
        if let Some(secret) = config.get("secret").and_then(Value::as_str) {
            hook.secret = (!secret.is_empty()).then(|| secret.to_string());
        }
    }
    apply(repo, &mut hook, &fields)?;
    hook.view["updated_at"] = now().into();
    let view = hook.view.clone();
    state.hooks[index] = hook;
    Ok(Reply::new(200, view))
}

async fn remove(
    State(host): State<Host>,
    Path((owner, name, id)): Path<(String, String, String)>,
) -> Result<StatusCode, Reply> {
    check(&host.repo, &owner, &name)?;
    let mut state = host.state();
    let index = state.find(&id).ok_or_else(|| not_found(&host.repo))?;
    state.hooks.remove(index);
    Ok(StatusCode::NO_CONTENT)
}

/// Answers 204 at once and sends a push of the default branch afterwards, as Gitea queues
/// its test deliveries.
async fn test(
    State(host): State<Host>,
    Path((owner, name, id)): Path<(String, String, String)>,
) -> Result<StatusCode, Reply> {
    check(&host.repo, &owner, &name)?;
    let hook = {
        let state = host.state();
        let index = state.find(&id).ok_or_else(|| not_found(&host.repo))?;
        state.hooks[index].clone()
    };
    tokio::spawn(send_push(host.clone(), hook));
    Ok(StatusCode::NO_CONTENT)
}

/// Gitea's push: JSON, or a form with the JSON in `payload`; signed over the JSON payload
/// either way (bare hex in `X-Gitea-Signature` and `X-Gogs-Signature`, `sha256=` in
/// `X-Hub-Signature-256`). Gitea sends its signature header empty when the hook has no
/// secret.
async fn send_push(host: Host, hook: Hook) {
    let json = serde_json::to_vec(&push_payload(&host.repo)).unwrap();
    let signed = hook
        .secret
        .as_deref()
        .map(|secret| github_signature(secret, &json));
    let bare = signed
        .as_deref()
        .map(|signature| signature.trim_start_matches("sha256=").to_string())
        .unwrap_or_default();
    let (content_type, body) = if hook.view["config"]["content_type"] == "json" {
        ("application/json", json)
    } else {
        ("application/x-www-form-urlencoded", form_payload(&json))
    };
    let delivery = uuid::Uuid::new_v4().to_string();
    let mut headers = vec![
        ("content-type", content_type.to_string()),
        ("user-agent", "Go-http-client/1.1".to_string()),
        ("x-gitea-delivery", delivery.clone()),
        ("x-gitea-event", "push".to_string()),
        ("x-gitea-event-type", "push".to_string()),
        (
            "x-gitea-hook-installation-target-type",
            "repository".to_string(),
        ),
        ("x-gitea-signature", bare.clone()),
        ("x-gogs-delivery", delivery),
        ("x-gogs-event", "push".to_string()),
        ("x-gogs-event-type", "push".to_string()),
        ("x-gogs-signature", bare),
    ];
    if let Some(signed) = signed {
        headers.push(("x-hub-signature-256", signed));
    }
    if let Some(authorization) = hook.view["authorization_header"]
        .as_str()
        .filter(|value| !value.is_empty())
    {
        headers.push(("authorization", authorization.to_string()));
    }
    // The answer is kept by `deliver`; Gitea shows it on the hook's page, not in its API.
    let _ = deliver(&host, hook.url(), headers, body).await;
}

/// Gitea's push payload from `fixtures/webhooks/gitea/push.json` (refs/heads/main),
/// naming the repository by its configured URL.
fn push_payload(repo: &Repository) -> Value {
    let mut payload = fixture("webhooks/gitea/push.json");
    let urls = repo.urls();
    let repository = &mut payload["repository"];
    repository["id"] = GITEA_REPOSITORY_ID.into();
    repository["name"] = repo.name().into();
    repository["full_name"] = repo.path.clone().into();
    repository["owner"]["login"] = repo.owner().into();
    repository["html_url"] = urls.html.into();
    repository["clone_url"] = urls.clone.into();
    repository["ssh_url"] = urls.ssh.map_or(Value::Null, Value::String);
    payload
}
