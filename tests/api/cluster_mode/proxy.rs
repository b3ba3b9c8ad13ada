//! A loopback TCP proxy in front of PostgreSQL that can lose a COMMIT's answer, the worst moment for a
//! network to drop: once armed, it passes the next COMMIT on to the server, cuts the client's side of that
//! connection — the server's side stays open, so the server commits as if nothing had happened and its answer
//! goes nowhere — and refuses new connections for a while. Plain threads, so it keeps forwarding while a
//! test's single-threaded runtime is blocked (an exchange's schema is dropped with a blocking `psql`).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
// Outside a runtime (these are plain threads) tokio's clock is the system's.
use tokio::time::Instant;

/// The simple-query message the ledger's writer ends a batch with: `Q`, its length (4 + 7), `COMMIT\0`.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

pub struct CommitCutter {
    addr: SocketAddr,
    /// The upstream URL with this proxy's address in place of the server's.
    url: String,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    armed: AtomicBool,
    cuts: AtomicUsize,
    refuse_until: Mutex<Option<Instant>>,
    stopped: AtomicBool,
}

impl CommitCutter {
    /// Starts a proxy to the PostgreSQL of `upstream` (a URL) that, after a cut, refuses connections for
    /// `refuse_for`.
    pub fn start(upstream: &str, refuse_for: Duration) -> CommitCutter {
        let config: tokio_postgres::Config = upstream.parse().expect("a PostgreSQL URL");
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("the proxy forwards TCP only, not {other:?}"),
        };
        let server = format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let user = config.get_user().unwrap_or("postgres");
        let url = format!("postgres://{user}@{addr}/{}", config.get_dbname().unwrap_or(user));
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || accept(&listener, &server, &shared, refuse_for));
        CommitCutter { addr, url, state }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Makes the next COMMIT's answer go missing.
    pub fn arm(&self) {
        self.state.armed.store(true, Ordering::SeqCst);
    }

    /// How many connections were cut after their COMMIT.
    pub fn cuts(&self) -> usize {
        self.state.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CommitCutter {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept(listener: &TcpListener, server: &str, state: &Arc<State>, refuse_for: Duration) {
    for client in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let refusing = state.refuse_until.lock().is_some_and(|until| Instant::now() < until);
        if refusing {
            drop(client);
            continue;
        }
        let Ok(upstream) = TcpStream::connect(server) else { continue };
        let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
        let (client_in, upstream_out) = (client.try_clone().expect("clone"), upstream.try_clone().expect("clone"));
        let (forwarding, cut) = (Arc::clone(state), Arc::new(AtomicBool::new(false)));
        let cut_here = Arc::clone(&cut);
        std::thread::spawn(move || to_server(client_in, upstream_out, &forwarding, &cut_here, refuse_for));
        std::thread::spawn(move || to_client(upstream, client, &cut));
    }
}

/// Client to server; an armed COMMIT marks the connection `cut` before it reaches the server (so no answer to
/// it can slip through), then the client is cut off (the server's side stays open).
fn to_server(mut client: TcpStream, mut server: TcpStream, state: &State, cut: &AtomicBool, refuse_for: Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = match client.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = server.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => read,
        };
        let chunk = &buf[..read];
        let commits = chunk.windows(COMMIT.len()).any(|window| window == COMMIT);
        let cutting = commits && state.armed.swap(false, Ordering::SeqCst);
        if cutting {
            cut.store(true, Ordering::SeqCst);
            *state.refuse_until.lock() = Some(Instant::now() + refuse_for);
        }
        if server.write_all(chunk).is_err() {
            return;
        }
        if cutting {
            state.cuts.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Server to client; once the connection is cut, the server's answers are read and dropped until it closes.
fn to_client(mut server: TcpStream, mut client: TcpStream, cut: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(read) = server.read(&mut buf) {
        if read == 0 {
            break;
        }
        if !cut.load(Ordering::SeqCst) && client.write_all(&buf[..read]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}
