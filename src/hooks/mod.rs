//! Webhook interpretation: verify the signature over the raw bytes, parse the host's payload,
//! check it names the project's repository, and decide which refs (if any) the delivery asks
//! baler to release. This module never touches the database; the intake module acts on the
//! result.

pub mod event;
pub mod verify;

use axum::http::{HeaderMap, header::CONTENT_TYPE};

use crate::projects::Project;
use crate::provider::Provider;
use crate::queue::PendingRefs;
use event::{
    HookEvent, Parsed, PayloadError, RefKind, RefUpdate, RepositoryClaim, normalize_repository_url,
};
use verify::{SignatureError, StandardWebhook};

/// What a verified delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// The host checks the webhook works.
    Ping,
    /// Nothing to release (an event baler does not use, or a push of refs the project does not
    /// release), and why, in the words the host is answered with.
    Ignored(String),
    /// Refs to release; never empty.
    Release(Decision),
}

/// The refs for the worker to look at (pushed, created, or reported deleted), and why anything
/// else was left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub refs: PendingRefs,
    pub reasons: Vec<String>,
}

impl Decision {
    /// The reasons as one line, as the host is answered and the log keeps them.
    pub fn reason(&self) -> String {
        self.reasons.join("; ")
    }

    /// A decision that queues nothing is no release: only its reasons are left.
    fn into_outcome(self) -> HookOutcome {
        if self.refs.is_empty() {
            HookOutcome::Ignored(self.reason())
        } else {
            HookOutcome::Release(self)
        }
    }
}

/// A delivery that passed every check.
#[derive(Debug, Clone)]
pub struct Interpreted {
    /// The host's event name, for the deliveries log.
    pub event: String,
    pub outcome: HookOutcome,
    /// The host's repository id, to remember when the project has none yet.
    pub learned_repository_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("missing event header {0}")]
    MissingEvent(&'static str),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    RepositoryMismatch(String),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The host's delivery id: the same on every redelivery of one event. Where the host signs an
/// id, that id is the one used, so that a replay cannot pass as a new delivery by changing an
/// unsigned header.
pub fn delivery_id(provider: Provider, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match provider {
        Provider::Github => &["x-github-delivery"],
        // A GitLab signing token sends Standard Webhooks headers, whose signature covers
        // `webhook-id`: only that id is used then.
        Provider::Gitlab if headers.contains_key("webhook-signature") => &["webhook-id"],
        // With a plain secret token nothing is signed. `X-Gitlab-Webhook-UUID` changes on
        // every attempt and `X-Gitlab-Event-UUID` is not a delivery id; `Idempotency-Key` is
        // stable.
        Provider::Gitlab => &["idempotency-key"],
        Provider::Gitea => &["x-gitea-delivery", "x-forgejo-delivery"],
        Provider::Bitbucket => &["x-request-uuid"],
    };
    names
        .iter()
        .find_map(|n| header(headers, n))
        .map(str::to_string)
}

enum Body<'a> {
    Json(&'a [u8]),
    /// A form body's `payload` field, decoded.
    Form(Vec<u8>),
}

impl Body<'_> {
    fn json(&self) -> &[u8] {
        match self {
            Body::Json(bytes) => bytes,
            Body::Form(payload) => payload,
        }
    }
}

fn read_body<'a>(
    provider: Provider,
    headers: &HeaderMap,
    raw: &'a [u8],
) -> Result<Body<'a>, HookError> {
    let content_type = header(headers, CONTENT_TYPE.as_str()).unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let form_allowed = matches!(provider, Provider::Github | Provider::Gitea);
    match media.as_str() {
        "application/json" => Ok(Body::Json(raw)),
        "application/x-www-form-urlencoded" if form_allowed => {
            let payload = form_urlencoded::parse(raw)
                .find(|(key, _)| key == "payload")
                .map(|(_, value)| value.into_owned().into_bytes())
                .ok_or_else(|| {
                    HookError::Payload(PayloadError {
                        provider: provider.as_str(),
                        message: "the form body has no `payload` field".into(),
                    })
                })?;
            Ok(Body::Form(payload))
        }
        _ => Err(HookError::UnsupportedMediaType(format!(
            "{} webhooks must be sent as application/json{}, not {media:?}",
            provider.as_str(),
            if form_allowed {
                " or application/x-www-form-urlencoded"
            } else {
                ""
            }
        ))),
    }
}

