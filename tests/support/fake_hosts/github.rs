//! GitHub's repository webhooks (docs.github.com/rest/repos/webhooks).

use super::*;

const DOCS: &str = "https://docs.github.com/rest/repos/webhooks";

pub(super) fn routes() -> Router<Host> {
    Router::new()
        .route("/repos/{owner}/{repo}/hooks", get(list).post(create))
        // The `Link` header names pages by the repository's id, as GitHub's does.
        .route("/repositories/{id}/hooks", get(list_by_id))
        .route(
            "/repos/{owner}/{repo}/hooks/{hook_id}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/repos/{owner}/{repo}/hooks/{hook_id}/config",
            get(show_config).patch(update_config),
        )
        .route("/repos/{owner}/{repo}/hooks/{hook_id}/pings", post(ping))
}

pub(super) fn error(status: u16, message: &str) -> Reply {
    Reply::new(
        status,
        json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
    )
}

/// A request the endpoint's schema refuses: a missing or mistyped field.
fn malformed(message: &str) -> Reply {
    error(422, &format!("Invalid request.\n\n{message}"))
}

/// A hook GitHub refuses to keep.
fn invalid(message: &str) -> Reply {
    Reply::new(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{"resource": "Hook", "code": "custom", "message": message}],
            "documentation_url": DOCS,
            "status": "422",
        }),
    )
}

fn not_found() -> Reply {
    error(404, "Not Found")
}

fn check(repo: &Repository, owner: &str, name: &str) -> Result<(), Reply> {
    if repo.is(&format!("{owner}/{name}")) {
        Ok(())
    } else {
        Err(not_found())
    }
}

fn fields(raw: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice(raw) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(malformed("The body is not a JSON object.")),
        Err(_) => Err(error(400, "Problems parsing JSON")),
    }
}

/// A hook's `config`: where and how its deliveries go.
#[derive(Clone)]
struct Config {
    url: String,
    /// `json` or `form` (GitHub's default).
    content_type: String,
    insecure_ssl: String,
    secret: Option<String>,
}

impl Config {
    /// Reads a `config` object over `base`: nothing for a new hook or a `PATCH` of the hook
    /// (which replaces the whole config, so a secret not given again is removed, as
    /// GitHub's documentation warns), the hook's config for a `PATCH` of `/config`.
    fn read(value: &Value, base: Option<Config>) -> Result<Config, Reply> {
        let Some(fields) = value.as_object() else {
            return Err(malformed(
                "For 'properties/config', the value is not an object.",
            ));
        };
        let mut config = base.unwrap_or(Config {
            url: String::new(),
            content_type: "form".into(),
            insecure_ssl: "0".into(),
            secret: None,
        });
        match fields.get("url") {
            None => {}
            Some(Value::String(url)) => config.url = url.clone(),
            Some(_) => {
                return Err(malformed(
                    "For 'properties/url', the value is not a string.",
                ));
            }
        }
        if config.url.is_empty() {
            return Err(invalid("Config must contain URL for webhooks"));
        }
        if !is_web_url(&config.url) {
            return Err(invalid("Config url is not a valid URL"));
        }
        match fields.get("content_type") {
            None => {}
            Some(Value::String(kind)) if kind == "json" || kind == "form" => {
                config.content_type = kind.clone();
            }
            Some(_) => return Err(invalid("Config content_type must be json or form")),
        }
        match fields.get("secret") {
            None => {}
            Some(Value::Null) => config.secret = None,
            Some(Value::String(secret)) => {
                config.secret = (!secret.is_empty()).then(|| secret.clone());
            }
            Some(_) => {
                return Err(malformed(
                    "For 'properties/secret', the value is not a string.",
                ));
            }
        }
        match fields.get("insecure_ssl") {
            None => {}
            Some(Value::String(flag)) if flag == "0" || flag == "1" => {
                config.insecure_ssl = flag.clone();
            }
            Some(Value::Number(flag)) if matches!(flag.as_u64(), Some(0 | 1)) => {
                config.insecure_ssl = flag.to_string();
            }
            Some(_) => {
                return Err(malformed(
                    "For 'properties/insecure_ssl', the value is not \"0\" or \"1\".",
                ));
            }
        }
        Ok(config)
    }

