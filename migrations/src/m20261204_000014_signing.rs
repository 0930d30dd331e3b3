//! Signed releases and their provenance.
//!
//! - `release_files.minisig`: the file's minisign signature (a `.minisig` file's text).
//! - `releases.sums_minisig`: the signature of the release's `SHA256SUMS`.
//! - `releases.provenance`: the release's provenance, a DSSE envelope holding an in-toto
//!   Statement (one JSON line; unsigned when signing was off).
//! - `releases.signing_key`: the minisign public key (base64) that signed the release, so that
//!   its page shows the key that verifies it after the key is rotated.
//!
//! All written in the release's own transaction: no row is visible without them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReleaseFiles {
    Table,
    Minisig,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
    SumsMinisig,
    Provenance,
    SigningKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for (table, column) in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(text_null(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in columns().into_iter().rev() {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn columns() -> [(DynIden, DynIden); 4] {
    [
        (
            ReleaseFiles::Table.into_iden(),
            ReleaseFiles::Minisig.into_iden(),
        ),
        (
            Releases::Table.into_iden(),
            Releases::SumsMinisig.into_iden(),
        ),
        (
            Releases::Table.into_iden(),
            Releases::Provenance.into_iden(),
        ),
        (
            Releases::Table.into_iden(),
            Releases::SigningKey.into_iden(),
        ),
    ]
}
