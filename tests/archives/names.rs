//! Names as git stores them: backslashes, bytes that are not UTF-8 and non-ASCII names are
//! packaged byte for byte; crafted tree names that would leave the top directory fail.

use std::process::Command;

use baler::git::{GitError, Mirror};

use super::{git_archive, gunzip, package_tag, succeeded, zip_without_modes};
use crate::support::archive_listing::tar_listing;
use crate::support::git::GitRepo;

/// The file name `bytes` (relative to the work tree), created as it is: bytes that are not
/// UTF-8 included.
fn write_raw(repo: &GitRepo, path: &[u8], content: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let full = repo.dir.join(std::ffi::OsStr::from_bytes(path));
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
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
