//! `baler sign --all`: signs the releases that have no signature yet (made while signing was
//! off, or before baler signed), with the key `[signing]` names. Each release is signed from
//! its stored bytes, which must still match the sha256 its rows recorded, and written in its
//! own transaction with an audit row (`release.sign`). Releases already signed, by this key or
//! an older one, are left as they are: a rotated key's signatures stay valid under it.

use std::io::Read;

use entities::{project, release, release_file};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder,
};
use sha2::{Digest, Sha256};

use super::provenance::Envelope;
use super::{ReleaseSignatures, Signer, trusted_comment};
use crate::admin::Actor;
use crate::admin::audit::{self, AuditAction};
use crate::store::{Located, Store};

/// What `baler sign --all` did.
#[derive(Debug, Default)]
pub struct SignReport {
    /// `project version` of each release signed.
    pub signed: Vec<String>,
    /// `project version: why` of each release left unsigned.
    pub refused: Vec<String>,
}

/// Signs every unsigned release. A release whose stored file is missing or no longer matches
/// its recorded sha256 is refused (signing it would vouch for bytes nobody published) and the
/// others go on.
pub async fn sign_all(
    db: &DatabaseConnection,
    store: &Store,
    signer: &Signer,
    actor: &Actor,
) -> anyhow::Result<SignReport> {
    let unsigned = release::Entity::find()
        .filter(release::Column::SigningKey.is_null())
        .find_also_related(project::Entity)
        .order_by_asc(release::Column::Id)
        .all(db)
        .await?;
    let mut report = SignReport::default();
    for (row, project) in unsigned {
        let Some(project) = project else { continue };
        let label = format!("{} {}", project.name, row.version);
        match sign_one(db, store, signer, actor, &project.name, row).await {
            Ok(true) => report.signed.push(label),
            // Signed or rebuilt meanwhile, or no files left to sign: nothing to do.
            Ok(false) => {}
            Err(e) => report.refused.push(format!("{label}: {e:#}")),
        }
    }
    Ok(report)
}

/// Signs one release; `false` when it changed since it was read (signed or rebuilt meanwhile)
/// or has no files left.
async fn sign_one(
    db: &DatabaseConnection,
    store: &Store,
    signer: &Signer,
    actor: &Actor,
    project: &str,
    row: release::Model,
) -> anyhow::Result<bool> {
    let files = release_file::Entity::find()
        .filter(release_file::Column::ReleaseId.eq(row.id))
        .all(db)
        .await?;
    if files.is_empty() {
        // Retention removed them (a deleted tag's files): nothing is served, nothing to sign.
        return Ok(false);
    }
    let comment = trusted_comment(project, &row.version, &row.commit);
    let mut signatures = ReleaseSignatures {
        key: Some(signer.public_key()),
        ..Default::default()
    };
    for file in &files {
        let bytes = read_stored(store, project, &file.name).await?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 != file.sha256 {
            anyhow::bail!(
                "{} holds bytes with sha256 {sha256}, not the recorded {}; not signed",
                file.name,
                file.sha256
            );
        }
        signatures
            .files
            .push((file.name.clone(), signer.sign(&bytes[..], &comment)?));
    }
    let sums =
        crate::releases::sha256sums(files.iter().map(|f| (f.sha256.as_str(), f.name.as_str())));
    signatures.sums = Some(signer.sign(sums.as_bytes(), &comment)?);
    let provenance = match &row.provenance {
        Some(line) => {
            let mut envelope = Envelope::parse(line)?;
            envelope.sign_if_unsigned(signer)?;
            Some(envelope.to_line())
        }
        None => None,
    };

    let txn = crate::db::begin_write(db).await?;
    // Still the release that was read: unsigned, at the same commit, with the same files.
    let Some(current) = release::Entity::find_by_id(row.id).one(&txn).await? else {
        return Ok(false);
    };
    let current_files = release_file::Entity::find()
        .filter(release_file::Column::ReleaseId.eq(row.id))
        .all(&txn)
        .await?;
    let same_files = current_files.len() == files.len()
        && current_files
            .iter()
            .all(|f| files.iter().any(|g| g.id == f.id && g.sha256 == f.sha256));
    if current.signing_key.is_some() || current.commit != row.commit || !same_files {
        return Ok(false);
    }
    for file in current_files {
        let minisig = signatures.of_file(&file.name);
        let mut model = file.into_active_model();
        model.minisig = Set(minisig);
        model.update(&txn).await?;
    }
    let mut model = current.into_active_model();
    model.sums_minisig = Set(signatures.sums.clone());
    model.provenance = Set(provenance);
    model.signing_key = Set(signatures.key.clone());
    model.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        AuditAction::ReleaseSign,
        &format!("{project} {}", row.version),
        Some(format!(
            "minisign key {}; {} files",
            signer.key_id(),
            files.len()
        )),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// A stored file's bytes.
async fn read_stored(store: &Store, project: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    match store.locate(project, name) {
        Some(Located::File(path)) => {
            let bytes = tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                std::fs::File::open(&path)
                    .and_then(|mut file| file.read_to_end(&mut bytes))
                    .map(|_| bytes)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
            })
            .await??;
            Ok(bytes)
        }
        Some(Located::Object(object)) => Ok(object.bytes().await?.to_vec()),
        None => anyhow::bail!("{name} is not in the store"),
    }
}
