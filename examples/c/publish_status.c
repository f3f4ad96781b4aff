/*
 * Publishing from C: Alice's client publishes her status, changes it (available, on the
 * phone, away), refreshes the publication before it runs out, and withdraws it when she
 * signs off. Bob, who may watch her, prints what each step shows him.
 *
 * The engine runs on a manual clock, so the program ends by itself. From the repository
 * root, after `cargo build --release`:
 *   cc -Iinclude examples/c/publish_status.c -Ltarget/release -limpp \
 *      -Wl,-rpath,$PWD/target/release && ./a.out
 * or, against an installed libimpp (scripts/install.sh):
 *   cc examples/c/publish_status.c $(pkg-config --cflags --libs impp) && ./a.out
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

/* Alice's status as PIDF text (owned: impp_string_free): her phone tuple, an optional
 * RPID activity and a note. */
static char *status_xml(impp_basic basic, const char *activity, const char *note,
                        size_t *len) {
    impp_presence *doc = NULL;
    check(impp_presence_new(ALICE, &doc), "impp_presence_new");
    check(impp_presence_add_tuple(doc, "phone", basic, NULL), "add_tuple");
    if (activity != NULL) check(impp_presence_add_activity(doc, activity), "add_activity");
    check(impp_presence_add_note(doc, note, NULL), "add_note");
    char *xml = NULL;
    check(impp_presence_to_xml(doc, &xml, len), "impp_presence_to_xml");
    impp_presence_free(doc);
    return xml;
}

/* Print what Bob's notifications show him (after the engine has caught up). */
static void show_bob(impp_engine *engine) {
    check(impp_engine_sync(engine), "impp_engine_sync");
    for (;;) {
        impp_event *ev = NULL;
        check(impp_engine_next_event(engine, 0, &ev), "impp_engine_next_event");
        if (ev == NULL) break;
        impp_presence *seen = NULL;
        if (impp_event_kind(ev) == IMPP_EVENT_NOTIFICATION && impp_event_has_document(ev) &&
            impp_event_presence(ev, &seen) == IMPP_OK) {
            printf("    Bob sees:");
            if (impp_presence_tuple_count(seen) == 0) printf(" nothing published");
            for (size_t i = 0; i < impp_presence_tuple_count(seen); i++) {
                impp_basic basic = IMPP_BASIC_UNSET;
                check(impp_presence_tuple_basic(seen, i, &basic), "tuple_basic");
                printf(" %s", basic == IMPP_BASIC_OPEN ? "open" : "closed");
            }
            for (size_t i = 0; i < impp_presence_activity_count(seen); i++) {
                const char *name = NULL, *text = NULL;
                check(impp_presence_activity(seen, i, &name, &text), "activity");
                printf(", %s", name);
            }
            if (impp_presence_note_count(seen) > 0) {
                const char *note = NULL, *lang = NULL;
                check(impp_presence_note(seen, 0, &note, &lang), "note");
                printf(" \"%s\"", note);
            }
            printf("\n");
            impp_presence_free(seen);
        }
        impp_event_free(ev);
    }
}

/* Replace the published document; frees the old entity tag, returns the new one. */
static char *change(impp_engine *engine, char *etag, impp_basic basic, const char *activity,
                    const char *note) {
    size_t len = 0;
    char *xml = status_xml(basic, activity, note, &len);
    char *new_etag = NULL;
    check(impp_engine_modify_publication(engine, etag, "presence", xml, len, &new_etag),
          "impp_engine_modify_publication");
    impp_string_free(xml);
    impp_string_free(etag);
    return new_etag;
}

int main(void) {
    impp_config *config = NULL;
    check(impp_config_new(&config), "impp_config_new");
    check(impp_config_add_domain(config, "example.test"), "add_domain");
    check(impp_config_use_manual_clock(config), "use_manual_clock");
    impp_engine *engine = NULL;
    check(impp_engine_new(config, &engine), "impp_engine_new"); /* consumes config */

    /* Alice lets Bob watch her; Bob subscribes. */
    check(impp_engine_set_rule(engine, ALICE, BOB, NULL, IMPP_AUTH_ALLOW), "set_rule");
    uint64_t sub = 0; /* NULL options: the defaults (the configured expiry, no filter) */
    check(impp_engine_subscribe(engine, BOB, ALICE, "presence", NULL, &sub),
          "impp_engine_subscribe");
    show_bob(engine);

    /* 1. Sign in: publish for 120 seconds. */
    size_t len = 0;
    char *xml = status_xml(IMPP_BASIC_OPEN, NULL, "available", &len);
    char *etag = NULL;
    check(impp_engine_publish(engine, ALICE, "presence", xml, len, 120, &etag),
          "impp_engine_publish");
    impp_string_free(xml);
    printf("Alice signs in (entity tag %s)\n", etag);
    show_bob(engine);

    /* 2. A call starts, then ends and she steps out. */
    etag = change(engine, etag, IMPP_BASIC_OPEN, "on-the-phone", "on a call");
    printf("Alice takes a call\n");
    show_bob(engine);
    etag = change(engine, etag, IMPP_BASIC_CLOSED, "away", "back soon");
    printf("Alice steps out\n");
    show_bob(engine);

    /* 3. 100 seconds on, her client refreshes before the 120 run out: a new tag. */
    check(impp_engine_advance_clock(engine, 100 * 1000), "impp_engine_advance_clock");
    char *refreshed = NULL;
    check(impp_engine_refresh_publication(engine, etag, 120, &refreshed),
          "impp_engine_refresh_publication");
    impp_string_free(etag);
    etag = refreshed;
    check(impp_engine_advance_clock(engine, 100 * 1000), "impp_engine_advance_clock");
    printf("Alice's client refreshes; 200 seconds after signing in she is still published: "
           "%llu publication(s)\n",
           (unsigned long long)impp_engine_stat(engine, IMPP_STAT_PUBLICATIONS));
    show_bob(engine);

    /* 4. Sign off: withdraw the publication. */
    check(impp_engine_remove_publication(engine, etag), "impp_engine_remove_publication");
    impp_string_free(etag);
    printf("Alice signs off\n");
    show_bob(engine);

    check(impp_engine_free(engine), "impp_engine_free");
    return 0;
}
