//! End-to-end: the `flowkeep` binary starts on the embedded default (generating its master key file,
//! bootstrapping principals), answers `/health` and `/config`, listens for gRPC, refuses an invalid
//! configuration with a message naming the key, stops cleanly on SIGTERM, serves TLS with `--dev-tls`,
//! and `flowkeep audit verify` checks the audit chain.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn flowkeep() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowkeep"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FLOWKEEP_")) {
        cmd.env_remove(key);
    }
    cmd
}

struct Server {
    child: Child,
    base: String,
    grpc_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(data_dir: &std::path::Path) -> Server {
    let port = free_port();
    let grpc_port = free_port();
    let child = flowkeep()
        .arg("serve")
        .env("FLOWKEEP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("FLOWKEEP_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
        .env("FLOWKEEP_DATA_DIR", data_dir)
        .env("FLOWKEEP_LOG_LEVEL", "warn")
        .env("FLOWKEEP_ADMIN_PASSWORD", "a long enough test password")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn flowkeep");
    let server = Server { child, base: format!("http://127.0.0.1:{port}"), grpc_port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/health/ready", server.base)).await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serves_health_and_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path()).await;

    let health: serde_json::Value =
        reqwest::get(format!("{}/health", server.base)).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "ok");

    let live = reqwest::get(format!("{}/health/live", server.base)).await.unwrap();
    assert_eq!(live.status(), 200);

    let config: serde_json::Value =
        reqwest::get(format!("{}/config", server.base)).await.unwrap().json().await.unwrap();
    assert_eq!(config["enable_analytics"], false, "clients must not send telemetry");
    for key in ["version", "domain", "wshost", "wsurl"] {
        assert!(config[key].is_string(), "{key} must be a string: {config}");
    }
    assert!(config["ping_clients_interval"].is_i64());
    assert_eq!(config["supports_watch"], true);
    assert!(config["wsurl"].as_str().unwrap().ends_with("/ws/v2"), "{config}");
    std::net::TcpStream::connect(("127.0.0.1", server.grpc_port)).expect("the gRPC listener accepts connections");
    assert!(config.as_object().unwrap().values().all(|v| !v.is_null()), "typed keys are never null");

    let jwks: serde_json::Value =
        reqwest::get(format!("{}/.well-known/jwks.json", server.base)).await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("a JWKS document");
    assert!(!keys.is_empty(), "{jwks}");
    assert!(keys.iter().all(|k| k["kty"] == "OKP" && k["alg"] == "EdDSA" && k["kid"].is_string()), "{jwks}");
    assert!(keys.iter().all(|k| k.get("d").is_none()), "never a private part: {jwks}");

    assert!(dir.path().join("flowkeep.db").exists(), "the embedded database lives in data_dir");
    let key_file = dir.path().join("flowkeep.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the generated master key file is owner-only");

    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit status after SIGTERM: {code}");

    let key_before = std::fs::read(&key_file).unwrap();
    let out = flowkeep()
        .args(["audit", "verify"])
        .env("FLOWKEEP_DATA_DIR", dir.path())
        .env("FLOWKEEP_LOG_LEVEL", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audit verify: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("the audit chain is intact"), "{stdout}");
    assert_eq!(std::fs::read(&key_file).unwrap(), key_before, "the master key is reused, never regenerated");
}

#[test]
fn a_well_known_master_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowkeep()
        .arg("audit")
        .arg("verify")
        .env("FLOWKEEP_DATA_DIR", dir.path())
        .env("FLOWKEEP_MASTER_KEY", "0000000000000000000000000000000000000000000000000000000000000000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master_key"), "{stderr}");
}

#[test]
fn invalid_configuration_is_refused_with_the_key_named() {
    let out = flowkeep().args(["config"]).env("FLOWKEEP_MAX_QUERY_DEPTH", "0").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_query_depth"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:1\"\n").unwrap();
    let out = flowkeep().args(["--config"]).arg(&file).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen"), "an unknown key is named: {stderr}");
}

