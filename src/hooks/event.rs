//! Payload parsing: each host's push shape normalised to [`HookEvent`], plus what the payload
//! says about its repository. Only the fields baler uses are read; the clone URL is never taken
//! from a payload (it is only compared with the configured one).

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

    /// Where git keeps refs of this kind: `refs/heads/` or `refs/tags/`.
    pub fn namespace(self) -> &'static str {
        match self {
            RefKind::Branch => "refs/heads/",
            RefKind::Tag => "refs/tags/",
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

impl RefUpdate {
    /// The ref's full name (`refs/tags/v1.0`). Every host's name is the short one by the time
    /// it is here: push events' full `ref` is split, and Bitbucket's changes and GitHub's and
    /// Gitea's create/delete events name the short ref.
    pub fn full_name(&self) -> String {
        format!("{}{}", self.kind.namespace(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    Ping,
    Push(Vec<RefUpdate>),
    /// An event baler does not act on; the name is echoed in the answer.
    Unsupported(String),
}

/// What a payload says its repository is: URLs to compare with the configured repository, and
/// the host's id for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryClaim {
    pub urls: Vec<String>,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub event: HookEvent,
    pub repository: RepositoryClaim,
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
    [RefKind::Branch, RefKind::Tag]
        .into_iter()
        .find_map(|kind| full.strip_prefix(kind.namespace()).map(|name| (kind, name)))
}

fn json<'a, T: Deserialize<'a>>(provider: &'static str, body: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError {
        provider,
        message: e.to_string(),
    })
}

/// A repository id may be a number (GitHub, GitLab, Gitea) or a string (Bitbucket's uuid).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum HostId {
    Number(i64),
    Text(String),
}

impl HostId {
    fn into_string(self) -> String {
        match self {
            HostId::Number(n) => n.to_string(),
            HostId::Text(s) => s,
        }
    }
}

/// `repository` in GitHub's and Gitea's payloads.
#[derive(Deserialize, Default)]
struct HubRepository {
    id: Option<HostId>,
    clone_url: Option<String>,
    html_url: Option<String>,
    ssh_url: Option<String>,
}

impl HubRepository {
    fn claim(self) -> RepositoryClaim {
        RepositoryClaim {
            urls: [self.clone_url, self.html_url, self.ssh_url]
                .into_iter()
                .flatten()
                .collect(),
            id: self.id.map(HostId::into_string),
        }
    }
}

#[derive(Deserialize)]
struct HubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    head_commit: Option<HubCommit>,
    repository: Option<HubRepository>,
}

#[derive(Deserialize)]
struct HubCommit {
    id: String,
}

/// GitHub's and Gitea's `create` / `delete` events: a short ref and its type.
#[derive(Deserialize)]
struct HubRefEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    ref_type: String,
    repository: Option<HubRepository>,
}

#[derive(Deserialize)]
struct HubPing {
    repository: Option<HubRepository>,
}

/// An event baler does not act on; such payloads are not read further.
fn unsupported(name: impl Into<String>) -> Parsed {
    Parsed {
        event: HookEvent::Unsupported(name.into()),
        repository: RepositoryClaim::default(),
    }
}

/// A delivery about one ref.
fn one_ref(
    kind: RefKind,
    name: &str,
    commit: Option<String>,
    deleted: bool,
    repository: RepositoryClaim,
) -> Parsed {
    Parsed {
        event: HookEvent::Push(vec![RefUpdate {
            kind,
            name: name.to_string(),
            commit,
            deleted,
        }]),
        repository,
    }
}

fn hub_push(push: HubPush) -> Parsed {
    let repository = push.repository.unwrap_or_default().claim();
    let Some((kind, name)) = split_ref(&push.git_ref) else {
        return Parsed {
            event: HookEvent::Push(Vec::new()),
            repository,
        };
    };
    let deleted = push.deleted || push.after.as_deref().is_some_and(is_zero);
    // For an annotated tag `after` is the tag object; `head_commit` is the commit.
    let commit = if deleted {
        None
    } else {
        push.head_commit.map(|c| c.id).or(push.after)
    };
    one_ref(kind, name, commit, deleted, repository)
}

