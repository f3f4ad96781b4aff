/* Endpoints and instant messages as a C program uses them, under ASan/UBSan (and valgrind):
 * online delivery to every endpoint with a binary body, offline storage then delivery on
 * login in order, failures with their reasons, logout, endpoint expiry with the manual
 * clock, bad input that must change nothing, and the bounds on the state kept per user,
 * watcher and presentity. */
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

/* A failure must come with a message. */
#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

#define MAX_EVENTS 64

/* Message options with an endpoint and an in-reply-to (NULL: none); free them with
 * impp_message_options_free. */
static impp_message_options *message_options(const char *endpoint, const char *in_reply_to) {
    impp_message_options *options = NULL;
    CHECK_OK(impp_message_options_new(&options));
    CHECK_OK(impp_message_options_set_endpoint(options, endpoint));
    CHECK_OK(impp_message_options_set_in_reply_to(options, in_reply_to));
    return options;
}

/* An engine with two workers, a manual clock, the domain example.test, everyone allowed,
 * and messages up to 16 bytes. */
static impp_engine *start_engine(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    CHECK_OK(impp_config_set_max_message_size(config, 16));
    CHECK_OK(impp_config_set_message_expiry(config, 3600));
    CHECK_OK(impp_config_set_endpoint_expiry(config, 60, 600, 7200));
    CHECK_OK(impp_config_set_endpoint_presence(config, false));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* The events of one kind among `events`, in order, into `out`; returns how many. */
static size_t of_kind(impp_event **events, size_t n, impp_event_type kind, impp_event **out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (impp_event_kind(events[i]) == kind) {
            out[k++] = events[i];
        }
    }
    return k;
}

/* The message accessors answer "nothing" for an event that is not a message (a delivery
 * event has a message id, so that one is checked by the callers). */
static void check_not_a_message(const impp_event *ev) {
    const uint8_t *body = (const uint8_t *)"untouched";
    size_t len = 77;
    CHECK(impp_event_content_type(ev) == NULL);
    CHECK(impp_event_in_reply_to(ev) == NULL);
    CHECK(impp_event_sent_at(ev) == 0);
    CHECK_FAILS(impp_event_message_body(ev, &body, &len),
                ev == NULL ? IMPP_ERR_INVALID_ARGUMENT : IMPP_ERR_NOT_FOUND);
    CHECK(len == 77 && memcmp(body, "untouched", 9) == 0);
}

