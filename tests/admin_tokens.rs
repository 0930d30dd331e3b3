//! Admin tokens: every admin route refuses a missing, wrong or revoked token (and the admin
//! page a missing or revoked session); named tokens made, used and revoked with the real CLI
//! against a running `baler serve`.

use baler::admin::tokens::Scope;
use baler::admin::{Actor, AdminActions};
use baler::startup::Role;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{ADMIN_TOKEN, AuditRow, HttpSettings, ProjectSpec, TestApp, TestDb};

/// Every admin API route.
const API_ROUTES: [(&str, &str); 15] = [
    ("GET", "/api/v1/queue"),
    ("POST", "/api/v1/queue/pause"),
    ("POST", "/api/v1/queue/resume"),
    ("POST", "/api/v1/queue/flush"),
    ("DELETE", "/api/v1/queue/1"),
    ("POST", "/api/v1/queue/1/retry"),
    ("POST", "/api/v1/projects/widget/rebuild"),
    ("GET", "/api/v1/deliveries"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/projects/widget/problems"),
    ("GET", "/api/v1/projects/widget/releases/1.0.0/log"),
    ("GET", "/api/v1/notifications"),
    ("POST", "/api/v1/notifications"),
    ("DELETE", "/api/v1/notifications/1"),
    ("POST", "/api/v1/notifications/messages/1/resend"),
];

/// Every admin page: without a live session a GET goes to the login form (303).
const PAGE_GETS: [&str; 6] = [
    "/admin/queue",
    "/admin/deliveries",
    "/admin/notifications",
    "/admin/storage",
    "/admin/projects/widget",
    "/admin/projects/widget/releases/1.0.0",
];

/// Every admin form: without a live session a POST is 401, whatever it carries.
const PAGE_POSTS: [&str; 8] = [
    "/admin/logout",
    "/admin/queue/pause",
    "/admin/queue/resume",
    "/admin/queue/flush",
    "/admin/queue/rebuild",
    "/admin/queue/1/delete",
    "/admin/queue/1/retry",
    "/admin/notifications/1/resend",
];

/// Long on purpose: every route against every bad credential on one app, then the proof that
/// nothing was done.
async fn every_admin_route_refuses_a_missing_wrong_or_revoked_token(db: TestDb) {
    let repo = GitRepo::standard();
    // 60 wrong tokens from one address, more than the default budget of failures allows
    // (tests/auth_throttle.rs tests the limit).
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .http(HttpSettings {
            auth_failures_per_minute: Some(100),
            ..HttpSettings::default()
        })
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    let actions = AdminActions::new(app.db.clone(), app.queue.clone());
    let retired = actions
        .create_token(&Actor::token("test"), "retired", Scope::Admin, None)
        .await
        .unwrap();
    let live = actions
        .create_token(&Actor::token("test"), "live", Scope::Admin, None)
        .await
        .unwrap();

    // The token works until it is revoked: on the API, and as an admin page session.
    let before = app
        .client
        .get(format!("{}/api/v1/queue", app.url))
        .bearer_auth(&retired.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200);
    let mut retired_session = AdminBrowser::logged_in(&app, &retired.secret).await;
    let retired_page = retired_session.get("/admin/queue").await;
    assert_eq!(retired_page.status, 200);
    let retired_csrf = retired_page.csrf();
    actions
        .revoke_token(&Actor::token("test"), retired.id)
        .await
        .unwrap();

    app.queue.set_paused(true).await.unwrap();
    app.github_push("widget", "refs/heads/main", "abc").await;
    let audited = app.audit_trail().await.len();

    let unknown = format!("baler_{}", "A".repeat(43));
    let near_miss = format!("{ADMIN_TOKEN}X");
    let presented: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("a wrong token", Some("wrong")),
        ("an unknown named token", Some(&unknown)),
        ("the admin token plus a byte", Some(&near_miss)),
        ("a revoked token", Some(&retired.secret)),
    ];
    for (method, path) in API_ROUTES {
        let method: reqwest::Method = method.parse().unwrap();
        for (case, token) in presented {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {case}");
        }
    }

    let mut anonymous = AdminBrowser::new(&app);
    // A well-formed session for a live token, signed with another key: only the signature
    // stands between it and the admin page.
    let mut forged = AdminBrowser::new(&app);
    forged.cookie = Some(cookie_signed_with_another_key(live.id));
    for path in PAGE_GETS {
        for (case, browser) in [
            ("no session", &mut anonymous),
            ("a forged cookie", &mut forged),
            ("a revoked token's session", &mut retired_session),
        ] {
            let answer = browser.get(path).await;
            assert_eq!(
                (answer.status, answer.location.as_deref()),
                (303, Some("/admin/login")),
                "GET {path} with {case}"
            );
            assert!(!answer.body.contains("widget"), "no queue data: {case}");
        }
    }
    for path in PAGE_POSTS {
        for (case, browser, csrf) in [
            ("no session", &mut anonymous, "00"),
            ("a forged cookie", &mut forged, "00"),
            (
                "a revoked token's session",
                &mut retired_session,
                retired_csrf.as_str(),
            ),
        ] {
            let answer = browser
                .post(
                    path,
                    &[("csrf", csrf), ("confirm", "yes"), ("project", "widget")],
                )
                .await;
            assert_eq!(answer.status, 401, "POST {path} with {case}");
        }
    }

    // Nothing was done: still paused, the item still waits, nothing new in the audit log.
    assert!(app.queue.counts().await.unwrap().paused);
    assert_eq!(app.item_count().await, 1);
    assert_eq!(app.audit_trail().await.len(), audited);

    // With no admin token configured and no named token, the routes are closed too.
    let open = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    for token in ["", "admin-secret-token"] {
        let response = open
            .client
            .post(format!("{}/api/v1/queue/pause", open.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
}

/// The real CLI against a real `baler serve`: the token works at once, and stops working the
/// moment it is revoked, with no restart.
///
/// Long on purpose: one token's life, from creation to revocation, against one running server.
async fn token_lifecycle_through_the_cli_against_a_running_server(db: TestDb) {
    // No admin_token at all: only named tokens open the API.
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .start()
        .await;
    let server = app.serve_child(&["serve", "--no-worker"]).await;
    let url = &server.url;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str| {
        client
            .request(method, format!("{url}{path}"))
            .bearer_auth(token)
            .send()
    };

    let created = app.baler_cli(&["token", "create", "--name", "deploy-bot"]);
    assert!(created.status.success(), "{created:?}");
    let stdout = String::from_utf8(created.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "only the token on stdout");
    assert!(
        token.starts_with("baler_") && token.len() == "baler_".len() + 43,
        "{token}"
    );
    assert!(String::from_utf8_lossy(&created.stderr).contains("shown only this once"));
    // Only its hash is stored.
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let stored = app.api_token_rows().await;
    assert_eq!(stored.iter().filter(|t| t.token_hash == hash).count(), 1);
    assert_eq!(
        stored
            .iter()
            .filter(|t| t.token_hash == token || t.name == token)
            .count(),
        0
    );
    let listed = String::from_utf8(app.baler_cli(&["token", "list"]).stdout).unwrap();
    let line = listed.lines().find(|l| l.contains("deploy-bot")).unwrap();
    assert!(line.contains("never"), "not used yet: {line}");

    // It works on the running server, and its use is noted.
    let answer = call(reqwest::Method::GET, "/api/v1/queue", token)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = call(reqwest::Method::POST, "/api/v1/queue/pause", token)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let listed = String::from_utf8(app.baler_cli(&["token", "list"]).stdout).unwrap();
    let line = listed.lines().find(|l| l.contains("deploy-bot")).unwrap();
    assert!(
        !line.contains("never") && line.trim_end().ends_with('-'),
        "used, not revoked: {line}"
    );

    // Clear refusals, with a failing exit status.
    for (args, says) in [
        (
            &["token", "create", "--name", "deploy-bot"][..],
            "already exists",
        ),
        (&["token", "create", "--name", "has space"][..], "letters"),
        (&["token", "create", "--name", "admin_token"][..], "choose"),
        (&["token", "revoke", "999"][..], "no token with id 999"),
    ] {
        let out = app.baler_cli(args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(app.api_token_rows().await.len(), 1);

    let revoked = app.baler_cli(&["token", "revoke", "1"]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(
        String::from_utf8(revoked.stdout).unwrap().trim(),
        "revoked token 1 (deploy-bot)"
    );
    // The same server, not restarted, refuses it now.
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/queue"),
        (reqwest::Method::POST, "/api/v1/queue/resume"),
    ] {
        let answer = call(method, path, token).await.unwrap();
        assert_eq!(answer.status(), 401, "{path}");
        let body: Value = answer.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("revoked"),
            "{body}"
        );
    }
    assert!(
        app.queue.counts().await.unwrap().paused,
        "resume was refused"
    );
    let again = app.baler_cli(&["token", "revoke", "1"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    let listed = String::from_utf8(app.baler_cli(&["token", "list"]).stdout).unwrap();
    let line = listed.lines().find(|l| l.contains("deploy-bot")).unwrap();
    assert!(!line.trim_end().ends_with('-'), "revoked: {line}");

    // Who did what.
    assert_eq!(
        app.audit_trail().await,
        [
            AuditRow::new("cli:tester", "token.create", "token 1 (deploy-bot)"),
            AuditRow::new("deploy-bot", "queue.pause", "queue"),
            AuditRow::new("cli:tester", "token.revoke", "token 1 (deploy-bot)"),
        ]
    );
}

on_both_databases!(
    every_admin_route_refuses_a_missing_wrong_or_revoked_token,
    token_lifecycle_through_the_cli_against_a_running_server,
);

/// `baler_admin=…`: a session naming token `id`, unexpired, signed with a key baler never made.
fn cookie_signed_with_another_key(id: i64) -> String {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, Key, SignedCookieJar};
    use base64::Engine;

    let session = serde_json::json!({
        "sid": "00112233445566778899aabbccddeeff",
        "expires": chrono::Utc::now().timestamp() + 3600,
        "signed_in": {"Named": {"id": id}},
    });
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(session.to_string());
    let jar = SignedCookieJar::new(Key::from(&[7u8; 64])).add(Cookie::new("baler_admin", value));
    let response = (jar, ()).into_response();
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_string()
}
