//! Fakes of the repository hosts' webhook APIs (GitHub, GitLab, Gitea/Forgejo, Bitbucket
//! Cloud), for the tests of `baler project connect`.
//!
//! These are fakes, not the hosts: the real hosts cannot be reached from the machine the tests
//! run on. Each fake is a small HTTP server in the test process that answers for one
//! repository as its host's REST documentation says: the same paths, authentication headers,
//! request fields, answers and errors, and the same pagination of the hook list (`Link`
//! headers, GitLab's `X-Page` headers, Bitbucket's `next`). A request that lacks a field the
//! host requires, or gives one a value the host refuses, is refused as the host refuses it. So
//! a passing test shows that the real host would accept baler's requests, and a hook found
//! only on a later page shows that baler reads every page.
//!
//! After a ping (GitHub) or a test (GitLab, Gitea) the fake sends the event to the hook's URL
//! as the host would: its headers, its signature or token, and a payload naming the
//! repository by the clone URL the project is configured with. It keeps baler's answer.
//! Bitbucket Cloud has no ping or test, so its fake sends nothing.
//!
//! Left out: everything but one repository's hooks, rate limits, and the hosts' refusal of
//! hook URLs on private networks (baler listens on 127.0.0.1 in the tests).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use baler::hooks::verify::github_signature;
use baler::provider::Provider;
use serde_json::{Map, Value, json};

use super::deliveries::fixture;

/// The repository ids the fixtures under `fixtures/webhooks/` use, so that a project that saw
/// a fixture delivery and one from a fake knows the repository by the same id.
const GITHUB_REPOSITORY_ID: u64 = 123456789;
const GITLAB_PROJECT_ID: u64 = 15;
const GITEA_REPOSITORY_ID: u64 = 140;
const BITBUCKET_REPOSITORY_UUID: &str = "{8c2f3e5a-7c1e-4bd6-9a8f-5d8a1e2b3c4d}";

/// One host's fake API, serving one repository until dropped.
pub struct FakeHost {
    host: Host,
    server: tokio::task::JoinHandle<()>,
}

impl FakeHost {
    /// Starts the fake API of `provider` on 127.0.0.1:0 for one repository.
    /// `repo_path`: "acme/widget" (GitHub, Gitea, Bitbucket workspace/slug) or a GitLab path,
    /// which may be nested ("acme/tools/widget"). `repo_url`: the repository's clone URL as the
    /// project's `repo` setting holds it; the fake's deliveries name it as their repository.
    /// `token`: the only API token accepted.
    pub async fn start(
        provider: Provider,
        repo_path: &str,
        repo_url: &str,
        token: &str,
    ) -> FakeHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let host = Host {
            repo: Arc::new(Repository {
                provider,
                path: repo_path.to_string(),
                url: repo_url.to_string(),
                token: token.to_string(),
                origin: format!("http://{address}"),
            }),
            state: Arc::new(Mutex::new(HostState::default())),
            // The hosts give up on a receiver after about ten seconds, and follow no redirect.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        let routes = match provider {
            Provider::Github => github::routes(),
            Provider::Gitlab => gitlab::routes(),
            Provider::Gitea => gitea::routes(),
            Provider::Bitbucket => bitbucket::routes(),
        };
        let app = routes
            .fallback(unknown_path)
            .layer(axum::middleware::from_fn_with_state(host.clone(), gate))
            .with_state(host.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeHost { host, server }
    }

    /// What the project's `api_url` is set to: GitHub `http://127.0.0.1:P` (like
    /// https://api.github.com), GitLab `…/api/v4`, Gitea `…/api/v1`, Bitbucket `…/2.0`.
    pub fn api_url(&self) -> String {
        let origin = &self.host.repo.origin;
        match self.host.repo.provider {
            Provider::Github => origin.clone(),
            Provider::Gitlab => format!("{origin}/api/v4"),
            Provider::Gitea => format!("{origin}/api/v1"),
            Provider::Bitbucket => format!("{origin}/2.0"),
        }
    }

