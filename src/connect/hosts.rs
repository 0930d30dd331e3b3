//! Each host's hook API, as its documentation gives it: where hooks are listed, created,
//! updated, pinged and deleted, with which body and which authentication header.
//!
//! | host | hooks | ping |
//! | --- | --- | --- |
//! | GitHub | `/repos/{owner}/{repo}/hooks` (`Link` pages) | `POST …/hooks/{id}/pings` |
//! | GitLab | `/projects/{url-encoded path}/hooks` (`Link` pages) | `POST …/hooks/{id}/test/push_events` |
//! | Gitea, Forgejo | `/repos/{owner}/{repo}/hooks` (`Link` pages) | `POST …/hooks/{id}/tests` |
//! | Bitbucket Cloud | `/repositories/{workspace}/{slug}/hooks` (`next` in the body) | none |

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::provider::Provider;

/// A hook the host already has: its id (Bitbucket's is a `{uuid}`) and where it delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingHook {
    pub id: String,
    pub url: String,
}

/// One repository on one host's API, and the token baler acts with there (no `Debug`: the
/// token must not reach a log).
#[derive(Clone)]
pub struct HostApi {
    pub provider: Provider,
    /// The API base, no trailing slash: `https://api.github.com`, `https://gitlab.com/api/v4`.
    pub base: String,
    /// `owner/repo`, `group/sub/project` or `workspace/slug`.
    pub path: String,
    token: String,
}

/// What baler's hook is made with.
pub struct HookSpec<'a> {
    pub url: &'a str,
    pub secret: &'a str,
}

impl HostApi {
    /// The API of repository `repo` (its URL as the project has it) on `provider`: at
    /// `api_url`, else at the provider's default. The error says what to set.
    pub fn for_repository(
        provider: Provider,
        repo: &str,
        api_url: Option<&str>,
        token: String,
    ) -> Result<HostApi, String> {
        let (scheme, host, path) = repository_parts(repo)?;
        let base = match api_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => default_api(provider, &scheme, &host)?,
        };
        Ok(HostApi {
            provider,
            base,
            path,
            token,
        })
    }

    /// The repository's hooks collection, where a hook is created.
    pub fn collection(&self) -> String {
        match self.provider {
            Provider::Github | Provider::Gitea => {
                format!("{}/repos/{}/hooks", self.base, self.path)
            }
            Provider::Gitlab => format!(
                "{}/projects/{}/hooks",
                self.base,
                url::form_urlencoded::byte_serialize(self.path.as_bytes()).collect::<String>()
            ),
            Provider::Bitbucket => format!("{}/repositories/{}/hooks", self.base, self.path),
        }
    }

    /// The first page of the hook list, as large as the host allows.
    pub fn first_page(&self) -> String {
        let size = match self.provider {
            Provider::Github | Provider::Gitlab => "per_page=100",
            Provider::Gitea => "limit=50",
            Provider::Bitbucket => "pagelen=100",
        };
        format!("{}?{size}", self.collection())
    }

    /// One hook of the repository.
    pub fn hook(&self, id: &str) -> String {
        let id = match self.provider {
            // `{uuid}`: the braces go encoded.
            Provider::Bitbucket => {
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            }
            _ => id.to_string(),
        };
        format!("{}/{id}", self.collection())
    }

    /// The request that asks the host to deliver a test event, where the host has one.
    pub fn ping(&self, id: &str) -> Option<String> {
        let hook = self.hook(id);
        match self.provider {
            Provider::Github => Some(format!("{hook}/pings")),
            Provider::Gitlab => Some(format!("{hook}/test/push_events")),
            Provider::Gitea => Some(format!("{hook}/tests")),
            Provider::Bitbucket => None,
        }
    }

    /// The token in the header each host documents.
    pub fn authorise(&self, request: RequestBuilder) -> RequestBuilder {
        let token = &self.token;
        match self.provider {
            Provider::Github => request
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            Provider::Gitlab => request.header("PRIVATE-TOKEN", token),
            Provider::Gitea => request.header("Authorization", format!("token {token}")),
            Provider::Bitbucket => request.bearer_auth(token),
        }
    }

    /// The body that creates baler's hook, or updates it to what it should be: the push and
    /// tag events baler acts on, JSON, the secret, certificates verified.
    pub fn hook_body(&self, spec: &HookSpec<'_>) -> Value {
        match self.provider {
            Provider::Github => json!({
                "name": "web",
                "active": true,
                "events": ["push", "create", "delete"],
                "config": {
                    "url": spec.url,
                    "content_type": "json",
                    "secret": spec.secret,
                    "insecure_ssl": "0",
                },
            }),
            // Gitea verifies certificates unless its admin turned that off for the whole
            // instance; a hook has no setting for it.
            Provider::Gitea => json!({
                "type": "gitea",
                "active": true,
                "events": ["push", "create", "delete"],
                "config": {
                    "url": spec.url,
                    "content_type": "json",
                    "secret": spec.secret,
                },
            }),
            Provider::Gitlab => json!({
                "url": spec.url,
                "push_events": true,
                "tag_push_events": true,
                "token": spec.secret,
                "enable_ssl_verification": true,
            }),
            Provider::Bitbucket => json!({
                "description": "baler",
                "url": spec.url,
                "active": true,
                "events": ["repo:push"],
                "secret": spec.secret,
                "skip_cert_verification": false,
            }),
        }
    }

    /// How an existing hook is changed: GitHub and Gitea patch it, GitLab and Bitbucket put it.
    pub fn update_method(&self) -> Method {
        match self.provider {
            Provider::Github | Provider::Gitea => Method::PATCH,
            Provider::Gitlab | Provider::Bitbucket => Method::PUT,
        }
    }

    /// The hooks of one page of the list, and the next page's URL if there is one.
    pub fn read_page(
        &self,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<(Vec<ExistingHook>, Option<String>), String> {
        let (items, next) = match self.provider {
            Provider::Bitbucket => (
                body.get("values"),
                body.get("next").and_then(Value::as_str).map(str::to_string),
            ),
            _ => (Some(body), next_link(headers)?),
        };
        let items = items
            .and_then(Value::as_array)
            .ok_or_else(|| "the hook list is not a list".to_string())?;
        let hooks = items
            .iter()
            .map(|hook| self.existing(hook))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((hooks, next))
    }

    /// A hook as the host describes it, reduced to its id and URL.
    pub fn existing(&self, hook: &Value) -> Result<ExistingHook, String> {
        let id = match self.provider {
            Provider::Bitbucket => hook.get("uuid").and_then(Value::as_str).map(str::to_string),
            _ => hook
                .get("id")
                .and_then(Value::as_i64)
                .map(|id| id.to_string()),
        };
        let url = match self.provider {
            Provider::Github | Provider::Gitea => hook.pointer("/config/url"),
            Provider::Gitlab | Provider::Bitbucket => hook.get("url"),
        }
        .and_then(Value::as_str);
        match (id, url) {
            (Some(id), Some(url)) => Ok(ExistingHook {
                id,
                url: url.to_string(),
            }),
            // A hook of another kind (GitHub's `email` service hooks have no URL) is not ours.
            (Some(id), None) => Ok(ExistingHook {
                id,
                url: String::new(),
            }),
            (None, _) => Err(format!("a hook without an id: {hook}")),
        }
    }
}