    fn of(hook: &Hook) -> Config {
        let text = |name: &str| {
            hook.view["config"][name]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        Config {
            url: text("url"),
            content_type: text("content_type"),
            insecure_ssl: text("insecure_ssl"),
            secret: hook.secret.clone(),
        }
    }

    /// As the API shows it: the secret masked.
    fn view(&self) -> Value {
        let mut view = json!({
            "content_type": self.content_type,
            "insecure_ssl": self.insecure_ssl,
            "url": self.url,
        });
        if self.secret.is_some() {
            view["secret"] = "********".into();
        }
        view
    }

    fn set_on(self, hook: &mut Hook) {
        hook.view["config"] = self.view();
        hook.secret = self.secret;
    }
}

fn events(value: &Value, field: &str) -> Result<Vec<String>, Reply> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|event| event.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            malformed(&format!(
                "For 'properties/{field}', the value is not an array of strings."
            ))
        })
}

fn active(fields: &Map<String, Value>) -> Result<Option<bool>, Reply> {
    match fields.get("active") {
        None => Ok(None),
        Some(Value::Bool(active)) => Ok(Some(*active)),
        Some(_) => Err(malformed(
            "For 'properties/active', the value is not a boolean.",
        )),
    }
}

/// GitHub keeps one hook per URL.
fn refuse_duplicate(state: &HostState, url: &str, except: Option<u64>) -> Result<(), Reply> {
    if state
        .hooks
        .iter()
        .any(|hook| Some(hook.id) != except && hook.url() == url)
    {
        return Err(invalid("Hook already exists on this repository"));
    }
    Ok(())
}

/// A hook as `POST /repos/{owner}/{repo}/hooks` makes one from `body`.
pub(super) fn new_hook(
    repo: &Repository,
    state: &mut HostState,
    body: &Value,
) -> Result<Hook, Reply> {
    let Some(fields) = body.as_object() else {
        return Err(malformed("The body is not a JSON object."));
    };
    if fields.get("name").is_some_and(|name| name != "web") {
        return Err(malformed(
            "For 'properties/name', only \"web\" is accepted.",
        ));
    }
    let Some(config) = fields.get("config") else {
        return Err(malformed("\"config\" wasn't supplied."));
    };
    let config = Config::read(config, None)?;
    let events = match fields.get("events") {
        Some(value) => events(value, "events")?,
        None => vec!["push".to_string()],
    };
    let active = active(fields)?.unwrap_or(true);
    refuse_duplicate(state, &config.url, None)?;
    let id = state.next_id();
    let now = now();
    let api = format!("{}/repos/{}/hooks/{id}", repo.origin, repo.path);
    let view = json!({
        "type": "Repository",
        "id": id,
        "name": "web",
        "active": active,
        "events": events,
        "config": config.view(),
        "updated_at": now,
        "created_at": now,
        "url": api,
        "test_url": format!("{api}/test"),
        "ping_url": format!("{api}/pings"),
        "deliveries_url": format!("{api}/deliveries"),
        "last_response": {"code": null, "status": "unused", "message": null},
    });
    Ok(Hook {
        id,
        uuid: String::new(),
        secret: config.secret,
        view,
    })
}

