//! Kamailio, started by the tests from the configurations in `deploy/kamailio/`:
//! - `presence.cfg`, Kamailio's own presence server, driven by sipp (PUBLISH, SUBSCRIBE and
//!   NOTIFY), which proves the harness (tests/common/kamailio.rs) that other tests use to point
//!   libimpp at Kamailio;
//! - `dispatcher.cfg`, Kamailio as the front proxy of two imppd nodes that split the users of
//!   one domain between them: registrations, subscriptions, publications and messages cross
//!   from a user on one node to a user on the other;
//! - examples/sip_swarm.rs, the benchmark's watcher generator, against `presence.cfg`.
//!
//! Kamailio and sipp come from Debian (kamailio, kamailio-presence-modules, sip-tester), which
//! `.ci/run` installs; without them these tests fail and say so.

mod common;

use common::imppd::{password, Imppd};
use common::kamailio::{Kamailio, TempDir};
use common::sipp::Sipp;

#[test]
fn the_harness_starts_kamailio_presence_and_stops_it_by_pid() {
    let mut k = Kamailio::start("presence.cfg", &[]);
    let pid = k.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The control socket answers: the memory figure the benchmark reads.
    assert!(k.rpc_field(&["core.shmmem"], "real_used") > 0);
    let workers = common::kamailio::children_of(pid);
    assert!(!workers.is_empty(), "kamailio has no worker processes");
    k.stop();
    for p in std::iter::once(pid).chain(workers) {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "process {p} still runs after stop: {stat}"
        );
    }
}

#[test]
fn kamailio_presence_notifies_a_watcher_of_each_publication() {
    let k = Kamailio::start("presence.cfg", &[]);
    let dir = TempDir::new("kamailio-presence");
    let publish = |log: &str, note: &str, note2: &str| {
        Sipp::new("kamailio_publish.xml", k.addr(), "alice", dir.path(), log)
            .set("note", note)
            .set("note2", note2)
            .run()
    };
    publish("publish1", "first note", "changed note");

    let watcher = Sipp::new("kamailio_watch.xml", k.addr(), "bob", dir.path(), "watch")
        .set("target", "alice")
        .spawn();
    // The first NOTIFY carries the state published before the subscription.
    watcher.wait_for("changed note");
    publish("publish2", "third note", "fourth note");
    let log = watcher.wait();

    let notifies = log.received("NOTIFY");
    assert_eq!(notifies.len(), 4, "NOTIFYs:\n{notifies:#?}");
    assert!(notifies[0].contains("changed note") && !notifies[0].contains("first note"));
    // The second run's two changes each bring a NOTIFY with the document merged from both
    // publications. Kamailio builds and sends them from different workers, so neither their
    // arrival nor their CSeq order says which change each one shows; the last change must be
    // in one of them.
    let changes = [&notifies[1], &notifies[2]];
    for n in changes {
        assert!(n.contains("third note") || n.contains("fourth note"), "{n}");
        assert!(
            n.contains("changed note"),
            "the first publication is gone: {n}"
        );
    }
    assert!(
        changes.iter().any(|n| n.contains("fourth note")),
        "the last change never arrived: {changes:#?}"
    );
    assert!(notifies[3].contains("terminated"), "{}", notifies[3]);
    // Every NOTIFY is for the watcher, in its dialog, from the presentity.
    for n in &notifies {
        assert!(n.contains("Event: presence"), "{n}");
        assert!(n.contains("sip:alice@example.test"), "{n}");
    }
}

/// The users the dispatcher test may pick from; both nodes know all of them.
const CANDIDATES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

/// The node port the proxy sends `user`'s requests to: an OPTIONS for the user goes through
/// the proxy, which logs its choice (WITH_DEBUG).
fn node_of(proxy: &Kamailio, user: &str) -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{user}@example.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-owner-{user};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@example.test>;tag=owner\r\n\
         To: <sip:{user}@example.test>\r\n\
         Call-ID: owner-{user}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), proxy.addr()).unwrap();
    let needle = format!("dispatch OPTIONS owner={user} to sip:127.0.0.1:");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let log = proxy.log();
        if let Some(at) = log.find(&needle) {
            let rest = &log[at + needle.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            return digits.parse().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the proxy logged no choice for {user}:\n{}", proxy.log());
}

/// The port in the first Via of a SIP message: the node that sent it.
fn top_via_port(message: &str) -> u16 {
    via_ports(message)[0]
}

/// The ports of every Via of `message`, top first (the last is the request's originator).
fn via_ports(message: &str) -> Vec<u16> {
    let ports: Vec<u16> = message
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("Via:") || l.starts_with("v:"))
        .map(via_port)
        .collect();
    assert!(!ports.is_empty(), "no Via in {message}");
    ports
}

