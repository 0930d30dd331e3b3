//! The fixture with every case `git archive` knows, unpacked and read back from both formats;
//! archives byte-identical across mirrors and pinned by a golden checksum.

use std::io::Read;

use super::{baler_package, succeeded, unpack};
use crate::support::git::GitRepo;
use crate::support::tree::{Node, assert_same_tree, read_tree};

/// Every case the issue lists: export-ignore (a pattern, an anchored directory, a directory
/// pattern with a slash, a nested `.gitattributes` overriding the root one), export-subst,
/// symlinks to a file, a directory and nowhere, an executable, an empty file, a submodule,
/// non-ASCII names, a path over tar's 100 bytes, and a file larger than one compression piece.
fn fixture() -> GitRepo {
    let repo = GitRepo::new();
    repo.write(
        ".gitattributes",
        b"*.log export-ignore\n/tests export-ignore\nbuild/ export-ignore\n\
          VERSION export-subst\nkeep/*.log -export-ignore\n",
    );
    repo.write("README.md", b"# Fixture\n");
    repo.write(
        "VERSION",
        b"commit $Format:%H$ ($Format:%h$)\nby $Format:%an <%ae>$ on $Format:%ad$\n$Format:%s$ $Format:%ci$\n",
    );
    repo.write("debug.log", b"ignored\n");
    repo.write("keep/kept.log", b"kept by the later line\n");
    repo.write(
        "tests/test_one.php",
        b"<?php // ignored with its directory\n",
    );
    repo.write(
        "src/tests/inner.php",
        b"<?php // not ignored: /tests is anchored\n",
    );
    repo.write("build/out.txt", b"ignored: build/ is a directory pattern\n");
    repo.write(
        "lib/.gitattributes",
        b"private.txt export-ignore\nstamp.txt export-subst\n",
    );
    repo.write("lib/private.txt", b"ignored by the nested file\n");
    repo.write(
        "lib/stamp.txt",
        b"tree $Format:%T$ parents [$Format:%P$] %n$Format:%x41%%$\n",
    );
    repo.write(
        "lib/code.php",
        b"<?php\nreturn '$Format:%H$ stays: no export-subst here';\n",
    );
    repo.write("bin/tool", b"#!/bin/sh\necho tool\n");
    repo.make_executable("bin/tool");
    repo.write("empty.txt", b"");
    repo.symlink("link-to-file", "README.md");
    repo.symlink("link-to-dir", "lib");
    repo.symlink("dangling", "does/not/exist");
    repo.write("ünïcode/naïve façade.txt", "déjà vu\n".as_bytes());
    let long = format!("long/{}/{}.txt", "d".repeat(60), "f".repeat(70));
    repo.write(&long, b"a path over 100 bytes\n");
    let big: Vec<u8> = (0..2_600_000u32)
        .flat_map(|i| format!("line {} of a big file {}\n", i / 40, i % 977).into_bytes())
        .take(2_600_000)
        .collect();
    repo.write("data/big.txt", &big);
    repo
}

fn commit_fixture(mut repo: GitRepo) -> GitRepo {
    repo.git(&["add", "-A"]);
    // A submodule: a gitlink in the tree, with nothing behind it in this repository.
    repo.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        "160000,0123456789abcdef0123456789abcdef01234567,vendor/sub",
    ]);
    // An uninitialised submodule is an empty directory in the work tree.
    std::fs::create_dir_all(repo.dir.join("vendor/sub")).unwrap();
    repo.commit("Fixture: every archive case");
    repo.git(&["tag", "v1.0.0"]);
    repo
}

