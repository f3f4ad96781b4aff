//! What the list server's tests (RFC 4662, RFC 5367) share at the wire: stored lists and the
//! presence they watch, list SUBSCRIBEs, and reading a list NOTIFY's body with the crate's
//! own codec. Each test file keeps its own headers (what it offers in `Accept`, `Require`)
//! and its own stricter checks on top of these.

use impp::doc::rlmi::Instance;
use impp::doc::Limits;
use impp::engine::{Package, ResourceList};
use impp::sip::list_body::ListBody;
use impp::sip::SipMessage;

use super::fixtures::{pidf, uri};
use super::sip::{aor, header_map, Client, Server};

/// A stored list `name` of the users `members`, serving `package`; its URI.
pub fn set_list(s: &Server, name: &str, package: Package, members: &[&str]) -> String {
    let list_uri = aor(name);
    let mut list = ResourceList::new(uri(&list_uri));
    list.packages = vec![package];
    for m in members {
        list.push_resource(uri(&aor(m)), None);
    }
    s.engine.set_list(list).unwrap();
    list_uri
}

/// A presence document for `user` with `note`, published through the engine.
pub fn publish(s: &Server, user: &str, note: &str) {
    let a = aor(user);
    s.engine
        .publish_body(&uri(&a), Package::Presence, &pidf(&a, note), None)
        .unwrap();
}

/// A SUBSCRIBE to `list` with the header lines `headers` (Event, Expires, ...), in the
/// dialog `to_tag` names (`None`: a new one), carrying `body` (content type, bytes); its
/// final answer.
pub fn subscribe(
    client: &mut Client,
    list: &str,
    call_id: &str,
    to_tag: Option<&str>,
    headers: &str,
    body: Option<(&str, &[u8])>,
) -> SipMessage {
    let to = match to_tag {
        Some(tag) => format!("<{list}>;tag={tag}"),
        None => format!("<{list}>"),
    };
    let request = client.request("SUBSCRIBE", list, &to, call_id, headers, body);
    client.transact(&request)
}

/// The list body of a NOTIFY, which must require `eventlist`.
pub fn list_body(m: &SipMessage) -> ListBody {
    let h = header_map(m);
    assert_eq!(h["require"], "eventlist");
    ListBody::parse(&h["content-type"], m.body(), &Limits::default()).unwrap()
}

/// The resources of a list body, in its order.
pub fn uris(body: &ListBody) -> Vec<String> {
    body.rlmi.resources.iter().map(|r| r.uri.clone()).collect()
}

/// The (first) instance of `resource`; a failure when the body does not name it.
pub fn instance_of(body: &ListBody, resource: &str) -> Instance {
    body.rlmi
        .resources
        .iter()
        .find(|r| r.uri == resource)
        .unwrap_or_else(|| panic!("{resource} is not in {:?}", body.rlmi))
        .instances[0]
        .clone()
}

/// The state part of `resource`'s instance, as text, if the body carries one.
pub fn state_of(body: &ListBody, resource: &str) -> Option<String> {
    let part = body.state_of(&instance_of(body, resource))?;
    Some(String::from_utf8(part.body.clone()).unwrap())
}

/// The state part of `resource`'s instance, as text; a failure when there is none.
pub fn state_text(body: &ListBody, resource: &str) -> String {
    state_of(body, resource).expect("a state part")
}

/// The engine and the stack run what is due, until `done` (polled, up to 5 s).
#[allow(dead_code)] // not every test file polls
pub fn eventually(s: &Server, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        s.engine.sync().unwrap();
        assert!(s.server.sync());
        if done() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
