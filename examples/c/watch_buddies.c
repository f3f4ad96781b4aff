/*
 * A buddy list from C: Bob watches Alice, Carol and Dave and prints each change of their
 * presence. Alice and Carol have a rule that lets Bob in; Dave is asked and says yes. Then
 * the buddies publish, Alice changes her status, and Carol's publication runs out.
 *
 * The engine runs on a manual clock, so "a minute later" is a function call, not a sleep,
 * and the program ends by itself. From the repository root, after `cargo build --release`:
 *   cc -Iinclude examples/c/watch_buddies.c -Ltarget/release -limpp \
 *      -Wl,-rpath,$PWD/target/release && ./a.out
 * or, against an installed libimpp (scripts/install.sh):
 *   cc examples/c/watch_buddies.c $(pkg-config --cflags --libs impp) && ./a.out
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impp.h"

#define BOB "sip:bob@example.test"
#define BUDDIES 3

static const char *const buddies[BUDDIES] = {
    "sip:alice@example.test",
    "sip:carol@example.test",
    "sip:dave@example.test",
};
/* What Bob last printed for each buddy, to print changes only. */
static char last_seen[BUDDIES][160];

/* Print the failure and its detail, then stop. */
static void check(impp_status status, const char *what) {
    if (status != IMPP_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, impp_status_name(status),
                impp_last_error() ? impp_last_error() : "");
        exit(1);
    }
}

static int buddy_index(const char *uri) {
    for (int i = 0; i < BUDDIES; i++)
        if (uri != NULL && strcmp(uri, buddies[i]) == 0) return i;
    return -1;
}

/* One line for a presence document: the first tuple's status and the first note. */
static void describe(const impp_presence *doc, char *out, size_t size) {
    if (impp_presence_tuple_count(doc) == 0) {
        snprintf(out, size, "offline (nothing published)");
        return;
    }
    impp_basic basic = IMPP_BASIC_UNSET;
    check(impp_presence_tuple_basic(doc, 0, &basic), "tuple_basic");
    const char *note = NULL, *lang = NULL;
    if (impp_presence_note_count(doc) > 0)
        check(impp_presence_note(doc, 0, &note, &lang), "presence_note");
    snprintf(out, size, "%s%s%s%s", basic == IMPP_BASIC_OPEN ? "open" : "closed",
             note ? " (" : "", note ? note : "", note ? ")" : "");
}

/* Handle one event: print a buddy's new status when it changed. */
static void handle(impp_engine *engine, const impp_event *ev) {
    int who = buddy_index(impp_event_presentity(ev));
    switch (impp_event_kind(ev)) {
    case IMPP_EVENT_AUTHORIZATION_REQUESTED:
        /* Dave has no rule for Bob: he is asked, and (here) always says yes. */
        printf("  %s asks %s for consent: allowed\n", impp_event_watcher(ev),
               impp_event_presentity(ev));
        check(impp_engine_authorize(engine, impp_event_subscription(ev), IMPP_AUTH_ALLOW),
              "impp_engine_authorize");
        break;
    case IMPP_EVENT_NOTIFICATION: {
        impp_presence *doc = NULL;
        /* No document while pending or after termination. */
        if (who < 0 || !impp_event_has_document(ev) ||
            impp_event_presence(ev, &doc) != IMPP_OK)
            break;
        char now[160];
        describe(doc, now, sizeof now);
        impp_presence_free(doc);
        if (strcmp(now, last_seen[who]) != 0) {
            printf("  %s: %s\n", buddies[who], now);
            snprintf(last_seen[who], sizeof last_seen[who], "%s", now);
        }
        break;
    }
    default:
        break; /* subscription states and expiries: the notifications tell the story */
    }
}

/* Wait until the engine has handled every earlier call, then handle each waiting event
 * (authorizing may queue more: the loop takes those too). */
static void run_events(impp_engine *engine, const char *step) {
    printf("%s\n", step);
    for (;;) {
        check(impp_engine_sync(engine), "impp_engine_sync");
        impp_event *ev = NULL;
        check(impp_engine_next_event(engine, 0, &ev), "impp_engine_next_event");
        if (ev == NULL) break; /* nothing more waiting */
        handle(engine, ev);
        impp_event_free(ev);
    }
}

