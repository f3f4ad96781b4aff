/* The log callback as a C program uses it, under ASan/UBSan (and valgrind): lines collected
 * under a mutex from several library threads, levels and their filtering, free_user_data
 * exactly once (also when replaced from inside the callback), bad input. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impp.h"
#include "check.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define MAX_LINES 256

static const char DESK_OPEN[] =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>open</basic></status></tuple></presence>";

static const char DESK_CLOSED[] =
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:alice@example.test'>"
    "<tuple id='desk'><status><basic>closed</basic></status></tuple></presence>";

/* A filter whose result cannot be PIDF (a tuple without its id): the engine sends the
 * unfiltered document and logs a warning. */
static const char BAD_FILTER[] =
    "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'><filter id='f1'>"
    "<what><exclude>/pidf:presence/pidf:tuple/@id</exclude></what>"
    "</filter></filter-set>";

typedef struct {
    int level;
    char *target;
    char *message;
} line;

typedef struct {
    pthread_mutex_t lock;
    line lines[MAX_LINES];
    size_t count;
    size_t dropped; /* lines beyond MAX_LINES */
    atomic_int frees;
    atomic_int in_call; /* calls in progress */
    atomic_int freed_during_call;
} collector;

static void collector_init(collector *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

static void collector_clear(collector *c) {
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->count; i++) {
        free(c->lines[i].target);
        free(c->lines[i].message);
    }
    c->count = 0;
    c->dropped = 0;
    pthread_mutex_unlock(&c->lock);
}

static void collector_destroy(collector *c) {
    collector_clear(c);
    pthread_mutex_destroy(&c->lock);
}

static char *copy(const char *s) {
    size_t n = strlen(s) + 1;
    char *out = malloc(n);
    if (out) {
        memcpy(out, s, n);
    }
    return out;
}

/* The callback: may run on any library thread, several at once. */
static void collect(impp_log_level level, const char *target, const char *message, void *user_data) {
    collector *c = user_data;
    atomic_fetch_add(&c->in_call, 1);
    pthread_mutex_lock(&c->lock);
    if (c->count < MAX_LINES) {
        c->lines[c->count].level = level;
        c->lines[c->count].target = copy(target);
        c->lines[c->count].message = copy(message);
        c->count++;
    } else {
        c->dropped++;
    }
    pthread_mutex_unlock(&c->lock);
    atomic_fetch_sub(&c->in_call, 1);
}

static void collector_free(void *user_data) {
    collector *c = user_data;
    if (atomic_load(&c->in_call) != 0) {
        atomic_fetch_add(&c->freed_during_call, 1);
    }
    atomic_fetch_add(&c->frees, 1);
}

/* Lines at `level` whose target is `target` and whose message contains `needle`. */
static size_t count_lines(collector *c, int level, const char *target, const char *needle) {
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->count; i++) {
        const line *l = &c->lines[i];
        if (l->level == level && l->target && strcmp(l->target, target) == 0 && l->message &&
            strstr(l->message, needle) != NULL) {
            n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

static size_t lines_at(collector *c, int level) {
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->count; i++) {
        n += c->lines[i].level == level;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

static impp_engine *start_engine(int policy) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, policy));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

static void drain(impp_engine *engine) {
    CHECK_OK(impp_engine_sync(engine));
    for (;;) {
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(engine, 0, &ev));
        if (ev == NULL) {
            break;
        }
        impp_event_free(ev);
    }
}

/* An engine's start and stop are info lines of "impp::engine", on the calling thread. */
static void test_info_lines_and_levels(collector *c) {
    CHECK_OK(impp_log_set_callback(collect, c, collector_free, IMPP_LOG_INFO));
    impp_engine *engine = start_engine(IMPP_AUTH_ALLOW);
    CHECK(count_lines(c, IMPP_LOG_INFO, "impp::engine", "engine started: 2 workers") == 1);

    /* Debug lines (authorization decisions) are below the maximum level: not delivered. */
    uint64_t id = 0;
    CHECK_OK(impp_engine_subscribe(engine, BOB, ALICE, "presence", NULL, &id));
    drain(engine);
    CHECK(lines_at(c, IMPP_LOG_DEBUG) == 0);

    /* Raised to debug: the next decision is. */
    CHECK_OK(impp_log_set_level(IMPP_LOG_DEBUG));
    CHECK_OK(impp_engine_subscribe(engine, "sip:carol@example.test", ALICE, "presence", NULL, &id));
    drain(engine);
    CHECK(count_lines(c, IMPP_LOG_DEBUG, "impp::engine::shard", "authorized: allow") == 1);
    CHECK_OK(impp_log_set_level(IMPP_LOG_INFO));

    CHECK_OK(impp_engine_free(engine));
    CHECK(count_lines(c, IMPP_LOG_INFO, "impp::engine", "engine stopped") == 1);
    CHECK(atomic_load(&c->frees) == 0);
}

