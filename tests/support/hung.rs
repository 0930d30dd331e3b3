//! A host that accepts connections and then says nothing: what a frozen git server or a stuck
//! load balancer looks like to a client. It can recover: after `forward_to`, new connections
//! reach a real server.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

use super::git::{GitRepo, run};
use super::smart_http::SmartHttpServer;

pub struct HungHost {
    pub addr: SocketAddr,
    forward: Arc<Mutex<Option<SocketAddr>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HungHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HungHost {
    pub async fn start() -> HungHost {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let forward: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let task = {
            let (forward, held) = (forward.clone(), held.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let target = *forward.lock().unwrap();
                    match target {
                        // Kept open, never read and never answered.
                        None => held.lock().unwrap().push(client),
                        Some(target) => {
                            tokio::spawn(async move {
                                if let Ok(mut server) = TcpStream::connect(target).await {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server)
                                        .await;
                                }
                            });
                        }
                    }
                }
            })
        };
        HungHost {
            addr,
            forward,
            held,
            task,
        }
    }

    /// `http://ADDR/NAME`: a repository URL on this host.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// How many connections are being held unanswered.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// From now on, new connections are passed to `target`.
    pub fn forward_to(&self, target: SocketAddr) {
        *self.forward.lock().unwrap() = Some(target);
    }
}

/// A repository served over smart HTTP (with a token), reached through a host that hangs
/// until it is told to forward.
pub struct HungPrivateHost {
    pub repo: GitRepo,
    /// The served repositories' directory, kept while the server runs.
    pub _root: tempfile::TempDir,
    pub server: SmartHttpServer,
    pub hung: HungHost,
}

pub async fn hung_private_host() -> HungPrivateHost {
    let repo = GitRepo::standard();
    let root = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo.dir)
        .arg(root.path().join("widget.git")));
    let server =
        SmartHttpServer::start(root.path().to_path_buf(), "x-access-token", "s3cret-token").await;
    HungPrivateHost {
        repo,
        _root: root,
        server,
        hung: HungHost::start().await,
    }
}
