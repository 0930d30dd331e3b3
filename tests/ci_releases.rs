//! CI drives releases with a scoped token: `baler token create --project P --scope release`
//! (the real CLI), `POST /api/v1/projects/{p}/releases`, then `GET /api/v1/items/{id}?wait=N`
//! until the item is done, and the files it lists are the ones served. A scoped token is
//! refused (403) on admin routes, on other projects and on the admin page.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{ADMIN_TOKEN, AuditRow, ProjectSpec, TestApp, TestDb};

/// `method path` with `Authorization: Bearer token` and a JSON body, as a CI job's curl.
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", app.url)
    };
    let mut request = app.client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/projects/{project}/releases` with `body`, as a CI job asks for a release.
async fn request(app: &TestApp, token: &str, project: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/projects/{project}/releases");
    call(app, token, Method::POST, &path, Some(body)).await
}

/// `baler token create ARGS` with the real binary; the token is alone on stdout.
fn create_token(app: &TestApp, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let made = app.baler_cli(&all);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_string()
}

/// Polls the item as CI does, with `?wait=30`, until it is done or failed.
async fn follow(app: &TestApp, token: &str, status_url: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, item) = call(
            app,
            token,
            Method::GET,
            &format!("{status_url}?wait=30"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{item}");
        if item["state"] == "done" || item["state"] == "failed" {
            return item;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the item never finished: {item}"
        );
    }
}

fn versions(item: &Value) -> Vec<&str> {
    item["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect()
}

async fn ci_requests_and_follows_a_release(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .projects([
            ProjectSpec::github("demo", repo.url()).branches(&["1.x"]),
            ProjectSpec::github("other", repo.url()),
        ])
        .start()
        .await;
    let ci = create_token(
        &app,
        &["--name", "ci", "--project", "demo", "--scope", "release"],
    );
    let listed = app.baler_cli(&["token", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("release demo"), "{listed}");

    // Held in the queue, the request waits where CI can see it.
    let (status, _) = app.admin_call(Method::POST, "/api/v1/queue/pause").await;
    assert_eq!(status, 200);
    let (status, requested) = request(&app, &ci, "demo", json!({"ref": "refs/tags/v1.0.0"})).await;
    assert_eq!(status, 202, "{requested}");
    let item = requested["item"].as_i64().unwrap();
    assert_eq!(requested["position"], 1);
    assert_eq!(requested["merged"], false);
    let status_url = requested["status_url"].as_str().unwrap().to_string();
    assert_eq!(status_url, format!("{}/api/v1/items/{item}", app.url));
    // A branch works too, and merges into the waiting item.
    let (status, branch) = request(&app, &ci, "demo", json!({"ref": "refs/heads/1.x"})).await;
    assert_eq!(status, 202, "{branch}");
    assert_eq!(
        (branch["item"].as_i64(), &branch["merged"]),
        (Some(item), &json!(true))
    );

    let (status, waiting) = call(&app, &ci, Method::GET, &status_url, None).await;
    assert_eq!(status, 200, "{waiting}");
    assert_eq!(waiting["state"], "pending");
    assert_eq!(waiting["position"], 1);
    assert_eq!(waiting["project"], "demo");
    assert_eq!(
        waiting["refs"]["tags"]["v1.0.0"], "",
        "the worker finds the commit"
    );
    assert!(waiting["refs"]["branches"].get("1.x").is_some());
    assert_eq!(waiting["releases"], json!([]));

    // The wait is bounded: nothing changes while the queue is paused.
    let started = Instant::now();
    let (_, still) = call(
        &app,
        &ci,
        Method::GET,
        &format!("{status_url}?wait=1"),
        None,
    )
    .await;
    assert_eq!(still["state"], "pending");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A long poll answers when the state changes, not at the end of its wait.
    let poll = {
        let (client, url, ci) = (app.client.clone(), status_url.clone(), ci.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer: Value = client
                .get(format!("{url}?wait=30"))
                .bearer_auth(ci)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = app.admin_call(Method::POST, "/api/v1/queue/resume").await;
    assert_eq!(status, 200);
    let (changed, took) = poll.await.unwrap();
    assert_ne!(changed["state"], "pending", "{changed}");
    assert!(took < Duration::from_secs(20), "{took:?}");

    let done = follow(&app, &ci, &status_url).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["last_error"], Value::Null);
    // Every matching tag is looked at by every job, so 1.1.0 comes along (see ARCHITECTURE).
    assert_eq!(versions(&done), ["1.0.0", "1.1.0", "1.x-dev"], "{done}");
    for release in done["releases"].as_array().unwrap() {
        let page = release["page"].as_str().unwrap();
        assert!(page.starts_with(&format!("{}/projects/demo/releases/", app.url)));
        let files = release["files"].as_array().unwrap();
        assert!(!files.is_empty(), "{release}");
        for file in files {
            let (_, bytes) = app.download(file["url"].as_str().unwrap()).await;
            assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                file["sha256"].as_str().unwrap(),
                "{}",
                file["name"]
            );
        }
    }

    // Asked again for a tag that is already released: a new item, which lists the release
    // an earlier item built.
    let (status, again) = request(&app, &ci, "demo", json!({"ref": "refs/tags/v1.0.0"})).await;
    assert_eq!(status, 202);
    assert_ne!(again["item"].as_i64(), Some(item));
    let again = follow(&app, &ci, again["status_url"].as_str().unwrap()).await;
    assert_eq!(versions(&again), ["1.0.0"], "{again}");

    // A tag the repository lacks: the request is not trusted, the worker finds nothing.
    let (status, missing) = request(&app, &ci, "demo", json!({"ref": "refs/tags/v9.9.9"})).await;
    assert_eq!(status, 202);
    let missing = follow(&app, &ci, missing["status_url"].as_str().unwrap()).await;
    assert_eq!(missing["state"], "done");
    assert_eq!(missing["releases"], json!([]), "{missing}");
    assert!(!app.versions("demo").await.contains(&"9.9.9".to_string()));

    // Refs that cannot be released are refused before anything is queued.
    for (body, why) in [
        (json!({"ref": "v1.0.0"}), "neither a tag"),
        (json!({"ref": "refs/heads/main"}), "branch patterns"),
        (json!({"ref": "refs/tags/a b"}), "not a valid git ref name"),
        (json!({"tag": "v1.0.0"}), "the body must be"),
    ] {
        let (status, refused) = request(&app, &ci, "demo", body.clone()).await;
        assert_eq!(status, 400, "{body}: {refused}");
        assert!(
            refused["error"].as_str().unwrap().contains(why),
            "{body}: {refused}"
        );
    }

    let trail = app.audit_trail().await;
    assert!(
        trail.contains(&AuditRow::new("ci", "release.request", "project demo")),
        "{trail:?}"
    );
    assert!(trail.contains(&AuditRow::new("cli:tester", "token.create", "token 1 (ci)")));
}

async fn scoped_tokens_stay_in_their_scope(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .projects([
            ProjectSpec::github("demo", repo.url()),
            ProjectSpec::github("other", repo.url()),
        ])
        .start()
        .await;
    let (status, _) = app.admin_call(Method::POST, "/api/v1/queue/pause").await;
    assert_eq!(status, 200);
    // `--project` alone makes a release token.
    let ci = create_token(&app, &["--name", "ci", "--project", "demo"]);
    let reader = create_token(
        &app,
        &["--name", "watcher", "--project", "demo", "--scope", "read"],
    );
    for (args, why) in [
        (&["--name", "x", "--scope", "release"][..], "--project"),
        (&["--name", "y", "--project", "nothing"][..], "no project"),
        (
            &["--name", "z", "--project", "demo", "--scope", "admin"][..],
            "every project",
        ),
        (&["--name", "w", "--scope", "root"][..], "root"),
    ] {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let refused = app.baler_cli(&all);
        assert!(!refused.status.success(), "{args:?}");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains(why), "{args:?}: {said}");
    }

    // Every admin route: 403 with a valid scoped token, and nothing done.
    let (status, _) = request(&app, &ci, "demo", json!({"ref": "refs/tags/v1.0.0"})).await;
    assert_eq!(status, 202);
    for (method, path) in [
        (Method::POST, "/api/v1/queue/flush"),
        (Method::GET, "/api/v1/queue"),
        (Method::POST, "/api/v1/queue/resume"),
        (Method::POST, "/api/v1/projects/demo/rebuild"),
        (Method::DELETE, "/api/v1/projects/demo"),
        (Method::GET, "/api/v1/audit"),
        (Method::GET, "/api/v1/notifications"),
    ] {
        for token in [&ci, &reader] {
            let (status, refused) = call(&app, token, method.clone(), path, None).await;
            assert_eq!(status, 403, "{method} {path}: {refused}");
            assert!(
                refused["error"]
                    .as_str()
                    .unwrap()
                    .contains("needs an admin token"),
                "{refused}"
            );
        }
    }
    let listing = app.admin_json("/api/v1/queue").await;
    assert_eq!(listing["items"].as_array().unwrap().len(), 1, "not flushed");
    assert_eq!(listing["paused"], true, "not resumed");

    // Another project: neither a release nor its items.
    let (status, refused) = request(&app, &ci, "other", json!({"ref": "refs/tags/v1.0.0"})).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("release (project demo)")
    );
    let (status, theirs) = app
        .admin_send(
            Method::POST,
            "/api/v1/projects/other/releases",
            &json!({"ref": "refs/tags/v1.0.0"}),
        )
        .await;
    assert_eq!(status, 202, "an admin token may: {theirs}");
    let theirs = format!("/api/v1/items/{}", theirs["item"]);
    for token in [&ci, &reader] {
        let (status, _) = call(&app, token, Method::GET, &theirs, None).await;
        assert_eq!(status, 403);
    }
    let (status, _) = call(&app, ADMIN_TOKEN, Method::GET, &theirs, None).await;
    assert_eq!(status, 200);

    // A read token follows its project's items but requests nothing.
    let (status, _) = call(&app, &reader, Method::GET, "/api/v1/items/1", None).await;
    assert_eq!(status, 200);
    let (status, _) = request(&app, &reader, "demo", json!({"ref": "refs/tags/v1.0.0"})).await;
    assert_eq!(status, 403);
    let (status, _) = call(&app, &ci, Method::GET, "/api/v1/items/999", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, "baler_wrong", Method::GET, "/api/v1/items/1", None).await;
    assert_eq!(status, 401);

    // The admin page opens for admin tokens only.
    let mut browser = AdminBrowser::new(&app);
    let csrf = browser.get("/admin/login").await.csrf();
    let answer = browser
        .post("/admin/login", &[("csrf", &csrf), ("token", &ci)])
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("admin token"), "{}", answer.body);
    let answer = browser.get("/admin/queue").await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/login")),
        "no session"
    );

    // Revoked: refused everywhere at once.
    let revoked = app.baler_cli(&["token", "revoke", "1"]);
    assert!(revoked.status.success());
    let (status, _) = call(&app, &ci, Method::GET, "/api/v1/items/1", None).await;
    assert_eq!(status, 401);
}

on_both_databases!(
    ci_requests_and_follows_a_release,
    scoped_tokens_stay_in_their_scope,
);
