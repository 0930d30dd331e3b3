//! Connecting a project's webhook in one step, against fake host APIs (`support::fake_hosts`):
//! GitHub's, GitLab's, Gitea's and Bitbucket Cloud's own APIs cannot be reached from here, so
//! the fakes follow their documented requests and answers, pagination included, and refuse a
//! request that lacks a field the host requires. A host's ping is a real signed delivery the
//! fake sends to baler, so "the ping arrived" means baler verified it with the secret connect
//! gave the host.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::fake_hosts::FakeHost;
use crate::support::{ADMIN_TOKEN, AuditRow, ProjectSpec, SECRET, TestApp, TestDb, wait_until};
use baler::provider::Provider;

const HOST_TOKEN: &str = "host-api-token";

/// One project per host, none with a secret in the config.
struct Hosts {
    github: FakeHost,
    gitlab: FakeHost,
    gitea: FakeHost,
    bitbucket: FakeHost,
}

const GITHUB_REPO: &str = "https://github.com/acme/widget.git";
const GITLAB_REPO: &str = "https://gitlab.com/acme/tools/widget.git";
const GITEA_REPO: &str = "https://gitea.example.org/acme/widget.git";
const BITBUCKET_REPO: &str = "https://bitbucket.org/acme/widget.git";

impl Hosts {
    async fn start() -> Hosts {
        let hosts = Hosts {
            github: FakeHost::start(Provider::Github, "acme/widget", GITHUB_REPO, HOST_TOKEN).await,
            gitlab: FakeHost::start(
                Provider::Gitlab,
                "acme/tools/widget",
                GITLAB_REPO,
                HOST_TOKEN,
            )
            .await,
            gitea: FakeHost::start(Provider::Gitea, "acme/widget", GITEA_REPO, HOST_TOKEN).await,
            bitbucket: FakeHost::start(
                Provider::Bitbucket,
                "acme/widget",
                BITBUCKET_REPO,
                HOST_TOKEN,
            )
            .await,
        };
        // More hooks of other services than one page holds, so baler's own is found only by
        // reading every page.
        for host in hosts.all() {
            host.1.seed(120);
        }
        hosts
    }