/// Verifies and interprets one delivery for `project`. The signature is checked first, over
/// `raw` exactly as received (Gitea signs the JSON payload, also inside a form body); nothing
/// is parsed before it holds. `now` is Unix seconds, for Standard Webhooks timestamps.
pub fn interpret(
    project: &Project,
    headers: &HeaderMap,
    raw: &[u8],
    now: i64,
) -> Result<Interpreted, HookError> {
    let body = read_body(project.provider, headers, raw)?;
    let delivery = Signed {
        project,
        headers,
        raw,
        json: body.json(),
    };
    let (event, parsed) = match project.provider {
        Provider::Github => delivery.github()?,
        Provider::Gitlab => delivery.gitlab(now)?,
        Provider::Gitea => delivery.gitea()?,
        Provider::Bitbucket => delivery.bitbucket()?,
    };
    let Parsed {
        event: hook_event,
        repository,
    } = parsed;
    let learned_repository_id = match hook_event {
        // Pings and events baler does not use release nothing, and their payloads are not
        // read (org-level pings name no repository): they are answered 200, not checked.
        HookEvent::Ping | HookEvent::Unsupported(_) => None,
        HookEvent::Push(_) => check_repository(project, &repository)?,
    };
    Ok(Interpreted {
        event: event.to_string(),
        outcome: decide(project, hook_event),
        learned_repository_id,
    })
}

/// One delivery on its way through its host's checks: each host signs and names its events
/// its own way. Each method verifies the signature, then reads the event name and parses the
/// payload.
struct Signed<'a> {
    project: &'a Project,
    headers: &'a HeaderMap,
    /// The body exactly as received, for signatures over the whole body.
    raw: &'a [u8],
    /// The JSON payload (a form body's `payload` field, decoded).
    json: &'a [u8],
}

impl<'a> Signed<'a> {
    fn header(&self, name: &str) -> Option<&'a str> {
        header(self.headers, name)
    }

    fn secrets(&self) -> impl Iterator<Item = &'a str> {
        self.project.secrets()
    }

    fn event(&self, name: &str, shown: &'static str) -> Result<&'a str, HookError> {
        self.header(name).ok_or(HookError::MissingEvent(shown))
    }

    fn github(&self) -> Result<(&'a str, Parsed), HookError> {
        let legacy = self.header("x-hub-signature");
        match self.header("x-hub-signature-256") {
            None if self.project.allow_sha1 && legacy.is_some() => {
                verify::verify_github_sha1(self.secrets(), legacy, self.raw)?
            }
            sha256 => verify::verify_sha256_prefixed(
                self.secrets(),
                "X-Hub-Signature-256",
                sha256,
                self.raw,
            )?,
        }
        let name = self.event("x-github-event", "X-GitHub-Event")?;
        Ok((name, event::parse_github(name, self.json)?))
    }

    fn gitlab(&self, now: i64) -> Result<(&'a str, Parsed), HookError> {
        let signature = self.header("webhook-signature");
        if signature.is_some() {
            let standard = StandardWebhook {
                id: self.header("webhook-id"),
                timestamp: self.header("webhook-timestamp"),
                signature,
            };
            verify::verify_standard_webhook(self.secrets(), &standard, self.raw, now)?;
        } else {
            verify::verify_gitlab_token(self.secrets(), self.header("x-gitlab-token"))?;
        }
        let name = self.event("x-gitlab-event", "X-Gitlab-Event")?;
        Ok((name, event::parse_gitlab(name, self.json)?))
    }

    fn gitea(&self) -> Result<(&'a str, Parsed), HookError> {
        let (signature_name, signature) = match self.header("x-forgejo-signature") {
            Some(s) => ("X-Forgejo-Signature", Some(s)),
            None => ("X-Gitea-Signature", self.header("x-gitea-signature")),
        };
        verify::verify_gitea(self.secrets(), signature_name, signature, self.json)?;
        let name = match self.header("x-forgejo-event") {
            Some(name) => name,
            None => self.event("x-gitea-event", "X-Gitea-Event")?,
        };
        Ok((name, event::parse_gitea(name, self.json)?))
    }

    fn bitbucket(&self) -> Result<(&'a str, Parsed), HookError> {
        verify::verify_sha256_prefixed(
            self.secrets(),
            "X-Hub-Signature",
            self.header("x-hub-signature"),
            self.raw,
        )?;
        let name = self.event("x-event-key", "X-Event-Key")?;
        Ok((name, event::parse_bitbucket(name, self.json)?))
    }
}

