//! The refs a queue item asks to release, stored as two flat JSON objects so that both
//! databases can merge them inside the upsert statement itself.

use std::collections::BTreeMap;

use sea_orm::QueryResult;
use serde::{Deserialize, Serialize};

use super::QueueError;

/// Branch → commit and tag → commit, as the hosts reported them (a commit may be empty when a
/// host does not say). Merging: the later push wins per branch; tags accumulate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRefs {
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl PendingRefs {
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty() && self.tags.is_empty()
    }

    /// The same merge the upsert does in SQL, for merges done in Rust (requeueing).
    pub fn merge(&mut self, later: PendingRefs) {
        self.branches.extend(later.branches);
        self.tags.extend(later.tags);
    }

    pub fn branches_json(&self) -> String {
        serde_json::to_string(&self.branches).expect("a string map serialises")
    }

    pub fn tags_json(&self) -> String {
        serde_json::to_string(&self.tags).expect("a string map serialises")
    }

    /// The refs of queue item `item`, from the `branches` and `tags` columns of its row (the
    /// one decode of them: claims, requeues, retries and the listing all read rows here).
    pub(super) fn of_row(row: &QueryResult, item: i64) -> Result<PendingRefs, QueueError> {
        let branches: String = row.try_get("", "branches")?;
        let tags: String = row.try_get("", "tags")?;
        let decode = || -> Result<PendingRefs, serde_json::Error> {
            Ok(PendingRefs {
                branches: serde_json::from_str(&branches)?,
                tags: serde_json::from_str(&tags)?,
            })
        };
        decode().map_err(|e| QueueError::BadRefs(item, e))
    }
}
