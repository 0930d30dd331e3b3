//! Outbound notifications end to end: releases told to a real receiver in the test, which
//! checks every signature with the Standard Webhooks reference crate; retries, a receiver
//! that is down, a sender killed with SIGKILL mid-send, 410 Gone, the SSRF guard, and the
//! admin API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::receiver::{NOTIFY_SECRET, Receiver, Reply};
use crate::support::{
    ADMIN_TOKEN, AuditRow, BalerProcess, Installation, NotificationSpec, ProjectSpec, TestApp,
    TestDb, free_port, github_deletion, wait_until,
};

/// One tag (`v1.0.0`) on `main`: a job releases `1.0.0` and `main-dev`.
fn one_tag_repo() -> GitRepo {
    let mut repo = GitRepo::new();
    repo.write("README.md", b"notify me\n");
    repo.commit("First");
    repo.git(&["tag", "v1.0.0"]);
    repo
}

fn published_only(url: &str) -> NotificationSpec {
    NotificationSpec {
        events: Some(vec!["release.published".into()]),
        ..NotificationSpec::to(url)
    }
}

async fn listing(app: &TestApp) -> Value {
    app.admin_json("/api/v1/notifications").await
}

/// The statuses of each listed message's attempts, by `webhook-id`.
fn attempt_statuses(listing: &Value) -> BTreeMap<String, Vec<Value>> {
    listing["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let statuses = m["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["status"].clone())
                .collect();
            (m["message_id"].as_str().unwrap().to_string(), statuses)
        })
        .collect()
}

/// The notification fails once (500), then is accepted on its retry: exactly one accepted
/// delivery, under the same `webhook-id` on both attempts, with the payload the issue names
/// and checksums equal to the release's. (A tag push releases its tag; branches wait for
/// their own pushes.)
async fn a_failed_delivery_is_retried_and_accepted_once(db: TestDb) {
    let repo = one_tag_repo();
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Status(500)], Reply::Status(200));
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .notify(published_only(&receiver.url))
        .start()
        .await;
    let response = app
        .github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;

    // The first attempt fails; the retry comes about 5 s later.
    wait_until(30, "the notification accepted", || async {
        receiver.accepted().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.verified), "{seen:?}");
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "one accepted delivery");
    for delivery in &accepted {
        let attempts: Vec<&crate::support::receiver::Seen> =
            seen.iter().filter(|s| s.id == delivery.id).collect();
        assert_eq!(attempts.len(), 2, "the same id on every attempt: {seen:?}");
        assert_eq!(attempts[0].answered, Some(500));
        assert_eq!(
            attempts[0].body, attempts[1].body,
            "the same bytes each time"
        );
    }

    let tagged = accepted
        .iter()
        .find(|s| s.body["data"]["version"] == "1.0.0")
        .expect("the tag's release was told");
    let body = &tagged.body;
    assert_eq!(body["type"], "release.published");
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok(),
        "{body}"
    );
    let data = &body["data"];
    assert_eq!(data["project"], "widget");
    assert_eq!(data["kind"], "tag");
    assert_eq!(data["ref"], "v1.0.0");
    assert_eq!(data["commit"], repo.rev("v1.0.0").as_str());
    assert_eq!(
        data["page"],
        format!("{}/projects/widget/releases/1.0.0", app.url).as_str()
    );
    let release = app.release("widget", "1.0.0").await;
    let expected: Vec<Value> = release["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| json!({"name": f["name"], "url": f["url"], "size": f["size"], "sha256": f["sha256"]}))
        .collect();
    let mut told: Vec<Value> = data["files"].as_array().unwrap().clone();
    told.sort_by_key(|f| f["name"].as_str().unwrap().to_string());
    assert_eq!(told, expected);
    let downloaded = app.download(told[0]["url"].as_str().unwrap()).await.1;
    assert_eq!(told[0]["size"], downloaded.len());

    // The admin API lists both attempts of each, and the state.
    let listed = listing(&app).await;
    let statuses = attempt_statuses(&listed);
    assert_eq!(statuses.len(), 1);
    for delivery in &accepted {
        assert_eq!(statuses[&delivery.id], [json!(500), json!(200)]);
    }
    for message in listed["messages"].as_array().unwrap() {
        assert_eq!(message["state"], "delivered", "{message}");
        assert_eq!(message["event"], "release.published");
        assert_eq!(message["url"], receiver.url.as_str());
        assert!(message["attempts"][0]["latency_ms"].as_i64().unwrap() >= 0);
    }
}