/// Long on purpose: one fixture, unpacked and read back from both formats, case by case.
#[test]
fn archives_hold_exactly_what_git_archive_holds() {
    let repo = commit_fixture(fixture());
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let output = baler_package(
        &[
            repo.dir.to_str().unwrap(),
            "--ref",
            "v1.0.0",
            "--name",
            "fixture",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = succeeded(&output);
    // Not a terminal: no progress bar, nothing on stderr.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One line per file: sha256, size, path; each true of the file.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bytes = std::fs::read(fields[2]).unwrap();
        assert_eq!(fields[1], bytes.len().to_string());
        assert_eq!(fields[0], baler::package::sha256_hex(&bytes));
    }

    let expected = work.path().join("git");
    repo.archive_into("v1.0.0", "fixture-1.0.0", &expected);
    for name in ["fixture-1.0.0.tar.gz", "fixture-1.0.0.zip"] {
        let unpacked = work.path().join(name.replace('.', "_"));
        unpack(&out.join(name), &unpacked);
        assert_same_tree(&expected, &unpacked);
    }

    // The comparison above is only as good as the fixture: check it holds each case.
    let tree = read_tree(&expected.join("fixture-1.0.0"));
    for gone in ["debug.log", "tests", "build", "lib/private.txt"] {
        assert!(!tree.contains_key(gone), "{gone} should be export-ignored");
    }
    for kept in [
        "keep/kept.log",
        "src/tests/inner.php",
        "empty.txt",
        "ünïcode/naïve façade.txt",
    ] {
        assert!(tree.contains_key(kept), "{kept} should be in the archive");
    }
    assert_eq!(
        tree.get("vendor/sub"),
        Some(&Node::Dir),
        "a submodule is an empty directory"
    );
    assert_eq!(
        tree.get("dangling"),
        Some(&Node::Link("does/not/exist".into()))
    );
    let Some(Node::File { content, .. }) = tree.get("VERSION") else {
        panic!("VERSION is a file")
    };
    let version = String::from_utf8(content.clone()).unwrap();
    assert!(
        version.starts_with(&format!("commit {} (", repo.rev("v1.0.0"))),
        "{version}"
    );
    assert!(
        version.contains("by Test Author <author@example.org>"),
        "{version}"
    );
    assert!(!version.contains("$Format"), "{version}");
    let Some(Node::File { content, .. }) = tree.get("lib/code.php") else {
        panic!("lib/code.php is a file")
    };
    assert!(String::from_utf8_lossy(content).contains("$Format:%H$"));

    // What the unpacked trees cannot show: owners, modes, times, and safe paths.
    let commit_time: u64 = repo
        .git(&["log", "-1", "--format=%ct", "v1.0.0"])
        .parse()
        .unwrap();
    let file = std::fs::File::open(out.join("fixture-1.0.0.tar.gz")).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let path = entry.path().unwrap().into_owned();
        assert!(path.starts_with("fixture-1.0.0"), "{path:?}");
        assert!(
            path.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{path:?} must be relative without `..`"
        );
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username().unwrap(), Some("root"));
        assert_eq!(header.mtime().unwrap(), commit_time);
        let mode = header.mode().unwrap();
        match header.entry_type() {
            tar::EntryType::Directory => assert_eq!(mode, 0o755, "{path:?}"),
            tar::EntryType::Symlink => assert_eq!(mode, 0o777, "{path:?}"),
            _ if path.ends_with("bin/tool") => assert_eq!(mode, 0o755),
            _ => assert_eq!(mode, 0o644, "{path:?}"),
        }
    }
    let file = std::fs::File::open(out.join("fixture-1.0.0.zip")).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).unwrap();
        let mode = entry.unix_mode().unwrap();
        let name = entry.name().unwrap().to_string();
        assert!(
            name.starts_with("fixture-1.0.0/") && !name.contains(".."),
            "{name}"
        );
        let expected_mode = if name.ends_with('/') {
            0o040755
        } else if name.ends_with("link-to-file")
            || name.ends_with("dangling")
            || name.ends_with("link-to-dir")
        {
            0o120777
        } else if name.ends_with("bin/tool") {
            0o100755
        } else {
            0o100644
        };
        assert_eq!(mode, expected_mode, "{name}");
    }
}

