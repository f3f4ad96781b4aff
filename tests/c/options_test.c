/* The ABI 3 conventions, under ASan/UBSan (and valgrind): options handles
 * (impp_subscribe_options, impp_message_options, impp_account) with their defaults, setters,
 * getters and refused values; NULL options meaning the defaults; one expiry rule (0 is the
 * configured default, never an end); rule lists as snapshots; and _free(NULL) as a no-op. */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "impp.h"
#include "check.h"
#include "events.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define CAROL "sip:carol@example.test"
#define DAVE "sip:dave@example.test"

#define MAX_EVENTS 64

/* A failure must come with a message. */
#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

static const char DESK_AND_PHONE[] =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>open</basic></status></tuple>"
    "<tuple id='phone'><status><basic>closed</basic></status></tuple></presence>";

static const char DESK_ONLY_FILTER[] =
    "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter' package='presence'>"
    "<ns-bindings><ns-binding prefix='p' urn='urn:ietf:params:xml:ns:pidf'/></ns-bindings>"
    "<filter id='desk-only' uri='sip:alice@example.test'>"
    "<what><include type='xpath'>/p:presence/p:tuple[@id='desk']</include></what>"
    "</filter></filter-set>";

/* An engine with a manual clock, the domain example.test, everyone allowed; subscriptions
 * default to 600 s (30 to 3600), publications to 900 s (60 to 7200), logins to 1200 s (60
 * to 7200). */
