//! Building and running baler: open the database, apply migrations, sync projects, bind the
//! listener (so tests can ask for port 0 and read the address back), then serve and run the
//! workers until a shutdown signal, draining running jobs before exit.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::queue::{Queue, QueueTuning};
use crate::store::LocalStore;
use crate::web::{AppState, router, server};
use crate::worker::{self, JobContext};
use crate::{db, projects};

/// What runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Web server and workers (`baler serve`).
    Serve,
    /// Workers only (`baler worker`).
    Worker,
    /// Web server only (`baler serve --no-worker`): webhooks queue, other processes work.
    Web,
}

pub struct Application {
    config: Config,
    db: DatabaseConnection,
    queue: Queue,
    listener: Option<TcpListener>,
    role: Role,
    /// The `baler` binary the workers run as their fetch child (`baler fetch-mirror`).
    fetch_program: std::path::PathBuf,
}

impl Application {
    /// Opens everything; when serving, also binds the listener.
    pub async fn build(config: Config, role: Role) -> anyhow::Result<Application> {
        let tuning = config.queue_tuning();
        Application::build_with(config, role, tuning).await
    }

    /// As `build`, with the queue's timing given (tests shorten it).
    pub async fn build_with(
        config: Config,
        role: Role,
        tuning: QueueTuning,
    ) -> anyhow::Result<Application> {
        if matches!(role, Role::Serve | Role::Web) {
            refuse_weak_admin_token(config.admin_token.as_deref())?;
        }
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let db = db::connect(&config.database_url)
            .await
            .with_context(|| format!("opening the database {}", redact(&config.database_url)))?;
        db::migrate(&db).await.context("applying migrations")?;
        let departures = match role {
            Role::Serve | Role::Web => projects::Departures::Disable,
            Role::Worker => projects::Departures::Keep,
        };
        projects::sync_from_config(&db, &config.projects, departures)
            .await
            .context("syncing projects from the config file")?;
        let queue = Queue::new(db.clone(), tuning);
        let listener = match role {
            Role::Serve | Role::Web => Some(
                TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("listening on {}", config.listen))?,
            ),
            Role::Worker => None,
        };
        let fetch_program = std::env::current_exe().context("finding baler's own binary")?;
        Ok(Application {
            config,
            db,
            queue,
            listener,
            role,
            fetch_program,
        })
    }

    /// Runs `program` as the workers' fetch child instead of this process's own binary (for
    /// tests, whose binary is not baler).
    pub fn with_fetch_program(mut self, program: std::path::PathBuf) -> Application {
        self.fetch_program = program;
        self
    }

    /// The bound address (`listen` with port 0 resolved), when serving.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves and works until `shutdown` resolves; running jobs then get
    /// `worker.drain_seconds` to finish, and whatever still runs after that is left behind
    /// (its claim expires and another worker retries it).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let drain = self.config.worker.drain();
        let store = LocalStore::new(self.config.files_dir());
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };

        let context = JobContext {
            db: self.db.clone(),
            queue: self.queue.clone(),
            store: store.clone(),
            mirrors_dir: self.config.mirrors_dir(),
            fetch_program: self.fetch_program.clone(),
            fetch_timeout: self.config.worker.fetch_timeout(),
            auth: std::sync::Arc::new(
                self.config
                    .projects
                    .iter()
                    .map(|p| (p.name.clone(), p.auth.clone()))
                    .collect(),
            ),
        };
        let workers = (self.role != Role::Web).then(|| {
            tokio::spawn(worker::run(
                self.queue.clone(),
                context,
                worker::Limits {
                    workers: self.config.workers,
                    job_timeout: self.config.worker.job_timeout(),
                    drain,
                },
                stopped(),
            ))
        });

        // Old deliveries, refusal counts and failed sign-ins are pruned hourly wherever webhooks
        // are received.
        if self.listener.is_some() {
            let db = self.db.clone();
            let stop = stopped();
            tokio::spawn(async move {
                let prune = async {
                    let mut every = tokio::time::interval(Duration::from_secs(3600));
                    loop {
                        every.tick().await;
                        match crate::deliveries::prune(&db).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(deliveries = n, "pruned old deliveries"),
                            Err(e) => tracing::warn!(error = %e, "pruning deliveries failed"),
                        }
                        match crate::admin::throttle::prune(&db).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(addresses = n, "pruned old failed sign-ins"),
                            Err(e) => tracing::warn!(error = %e, "pruning failed sign-ins failed"),
                        }
                    }
                };
                tokio::select! {
                    _ = prune => {},
                    _ = stop => {},
                }
            });
        }

        let server = match self.listener {
            Some(listener) => {
                let public_url = match &self.config.public_url {
                    Some(url) => url.clone(),
                    None => format!("http://{}", listener.local_addr()?),
                };
                let state = AppState::new(
                    &self.config,
                    self.db.clone(),
                    self.queue.clone(),
                    store,
                    &public_url,
                )
                .await?;
                tracing::info!(address = %listener.local_addr()?, %public_url, "listening");
                let app = router::router(state);
                let limits = self.config.http.clone();
                let stop = stopped();
                Some(tokio::spawn(async move {
                    server::serve(listener, app, &limits, stop).await
                }))
            }
            None => None,
        };

        shutdown.await;
        tracing::info!(
            drain_seconds = drain.as_secs(),
            "shutting down: no new jobs; waiting for running ones"
        );
        let _ = stop_tx.send(true);
        let finished = async {
            if let Some(server) = server {
                server.await.context("web server")?;
            }
            if let Some(workers) = workers {
                workers.await?.context("workers")?;
            }
            anyhow::Ok(())
        };
        // The web server waits for open requests and the workers for running jobs; neither
        // may hold the exit past the drain (plus a moment to close the database).
        match tokio::time::timeout(drain + Duration::from_secs(1), finished).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!("the drain time is over; exiting with work still running"),
        }
        self.db.close().await.ok();
        Ok(())
    }
}

