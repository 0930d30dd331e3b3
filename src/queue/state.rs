//! The states of a queue item (`queue_items.state`). The queue's SQL spells them in its
//! statements (the partial unique indexes name `pending` and `running`); Rust code reads and
//! compares them as [`QueueState`].

use sea_orm::QueryResult;
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use super::QueueError;
use crate::names::UnknownName;

/// Where an item is in its life (see ARCHITECTURE.md, "The queue's states").
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
    VariantNames,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownName,
    parse_err_fn = unknown_state
)]
pub enum QueueState {
    /// Waiting for a worker; at most one per project.
    Pending,
    /// Claimed by a worker holding a lease; at most one per project.
    Running,
    /// A claim being given back (inside the transaction that requeues or fails it).
    Releasing,
    /// Acknowledged at the revision it claimed.
    Done,
    /// Out of attempts; kept for an admin to see and retry.
    Failed,
}

fn unknown_state(value: &str) -> UnknownName {
    UnknownName::new("queue state", value, <QueueState as VariantNames>::VARIANTS)
}

impl QueueState {
    /// The name the `state` column holds.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The `state` column of a queue row.
    pub(super) fn of_row(row: &QueryResult) -> Result<QueueState, QueueError> {
        let name: String = row.try_get("", "state")?;
        Ok(name.parse()?)
    }
}

/// Pages and tests compare a state with its name (`item.state == "failed"`).
impl PartialEq<&str> for QueueState {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

#[cfg(test)]
mod tests {
    use super::QueueState;

    #[test]
    fn one_spelling_everywhere() {
        crate::names::assert_one_spelling::<QueueState>();
        for state in <QueueState as strum::VariantArray>::VARIANTS {
            assert_eq!(*state, state.as_str());
        }
        // The command line pads the state in its table.
        assert_eq!(format!("{:<8}|", QueueState::Done), "done    |");
        assert_eq!(
            "lost".parse::<QueueState>().unwrap_err().to_string(),
            "unknown queue state `lost`, expected one of: pending, running, releasing, done, failed"
        );
    }
}