static impp_engine *start_engine(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    CHECK_OK(impp_config_set_subscription_expiry(config, 30, 600, 3600));
    CHECK_OK(impp_config_set_publication_expiry(config, 60, 900, 7200));
    CHECK_OK(impp_config_set_endpoint_expiry(config, 60, 1200, 7200));
    /* A default of 0 is refused: 0 is how a call asks for the default. */
    CHECK_FAILS(impp_config_set_subscription_expiry(config, 0, 0, 3600),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_publication_expiry(config, 0, 0, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_endpoint_expiry(config, 0, 0, 10), IMPP_ERR_INVALID_ARGUMENT);
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* The seconds left of a live subscription. */
static uint32_t expires_in(impp_engine *e, uint64_t id) {
    impp_subscription_state state = IMPP_SUBSCRIPTION_NONE;
    uint32_t left = 0;
    CHECK_OK(impp_engine_subscription_state(e, id, &state, &left, NULL));
    return left;
}

/* ------------------------------------------------------------------------------------- */

static void test_subscribe_options_handle(void) {
    impp_subscribe_options *o = NULL;
    CHECK_FAILS(impp_subscribe_options_new(NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_subscribe_options_new(&o));
    CHECK(o != NULL);

    /* Defaults: the configured expiry, no fetch, no filter, the engine's interval. */
    CHECK(IMPP_EXPIRES_DEFAULT == 0);
    CHECK(impp_subscribe_options_expires(o) == IMPP_EXPIRES_DEFAULT);
    CHECK(!impp_subscribe_options_fetch(o));
    CHECK(impp_subscribe_options_filter(o) == NULL);
    CHECK(impp_subscribe_options_min_interval_ms(o) == 0);

    /* Setters, read back. */
    CHECK_OK(impp_subscribe_options_set_expires(o, 1200));
    CHECK_OK(impp_subscribe_options_set_fetch(o, true));
    CHECK_OK(impp_subscribe_options_set_filter(o, DESK_ONLY_FILTER, strlen(DESK_ONLY_FILTER)));
    CHECK_OK(impp_subscribe_options_set_min_interval_ms(o, 2500));
    CHECK(impp_subscribe_options_expires(o) == 1200);
    CHECK(impp_subscribe_options_fetch(o));
    CHECK_STR(impp_subscribe_options_filter(o), DESK_ONLY_FILTER);
    CHECK(impp_subscribe_options_min_interval_ms(o) == 2500);

    /* Bad values are refused and change nothing. */
    const char *filter_before = impp_subscribe_options_filter(o);
    CHECK_FAILS(impp_subscribe_options_set_filter(o, NULL, 5), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_subscribe_options_set_filter(o, "<a>\xff</a>", 8), IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_subscribe_options_set_filter(o, "<a>\0</a>", 8), IMPP_ERR_MALFORMED);
    CHECK(impp_subscribe_options_filter(o) == filter_before);
    CHECK_STR(impp_subscribe_options_filter(o), DESK_ONLY_FILTER);

    /* Back to the defaults, one setter at a time. */
    CHECK_OK(impp_subscribe_options_set_filter(o, NULL, 0));
    CHECK(impp_subscribe_options_filter(o) == NULL);
    CHECK_OK(impp_subscribe_options_set_expires(o, IMPP_EXPIRES_DEFAULT));
    CHECK_OK(impp_subscribe_options_set_fetch(o, false));
    CHECK_OK(impp_subscribe_options_set_min_interval_ms(o, 0));
    CHECK(impp_subscribe_options_expires(o) == 0 && !impp_subscribe_options_fetch(o));

    /* NULL handles. */
    CHECK_FAILS(impp_subscribe_options_set_expires(NULL, 60), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_subscribe_options_set_fetch(NULL, true), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_subscribe_options_set_filter(NULL, NULL, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_subscribe_options_set_min_interval_ms(NULL, 1), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_subscribe_options_expires(NULL) == 0);
    CHECK(!impp_subscribe_options_fetch(NULL));
    CHECK(impp_subscribe_options_filter(NULL) == NULL);
    CHECK(impp_subscribe_options_min_interval_ms(NULL) == 0);

    impp_subscribe_options_free(o);
    impp_subscribe_options_free(NULL);
}

static void test_subscribe_with_options(void) {
    impp_engine *e = start_engine();
    impp_event *ev[MAX_EVENTS];
    uint64_t id = 0;

    /* NULL options, and new options, both mean the defaults. */
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &id));
    CHECK(expires_in(e, id) == 600);
    impp_subscribe_options *o = NULL;
    CHECK_OK(impp_subscribe_options_new(&o));
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", o, &id));
    CHECK(expires_in(e, id) == 600);
    CHECK(drain(e) == 4);

    /* An expiry; longer than the maximum is shortened; the options stay the caller's and can
     * serve again, or be freed at once. */
    CHECK_OK(impp_subscribe_options_set_expires(o, 1200));
    CHECK_OK(impp_engine_subscribe(e, DAVE, ALICE, "presence", o, &id));
    CHECK(expires_in(e, id) == 1200);
    CHECK_OK(impp_subscribe_options_set_expires(o, 100000));
    CHECK_OK(impp_engine_subscribe(e, "sip:erin@example.test", ALICE, "presence", o, &id));
    CHECK(expires_in(e, id) == 3600);
    CHECK(impp_subscribe_options_expires(o) == 100000); /* the call did not change them */
    CHECK(drain(e) == 4);

    /* Too short: refused, nothing subscribed, the output untouched. */
    uint64_t untouched = 4242;
    CHECK_OK(impp_subscribe_options_set_expires(o, 10));
    CHECK_FAILS(impp_engine_subscribe(e, "sip:frank@example.test", ALICE, "presence", o,
                                      &untouched),
                IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK(untouched == 4242);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_ACTIVE) == 4);

    /* A filter reaches the subscription: only the desk tuple is seen. */
    CHECK_OK(impp_subscribe_options_set_expires(o, IMPP_EXPIRES_DEFAULT));
    CHECK_OK(impp_subscribe_options_set_filter(o, DESK_ONLY_FILTER, strlen(DESK_ONLY_FILTER)));
    uint64_t filtered = 0;
    CHECK_OK(impp_engine_subscribe(e, "sip:grace@example.test", ALICE, "presence", o,
                                   &filtered));
    impp_subscribe_options_free(o); /* the subscription keeps what it needs */
    CHECK(drain(e) == 2);
    char *etag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", DESK_AND_PHONE, strlen(DESK_AND_PHONE),
                                 IMPP_EXPIRES_DEFAULT, &etag));
    size_t n = take_all(e, ev, MAX_EVENTS);
    size_t seen_filtered = 0, seen_whole = 0;
    for (size_t i = 0; i < n; i++) {
        impp_presence *doc = NULL;
        if (impp_event_kind(ev[i]) != IMPP_EVENT_NOTIFICATION ||
            impp_event_presence(ev[i], &doc) != IMPP_OK) {
            continue;
        }
        size_t tuples = impp_presence_tuple_count(doc);
        if (impp_event_subscription(ev[i]) == filtered) {
            CHECK(tuples == 1);
            seen_filtered++;
        } else {
            CHECK(tuples == 2);
            seen_whole++;
        }
        impp_presence_free(doc);
    }
    CHECK(seen_filtered == 1 && seen_whole == 4);
    free_all(ev, n);

    /* A filter that does not parse is reported by the subscribe call. */
    CHECK_OK(impp_subscribe_options_new(&o));
    CHECK_OK(impp_subscribe_options_set_filter(o, "<filter-set", 11));
    CHECK_FAILS(impp_engine_subscribe(e, "sip:heidi@example.test", ALICE, "presence", o, &id),
                IMPP_ERR_MALFORMED);
    impp_subscribe_options_free(o);

    /* A fetch: one notification, then the subscription ends by itself. */
    CHECK_OK(impp_subscribe_options_new(&o));
    CHECK_OK(impp_subscribe_options_set_fetch(o, true));
    CHECK_OK(impp_subscribe_options_set_expires(o, 1200)); /* ignored by a fetch */
    uint64_t fetch = 0;
    CHECK_OK(impp_engine_subscribe(e, "sip:ivan@example.test", ALICE, "presence", o, &fetch));
    impp_subscribe_options_free(o);
    n = take_all(e, ev, MAX_EVENTS);
    size_t notes = 0;
    for (size_t i = 0; i < n; i++) {
        if (impp_event_kind(ev[i]) == IMPP_EVENT_NOTIFICATION &&
            impp_event_subscription(ev[i]) == fetch) {
            notes++;
        }
    }
    CHECK(notes == 2); /* the state, then terminated */
    free_all(ev, n);
    impp_subscription_state state;
    CHECK_FAILS(impp_engine_subscription_state(e, fetch, &state, NULL, NULL),
                IMPP_ERR_NOT_FOUND);

    /* A minimum interval holds back the second of two quick changes. */
    CHECK_OK(impp_subscribe_options_new(&o));
    CHECK_OK(impp_subscribe_options_set_min_interval_ms(o, 5000));
    uint64_t slow = 0;
    CHECK_OK(impp_engine_subscribe(e, "sip:judy@example.test", ALICE, "presence", o, &slow));
    impp_subscribe_options_free(o);
    CHECK(drain(e) == 2);
    uint64_t throttled = impp_engine_stat(e, IMPP_STAT_NOTIFICATIONS_THROTTLED);
    char *etag2 = NULL;
    CHECK_OK(impp_engine_refresh_publication(e, etag, IMPP_EXPIRES_DEFAULT, &etag2));
    char *etag3 = NULL;
    CHECK_OK(impp_engine_modify_publication(e, etag2, "presence", DESK_AND_PHONE,
                                            strlen(DESK_AND_PHONE), &etag3));
    drain(e);
    CHECK(impp_engine_stat(e, IMPP_STAT_NOTIFICATIONS_THROTTLED) > throttled);

    impp_string_free(etag);
    impp_string_free(etag2);
    impp_string_free(etag3);
    CHECK_OK(impp_engine_free(e));
}

