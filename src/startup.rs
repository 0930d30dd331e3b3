//! Building and running baler: open the database, apply migrations, sync projects, bind the
//! listener (so tests can ask for port 0 and read the address back), then serve and run the
//! workers until a shutdown signal, draining running jobs before exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, HttpLimits};
use crate::maintenance::Maintenance;
use crate::queue::{Queue, QueueTuning};
use crate::redact::redact;
use crate::signing::Signer;
use crate::store::Store;
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

impl Role {
    /// Whether this process listens: the web server, and the upkeep of what webhooks store.
    fn serves_web(self) -> bool {
        matches!(self, Role::Serve | Role::Web)
    }

    fn runs_workers(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

pub struct Application {
    config: Config,
    db: DatabaseConnection,
    queue: Queue,
    listener: Option<TcpListener>,
    role: Role,
    /// Where release files live, checked usable.
    store: Store,
    /// `metrics_listen`, bound.
    metrics_listener: Option<TcpListener>,
    /// The `baler` binary the workers run as their fetch child (`baler fetch-mirror`).
    fetch_program: PathBuf,
    /// `[signing]`'s key, loaded when this process runs workers (they sign with it); web
    /// servers serve the public key these processes record.
    signer: Option<Arc<Signer>>,
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
        if role.serves_web() {
            refuse_weak_admin_token(config.admin_token.as_deref())?;
        }
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        // Only processes that build releases load the key (a web server never holds it). One
        // that cannot be read or decrypted stops the start here: with signing on, no release
        // may be published unsigned.
        let signer = match &config.signing {
            Some(settings) if role.runs_workers() => {
                let signer = Signer::load(settings)?;
                tracing::info!(
                    key_id = signer.key_id(),
                    "releases are signed with this key"
                );
                Some(Arc::new(signer))
            }
            _ => None,
        };
        // Counting starts with the process.
        crate::metrics::install();
        let store = config.open_store()?;
        // A wrong key, a missing bucket or an unreachable endpoint stops the start here, in
        // the store's own words, rather than failing every job later.
        store.check().await?;
        tracing::info!(store = %store.describe(), "release files are stored here");
        let db = db::connect(&config.database_url)
            .await
            .with_context(|| format!("opening the database {}", redact(&config.database_url)))?;
        db::migrate(&db).await.context("applying migrations")?;
        if role.runs_workers() {
            // What web servers serve as /.well-known/baler/minisign.pub.
            let key = signer.as_deref().map(Signer::public_key_file);
            crate::documents::set_signing_key(&db, key.as_deref())
                .await
                .context("recording the signing key")?;
        }
        // Only the serving config decides which projects exist; a worker's may lag behind it.
        let departures = if role.serves_web() {
            projects::Departures::Disable
        } else {
            projects::Departures::Keep
        };
        projects::sync_from_config(&db, &config.projects, departures)
            .await
            .context("syncing projects from the config file")?;
        crate::notify::subscribers::sync_from_config(
            &db,
            &config.notifications,
            departures == projects::Departures::Disable,
        )
        .await
        .context("syncing notification subscribers from the config file")?;
        let queue = Queue::new(db.clone(), tuning);
        let listener = if role.serves_web() {
            Some(
                TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("listening on {}", config.listen))?,
            )
        } else {
            None
        };
        // The documents readers fetch, for the projects as synced and the URL served at.
        match &listener {
            Some(listener) => {
                let url = public_url(&config, listener)?;
                crate::web::documents::publish_all(&db, &url, store.as_ref()).await
            }
            None => crate::web::documents::refresh(&db, store.as_ref()).await,
        }
        .context("rendering the published documents")?;
        let fetch_program = std::env::current_exe().context("finding baler's own binary")?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening for /metrics on {address}"))?,
            ),
            None => None,
        };
        Ok(Application {
            config,
            db,
            queue,
            listener,
            role,
            store,
            metrics_listener,
            fetch_program,
            signer,
        })
    }

    /// Runs `program` as the workers' fetch child instead of this process's own binary (for
    /// tests, whose binary is not baler).
    pub fn with_fetch_program(mut self, program: PathBuf) -> Application {
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
        let Application {
            config,
            db,
            queue,
            listener,
            role,
            store,
            metrics_listener,
            fetch_program,
            signer,
        } = self;
        let drain = config.worker.drain();
        // Everything that can fail is ready before anything starts, so a failure leaves
        // nothing running.
        let web = match listener {
            Some(listener) => {
                Some(WebServer::prepare(&config, &db, &queue, store.clone(), listener).await?)
            }
            None => None,
        };
        let stop = CancellationToken::new();
        if let Some(listener) = metrics_listener {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "serving /metrics");
            }
            let app = router::metrics_router(queue.clone());
            let stopped = stop.clone().cancelled_owned();
            tokio::spawn(async move {
                let serving = axum::serve(listener, app).with_graceful_shutdown(stopped);
                if let Err(e) = serving.await {
                    tracing::error!(error = %e, "the /metrics listener stopped");
                }
            });
        }
        let queue_for_schedule = queue.clone();
        let running = Running {
            workers: role.runs_workers().then(|| {
                let context = job_context(&config, &db, &queue, store.clone(), fetch_program)
                    .signing_with(signer);
                spawn_workers(&config, queue, context, &stop)
            }),
            // Where webhooks are received, so is the upkeep of what they store.
            maintenance: web.is_some().then(|| {
                let upkeep = Maintenance::new(db.clone(), store.clone());
                tokio::spawn(upkeep.run_until(stop.clone().cancelled_owned()))
            }),
            server: web.map(|web| web.spawn(&stop)),
            // Every process sends notifications, queues due rescans and runs the curator;
            // claims in the database keep two processes from doing any of it twice.
            background: vec![
                tokio::spawn(
                    crate::notify::Sender::new(
                        db.clone(),
                        crate::notify::SenderSettings::default(),
                    )?
                    .run_until(stop.clone().cancelled_owned()),
                ),
                tokio::spawn(
                    crate::schedule::Scheduler::new(db.clone(), queue_for_schedule.clone())
                        .run_until(stop.clone().cancelled_owned()),
                ),
                tokio::spawn(
                    crate::worker::curator::Curator::new(
                        db.clone(),
                        queue_for_schedule,
                        store.clone(),
                        config.retention.clone(),
                    )
                    .run_until(stop.clone().cancelled_owned()),
                ),
            ],
        };

        shutdown.await;
        tracing::info!(
            drain_seconds = drain.as_secs(),
            "shutting down: no new jobs; waiting for running ones"
        );
        stop.cancel();
        running.drain_within(drain).await?;
        db.close().await.ok();
        Ok(())
    }
}

