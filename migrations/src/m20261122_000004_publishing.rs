//! Publishing: what the Drupal update feed says of a project (its type and supported
//! branches); the `composer.json` each release was built from, for the Composer repository
//! (dependencies, autoload and type come from the package itself); and each release's notes
//! (the commits since the previous release of its line).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    DrupalType,
    SupportedBranches,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
    ComposerJson,
    Notes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string(Projects::DrupalType)
                .default("project_module")
                .to_owned(),
            text_null(Projects::SupportedBranches),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Projects::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            text_null(Releases::ComposerJson),
            text_null(Releases::Notes),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Releases::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Releases::Notes, Releases::ComposerJson] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Releases::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [Projects::SupportedBranches, Projects::DrupalType] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Projects::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