/// The `rel="next"` target of a `Link` header, if any.
fn next_link(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(link) = headers.get(reqwest::header::LINK) else {
        return Ok(None);
    };
    let link = link
        .to_str()
        .map_err(|_| "the Link header is not text".to_string())?;
    let links = parse_link_header::parse_with_rel(link)
        .map_err(|e| format!("the Link header {link:?} cannot be read: {e:?}"))?;
    Ok(links.get("next").map(|next| next.raw_uri.clone()))
}

/// The API base each provider documents for its hosted service; Gitea's is on the
/// repository's own host.
fn default_api(provider: Provider, scheme: &str, host: &str) -> Result<String, String> {
    let other = |example: &str| {
        Err(format!(
            "the repository is on {host}, not {provider}'s hosted service: set the project's \
             `api_url` ({example})"
        ))
    };
    match provider {
        Provider::Github if host == "github.com" => Ok("https://api.github.com".into()),
        Provider::Github => other("GitHub Enterprise: https://HOST/api/v3"),
        Provider::Gitlab if host == "gitlab.com" => Ok("https://gitlab.com/api/v4".into()),
        Provider::Gitlab => other("self-managed GitLab: https://HOST/api/v4"),
        Provider::Bitbucket if host == "bitbucket.org" => {
            Ok("https://api.bitbucket.org/2.0".into())
        }
        Provider::Bitbucket => other("https://api.bitbucket.org/2.0"),
        Provider::Gitea => {
            let scheme = if scheme == "http" { "http" } else { "https" };
            Ok(format!("{scheme}://{host}/api/v1"))
        }
    }
}

