//! XCAP (RFC 4825) for pres-rules (RFC 5025) on imppd's HTTP listener, with the real binary
//! and a real HTTP client, curl (its own digest authentication, RFC 7616): a user reads the
//! pres-rules made from its stored rules, allows a pending SIP watcher with a PUT of a new
//! document (the watcher gets an active NOTIFY at once), adds and removes one rule by node
//! selector, and is refused clearly, with nothing changed, for a stale `If-Match` (412), a
//! document that is not XML or that the engine cannot enforce (409 with an
//! `application/xcap-error+xml` body), another user's document (403) and wrong or missing
//! credentials (401). The same listener over TLS (`--https`) serves `/health`, `/metrics`
//! and XCAP.

mod common;

use std::path::Path;
use std::process::Command;

use common::certs::TestCa;
use common::curl::curl;
use common::imppd::{password, Imppd, IMPPD};
use common::kamailio::{TempDir, DOMAIN};
use common::sip::{token, Client};

/// The listener's address from imppd's `imppd ready` line (`SCHEME:ADDR:PORT`).
fn listener(node: &Imppd, scheme: &str) -> String {
    let log = node.log();
    let ready = log.lines().find(|l| l.starts_with("imppd ready")).unwrap();
    let prefix = format!("{scheme}:");
    ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {scheme}: address in {ready}"))
        .to_owned()
}

