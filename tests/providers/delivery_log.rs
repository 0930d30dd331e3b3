//! The deliveries log keeps a retention window.

use entities::delivery;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_older_than_the_retention_window_are_pruned() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.github_push("widget", "refs/heads/main", "abc").await;
    app.github_push("widget", "refs/heads/main", "def").await;
    let old = chrono::Utc::now().timestamp_millis()
        - (baler::deliveries::RETENTION_DAYS + 1) * 24 * 3600 * 1000;
    // The oldest delivery, dated back past the window.
    let oldest = app.delivery_rows().await[0].id;
    delivery::Entity::update_many()
        .col_expr(delivery::Column::ReceivedAt, Expr::value(old))
        .filter(delivery::Column::Id.eq(oldest))
        .exec(&app.db)
        .await
        .unwrap();
    assert_eq!(baler::deliveries::prune(&app.db).await.unwrap(), 1);
    assert_eq!(app.delivery_count().await, 1);
}