/// `(scheme, host[:port], owner/repo)` of a repository URL: `https://host/owner/repo.git`,
/// `ssh://git@host/owner/repo.git` or `git@host:owner/repo.git`. An ssh URL's port is not the
/// API's, so it is dropped.
fn repository_parts(repo: &str) -> Result<(String, String, String), String> {
    let cannot = || format!("cannot tell the host and the repository's path from {repo:?}");
    let (scheme, host, path) = if repo.contains("://") {
        let url = url::Url::parse(repo).map_err(|_| cannot())?;
        let host = url.host_str().ok_or_else(cannot)?.to_string();
        let host = match (url.scheme(), url.port()) {
            ("http" | "https", Some(port)) => format!("{host}:{port}"),
            _ => host,
        };
        (url.scheme().to_string(), host, url.path().to_string())
    } else {
        let (user_host, path) = repo.split_once(':').ok_or_else(cannot)?;
        let host = user_host.rsplit('@').next().unwrap_or(user_host);
        ("ssh".to_string(), host.to_string(), path.to_string())
    };
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    if host.is_empty() || !path.contains('/') {
        return Err(cannot());
    }
    Ok((scheme, host, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(provider: Provider, path: &str) -> HostApi {
        HostApi {
            provider,
            base: "https://h.example/api".into(),
            path: path.into(),
            token: "t".into(),
        }
    }

    #[test]
    fn paths_follow_each_hosts_documentation() {
        let gitlab = api(Provider::Gitlab, "acme/tools/widget");
        assert_eq!(
            gitlab.first_page(),
            "https://h.example/api/projects/acme%2Ftools%2Fwidget/hooks?per_page=100"
        );
        assert_eq!(
            gitlab.ping("7").unwrap(),
            "https://h.example/api/projects/acme%2Ftools%2Fwidget/hooks/7/test/push_events"
        );
        let bitbucket = api(Provider::Bitbucket, "acme/widget");
        assert_eq!(
            bitbucket.hook("{1-2}"),
            "https://h.example/api/repositories/acme/widget/hooks/%7B1-2%7D"
        );
        assert!(bitbucket.ping("{1-2}").is_none());
        assert_eq!(
            api(Provider::Github, "acme/widget").ping("3").unwrap(),
            "https://h.example/api/repos/acme/widget/hooks/3/pings"
        );
        assert_eq!(
            api(Provider::Gitea, "acme/widget").ping("3").unwrap(),
            "https://h.example/api/repos/acme/widget/hooks/3/tests"
        );
    }

    #[test]
    fn pages_are_followed_by_link_or_by_next() {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            r#"<https://h.example/api/repos/a/b/hooks?page=2>; rel="next", <https://h.example/api/repos/a/b/hooks?page=5>; rel="last""#
                .parse()
                .unwrap(),
        );
        let github = api(Provider::Github, "a/b");
        let body =
            json!([{"id": 1, "config": {"url": "https://x/hooks/p"}}, {"id": 2, "config": {}}]);
        let (hooks, next) = github.read_page(&headers, &body).unwrap();
        assert_eq!(
            next.as_deref(),
            Some("https://h.example/api/repos/a/b/hooks?page=2")
        );
        assert_eq!(hooks[0].url, "https://x/hooks/p");
        assert_eq!(hooks[1].url, "", "a hook without a URL is not baler's");
        let bitbucket = api(Provider::Bitbucket, "a/b");
        let page = json!({"values": [{"uuid": "{u}", "url": "https://x"}], "next": "https://n"});
        let (hooks, next) = bitbucket.read_page(&HeaderMap::new(), &page).unwrap();
        assert_eq!(
            (hooks[0].id.as_str(), next.as_deref()),
            ("{u}", Some("https://n"))
        );
        assert!(
            github
                .read_page(&HeaderMap::new(), &json!({"message": "x"}))
                .is_err()
        );
    }

    #[test]
    fn repositories_name_their_host_and_path() {
        for (repo, host, path) in [
            (
                "https://github.com/acme/widget.git",
                "github.com",
                "acme/widget",
            ),
            (
                "https://gitlab.com/acme/tools/widget",
                "gitlab.com",
                "acme/tools/widget",
            ),
            (
                "git@github.com:acme/widget.git",
                "github.com",
                "acme/widget",
            ),
            (
                "ssh://git@git.example.org:2222/acme/widget.git",
                "git.example.org",
                "acme/widget",
            ),
            (
                "http://git.example.org:3000/acme/widget/",
                "git.example.org:3000",
                "acme/widget",
            ),
        ] {
            let (_, h, p) = repository_parts(repo).unwrap();
            assert_eq!((h.as_str(), p.as_str()), (host, path), "{repo}");
        }
        assert!(repository_parts("/srv/git/widget").is_err());
        assert!(repository_parts("https://github.com/widget").is_err());
    }

    #[test]
    fn api_bases_come_from_the_provider_or_the_setting() {
        assert_eq!(
            default_api(Provider::Github, "https", "github.com").unwrap(),
            "https://api.github.com"
        );
        assert_eq!(
            default_api(Provider::Gitea, "http", "git.example.org:3000").unwrap(),
            "http://git.example.org:3000/api/v1"
        );
        assert_eq!(
            default_api(Provider::Gitea, "ssh", "codeberg.org").unwrap(),
            "https://codeberg.org/api/v1"
        );
        let enterprise = default_api(Provider::Github, "https", "git.corp").unwrap_err();
        assert!(enterprise.contains("api_url"), "{enterprise}");
        assert!(default_api(Provider::Gitlab, "https", "gitlab.corp").is_err());
    }
}