fn rules_in_store(db: &Path) -> String {
    let out = Command::new(IMPPD)
        .args(["rule", "list", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

const AUTH_POLICY: &str = "Content-Type: application/auth-policy+xml";
const XCAP_EL: &str = "Content-Type: application/xcap-el+xml";

fn document(rules: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cr:ruleset \
         xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\" \
         xmlns:pr=\"urn:ietf:params:xml:ns:pres-rules\">{rules}</cr:ruleset>"
    )
}

fn rule(id: &str, identity: &str, action: &str) -> String {
    format!(
        "<cr:rule id=\"{id}\"><cr:conditions><cr:identity>{identity}</cr:identity>\
         </cr:conditions><cr:actions><pr:sub-handling>{action}</pr:sub-handling></cr:actions>\
         </cr:rule>"
    )
}

/// The Subscription-State of the watcher's next NOTIFY.
fn next_state(client: &mut Client) -> String {
    let notify = client.next_request("NOTIFY");
    notify.header("Subscription-State").unwrap().to_string()
}

#[test]
fn a_user_decides_a_pending_watcher_through_xcap() {
    let alice = format!("sip:alice@{DOMAIN}");
    let mut node = Imppd::start_prepared(
        &["alice", "bob"],
        |db| {
            let out = Command::new(IMPPD)
                .args([
                    "rule",
                    "add",
                    &alice,
                    &format!("sip:carol@{DOMAIN}"),
                    "block",
                ])
                .arg("--db")
                .arg(db)
                .output()
                .unwrap();
            assert!(out.status.success());
        },
        &["--open", "--policy", "confirm", "--http", "127.0.0.1:0"],
    );
    let dir = TempDir::new("xcap");
    let base = format!("http://{}/xcap-root", listener(&node, "http"));
    let doc_url = format!("{base}/pres-rules/users/{alice}/index");
    let pw = password("alice");
    let me = Some(("alice", pw.as_str()));

    // The capabilities need no credentials; the user's document does.
    let caps = curl(
        dir.path(),
        None,
        &[&format!("{base}/xcap-caps/global/index")],
    );
    assert_eq!(caps.status, 200, "{}", caps.head);
    assert!(
        caps.body.contains("<auid>pres-rules</auid>"),
        "{}",
        caps.body
    );
    let anonymous = curl(dir.path(), None, &[&doc_url]);
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("WWW-Authenticate")
            .unwrap()
            .starts_with("Digest realm=\"example.test\""),
        "{}",
        anonymous.head
    );
    assert_eq!(
        curl(dir.path(), Some(("alice", "wrong")), &[&doc_url]).status,
        401
    );
    let bob_pw = password("bob");
    let other = curl(dir.path(), Some(("bob", &bob_pw)), &[&doc_url]);
    assert_eq!(other.status, 403, "{}", other.body);

    // The document made from the stored rule.
    let got = curl(dir.path(), me, &[&doc_url]);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.header("Content-Type").as_deref(),
        Some("application/auth-policy+xml")
    );
    assert!(
        got.body.contains("<one id=\"sip:carol@example.test\"/>")
            && got
                .body
                .contains("<pr:sub-handling>block</pr:sub-handling>"),
        "{}",
        got.body
    );
    let first_etag = got.etag();

    // Bob waits for alice's decision.
    let mut bob = Client::new(node.addr(), "bob");
    let subscribe = bob.request(
        "SUBSCRIBE",
        &alice,
        &format!("<{alice}>"),
        &token(),
        "Event: presence\r\nExpires: 600\r\n",
        None,
    );
    assert_eq!(bob.transact(&subscribe).status(), Some(200));
    assert!(next_state(&mut bob).starts_with("pending"));

    // Alice's client writes a new document: carol still blocked, bob allowed.
    let new_doc = document(
        &[
            rule("friends", "<cr:one id=\"sip:bob@example.test\"/>", "allow"),
            rule("foes", "<cr:one id=\"sip:carol@example.test\"/>", "block"),
        ]
        .concat(),
    );
    let put = curl(
        dir.path(),
        me,
        &[
            "-X",
            "PUT",
            "-H",
            AUTH_POLICY,
            "-H",
            &format!("If-Match: {first_etag}"),
            "--data-binary",
            &new_doc,
            &doc_url,
        ],
    );
    assert_eq!(put.status, 200, "{}{}", put.head, put.body);
    let second_etag = put.etag();
    assert_ne!(second_etag, first_etag);
    assert!(next_state(&mut bob).starts_with("active"));
    let stored = rules_in_store(&node.db());
    assert!(
        stored.contains("sip:alice@example.test sip:bob@example.test allow"),
        "{stored}"
    );
    // Served as written (its rule ids), with the ETag the PUT gave.
    let got = curl(dir.path(), me, &[&doc_url]);
    assert_eq!(got.etag(), second_etag);
    assert!(got.body.contains("<rule id=\"friends\">"), "{}", got.body);

    // A client that read the first version is refused and changes nothing.
    let stale = curl(
        dir.path(),
        me,
        &[
            "-X",
            "PUT",
            "-H",
            AUTH_POLICY,
            "-H",
            &format!("If-Match: {first_etag}"),
            "--data-binary",
            &document(""),
            &doc_url,
        ],
    );
    assert_eq!(stale.status, 412, "{}", stale.body);
    // Creating what exists is refused too.
    let exists = curl(
        dir.path(),
        me,
        &[
            "-X",
            "PUT",
            "-H",
            AUTH_POLICY,
            "-H",
            "If-None-Match: *",
            "--data-binary",
            &document(""),
            &doc_url,
        ],
    );
    assert_eq!(exists.status, 412, "{}", exists.body);

    // Bad documents: 409 with an XCAP error, nothing changed.
    for (body, error) in [
        (
            "<cr:ruleset xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\">".to_owned(),
            "<not-well-formed",
        ),
        (document("<cr:rule/>"), "<schema-validation-error"),
        (
            document(
                &rule("w", "<cr:one id=\"sip:dave@example.test\"/>", "allow").replace(
                    "</cr:identity>",
                    "</cr:identity><cr:sphere value=\"work\"/>",
                ),
            ),
            "<constraint-failure phrase=\"rule &apos;w&apos;: &lt;sphere&gt;",
        ),
    ] {
        let refused = curl(
            dir.path(),
            me,
            &[
                "-X",
                "PUT",
                "-H",
                AUTH_POLICY,
                "--data-binary",
                &body,
                &doc_url,
            ],
        );
        assert_eq!(refused.status, 409, "{body}: {}", refused.body);
        assert_eq!(
            refused.header("Content-Type").as_deref(),
            Some("application/xcap-error+xml")
        );
        let error = error.replace("&apos;", "'");
        assert!(refused.body.contains(&error), "{body}: {}", refused.body);
    }
    assert_eq!(curl(dir.path(), me, &[&doc_url]).etag(), second_etag);
    assert_eq!(rules_in_store(&node.db()), stored);

    // One rule added by node selector, read back alone, then removed.
    let selector = format!("{doc_url}/~~/ruleset/rule%5b@id=%22others%22%5d");
    let element = "<rule id=\"others\"><conditions><identity><many domain=\"other.test\"/>\
                   </identity></conditions><actions><pr:sub-handling>polite-block\
                   </pr:sub-handling></actions></rule>";
    let added = curl(
        dir.path(),
        me,
        &[
            "-X",
            "PUT",
            "-H",
            XCAP_EL,
            "--data-binary",
            element,
            &selector,
        ],
    );
    assert_eq!(added.status, 201, "{}", added.body);
    assert!(rules_in_store(&node.db()).contains("sip:alice@example.test other.test polite-block"));
    let one = curl(dir.path(), me, &[&selector]);
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(
        one.header("Content-Type").as_deref(),
        Some("application/xcap-el+xml")
    );
    assert!(one.body.starts_with("<rule "), "{}", one.body);
    // The If-Match of a stale version fails for an element too.
    let stale = curl(
        dir.path(),
        me,
        &[
            "-X",
            "DELETE",
            "-H",
            &format!("If-Match: {second_etag}"),
            &selector,
        ],
    );
    assert_eq!(stale.status, 412);
    let removed = curl(dir.path(), me, &["-X", "DELETE", &selector]);
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(curl(dir.path(), me, &[&selector]).status, 404);
    assert_eq!(rules_in_store(&node.db()), stored);

    // Kept by the store: after imppd stops, the rules are there to be loaded again.
    node.stop();
    assert_eq!(rules_in_store(&node.db()), stored);
}

