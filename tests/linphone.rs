//! imppd as the resource-list server of a real Linphone: Debian's `linphonec` (package
//! `linphone-cli`, liblinphone 5.1.65 with belle-sip 5.1.64) runs headless as alice, with
//! `rls_uri` naming a presence list of bob and carol that imppd serves, and is read from its
//! own log (`-d 6 -l FILE`: every SIP message it sends and receives) and from what it prints.
//!
//! What Linphone 5.1 does, checked here:
//!
//! - it registers (digest), then subscribes to the list once: `SUBSCRIBE
//!   sip:alice-buddies@example.test` with `Event: presence`, `Supported: eventlist`, `Accept:
//!   multipart/related, application/pidf+xml, application/rlmi+xml` and, besides, an RFC 5367
//!   recipient list (`Require: recipient-list-subscribe`, `Content-Disposition:
//!   recipient-list`, an `application/resource-lists+xml` body naming its friends, sent
//!   `Content-Encoding: deflate` unless `handle_content_encoding=none`); imppd answers `200`
//!   with `Require: eventlist` and serves the list it stores (the body is not read: the list
//!   URI names the list);
//! - it takes imppd's full-state NOTIFY and the partial one after bob publishes `open`, and
//!   answers each `200` (no crash: with a quoted `boundary` parameter belle-sip takes the
//!   quotes as part of the boundary and linphonec dies of SIGSEGV, which is why imppd writes a
//!   token boundary bare);
//! - but it shows no friend's presence from them: liblinphone 5.1 hands a list NOTIFY to its
//!   friend list only when its Event header is spelled `Presence` (a case-sensitive
//!   comparison with "Presence", though it subscribed with `presence` and RFC 6665 compares
//!   event packages byte by byte), and then finds a resource's part only by a header spelled
//!   `Content-Id` whose value is the RLMI `cid` without the angle brackets RFC 2045 requires.
//!   imppd sends `Event: presence` and `Content-ID: <...>`, as the RFCs say; the second test
//!   shows, with NOTIFYs written here, that ones differing from imppd's in just those two
//!   points make linphonec print `Friend "bob" <sip:bob@example.test> is Online`, and
//!   `Offline` when a partial NOTIFY says so.
//!
//! Without `rls_uri` the same linphonec subscribes to each friend on its own, and shows bob
//! Offline, then Online once he publishes (the third test): that is how Linphone 5.1 watches
//! its friends through imppd.
//!
//! The first test therefore asserts that linphonec prints no friend's presence, with a
//! message saying what changed when it does (a Linphone that reads RFC 4662 NOTIFYs as they
//! are written). Skipped with a message only when `linphonec` is not installed and `CI` is
//! unset; every process is stopped by its PID; on failure linphonec's log is printed.

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

/// alice's linphonec against imppd serving her buddy list: the list SUBSCRIBE, imppd's
/// NOTIFYs taken and answered, bob's change carried to it; and, what Linphone 5.1 then does
/// with them, no friend's presence shown (see the module comment).
#[test]
fn linphone_subscribes_to_its_buddy_list_at_imppd() {
    let Some(binary) = linphonec() else { return };
    let mut server = Imppd::start_prepared(
        &["alice", "bob", "carol"],
        |db| {
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

    // The full state: both friends, neither has published.
    phone.wait_log("full-state NOTIFY", Duration::from_secs(10), |log| {
        messages(log)
            .iter()
            .any(|m| m.starts_with("NOTIFY ") && m.contains("fullState=\"true\""))
    });

    // bob comes online: a partial NOTIFY with his PIDF.
    let mut bob = Client::new(server.addr(), "bob");
    let answer = bob.publish(
        "Expires: 600\r\n",
        Some(&pidf(&format!("sip:bob@{DOMAIN}"), "open")),
    );
    assert_eq!(answer.status(), Some(200), "bob's PUBLISH");
    phone.wait_log("NOTIFY with bob open", Duration::from_secs(10), |log| {
        messages(log).iter().any(|m| {
            m.starts_with("NOTIFY ")
                && m.contains("fullState=\"false\"")
                && m.contains("entity=\"sip:bob@example.test\"")
                && m.contains("<basic>open</basic>")
        })
    });
    // Whatever it does with them, linphonec keeps up: every NOTIFY answered 200, none
    // refused, still running.
    phone.wait_log("200 to every NOTIFY", Duration::from_secs(5), |log| {
        let all = messages(log);
        let notifies = all.iter().filter(|m| m.starts_with("NOTIFY ")).count();
        let answered = all
            .iter()
            .filter(|m| m.starts_with("SIP/2.0 200") && m.contains(" NOTIFY\n"))
            .count();
        answered >= notifies
    });
    let all = messages(&phone.log());
    let notifies: Vec<&String> = all.iter().filter(|m| m.starts_with("NOTIFY ")).collect();
    for notify in &notifies {
        // What imppd writes, as RFC 6665 and RFC 2045 have it (and what Linphone 5.1 skips).
        assert!(notify.contains("\nEvent: presence\n"), "{notify}");
        assert!(notify.contains("\nRequire: eventlist\n"), "{notify}");
        assert!(notify.contains("Content-ID: <"), "{notify}");
        assert!(notify.contains(";boundary=impp-"), "{notify}");
    }
    // Every answer either way is a 200, or imppd's challenge.
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
    // Time for linphonec to act on the NOTIFYs it answered.
    std::thread::sleep(Duration::from_secs(1));
    assert!(phone.running(), "linphonec died:\n{}", phone.tail());

    // What Linphone 5.1 does with them: nothing shown, the NOTIFY never reaches its friend
    // list ("Notify presence for list" is what liblinphone logs when one does).
    let shown = phone.out();
    let log = phone.log();
    assert!(
        !shown.contains("Friend \"bob\"") && !log.contains("Notify presence for list"),
        "linphonec now takes imppd's list NOTIFYs (Event: presence, Content-ID: <cid>): \
         turn this check into one that it shows bob Online, and update the module comment \
         and the README:\n{shown}\n{}",
        phone.tail()
    );

    phone.quit();
    server.stop();
}

/// What a list NOTIFY needs for linphonec 5.1 to show it, found with a list server written
/// here (UDP on 127.0.0.1, no authentication) that sends NOTIFYs shaped as imppd's (bare
/// boundary, RLMI root, one PIDF part per resource), spelled either as imppd spells them or
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

/// The two points that keep Linphone 5.1 from showing imppd's list NOTIFYs, and that reading
/// linphonec's output does see a friend's presence change: the same NOTIFYs show nothing as
/// imppd spells them; with `Event: Presence` and `Content-Id: cid` they show bob Online and
/// carol Offline, then bob Offline; `Event: Presence` alone is not enough.
#[test]
fn linphone_shows_a_list_notify_only_spelled_its_own_way() {
    let Some(binary) = linphonec() else { return };
    let as_imppd = fake_list_server_run(&binary, "presence", |cid| format!("Content-ID: <{cid}>"));
    assert!(!as_imppd.contains("Friend \""), "{as_imppd}");
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