#[test]
fn archives_are_reproducible_to_the_byte_and_pinned() {
    let repo = GitRepo::standard();
    // Two runs, from two different mirrors (the repository in place, and a clone made by URL
    // into its own temporary directory), into two different directories.
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    succeeded(&baler_package(
        &[
            repo.dir.to_str().unwrap(),
            "--ref",
            "v1.0.0",
            "--name",
            "widget",
            "--out",
            first.path().to_str().unwrap(),
        ],
        &[],
    ));
    succeeded(&baler_package(
        &[
            &repo.url(),
            "--ref",
            "v1.0.0",
            "--name",
            "widget",
            "--out",
            second.path().to_str().unwrap(),
        ],
        &[],
    ));
    for name in ["widget-1.0.0.tar.gz", "widget-1.0.0.zip"] {
        let a = std::fs::read(first.path().join(name)).unwrap();
        let b = std::fs::read(second.path().join(name)).unwrap();
        assert!(a == b, "{name} differs between two runs");
    }
    // The golden checksums: a change here changes every archive baler has published, whose
    // checksums Composer and Drupal sites hold. Change them only on purpose, with a note.
    let sha =
        |name: &str| baler::package::sha256_hex(&std::fs::read(first.path().join(name)).unwrap());
    assert_eq!(
        sha("widget-1.0.0.tar.gz"),
        "35bc58a207853c1ff62e061b2a54d1aa18f9337d6957ca7f5e8a8d53e8b14546",
        "the tar.gz format changed"
    );
    assert_eq!(
        sha("widget-1.0.0.zip"),
        "9698a55d00ac10d762d7b3b381ca0a0849581649c6cb73bc026c0ff4117c0e64",
        "the zip format changed"
    );

    // The gzip header carries no name and no time, and says Unix.
    let tgz = std::fs::read(first.path().join("widget-1.0.0.tar.gz")).unwrap();
    assert_eq!(&tgz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&tgz[..])
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked.len() % 512, 0);
}

/// The second golden pair: a drupal-layout release (top directory `NAME/`, the `.info.yml`
/// and `.info` files given drupal.org's version block), whose checksums Drupal sites hold in
/// their update status and composer.lock files.
#[test]
fn a_drupal_layout_release_is_pinned() {
    let mut repo = GitRepo::new();
    repo.write(
        "webform_extra.info.yml",
        b"name: Webform extra\ntype: module\ncore_version_requirement: ^10 || ^11\nversion: VERSION\n",
    );
    repo.write(
        "webform_extra.module",
        b"<?php\n\n/**\n * @file\n * Extra.\n */\n",
    );
    repo.write("modules/sub/sub.info", b"name = Sub\ncore = 7.x\n");
    repo.write(
        "src/Plugin/Extra.php",
        b"<?php\n\nnamespace Drupal\\webform_extra;\n",
    );
    repo.commit("Webform extra");
    repo.git(&["tag", "-a", "2.1.0", "-m", "Release 2.1.0"]);
    let out = tempfile::tempdir().unwrap();
    succeeded(&baler_package(
        &[
            repo.dir.to_str().unwrap(),
            "--ref",
            "2.1.0",
            "--name",
            "webform_extra",
            "--layout",
            "drupal",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
    ));
    let sha =
        |name: &str| baler::package::sha256_hex(&std::fs::read(out.path().join(name)).unwrap());
    // Change these only on purpose, with a note: every drupal-layout archive changes with them.
    assert_eq!(
        sha("webform_extra-2.1.0.tar.gz"),
        "a521985d85f08fb6f054abf3e1ff4081238dd7bd4a31d6ca1a77b8e746b6d0b0",
        "the drupal-layout tar.gz changed"
    );
    assert_eq!(
        sha("webform_extra-2.1.0.zip"),
        "d4a0db4ab440d5e678eafe17ee6c463cb8717be3de919227bfe94131316bed4f",
        "the drupal-layout zip changed"
    );
}