/// The web server, ready to serve: its state built and its address known.
struct WebServer {
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    downloads: crate::downloads::DownloadCounter,
    db: DatabaseConnection,
}

impl WebServer {
    async fn prepare(
        config: &Config,
        db: &DatabaseConnection,
        queue: &Queue,
        store: Store,
        listener: TcpListener,
    ) -> anyhow::Result<WebServer> {
        let address = listener.local_addr()?;
        let public_url = public_url(config, &listener)?;
        let state = AppState::new(config, db.clone(), queue.clone(), store, &public_url).await?;
        tracing::info!(%address, %public_url, "listening");
        Ok(WebServer {
            listener,
            downloads: state.downloads.clone(),
            db: db.clone(),
            app: router::router(state),
            limits: config.http.clone(),
        })
    }

    /// Serves until `stop`; the download counts are flushed as they go and once more after
    /// the last request.
    fn spawn(self, stop: &CancellationToken) -> JoinHandle<()> {
        let WebServer {
            listener,
            app,
            limits,
            downloads,
            db,
        } = self;
        let stopped = stop.clone().cancelled_owned();
        let (served_tx, served_rx) = tokio::sync::oneshot::channel::<()>();
        let watching = tokio::spawn(crate::web::documents::watch_other_processes(
            db.clone(),
            stop.clone().cancelled_owned(),
        ));
        let flushing = tokio::spawn(downloads.run_until(db, limits.downloads_flush, async {
            let _ = served_rx.await;
        }));
        tokio::spawn(async move {
            server::serve(listener, app, &limits, stopped).await;
            let _ = served_tx.send(());
            let _ = flushing.await;
            let _ = watching.await;
        })
    }
}

/// Where readers reach the server: `public_url`, else the address it listens on.
fn public_url(config: &Config, listener: &TcpListener) -> anyhow::Result<String> {
    Ok(match &config.public_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    })
}

/// What a release job needs, from the config.
fn job_context(
    config: &Config,
    db: &DatabaseConnection,
    queue: &Queue,
    store: Store,
    fetch_program: PathBuf,
) -> JobContext {
    JobContext {
        db: db.clone(),
        queue: queue.clone(),
        store,
        mirrors_dir: config.mirrors_dir(),
        fetch_program,
        fetch_timeout: config.worker.fetch_timeout(),
        auth: Arc::new(
            config
                .projects
                .iter()
                .map(|p| (p.name.clone(), p.auth.clone()))
                .collect(),
        ),
        signer: None,
    }
}

fn spawn_workers(
    config: &Config,
    queue: Queue,
    context: JobContext,
    stop: &CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    let limits = worker::Limits {
        workers: config.workers,
        job_timeout: config.worker.job_timeout(),
        drain: config.worker.drain(),
    };
    tokio::spawn(worker::run(
        queue,
        context,
        limits,
        stop.clone().cancelled_owned(),
    ))
}

/// What `run_until` started, each told to stop by the same token.
struct Running {
    server: Option<JoinHandle<()>>,
    workers: Option<JoinHandle<std::io::Result<()>>>,
    maintenance: Option<JoinHandle<()>>,
    /// Loops that end when told to stop: the notification sender, the rescan scheduler and
    /// the retention curator.
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for everything to end: the web server for open requests, the workers for running
    /// jobs. None may hold the exit past the drain (plus a moment to close the database).
    async fn drain_within(self, drain: Duration) -> anyhow::Result<()> {
        let finished = async {
            if let Some(server) = self.server {
                server.await.context("web server")?;
            }
            if let Some(workers) = self.workers {
                workers.await?.context("workers")?;
            }
            if let Some(maintenance) = self.maintenance {
                maintenance.await.context("maintenance")?;
            }
            for task in self.background {
                task.await.context("background task")?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(drain + Duration::from_secs(1), finished).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("the drain time is over; exiting with work still running");
                Ok(())
            }
        }
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
}
