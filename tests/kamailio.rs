//! Kamailio, started by the tests from the configurations in `deploy/kamailio/`:
//! - `presence.cfg`, Kamailio's own presence server, driven by sipp (PUBLISH, SUBSCRIBE and
//!   NOTIFY), which proves the harness (tests/common/kamailio.rs) that other tests use to point
//!   libimpp at Kamailio;
//! - `dispatcher.cfg`, Kamailio as the front proxy of two imppd nodes that split the users of
//!   one domain between them: registrations, subscriptions, publications and messages cross
//!   from a user on one node to a user on the other.
//!
//! Kamailio and sipp come from Debian (kamailio, kamailio-presence-modules, sip-tester), which
//! `.ci/run` installs; without them these tests fail and say so.

mod common;

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
    // Kamailio merges the publications of one presentity into one document.
    assert!(notifies[1].contains("third note"), "{}", notifies[1]);
    assert!(notifies[2].contains("fourth note"), "{}", notifies[2]);
    assert!(notifies[3].contains("terminated"), "{}", notifies[3]);
    // Every NOTIFY is for the watcher, in its dialog, from the presentity.
    for n in &notifies {
        assert!(n.contains("Event: presence"), "{n}");
        assert!(n.contains("sip:alice@example.test"), "{n}");
    }
}
