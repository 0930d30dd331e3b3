//! The demo repository `baler serve --demo` packages: a few commits, a tag, an executable and a
//! symlink, so a first run shows a real release of real git content.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{Oid, Repository, Signature};

use super::GitError;

enum Node {
    Blob { mode: i32, content: Vec<u8> },
    Tree(BTreeMap<String, Node>),
}

fn insert(root: &mut BTreeMap<String, Node>, path: &str, mode: i32, content: &[u8]) {
    match path.split_once('/') {
        Some((dir, rest)) => {
            let child = root
                .entry(dir.to_string())
                .or_insert_with(|| Node::Tree(BTreeMap::new()));
            if let Node::Tree(children) = child {
                insert(children, rest, mode, content);
            }
        }
        None => {
            root.insert(
                path.to_string(),
                Node::Blob {
                    mode,
                    content: content.to_vec(),
                },
            );
        }
    }
}

fn write_tree(repo: &Repository, nodes: &BTreeMap<String, Node>) -> Result<Oid, git2::Error> {
    let mut builder = repo.treebuilder(None)?;
    for (name, node) in nodes {
        match node {
            Node::Blob { mode, content } => {
                builder.insert(name, repo.blob(content)?, *mode)?;
            }
            Node::Tree(children) => {
                builder.insert(name, write_tree(repo, children)?, 0o040000)?;
            }
        }
    }
    builder.write()
}

/// Creates the demo repository at `path` unless it exists. Returns the tag it carries.
pub fn create_demo_repository(path: &Path) -> Result<&'static str, GitError> {
    const TAG: &str = "v1.0.0";
    if path.join("HEAD").is_file() {
        return Ok(TAG);
    }
    let repo = Repository::init_bare(path)?;
    let who = Signature::now("baler demo", "demo@baler.invalid")?;
    let mut files = BTreeMap::new();
    let first: &[(&str, i32, &[u8])] = &[
        (
            "README.md",
            0o100644,
            b"# Hello from baler\n\nThis project was packaged straight from its git tree.\n",
        ),
        (
            "bin/hello",
            0o100755,
            b"#!/bin/sh\necho \"hello from the baler demo\"\n",
        ),
    ];
    for (p, mode, content) in first {
        insert(&mut files, p, *mode, content);
    }
    let tree = repo.find_tree(write_tree(&repo, &files)?)?;
    let c1 = repo.commit(
        Some("refs/heads/main"),
        &who,
        &who,
        "Start the demo",
        &tree,
        &[],
    )?;

    let second: &[(&str, i32, &[u8])] = &[
        ("hello", 0o120000, b"bin/hello"),
        ("docs/usage.txt", 0o100644, b"Run ./hello to be greeted.\n"),
        ("assets/pixel.gif", 0o100644, b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"),
    ];
    for (p, mode, content) in second {
        insert(&mut files, p, *mode, content);
    }
    let tree = repo.find_tree(write_tree(&repo, &files)?)?;
    let parent = repo.find_commit(c1)?;
    let c2 = repo.commit(
        Some("refs/heads/main"),
        &who,
        &who,
        "Add a symlink, docs and an image",
        &tree,
        &[&parent],
    )?;
    repo.tag(
        TAG,
        repo.find_commit(c2)?.as_object(),
        &who,
        "Demo release 1.0.0",
        false,
    )?;
    repo.set_head("refs/heads/main")?;
    Ok(TAG)
}
