//! Load tool: fires signed GitHub push deliveries at baler and reports deliveries/s and latency,
//! then `/healthz` at the same concurrency as the ceiling, then checks that the queue holds
//! exactly what was acknowledged.
//!
//!     cargo run --release --example hookload -- [--requests N] [--concurrency C]
//!         [--projects P] [--database-url URL]
//!
//! It starts its own `baler` server in this process (web only, so no worker competes for the
//! CPU), on a fresh SQLite file, or on PostgreSQL with `--database-url`. Every 50th delivery is
//! a tag, so the check covers merged branches and accumulated tags. Each delivery carries a
//! delivery id, as real hosts send, so the redelivery lookup is part of the cost.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baler::config::Config;
use baler::hooks::verify::github_signature;
use baler::startup::{Application, Role};
use futures::StreamExt;

const SECRET: &str = "load-secret";
const TOKEN: &str = "load-admin-token-0123456789";

struct Options {
    requests: usize,
    concurrency: usize,
    projects: usize,
    database_url: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        requests: 20_000,
        concurrency: 64,
        projects: 10,
        database_url: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        let number = || value.parse().expect("a number");
        match pair[0].as_str() {
            "--requests" => o.requests = number(),
            "--concurrency" => o.concurrency = number(),
            "--projects" => o.projects = number(),
            "--database-url" => o.database_url = Some(value.to_string()),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One prepared delivery: project index, ref, body and its signature.
struct Delivery {
    project: usize,
    git_ref: String,
    body: Vec<u8>,
    signature: String,
}

struct Round {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `count` requests made by `make`, `concurrency` at a time.
async fn round<F, Fut>(count: usize, concurrency: usize, make: F) -> Round
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|n| {
            let request = make(n);
            async move {
                let t = Instant::now();
                request.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    latencies.sort();
    Round {
        per_second: count as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

fn main() {
    let o = options();
    // Delivery ids unique to this run: a reused PostgreSQL database remembers an earlier
    // run's deliveries and would answer them as redeliveries.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let temp = tempfile::tempdir().unwrap();
    let database = o
        .database_url
        .as_ref()
        .map(|u| format!("database_url = \"{u}\"\n"))
        .unwrap_or_default();
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_token = \"{TOKEN}\"\n{database}",
        temp.path().display()
    );
    for p in 0..o.projects {
        toml.push_str(&format!(
            "[[projects]]\nname = \"load{p}\"\nrepo = \"file:///nonexistent\"\nprovider = \"github\"\nsecret = \"{SECRET}\"\n"
        ));
    }
    let config = Config::from_toml(&toml, &[]).unwrap();

    // The server gets its own runtime and threads, as a separate process would.
    let server = tokio::runtime::Runtime::new().unwrap();
    let app = server
        .block_on(Application::build(config, Role::Web))
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let queue = app.queue().clone();
    server.block_on(queue.set_paused(true)).unwrap();
    // Start from an empty queue (a reused PostgreSQL database may hold an earlier run's items).
    server.block_on(queue.flush()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = server.spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(o.concurrency)
            .build()
            .unwrap();
        // Prepared bodies, so the client measures the server rather than its own signing.
        let bodies: Arc<Vec<Delivery>> = Arc::new(
            (0..o.requests)
                .map(|n| {
                    let project = n % o.projects;
                    let git_ref = if n % 50 == 0 {
                        format!("refs/tags/load-{n}")
                    } else {
                        "refs/heads/main".to_string()
                    };
                    let body = format!(
                        "{{\"ref\":\"{git_ref}\",\"after\":\"{:040x}\",\"deleted\":false,\"head_commit\":{{\"id\":\"{:040x}\"}},\"repository\":{{\"clone_url\":\"file:///nonexistent\"}}}}", n + 1, n + 1
                    )
                    .into_bytes();
                    let signature = github_signature(SECRET, &body);
                    Delivery {
                        project,
                        git_ref,
                        body,
                        signature,
                    }
                })
                .collect(),
        );
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));

        let hooks = round(o.requests, o.concurrency, |n| {
            let (client, base, bodies, accepted) = (&client, &base, bodies.clone(), accepted.clone());
            async move {
                let Delivery {
                    project,
                    git_ref,
                    body,
                    signature,
                } = &bodies[n];
                let response = client
                    .post(format!("{base}/hooks/load{project}"))
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("load-{run}-{n}"))
                    .header("x-hub-signature-256", signature)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                if response.status() == 202 {
                    accepted.lock().unwrap().push((*project, git_ref.clone()));
                }
            }
        })
        .await;
        let health = round(o.requests, o.concurrency, |_| {
            let (client, base) = (&client, &base);
            async move {
                let response = client.get(format!("{base}/healthz")).send().await.expect("request");
                assert_eq!(response.status(), 200);
            }
        })
        .await;

        let backend = if o.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
        println!(
            "{backend}: {} signed deliveries, concurrency {}, {} projects",
            o.requests, o.concurrency, o.projects
        );
        println!(
            "  webhooks: {:>8.0} deliveries/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            hooks.per_second,
            hooks.p50.as_secs_f64() * 1e3,
            hooks.p99.as_secs_f64() * 1e3
        );
        println!(
            "  /healthz: {:>8.0} requests/s     p50 {:>6.2} ms   p99 {:>6.2} ms",
            health.per_second,
            health.p50.as_secs_f64() * 1e3,
            health.p99.as_secs_f64() * 1e3
        );
        println!(
            "  webhooks reach {:.0}% of the /healthz ceiling",
            100.0 * hooks.per_second / health.per_second
        );

        // The check: one pending item per project, whose revision counts every accepted
        // delivery and whose tags are exactly the accepted tag pushes.
        let accepted = accepted.lock().unwrap().clone();
        assert_eq!(accepted.len(), o.requests, "every delivery was accepted");
        let listing: serde_json::Value = client
            .get(format!("{base}/api/v1/queue"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = listing["items"].as_array().unwrap();
        assert_eq!(items.len(), o.projects, "one pending item per project");
        let mut expected: HashMap<String, (usize, BTreeSet<String>)> = HashMap::new();
        for (project, git_ref) in &accepted {
            let entry = expected.entry(format!("load{project}")).or_default();
            entry.0 += 1;
            if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
                entry.1.insert(tag.to_string());
            }
        }
        for item in items {
            let (count, tags) = &expected[item["project"].as_str().unwrap()];
            assert_eq!(item["revision"].as_u64().unwrap() as usize, *count);
            let held: BTreeSet<String> = item["refs"]["tags"].as_object().unwrap().keys().cloned().collect();
            assert_eq!(&held, tags);
        }
        println!("  check: {} items, revisions and tags match the {} accepted deliveries", items.len(), accepted.len());
    });
    let _ = stop.send(());
    server.block_on(running).unwrap().unwrap();
}
