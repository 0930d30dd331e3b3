//! `baler package`: one ref packaged offline, and how it (and `baler verify`) reach a private
//! repository.

use std::path::PathBuf;

use crate::git::RemoteAuth;
use crate::package::offline::{self, OfflineRequest};
use crate::package::{ArchiveFormat, Layout};

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
    #[arg(long, value_enum, default_value_t = Layout::Plain)]
    pub layout: Layout,
    /// Formats to write (default: both).
    #[arg(long = "format", value_enum)]
    pub formats: Vec<ArchiveFormat>,
    #[command(flatten)]
    pub access: RepositoryAccess,
    /// No progress bar even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How `baler package` and `baler verify` reach a private repository.
#[derive(clap::Args, Debug)]
pub struct RepositoryAccess {
    /// A private repository over HTTPS: the environment variable holding an access token.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The user name sent with the token.
    #[arg(long, default_value = "x-access-token")]
    pub http_user: String,
    /// A private repository over SSH: the private key file.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
}

impl RepositoryAccess {
    /// The credentials, the token read from the variable `--token-env` names.
    pub fn into_auth(self) -> anyhow::Result<RemoteAuth> {
        let token = match &self.token_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!(
                    "--token-env names the environment variable {var}, which is not set"
                )
            })?),
            None => None,
        };
        Ok(RemoteAuth {
            http_user: self.http_user,
            token,
            ssh_key: self.ssh_key,
            ssh_passphrase: None,
        })
    }
}

pub fn package_command(args: PackageArgs) -> anyhow::Result<()> {
    let auth = args.access.into_auth()?;
    let name = match args.name {
        Some(name) => name,
        None => offline::default_name(&args.source)?,
    };
    crate::config::validate_project_name(&name)
        .map_err(|e| anyhow::anyhow!("--name {name:?}: {e}"))?;
    let request = OfflineRequest {
        source: args.source,
        reference: args.reference,
        out: args.out,
        name,
        layout: args.layout,
        formats: args.formats,
        auth,
        progress: !args.quiet,
    };
    for file in offline::package(&request)?.files {
        println!(
            "{}  {:>12}  {}",
            file.sha256,
            file.size,
            file.path.display()
        );
    }
    Ok(())
}
