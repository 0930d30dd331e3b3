//! Security headers on every page, more on the admin pages, and the admin pages working in
//! headless Chromium under their policy.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::support::browser::AdminBrowser;
use crate::support::chromium::Chromium;
use crate::support::{ADMIN_TOKEN, ProjectSpec, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_security_headers_and_admin_pages_more() {
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
        .await;
    let cookie = AdminBrowser::logged_in(&app, ADMIN_TOKEN)
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
        ("/admin/notifications", 200, true),
        ("/admin/storage", 200, true),
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
///
/// Long on purpose: one browser session, whose steps share the page's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_work_under_their_policy_in_chromium() {
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
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
            .send_keys(ADMIN_TOKEN)
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
