//! drupal.org's packaging rewrite of `.info` and `.info.yml` files: existing version lines are
//! commented out and a block with version, core, project and datestamp is appended.

/// Which files the `drupal` layout rewrites.
pub fn is_info_file(path: &[u8]) -> bool {
    path.ends_with(b".info") || path.ends_with(b".info.yml")
}

const KEYS: [&str; 4] = ["version", "core", "project", "datestamp"];

/// Returns the rewritten content. `date` is the commit date (YYYY-MM-DD) and `datestamp` the
/// commit time, so the output is reproducible and agrees with the feed's release date.
pub fn rewrite_info(
    path: &[u8],
    content: &[u8],
    project: &str,
    version: &str,
    date: &str,
    datestamp: i64,
) -> Vec<u8> {
    let yaml = path.ends_with(b".yml");
    let comment = if yaml { "# " } else { "; " };
    let text = String::from_utf8_lossy(content);
    let mut out = String::with_capacity(text.len() + 200);
    for line in text.split_inclusive('\n') {
        if sets_packaging_key(line, yaml) {
            out.push_str(comment);
        }
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push('\n');
    if yaml {
        out.push_str(&format!(
            "# Information added by baler packaging script on {date}\nversion: '{version}'\n"
        ));
        if version.starts_with("8.x-") {
            out.push_str("core: '8.x'\n");
        }
        out.push_str(&format!("project: '{project}'\ndatestamp: {datestamp}\n"));
    } else {
        out.push_str(&format!(
            "; Information added by baler packaging script on {date}\nversion = \"{version}\"\n"
        ));
        if version.starts_with("7.x-") {
            out.push_str("core = \"7.x\"\n");
        }
        out.push_str(&format!(
            "project = \"{project}\"\ndatestamp = \"{datestamp}\"\n"
        ));
    }
    out.into_bytes()
}

/// A top-level `key:` (YAML) or `key =` (INI) line for one of the keys the packager writes.
fn sets_packaging_key(line: &str, yaml: bool) -> bool {
    KEYS.iter().any(|key| {
        line.strip_prefix(key).is_some_and(|rest| {
            let rest = rest.trim_start_matches([' ', '\t']);
            if yaml {
                rest.starts_with(':')
            } else {
                rest.starts_with('=')
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_yml_like_drupal_org() {
        let original = "name: Webform\ntype: module\ncore: 8.x\nversion: VERSION\ncore_version_requirement: ^8 || ^9\n";
        let out = rewrite_info(
            b"webform.info.yml",
            original.as_bytes(),
            "webform",
            "8.x-1.2",
            "2024-03-01",
            1709251200,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name: Webform\ntype: module\n# core: 8.x\n# version: VERSION\ncore_version_requirement: ^8 || ^9\n\n\
             # Information added by baler packaging script on 2024-03-01\n\
             version: '8.x-1.2'\ncore: '8.x'\nproject: 'webform'\ndatestamp: 1709251200\n"
        );
    }

    #[test]
    fn info_ini_for_drupal_7() {
        let original = "name = Views\ncore = 7.x\nversion = \"7.x-3.x-dev\"";
        let out = rewrite_info(
            b"views.info",
            original.as_bytes(),
            "views",
            "7.x-3.20",
            "2020-01-02",
            1577923200,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name = Views\n; core = 7.x\n; version = \"7.x-3.x-dev\"\n\n\
             ; Information added by baler packaging script on 2020-01-02\n\
             version = \"7.x-3.20\"\ncore = \"7.x\"\nproject = \"views\"\ndatestamp = \"1577923200\"\n"
        );
    }

    #[test]
    fn semantic_versions_get_no_core_line() {
        let out = rewrite_info(
            b"a.info.yml",
            b"name: A\ncore_version_requirement: ^10\n",
            "a",
            "2.0.3",
            "2024-01-01",
            1,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("\ncore:"), "{text}");
        assert!(text.contains("core_version_requirement: ^10\n"), "{text}");
    }

    #[test]
    fn info_files_are_found_by_their_bytes() {
        assert!(is_info_file(b"modules/caf\xe9/caf\xe9.info.yml"));
        assert!(is_info_file(b"a\\b.info"));
        assert!(!is_info_file(b"a.info.yml.orig"));
    }
}