#[test]
fn dev_tls_generates_a_certificate_and_serves_tls() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = flowkeep()
        .args(["serve", "--dev-tls"])
        .env("FLOWKEEP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("FLOWKEEP_GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("FLOWKEEP_DATA_DIR", dir.path())
        .env("FLOWKEEP_LOG_LEVEL", "warn")
        .env("FLOWKEEP_ADMIN_PASSWORD", "a long enough test password")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flowkeep");
    let _server = Server { child, base: String::new(), grpc_port: 0 };
    let cert = dir.path().join("dev-tls/cert.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(cert.is_file() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        assert!(Instant::now() < deadline, "server with --dev-tls did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_to_string(&cert).unwrap().contains("BEGIN CERTIFICATE"));
    // The HTTP listener speaks TLS only: a plain-text request gets no HTTP answer.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP must not be served: {}", String::from_utf8_lossy(&answer));
    let key = dir.path().join("dev-tls/key.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the development key is owner-only");
}

#[test]
fn config_keys_list_the_transport_keys() {
    let out = flowkeep().args(["config", "--keys"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for key in ["grpc_addr", "tls_cert_file", "tls_key_file", "dev_tls", "max_message_mib", "idle_timeout_seconds"] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
}

#[test]
fn bench_wire_runs_and_prints_a_table() {
    let out = flowkeep()
        .args(["bench", "wire", "--connections", "2", "--inflight", "2", "--requests", "20", "--warmup-ms", "0"])
        .args(["--docs", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    for row in
        ["| gRPC | query by _id |", "| gRPC | insertone |", "| WebSocket | query by _id |", "| WebSocket | insertone |"]
    {
        assert!(stdout.contains(row), "{row} missing: {stdout}");
    }
    assert_eq!(stdout.matches("bare echo").count(), 4, "{stdout}");
    assert!(!stdout.contains("| 0 | 0.00 | 0.00 |"), "every row measured something: {stdout}");
}

#[test]
fn bench_messaging_delivers_every_message_and_item() {
    let out = flowkeep()
        .args(["bench", "messaging", "--messages", "40", "--connections", "2", "--inflight", "2", "--consumers", "2"])
        .args(["--items", "15", "--workers", "2", "--skip-rabbitmq"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let row = |prefix: &str| -> Vec<String> {
        let line =
            stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} missing: {stdout}"));
        line.split('|').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
    };
    // backend | path | sent | received | errors | messages/s | …: all 40 sent and received, no errors.
    for prefix in ["| in-process | Flowkeep: queuemessage → queueevent |", "| in-process | raw InProcessBroker |"] {
        let cells = row(prefix);
        assert_eq!(&cells[2..5], ["40", "40", "0"], "{prefix}: {stdout}");
        assert!(cells[5].parse::<f64>().unwrap() > 0.0, "{prefix}: {stdout}");
    }
    // operation | items | completed | errors | …: every item pushed, then popped and updated once.
    for prefix in ["| pushworkitems |", "| popworkitem → updateworkitem |"] {
        let cells = row(prefix);
        assert_eq!(&cells[1..4], ["15", "15", "0"], "{prefix}: {stdout}");
    }
    assert!(stdout.contains("RabbitMQ rows skipped: --skip-rabbitmq."), "{stdout}");
}

#[test]
fn help_lists_the_commands() {
    let out = flowkeep().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "config", "bench"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn keys_rotate_keeps_the_retired_key_in_the_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = flowkeep()
            .args(args)
            .env("FLOWKEEP_DATA_DIR", dir.path())
            .env("FLOWKEEP_LOG_LEVEL", "error")
            .env("FLOWKEEP_ADMIN_PASSWORD", "a long enough test password")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let kids = |jwks: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(jwks).unwrap();
        v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
    };
    let before = kids(&run(&["keys", "jwks"]));
    assert_eq!(before.len(), 1, "one key at first start: {before:?}");
    let rotated = run(&["keys", "rotate"]);
    let new_kid = rotated.trim().rsplit(' ').next().unwrap().to_string();
    let after = kids(&run(&["keys", "jwks"]));
    assert!(after.contains(&before[0]), "the retired key still verifies: {after:?}");
    assert!(after.contains(&new_kid) && new_kid != before[0], "{rotated} / {after:?}");
    assert!(run(&["audit", "verify"]).contains("the audit chain is intact"));
}