    fn all(&self) -> [(&'static str, &FakeHost); 4] {
        [
            ("gh", &self.github),
            ("gl", &self.gitlab),
            ("gt", &self.gitea),
            ("bb", &self.bitbucket),
        ]
    }

    async fn app(&self, db: &TestDb) -> TestApp {
        TestApp::builder()
            .database(db)
            .own_port()
            .admin_token(ADMIN_TOKEN)
            .env("HOST_TOKEN", HOST_TOKEN)
            .env("WRONG_TOKEN", "not-the-token")
            .projects([
                ProjectSpec::github("gh", GITHUB_REPO)
                    .no_secret()
                    .host_api(&self.github.api_url(), "HOST_TOKEN"),
                // The hosts' test pushes name `main`, which these release nothing from.
                ProjectSpec::gitlab("gl", GITLAB_REPO)
                    .branches(&["release-*"])
                    .no_secret()
                    .host_api(&self.gitlab.api_url(), "HOST_TOKEN"),
                ProjectSpec::gitea("gt", GITEA_REPO)
                    .branches(&["release-*"])
                    .no_secret()
                    .host_api(&self.gitea.api_url(), "HOST_TOKEN"),
                ProjectSpec::bitbucket("bb", BITBUCKET_REPO)
                    .no_secret()
                    .host_api(&self.bitbucket.api_url(), "HOST_TOKEN"),
                // Neither an API token nor a fetch token.
                ProjectSpec::github("tokenless", GITHUB_REPO),
                ProjectSpec::github("wrong", GITHUB_REPO)
                    .host_api(&self.github.api_url(), "WRONG_TOKEN"),
            ])
            .start()
            .await
    }
}

/// The hooks of `host` that deliver to `url`.
fn ours(host: &FakeHost, url: &str) -> Vec<Value> {
    host.hooks()
        .into_iter()
        .filter(|hook| {
            hook.pointer("/config/url")
                .or_else(|| hook.get("url"))
                .and_then(Value::as_str)
                == Some(url)
        })
        .collect()
}

async fn stored_secret(app: &TestApp, project: &str) -> String {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entities::project::Entity::find()
        .filter(entities::project::Column::Name.eq(project))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .secret
}

/// A GitHub push to project `gh` of a branch it does not release, signed with `secret`.
async fn push_signed_with(app: &TestApp, secret: &str, delivery: &str) -> reqwest::Response {
    let body = crate::support::deliveries::github_push_body(
        GITHUB_REPO,
        "refs/heads/feature",
        &"b".repeat(40),
    );
    let headers = [
        ("content-type", "application/json".to_string()),
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", delivery.to_string()),
        (
            "x-hub-signature-256",
            baler::hooks::verify::github_signature(secret, &body),
        ),
    ];
    app.post_hook("gh", &headers, body).await
}

fn cli_ok(output: std::process::Output) -> String {
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    said
}

/// Each host: connected through the API (a secret made, the hook created with the right
/// fields, the ping verified), again with the real CLI (the same hook updated, the secret
/// kept), released by a push signed with the secret, then disconnected.
async fn connect_makes_one_hook_on_each_host_and_hears_its_ping(db: TestDb) {
    let hosts = Hosts::start().await;
    let app = hosts.app(&db).await;

    // No secret yet: every delivery is refused, whatever it is signed with (an empty key
    // included, which anyone could sign with).
    for (key, delivery) in [("", "empty-key"), (SECRET, "some-key")] {
        let refused = push_signed_with(&app, key, delivery).await;
        assert_eq!(refused.status(), 401, "signed with {key:?}");
    }

    for (project, host) in hosts.all() {
        let hook_url = format!("{}/hooks/{project}", app.url);
        let (status, done) = app
            .admin_call(Method::POST, &format!("/api/v1/projects/{project}/connect"))
            .await;
        assert_eq!(status, 200, "{project}: {done}");
        assert_eq!(done["created"], true, "{done}");
        assert_eq!(done["secret_generated"], true, "{done}");
        assert_eq!(done["hook_url"], hook_url.as_str());
        let expected_ping = if project == "bb" {
            "not_asked"
        } else {
            "arrived"
        };
        assert_eq!(done["ping"]["result"], expected_ping, "{project}: {done}");
        let secret = stored_secret(&app, project).await;
        assert_eq!(secret.len(), 64, "32 random bytes in hex");
        let hooks = ours(host, &hook_url);
        assert_eq!(hooks.len(), 1, "{project}: {hooks:?}");
        assert_eq!(host.secret_of(&hook_url).as_deref(), Some(secret.as_str()));
        assert_eq!(host.hooks().len(), 121, "the other services' hooks stay");
        let hook = &hooks[0];
        match project {
            "gh" => {
                assert_eq!(hook["events"], json!(["push", "create", "delete"]));
                assert_eq!(hook["config"]["content_type"], "json");
                assert_eq!(hook["config"]["insecure_ssl"], "0");
                assert_eq!(hook["active"], true);
            }
            "gl" => {
                assert_eq!(hook["push_events"], true);
                assert_eq!(hook["tag_push_events"], true);
                assert_eq!(hook["enable_ssl_verification"], true);
            }
            "gt" => {
                assert_eq!(hook["type"], "gitea");
                assert_eq!(hook["config"]["content_type"], "json");
                assert_eq!(hook["events"], json!(["push", "create", "delete"]));
            }
            _ => {
                assert_eq!(hook["events"], json!(["repo:push"]));
                assert_eq!(hook["skip_cert_verification"], false);
                assert_eq!(hook["active"], true);
            }
        }
        if project != "bb" {
            // baler logs a delivery before it answers, so the fake may note the answer a
            // moment after connect returned.
            wait_until(5, "the fake to note baler's answer", || async {
                !host.deliveries().is_empty()
            })
            .await;
            assert_eq!(
                host.deliveries(),
                [200],
                "{project}: verified, nothing to release"
            );
        }

        // Again, with the real CLI: the same hook, updated; the secret kept.
        let reads_before = host.requests().len();
        let said = cli_ok(app.baler_cli(&["project", "connect", project]));
        assert!(said.contains("updated"), "{said}");
        assert_eq!(
            ours(host, &hook_url).len(),
            1,
            "{project}: one hook after two runs"
        );
        assert_eq!(stored_secret(&app, project).await, secret);
        let pages_read = host.requests()[reads_before..]
            .iter()
            .filter(|(request, _)| request.starts_with("GET "))
            .count();
        assert!(pages_read >= 2, "{project}: {:?}", host.requests());
    }

    // The generated secret is the one deliveries are verified with now, and a sync of the
    // config (which sets none) keeps it.
    let secret = stored_secret(&app, "gh").await;
    cli_ok(app.baler_cli(&["project", "list"]));
    assert_eq!(stored_secret(&app, "gh").await, secret);
    let signed = push_signed_with(&app, &secret, "connect-test-1").await;
    assert_eq!(
        signed.status(),
        200,
        "verified (the branch releases nothing)"
    );

    // Disconnect: through the CLI and through the API; the other hooks stay.
    let said = cli_ok(app.baler_cli(&["project", "disconnect", "gh"]));
    assert!(said.contains("removed 1"), "{said}");
    assert!(ours(&hosts.github, &format!("{}/hooks/gh", app.url)).is_empty());
    let (status, gone) = app
        .admin_call(Method::DELETE, "/api/v1/projects/bb/connect")
        .await;
    assert_eq!((status, &gone["removed"]), (200, &json!(1)), "{gone}");
    assert_eq!(hosts.bitbucket.hooks().len(), 120);

    let trail = app.audit_trail().await;
    for (actor, action, target) in [
        ("admin_token", "project.secret", "project gl"),
        ("admin_token", "project.connect", "project gt"),
        ("cli:tester", "project.connect", "project gh"),
        ("cli:tester", "project.disconnect", "project gh"),
        ("admin_token", "project.disconnect", "project bb"),
    ] {
        assert!(
            trail.contains(&AuditRow::new(actor, action, target)),
            "{action} {target}: {trail:?}"
        );
    }
}

/// What cannot connect says why; the admin page's button; a project added through the API
/// connects with the API base and token in the request.
// Multi-threaded: the fakes keep answering while the test waits for a CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_explains_what_stops_it() {
    let hosts = Hosts::start().await;
    let app = hosts.app(&TestDb::Sqlite).await;