fn via_port(via: &str) -> u16 {
    // "Via: SIP/2.0/UDP host:port;params"
    let (_, value) = via.split_once(':').unwrap();
    let sent_by = value.split_whitespace().nth(1).unwrap();
    let host_port = sent_by.split(';').next().unwrap();
    host_port.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn kamailio_dispatches_users_to_two_imppd_nodes_and_traffic_crosses_between_them() {
    // Both nodes authenticate (digest) and hold the same users: a node checks the credentials
    // of whoever sends a request for one of its users, and that sender may belong to the other
    // node. That is the deployment this configuration is for, so the test runs it rather
    // than --open.
    let mut node_a = Imppd::start(&CANDIDATES, &[]);
    let mut node_b = Imppd::start(&CANDIDATES, &[]);
    let dir = TempDir::new("kamailio-dispatcher");
    let list = dir.path().join("nodes.list");
    std::fs::write(
        &list,
        format!(
            "1 sip:127.0.0.1:{}\n1 sip:127.0.0.1:{}\n",
            node_a.port(),
            node_b.port()
        ),
    )
    .unwrap();
    let ds_list = format!("\"{}\"", list.display());
    let proxy = Kamailio::start(
        "dispatcher.cfg",
        &[("DS_LIST", &ds_list), ("WITH_DEBUG", "1")],
    );
    let (a, b) = (node_a.port(), node_b.port());

    // The hash must split these users between the two nodes, or the proxy does not divide the
    // namespace at all.
    let owners: Vec<(&str, u16)> = CANDIDATES
        .iter()
        .map(|u| (*u, node_of(&proxy, u)))
        .collect();
    let on = |port: u16| {
        owners
            .iter()
            .find(|(_, p)| *p == port)
            .map(|(u, _)| *u)
            .unwrap_or_else(|| panic!("no user goes to node {port}: {owners:?}"))
    };
    let (alice, bob) = (on(a), on(b));
    // Asking again gives the same answer: the choice is a function of the user.
    assert_eq!(node_of(&proxy, alice), a);

    let sipp = |scenario: &str, user: &str, log: &str| {
        Sipp::new(scenario, proxy.addr(), user, dir.path(), log).auth(user, &password(user))
    };

    // A message for bob while he is offline is stored on bob's node...
    sipp("kamailio_auth_message.xml", alice, "offline")
        .set("target", bob)
        .set("text", "stored on your node")
        .run();
    // ...and reaches him when he registers (through the proxy, so on his node).
    let bob_port = common::kamailio::free_port();
    let bob_ua = Sipp::listener("kamailio_ua.xml", bob_port, dir.path(), "bob_ua1").spawn();
    sipp("register_contact.xml", bob, "bob_register")
        .set("cport", &bob_port.to_string())
        .run();
    let got = bob_ua.wait().received("MESSAGE");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("stored on your node"), "{}", got[0]);
    assert_eq!(
        top_via_port(&got[0]),
        b,
        "not delivered by bob's node: {}",
        got[0]
    );

    // alice registers on her node; messages now cross both ways while both are online.
    let alice_port = common::kamailio::free_port();
    sipp("register_contact.xml", alice, "alice_register")
        .set("cport", &alice_port.to_string())
        .run();
    for (from, to, to_port, to_node) in [(bob, alice, alice_port, a), (alice, bob, bob_port, b)] {
        let ua =
            Sipp::listener("kamailio_ua.xml", to_port, dir.path(), &format!("{to}_ua2")).spawn();
        let text = format!("hello {to}, from {from}");
        sipp("kamailio_auth_message.xml", from, &format!("{from}_says"))
            .set("target", to)
            .set("text", &text)
            .run();
        let got = ua.wait().received("MESSAGE");
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(&text), "{}", got[0]);
        assert_eq!(
            top_via_port(&got[0]),
            to_node,
            "relayed by the wrong node: {}",
            got[0]
        );
    }

    // alice watches bob through the proxy; bob's node holds the subscription and notifies her
    // when bob publishes (also through the proxy).
    let watcher = sipp("kamailio_auth_watch.xml", alice, "alice_watch")
        .set("target", bob)
        .spawn();
    watcher.wait_for("Subscription-State: active");
    sipp("kamailio_auth_publish.xml", bob, "bob_publish")
        .set("note", "bob is on node b")
        .run();
    let notifies = watcher.wait().received("NOTIFY");
    assert_eq!(notifies.len(), 3, "{notifies:#?}");
    assert!(notifies[1].contains("bob is on node b"), "{}", notifies[1]);
    assert!(notifies[2].contains("terminated"), "{}", notifies[2]);
    for n in &notifies {
        // Sent by bob's node, and through the proxy, which record-routed the SUBSCRIBE
        // (the NOTIFY follows the dialog's route set).
        let vias = via_ports(n);
        assert_eq!(vias.last(), Some(&b), "NOTIFY not from bob's node: {n}");
        assert_eq!(vias.len(), 2, "NOTIFY did not pass the proxy: {n}");
    }

    // Where the state lives shows in who sent what: the stored message, bob's NOTIFYs and the
    // relays to bob came from bob's node, the relay to alice from hers (the Via checks above).
    // And alice's node does not need bob's: with it stopped, a message for alice still
    // reaches her (her registration is on her node; the sender is authenticated there).
    node_b.stop();
    let ua = Sipp::listener("kamailio_ua.xml", alice_port, dir.path(), "alice_ua3").spawn();
    sipp("kamailio_auth_message.xml", bob, "bob_says_again")
        .set("target", alice)
        .set("text", "bob's node is down")
        .run();
    let got = ua.wait().received("MESSAGE");
    assert!(got[0].contains("bob's node is down"), "{}", got[0]);
    assert_eq!(top_via_port(&got[0]), a);
    drop(proxy);
    node_a.stop();
}

