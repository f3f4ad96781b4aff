/* The engine API as a C program uses it, under ASan/UBSan (and valgrind): a whole
 * publish/subscribe/authorize flow by polling, the readiness descriptor, callback mode and
 * its threading contract, shutdown with work in flight, and bad input everywhere. */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "impp.h"
#include "check.h"
#include "events.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define CAROL "sip:carol@other.test"
#define DAVE "sip:dave@example.test"
#define EVE "sip:eve@example.test"
#define MALLORY "sip:mallory@blocked.test"

/* How long a test waits for something another thread does before calling it a failure. */
#define WAIT_MS 5000

static const char DESK_OPEN[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>open</basic></status><note>At my desk</note></tuple>"
    "</presence>";

static const char DESK_CLOSED[] =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>closed</basic></status></tuple></presence>";

static const char PHONE_OPEN[] =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='phone'><status><basic>open</basic></status></tuple></presence>";

/* A failure must come with a message. */
#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

/* Subscribes with an expiry in seconds (0: the configured default), through options. */
static impp_status subscribe_for(impp_engine *e, const char *watcher, const char *presentity,
                                 uint32_t expires, uint64_t *id_out) {
    impp_subscribe_options *options = NULL;
    impp_status s = impp_subscribe_options_new(&options);
    if (s == IMPP_OK) s = impp_subscribe_options_set_expires(options, expires);
    if (s == IMPP_OK) s = impp_engine_subscribe(e, watcher, presentity, "presence", options, id_out);
    impp_subscribe_options_free(options);
    return s;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static struct timespec deadline_in(long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* An engine with two workers and a manual clock; `policy` for watchers no rule mentions. */
static impp_engine *start_engine(int policy) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, policy));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* Checks kind, subscription, state and reason of an event. */
#define CHECK_EVENT(ev, kind, sub, state, reason)                                          \
    do {                                                                                   \
        const impp_event *check_ev_ = (ev);                                                \
        impp_reason check_r_ = (impp_reason)99;                                            \
        impp_subscription_state check_st_ = impp_event_state(check_ev_, &check_r_);        \
        if (check_ev_ == NULL || impp_event_kind(check_ev_) != (kind) ||               \
            impp_event_subscription(check_ev_) != (sub) || check_st_ != (state) ||         \
            check_r_ != (reason)) {                                                        \
            fprintf(stderr,                                                                \
                    "%s:%d: event %s is kind %d sub %llu state %d reason %s, expected "    \
                    "kind %d sub %llu state %d reason %s\n",                               \
                    __FILE__, __LINE__, #ev, (int)impp_event_kind(check_ev_),          \
                    (unsigned long long)impp_event_subscription(check_ev_),                \
                    (int)check_st_, impp_reason_name((int)check_r_), (int)(kind),          \
                    (unsigned long long)(sub), (int)(state), impp_reason_name(reason));    \
            check_failures++;                                                              \
        }                                                                                  \
    } while (0)

/* The tuple ids of a notification's presence document, joined by spaces in document order
 * into `buf`; returns the tuple count (or -1 without a presence document). */
static int tuples_of(const impp_event *ev, char *buf, size_t size) {
    impp_presence *p = NULL;
    buf[0] = '\0';
    if (impp_event_presence(ev, &p) != IMPP_OK) {
        return -1;
    }
    size_t n = impp_presence_tuple_count(p);
    for (size_t i = 0; i < n; i++) {
        const char *id = NULL;
        CHECK_OK(impp_presence_tuple_id(p, i, &id));
        if (i > 0) {
            strncat(buf, " ", size - strlen(buf) - 1);
        }
        strncat(buf, id ? id : "?", size - strlen(buf) - 1);
    }
    impp_presence_free(p);
    return (int)n;
}

static bool has_tuple(const impp_event *ev, const char *id, impp_basic basic) {
    impp_presence *p = NULL;
    if (impp_event_presence(ev, &p) != IMPP_OK) {
        return false;
    }
    bool found = false;
    for (size_t i = 0; i < impp_presence_tuple_count(p); i++) {
        const char *tid = NULL;
        impp_basic b = IMPP_BASIC_UNSET;
        CHECK_OK(impp_presence_tuple_id(p, i, &tid));
        CHECK_OK(impp_presence_tuple_basic(p, i, &b));
        found = found || (strcmp(tid, id) == 0 && b == basic);
    }
    impp_presence_free(p);
    return found;
}

static void check_no_document(const impp_event *ev) {
    const char *body = (const char *)(uintptr_t)0x1;
    size_t len = 12345;
    impp_presence *p = (impp_presence *)(uintptr_t)0x1;
    CHECK(!impp_event_has_document(ev));
    CHECK_FAILS(impp_event_body(ev, &body, &len), IMPP_ERR_NOT_FOUND);
    CHECK(body == (const char *)(uintptr_t)0x1 && len == 12345);
    CHECK_FAILS(impp_event_presence(ev, &p), IMPP_ERR_NOT_FOUND);
    CHECK(p == (impp_presence *)(uintptr_t)0x1);
}

/* ------------------------------------------------------------------------------------- */

static void test_full_flow(void) {
    impp_engine *e = start_engine(IMPP_AUTH_CONFIRM);
    impp_event *ev[32];
    size_t n;

    char *desk_tag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, strlen(DESK_OPEN), 0,
                                 &desk_tag));
    CHECK(desk_tag != NULL && desk_tag[0] != '\0');
    CHECK(impp_last_error() == NULL);

    /* Bob asks; the policy is confirm: the subscription waits, the presentity is asked. */
    uint64_t bob = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &bob));
    CHECK(bob != 0);
    n = take_all(e, ev, 32);
    CHECK(n == 3);
    if (n == 3) {
        CHECK_EVENT(ev[0], IMPP_EVENT_SUBSCRIPTION_STATE, bob, IMPP_SUBSCRIPTION_PENDING,
                    IMPP_REASON_NONE);
        CHECK_EVENT(ev[1], IMPP_EVENT_AUTHORIZATION_REQUESTED, bob, IMPP_SUBSCRIPTION_NONE,
                    IMPP_REASON_NONE);
        CHECK_STR(impp_event_watcher(ev[1]), BOB);
        CHECK_STR(impp_event_presentity(ev[1]), ALICE);
        CHECK_STR(impp_event_package(ev[1]), "presence");
        CHECK(impp_event_etag(ev[1]) == NULL);
        check_no_document(ev[1]);
        /* The watcher is told "pending", without a body. */
        CHECK_EVENT(ev[2], IMPP_EVENT_NOTIFICATION, bob, IMPP_SUBSCRIPTION_PENDING,
                    IMPP_REASON_NONE);
        CHECK_STR(impp_event_watcher(ev[2]), BOB);
        check_no_document(ev[2]);
    }
    free_all(ev, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_PENDING) == 1);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_ACTIVE) == 0);

    impp_subscription_state st = IMPP_SUBSCRIPTION_NONE;
    uint32_t expires_in = 0;
    impp_auth_action auth = IMPP_AUTH_ALLOW;
    CHECK_OK(impp_engine_subscription_state(e, bob, &st, &expires_in, &auth));
    CHECK(st == IMPP_SUBSCRIPTION_PENDING && expires_in == 3600 && auth == IMPP_AUTH_CONFIRM);
    CHECK_OK(impp_engine_subscription_state(e, bob, &st, NULL, NULL));

    /* Allowed: active, with the published document. */
    CHECK_OK(impp_engine_authorize(e, bob, IMPP_AUTH_ALLOW));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[0], IMPP_EVENT_SUBSCRIPTION_STATE, bob, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, bob, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK(impp_event_has_document(ev[1]));
        const char *body = NULL, *again = NULL;
        size_t len = 0;
        CHECK_OK(impp_event_body(ev[1], &body, &len));
        CHECK(body != NULL && strlen(body) == len);
        CHECK(body && strstr(body, "urn:ietf:params:xml:ns:pidf") != NULL);
        CHECK(body && strstr(body, "At my desk") != NULL);
        /* Borrowed from the event: the same string on every call; len is optional. */
        CHECK_OK(impp_event_body(ev[1], &again, NULL));
        CHECK(again == body);
        char ids[128];
        CHECK(tuples_of(ev[1], ids, sizeof ids) == 1);
        CHECK_STR(ids, "desk");
        CHECK(has_tuple(ev[1], "desk", IMPP_BASIC_OPEN));
    }
    free_all(ev, n);
    CHECK_OK(impp_engine_subscription_state(e, bob, &st, NULL, &auth));
    CHECK(st == IMPP_SUBSCRIPTION_ACTIVE && auth == IMPP_AUTH_ALLOW);

    /* A second device publishes a handle; the watcher sees both, composed. */
    impp_presence *phone = NULL;
    CHECK_OK(impp_presence_new(ALICE, &phone));
    CHECK_OK(impp_presence_add_tuple(phone, "phone", IMPP_BASIC_OPEN, NULL));
    CHECK_OK(impp_presence_tuple_set_contact(phone, 0, "sip:alice@192.0.2.7", 0.5));
    char *phone_tag = NULL;
    CHECK_OK(impp_engine_publish_presence(e, ALICE, phone, 0, &phone_tag));
    impp_presence_free(phone); /* only read by the engine */
    CHECK(phone_tag != NULL && strcmp(phone_tag, desk_tag) != 0);
    n = take_all(e, ev, 32);
    CHECK(n == 1);
    if (n == 1) {
        CHECK_EVENT(ev[0], IMPP_EVENT_NOTIFICATION, bob, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK(has_tuple(ev[0], "desk", IMPP_BASIC_OPEN));
        CHECK(has_tuple(ev[0], "phone", IMPP_BASIC_OPEN));
    }
    free_all(ev, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 2);

    /* Refresh: a new tag; the old one stops working, and the output is left alone. */
    char *desk_tag2 = NULL;
    CHECK_OK(impp_engine_refresh_publication(e, desk_tag, 120, &desk_tag2));
    CHECK(desk_tag2 != NULL && strcmp(desk_tag2, desk_tag) != 0);
    char *untouched = (char *)(uintptr_t)0x1;
    CHECK_FAILS(impp_engine_refresh_publication(e, desk_tag, 120, &untouched),
                IMPP_ERR_UNKNOWN_ENTITY_TAG);
    CHECK(untouched == (char *)(uintptr_t)0x1);
    CHECK_FAILS(impp_engine_refresh_publication(e, desk_tag2, 5, &untouched),
                IMPP_ERR_INTERVAL_TOO_BRIEF);
    /* 0 is the configured default (3600 s), never a removal: the publication lives on. */
    char *desk_tag_default = NULL;
    CHECK_OK(impp_engine_refresh_publication(e, desk_tag2, IMPP_EXPIRES_DEFAULT,
                                             &desk_tag_default));
    CHECK(desk_tag_default != NULL && desk_tag_default[0] != '\0');
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 2);
    impp_string_free(desk_tag2);
    desk_tag2 = NULL;
    CHECK_OK(impp_engine_refresh_publication(e, desk_tag_default, 120, &desk_tag2));
    impp_string_free(desk_tag_default);
    CHECK(drain(e) == 0); /* a refresh changes no document */

    /* Modify: the document changes, and the tag again. */
    char *desk_tag3 = NULL;
    CHECK_OK(impp_engine_modify_publication(e, desk_tag2, "presence", DESK_CLOSED,
                                            strlen(DESK_CLOSED), &desk_tag3));
    CHECK(desk_tag3 != NULL && strcmp(desk_tag3, desk_tag2) != 0);
    CHECK_FAILS(impp_engine_modify_publication(e, desk_tag2, "presence", DESK_CLOSED,
                                               strlen(DESK_CLOSED), &untouched),
                IMPP_ERR_UNKNOWN_ENTITY_TAG);
    n = take_all(e, ev, 32);
    CHECK(n == 1);
    if (n == 1) {
        CHECK(has_tuple(ev[0], "desk", IMPP_BASIC_CLOSED));
        CHECK(has_tuple(ev[0], "phone", IMPP_BASIC_OPEN));
    }
    free_all(ev, n);

    /* Remove: once. */
    CHECK_OK(impp_engine_remove_publication(e, phone_tag));
    CHECK_FAILS(impp_engine_remove_publication(e, phone_tag), IMPP_ERR_UNKNOWN_ENTITY_TAG);
    CHECK_FAILS(impp_engine_remove_publication(e, "never-issued"), IMPP_ERR_UNKNOWN_ENTITY_TAG);
    n = take_all(e, ev, 32);
    CHECK(n == 1);
    if (n == 1) {
        char ids[128];
        CHECK(tuples_of(ev[0], ids, sizeof ids) == 1);
        CHECK_STR(ids, "desk");
    }
    free_all(ev, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 1);

    /* Expiry: the refreshed publication lives 120 s. Nothing at 119 s, gone at 121 s. */
    CHECK_OK(impp_engine_advance_clock(e, 119000));
    CHECK(drain(e) == 0);
    CHECK_OK(impp_engine_advance_clock(e, 2000));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        const impp_event *expired =
            impp_event_kind(ev[0]) == IMPP_EVENT_PUBLICATION_EXPIRED ? ev[0] : ev[1];
        const impp_event *note = expired == ev[0] ? ev[1] : ev[0];
        CHECK_EVENT(expired, IMPP_EVENT_PUBLICATION_EXPIRED, 0, IMPP_SUBSCRIPTION_NONE,
                    IMPP_REASON_NONE);
        CHECK_STR(impp_event_etag(expired), desk_tag3);
        CHECK_STR(impp_event_presentity(expired), ALICE);
        CHECK_STR(impp_event_package(expired), "presence");
        CHECK(impp_event_watcher(expired) == NULL);
        check_no_document(expired);
        CHECK_EVENT(note, IMPP_EVENT_NOTIFICATION, bob, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        char ids[128];
        CHECK(tuples_of(note, ids, sizeof ids) == 0);
    }
    free_all(ev, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 0);
    CHECK_FAILS(impp_engine_refresh_publication(e, desk_tag3, 120, &untouched),
                IMPP_ERR_UNKNOWN_ENTITY_TAG);

    /* Subscription timeout: 0 refreshes to the configured default (it never ends one);
     * then shortened to the minimum, and not refreshed. */
    CHECK_OK(impp_engine_refresh_subscription(e, bob, IMPP_EXPIRES_DEFAULT));
    CHECK_OK(impp_engine_subscription_state(e, bob, &st, &expires_in, NULL));
    CHECK(st == IMPP_SUBSCRIPTION_ACTIVE && expires_in == 3600);
    CHECK_FAILS(impp_engine_refresh_subscription(e, bob, 10), IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK_OK(impp_engine_refresh_subscription(e, bob, 60));
    CHECK_OK(impp_engine_subscription_state(e, bob, &st, &expires_in, NULL));
    CHECK(st == IMPP_SUBSCRIPTION_ACTIVE && expires_in == 60);
    CHECK_OK(impp_engine_advance_clock(e, 61000));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[0], IMPP_EVENT_SUBSCRIPTION_STATE, bob, IMPP_SUBSCRIPTION_TERMINATED,
                    IMPP_REASON_TIMEOUT);
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, bob, IMPP_SUBSCRIPTION_TERMINATED,
                    IMPP_REASON_TIMEOUT);
        check_no_document(ev[1]);
    }
    free_all(ev, n);
    CHECK_FAILS(impp_engine_subscription_state(e, bob, &st, NULL, NULL), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_engine_unsubscribe(e, bob), IMPP_ERR_NOT_FOUND);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_ACTIVE) == 0);

    /* A fetch (an option: an expiry of 0 is the default) gets one notification and ends by
     * itself. */
    uint64_t fetch = 0;
    CHECK_OK(impp_engine_set_rule(e, ALICE, DAVE, NULL, IMPP_AUTH_ALLOW));
    impp_subscribe_options *fetch_once = NULL;
    CHECK_OK(impp_subscribe_options_new(&fetch_once));
    CHECK_OK(impp_subscribe_options_set_fetch(fetch_once, true));
    CHECK_OK(impp_engine_subscribe(e, DAVE, ALICE, "presence", fetch_once, &fetch));
    impp_subscribe_options_free(fetch_once);
    n = take_all(e, ev, 32);
    CHECK(n == 4);
    if (n == 4) {
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, fetch, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK_EVENT(ev[3], IMPP_EVENT_NOTIFICATION, fetch, IMPP_SUBSCRIPTION_TERMINATED,
                    IMPP_REASON_TIMEOUT);
    }
    free_all(ev, n);
    CHECK_FAILS(impp_engine_subscription_state(e, fetch, &st, NULL, NULL), IMPP_ERR_NOT_FOUND);

    /* A notifier-side termination carries its reason. */
    uint64_t dave = 0;
    CHECK_OK(subscribe_for(e, DAVE, ALICE, 600, &dave));
    CHECK(drain(e) == 2);
    CHECK_OK(impp_engine_terminate_subscription(e, dave, IMPP_REASON_PROBATION));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, dave, IMPP_SUBSCRIPTION_TERMINATED,
                    IMPP_REASON_PROBATION);
    }
    free_all(ev, n);
    CHECK_STR(impp_reason_name(IMPP_REASON_PROBATION), "probation");
    CHECK_STR(impp_reason_name(42), "unknown");

    impp_string_free(desk_tag);
    impp_string_free(desk_tag2);
    impp_string_free(desk_tag3);
    impp_string_free(phone_tag);
    CHECK_OK(impp_engine_free(e));
}

