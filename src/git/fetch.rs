//! Fetching in a child process, so that a hung host can never hold a worker. libgit2 has no
//! per-call timeout (its global socket timeouts are `unsafe` to set), and a thread blocked in
//! a socket read cannot be cancelled. A child process can: it watches its own idle clock and
//! exits when the server has said nothing for the time limit, and its parent kills it when
//! the job must stop. If the parent dies, the child still exits on its own clock.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{FetchStats, GitError, Mirror, RemoteAuth};

/// The child's exit code when the server said nothing for the time limit.
const EXIT_TIMEOUT: i32 = 75;

/// What the fetch child reads on its standard input (credentials never go on its command
/// line or into its environment, where other users could read them).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FetchRequest {
    pub mirror: PathBuf,
    pub url: String,
    pub auth: RemoteAuth,
    pub idle_timeout_ms: u64,
}

/// Brings the mirror up to date (cloning it the first time) in a child process running
/// `program fetch-mirror`. Fails with [`GitError::Timeout`] when the server connects to or
/// sends nothing for the request's idle limit, and with [`GitError::Stopped`] (the child
/// killed) as soon as `stop` says so.
pub fn fetch_in_child(
    program: &Path,
    request: &FetchRequest,
    stop: &dyn Fn() -> bool,
) -> Result<FetchStats, GitError> {
    let mut child = Command::new(program)
        .arg("fetch-mirror")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let input = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A child that died at once closes the pipe; its exit status says why.
    let _ = stdin.write_all(&input);
    drop(stdin);
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stop() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GitError::Stopped);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default())
        .trim()
        .to_string();
    match status.code() {
        Some(0) => serde_json::from_slice(&stdout)
            .map_err(|e| GitError::Fetch(format!("the fetch child answered {e}"))),
        Some(EXIT_TIMEOUT) => Err(GitError::Timeout(stderr)),
        _ if stderr.is_empty() => Err(GitError::Fetch(format!("the fetch child {status}"))),
        _ => Err(GitError::Fetch(stderr)),
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

/// The child's side (`baler fetch-mirror`): reads a [`FetchRequest`] from standard input,
/// fetches, prints the [`FetchStats`] as JSON and returns the exit code. A watchdog thread
/// ends the process when the server has said nothing for the idle limit.
pub fn run_fetch_child() -> i32 {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("reading the fetch request: {e}");
        return 2;
    }
    let request: FetchRequest = match serde_json::from_slice(&input) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("the fetch request is not valid: {e}");
            return 2;
        }
    };
    let started = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    let idle = Duration::from_millis(request.idle_timeout_ms);
    {
        let last_heard = last_heard.clone();
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100).min(idle));
                // A worker that exited (after its drain, or killed) leaves no fetch behind.
                if std::os::unix::process::parent_id() != parent {
                    eprintln!("the worker that started this fetch is gone");
                    std::process::exit(EXIT_TIMEOUT);
                }
                let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(heard) >= idle {
                    eprintln!(
                        "the repository sent nothing for {} s (worker.fetch_timeout_seconds); the fetch was abandoned",
                        idle.as_secs_f64()
                    );
                    std::process::exit(EXIT_TIMEOUT);
                }
            }
        });
    }
    let heard = || last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    match Mirror::open_or_clone_observed(&request.mirror, &request.url, &request.auth, &heard) {
        Ok((_, stats)) => {
            println!(
                "{}",
                serde_json::to_string(&stats).expect("stats serialise")
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
