//! imppd's SIP over TLS against peers that are not this crate's code, each started here on
//! loopback ports with certificates made for the run (tests/common/certs.rs):
//!
//! - Python's `ssl` module (OpenSSL) at the edges, `tests/peers/tls_edges.py`: a client
//!   refuses imppd's certificate for a wrong name and an expired one; imppd refuses a client
//!   certificate from a CA it does not trust, plain text on its TLS port (no SIP answer, the
//!   connection closes) and a TLS handshake on its TCP port; imppd refuses to talk to a peer
//!   domain's server whose certificate names another domain, and reaches the right one over
//!   mutual TLS presenting its own; a stalled handshake is closed by imppd within its 1 s bound; then a
//!   normal REGISTER over TLS works.
//! - PJSIP's Python binding, pjsua2 (PyPI `pjsua2-python`), `tests/peers/pjsua2_peer.py`:
//!   two accounts register over TLS with digest, publish, watch each other and exchange
//!   messages; an account that trusts another CA does not register, nor one whose server's
//!   certificate does not name the address it connects to.
//!
//! Needs python3, and pjsua2 for the second test (`python3 -m pip install pjsua2-python`;
//! `.ci/run` does): a missing one fails with that hint, never a silent skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::certs::TestCa;
use common::imppd::{password, Imppd};
use common::kamailio::{free_port, TempDir, DOMAIN};

/// The peer domain the Python script serves.
const PEER_DOMAIN: &str = "b.test";

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

fn python() -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let works = Command::new(&python)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "{python} is needed for the TLS peer tests (apt-get install python3)"
    );
    python
}

/// Runs `script` with `args`; panics with its output and imppd's logs unless it exits 0.
fn run_script(script: &str, args: &[String], imppds: &[&Imppd]) -> String {
    let out = Command::new(python())
        .arg(scripts().join(script))
        .args(args)
        // Nothing written into the source tree (sipwire.py's compiled copy).
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let logs: String = imppds
            .iter()
            .map(|i| format!("\n===== imppd =====\n{}", i.log()))
            .collect();
        panic!("{script} failed ({}):\n{text}{logs}", out.status);
    }
    text
}

/// imppd with a TLS listener presenting `cert` (files `cert.crt`, `cert.key` in `dir`) and
/// trusting `dir/ca.crt`; returns it and its TLS port.
fn imppd_tls(users: &[&str], dir: &Path, cert: &str, extra: &[String]) -> (Imppd, u16) {
    let tls = free_port();
    let path = |ext: &str| dir.join(format!("{cert}.{ext}")).display().to_string();
    let mut args = vec![
        "--listen".to_string(),
        format!("tls:127.0.0.1:{tls}"),
        "--tls-cert".into(),
        path("crt"),
        "--tls-key".into(),
        path("key"),
        "--tls-ca".into(),
        dir.join("ca.crt").display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Imppd::start(users, &args), tls)
}

#[test]
fn python_ssl_at_the_edges_of_imppds_tls_port() {
    let dir = TempDir::new("tls-edges");
    let ca = TestCa::new("tls edges CA");
    ca.write(dir.path(), "ca");
    ca.issue(&[DOMAIN]).write(dir.path(), "imppd");
    ca.issue_with(&[DOMAIN], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    })
    .write(dir.path(), "expired");
    ca.issue(&[PEER_DOMAIN]).write(dir.path(), "peer-right");
    ca.issue(&["c.test"]).write(dir.path(), "peer-wrong");
    TestCa::new("a CA imppd does not trust")
        .issue(&["x.test"])
        .write(dir.path(), "stranger");

    let peer_port = free_port();
    // A handshake bound of 1 s (imppd's clock is the real one): the script waits for the
    // stalled connection to be closed.
    let route = vec![
        "--route".to_string(),
        format!("{PEER_DOMAIN}=tls:127.0.0.1:{peer_port}"),
        "--tls-handshake-timeout".into(),
        "1".into(),
    ];
    let (mut imppd, tls) = imppd_tls(&["alice"], dir.path(), "imppd", &route);
    let (mut expired, expired_tls) = imppd_tls(&[], dir.path(), "expired", &[]);
    let args = vec![
        "--stall-timeout".to_string(),
        "1".into(),
        "--certs".into(),
        dir.path().display().to_string(),
        "--tls".into(),
        tls.to_string(),
        "--tcp".into(),
        imppd.port().to_string(),
        "--expired".into(),
        expired_tls.to_string(),
        "--peer-port".into(),
        peer_port.to_string(),
        "--domain".into(),
        DOMAIN.into(),
        "--peer-domain".into(),
        PEER_DOMAIN.into(),
        "--user".into(),
        "alice".into(),
        "--password".into(),
        password("alice"),
    ];
    let out = run_script("tls_edges.py", &args, &[&imppd, &expired]);
    assert!(out.contains("checks: 9 ok, 0 failed"), "{out}");
    eprintln!("{out}");
    imppd.stop();
    expired.stop();
}

#[test]
fn pjsua2_publishes_subscribes_and_messages_over_tls() {
    let python = python();
    let found = Command::new(&python)
        .args(["-c", "import pjsua2"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "pjsua2 (PJSIP's Python binding) is needed: {python} -m pip install pjsua2-python \
         (.ci/run does)"
    );
    let dir = TempDir::new("tls-pjsua2");
    let ca = TestCa::new("pjsua2 test CA");
    ca.write(dir.path(), "ca");
    ca.issue(&[DOMAIN]).write(dir.path(), "imppd");
    let stranger = TestCa::new("a CA that did not sign imppd's certificate");
    let stranger_ca = stranger.write(dir.path(), "stranger-ca");
    // A certificate from the right CA that names the domain but not 127.0.0.1, the address
    // the phones connect to.
    ca.issue_with(&[DOMAIN], |p| {
        p.subject_alt_names
            .retain(|n| !matches!(n, rcgen::SanType::IpAddress(_)))
    })
    .write(dir.path(), "unnamed");
    let (mut imppd, tls) = imppd_tls(&["alice", "bob"], dir.path(), "imppd", &[]);
    let (mut unnamed, unnamed_tls) = imppd_tls(&["alice"], dir.path(), "unnamed", &[]);
    let args = vec![
        "--port".to_string(),
        tls.to_string(),
        "--unnamed-port".into(),
        unnamed_tls.to_string(),
        "--ca".into(),
        dir.path().join("ca.crt").display().to_string(),
        "--stranger-ca".into(),
        stranger_ca.display().to_string(),
        "--domain".into(),
        DOMAIN.into(),
        // One argument: argparse would take "-pw" alone for an option.
        format!("--password-suffix={}", password("")),
    ];
    let out = run_script("pjsua2_peer.py", &args, &[&imppd, &unnamed]);
    assert!(out.contains("steps: 9 ok, 0 failed"), "{out}");
    eprintln!("{out}");
    imppd.stop();
    unnamed.stop();
}