/* ------------------------------------------------------------------------------------- */

static void test_expiry_convention(void) {
    impp_engine *e = start_engine();

    /* Publications: 0 is the default, at publish and at refresh (never a removal). */
    char *etag = NULL, *etag2 = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", DESK_AND_PHONE, strlen(DESK_AND_PHONE),
                                 IMPP_EXPIRES_DEFAULT, &etag));
    CHECK_OK(impp_engine_refresh_publication(e, etag, IMPP_EXPIRES_DEFAULT, &etag2));
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 1);
    CHECK_OK(impp_engine_advance_clock(e, 899 * 1000));
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 1);
    CHECK_OK(impp_engine_advance_clock(e, 2 * 1000));
    CHECK(impp_engine_stat(e, IMPP_STAT_PUBLICATIONS) == 0); /* 900 s, the default */
    drain(e);

    /* Subscriptions: 0 refreshes to the default (never an end). */
    uint64_t id = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &id));
    CHECK_OK(impp_engine_refresh_subscription(e, id, 1800));
    CHECK(expires_in(e, id) == 1800);
    CHECK_OK(impp_engine_refresh_subscription(e, id, IMPP_EXPIRES_DEFAULT));
    CHECK(expires_in(e, id) == 600);
    CHECK_OK(impp_engine_unsubscribe(e, id)); /* ending is its own function */
    drain(e);

    /* Logins: 0 is the default (never a logout). */
    uint32_t granted = 0;
    CHECK_OK(impp_engine_login(e, BOB, "phone", IMPP_EXPIRES_DEFAULT, &granted));
    CHECK(granted == 1200);
    CHECK_OK(impp_engine_login_at(e, BOB, "phone", "sip:bob@192.0.2.4", 0, &granted));
    CHECK(granted == 1200);
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 1);
    bool was = false;
    CHECK_OK(impp_engine_logout(e, BOB, "phone", &was));
    CHECK(was && impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 0);

    impp_string_free(etag);
    impp_string_free(etag2);
    CHECK_OK(impp_engine_free(e));
}

