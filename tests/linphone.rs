//! imppd as the resource-list server of a real Linphone: Debian's `linphonec` (package
//! `linphone-cli`, liblinphone 5.1.65 with belle-sip 5.1.64) runs headless as alice, with
//! `rls_uri` naming a list URI of imppd's domain and friends bob and carol, and is read from
//! its own log (`-d 6 -l FILE`: every SIP message it sends and receives) and from what it
//! prints.
//!
//! What Linphone 5.1 sends, checked here: after registering (digest) it subscribes to the
//! list once, `SUBSCRIBE sip:alice-buddies@example.test` with `Event: presence`, `Supported:
//! eventlist`, `Accept: multipart/related, application/pidf+xml, application/rlmi+xml`,
//! `User-Agent: Linphonec/5.1.65` and an RFC 5367 recipient list: `Require:
//! recipient-list-subscribe`, `Content-Disposition: recipient-list` and its friends in an
//! `application/resource-lists+xml` body sent `Content-Encoding: deflate` (unless
//! `handle_content_encoding=none`). imppd inflates that body and watches its resources (the
//! body wins over a list stored under the same URI, which is not needed), answers `200` with
//! `Require: eventlist`, and sends its list NOTIFYs in Linphone's dialect, as it does for any
//! subscriber whose User-Agent names Linphone: `Event: Presence` and part headers `Content-Id:
//! cid` without brackets. liblinphone 5.1 hands a list NOTIFY to its friend list only when
//! its Event header is spelled `Presence` (a case-sensitive comparison, though it subscribed
//! with `presence`), and finds each resource's part only under a header spelled `Content-Id`
//! whose value is the RLMI `cid` as it is; spelled as RFC 6665 and RFC 2045 have it, the
//! NOTIFYs are answered `200` and nothing is shown.
//!
//! The first two tests show linphonec printing bob and carol Offline (nothing published),
//! Online as each publishes `open`, Offline again as each publishes `closed`, with imppd
//! storing alice's list or not. The third, with a list server written here, shows that the
//! standard spelling makes linphonec show nothing, and that `Event: Presence` alone is not
//! enough (the reason for the dialect). Without `rls_uri` the same linphonec subscribes to
//! each friend on its own (the fourth test).
//!
//! Skipped with a message only when `linphonec` is not installed and `CI` is unset; every
//! process is stopped by its PID; on failure linphonec's log is printed.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::imppd::{Imppd, IMPPD};
use common::kamailio::{free_port, TempDir, DOMAIN};
use common::sip::Client;

const LIST: &str = "sip:alice-buddies@example.test";

/// The linphonec executable, or None (the test is skipped) when it is absent outside CI.
fn linphonec() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join("linphonec"))
        .find(|p| p.is_file());
    if found.is_none() {
        let hint = "linphonec is not installed: install the Debian package linphone-cli \
                    (apt-get install linphone-cli; .ci/run does)";
        if std::env::var_os("CI").is_some() {
            panic!("{hint}");
        }
        eprintln!("skipped: {hint}");
    }
    found
}

/// A linphonerc for alice: registered at `server` (which is also its outbound proxy, as
/// example.test resolves nowhere), friends bob and carol, and `rls_uri` (liblinphone then
/// subscribes to its friend list with one list SUBSCRIBE instead of one per friend).
fn config(sip_port: u16, server: SocketAddr, rls_uri: &str) -> String {
    format!(
        "[sip]\n\
         sip_port={sip_port}\n\
         sip_tcp_port=-1\n\
         sip_tls_port=-1\n\
         default_proxy=0\n\
         rls_uri={rls_uri}\n\
         \n\
         [proxy_0]\n\
         reg_proxy=<sip:{server};transport=udp>\n\
         reg_route=<sip:{server};transport=udp;lr>\n\
         reg_identity=sip:alice@{DOMAIN}\n\
         reg_expires=600\n\
         reg_sendregister=1\n\
         publish=0\n\
         \n\
         [friend_0]\n\
         url=sip:bob@{DOMAIN}\n\
         pol=accept\n\
         subscribe=1\n\
         \n\
         [friend_1]\n\
         url=sip:carol@{DOMAIN}\n\
         pol=accept\n\
         subscribe=1\n\
         \n\
         [auth_info_0]\n\
         username=alice\n\
         passwd={password}\n\
         realm={DOMAIN}\n\
         domain={DOMAIN}\n\
         \n\
         [video]\n\
         display=0\n\
         capture=0\n\
         show_local=0\n",
        password = common::imppd::password("alice"),
    )
}