/* The number of rules of `presentity`, from a snapshot. */
static size_t rule_count(impp_engine *e, const char *presentity) {
    impp_rule_list *rules = NULL;
    CHECK_OK(impp_engine_rules(e, presentity, &rules));
    size_t count = impp_rule_list_count(rules);
    impp_rule_list_free(rules);
    return count;
}

/* Reads every rule of `presentity`; checks it has the watcher rule and the domain rule. */
static void check_rules(impp_engine *e, const char *presentity, const char *watcher,
                        impp_auth_action watcher_action, const char *domain,
                        impp_auth_action domain_action) {
    impp_rule_list *rules = NULL;
    CHECK_OK(impp_engine_rules(e, presentity, &rules));
    size_t count = impp_rule_list_count(rules);
    CHECK(count == 2);
    bool saw_watcher = false, saw_domain = false;
    for (size_t i = 0; i < count; i++) {
        const char *w = (const char *)(uintptr_t)0x1, *d = (const char *)(uintptr_t)0x1;
        impp_auth_action action = (impp_auth_action)0;
        CHECK_OK(impp_rule_list_watcher(rules, i, &w));
        CHECK_OK(impp_rule_list_domain(rules, i, &d));
        CHECK_OK(impp_rule_list_action(rules, i, &action));
        CHECK((w == NULL) != (d == NULL));
        if (w != NULL && strcmp(w, watcher) == 0 && action == watcher_action) {
            saw_watcher = true;
        }
        if (d != NULL && strcmp(d, domain) == 0 && action == domain_action) {
            saw_domain = true;
        }
    }
    CHECK(saw_watcher && saw_domain);
    const char *w = NULL;
    impp_auth_action action = (impp_auth_action)0;
    CHECK_FAILS(impp_rule_list_watcher(rules, count, &w), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_rule_list_action(rules, count, &action), IMPP_ERR_NOT_FOUND);
    CHECK(w == NULL && action == (impp_auth_action)0);
    impp_rule_list_free(rules);
}