    /// Adds `n` hooks of other services (URLs `https://elsewhere.example/hook/{i}`, `i`
    /// counting on from earlier seeds), so that baler's hook is found only by reading every
    /// page. They are made as the create endpoint makes hooks.
    pub fn seed(&self, n: usize) {
        let repo = &self.host.repo;
        let mut state = self.host.state();
        for _ in 0..n {
            state.seeded += 1;
            let url = format!("https://elsewhere.example/hook/{}", state.seeded);
            let hook = match repo.provider {
                Provider::Github => github::new_hook(
                    repo,
                    &mut state,
                    &json!({"name": "web", "config": {"url": url, "content_type": "json"}}),
                ),
                Provider::Gitlab => gitlab::new_hook(
                    &mut state,
                    json!({"url": url, "push_events": true})
                        .as_object()
                        .unwrap(),
                ),
                Provider::Gitea => gitea::new_hook(
                    repo,
                    &mut state,
                    &json!({"type": "gitea", "active": true,
                            "config": {"url": url, "content_type": "json"}}),
                ),
                Provider::Bitbucket => bitbucket::new_hook(
                    repo,
                    &mut state,
                    &json!({"url": url, "description": "Elsewhere", "events": ["repo:push"]}),
                ),
            };
            let hook = hook.expect("a seeded hook is one the host accepts");
            state.hooks.push(hook);
        }
    }

    /// Every hook the repository has, as the host's list endpoint shows one.
    pub fn hooks(&self) -> Vec<Value> {
        self.host.state().views()
    }

    /// The secret (GitHub, Gitea, Bitbucket) or token (GitLab) stored with the first hook whose
    /// URL is `url`; `None` when there is no such hook or it has none. The hosts never show
    /// it; the fake keeps it to sign its deliveries, and for the tests.
    pub fn secret_of(&self, url: &str) -> Option<String> {
        let state = self.host.state();
        let hook = state.hooks.iter().find(|hook| hook.url() == url)?;
        hook.secret.clone()
    }

    /// Every API request received, as "METHOD /path?query" with the status answered, in order.
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.host.state().requests.clone()
    }

    /// The statuses baler answered to the deliveries the fake sent (pings, test pushes), in
    /// order; 0 where no answer came (refused connection, timeout).
    pub fn deliveries(&self) -> Vec<u16> {
        self.host.state().deliveries.clone()
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The one repository a fake serves, and where the fake listens.
struct Repository {
    provider: Provider,
    /// `acme/widget`, or a GitLab path (`acme/tools/widget`).
    path: String,
    /// The clone URL, as the project's `repo` setting holds it.
    url: String,
    token: String,
    /// `http://127.0.0.1:PORT`: where the absolute URLs in answers start.
    origin: String,
}

impl Repository {
    /// Whether a request's `owner/name` (or GitLab path) names this repository; the hosts
    /// compare without case.
    fn is(&self, path: &str) -> bool {
        path.eq_ignore_ascii_case(&self.path)
    }

    fn owner(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(owner, _)| owner)
    }

    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The repository's URLs as payloads give them: the clone URL, the web page (the clone URL
    /// without `.git`) and, for an http(s) clone URL, the scp-like SSH address. Each one names
    /// the same repository once baler normalises it.
    fn urls(&self) -> RepositoryUrls {
        let trimmed = self.url.trim_end_matches('/');
        let html = trimmed.strip_suffix(".git").unwrap_or(trimmed).to_string();
        let ssh = url::Url::parse(&html)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .and_then(|url| {
                let host = url.host_str()?.to_string();
                Some(format!(
                    "git@{host}:{}.git",
                    url.path().trim_start_matches('/')
                ))
            });
        RepositoryUrls {
            clone: self.url.clone(),
            html,
            ssh,
        }
    }
}

struct RepositoryUrls {
    clone: String,
    html: String,
    ssh: Option<String>,
}

/// One webhook of the repository.
#[derive(Debug, Clone)]
struct Hook {
    /// The number GitHub, GitLab and Gitea name it by (Bitbucket's hooks get one too, unseen).
    id: u64,
    /// Bitbucket's `{uuid}` (empty elsewhere).
    uuid: String,
    /// The shared secret (GitLab: the token), which the hosts never show.
    secret: Option<String>,
    /// The hook as the host's API shows it.
    view: Value,
}

