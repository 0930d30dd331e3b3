//! Publishing, checked with the clients that read it: the real `composer` installs packages
//! from a running baler; the Drupal update feed is checked as Drupal core's update module
//! validates it; downloads answer Range, HEAD and conditional requests; pages parse.

use std::path::Path;

use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::composer::composer;
use crate::support::git::GitRepo;
use crate::support::tree::assert_same_tree;
use crate::support::{ProjectSpec, TestApp, TestDb};

/// A PHP library with a composer.json, a `1.x` line (tags v1.0.0 and v1.1.0) and a `2.x` branch
/// that has moved on.
fn php_library() -> GitRepo {
    let mut repo = GitRepo::new();
    let manifest = json!({
        "name": "acme/widget",
        "description": "A widget",
        "type": "library",
        "license": "MIT",
        "autoload": { "psr-4": { "Acme\\Widget\\": "src/" } }
    });
    repo.write(
        "composer.json",
        serde_json::to_string_pretty(&manifest).unwrap().as_bytes(),
    );
    repo.write(
        "src/Widget.php",
        b"<?php\nnamespace Acme\\Widget;\nclass Widget { const VERSION = '1.0.0'; }\n",
    );
    repo.commit("Widget 1.0.0");
    repo.git(&["tag", "v1.0.0"]);
    repo.write(
        "src/Widget.php",
        b"<?php\nnamespace Acme\\Widget;\nclass Widget { const VERSION = '1.1.0'; }\n",
    );
    repo.commit("Widget 1.1.0");
    repo.git(&["tag", "v1.1.0"]);
    repo.git(&["checkout", "-q", "-b", "2.x"]);
    repo.write(
        "src/Widget.php",
        b"<?php\nnamespace Acme\\Widget;\nclass Widget { const VERSION = '2.x'; }\n",
    );
    repo.commit("Start 2.x");
    repo.git(&["checkout", "-q", "main"]);
    repo
}

