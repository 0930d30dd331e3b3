//! Every host, signed the way it signs, and every way a delivery is refused. The hosts' own
//! servers cannot be reached from here: their deliveries are reproduced from the documented
//! payload shapes in `fixtures/webhooks/` and signed with their algorithms.
//!
//! One file per host for what only that host does; the checks every host shares (the
//! repository check, redeliveries and deletions, refusals, the deliveries log) have their own.

mod bitbucket;
mod delivery_log;
mod gitea;
mod github;
mod gitlab;
mod redelivery;
mod refusals;
mod repository_check;

use baler::hooks::verify::github_signature;

use crate::support::fixture;

/// An HMAC-SHA256 of `body` in hex, without GitHub's `sha256=` prefix (as Gitea sends it).
fn hex_hmac(secret: &str, body: &[u8]) -> String {
    github_signature(secret, body)
        .trim_start_matches("sha256=")
        .to_string()
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".into())
}

/// Gitea's push payload (`fixtures/webhooks/gitea/push.json`) for repository `repo`.
fn gitea_payload(repo: &str, git_ref: &str, commit: &str) -> Vec<u8> {
    let mut payload = fixture("webhooks/gitea/push.json");
    payload["ref"] = git_ref.into();
    payload["after"] = commit.into();
    payload["head_commit"]["id"] = commit.into();
    payload["repository"]["clone_url"] = repo.into();
    serde_json::to_vec(&payload).unwrap()
}