impl Hook {
    /// Where deliveries go: `config.url` on GitHub and Gitea, `url` on GitLab and Bitbucket.
    fn url(&self) -> &str {
        self.view
            .get("config")
            .and_then(|config| config.get("url"))
            .or_else(|| self.view.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// What a fake remembers: hooks, requests, and the answers to its deliveries.
#[derive(Default)]
struct HostState {
    hooks: Vec<Hook>,
    last_id: u64,
    /// Hooks `seed` made so far, to number their URLs.
    seeded: usize,
    requests: Vec<(String, u16)>,
    deliveries: Vec<u16>,
}

impl HostState {
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// The index of the hook a path names by number.
    fn find(&self, id: &str) -> Option<usize> {
        let id: u64 = id.parse().ok()?;
        self.hooks.iter().position(|hook| hook.id == id)
    }

    fn views(&self) -> Vec<Value> {
        self.hooks.iter().map(|hook| hook.view.clone()).collect()
    }
}

/// The fake's repository, records and HTTP client, shared by its handlers.
#[derive(Clone)]
struct Host {
    repo: Arc<Repository>,
    state: Arc<Mutex<HostState>>,
    client: reqwest::Client,
}

impl Host {
    fn state(&self) -> MutexGuard<'_, HostState> {
        self.state.lock().unwrap()
    }
}

/// A JSON answer, as every host gives its results and its errors.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn new(status: u16, body: Value) -> Reply {
        Reply { status, body }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (
            StatusCode::from_u16(self.status).unwrap(),
            axum::Json(self.body),
        )
            .into_response()
    }
}