fn consumer(dir: &Path, base: &str, require: Value, stability: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let manifest = json!({
        "name": "acme/site",
        "repositories": [
            { "type": "composer", "url": base },
            { "packagist.org": false }
        ],
        "require": require,
        "minimum-stability": stability,
        "config": { "secure-http": false }
    });
    std::fs::write(
        dir.join("composer.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

async fn composer_installs_tagged_and_dev_releases(db: TestDb) {
    let repo = php_library();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.1.0", &repo.rev("v1.1.0"))
        .await;
    app.github_push("widget", "refs/heads/2.x", &repo.rev("2.x"))
        .await;
    app.run_queue_until_idle().await;

    // The package name comes from the repository's composer.json.
    let root = app.get_json("/packages.json").await;
    assert_eq!(root["available-packages"], json!(["acme/widget"]));
    let tagged = app.get_json("/p2/acme/widget.json").await;
    let versions: Vec<&str> = tagged["packages"]["acme/widget"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    let entry = &tagged["packages"]["acme/widget"][0];
    assert_eq!(entry["dist"]["reference"], repo.rev("v1.1.0").as_str());
    assert_eq!(entry["autoload"]["psr-4"]["Acme\\Widget\\"], "src/");
    let zip = app.release("widget", "1.1.0").await["files"][1].clone();
    assert_eq!(entry["dist"]["shasum"], zip["sha1"]);
    let dev = app.get_json("/p2/acme/widget~dev.json").await;
    assert_eq!(dev["packages"]["acme/widget"][0]["version"], "2.x-dev");

    let work = tempfile::tempdir().unwrap();
    let stable = work.path().join("stable");
    consumer(
        &stable,
        &app.url,
        json!({ "acme/widget": "^1.0" }),
        "stable",
    );
    composer(&stable, &["install"]);
    let expected = work.path().join("expected-1.1.0");
    repo.archive_into(&repo.rev("v1.1.0"), "widget", &expected);
    assert_same_tree(&expected.join("widget"), &stable.join("vendor/acme/widget"));
    let lock: Value =
        serde_json::from_slice(&std::fs::read(stable.join("composer.lock")).unwrap()).unwrap();
    assert_eq!(lock["packages"][0]["version"], "1.1.0");

    // Only the 2.x branch satisfies this constraint: the dev release is installed.
    let edge = work.path().join("edge");
    consumer(&edge, &app.url, json!({ "acme/widget": "^2.0@dev" }), "dev");
    composer(&edge, &["install"]);
    let expected = work.path().join("expected-2.x");
    repo.archive_into(&repo.rev("2.x"), "widget", &expected);
    assert_same_tree(&expected.join("widget"), &edge.join("vendor/acme/widget"));

    // Unknown packages are 404; Last-Modified lets clients revalidate.
    assert_eq!(app.get("/p2/acme/nothing.json").await.status(), 404);
    let first = app.get("/p2/acme/widget.json").await;
    let stamp = first.headers()["last-modified"].clone();
    let again = app
        .client
        .get(format!("{}/p2/acme/widget.json", app.url))
        .header("if-modified-since", stamp)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

/// A Drupal module with two major lines on Drupal 8 (8.x-1.x, 8.x-2.x), a 7.x line, and a dev
/// branch.
fn drupal_module() -> GitRepo {
    let mut repo = GitRepo::new();
    repo.write(
        "example.info.yml",
        b"name: Example\ntype: module\ncore_version_requirement: ^8 || ^9\n",
    );
    repo.write("example.module", b"<?php\n// 1.0\n");
    repo.commit("Example 1.0");
    repo.git(&["tag", "8.x-1.0"]);
    repo.write("example.module", b"<?php\n// 1.1\n");
    repo.commit("Fix a bug");
    repo.git(&["tag", "8.x-1.1"]);
    repo.git(&["checkout", "-q", "-b", "8.x-2.x"]);
    repo.write("example.module", b"<?php\n// 2.0\n");
    repo.commit("Rewrite for 2.x");
    repo.git(&["tag", "8.x-2.0-beta1"]);
    repo.write("example.module", b"<?php\n// 2.0 dev\n");
    repo.commit("More 2.x work");
    repo.git(&["checkout", "-q", "--orphan", "7.x-1.x"]);
    repo.git(&["rm", "-rq", "--cached", "."]);
    for file in ["example.info.yml", "example.module"] {
        std::fs::remove_file(repo.dir.join(file)).unwrap();
    }
    repo.write(
        "example.info",
        b"name = Example\ncore = 7.x\nversion = \"7.x-1.x-dev\"\n",
    );
    repo.commit("Example for Drupal 7");
    repo.git(&["tag", "7.x-1.0"]);
    repo.git(&["checkout", "-q", "main"]);
    repo
}

fn text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.tag_name().name() == name)
        .and_then(|c| c.text())
}

/// Long on purpose: one feed, checked field by field as Drupal core's update module reads it.
async fn drupal_update_feed_is_what_the_update_module_reads(db: TestDb) {
    let repo = drupal_module();
    let app = TestApp::builder()
        .database(&db)
        .project(
            ProjectSpec::github("example", repo.url())
                .drupal_layout()
                .branches(&["*.x"]),
        )
        .start()
        .await;
    app.github_push("example", "refs/heads/8.x-2.x", &repo.rev("8.x-2.x"))
        .await;
    app.run_queue_until_idle().await;

    let response = app.get("/release-history/example/current").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let xml = response.text().await.unwrap();
    let port = app.url.rsplit(':').next().unwrap().to_string();
    insta::with_settings!({filters => vec![
        (port.as_str(), "[port]"),
        (r"<date>\d+</date>", "<date>[date]</date>"),
        (r"<filedate>\d+</filedate>", "<filedate>[date]</filedate>"),
    ]}, {
        insta::assert_snapshot!("drupal_current_feed", xml);
    });

    // What core's parser and ProjectRelease::validateReleaseData require.
    let doc = roxmltree::Document::parse(&xml).expect("the feed is XML");
    let project = doc.root_element();
    assert_eq!(project.tag_name().name(), "project");
    assert_eq!(text(project, "short_name"), Some("example"));
    assert_eq!(text(project, "type"), Some("project_module"));
    assert_eq!(text(project, "project_status"), Some("published"));
    assert_eq!(text(project, "supported_branches"), Some("8.x-1.,8.x-2."));
    let releases: Vec<roxmltree::Node> = project
        .descendants()
        .filter(|n| n.has_tag_name("release"))
        .collect();
    let versions: Vec<&str> = releases
        .iter()
        .map(|r| text(*r, "version").unwrap())
        .collect();
    // Newest first by major, then patch; the dev snapshot last; the 7.x line is not here.
    assert_eq!(
        versions,
        ["8.x-2.0-beta1", "8.x-1.1", "8.x-1.0", "8.x-2.x-dev"]
    );
    for release in &releases {
        assert!(
            !text(*release, "release_link")
                .unwrap_or_default()
                .is_empty()
        );
        assert!(matches!(
            text(*release, "status"),
            Some("published" | "unpublished")
        ));
        let date = text(*release, "date").expect("every release has a date");
        assert!(date.parse::<u64>().is_ok(), "numeric date {date}");
        // mdhash and filesize are those of the file served at download_link.
        let link = text(*release, "download_link").unwrap();
        let (_, bytes) = app.download(link).await;
        assert_eq!(
            text(*release, "mdhash").unwrap(),
            hex::encode(Md5::digest(&bytes))
        );
        assert_eq!(text(*release, "filesize").unwrap(), bytes.len().to_string());
    }
    // The dev release's date is the datestamp its packaged .info.yml carries, so a site on the
    // snapshot compares like with like.
    let dev_date = text(releases[3], "date").unwrap();
    let (_, tarball) = app
        .download(text(releases[3], "download_link").unwrap())
        .await;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tarball[..]));
    let info = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().ends_with("example.info.yml"))
        .map(|mut e| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            text
        })
        .expect("the archive has the .info.yml");
    assert!(info.contains(&format!("datestamp: {dev_date}")), "{info}");

    // The legacy feed for Drupal 7 holds its own line, with the major-version fields.
    let legacy = app
        .get("/release-history/example/7.x")
        .await
        .text()
        .await
        .unwrap();
    let doc = roxmltree::Document::parse(&legacy).unwrap();
    let project = doc.root_element();
    assert_eq!(text(project, "api_version"), Some("7.x"));
    assert_eq!(text(project, "recommended_major"), Some("1"));
    assert_eq!(text(project, "supported_branches"), Some("7.x-1."));
    let legacy_versions: Vec<&str> = project
        .descendants()
        .filter(|n| n.has_tag_name("version"))
        .map(|n| n.text().unwrap())
        .collect();
    assert_eq!(legacy_versions, ["7.x-1.0"]);

    // A deleted tag leaves the feed once the worker has seen it gone from the repository.
    repo.git(&["tag", "-d", "8.x-1.1"]);
    let deletion =
        crate::support::github_deletion(&repo.url(), "refs/tags/8.x-1.1", "deletion-8.x-1.1");
    assert_eq!(app.deliver("example", deletion).await.status(), 202);
    app.run_queue_until_idle().await;
    let after = app
        .get("/release-history/example/current")
        .await
        .text()
        .await
        .unwrap();
    assert!(!after.contains("<version>8.x-1.1</version>"));

    // Unknown projects get drupal.org's error.
    let unknown = app.get("/release-history/nothing/current").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains(
        "<error>No release history was found for the requested project (nothing).</error>"
    ));
}

