//! An export-subst bomb fails its ref, and the `baler serve` process stays in bounded
//! memory.

use baler::startup::Role;

use super::{TOKEN, assert_all_done, problem, problems};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ItemState, ProjectSpec, TestApp, TestDb, wait_until};

/// The process's peak resident memory, in bytes (Linux's `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

async fn an_export_subst_bomb_fails_its_ref_in_bounded_memory(db: TestDb) {
    // 180 KB of `$Format:%B$` with a 32 KB commit message would expand to about 540 MB.
    let mut repo = GitRepo::new();
    repo.write(".gitattributes", b"bomb.txt export-subst\n");
    repo.write("bomb.txt", &b"$Format:%B$".repeat(180 * 1024 / 11));
    repo.write("README.md", b"bomb\n");
    repo.git(&["add", "-A"]);
    let message = format!("Bomb\n\n{}", "x".repeat(32 * 1024));
    repo.git(&["commit", "-q", "-m", &message]);
    repo.git(&["tag", "bomb"]);
    repo.git(&["rm", "-q", "bomb.txt"]);
    repo.commit("Defused");
    repo.git(&["tag", "v1.0.0"]);
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .admin_token(TOKEN)
        .project(ProjectSpec::github("bomb", repo.url()))
        .start()
        .await;
    // The real server process (web and workers), whose memory the test reads.
    let server = app.serve_child(&["serve"]).await.process;
    let before = peak_rss(server.process.id());
    // One push; the job's scan of every tag finds the bomb too.
    app.github_push("bomb", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    wait_until(120, "the job to finish", || async {
        app.items_in(&[ItemState::Done, ItemState::Failed]).await == 1
    })
    .await;
    assert_all_done(&app, 1).await;
    assert_eq!(app.versions("bomb").await, ["1.0.0"]);
    let found = problems(&app, "bomb").await;
    let bomb = problem(&found, "refs/tags/bomb").expect("the bomb is a problem");
    let reason = bomb["reason"].as_str().unwrap();
    assert!(
        reason.contains("export-subst") && reason.contains("bomb.txt"),
        "{reason}"
    );
    let peak = peak_rss(server.process.id());
    assert!(
        peak < 200 << 20,
        "the server's peak RSS was {} MB (before the job: {} MB)",
        peak >> 20,
        before >> 20
    );
}

on_both_databases!(an_export_subst_bomb_fails_its_ref_in_bounded_memory);
