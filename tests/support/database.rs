//! The database a test app runs on: SQLite in its data dir, or a fresh PostgreSQL database
//! per app when `BALER_TEST_POSTGRES` names a server.

use sea_orm::ConnectionTrait;

/// Which database a test app runs on.
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite,
    /// A server URL; each app gets a fresh database on it.
    Postgres(String),
}

impl TestDb {
    /// PostgreSQL when `BALER_TEST_POSTGRES` names a server (CI starts one).
    pub fn postgres() -> Option<TestDb> {
        std::env::var("BALER_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
            .map(TestDb::Postgres)
    }

    /// The `database_url` for a new app: a fresh PostgreSQL database, or none (SQLite in the
    /// data dir, baler's default).
    pub async fn fresh_database_url(&self) -> Option<String> {
        match self {
            TestDb::Sqlite => None,
            TestDb::Postgres(server) => {
                let name = format!("baler_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sea_orm::Database::connect(server.as_str())
                    .await
                    .expect("BALER_TEST_POSTGRES is reachable");
                // Raw SQL: creating a database is outside what entities describe.
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                Some(with_database(server, &name))
            }
        }
    }
}

/// `postgres://u@h/db?x` with `db` replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = url[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(url.len());
    let query_start = url[path_start..]
        .find('?')
        .map(|i| i + path_start)
        .unwrap_or(url.len());
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

/// Runs each named `async fn(TestDb)` as two tests: on SQLite, and on PostgreSQL when
/// `BALER_TEST_POSTGRES` is set (CI sets it; without it the PostgreSQL variant says so).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::TestDb::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::support::TestDb::postgres() {
                    Some(db) => super::$name(db).await,
                    None => eprintln!("not run: set BALER_TEST_POSTGRES to a PostgreSQL URL"),
                }
            }
        }
    )* };
}