/// Checks the credentials as the host does before anything else, and notes every request with
/// the status it was answered.
async fn gate(State(host): State<Host>, request: Request, next: Next) -> Response {
    let line = format!(
        "{} {}",
        request.method(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let response = match refusal(&host.repo, request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    host.state()
        .requests
        .push((line, response.status().as_u16()));
    response
}

/// The host's answer to a request without the right token (`None`: let it through).
fn refusal(repo: &Repository, headers: &HeaderMap) -> Option<Response> {
    let authorization = header(headers, "authorization");
    let offered = match repo.provider {
        Provider::Github => {
            // GitHub refuses any request without a User-Agent, before looking at the token.
            if header(headers, "user-agent").is_none_or(|agent| agent.trim().is_empty()) {
                return Some(
                    (
                        StatusCode::FORBIDDEN,
                        [("content-type", "text/plain; charset=utf-8")],
                        "Request forbidden by administrative rules. Please make sure your \
                         request has a User-Agent header.\n",
                    )
                        .into_response(),
                );
            }
            credential(authorization, &["bearer", "token"])
        }
        Provider::Gitlab => {
            header(headers, "private-token").or_else(|| credential(authorization, &["bearer"]))
        }
        Provider::Gitea => credential(authorization, &["token", "bearer"]),
        Provider::Bitbucket => credential(authorization, &["bearer"]),
    };
    if offered == Some(repo.token.as_str()) {
        return None;
    }
    let missing = offered.is_none();
    let refused = match repo.provider {
        Provider::Github => github::error(
            401,
            if missing {
                "Requires authentication"
            } else {
                "Bad credentials"
            },
        ),
        Provider::Gitlab => Reply::new(401, json!({"message": "401 Unauthorized"})),
        Provider::Gitea => gitea::error(
            repo,
            401,
            if missing {
                "token is required"
            } else {
                "user does not exist"
            },
        ),
        Provider::Bitbucket => bitbucket::error(
            401,
            "Token is invalid, expired, or not supported for this endpoint.",
            None,
        ),
    };
    Some(refused.into_response())
}

/// A path the fake's host does not serve.
async fn unknown_path(State(host): State<Host>) -> Reply {
    match host.repo.provider {
        Provider::Github => github::error(404, "Not Found"),
        Provider::Gitlab => Reply::new(404, json!({"error": "404 Not Found"})),
        Provider::Gitea => gitea::error(&host.repo, 404, "not found"),
        Provider::Bitbucket => bitbucket::error(404, "Resource not found", None),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The token of an `Authorization` value whose scheme is one of `schemes` (in any case).
fn credential<'a>(value: Option<&'a str>, schemes: &[&str]) -> Option<&'a str> {
    let (scheme, token) = value?.trim().split_once(' ')?;
    schemes
        .iter()
        .any(|known| known.eq_ignore_ascii_case(scheme))
        .then(|| token.trim())
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A URL a host delivers to: http or https, with a host.
fn is_web_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One page of the hook list.
struct Page {
    /// From 1.
    number: usize,
    size: usize,
    total: usize,
}

impl Page {
    /// The page a request asks for; an absent or unreadable number or size is the default, and
    /// the size is capped at the host's `max_size`.
    fn of(
        number: Option<&str>,
        size: Option<&str>,
        default_size: usize,
        max_size: usize,
        total: usize,
    ) -> Page {
        let number = number
            .and_then(|n| n.parse().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1);
        let size = size
            .and_then(|s| s.parse().ok())
            .filter(|&s| s >= 1)
            .unwrap_or(default_size)
            .min(max_size);
        Page {
            number,
            size,
            total,
        }
    }

    fn last(&self) -> usize {
        self.total.div_ceil(self.size).max(1)
    }

    fn has_next(&self) -> bool {
        self.number < self.last()
    }

    fn has_previous(&self) -> bool {
        self.number > 1
    }

    fn items(&self, all: &[Value]) -> Vec<Value> {
        let start = (self.number - 1).saturating_mul(self.size).min(all.len());
        let end = start.saturating_add(self.size).min(all.len());
        all[start..end].to_vec()
    }
}

/// The absolute URL of another page of a list: the request's other parameters kept, as the
/// hosts keep them in their links, and `page_param` set to `page`.
fn page_url(
    origin: &str,
    path: &str,
    query: &[(String, String)],
    page_param: &str,
    page: usize,
) -> String {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (key, value) in query.iter().filter(|(key, _)| key != page_param) {
        pairs.append_pair(key, value);
    }
    pairs.append_pair(page_param, &page.to_string());
    format!("{origin}{path}?{}", pairs.finish())
}

/// A `Link` header with one `<url>; rel="…"` per relation, joined by `separator`.
fn link_header(
    origin: &str,
    path: &str,
    query: &[(String, String)],
    relations: &[(&str, usize)],
    separator: &str,
) -> Option<HeaderValue> {
    if relations.is_empty() {
        return None;
    }
    let links: Vec<String> = relations
        .iter()
        .map(|(rel, page)| {
            format!(
                "<{}>; rel=\"{rel}\"",
                page_url(origin, path, query, "page", *page)
            )
        })
        .collect();
    Some(HeaderValue::from_str(&links.join(separator)).unwrap())
}

/// A form body as GitHub and Gitea send one: the JSON payload in the `payload` field.
fn form_payload(json: &[u8]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(json).expect("JSON is UTF-8"))
        .finish()
        .into_bytes()
}

/// What baler answered a delivery.
struct Answered {
    status: u16,
    body: String,
}

/// Posts one delivery to `url` and notes baler's answer (0 when none came).
async fn deliver(
    host: &Host,
    url: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Result<Answered, String> {
    let mut request = host.client.post(url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Ok(Answered { status, body })
        }
        Err(error) => Err(error.to_string()),
    };
    host.state()
        .deliveries
        .push(outcome.as_ref().map_or(0, |answered| answered.status));
    outcome
}

/// GitHub's repository webhooks (docs.github.com/rest/repos/webhooks).
mod github {
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
}

/// GitLab's project webhooks (docs.gitlab.com/api/project_webhooks).
mod gitlab {
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
    pub(super) fn new_hook(
        state: &mut HostState,
        params: &Map<String, Value>,
    ) -> Result<Hook, Reply> {
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
}

/// Gitea's (and Forgejo's) repository webhooks (`/api/v1`, the swagger at /api/swagger).
mod gitea {
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
}

/// Bitbucket Cloud's repository webhooks
/// (developer.atlassian.com/cloud/bitbucket/rest/api-group-repositories, "webhooks").
mod bitbucket {
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
}
