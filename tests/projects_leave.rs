//! Projects removed from the config, and Composer names with one owner.
//!
//! A project that leaves the config file is disabled at the next start: its webhooks answer
//! 404, it leaves the pages, feeds and the Composer repository, nothing builds for it, and its
//! releases and files stay; it comes back with its history. A Composer name has one owner:
//! the project that configures it, else the one that published it first.

use std::path::Path;

use baler::hooks::verify::github_signature;
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::composer::composer;
use crate::support::git::GitRepo;
use crate::support::{
    ADMIN_TOKEN, BalerProcess, Installation, ItemState, ProjectSpec, SECRET, TestApp, TestDb,
    github_push_body,
};

/// Starts baler (again) on `installation`'s data dir and database, with `projects` in its
/// config.
async fn start_on(
    installation: &Installation,
    projects: impl IntoIterator<Item = ProjectSpec>,
) -> TestApp {
    TestApp::builder()
        .installation(installation)
        .admin_token(ADMIN_TOKEN)
        .projects(projects)
        .start()
        .await
}

/// A push of `git_ref` for `project`, naming repository `repo` and signed with the test secret
/// (a removed project's old secret is still that).
async fn signed_push(app: &TestApp, project: &str, repo: &str, git_ref: &str) -> u16 {
    let body = github_push_body(repo, git_ref, "");
    app.post_hook(
        project,
        &[
            ("content-type", "application/json".into()),
            ("x-github-event", "push".into()),
            ("x-github-delivery", uuid::Uuid::new_v4().to_string()),
            ("x-hub-signature-256", github_signature(SECRET, &body)),
        ],
        body,
    )
    .await
    .status()
    .as_u16()
}

fn project_names(projects: &Value) -> Vec<String> {
    projects
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The line `baler project list` prints for `name`.
fn project_list_line(app: &TestApp, name: &str) -> String {
    let out = app.baler_cli(&["project", "list"]);
    assert!(
        out.status.success(),
        "baler project list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("baler project list does not list {name}"))
        .to_string()
}

/// `widget` is gone from every public page, feed, API answer and the Composer repository.
async fn assert_gone_from_public_faces(app: &TestApp) {
    let home = app.get("/").await.text().await.unwrap();
    assert!(!home.contains("widget"), "{home}");
    assert_eq!(
        project_names(&app.get_json("/api/v1/projects").await),
        [] as [&str; 0]
    );
    let feed = app.get("/releases.atom").await.text().await.unwrap();
    assert!(!feed.contains("widget"), "{feed}");
    assert_eq!(
        app.get_json("/packages.json").await["available-packages"],
        json!([])
    );
    for path in [
        "/projects/widget",
        "/projects/widget/releases/1.0.0",
        "/projects/widget/releases/1.0.0/SHA256SUMS",
        "/projects/widget/releases.atom",
        "/api/v1/projects/widget",
        "/api/v1/projects/widget/releases",
        "/api/v1/projects/widget/releases/1.0.0",
        "/release-history/widget/current",
        "/p2/acme/widget.json",
        "/p2/acme/widget~dev.json",
    ] {
        assert_eq!(app.get(path).await.status(), 404, "GET {path}");
    }
}

/// Admins still see `widget`, disabled, with its releases; nothing can be rebuilt for it.
async fn assert_shown_disabled_to_admins(app: &TestApp) {
    let line = project_list_line(app, "widget");
    assert!(line.contains("disabled since 20"), "{line}");
    let mut browser = AdminBrowser::logged_in(app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/projects").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let rows = page.rows("#projects");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with("widget | disabled since 20") && rows[0].contains("acme/widget"),
        "{rows:?}"
    );
    let page = browser.get("/admin/projects/widget").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Disabled</strong> since"),
        "{}",
        page.body
    );
    assert!(
        page.rows("#releases")
            .iter()
            .any(|r| r.starts_with("1.0.0"))
    );
    let log = browser.get("/admin/projects/widget/releases/1.0.0").await;
    assert_eq!(log.status, 200);
    let (status, _) = app
        .admin_call(reqwest::Method::GET, "/api/v1/projects/widget/problems")
        .await;
    assert_eq!(status, 200);
    let (status, answer) = app
        .admin_call(reqwest::Method::POST, "/api/v1/projects/widget/rebuild")
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.to_string().contains("disabled"), "{answer}");
}

