//! The two `.gitattributes` attributes `git archive` obeys: `export-ignore` (leave the path
//! out; for a directory, everything under it) and `export-subst` (expand `$Format:…$`).
//!
//! The attributes come from the `.gitattributes` files of the tree being packaged, as
//! `git archive` reads them from a commit. Their patterns follow `.gitignore`'s rules, so the
//! matching is the `ignore` crate's gitignore matcher (ripgrep's), fed one matcher per file
//! and attribute. git's precedence is kept: the deepest `.gitattributes` that says anything
//! about the attribute for a path decides, and within one file the last matching line wins.
//! `-attr`, `!attr` and `attr=value` all mean "not set" to `git archive`, and they stop the
//! search like any other answer.
//!
//! Not supported, as in the README: macros (`[attr]name …` lines) and the repository's
//! `info/attributes`. Negative patterns are ignored, as git ignores them.
//!
//! Paths are matched as the bytes git stores, so a name that is not UTF-8 matches a pattern
//! that covers it by wildcards (`*.txt`, `docs/`). Patterns are read as UTF-8: a byte of a
//! `.gitattributes` line that is not UTF-8 becomes U+FFFD, so a pattern that spells out such a
//! byte matches nothing (git would match it byte for byte).

use std::collections::HashMap;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

const EXPORT_IGNORE: &str = "export-ignore";
const EXPORT_SUBST: &str = "export-subst";

/// The export attributes of one tree.
#[derive(Default)]
pub struct ExportAttributes {
    /// Keyed by the directory holding the `.gitattributes` (`""` for the root, else `a/b/`).
    dirs: HashMap<Vec<u8>, DirRules>,
}

struct DirRules {
    ignore: Gitignore,
    subst: Gitignore,
}

impl ExportAttributes {
    /// `files` holds each `.gitattributes` as (the path of its directory with a trailing
    /// slash, or `""`; its content).
    pub fn parse<'a>(files: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> ExportAttributes {
        let dirs = files
            .into_iter()
            .map(|(dir, content)| {
                let text = String::from_utf8_lossy(content);
                let rules = DirRules {
                    ignore: matcher(&text, EXPORT_IGNORE),
                    subst: matcher(&text, EXPORT_SUBST),
                };
                (dir.to_vec(), rules)
            })
            .collect();
        ExportAttributes { dirs }
    }

    /// Whether `path` (relative to the root, no trailing slash) is left out of archives.
    pub fn export_ignore(&self, path: &[u8], is_dir: bool) -> bool {
        self.lookup(path, is_dir, |rules| &rules.ignore)
    }

    /// Whether `$Format:…$` is expanded in the file at `path`.
    pub fn export_subst(&self, path: &[u8]) -> bool {
        self.lookup(path, false, |rules| &rules.subst)
    }

    fn lookup(&self, path: &[u8], is_dir: bool, pick: impl Fn(&DirRules) -> &Gitignore) -> bool {
        if self.dirs.is_empty() {
            return false;
        }
        // The deepest directory first: `a/b/`, `a/`, then the root.
        let mut end = path.len();
        loop {
            let dir = match path[..end].iter().rposition(|&b| b == b'/') {
                Some(slash) => {
                    end = slash;
                    &path[..=slash]
                }
                None => {
                    end = 0;
                    b""
                }
            };
            if let Some(rules) = self.dirs.get(dir) {
                match pick(rules).matched(as_path(&path[dir.len()..]), is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            if end == 0 {
                return false;
            }
        }
    }
}

/// A tree path as the matcher takes it: the same bytes (the matcher compares bytes on Unix).
#[cfg(unix)]
fn as_path(path: &[u8]) -> std::borrow::Cow<'_, std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(path)).into()
}

/// Elsewhere a path must be text: bytes that are not UTF-8 become U+FFFD.
#[cfg(not(unix))]
fn as_path(path: &[u8]) -> std::borrow::Cow<'_, std::path::Path> {
    std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned()).into()
}