/// Long on purpose: one release file under every kind of request.
async fn downloads_answer_range_head_and_conditional_requests(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;
    let zip = &release["files"][1];
    let url = zip["url"].as_str().unwrap();
    let sha256 = zip["sha256"].as_str().unwrap();
    let (headers, whole) = app.download(url).await;
    assert_eq!(headers["etag"], format!("\"{sha256}\"").as_str());
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"widget-1.0.0.zip\""
    );
    assert!(headers.contains_key("last-modified"));
    assert_eq!(headers["accept-ranges"], "bytes");

    let get = |extra: Vec<(&'static str, String)>| {
        let mut request = app.client.get(url);
        for (name, value) in extra {
            request = request.header(name, value);
        }
        request.send()
    };
    let part = get(vec![("range", "bytes=10-19".into())]).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", whole.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), &whole[10..20]);
    let beyond = get(vec![("range", format!("bytes={}-", whole.len() + 10))])
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);

    let cached = get(vec![("if-none-match", format!("\"{sha256}\""))])
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());
    let other = get(vec![("if-none-match", "\"something-else\"".into())])
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // If-Range with another version's tag: the whole file, not a piece to splice on.
    let stale = get(vec![
        ("range", "bytes=0-9".into()),
        ("if-range", "\"old\"".into()),
    ])
    .await
    .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), whole.len());
    let fresh = get(vec![
        ("range", "bytes=0-9".into()),
        ("if-range", format!("\"{sha256}\"")),
    ])
    .await
    .unwrap();
    assert_eq!(fresh.status(), 206);

    let head = app.client.head(url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        whole.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    // Checksum files, in `sha256sum -c` format.
    let single = app.get("/files/widget/widget-1.0.0.zip.sha256").await;
    assert_eq!(
        single.text().await.unwrap(),
        format!("{sha256}  widget-1.0.0.zip\n")
    );
    let sums = app
        .get("/projects/widget/releases/1.0.0/SHA256SUMS")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(sums.lines().count(), 2);
    assert!(sums.contains(&format!("{sha256}  widget-1.0.0.zip")));

    // Path tricks never reach a file outside the store, nor any file not recorded.
    let tricks = [
        "/files/widget/..%2F..%2Fbaler.db",
        "/files/widget/%2E%2E%2Fbaler.db",
        "/files/widget/..",
        "/files/..%2Fwidget/widget-1.0.0.zip",
        "/files/widget/%2Fetc%2Fpasswd",
        "/files/widget/widget-1.0.0.zip%00",
        "/files/widget/.building-widget-1.0.0.zip",
        "/files/widget/widget-9.9.9.zip",
        "/files/widget/widget-1.0.0.zip/",
        "/files/nobody/widget-1.0.0.zip",
    ];
    for trick in tricks {
        let status = app.get(trick).await.status().as_u16();
        assert!(status == 400 || status == 404, "{trick} answered {status}");
    }
}

