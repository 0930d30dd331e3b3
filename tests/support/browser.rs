//! `AdminBrowser`: the admin pages as a browser sees them, keeping the session cookie and
//! not following redirects, so every answer can be checked.

use reqwest::header::{COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};

use super::TestApp;

pub struct AdminBrowser {
    client: reqwest::Client,
    url: String,
    /// `baler_admin=VALUE`, as the last Set-Cookie left it.
    pub cookie: Option<String>,
    /// Sent as `X-Forwarded-For`, to play one of several clients behind a trusted proxy.
    pub forwarded_for: Option<String>,
}

/// An answer: status, where it redirects, the Set-Cookie line, and the body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Answer {
    /// The value of the first `<input name="csrf">` on the page.
    pub fn csrf(&self) -> String {
        let html = scraper::Html::parse_document(&self.body);
        let input = scraper::Selector::parse("input[name=csrf]").unwrap();
        html.select(&input)
            .next()
            .and_then(|i| i.value().attr("value"))
            .unwrap_or_else(|| panic!("no csrf field on the page: {}", self.body))
            .to_string()
    }

    /// The text of every row with cells of the tables `table` selects (`#queue-items`,
    /// `.deliveries`), cells joined by ` | `.
    pub fn rows(&self, table: &str) -> Vec<String> {
        let html = scraper::Html::parse_document(&self.body);
        let rows = scraper::Selector::parse(&format!("table{table} tr")).unwrap();
        let cells = scraper::Selector::parse("td").unwrap();
        html.select(&rows)
            .map(|row| {
                row.select(&cells)
                    .map(|c| c.text().collect::<String>().trim().to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .filter(|row| !row.is_empty())
            .collect()
    }

    /// The flash message at the top of the page, if any.
    pub fn flash(&self) -> Option<String> {
        let html = scraper::Html::parse_document(&self.body);
        let flash = scraper::Selector::parse("p.flash").unwrap();
        html.select(&flash)
            .next()
            .map(|p| p.text().collect::<String>())
    }
}

impl AdminBrowser {
    pub fn new(app: &TestApp) -> AdminBrowser {
        AdminBrowser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            url: app.url.clone(),
            cookie: None,
            forwarded_for: None,
        }
    }

    /// Logs in with `token` through the login form and checks that it worked.
    pub async fn logged_in(app: &TestApp, token: &str) -> AdminBrowser {
        let mut browser = AdminBrowser::new(app);
        let form = browser.get("/admin/login").await;
        let answer = browser
            .post("/admin/login", &[("csrf", &form.csrf()), ("token", token)])
            .await;
        assert_eq!(
            (answer.status, answer.location.as_deref()),
            (303, Some("/admin/queue")),
            "login: {}",
            answer.body
        );
        browser
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.forwarded_for {
            Some(from) => request.header("x-forwarded-for", from),
            None => request,
        };
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let set_cookie = header(SET_COOKIE);
        let location = header(LOCATION);
        let retry_after = header(RETRY_AFTER).map(|v| v.parse().unwrap());
        if let Some(line) = &set_cookie {
            let pair = line.split(';').next().unwrap().trim().to_string();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, value)| !value.is_empty())
                .map(|_| pair.clone());
        }
        Answer {
            status: response.status().as_u16(),
            location,
            set_cookie,
            retry_after,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(format!("{}{path}", self.url));
        self.send(request).await
    }

    /// POSTs a form, as a browser does.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }
}