/// A receiver that refuses connections at first: the notification arrives once it is back.
async fn a_notification_arrives_when_the_receiver_comes_back(db: TestDb) {
    let repo = one_tag_repo();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .notify(NotificationSpec {
            events: Some(vec!["release.published".into()]),
            projects: Some(vec!["wid*".into()]),
            ..NotificationSpec::to(&url)
        })
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    wait_until(20, "the first attempts to fail", || async {
        let listed = listing(&app).await;
        let statuses = attempt_statuses(&listed);
        statuses.len() == 1 && statuses.values().all(|s| s.len() == 1)
    })
    .await;
    let listed = listing(&app).await;
    for message in listed["messages"].as_array().unwrap() {
        assert_eq!(message["state"], "pending");
        assert!(message["next_attempt_at"].is_string(), "{message}");
        let first = &message["attempts"][0];
        assert_eq!(first["status"], Value::Null, "no answer: {first}");
        assert!(
            first["error"].as_str().unwrap().contains("onnect"),
            "a connection error: {first}"
        );
    }

    let receiver = Receiver::start_on(port).await;
    wait_until(30, "the notification to arrive", || async {
        receiver.accepted().len() == 1
    })
    .await;
    let ids: BTreeSet<String> = receiver.accepted().into_iter().map(|s| s.id).collect();
    let listed_ids: BTreeSet<String> = attempt_statuses(&listing(&app).await).into_keys().collect();
    assert_eq!(ids, listed_ids);
    wait_until(10, "it to be recorded as delivered", || async {
        listing(&app).await["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "delivered")
    })
    .await;
}

/// `baler serve` is killed with SIGKILL after the releases committed, while their
/// notifications are being sent (the receiver holds them without answering). After a restart
/// each is sent again under its id and accepted once.
async fn a_notification_survives_kill_9_between_commit_and_send(db: TestDb) {
    let repo = one_tag_repo();
    let receiver = Receiver::start().await;
    receiver.script(&[], Reply::Hang);
    let install = Installation::new(&db).await;
    let port = free_port();
    let mut config = install.bare_config();
    config.listen = Some(format!("127.0.0.1:{port}"));
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.projects = vec![ProjectSpec::github("widget", repo.url())];
    config.notifications = vec![published_only(&receiver.url)];
    let path = install.root().join("serve.toml");
    config.write_to(&path);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let mut first = BalerProcess::start(&["serve"], &path);
    wait_until(60, "baler to answer", || {
        crate::support::child::is_healthy(&client, &url)
    })
    .await;
    let rebuild = client
        .post(format!("{url}/api/v1/projects/widget/rebuild"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rebuild.status(), 200);
    wait_until(60, "both notifications to be in flight", || async {
        receiver.seen().len() == 2
    })
    .await;
    first.kill();
    let in_flight: BTreeSet<String> = receiver.seen().into_iter().map(|s| s.id).collect();
    assert_eq!(in_flight.len(), 2);
    assert!(receiver.accepted().is_empty());

    receiver.script(&[], Reply::Status(200));
    let second = BalerProcess::start(&["serve"], &path);
    // The dead sender's claims run out (the 15 s limit and 5 s more), then they are sent.
    wait_until(60, "the notifications to be sent again", || async {
        receiver.accepted().len() == 2
    })
    .await;
    let accepted: BTreeSet<String> = receiver.accepted().into_iter().map(|s| s.id).collect();
    assert_eq!(accepted, in_flight, "the same ids after the restart");
    assert!(receiver.seen().iter().all(|s| s.verified));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.accepted().len(), 2, "{}", second.log());
}

/// A 410 disables the subscriber: the next release writes nothing for it. Sending the
/// notification again (audited) enables it again, and it is accepted.
async fn gone_disables_the_subscriber_until_an_admin_sends_again(db: TestDb) {
    let mut repo = one_tag_repo();
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Status(410)], Reply::Status(200));
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()).branches(&[]))
        .notify(published_only(&receiver.url))
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    wait_until(20, "the subscriber to be disabled", || async {
        listing(&app).await["subscribers"][0]["disabled_at"].is_string()
    })
    .await;
    let listed = listing(&app).await;
    assert!(
        listed["subscribers"][0]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{listed}"
    );
    let message = &listed["messages"][0];
    assert_eq!(message["state"], "failed");
    assert_eq!(message["attempts"].as_array().unwrap().len(), 1);

    repo.write("CHANGELOG", b"2\n");
    repo.commit("Second");
    repo.git(&["tag", "v2.0.0"]);
    app.github_push("widget", "refs/tags/v2.0.0", &repo.rev("v2.0.0"))
        .await;
    app.run_queue_until_idle().await;
    assert_eq!(app.versions("widget").await, ["2.0.0", "1.0.0"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed = listing(&app).await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(receiver.seen().len(), 1);

    let id = message["id"].as_i64().unwrap();
    let (status, answer) = app
        .admin_call(
            Method::POST,
            &format!("/api/v1/notifications/messages/{id}/resend"),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    wait_until(20, "the notification to be sent again", || async {
        receiver.accepted().len() == 1
    })
    .await;
    // The receiver answers before the sender records it.
    wait_until(10, "the delivery to be recorded", || async {
        listing(&app).await["messages"][0]["state"] == "delivered"
    })
    .await;
    assert!(listing(&app).await["subscribers"][0]["disabled_at"].is_null());
    assert_eq!(receiver.accepted()[0].id, receiver.seen()[0].id);
    let trail = app.audit_trail().await;
    assert!(
        trail.contains(&AuditRow::new(
            "admin_token",
            "notification.resend",
            &format!("notification {id}")
        )),
        "{trail:?}"
    );
}

/// Every event kind, each to the subscribers that take it: a release, a ref that cannot be a
/// version, an item that used up its attempts, and a deleted tag.
async fn every_event_reaches_the_subscribers_that_take_it(db: TestDb) {
    let repo = one_tag_repo();
    repo.git(&["tag", "release!1"]);
    let everything = Receiver::start().await;
    let ghosts = Receiver::start().await;
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()).branches(&[]))
        .project(ProjectSpec::github("ghost", "file:///nowhere/ghost.git"))
        .notify(NotificationSpec::to(&everything.url))
        .notify(NotificationSpec {
            events: Some(vec!["item.failed".into(), "release.published".into()]),
            projects: Some(vec!["gh*".into()]),
            ..NotificationSpec::to(&ghosts.url)
        })
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.github_push("ghost", "refs/heads/main", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    repo.git(&["tag", "-d", "v1.0.0"]);
    let deletion = github_deletion(app.repo_of("widget"), "refs/tags/v1.0.0", "delete-1");
    let answer = app.deliver("widget", deletion).await;
    assert!(answer.status().is_success(), "{}", answer.status());
    app.run_queue_until_idle().await;

    wait_until(20, "four notifications", || async {
        everything.accepted().len() == 4
    })
    .await;
    let kinds: BTreeMap<String, Value> = everything
        .accepted()
        .into_iter()
        .map(|s| {
            (
                s.body["type"].as_str().unwrap().to_string(),
                s.body["data"].clone(),
            )
        })
        .collect();
    let names: Vec<&str> = kinds.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "item.failed",
            "release.failed",
            "release.published",
            "release.unpublished"
        ]
    );
    assert_eq!(kinds["release.unpublished"]["version"], "1.0.0");
    assert_eq!(kinds["release.failed"]["project"], "widget");
    assert_eq!(kinds["release.failed"]["ref"], "refs/tags/release!1");
    assert!(
        !kinds["release.failed"]["reason"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{kinds:?}"
    );
    let failed = &kinds["item.failed"];
    assert_eq!(failed["project"], "ghost");
    assert_eq!(failed["attempts"], 1);
    assert!(failed["item"].as_i64().unwrap() > 0);
    assert!(!failed["last_error"].as_str().unwrap().is_empty());

    // The second subscriber takes only the ghost's failure.
    wait_until(10, "the ghost's failure", || async {
        ghosts.accepted().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let told = ghosts.accepted();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].body["type"], "item.failed");
    assert_eq!(told[0].body["data"]["project"], "ghost");

    // The admin page lists them, and sends one again from its button.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/notifications").await;
    assert_eq!(page.rows("#subscribers").len(), 2, "{}", page.body);
    let rows = page.rows("#messages");
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.contains("delivered") && r.contains("200")),
        "{rows:?}"
    );
    let failure = listing(&app).await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["event"] == "release.failed")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let answer = browser
        .post(
            &format!("/admin/notifications/{failure}/resend"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(answer.status, 303);
    let page = browser.get("/admin/notifications").await;
    assert!(
        page.flash().unwrap().contains("sent again"),
        "{}",
        page.body
    );
    wait_until(10, "the failure told again", || async {
        everything.accepted().len() == 5
    })
    .await;
    let again = everything.accepted();
    assert_eq!(
        again[4].id,
        again
            .iter()
            .find(|s| s.body["type"] == "release.failed")
            .unwrap()
            .id
    );
}

/// Without `allow_private_network`, a loopback target is refused, named by address or by a
/// name that resolves to it (checked when connecting); the receiver sees nothing.
async fn private_targets_are_refused(db: TestDb) {
    let repo = one_tag_repo();
    let receiver = Receiver::start().await;
    let port = receiver
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/hook");
    let by_address = format!("http://127.0.0.1:{port}/hook");
    let by_name = format!("http://localhost:{port}/hook");
    let guarded = |url: &str| NotificationSpec {
        allow_private_network: false,
        ..published_only(url)
    };
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()).branches(&[]))
        .notify(guarded(&by_address))
        .notify(guarded(&by_name))
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    wait_until(20, "both attempts", || async {
        listing(&app).await["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !m["attempts"].as_array().unwrap().is_empty())
            .count()
            == 2
    })
    .await;
    for message in listing(&app).await["messages"].as_array().unwrap() {
        let error = message["attempts"][0]["error"].as_str().unwrap();
        assert!(error.contains("refused"), "{error}");
        assert!(
            error.contains("127.0.0.1") || error.contains("::1"),
            "{error}"
        );
        assert_eq!(message["state"], "pending", "retried: DNS may change");
    }
    assert!(receiver.seen().is_empty());
}

