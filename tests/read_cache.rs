//! The web server keeps copies of documents and of what a download needs to know of its file;
//! they follow releases made by a separate `baler worker` process (told by the version row a
//! server polls, and on PostgreSQL by `NOTIFY`), and misses are never kept. Small archives
//! are answered from memory exactly as from disk.

use baler::startup::Role;

use crate::on_both_databases;
use crate::support::config::HttpSettings;
use crate::support::git::GitRepo;
use crate::support::{
    BalerProcess, Installation, ItemState, ProjectSpec, TestApp, TestDb, wait_until,
};

async fn copies_follow_a_worker_in_another_process(db: TestDb) {
    let mut repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .project(ProjectSpec::github("widget", repo.url()).composer("acme/widget"))
        .start()
        .await;
    let _worker = BalerProcess::start(&["worker"], &app.config_path);

    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    wait_until(60, "the worker to release 1.0.0", || async {
        app.items_in(&[ItemState::Done]).await == 1
    })
    .await;
    let versions = |p2: serde_json::Value| -> Vec<String> {
        p2["packages"]["acme/widget"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap().to_string())
            .collect()
    };
    let before = versions(app.get_json("/p2/acme/widget.json").await);
    assert!(before.contains(&"1.0.0".to_string()), "{before:?}");
    // Read twice: the second answer is this process's copy.
    for _ in 0..2 {
        assert_eq!(versions(app.get_json("/p2/acme/widget.json").await), before);
        assert_eq!(
            app.get("/files/widget/widget-1.0.0.zip").await.status(),
            200
        );
        assert_eq!(
            app.get("/files/widget/widget-3.0.0.zip").await.status(),
            404
        );
    }

    repo.write("NEWS", b"3.0.0\n");
    let commit = repo.commit("Release 3.0.0");
    repo.git(&["tag", "v3.0.0"]);
    app.github_push("widget", "refs/tags/v3.0.0", &commit).await;
    // Files are looked up anew while unknown (a miss is never kept), so this is the commit.
    wait_until(60, "the worker to release 3.0.0", || async {
        app.get("/files/widget/widget-3.0.0.zip").await.status() == 200
    })
    .await;
    // The worker's commit is announced: within a few polls the copy is gone.
    wait_until(5, "the web server's p2 to list 3.0.0", || async {
        versions(app.get_json("/p2/acme/widget.json").await).first() == Some(&"3.0.0".into())
    })
    .await;
    let page = app.get("/projects/widget").await.text().await.unwrap();
    assert!(
        page.contains("widget-3.0.0.zip"),
        "the project page follows too"
    );
}

on_both_databases!(copies_follow_a_worker_in_another_process);

/// Each request the equivalence test sends: a name and its extra headers (`{lm}` is the
/// file's `Last-Modified`, `{etag}` its `ETag`).
const REQUESTS: &[(&str, &[(&str, &str)])] = &[
    ("GET", &[]),
    ("HEAD", &[]),
    ("GET", &[("range", "bytes=10-19")]),
    ("GET", &[("range", "bytes=-5")]),
    ("GET", &[("range", "bytes=0-")]),
    ("HEAD", &[("range", "bytes=0-9")]),
    ("GET", &[("range", "bytes=0-1,5-6")]),
    ("GET", &[("range", "bytes=999999-")]),
    ("GET", &[("range", "lines=1-2")]),
    ("GET", &[("if-modified-since", "{lm}")]),
    (
        "GET",
        &[("if-modified-since", "Thu, 01 Jan 1998 00:00:00 GMT")],
    ),
    (
        "GET",
        &[("if-unmodified-since", "Thu, 01 Jan 1998 00:00:00 GMT")],
    ),
    ("GET", &[("if-unmodified-since", "{lm}")]),
    ("GET", &[("if-none-match", "{etag}")]),
    ("GET", &[("range", "bytes=0-9"), ("if-range", "{etag}")]),
    ("GET", &[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
];

/// Status, headers (but `date`) and body of each of [`REQUESTS`].
async fn answers(app: &TestApp, path: &str) -> Vec<(String, Vec<(String, String)>, Vec<u8>)> {
    let first = app.get(path).await;
    let lm = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let mut found = Vec::new();
    for (method, extra) in REQUESTS {
        let url = format!("{}{path}", app.url);
        let mut request = match *method {
            "HEAD" => app.client.head(&url),
            _ => app.client.get(&url),
        };
        for (name, value) in *extra {
            request = request.header(*name, value.replace("{lm}", &lm).replace("{etag}", &etag));
        }
        let response = request.send().await.unwrap();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        let status = format!("{method} {extra:?} → {}", response.status());
        found.push((status, headers, response.bytes().await.unwrap().to_vec()));
    }
    found
}

/// Small archives are answered from memory (`[http] files_in_memory_mib`), and exactly as
/// tower-http's `ServeFile` answers from disk: every status, header and byte.
async fn small_files_from_memory_answer_as_from_disk(db: TestDb) {
    let repo = GitRepo::standard();
    let installation = Installation::new(&db).await;
    let start = |mib: u64| {
        TestApp::builder()
            .installation(&installation)
            .project(ProjectSpec::github("widget", repo.url()))
            .http(HttpSettings {
                files_in_memory_mib: Some(mib),
                ..HttpSettings::default()
            })
            .start()
    };
    let app = start(64).await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let path = "/files/widget/widget-1.0.0.zip";
    let from_memory = answers(&app, path).await;
    // Proof that it was memory: the file moved away on disk, the answer is the same.
    let file = app.data_dir.join("files/widget/widget-1.0.0.zip");
    let aside = file.with_extension("aside");
    std::fs::rename(&file, &aside).unwrap();
    let (_, whole) = app.download(&format!("{}{path}", app.url)).await;
    assert_eq!(whole, from_memory[0].2, "served from memory");
    std::fs::rename(&aside, &file).unwrap();
    app.stop().await;

    let app = start(0).await;
    let from_disk = answers(&app, path).await;
    std::fs::rename(&file, &aside).unwrap();
    assert_eq!(
        app.get(path).await.status(),
        404,
        "with no budget, read from disk"
    );
    std::fs::rename(&aside, &file).unwrap();

    let statuses: Vec<&str> = from_disk.iter().map(|(s, _, _)| s.as_str()).collect();
    for (memory, disk) in from_memory.iter().zip(&from_disk) {
        assert_eq!(memory, disk, "{statuses:#?}");
    }
    // The table covers what it claims: each kind of answer.
    for code in ["200", "206", "304", "412", "416"] {
        assert!(statuses.iter().any(|s| s.contains(code)), "{statuses:#?}");
    }
}

on_both_databases!(small_files_from_memory_answer_as_from_disk);