static void test_online_delivery_to_every_endpoint(void) {
    impp_engine *e = start_engine();
    uint32_t granted = 0;
    CHECK_OK(impp_engine_login(e, BOB, "phone", 600, &granted));
    CHECK(granted == 600);
    CHECK_OK(impp_engine_login_at(e, BOB, "laptop", "sip:bob@192.0.2.1:5060",
                                  IMPP_EXPIRES_DEFAULT, &granted));
    CHECK(granted == 600); /* the configured default */
    /* Longer than the maximum is shortened. */
    CHECK_OK(impp_engine_login(e, BOB, "laptop", 100000, &granted));
    CHECK(granted == 7200);
    CHECK_OK(impp_engine_login(e, BOB, "laptop", IMPP_EXPIRES_DEFAULT, NULL));
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 2);
    CHECK(drain(e) == 0);

    static const uint8_t binary[] = {'h', 'i', 0x00, 0xff, '!'};
    uint64_t id = 0;
    impp_message_options *reply = message_options(NULL, "call-42");
    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "application/octet-stream", binary,
                                      sizeof binary, reply, &id));
    impp_message_options_free(reply);
    CHECK(id != 0);

    impp_event *events[MAX_EVENTS], *messages[MAX_EVENTS], *deliveries[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    size_t nm = of_kind(events, n, IMPP_EVENT_MESSAGE, messages);
    size_t nd = of_kind(events, n, IMPP_EVENT_DELIVERY, deliveries);
    CHECK(n == 3 && nm == 2 && nd == 1);
    bool phone = false, laptop = false;
    for (size_t i = 0; i < nm; i++) {
        const impp_event *m = messages[i];
        CHECK(impp_event_message_id(m) == id);
        CHECK_STR(impp_event_sender(m), ALICE);
        CHECK_STR(impp_event_recipient(m), BOB);
        CHECK_STR(impp_event_presentity(m), BOB);
        CHECK_STR(impp_event_content_type(m), "application/octet-stream");
        CHECK_STR(impp_event_in_reply_to(m), "call-42");
        CHECK(impp_event_sent_at(m) > 0);
        CHECK(impp_event_subscription(m) == 0);
        CHECK(impp_event_watcher(m) == NULL);
        CHECK(impp_event_delivery_outcome(m) == IMPP_DELIVERY_NONE);
        CHECK(impp_event_failure_reason(m) == IMPP_FAILURE_NONE);
        const uint8_t *body = NULL;
        size_t len = 0;
        CHECK_OK(impp_event_message_body(m, &body, &len));
        CHECK(len == sizeof binary && body != NULL && memcmp(body, binary, len) == 0);
        /* The length is optional; the pointer is stable for the event's life. */
        const uint8_t *again = NULL;
        CHECK_OK(impp_event_message_body(m, &again, NULL));
        CHECK(again == body);
        CHECK_FAILS(impp_event_message_body(m, NULL, &len), IMPP_ERR_INVALID_ARGUMENT);
        /* Borrowed strings are stable too. */
        CHECK(impp_event_sender(m) == impp_event_sender(m));
        const char *endpoint = impp_event_endpoint(m);
        CHECK(endpoint != NULL);
        if (endpoint != NULL) {
            phone |= strcmp(endpoint, "phone") == 0;
            laptop |= strcmp(endpoint, "laptop") == 0;
        }
    }
    CHECK(phone && laptop);
    if (nd == 1) {
        const impp_event *d = deliveries[0];
        CHECK(impp_event_message_id(d) == id);
        CHECK(impp_event_delivery_outcome(d) == IMPP_DELIVERY_DELIVERED);
        CHECK(impp_event_failure_reason(d) == IMPP_FAILURE_NONE);
        CHECK_STR(impp_delivery_outcome_name(impp_event_delivery_outcome(d)), "delivered");
        CHECK_STR(impp_event_sender(d), ALICE);
        CHECK_STR(impp_event_recipient(d), BOB);
        CHECK(impp_event_endpoint(d) == NULL);
        check_not_a_message(d);
    }
    free_all(events, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_DELIVERED) == 1);

    /* A named endpoint alone gets it while online; an empty body is a body. */
    impp_message_options *to_laptop = message_options("laptop", NULL);
    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain; charset=utf-8", NULL, 0,
                                      to_laptop, &id));
    impp_message_options_free(to_laptop);
    n = take_all(e, events, MAX_EVENTS);
    nm = of_kind(events, n, IMPP_EVENT_MESSAGE, messages);
    CHECK(nm == 1);
    if (nm == 1) {
        const uint8_t *body = NULL;
        size_t len = 99;
        CHECK_STR(impp_event_endpoint(messages[0]), "laptop");
        CHECK(impp_event_in_reply_to(messages[0]) == NULL);
        CHECK_OK(impp_event_message_body(messages[0], &body, &len));
        CHECK(len == 0);
    }
    free_all(events, n);

    /* Logout: the phone was logged in, then is not. */
    bool was = false;
    CHECK_OK(impp_engine_logout(e, BOB, "phone", &was));
    CHECK(was);
    CHECK_OK(impp_engine_logout(e, BOB, "phone", &was));
    CHECK(!was);
    CHECK_OK(impp_engine_logout(e, BOB, "tablet", NULL));
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 1);
    /* Logging in with 0 seconds is the configured default, never a logout. */
    granted = 99;
    CHECK_OK(impp_engine_login(e, BOB, "laptop", IMPP_EXPIRES_DEFAULT, &granted));
    CHECK(granted == 600);
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 1);
    CHECK_OK(impp_engine_logout(e, BOB, "laptop", NULL));
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 0);
    CHECK(drain(e) == 0);
    CHECK_OK(impp_engine_free(e));
}

