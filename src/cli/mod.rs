//! The command line. Every command takes `--config FILE` (or `BALER_CONFIG`).

mod package;
mod signing;

pub use package::{PackageArgs, RepositoryAccess};

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::admin::tokens::{self, Scope};
use crate::admin::{Actor, AdminActions};
use crate::config::Config;
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
    /// The minisign key that signs releases.
    Key {
        #[command(subcommand)]
        command: signing::KeyCommand,
    },
    /// Sign releases made before signing was on, with `[signing]`'s key (audited).
    Sign(signing::SignArgs),
    /// Rebuild a published release from its repository, compare the bytes with the published
    /// files and check their signatures and provenance: prints OK, or the first difference.
    Verify(Box<signing::VerifyArgs>),
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// List the projects in the database (config-file projects are synced in at start).
    List,
    /// Add a project that lives in the database: FILE holds one `[[projects]]` entry's keys
    /// (TOML). A public repository only; the config file wins on a name it also has.
    Add {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Disable a project added with `add` or the API; its releases and files are kept.
    Remove { name: String },
    /// Create baler's webhook on the repository's host (or update the one it has), then ask
    /// the host to ping it. Uses the project's `api_url` and `api_token_env` (else its fetch
    /// token); makes and keeps a secret if the project has none. Running it again leaves one
    /// webhook.
    Connect { name: String },
    /// Remove baler's webhook from the repository's host.
    Disconnect { name: String },
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
        /// What it may do: `admin` (every admin route and the admin page), `release` (request
        /// releases of --project and follow their items) or `read` (follow --project's items).
        /// The default: `release` with --project, else `admin`.
        #[arg(long, value_enum)]
        scope: Option<Scope>,
        /// The one project a `release` or `read` token covers.
        #[arg(long)]
        project: Option<String>,
    },
    /// Every named token: id, name, scope, created, last used, revoked.
    List,
    /// Refuse the token from now on, on every route and in every admin page session.
    Revoke { id: i64 },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        config: config_file,
        command,
    } = cli;
    // Offline packaging and the fetch child need no configuration, so a broken config file
    // does not stop them; every other command reads it first.
    let config = || Config::load(config_file.as_deref());
    match command {
        Command::Package(args) => {
            tokio::task::spawn_blocking(move || package::package_command(*args)).await?
        }
        Command::FetchMirror => fetch_mirror().await,
        Command::Serve { demo, no_worker } => serve(config()?, demo, no_worker).await,
        Command::Worker => work(config()?).await,
        Command::Migrate => migrate(&config()?).await,
        Command::Project {
            command: ProjectCommand::List,
        } => list_projects(&config()?).await,
        Command::Project {
            command: ProjectCommand::Add { file },
        } => add_project(&config()?, &file).await,
        Command::Project {
            command: ProjectCommand::Remove { name },
        } => remove_project(&config()?, &name).await,
        Command::Project {
            command: ProjectCommand::Connect { name },
        } => connect_project(&config()?, &name).await,
        Command::Project {
            command: ProjectCommand::Disconnect { name },
        } => disconnect_project(&config()?, &name).await,
        Command::Queue { command } => queue_command(&config()?, command).await,
        Command::Token { command } => token_command(&config()?, command).await,
        Command::Key { command } => signing::key_command(command).await,
        Command::Sign(args) => signing::sign_command(&config()?, args).await,
        Command::Verify(args) => signing::verify_command(*args).await,
    }
}

/// `baler serve`: with `--demo`, a demo project is registered and its tag queued first.
async fn serve(mut config: Config, with_demo: bool, no_worker: bool) -> anyhow::Result<()> {
    let demo_tag = if with_demo {
        Some(demo::prepare(&mut config)?)
    } else {
        None
    };
    let configured_url = config.public_url.clone();
    let role = if no_worker { Role::Web } else { Role::Serve };
    let app = Application::build(config, role).await?;
    if let Some(tag) = demo_tag {
        let public_url = configured_url.unwrap_or_else(|| {
            format!(
                "http://{}",
                app.local_addr().expect("serving binds a listener")
            )
        });
        queue_demo(&app, &tag, &public_url).await?;
    }
    app.run_until(shutdown_signal()).await
}