/* A filter that cannot be applied: a warning from a shard thread, once per subscription. */
static void test_warning_from_a_shard_thread(collector *c) {
    collector_clear(c);
    impp_engine *engine = start_engine(IMPP_AUTH_ALLOW);
    char *etag = NULL;
    CHECK_OK(impp_engine_publish(engine, ALICE, "presence", DESK_OPEN, strlen(DESK_OPEN), 60,
                                 &etag));
    uint64_t id = 0;
    impp_subscribe_options *options = NULL;
    CHECK_OK(impp_subscribe_options_new(&options));
    CHECK_OK(impp_subscribe_options_set_filter(options, BAD_FILTER, strlen(BAD_FILTER)));
    CHECK_OK(impp_engine_subscribe(engine, BOB, ALICE, "presence", options, &id));
    impp_subscribe_options_free(options);
    drain(engine);
    CHECK(count_lines(c, IMPP_LOG_WARN, "impp::engine::subscription",
                      "filter cannot be applied") == 1);
    /* The next document fails the same way: not warned again. */
    char *etag2 = NULL;
    CHECK_OK(impp_engine_modify_publication(engine, etag, "presence", DESK_CLOSED,
                                            strlen(DESK_CLOSED), &etag2));
    drain(engine);
    CHECK(impp_engine_stat(engine, IMPP_STAT_NOTIFICATIONS_SENT) == 2);
    CHECK(lines_at(c, IMPP_LOG_WARN) == 1);
    impp_string_free(etag);
    impp_string_free(etag2);
    CHECK_OK(impp_engine_free(engine));
}

/* Engines started and stopped on several threads at once: every line arrives, whole. */
#define THREADS 4
#define ROUNDS 3

static void *churn(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        impp_engine *engine = start_engine(IMPP_AUTH_CONFIRM);
        CHECK_OK(impp_engine_free(engine));
    }
    return NULL;
}

static void test_concurrent_lines(collector *c) {
    collector_clear(c);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, churn, NULL) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    CHECK(count_lines(c, IMPP_LOG_INFO, "impp::engine", "engine started") == THREADS * ROUNDS);
    CHECK(count_lines(c, IMPP_LOG_INFO, "impp::engine", "engine stopped") == THREADS * ROUNDS);
    CHECK(c->dropped == 0);
}

/* Bad input changes nothing and frees the rejected user_data at once. */
static void test_bad_input(collector *c) {
    collector other;
    collector_init(&other);
    CHECK_STATUS(impp_log_set_callback(collect, &other, collector_free, 0),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_last_error() != NULL && strstr(impp_last_error(), "max_level 0") != NULL);
    CHECK(atomic_load(&other.frees) == 1);
    CHECK_STATUS(impp_log_set_callback(collect, &other, collector_free, 6),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK(atomic_load(&other.frees) == 2);
    CHECK_STATUS(impp_log_set_level(-1), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_log_set_level(IMPP_LOG_TRACE + 1), IMPP_ERR_INVALID_ARGUMENT);

    /* NULL callback with user data: freed at once, never called. */
    CHECK_OK(impp_log_set_callback(NULL, &other, collector_free, IMPP_LOG_WARN));
    CHECK(atomic_load(&other.frees) == 3);
    CHECK(other.count == 0);
    collector_destroy(&other);

    /* The first collector lost its place to the NULL callback: freed once, right there. */
    CHECK(atomic_load(&c->frees) == 1);
    CHECK(atomic_load(&c->freed_during_call) == 0);

    /* Back on the default: nothing reaches the old collector any more. */
    CHECK_OK(impp_log_set_level(IMPP_LOG_INFO));
    collector_clear(c);
    impp_engine *engine = start_engine(IMPP_AUTH_ALLOW);
    CHECK_OK(impp_engine_free(engine));
    CHECK(c->count == 0);
    CHECK(atomic_load(&c->frees) == 1);
}

/* A callback that replaces itself from inside its own call: its user_data is freed after
 * that call has returned, and exactly once. */
static atomic_int self_replacing_calls;
static atomic_int self_replacing_frees;
static atomic_int self_replacing_in_call;
static atomic_int self_replacing_freed_early;

static void replace_myself(impp_log_level level, const char *target, const char *message, void *user_data) {
    (void)level;
    (void)target;
    (void)message;
    (void)user_data;
    atomic_store(&self_replacing_in_call, 1);
    atomic_fetch_add(&self_replacing_calls, 1);
    CHECK_OK(impp_log_set_callback(NULL, NULL, NULL, IMPP_LOG_WARN));
    atomic_store(&self_replacing_in_call, 0);
}

static void replaced_free(void *user_data) {
    CHECK(user_data == &self_replacing_calls);
    if (atomic_load(&self_replacing_in_call)) {
        atomic_fetch_add(&self_replacing_freed_early, 1);
    }
    atomic_fetch_add(&self_replacing_frees, 1);
}

static void test_replaced_from_inside_the_callback(void) {
    CHECK_OK(impp_log_set_callback(replace_myself, &self_replacing_calls, replaced_free,
                                   IMPP_LOG_INFO));
    impp_engine *engine = start_engine(IMPP_AUTH_ALLOW);
    CHECK_OK(impp_engine_free(engine));
    CHECK(atomic_load(&self_replacing_calls) == 1);
    CHECK(atomic_load(&self_replacing_frees) == 1);
    CHECK(atomic_load(&self_replacing_freed_early) == 0);
}

int main(void) {
    collector c;
    collector_init(&c);
    test_info_lines_and_levels(&c);
    test_warning_from_a_shard_thread(&c);
    test_concurrent_lines(&c);
    test_bad_input(&c);
    test_replaced_from_inside_the_callback();
    CHECK_OK(impp_log_set_callback(NULL, NULL, NULL, IMPP_LOG_WARN));
    CHECK(atomic_load(&c.frees) == 1);
    collector_destroy(&c);
    return check_report("log_test");
}
