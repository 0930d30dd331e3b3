//! Headless Chromium driven over WebDriver: Debian's `chromium` and `chromium-driver` (whose
//! command is `chromedriver`; `.ci/run` installs both), with `fantoccini` as the client.
//! `BALER_TEST_CHROMIUM` and `BALER_TEST_CHROMEDRIVER` name other binaries.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// A WebDriver session on a headless Chromium of its own. Dropping it ends chromedriver, and
/// with it the browser.
pub struct Chromium {
    pub client: Client,
    driver: std::process::Child,
    dir: tempfile::TempDir,
}

impl Chromium {
    /// Starts chromedriver on a free port and opens a session whose browser log
    /// (`goog:loggingPrefs`) keeps every console message, CSP reports among them.
    ///
    /// Long on purpose: chromedriver, then a session on it, each step needing the one before.
    pub async fn launch() -> Chromium {
        let chromium = program("BALER_TEST_CHROMIUM", "chromium", "chromium");
        let chromedriver = program("BALER_TEST_CHROMEDRIVER", "chromedriver", "chromium-driver");
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("chromedriver.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(&log_path).unwrap();
        let mut driver = std::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        let url = format!("http://127.0.0.1:{port}");

        let status = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = status
                .get(format!("{url}/status"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = ready
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                break;
            }
            if let Some(exit) = driver.try_wait().unwrap() {
                panic!(
                    "chromedriver ended ({exit}) before it answered: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port} within 20 s: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut capabilities = fantoccini::wd::Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox", // tests run as root in CI
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", dir.path().join("profile").display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        // Plain HTTP: chromedriver listens on loopback only.
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "chromedriver opens no session with {}: {e:?}; its log: {}",
                    chromium.display(),
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        Chromium {
            client,
            driver,
            dir,
        }
    }

    /// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute`.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        self.command(
            "goog/cdp/execute",
            json!({ "cmd": method, "params": params }),
        )
        .await
    }

    /// The browser log's entries (`{level, message, source, timestamp}`) since the last call.
    pub async fn browser_log(&self) -> Vec<Value> {
        match self.command("se/log", json!({ "type": "browser" })).await {
            Value::Array(entries) => entries,
            other => panic!("the browser log is not a list: {other}"),
        }
    }

    /// The value that `script` (a function body: `return …`) returns in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until `condition` (an expression) holds in the page, across navigations; fails
    /// after 10 s, with the browser log.
    pub async fn wait_for(&self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let script = format!("return Boolean({condition})");
        loop {
            // A navigation may end the script's page: that is not yet.
            if let Ok(Value::Bool(true)) = self.client.execute(&script, Vec::new()).await {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {condition}; browser log: {:?}; chromedriver: {}",
                    self.browser_log().await,
                    std::fs::read_to_string(self.dir.path().join("chromedriver.log"))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the session (the browser quits) and chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// `POST /session/{id}/{path}` with `body`: chromedriver's commands beyond the standard.
    async fn command(&self, path: &'static str, body: Value) -> Value {
        self.client
            .issue_cmd(SessionCommand { path, body })
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A POST to a path under the session, with a JSON body.
#[derive(Debug)]
struct SessionCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (reqwest::Method::POST, Some(self.body.to_string()))
    }
}

/// The path of the program that `variable` names, or else of `command` on `PATH`; fails,
/// naming Debian's `package`, when there is none.
fn program(variable: &str, command: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            is_executable(&path),
            "{variable} names {}, which is no program",
            path.display()
        );
        return path;
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(command))
        .find(|path| is_executable(path))
        .unwrap_or_else(|| {
            panic!(
                "`{command}` is not on PATH: install Debian's `{package}` package \
                 (.ci/run does), or name the program in {variable}"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