static void test_rules_blocking_winfo_stats(void) {
    impp_engine *e = start_engine(IMPP_AUTH_CONFIRM);
    impp_event *ev[32];
    size_t n;

    CHECK(rule_count(e, ALICE) == 0);
    CHECK_OK(impp_engine_set_rule(e, ALICE, CAROL, NULL, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_engine_set_rule(e, ALICE, NULL, "blocked.test", IMPP_AUTH_BLOCK));
    check_rules(e, ALICE, CAROL, IMPP_AUTH_ALLOW, "blocked.test", IMPP_AUTH_BLOCK);
    /* Setting again replaces. */
    CHECK_OK(impp_engine_set_rule(e, ALICE, NULL, "blocked.test", IMPP_AUTH_POLITE_BLOCK));
    CHECK_OK(impp_engine_set_rule(e, ALICE, NULL, "blocked.test", IMPP_AUTH_BLOCK));
    check_rules(e, ALICE, CAROL, IMPP_AUTH_ALLOW, "blocked.test", IMPP_AUTH_BLOCK);

    char *tag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, strlen(DESK_OPEN), 0, &tag));

    /* Allowed by a watcher rule: active at once, no question asked. */
    uint64_t carol = 0;
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &carol));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[0], IMPP_EVENT_SUBSCRIPTION_STATE, carol, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, carol, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK(has_tuple(ev[1], "desk", IMPP_BASIC_OPEN));
    }
    free_all(ev, n);

    /* Blocked by a domain rule: rejected, never a document. */
    uint64_t mallory = 0;
    CHECK_OK(impp_engine_subscribe(e, MALLORY, ALICE, "presence", NULL, &mallory));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[0], IMPP_EVENT_SUBSCRIPTION_STATE, mallory,
                    IMPP_SUBSCRIPTION_TERMINATED, IMPP_REASON_REJECTED);
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, mallory, IMPP_SUBSCRIPTION_TERMINATED,
                    IMPP_REASON_REJECTED);
        CHECK_STR(impp_event_watcher(ev[1]), MALLORY);
        check_no_document(ev[1]);
    }
    free_all(ev, n);
    impp_subscription_state st;
    CHECK_FAILS(impp_engine_subscription_state(e, mallory, &st, NULL, NULL),
                IMPP_ERR_NOT_FOUND);

    /* Polite-blocked: told active, shown only the neutral closed document. */
    CHECK_OK(impp_engine_set_rule(e, ALICE, EVE, NULL, IMPP_AUTH_POLITE_BLOCK));
    uint64_t eve = 0;
    CHECK_OK(impp_engine_subscribe(e, EVE, ALICE, "presence", NULL, &eve));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, eve, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        char ids[128];
        CHECK(tuples_of(ev[1], ids, sizeof ids) == 1);
        CHECK(!has_tuple(ev[1], "desk", IMPP_BASIC_OPEN));
        const char *body = NULL;
        CHECK_OK(impp_event_body(ev[1], &body, NULL));
        CHECK(body && strstr(body, "closed") != NULL && strstr(body, "At my desk") == NULL);
    }
    free_all(ev, n);
    impp_auth_action auth;
    CHECK_OK(impp_engine_subscription_state(e, eve, &st, NULL, &auth));
    CHECK(st == IMPP_SUBSCRIPTION_ACTIVE && auth == IMPP_AUTH_POLITE_BLOCK);

    /* Changing a rule revokes an existing subscription. */
    CHECK_OK(impp_engine_set_rule(e, ALICE, CAROL, NULL, IMPP_AUTH_BLOCK));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, carol, IMPP_SUBSCRIPTION_TERMINATED,
                    IMPP_REASON_REJECTED);
    }
    free_all(ev, n);

    /* Removing rules. */
    bool removed = false;
    CHECK_OK(impp_engine_remove_rule(e, ALICE, CAROL, NULL, &removed));
    CHECK(removed);
    CHECK_OK(impp_engine_remove_rule(e, ALICE, CAROL, NULL, &removed));
    CHECK(!removed);
    CHECK_OK(impp_engine_remove_rule(e, ALICE, NULL, "blocked.test", NULL));
    CHECK(rule_count(e, ALICE) == 1);

    /* Watcher information: only for the presentity itself. */
    uint64_t winfo = 0;
    CHECK_FAILS(impp_engine_subscribe(e, BOB, ALICE, "presence.winfo", NULL, &winfo),
                IMPP_ERR_FORBIDDEN);
    CHECK(winfo == 0);
    CHECK_OK(impp_engine_subscribe(e, ALICE, ALICE, "presence.winfo", NULL, &winfo));
    n = take_all(e, ev, 32);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_EVENT(ev[1], IMPP_EVENT_NOTIFICATION, winfo, IMPP_SUBSCRIPTION_ACTIVE,
                    IMPP_REASON_NONE);
        CHECK_STR(impp_event_package(ev[1]), "presence.winfo");
        const char *body = NULL;
        CHECK_OK(impp_event_body(ev[1], &body, NULL));
        CHECK(body && strstr(body, "watcherinfo") != NULL);
        CHECK(body && strstr(body, EVE) != NULL);
        impp_presence *p = NULL;
        CHECK_FAILS(impp_event_presence(ev[1], &p), IMPP_ERR_NOT_FOUND); /* not PIDF */
    }
    free_all(ev, n);
    /* A new watcher shows up in it, pending. */
    uint64_t bob = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &bob));
    n = take_all(e, ev, 32);
    bool told = false;
    for (size_t i = 0; i < n; i++) {
        const char *body = NULL;
        if (impp_event_subscription(ev[i]) == winfo &&
            impp_event_body(ev[i], &body, NULL) == IMPP_OK && strstr(body, BOB) != NULL &&
            strstr(body, "pending") != NULL) {
            told = true;
        }
    }
    CHECK(told);

    /* Stats. */
    CHECK(impp_engine_stat(e, IMPP_STAT_PRESENTITIES) >= 1);
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 1);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_PENDING) == 1);  /* bob */
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_ACTIVE) == 2);   /* eve, winfo */
    /* carol, mallory, eve, carol revoked, winfo full, bob pending, winfo about bob */
    CHECK(impp_engine_stat(e, IMPP_STAT_NOTIFICATIONS_SENT) == 7);
    CHECK(impp_engine_stat(e, IMPP_STAT_NOTIFICATIONS_THROTTLED) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_EVENTS_OVERFLOWED) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_NOTIFICATIONS_MERGED) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_CALLBACK_PANICS) == 0);
    CHECK(impp_engine_stat(e, 99) == 0);
    CHECK(impp_engine_stat(e, -1) == 0);
    CHECK(impp_engine_stat(NULL, IMPP_STAT_PUBLICATIONS) == 0);
    /* "Events waiting to be delivered": none once everything was taken... */
    CHECK(impp_engine_stat(e, IMPP_STAT_EVENTS_QUEUED) == 0);
    free_all(ev, n);
    /* ...and as many as wait otherwise. */
    CHECK_OK(impp_engine_unsubscribe(e, eve));
    CHECK_OK(impp_engine_sync(e));
    uint64_t waiting = impp_engine_stat(e, IMPP_STAT_EVENTS_QUEUED);
    CHECK(waiting == drain(e));
    CHECK(impp_engine_stat(e, IMPP_STAT_EVENTS_QUEUED) == 0);

    impp_string_free(tag);
    CHECK_OK(impp_engine_free(e));
}