/// The example config's admin token, which a server must never accept.
const EXAMPLE_ADMIN_TOKEN: &str = "change-me";

/// Shorter than this, an admin token could be guessed; `openssl rand -hex 32` gives 64.
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// A server faces the network, so its `admin_token` must not be guessable. Other commands
/// (`baler token create`, `baler worker`, `baler queue …`) open no listener and still run with
/// such a config, so that it can be fixed with them.
fn refuse_weak_admin_token(token: Option<&str>) -> anyhow::Result<()> {
    let Some(token) = token else {
        return Ok(()); // only named tokens (`baler token create`) open the admin pages
    };
    let weakness = if token == EXAMPLE_ADMIN_TOKEN {
        format!("is the example's {EXAMPLE_ADMIN_TOKEN:?}")
    } else if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        format!("is shorter than {MIN_ADMIN_TOKEN_CHARS} characters")
    } else {
        return Ok(());
    };
    anyhow::bail!(
        "refusing to serve: admin_token (or BALER_ADMIN_TOKEN) {weakness}, which anyone could \
         guess. Set it to a random one, made with `openssl rand -hex 32`; or remove it and \
         log in with a named token from `baler token create --name NAME`"
    )
}

/// A URL without its credentials, for messages and logs: `user:pw@` keeps the user,
/// a bare token (`https://TOKEN@host`) is hidden whole.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_string(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn weak_admin_tokens_are_refused() {
        for weak in ["change-me", "short", "fifteen-chars-x", "ééééééééééééééé"] {
            let message = super::refuse_weak_admin_token(Some(weak))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("openssl rand -hex 32") && message.contains("baler token create"),
                "{message}"
            );
        }
        for good in ["sixteen-chars-xx", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"] {
            super::refuse_weak_admin_token(Some(good)).unwrap();
        }
        super::refuse_weak_admin_token(None).unwrap();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://baler:pw@db/baler"),
            "postgres://baler:***@db/baler"
        );
        assert_eq!(super::redact("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(
            super::redact("https://ghp_token@github.com/acme/widget.git"),
            "https://***@github.com/acme/widget.git"
        );
    }
}