/// A running linphonec, its own HOME and files in a scratch directory.
struct Linphone {
    child: Child,
    stdin: Option<ChildStdin>,
    /// What it printed (stdout and stderr).
    out: Arc<Mutex<String>>,
    log: PathBuf,
    _dir: TempDir,
}

impl Linphone {
    fn start(binary: &Path, sip_port: u16, server: SocketAddr, rls_uri: &str) -> Linphone {
        let dir = TempDir::new("linphone");
        let home = dir.path().join("home");
        // liblinphone keeps its databases there and does not create the directory.
        std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let rc = dir.path().join("linphonerc");
        std::fs::write(&rc, config(sip_port, server, rls_uri)).unwrap();
        let log = dir.path().join("linphonec.log");
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(&rc)
            .args(["-d", "6", "-l"])
            .arg(&log)
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("linphonec starts");
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut out = sink.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Linphone {
            stdin: child.stdin.take(),
            child,
            out,
            log,
            _dir: dir,
        }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Its log so far (liblinphone and belle-sip lines, SIP messages in full).
    fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until `cond` holds on its log; fails with the log when it does not in `timeout`
    /// or linphonec exits first.
    fn wait_log(&mut self, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if cond(&log) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "linphonec exited ({status}) before {what}:\n{}",
                    self.tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "linphonec: no {what} within {timeout:?}:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of its log and what it printed, for failure messages.
    fn tail(&self) -> String {
        let log = self.log();
        let start = log.len().saturating_sub(20_000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!(
            "--- linphonec log (end) ---\n{}\n--- linphonec output ---\n{}",
            &log[start..],
            self.out()
        )
    }

    /// `quit` on its command line, then SIGKILL by PID if it has not exited within 10 s.
    fn quit(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The SIP messages in a linphonec log: each starts on a line of its own after a belle-sip
/// line saying it was sent or received, and ends at the next timestamped line.
fn messages(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        let stamped = line.len() > 24 && line.as_bytes()[4] == b'-' && line.as_bytes()[10] == b' ';
        if stamped {
            if let Some(m) = current.take() {
                out.push(m);
            }
            if line.contains("message sent to") || line.contains("new bytes from") {
                current = Some(String::new());
            }
        } else if let Some(m) = current.as_mut() {
            m.push_str(line);
            m.push('\n');
        }
    }
    out.extend(current);
    out
}

fn pidf(entity: &str, basic: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\">\
         <tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple></presence>"
    )
}

/// Waits until linphonec has printed `line` at or after byte `from` of its output; where.
fn wait_shown(phone: &mut Linphone, line: &str, from: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let out = phone.out();
        if let Some(at) = out.get(from..).and_then(|rest| rest.find(line)) {
            return from + at;
        }
        assert!(phone.running(), "linphonec died:\n{}", phone.tail());
        assert!(
            Instant::now() < deadline,
            "linphonec did not show '{line}' within {timeout:?}:\n{}",
            phone.tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// alice's linphonec with imppd as its list server (`rls_uri`), imppd storing her list
/// (`stored`) or not (the friend list Linphone sends in its SUBSCRIBE, RFC 5367, is the
/// list): the one list SUBSCRIBE it sends, checked; then bob and carol shown Offline (full
/// state: nothing published), Online once each publishes `open`, Offline again once each
/// publishes `closed`, all from imppd's list NOTIFYs in Linphone's dialect.
fn linphone_watches_its_friends_through_imppd(stored: bool) {
    let Some(binary) = linphonec() else { return };
    let mut server = Imppd::start_prepared(
        &["alice", "bob", "carol"],
        |db| {
            if !stored {
                return;
            }
            let out = Command::new(IMPPD)
                .args(["list", "add", LIST, "--name", "Alice's buddies"])
                .args(["--entry", &format!("sip:bob@{DOMAIN}")])
                .args(["--entry", &format!("sip:carol@{DOMAIN}")])
                .arg("--db")
                .arg(db)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "imppd list add: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
        &["--list-batch-interval", "0"],
    );
    let mut phone = Linphone::start(&binary, free_port(), server.addr(), LIST);

    phone.wait_log("registration", Duration::from_secs(20), |log| {
        log.contains("moving from state [LinphoneRegistrationProgress] to [LinphoneRegistrationOk]")
    });
    phone.wait_log("active list subscription", Duration::from_secs(20), |log| {
        log.contains("moving to subscription state LinphoneSubscriptionActive")
    });
    // What Linphone 5.1 sends: one list SUBSCRIBE, with its friends in an RFC 5367 body.
    let log = phone.log();
    let all = messages(&log);
    let subscribe = all
        .iter()
        .rev()
        .find(|m| m.starts_with(&format!("SUBSCRIBE {LIST} SIP/2.0")))
        .unwrap_or_else(|| panic!("no SUBSCRIBE to the list:\n{}", phone.tail()));
    for line in [
        "Event: presence",
        "Supported: eventlist",
        "Accept: multipart/related",
        "Accept: application/rlmi+xml",
        "Accept: application/pidf+xml",
        "Require: recipient-list-subscribe",
        "Content-Type: application/resource-lists+xml",
        "Content-Disposition: recipient-list",
        "User-Agent: Linphonec/",
        // The list itself, compressed (imppd inflates it; the log shows the bytes).
        "Content-Encoding: deflate",
    ] {
        assert!(subscribe.contains(line), "no '{line}' in:\n{subscribe}");
    }
    // One SUBSCRIBE for the list, none per friend.
    assert!(
        !all.iter()
            .any(|m| m.starts_with("SUBSCRIBE sip:bob@") || m.starts_with("SUBSCRIBE sip:carol@")),
        "a SUBSCRIBE per friend:\n{}",
        phone.tail()
    );
    let accepted = all
        .iter()
        .find(|m| {
            m.starts_with("SIP/2.0 200")
                && m.contains("SUBSCRIBE\n")
                && m.contains(&format!("To: {LIST};tag="))
        })
        .unwrap_or_else(|| panic!("no 200 to the list SUBSCRIBE:\n{}", phone.tail()));
    assert!(accepted.contains("Require: eventlist"), "{accepted}");

    // Shown: both Offline (nothing published), then each Online, then each Offline again.
    let wait = Duration::from_secs(15);
    let friend =
        |name: &str, state: &str| format!("Friend \"{name}\" <sip:{name}@{DOMAIN}> is {state}");
    for name in ["bob", "carol"] {
        wait_shown(&mut phone, &friend(name, "Offline"), 0, wait);
    }
    let mut clients = Vec::new();
    let mut online = Vec::new();
    for name in ["bob", "carol"] {
        let from = phone.out().len();
        let mut client = Client::new(server.addr(), name);
        let entity = format!("sip:{name}@{DOMAIN}");
        let answer = client.publish("Expires: 600\r\n", Some(&pidf(&entity, "open")));
        assert_eq!(answer.status(), Some(200), "{name}'s PUBLISH");
        let etag = answer
            .header("SIP-ETag")
            .expect("an entity tag")
            .to_string();
        online.push(wait_shown(&mut phone, &friend(name, "Online"), from, wait));
        clients.push((name, client, entity, etag));
    }
    for (name, client, entity, etag) in &mut clients {
        let from = phone.out().len();
        let answer = client.publish(
            &format!("Expires: 600\r\nSIP-If-Match: {etag}\r\n"),
            Some(&pidf(entity, "closed")),
        );
        assert_eq!(answer.status(), Some(200), "{name}'s second PUBLISH");
        wait_shown(&mut phone, &friend(name, "Offline"), from, wait);
    }

    // What imppd wrote, in Linphone's dialect; and every NOTIFY answered 200.
    let all = messages(&phone.log());
    let notifies: Vec<&String> = all.iter().filter(|m| m.starts_with("NOTIFY ")).collect();
    assert!(notifies.len() >= 5, "{} NOTIFYs", notifies.len());
    for notify in &notifies {
        assert!(notify.contains("\nEvent: Presence\n"), "{notify}");
        assert!(notify.contains("\nRequire: eventlist\n"), "{notify}");
        assert!(notify.contains("\nContent-Id: "), "{notify}");
        assert!(!notify.contains("Content-ID: <"), "{notify}");
        assert!(notify.contains(";boundary=impp-"), "{notify}");
    }
    for answer in all.iter().filter(|m| m.starts_with("SIP/2.0 ")) {
        assert!(
            answer.starts_with("SIP/2.0 200") || answer.starts_with("SIP/2.0 401"),
            "{answer}\n{}",
            phone.tail()
        );
    }
    assert!(
        !server.log().contains("NOTIFY answered"),
        "imppd saw a NOTIFY fail:\n{}",
        server.log()
    );
    phone.quit();
    server.stop();
}

/// imppd stores alice's list under her `rls_uri`; Linphone's own list in the SUBSCRIBE
/// names the same friends, and is the one watched.
#[test]
fn linphone_shows_its_friends_through_a_stored_list() {
    linphone_watches_its_friends_through_imppd(true);
}

/// No list stored: imppd serves the friend list Linphone sends (RFC 5367). This is all a
/// Linphone user needs: `rls_uri` naming any URI of imppd's domain.
#[test]
fn linphone_shows_its_friends_through_its_own_recipient_list() {
    linphone_watches_its_friends_through_imppd(false);
}

/// What a list NOTIFY needs for linphonec 5.1 to show it, found with a list server written
/// here (UDP on 127.0.0.1, no authentication) that sends NOTIFYs shaped as imppd's (bare
/// boundary, RLMI root, one PIDF part per resource), spelled as the RFCs have it or
/// otherwise: the full state (version 0: bob open, carol closed), then, once that is
/// answered, a partial one (version 1: bob closed). Returns what linphonec printed.
fn fake_list_server_run(binary: &Path, event: &str, content_id: fn(&str) -> String) -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let server = socket.local_addr().unwrap();
    let mut phone = Linphone::start(binary, free_port(), server, LIST);
    let header = |msg: &str, name: &str| -> String {
        msg.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let boundary = "impp-5f1d2c3b4a596877";
    // The body of NOTIFY `version` (0 is the full state) with these resources and states.
    let body = |version: u32, resources: &[(&str, &str)]| -> String {
        let part = |cid: &str, ctype: &str, body: &str| {
            format!(
                "--{boundary}\r\nContent-Transfer-Encoding: binary\r\n{}\r\n\
                 Content-Type: {ctype}\r\n\r\n{body}\r\n",
                content_id(cid)
            )
        };
        let mut rlmi = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<list \
             xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"{LIST}\" version=\"{version}\" \
             fullState=\"{}\">",
            version == 0
        );
        let mut parts = String::new();
        for (i, (name, basic)) in resources.iter().enumerate() {
            let cid = format!("{name}{version}@{DOMAIN}");
            rlmi.push_str(&format!(
                "<resource uri=\"sip:{name}@{DOMAIN}\"><instance id=\"i{i}\" state=\"active\" \
                 cid=\"{cid}\"/></resource>"
            ));
            let state = pidf(&format!("sip:{name}@{DOMAIN}"), basic);
            parts.push_str(&part(&cid, "application/pidf+xml", &state));
        }
        rlmi.push_str("</list>");
        let root = part(
            &format!("r{version}@{DOMAIN}"),
            "application/rlmi+xml;charset=\"UTF-8\"",
            &rlmi,
        );
        format!("{root}{parts}--{boundary}--\r\n")
    };
    let notifies = [
        body(0, &[("bob", "open"), ("carol", "closed")]),
        body(1, &[("bob", "closed")]),
    ];
    // The dialog, once the list SUBSCRIBE came: (linphonec's address, its contact, the
    // dialog's From as sent (the list with a tag), To, Call-ID).
    let mut dialog: Option<(SocketAddr, String, String, String, String)> = None;
    let mut sent = 0;
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if sent == notifies.len() && last.elapsed() > Duration::from_secs(2) {
            break;
        }
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
        let first = msg.lines().next().unwrap_or_default().to_string();
        let answered =
            first.starts_with("SIP/2.0 200") && header(&msg, "CSeq") == format!("{sent} NOTIFY");
        if first.starts_with("REGISTER ") || first.starts_with("SUBSCRIBE ") {
            let mut to = header(&msg, "To");
            if !to.contains("tag=") {
                to.push_str(";tag=fake1");
            }
            let mut answer = String::from("SIP/2.0 200 OK\r\n");
            for name in ["Via", "From", "Call-ID", "CSeq"] {
                answer.push_str(&format!("{name}: {}\r\n", header(&msg, name)));
            }
            answer.push_str(&format!("To: {to}\r\n"));
            if first.starts_with("REGISTER ") {
                answer.push_str(&format!(
                    "Contact: {};expires=600\r\nExpires: 600\r\n",
                    header(&msg, "Contact")
                ));
            } else {
                answer.push_str(&format!(
                    "Expires: 3600\r\nRequire: eventlist\r\nContact: <sip:{server}>\r\n"
                ));
            }
            answer.push_str("Content-Length: 0\r\n\r\n");
            socket.send_to(answer.as_bytes(), from).unwrap();
            if !first.starts_with("SUBSCRIBE ") || header(&msg, "Expires") == "0" || sent > 0 {
                continue;
            }
            let contact = header(&msg, "Contact");
            let target = contact.split(['<', '>']).nth(1).unwrap_or_default();
            dialog = Some((
                from,
                target.to_string(),
                to,
                header(&msg, "From"),
                header(&msg, "Call-ID"),
            ));
        } else if !answered {
            continue;
        }
        // The next NOTIFY: the first once subscribed, each other once the last is answered.
        let Some((peer, target, from, to, call_id)) = dialog.as_ref() else {
            continue;
        };
        let Some(body) = notifies.get(sent) else {
            continue;
        };
        sent += 1;
        let notify = format!(
            "NOTIFY {target} SIP/2.0\r\nVia: SIP/2.0/UDP {server};branch=z9hG4bK-fake-n{sent}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {sent} NOTIFY\r\nContact: <sip:{server}>\r\nEvent: {event}\r\n\
             Subscription-State: active;expires=3599\r\nRequire: eventlist\r\n\
             Content-Type: multipart/related;type=\"application/rlmi+xml\";\
             start=\"<r{version}@{DOMAIN}>\";boundary={boundary}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len(),
            version = sent - 1,
        );
        socket.send_to(notify.as_bytes(), peer).unwrap();
        last = Instant::now();
    }
    assert!(sent > 0, "no list SUBSCRIBE:\n{}", phone.tail());
    assert!(phone.running(), "linphonec died:\n{}", phone.tail());
    phone.quit();
    phone.out()
}

/// The two points of Linphone's dialect, and that reading linphonec's output does see a
/// friend's presence change: the same NOTIFYs show nothing spelled as the RFCs have it
/// (`Event: presence`, `Content-ID: <cid>`, what imppd writes for other subscribers); with
/// `Event: Presence` and `Content-Id: cid` they show bob Online and carol Offline, then bob
/// Offline; `Event: Presence` alone is not enough.
#[test]
fn linphone_shows_a_list_notify_only_spelled_its_own_way() {
    let Some(binary) = linphonec() else { return };
    let as_rfcs = fake_list_server_run(&binary, "presence", |cid| format!("Content-ID: <{cid}>"));
    assert!(!as_rfcs.contains("Friend \""), "{as_rfcs}");
    let as_linphone = fake_list_server_run(&binary, "Presence", |cid| format!("Content-Id: {cid}"));
    // The full state, then bob's change.
    let bob = "Friend \"bob\" <sip:bob@example.test> is";
    let online = as_linphone
        .find(&format!("{bob} Online"))
        .unwrap_or_else(|| panic!("bob never Online:\n{as_linphone}"));
    assert!(
        as_linphone.contains("Friend \"carol\" <sip:carol@example.test> is Offline"),
        "{as_linphone}"
    );
    // Before it quits (which ends the subscription).
    let quit = as_linphone.find("Terminating").unwrap_or(as_linphone.len());
    assert!(
        as_linphone[online..quit].contains(&format!("{bob} Offline")),
        "bob not Offline after Online:\n{as_linphone}"
    );
    // Either one alone is not enough.
    let event_only =
        fake_list_server_run(&binary, "Presence", |cid| format!("Content-ID: <{cid}>"));
    assert!(!event_only.contains("Friend \""), "{event_only}");
}

/// Without `rls_uri` linphonec subscribes to each friend on its own, and shows bob's
/// presence from imppd's ordinary NOTIFYs as it changes.
#[test]
fn without_a_list_linphone_watches_each_friend() {
    let Some(binary) = linphonec() else { return };
    let mut server = Imppd::start(&["alice", "bob", "carol"], &[]);
    let mut phone = Linphone::start(&binary, free_port(), server.addr(), "");
    // Its first NOTIFY for bob: no publication yet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !phone
        .out()
        .contains("Friend \"bob\" <sip:bob@example.test> is Offline")
    {
        assert!(
            Instant::now() < deadline,
            "bob never Offline:\n{}",
            phone.tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut bob = Client::new(server.addr(), "bob");
    let entity = format!("sip:bob@{DOMAIN}");
    let answer = bob.publish("Expires: 600\r\n", Some(&pidf(&entity, "open")));
    assert_eq!(answer.status(), Some(200), "bob's PUBLISH");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !phone
        .out()
        .contains("Friend \"bob\" <sip:bob@example.test> is Online")
    {
        assert!(
            Instant::now() < deadline,
            "bob never Online:\n{}",
            phone.tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    phone.quit();
    server.stop();
}