#[test]
fn https_serves_health_metrics_and_xcap() {
    let dir = TempDir::new("xcap-tls");
    let ca = TestCa::new("xcap test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let (cert, key) = ca.issue(&[DOMAIN]).write(dir.path(), "server");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let node = Imppd::start(
        &["alice"],
        &[
            "--https",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    let base = format!("https://{}", listener(&node, "https"));
    let ca_file = ca_file.to_str().unwrap();
    let health = curl(
        dir.path(),
        None,
        &["--cacert", ca_file, &format!("{base}/health")],
    );
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let metrics = curl(
        dir.path(),
        None,
        &["--cacert", ca_file, &format!("{base}/metrics")],
    );
    assert!(metrics.body.contains("imppd_up 1\n"), "{}", metrics.body);
    let doc_url = format!("{base}/xcap-root/pres-rules/users/sip:alice@{DOMAIN}/index");
    let pw = password("alice");
    let me = Some(("alice", pw.as_str()));
    // No rule, no document; then one is made.
    assert_eq!(
        curl(dir.path(), me, &["--cacert", ca_file, &doc_url]).status,
        404
    );
    let put = curl(
        dir.path(),
        me,
        &[
            "--cacert",
            ca_file,
            "-X",
            "PUT",
            "-H",
            AUTH_POLICY,
            "--data-binary",
            &document(&rule("r", "<cr:many domain=\"other.test\"/>", "block")),
            &doc_url,
        ],
    );
    assert_eq!(put.status, 201, "{}", put.body);
    let got = curl(dir.path(), me, &["--cacert", ca_file, &doc_url]);
    assert_eq!(got.status, 200);
    assert!(
        got.body.contains("<many domain=\"other.test\"/>"),
        "{}",
        got.body
    );
    // Plain HTTP to the TLS port is no answer; an untrusted certificate fails the handshake.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://{}/health", listener(&node, "https")),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let untrusted = Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("{base}/health")])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
}