/// Long on purpose: one set of releases on every page and feed that shows them.
async fn pages_and_feeds_show_every_release_detail(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.github_push("widget", "refs/tags/1.1.0", &repo.rev("1.1.0"))
        .await;
    app.github_push("widget", "refs/heads/1.x", &repo.rev("1.x"))
        .await;
    app.run_queue_until_idle().await;

    let page = app
        .get("/projects/widget/releases/1.1.0")
        .await
        .text()
        .await
        .unwrap();
    let html = scraper::Html::parse_document(&page);
    assert!(html.errors.is_empty(), "HTML errors: {:?}", html.errors);
    let port = app.url.rsplit(':').next().unwrap().to_string();
    insta::with_settings!({filters => vec![
        (port.as_str(), "[port]"),
        (r"\d+ ms", "[n] ms"),
        (r"\d+ bytes received", "[n] bytes received"),
        (r"/tmp/[^ \n]+", "[repo]"),
    ]}, {
        insta::assert_snapshot!("release_page", page);
    });
    let release = app.release("widget", "1.1.0").await;
    for file in release["files"].as_array().unwrap() {
        for sum in ["sha256", "sha1", "md5"] {
            assert!(page.contains(file[sum].as_str().unwrap()), "{sum} shown");
        }
    }
    // Notes: the commits since the previous release of the line (1.0.0).
    let notes: Vec<String> = html
        .select(&scraper::Selector::parse("ul.notes li").unwrap())
        .map(|li| li.text().collect())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("Second commit"));
    assert_eq!(release["notes"]["since"], "1.0.0");
    let verify: String = html
        .select(&scraper::Selector::parse("#verify").unwrap())
        .flat_map(|e| e.text())
        .collect();
    assert!(verify.contains("SHA256SUMS | sha256sum -c -"));

    let project = app.get("/projects/widget").await.text().await.unwrap();
    let html = scraper::Html::parse_document(&project);
    assert!(html.errors.is_empty(), "HTML errors: {:?}", html.errors);
    let headings: Vec<String> = html
        .select(&scraper::Selector::parse("h2").unwrap())
        .map(|h| h.text().collect())
        .collect();
    assert_eq!(
        headings,
        [
            "Latest of each line",
            "Development snapshots",
            "All releases",
            "Downloads"
        ]
    );
    let detail = app.get_json("/api/v1/projects/widget").await;
    let order: Vec<&str> = detail["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["1.1.0", "1.0.0", "1.x-dev"]);
    let one = app
        .get_json("/api/v1/projects/widget/releases/1.x-dev")
        .await;
    assert!(one["build_log"].as_str().unwrap().contains("packaged in"));
    let status = app.get_json("/api/v1/status").await;
    assert_eq!(status["pending"], 0);

    for path in ["/projects/widget/releases.atom", "/releases.atom"] {
        let atom = app.get(path).await.text().await.unwrap();
        let doc = roxmltree::Document::parse(&atom).expect("Atom is XML");
        let entries: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("entry"))
            .map(|e| {
                e.children()
                    .find(|c| c.has_tag_name("title"))
                    .and_then(|t| t.text())
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(entries.len(), 3, "{path}: {entries:?}");
        assert!(entries.contains(&"widget 1.1.0".to_string()));
    }
}

/// The releases list pages as GitHub's API does. The releases are recorded straight into the
/// database (their archives play no part in the list), eleven of them, one unpublished.
async fn the_releases_list_pages_with_link_headers(db: TestDb) {
    use baler::releases::set_status_on;

    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github(
            "widget",
            "https://example.org/widget.git",
        ))
        .start()
        .await;
    let project_id = app.project_id("widget").await;
    let tags: Vec<String> = (0..11).map(|minor| format!("1.{minor}.0")).collect();
    record_releases(&app, project_id, &tags, &[]).await;
    set_status_on(&app.db, project_id, "1.5.0", false)
        .await
        .unwrap();
    baler::web::documents::refresh(&app.db, &app.store())
        .await
        .unwrap();
    let path = "/api/v1/projects/widget/releases";
    let base = format!("{}{path}", app.url);
    let versions = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_str().unwrap().to_string())
            .collect()
    };

    // No parameters: the whole list (it is under 100), newest first, and no Link header.
    let answer = app.get(path).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("link").is_none());
    let all = versions(&answer.json().await.unwrap());
    assert_eq!(all.len(), 10);
    assert_eq!(all[0], "1.10.0");
    assert!(!all.contains(&"1.5.0".to_string()));

    let answer = app.get(&format!("{path}?per_page=4&page=2")).await;
    assert_eq!(answer.status(), 200);
    let link = answer.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        format!(
            "<{base}?page=1&per_page=4>; rel=\"prev\", <{base}?page=3&per_page=4>; rel=\"next\", \
             <{base}?page=3&per_page=4>; rel=\"last\", <{base}?page=1&per_page=4>; rel=\"first\""
        )
    );
    assert_eq!(versions(&answer.json().await.unwrap()), all[4..8]);

    // Following `next` to the end gives every release once, in order.
    let mut seen = Vec::new();
    let mut next = Some(format!("{base}?per_page=3"));
    while let Some(url) = next {
        let answer = app.client.get(&url).send().await.unwrap();
        next = answer.headers().get("link").and_then(|link| {
            link.to_str().unwrap().split(", ").find_map(|rel| {
                rel.strip_suffix("; rel=\"next\"")
                    .map(|url| url.trim_matches(['<', '>']).to_string())
            })
        });
        seen.extend(versions(&answer.json().await.unwrap()));
    }
    assert_eq!(seen, all);

    let answer = app.get(&format!("{path}?page=0")).await;
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body.to_string()
            .contains("page must be a whole number of at least 1"),
        "{body}"
    );
}