/* ------------------------------------------------------------------------------------- */

static bool readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, 0);
    return r == 1 && (p.revents & POLLIN);
}

static void *publish_later(void *arg) {
    impp_engine *e = arg;
    sleep_ms(30);
    char *tag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", PHONE_OPEN, strlen(PHONE_OPEN), 0, &tag));
    impp_string_free(tag);
    return NULL;
}

static void test_event_fd(void) {
    impp_engine *e = start_engine(IMPP_AUTH_ALLOW);
    int fd = impp_engine_event_fd(e);
    CHECK(fd >= 0);
    CHECK(impp_engine_event_fd(e) == fd);
    CHECK(impp_engine_event_fd(NULL) == -1);
    CHECK(!readable(fd));

    uint64_t id = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &id));
    CHECK_OK(impp_engine_sync(e));
    CHECK(readable(fd));
    /* Readable while any event waits, not after the last one is taken. */
    size_t taken = 0;
    for (;;) {
        bool before = readable(fd);
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(e, 0, &ev));
        if (ev == NULL) {
            CHECK(!before);
            break;
        }
        CHECK(before);
        taken++;
        impp_event_free(ev);
    }
    CHECK(taken == 2);
    CHECK(!readable(fd));

    /* A short wait with nothing to come: NULL, not an error. */
    impp_event *ev = (impp_event *)(uintptr_t)0x1;
    CHECK_OK(impp_engine_next_event(e, 10, &ev));
    CHECK(ev == NULL);

    /* poll(2) wakes when another thread's call produces an event. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, publish_later, e) == 0);
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    CHECK(poll(&p, 1, WAIT_MS) == 1 && (p.revents & POLLIN));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_OK(impp_engine_next_event(e, -1, &ev)); /* an event waits: no blocking */
    CHECK_EVENT(ev, IMPP_EVENT_NOTIFICATION, id, IMPP_SUBSCRIPTION_ACTIVE, IMPP_REASON_NONE);
    impp_event_free(ev);
    CHECK(!readable(fd));

    /* A blocking wait returns as soon as an event comes. */
    CHECK(pthread_create(&t, NULL, publish_later, e) == 0);
    ev = NULL;
    CHECK_OK(impp_engine_next_event(e, WAIT_MS, &ev));
    CHECK(ev != NULL);
    impp_event_free(ev);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(!readable(fd));

    CHECK_OK(impp_engine_free(e));
}

/* ------------------------------------------------------------------------------------- */

#define MAX_SEEN 64

struct seen {
    impp_event_type kind;
    impp_subscription_state state;
    impp_reason reason;
    char watcher[48];
    bool phone; /* the document shows the phone tuple */
};

/* What a callback saw, and what it did from inside. Shared with the main thread. */
struct recorder {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    impp_engine *engine;
    struct seen seen[MAX_SEEN];
    size_t count;
    pthread_t thread; /* the thread of the first call */
    bool one_thread;  /* every call came on that thread */
    int frees;        /* free_user_data calls */
    /* Done from inside the callback. */
    bool published, subscribed, unsubscribed;
    uint64_t dave;
    int inner_failures;
    impp_status free_inside;
    bool free_inside_message;
};

static void recorder_init(struct recorder *r, impp_engine *e) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->engine = e;
    r->one_thread = true;
    r->free_inside = IMPP_OK;
}

static void recorder_destroy(struct recorder *r) {
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
}