/// The payload must name the project's repository: by the host's id once baler has seen it,
/// else by URL. Returns the id to remember on a first URL match.
fn check_repository(
    project: &Project,
    claim: &RepositoryClaim,
) -> Result<Option<String>, HookError> {
    if let (Some(known), Some(claimed)) = (&project.host_repository_id, &claim.id) {
        return if known == claimed {
            Ok(None)
        } else {
            Err(HookError::RepositoryMismatch(format!(
                "the payload is for repository id {claimed}, not this project's {known}"
            )))
        };
    }
    let configured = normalize_repository_url(&project.repo);
    if claim
        .urls
        .iter()
        .any(|u| normalize_repository_url(u) == configured)
    {
        return Ok(claim
            .id
            .clone()
            .filter(|_| project.host_repository_id.is_none()));
    }
    Err(HookError::RepositoryMismatch(match claim.urls.first() {
        Some(url) => format!("the payload is for {url}, not this project's repository"),
        None => "the payload names no repository".to_string(),
    }))
}

/// What a verified event asks for: a ping, nothing (and why), or refs to release.
fn decide(project: &Project, event: HookEvent) -> HookOutcome {
    match event {
        HookEvent::Ping => HookOutcome::Ping,
        HookEvent::Unsupported(name) => {
            HookOutcome::Ignored(format!("event {name:?} releases nothing"))
        }
        HookEvent::Push(updates) => choose_refs(project, updates).into_outcome(),
    }
}

/// The refs to queue for a release that a caller of the API asks for by full name
/// (`refs/tags/v2.0.0`, `refs/heads/main`): checked as a push naming that ref would be (a
/// valid name, matching the project's patterns). Nothing says it exists: the worker resolves
/// it in the mirror after its fetch. The error says why nothing can be queued.
pub fn requested_refs(project: &Project, full_name: &str) -> Result<PendingRefs, String> {
    let (kind, name) = if let Some(tag) = full_name.strip_prefix(RefKind::Tag.namespace()) {
        (RefKind::Tag, tag)
    } else if let Some(branch) = full_name.strip_prefix(RefKind::Branch.namespace()) {
        (RefKind::Branch, branch)
    } else {
        return Err(format!(
            "ref {full_name:?} is neither a tag (refs/tags/NAME) nor a branch (refs/heads/NAME)"
        ));
    };
    let update = RefUpdate {
        kind,
        name: name.to_string(),
        commit: None,
        deleted: false,
    };
    let decision = choose_refs(project, vec![update]);
    if decision.refs.is_empty() {
        return Err(decision.reasons.join("; "));
    }
    Ok(decision.refs)
}