/// Records tag and dev releases straight into the database, each with a zip row but no file
/// on disk: for tests of listings and documents. Commit times follow the order given.
async fn record_releases(app: &TestApp, project_id: i64, tags: &[String], branches: &[&str]) {
    use baler::package::ReleaseVersion;
    use baler::releases::{NewRelease, ReleaseNotes, record_on};

    let versions = tags
        .iter()
        .map(|tag| (ReleaseVersion::from_tag(tag).unwrap(), tag.as_str()))
        .chain(
            branches
                .iter()
                .map(|branch| (ReleaseVersion::from_branch(branch).unwrap(), *branch)),
        );
    for (n, (version, ref_name)) in versions.enumerate() {
        record_on(
            &app.db,
            NewRelease {
                project_id,
                version: &version,
                ref_name,
                commit: &format!("{n:040}"),
                commit_time: 1_700_000_000 + n as i64,
                build_log: "",
                composer_json: None,
                notes: &ReleaseNotes::default(),
                item: None,
                sums_minisig: None,
                provenance: None,
                signing_key: None,
                files: vec![baler::releases::NewFile {
                    format: "zip",
                    name: format!("p{project_id}-{}.zip", version.version),
                    checksums: baler::package::Checksums {
                        size: 1,
                        sha256: format!("{n:064}"),
                        sha1: format!("{n:040}"),
                        md5: format!("{n:032}"),
                    },
                    minisig: None,
                }],
            },
        )
        .await
        .unwrap();
    }
    // As the worker does after recording: the documents readers fetch follow the rows.
    baler::web::documents::refresh(&app.db, &app.store())
        .await
        .unwrap();
}

