//! Archives as `git archive` defines them, byte-reproducible, pinned by a golden checksum;
//! `baler package`; private repositories over smart HTTP (the real `git http-backend`,
//! basic auth on) and incremental fetches.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use baler::git::{GitError, Mirror, RemoteAuth};

use crate::support::archive_listing::{run_measuring_peak, tar_listing, zip_listing};
use crate::support::git::{GitRepo, run};
use crate::support::smart_http::SmartHttpServer;
use crate::support::tree::{Node, assert_same_tree, read_tree};
use crate::support::{ProjectSpec, TestApp};

fn baler_package(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baler"))
        .arg("package")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("baler runs")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "baler package failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

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

fn unpack(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    if archive.extension().is_some_and(|e| e == "zip") {
        run(Command::new("unzip")
            .arg("-q")
            .arg(archive)
            .arg("-d")
            .arg(into));
    } else {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into));
    }
}

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

/// A private repository served by `git http-backend` behind basic auth, as hosts serve them.
fn private_host_repo() -> (GitRepo, tempfile::TempDir) {
    let mut repo = GitRepo::standard();
    repo.write("src/private.php", b"<?php // private\n");
    repo.commit("Private code");
    let root = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo.dir)
        .arg(root.path().join("widget.git")));
    (repo, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_repositories_over_smart_http_with_a_token() {
    let (repo, root) = private_host_repo();
    let server =
        SmartHttpServer::start(root.path().to_path_buf(), "x-access-token", "s3cret-token").await;
    let url = server.url("widget.git");
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap().to_string();

    // Offline packaging by URL: with the token it works; without or with a wrong one it
    // fails with a message that says which.
    let ok = {
        let (url, out_arg) = (url.clone(), out_arg.clone());
        tokio::task::spawn_blocking(move || {
            baler_package(
                &[
                    &url,
                    "--ref",
                    "1.1.0",
                    "--name",
                    "widget",
                    "--out",
                    &out_arg,
                    "--token-env",
                    "WIDGET_TOKEN",
                ],
                &[("WIDGET_TOKEN", "s3cret-token")],
            )
        })
        .await
        .unwrap()
    };
    succeeded(&ok);
    let expected = out.path().join("git");
    repo.archive_into(&repo.rev("1.1.0"), "widget-1.1.0", &expected);
    let unpacked = out.path().join("unpacked");
    unpack(&out.path().join("widget-1.1.0.zip"), &unpacked);
    assert_same_tree(&expected, &unpacked);

    for (envs, message) in [
        (vec![], "asks for credentials"),
        (
            vec![("WIDGET_TOKEN", "wrong")],
            "refused the configured credentials",
        ),
    ] {
        let (url, out_arg) = (url.clone(), out_arg.clone());
        let uses_token = !envs.is_empty();
        let failed = tokio::task::spawn_blocking(move || {
            let mut args = vec![url.as_str(), "--ref", "1.1.0", "--out", out_arg.as_str()];
            if uses_token {
                args.extend(["--token-env", "WIDGET_TOKEN"]);
            }
            baler_package(&args, &envs)
        })
        .await
        .unwrap();
        assert!(!failed.status.success());
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(
            !stderr.contains("wrong"),
            "the token must not be printed: {stderr}"
        );
    }

    // The worker: a project whose token comes from the config releases from the private
    // host; the build log says what the fetch transferred.
    let spec = ProjectSpec {
        extra: "token = \"s3cret-token\"",
        ..ProjectSpec::github("widget", url.clone())
    };
    let app = TestApp::spawn(&[spec]).await;
    let response = app
        .github_push("widget", "refs/tags/1.1.0", &repo.rev("1.1.0"))
        .await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;
    let release = app.get_json("/api/v1/projects/widget/releases/1.1.0").await;
    assert_eq!(release["version"], "1.1.0", "{release}");
    assert!(
        release["build_log"]
            .as_str()
            .unwrap_or_default()
            .contains("objects"),
        "{release}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_into_an_existing_mirror_transfers_only_what_is_new() {
    let (mut repo, root) = private_host_repo();
    let server = SmartHttpServer::start(root.path().to_path_buf(), "u", "p").await;
    let url = server.url("widget.git");
    let mirrors = tempfile::tempdir().unwrap();
    let mirror_path = mirrors.path().join("widget.git");
    let auth = RemoteAuth {
        http_user: "u".into(),
        token: Some("p".into()),
        ..RemoteAuth::default()
    };

    let cloned = {
        let (url, mirror_path, auth) = (url.clone(), mirror_path.clone(), auth.clone());
        tokio::task::spawn_blocking(move || {
            Mirror::open_or_clone(&mirror_path, &url, &auth).unwrap().1
        })
        .await
        .unwrap()
    };

    repo.write("src/lib/deep/nested/module.txt", b"changed\n");
    let head = repo.commit("One more commit");
    run(Command::new("git")
        .args(["push", "-q"])
        .arg(root.path().join("widget.git"))
        .arg("HEAD:refs/heads/main")
        .current_dir(&repo.dir));

    let fetched = tokio::task::spawn_blocking(move || {
        let (mirror, fetched) = Mirror::open_or_clone(&mirror_path, &url, &auth).unwrap();
        assert_eq!(mirror.branch_commit("main").unwrap().unwrap().id, head);
        fetched
    })
    .await
    .unwrap();
    // The clone received every object; the fetch the commit, the trees on the changed path
    // and the one changed file.
    assert!(cloned.received_objects >= 15, "{cloned:?}");
    assert!(fetched.received_objects <= 7, "{fetched:?}");
}

/// The file name `bytes` (relative to the work tree), created as it is: bytes that are not
/// UTF-8 included.
fn write_raw(repo: &GitRepo, path: &[u8], content: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let full = repo.dir.join(std::ffi::OsStr::from_bytes(path));
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

/// `git archive` of `rev` in `format` with the top directory `prefix`.
fn git_archive(repo: &GitRepo, format: &str, prefix: &str, rev: &str) -> Vec<u8> {
    // tar.umask 022: baler's modes are 0644 and 0755 whatever the umask (git's default is 002).
    let out = Command::new("git")
        .args([
            "-c",
            "tar.umask=0022",
            "archive",
            &format!("--format={format}"),
            &format!("--prefix={prefix}/"),
            rev,
        ])
        .current_dir(&repo.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A zip's entries without their modes: git's zip marks regular files as made by DOS (no Unix
/// mode) and applies its umask to directories, while baler writes its fixed Unix modes
/// (checked by `archives_hold_exactly_what_git_archive_holds`).
fn zip_without_modes(zip: &[u8]) -> Vec<crate::support::archive_listing::ZipItem> {
    let mut items = zip_listing(zip);
    for item in &mut items {
        item.mode = 0;
    }
    items
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn package_tag(repo: &GitRepo, name: &str, tag: &str, out: &Path) -> Output {
    baler_package(
        &[
            repo.dir.to_str().unwrap(),
            "--ref",
            tag,
            "--name",
            name,
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
}

#[test]
fn names_git_archive_packages_are_packaged_byte_for_byte() {
    let mut repo = GitRepo::new();
    let long_dir = [b"deep-\xfe".as_slice(), &[b'x'; 120]].concat();
    let names: Vec<Vec<u8>> = vec![
        b"back\\slash.txt".to_vec(),
        b"caf\xe9.txt".to_vec(),
        "naïve façade.txt".as_bytes().to_vec(),
        b"dir\xff\\x/inner.php".to_vec(),
        [long_dir.as_slice(), b"/f\xe9.txt"].concat(),
    ];
    for (i, name) in names.iter().enumerate() {
        write_raw(&repo, name, format!("file {i}\n").as_bytes());
    }
    // A symlink whose target is not UTF-8 either.
    {
        use std::os::unix::ffi::OsStrExt;
        std::os::unix::fs::symlink(
            std::ffi::OsStr::from_bytes(b"caf\xe9.txt"),
            repo.dir.join("link\\to"),
        )
        .unwrap();
    }
    repo.write(".gitattributes", b"*.php export-subst\n");
    write_raw(&repo, b"dir\xff\\x/stamp.php", b"$Format:%H$\n");
    repo.commit("Odd names");
    repo.git(&["tag", "v1.0.0"]);

    let work = tempfile::tempdir().unwrap();
    succeeded(&package_tag(&repo, "odd", "v1.0.0", work.path()));

    let tar = tar_listing(&gunzip(
        &std::fs::read(work.path().join("odd-1.0.0.tar.gz")).unwrap(),
    ));
    let git_tar = tar_listing(&git_archive(&repo, "tar", "odd-1.0.0", "v1.0.0"));
    assert_eq!(tar, git_tar);
    let zip = zip_without_modes(&std::fs::read(work.path().join("odd-1.0.0.zip")).unwrap());
    let git_zip = zip_without_modes(&git_archive(&repo, "zip", "odd-1.0.0", "v1.0.0"));
    assert_eq!(zip, git_zip);

    // The comparison is only as good as the fixture: every odd name is there, as bytes, and
    // the zip flags differ between them.
    for name in &names {
        let full = [b"odd-1.0.0/".as_slice(), name].concat();
        assert!(
            tar.iter().any(|item| item.path == full),
            "{}",
            full.escape_ascii()
        );
        assert!(
            zip.iter().any(|item| item.name == full),
            "{}",
            full.escape_ascii()
        );
    }
    let flag_of = |name: &[u8]| {
        let full = [b"odd-1.0.0/".as_slice(), name].concat();
        zip.iter().find(|item| item.name == full).unwrap().utf8_flag
    };
    assert!(flag_of("naïve façade.txt".as_bytes()));
    assert!(!flag_of(b"caf\xe9.txt"));
    assert!(!flag_of(b"back\\slash.txt"));
    let stamp = tar.iter().find(|i| i.path.ends_with(b"stamp.php")).unwrap();
    assert_eq!(
        stamp.content,
        format!("{}\n", repo.rev("v1.0.0")).as_bytes()
    );
}

/// A commit whose tree holds an entry named `name`, written with `git hash-object --literally`
/// (git itself refuses such names), tagged `tag`.
fn crafted_tree_commit(repo: &GitRepo, name: &[u8], tag: &str) {
    let blob = repo.git(&["hash-object", "-w", "--stdin"]);
    let mut tree = b"100644 ".to_vec();
    tree.extend_from_slice(name);
    tree.push(0);
    tree.extend(hex_bytes(&blob));
    let mut child = Command::new("git")
        .args(["hash-object", "-t", "tree", "--literally", "-w", "--stdin"])
        .current_dir(&repo.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tree).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let tree_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let commit = repo.git(&["commit-tree", &tree_id, "-m", "Crafted"]);
    repo.git(&["tag", tag, &commit]);
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_tree_name_that_would_escape_fails_as_an_unsafe_path() {
    let mut repo = GitRepo::new();
    repo.write("README.md", b"fine\n");
    repo.commit("Fine");
    crafted_tree_commit(&repo, b"..", "dotdot");
    crafted_tree_commit(&repo, b".", "dot");
    crafted_tree_commit(&repo, b"a/../../b", "slash");
    // libgit2 refuses to parse an empty name at all: a permanent error of another kind.
    crafted_tree_commit(&repo, b"", "empty");

    let work = tempfile::tempdir().unwrap();
    for tag in ["dotdot", "dot", "slash", "empty"] {
        let output = package_tag(&repo, "crafted", tag, work.path());
        assert!(!output.status.success(), "{tag} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if tag != "empty" {
            assert!(stderr.contains("unsafe path"), "{tag}: {stderr}");
        }
    }
    assert!(
        std::fs::read_dir(work.path()).unwrap().next().is_none(),
        "nothing is left behind"
    );

    // The same through the library: the errors are the permanent kind.
    let mirror = Mirror::open(&repo.dir).unwrap();
    for tag in ["dotdot", "dot", "slash"] {
        let err = mirror.list_tree(&repo.rev(tag)).unwrap_err();
        assert!(matches!(err, GitError::UnsafePath(_)), "{tag}: {err}");
        assert!(err.is_permanent(), "{tag}");
        assert!(baler::package::PackageError::Git(err).is_permanent());
    }
    let err = mirror.list_tree(&repo.rev("empty")).unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(mirror.list_tree(&repo.rev("main")).is_ok());
}

/// A ~180 KB file of `$Format:%B$` under export-subst, committed with a 32 KB message.
fn subst_repo(repeats: usize, message_len: usize) -> GitRepo {
    let mut repo = GitRepo::new();
    repo.write(".gitattributes", b"stamp.txt export-subst\n");
    repo.write("stamp.txt", &b"$Format:%B$".repeat(repeats));
    repo.write("README.md", b"subst\n");
    let message: String = (0..message_len)
        .map(|i| {
            if i % 64 == 63 {
                '\n'
            } else {
                (b'a' + (i % 26) as u8) as char
            }
        })
        .collect();
    repo.commit(&message);
    repo.git(&["tag", "v1.0.0"]);
    repo
}

#[test]
fn an_export_subst_bomb_fails_at_the_cap_in_bounded_memory() {
    let repo = subst_repo(180_000 / 11, 32 << 10);
    let work = tempfile::tempdir().unwrap();
    let (output, peak) = run_measuring_peak(
        Command::new(env!("CARGO_BIN_EXE_baler"))
            .arg("package")
            .arg(&repo.dir)
            .args(["--ref", "v1.0.0", "--name", "bomb", "--out"])
            .arg(work.path()),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("export-subst output of stamp.txt exceeds 16 MiB"),
        "{stderr}"
    );
    assert!(
        peak < 200 << 20,
        "peak RSS {} MB; unbounded it was over 500 MB",
        peak >> 20
    );
    assert!(std::fs::read_dir(work.path()).unwrap().next().is_none());
}

#[test]
fn an_expansion_just_under_the_cap_equals_git_archive() {
    // %B is the message as the commit object stores it.
    let message_len = 4095;
    let probe = subst_repo(1, message_len);
    let commit = Command::new("git")
        .args(["cat-file", "commit", "v1.0.0"])
        .current_dir(&probe.dir)
        .output()
        .unwrap()
        .stdout;
    let header_end = commit.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let expanded = commit.len() - header_end;
    let repeats = baler::package::subst::MAX_EXPANDED / expanded;
    let repo = subst_repo(repeats, message_len);
    let work = tempfile::tempdir().unwrap();
    succeeded(&package_tag(&repo, "near", "v1.0.0", work.path()));
    let tar = tar_listing(&gunzip(
        &std::fs::read(work.path().join("near-1.0.0.tar.gz")).unwrap(),
    ));
    let stamp = tar.iter().find(|i| i.path.ends_with(b"stamp.txt")).unwrap();
    assert!(
        stamp.content.len() > baler::package::subst::MAX_EXPANDED - expanded,
        "{} bytes: not near the cap",
        stamp.content.len()
    );
    assert!(stamp.content.len() <= baler::package::subst::MAX_EXPANDED);
    assert_eq!(
        tar,
        tar_listing(&git_archive(&repo, "tar", "near-1.0.0", "v1.0.0"))
    );
    let zip = zip_without_modes(&std::fs::read(work.path().join("near-1.0.0.zip")).unwrap());
    assert_eq!(
        zip,
        zip_without_modes(&git_archive(&repo, "zip", "near-1.0.0", "v1.0.0"))
    );
}

#[test]
fn large_files_streamed_in_chunks_equal_git_archive() {
    // Over the streaming threshold (8 MiB): one that deflates (the zip deflates it, in a second
    // pass) and one that does not (the zip stores it), each not a whole number of chunks.
    let mut repo = GitRepo::new();
    let text: Vec<u8> = (0..1_900_000u32)
        .flat_map(|i| format!("row {} {}\n", i % 7919, i / 13).into_bytes())
        .take(9 << 20 | 12_345)
        .collect();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..(9 << 20) / 8 + 3)
        .flat_map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()
        })
        .collect();
    repo.write("a-small.txt", b"before\n");
    repo.write("big/text.log", &text);
    repo.write("big/noise.bin", &noise);
    repo.write("z-small.txt", b"after\n");
    repo.commit("Large files");
    repo.git(&["tag", "v1.0.0"]);

    let work = tempfile::tempdir().unwrap();
    succeeded(&package_tag(&repo, "large", "v1.0.0", work.path()));
    let tgz = std::fs::read(work.path().join("large-1.0.0.tar.gz")).unwrap();
    let tar = tar_listing(&gunzip(&tgz));
    assert_eq!(
        tar,
        tar_listing(&git_archive(&repo, "tar", "large-1.0.0", "v1.0.0"))
    );
    let zip_bytes = std::fs::read(work.path().join("large-1.0.0.zip")).unwrap();
    let zip = zip_without_modes(&zip_bytes);
    assert_eq!(
        zip,
        zip_without_modes(&git_archive(&repo, "zip", "large-1.0.0", "v1.0.0"))
    );
    assert!(tar.iter().any(|i| i.content.len() == text.len()));
    // The zip deflated the text and stored the noise, as git decides.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let text_entry = archive.by_name("large-1.0.0/big/text.log").unwrap();
    assert_eq!(text_entry.compression(), zip::CompressionMethod::Deflated);
    drop(text_entry);
    let noise_entry = archive.by_name("large-1.0.0/big/noise.bin").unwrap();
    assert_eq!(noise_entry.compression(), zip::CompressionMethod::Stored);
}