fn hub_ref_event(event: HubRefEvent, deleted: bool, name: &str) -> Parsed {
    let repository = event.repository.unwrap_or_default().claim();
    let kind = match event.ref_type.as_str() {
        "tag" => RefKind::Tag,
        "branch" => RefKind::Branch,
        other => return unsupported(format!("{name} {other}")),
    };
    one_ref(kind, &event.git_ref, None, deleted, repository)
}

/// GitHub: `X-GitHub-Event` names the event; `body` is the JSON payload.
pub fn parse_github(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    const P: &str = "GitHub";
    match event {
        "ping" => Ok(Parsed {
            event: HookEvent::Ping,
            repository: json::<HubPing>(P, body)?
                .repository
                .unwrap_or_default()
                .claim(),
        }),
        "push" => Ok(hub_push(json(P, body)?)),
        "create" => Ok(hub_ref_event(json(P, body)?, false, event)),
        other => Ok(unsupported(other)),
    }
}

/// Gitea and Forgejo: `X-Gitea-Event` / `X-Forgejo-Event`; GitHub-like payloads.
pub fn parse_gitea(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    const P: &str = "Gitea";
    match event {
        "push" => Ok(hub_push(json(P, body)?)),
        "create" => Ok(hub_ref_event(json(P, body)?, false, event)),
        "delete" => Ok(hub_ref_event(json(P, body)?, true, event)),
        other => Ok(unsupported(other)),
    }
}

#[derive(Deserialize)]
struct GitlabPush {
    object_kind: String,
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    checkout_sha: Option<String>,
    project_id: Option<i64>,
    project: Option<GitlabProject>,
}

#[derive(Deserialize, Default)]
struct GitlabProject {
    id: Option<i64>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    web_url: Option<String>,
}

/// GitLab: `X-Gitlab-Event` is `Push Hook` or `Tag Push Hook`.
pub fn parse_gitlab(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
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
            let project = push.project.unwrap_or_default();
            let repository = RepositoryClaim {
                id: project.id.or(push.project_id).map(|id| id.to_string()),
                urls: [project.git_http_url, project.git_ssh_url, project.web_url]
                    .into_iter()
                    .flatten()
                    .collect(),
            };
            let Some((kind, name)) = split_ref(&push.git_ref) else {
                return Ok(Parsed {
                    event: HookEvent::Push(Vec::new()),
                    repository,
                });
            };
            let deleted = push.after.as_deref().is_some_and(is_zero) && push.checkout_sha.is_none();
            let commit = if deleted {
                None
            } else {
                push.checkout_sha.or(push.after)
            };
            Ok(one_ref(kind, name, commit, deleted, repository))
        }
        other => Ok(unsupported(other)),
    }
}

#[derive(Deserialize)]
struct BitbucketPush {
    push: BitbucketChanges,
    repository: Option<BitbucketRepository>,
}

#[derive(Deserialize)]
struct BitbucketChanges {
    changes: Vec<BitbucketChange>,
}

#[derive(Deserialize)]
struct BitbucketChange {
    new: Option<BitbucketRef>,
    old: Option<BitbucketRef>,
}

#[derive(Deserialize)]
struct BitbucketRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: Option<BitbucketTarget>,
}

#[derive(Deserialize)]
struct BitbucketTarget {
    hash: Option<String>,
}

#[derive(Deserialize, Default)]
struct BitbucketRepository {
    uuid: Option<String>,
    full_name: Option<String>,
    links: Option<BitbucketLinks>,
}

#[derive(Deserialize)]
struct BitbucketLinks {
    html: Option<BitbucketLink>,
}

#[derive(Deserialize)]
struct BitbucketLink {
    href: String,
}

fn bitbucket_kind(kind: &str) -> Option<RefKind> {
    match kind {
        "branch" | "named_branch" => Some(RefKind::Branch),
        "tag" | "annotated_tag" => Some(RefKind::Tag),
        _ => None,
    }
}

