//! The command line. Every command takes `--config FILE` (or `BALER_CONFIG`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::admin::{Actor, AdminActions, tokens};
use crate::config::{ArchiveFormat, Config, Layout};
use crate::git::RemoteAuth;
use crate::package::offline::{self, OfflineRequest};
use crate::queue::Queue;
use crate::startup::{Application, Role, shutdown_signal};
use crate::{db, demo, projects};

#[derive(Parser, Debug)]
#[command(
    name = "baler",
    version,
    about = "Release packager for Git repositories: webhooks in, reproducible zip and tar.gz releases out",
    long_about = "baler receives push and tag webhooks from GitHub and GitLab, keeps one deduplicated \
queue item per project, builds zip and tar.gz archives straight from the git tree and publishes \
them as release pages, downloads and a JSON API.\n\nWith no configuration at all, `baler serve` \
listens on 127.0.0.1:8080 and keeps everything under ./baler-data (SQLite)."
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./baler.toml when it exists.
    #[arg(long, global = true, env = "BALER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server and the workers in one process (the default way to run baler).
    Serve {
        /// Build a small demo repository under the data dir, register it as project `demo`
        /// and queue its tag, so there is a release to look at right away.
        #[arg(long)]
        demo: bool,
        /// Serve only: webhooks are queued, `baler worker` processes do the work.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run workers only, against a shared database (scale-out).
    Worker,
    /// Apply database migrations and exit (serve and worker also apply them at start).
    Migrate,
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Inspect and steer the release queue (the same actions as the admin API and page;
    /// audited as `cli:$USER`).
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Package one ref offline (no server, no database), exactly as the worker would, and
    /// print each file with its size and sha256.
    Package(Box<PackageArgs>),
    /// Internal: the worker's fetch child. Reads a fetch request on standard input, brings
    /// the mirror up to date and prints what it transferred.
    #[command(hide = true)]
    FetchMirror,
    /// Named admin tokens for the API and the admin page (besides `admin_token`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(clap::Args, Debug)]
pub struct PackageArgs {
    /// A local repository (bare or with a work tree) or a URL to clone.
    #[arg(value_name = "PATH|URL")]
    pub source: String,
    /// The tag, branch or commit to package.
    #[arg(long = "ref", value_name = "REF")]
    pub reference: String,
    /// Where the archives go.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// The project name in file names and the top directory (default: the repository's name).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value = "plain", value_parser = ["plain", "drupal"])]
    pub layout: String,
    /// Formats to write (default: both).
    #[arg(long = "format", value_parser = ["tar.gz", "zip"])]
    pub formats: Vec<String>,
    /// A private repository over HTTPS: the environment variable holding an access token.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The user name sent with the token.
    #[arg(long, default_value = "x-access-token")]
    pub http_user: String,
    /// A private repository over SSH: the private key file.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// No progress bar even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// List the projects in the database (config-file projects are synced in at start).
    List,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Running, pending (in queue order) and failed items.
    List,
    /// Stop claiming new items; webhooks still queue. Persists across restarts.
    Pause,
    /// Claim items again.
    Resume,
    /// Remove every pending item (running and failed ones stay).
    Flush,
    /// Remove one item that is not running.
    Delete { id: i64 },
    /// Queue a failed item again, with fresh attempts.
    Retry { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token and print it once, on stdout; only its sha256 is stored.
    Create {
        /// Who or what holds it (1-64 of A-Z a-z 0-9 . _ -); the audit log names it.
        #[arg(long)]
        name: String,
    },
    /// Every named token: id, name, created, last used, revoked.
    List,
    /// Refuse the token from now on, on every route and in every admin page session.
    Revoke { id: i64 },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Offline packaging needs no configuration, so a broken config file does not stop it.
    if let Command::Package(args) = cli.command {
        return tokio::task::spawn_blocking(move || package_command(*args)).await?;
    }
    if let Command::FetchMirror = cli.command {
        let code = tokio::task::spawn_blocking(crate::git::run_fetch_child).await?;
        std::process::exit(code);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { demo, no_worker } => {
            let demo_tag = if demo {
                Some(demo::prepare(&mut config)?)
            } else {
                None
            };
            let configured_url = config.public_url.clone();
            let role = if no_worker { Role::Web } else { Role::Serve };
            let app = Application::build(config, role).await?;
            let public_url = configured_url.unwrap_or_else(|| {
                format!(
                    "http://{}",
                    app.local_addr().expect("serving binds a listener")
                )
            });
            if let Some(tag) = demo_tag {
                let project = projects::find(app.db(), demo::DEMO_PROJECT)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the demo project was not registered"))?;
                demo::queue_demo(app.queue(), project.id, &tag).await?;
                eprintln!(
                    "demo: project `demo` queued; open {public_url}/projects/demo\n\
                     demo: its webhook is {public_url}/hooks/demo, secret `{}`",
                    demo::DEMO_SECRET
                );
            }
            app.run_until(shutdown_signal()).await
        }
        Command::Worker => {
            let app = Application::build(config, Role::Worker).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate => {
            let conn = db::connect(&config.database_url).await?;
            db::migrate(&conn).await?;
            println!(
                "migrations applied to {}",
                crate::startup::redact(&config.database_url)
            );
            Ok(())
        }
        Command::Project {
            command: ProjectCommand::List,
        } => {
            let conn = open(&config).await?;
            projects::sync_from_config(&conn, &config.projects, projects::Departures::Disable)
                .await?;
            // Disabled ones too: they left the config file, but their releases are kept.
            let list = projects::list_all(&conn).await?;
            if list.is_empty() {
                println!("no projects; add [[projects]] to the config file");
            }
            for p in list {
                let state = match p.disabled_at {
                    Some(since) => format!(
                        "disabled since {}",
                        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    None => "enabled".to_string(),
                };
                println!(
                    "{:<20} {:<7} {:<6} {:<36} {}",
                    p.name,
                    p.provider.as_str(),
                    p.layout.as_str(),
                    state,
                    crate::startup::redact(&p.repo)
                );
            }
            Ok(())
        }
        Command::Queue { command } => {
            let conn = open(&config).await?;
            let queue = Queue::new(conn.clone(), config.queue_tuning());
            let actions = AdminActions::new(conn, queue.clone());
            queue_command(&queue, &actions, command).await
        }
        Command::Token { command } => {
            let conn = open(&config).await?;
            let queue = Queue::new(conn.clone(), config.queue_tuning());
            let actions = AdminActions::new(conn.clone(), queue);
            token_command(&conn, &actions, command).await
        }
        Command::Package(_) | Command::FetchMirror => {
            unreachable!("handled before the config is read")
        }
    }
}

fn package_command(args: PackageArgs) -> anyhow::Result<()> {
    let token = match &args.token_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            anyhow::anyhow!("--token-env names the environment variable {var}, which is not set")
        })?),
        None => None,
    };
    let request = OfflineRequest {
        source: args.source,
        reference: args.reference,
        out: args.out,
        name: args.name,
        layout: Layout::parse(&args.layout).expect("clap checked the layout"),
        formats: args
            .formats
            .iter()
            .map(|f| ArchiveFormat::parse(f).expect("clap checked the format"))
            .collect(),
        auth: RemoteAuth {
            http_user: args.http_user,
            token,
            ssh_key: args.ssh_key,
            ssh_passphrase: None,
        },
        progress: !args.quiet,
    };
    for file in offline::package(&request)? {
        println!(
            "{}  {:>12}  {}",
            file.sha256,
            file.size,
            file.path.display()
        );
    }
    Ok(())
}

async fn open(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let conn = db::connect(&config.database_url).await?;
    db::migrate(&conn).await?;
    Ok(conn)
}

async fn queue_command(
    queue: &Queue,
    actions: &AdminActions,
    command: QueueCommand,
) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        QueueCommand::List => {
            let listing = queue.list().await?;
            println!(
                "queue {}",
                if listing.paused { "paused" } else { "running" }
            );
            println!(
                "{:>6} {:>4} {:<20} {:<8} {:>4} {:>4} refs",
                "id", "pos", "project", "state", "rev", "try"
            );
            for item in listing.items {
                println!(
                    "{:>6} {:>4} {:<20} {:<8} {:>4} {:>4} {}{}{}",
                    item.id,
                    item.position
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                    item.project,
                    item.state,
                    item.revision,
                    item.attempts,
                    item.ref_names().join(" "),
                    item.lease_owner
                        .as_deref()
                        .map(|owner| format!("  lease: {owner}"))
                        .unwrap_or_default(),
                    item.last_error
                        .as_deref()
                        .map(|e| format!("  error: {e}"))
                        .unwrap_or_default(),
                );
            }
        }
        QueueCommand::Pause => {
            actions.pause(&actor).await?;
            println!("queue paused: no new jobs start; webhooks still queue");
        }
        QueueCommand::Resume => {
            actions.resume(&actor).await?;
            println!("queue resumed");
        }
        QueueCommand::Flush => println!("removed {} pending items", actions.flush(&actor).await?),
        QueueCommand::Delete { id } => {
            actions.delete(&actor, id).await?;
            println!("deleted item {id}");
        }
        QueueCommand::Retry { id } => {
            let queued = actions.retry(&actor, id).await?;
            println!(
                "queued again as item {} at position {}",
                queued.item, queued.position
            );
        }
    }
    Ok(())
}

async fn token_command(
    conn: &DatabaseConnection,
    actions: &AdminActions,
    command: TokenCommand,
) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        TokenCommand::Create { name } => {
            let token = actions.create_token(&actor, &name).await?;
            // The token alone on stdout, so `TOKEN=$(baler token create --name ci)` works.
            println!("{}", token.secret);
            eprintln!(
                "token {} ({}) created; it is shown only this once, baler keeps only its hash",
                token.id, token.name
            );
        }
        TokenCommand::List => {
            let list = tokens::list(conn).await?;
            if list.is_empty() {
                println!("no named tokens; make one with `baler token create --name NAME`");
                return Ok(());
            }
            println!(
                "{:>4}  {:<24} {:<20} {:<20} revoked",
                "id", "name", "created", "last used"
            );
            for t in list {
                println!(
                    "{:>4}  {:<24} {:<20} {:<20} {}",
                    t.id,
                    t.name,
                    t.created_at,
                    t.last_used_at.as_deref().unwrap_or("never"),
                    t.revoked_at.as_deref().unwrap_or("-"),
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let name = actions.revoke_token(&actor, id).await?;
            println!("revoked token {id} ({name})");
        }
    }
    Ok(())
}