static void count_free(void *user_data) {
    struct recorder *r = user_data;
    pthread_mutex_lock(&r->lock);
    r->frees++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* Waits until `r` saw at least `count` events; false on timeout. */
static bool wait_seen(struct recorder *r, size_t count) {
    struct timespec deadline = deadline_in(WAIT_MS);
    pthread_mutex_lock(&r->lock);
    while (r->count < count) {
        if (pthread_cond_timedwait(&r->changed, &r->lock, &deadline) != 0) {
            break;
        }
    }
    bool ok = r->count >= count;
    pthread_mutex_unlock(&r->lock);
    if (!ok) {
        fprintf(stderr, "timed out waiting for %zu events (saw %zu)\n", count, r->count);
    }
    return ok;
}

/* Appends an event to the record; returns the copy. */
static struct seen record(struct recorder *r, const impp_event *ev) {
    struct seen s;
    memset(&s, 0, sizeof s);
    s.kind = impp_event_kind(ev);
    s.state = impp_event_state(ev, &s.reason);
    const char *w = impp_event_watcher(ev);
    snprintf(s.watcher, sizeof s.watcher, "%s", w ? w : "");
    s.phone = has_tuple(ev, "phone", IMPP_BASIC_OPEN);
    pthread_mutex_lock(&r->lock);
    if (r->count == 0) {
        r->thread = pthread_self();
    } else if (!pthread_equal(r->thread, pthread_self())) {
        r->one_thread = false;
    }
    if (r->count < MAX_SEEN) {
        r->seen[r->count] = s;
    }
    r->count++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* Records every event and drives a conversation from inside: when carol first sees alice,
 * publish for alice; when carol sees the phone, subscribe dave; when dave is active,
 * unsubscribe him. Also tries to free the engine, which must be refused. */
static void conversation_callback(const impp_event *ev, void *user_data) {
    struct recorder *r = user_data;
    struct seen s = record(r, ev);
    impp_engine *e = r->engine;
    if (s.kind != IMPP_EVENT_NOTIFICATION) {
        return;
    }
    if (strcmp(s.watcher, CAROL) == 0 && !r->published) {
        r->published = true;
        r->free_inside = impp_engine_free(e);
        r->free_inside_message = impp_last_error() != NULL;
        char *tag = NULL;
        if (impp_engine_publish(e, ALICE, "presence", PHONE_OPEN, strlen(PHONE_OPEN), 0, &tag) !=
            IMPP_OK) {
            r->inner_failures++;
        }
        impp_string_free(tag);
        if (impp_engine_sync(e) != IMPP_OK) {
            r->inner_failures++;
        }
    } else if (strcmp(s.watcher, CAROL) == 0 && s.phone && !r->subscribed) {
        r->subscribed = true;
        uint64_t id = 0;
        if (impp_engine_subscribe(e, DAVE, ALICE, "presence", NULL, &id) != IMPP_OK) {
            r->inner_failures++;
        }
        pthread_mutex_lock(&r->lock);
        r->dave = id;
        pthread_mutex_unlock(&r->lock);
    } else if (strcmp(s.watcher, DAVE) == 0 && s.state == IMPP_SUBSCRIPTION_ACTIVE &&
               !r->unsubscribed) {
        r->unsubscribed = true;
        impp_subscription_state st = IMPP_SUBSCRIPTION_NONE;
        if (impp_engine_subscription_state(e, r->dave, &st, NULL, NULL) != IMPP_OK ||
            st != IMPP_SUBSCRIPTION_ACTIVE) {
            r->inner_failures++;
        }
        if (impp_engine_unsubscribe(e, r->dave) != IMPP_OK) {
            r->inner_failures++;
        }
    }
}

static void plain_callback(const impp_event *ev, void *user_data) {
    record(user_data, ev);
}

static void check_seen(const struct seen *s, size_t i, impp_event_type kind, const char *watcher,
                       impp_subscription_state state, impp_reason reason, bool phone) {
    if (s->kind != kind || strcmp(s->watcher, watcher) != 0 || s->state != state ||
        s->reason != reason || s->phone != phone) {
        fprintf(stderr,
                "callback event %zu: kind %d watcher %s state %d reason %d phone %d, expected "
                "kind %d watcher %s state %d reason %d phone %d\n",
                i, (int)s->kind, s->watcher, (int)s->state, (int)s->reason, (int)s->phone,
                (int)kind, watcher, (int)state, (int)reason, (int)phone);
        check_failures++;
    }
}

static void test_callback_mode(void) {
    impp_engine *e = start_engine(IMPP_AUTH_ALLOW);
    struct recorder first, second, never, dropped;
    recorder_init(&first, e);
    recorder_init(&second, e);
    recorder_init(&never, e);
    recorder_init(&dropped, e);

    /* A failed registration still frees the user data, at once. */
    CHECK_FAILS(impp_engine_set_event_callback(NULL, plain_callback, &never, count_free),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(never.frees == 1);

    CHECK_OK(impp_engine_set_event_callback(e, conversation_callback, &first, count_free));
    uint64_t carol = 0;
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &carol));
    /* Polling while a callback consumes gives nothing, at once. */
    impp_event *polled = (impp_event *)(uintptr_t)0x1;
    CHECK_OK(impp_engine_next_event(e, 0, &polled));
    CHECK(polled == NULL);

    CHECK(wait_seen(&first, 7));
    pthread_mutex_lock(&first.lock);
    CHECK(first.count == 7);
    CHECK(first.one_thread);
    CHECK(!pthread_equal(first.thread, pthread_self()));
    CHECK(first.inner_failures == 0);
    CHECK(first.free_inside == IMPP_ERR_IN_CALLBACK);
    CHECK(first.free_inside_message);
    CHECK(first.frees == 0);
    /* In order: carol's start, the publication made from inside, dave's whole life. */
    const struct seen *s = first.seen;
    check_seen(&s[0], 0, IMPP_EVENT_SUBSCRIPTION_STATE, CAROL, IMPP_SUBSCRIPTION_ACTIVE,
               IMPP_REASON_NONE, false);
    check_seen(&s[1], 1, IMPP_EVENT_NOTIFICATION, CAROL, IMPP_SUBSCRIPTION_ACTIVE,
               IMPP_REASON_NONE, false);
    check_seen(&s[2], 2, IMPP_EVENT_NOTIFICATION, CAROL, IMPP_SUBSCRIPTION_ACTIVE,
               IMPP_REASON_NONE, true);
    check_seen(&s[3], 3, IMPP_EVENT_SUBSCRIPTION_STATE, DAVE, IMPP_SUBSCRIPTION_ACTIVE,
               IMPP_REASON_NONE, false);
    check_seen(&s[4], 4, IMPP_EVENT_NOTIFICATION, DAVE, IMPP_SUBSCRIPTION_ACTIVE,
               IMPP_REASON_NONE, true);
    check_seen(&s[5], 5, IMPP_EVENT_SUBSCRIPTION_STATE, DAVE, IMPP_SUBSCRIPTION_TERMINATED,
               IMPP_REASON_NONE, false);
    check_seen(&s[6], 6, IMPP_EVENT_NOTIFICATION, DAVE, IMPP_SUBSCRIPTION_TERMINATED,
               IMPP_REASON_NONE, false);
    pthread_mutex_unlock(&first.lock);

    /* The refused free tore nothing down: the engine still delivers. */
    char *tag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, strlen(DESK_OPEN), 0, &tag));
    CHECK(wait_seen(&first, 8));

    /* Replacing the callback frees the old user data once, before the new one's first call. */
    CHECK_OK(impp_engine_set_event_callback(e, plain_callback, &second, count_free));
    char *tag2 = NULL;
    CHECK_OK(impp_engine_modify_publication(e, tag, "presence", DESK_CLOSED,
                                            strlen(DESK_CLOSED), &tag2));
    CHECK(wait_seen(&second, 1));
    pthread_mutex_lock(&first.lock);
    CHECK(first.frees == 1);
    CHECK(first.count == 8);
    pthread_mutex_unlock(&first.lock);
    pthread_mutex_lock(&second.lock);
    CHECK(second.frees == 0);
    CHECK(second.seen[0].kind == IMPP_EVENT_NOTIFICATION);
    pthread_mutex_unlock(&second.lock);

    /* Back to polling, then a callback again; each user data freed once. */
    CHECK_OK(impp_engine_set_event_callback(e, NULL, &dropped, count_free));
    CHECK_OK(impp_engine_unsubscribe(e, carol));
    CHECK_OK(impp_engine_sync(e));
    impp_event *ev = NULL;
    CHECK_OK(impp_engine_next_event(e, WAIT_MS, &ev));
    CHECK_EVENT(ev, IMPP_EVENT_SUBSCRIPTION_STATE, carol, IMPP_SUBSCRIPTION_TERMINATED,
                IMPP_REASON_NONE);
    impp_event_free(ev);
    CHECK_OK(impp_engine_set_event_callback(e, plain_callback, &second, count_free));
    CHECK(wait_seen(&second, 2)); /* the final notification, left in the queue */

    impp_string_free(tag);
    impp_string_free(tag2);
    CHECK_OK(impp_engine_free(e));
    CHECK(first.frees == 1);
    CHECK(second.frees == 2); /* registered twice: freed once per registration */
    CHECK(dropped.frees == 1);
    CHECK(never.frees == 1);
    CHECK(second.count == 2);
    recorder_destroy(&first);
    recorder_destroy(&second);
    recorder_destroy(&never);
    recorder_destroy(&dropped);
}

