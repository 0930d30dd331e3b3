//! `export-subst`: `$Format:PLACEHOLDERS$` in a file is replaced by what
//! `git log -1 --format=PLACEHOLDERS` prints for the packaged commit, as `git archive` does.
//!
//! Supported placeholders: `%H %h %T %t %P %p`, the author's and committer's `%an %ae %al
//! %ad %aD %ai %aI %at %as` (and `%c…`), `%s %f %b %B`, `%d %D` (the mirror's branches and
//! tags at the commit), `%n %% %xNN`. Relative dates (`%ar`) would change with the day the
//! archive is built, so, like any unknown placeholder, they are left as written.

use chrono::{DateTime, FixedOffset};

use crate::git::{CommitDetails, Person};

/// The most one file's expansion may hold: 16 MiB. A few `%B` repeated over a small file can
/// otherwise grow to gigabytes (180 KB of `$Format:%B$` with a 32 KB message is 537 MB).
pub const MAX_EXPANDED: usize = 16 << 20;

/// An expansion that would pass its limit; nothing beyond the limit was allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
}

/// Expands every `$Format:…$` in `content`. Content without one is returned unchanged.
/// Fails as soon as the output would pass `limit` bytes ([`MAX_EXPANDED`] in archives).
pub fn expand(content: &[u8], commit: &CommitDetails, limit: usize) -> Result<Vec<u8>, TooLarge> {
    const OPEN: &[u8] = b"$Format:";
    let mut out = Output {
        bytes: Vec::with_capacity(content.len().min(limit)),
        limit,
    };
    let mut rest = content;
    while let Some(start) = find(rest, OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.iter().position(|&b| b == b'$') else {
            break;
        };
        out.push(&rest[..start])?;
        format_into(&after[..end], commit, &mut out)?;
        rest = &after[end + 1..];
    }
    out.push(rest)?;
    Ok(out.bytes)
}

/// The expansion so far, checked against its limit before every append.
struct Output {
    bytes: Vec<u8>,
    limit: usize,
}

