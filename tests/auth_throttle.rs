//! Guessing admin tokens: failed Bearer and login attempts are limited per client address.
//! Past the budget every attempt from the address, the right token too, is 429 with
//! `Retry-After` and not checked; other addresses go on; good tokens spend nothing; failures
//! are recorded per address in `auth_failures` and shown on /admin/queue.
//!
//! Several clients are played from one test through `X-Forwarded-For`, with 127.0.0.1 (the
//! test's own peer) as a trusted proxy.

use std::time::Duration;

use entities::auth_failure;
use reqwest::header::RETRY_AFTER;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::on_both_databases;
use crate::support::browser::{AdminBrowser, Answer};
use crate::support::{ADMIN_TOKEN, HttpSettings, TestApp, TestDb, wait_until};

const WRONG: &str = "not-the-admin-token";

/// An app with the admin token and `http` as its `[http]` table.
async fn app_with(db: &TestDb, http: HttpSettings) -> TestApp {
    TestApp::builder()
        .database(db)
        .admin_token(ADMIN_TOKEN)
        .http(http)
        .start()
        .await
}

/// `auth_failures_per_minute` of `per_minute`, with the test's own address trusted as a proxy.
fn trusting_the_test_with_budget(per_minute: u32) -> HttpSettings {
    HttpSettings {
        auth_failures_per_minute: Some(per_minute),
        ..HttpSettings::trusting_the_test()
    }
}

/// An admin API call as client `from` (sent as `X-Forwarded-For`), with `token` if any.
async fn bearer(app: &TestApp, from: &str, token: Option<&str>) -> reqwest::Response {
    let request = app
        .client
        .get(format!("{}/api/v1/queue", app.url))
        .header("x-forwarded-for", from);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(RETRY_AFTER)?;
    Some(value.to_str().unwrap().parse().unwrap())
}

/// `n` wrong Bearer tokens from `from`, each 401 without `Retry-After`.
async fn wrong_bearer_tokens(app: &TestApp, from: &str, n: usize) {
    for attempt in 1..=n {
        let response = bearer(app, from, Some(WRONG)).await;
        assert_eq!(response.status(), 401, "wrong token {attempt} from {from}");
        assert_eq!(retry_after(&response), None);
    }
}

/// A 429 with a `Retry-After` of 1..=`at_most` seconds and a JSON error; the wait.
async fn refused(response: reqwest::Response, at_most: u64) -> u64 {
    assert_eq!(response.status(), 429);
    let wait = retry_after(&response).expect("a 429 says when to come back");
    assert!((1..=at_most).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("too many failed"),
        "{body}"
    );
    wait
}

/// `address`'s row in `auth_failures` once its count reaches `count` (rows are written off
/// the request path, so the test waits for them).
async fn failures_of(app: &TestApp, address: &str, count: i64) -> auth_failure::Model {
    let find =
        || auth_failure::Entity::find().filter(auth_failure::Column::ClientAddress.eq(address));
    wait_until(30, &format!("{count} failures of {address}"), || async {
        find()
            .one(&app.db)
            .await
            .unwrap()
            .is_some_and(|row| row.count >= count)
    })
    .await;
    let row = find().one(&app.db).await.unwrap().unwrap();
    assert_eq!(row.count, count, "{row:?}");
    row
}

/// The admin login form as one client (`from`, sent as `X-Forwarded-For`) sees it.
struct LoginClient {
    browser: AdminBrowser,
    csrf: String,
}

impl LoginClient {
    async fn open(app: &TestApp, from: &str) -> LoginClient {
        let mut browser = AdminBrowser::new(app);
        browser.forwarded_for = Some(from.to_string());
        let form = browser.get("/admin/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        LoginClient {
            csrf: form.csrf(),
            browser,
        }
    }

    /// Submits the form with `token`: the answer and its `Retry-After`.
    async fn try_token(&mut self, token: &str) -> (Answer, Option<u64>) {
        let answer = self
            .browser
            .post("/admin/login", &[("csrf", &self.csrf), ("token", token)])
            .await;
        let wait = answer.retry_after;
        (answer, wait)
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.browser.get(path).await
    }
}

