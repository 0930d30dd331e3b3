//! The command line. Every command takes `--config FILE` (or `BALER_CONFIG`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::queue::QueueTuning;
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
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// List the projects in the database (config-file projects are synced in at start).
    List,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { demo } => {
            let demo_tag = if demo {
                Some(demo::prepare(&mut config)?)
            } else {
                None
            };
            let tuning = QueueTuning {
                max_attempts: config.max_attempts,
                ..QueueTuning::default()
            };
            let configured_url = config.public_url.clone();
            let app = Application::build(config, Role::Serve, tuning).await?;
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
            app.run_until(shutdown_signal(), std::time::Duration::from_secs(120))
                .await
        }
        Command::Worker => {
            let tuning = QueueTuning {
                max_attempts: config.max_attempts,
                ..QueueTuning::default()
            };
            let app = Application::build(config, Role::Worker, tuning).await?;
            app.run_until(shutdown_signal(), std::time::Duration::from_secs(120))
                .await
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
            let conn = db::connect(&config.database_url).await?;
            db::migrate(&conn).await?;
            projects::sync_from_config(&conn, &config.projects).await?;
            let list = projects::list(&conn).await?;
            if list.is_empty() {
                println!("no projects; add [[projects]] to the config file");
            }
            for p in list {
                println!(
                    "{:<20} {:<7} {:<6} {}",
                    p.name,
                    p.provider.as_str(),
                    p.layout.as_str(),
                    p.repo
                );
            }
            Ok(())
        }
    }
}
