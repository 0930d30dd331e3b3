//! Webhook intake: verify the signature over the raw bytes, parse the host's payload, and decide
//! which refs (if any) the delivery asks baler to release. This module never touches the
//! database; the web handler hands the result to the queue.

pub mod event;
pub mod verify;

use axum::http::HeaderMap;

use crate::config::Provider;
use crate::projects::Project;
use crate::queue::PendingRefs;
use event::{HookEvent, PayloadError, RefKind};
use verify::SignatureError;

/// What a verified delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Ping,
    /// Refs to release; never empty.
    Release(PendingRefs),
    /// Verified, but nothing to release; the reason is sent back to the host.
    Nothing(String),
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("missing event header {0}")]
    MissingEvent(&'static str),
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies and interprets one delivery for `project`. The signature is checked first, over
/// `body` exactly as received; nothing is parsed before it holds.
pub fn interpret(
    project: &Project,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HookOutcome, HookError> {
    let event = match project.provider {
        Provider::Github => {
            verify::verify_github(
                &project.secret,
                header(headers, "x-hub-signature-256"),
                body,
            )?;
            let name = header(headers, "x-github-event")
                .ok_or(HookError::MissingEvent("X-GitHub-Event"))?;
            event::parse_github(name, body)?
        }
        Provider::Gitlab => {
            verify::verify_gitlab_token(&project.secret, header(headers, "x-gitlab-token"))?;
            let name = header(headers, "x-gitlab-event")
                .ok_or(HookError::MissingEvent("X-Gitlab-Event"))?;
            event::parse_gitlab(name, body)?
        }
    };
    Ok(decide(project, event))
}

/// Keeps the refs the project releases; everything else becomes the reason nothing happened.
fn decide(project: &Project, event: HookEvent) -> HookOutcome {
    let updates = match event {
        HookEvent::Ping => return HookOutcome::Ping,
        HookEvent::Unsupported(name) => {
            return HookOutcome::Nothing(format!("event {name:?} releases nothing"));
        }
        HookEvent::Push(updates) => updates,
    };
    let mut refs = PendingRefs::default();
    let mut reasons = Vec::new();
    for update in updates {
        let kind = update.kind.as_str();
        if update.deleted {
            reasons.push(format!("{kind} {} was deleted", update.name));
            continue;
        }
        let wanted = match update.kind {
            RefKind::Branch => project.releases_branch(&update.name),
            RefKind::Tag => project.releases_tag(&update.name),
        };
        if !wanted {
            reasons.push(format!(
                "{kind} {} matches none of the project's {kind} patterns",
                update.name
            ));
            continue;
        }
        let commit = update.commit.unwrap_or_default();
        match update.kind {
            RefKind::Branch => refs.branches.insert(update.name, commit),
            RefKind::Tag => refs.tags.insert(update.name, commit),
        };
    }
    if refs.is_empty() {
        if reasons.is_empty() {
            reasons.push("the push names no branch or tag".into());
        }
        HookOutcome::Nothing(reasons.join("; "))
    } else {
        HookOutcome::Release(refs)
    }
}