async fn queue_demo(app: &Application, tag: &str, public_url: &str) -> anyhow::Result<()> {
    let project = projects::find(app.db(), demo::DEMO_PROJECT)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo project was not registered"))?;
    demo::queue_demo(app.queue(), project.id, tag).await?;
    eprintln!(
        "demo: project `demo` queued; open {public_url}/projects/demo\n\
         demo: its webhook is {public_url}/hooks/demo, secret `{}`",
        demo::DEMO_SECRET
    );
    Ok(())
}

/// `baler worker`.
async fn work(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config, Role::Worker).await?;
    app.run_until(shutdown_signal()).await
}

/// `baler fetch-mirror`, the workers' fetch child: its exit code is its answer.
async fn fetch_mirror() -> anyhow::Result<()> {
    let code = tokio::task::spawn_blocking(crate::git::run_fetch_child).await?;
    std::process::exit(code);
}

/// `baler migrate`.
async fn migrate(config: &Config) -> anyhow::Result<()> {
    let conn = db::connect(&config.database_url).await?;
    db::migrate(&conn).await?;
    println!(
        "migrations applied to {}",
        crate::redact::redact(&config.database_url)
    );
    Ok(())
}

/// `baler project list`.
async fn list_projects(config: &Config) -> anyhow::Result<()> {
    let conn = open(config).await?;
    projects::sync_from_config(&conn, &config.projects, projects::Departures::Disable).await?;
    let store = config.open_store()?;
    crate::web::documents::refresh(&conn, store.as_ref()).await?;
    // Disabled ones too: they left the config file, but their releases are kept.
    let list = projects::list_all(&conn).await?;
    if list.is_empty() {
        println!("no projects; add [[projects]] to the config file");
    }
    for p in list {
        let state = match p.disabled_at {
            Some(since) => format!("disabled since {}", crate::time::rfc3339(since)),
            None => "enabled".to_string(),
        };
        println!(
            "{:<20} {:<7} {:<6} {:<36} {}",
            p.name,
            p.provider.as_str(),
            p.layout.as_str(),
            state,
            crate::redact::redact(&p.repo)
        );
    }
    Ok(())
}

/// `baler project add FILE`, audited as `cli:$USER`.
async fn add_project(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let entry: crate::config::ProjectConfig =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let settings = entry
        .resolve_added(config.rescan_every)
        .map_err(|e| anyhow::anyhow!("{}: `{}` {}", file.display(), e.field, e.message))?;
    let (actions, store) = project_actions(config).await?;
    let (project, changing) = actions
        .add_project(&Actor::cli(), &settings, async |txn, id| {
            crate::web::documents::refresh_project_on(txn, id, store.as_ref()).await
        })
        .await?;
    drop(changing);
    println!(
        "added {}: webhooks go to /hooks/{}",
        project.name, project.name
    );
    Ok(())
}

/// `baler project remove NAME`, audited as `cli:$USER`.
async fn remove_project(config: &Config, name: &str) -> anyhow::Result<()> {
    let (actions, store) = project_actions(config).await?;
    let (project, changing) = actions
        .remove_project(&Actor::cli(), name, async |txn, id| {
            crate::web::documents::refresh_project_on(txn, id, store.as_ref()).await
        })
        .await?;
    drop(changing);
    println!(
        "removed {}: disabled; its releases and files are kept",
        project.name
    );
    Ok(())
}

/// What `baler project connect|disconnect` act through, audited as `cli:$USER`.
async fn connector(config: &Config) -> anyhow::Result<crate::connect::Connector> {
    let conn = open(config).await?;
    let actions = AdminActions::new(
        conn.clone(),
        Queue::new(conn.clone(), config.queue_tuning()),
    );
    Ok(crate::connect::Connector::new(
        conn,
        actions,
        config.public_url.as_deref(),
        crate::connect::PING_WAIT,
    )?)
}

/// `baler project disconnect NAME`.
async fn disconnect_project(config: &Config, name: &str) -> anyhow::Result<()> {
    let credentials = crate::connect::Credentials::from_config(&config.projects, name);
    let removed = connector(config)
        .await?
        .disconnect(&Actor::cli(), name, &credentials)
        .await?;
    println!("removed {removed} webhooks of {name}");
    Ok(())
}