/* A status document: one tuple and a note (free it with impp_presence_free). */
static impp_presence *status(const char *who, impp_basic basic, const char *note) {
    impp_presence *doc = NULL;
    check(impp_presence_new(who, &doc), "impp_presence_new");
    check(impp_presence_add_tuple(doc, "pc", basic, NULL), "add_tuple");
    check(impp_presence_add_note(doc, note, NULL), "add_note");
    return doc;
}

/* Publish a buddy's status; returns the entity tag (owned). */
static char *publish(impp_engine *engine, const char *who, impp_basic basic, const char *note,
                     uint32_t expires) {
    impp_presence *doc = status(who, basic, note);
    char *etag = NULL;
    check(impp_engine_publish_presence(engine, who, doc, expires, &etag), "publish_presence");
    impp_presence_free(doc);
    return etag;
}

/* Replace a publication's document; frees the old entity tag, returns the new one. */
static char *modify(impp_engine *engine, char *etag, const char *who, impp_basic basic,
                    const char *note) {
    impp_presence *doc = status(who, basic, note);
    char *xml = NULL;
    size_t len = 0;
    check(impp_presence_to_xml(doc, &xml, &len), "impp_presence_to_xml");
    impp_presence_free(doc);
    char *new_etag = NULL;
    check(impp_engine_modify_publication(engine, etag, "presence", xml, len, &new_etag),
          "impp_engine_modify_publication");
    impp_string_free(xml);
    impp_string_free(etag);
    return new_etag;
}

int main(void) {
    /* One domain; watchers need consent unless a rule says otherwise; a manual clock. */
    impp_config *config = NULL;
    check(impp_config_new(&config), "impp_config_new");
    check(impp_config_add_domain(config, "example.test"), "add_domain");
    check(impp_config_set_default_policy(config, IMPP_AUTH_CONFIRM), "set_default_policy");
    check(impp_config_use_manual_clock(config), "use_manual_clock");
    impp_engine *engine = NULL;
    check(impp_engine_new(config, &engine), "impp_engine_new"); /* consumes config */

    /* Alice and Carol let Bob watch them; Dave will be asked. */
    check(impp_engine_set_rule(engine, buddies[0], BOB, NULL, IMPP_AUTH_ALLOW), "set_rule");
    check(impp_engine_set_rule(engine, buddies[1], BOB, NULL, IMPP_AUTH_ALLOW), "set_rule");

    /* Options are only read by each call: one set serves every subscription. */
    impp_subscribe_options *options = NULL;
    check(impp_subscribe_options_new(&options), "impp_subscribe_options_new");
    check(impp_subscribe_options_set_expires(options, 3600), "set_expires");
    for (int i = 0; i < BUDDIES; i++) {
        uint64_t sub = 0;
        check(impp_engine_subscribe(engine, BOB, buddies[i], "presence", options, &sub),
              "impp_engine_subscribe");
    }
    impp_subscribe_options_free(options);
    run_events(engine, "Bob subscribes to his buddies:");

    char *alice = publish(engine, buddies[0], IMPP_BASIC_OPEN, "at my desk", 3600);
    char *carol = publish(engine, buddies[1], IMPP_BASIC_OPEN, "around", 60);
    char *dave = publish(engine, buddies[2], IMPP_BASIC_CLOSED, "on holiday", 3600);
    run_events(engine, "The buddies publish:");

    alice = modify(engine, alice, buddies[0], IMPP_BASIC_CLOSED, "in a meeting");
    run_events(engine, "Alice changes her status:");

    /* Carol's 60-second publication is not refreshed: it expires. */
    check(impp_engine_advance_clock(engine, 61 * 1000), "impp_engine_advance_clock");
    run_events(engine, "A minute later:");

    printf("Bob watches %d buddies; active subscriptions: %llu\n", BUDDIES,
           (unsigned long long)impp_engine_stat(engine, IMPP_STAT_SUBSCRIPTIONS_ACTIVE));

    impp_string_free(alice);
    impp_string_free(carol);
    impp_string_free(dave);
    /* Shut down: joins the engine's threads and frees everything it holds. */
    check(impp_engine_free(engine), "impp_engine_free");
    return 0;
}
