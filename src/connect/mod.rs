//! Connecting a project's repository in one step (`baler project connect`, the admin page's
//! button, `POST /api/v1/projects/{p}/connect`): baler's webhook is created on the host, or
//! updated if the host already has a hook with its URL, with the project's secret, the push and
//! tag events, JSON and certificate checks on; then the host is asked to ping it and baler
//! watches its own deliveries log for the ping. Running it again leaves one hook.
//!
//! The host API token comes from the request (the API only), else the project's
//! `api_token_env`, else its fetch token. A project with no secret gets one here, kept in the
//! database (the config's secret wins whenever it sets one).

pub mod hosts;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::Value;

use crate::admin::{Actor, AdminActions, AdminError};
use crate::config::ProjectSettings;
use crate::projects::{self, Project};
use crate::provider::Provider;
use hosts::{ExistingHook, HookSpec, HostApi};

/// How long connecting watches for the host's ping to arrive.
pub const PING_WAIT: Duration = Duration::from_secs(10);

/// A host API that has not answered by then is given up on.
const HOST_TIMEOUT: Duration = Duration::from_secs(15);

/// The most pages of hooks read; a repository with more than some thousands of hooks is
/// refused rather than read forever.
const MAX_PAGES: usize = 50;

/// How to reach the host's API for one project.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The API base when it is not the provider's default.
    pub api_url: Option<String>,
    pub token: Option<String>,
}

impl Credentials {
    /// What the config file says for project `name`: its `api_url`, and the token from its
    /// `api_token_env`, else its fetch token. Nothing for a project the file does not hold.
    pub fn from_config(projects: &[ProjectSettings], name: &str) -> Credentials {
        projects
            .iter()
            .find(|p| p.name == name)
            .map(Credentials::of)
            .unwrap_or_default()
    }

    /// One config entry's: its `api_url`, and its `api_token_env`'s token, else its fetch
    /// token.
    pub fn of(settings: &ProjectSettings) -> Credentials {
        Credentials {
            api_url: settings.api_url.clone(),
            token: settings
                .api_token
                .clone()
                .or_else(|| settings.auth.token.clone()),
        }
    }

    /// `given`'s fields where it has them, else these.
    pub fn overridden_by(self, given: Credentials) -> Credentials {
        Credentials {
            api_url: given.api_url.or(self.api_url),
            token: given.token.or(self.token),
        }
    }
}

/// Whether the host's test delivery reached baler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Ping {
    /// It arrived and its signature held (`status`: baler's answer, 200 or 202).
    Arrived { status: i32 },
    /// It arrived and was refused: a wrong secret (401) or another repository (403).
    Refused { status: i32, reason: String },
    /// The host accepted the request, but no delivery came within `waited_seconds`: baler's
    /// `public_url` is probably not reachable from the host.
    NotSeen { waited_seconds: u64 },
    /// The host has no ping.
    NotAsked { why: String },
}

/// What connecting did.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub project: String,
    pub provider: Provider,
    pub hook_url: String,
    pub hook_id: String,
    /// True when the hook was made now; false when baler's existing one was updated.
    pub created: bool,
    /// Copies of baler's hook that were removed (an earlier tool or hand may have made them).
    pub duplicates_removed: usize,
    /// True when the project had no secret and baler made one.
    pub secret_generated: bool,
    pub ping: Ping,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// What baler needs and the project does not say: a token, an API base.
    #[error("{0}")]
    Setup(String),
    /// The host refused or failed a request.
    #[error("{provider} answered {status} to {method} {url}: {message}")]
    Host {
        provider: Provider,
        method: Method,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{provider}'s API at {url} cannot be reached: {error}")]
    Unreachable {
        provider: Provider,
        url: String,
        error: String,
    },
}

/// Connects and disconnects projects; cheap to clone.
#[derive(Clone)]
pub struct Connector {
    db: DatabaseConnection,
    actions: AdminActions,
    client: reqwest::Client,
    /// Where the hosts send webhooks: the configured `public_url` (never the address baler
    /// happens to listen on, which a host elsewhere could not reach).
    public_url: Option<String>,
    /// How long to watch for the ping.
    ping_wait: Duration,
}