/* ------------------------------------------------------------------------------------- */

struct slow {
    impp_engine *engine;
    atomic_bool freed; /* set by the main thread once impp_engine_free returned */
    atomic_int started, calls, late, frees, odd_status;
};

static void slow_callback(const impp_event *ev, void *user_data) {
    struct slow *s = user_data;
    if (atomic_load(&s->freed)) {
        atomic_fetch_add(&s->late, 1);
    }
    atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->started, 1);
    sleep_ms(20);
    /* The engine is being freed meanwhile: calls from here still return, OK or refused. */
    impp_subscription_state st;
    impp_status status =
        impp_engine_subscription_state(s->engine, impp_event_subscription(ev), &st, NULL, NULL);
    if (status != IMPP_OK && status != IMPP_ERR_SHUTDOWN && status != IMPP_ERR_NOT_FOUND) {
        atomic_fetch_add(&s->odd_status, 1);
    }
    if (atomic_load(&s->freed)) {
        atomic_fetch_add(&s->late, 1);
    }
}

static void slow_free(void *user_data) {
    struct slow *s = user_data;
    if (atomic_load(&s->freed)) {
        atomic_fetch_add(&s->late, 1);
    }
    atomic_fetch_add(&s->frees, 1);
}

static void test_free_while_callback_runs(void) {
    impp_engine *e = start_engine(IMPP_AUTH_ALLOW);
    struct slow s;
    s.engine = e;
    atomic_init(&s.freed, false);
    atomic_init(&s.started, 0);
    atomic_init(&s.calls, 0);
    atomic_init(&s.late, 0);
    atomic_init(&s.frees, 0);
    atomic_init(&s.odd_status, 0);
    CHECK_OK(impp_engine_set_event_callback(e, slow_callback, &s, slow_free));
    const char *watchers[] = {BOB, CAROL, DAVE, EVE, "sip:frank@example.test"};
    for (size_t i = 0; i < 5; i++) {
        uint64_t id;
        CHECK_OK(impp_engine_subscribe(e, watchers[i], ALICE, "presence", NULL, &id));
    }
    for (int i = 0; i < WAIT_MS && !atomic_load(&s.started); i++) {
        sleep_ms(1);
    }
    CHECK(atomic_load(&s.started));
    /* Mid-callback: free waits for it, delivers nothing more, frees the user data. */
    CHECK_OK(impp_engine_free(e));
    atomic_store(&s.freed, true);
    CHECK(atomic_load(&s.frees) == 1);
    int calls = atomic_load(&s.calls);
    CHECK(calls >= 1 && calls < 10); /* the queued rest was discarded */
    sleep_ms(30);
    CHECK(atomic_load(&s.calls) == calls);
    CHECK(atomic_load(&s.late) == 0);
    CHECK(atomic_load(&s.odd_status) == 0);
}

static void test_free_with_events_queued(void) {
    /* Polling mode, nobody polls: the queued events go with the engine. */
    impp_engine *e = start_engine(IMPP_AUTH_CONFIRM);
    char *tag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, strlen(DESK_OPEN), 0, &tag));
    for (int i = 0; i < 20; i++) {
        char watcher[64];
        snprintf(watcher, sizeof watcher, "sip:w%d@example.test", i);
        uint64_t id;
        CHECK_OK(impp_engine_subscribe(e, watcher, ALICE, "presence", NULL, &id));
        if (i % 2 == 0) {
            CHECK_OK(impp_engine_authorize(e, id, IMPP_AUTH_ALLOW));
        }
    }
    CHECK_OK(impp_engine_sync(e));
    CHECK(impp_engine_stat(e, IMPP_STAT_EVENTS_QUEUED) > 0);
    impp_event *one = NULL;
    CHECK_OK(impp_engine_next_event(e, 0, &one));
    CHECK(one != NULL);
    impp_string_free(tag);
    CHECK_OK(impp_engine_free(e));
    /* An event taken before the free outlives the engine. */
    CHECK_STR(impp_event_presentity(one), ALICE);
    impp_event_free(one);

    /* A callback that was set but never called is freed once, by the free. */
    struct recorder r;
    e = start_engine(IMPP_AUTH_ALLOW);
    recorder_init(&r, e);
    CHECK_OK(impp_engine_set_event_callback(e, plain_callback, &r, count_free));
    CHECK_OK(impp_engine_free(e));
    CHECK(r.frees == 1 && r.count == 0);
    recorder_destroy(&r);

    /* NULL is a no-op. */
    CHECK_OK(impp_engine_free(NULL));
}

/* ------------------------------------------------------------------------------------- */

/* The same-domain policy: watchers no rule names that share the presentity's host get it
 * instead of the default policy; rules win over it; cleared, the default applies again. */
static impp_engine *start_closed_engine(int clear) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_CONFIRM));
    CHECK_FAILS(impp_config_set_same_domain_policy(NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_same_domain_policy(config, (impp_auth_action)0),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_same_domain_policy(config, (impp_auth_action)99),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_clear_same_domain_policy(NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_config_set_same_domain_policy(config, IMPP_AUTH_ALLOW));
    if (clear) {
        CHECK_OK(impp_config_clear_same_domain_policy(config));
    }
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    return engine;
}

static void check_subscription(impp_engine *e, uint64_t id, impp_subscription_state state,
                               impp_auth_action action) {
    impp_subscription_state st = (impp_subscription_state)99;
    impp_auth_action auth = (impp_auth_action)99;
    CHECK_OK(impp_engine_subscription_state(e, id, &st, NULL, &auth));
    CHECK(st == state);
    CHECK(auth == action);
}

static void test_same_domain_policy(void) {
    impp_event *ev[32];
    impp_engine *e = start_closed_engine(0);
    uint64_t bob = 0, carol = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &bob));
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &carol));
    check_subscription(e, bob, IMPP_SUBSCRIPTION_ACTIVE, IMPP_AUTH_ALLOW);
    check_subscription(e, carol, IMPP_SUBSCRIPTION_PENDING, IMPP_AUTH_CONFIRM);
    /* A rule wins over both policies. */
    CHECK_OK(impp_engine_set_rule(e, ALICE, NULL, "other.test", IMPP_AUTH_ALLOW));
    CHECK_OK(impp_engine_set_rule(e, ALICE, BOB, NULL, IMPP_AUTH_POLITE_BLOCK));
    check_subscription(e, carol, IMPP_SUBSCRIPTION_ACTIVE, IMPP_AUTH_ALLOW);
    check_subscription(e, bob, IMPP_SUBSCRIPTION_ACTIVE, IMPP_AUTH_POLITE_BLOCK);
    bool removed = false;
    CHECK_OK(impp_engine_remove_rule(e, ALICE, BOB, NULL, &removed));
    CHECK(removed);
    check_subscription(e, bob, IMPP_SUBSCRIPTION_ACTIVE, IMPP_AUTH_ALLOW);
    free_all(ev, take_all(e, ev, 32));
    CHECK_OK(impp_engine_free(e));

    /* Cleared: the default policy for every watcher, of the domain or not. */
    e = start_closed_engine(1);
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &bob));
    check_subscription(e, bob, IMPP_SUBSCRIPTION_PENDING, IMPP_AUTH_CONFIRM);
    free_all(ev, take_all(e, ev, 32));
    CHECK_OK(impp_engine_free(e));
}

/* A redirect rule and the application's redirect send a watcher to another presence agent:
 * IMPP_ERR_MOVED with the target as the whole last-error text. */