async fn wrong_bearer_tokens_are_limited_per_address(db: TestDb) {
    let app = app_with(&db, HttpSettings::trusting_the_test()).await;
    let guesser = "198.51.100.1";

    // The default budget: ten failures a minute.
    wrong_bearer_tokens(&app, guesser, 10).await;
    // The eleventh attempt carries the right token, and is refused unchecked, as is a
    // wrong one: while limited, nothing tells a right guess from a wrong one.
    refused(bearer(&app, guesser, Some(ADMIN_TOKEN)).await, 6).await;
    refused(bearer(&app, guesser, Some(WRONG)).await, 6).await;
    // No token at all is no attempt: a plain 401, not counted.
    let response = bearer(&app, guesser, None).await;
    assert_eq!(
        (response.status().as_u16(), retry_after(&response)),
        (401, None)
    );

    // Another client is not limited.
    let other = "198.51.100.2";
    assert_eq!(bearer(&app, other, Some(ADMIN_TOKEN)).await.status(), 200);
    assert_eq!(bearer(&app, other, Some(WRONG)).await.status(), 401);

    // An IPv6 client has the budget of its /64: a neighbour address in it is limited too,
    // the next /64 is not.
    wrong_bearer_tokens(&app, "2001:db8:1:2::1", 10).await;
    refused(bearer(&app, "2001:db8:1:2::99", Some(ADMIN_TOKEN)).await, 6).await;
    assert_eq!(
        bearer(&app, "2001:db8:1:3::1", Some(ADMIN_TOKEN))
            .await
            .status(),
        200
    );

    // Recorded per address, refused attempts included.
    let row = failures_of(&app, guesser, 12).await;
    assert_eq!(row.last_kind, "bearer");
    assert!(row.first_at <= row.last_at, "{row:?}");
    failures_of(&app, other, 1).await;
    failures_of(&app, "2001:db8:1:2::/64", 11).await;
}

async fn a_forged_forwarded_for_does_not_escape_the_limit(db: TestDb) {
    // No trusted proxy: X-Forwarded-For is the client's own claim, and the peer is the client.
    let app = app_with(&db, HttpSettings::default()).await;
    for n in 1..=10 {
        let response = bearer(&app, &format!("203.0.113.{n}"), Some(WRONG)).await;
        assert_eq!(response.status(), 401);
    }
    refused(bearer(&app, "203.0.113.77", Some(ADMIN_TOKEN)).await, 6).await;
    failures_of(&app, "127.0.0.1", 11).await;
    let rows = auth_failure::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
}

async fn the_budget_refills(db: TestDb) {
    // 30 a minute: a cell comes back every 2 s.
    let app = app_with(&db, trusting_the_test_with_budget(30)).await;
    let guesser = "198.51.100.3";
    // Wrong tokens until the address is refused: after 30 at the least (more only if a cell
    // came back while they were sent).
    let mut failures = 0;
    let wait = loop {
        let response = bearer(&app, guesser, Some(WRONG)).await;
        if response.status() == 429 {
            break refused(response, 2).await;
        }
        assert_eq!(response.status(), 401);
        failures += 1;
        assert!(failures <= 60, "never limited");
    };
    assert!(failures >= 30, "limited after {failures} failures");
    refused(bearer(&app, guesser, Some(ADMIN_TOKEN)).await, 2).await;
    // Retry-After is rounded up: waiting that long is enough.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(bearer(&app, guesser, Some(ADMIN_TOKEN)).await.status(), 200);
}

async fn guesses_sent_at_once_are_counted_one_by_one(db: TestDb) {
    // 2 a minute: no cell comes back during the test.
    let app = app_with(&db, trusting_the_test_with_budget(2)).await;
    // Guesses shaped like named tokens, so that each is looked up in the database: the
    // check then waits on I/O, and the guesses overlap on the server.
    let named_guess = format!("baler_{}", "A".repeat(43));
    let guesses = (0..40).map(|_| bearer(&app, "198.51.100.4", Some(&named_guess)));
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, limited), (2, 38), "{statuses:?}");
    failures_of(&app, "198.51.100.4", 40).await;
}

async fn a_good_token_never_spends_the_budget(db: TestDb) {
    let app = app_with(&db, HttpSettings::trusting_the_test()).await;
    let ci = "198.51.100.5";
    for _ in 0..50 {
        assert_eq!(bearer(&app, ci, Some(ADMIN_TOKEN)).await.status(), 200);
    }
    // The whole budget is still there: nine failures leave the good token working...
    wrong_bearer_tokens(&app, ci, 9).await;
    for _ in 0..50 {
        assert_eq!(bearer(&app, ci, Some(ADMIN_TOKEN)).await.status(), 200);
    }
    // ...and the tenth spends the last of it.
    wrong_bearer_tokens(&app, ci, 1).await;
    refused(bearer(&app, ci, Some(ADMIN_TOKEN)).await, 6).await;
}

