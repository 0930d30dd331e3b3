//! What the integration tests share: `TestApp` (the real baler server on port 0, configured by
//! `TestApp::builder()`), its typed config, webhook deliveries as hosts send them, typed reads
//! of what the app stored, child processes of the real binary, and git, archive and browser
//! helpers.

pub mod app;
pub mod archive_listing;
pub mod browser;
pub mod child;
pub mod chromium;
pub mod composer;
pub mod config;
pub mod database;
pub mod deliveries;
pub mod fake_hosts;
pub mod git;
pub mod hung;
pub mod metrics;
pub mod receiver;
pub mod s3;
pub mod smart_http;
pub mod stored;
pub mod tree;

use std::time::{Duration, Instant};

pub use app::{Installation, TestApp, TestAppBuilder};
pub use child::BalerProcess;
pub use config::{
    ADMIN_TOKEN, ConfigFile, HttpSettings, NotificationSpec, ProjectSpec, QueueSettings, SECRET,
    WorkerSettings,
};
pub use database::TestDb;
pub use deliveries::{fixture, github_deletion, github_push_body};
pub use stored::{AuditRow, ItemState};

/// A loopback port nothing listens on right now (for a child process to bind), and never
/// handed out before in this test process: the kernel may give a port it just freed to the
/// next `bind(0)`, and two children told the same port would leave one of them unbound.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `check` every 10 ms until it holds, failing after `seconds`.
pub async fn wait_until<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
