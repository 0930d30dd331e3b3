//! sea-orm entities, one file per table. Timestamps the queue compares in SQL are Unix
//! milliseconds (`i64`), which order and compare the same way on SQLite and PostgreSQL.

pub mod api_token;
pub mod audit_entry;
pub mod auth_failure;
pub mod curator_run;
pub mod delivery;
pub mod document;
pub mod download_count;
pub mod ended_session;
pub mod notification_attempt;
pub mod notification_message;
pub mod notification_subscriber;
pub mod project;
pub mod project_rescan;
pub mod queue_control;
pub mod queue_item;
pub mod ref_problem;
pub mod refusal_count;
pub mod release;
pub mod release_file;
pub mod server_key;

pub mod prelude {
    pub use super::api_token::Entity as ApiToken;
    pub use super::audit_entry::Entity as AuditEntry;
    pub use super::auth_failure::Entity as AuthFailure;
    pub use super::curator_run::Entity as CuratorRun;
    pub use super::delivery::Entity as Delivery;
    pub use super::document::Entity as Document;
    pub use super::download_count::Entity as DownloadCount;
    pub use super::ended_session::Entity as EndedSession;
    pub use super::notification_attempt::Entity as NotificationAttempt;
    pub use super::notification_message::Entity as NotificationMessage;
    pub use super::notification_subscriber::Entity as NotificationSubscriber;
    pub use super::project::Entity as Project;
    pub use super::project_rescan::Entity as ProjectRescan;
    pub use super::queue_control::Entity as QueueControl;
    pub use super::queue_item::Entity as QueueItem;
    pub use super::ref_problem::Entity as RefProblem;
    pub use super::refusal_count::Entity as RefusalCount;
    pub use super::release::Entity as Release;
    pub use super::release_file::Entity as ReleaseFile;
    pub use super::server_key::Entity as ServerKey;
}