/// Bitbucket Cloud: `X-Event-Key: repo:push`; one delivery may carry several changes.
pub fn parse_bitbucket(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    const P: &str = "Bitbucket";
    if event != "repo:push" {
        return Ok(unsupported(event));
    }
    let push: BitbucketPush = json(P, body)?;
    let repo = push.repository.unwrap_or_default();
    let mut urls: Vec<String> = repo
        .links
        .and_then(|l| l.html)
        .map(|h| h.href)
        .into_iter()
        .collect();
    if let Some(full_name) = repo.full_name {
        urls.push(format!("https://bitbucket.org/{full_name}"));
    }
    let repository = RepositoryClaim {
        urls,
        id: repo.uuid,
    };
    let mut updates = Vec::new();
    for change in push.push.changes {
        let (reference, deleted) = match (change.new, change.old) {
            (Some(new), _) => (new, false),
            (None, Some(old)) => (old, true),
            (None, None) => continue,
        };
        let Some(kind) = bitbucket_kind(&reference.kind) else {
            continue;
        };
        updates.push(RefUpdate {
            kind,
            name: reference.name,
            commit: if deleted {
                None
            } else {
                reference.target.and_then(|t| t.hash)
            },
            deleted,
        });
    }
    Ok(Parsed {
        event: HookEvent::Push(updates),
        repository,
    })
}

