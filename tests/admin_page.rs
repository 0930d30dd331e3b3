//! The admin page: a login form without a session; after logging in, the queue, its actions
//! (each form 403 without its CSRF token) and the audit log; logging out.

use baler::admin::tokens::Scope;
use baler::admin::{Actor, AdminActions};

use crate::on_both_databases;
use crate::support::browser::{AdminBrowser, Answer};
use crate::support::git::GitRepo;
use crate::support::{ADMIN_TOKEN, Installation, ProjectSpec, TestApp, TestDb};

/// A 303 back to the queue page, which then shows `message`.
async fn acted(browser: &mut AdminBrowser, answer: Answer, message: &str) -> Answer {
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/queue")),
        "{}",
        answer.body
    );
    let page = browser.get("/admin/queue").await;
    let flash = page.flash().unwrap_or_default();
    assert!(flash.contains(message), "{message:?} not in {flash:?}");
    page
}

async fn the_admin_page_logs_in_shows_the_queue_and_checks_csrf(db: TestDb) {
    let repo = GitRepo::standard();
    let missing = format!("file://{}/gone", repo.dir.display());
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("other", repo.url()))
        .project(ProjectSpec::github("broken", missing))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    app.github_push("widget", "refs/heads/main", &repo.head())
        .await;

    let mut browser = AdminBrowser::new(&app);
    let before_login = logs_in_through_the_form(&mut browser).await;
    let csrf = the_queue_page_after_login(&mut browser, &before_login).await;
    forms_need_their_csrf_token(&app, &mut browser, &csrf, &before_login).await;
    queue_actions_from_the_page(&app, &repo, &mut browser, &csrf).await;
    logging_out_ends_the_session(&app, &mut browser, &csrf).await;
}

/// The login form, then logging in; returns the CSRF token the form had before.
async fn logs_in_through_the_form(browser: &mut AdminBrowser) -> String {
    // Without a session: the login form, and no queue data.
    let answer = browser.get("/admin/queue").await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/login"))
    );
    assert!(answer.body.is_empty());
    let login = browser.get("/admin/login").await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains(r#"name="token""#), "{}", login.body);
    assert!(!login.body.contains("widget") && !login.body.contains("queue-items"));
    let before_login = login.csrf();

    // Logging in: the CSRF field is needed, a wrong token is refused.
    let answer = browser
        .post("/admin/login", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("CSRF"));
    let answer = browser
        .post(
            "/admin/login",
            &[("csrf", &before_login), ("token", "wrong")],
        )
        .await;
    assert_eq!(answer.status, 401);
    assert!(answer.body.contains("not valid") && answer.body.contains(r#"name="token""#));
    let answer = browser
        .post(
            "/admin/login",
            &[("csrf", &before_login), ("token", ADMIN_TOKEN)],
        )
        .await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/queue"))
    );
    let cookie = answer.set_cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(ADMIN_TOKEN),
        "the cookie does not hold the token"
    );

    before_login
}

/// The queue page after logging in; returns the session's CSRF token.
async fn the_queue_page_after_login(browser: &mut AdminBrowser, before_login: &str) -> String {
    // The queue page: the waiting item, the paused state, a reload, who is signed in.
    let page = browser.get("/admin/queue").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<meta http-equiv="refresh""#));
    assert!(
        page.body
            .contains("signed in as <strong>admin_token</strong>")
    );
    assert!(page.body.contains("<strong>Paused</strong>"));
    let items = page.rows("#queue-items");
    assert_eq!(items.len(), 1, "{items:?}");
    let first = &items[0];
    for part in ["1 | ", " | widget | pending | ", "branch:main@"] {
        assert!(first.contains(part), "{part:?} in {first}");
    }
    let csrf = page.csrf();
    assert_ne!(csrf, before_login, "a new session id at login");

    csrf
}

async fn forms_need_their_csrf_token(
    app: &TestApp,
    browser: &mut AdminBrowser,
    csrf: &str,
    before_login: &str,
) {
    // A form posted without its CSRF field, or with another session's, is 403 and does
    // nothing; with it, it acts.
    for fields in [
        &[][..],
        &[("csrf", "")][..],
        &[("csrf", "00ff")][..],
        &[("csrf", before_login)][..],
    ] {
        let answer = browser.post("/admin/queue/resume", fields).await;
        assert_eq!(answer.status, 403, "{fields:?}");
    }
    assert!(app.queue.counts().await.unwrap().paused);
    let answer = browser.post("/admin/queue/resume", &[("csrf", csrf)]).await;
    acted(browser, answer, "Resumed").await;
    assert!(!app.queue.counts().await.unwrap().paused);
    app.run_queue_until_idle().await;
    let answer = browser.post("/admin/queue/pause", &[("csrf", csrf)]).await;
    acted(browser, answer, "Paused").await;
    assert!(app.queue.counts().await.unwrap().paused);
}

