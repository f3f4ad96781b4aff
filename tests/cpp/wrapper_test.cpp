// The C++17 wrapper (bindings/c/impp.hpp) used as a C++ program uses it, under ASan/UBSan:
// every class (Engine, Config, Event/EventView, the documents, IsComposing, FilterSet,
// ResourceList, logging, SipConfig/SipStack), the library-wide functions, and bad input for
// each.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "impp.hpp"
#include "check.h"

using namespace std::chrono_literals;

namespace {

const std::string ALICE = "sip:alice@example.test";
const std::string BOB = "sip:bob@example.test";
const std::string CAROL = "sip:carol@other.test";
const std::string DAVE = "sip:dave@example.test";

const std::string DESK =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>open</basic></status></tuple></presence>";

const std::string DESK_CLOSED =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>closed</basic></status></tuple></presence>";

// Runs `body`; checks it throws impp::Error with `expected` and a message.
template <typename Body>
void check_throws(Body &&body, impp_status expected, const char *what, int line) {
    try {
        body();
    } catch (const impp::Error &e) {
        if (e.status() != expected || std::string_view(e.what()).empty()) {
            std::fprintf(stderr, "line %d: %s threw %s (\"%s\"), expected %s\n", line, what,
                         e.status_name(), e.what(), impp_status_name(expected));
            check_failures++;
        }
        return;
    }
    std::fprintf(stderr, "line %d: %s did not throw (expected %s)\n", line, what,
                 impp_status_name(expected));
    check_failures++;
}

#define CHECK_THROWS(expr, expected) \
    check_throws([&] { (void)(expr); }, (expected), #expr, __LINE__)

// Every waiting event, after a barrier.
std::vector<impp::Event> take_all(impp::Engine &engine) {
    engine.sync();
    std::vector<impp::Event> events;
    while (auto event = engine.next_event()) {
        events.push_back(std::move(*event));
    }
    return events;
}

bool has_tuple(const impp::EventView &event, const std::string &id, impp_basic basic) {
    auto doc = event.presence();
    if (!doc) {
        return false;
    }
    for (std::size_t i = 0; i < doc->tuple_count(); i++) {
        if (doc->tuple_id(i) == id && doc->tuple_basic(i) == basic) {
            return true;
        }
    }
    return false;
}

void test_presence() {
    impp::Presence p("pres:alice@example.test");
    CHECK(p.add_tuple("mobile", IMPP_BASIC_OPEN) == 0);
    CHECK(p.add_tuple("desk", IMPP_BASIC_CLOSED) == 1);
    p.set_tuple_contact(0, std::string("sip:alice@198.51.100.7"), 0.5);
    p.add_tuple_note(0, "On the train", std::string("en"));
    p.add_note("Reachable by IM <only>");
    p.add_activity("on-the-phone");

    impp::Presence q = impp::Presence::parse(p.to_xml());
    CHECK(q.entity() == "pres:alice@example.test");
    CHECK(q.tuple_count() == 2);
    CHECK(q.tuple_id(1) == "desk");
    CHECK(q.tuple_basic(0) == IMPP_BASIC_OPEN);
    std::optional<impp::Contact> contact = q.tuple_contact(0);
    CHECK(contact && contact->uri == "sip:alice@198.51.100.7");
    CHECK(contact && contact->priority == std::optional<double>(0.5));
    CHECK(!q.tuple_contact(1));
    CHECK(q.tuple_notes(0) == (std::vector<impp::Note>{{"On the train", std::string("en")}}));
    CHECK(q.notes() == (std::vector<impp::Note>{{"Reachable by IM <only>", std::nullopt}}));
    CHECK(q.activities() == (std::vector<impp::Activity>{{"on-the-phone", std::nullopt}}));

    // Copies are explicit and independent; moves leave nothing behind.
    impp::Presence c = q.clone();
    q.remove_tuple(0);
    q.set_tuple_basic(0, IMPP_BASIC_OPEN);
    CHECK(q.tuple_count() == 1 && c.tuple_count() == 2);
    impp::Presence moved = std::move(c);
    CHECK(c.get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(moved.tuple_count() == 2);
    c = std::move(moved);
    CHECK(c.tuple_count() == 2);

    // Bad input throws, with the status and the library's message; nothing changes.
    CHECK_THROWS(impp::Presence::parse("<presence"), IMPP_ERR_MALFORMED);
    CHECK_THROWS(impp::Presence::parse("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"), IMPP_ERR_UNSAFE_XML);
    CHECK_THROWS(impp::Presence("no uri here"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.add_tuple("mobile", IMPP_BASIC_OPEN), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.tuple_id(7), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(p.add_activity("partying"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(p.tuple_count() == 2);
    try {
        impp::Presence::parse("<presence xmlns='urn:ietf:params:xml:ns:pidf'/>");
        CHECK(false);
    } catch (const impp::Error &e) {
        CHECK(e.status() == IMPP_ERR_MALFORMED);
        CHECK(std::string_view(e.status_name()) == "IMPP_ERR_MALFORMED");
        CHECK(std::string_view(e.what()).find("entity") != std::string_view::npos);
    } catch (...) {
        CHECK(false);
    }
    // An impp::Error is a std::exception.
    try {
        impp::Presence::parse("");
    } catch (const std::exception &e) {
        CHECK(e.what()[0] != '\0');
    }
}

void test_config() {
    CHECK_THROWS(impp::Config().workers(0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(impp::Config().add_domain("a b"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(impp::Config().publication_expiry(100, 50, 200), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(impp::Config().default_policy(static_cast<impp_auth_action>(99)),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(impp::Config().add_winfo_admin("nope"), IMPP_ERR_INVALID_URI);
    CHECK_THROWS(impp::Config().same_domain_policy(static_cast<impp_auth_action>(0)),
                 IMPP_ERR_INVALID_ARGUMENT);
    impp::Config().same_domain_policy(IMPP_AUTH_ALLOW).clear_same_domain_policy();
    // A configuration that failed one setter still builds an engine.
    impp::Config config;
    config.workers(1).queue_capacity(64);
    CHECK_THROWS(config.queue_capacity(0), IMPP_ERR_INVALID_ARGUMENT);
    config.subscription_expiry(30, 600, 3600).min_notify_interval(0ms).document_limits(8192, 16);
    impp::Engine engine(std::move(config));
    CHECK(config.get() == nullptr);  // NOLINT(bugprone-use-after-move): consumed
    CHECK(engine.get() != nullptr);
    // Without a manual clock the clock cannot be moved.
    CHECK_THROWS(engine.advance_clock(1s), IMPP_ERR_INVALID_ARGUMENT);
}

void test_engine_polling() {
    impp::Engine engine(impp::Config()
                            .workers(2)
                            .manual_clock()
                            .default_policy(IMPP_AUTH_CONFIRM)
                            .add_domain("example.test"));
    const std::string desk_tag = engine.publish(ALICE, "presence", DESK);
    CHECK(!desk_tag.empty());

    const std::uint64_t bob = engine.subscribe(BOB, ALICE);
    auto events = take_all(engine);
    CHECK(events.size() == 3);
    if (events.size() == 3) {
        CHECK(events[0].kind() == IMPP_EVENT_SUBSCRIPTION_STATE);
        CHECK(events[0].state() == IMPP_SUBSCRIPTION_PENDING);
        const impp::EventView &asked = events[1];
        CHECK(asked.kind() == IMPP_EVENT_AUTHORIZATION_REQUESTED);
        CHECK(asked.subscription() == bob);
        CHECK(asked.watcher() == std::optional<std::string_view>(BOB));
        CHECK(asked.presentity() == ALICE);
        CHECK(asked.package() == "presence");
        CHECK(!asked.etag());
        CHECK(events[2].kind() == IMPP_EVENT_NOTIFICATION);
        CHECK(events[2].state() == IMPP_SUBSCRIPTION_PENDING);
        CHECK(!events[2].has_document() && !events[2].body() && !events[2].presence());
    }
    impp::SubscriptionInfo info = engine.subscription(bob);
    CHECK(info.state == IMPP_SUBSCRIPTION_PENDING && info.authorization == IMPP_AUTH_CONFIRM);
    CHECK(info.expires_in == 3600);

    engine.authorize(bob, IMPP_AUTH_ALLOW);
    events = take_all(engine);
    CHECK(events.size() == 2);
    if (events.size() == 2) {
        const impp::Event &n = events[1];
        CHECK(n.kind() == IMPP_EVENT_NOTIFICATION && n.state() == IMPP_SUBSCRIPTION_ACTIVE);
        CHECK(n.reason() == IMPP_REASON_NONE);
        auto body = n.body();
        CHECK(body && body->find("desk") != std::string_view::npos);
        CHECK(has_tuple(n, "desk", IMPP_BASIC_OPEN));
    }

    // Publishing a document object; moving events around keeps them alive.
    impp::Presence phone(ALICE);
    phone.add_tuple("phone", IMPP_BASIC_OPEN);
    const std::string phone_tag = engine.publish(ALICE, phone, 600);
    engine.sync();
    std::optional<impp::Event> got = engine.next_event();
    CHECK(got.has_value());
    if (got) {
        impp::Event kept = std::move(*got);
        CHECK(got->get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
        CHECK(has_tuple(kept, "phone", IMPP_BASIC_OPEN) && has_tuple(kept, "desk", IMPP_BASIC_OPEN));
        // A view borrows; release() and adopt() hand the ownership over and back.
        impp::EventView view = kept.view();
        CHECK(view.get() == kept.get() && view.kind() == IMPP_EVENT_NOTIFICATION);
        impp_event *raw = kept.release();
        CHECK(kept.get() == nullptr && raw != nullptr);
        impp::Event again = impp::Event::adopt(raw);
        CHECK(again.get() == raw && has_tuple(again, "phone", IMPP_BASIC_OPEN));
    }
    CHECK(!engine.next_event(1ms));

    // Entity tags.
    const std::string tag2 = engine.refresh_publication(desk_tag, 120);
    CHECK(tag2 != desk_tag);
    CHECK_THROWS(engine.refresh_publication(desk_tag, 120), IMPP_ERR_UNKNOWN_ENTITY_TAG);
    const std::string tag3 = engine.modify_publication(tag2, "presence", DESK_CLOSED);
    CHECK_THROWS(engine.modify_publication(tag2, "presence", DESK_CLOSED),
                 IMPP_ERR_UNKNOWN_ENTITY_TAG);
    engine.remove_publication(phone_tag);
    CHECK_THROWS(engine.remove_publication(phone_tag), IMPP_ERR_UNKNOWN_ENTITY_TAG);
    events = take_all(engine);
    CHECK(events.size() == 2);
    CHECK(engine.stat(IMPP_STAT_PUBLICATIONS) == 1);
    CHECK(engine.stat(IMPP_STAT_EVENTS_QUEUED) == 0);

    // Expiry through the manual clock.
    engine.advance_clock(121s);
    events = take_all(engine);
    bool expired = false;
    for (const impp::Event &e : events) {
        if (e.kind() == IMPP_EVENT_PUBLICATION_EXPIRED) {
            expired = e.etag() == std::optional<std::string_view>(tag3) && !e.watcher() &&
                      e.subscription() == 0 && e.state() == IMPP_SUBSCRIPTION_NONE;
        }
    }
    CHECK(expired);

    // Rules.
    engine.set_rule(ALICE, impp::Rule::for_watcher(CAROL, IMPP_AUTH_BLOCK));
    engine.set_rule(ALICE, impp::Rule::for_domain("example.test", IMPP_AUTH_ALLOW));
    std::vector<impp::Rule> rules = engine.rules(ALICE);
    CHECK(rules.size() == 2);
    int watcher_rules = 0, domain_rules = 0;
    for (const impp::Rule &r : rules) {
        if (r.watcher == CAROL && !r.domain && r.action == IMPP_AUTH_BLOCK) {
            watcher_rules++;
        }
        if (r.domain == std::optional<std::string>("example.test") && !r.watcher &&
            r.action == IMPP_AUTH_ALLOW) {
            domain_rules++;
        }
    }
    CHECK(watcher_rules == 1 && domain_rules == 1);
    const std::uint64_t dave = engine.subscribe(DAVE, ALICE, "presence", {600, std::nullopt, 0ms});
    CHECK(engine.subscription(dave).state == IMPP_SUBSCRIPTION_ACTIVE);
    // Dave's subscription in the snapshot of alice's, and in the one of every presentity.
    bool listed = false;
    for (const impp::SubscriptionEntry &s : engine.subscriptions(std::string(ALICE))) {
        if (s.id == dave) {
            listed = s.watcher == DAVE && s.presentity == ALICE && s.package == "presence" &&
                     s.state == IMPP_SUBSCRIPTION_ACTIVE && s.authorization == IMPP_AUTH_ALLOW &&
                     s.expires_in > 0 && s.expires_in <= 600;
        }
    }
    CHECK(listed);
    CHECK(engine.subscriptions().size() >= engine.subscriptions(std::string(ALICE)).size());
    CHECK(engine.subscriptions(std::string("sip:nobody@example.test")).empty());
    CHECK_THROWS(engine.subscriptions(std::string("not a uri")), IMPP_ERR_INVALID_URI);
    CHECK(engine.subscription(dave).expires_in == 600);
    engine.refresh_subscription(dave, IMPP_EXPIRES_DEFAULT); // the configured default
    CHECK(engine.subscription(dave).expires_in == 3600);
    // A fetch: one notification, then the subscription is gone.
    const std::uint64_t fetch =
        engine.subscribe(DAVE, ALICE, "presence", {0, std::nullopt, 0ms, true});
    take_all(engine);
    CHECK_THROWS(engine.subscription(fetch), IMPP_ERR_NOT_FOUND);
    CHECK(engine.remove_rule(ALICE, impp::Rule::for_watcher(CAROL, IMPP_AUTH_BLOCK)));
    CHECK(!engine.remove_rule(ALICE, impp::Rule::for_watcher(CAROL, IMPP_AUTH_BLOCK)));
    CHECK(engine.rules(ALICE).size() == 1);
    take_all(engine);

    // Bad input throws and changes nothing.
    CHECK_THROWS(engine.subscribe(BOB, "not a uri"), IMPP_ERR_INVALID_URI);
    CHECK_THROWS(engine.subscribe(BOB, ALICE, "presense"), IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_THROWS(engine.subscribe(BOB, ALICE, "presence", {5, std::nullopt, 0ms}),
                 IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK_THROWS(engine.subscribe(BOB, ALICE, "presence", {0, std::string("<filter"), 0ms}),
                 IMPP_ERR_MALFORMED);
    CHECK_THROWS(engine.send_message(ALICE, BOB, "x", "text/plain", std::string("")),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(engine.subscribe(BOB, ALICE, "presence.winfo"), IMPP_ERR_FORBIDDEN);
    CHECK_THROWS(engine.publish(ALICE, "presence", "<presence"), IMPP_ERR_MALFORMED);
    CHECK_THROWS(engine.publish(ALICE, "presence", std::string_view("\xff\xfe", 2)),
                 IMPP_ERR_MALFORMED);
    CHECK_THROWS(engine.authorize(bob, static_cast<impp_auth_action>(99)),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(engine.terminate_subscription(bob, IMPP_REASON_NONE), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(engine.set_rule(ALICE, impp::Rule{}), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(engine.unsubscribe(999999), IMPP_ERR_NOT_FOUND);
    CHECK(take_all(engine).empty());

    // The engine moves; the moved-from one holds nothing.
    impp::Engine moved = std::move(engine);
    CHECK(engine.get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    moved.unsubscribe(bob);
    CHECK(take_all(moved).size() == 2);
    CHECK(moved.event_fd() >= 0);
}

// What the callbacks saw; shared between them and the test.
struct Log {
    std::mutex lock;
    std::condition_variable changed;
    std::vector<std::string> lines;
    int refused_close = 0;
    std::vector<std::string> inner_errors;

    void add(std::string line) {
        std::lock_guard<std::mutex> guard(lock);
        lines.push_back(std::move(line));
        changed.notify_all();
    }

    bool wait_for(std::size_t count) {
        std::unique_lock<std::mutex> guard(lock);
        return changed.wait_for(guard, 5s, [&] { return lines.size() >= count; });
    }
};

std::string describe(const impp::EventView &event) {
    std::string line = std::to_string(static_cast<int>(event.kind())) + " " +
                       std::string(event.watcher().value_or("-")) + " " +
                       std::to_string(static_cast<int>(event.state()));
    if (has_tuple(event, "phone", IMPP_BASIC_OPEN)) {
        line += " phone";
    }
    return line;
}

void test_callbacks() {
    auto log = std::make_shared<Log>();
    auto token = std::make_shared<int>(0);  // its use count tells whether the callback lives
    {
        impp::Engine engine(impp::Config().workers(2).default_policy(IMPP_AUTH_ALLOW));
        engine.set_callback([log, token, &engine](const impp::EventView &event) {
            log->add(describe(event));
            if (event.kind() != IMPP_EVENT_NOTIFICATION || event.watcher() != CAROL ||
                event.state() != IMPP_SUBSCRIPTION_ACTIVE) {
                return;
            }
            try {
                if (!has_tuple(event, "phone", IMPP_BASIC_OPEN)) {
                    // From inside: close() is refused, other calls work.
                    try {
                        engine.close();
                    } catch (const impp::Error &e) {
                        if (e.status() == IMPP_ERR_IN_CALLBACK) {
                            std::lock_guard<std::mutex> guard(log->lock);
                            log->refused_close++;
                        }
                    }
                    impp::Presence phone(ALICE);
                    phone.add_tuple("phone", IMPP_BASIC_OPEN);
                    engine.publish(ALICE, phone);
                } else {
                    engine.unsubscribe(event.subscription());
                }
            } catch (const impp::Error &e) {
                std::lock_guard<std::mutex> guard(log->lock);
                log->inner_errors.push_back(e.what());
            }
        });
        CHECK(token.use_count() == 2);
        engine.subscribe(CAROL, ALICE);
        CHECK(log->wait_for(5));
        {
            std::lock_guard<std::mutex> guard(log->lock);
            const std::vector<std::string> want = {
                "3 " + CAROL + " 2",          // active
                "1 " + CAROL + " 2",          // first notification: publish from inside
                "1 " + CAROL + " 2 phone",    // the phone: unsubscribe from inside
                "3 " + CAROL + " 3",          // terminated
                "1 " + CAROL + " 3",
            };
            CHECK(log->lines == want);
            if (log->lines != want) {
                for (const std::string &l : log->lines) {
                    std::fprintf(stderr, "  saw: %s\n", l.c_str());
                }
            }
            CHECK(log->refused_close == 1);
            CHECK(log->inner_errors.empty());
        }
        CHECK(engine.get() != nullptr);  // the refused close left the engine alone

        // A callback that throws: reported, dropped, and delivery goes on. Replacing the
        // first callback destroys it (and what it captured) after its last call.
        auto second = std::make_shared<Log>();
        int calls = 0;  // only touched on the dispatcher thread
        engine.set_callback([second, &calls](const impp::EventView &event) {
            if (++calls == 1) {
                throw std::runtime_error("a bug in the application's callback");
            }
            second->add(describe(event));
        });
        engine.subscribe(DAVE, ALICE);
        CHECK(second->wait_for(1));  // the second event; the first one threw
        CHECK(token.use_count() == 1);
        CHECK(engine.stat(IMPP_STAT_CALLBACK_PANICS) == 0);

        // Back to polling: the callback is gone, events wait for next_event.
        engine.clear_callback();
        engine.unsubscribe(engine.subscribe(BOB, ALICE));
        engine.sync();
        std::size_t polled = 0;
        while (auto event = engine.next_event(100ms)) {
            polled++;
        }
        CHECK(polled >= 2);

        engine.set_callback([token](const impp::EventView &) {});
        CHECK(token.use_count() == 2);
    }
    // The engine is gone: so is its callback, and nothing else holds the shared state.
    CHECK(token.use_count() == 1);
    CHECK(log.use_count() == 1);
}

const std::string WINFO =
    "<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='2' state='full'>"
    "<watcher-list resource='sip:alice@example.test' package='presence'>"
    "<watcher id='a1' status='active' event='approved' display-name='Bob'"
    " duration-subscribed='30' expiration='570'>sip:bob@example.test</watcher>"
    "<watcher id='a2' status='waiting' event='timeout'>sip:dave@example.test</watcher>"
    "</watcher-list></watcherinfo>";

const std::string DIALOGS =
    "<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='5' state='partial'"
    " entity='sip:alice@example.test'>"
    "<dialog id='c1' call-id='k@host' local-tag='x' direction='recipient'>"
    "<state event='cancelled' code='487'>terminated</state>"
    "<remote><identity display='Dave'>sip:dave@example.test</identity></remote></dialog>"
    "<dialog id='c2'><state>proceeding</state></dialog></dialog-info>";

const std::string FILTERS =
    "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter' package='presence'>"
    "<ns-bindings><ns-binding prefix='pidf' urn='urn:ietf:params:xml:ns:pidf'/></ns-bindings>"
    "<filter id='for-bob' uri='sip:bob@example.test'>"
    "<what><include>/pidf:presence/pidf:tuple[@id='desk']</include></what></filter>"
    "<filter id='others' domain='other.test'>"
    "<what><include>/pidf:presence/pidf:note</include></what></filter></filter-set>";

void test_watcherinfo() {
    impp::Watcherinfo w = impp::Watcherinfo::parse(WINFO);
    CHECK(w.version() == 2 && w.state() == IMPP_DOC_STATE_FULL);
    CHECK(w.list_count() == 1);
    CHECK(w.list_resource(0) == ALICE && w.list_package(0) == "presence");
    CHECK(w.watcher_count(0) == 2 && w.watcher_count(1) == 0);
    std::vector<impp::Watcher> all = w.watchers(0);
    CHECK(all.size() == 2);
    if (all.size() == 2) {
        CHECK(all[0].id == "a1" && all[0].uri == BOB);
        CHECK(all[0].status == IMPP_WATCHER_STATUS_ACTIVE);
        CHECK(all[0].event == IMPP_WATCHER_EVENT_APPROVED);
        CHECK(all[0].display_name == std::optional<std::string>("Bob"));
        CHECK(all[0].duration_subscribed == std::optional<std::int64_t>(30));
        CHECK(all[0].expiration == std::optional<std::int64_t>(570));
        CHECK(all[1].uri == DAVE && all[1].status == IMPP_WATCHER_STATUS_WAITING);
        CHECK(all[1].event == IMPP_WATCHER_EVENT_TIMEOUT);
        CHECK(!all[1].display_name && !all[1].duration_subscribed && !all[1].expiration);
    }
    impp::Watcherinfo again = impp::Watcherinfo::parse(w.to_xml());
    CHECK(again.watchers(0).size() == 2 && again.watcher(0, 1).id == "a2");
    impp::Watcherinfo moved = std::move(again);
    CHECK(again.get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(moved.version() == 2);

    CHECK_THROWS(w.watcher(0, 2), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(w.list_resource(1), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(impp::Watcherinfo::parse(WINFO.substr(0, 40)), IMPP_ERR_MALFORMED);
    CHECK_THROWS(impp::Watcherinfo::parse("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"),
                 IMPP_ERR_UNSAFE_XML);
    CHECK_THROWS(impp::Watcherinfo::parse(DIALOGS), IMPP_ERR_MALFORMED);
}

void test_dialog_info() {
    impp::DialogInfo d = impp::DialogInfo::parse(DIALOGS);
    CHECK(d.version() == 5 && d.state() == IMPP_DOC_STATE_PARTIAL);
    CHECK(d.entity() == ALICE && d.dialog_count() == 2);
    CHECK(d.dialog_id(0) == "c1" && d.dialog_id(1) == "c2");
    CHECK(d.call_id(0) == std::optional<std::string>("k@host") && !d.call_id(1));
    CHECK(d.local_tag(0) == std::optional<std::string>("x") && !d.remote_tag(0));
    CHECK(d.direction(0) == IMPP_DIALOG_DIRECTION_RECIPIENT);
    CHECK(d.direction(1) == IMPP_DIALOG_DIRECTION_NONE);
    impp::DialogState st = d.dialog_state(0);
    CHECK(st.state == IMPP_DIALOG_STATE_TERMINATED && st.event == IMPP_DIALOG_EVENT_CANCELLED);
    CHECK(st.code == std::optional<int>(487));
    st = d.dialog_state(1);
    CHECK(st.state == IMPP_DIALOG_STATE_PROCEEDING && st.event == IMPP_DIALOG_EVENT_NONE && !st.code);
    std::optional<impp::Identity> remote = d.remote_identity(0);
    CHECK(remote && remote->uri == DAVE && remote->display == std::optional<std::string>("Dave"));
    CHECK(!d.local_identity(0) && !d.remote_identity(1));
    CHECK(impp::DialogInfo::parse(d.to_xml()).dialog_count() == 2);

    // Building a lamp; a refused change leaves the document as it was.
    impp::DialogInfo lamp(ALICE);
    CHECK(lamp.version() == 0 && lamp.dialog_count() == 0);
    CHECK(lamp.add_dialog("l1", IMPP_DIALOG_STATE_EARLY) == 0);
    lamp.set_direction(0, IMPP_DIALOG_DIRECTION_INITIATOR);
    lamp.set_call_id(0, std::string("cid@host"));
    lamp.set_local_tag(0, std::string("lt"));
    lamp.set_remote_tag(0, std::string("rt"));
    lamp.set_remote_identity(0, BOB, std::string("Bob"));
    lamp.set_state(0, IMPP_DIALOG_STATE_TERMINATED, IMPP_DIALOG_EVENT_REJECTED, 603);
    impp::DialogInfo back = impp::DialogInfo::parse(lamp.to_xml());
    CHECK(back.call_id(0) == std::optional<std::string>("cid@host"));
    CHECK(back.remote_tag(0) == std::optional<std::string>("rt"));
    CHECK(back.dialog_state(0).code == std::optional<int>(603));
    CHECK(back.remote_identity(0) && back.remote_identity(0)->uri == BOB);
    lamp.set_call_id(0, std::nullopt);
    lamp.set_remote_identity(0, std::nullopt);
    CHECK(!lamp.call_id(0) && !lamp.remote_identity(0));
    CHECK_THROWS(lamp.add_dialog("l1", IMPP_DIALOG_STATE_TRYING), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(lamp.set_state(0, IMPP_DIALOG_STATE_TERMINATED, IMPP_DIALOG_EVENT_NONE, 42),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(lamp.set_local_tag(0, std::string("")), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(lamp.set_direction(0, static_cast<impp_dialog_direction>(9)),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(lamp.remove_dialog(3), IMPP_ERR_NOT_FOUND);
    CHECK(lamp.dialog_state(0).event == IMPP_DIALOG_EVENT_REJECTED);
    lamp.remove_dialog(0);
    CHECK(lamp.dialog_count() == 0);
    CHECK_THROWS(impp::DialogInfo("nobody"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(impp::DialogInfo::parse("<dialog-info"), IMPP_ERR_MALFORMED);
}

void test_message_summary() {
    impp::MessageSummary m = impp::MessageSummary::parse(
        "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.test\r\n"
        "Voice-Message: 4/1 (2/0)\r\nPager-Message: 0/3\r\n");
    CHECK(m.messages_waiting());
    CHECK(m.account() == std::optional<std::string>("sip:alice@vmail.example.test"));
    CHECK(m.class_count() == 2);
    CHECK(m.class_name(0) == "voice-message" && m.class_name(1) == "pager-message");
    impp::MessageCounts c = m.counts(0);
    CHECK(c.new_messages == 4 && c.old_messages == 1);
    CHECK(c.urgent_new == std::optional<std::uint32_t>(2));
    CHECK(c.urgent_old == std::optional<std::uint32_t>(0));
    c = m.counts(1);
    CHECK(c.new_messages == 0 && c.old_messages == 3 && !c.urgent_new && !c.urgent_old);
    CHECK(impp::MessageSummary::parse(m.to_text()).class_count() == 2);

    impp::MessageSummary built;
    CHECK(!built.messages_waiting() && !built.account() && built.class_count() == 0);
    built.set_messages_waiting(true);
    built.set_account(std::string("sip:bob@vmail.example.test"));
    CHECK(built.set_count("Voice-Message", 1, 2) == 0);
    built.set_urgent("voice-message", 1u, 0u);
    CHECK(built.to_text() ==
          "Messages-Waiting: yes\r\nMessage-Account: sip:bob@vmail.example.test\r\n"
          "Voice-Message: 1/2 (1/0)\r\n");
    built.set_account(std::nullopt);
    CHECK(!built.account());
    CHECK_THROWS(built.set_count("Sms", 1, 1), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(built.set_urgent("fax-message", 1u), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(built.set_account(std::string("not a uri")), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(built.counts(1), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(impp::MessageSummary::parse("Voice-Message: 1/1\r\n"), IMPP_ERR_MALFORMED);
    impp::MessageSummary moved = std::move(built);
    CHECK(built.get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(moved.class_count() == 1);
}

void test_filter_set() {
    impp::FilterSet f = impp::FilterSet::parse(FILTERS);
    CHECK(f.filter_count() == 2);
    CHECK(f.filter_id(0) == "for-bob" && f.filter_uri(0) == std::optional<std::string>(BOB));
    CHECK(!f.filter_domain(0));
    CHECK(f.filter_id(1) == "others" && !f.filter_uri(1));
    CHECK(f.filter_domain(1) == std::optional<std::string>("other.test"));
    CHECK(impp::FilterSet::parse(f.to_xml()).filter_count() == 2);

    impp::Presence doc(ALICE);
    doc.add_tuple("desk", IMPP_BASIC_OPEN);
    doc.add_tuple("mobile", IMPP_BASIC_CLOSED);
    doc.add_note("busy");
    impp::Presence for_bob = f.apply(BOB, doc);
    CHECK(for_bob.tuple_count() == 1 && for_bob.tuple_id(0) == "desk");
    CHECK(for_bob.tuple_basic(0) == IMPP_BASIC_OPEN && for_bob.notes().empty());
    impp::Presence for_carol = f.apply(CAROL, doc);
    CHECK(for_carol.tuple_count() == 0 && for_carol.notes() == (std::vector<impp::Note>{{"busy", std::nullopt}}));
    CHECK(f.apply(DAVE, doc).tuple_count() == 2);  // no filter applies: a copy
    CHECK(doc.tuple_count() == 2);

    CHECK_THROWS(f.filter_id(2), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(impp::FilterSet::parse(
                     "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'><filter id='f'>"
                     "<what><include>/pidf:presence/pidf:tuple[2]</include></what>"
                     "</filter></filter-set>"),
                 IMPP_ERR_UNSUPPORTED);
    CHECK_THROWS(impp::FilterSet::parse("<filter-set"), IMPP_ERR_MALFORMED);
}

// The last event of `sub` that carries a document.
std::optional<impp::Event> document_event(impp::Engine &engine, std::uint64_t sub) {
    std::optional<impp::Event> found;
    for (impp::Event &e : take_all(engine)) {
        if (e.subscription() == sub && e.has_document()) {
            found = std::move(e);
        }
    }
    return found;
}

void test_documents_through_engine() {
    impp::Engine engine(
        impp::Config().workers(2).manual_clock().default_policy(IMPP_AUTH_ALLOW).add_domain(
            "example.test"));

    impp::DialogInfo lamp(ALICE);
    lamp.add_dialog("call", IMPP_DIALOG_STATE_CONFIRMED);
    lamp.set_remote_identity(0, CAROL);
    CHECK(!engine.publish(ALICE, lamp).empty());
    const std::uint64_t bob = engine.subscribe(BOB, ALICE, "dialog");
    std::optional<impp::Event> event = document_event(engine, bob);
    CHECK(event.has_value());
    if (event) {
        std::optional<impp::DialogInfo> seen = event->dialog_info();
        CHECK(seen && seen->dialog_count() == 1 && seen->dialog_id(0) == "call");
        CHECK(seen && seen->dialog_state(0).state == IMPP_DIALOG_STATE_CONFIRMED);
        CHECK(!event->presence() && !event->winfo() && !event->message_summary());
    }

    impp::MessageSummary mwi(true);
    mwi.set_count("voice-message", 3, 0);
    engine.publish(ALICE, mwi, 600);
    const std::uint64_t own = engine.subscribe(ALICE, ALICE, "message-summary");
    event = document_event(engine, own);
    CHECK(event.has_value());
    if (event) {
        std::optional<impp::MessageSummary> seen = event->message_summary();
        CHECK(seen && seen->messages_waiting() && seen->class_count() == 1);
        CHECK(seen && seen->counts(0).new_messages == 3);
        CHECK(!event->dialog_info());
    }

    const std::uint64_t winfo = engine.subscribe(ALICE, ALICE, "presence.winfo");
    event = document_event(engine, winfo);
    CHECK(event.has_value());
    if (event) {
        std::optional<impp::Watcherinfo> seen = event->winfo();
        CHECK(seen && seen->list_count() >= 1);
        bool bob_listed = false;
        for (std::size_t l = 0; seen && l < seen->list_count(); l++) {
            for (const impp::Watcher &w : seen->watchers(l)) {
                bob_listed = bob_listed || (w.uri == BOB && w.status == IMPP_WATCHER_STATUS_ACTIVE);
            }
        }
        CHECK(bob_listed);
    }
}

void test_messaging() {
    impp::Engine engine(impp::Config()
                            .workers(2)
                            .manual_clock()
                            .default_policy(IMPP_AUTH_ALLOW)
                            .add_domain("example.test")
                            .endpoint_expiry(60, 600, 3600)
                            .max_message_size(8)
                            .message_expiry(std::chrono::hours(1))
                            .endpoint_presence(false)
                            .max_offline_messages_per_user(50)
                            .max_offline_messages_per_sender(5)
                            .max_subscriptions_per_watcher(100)
                            .max_subscriptions_per_presentity(100)
                            .max_endpoints_per_user(2));
    CHECK(engine.login(BOB, "phone") == 600);
    CHECK(engine.login(BOB, "laptop", 120, std::string("sip:bob@192.0.2.1")) == 120);
    CHECK(engine.stat(IMPP_STAT_ENDPOINTS) == 2);
    // A third endpoint is past the bound: refused and counted, a refresh is not.
    CHECK_THROWS(engine.login(BOB, "tablet"), IMPP_ERR_LIMIT_REACHED);
    CHECK(engine.login(BOB, "phone") == 600);
    CHECK(engine.stat(IMPP_STAT_ENDPOINTS) == 2);
    CHECK(engine.stat(IMPP_STAT_ENDPOINTS_REFUSED) == 1);
    CHECK_THROWS(impp::Config().max_endpoints_per_user(0), IMPP_ERR_INVALID_ARGUMENT);

    using namespace std::string_view_literals;
    const std::string_view binary = "a\0b"sv;
    const std::uint64_t id = engine.send_message(ALICE, BOB, binary, "application/octet-stream",
                                                 std::string("phone"), std::string("ref-1"));
    CHECK(id != 0);
    auto events = take_all(engine);
    CHECK(events.size() == 2);
    for (const impp::Event &ev : events) {
        CHECK(ev.message_id() == id);
        CHECK(ev.sender() == std::optional<std::string_view>(ALICE));
        CHECK(ev.recipient() == std::optional<std::string_view>(BOB));
        if (ev.kind() == IMPP_EVENT_MESSAGE) {
            CHECK(ev.message_body() == std::optional<std::string_view>(binary));
            CHECK(ev.message_body()->size() == 3);
            CHECK(ev.endpoint() == std::optional<std::string_view>("phone"));
            CHECK(ev.content_type() == std::optional<std::string_view>("application/octet-stream"));
            CHECK(ev.in_reply_to() == std::optional<std::string_view>("ref-1"));
            CHECK(ev.sent_at() > 0);
            CHECK(ev.delivery_outcome() == IMPP_DELIVERY_NONE);
        } else {
            CHECK(ev.kind() == IMPP_EVENT_DELIVERY);
            CHECK(ev.delivery_outcome() == IMPP_DELIVERY_DELIVERED);
            CHECK(ev.failure_reason() == IMPP_FAILURE_NONE);
            CHECK(!ev.message_body());
        }
    }

    // Too large: a failed delivery with its reason.
    const std::uint64_t big = engine.send_message(ALICE, BOB, "123456789");
    events = take_all(engine);
    CHECK(events.size() == 1);
    if (events.size() == 1) {
        CHECK(events[0].message_id() == big);
        CHECK(events[0].delivery_outcome() == IMPP_DELIVERY_FAILED);
        CHECK(events[0].failure_reason() == IMPP_FAILURE_TOO_LARGE);
        CHECK(std::string_view(impp_failure_reason_name(events[0].failure_reason())) ==
              "too-large");
    }

    CHECK(engine.logout(BOB, "phone"));
    CHECK(!engine.logout(BOB, "phone"));
    CHECK_THROWS(engine.send_message(ALICE, BOB, "x", "text"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(engine.login(BOB, "phone", 10), IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK(take_all(engine).empty());

    // The laptop's login runs out.
    engine.advance_clock(120s);
    events = take_all(engine);
    CHECK(events.size() == 1);
    if (events.size() == 1) {
        CHECK(events[0].kind() == IMPP_EVENT_ENDPOINT_EXPIRED);
        CHECK(events[0].endpoint() == std::optional<std::string_view>("laptop"));
        CHECK(events[0].presentity() == BOB);
        CHECK(events[0].message_id() == 0);
    }
    CHECK(engine.stat(IMPP_STAT_ENDPOINTS) == 0);
}

// An event of `kind`, waiting up to 10 s (events of other kinds are dropped).
std::optional<impp::Event> wait_event(impp::Engine &engine, impp_event_type kind) {
    for (int i = 0; i < 100; i++) {
        std::optional<impp::Event> event = engine.next_event(100ms);
        if (event && event->kind() == kind) {
            return event;
        }
    }
    return std::nullopt;
}

void test_sip_stack() {
    impp::Engine engine(impp::Config().workers(2).add_domain("example.test"));

    // A bad setting throws at once, and the configuration stays as it was.
    impp::SipConfig bad;
    CHECK_THROWS(bad.add_listen("sctp:127.0.0.1:0"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_listen("udp:localhost:5060"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_route("no-hop"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.t1(0ms), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.t1(std::chrono::hours(2)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.workers(0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.tls_files("/nonexistent/impp.crt", "/nonexistent/impp.key"),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.tls_pem("not PEM", "not PEM", std::string("not PEM")),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.max_connections(0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.max_connections_per_address(0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.idle_timeout(-1ms), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.tls_handshake_timeout(std::chrono::hours(1)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.unvouched_timeout(0ms), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.rate_limit(10, 9), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.nonce_lifetime(999ms), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.nc_window(65), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.auth_failure_window(std::chrono::hours(25)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.auth_block(0ms), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_auth_proxy("proxy.example"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_peer("other.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_ws_origin("phone.example.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.federation(static_cast<impp_federation>(0)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.migration(static_cast<impp_migration>(0)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_publisher("192.0.2.20/40=example.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_account({ALICE, std::nullopt, "secret", "tcp:127.0.0.1:9", std::nullopt, 0,
                                  {}, true, 2, std::string("ftp://x/")}),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(bad.add_account({"not a uri", std::nullopt, "secret", "udp:127.0.0.1:9",
                                  std::nullopt, 0, {}, false, 30, std::nullopt}),
                 IMPP_ERR_INVALID_URI);
    CHECK_THROWS(bad.add_account({ALICE, std::nullopt, "secret", "udp:nowhere", std::nullopt, 0, {},
                                  false, 30, std::nullopt}),
                 IMPP_ERR_INVALID_ARGUMENT);
    // Nothing to listen on: refused, and the configuration is consumed all the same.
    CHECK_THROWS(impp::SipStack(engine, std::move(bad)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(bad.get() == nullptr);  // NOLINT(bugprone-use-after-move): consumed
    // A peer for the engine's own domain is refused when the stack starts.
    CHECK_THROWS(impp::SipStack(engine, impp::SipConfig()
                                            .add_listen("udp:127.0.0.1:0")
                                            .add_peer("example.test=127.0.0.1")),
                 IMPP_ERR_INVALID_ARGUMENT);

    impp::SipStack sip(engine, impp::SipConfig()
                                   .add_listen("udp:127.0.0.1:0")
                                   .add_listen("tcp:127.0.0.1:0")
                                   .add_listen("ws:127.0.0.1:0")
                                   .add_ws_origin("https://phone.example.test")
                                   .add_route("*=udp:127.0.0.1:9")
                                   .t1(100ms)
                                   .workers(2)
                                   .authenticate(true)
                                   .offer_sha256(false)
                                   .federate(false)
                                   .max_connections(100)
                                   .max_connections_per_address(10)
                                   .idle_timeout(std::chrono::minutes(2))
                                   .tls_handshake_timeout(5s)
                                   .unvouched_timeout(20s)
                                   .rate_limit(100, 500)
                                   .nonce_lifetime(std::chrono::minutes(1))
                                   .nc_window(16)
                                   .max_auth_failures(5)
                                   .auth_failure_window(30s)
                                   .auth_block(std::chrono::minutes(10))
                                   .add_auth_proxy("127.0.0.9")
                                   .add_peer("other.test=127.0.0.2")
                                   .add_peer("other.test=2001:db8::/64")
                                   .federation(IMPP_FEDERATION_OPEN)
                                   .migration(IMPP_MIGRATION_PROXY)
                                   .add_publisher("127.0.0.3=example.test")
                                   .add_publisher("sip:voicemail@example.test=example.test"));
    CHECK(sip.local_address("udp").rfind("udp:127.0.0.1:", 0) == 0);
    CHECK(sip.stat(IMPP_SIP_STAT_RATE_REFUSED) == 0);
    CHECK(sip.stat(IMPP_SIP_STAT_OPEN_CONNECTIONS) == 0);
    CHECK(sip.local_address("tcp").rfind("tcp:127.0.0.1:", 0) == 0);
    CHECK(sip.local_address("ws").rfind("ws:127.0.0.1:", 0) == 0);
    CHECK_THROWS(sip.local_address("sctp"), IMPP_ERR_INVALID_ARGUMENT);
    impp::SipStack moved = std::move(sip);
    CHECK(sip.get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(moved.local_address("udp").rfind("udp:127.0.0.1:", 0) == 0);
    CHECK(sip.stat(IMPP_SIP_STAT_AUTH_FAILURES) == 0);  // NOLINT(bugprone-use-after-move)


    // An address another stack holds: a network error.
    CHECK_THROWS(impp::SipStack(engine, impp::SipConfig().add_listen(moved.local_address("udp"))),
                 IMPP_ERR_NETWORK);

    // Stopping from inside an event callback is refused; the stack keeps running.
    std::mutex lock;
    std::condition_variable seen;
    std::optional<impp_status> inside;
    engine.set_callback([&](const impp::EventView &) {
        std::lock_guard<std::mutex> guard(lock);
        if (!inside) {
            try {
                moved.stop();
                inside = IMPP_OK;
            } catch (const impp::Error &e) {
                inside = e.status();
            }
            seen.notify_all();
        }
    });
    engine.subscribe(BOB, DAVE, "presence");
    {
        std::unique_lock<std::mutex> guard(lock);
        seen.wait_for(guard, std::chrono::seconds(10), [&] { return inside.has_value(); });
        CHECK(inside == std::optional<impp_status>(IMPP_ERR_IN_CALLBACK));
    }
    engine.clear_callback();
    CHECK(moved.local_address("udp").rfind("udp:127.0.0.1:", 0) == 0);
    moved.stop();
    moved.stop();  // once stopped, a no-op
    CHECK(moved.get() == nullptr);
    CHECK_THROWS(moved.local_address("udp"), IMPP_ERR_INVALID_ARGUMENT);

    // TLS from the PEM files tests/c_api.rs made (a certificate of a test CA), once the
    // stack above is stopped (one stack per engine at a time).
    const char *cert = std::getenv("IMPP_TEST_TLS_CERT");
    const char *key = std::getenv("IMPP_TEST_TLS_KEY");
    const char *ca = std::getenv("IMPP_TEST_TLS_CA");
    CHECK(cert != nullptr && key != nullptr && ca != nullptr);
    if (cert != nullptr && key != nullptr && ca != nullptr) {
        impp::SipStack tls(engine, impp::SipConfig().add_listen("tls:127.0.0.1:0").tls_files(
                                       cert, key, std::string(ca)));
        CHECK(tls.local_address("tls").rfind("tls:127.0.0.1:", 0) == 0);
        CHECK_THROWS(tls.local_address("udp"), IMPP_ERR_NOT_FOUND);
    }
}

// The user-agent role: a second engine (client.test) with the account alice@example.test at
// the first engine's stack (digest authentication on) sends as alice and receives for her.
void test_sip_account() {
    impp::Engine server(
        impp::Config().workers(2).default_policy(IMPP_AUTH_ALLOW).add_domain("example.test"));
    // Both users in the directory: with one, messages to anyone else fail as unknown-user.
    server.set_user_password(ALICE, "secret");
    server.set_user_password(BOB, "bob-secret");
    impp::SipStack server_sip(server, impp::SipConfig().add_listen("udp:127.0.0.1:0").t1(100ms));

    impp::Engine client(impp::Config().workers(2).add_domain("client.test"));
    impp::SipAccount alice;
    alice.aor = ALICE;
    alice.password = "secret";
    alice.registrar = server_sip.local_address("udp");
    alice.expires = 600;
    impp::SipStack client_sip(
        client, impp::SipConfig().add_listen("udp:127.0.0.1:0").t1(100ms).add_account(alice));

    // alice -> bob (logged in at the server's application): delivered through the account.
    CHECK(server.login(BOB, "app") > 0);
    const std::uint64_t id = client.send_message(ALICE, BOB, "hi bob");
    std::optional<impp::Event> event = wait_event(client, IMPP_EVENT_DELIVERY);
    CHECK(event && event->message_id() == id);
    CHECK(event && event->delivery_outcome() == IMPP_DELIVERY_DELIVERED);
    event = wait_event(server, IMPP_EVENT_MESSAGE);
    CHECK(event && event->sender() == std::optional<std::string_view>(ALICE));
    CHECK(event && event->message_body() == std::optional<std::string_view>("hi bob"));

    // bob -> alice: relayed to the contact the account registered.
    server.send_message(BOB, ALICE, "hi alice");
    event = wait_event(client, IMPP_EVENT_MESSAGE);
    CHECK(event && event->message_body() == std::optional<std::string_view>("hi alice"));

    client_sip.stop();
    server_sip.stop();
}

// Whether a notification of `sub` comes within 20 s whose body shows "at her desk" (`shown`)
// or does not (the state gone); other events are dropped.
bool wait_body(impp::Engine &engine, std::uint64_t sub, bool shown) {
    for (int i = 0; i < 200; i++) {
        std::optional<impp::Event> event = engine.next_event(100ms);
        if (!event || event->kind() != IMPP_EVENT_NOTIFICATION || event->subscription() != sub) {
            continue;
        }
        const std::optional<std::string_view> body = event->body();
        if ((body && body->find("at her desk") != std::string_view::npos) == shown) {
            return true;
        }
    }
    return false;
}

// The list client: the account declares a list at the first engine's stack; the client
// stack subscribes to it as it starts and the client's watcher of alice is told her state.
// Ended and made again at run time; bad arguments throw and change nothing.
void test_sip_list_client() {
    impp::Engine server(
        impp::Config().workers(2).default_policy(IMPP_AUTH_ALLOW).add_domain("example.test"));
    server.set_user_password(ALICE, "secret");
    server.set_list(impp::ResourceList("sip:buddies@example.test").add_entry(ALICE));
    server.publish(ALICE, "presence",
                   "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@example.test\">"
                   "<tuple id=\"t1\"><status><basic>open</basic></status>"
                   "<note>at her desk</note></tuple></presence>");
    impp::SipStack server_sip(
        server, impp::SipConfig().add_listen("udp:127.0.0.1:0").list_batch_interval(0ms));

    impp::Engine client(
        impp::Config().workers(2).default_policy(IMPP_AUTH_ALLOW).add_domain("client.test"));
    impp::SipAccount alice;
    alice.aor = ALICE;
    alice.password = "secret";
    alice.registrar = server_sip.local_address("udp");
    alice.lists.push_back(impp::SipList{"sip:buddies@example.test", "presence"});
    const std::uint64_t watch = client.subscribe("sip:dave@client.test", ALICE, "presence");
    impp::SipStack client_sip(
        client, impp::SipConfig().add_listen("udp:127.0.0.1:0").add_account(alice));
    CHECK(wait_body(client, watch, true));

    CHECK_THROWS(client_sip.subscribe_list(1, "sip:buddies@example.test"),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(client_sip.subscribe_list(0, "sip:mine@client.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(client_sip.subscribe_list(0, "not a uri"), IMPP_ERR_INVALID_URI);
    CHECK_THROWS(client_sip.subscribe_list(0, "sip:buddies@example.test", "bogus"),
                 IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_THROWS(client_sip.unsubscribe_list(0, "sip:buddies@example.test", "presence.winfo"),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK(client_sip.unsubscribe_list(0, "sip:buddies@example.test"));
    CHECK(wait_body(client, watch, false));
    CHECK(!client_sip.unsubscribe_list(0, "sip:buddies@example.test"));
    client_sip.subscribe_list(0, "sip:buddies@example.test");
    CHECK(wait_body(client, watch, true));

    // A declared list of the client's own domain: the stack does not start.
    impp::SipAccount own = alice;
    own.lists = {impp::SipList{"sip:mine@client.test", "presence"}};
    CHECK_THROWS(
        impp::SipStack(client, impp::SipConfig().add_listen("udp:127.0.0.1:0").add_account(own)),
        IMPP_ERR_INVALID_ARGUMENT);
    impp::SipAccount winfo = alice;
    winfo.lists = {impp::SipList{"sip:buddies@example.test", "presence.winfo"}};
    CHECK_THROWS(impp::SipConfig().add_account(winfo), IMPP_ERR_INVALID_ARGUMENT);

    client_sip.stop();
    server_sip.stop();
}

// The library as a whole: versions, the ABI check, static names.
void test_library() {
    CHECK(impp::abi_version() == IMPP_ABI_VERSION);
    CHECK(IMPP_HPP_ABI_VERSION == IMPP_ABI_VERSION);
    impp::check_abi();  // the library this test runs with: no mismatch
    CHECK(impp::version() == std::to_string(IMPP_VERSION_MAJOR) + "." +
                                 std::to_string(IMPP_VERSION_MINOR) + "." +
                                 std::to_string(IMPP_VERSION_PATCH));

    // A library of another ABI is refused with both numbers, as an impp::Error too.
    try {
        impp::detail::check_abi_versions(IMPP_ABI_VERSION, IMPP_ABI_VERSION + 1);
        CHECK(false);
    } catch (const impp::AbiMismatch &e) {
        CHECK(e.status() == IMPP_ERR_UNSUPPORTED);
        CHECK(e.header_version() == IMPP_ABI_VERSION);
        CHECK(e.library_version() == IMPP_ABI_VERSION + 1);
        const std::string what = e.what();
        CHECK(what.find("ABI") != std::string::npos);
        CHECK(what.find(std::to_string(IMPP_ABI_VERSION + 1)) != std::string::npos);
    }
    CHECK_THROWS(impp::detail::check_abi_versions(1, 2), IMPP_ERR_UNSUPPORTED);

    CHECK(impp::name(IMPP_ERR_NETWORK) == "IMPP_ERR_NETWORK");
    CHECK(impp::name(IMPP_OK) == "IMPP_OK");
    CHECK(impp::name(IMPP_REASON_DEACTIVATED) == "deactivated");
    CHECK(impp::name(IMPP_REASON_NONE) == "none");
    CHECK(impp::name(IMPP_DELIVERY_STORED) == "stored");
    CHECK(impp::name(IMPP_FAILURE_UNREACHABLE) == "unreachable");
    CHECK(impp::Config::default_workers() >= 1);
}

// Tuple services (timestamps, capabilities, media types, duplex) and the person (activities,
// moods, user input, notes), built, read back, removed, and refused.
void test_presence_person_and_services() {
    impp::Presence p(ALICE);
    CHECK(p.add_tuple("im", IMPP_BASIC_OPEN) == 0);
    p.set_tuple_timestamp(0, std::string("2026-11-24T14:45:00Z"));
    p.set_tuple_capability(0, IMPP_CAP_MESSAGE, true);
    p.set_tuple_capability(0, IMPP_CAP_AUDIO, false);
    p.add_tuple_media_type(0, "text/plain");
    p.add_tuple_media_type(0, "message/cpim");
    p.add_tuple_duplex(0, "full", true);
    p.add_tuple_duplex(0, "half", false);
    p.set_tuple_contact(0, std::string("sip:alice@192.0.2.1"));
    p.add_activity("meeting");
    p.add_other_activity("gardening");
    p.add_mood("happy");
    p.set_user_input(IMPP_USER_INPUT_IDLE, std::string("2026-11-24T14:00:00Z"));
    p.add_person_note("In a meeting until 3", std::string("en"));
    p.add_person_note("Bis 15 Uhr", std::string("de"));

    impp::Presence q = impp::Presence::parse(p.to_xml());
    CHECK(q.tuple_timestamp(0) == std::optional<std::string>("2026-11-24T14:45:00Z"));
    CHECK(q.tuple_capability(0, IMPP_CAP_MESSAGE) == std::optional<bool>(true));
    CHECK(q.tuple_capability(0, IMPP_CAP_AUDIO) == std::optional<bool>(false));
    CHECK(!q.tuple_capability(0, IMPP_CAP_VIDEO));
    CHECK(q.tuple_media_types(0) == (std::vector<std::string>{"text/plain", "message/cpim"}));
    CHECK(q.tuple_duplex(0, "full") == std::optional<bool>(true));
    CHECK(q.tuple_duplex(0, "half") == std::optional<bool>(false));
    CHECK(!q.tuple_duplex(0, "send-only"));
    std::optional<impp::Contact> contact = q.tuple_contact(0);
    CHECK(contact && contact->uri == "sip:alice@192.0.2.1" && !contact->priority);
    CHECK(q.activities() == (std::vector<impp::Activity>{{"meeting", std::nullopt},
                                                         {"other", std::string("gardening")}}));
    CHECK(q.moods() == std::vector<std::string>{"happy"});
    impp::UserInput input = q.user_input();
    CHECK(input.state == IMPP_USER_INPUT_IDLE);
    CHECK(input.last_input == std::optional<std::string>("2026-11-24T14:00:00Z"));
    CHECK(q.person_notes() ==
          (std::vector<impp::Note>{{"In a meeting until 3", std::string("en")},
                                   {"Bis 15 Uhr", std::string("de")}}));

    // Saying nothing again.
    q.set_tuple_capability(0, IMPP_CAP_MESSAGE, std::nullopt);
    CHECK(!q.tuple_capability(0, IMPP_CAP_MESSAGE));
    q.set_tuple_timestamp(0, std::nullopt);
    CHECK(!q.tuple_timestamp(0));
    q.set_tuple_contact(0, std::nullopt);
    CHECK(!q.tuple_contact(0));
    q.clear_activities();
    CHECK(q.activities().empty());
    q.set_user_input(IMPP_USER_INPUT_UNKNOWN);
    CHECK(q.user_input().state == IMPP_USER_INPUT_UNKNOWN && !q.user_input().last_input);
    CHECK(q.moods().size() == 1 && q.person_notes().size() == 2);

    // Bad input throws; nothing changes.
    CHECK_THROWS(p.set_tuple_timestamp(0, std::string("yesterday")), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.add_tuple_media_type(0, "plain"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.add_tuple_duplex(0, "quarter", true), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.tuple_duplex(0, "quarter"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.set_tuple_capability(5, IMPP_CAP_AUDIO, true), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(p.tuple_capability(5, IMPP_CAP_AUDIO), IMPP_ERR_NOT_FOUND);
    CHECK_THROWS(p.set_tuple_contact(0, std::string("sip:alice@192.0.2.1"), 1.5),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.add_mood("hangry"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.add_other_activity(""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(p.set_user_input(IMPP_USER_INPUT_ACTIVE, std::string("noon")),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK(p.tuple_media_types(0).size() == 2 && p.moods().size() == 1);
    CHECK(p.user_input().state == IMPP_USER_INPUT_IDLE);

    // Explicit limits.
    const std::string xml = p.to_xml();
    CHECK(impp::Presence::parse(xml, xml.size(), 32).tuple_count() == 1);
    CHECK_THROWS(impp::Presence::parse(xml, xml.size() - 1, 32), IMPP_ERR_TOO_LARGE);
    CHECK_THROWS(impp::Presence::parse(xml, 65536, 2), IMPP_ERR_TOO_LARGE);
}

const std::string ISCOMPOSING =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<ic:isComposing xmlns:ic='urn:ietf:params:xml:ns:im-iscomposing'>\n"
    "  <ic:state>idle</ic:state>\n"
    "  <ic:lastactive>2003-01-27T10:43:00Z</ic:lastactive>\n"
    "  <ic:contenttype>audio</ic:contenttype>\n"
    "</ic:isComposing>\n";

// Is-composing documents: read, built, refused, and carried as a message by the engine.
void test_iscomposing() {
    impp::IsComposing c = impp::IsComposing::parse(ISCOMPOSING);
    CHECK(c.state() == IMPP_COMPOSING_STATE_IDLE);
    CHECK(c.last_active() == std::optional<std::string>("2003-01-27T10:43:00Z"));
    CHECK(c.content_type() == std::optional<std::string>("audio"));
    CHECK(!c.refresh() && !c.active_expires_after());
    impp::IsComposing back = impp::IsComposing::parse(c.to_xml());
    CHECK(back.content_type() == std::optional<std::string>("audio"));

    impp::IsComposing typing(IMPP_COMPOSING_STATE_ACTIVE);
    CHECK(!typing.content_type() && !typing.last_active() && !typing.refresh());
    CHECK(typing.active_expires_after() == std::optional<std::chrono::seconds>(120s));
    typing.set_refresh(90s);
    typing.set_content_type(std::string("text/plain"));
    typing.set_last_active(std::string("2026-11-24T14:45:00Z"));
    CHECK(typing.refresh() == std::optional<std::chrono::seconds>(90s));
    CHECK(typing.active_expires_after() == std::optional<std::chrono::seconds>(90s));
    impp::IsComposing parsed = impp::IsComposing::parse(typing.to_xml());
    CHECK(parsed.state() == IMPP_COMPOSING_STATE_ACTIVE);
    CHECK(parsed.content_type() == std::optional<std::string>("text/plain"));
    CHECK(parsed.last_active() == std::optional<std::string>("2026-11-24T14:45:00Z"));
    parsed.set_state(IMPP_COMPOSING_STATE_IDLE);
    CHECK(!parsed.active_expires_after());
    parsed.set_refresh(std::nullopt);
    parsed.set_content_type(std::nullopt);
    parsed.set_last_active(std::nullopt);
    CHECK(!parsed.refresh() && !parsed.content_type() && !parsed.last_active());

    CHECK_THROWS(typing.set_refresh(0s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(typing.set_last_active(std::string("yesterday")), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(typing.set_content_type(std::string(" text/plain")), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(typing.refresh() == std::optional<std::chrono::seconds>(90s));
    CHECK_THROWS(impp::IsComposing::parse("<isComposing"), IMPP_ERR_MALFORMED);
    CHECK_THROWS(impp::IsComposing::parse(
                     "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>"
                     "<state>typing</state></isComposing>"),
                 IMPP_ERR_MALFORMED);
    impp::IsComposing moved = std::move(c);
    CHECK(c.get() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(moved.state() == IMPP_COMPOSING_STATE_IDLE);

    // Through the engine: a message of the is-composing type, read back from the event.
    impp::Engine engine(
        impp::Config().workers(1).default_policy(IMPP_AUTH_ALLOW).add_domain("example.test"));
    engine.login(BOB, "phone");
    const std::string mime(impp::IsComposing::mime_type);
    engine.send_message(ALICE, BOB, typing.to_xml(), mime);
    engine.send_message(ALICE, BOB, typing.to_xml(), "Application/IM-isComposing+XML; x=y");
    engine.send_message(ALICE, BOB, "just text");
    int composing = 0, other = 0;
    for (const impp::Event &e : take_all(engine)) {
        if (e.kind() != IMPP_EVENT_MESSAGE) {
            CHECK(!e.is_composing());
            continue;
        }
        std::optional<impp::IsComposing> seen = e.is_composing();
        if (seen) {
            composing++;
            CHECK(seen->state() == IMPP_COMPOSING_STATE_ACTIVE);
            CHECK(seen->refresh() == std::optional<std::chrono::seconds>(90s));
        } else {
            other++;
            CHECK(e.message_body() == std::optional<std::string_view>("just text"));
        }
    }
    CHECK(composing == 2 && other == 1);
    // Offline, an indication is never stored: it fails at once.
    CHECK(engine.logout(BOB, "phone"));
    engine.send_message(ALICE, BOB, typing.to_xml(), mime);
    std::vector<impp::Event> events = take_all(engine);
    CHECK(events.size() == 1);
    if (events.size() == 1) {
        CHECK(events[0].failure_reason() == IMPP_FAILURE_OFFLINE);
    }
}

// What the log callback saw.
struct LogLines {
    std::mutex lock;
    std::vector<std::string> lines;  // "<level> <target>: <message>"

    std::size_t count(impp_log_level level, const std::string &target,
                      const std::string &text) {
        std::lock_guard<std::mutex> guard(lock);
        std::size_t n = 0;
        const std::string prefix = std::to_string(static_cast<int>(level)) + " " + target + ": ";
        for (const std::string &line : lines) {
            if (line.rfind(prefix, 0) == 0 && line.find(text) != std::string::npos) {
                n++;
            }
        }
        return n;
    }
};

void test_logging() {
    auto log = std::make_shared<LogLines>();
    auto token = std::make_shared<int>(0);  // its use count tells whether the callback lives
    impp::logging::set_callback(
        [log, token](impp_log_level level, std::string_view target, std::string_view message) {
            std::lock_guard<std::mutex> guard(log->lock);
            log->lines.push_back(std::to_string(static_cast<int>(level)) + " " +
                                 std::string(target) + ": " + std::string(message));
        },
        IMPP_LOG_INFO);
    CHECK(token.use_count() == 2);
    {
        impp::Engine engine(
            impp::Config().workers(2).default_policy(IMPP_AUTH_ALLOW).add_domain("example.test"));
        CHECK(log->count(IMPP_LOG_INFO, "impp::engine", "engine started") == 1);
        // Debug lines are below the level: dropped; raised, they come.
        engine.subscribe(BOB, ALICE);
        take_all(engine);
        CHECK(log->count(IMPP_LOG_DEBUG, "impp::engine::shard", "") == 0);
        impp::logging::set_level(IMPP_LOG_DEBUG);
        engine.subscribe(CAROL, ALICE);
        take_all(engine);
        CHECK(log->count(IMPP_LOG_DEBUG, "impp::engine::shard", "authorized: allow") == 1);
        impp::logging::set_level(IMPP_LOG_INFO);
    }
    CHECK(log->count(IMPP_LOG_INFO, "impp::engine", "engine stopped") == 1);

    // Bad levels are refused and change nothing; a refused callback is destroyed at once.
    CHECK_THROWS(impp::logging::set_level(static_cast<impp_log_level>(6)),
                 IMPP_ERR_INVALID_ARGUMENT);
    auto refused = std::make_shared<int>(0);
    CHECK_THROWS(impp::logging::set_callback([refused](impp_log_level, std::string_view,
                                                       std::string_view) {},
                                             static_cast<impp_log_level>(0)),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK(refused.use_count() == 1);
    CHECK(token.use_count() == 2);

    // A callback that throws: reported on stderr and dropped. Replacing the first one
    // destroyed it (and what it captured) after its last call.
    std::atomic<int> thrown{0};
    impp::logging::set_callback(
        [&thrown](impp_log_level, std::string_view, std::string_view) {
            thrown++;
            throw std::runtime_error("a bug in the application's log callback");
        },
        IMPP_LOG_INFO);
    CHECK(token.use_count() == 1);
    { impp::Engine engine(impp::Config().workers(1)); }
    CHECK(thrown >= 2);

    // Back to standard error; nothing of ours is held any more.
    impp::logging::clear_callback();
    { impp::Engine engine(impp::Config().workers(1)); }
    const int after = thrown;
    { impp::Engine engine(impp::Config().workers(1)); }
    CHECK(thrown == after);
}

// The user directory, and durable state in a store file that outlives an engine.
void test_users_and_store() {
    namespace fs = std::filesystem;
    const fs::path path =
        fs::temp_directory_path() /
        ("impp_wrapper_test_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + ".sqlite");
    auto config = [&] {
        return impp::Config().workers(1).add_domain("example.test").store_path(path.string());
    };
    {
        impp::Engine engine(config());
        CHECK(!engine.has_user(BOB));
        engine.set_user_password(BOB, "s3cret");
        CHECK(engine.has_user(BOB));
        engine.set_rule(ALICE, impp::Rule::for_watcher(CAROL, IMPP_AUTH_BLOCK));
    }
    {
        impp::Engine engine(config());
        CHECK(engine.has_user(BOB));  // kept in the file
        CHECK(engine.rules(ALICE).size() == 1);
        CHECK(engine.remove_user(BOB));
        CHECK(!engine.remove_user(BOB));
        CHECK(!engine.has_user(BOB));
        CHECK_THROWS(engine.has_user("not a uri"), IMPP_ERR_INVALID_URI);
        CHECK_THROWS(engine.set_user_password("sip:example.test", "pw"),
                     IMPP_ERR_INVALID_ARGUMENT);
        CHECK_THROWS(engine.remove_user("not a uri"), IMPP_ERR_INVALID_URI);
    }
    for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
        std::error_code ignored;
        fs::remove(path.string() + suffix, ignored);
    }
    CHECK_THROWS(impp::Config().store_path(""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(impp::Config().store_path("/nonexistent-dir/impp.sqlite"), IMPP_ERR_STORAGE);
}

// Compile-time shape of the wrapper: one ownership style, views apart from owners, and
// const only on what changes nothing.
template <typename T>
constexpr bool move_only_owner() {
    return !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
           std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T>;
}
static_assert(move_only_owner<impp::Presence>() && move_only_owner<impp::Watcherinfo>() &&
              move_only_owner<impp::DialogInfo>() && move_only_owner<impp::MessageSummary>() &&
              move_only_owner<impp::IsComposing>() && move_only_owner<impp::FilterSet>() &&
              move_only_owner<impp::Config>() && move_only_owner<impp::Event>() &&
              move_only_owner<impp::Engine>() && move_only_owner<impp::SipConfig>() &&
              move_only_owner<impp::SipStack>() && move_only_owner<impp::ResourceList>());
static_assert(!std::is_base_of_v<impp::EventView, impp::Event> &&
              !std::is_base_of_v<impp::Event, impp::EventView>);
static_assert(std::is_convertible_v<const impp::Event &, impp::EventView>);
static_assert(std::is_trivially_copyable_v<impp::EventView>);

template <typename E, typename = void>
struct can_publish : std::false_type {};
template <typename E>
struct can_publish<E, std::void_t<decltype(std::declval<E &>().publish(
                          std::string(), std::string(), std::string_view()))>> : std::true_type {};
template <typename E, typename = void>
struct can_take_events : std::false_type {};
template <typename E>
struct can_take_events<E, std::void_t<decltype(std::declval<E &>().next_event())>>
    : std::true_type {};
template <typename E, typename = void>
struct can_read_stats : std::false_type {};
template <typename E>
struct can_read_stats<E, std::void_t<decltype(std::declval<E &>().stat(IMPP_STAT_ENDPOINTS),
                                              std::declval<E &>().has_user(std::string()),
                                              std::declval<E &>().rules(std::string()))>>
    : std::true_type {};
static_assert(can_publish<impp::Engine>::value && !can_publish<const impp::Engine>::value);
static_assert(can_take_events<impp::Engine>::value && !can_take_events<const impp::Engine>::value);
static_assert(can_read_stats<const impp::Engine>::value);

}  // namespace

// The option structs read back what a C options handle holds.
void test_options_from_c_handles() {
    impp_subscribe_options *so = nullptr;
    CHECK(impp_subscribe_options_new(&so) == IMPP_OK);
    CHECK(impp_subscribe_options_set_expires(so, 120) == IMPP_OK);
    CHECK(impp_subscribe_options_set_fetch(so, true) == IMPP_OK);
    CHECK(impp_subscribe_options_set_min_interval_ms(so, 250) == IMPP_OK);
    const impp::SubscribeOptions sub = impp::SubscribeOptions::from(so);
    CHECK(sub.expires == 120 && sub.fetch && sub.min_interval.count() == 250 && !sub.filter);
    impp_subscribe_options_free(so);
    CHECK(impp::SubscribeOptions::from(nullptr).expires == IMPP_EXPIRES_DEFAULT);

    impp_message_options *mo = nullptr;
    CHECK(impp_message_options_new(&mo) == IMPP_OK);
    CHECK(impp_message_options_set_endpoint(mo, "phone") == IMPP_OK);
    const impp::MessageOptions msg = impp::MessageOptions::from(mo);
    CHECK(msg.endpoint == std::optional<std::string>("phone") && !msg.in_reply_to);
    impp_message_options_free(mo);

    impp_account *acc = nullptr;
    CHECK(impp_account_new("sip:alice@b.example", "pw", "udp:127.0.0.1:5070", &acc) == IMPP_OK);
    CHECK(impp_account_set_expires(acc, 600) == IMPP_OK);
    const impp::SipAccount account = impp::SipAccount::from(acc, "pw");
    CHECK(account.aor == "sip:alice@b.example" && account.expires == 600);
    CHECK(account.registrar.find("127.0.0.1:5070") != std::string::npos);
    CHECK(!account.outbound_proxy && account.password == "pw");
    CHECK(account.lists.empty());
    CHECK(impp_account_add_list(acc, "sip:blf@b.example", "dialog") == IMPP_OK);
    const impp::SipAccount with_list = impp::SipAccount::from(acc, "pw");
    CHECK(with_list.lists.size() == 1 && with_list.lists[0].uri == "sip:blf@b.example" &&
          with_list.lists[0].package == "dialog");
    impp_account_free(acc);
}

// Resource lists: built with chaining setters (a refused value throws and changes nothing),
// set on an engine, read back, expanded through references, refused when they would close a
// cycle, removed; a list from a C snapshot copied.
void test_resource_lists() {
    impp::Engine engine(impp::Config().workers(2).manual_clock().add_domain("example.test"));
    const std::string sales = "sip:sales-blf@example.test";
    const std::string support = "sip:support-blf@example.test";

    impp::ResourceList list = impp::ResourceList(sales)
                                  .display_name("Sales")
                                  .add_entry(ALICE, "Alice")
                                  .add_reference(support)
                                  .add_package("dialog");
    CHECK(list.uri() == sales);
    CHECK(list.display_name() == std::optional<std::string>("Sales"));
    CHECK(list.packages() == std::vector<std::string>{"dialog"});
    list.add(impp::ListEntry::resource(DAVE));
    CHECK_THROWS(list.add_entry(ALICE), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(list.add(impp::ListEntry::reference(sales)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(list.add_package("weather"), IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_THROWS(impp::ResourceList("no uri"), IMPP_ERR_INVALID_URI);
    const std::vector<impp::ListEntry> entries = {
        impp::ListEntry::resource(ALICE, "Alice"),
        impp::ListEntry::reference(support),
        impp::ListEntry::resource(DAVE),
    };
    CHECK(list.entries() == entries);
    CHECK(list.entry_count() == 3);

    engine.set_list(list);
    const impp::ResourceList copy = list.clone();
    list.display_name(std::nullopt);  // the engine kept its own copy
    CHECK(!list.display_name() && copy.display_name());

    std::optional<impp::ResourceList> got = engine.resource_list(sales);
    CHECK(got && got->entries() == entries && got->display_name() == copy.display_name());
    CHECK(!engine.resource_list(support));

    // The reference expands to nothing until support exists.
    std::vector<impp::ListEntry> expanded = engine.expand_list(sales);
    CHECK(expanded.size() == 2);
    engine.set_list(impp::ResourceList(support).add_entry(BOB).add_entry(ALICE, "Other name"));
    expanded = engine.expand_list(sales);
    CHECK(expanded.size() == 3);
    CHECK(expanded[0] == impp::ListEntry::resource(ALICE, "Alice"));
    CHECK(expanded[1] == impp::ListEntry::resource(BOB));
    CHECK(expanded[2] == impp::ListEntry::resource(DAVE));
    CHECK_THROWS(engine.expand_list("sip:nothing@example.test"), IMPP_ERR_NOT_FOUND);

    // A cycle: refused, nothing changed.
    CHECK_THROWS(engine.set_list(impp::ResourceList(support).add_reference(sales)),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_THROWS(engine.set_list(impp::ResourceList("sip:x@other.test")), IMPP_ERR_FORBIDDEN);
    const std::vector<impp::ResourceList> lists = engine.resource_lists();
    CHECK(lists.size() == 2 && lists[0].uri() == sales && lists[1].uri() == support);
    CHECK(lists[1].entry_count() == 2);

    CHECK(engine.remove_list(support));
    CHECK(!engine.remove_list(support));
    CHECK(engine.resource_lists().size() == 1);
    CHECK(engine.expand_list(sales).size() == 2);
}

int main() {
    test_library();
    test_options_from_c_handles();
    test_presence();
    test_presence_person_and_services();
    test_config();
    test_engine_polling();
    test_callbacks();
    test_watcherinfo();
    test_dialog_info();
    test_message_summary();
    test_filter_set();
    test_iscomposing();
    test_documents_through_engine();
    test_messaging();
    test_users_and_store();
    test_resource_lists();
    test_logging();
    test_sip_stack();
    test_sip_account();
    test_sip_list_client();
    return check_report("wrapper_test");
}
