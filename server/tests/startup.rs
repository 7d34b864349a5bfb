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
