//! An in-process CQL server for tests: the `kassandra` library behind a
//! TCP listener on a free port, one fresh server (and so fresh keyspaces)
//! per test.
//!
//! kassandra has two bugs that the query text must be rewritten around
//! before it parses QUERY and PREPARE frames (build-notes.md):
//! 1. `frozen<...>` in CREATE TABLE overflows its stack: `frozen<T>` → `T`;
//! 2. prepared statements count literals as bind markers, which breaks the
//!    driver's own `SELECT ... FROM system.local WHERE key='local'`: the
//!    predicate is dropped (system.local holds one row anyway).
//!
//! The server runs on a thread of its own (kassandra's session is not
//! shared across threads) and stops when dropped.

use futures_util::{SinkExt, StreamExt};
use kassandra::KassandraSession;
use kassandra::error::DbError;
use kassandra::frame::request::{Request, RequestOpcode};
use kassandra::frame::response::Response;
use kassandra::frame::response::error::Error as CqlError;
use kassandra::frame::{request_stream, response_sink};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running kassandra server.
pub struct CqlServer {
    /// Where it listens.
    pub addr: SocketAddr,
    statements: Arc<Mutex<Vec<String>>>,
    // Read by the live benchmark (examples/live_bench.rs), not every test.
    #[allow(dead_code)]
    requests: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CqlServer {
    /// Starts a server with an empty database on a free port.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("an address");
        let statements = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let log = statements.clone();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        let thread = std::thread::Builder::new()
            .name(format!("kassandra-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, serve(listener, log, counted, stopped));
            })
            .expect("a server thread");
        Self {
            addr,
            statements,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `host:port`, as a contact point.
    pub fn contact_point(&self) -> String {
        self.addr.to_string()
    }

    /// Requests (frames) the server has received from every client.
    #[allow(dead_code)] // The live benchmark's, not every test's.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Every statement text the server was sent (QUERY and PREPARE), after
    /// the rewrites.
    pub fn statements(&self) -> Vec<String> {
        self.statements.lock().expect("not poisoned").clone()
    }
}

impl Drop for CqlServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    log: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicU64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let session = Rc::new(RefCell::new(KassandraSession::new()));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    // As Cassandra's native transport does: without it,
                    // Nagle's algorithm holds small responses back while
                    // many requests are in flight on one connection.
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(client(
                        session.clone(),
                        log.clone(),
                        requests.clone(),
                        stream,
                    ));
                }
            }
        }
    }
}

async fn client(
    session: Rc<RefCell<KassandraSession>>,
    log: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicU64>,
    mut stream: tokio::net::TcpStream,
) {
    let (mut read, mut write) = stream.split();
    let mut frames = Box::pin(request_stream(&mut read));
    let mut sink = Box::pin(response_sink(&mut write));
    while let Some(Ok((params, opcode, body))) = frames.next().await {
        requests.fetch_add(1, Ordering::Relaxed);
        let body = match opcode {
            RequestOpcode::Query | RequestOpcode::Prepare => rewrite_body(&body, &log),
            _ => body.to_vec(),
        };
        let response = match Request::deserialize(opcode, &body, params.flags) {
            Ok(request) => handle(&mut session.borrow_mut(), request),
            Err(e) => Response::Error(e),
        };
        if sink.send((response, params.stream)).await.is_err() {
            return;
        }
    }
}

fn handle(k: &mut KassandraSession, request: Request<'_>) -> Response {
    let result = match request {
        Request::StartUp(_) | Request::Register { .. } => return Response::Ready,
        Request::Options => return Response::options(),
        Request::Query(q) => k.process(q),
        Request::Prepare(q) => k.prepare(q),
        Request::Execute(e) => k.execute(e),
        Request::Batch(b) => k.process_batch(b),
        Request::AuthResponse => {
            return Response::Error(CqlError::new(
                DbError::ProtocolError,
                "this test server has no authentication",
            ));
        }
    };
    match result {
        Ok(r) => Response::Result(r),
        Err(e) => Response::Error(e),
    }
}

/// The body of a QUERY or PREPARE frame starts with the statement as a
/// `[long string]` (a 4-byte length, then UTF-8); the rest is kept as it is.
fn rewrite_body(body: &[u8], log: &Mutex<Vec<String>>) -> Vec<u8> {
    let Some(len) = body
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .and_then(|l| usize::try_from(l).ok())
    else {
        return body.to_vec();
    };
    let Some(Ok(text)) = body.get(4..4 + len).map(std::str::from_utf8) else {
        return body.to_vec();
    };
    let rewritten = rewrite_cql(text);
    log.lock().expect("not poisoned").push(rewritten.clone());
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&(rewritten.len() as i32).to_be_bytes());
    out.extend_from_slice(rewritten.as_bytes());
    out.extend_from_slice(&body[4 + len..]);
    out
}

/// The two rewrites kassandra needs.
pub fn rewrite_cql(cql: &str) -> String {
    let mut s = strip_frozen(cql);
    for predicate in [" WHERE key='local'", " WHERE key = 'local'"] {
        s = s.replace(predicate, "");
    }
    s
}

fn strip_frozen(cql: &str) -> String {
    let lower = cql.to_ascii_lowercase();
    let mut out = String::with_capacity(cql.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find("frozen<") {
        let start = at + found;
        let inner = start + "frozen<".len();
        let mut depth = 1;
        let mut end = None;
        for (i, c) in cql[inner..].char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(inner + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        out.push_str(&cql[at..start]);
        out.push_str(&strip_frozen(&cql[inner..end]));
        at = end + 1;
    }
    out.push_str(&cql[at..]);
    out
}

#[test]
fn rewrites_strip_frozen_and_the_local_key() {
    assert_eq!(
        rewrite_cql("c list<frozen<map<text, text>>>, t map<text, FROZEN<map<text, text>>>"),
        "c list<map<text, text>>, t map<text, map<text, text>>"
    );
    assert_eq!(
        rewrite_cql("SELECT host_id FROM system.local WHERE key='local'"),
        "SELECT host_id FROM system.local"
    );
}