/// `baler project connect NAME`: fails when the host's ping was refused or never came.
async fn connect_project(config: &Config, name: &str) -> anyhow::Result<()> {
    use crate::connect::{Credentials, Ping};
    let credentials = Credentials::from_config(&config.projects, name);
    let done = connector(config)
        .await?
        .connect(&Actor::cli(), name, &credentials)
        .await?;
    println!(
        "{} {} webhook {} for {name}: {}",
        if done.created { "created" } else { "updated" },
        done.provider,
        done.hook_id,
        done.hook_url
    );
    if done.secret_generated {
        println!("made a webhook secret for {name} and kept it in the database");
    }
    if done.duplicates_removed > 0 {
        println!("removed {} copies of the webhook", done.duplicates_removed);
    }
    match done.ping {
        Ping::Arrived { status } => println!("ping: arrived (answered {status})"),
        Ping::Refused { status, reason } => {
            anyhow::bail!("ping: it arrived but was refused ({status}): {reason}")
        }
        Ping::NotSeen { waited_seconds } => anyhow::bail!(
            "ping: the host sent it, but it did not arrive within {waited_seconds} s; can the \
             host reach {}? (`public_url` must be an address the host can reach)",
            done.hook_url
        ),
        Ping::NotAsked { why } => println!("ping: {why}"),
    }
    Ok(())
}

async fn project_actions(config: &Config) -> anyhow::Result<(AdminActions, crate::store::Store)> {
    let conn = open(config).await?;
    let queue = Queue::new(conn.clone(), config.queue_tuning());
    Ok((AdminActions::new(conn, queue), config.open_store()?))
}

pub(crate) async fn open(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let conn = db::connect(&config.database_url).await?;
    db::migrate(&conn).await?;
    Ok(conn)
}

/// `baler queue …`: the admin actions, audited as `cli:$USER`.
async fn queue_command(config: &Config, command: QueueCommand) -> anyhow::Result<()> {
    let conn = open(config).await?;
    let queue = Queue::new(conn.clone(), config.queue_tuning());
    let actions = AdminActions::new(conn, queue.clone());
    let actor = Actor::cli();
    match command {
        QueueCommand::List => print_queue(&queue).await?,
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

/// `baler queue list`: one line per item, in queue order.
async fn print_queue(queue: &Queue) -> anyhow::Result<()> {
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
    Ok(())
}

/// `baler token …`: named admin tokens, created and revoked as audited actions.
async fn token_command(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let conn = open(config).await?;
    let queue = Queue::new(conn.clone(), config.queue_tuning());
    let actions = AdminActions::new(conn.clone(), queue);
    let actor = Actor::cli();
    match command {
        TokenCommand::Create {
            name,
            scope,
            project,
        } => {
            // `--project demo` alone means a release token: what a CI job needs.
            let scope = scope.unwrap_or(match project {
                Some(_) => Scope::Release,
                None => Scope::Admin,
            });
            let token = actions
                .create_token(&actor, &name, scope, project.as_deref())
                .await?;
            // The token alone on stdout, so `TOKEN=$(baler token create --name ci)` works.
            println!("{}", token.secret);
            eprintln!(
                "token {} ({}) created; it is shown only this once, baler keeps only its hash",
                token.id, token.name
            );
        }
        TokenCommand::List => print_tokens(&conn).await?,
        TokenCommand::Revoke { id } => {
            let name = actions.revoke_token(&actor, id).await?;
            println!("revoked token {id} ({name})");
        }
    }
    Ok(())
}

/// `baler token list`.
async fn print_tokens(conn: &DatabaseConnection) -> anyhow::Result<()> {
    let list = tokens::list(conn).await?;
    if list.is_empty() {
        println!("no named tokens; make one with `baler token create --name NAME`");
        return Ok(());
    }
    println!(
        "{:>4}  {:<24} {:<24} {:<20} {:<20} revoked",
        "id", "name", "scope", "created", "last used"
    );
    for t in list {
        let scope = match &t.project {
            Some(project) => format!("{} {project}", t.scope),
            None => t.scope.to_string(),
        };
        println!(
            "{:>4}  {:<24} {:<24} {:<20} {:<20} {}",
            t.id,
            t.name,
            scope,
            t.created_at,
            t.last_used_at.as_deref().unwrap_or("never"),
            t.revoked_at.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}