/// Long on purpose: one project leaving and coming back, restart by restart.
async fn a_removed_project_leaves_and_comes_back_with_its_history(db: TestDb) {
    let repo = GitRepo::standard();
    let widget = || ProjectSpec::github("widget", repo.url()).composer("acme/widget");
    let installation = Installation::new(&db).await;

    let app = start_on(&installation, [widget()]).await;
    assert_eq!(
        signed_push(&app, "widget", &repo.url(), "refs/tags/v1.0.0").await,
        202
    );
    app.run_queue_until_idle().await;
    let zip = app.release("widget", "1.0.0").await["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == "zip")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let zip_path = zip.strip_prefix(&app.url).unwrap().to_string();
    let (_, archive) = app.download(&zip).await;
    let releases = app.release_count().await;
    assert!(releases >= 2, "both tags are released");
    assert_eq!(
        app.get_json("/packages.json").await["available-packages"],
        json!(["acme/widget"])
    );
    // Queued while the queue is paused, so it is still waiting when the project leaves.
    app.queue.set_paused(true).await.unwrap();
    assert_eq!(
        signed_push(&app, "widget", &repo.url(), "refs/heads/main").await,
        202
    );
    drop(app);

    // Restarted without it: disabled.
    let app = start_on(&installation, []).await;
    let queued = app.item_count().await;
    assert_eq!(
        signed_push(&app, "widget", &repo.url(), "refs/heads/1.x").await,
        404,
        "its old secret opens nothing"
    );
    assert_eq!(app.item_count().await, queued);

    assert_gone_from_public_faces(&app).await;
    // Downloads stay: lock files point at them.
    let (_, kept) = app.download(&format!("{}{zip_path}", app.url)).await;
    assert_eq!(kept, archive);
    assert_eq!(app.release_count().await, releases);

    // The item queued before it left is acknowledged without building anything.
    let done_without_error = || async {
        let done = app.queue_rows_in(ItemState::Done).await;
        done.iter().filter(|row| row.last_error.is_none()).count()
    };
    let done_before = done_without_error().await;
    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert_eq!(done_without_error().await, done_before + 1);
    assert_eq!(app.items_not_in(ItemState::Done).await, 0);
    assert_eq!(app.release_count().await, releases);
    assert_eq!(app.ref_problem_rows().await.len(), 0);

    assert_shown_disabled_to_admins(&app).await;
    assert_eq!(app.item_count().await, queued);
    drop(app);

    // Back in the config: enabled again, with its releases.
    let app = start_on(&installation, [widget()]).await;
    assert_eq!(
        project_names(&app.get_json("/api/v1/projects").await),
        ["widget"]
    );
    let versions = app.versions("widget").await;
    assert!(versions.contains(&"1.0.0".to_string()), "{versions:?}");
    assert_eq!(
        app.get("/release-history/widget/current").await.status(),
        200
    );
    assert_eq!(
        app.get_json("/packages.json").await["available-packages"],
        json!(["acme/widget"])
    );
    assert!(project_list_line(&app, "widget").contains("enabled"));
    assert_eq!(
        signed_push(&app, "widget", &repo.url(), "refs/heads/1.x").await,
        202
    );
}

/// A PHP package whose composer.json names `package`, tagged `tag`.
fn php_package(package: &str, tag: &str) -> GitRepo {
    let mut repo = GitRepo::new();
    let manifest = json!({ "name": package, "type": "library", "license": "MIT" });
    repo.write(
        "composer.json",
        serde_json::to_string_pretty(&manifest).unwrap().as_bytes(),
    );
    repo.write("src/Widget.php", format!("<?php // {tag}\n").as_bytes());
    repo.commit("A package");
    repo.git(&["tag", tag]);
    repo
}

/// The `dist` URLs of every version `/p2/{name}.json` (and `~dev.json`) serves.
async fn dist_urls(app: &TestApp, name: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for file in [format!("{name}.json"), format!("{name}~dev.json")] {
        let metadata = app.get_json(&format!("/p2/{file}")).await;
        for version in metadata["packages"][name].as_array().unwrap() {
            urls.push(version["dist"]["url"].as_str().unwrap().to_string());
        }
    }
    urls
}

/// Runs the real `composer install` in a new project requiring `package` at any version from
/// this baler only; returns the lock file.
fn composer_install(dir: &Path, base: &str, package: &str) -> Value {
    std::fs::create_dir_all(dir).unwrap();
    let manifest = json!({
        "name": "acme/site",
        "repositories": [{ "type": "composer", "url": base }, { "packagist.org": false }],
        "require": { package: "*" },
        "config": { "secure-http": false }
    });
    std::fs::write(
        dir.join("composer.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    composer(dir, &["install"]);
    serde_json::from_slice(&std::fs::read(dir.join("composer.lock")).unwrap()).unwrap()
}

/// The admin pages' word on `project`'s Composer name: its row on /admin/projects and the
/// sentence on its own page.
async fn composer_on_admin_pages(browser: &mut AdminBrowser, project: &str) -> (String, String) {
    let list = browser.get("/admin/projects").await;
    let row = list
        .rows("#projects")
        .into_iter()
        .find(|r| r.starts_with(&format!("{project} |")))
        .unwrap_or_else(|| panic!("/admin/projects lists no {project}: {}", list.body));
    let page = browser.get(&format!("/admin/projects/{project}")).await;
    let html = scraper::Html::parse_document(&page.body);
    let selector = scraper::Selector::parse("#composer-state").unwrap();
    let sentence = html
        .select(&selector)
        .next()
        .map(|p| p.text().collect::<String>())
        .unwrap_or_else(|| panic!("no #composer-state on /admin/projects/{project}"));
    (row, sentence)
}

async fn a_configured_composer_name_is_not_taken_by_another_composer_json(db: TestDb) {
    let widget_repo = php_package("acme/widget", "v1.0.0");
    let alpha_repo = php_package("acme/widget", "v9.9.9");
    let installation = Installation::new(&db).await;
    let app = start_on(
        &installation,
        [
            ProjectSpec::github("alpha", alpha_repo.url()),
            ProjectSpec::github("widget", widget_repo.url()).composer("acme/widget"),
        ],
    )
    .await;
    app.github_push("alpha", "refs/tags/v9.9.9", &alpha_repo.rev("v9.9.9"))
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &widget_repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    assert!(app.versions("alpha").await.contains(&"9.9.9".to_string()));

    assert_eq!(
        app.get_json("/packages.json").await["available-packages"],
        json!(["acme/widget"])
    );
    let urls = dist_urls(&app, "acme/widget").await;
    assert!(!urls.is_empty());
    for url in &urls {
        assert!(url.contains("/files/widget/"), "{urls:?}");
    }
    let tagged = app.get_json("/p2/acme/widget.json").await;
    let versions: Vec<&str> = tagged["packages"]["acme/widget"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0"]);
    // The public API names no package for alpha.
    let projects = app.get_json("/api/v1/projects").await;
    let composer_of = |name: &str| {
        projects
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["composer"]
            .clone()
    };
    assert_eq!(composer_of("alpha"), Value::Null);
    assert_eq!(composer_of("widget"), json!("acme/widget"));

    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let conflict = "composer.json names acme/widget, which belongs to project widget";
    let (row, sentence) = composer_on_admin_pages(&mut browser, "alpha").await;
    assert!(row.contains(conflict), "{row}");
    assert!(sentence.contains(conflict), "{sentence}");
    let (row, sentence) = composer_on_admin_pages(&mut browser, "widget").await;
    assert!(row.ends_with("acme/widget | published"), "{row}");
    assert!(sentence.contains("published"), "{sentence}");

    // Composer itself resolves the name to widget's release.
    let work = tempfile::tempdir().unwrap();
    let lock = composer_install(work.path(), &app.url, "acme/widget");
    let package = &lock["packages"][0];
    assert_eq!(package["version"], "1.0.0", "{lock}");
    assert!(
        package["dist"]["url"]
            .as_str()
            .unwrap()
            .contains("/files/widget/widget-1.0.0.zip"),
        "{lock}"
    );
}

async fn an_unconfigured_composer_name_belongs_to_who_published_it_first(db: TestDb) {
    let early_repo = php_package("acme/shared", "v1.0.0");
    let late_repo = php_package("acme/shared", "v2.0.0");
    // `late` comes first in the config, so it has the lower id: the owner is decided by who
    // published first, not by the order of the config.
    let both = || {
        [
            ProjectSpec::github("late", late_repo.url()),
            ProjectSpec::github("early", early_repo.url()),
        ]
    };
    let installation = Installation::new(&db).await;
    let app = start_on(&installation, both()).await;
    app.github_push("early", "refs/tags/v1.0.0", &early_repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    app.github_push("late", "refs/tags/v2.0.0", &late_repo.rev("v2.0.0"))
        .await;
    app.run_queue_until_idle().await;

    assert_eq!(
        app.get_json("/packages.json").await["available-packages"],
        json!(["acme/shared"])
    );
    let urls = dist_urls(&app, "acme/shared").await;
    assert!(!urls.is_empty());
    for url in &urls {
        assert!(url.contains("/files/early/"), "{urls:?}");
    }
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let (row, sentence) = composer_on_admin_pages(&mut browser, "late").await;
    let conflict = "composer.json names acme/shared, which belongs to project early";
    assert!(row.contains(conflict), "{row}");
    assert!(sentence.contains(conflict), "{sentence}");
    drop(browser);
    drop(app);

    // A disabled project owns nothing: the name passes to the other one.
    let app = start_on(
        &installation,
        [ProjectSpec::github("late", late_repo.url())],
    )
    .await;
    assert_eq!(
        app.get_json("/packages.json").await["available-packages"],
        json!(["acme/shared"])
    );
    let urls = dist_urls(&app, "acme/shared").await;
    assert!(!urls.is_empty());
    for url in &urls {
        assert!(url.contains("/files/late/"), "{urls:?}");
    }
    drop(app);

    // Back again, `early` owns it again: it published it first.
    let app = start_on(&installation, both()).await;
    for url in dist_urls(&app, "acme/shared").await {
        assert!(url.contains("/files/early/"), "{url}");
    }
}

/// A `baler worker` whose config lists fewer projects (a worker for some of them only, or one
/// configured with the database alone) takes no project off the web: only the config that
/// serves decides which projects exist.
async fn a_worker_with_fewer_projects_disables_none(db: TestDb) {
    let install = Installation::new(&db).await;
    let app = start_on(&install, [ProjectSpec::github("widget", "file:///nowhere")]).await;
    let worker_config = install.root().join("worker.toml");
    install.bare_config().write_to(&worker_config);
    let mut worker = BalerProcess::start(&["worker"], &worker_config);
    crate::support::wait_until(60, "the worker to start", || async {
        worker.log().contains("workers started")
    })
    .await;
    worker.kill();
    let listed = app.get_json("/api/v1/projects").await;
    assert_eq!(project_names(&listed), ["widget"], "{}", worker.log());
    assert_eq!(app.disabled_project_count().await, 0);
}

on_both_databases!(
    a_worker_with_fewer_projects_disables_none,
    a_removed_project_leaves_and_comes_back_with_its_history,
    a_configured_composer_name_is_not_taken_by_another_composer_json,
    an_unconfigured_composer_name_belongs_to_who_published_it_first,
);
