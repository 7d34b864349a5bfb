//! The real binary: first start on an empty data dir, restart keeps rows, graceful SIGTERM,
//! clear errors for bad configuration.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_hanzo-live");

struct Running {
    child: Child,
    addr: String,
    log: Receiver<String>,
    seen: Vec<String>,
}

/// Starts `hanzo-live --port 0` with `args`, in `cwd` (no Leptos.toml there), and waits for
/// its "listening on" line.
fn start(cwd: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("LEPTOS_SITE_ADDR")
        .env_remove("LEPTOS_SITE_ROOT")
        .env_remove("PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hanzo-live");
    let (tx, log) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut running = Running {
        child,
        addr: String::new(),
        log,
        seen: Vec::new(),
    };
    let line = running.wait_for_line("listening on http://", Duration::from_secs(60));
    let addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    running.addr = addr;
    running
}

impl Running {
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "exit status {exit}");
        self.wait_for_line("stopped", Duration::from_secs(5));
        self.seen
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn count(db: &Path, sql: &str) -> i64 {
    let pool = sqlx::SqlitePool::connect_with(server::db::connect_options(db))
        .await
        .unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_creates_the_database_and_a_restart_keeps_its_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("nested").join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let site = tmp.path().join("no-site");
    let site_arg = site.to_str().unwrap().to_owned();
    let args = ["--data-dir", &data_arg, "--site-root", &site_arg];

    let mut first = start(tmp.path(), &args);
    first.wait_for_line("site bundle not found", Duration::from_secs(5));
    let (status, body) = http_get(&first.addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "healthy");
    let db = data.join("hanzo-live.db");
    assert!(db.is_file(), "database not created at {}", db.display());
    assert!(data.join("models").is_dir(), "models dir not created");
    // The page is served even without the bundle.
    let (status, html) = http_get(&first.addr, "/");
    assert_eq!(status, 200);
    assert!(html.contains("data-testid=\"status-bar\""));

    // A row written while the server runs (WAL allows a second connection).
    let pool = sqlx::SqlitePool::connect_with(server::db::connect_options(&db))
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (username, password_hash) VALUES ('keeper', 'x')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let migrations = count(&db, "SELECT count(*) FROM _sqlx_migrations").await;
    first.terminate();

    let second = start(tmp.path(), &args);
    let (status, _) = http_get(&second.addr, "/health");
    assert_eq!(status, 200);
    assert_eq!(
        count(&db, "SELECT count(*) FROM users WHERE username = 'keeper'").await,
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM _sqlx_migrations").await,
        migrations
    );
    second.terminate();
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("hanzo-live {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("git commit {}", server::config::GIT_COMMIT)),
        "{text}"
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/Leptos.toml", "--port", "0"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read config file /nonexistent/Leptos.toml"),
        "{err}"
    );
}

#[test]
fn a_typo_in_leptos_toml_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("Leptos.toml"), "[server]\nprot = 3000\n").unwrap();
    let out = Command::new(BIN)
        .args(["--port", "0"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid config file") && err.contains("prot"),
        "{err}"
    );
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .args(["--host", "127.0.0.1", "--port", &port, "--data-dir"])
        .arg(tmp.path())
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// A minimal HTTP/1.1 request: (status, raw head, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (status, head.to_owned(), body.to_owned())
}

fn multipart_head(boundary: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.webm\"\r\n\
         Content-Type: video/webm\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_server_during_an_upload_leaves_no_partial_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let site_arg = tmp.path().join("no-site").to_str().unwrap().to_owned();
    let args = ["--data-dir", &data_arg, "--site-root", &site_arg];
    let mut first = start(tmp.path(), &args);
    let addr = first.addr.clone();

    let json = [("Content-Type", "application/json")];
    let (status, head, body) = http(
        &addr,
        "POST",
        "/api/v1/auth/register",
        &json,
        br#"{"username":"nina","password":"a long password"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // One finished recording.
    let boundary = "crash-test-boundary";
    let mut done = multipart_head(boundary);
    done.extend([0x1A, 0x45, 0xDF, 0xA3]);
    done.extend([1u8; 1000]);
    done.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (status, _, body) = http(
        &addr,
        "POST",
        "/api/v1/recordings",
        &[("Content-Type", &ct), ("Cookie", &cookie)],
        &done,
    );
    assert_eq!(status, 201, "{body}");
    let kept: serde_json::Value = serde_json::from_str(&body).unwrap();

    // A stream the kill will interrupt (its history row is still open).
    let db = data.join("hanzo-live.db");
    let pool = sqlx::SqlitePool::connect_with(server::db::connect_options(&db))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, pipeline_id, frames_out)
         SELECT 'running', id, 'passthrough', 77 FROM users WHERE username = 'nina'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // A large upload, killed halfway: 64 MiB announced, bytes trickling in.
    let incoming = data.join("recordings").join(".incoming");
    let (upload_addr, upload_cookie, upload_ct) = (addr.clone(), cookie.clone(), ct.clone());
    let uploader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&upload_addr).unwrap();
        let total = 64 * 1024 * 1024;
        let _ = write!(
            s,
            "POST /api/v1/recordings HTTP/1.1\r\nHost: {upload_addr}\r\nCookie: {upload_cookie}\r\n\
             Content-Type: {upload_ct}\r\nContent-Length: {total}\r\n\r\n"
        );
        let _ = s.write_all(&multipart_head("crash-test-boundary"));
        let _ = s.write_all(&[0x1A, 0x45, 0xDF, 0xA3]);
        let chunk = vec![9u8; 256 * 1024];
        while s.write_all(&chunk).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let staged: u64 = std::fs::read_dir(&incoming)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.metadata().unwrap().len())
                    .sum()
            })
            .unwrap_or(0);
        if staged > 2 * 1024 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    first.child.wait().unwrap();
    uploader.join().unwrap();
    assert!(
        std::fs::read_dir(&incoming).unwrap().count() > 0,
        "the kill should have left the staged file behind"
    );

    let mut second = start(tmp.path(), &args);
    second.wait_for_line("cleaned up recordings", Duration::from_secs(5));
    second.wait_for_line("closed history rows left open", Duration::from_secs(5));
    let (status, _, body) = http(
        &second.addr,
        "GET",
        "/api/v1/recordings",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0], kept);
    let (status, _, file) = http(
        &second.addr,
        "GET",
        &format!("/api/v1/recordings/{}/file", kept["id"]),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(file.len(), 1004);
    assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(data.join("recordings"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
            .count(),
        1
    );
    let (_, _, session) = http(
        &second.addr,
        "GET",
        "/api/v1/sessions/running",
        &[("Cookie", &cookie)],
        b"",
    );
    let session: serde_json::Value = serde_json::from_str(&session).unwrap();
    assert!(session["ended_at"].is_string(), "{session}");
    assert_eq!(session["frames_out"], 77);
    assert_eq!(session["error"], server::service::history::INTERRUPTED);
    second.terminate();
}