/// Each action of the queue page with its message, and the audit log they leave.
async fn queue_actions_from_the_page(
    app: &TestApp,
    repo: &GitRepo,
    browser: &mut AdminBrowser,
    csrf: &str,
) {
    // Flushing needs its confirmation.
    for project in ["widget", "other"] {
        app.github_push(project, "refs/heads/main", &repo.head())
            .await;
    }
    let answer = browser.post("/admin/queue/flush", &[("csrf", csrf)]).await;
    acted(browser, answer, "Nothing was flushed").await;
    assert_eq!(app.queue.counts().await.unwrap().pending, 2);
    let answer = browser
        .post("/admin/queue/flush", &[("csrf", csrf), ("confirm", "yes")])
        .await;
    acted(browser, answer, "removed 2 pending items").await;
    assert_eq!(app.queue.counts().await.unwrap().pending, 0);

    // Rebuild a project, delete the item, and a second delete says why it did nothing.
    let answer = browser
        .post(
            "/admin/queue/rebuild",
            &[("csrf", csrf), ("project", "widget")],
        )
        .await;
    let page = acted(browser, answer, "Rebuild of widget queued").await;
    let items = page.rows("#queue-items");
    assert!(items[0].contains("rebuild"), "{items:?}");
    let id = items[0].split(" | ").nth(1).unwrap().to_string();
    let delete = format!("/admin/queue/{id}/delete");
    let answer = browser.post(&delete, &[("csrf", csrf)]).await;
    acted(browser, answer, &format!("Deleted item {id}")).await;
    let answer = browser.post(&delete, &[("csrf", csrf)]).await;
    acted(browser, answer, &format!("no queue item {id}")).await;

    // Retry a failed item.
    app.github_push("broken", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    app.queue.set_paused(true).await.unwrap();
    let page = browser.get("/admin/queue").await;
    let failed = page.rows("#queue-items");
    assert!(
        failed[0].contains("failed") && failed[0].contains("gone"),
        "{failed:?}"
    );
    let id = failed[0].split(" | ").nth(1).unwrap().to_string();
    let answer = browser
        .post(&format!("/admin/queue/{id}/retry"), &[("csrf", csrf)])
        .await;
    let page = acted(browser, answer, &format!("Item {id} queued again")).await;
    assert!(page.rows("#queue-items")[0].contains("pending"));

    // The audit log, newest first, names the token for each action.
    let audit = page.rows("#audit-log");
    let actions: Vec<&str> = audit
        .iter()
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            assert_eq!(cells[1], "admin_token", "{row}");
            cells[2]
        })
        .collect();
    assert_eq!(
        actions,
        [
            "item.retry",
            "item.delete",
            "project.rebuild",
            "queue.flush",
            "queue.pause",
            "queue.resume",
            "session.login",
        ]
    );
}

async fn logging_out_ends_the_session(app: &TestApp, browser: &mut AdminBrowser, csrf: &str) {
    // Logging out ends the session: on the server, so a copy of the cookie is refused too.
    let copied = browser.cookie.clone();
    let answer = browser.post("/admin/logout", &[("csrf", csrf)]).await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/login"))
    );
    assert!(browser.cookie.is_none(), "the cookie is removed");
    let answer = browser.get("/admin/queue").await;
    assert_eq!(answer.location.as_deref(), Some("/admin/login"));
    browser.cookie = copied;
    let answer = browser.get("/admin/queue").await;
    assert_eq!(
        answer.location.as_deref(),
        Some("/admin/login"),
        "the old cookie is refused"
    );
    let answer = browser.post("/admin/queue/pause", &[("csrf", csrf)]).await;
    assert_eq!(answer.status, 401, "the old cookie cannot act");
    assert_eq!(app.ended_session_count().await, 1);
    let audit = app.audit_trail().await;
    assert_eq!(
        audit
            .iter()
            .filter(|row| row.action == "session.logout" && row.actor == "admin_token")
            .count(),
        1
    );
}

/// The signing key lives in the database: a session outlives a restart. It was opened with
/// the configured token, so it ends when that token changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_but_not_a_new_admin_token() {
    let installation = Installation::new(&TestDb::Sqlite).await;
    let start = |token: &str| {
        TestApp::builder()
            .installation(&installation)
            .admin_token(token)
            .start()
    };
    let cookie = {
        let app = start(ADMIN_TOKEN).await;
        AdminBrowser::logged_in(&app, ADMIN_TOKEN)
            .await
            .cookie
            .unwrap()
    };
    let restarted = start(ADMIN_TOKEN).await;
    let mut browser = AdminBrowser::new(&restarted);
    browser.cookie = Some(cookie.clone());
    assert_eq!(browser.get("/admin/queue").await.status, 200);
    drop(restarted);

    let changed = start("another-admin-token").await;
    let mut browser = AdminBrowser::new(&changed);
    browser.cookie = Some(cookie);
    let answer = browser.get("/admin/queue").await;
    assert_eq!(answer.location.as_deref(), Some("/admin/login"));
}

/// A named token logs in too, and is named in the audit log; revoking it ends its session.
async fn a_named_tokens_session_ends_when_it_is_revoked(db: TestDb) {
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .start()
        .await;
    let actions = AdminActions::new(app.db.clone(), app.queue.clone());
    let token = actions
        .create_token(&Actor::token("test"), "alice", Scope::Admin, None)
        .await
        .unwrap();
    let mut browser = AdminBrowser::logged_in(&app, &token.secret).await;
    let page = browser.get("/admin/queue").await;
    assert!(page.body.contains("signed in as <strong>alice</strong>"));
    let answer = browser
        .post("/admin/queue/pause", &[("csrf", &page.csrf())])
        .await;
    acted(&mut browser, answer, "Paused").await;
    let audit = app.audit_trail().await;
    assert_eq!(
        audit
            .iter()
            .filter(|row| row.actor == "alice" && row.action == "queue.pause")
            .count(),
        1
    );
    let tokens = app.api_token_rows().await;
    assert!(tokens.iter().filter(|t| t.last_used_at.is_some()).count() == 1);

    actions
        .revoke_token(&Actor::token("test"), token.id)
        .await
        .unwrap();
    let answer = browser.get("/admin/queue").await;
    assert_eq!(answer.location.as_deref(), Some("/admin/login"));
    let answer = browser
        .post("/admin/queue/resume", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(answer.status, 401);
    assert!(app.queue.counts().await.unwrap().paused);
}

on_both_databases!(
    the_admin_page_logs_in_shows_the_queue_and_checks_csrf,
    a_named_tokens_session_ends_when_it_is_revoked,
);