/// The admin API: subscribers added (a secret made when none is given, shown once), checked,
/// removed; those of the config file are changed only there. Every change is audited.
async fn subscribers_are_managed_through_the_admin_api(db: TestDb) {
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .notify(NotificationSpec::to("https://ci.example.org/hooks/baler"))
        .start()
        .await;
    let unauthorised = app.get("/api/v1/notifications").await;
    assert_eq!(unauthorised.status(), 401);

    for (body, field) in [
        (json!({"url": "ftp://x.example/"}), "url"),
        (
            json!({"url": "https://x.example/", "secret": "plain"}),
            "secret",
        ),
        (
            json!({"url": "https://x.example/", "events": ["release.done"]}),
            "events",
        ),
        (
            json!({"url": "https://x.example/", "projects": []}),
            "projects",
        ),
        (
            json!({"url": "https://x.example/", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, answer) = app
            .admin_send(Method::POST, "/api/v1/notifications", &body)
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (status, added) = app
        .admin_send(
            Method::POST,
            "/api/v1/notifications",
            &json!({"url": "https://deploy.example.org/baler", "events": ["item.failed"], "projects": ["web*"]}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let secret = added["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert!(standardwebhooks::Webhook::new(secret).is_ok());
    assert_eq!(added["events"], json!(["item.failed"]));
    assert_eq!(added["source"], "api");
    let id = added["id"].as_i64().unwrap();

    let (status, with_secret) = app
        .admin_send(
            Method::POST,
            "/api/v1/notifications",
            &json!({"url": "https://other.example.org/", "secret": NOTIFY_SECRET}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        with_secret.get("secret").is_none(),
        "a given secret is not echoed"
    );

    let (status, answer) = app
        .admin_send(
            Method::POST,
            "/api/v1/notifications",
            &json!({"url": "https://ci.example.org/hooks/baler"}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    let listed = listing(&app).await;
    let subscribers = listed["subscribers"].as_array().unwrap();
    assert_eq!(subscribers.len(), 3);
    let configured = subscribers
        .iter()
        .find(|s| s["source"] == "config")
        .unwrap();
    assert!(
        configured.get("secret").is_none(),
        "secrets are never listed"
    );
    let (status, _) = app
        .admin_call(
            Method::DELETE,
            &format!("/api/v1/notifications/{}", configured["id"]),
        )
        .await;
    assert_eq!(status, 409);
    let (status, removed) = app
        .admin_call(Method::DELETE, &format!("/api/v1/notifications/{id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(removed["url"], "https://deploy.example.org/baler");
    let (status, _) = app
        .admin_call(Method::DELETE, &format!("/api/v1/notifications/{id}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        listing(&app).await["subscribers"].as_array().unwrap().len(),
        2
    );

    let trail = app.audit_trail().await;
    let target = format!("subscriber {id} (https://deploy.example.org/baler)");
    assert!(trail.contains(&AuditRow::new("admin_token", "notification.add", &target)));
    assert!(trail.contains(&AuditRow::new(
        "admin_token",
        "notification.remove",
        &target
    )));
}

on_both_databases!(
    a_failed_delivery_is_retried_and_accepted_once,
    a_notification_arrives_when_the_receiver_comes_back,
    a_notification_survives_kill_9_between_commit_and_send,
    gone_disables_the_subscriber_until_an_admin_sends_again,
    every_event_reaches_the_subscribers_that_take_it,
    private_targets_are_refused,
    subscribers_are_managed_through_the_admin_api,
);