static void test_redirect(void) {
    static const char *const EDGE = "sip:alice@192.0.2.7:5070;transport=tcp";
    impp_event *ev[32];
    impp_engine *e = start_engine(IMPP_AUTH_CONFIRM);
    uint64_t id = 0;
    CHECK_OK(impp_engine_set_redirect_rule(e, ALICE, BOB, NULL, EDGE));
    CHECK_FAILS(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &id), IMPP_ERR_MOVED);
    CHECK_STR(impp_last_error(), EDGE);
    CHECK_STR(impp_status_name(IMPP_ERR_MOVED), "IMPP_ERR_MOVED");
    CHECK(id == 0);
    impp_rule_list *rules = NULL;
    CHECK_OK(impp_engine_rules(e, ALICE, &rules));
    CHECK(impp_rule_list_count(rules) == 1);
    const char *target = NULL;
    impp_auth_action action = (impp_auth_action)0;
    CHECK_OK(impp_rule_list_action(rules, 0, &action));
    CHECK_OK(impp_rule_list_target(rules, 0, &target));
    CHECK(action == IMPP_AUTH_REDIRECT);
    CHECK_STR(target, EDGE);
    CHECK_FAILS(impp_rule_list_target(rules, 1, &target), IMPP_ERR_NOT_FOUND);
    impp_rule_list_free(rules);

    /* One pending subscription redirected by the application: the next one is sent on. */
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &id));
    CHECK_FAILS(impp_engine_authorize(e, id, IMPP_AUTH_REDIRECT), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_redirect(e, id, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_redirect(e, id, "not a uri"), IMPP_ERR_INVALID_URI);
    CHECK_OK(impp_engine_redirect(e, id, EDGE));
    CHECK_FAILS(impp_engine_redirect(e, id, EDGE), IMPP_ERR_NOT_FOUND);
    uint64_t again = 0;
    CHECK_FAILS(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &again), IMPP_ERR_MOVED);
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &again));
    check_subscription(e, again, IMPP_SUBSCRIPTION_PENDING, IMPP_AUTH_CONFIRM);

    /* A redirect rule needs its target; no other action takes the redirect value. */
    CHECK_FAILS(impp_engine_set_redirect_rule(e, ALICE, CAROL, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, CAROL, NULL, IMPP_AUTH_REDIRECT),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(rule_count(e, ALICE) == 1);
    free_all(ev, take_all(e, ev, 32));
    CHECK_OK(impp_engine_free(e));
}