async fn list(
    State(host): State<Host>,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Reply> {
    check(&host.repo, &owner, &name)?;
    Ok(list_page(&host, &query))
}

async fn list_by_id(
    State(host): State<Host>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Reply> {
    if id != GITHUB_REPOSITORY_ID.to_string() {
        return Err(not_found());
    }
    Ok(list_page(&host, &query))
}

/// `per_page` 30 by default, at most 100; `Link` with prev, next, last and first, as they
/// apply.
fn list_page(host: &Host, query: &[(String, String)]) -> Response {
    let hooks = host.state().views();
    let page = Page::of(
        param(query, "page"),
        param(query, "per_page"),
        30,
        100,
        hooks.len(),
    );
    let mut relations = Vec::new();
    if page.has_previous() {
        relations.push(("prev", page.number - 1));
    }
    if page.has_next() {
        relations.push(("next", page.number + 1));
        relations.push(("last", page.last()));
    }
    if page.has_previous() {
        relations.push(("first", 1));
    }
    let path = format!("/repositories/{GITHUB_REPOSITORY_ID}/hooks");
    let mut response = Reply::new(200, Value::Array(page.items(&hooks))).into_response();
    if let Some(link) = link_header(&host.repo.origin, &path, query, &relations, ", ") {
        response.headers_mut().insert("link", link);
    }
    response
}

async fn create(
    State(host): State<Host>,
    Path((owner, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let body = Value::Object(fields(&body)?);
    let mut state = host.state();
    let hook = new_hook(&host.repo, &mut state, &body)?;
    let view = hook.view.clone();
    state.hooks.push(hook);
    Ok(Reply::new(201, view))
}

async fn show(
    State(host): State<Host>,
    Path((owner, name, hook_id)): Path<(String, String, String)>,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let state = host.state();
    let index = state.find(&hook_id).ok_or_else(not_found)?;
    Ok(Reply::new(200, state.hooks[index].view.clone()))
}

/// `config` replaces the whole config; `events` replaces the events, `add_events` and
/// `remove_events` change them; `active`.
async fn update(
    State(host): State<Host>,
    Path((owner, name, hook_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let fields = fields(&body)?;
    let mut state = host.state();
    let index = state.find(&hook_id).ok_or_else(not_found)?;
    let mut hook = state.hooks[index].clone();
    if let Some(config) = fields.get("config") {
        let config = Config::read(config, None)?;
        refuse_duplicate(&state, &config.url, Some(hook.id))?;
        config.set_on(&mut hook);
    }
    if let Some(value) = fields.get("events") {
        hook.view["events"] = json!(events(value, "events")?);
    }
    let mut current = events(&hook.view["events"], "events")?;
    if let Some(value) = fields.get("add_events") {
        for event in events(value, "add_events")? {
            if !current.contains(&event) {
                current.push(event);
            }
        }
    }
    if let Some(value) = fields.get("remove_events") {
        let removed = events(value, "remove_events")?;
        current.retain(|event| !removed.contains(event));
    }
    hook.view["events"] = json!(current);
    if let Some(active) = active(&fields)? {
        hook.view["active"] = active.into();
    }
    hook.view["updated_at"] = now().into();
    let view = hook.view.clone();
    state.hooks[index] = hook;
    Ok(Reply::new(200, view))
}

async fn remove(
    State(host): State<Host>,
    Path((owner, name, hook_id)): Path<(String, String, String)>,
) -> Result<StatusCode, Reply> {
    check(&host.repo, &owner, &name)?;
    let mut state = host.state();
    let index = state.find(&hook_id).ok_or_else(not_found)?;
    state.hooks.remove(index);
    Ok(StatusCode::NO_CONTENT)
}

async fn show_config(
    State(host): State<Host>,
    Path((owner, name, hook_id)): Path<(String, String, String)>,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let state = host.state();
    let index = state.find(&hook_id).ok_or_else(not_found)?;
    Ok(Reply::new(200, state.hooks[index].view["config"].clone()))
}

/// Changes only the config fields given.
async fn update_config(
    State(host): State<Host>,
    Path((owner, name, hook_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    check(&host.repo, &owner, &name)?;
    let fields = fields(&body)?;
    let mut state = host.state();
    let index = state.find(&hook_id).ok_or_else(not_found)?;
    let config = Config::read(
        &Value::Object(fields),
        Some(Config::of(&state.hooks[index])),
    )?;
    refuse_duplicate(&state, &config.url, Some(state.hooks[index].id))?;
    let hook = &mut state.hooks[index];
    config.set_on(hook);
    hook.view["updated_at"] = now().into();
    Ok(Reply::new(200, hook.view["config"].clone()))
}

/// Answers 204 at once and sends the ping afterwards, as GitHub queues it.
async fn ping(
    State(host): State<Host>,
    Path((owner, name, hook_id)): Path<(String, String, String)>,
) -> Result<StatusCode, Reply> {
    check(&host.repo, &owner, &name)?;
    let hook = {
        let state = host.state();
        let index = state.find(&hook_id).ok_or_else(not_found)?;
        state.hooks[index].clone()
    };
    tokio::spawn(send_ping(host.clone(), hook));
    Ok(StatusCode::NO_CONTENT)
}

/// The `repository` object of GitHub's payloads.
fn repository(repo: &Repository) -> Value {
    let urls = repo.urls();
    let api = format!("{}/repos/{}", repo.origin, repo.path);
    json!({
        "id": GITHUB_REPOSITORY_ID,
        "node_id": "R_kgDOExample",
        "name": repo.name(),
        "full_name": repo.path,
        "private": false,
        "owner": {"login": repo.owner(), "id": 1, "type": "Organization"},
        "html_url": urls.html,
        "url": api,
        "hooks_url": format!("{api}/hooks"),
        "clone_url": urls.clone,
        "ssh_url": urls.ssh,
        "default_branch": "main",
    })
}

/// GitHub's ping: JSON, or a form with the JSON in `payload` when the hook's content type
/// is `form`; signed over the body as sent. The hook's `last_response` records the answer.
async fn send_ping(host: Host, hook: Hook) {
    let config = Config::of(&hook);
    let payload = json!({
        "zen": "Design for failure.",
        "hook_id": hook.id,
        "hook": hook.view,
        "repository": repository(&host.repo),
        "sender": {"login": host.repo.owner(), "id": 1, "type": "User"},
    });
    let json = serde_json::to_vec(&payload).unwrap();
    let (content_type, body) = if config.content_type == "json" {
        ("application/json", json)
    } else {
        ("application/x-www-form-urlencoded", form_payload(&json))
    };
    let mut headers = vec![
        ("user-agent", "GitHub-Hookshot/f4b1d7e".to_string()),
        ("content-type", content_type.to_string()),
        ("x-github-event", "ping".to_string()),
        ("x-github-delivery", uuid::Uuid::new_v4().to_string()),
        ("x-github-hook-id", hook.id.to_string()),
        (
            "x-github-hook-installation-target-type",
            "repository".to_string(),
        ),
        (
            "x-github-hook-installation-target-id",
            GITHUB_REPOSITORY_ID.to_string(),
        ),
    ];
    if let Some(secret) = &config.secret {
        headers.push(("x-hub-signature", sha1_signature(secret, &body)));
        headers.push(("x-hub-signature-256", github_signature(secret, &body)));
    }
    let last_response = match deliver(&host, &config.url, headers, body).await {
        Ok(answered) => {
            let message = if (200..300).contains(&answered.status) {
                "OK".to_string()
            } else {
                format!("Invalid HTTP Response: {}", answered.status)
            };
            json!({"code": answered.status, "status": "active", "message": message})
        }
        Err(error) => json!({"code": null, "status": "failed", "message": error}),
    };
    let mut state = host.state();
    if let Some(index) = state.find(&hook.id.to_string()) {
        state.hooks[index].view["last_response"] = last_response;
    }
}

/// GitHub's legacy `X-Hub-Signature: sha1=<hex>`, which it still sends beside the SHA-256.
fn sha1_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}