/// examples/sip_swarm.rs (the batched watcher generator of benches/sip/compare.sh) against
/// Kamailio's presence server: every watcher subscribes, gets its first NOTIFY and one per
/// change, and ends its dialog; the counts it prints are what the benchmark reads.
#[test]
fn the_swarm_load_generator_subscribes_answers_notifies_and_unsubscribes() {
    let k = Kamailio::start("presence.cfg", &[]);
    let dir = TempDir::new("kamailio-swarm");
    // The example, built like tests/examples.rs runs its own: by cargo, in this profile.
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--quiet", "--example", "sip_swarm"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success(), "cannot build sip_swarm");
    let swarm = std::process::Command::new(profile.join("examples/sip_swarm"))
        .args(["--server", &k.addr().to_string()])
        .args(["--subs", "20", "--pres", "2", "--rate", "200"])
        // Idle long enough that a slow machine still publishes before the un-SUBSCRIBE.
        .args(["--idle-ms", "4000", "--max-s", "40"])
        .arg("--csv-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both presentities publish once and change once while the watchers are there: every
    // watcher gets two more NOTIFYs, and a third (terminated) when it un-SUBSCRIBEs.
    let csv = dir.path().join("swarm_counts.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&csv).unwrap_or_default();
        let initial = text
            .lines()
            .last()
            .and_then(|l| l.split(';').nth(2))
            .and_then(|v| v.parse::<u32>().ok());
        if initial == Some(20) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the swarm did not subscribe: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for user in ["user0", "user1"] {
        Sipp::new("kamailio_publish.xml", k.addr(), user, dir.path(), user)
            .set("note", "on")
            .set("note2", "away")
            .run();
    }
    let out = swarm.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(
            "20 SUBSCRIBE 200s, 20 initial NOTIFYs, 60 later NOTIFYs, 0 NOTIFY retransmissions, \
             0 failed, 20 ended"
        ),
        "{report}"
    );
}
