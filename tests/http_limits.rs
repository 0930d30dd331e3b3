//! Clients that stall, flood or hold connections, on real sockets; security headers, also as
//! Chromium sees them; weak admin tokens.
//!
//! Time limits here are 1–2 s and each wait for them allows 5 s or more, so a slow machine
//! makes the tests slower, not flaky.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin::{TOKEN, admin_app};
use crate::support::browser::AdminBrowser;
use crate::support::chromium::Chromium;
use crate::support::{ProjectSpec, TestApp, TestDb};

/// An app with project `widget` (whose pushes queue and are never built: the queue is paused)
/// and `http` as its `[http]` table.
async fn app_with(http: &str) -> TestApp {
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", "file:///nowhere".into())],
        &format!("admin_token = \"{TOKEN}\"\n[http]\n{http}\n"),
    )
    .await;
    app.queue.set_paused(true).await.unwrap();
    app
}

async fn connect(app: &TestApp) -> TcpStream {
    let stream = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    // Each write leaves at once: a byte every 300 ms must arrive every 300 ms.
    stream.set_nodelay(true).unwrap();
    stream
}

/// A webhook's head declaring `length` body bytes. Not signed: no test here lets a body
/// finish, and the server reads a body before it checks the signature.
fn webhook_head(length: usize) -> String {
    format!(
        "POST /hooks/widget HTTP/1.1\r\nHost: baler\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: {}\r\n\
         X-Hub-Signature-256: sha256=00\r\nContent-Length: {length}\r\n\r\n",
        uuid::Uuid::new_v4()
    )
}

/// Reads until the server closes the connection (or resets it), failing if it is still open
/// after `seconds`; returns whatever was answered before.
async fn closed_within(stream: &mut TcpStream, seconds: u64) -> Vec<u8> {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(seconds), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open after {seconds} s; answered so far: {:?}",
        String::from_utf8_lossy(&answer)
    );
    answer
}

/// Reads an answer's head, failing if none comes within `seconds`.
async fn head_within(stream: &mut TcpStream, seconds: u64) -> String {
    let mut head = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(seconds), async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within {seconds} s");
    String::from_utf8_lossy(&head).to_lowercase()
}