async fn wrong_logins_are_limited_per_address(db: TestDb) {
    let app = app_with(&db, HttpSettings::trusting_the_test()).await;
    let guesser = "198.51.100.6";
    let mut login = LoginClient::open(&app, guesser).await;
    for attempt in 1..=10 {
        let (answer, wait) = login.try_token(WRONG).await;
        assert_eq!((answer.status, wait), (401, None), "login {attempt}");
        assert!(answer.body.contains("That token is not valid"));
    }
    // The right token is refused unchecked, on the login form and on the API alike: one
    // budget per address.
    refused(bearer(&app, guesser, Some(ADMIN_TOKEN)).await, 6).await;
    let (answer, wait) = login.try_token(ADMIN_TOKEN).await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    let wait = wait.expect("a 429 says when to come back");
    assert!((1..=6).contains(&wait), "Retry-After: {wait}");
    assert!(
        answer.body.contains("Too many failed sign-ins"),
        "{}",
        answer.body
    );
    assert_eq!(answer.csrf(), login.csrf, "the form is still there");
    // Not signed in.
    let page = login.get("/admin/queue").await;
    assert_eq!(page.location.as_deref(), Some("/admin/login"));

    // Another client signs in.
    let mut colleague = LoginClient::open(&app, "198.51.100.8").await;
    let (answer, _) = colleague.try_token(ADMIN_TOKEN).await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/queue"))
    );

    // Once the budget refills, the same page signs in.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (answer, _) = login.try_token(ADMIN_TOKEN).await;
    assert_eq!(
        (answer.status, answer.location.as_deref()),
        (303, Some("/admin/queue")),
        "{}",
        answer.body
    );
    assert_eq!(login.get("/admin/queue").await.status, 200);

    let row = failures_of(&app, guesser, 12).await;
    assert_eq!(row.last_kind, "login");
}

async fn failures_are_shown_on_the_queue_page(db: TestDb) {
    let app = app_with(&db, HttpSettings::trusting_the_test()).await;
    let started = chrono::Utc::now().timestamp_millis();
    let guesser = "198.51.100.7";
    wrong_bearer_tokens(&app, guesser, 3).await;
    let mut login = LoginClient::open(&app, guesser).await;
    for _ in 0..2 {
        assert_eq!(login.try_token(WRONG).await.0.status, 401);
    }
    let guesser_row = failures_of(&app, guesser, 5).await;
    // A later failure from elsewhere, so that the order is known.
    tokio::time::sleep(Duration::from_millis(5)).await;
    wrong_bearer_tokens(&app, "2001:db8:5:6::1", 1).await;
    let ipv6_row = failures_of(&app, "2001:db8:5:6::/64", 1).await;
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(guesser_row.last_kind, "login");
    assert!(
        started <= guesser_row.first_at
            && guesser_row.first_at <= guesser_row.last_at
            && guesser_row.last_at <= ipv6_row.first_at
            && ipv6_row.last_at <= now,
        "{guesser_row:?} {ipv6_row:?}"
    );

    // The guesser still has budget left, and signs in with the right token; that login is
    // audited as ever.
    let (answer, _) = login.try_token(ADMIN_TOKEN).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let page = login.get("/admin/queue").await;
    assert_eq!(page.status, 200);
    assert!(
        page.rows("#audit-log")
            .iter()
            .any(|row| row.contains("session.login")),
        "{:?}",
        page.rows("#audit-log")
    );

    // Newest first: address, count, first, last, kind.
    let time = baler::admin::rfc3339;
    let shown = |row: &auth_failure::Model| {
        format!(
            "{} | {} | {} | {} | {}",
            row.client_address,
            row.count,
            time(row.first_at),
            time(row.last_at),
            row.last_kind
        )
    };
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/queue").await;
    assert_eq!(
        page.rows("#auth-failures"),
        vec![shown(&ipv6_row), shown(&guesser_row)]
    );
}

on_both_databases!(
    wrong_bearer_tokens_are_limited_per_address,
    a_forged_forwarded_for_does_not_escape_the_limit,
    the_budget_refills,
    guesses_sent_at_once_are_counted_one_by_one,
    a_good_token_never_spends_the_budget,
    wrong_logins_are_limited_per_address,
    failures_are_shown_on_the_queue_page,
);
