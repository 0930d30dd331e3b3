//! Projects removed from the config, and Composer names with one owner.