/// The status of an HTTP/1.1 answer (`None` for no answer).
fn status(answer: &[u8]) -> Option<u16> {
    std::str::from_utf8(answer.get(..12)?)
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_closed_while_others_are_served() {
    let app = app_with("body_idle_timeout_seconds = 1").await;
    // Bodies of 8 MiB that stop after 64 KiB (four fit the default 64 MiB buffer together).
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        stream
            .write_all(webhook_head(8 << 20).as_bytes())
            .await
            .unwrap();
        stream.write_all(&[b' '; 64 * 1024]).await.unwrap();
        stalled.push(stream);
    }
    let started = Instant::now();

    // Meanwhile everyone else is answered at once.
    let health = tokio::time::timeout(Duration::from_secs(2), app.get("/healthz"))
        .await
        .expect("/healthz is answered while bodies stall");
    assert_eq!(health.status(), 200);
    let push = tokio::time::timeout(
        Duration::from_secs(2),
        app.github_push("widget", "refs/heads/main", &"a".repeat(40)),
    )
    .await
    .expect("a webhook is answered while bodies stall");
    assert_eq!(push.status(), 202);

    for stream in &mut stalled {
        let answer = closed_within(stream, 5).await;
        assert!(
            matches!(status(&answer), None | Some(408)),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_headers_are_closed() {
    let app = app_with("header_read_timeout_seconds = 1").await;
    let started = Instant::now();
    let mut half = connect(&app).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: baler\r\nX-Slow: ")
        .await
        .unwrap();
    // One that never says anything, and one kept alive after its answer: the same timer
    // waits for every request head (see `web::server`).
    let mut silent = connect(&app).await;
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: baler\r\n\r\n")
        .await
        .unwrap();
    assert!(head_within(&mut kept, 2).await.starts_with("http/1.1 200"));

    for stream in [&mut half, &mut silent] {
        let answer = closed_within(stream, 5).await;
        assert_eq!(status(&answer), None, "closed without an answer");
    }
    // The tail of /healthz's body ("ok") is all the kept-alive connection still reads.
    let rest = closed_within(&mut kept, 5).await;
    assert_eq!(rest, b"ok");
    // Closed by the limit, not at once as if the head were malformed.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_webhook_buffer_answers_503_without_reading() {
    let app = app_with("webhook_buffer_mib = 1\nbody_idle_timeout_seconds = 10").await;
    let mut first = connect(&app).await;
    first
        .write_all(webhook_head(900 * 1024).as_bytes())
        .await
        .unwrap();
    first.write_all(&[b' '; 600 * 1024]).await.unwrap();
    // A head with no body holds nothing: it cannot shut the others out.
    let mut idle = connect(&app).await;
    idle.write_all(webhook_head(900 * 1024).as_bytes())
        .await
        .unwrap();
    // The first body holds what has arrived once its handler has read it (milliseconds).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Only the head of the second: the answer must not wait for its body.
    let mut second = connect(&app).await;
    second
        .write_all(webhook_head(500 * 1024).as_bytes())
        .await
        .unwrap();
    let head = head_within(&mut second, 2).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("\r\nretry-after: "), "{head}");

    // Once the first is gone, its share is back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let push = app
            .github_push("widget", "refs/heads/main", &"b".repeat(40))
            .await;
        if push.status() == 202 {
            break;
        }
        assert_eq!(push.status(), 503);
        assert!(Instant::now() < deadline, "the budget did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_for_a_free_one() {
    let app = app_with("max_connections = 2\nheader_read_timeout_seconds = 30").await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: baler\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "answered while two connections held the slots"
    );

    drop(first);
    let head = head_within(&mut third, 5).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_that_never_stalls_ends_at_the_request_timeout() {
    let app = app_with("body_idle_timeout_seconds = 1\nrequest_timeout_seconds = 2").await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(webhook_head(1000).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(ended.is_ok(), "the request was still open after 6 s");
    assert!(
        matches!(status(&answer), None | Some(408)),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // Not the idle limit (1 s): the body kept arriving.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ended after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_security_headers_and_admin_pages_more() {
    let app = admin_app(
        &TestDb::Sqlite,
        &[ProjectSpec::github("widget", "file:///nowhere".into())],
    )
    .await;
    let cookie = AdminBrowser::logged_in(&app, TOKEN)
        .await
        .cookie
        .expect("a session cookie");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The login form only without a session (with one it redirects to the queue).
    let get = |path: &str| {
        let request = client.get(format!("{}{path}", app.url));
        match path {
            "/admin/login" => request,
            _ => request.header(reqwest::header::COOKIE, &cookie),
        }
        .send()
    };
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };

    for (path, expected, admin) in [
        ("/", 200, false),
        ("/projects/widget", 200, false),
        ("/no-such-page", 404, false),
        ("/admin/login", 200, true),
        ("/admin/queue", 200, true),
        ("/admin/deliveries", 200, true),
        ("/admin/no-such-page", 404, true),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), expected, "{path}");
        assert_eq!(
            header(&response, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header(&response, "referrer-policy").as_deref(),
            Some("same-origin"),
            "{path}"
        );
        let policy = header(&response, "content-security-policy");
        let frames = header(&response, "x-frame-options");
        let cache = header(&response, "cache-control");
        if admin {
            let policy = policy.unwrap_or_else(|| panic!("{path} has no policy"));
            for directive in [
                "default-src 'none'",
                "frame-ancestors 'none'",
                "form-action 'self'",
            ] {
                assert!(policy.contains(directive), "{path}: {policy}");
            }
            assert_eq!(frames.as_deref(), Some("DENY"), "{path}");
            assert_eq!(cache.as_deref(), Some("no-store"), "{path}");
        } else {
            // Public pages stay cacheable and embeddable.
            assert_eq!((policy, frames), (None, None), "{path}");
            assert_ne!(cache.as_deref(), Some("no-store"), "{path}");
        }
    }
}

/// The admin pages under their policy in a real browser: logging in (a form), the queue page
/// styled by its inline `<style>`s, an action's form, and no CSP violation on the way.
///
/// Violations are watched twice: every page gets a `securitypolicyviolation` listener before
/// its own content runs (`Page.addScriptToEvaluateOnNewDocument`, through chromedriver), and
/// Chromium writes each refusal to its console, which the browser log keeps. A violation
/// provoked at the end shows that both watches see one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_work_under_their_policy_in_chromium() {
    let app = admin_app(
        &TestDb::Sqlite,
        &[ProjectSpec::github("widget", "file:///nowhere".into())],
    )
    .await;
    let browser = Chromium::launch().await;
    let session = async {
        // Every page records its CSP violations, from before its first style is applied.
        let watch = "window.baler_violations = []; \
            document.addEventListener('securitypolicyviolation', e => \
              window.baler_violations.push(e.violatedDirective + ' ' + e.blockedURI));";
        browser
            .cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": watch }),
            )
            .await;
        let client = &browser.client;
        client
            .goto(&format!("{}/admin/login", app.url))
            .await
            .unwrap();
        client
            .find(Locator::Css("input[name=token]"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        client
            .find(Locator::Css(r#"form[action="/admin/login"] button"#))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait_for("location.pathname === '/admin/queue'")
            .await;
        let queue = browser
            .eval(
                "const style = s => getComputedStyle(document.querySelector(s)); \
                 return { actions: style('div.actions').display, width: style('body').maxWidth, \
                   violations: window.baler_violations }",
            )
            .await;

        client
            .find(Locator::Css(r#"form[action="/admin/queue/pause"] button"#))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait_for("document.querySelector('p.flash')?.textContent.includes('Paused')")
            .await;
        let after_action = browser
            .eval(
                "const style = s => getComputedStyle(document.querySelector(s)); \
                 return { flash: style('p.flash').borderLeftWidth, \
                   violations: window.baler_violations }",
            )
            .await;
        let mut log = browser.browser_log().await;
        let before_provoked = log.len();

        // The watches themselves work: an image from `data:` is outside `img-src 'self'` (in
        // the document, so that the event reaches it).
        browser
            .eval(
                "const image = document.body.appendChild(new Image()); \
                 image.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; return null",
            )
            .await;
        browser.wait_for("window.baler_violations.length > 0").await;
        let provoked = browser.eval("return window.baler_violations").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log[before_provoked..].iter().any(is_provoked) {
            assert!(
                Instant::now() < deadline,
                "the provoked violation is not in the browser log: {log:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            log.extend(browser.browser_log().await);
        }
        (queue, after_action, provoked, log)
    };
    let (queue, after_action, provoked, log) =
        tokio::time::timeout(Duration::from_secs(90), session)
            .await
            .expect("the browser session ends within 90 s");
    browser.close().await;

    // The inline styles apply: admin-style's flex actions, its body width over base's, and
    // its flash's border (only admin-style sets any of these).
    assert_eq!(queue["actions"], "flex", "{queue} {log:?}");
    assert_eq!(queue["width"], "1536px", "96rem: {queue} {log:?}");
    assert_eq!(after_action["flash"], "4px", "{after_action} {log:?}");
    assert_eq!(queue["violations"], json!([]), "{log:?}");
    assert_eq!(after_action["violations"], json!([]), "{log:?}");
    assert!(app.queue.counts().await.unwrap().paused);
    assert!(
        provoked.to_string().contains("img-src"),
        "the provoked violation is seen: {provoked}"
    );
    let unexpected: Vec<&Value> = log
        .iter()
        .filter(|entry| is_csp_report(entry) && !is_provoked(entry))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}

/// Whether a browser log entry is Chromium's report of a refusal under the policy (or of any
/// other security problem: its `source` is `security`).
fn is_csp_report(entry: &Value) -> bool {
    entry["source"] == "security"
        || entry["message"]
            .as_str()
            .is_some_and(|message| message.contains("Content Security Policy"))
}

/// Whether a browser log entry reports the test's own `data:` image.
fn is_provoked(entry: &Value) -> bool {
    is_csp_report(entry) && entry["message"].to_string().contains("data:image")
}

/// A config for the real `baler` binary with `admin_token = token`, in `dir`.
fn config_with_token(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    let path = dir.join(format!("baler-{}.toml", token.len()));
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_token = \"{token}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// `baler ARGS --config CONFIG`, with nothing from the environment overriding the file; fails
/// if it has not ended within 30 s (a server that started).
async fn run_baler(args: &[&str], config: &std::path::Path) -> std::process::Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_baler"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("BALER_ADMIN_TOKEN")
        .env_remove("BALER_LISTEN")
        .env_remove("BALER_DATA_DIR")
        .env_remove("BALER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("baler {args:?} still runs after 30 s"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_weak_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    for weak in ["change-me", "0123456789"] {
        let config = config_with_token(dir.path(), weak);
        let output = run_baler(&["serve"], &config).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{weak}: {stderr}");
        assert!(
            stderr.contains("admin_token")
                && stderr.contains("baler token create")
                && stderr.contains("openssl rand -hex 32"),
            "{weak}: {stderr}"
        );

        // Commands that serve nothing still run with it, so the config can be fixed.
        let created = run_baler(&["token", "create", "--name", "x"], &config).await;
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        assert!(!created.stdout.is_empty());
        std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    }

    // A good token serves.
    let config = config_with_token(dir.path(), "8d3c0f5e9a7b41d2b6e0c4a8f1d3e5b7");
    let server = crate::support::Child::baler(&["serve"], &config);
    crate::support::wait_until(30, "baler serve to listen", || async {
        server.log().contains("listening")
    })
    .await;
}

/// Accept errors are not fatal: with its file descriptors used up (EMFILE), the server
/// logs, pauses and accepts again once connections close. (A regression guard for
/// `web::server`'s accept loop; `axum::serve` behaved the same.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_does_not_end_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("baler.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
             admin_token = \"8d3c0f5e9a7b41d2b6e0c4a8f1d3e5b7\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("baler.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // 128 descriptors: enough to start (about 30 are open when idle), not for 200 clients.
    let _server = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 128 && exec "$0" serve --config "$1""#)
        .arg(env!("CARGO_BIN_EXE_baler"))
        .arg(&config)
        .env_remove("BALER_ADMIN_TOKEN")
        .env_remove("BALER_LISTEN")
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    // A new connection for every check: one kept alive would answer without an accept.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let healthy = || async {
        client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    crate::support::wait_until(30, "baler serve to answer", healthy).await;

    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("the kernel's backlog takes it"),
        );
    }
    crate::support::wait_until(10, "the server to run out of descriptors", || async {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Too many open files")
    })
    .await;
    drop(clients);
    crate::support::wait_until(10, "the server to answer again", healthy).await;
}
