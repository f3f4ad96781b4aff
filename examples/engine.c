/*
 * The presence engine from C: Bob asks to watch Alice, Alice lets him, Alice publishes that
 * her phone is open, and later her publication expires. After each step the program polls
 * the engine's events and prints them.
 *
 * The engine runs on a manual clock, so "later" is a function call, not a sleep. From the
 * repository root, after `cargo build --release`:
 *   cc -Iinclude examples/engine.c -Ltarget/release -limpp -Wl,-rpath,$PWD/target/release
 *   ./a.out
 * or, against an installed libimpp (scripts/install.sh):
 *   cc examples/engine.c $(pkg-config --cflags --libs impp)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impp.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"

/* Print the failure and its detail, then stop. */
static void check(impp_status status, const char *what) {
    if (status != IMPP_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, impp_status_name(status),
                impp_last_error() ? impp_last_error() : "");
        exit(1);
    }
}

static const char *state_name(impp_subscription_state state) {
    switch (state) {
    case IMPP_SUBSCRIPTION_PENDING: return "pending";
    case IMPP_SUBSCRIPTION_ACTIVE: return "active";
    case IMPP_SUBSCRIPTION_TERMINATED: return "terminated";
    default: return "-";
    }
}

/* What the watcher of a notification sees: each tuple and its basic status. */
static void print_document(const impp_event *ev) {
    impp_presence *seen = NULL;
    /* No document while pending, after termination, or for a blocked watcher. */
    if (!impp_event_has_document(ev) || impp_event_presence(ev, &seen) != IMPP_OK) return;
    printf(" | %s sees", impp_event_watcher(ev));
    size_t n = impp_presence_tuple_count(seen);
    if (n == 0) printf(" nothing published");
    for (size_t i = 0; i < n; i++) {
        const char *id = NULL;
        impp_basic basic = IMPP_BASIC_UNSET;
        check(impp_presence_tuple_id(seen, i, &id), "tuple_id");
        check(impp_presence_tuple_basic(seen, i, &basic), "tuple_basic");
        printf(" %s=%s", id, basic == IMPP_BASIC_OPEN ? "open" : "closed");
    }
    impp_presence_free(seen);
}

/* Print one event. The strings read from it are borrowed: valid until it is freed. */
static void print_event(const impp_event *ev) {
    unsigned long long sub = (unsigned long long)impp_event_subscription(ev);
    const char *state = state_name(impp_event_state(ev, NULL));
    switch (impp_event_get_kind(ev)) {
    case IMPP_EVENT_AUTHORIZATION_REQUESTED:
        printf("  authorization requested  sub=%llu by %s\n", sub, impp_event_watcher(ev));
        break;
    case IMPP_EVENT_SUBSCRIPTION_STATE:
        printf("  subscription state       sub=%llu state=%s\n", sub, state);
        break;
    case IMPP_EVENT_PUBLICATION_EXPIRED:
        printf("  publication expired      %s (entity tag %s)\n", impp_event_presentity(ev),
               impp_event_etag(ev));
        break;
    case IMPP_EVENT_NOTIFICATION:
        printf("  notification             sub=%llu state=%s", sub, state);
        print_document(ev);
        printf("\n");
        break;
    }
}

/* Wait until the engine has handled every earlier call, then print and free each event. */
static void print_events(impp_engine *engine, const char *step) {
    printf("%s\n", step);
    check(impp_engine_sync(engine), "impp_engine_sync");
    for (;;) {
        impp_event *ev = NULL;
        check(impp_engine_next_event(engine, 0, &ev), "impp_engine_next_event");
        if (ev == NULL) break; /* nothing more waiting */
        print_event(ev);
        impp_event_free(ev);
    }
}

int main(void) {
    /* Configure: one domain, watchers need Alice's consent (confirm), a manual clock. */
    impp_config *config = NULL;
    check(impp_config_new(&config), "impp_config_new");
    check(impp_config_set_workers(config, 2), "set_workers");
    check(impp_config_add_domain(config, "example.test"), "add_domain");
    check(impp_config_set_default_policy(config, IMPP_AUTH_CONFIRM), "set_default_policy");
    check(impp_config_use_manual_clock(config), "use_manual_clock");

    impp_engine *engine = NULL;
    check(impp_engine_new(config, &engine), "impp_engine_new"); /* consumes config */

    /* 1. Bob subscribes to Alice's presence: pending until Alice decides. */
    uint64_t sub = 0;
    check(impp_engine_subscribe(engine, BOB, ALICE, "presence", -1, NULL, 0, -1, &sub),
          "impp_engine_subscribe");
    print_events(engine, "Bob subscribes to Alice:");

    /* 2. Alice allows Bob: he becomes active (she has published nothing yet). */
    check(impp_engine_authorize(engine, sub, IMPP_AUTH_ALLOW), "impp_engine_authorize");
    print_events(engine, "Alice authorizes Bob:");

    /* 3. Alice publishes a document for 60 seconds: Bob is notified. */
    impp_presence *doc = NULL;
    check(impp_presence_new(ALICE, &doc), "impp_presence_new");
    check(impp_presence_add_tuple(doc, "phone", IMPP_BASIC_OPEN, NULL), "add_tuple");
    char *etag = NULL;
    check(impp_engine_publish_presence(engine, ALICE, doc, 60, &etag), "publish_presence");
    impp_presence_free(doc);
    printf("(publication entity tag: %s)\n", etag);
    impp_string_free(etag);
    print_events(engine, "Alice publishes her phone as open:");

    /* 4. A minute passes without a refresh: the publication expires, Bob is told. */
    check(impp_engine_advance_clock(engine, 61 * 1000), "impp_engine_advance_clock");
    print_events(engine, "61 seconds later:");

    printf("active subscriptions: %llu, publications: %llu\n",
           (unsigned long long)impp_engine_stat(engine, IMPP_STAT_SUBSCRIPTIONS_ACTIVE),
           (unsigned long long)impp_engine_stat(engine, IMPP_STAT_PUBLICATIONS));

    /* Shut down: joins the engine's threads and frees everything it holds. */
    check(impp_engine_free(engine), "impp_engine_free");
    return 0;
}