/// The project page stays small: the newest release of each line, the dev snapshots, and 50
/// releases of the history a page.
async fn the_project_page_shows_lines_snapshots_and_a_page_of_history(db: TestDb) {
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github(
            "widget",
            "https://example.org/widget.git",
        ))
        .start()
        .await;
    let project_id = app.project_id("widget").await;
    let mut tags: Vec<String> = (0..57).map(|minor| format!("1.{minor}.0")).collect();
    tags.extend([
        "2.0.0".to_string(),
        "2.1.0".to_string(),
        "nightly".to_string(),
    ]);
    record_releases(&app, project_id, &tags, &["main"]).await;
    let link = |version: &str| format!("href=\"/projects/widget/releases/{version}\"");
    let links = |html: &str| html.matches("href=\"/projects/widget/releases/").count();
    let section = |body: &str, heading: &str| -> String {
        let start = body
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} in {body}"));
        let rest = &body[start + heading.len()..];
        rest[..rest.find("<h2").unwrap_or(rest.len())].to_string()
    };

    let first = app.get("/projects/widget").await.text().await.unwrap();
    let latest = section(&first, "Latest of each line</h2>");
    assert!(latest.contains(&link("2.1.0")) && latest.contains(&link("1.56.0")));
    assert_eq!(links(&latest), 2, "{latest}");
    let snapshots = section(&first, "Development snapshots</h2>");
    assert!(snapshots.contains(&link("main-dev")), "{snapshots}");
    let history = section(&first, "All releases</h2>");
    assert_eq!(links(&history), 50);
    assert!(history.contains(&link("2.1.0")) && history.contains(&link("1.9.0")));
    assert!(!history.contains(&link("1.8.0")));
    assert!(first.contains("Page 1 of 2") && first.contains("href=\"?page=2#history\""));

    let second = app
        .get("/projects/widget?page=2")
        .await
        .text()
        .await
        .unwrap();
    let history = section(&second, "All releases</h2>");
    assert_eq!(links(&history), 10);
    assert!(history.contains(&link("1.0.0")) && history.contains(&link("nightly")));
    assert!(!history.contains(&link("1.9.0")));
    assert!(second.contains("Page 2 of 2") && second.contains("href=\"?page=1#history\""));

    assert_eq!(app.get("/projects/widget?page=0").await.status(), 400);
}