impl Connector {
    pub fn new(
        db: DatabaseConnection,
        actions: AdminActions,
        public_url: Option<&str>,
        ping_wait: Duration,
    ) -> Result<Connector, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(HOST_TIMEOUT)
            // A redirect would carry the token elsewhere, or hide a moved API: neither is
            // followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("baler/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Connector {
            db,
            actions,
            client,
            public_url: public_url.map(|url| url.trim_end_matches('/').to_string()),
            ping_wait,
        })
    }

    /// The URL a project's webhooks go to; connecting needs `public_url` to know it.
    pub fn hook_url(&self, project: &str) -> Result<String, ConnectError> {
        match &self.public_url {
            Some(base) => Ok(format!("{base}/hooks/{project}")),
            None => Err(ConnectError::Setup(
                "connecting needs `public_url` (or BALER_PUBLIC_URL): the address the \
                 repository host reaches baler at, which its webhook is sent to"
                    .into(),
            )),
        }
    }

    /// Creates or updates baler's hook for `name`, then pings it.
    pub async fn connect(
        &self,
        actor: &Actor,
        name: &str,
        credentials: &Credentials,
    ) -> Result<Connected, ConnectError> {
        let project = self.enabled_project(name).await?;
        let hook_url = self.hook_url(&project.name)?;
        let api = reach(&project, credentials)?;
        let (secret, secret_generated) = if project.has_secret() {
            (project.secret.clone(), false)
        } else {
            let made = hex::encode(crate::admin::random_bytes::<32>()?);
            let kept = self
                .actions
                .store_webhook_secret(actor, project.id, &project.name, &made)
                .await?;
            (kept, true)
        };
        let spec = HookSpec {
            url: &hook_url,
            secret: &secret,
        };
        let ours = self.our_hooks(&api, &hook_url).await?;
        let (hook_id, created) = match ours.first() {
            Some(existing) => {
                let url = api.hook(&existing.id);
                let answer = self
                    .call(&api, api.update_method(), &url, Some(api.hook_body(&spec)))
                    .await?;
                (hook_id(&api, &answer, &existing.id), false)
            }
            None => {
                let url = api.collection();
                let answer = self
                    .call(&api, Method::POST, &url, Some(api.hook_body(&spec)))
                    .await?;
                let made = api
                    .existing(&answer)
                    .map_err(|message| host_error(&api, Method::POST, &url, 201, message))?;
                (made.id, true)
            }
        };
        for duplicate in ours.iter().skip(1) {
            let url = api.hook(&duplicate.id);
            self.call(&api, Method::DELETE, &url, None).await?;
        }
        let ping = self.ping(&api, &project.name, &hook_id).await?;
        let connected = Connected {
            project: project.name.clone(),
            provider: project.provider,
            hook_url,
            hook_id,
            created,
            duplicates_removed: ours.len().saturating_sub(1),
            secret_generated,
            ping,
        };
        let detail = format!(
            "{} hook {} {}; ping: {}",
            connected.provider,
            connected.hook_id,
            if created { "created" } else { "updated" },
            describe(&connected.ping)
        );
        self.actions
            .record_connection(actor, &project.name, true, detail)
            .await?;
        Ok(connected)
    }

    /// Removes baler's hook (every hook with its URL) from the host; returns how many went.
    /// The project's secret stays.
    pub async fn disconnect(
        &self,
        actor: &Actor,
        name: &str,
        credentials: &Credentials,
    ) -> Result<usize, ConnectError> {
        let project = projects::find_including_disabled(&self.db, name)
            .await
            .map_err(AdminError::from)?
            .ok_or_else(|| AdminError::NotFound(format!("no project named {name:?}")))?;
        let hook_url = self.hook_url(&project.name)?;
        let api = reach(&project, credentials)?;
        let ours = self.our_hooks(&api, &hook_url).await?;
        for hook in &ours {
            let url = api.hook(&hook.id);
            self.call(&api, Method::DELETE, &url, None).await?;
        }
        let detail = format!("{} hooks removed from {}", ours.len(), project.provider);
        self.actions
            .record_connection(actor, &project.name, false, detail)
            .await?;
        Ok(ours.len())
    }

    async fn enabled_project(&self, name: &str) -> Result<Project, ConnectError> {
        let project = projects::find_including_disabled(&self.db, name)
            .await
            .map_err(AdminError::from)?
            .ok_or_else(|| AdminError::NotFound(format!("no project named {name:?}")))?;
        if project.is_disabled() {
            return Err(AdminError::Conflict(format!(
                "project {name} is disabled: nothing would act on its webhooks"
            ))
            .into());
        }
        Ok(project)
    }

    /// Every hook of the repository whose URL is `hook_url`, reading every page.
    async fn our_hooks(
        &self,
        api: &HostApi,
        hook_url: &str,
    ) -> Result<Vec<ExistingHook>, ConnectError> {
        let mut ours = Vec::new();
        let mut next = Some(api.first_page());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ConnectError::Setup(format!(
                    "the repository has more than {MAX_PAGES} pages of hooks; baler stops there"
                )));
            }
            let response = self.send(api, Method::GET, &url, None).await?;
            let headers = response.headers().clone();
            let body = read_answer(api, Method::GET, &url, response).await?;
            let (hooks, following) = api
                .read_page(&headers, &body)
                .map_err(|message| host_error(api, Method::GET, &url, 200, message))?;
            ours.extend(hooks.into_iter().filter(|h| same_url(&h.url, hook_url)));
            next = following;
        }
        Ok(ours)
    }

    /// Asks the host for a test delivery and watches the deliveries log for it.
    async fn ping(&self, api: &HostApi, project: &str, hook: &str) -> Result<Ping, ConnectError> {
        let Some(url) = api.ping(hook) else {
            return Ok(Ping::NotAsked {
                why: format!(
                    "{} has no API to test a hook; push a commit to see a delivery",
                    api.provider
                ),
            });
        };
        let before = self.newest_delivery(project).await?;
        // GitLab delivers the test while the request waits, and answers 422 when the
        // receiver refused it: baler's own log then says why.
        let asked = self.call(api, Method::POST, &url, None).await;
        let refused_by_receiver = match asked {
            Ok(_) => None,
            Err(e @ ConnectError::Host { status: 422, .. }) if api.provider == Provider::Gitlab => {
                Some(e)
            }
            Err(e) => return Err(e),
        };
        let started = tokio::time::Instant::now();
        while started.elapsed() < self.ping_wait {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let seen = crate::deliveries::recent(&self.db, Some(project), 10)
                .await
                .map_err(AdminError::from)?;
            if let Some(delivery) = seen.into_iter().rev().find(|d| Some(d.id) > before) {
                return Ok(if delivery.status < 400 {
                    Ping::Arrived {
                        status: delivery.status,
                    }
                } else {
                    Ping::Refused {
                        status: delivery.status,
                        reason: delivery.reason,
                    }
                });
            }
        }
        match refused_by_receiver {
            Some(host_said) => Err(host_said),
            None => Ok(Ping::NotSeen {
                waited_seconds: self.ping_wait.as_secs(),
            }),
        }
    }

    async fn newest_delivery(&self, project: &str) -> Result<Option<i64>, ConnectError> {
        Ok(crate::deliveries::recent(&self.db, Some(project), 1)
            .await
            .map_err(AdminError::from)?
            .first()
            .map(|d| d.id))
    }

    async fn send(
        &self,
        api: &HostApi,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, ConnectError> {
        let mut request = api.authorise(self.client.request(method, url));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).expect("a JSON value serialises"));
        }
        request.send().await.map_err(|e| ConnectError::Unreachable {
            provider: api.provider,
            url: url.to_string(),
            error: crate::redact::redact(&format!("{e:#}")),
        })
    }

    /// A request whose answer must be a success; its JSON body (null when empty).
    async fn call(
        &self,
        api: &HostApi,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> Result<Value, ConnectError> {
        let response = self.send(api, method.clone(), url, body).await?;
        read_answer(api, method, url, response).await
    }
}

