//! Atom feeds of published releases: one per project (`/projects/{project}/releases.atom`)
//! and one for all projects (`/releases.atom`), newest first by when the release was
//! recorded (a dev snapshot rebuilt on a new commit comes back to the top).

use atom_syndication::{Entry, Feed, FixedDateTime, Link, Person, Text};
use entities::release::{ReleaseKind, ReleaseStatus};

use crate::projects::Project;
use crate::releases::ReleaseWithFiles;

/// The most entries a feed carries.
pub const ENTRIES: usize = 50;

/// Where a feed's links point.
pub struct FeedLinks<'a> {
    /// The feed itself (`rel="self"`).
    pub this: String,
    /// The page the feed follows (`rel="alternate"`).
    pub page: String,
    pub release: &'a dyn Fn(&Project, &str) -> String,
    pub file: &'a dyn Fn(&Project, &str) -> String,
}

/// A feed titled `title` over `releases` of their projects.
pub fn feed(
    title: &str,
    releases: &[(&Project, &ReleaseWithFiles)],
    links: &FeedLinks<'_>,
) -> Feed {
    let mut published: Vec<&(&Project, &ReleaseWithFiles)> = releases
        .iter()
        .filter(|(_, r)| r.release.status == ReleaseStatus::Published)
        .collect();
    published.sort_by(|a, b| {
        b.1.release
            .updated_at
            .cmp(&a.1.release.updated_at)
            .then(b.1.release.id.cmp(&a.1.release.id))
    });
    published.truncate(ENTRIES);
    let entries: Vec<Entry> = published
        .iter()
        .map(|(project, r)| entry(project, r, links))
        .collect();
    let updated = entries
        .first()
        .map(|e| *e.updated())
        .unwrap_or_else(|| FixedDateTime::from(chrono::DateTime::UNIX_EPOCH));
    let mut feed = Feed::default();
    feed.set_title(Text::plain(title));
    feed.set_id(links.this.clone());
    feed.set_updated(updated);
    feed.set_authors(vec![person("baler")]);
    feed.set_links(vec![
        link(&links.this, "self", Some("application/atom+xml")),
        link(&links.page, "alternate", Some("text/html")),
    ]);
    feed.set_entries(entries);
    feed
}

fn entry(project: &Project, r: &ReleaseWithFiles, links: &FeedLinks<'_>) -> Entry {
    let release = &r.release;
    let page = (links.release)(project, &release.version);
    let kind = if release.kind == ReleaseKind::Tag {
        format!("tag {}", release.ref_name)
    } else {
        format!("branch {}", release.ref_name)
    };
    let files: Vec<String> = r
        .files
        .iter()
        .map(|f| format!("{} ({} bytes, sha256 {})", f.name, f.size, f.sha256))
        .collect();
    let mut entry = Entry::default();
    entry.set_title(Text::plain(format!(
        "{} {}",
        project.title, release.version
    )));
    // A dev snapshot keeps its page but is a new entry for each commit.
    entry.set_id(format!("{page}#{}", release.commit));
    entry.set_updated(FixedDateTime::from(release.updated_at));
    entry.set_published(Some(FixedDateTime::from(release.created_at)));
    entry.set_authors(vec![person(&project.name)]);
    let mut entry_links = vec![link(&page, "alternate", Some("text/html"))];
    entry_links.extend(r.files.iter().map(|f| {
        let mut enclosure = link(&(links.file)(project, &f.name), "enclosure", None);
        enclosure.set_length(Some(f.size.to_string()));
        enclosure
    }));
    entry.set_links(entry_links);
    entry.set_summary(Some(Text::plain(format!(
        "{} {} from {kind} at commit {}. Files: {}.",
        project.name,
        release.version,
        release.commit,
        files.join("; ")
    ))));
    entry
}

fn link(href: &str, rel: &str, mime: Option<&str>) -> Link {
    let mut link = Link::default();
    link.set_href(href);
    link.set_rel(rel);
    link.set_mime_type(mime.map(str::to_string));
    link
}

fn person(name: &str) -> Person {
    let mut person = Person::default();
    person.set_name(name);
    person
}