/// A repository URL reduced to `host/path`, lowercased, without scheme, credentials, `.git`
/// or trailing slash: `git@github.com:Acme/Widget.git` and `https://github.com/acme/widget`
/// both become `github.com/acme/widget`.
pub fn normalize_repository_url(url: &str) -> String {
    let url = url.trim();
    let without_scheme = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let (authority, path) = match without_scheme.find('/') {
        Some(i) => (&without_scheme[..i], &without_scheme[i..]),
        None => (without_scheme, ""),
    };
    // scp-like `git@host:path`
    let (authority, path) = if !url.contains("://") && authority.contains(':') {
        let (host, rest) = authority.split_once(':').unwrap_or((authority, ""));
        (host, format!("/{rest}{path}"))
    } else {
        (authority, path.to_string())
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}{path}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

    fn updates(parsed: Parsed) -> Vec<RefUpdate> {
        match parsed.event {
            HookEvent::Push(updates) => updates,
            other => panic!("not a push: {other:?}"),
        }
    }

    #[test]
    fn github_tag_push_takes_the_commit_not_the_tag_object() {
        let body = br#"{"ref":"refs/tags/v1.0.0","after":"aaaa","deleted":false,"head_commit":{"id":"cccc"},"repository":{"id":7,"clone_url":"https://github.com/a/b.git"}}"#;
        let parsed = parse_github("push", body).unwrap();
        assert_eq!(parsed.repository.id.as_deref(), Some("7"));
        assert_eq!(parsed.repository.urls, ["https://github.com/a/b.git"]);
        assert_eq!(
            updates(parsed),
            vec![RefUpdate {
                kind: RefKind::Tag,
                name: "v1.0.0".into(),
                commit: Some("cccc".into()),
                deleted: false
            }]
        );
    }

    #[test]
    fn github_create_event_for_a_tag() {
        let body = br#"{"ref":"v2.0.0","ref_type":"tag","master_branch":"main","repository":{"id":9,"html_url":"https://github.com/a/b"}}"#;
        let parsed = parse_github("create", body).unwrap();
        assert_eq!(parsed.repository.urls, ["https://github.com/a/b"]);
        assert_eq!(
            updates(parsed),
            vec![RefUpdate {
                kind: RefKind::Tag,
                name: "v2.0.0".into(),
                commit: None,
                deleted: false
            }]
        );
        let repository = br#"{"ref":"main","ref_type":"repository"}"#;
        assert_eq!(
            parse_github("create", repository).unwrap().event,
            HookEvent::Unsupported("create repository".into())
        );
    }

    #[test]
    fn github_branch_deletion() {
        let body = format!(
            r#"{{"ref":"refs/heads/1.x","after":"{ZERO_SHA}","deleted":true,"head_commit":null}}"#
        );
        let updates = updates(parse_github("push", body.as_bytes()).unwrap());
        assert!(updates[0].deleted);
        assert_eq!(updates[0].commit, None);
        assert_eq!(updates[0].kind, RefKind::Branch);
    }

    #[test]
    fn gitlab_push_and_deletion() {
        let body = br#"{"object_kind":"push","ref":"refs/heads/main","after":"bbbb","checkout_sha":"bbbb","project":{"id":15,"git_http_url":"https://gitlab.com/a/b.git"}}"#;
        let parsed = parse_gitlab("Push Hook", body).unwrap();
        assert_eq!(parsed.repository.id.as_deref(), Some("15"));
        assert_eq!(updates(parsed)[0].commit.as_deref(), Some("bbbb"));
        let body = format!(
            r#"{{"object_kind":"tag_push","ref":"refs/tags/v2","after":"{ZERO_SHA}","checkout_sha":null}}"#
        );
        assert!(updates(parse_gitlab("Tag Push Hook", body.as_bytes()).unwrap())[0].deleted);
    }

    #[test]
    fn gitea_create_and_delete() {
        let created = parse_gitea(
            "create",
            br#"{"ref":"v3","ref_type":"tag","repository":{"id":3}}"#,
        )
        .unwrap();
        assert_eq!(
            updates(created)[0],
            RefUpdate {
                kind: RefKind::Tag,
                name: "v3".into(),
                commit: None,
                deleted: false
            }
        );
        let deleted = parse_gitea("delete", br#"{"ref":"v3","ref_type":"tag"}"#).unwrap();
        assert!(updates(deleted)[0].deleted);
    }

    #[test]
    fn bitbucket_changes() {
        let body = br#"{"push":{"changes":[
            {"new":{"type":"branch","name":"main","target":{"hash":"abc"}},"old":{"type":"branch","name":"main","target":{"hash":"000"}}},
            {"new":{"type":"tag","name":"v1","target":{"hash":"def"}},"old":null},
            {"new":null,"old":{"type":"tag","name":"v0","target":{"hash":"123"}}}
          ]},
          "repository":{"uuid":"{u-1}","full_name":"acme/widget","links":{"html":{"href":"https://bitbucket.org/acme/widget"}}}}"#;
        let parsed = parse_bitbucket("repo:push", body).unwrap();
        assert_eq!(parsed.repository.id.as_deref(), Some("{u-1}"));
        let updates = updates(parsed);
        assert_eq!(updates.len(), 3);
        assert_eq!(
            (updates[0].kind, updates[0].commit.as_deref()),
            (RefKind::Branch, Some("abc"))
        );
        assert_eq!(
            (updates[1].kind, updates[1].name.as_str()),
            (RefKind::Tag, "v1")
        );
        assert!(updates[2].deleted && updates[2].name == "v0");
    }

    #[test]
    fn malformed_and_unsupported() {
        assert!(parse_github("push", b"{not json").is_err());
        assert!(parse_github("push", br#"{"after":"x"}"#).is_err());
        assert_eq!(
            parse_github("issues", b"{}").unwrap().event,
            HookEvent::Unsupported("issues".into())
        );
        assert!(parse_gitlab("Push Hook", b"[]").is_err());
        assert!(parse_bitbucket("repo:push", br#"{"push":{}}"#).is_err());
        assert!(parse_gitea("push", b"").is_err());
    }

    #[test]
    fn repository_urls_normalise() {
        for url in [
            "https://github.com/Acme/Widget.git",
            "http://github.com/acme/widget/",
            "git@github.com:acme/widget.git",
            "ssh://git@github.com/acme/widget",
            "https://x-access-token:secret@github.com/acme/widget.git",
        ] {
            assert_eq!(
                normalize_repository_url(url),
                "github.com/acme/widget",
                "{url}"
            );
        }
        assert_eq!(
            normalize_repository_url("file:///tmp/repo/work"),
            "/tmp/repo/work"
        );
        assert_ne!(
            normalize_repository_url("https://github.com/acme/widget"),
            normalize_repository_url("https://github.com/acme/widget2")
        );
    }
}