/* ------------------------------------------------------------------------------------- */

static void test_message_options(void) {
    impp_message_options *o = NULL;
    CHECK_FAILS(impp_message_options_new(NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_message_options_new(&o));
    CHECK(impp_message_options_endpoint(o) == NULL);
    CHECK(impp_message_options_in_reply_to(o) == NULL);

    CHECK_OK(impp_message_options_set_endpoint(o, "laptop"));
    CHECK_OK(impp_message_options_set_in_reply_to(o, "msg-7"));
    CHECK_STR(impp_message_options_endpoint(o), "laptop");
    CHECK_STR(impp_message_options_in_reply_to(o), "msg-7");

    /* Bad values are refused and change nothing. */
    char long_id[300];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK_FAILS(impp_message_options_set_endpoint(o, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_endpoint(o, "lap\ttop"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_endpoint(o, long_id), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_endpoint(o, "\xff"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_in_reply_to(o, "\xc3\x28"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STR(impp_message_options_endpoint(o), "laptop");
    CHECK_STR(impp_message_options_in_reply_to(o), "msg-7");

    /* The engine: NULL options deliver to every endpoint; an endpoint narrows it; the
     * in-reply-to reaches the recipient. */
    impp_engine *e = start_engine();
    CHECK_OK(impp_engine_login(e, BOB, "phone", IMPP_EXPIRES_DEFAULT, NULL));
    CHECK_OK(impp_engine_login(e, BOB, "laptop", IMPP_EXPIRES_DEFAULT, NULL));
    drain(e);
    impp_event *ev[MAX_EVENTS];
    uint64_t id = 0;
    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain", (const uint8_t *)"hi", 2,
                                      NULL, &id));
    size_t n = take_all(e, ev, MAX_EVENTS), messages = 0;
    for (size_t i = 0; i < n; i++) {
        if (impp_event_kind(ev[i]) == IMPP_EVENT_MESSAGE) {
            messages++;
            CHECK(impp_event_in_reply_to(ev[i]) == NULL);
        }
    }
    CHECK(messages == 2);
    free_all(ev, n);

    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain", (const uint8_t *)"hi", 2, o,
                                      &id));
    CHECK_STR(impp_message_options_endpoint(o), "laptop"); /* only read by the call */
    impp_message_options_free(o);
    n = take_all(e, ev, MAX_EVENTS);
    messages = 0;
    for (size_t i = 0; i < n; i++) {
        if (impp_event_kind(ev[i]) == IMPP_EVENT_MESSAGE) {
            messages++;
            CHECK_STR(impp_event_endpoint(ev[i]), "laptop");
            CHECK_STR(impp_event_in_reply_to(ev[i]), "msg-7");
        }
    }
    CHECK(messages == 1);
    free_all(ev, n);

    /* NULL removes a field again. */
    CHECK_OK(impp_message_options_new(&o));
    CHECK_OK(impp_message_options_set_endpoint(o, "phone"));
    CHECK_OK(impp_message_options_set_endpoint(o, NULL));
    CHECK(impp_message_options_endpoint(o) == NULL);
    CHECK_OK(impp_message_options_set_in_reply_to(o, "x"));
    CHECK_OK(impp_message_options_set_in_reply_to(o, NULL));
    CHECK(impp_message_options_in_reply_to(o) == NULL);
    impp_message_options_free(o);

    /* NULL handles. */
    CHECK_FAILS(impp_message_options_set_endpoint(NULL, "phone"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_in_reply_to(NULL, "x"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_message_options_endpoint(NULL) == NULL);
    CHECK(impp_message_options_in_reply_to(NULL) == NULL);
    impp_message_options_free(NULL);
    CHECK_OK(impp_engine_free(e));
}

/* ------------------------------------------------------------------------------------- */

static void test_account(void) {
    impp_account *a = (impp_account *)(uintptr_t)0x1;
    const char *registrar = "udp:127.0.0.1:5060";
    CHECK_FAILS(impp_account_new(NULL, "pw", registrar, &a), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_new(ALICE, NULL, registrar, &a), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_new(ALICE, "pw", NULL, &a), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_new(ALICE, "pw", registrar, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_new("alice", "pw", registrar, &a), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_account_new(ALICE, "pw", "udp:nowhere", &a), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(a == (impp_account *)(uintptr_t)0x1);

    CHECK_OK(impp_account_new(ALICE, "pw", registrar, &a));
    /* Defaults: the user part of the AOR as user name, no proxy, the default expiry. */
    CHECK_STR(impp_account_aor(a), ALICE);
    CHECK_STR(impp_account_registrar(a), registrar);
    CHECK_STR(impp_account_username(a), "alice");
    CHECK(impp_account_outbound_proxy(a) == NULL);
    CHECK(impp_account_expires(a) == IMPP_EXPIRES_DEFAULT);

    CHECK_OK(impp_account_set_username(a, "alice-digest"));
    CHECK_OK(impp_account_set_outbound_proxy(a, "tcp:127.0.0.1:5070"));
    CHECK_OK(impp_account_set_expires(a, 600));
    CHECK_STR(impp_account_username(a), "alice-digest");
    CHECK_STR(impp_account_outbound_proxy(a), "tcp:127.0.0.1:5070");
    CHECK(impp_account_expires(a) == 600);

    /* Bad values are refused and change nothing. */
    CHECK_FAILS(impp_account_set_username(a, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_username(a, "\xff"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_outbound_proxy(a, "udp:nowhere"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_outbound_proxy(a, "sctp:127.0.0.1:5060"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STR(impp_account_username(a), "alice-digest");
    CHECK_STR(impp_account_outbound_proxy(a), "tcp:127.0.0.1:5070");

    /* NULL goes back to the defaults. */
    CHECK_OK(impp_account_set_username(a, NULL));
    CHECK_OK(impp_account_set_outbound_proxy(a, NULL));
    CHECK_STR(impp_account_username(a), "alice");
    CHECK(impp_account_outbound_proxy(a) == NULL);

    /* Added to a configuration: copied, so the account can go at once; and again. */
    impp_sip_config *sip = NULL;
    CHECK_OK(impp_sip_config_new(&sip));
    CHECK_OK(impp_sip_config_add_account(sip, a));
    CHECK_FAILS(impp_sip_config_add_account(sip, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_account(NULL, a), IMPP_ERR_INVALID_ARGUMENT);
    impp_account_free(a);

    /* An AOR without a user part: no user name until one is set. */
    CHECK_OK(impp_account_new("sip:example.test", "pw", registrar, &a));
    CHECK(impp_account_username(a) == NULL);
    CHECK_FAILS(impp_sip_config_add_account(sip, a), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_account_set_username(a, "gateway"));
    CHECK_OK(impp_sip_config_add_account(sip, a));
    impp_account_free(a);
    impp_sip_config_free(sip);

    /* NULL handles. */
    CHECK_FAILS(impp_account_set_username(NULL, "x"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_outbound_proxy(NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_expires(NULL, 60), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_account_aor(NULL) == NULL);
    CHECK(impp_account_registrar(NULL) == NULL);
    CHECK(impp_account_username(NULL) == NULL);
    CHECK(impp_account_outbound_proxy(NULL) == NULL);
    CHECK(impp_account_expires(NULL) == 0);
    impp_account_free(NULL);
}

/* ------------------------------------------------------------------------------------- */

static void test_rule_snapshot(void) {
    impp_engine *e = start_engine();
    CHECK_OK(impp_engine_set_rule(e, ALICE, BOB, NULL, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_engine_set_rule(e, ALICE, NULL, "blocked.test", IMPP_AUTH_BLOCK));

    impp_rule_list *before = NULL;
    CHECK_OK(impp_engine_rules(e, ALICE, &before));
    CHECK(impp_rule_list_count(before) == 2);

    /* Rules change after the snapshot: a new one, a removed one, a replaced one. */
    CHECK_OK(impp_engine_set_rule(e, ALICE, CAROL, NULL, IMPP_AUTH_POLITE_BLOCK));
    CHECK_OK(impp_engine_remove_rule(e, ALICE, NULL, "blocked.test", NULL));
    CHECK_OK(impp_engine_set_rule(e, ALICE, BOB, NULL, IMPP_AUTH_CONFIRM));

    impp_rule_list *after = NULL;
    CHECK_OK(impp_engine_rules(e, ALICE, &after));
    CHECK(impp_rule_list_count(after) == 2);

    /* The engine goes; the snapshots and their strings stay. */
    CHECK_OK(impp_engine_free(e));

    CHECK(impp_rule_list_count(before) == 2);
    bool saw_bob = false, saw_domain = false;
    for (size_t i = 0; i < impp_rule_list_count(before); i++) {
        const char *w = NULL, *d = NULL;
        impp_auth_action action = (impp_auth_action)0;
        CHECK_OK(impp_rule_list_watcher(before, i, &w));
        CHECK_OK(impp_rule_list_domain(before, i, &d));
        CHECK_OK(impp_rule_list_action(before, i, &action));
        if (w != NULL && strcmp(w, BOB) == 0) {
            CHECK(d == NULL && action == IMPP_AUTH_ALLOW);
            saw_bob = true;
        } else if (d != NULL && strcmp(d, "blocked.test") == 0) {
            CHECK(w == NULL && action == IMPP_AUTH_BLOCK);
            saw_domain = true;
        } else {
            CHECK(false); /* Carol's rule came after the snapshot */
        }
        /* Borrowed strings are stable: asked again, the same pointer. */
        const char *again = NULL;
        CHECK_OK(impp_rule_list_watcher(before, i, &again));
        CHECK(again == w);
    }
    CHECK(saw_bob && saw_domain);

    bool saw_carol = false;
    for (size_t i = 0; i < impp_rule_list_count(after); i++) {
        const char *w = NULL;
        impp_auth_action action = (impp_auth_action)0;
        CHECK_OK(impp_rule_list_watcher(after, i, &w));
        CHECK_OK(impp_rule_list_action(after, i, &action));
        CHECK(w != NULL);
        if (w != NULL && strcmp(w, CAROL) == 0) {
            CHECK(action == IMPP_AUTH_POLITE_BLOCK);
            saw_carol = true;
        } else if (w != NULL) {
            CHECK_STR(w, BOB);
            CHECK(action == IMPP_AUTH_CONFIRM);
        }
    }
    CHECK(saw_carol);

    /* Out of range and NULL: refused, outputs untouched. */
    const char *s = (const char *)(uintptr_t)0x1;
    impp_auth_action action = (impp_auth_action)77;
    CHECK_FAILS(impp_rule_list_watcher(before, 2, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_rule_list_domain(before, 99, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_rule_list_action(before, 2, &action), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_rule_list_watcher(NULL, 0, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_rule_list_domain(before, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_rule_list_action(NULL, 0, &action), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(s == (const char *)(uintptr_t)0x1 && action == (impp_auth_action)77);
    CHECK(impp_rule_list_count(NULL) == 0);

    impp_rule_list_free(before);
    impp_rule_list_free(after);
    impp_rule_list_free(NULL);

    /* A presentity without rules: an empty list, not an error. */
    e = start_engine();
    impp_rule_list *none = NULL;
    CHECK_OK(impp_engine_rules(e, DAVE, &none));
    CHECK(none != NULL && impp_rule_list_count(none) == 0);
    impp_rule_list_free(none);
    CHECK_OK(impp_engine_free(e));
}

int main(void) {
    CHECK(impp_abi_version() == IMPP_ABI_VERSION);
    CHECK(IMPP_ABI_VERSION == 3);
    test_subscribe_options_handle();
    test_subscribe_with_options();
    test_expiry_convention();
    test_message_options();
    test_account();
    test_rule_snapshot();
    return check_report("options_test");
}
