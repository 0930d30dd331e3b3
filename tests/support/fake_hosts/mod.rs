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

mod bitbucket;
mod gitea;
mod github;
mod gitlab;
