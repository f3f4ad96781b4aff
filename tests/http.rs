//! imppd's HTTP listener (`--http ADDR:PORT`, src/bin/imppd/http.rs), started by the test on
//! loopback with port 0 (the bound port is read from imppd's `imppd ready` line) and stopped
//! by PID: `/health` and `/metrics` answer, HEAD leaves the body out, other methods are
//! `405`, other paths `404`, a request head past 8 KiB is `431`, a malformed one `400`, and a
//! request that stalls is closed within its 2 s bound. Then the Python Prometheus client's
//! own text-format parser (`prometheus_client.parser`, PyPI `prometheus_client`; `.ci/run`
//! installs it) reads the exposition before and after SIP traffic and checks that the
//! counters move (`tests/peers/metrics_check.py`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::imppd::{password, Imppd};
use common::kamailio::{TempDir, DOMAIN};

/// The HTTP listener's address, from imppd's `imppd ready` line (`http:ADDR:PORT`).
fn http_addr(node: &Imppd) -> SocketAddr {
    let log = node.log();
    let ready = log
        .lines()
        .find(|l| l.starts_with("imppd ready"))
        .expect("a ready line");
    let word = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http:"))
        .unwrap_or_else(|| panic!("no http: address in {ready}"));
    word.parse().unwrap()
}

/// Sends `request` as is and reads the whole answer (the listener closes after one).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, method: &str, path: &str) -> String {
    exchange(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

#[test]
fn health_and_metrics_answer_and_bad_requests_are_refused() {
    let mut node = Imppd::start(&["alice"], &["--http", "127.0.0.1:0"]);
    let http = http_addr(&node);

    let health = get(http, "GET", "/health");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");

    let metrics = get(http, "GET", "/metrics?x=1");
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{metrics}"
    );
    for line in [
        "# TYPE imppd_subscriptions gauge\n",
        "imppd_subscriptions{state=\"active\"} 0\n",
        "imppd_subscriptions{state=\"pending\"} 0\n",
        "# TYPE imppd_guard_total counter\n",
        "imppd_guard_total{reason=\"auth_failure\"} 0\n",
        "imppd_endpoints 0\n",
        "imppd_connections_open 0\n",
        "imppd_up 1\n",
        "# TYPE imppd_sip_answers_total counter\n",
        "imppd_sip_answers_total{method=\"REGISTER\",class=\"2xx\"} 0\n",
        "imppd_sip_requests_sent_total{method=\"NOTIFY\"} 0\n",
        "imppd_sip_request_outcomes_total{outcome=\"timeout\"} 0\n",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }

    let head = get(http, "HEAD", "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    assert!(!head.contains("Content-Length: 0\r\n"), "{head}");

    let post = get(http, "POST", "/metrics");
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    let missing = get(http, "GET", "/metrics/x");
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );

    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let refused = exchange(http, big.as_bytes());
    assert!(
        refused.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{refused}"
    );
    let malformed = exchange(http, b"GET /metrics HTTP/1.1\r\nHost localhost\r\n\r\n");
    assert!(
        malformed.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{malformed}"
    );

    // A request head that never ends is closed, unanswered, within the 2 s bound.
    let mut stalled = TcpStream::connect(http).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stalled.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = stalled.read_to_end(&mut rest);
    let took = start.elapsed();
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );

    // The listener still serves after all that, and imppd stops cleanly with it (SIGTERM).
    assert!(get(http, "GET", "/health").starts_with("HTTP/1.1 200 OK\r\n"));
    node.stop();
    assert!(
        TcpStream::connect(http).is_err(),
        "the listener outlived imppd"
    );
}

#[test]
fn an_unusable_http_address_is_refused() {
    let out = Command::new(common::imppd::IMPPD)
        .args(["--domain", DOMAIN, "--db", "none", "--open"])
        .args(["--http", "localhost"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http localhost: expected ADDR:PORT"),
        "{err}"
    );
}

fn python() -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let parser = Command::new(&python)
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        parser,
        "{python} with prometheus_client is needed (python3 -m pip install prometheus_client; \
         .ci/run does)"
    );
    python
}

#[test]
fn the_prometheus_parser_reads_the_metrics_and_the_counters_move() {
    // The listener given in a config file this time (`http = ADDR:PORT`).
    let dir = TempDir::new("http-config");
    let config = dir.path().join("imppd.conf");
    std::fs::write(&config, "# metrics for the test\nhttp = 127.0.0.1:0\n").unwrap();
    let node = Imppd::start(&["alice"], &["--config", config.to_str().unwrap()]);
    let http = http_addr(&node);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/metrics_check.py");
    let out = Command::new(python())
        .arg(script)
        .args([
            http.port().to_string(),
            node.port().to_string(),
            DOMAIN.to_string(),
            "alice".to_string(),
            password("alice"),
        ])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "metrics_check.py failed:\n{text}\n===== imppd =====\n{}",
        node.log()
    );
    assert!(text.contains("metrics ok"), "{text}");
}