static void test_offline_stored_then_delivered_in_order(void) {
    impp_engine *e = start_engine();
    const char *texts[3] = {"m1", "m2", "m3"};
    uint64_t ids[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain",
                                          (const uint8_t *)texts[i], strlen(texts[i]), NULL, &ids[i]));
    }
    CHECK(ids[0] < ids[1] && ids[1] < ids[2]);

    impp_event *events[MAX_EVENTS], *picked[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    CHECK(of_kind(events, n, IMPP_EVENT_MESSAGE, picked) == 0);
    size_t nd = of_kind(events, n, IMPP_EVENT_DELIVERY, picked);
    CHECK(nd == 3);
    for (size_t i = 0; i < nd && i < 3; i++) {
        CHECK(impp_event_message_id(picked[i]) == ids[i]);
        CHECK(impp_event_delivery_outcome(picked[i]) == IMPP_DELIVERY_STORED);
        CHECK_STR(impp_delivery_outcome_name(impp_event_delivery_outcome(picked[i])),
                  "stored");
    }
    free_all(events, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_WAITING) == 3);

    CHECK_OK(impp_engine_login(e, BOB, "phone", IMPP_EXPIRES_DEFAULT, NULL));
    n = take_all(e, events, MAX_EVENTS);
    size_t nm = of_kind(events, n, IMPP_EVENT_MESSAGE, picked);
    CHECK(nm == 3);
    for (size_t i = 0; i < nm && i < 3; i++) {
        const uint8_t *body = NULL;
        size_t len = 0;
        CHECK(impp_event_message_id(picked[i]) == ids[i]);
        CHECK_STR(impp_event_endpoint(picked[i]), "phone");
        CHECK_OK(impp_event_message_body(picked[i], &body, &len));
        CHECK(len == 2 && memcmp(body, texts[i], 2) == 0);
    }
    nd = of_kind(events, n, IMPP_EVENT_DELIVERY, picked);
    CHECK(nd == 3);
    for (size_t i = 0; i < nd && i < 3; i++) {
        CHECK(impp_event_message_id(picked[i]) == ids[i]);
        CHECK(impp_event_delivery_outcome(picked[i]) == IMPP_DELIVERY_DELIVERED);
    }
    free_all(events, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_WAITING) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_DELIVERED) == 3);

    /* Exactly once: another endpoint logging in gets nothing. */
    CHECK_OK(impp_engine_login(e, BOB, "laptop", IMPP_EXPIRES_DEFAULT, NULL));
    CHECK(drain(e) == 0);

    /* A stored message that is not picked up in time fails as expired. */
    uint64_t late = 0;
    CHECK_OK(impp_engine_send_message(e, ALICE, CAROL, "text/plain", (const uint8_t *)"x", 1, NULL, &late));
    CHECK(drain(e) == 1); /* stored */
    CHECK_OK(impp_engine_advance_clock(e, 3600 * 1000));
    n = take_all(e, events, MAX_EVENTS);
    nd = of_kind(events, n, IMPP_EVENT_DELIVERY, picked);
    CHECK(nd == 1);
    if (nd == 1) {
        CHECK(impp_event_message_id(picked[0]) == late);
        CHECK(impp_event_delivery_outcome(picked[0]) == IMPP_DELIVERY_FAILED);
        CHECK(impp_event_failure_reason(picked[0]) == IMPP_FAILURE_EXPIRED);
        CHECK_STR(impp_failure_reason_name(impp_event_failure_reason(picked[0])), "expired");
    }
    free_all(events, n);
    CHECK_OK(impp_engine_free(e));
}

/* The delivery event of message `id` among `events`; NULL if none. */
static impp_event *delivery_of(impp_event **events, size_t n, uint64_t id) {
    for (size_t i = 0; i < n; i++) {
        if (impp_event_kind(events[i]) == IMPP_EVENT_DELIVERY &&
            impp_event_message_id(events[i]) == id) {
            return events[i];
        }
    }
    return NULL;
}

