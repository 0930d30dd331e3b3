//! Stalled-body attack, as issue 13 measured it: CLIENTS connections each declare a webhook
//! body of 24 MiB and send up to 24 MiB − 1 byte of it, then stall. Prints the server's
//! resident memory over time and how (and when) each connection was answered.
//!
//!     cargo build --release && cargo run --release --example stall -- [CLIENTS] [SECONDS]
//!
//! It runs the real `baler serve` (target/release/baler, or the binary named by `BALER_BIN`)
//! as a child process with default `[http]` settings, on a fresh data dir, so the figures are
//! the process's own. Linux only (it reads /proc/PID/status).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The body each client declares: just under GitHub's 25 MB cap.
const DECLARED: usize = 24 * 1024 * 1024;

fn resident_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(45);
    let binary = std::env::var("BALER_BIN").unwrap_or_else(|_| "target/release/baler".into());
    let dir = tempfile::tempdir().expect("a temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("baler.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
             [[projects]]\nname = \"widget\"\nrepo = \"file:///nowhere\"\n\
             provider = \"github\"\nsecret = \"s\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("the config is written");
    let mut server = Command::new(&binary)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts: {e} (build it, or set BALER_BIN)"));
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "baler did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = server.id();
    println!(
        "{clients} clients, {binary}: RSS at start {} MiB",
        resident_mib(pid)
    );

    let t0 = Instant::now();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let answers = answers.clone();
            std::thread::spawn(move || {
                let outcome = attack(port);
                answers
                    .lock()
                    .expect("no thread panicked holding it")
                    .push((outcome, t0.elapsed()));
            })
        })
        .collect();
    let mut peak = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let now = resident_mib(pid);
        peak = peak.max(now);
        let answered = answers.lock().expect("not poisoned").len();
        println!(
            "t={:>2}s RSS {now} MiB, answered {answered}/{clients}",
            t0.elapsed().as_secs()
        );
        if answered == clients {
            break;
        }
    }
    println!("peak RSS {peak} MiB");
    let mut answers = answers.lock().expect("not poisoned").clone();
    answers.sort_by_key(|(_, at)| *at);
    for (outcome, at) in answers {
        println!("{:>6.1}s  {outcome}", at.as_secs_f64());
    }
    let _ = server.kill();
    let _ = server.wait();
    drop(threads);
}

/// One client: the head, as much of the body as the server takes, then silence; returns the
/// status line the server answered with, or how the connection ended.
fn attack(port: u16) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return "could not connect".into();
    };
    let head = format!(
        "POST /hooks/widget HTTP/1.1\r\nHost: baler\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: {DECLARED}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return "closed before the head was sent".into();
    }
    let chunk = vec![b' '; 1024 * 1024];
    let mut sent = 0;
    while sent < DECLARED - 1 {
        let n = chunk.len().min(DECLARED - 1 - sent);
        if stream.write_all(&chunk[..n]).is_err() {
            break; // the server answered and closed
        }
        sent += n;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let mut answer = [0u8; 256];
    match stream.read(&mut answer) {
        Ok(0) => format!("closed without an answer ({} MiB sent)", sent >> 20),
        Ok(n) => String::from_utf8_lossy(&answer[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        Err(e) => format!("{e} ({} MiB sent)", sent >> 20),
    }
}