/// Keeps the refs the project releases; everything else becomes a reason. A deletion is only
/// a hint to look (a payload can be replayed): a released ref that a payload says was deleted
/// is queued like a push, and the worker decides from the fetched repository. A name git would
/// not accept is never queued, so it cannot fail an item that other pushes merge into. Names
/// are quoted with `{:?}`, so a control character cannot forge a line in the log.
fn choose_refs(project: &Project, updates: Vec<RefUpdate>) -> Decision {
    let mut decision = Decision::default();
    for update in updates {
        let kind = update.kind.as_str();
        let name = &update.name;
        if !crate::git::valid_ref_name(&update.full_name()) {
            decision
                .reasons
                .push(format!("{kind} {name:?} is not a valid git ref name"));
            continue;
        }
        let wanted = match update.kind {
            RefKind::Branch => project.releases_branch(name),
            RefKind::Tag => project.releases_tag(name),
        };
        if !wanted {
            let deleted = if update.deleted {
                " was deleted and"
            } else {
                ""
            };
            decision.reasons.push(format!(
                "{kind} {name:?}{deleted} matches none of the project's {kind} patterns"
            ));
            continue;
        }
        if update.deleted {
            decision.reasons.push(format!(
                "{kind} {name:?} was deleted: the worker checks the repository"
            ));
        }
        // A deletion has no commit; the worker takes every commit from the mirror anyway.
        let commit = update.commit.unwrap_or_default();
        match update.kind {
            RefKind::Branch => decision.refs.branches.insert(update.name, commit),
            RefKind::Tag => decision.refs.tags.insert(update.name, commit),
        };
    }
    if decision.refs.is_empty() && decision.reasons.is_empty() {
        decision
            .reasons
            .push("the push names no branch or tag".into());
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{ArchiveFormat, Layout};

    fn globs(patterns: &[&str]) -> globset::GlobSet {
        let mut set = globset::GlobSetBuilder::new();
        for pattern in patterns {
            set.add(globset::Glob::new(pattern).unwrap());
        }
        set.build().unwrap()
    }

    fn project() -> Project {
        Project {
            id: 1,
            name: "widget".into(),
            title: "Widget".into(),
            repo: "https://example.org/acme/widget.git".into(),
            provider: Provider::Github,
            secret: "s".into(),
            previous_secret: None,
            allow_sha1: false,
            host_repository_id: None,
            branches: globs(&["main", "*.x"]),
            tags: globs(&["*"]),
            formats: vec![ArchiveFormat::TarGz],
            layout: Layout::Plain,
            composer: None,
            drupal_type: "project_module".into(),
            supported_branches: None,
            disabled_at: None,
            updated_at: chrono::Utc::now(),
        }
    }

    fn update(kind: RefKind, name: &str, deleted: bool) -> RefUpdate {
        RefUpdate {
            kind,
            name: name.into(),
            commit: (!deleted).then(|| "c0ffee".to_string()),
            deleted,
        }
    }

    fn decision(updates: Vec<RefUpdate>) -> Decision {
        choose_refs(&project(), updates)
    }

    /// The decision on a parsed push event.
    fn pushed(event: HookEvent) -> Decision {
        match event {
            HookEvent::Push(updates) => decision(updates),
            other => panic!("not a push: {other:?}"),
        }
    }

    #[test]
    fn a_push_that_releases_nothing_is_ignored_with_its_reasons() {
        let outcome = decide(
            &project(),
            HookEvent::Push(vec![
                update(RefKind::Tag, "a b", false),
                update(RefKind::Branch, "feature/x", false),
            ]),
        );
        assert_eq!(
            outcome,
            HookOutcome::Ignored(
                r#"tag "a b" is not a valid git ref name; branch "feature/x" matches none of the project's branch patterns"#
                    .into()
            )
        );
        assert_eq!(
            decide(&project(), HookEvent::Push(vec![])),
            HookOutcome::Ignored("the push names no branch or tag".into())
        );
        assert_eq!(
            decide(&project(), HookEvent::Unsupported("issues".into())),
            HookOutcome::Ignored(r#"event "issues" releases nothing"#.into())
        );
        assert_eq!(decide(&project(), HookEvent::Ping), HookOutcome::Ping);
        let HookOutcome::Release(decided) = decide(
            &project(),
            HookEvent::Push(vec![update(RefKind::Tag, "v1", false)]),
        ) else {
            panic!("a released tag is a release");
        };
        assert_eq!(decided.refs.tags["v1"], "c0ffee");
    }

    #[test]
    fn a_requested_ref_is_checked_like_a_pushed_one() {
        let tag = requested_refs(&project(), "refs/tags/v2.0.0").unwrap();
        assert_eq!(tag.tags["v2.0.0"], "", "the worker finds the commit");
        assert!(tag.branches.is_empty());
        let branch = requested_refs(&project(), "refs/heads/7.x").unwrap();
        assert!(branch.branches.contains_key("7.x"));
        for (asked, why) in [
            ("v2.0.0", "neither a tag"),
            ("refs/remotes/origin/main", "neither a tag"),
            (
                "refs/heads/feature/x",
                "matches none of the project's branch patterns",
            ),
            ("refs/tags/a b", "not a valid git ref name"),
        ] {
            let refused = requested_refs(&project(), asked).unwrap_err();
            assert!(refused.contains(why), "{asked}: {refused}");
        }
    }

    #[test]
    fn names_git_would_not_accept_are_never_queued() {
        let bad = [
            (RefKind::Tag, "../x"),
            (RefKind::Tag, "a b"),
            (RefKind::Branch, "x..y"),
            (RefKind::Tag, "v1.lock"),
            (RefKind::Tag, "v1\nINFO forged line"),
            (RefKind::Branch, "main\u{7f}"),
            (RefKind::Tag, "a~1"),
            (RefKind::Tag, "a:b"),
            (RefKind::Branch, "x/"),
            (RefKind::Tag, ""),
        ];
        for (kind, name) in bad {
            for deleted in [false, true] {
                let decided = decision(vec![update(kind, name, deleted)]);
                assert!(decided.refs.is_empty(), "{name:?} was queued");
                assert_eq!(
                    decided.reasons,
                    [format!(
                        "{} {name:?} is not a valid git ref name",
                        kind.as_str()
                    )]
                );
                assert!(
                    !decided.reasons[0].contains('\n'),
                    "control characters are escaped"
                );
            }
        }
    }

    #[test]
    fn a_bad_name_does_not_stop_the_good_ones_in_the_same_delivery() {
        let decided = decision(vec![
            update(RefKind::Tag, "v1.0.0", false),
            update(RefKind::Tag, "a b", false),
            update(RefKind::Branch, "1.x", false),
        ]);
        assert_eq!(
            decided.refs.tags.keys().collect::<Vec<_>>(),
            ["v1.0.0"],
            "only the valid tag"
        );
        assert_eq!(decided.refs.branches["1.x"], "c0ffee");
        assert_eq!(
            decided.reasons,
            [r#"tag "a b" is not a valid git ref name"#]
        );
    }

    #[test]
    fn a_deletion_of_a_released_ref_is_queued_for_the_worker_to_check() {
        let decided = decision(vec![
            update(RefKind::Tag, "v0", true),
            update(RefKind::Branch, "1.x", true),
            update(RefKind::Branch, "feature/x", true),
        ]);
        assert_eq!(decided.refs.tags["v0"], "", "no commit: the mirror decides");
        assert_eq!(decided.refs.branches.keys().collect::<Vec<_>>(), ["1.x"]);
        assert_eq!(
            decided.reasons,
            [
                r#"tag "v0" was deleted: the worker checks the repository"#,
                r#"branch "1.x" was deleted: the worker checks the repository"#,
                r#"branch "feature/x" was deleted and matches none of the project's branch patterns"#,
            ]
        );
    }

    #[test]
    fn short_names_from_every_host_are_checked_as_full_names() {
        // Bitbucket names changes by their short name; a space is not valid in any ref.
        let bitbucket = br#"{"push":{"changes":[
            {"new":{"type":"tag","name":"a b","target":{"hash":"def"}},"old":null},
            {"new":{"type":"branch","name":"1.x","target":{"hash":"abc"}},"old":null}]}}"#;
        let Parsed { event, .. } = event::parse_bitbucket("repo:push", bitbucket).unwrap();
        let decided = pushed(event);
        assert_eq!(decided.refs.branches["1.x"], "abc");
        assert!(decided.refs.tags.is_empty());

        // Gitea's create and delete events name the short ref too.
        let Parsed { event, .. } =
            event::parse_gitea("delete", br#"{"ref":"v3","ref_type":"tag"}"#).unwrap();
        let decided = pushed(event);
        assert_eq!(decided.refs.tags["v3"], "");

        // GitLab's `ref` is the full name; `refs/tags/../x` must not pass as the tag `../x`.
        let gitlab = br#"{"object_kind":"tag_push","ref":"refs/tags/../x","after":"bbbb","checkout_sha":"bbbb"}"#;
        let Parsed { event, .. } = event::parse_gitlab("Tag Push Hook", gitlab).unwrap();
        let decided = pushed(event);
        assert!(decided.refs.is_empty());
        assert_eq!(
            decided.reasons,
            [r#"tag "../x" is not a valid git ref name"#]
        );
    }
}