static void test_failures_have_reasons(void) {
    impp_engine *e = start_engine();
    CHECK_OK(impp_engine_login(e, BOB, "phone", IMPP_EXPIRES_DEFAULT, NULL));
    CHECK_OK(impp_engine_set_rule(e, CAROL, ALICE, NULL, IMPP_AUTH_BLOCK));
    const char big[] = "12345678901234567"; /* 17 bytes, the maximum is 16 */
    const char ok[] = "1234567890123456";   /* exactly 16 */
    uint64_t too_large = 0, fits = 0, foreign = 0, blocked = 0, typing = 0;
    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain", (const uint8_t *)big,
                                      strlen(big), NULL, &too_large));
    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain", (const uint8_t *)ok,
                                      strlen(ok), NULL, &fits));
    CHECK_OK(impp_engine_send_message(e, ALICE, "sip:bob@elsewhere.test", "text/plain",
                                      (const uint8_t *)"hi", 2, NULL, &foreign));
    CHECK_OK(impp_engine_send_message(e, ALICE, CAROL, "text/plain", (const uint8_t *)"hi", 2, NULL, &blocked));
    CHECK_OK(impp_engine_send_message(e, ALICE, "sip:dave@example.test",
                                      "application/im-iscomposing+xml",
                                      (const uint8_t *)"<isComposing/>", 14, NULL,
                                      &typing));

    impp_event *events[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    struct {
        uint64_t id;
        impp_failure_reason reason;
        const char *name;
    } expected[] = {
        {too_large, IMPP_FAILURE_TOO_LARGE, "too-large"},
        {foreign, IMPP_FAILURE_UNKNOWN_USER, "unknown-user"},
        {blocked, IMPP_FAILURE_REJECTED, "rejected"},
        {typing, IMPP_FAILURE_OFFLINE, "offline"},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const impp_event *d = delivery_of(events, n, expected[i].id);
        CHECK(d != NULL);
        if (d == NULL) {
            continue;
        }
        CHECK(impp_event_delivery_outcome(d) == IMPP_DELIVERY_FAILED);
        CHECK_STR(impp_delivery_outcome_name(impp_event_delivery_outcome(d)), "failed");
        CHECK(impp_event_failure_reason(d) == expected[i].reason);
        CHECK_STR(impp_failure_reason_name(impp_event_failure_reason(d)), expected[i].name);
    }
    const impp_event *d = delivery_of(events, n, fits);
    CHECK(d != NULL && impp_event_delivery_outcome(d) == IMPP_DELIVERY_DELIVERED);
    free_all(events, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_FAILED) == 4);

    /* Every name, and the fallbacks. */
    CHECK_STR(impp_failure_reason_name(IMPP_FAILURE_NONE), "none");
    CHECK_STR(impp_failure_reason_name(IMPP_FAILURE_STORAGE), "storage");
    CHECK_STR(impp_failure_reason_name(99), "unknown");
    CHECK_STR(impp_failure_reason_name(-1), "unknown");
    CHECK_STR(impp_delivery_outcome_name(IMPP_DELIVERY_NONE), "none");
    CHECK_STR(impp_delivery_outcome_name(7), "unknown");
    CHECK_OK(impp_engine_free(e));
}

static void test_endpoint_expiry(void) {
    impp_engine *e = start_engine();
    uint32_t granted = 0;
    CHECK_OK(impp_engine_login(e, BOB, "phone", 120, &granted));
    CHECK(granted == 120);
    CHECK_OK(impp_engine_login(e, BOB, "laptop", 300, NULL));
    CHECK_OK(impp_engine_advance_clock(e, 100 * 1000));
    CHECK_OK(impp_engine_login(e, BOB, "phone", 120, NULL)); /* refresh */
    CHECK_OK(impp_engine_advance_clock(e, 119 * 1000));
    CHECK(drain(e) == 0);
    CHECK_OK(impp_engine_advance_clock(e, 1000)); /* 120 s since the phone's refresh */

    impp_event *events[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    CHECK(n == 1);
    if (n == 1) {
        const impp_event *ev = events[0];
        CHECK(impp_event_kind(ev) == IMPP_EVENT_ENDPOINT_EXPIRED);
        CHECK_STR(impp_event_endpoint(ev), "phone");
        CHECK_STR(impp_event_presentity(ev), BOB);
        CHECK(impp_event_sender(ev) == NULL);
        CHECK(impp_event_recipient(ev) == NULL);
        CHECK(impp_event_message_id(ev) == 0);
        CHECK(impp_event_delivery_outcome(ev) == IMPP_DELIVERY_NONE);
        check_not_a_message(ev);
    }
    free_all(events, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 1);
    CHECK_OK(impp_engine_advance_clock(e, 80 * 1000)); /* 300 s since the laptop's login */
    n = take_all(e, events, MAX_EVENTS);
    CHECK(n == 1);
    if (n == 1) {
        CHECK(impp_event_kind(events[0]) == IMPP_EVENT_ENDPOINT_EXPIRED);
        CHECK_STR(impp_event_endpoint(events[0]), "laptop");
    }
    free_all(events, n);
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 0);
    bool was = true;
    CHECK_OK(impp_engine_logout(e, BOB, "laptop", &was));
    CHECK(!was);
    CHECK_OK(impp_engine_free(e));
}

