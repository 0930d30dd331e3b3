//! `baler serve --demo`: a real repository built under the data dir, registered as the project
//! `demo` and queued, so a first run shows a release page and a download within seconds.

use std::path::Path;

use crate::config::{Config, ProjectSettings, default_formats};
use crate::package::Layout;
use crate::provider::Provider;
use crate::queue::{PendingRefs, Queue};

pub const DEMO_PROJECT: &str = "demo";
pub const DEMO_SECRET: &str = "demo-secret";

/// Builds the demo repository (once) and adds the `demo` project to `config`.
pub fn prepare(config: &mut Config) -> anyhow::Result<String> {
    let repo_dir = config.data_dir.join("demo").join("demo.git");
    let tag = crate::git::demo::create_demo_repository(&repo_dir)?;
    let repo = file_url(&std::fs::canonicalize(&repo_dir)?);
    config.projects.retain(|p| p.name != DEMO_PROJECT);
    config.projects.push(ProjectSettings {
        name: DEMO_PROJECT.into(),
        title: "baler demo".into(),
        repo,
        provider: Provider::Github,
        secret: DEMO_SECRET.into(),
        previous_secret: None,
        allow_sha1: false,
        branches: vec!["main".into()],
        tags: vec!["*".into()],
        formats: default_formats(),
        layout: Layout::Plain,
        composer: Some("baler/demo".into()),
        drupal_type: "project_module".into(),
        supported_branches: None,
        auth: Default::default(),
        rescan_every: config.rescan_every,
        api_url: None,
        api_token: None,
    });
    Ok(tag.to_string())
}

/// Queues the demo's tag and branch, as a push would.
pub async fn queue_demo(queue: &Queue, project_id: i64, tag: &str) -> anyhow::Result<()> {
    let mut refs = PendingRefs::default();
    refs.tags.insert(tag.to_string(), String::new());
    refs.branches.insert("main".into(), String::new());
    queue.enqueue(project_id, &refs).await?;
    Ok(())
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}