/// Every publish-time document answers with its stored `ETag` and `Last-Modified`, 304 for a
/// client's current copy, and a cache policy a CDN may hold; a change of releases changes the
/// documents it touches at once (the next request sees it), and leaves the others' validators.
async fn documents_are_stored_with_validators_and_follow_each_change(db: TestDb) {
    let app = TestApp::builder()
        .database(&db)
        .project(
            ProjectSpec::github("widget", "https://example.org/widget.git").composer("acme/widget"),
        )
        .project(ProjectSpec::github(
            "gadget",
            "https://example.org/gadget.git",
        ))
        .start()
        .await;
    let widget = app.project_id("widget").await;
    record_releases(&app, widget, &["1.0.0".to_string()], &["main"]).await;
    let documents = [
        "/packages.json",
        "/p2/acme/widget.json",
        "/p2/acme/widget~dev.json",
        "/release-history/widget/current",
        "/releases.atom",
        "/projects/widget/releases.atom",
        "/api/v1/projects",
        "/api/v1/projects/widget",
        "/api/v1/projects/widget/releases",
        "/projects/widget",
        "/projects/gadget",
    ];
    let header = |answer: &reqwest::Response, name: &str| {
        answer
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{} has no {name}", answer.url()))
            .to_str()
            .unwrap()
            .to_string()
    };
    let mut validators = std::collections::HashMap::new();
    for path in documents {
        let answer = app.get(path).await;
        assert_eq!(answer.status(), 200, "{path}");
        let etag = header(&answer, "etag");
        let modified = header(&answer, "last-modified");
        assert_eq!(
            header(&answer, "cache-control"),
            "public, no-cache",
            "{path}"
        );
        let body = answer.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path}");

        let again = |name: &'static str, value: String| {
            app.client
                .get(format!("{}{path}", app.url))
                .header(name, value)
                .send()
        };
        let answer = again("if-none-match", etag.clone()).await.unwrap();
        assert_eq!(answer.status(), 304, "{path} If-None-Match");
        assert_eq!(header(&answer, "etag"), etag);
        assert!(answer.bytes().await.unwrap().is_empty());
        let answer = again("if-modified-since", modified.clone()).await.unwrap();
        assert_eq!(answer.status(), 304, "{path} If-Modified-Since");
        let answer = again("if-none-match", "\"other\"".into()).await.unwrap();
        assert_eq!(answer.status(), 200, "{path} another copy");
        assert_eq!(answer.bytes().await.unwrap(), body, "{path}");
        validators.insert(path, (etag, modified));
    }
    let answer = app.get("/p2/acme/widget.json").await;
    assert_eq!(header(&answer, "content-type"), "application/json");
    let p2: Value = answer.json().await.unwrap();
    assert_eq!(p2["packages"]["acme/widget"][0]["version"], "1.0.0");
    assert_eq!(
        header(
            &app.get("/release-history/widget/current").await,
            "content-type"
        ),
        "application/xml; charset=utf-8"
    );
    assert_eq!(app.get("/p2/acme/nothing.json").await.status(), 404);
    assert_eq!(app.get("/projects/widget?page=2").await.status(), 404);
    assert_eq!(app.get("/projects/nobody").await.status(), 404);

    // A new release: the next request sees it, under a new ETag, in every document that
    // lists it; the others (the other project's page, the package list, the dev metadata)
    // keep their validators.
    record_releases(&app, widget, &["1.1.0".to_string()], &[]).await;
    let unchanged = [
        "/projects/gadget",
        "/packages.json",
        "/p2/acme/widget~dev.json",
    ];
    for path in documents {
        let (etag, _) = &validators[path];
        let answer = app
            .client
            .get(format!("{}{path}", app.url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        if unchanged.contains(&path) {
            assert_eq!(answer.status(), 304, "{path} did not change");
            continue;
        }
        assert_eq!(answer.status(), 200, "{path} changed");
        assert_ne!(&header(&answer, "etag"), etag, "{path}");
        let body = answer.text().await.unwrap();
        assert!(
            body.contains("1.1.0"),
            "{path} shows the new release: {body}"
        );
    }
}

on_both_databases!(
    composer_installs_tagged_and_dev_releases,
    drupal_update_feed_is_what_the_update_module_reads,
    downloads_answer_range_head_and_conditional_requests,
    pages_and_feeds_show_every_release_detail,
    the_releases_list_pages_with_link_headers,
    the_project_page_shows_lines_snapshots_and_a_page_of_history,
    documents_are_stored_with_validators_and_follow_each_change,
);
