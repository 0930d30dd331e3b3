//! Payload parsing: each host's push shape normalised to [`HookEvent`]. Only the fields baler
//! uses are read; the clone URL is never taken from a payload.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }
}

/// One ref a delivery reports as moved, created or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub kind: RefKind,
    pub name: String,
    /// The commit the ref now points at, when the payload says (tags: the dereferenced commit).
    pub commit: Option<String>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    Ping,
    Push(Vec<RefUpdate>),
    /// An event baler does not act on; the name is echoed in the answer.
    Unsupported(String),
}

#[derive(Debug, thiserror::Error)]
#[error("malformed {provider} payload: {message}")]
pub struct PayloadError {
    pub provider: &'static str,
    pub message: String,
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

fn split_ref(full: &str) -> Option<(RefKind, &str)> {
    if let Some(name) = full.strip_prefix("refs/heads/") {
        Some((RefKind::Branch, name))
    } else {
        full.strip_prefix("refs/tags/")
            .map(|name| (RefKind::Tag, name))
    }
}

fn json<'a, T: Deserialize<'a>>(provider: &'static str, body: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError {
        provider,
        message: e.to_string(),
    })
}

#[derive(Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    head_commit: Option<GithubCommit>,
}

#[derive(Deserialize)]
struct GithubCommit {
    id: String,
}

#[derive(Deserialize)]
struct GithubCreate {
    #[serde(rename = "ref")]
    git_ref: String,
    ref_type: String,
}

/// GitHub: `X-GitHub-Event` names the event; `body` is the JSON payload.
pub fn parse_github(event: &str, body: &[u8]) -> Result<HookEvent, PayloadError> {
    const P: &str = "GitHub";
    match event {
        "ping" => {
            json::<serde_json::Value>(P, body)?;
            Ok(HookEvent::Ping)
        }
        "push" => {
            let push: GithubPush = json(P, body)?;
            let Some((kind, name)) = split_ref(&push.git_ref) else {
                return Ok(HookEvent::Push(Vec::new()));
            };
            let deleted = push.deleted || push.after.as_deref().is_some_and(is_zero);
            // For an annotated tag `after` is the tag object; `head_commit` is the commit.
            let commit = if deleted {
                None
            } else {
                push.head_commit.map(|c| c.id).or(push.after)
            };
            Ok(HookEvent::Push(vec![RefUpdate {
                kind,
                name: name.to_string(),
                commit,
                deleted,
            }]))
        }
        "create" => {
            let create: GithubCreate = json(P, body)?;
            let kind = match create.ref_type.as_str() {
                "tag" => RefKind::Tag,
                "branch" => RefKind::Branch,
                _ => {
                    return Ok(HookEvent::Unsupported(format!(
                        "create {}",
                        create.ref_type
                    )));
                }
            };
            Ok(HookEvent::Push(vec![RefUpdate {
                kind,
                name: create.git_ref,
                commit: None,
                deleted: false,
            }]))
        }
        other => Ok(HookEvent::Unsupported(other.to_string())),
    }
}

#[derive(Deserialize)]
struct GitlabPush {
    object_kind: String,
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    checkout_sha: Option<String>,
}

/// GitLab: `X-Gitlab-Event` is `Push Hook` or `Tag Push Hook`.
pub fn parse_gitlab(event: &str, body: &[u8]) -> Result<HookEvent, PayloadError> {
    const P: &str = "GitLab";
    match event {
        "Push Hook" | "Tag Push Hook" => {
            let push: GitlabPush = json(P, body)?;
            if push.object_kind != "push" && push.object_kind != "tag_push" {
                return Err(PayloadError {
                    provider: P,
                    message: format!("object_kind {:?} in a {event}", push.object_kind),
                });
            }
            let Some((kind, name)) = split_ref(&push.git_ref) else {
                return Ok(HookEvent::Push(Vec::new()));
            };
            let deleted = push.after.as_deref().is_some_and(is_zero) && push.checkout_sha.is_none();
            let commit = if deleted {
                None
            } else {
                push.checkout_sha.or(push.after)
            };
            Ok(HookEvent::Push(vec![RefUpdate {
                kind,
                name: name.to_string(),
                commit,
                deleted,
            }]))
        }
        other => Ok(HookEvent::Unsupported(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn github_tag_push_takes_the_commit_not_the_tag_object() {
        let body = br#"{"ref":"refs/tags/v1.0.0","after":"aaaa","deleted":false,"head_commit":{"id":"cccc"}}"#;
        let event = parse_github("push", body).unwrap();
        assert_eq!(
            event,
            HookEvent::Push(vec![RefUpdate {
                kind: RefKind::Tag,
                name: "v1.0.0".into(),
                commit: Some("cccc".into()),
                deleted: false
            }])
        );
    }

    #[test]
    fn github_branch_deletion() {
        let body = format!(
            r#"{{"ref":"refs/heads/1.x","after":"{ZERO_SHA}","deleted":true,"head_commit":null}}"#
        );
        let HookEvent::Push(updates) = parse_github("push", body.as_bytes()).unwrap() else {
            panic!("not a push")
        };
        assert!(updates[0].deleted);
        assert_eq!(updates[0].commit, None);
        assert_eq!(updates[0].kind, RefKind::Branch);
    }

    #[test]
    fn gitlab_push_and_deletion() {
        let body = br#"{"object_kind":"push","ref":"refs/heads/main","after":"bbbb","checkout_sha":"bbbb"}"#;
        let HookEvent::Push(updates) = parse_gitlab("Push Hook", body).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(updates[0].commit.as_deref(), Some("bbbb"));
        let body = format!(
            r#"{{"object_kind":"tag_push","ref":"refs/tags/v2","after":"{ZERO_SHA}","checkout_sha":null}}"#
        );
        let HookEvent::Push(updates) = parse_gitlab("Tag Push Hook", body.as_bytes()).unwrap()
        else {
            panic!("not a push")
        };
        assert!(updates[0].deleted);
    }

    #[test]
    fn malformed_and_unsupported() {
        assert!(parse_github("push", b"{not json").is_err());
        assert!(parse_github("push", br#"{"after":"x"}"#).is_err());
        assert_eq!(
            parse_github("issues", b"{}").unwrap(),
            HookEvent::Unsupported("issues".into())
        );
        assert!(parse_gitlab("Push Hook", b"[]").is_err());
    }
}
