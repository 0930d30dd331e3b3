//! export-subst: an expansion past the cap fails in bounded memory; one just under it equals
//! `git archive`.

use std::process::Command;

use super::{git_archive, gunzip, package_tag, succeeded, zip_without_modes};
use crate::support::archive_listing::{run_measuring_peak, tar_listing};
use crate::support::git::GitRepo;

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
