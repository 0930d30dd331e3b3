use sea_orm::entity::prelude::*;

/// A document readers fetch (a Composer `p2` file, a Drupal update feed, an Atom feed, the
/// project JSON or page), rendered when releases change and served as stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "documents")]
pub struct Model {
    /// Its URL path, e.g. `/p2/acme/widget.json`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// The project it belongs to; none for documents of every project (`/packages.json`).
    pub project_id: Option<i64>,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The quoted strong `ETag`, from the body's sha256.
    pub etag: String,
    /// When the body last changed, in Unix seconds (`Last-Modified`).
    pub modified_at: i64,
    /// The `Link` header of a paginated list's first page.
    pub link: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