static void test_bad_input_changes_nothing(void) {
    impp_engine *e = start_engine();
    const uint8_t *hi = (const uint8_t *)"hi";
    uint64_t id = 12345;

    CHECK_FAILS(impp_engine_send_message(NULL, ALICE, BOB, "text/plain", hi, 2, NULL,
                                         &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, NULL, BOB, "text/plain", hi, 2, NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, ALICE, NULL, "text/plain", hi, 2, NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, ALICE, BOB, NULL, hi, 2, NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, ALICE, BOB, "text/plain", hi, 2, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, ALICE, BOB, "text/plain", NULL, 2, NULL, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, "not a uri", BOB, "text/plain", hi, 2, NULL,
                                         &id),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_send_message(e, ALICE, "bob", "text/plain", hi, 2, NULL, &id),
                IMPP_ERR_INVALID_URI);
    const char *bad_types[] = {"", "text", "text/", "/plain", "te xt/plain", "text/plain\n"};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        CHECK_FAILS(impp_engine_send_message(e, ALICE, BOB, bad_types[i], hi, 2, NULL,
                                             &id),
                    IMPP_ERR_INVALID_ARGUMENT);
    }
    /* Bad option values are refused when set (see options_test.c); the options left as
     * they were still send. */
    impp_message_options *options = message_options(NULL, NULL);
    CHECK_FAILS(impp_message_options_set_endpoint(options, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_endpoint(options, "\xff"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_options_set_in_reply_to(options, "\xfe"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_send_message(e, ALICE, BOB, "text", hi, 2, options, &id),
                IMPP_ERR_INVALID_ARGUMENT);
    impp_message_options_free(options);
    CHECK(id == 12345); /* outputs are written only on success */

    uint32_t granted = 4242;
    CHECK_FAILS(impp_engine_login(NULL, BOB, "phone", IMPP_EXPIRES_DEFAULT, &granted), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_login(e, NULL, "phone", IMPP_EXPIRES_DEFAULT, &granted), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_login(e, BOB, NULL, IMPP_EXPIRES_DEFAULT, &granted), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_login(e, BOB, "", IMPP_EXPIRES_DEFAULT, &granted), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_login(e, BOB, "ph\tone", IMPP_EXPIRES_DEFAULT, &granted), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_login(e, BOB, "phone", 10, &granted), IMPP_ERR_INTERVAL_TOO_BRIEF);
    CHECK_FAILS(impp_engine_login(e, "bob", "phone", IMPP_EXPIRES_DEFAULT, &granted), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_login(e, "sip:bob@elsewhere.test", "phone", IMPP_EXPIRES_DEFAULT, &granted),
                IMPP_ERR_FORBIDDEN);
    CHECK_FAILS(impp_engine_login_at(e, BOB, "phone", "\xff", IMPP_EXPIRES_DEFAULT, &granted),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(granted == 4242);
    bool was = true;
    CHECK_FAILS(impp_engine_logout(NULL, BOB, "phone", &was), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_logout(e, NULL, "phone", &was), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_logout(e, BOB, NULL, &was), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(was);

    /* Nothing was sent, nobody logged in. */
    CHECK(drain(e) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_WAITING) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_DELIVERED) == 0);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_FAILED) == 0);
    CHECK(impp_engine_stat(NULL, IMPP_STAT_ENDPOINTS) == 0);

    /* The event accessors with NULL. */
    check_not_a_message(NULL);
    CHECK(impp_event_message_id(NULL) == 0);
    CHECK(impp_event_sender(NULL) == NULL);
    CHECK(impp_event_recipient(NULL) == NULL);
    CHECK(impp_event_endpoint(NULL) == NULL);
    CHECK(impp_event_delivery_outcome(NULL) == IMPP_DELIVERY_NONE);
    CHECK(impp_event_failure_reason(NULL) == IMPP_FAILURE_NONE);

    /* A publication's expiry is not a message either. */
    static const char doc[] =
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
        "<tuple id='t'><status><basic>open</basic></status></tuple></presence>";
    char *etag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "presence", doc, strlen(doc), 60, &etag));
    impp_string_free(etag);
    CHECK_OK(impp_engine_advance_clock(e, 61 * 1000));
    impp_event *events[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    CHECK(n == 1);
    for (size_t i = 0; i < n; i++) {
        check_not_a_message(events[i]);
        CHECK(impp_event_message_id(events[i]) == 0);
        CHECK(impp_event_endpoint(events[i]) == NULL);
        CHECK(impp_event_sender(events[i]) == NULL);
    }
    free_all(events, n);
    CHECK_OK(impp_engine_free(e));

    /* After shutdown-free there is no engine; config setters refuse bad values. */
    impp_config *c = NULL;
    CHECK_OK(impp_config_new(&c));
    CHECK_FAILS(impp_config_set_max_message_size(NULL, 10), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_max_message_size(c, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_message_expiry(NULL, 10), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_message_expiry(c, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_endpoint_expiry(NULL, 1, 2, 3), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_endpoint_expiry(c, 100, 50, 200), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_endpoint_expiry(c, 60, 300, 200), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_endpoint_presence(NULL, true), IMPP_ERR_INVALID_ARGUMENT);
    impp_config_free(c);
}

/* Whether `user` is in the directory (the call must succeed). */
static bool has_user(impp_engine *e, const char *user) {
    bool has = false;
    CHECK_OK(impp_engine_has_user(e, user, &has));
    return has;
}

static void test_user_directory(void) {
    impp_engine *e = start_engine();
    CHECK(!has_user(e, BOB));
    CHECK_OK(impp_engine_set_user_password(e, BOB, "s3cret"));
    CHECK(has_user(e, BOB));
    CHECK(!has_user(e, ALICE));
    /* NULL and a bad URI are errors, not "no such user"; the output is left alone. */
    bool has = true;
    CHECK_STATUS(impp_engine_has_user(e, NULL, &has), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_engine_has_user(NULL, BOB, &has), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_engine_has_user(e, BOB, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_engine_has_user(e, "not a uri", &has), IMPP_ERR_INVALID_URI);
    CHECK(has);
    /* With a directory, only its users exist. */
    uint64_t to_bob = 0, to_carol = 0;
    CHECK_OK(impp_engine_send_message(e, ALICE, BOB, "text/plain", (const uint8_t *)"hi", 2, NULL, &to_bob));
    CHECK_OK(impp_engine_send_message(e, ALICE, CAROL, "text/plain", (const uint8_t *)"hi", 2, NULL, &to_carol));
    impp_event *events[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    const impp_event *d = delivery_of(events, n, to_bob);
    CHECK(d != NULL && impp_event_delivery_outcome(d) == IMPP_DELIVERY_STORED);
    d = delivery_of(events, n, to_carol);
    CHECK(d != NULL && impp_event_failure_reason(d) == IMPP_FAILURE_UNKNOWN_USER);
    free_all(events, n);
    /* Bad input changes nothing. */
    CHECK_STATUS(impp_engine_set_user_password(e, "sip:example.test", "pw"),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_engine_set_user_password(e, "not a uri", "pw"), IMPP_ERR_INVALID_URI);
    CHECK_STATUS(impp_engine_set_user_password(e, CAROL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(!has_user(e, CAROL));
    bool was = false;
    CHECK_OK(impp_engine_remove_user(e, BOB, &was));
    CHECK(was);
    CHECK_OK(impp_engine_remove_user(e, BOB, &was));
    CHECK(!was);
    CHECK_OK(impp_engine_remove_user(e, BOB, NULL));
    CHECK_OK(impp_engine_free(e));
}

/* The bounds on stored messages, subscriptions and endpoints: refused past them with a
 * clear status (or a mailbox-full delivery), nothing changed, each refusal counted. */
static void test_state_limits(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_FAILS(impp_config_set_max_offline_messages_per_user(NULL, 3), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_max_offline_messages_per_user(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_max_offline_messages_per_sender(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_max_subscriptions_per_watcher(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_max_subscriptions_per_presentity(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_config_set_max_endpoints_per_user(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    CHECK_OK(impp_config_set_max_offline_messages_per_user(config, 3));
    CHECK_OK(impp_config_set_max_offline_messages_per_sender(config, 2));
    CHECK_OK(impp_config_set_max_subscriptions_per_watcher(config, 1));
    CHECK_OK(impp_config_set_max_subscriptions_per_presentity(config, 2));
    CHECK_OK(impp_config_set_max_endpoints_per_user(config, 1));
    impp_engine *e = NULL;
    CHECK_OK(impp_engine_new(config, &e));

    /* Bob is offline: two from Alice are stored, her third is refused, Carol's first is
     * stored (the mailbox holds 3 now) and her second is refused. */
    const char *senders[] = {ALICE, ALICE, ALICE, CAROL, CAROL};
    uint64_t ids[5] = {0};
    for (size_t i = 0; i < 5; i++) {
        CHECK_OK(impp_engine_send_message(e, senders[i], BOB, "text/plain", (const uint8_t *)"hi",
                                          2, NULL, &ids[i]));
    }
    impp_event *events[MAX_EVENTS];
    size_t n = take_all(e, events, MAX_EVENTS);
    const impp_failure_reason want[] = {IMPP_FAILURE_NONE, IMPP_FAILURE_NONE,
                                        IMPP_FAILURE_MAILBOX_FULL, IMPP_FAILURE_NONE,
                                        IMPP_FAILURE_MAILBOX_FULL};
    for (size_t i = 0; i < 5; i++) {
        const impp_event *d = delivery_of(events, n, ids[i]);
        CHECK(d != NULL);
        if (d != NULL) {
            CHECK(impp_event_failure_reason(d) == want[i]);
            CHECK(impp_event_delivery_outcome(d) ==
                  (want[i] == IMPP_FAILURE_NONE ? IMPP_DELIVERY_STORED : IMPP_DELIVERY_FAILED));
        }
    }
    free_all(events, n);
    CHECK_STR(impp_failure_reason_name(IMPP_FAILURE_MAILBOX_FULL), "mailbox-full");
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_WAITING) == 3);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_REFUSED) == 2);
    CHECK(impp_engine_stat(e, IMPP_STAT_MESSAGES_FAILED) == 2);

    /* One endpoint per user: a second is refused, the first refreshes. */
    CHECK_OK(impp_engine_login(e, BOB, "phone", IMPP_EXPIRES_DEFAULT, NULL));
    uint32_t granted = 77;
    CHECK_FAILS(impp_engine_login(e, BOB, "laptop", IMPP_EXPIRES_DEFAULT, &granted),
                IMPP_ERR_LIMIT_REACHED);
    CHECK(granted == 77);
    CHECK_STR(impp_status_name(IMPP_ERR_LIMIT_REACHED), "IMPP_ERR_LIMIT_REACHED");
    CHECK_OK(impp_engine_login(e, BOB, "phone", IMPP_EXPIRES_DEFAULT, NULL));
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS) == 1);
    CHECK(impp_engine_stat(e, IMPP_STAT_ENDPOINTS_REFUSED) == 1);
    drain(e);

    /* One subscription per watcher, two per presentity. */
    uint64_t sub = 0, other = 0, refused = 99;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &sub));
    CHECK_FAILS(impp_engine_subscribe(e, BOB, CAROL, "presence", NULL, &refused),
                IMPP_ERR_LIMIT_REACHED);
    CHECK(refused == 99);
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &other));
    CHECK_FAILS(impp_engine_subscribe(e, "sip:dave@example.test", ALICE, "presence", NULL, &refused),
                IMPP_ERR_LIMIT_REACHED);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_ACTIVE) == 2);
    CHECK(impp_engine_stat(e, IMPP_STAT_SUBSCRIPTIONS_REFUSED) == 2);
    /* Ending one frees room. */
    CHECK_OK(impp_engine_unsubscribe(e, sub));
    CHECK_OK(impp_engine_subscribe(e, BOB, CAROL, "presence", NULL, &sub));
    drain(e);
    CHECK_OK(impp_engine_free(e));
}

int main(void) {
    test_user_directory();
    test_online_delivery_to_every_endpoint();
    test_offline_stored_then_delivered_in_order();
    test_failures_have_reasons();
    test_endpoint_expiry();
    test_bad_input_changes_nothing();
    test_state_limits();
    return check_report("messaging_test");
}
