//! Comparing unpacked directory trees: paths, file bytes, executable bits, symlink targets.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { content: Vec<u8>, executable: bool },
    Link(String),
}

pub fn read_tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.insert(rel, Node::Link(target.to_string_lossy().into_owned()));
        } else if meta.is_dir() {
            out.insert(rel, Node::Dir);
            walk(root, &path, out);
        } else {
            out.insert(
                rel,
                Node::File {
                    content: std::fs::read(&path).unwrap(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            );
        }
    }
}

/// Asserts two trees are equal, naming the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = read_tree(expected);
    let b = read_tree(actual);
    let a_paths: Vec<_> = a.keys().collect();
    let b_paths: Vec<_> = b.keys().collect();
    assert_eq!(a_paths, b_paths, "the archives hold different paths");
    for (path, node) in &a {
        assert_eq!(Some(node), b.get(path), "{path} differs");
    }
}
