//! `baler key generate`, `baler sign --all` and `baler verify`: the commands of signed
//! releases (see `crate::signing`).

use std::path::PathBuf;

use crate::admin::Actor;
use crate::config::Config;
use crate::signing::verify::{Verdict, VerifyRequest};
use crate::signing::{Signer, backfill};

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a minisign key pair for signing releases: DIR/baler.key (the secret key, mode
    /// 0600) and DIR/baler.pub. Never overwrites a key.
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Encrypt the secret key with the password in this environment variable (then set
        /// `[signing] password_env` to the same variable). Without it the key is not
        /// encrypted, like `minisign -G -W`.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// Every release that has no signature yet (required: signing is never implicit).
    #[arg(long)]
    pub all: bool,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The repository the release was built from: a local path or a URL to clone.
    #[arg(value_name = "URL|PATH")]
    pub source: String,
    /// The tag or branch the release was built from.
    #[arg(long = "ref", value_name = "REF")]
    pub reference: String,
    /// The release's page: `https://HOST/projects/NAME/releases/VERSION`.
    #[arg(long, value_name = "URL")]
    pub release: String,
    /// The minisign public key to trust: its base64 line or a `.pub` file. Default: the
    /// server's `/.well-known/baler/minisign.pub` (pin the key to trust nothing the server
    /// says).
    #[arg(long, value_name = "KEY|FILE")]
    pub public_key: Option<String>,
    #[command(flatten)]
    pub access: super::RepositoryAccess,
}

pub async fn key_command(command: KeyCommand) -> anyhow::Result<()> {
    let KeyCommand::Generate { out, password_env } = command;
    let password = match password_env {
        Some(var) => Some(
            std::env::var(&var)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("--password-env names {var}, which is not set or empty")
                })?,
        ),
        None => None,
    };
    let encrypted = password.is_some();
    let made =
        tokio::task::spawn_blocking(move || crate::signing::generate(&out, password)).await??;
    println!("secret key: {}", made.secret_path.display());
    println!("public key: {}", made.public_path.display());
    println!("key id:     {}", made.key_id);
    println!("\nTo sign releases, add to baler.toml:\n");
    println!("[signing]");
    println!(
        "minisign_key_file = {:?}",
        made.secret_path.display().to_string()
    );
    if encrypted {
        println!("password_env = \"...\"  # the variable that holds the password");
    }
    println!(
        "\nConsumers verify with: minisign -Vm FILE -P {}",
        made.public_key
    );
    Ok(())
}

/// `baler sign --all`, audited as `cli:$USER` (one `release.sign` row per release).
pub async fn sign_command(config: &Config, args: SignArgs) -> anyhow::Result<()> {
    if !args.all {
        anyhow::bail!("say which releases: `baler sign --all` signs every unsigned release");
    }
    let settings = config.signing.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "signing is off: set [signing] minisign_key_file (see `baler key generate`)"
        )
    })?;
    let signer = Signer::load(settings)?;
    let db = super::open(config).await?;
    let store = config.open_store()?;
    let report = backfill::sign_all(&db, &store, &signer, &Actor::cli()).await?;
    // The JSON API and feeds name each release's key: render them again.
    crate::web::documents::refresh(&db, store.as_ref()).await?;
    for release in &report.signed {
        println!("signed {release}");
    }
    for refusal in &report.refused {
        eprintln!("not signed: {refusal}");
    }
    println!(
        "{} releases signed with key {}; {} refused",
        report.signed.len(),
        signer.key_id(),
        report.refused.len()
    );
    if !report.refused.is_empty() {
        anyhow::bail!("{} releases could not be signed", report.refused.len());
    }
    Ok(())
}

/// `baler verify`: prints `OK …` and exits 0, or the first difference and exits 1.
pub async fn verify_command(args: VerifyArgs) -> anyhow::Result<()> {
    let request = VerifyRequest {
        source: args.source,
        reference: args.reference,
        release: args.release,
        public_key: args.public_key,
        auth: args.access.into_auth()?,
    };
    match crate::signing::verify::verify(request).await? {
        Verdict::Ok(summary) => {
            println!("OK {summary}");
            Ok(())
        }
        Verdict::Differs(what) => {
            println!("DIFFERS {what}");
            std::process::exit(1);
        }
    }
}
