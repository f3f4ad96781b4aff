/* Taking an engine's events in the C tests that poll (after a barrier, so every event the
 * calls before produced is there). Needs check.h first. */
#ifndef IMPP_TEST_EVENTS_H
#define IMPP_TEST_EVENTS_H

#include "impp.h"

/* Every event produced so far, in order, into `events` (at most `max`; more is a failure);
 * returns how many. */
static inline size_t take_all(impp_engine *engine, impp_event **events, size_t max) {
    CHECK_OK(impp_engine_sync(engine));
    size_t n = 0;
    for (;;) {
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(engine, 0, &ev));
        if (ev == NULL) {
            break;
        }
        if (n == max) {
            fprintf(stderr, "take_all: more than %zu events\n", max);
            check_failures++;
            impp_event_free(ev);
            continue;
        }
        events[n++] = ev;
    }
    return n;
}

static inline void free_all(impp_event **events, size_t n) {
    for (size_t i = 0; i < n; i++) {
        impp_event_free(events[i]);
    }
}

/* Takes and frees every event produced so far; returns how many. */
static inline size_t drain(impp_engine *engine) {
    impp_event *events[64];
    size_t n = take_all(engine, events, 64);
    free_all(events, n);
    return n;
}

#endif
