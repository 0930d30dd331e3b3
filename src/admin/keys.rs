//! Keys a baler installation makes once and keeps in its database, so that they survive
//! restarts and every web process (several, on PostgreSQL) uses the same one.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use super::AdminError;

/// 64 bytes: the cookie crate's signing and encryption halves.
pub const SESSION_KEY_LEN: usize = 64;

/// The key admin session cookies are signed with. The first process to ask makes it; a
/// process racing it loses the insert and reads the winner's key.
pub async fn session_key(db: &DatabaseConnection) -> Result<Vec<u8>, AdminError> {
    let fresh = hex::encode(super::random_bytes::<SESSION_KEY_LEN>()?);
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
        vec![
            "session".into(),
            fresh.into(),
            crate::time::now_millis().into(),
        ],
    ))
    .await?;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT value FROM server_keys WHERE name = $1",
            vec!["session".into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the session key".into()))?;
    let value: String = row.try_get("", "value")?;
    match hex::decode(&value) {
        Ok(key) if key.len() == SESSION_KEY_LEN => Ok(key),
        _ => Err(AdminError::Invalid(
            "the stored session key (server_keys row `session`) is damaged; delete the row \
             and restart (everyone will have to log in again)"
                .into(),
        )),
    }
}
