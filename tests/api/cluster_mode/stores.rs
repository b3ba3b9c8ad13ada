//! Private PostgreSQL and Redis instances on free ports, for tests that stop, kill or empty a store: the
//! machine's shared servers are never touched. PostgreSQL refuses to run as root, so when the tests run as
//! root its commands run as the `postgres` user (`runuser`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free TCP port on loopback (bound then released: another process could take it first; tests retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A Redis of the test's own, empty, keeping nothing on disk.
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = PrivateRedis { port: free_port(), dir, child: None };
        redis.run().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt install redis-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok() {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server on port {} did not come up", self.port);
    }

    /// `kill -9`: everything in it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (as a Redis without persistence comes back).
    pub async fn restart_empty(&mut self) {
        self.kill();
        self.run().await;
    }

    /// Empties it while it runs.
    pub async fn flush(&self) {
        let client = redis::Client::open(self.url()).expect("url");
        let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
        let _: () = redis::cmd("FLUSHALL").query_async(&mut connection).await.expect("flushall");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of the test's own.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions.flatten().map(|v| v.path().join("bin")).find(|bin| bin.join("initdb").exists())
            })
            .expect("PostgreSQL's server binaries under /usr/lib/postgresql/*/bin (apt install postgresql)");
        let dir = tempfile::tempdir().expect("temp dir");
        as_postgres_owner(dir.path());
        let data = dir.path().join("db");
        let status = postgres_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "root", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed in {}", data.display());
        let mut postgres = PrivatePostgres { port: free_port(), dir, bin, running: false };
        postgres.resume().await;
        postgres
    }

    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it at once (`pg_ctl stop -m immediate`: like a crash, no shutdown checkpoint).
    pub fn stop(&mut self) {
        if self.running {
            let _ = postgres_command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("db"))
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }

    /// Starts it (again) on the same port and data.
    pub async fn resume(&mut self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let status = postgres_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("db"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "private PostgreSQL did not start on port {}", self.port);
        self.running = true;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PostgreSQL's commands, as the `postgres` user when this process is root.
fn postgres_command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn as_postgres_owner(dir: &Path) {
    if is_root() {
        let _ = Command::new("chown").arg("postgres").arg(dir).status();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}