/// A matcher whose "ignore" answers mean the attribute is set and whose "whitelist" answers
/// mean it was unset, unspecified or given a value.
fn matcher(text: &str, attribute: &str) -> Gitignore {
    let mut builder = GitignoreBuilder::new(".");
    for line in text.lines() {
        let Some((pattern, set)) = attribute_line(line, attribute) else {
            continue;
        };
        let line = if set {
            pattern.to_string()
        } else {
            format!("!{pattern}")
        };
        // A pattern the glob parser refuses is skipped, as git skips what it cannot use.
        if let Err(e) = builder.add_line(None, &line) {
            tracing::debug!(error = %e, %line, "skipped a .gitattributes pattern");
        }
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// For a line that mentions `attribute`: its pattern, and whether it sets the attribute.
fn attribute_line<'a>(line: &'a str, attribute: &str) -> Option<(std::borrow::Cow<'a, str>, bool)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') || line.starts_with("[attr]") {
        return None;
    }
    let (pattern, rest) = split_pattern(line)?;
    // git refuses negative patterns in attributes files.
    if pattern.starts_with('!') {
        return None;
    }
    let mut state = None;
    for token in rest.split_ascii_whitespace() {
        state = match token.strip_prefix(['-', '!']) {
            Some(name) if name == attribute => Some(false),
            _ if token == attribute => Some(true),
            _ if token
                .split_once('=')
                .is_some_and(|(name, _)| name == attribute) =>
            {
                Some(false)
            }
            _ => state,
        };
    }
    state.map(|set| (pattern, set))
}

/// The pattern (unquoted when written in C-style double quotes) and the rest of the line.
fn split_pattern(line: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    if let Some(quoted) = line.strip_prefix('"') {
        let mut pattern = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((pattern.into(), &quoted[i + 1..])),
                '\\' => match chars.next()?.1 {
                    'n' => pattern.push('\n'),
                    't' => pattern.push('\t'),
                    other => pattern.push(other),
                },
                c => pattern.push(c),
            }
        }
        return None;
    }
    let end = line.find([' ', '\t']).unwrap_or(line.len());
    Some((line[..end].into(), &line[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(files: &[(&str, &str)]) -> ExportAttributes {
        ExportAttributes::parse(files.iter().map(|(d, c)| (d.as_bytes(), c.as_bytes())))
    }

    #[test]
    fn patterns_follow_gitignore_rules() {
        let a = attrs(&[(
            "",
            "# comment\n/tests export-ignore\n*.md export-ignore\nREADME.md -export-ignore\n\
             docs/ export-ignore\nsrc/**/fixture.* export-ignore\n",
        )]);
        assert!(a.export_ignore(b"tests", true));
        assert!(!a.export_ignore(b"lib/tests", true), "anchored to the root");
        assert!(a.export_ignore(b"CHANGES.md", false));
        assert!(
            a.export_ignore(b"lib/notes.md", false),
            "no slash: any depth"
        );
        assert!(
            !a.export_ignore(b"README.md", false),
            "a later line unsets it"
        );
        assert!(a.export_ignore(b"docs", true));
        assert!(
            !a.export_ignore(b"docs", false),
            "a trailing slash matches directories only"
        );
        assert!(a.export_ignore(b"src/a/b/fixture.json", false));
        assert!(!a.export_ignore(b"src/main.rs", false));
    }

    #[test]
    fn the_deepest_file_that_answers_decides() {
        let a = attrs(&[
            ("", "*.txt export-ignore\n*.bin export-ignore\n"),
            ("keep/", "*.txt !export-ignore\nother.txt export-subst\n"),
        ]);
        assert!(a.export_ignore(b"a.txt", false));
        assert!(!a.export_ignore(b"keep/a.txt", false));
        assert!(
            a.export_ignore(b"keep/a.bin", false),
            "keep/ says nothing about .bin"
        );
        assert!(a.export_subst(b"keep/other.txt"));
        assert!(
            !a.export_subst(b"other.txt"),
            "rules apply below their directory only"
        );
    }

    #[test]
    fn values_and_odd_lines() {
        let a = attrs(&[(
            "",
            "a export-ignore=yes\n\"with space.txt\" export-ignore\n!neg export-ignore\n\
             [attr]mine export-ignore\nb text export-subst eol=lf\n",
        )]);
        assert!(!a.export_ignore(b"a", false), "a value is not `set`");
        assert!(a.export_ignore(b"with space.txt", false));
        assert!(!a.export_ignore(b"neg", false));
        assert!(!a.export_ignore(b"!neg", false));
        assert!(a.export_subst(b"b"));
        assert!(!a.export_ignore(b"b", false));
    }

    #[test]
    fn names_that_are_not_utf8_match_as_bytes() {
        let a = attrs(&[
            ("", "*.log export-ignore\nodd\\\\name export-ignore\n"),
            ("d\\/", "* export-subst\n"),
        ]);
        assert!(a.export_ignore(b"caf\xe9.log", false));
        assert!(a.export_ignore(b"dir\xff/x.log", false));
        assert!(!a.export_ignore(b"caf\xe9.txt", false));
        assert!(
            a.export_ignore(b"odd\\name", false),
            "an escaped backslash matches one"
        );
        assert!(
            a.export_subst(b"d\\/\xfe"),
            "a directory whose name holds a backslash"
        );
    }
}