    let (status, answer) = app
        .admin_call(Method::POST, "/api/v1/projects/tokenless/connect")
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("api_token_env"),
        "{answer}"
    );
    let (status, answer) = app
        .admin_call(Method::POST, "/api/v1/projects/wrong/connect")
        .await;
    assert_eq!(status, 502, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("401") && error.contains("token"), "{error}");
    let (status, _) = app
        .admin_call(Method::POST, "/api/v1/projects/nothing/connect")
        .await;
    assert_eq!(status, 404);
    let refused = app.baler_cli(&["project", "connect", "tokenless"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("api_token_env"));

    // A project that lives in the database: the request carries what the config would.
    let (status, added) = app
        .admin_send(
            Method::POST,
            "/api/v1/projects",
            &json!({"name": "added", "repo": GITEA_REPO, "provider": "gitea",
                "branches": ["release-*"]}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let (status, answer) = app
        .admin_call(Method::POST, "/api/v1/projects/added/connect")
        .await;
    assert_eq!(status, 400, "no token anywhere: {answer}");
    let (status, done) = app
        .admin_send(
            Method::POST,
            "/api/v1/projects/added/connect",
            &json!({"api_url": hosts.gitea.api_url(), "api_token": HOST_TOKEN}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["ping"]["result"], "arrived", "{done}");

    // A host whose repository is not the project's: its ping arrives and is refused, which
    // connect reports (GitLab answers the test with 422 then, having waited for baler).
    // The host's payloads name a clone URL the project does not have.
    let elsewhere = FakeHost::start(
        Provider::Gitlab,
        "acme/tools/widget",
        "https://gitlab.com/acme/elsewhere.git",
        HOST_TOKEN,
    )
    .await;
    let (status, _) = app
        .admin_send(
            Method::POST,
            "/api/v1/projects",
            &json!({"name": "mismatch", "repo": GITLAB_REPO, "provider": "gitlab",
                "branches": ["release-*"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, done) = app
        .admin_send(
            Method::POST,
            "/api/v1/projects/mismatch/connect",
            &json!({"api_url": elsewhere.api_url(), "api_token": HOST_TOKEN}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["ping"]["result"], "refused", "{done}");
    assert_eq!(done["ping"]["status"], 403, "{done}");

    // The admin page: the hook URL, the missing secret, and the button.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/projects/gt").await;
    assert!(
        page.body.contains(&format!("{}/hooks/gt", app.url)),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"id="no-secret""#));
    let csrf = page.csrf();
    let answer = browser
        .post("/admin/projects/gt/connect", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/projects/gt"))
    );
    let page = browser.get("/admin/projects/gt").await;
    assert!(
        page.body.contains("Created the gitea webhook") && page.body.contains("ping arrived"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(r#"id="no-secret""#));
    let answer = browser
        .post("/admin/projects/wrong/connect", &[("csrf", &csrf)])
        .await;
    assert_eq!(answer.status, 303);
    let page = browser.get("/admin/projects/wrong").await;
    assert!(
        page.body.contains("flash error") && page.body.contains("401"),
        "{}",
        page.body
    );

    // A project with a secret in the config keeps it; connect gives the host that one.
    let hook_url = format!("{}/hooks/wrong", app.url);
    assert!(
        ours(&hosts.github, &hook_url).is_empty(),
        "nothing made with a wrong token"
    );
    assert_eq!(stored_secret(&app, "wrong").await, SECRET);
}

on_both_databases!(connect_makes_one_hook_on_each_host_and_hears_its_ping);