/// A success's JSON body (null when it has none); anything else is the host's refusal.
async fn read_answer(
    api: &HostApi,
    method: Method,
    url: &str,
    response: reqwest::Response,
) -> Result<Value, ConnectError> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(host_error(
            api,
            method,
            url,
            status.as_u16(),
            refusal(status, &text),
        ));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        let message = format!("the answer is not JSON: {e}");
        host_error(api, method, url, status.as_u16(), message)
    })
}

/// What the host answered `method url` with (`status`), and why that is not what baler needs.
fn host_error(
    api: &HostApi,
    method: Method,
    url: &str,
    status: u16,
    message: String,
) -> ConnectError {
    ConnectError::Host {
        provider: api.provider,
        method,
        url: url.to_string(),
        status,
        message,
    }
}

/// The host's own words for a refusal, shortened, with what to check for the usual ones.
fn refusal(status: StatusCode, text: &str) -> String {
    let said = crate::deliveries::bounded(text.trim(), 300);
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (the token is wrong or expired)",
        StatusCode::FORBIDDEN => " (the token lacks the permission to manage webhooks)",
        StatusCode::NOT_FOUND => " (no such repository, or the token cannot see it)",
        _ => "",
    };
    format!("{said}{hint}")
}

/// The id in an update's answer, or the one the update was sent to.
fn hook_id(api: &HostApi, answer: &Value, sent_to: &str) -> String {
    api.existing(answer)
        .map(|hook| hook.id)
        .unwrap_or_else(|_| sent_to.to_string())
}

/// Hook URLs compared as hosts may echo them: no trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    !a.is_empty() && a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn describe(ping: &Ping) -> String {
    match ping {
        Ping::Arrived { status } => format!("arrived ({status})"),
        Ping::Refused { status, reason } => format!("refused ({status}: {reason})"),
        Ping::NotSeen { waited_seconds } => format!("not seen within {waited_seconds} s"),
        Ping::NotAsked { why } => format!("not asked: {why}"),
    }
}

/// The host API of `project`'s repository, with the token to use on it.
fn reach(project: &Project, credentials: &Credentials) -> Result<HostApi, ConnectError> {
    let token = credentials.token.clone().ok_or_else(|| {
        ConnectError::Setup(format!(
            "connecting {} needs a {} API token that may manage its webhooks: set the \
             project's `api_token_env` (or its fetch `token`)",
            project.name, project.provider
        ))
    })?;
    HostApi::for_repository(
        project.provider,
        &project.repo,
        credentials.api_url.as_deref(),
        token,
    )
    .map_err(ConnectError::Setup)
}