static void test_config_bad_input(void) {
    impp_config *c = NULL;
    CHECK_FAILS(impp_config_new(NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_config_new(&c));
    CHECK(impp_config_default_workers() >= 1);

    CHECK_FAILS(impp_config_set_workers(NULL, 2), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_workers(c, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_workers(c, 257), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_add_domain(NULL, "example.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_add_domain(c, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_add_domain(c, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_add_domain(c, "exa mple.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_add_domain(c, "\xff\xfe.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_publication_expiry(c, 100, 50, 200), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_publication_expiry(c, 60, 300, 200), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_publication_expiry(NULL, 1, 2, 3), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_subscription_expiry(c, 100, 50, 200), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_queue_capacity(c, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_default_policy(c, 99), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_default_policy(c, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_min_notify_interval_ms(NULL, 10), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_add_winfo_admin(c, "not a uri"), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_config_add_winfo_admin(c, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_document_limits(c, 0, 32), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_document_limits(c, 4096, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_use_manual_clock(NULL), IMPP_ERR_INVALID_ARGUMENT);

    /* The failures changed nothing: the configuration still starts an engine. */
    CHECK_OK(impp_config_set_workers(c, 1));
    CHECK_OK(impp_config_set_min_notify_interval_ms(c, 0));
    CHECK_OK(impp_config_add_winfo_admin(c, "sip:admin@example.test"));
    impp_engine *e = NULL;
    CHECK_OK(impp_engine_new(c, &e));
    /* Without a manual clock the clock cannot be moved. */
    CHECK_FAILS(impp_engine_advance_clock(e, 1000), IMPP_ERR_INVALID_ARGUMENT);
    /* A configured administrator may watch anyone's watchers. */
    uint64_t id = 0;
    CHECK_OK(impp_engine_subscribe(e, "sip:admin@example.test", ALICE, "presence.winfo", NULL, &id));
    CHECK_OK(impp_engine_free(e));

    /* impp_engine_new consumes the configuration even when it fails (ASan sees leaks). */
    impp_engine *untouched = (impp_engine *)(uintptr_t)0x1;
    CHECK_FAILS(impp_engine_new(NULL, &untouched), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(untouched == (impp_engine *)(uintptr_t)0x1);
    CHECK_OK(impp_config_new(&c));
    CHECK_FAILS(impp_engine_new(c, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_config_new(&c));
    impp_config_free(c);
    impp_config_free(NULL);
}

static void test_engine_bad_input(void) {
    impp_engine *e = start_engine(IMPP_AUTH_CONFIRM);
    char *tag = (char *)(uintptr_t)0x1;
    char *const untouched_tag = tag;
    uint64_t id = 7;
    const size_t desk = strlen(DESK_OPEN);

    /* publish: NULL everything, one at a time. */
    CHECK_FAILS(impp_engine_publish(NULL, ALICE, "presence", DESK_OPEN, desk, 0, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish(e, NULL, "presence", DESK_OPEN, desk, 0, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish(e, ALICE, NULL, DESK_OPEN, desk, 0, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", NULL, desk, 0, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, desk, 0, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    /* ...and malformed. */
    CHECK_FAILS(impp_engine_publish(e, "not a uri", "presence", DESK_OPEN, desk, 0, &tag),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_publish(e, "sip:\xff@example.test", "presence", DESK_OPEN, desk, 0,
                                    &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(impp_last_error(), "UTF-8") != NULL);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presense", DESK_OPEN, desk, 0, &tag),
                IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK(strstr(impp_last_error(), "presense") != NULL);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", "<presence", 9, 0, &tag),
                IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", NULL, 0, 0, &tag), IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", "<x>\xc3\x28</x>", 9, 0, &tag),
                IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "dialog", DESK_OPEN, desk, 0, &tag),
                IMPP_ERR_MALFORMED); /* PIDF is not dialog-info */
    const char bomb[] = "<?xml version='1.0'?><!DOCTYPE p [<!ENTITY x 'y'>]>"
                        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'/>";
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", bomb, strlen(bomb), 0, &tag),
                IMPP_ERR_UNSAFE_XML);
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, desk, 10, &tag),
                IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK(tag == untouched_tag);
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 0);

    /* publish_presence. */
    impp_presence *doc = NULL;
    CHECK_OK(impp_presence_new(ALICE, &doc));
    CHECK_OK(impp_presence_add_tuple(doc, "t", IMPP_BASIC_OPEN, NULL));
    CHECK_FAILS(impp_engine_publish_presence(NULL, ALICE, doc, 0, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish_presence(e, ALICE, NULL, 0, &tag), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish_presence(e, NULL, doc, 0, &tag), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish_presence(e, ALICE, doc, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_publish_presence(e, "alice", doc, 0, &tag), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_publish_presence(e, ALICE, doc, 1, &tag),
                IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK(tag == untouched_tag);

    /* Entity-tag calls. */
    CHECK_FAILS(impp_engine_refresh_publication(NULL, "x", 60, &tag), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_refresh_publication(e, NULL, 60, &tag), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_refresh_publication(e, "x", 60, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_refresh_publication(e, "\xff", 60, &tag), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_refresh_publication(e, "", 60, &tag), IMPP_ERR_UNKNOWN_ENTITY_TAG);
    CHECK_FAILS(impp_engine_modify_publication(NULL, "x", "presence", DESK_OPEN, desk, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_modify_publication(e, NULL, "presence", DESK_OPEN, desk, &tag),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_modify_publication(e, "x", "presence", DESK_OPEN, desk, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_modify_publication(e, "x", "presense", DESK_OPEN, desk, &tag),
                IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_FAILS(impp_engine_modify_publication(e, "x", "presence", "</>", 3, &tag),
                IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_engine_modify_publication(e, "x", "presence", DESK_OPEN, desk, &tag),
                IMPP_ERR_UNKNOWN_ENTITY_TAG);
    CHECK_FAILS(impp_engine_remove_publication(NULL, "x"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_remove_publication(e, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(tag == untouched_tag);

    /* subscribe. */
    CHECK_FAILS(impp_engine_subscribe(NULL, BOB, ALICE, "presence", NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscribe(e, NULL, ALICE, "presence", NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscribe(e, BOB, NULL, "presence", NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscribe(e, BOB, ALICE, NULL, NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscribe(e, "bob", ALICE, "presence", NULL, &id),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_subscribe(e, BOB, "<sip:alice@example.test>", "presence", NULL, &id),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_subscribe(e, BOB, ALICE, "presense", NULL, &id),
                IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_FAILS(subscribe_for(e, BOB, ALICE, 5, &id), IMPP_ERR_INTERVAL_TOO_BRIEF);
    impp_subscribe_options *bad_filter = NULL;
    CHECK_OK(impp_subscribe_options_new(&bad_filter));
    CHECK_OK(impp_subscribe_options_set_filter(bad_filter, "<filter-set", 11));
    CHECK_FAILS(impp_engine_subscribe(e, BOB, ALICE, "presence", bad_filter, &id),
                IMPP_ERR_MALFORMED);
    impp_subscribe_options_free(bad_filter);
    CHECK(id == 7);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_PENDING) == 0);

    /* Subscription calls with unknown ids and bad values. */
    impp_subscription_state st = (impp_subscription_state)99;
    CHECK_FAILS(impp_engine_refresh_subscription(NULL, 1, 60), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_refresh_subscription(e, 424242, 60), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_engine_unsubscribe(NULL, 1), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_unsubscribe(e, 0), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_engine_terminate_subscription(NULL, 1, IMPP_REASON_DEACTIVATED),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_terminate_subscription(e, 424242, IMPP_REASON_DEACTIVATED),
                IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_engine_terminate_subscription(e, 1, IMPP_REASON_NONE),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_terminate_subscription(e, 1, 7), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscription_state(NULL, 1, &st, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscription_state(e, 1, NULL, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscription_state(e, 424242, &st, NULL, NULL), IMPP_ERR_NOT_FOUND);
    CHECK(st == (impp_subscription_state)99);
    CHECK_FAILS(impp_engine_authorize(NULL, 1, IMPP_AUTH_ALLOW), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_authorize(e, 424242, IMPP_AUTH_ALLOW), IMPP_ERR_NOT_FOUND);

    /* Rules. */
    CHECK_FAILS(impp_engine_set_rule(NULL, ALICE, BOB, NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, NULL, BOB, NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, NULL, NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, BOB, "example.test", IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, NULL, "", IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, NULL, "a b", IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, BOB, NULL, 99), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, BOB, NULL, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, "not a uri", NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_set_rule(e, "not a uri", BOB, NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_set_rule(e, ALICE, "sip:\xc3\x28@x", NULL, IMPP_AUTH_ALLOW),
                IMPP_ERR_INVALID_ARGUMENT);
    bool removed = true;
    CHECK_FAILS(impp_engine_remove_rule(NULL, ALICE, BOB, NULL, &removed),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_remove_rule(e, ALICE, NULL, NULL, &removed),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(removed);
    impp_rule_list *rules = (impp_rule_list *)(uintptr_t)0x1;
    CHECK_FAILS(impp_engine_rules(NULL, ALICE, &rules), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_rules(e, NULL, &rules), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_rules(e, ALICE, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_rules(e, "not a uri", &rules), IMPP_ERR_INVALID_URI);
    CHECK(rules == (impp_rule_list *)(uintptr_t)0x1);

    /* Events, polling, callbacks, clock. */
    impp_event *ev = (impp_event *)(uintptr_t)0x1;
    CHECK_FAILS(impp_engine_next_event(NULL, 0, &ev), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_next_event(e, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_next_event(e, -5, &ev), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(ev == (impp_event *)(uintptr_t)0x1);
    CHECK_FAILS(impp_engine_set_event_callback(NULL, NULL, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_advance_clock(NULL, 1), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_sync(NULL), IMPP_ERR_INVALID_ARGUMENT);

    /* Event accessors on NULL. */
    impp_reason reason = IMPP_REASON_TIMEOUT;
    CHECK(impp_event_kind(NULL) == IMPP_EVENT_INVALID); /* never a real kind */
    CHECK(impp_event_subscription(NULL) == 0);
    CHECK(impp_event_watcher(NULL) == NULL);
    CHECK(impp_event_presentity(NULL) == NULL);
    CHECK(impp_event_package(NULL) == NULL);
    CHECK(impp_event_etag(NULL) == NULL);
    CHECK(impp_event_state(NULL, &reason) == IMPP_SUBSCRIPTION_NONE);
    CHECK(reason == IMPP_REASON_NONE);
    CHECK(impp_event_state(NULL, NULL) == IMPP_SUBSCRIPTION_NONE);
    CHECK(!impp_event_has_document(NULL));
    const char *body = NULL;
    impp_presence *p = NULL;
    CHECK_FAILS(impp_event_body(NULL, &body, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_event_presence(NULL, &p), IMPP_ERR_INVALID_ARGUMENT);
    impp_event_free(NULL);
    CHECK_STR(impp_status_name(IMPP_ERR_IN_CALLBACK), "IMPP_ERR_IN_CALLBACK");
    CHECK_STR(impp_status_name(IMPP_ERR_UNKNOWN_ENTITY_TAG), "IMPP_ERR_UNKNOWN_ENTITY_TAG");

    /* After all that, the engine works, and a success clears the last error. */
    CHECK(drain(e) == 0);
    CHECK_OK(impp_engine_publish_presence(e, ALICE, doc, 0, &tag));
    CHECK(impp_last_error() == NULL);
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &id));
    CHECK_OK(impp_engine_authorize(e, id, IMPP_AUTH_ALLOW));
    impp_event *got[8];
    size_t n = take_all(e, got, 8);
    CHECK(n == 5);
    if (n == 5) {
        CHECK(impp_event_kind(got[3]) == IMPP_EVENT_SUBSCRIPTION_STATE);
        /* Outputs of accessors on real events, with optional pointers NULL. */
        CHECK(impp_event_state(got[4], NULL) == IMPP_SUBSCRIPTION_ACTIVE);
        CHECK_FAILS(impp_event_body(got[4], NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
        CHECK_FAILS(impp_event_presence(got[4], NULL), IMPP_ERR_INVALID_ARGUMENT);
        CHECK(has_tuple(got[4], "t", IMPP_BASIC_OPEN));
    }
    free_all(got, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 1);
    impp_string_free(tag);
    impp_presence_free(doc);
    CHECK_OK(impp_engine_free(e));
}

/* Documents over the configured limits are refused. */
static void test_document_limits(void) {
    impp_config *c = NULL;
    CHECK_OK(impp_config_new(&c));
    CHECK_OK(impp_config_set_workers(c, 1));
    CHECK_OK(impp_config_set_document_limits(c, 128, 4));
    CHECK_OK(impp_config_set_publication_expiry(c, 30, 60, 90));
    impp_engine *e = NULL;
    CHECK_OK(impp_engine_new(c, &e));
    char *tag = NULL;
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", DESK_OPEN, strlen(DESK_OPEN), 0, &tag),
                IMPP_ERR_TOO_LARGE);
    const char small[] = "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:a@b.test'/>";
    CHECK_FAILS(impp_engine_publish(e, ALICE, "presence", small, strlen(small), 29, &tag),
                IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", small, strlen(small), 30, &tag));
    impp_string_free(tag);
    /* Longer than the maximum is shortened, not refused. */
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", small, strlen(small), 100000, &tag));
    impp_string_free(tag);
    CHECK_OK(impp_engine_free(e));
}

int main(void) {
    test_full_flow();
    test_rules_blocking_winfo_stats();
    test_event_fd();
    test_callback_mode();
    test_free_while_callback_runs();
    test_free_with_events_queued();
    test_same_domain_policy();
    test_redirect();
    test_config_bad_input();
    test_engine_bad_input();
    test_document_limits();
    return check_report("engine_test");
}