impl Output {
    fn push(&mut self, more: &[u8]) -> Result<(), TooLarge> {
        if self.bytes.len() + more.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        self.bytes.extend_from_slice(more);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn format_into(format: &[u8], commit: &CommitDetails, out: &mut Output) -> Result<(), TooLarge> {
    let mut i = 0;
    while i < format.len() {
        // Literal text up to the next placeholder, in one piece.
        let literal = format[i..]
            .iter()
            .position(|&b| b == b'%')
            .unwrap_or(format.len() - i);
        if literal > 0 {
            out.push(&format[i..i + literal])?;
            i += literal;
            continue;
        }
        let spec = &format[i + 1..];
        match placeholder(spec, commit) {
            Some((text, used)) => {
                out.push(&text)?;
                i += 1 + used;
            }
            None => {
                out.push(b"%")?;
                i += 1;
            }
        }
    }
    Ok(())
}

/// The expansion of the placeholder at the start of `spec` (after its `%`), and how many
/// bytes it used; `None` for one git would leave alone.
fn placeholder(spec: &[u8], c: &CommitDetails) -> Option<(Vec<u8>, usize)> {
    let text = |s: String| Some((s.into_bytes(), 1));
    match *spec.first()? {
        b'H' => text(c.id.clone()),
        b'h' => text(c.short.clone()),
        b'T' => text(c.tree.clone()),
        b't' => text(c.tree_short.clone()),
        b'P' => text(c.parents.join(" ")),
        b'p' => text(c.parents_short.join(" ")),
        b'n' => text("\n".into()),
        b'%' => text("%".into()),
        b's' => text(subject(&c.message)),
        b'f' => text(sanitized(&subject(&c.message))),
        b'b' => text(body(&c.message)),
        b'B' => text(c.message.clone()),
        b'D' => text(c.decorations.join(", ")),
        b'd' if c.decorations.is_empty() => text(String::new()),
        b'd' => text(format!(" ({})", c.decorations.join(", "))),
        b'x' => {
            let hex = std::str::from_utf8(spec.get(1..3)?).ok()?;
            Some((vec![u8::from_str_radix(hex, 16).ok()?], 3))
        }
        b'a' => person(spec.get(1)?, &c.author).map(|s| (s.into_bytes(), 2)),
        b'c' => person(spec.get(1)?, &c.committer).map(|s| (s.into_bytes(), 2)),
        _ => None,
    }
}

fn person(field: &u8, p: &Person) -> Option<String> {
    let offset = FixedOffset::east_opt(p.offset_minutes * 60)?;
    let at = DateTime::from_timestamp(p.time, 0)?.with_timezone(&offset);
    Some(match field {
        b'n' | b'N' => p.name.clone(),
        b'e' | b'E' => p.email.clone(),
        b'l' | b'L' => p.email.split('@').next().unwrap_or_default().to_string(),
        b't' => p.time.to_string(),
        b'd' => at.format("%a %b %-d %H:%M:%S %Y %z").to_string(),
        b'D' => at.format("%a, %-d %b %Y %H:%M:%S %z").to_string(),
        b'i' => at.format("%Y-%m-%d %H:%M:%S %z").to_string(),
        b'I' => at.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        b's' => at.format("%Y-%m-%d").to_string(),
        _ => return None,
    })
}

/// git's subject: the first paragraph, its lines joined by spaces.
fn subject(message: &str) -> String {
    message
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// git's body: everything after the subject's paragraph and the blank lines that follow it.
fn body(message: &str) -> String {
    let mut lines = message.lines().skip_while(|l| l.trim().is_empty());
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
    }
    let rest: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
    if rest.is_empty() {
        String::new()
    } else {
        rest.join("\n") + "\n"
    }
}

/// `%f`: the subject with every run of other characters turned into one `-`.
fn sanitized(subject: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for ch in subject.chars() {
        if ch.is_ascii_alphanumeric() || ch == '.' || ch == '_' {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(ch);
        } else {
            gap = true;
        }
    }
    while out.ends_with('.') {
        out.pop();
    }
    out.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit() -> CommitDetails {
        let person = |name: &str, time| Person {
            name: name.into(),
            email: format!("{}@example.org", name.to_lowercase()),
            time,
            offset_minutes: 60,
        };
        CommitDetails {
            id: "0123456789abcdef0123456789abcdef01234567".into(),
            short: "0123456".into(),
            tree: "fedcba9876543210fedcba9876543210fedcba98".into(),
            tree_short: "fedcba9".into(),
            parents: vec!["1111111111111111111111111111111111111111".into()],
            parents_short: vec!["1111111".into()],
            author: person("Ada", 1_700_000_000),
            committer: person("Bob", 1_700_000_060),
            message: "Fix the thing\n\nLonger text.\nSecond line.\n".into(),
            decorations: vec!["main".into(), "tag: v1.0".into()],
        }
    }

    fn expand(content: &[u8], commit: &CommitDetails) -> Vec<u8> {
        super::expand(content, commit, MAX_EXPANDED).unwrap()
    }

    #[test]
    fn the_expansion_stops_at_its_limit() {
        let c = commit();
        let message_len = c.message.len();
        let content = b"$Format:%B$".repeat(10);
        let exact = 10 * message_len;
        assert_eq!(super::expand(&content, &c, exact).unwrap().len(), exact);
        assert_eq!(
            super::expand(&content, &c, exact - 1),
            Err(TooLarge { limit: exact - 1 })
        );
        // Literal text counts too, not only placeholders.
        assert!(super::expand(b"0123456789", &c, 9).is_err());
        assert_eq!(super::expand(b"0123456789", &c, 10).unwrap(), b"0123456789");
    }

    #[test]
    fn a_bomb_fails_without_growing() {
        let mut c = commit();
        c.message = "m".repeat(32 << 10);
        let bomb = b"$Format:%B$".repeat(180_000 / 11);
        let err = super::expand(&bomb, &c, MAX_EXPANDED).unwrap_err();
        assert_eq!(err.limit, MAX_EXPANDED);
    }

    #[test]
    fn expands_like_git_log_format() {
        let out = expand(
            b"id=$Format:%H$ short=$Format:%h %an <%ae> %ad$\nat $Format:%ct %ci %cI %as$ $Format:%d$ [$Format:%s|%f|%x41%%%n$]",
            &commit(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id=0123456789abcdef0123456789abcdef01234567 short=0123456 Ada <ada@example.org> \
             Tue Nov 14 23:13:20 2023 +0100\nat 1700000060 2023-11-14 23:14:20 +0100 \
             2023-11-14T23:14:20+01:00 2023-11-14  (main, tag: v1.0) [Fix the thing|Fix-the-thing|A%\n]"
        );
    }

    #[test]
    fn leaves_unknown_placeholders_and_unclosed_markers() {
        assert_eq!(expand(b"$Format:%ar %Q$", &commit()), b"%ar %Q");
        assert_eq!(
            expand(b"no marker $Format:%H", &commit()),
            b"no marker $Format:%H"
        );
        assert_eq!(
            expand(b"$Format:%b$", &commit()),
            b"Longer text.\nSecond line.\n"
        );
    }
}
