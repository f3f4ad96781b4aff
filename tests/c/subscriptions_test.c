/* Listing subscriptions from C, under ASan/UBSan (and valgrind): a snapshot of one
 * presentity's subscriptions, or of all, with every field read back, a pending watcher
 * decided by the id the list gives, and bad input (NULL, bad URIs, indexes past the end). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "impp.h"
#include "check.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define CAROL "sip:carol@other.test"
#define DAVE "sip:dave@example.test"

#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

/* Same domain allowed, other domains pending (confirm). */
static impp_engine *start_engine(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_CONFIRM));
    CHECK_OK(impp_config_set_same_domain_policy(config, IMPP_AUTH_ALLOW));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    return engine;
}

/* The index of subscription `id` in `list`, or the count when it is not there. */
static size_t index_of(const impp_subscription_list *list, uint64_t id) {
    size_t n = impp_subscription_list_count(list);
    for (size_t i = 0; i < n; i++) {
        uint64_t got = 0;
        CHECK_OK(impp_subscription_list_id(list, i, &got));
        if (got == id) return i;
    }
    return n;
}

static void test_listing(void) {
    impp_engine *e = start_engine();
    uint64_t bob = 0, carol = 0, dave = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "presence", NULL, &bob));
    CHECK_OK(impp_engine_subscribe(e, CAROL, ALICE, "presence", NULL, &carol));
    CHECK_OK(impp_engine_subscribe(e, ALICE, DAVE, "dialog", NULL, &dave));

    impp_subscription_list *list = NULL;
    CHECK_OK(impp_engine_subscriptions(e, ALICE, &list));
    CHECK(impp_subscription_list_count(list) == 2);
    size_t b = index_of(list, bob), c = index_of(list, carol);
    CHECK(b < 2 && c < 2 && b != c);
    CHECK(index_of(list, dave) == 2);
    if (b < 2 && c < 2) {
        const char *text = NULL;
        CHECK_OK(impp_subscription_list_watcher(list, b, &text));
        CHECK_STR(text, BOB);
        CHECK_OK(impp_subscription_list_presentity(list, b, &text));
        CHECK_STR(text, ALICE);
        CHECK_OK(impp_subscription_list_package(list, b, &text));
        CHECK_STR(text, "presence");
        impp_subscription_state state = IMPP_SUBSCRIPTION_NONE;
        impp_auth_action action = (impp_auth_action)0;
        CHECK_OK(impp_subscription_list_state(list, b, &state));
        CHECK(state == IMPP_SUBSCRIPTION_ACTIVE);
        CHECK_OK(impp_subscription_list_authorization(list, b, &action));
        CHECK(action == IMPP_AUTH_ALLOW);
        CHECK_OK(impp_subscription_list_state(list, c, &state));
        CHECK(state == IMPP_SUBSCRIPTION_PENDING);
        CHECK_OK(impp_subscription_list_authorization(list, c, &action));
        CHECK(action == IMPP_AUTH_CONFIRM);
        uint32_t expires = 0;
        CHECK_OK(impp_subscription_list_expires_in(list, c, &expires));
        CHECK(expires > 0);

        /* The pending watcher's id is what a decision takes; the snapshot does not move. */
        uint64_t pending = 0;
        CHECK_OK(impp_subscription_list_id(list, c, &pending));
        CHECK_OK(impp_engine_authorize(e, pending, IMPP_AUTH_ALLOW));
        CHECK_OK(impp_subscription_list_state(list, c, &state));
        CHECK(state == IMPP_SUBSCRIPTION_PENDING);
    }
    /* Bad indexes change nothing written. */
    const char *untouched = "untouched";
    CHECK_FAILS(impp_subscription_list_watcher(list, 2, &untouched), IMPP_ERR_NOT_FOUND);
    CHECK_STR(untouched, "untouched");
    CHECK_FAILS(impp_subscription_list_watcher(list, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    impp_subscription_list_free(list);

    /* A fresh snapshot shows the decision; NULL lists every presentity's. */
    CHECK_OK(impp_engine_subscriptions(e, ALICE, &list));
    c = index_of(list, carol);
    impp_subscription_state state = IMPP_SUBSCRIPTION_NONE;
    CHECK(c < 2);
    if (c < 2) {
        CHECK_OK(impp_subscription_list_state(list, c, &state));
        CHECK(state == IMPP_SUBSCRIPTION_ACTIVE);
    }
    impp_subscription_list_free(list);
    CHECK_OK(impp_engine_subscriptions(e, NULL, &list));
    CHECK(impp_subscription_list_count(list) == 3);
    size_t d = index_of(list, dave);
    CHECK(d < 3);
    if (d < 3) {
        const char *package = NULL;
        CHECK_OK(impp_subscription_list_package(list, d, &package));
        CHECK_STR(package, "dialog");
    }
    impp_subscription_list_free(list);
    CHECK_OK(impp_engine_subscriptions(e, "sip:nobody@example.test", &list));
    CHECK(impp_subscription_list_count(list) == 0);
    impp_subscription_list_free(list);

    /* Bad input. */
    impp_subscription_list *not_written = (impp_subscription_list *)(uintptr_t)0x1;
    CHECK_FAILS(impp_engine_subscriptions(NULL, ALICE, &not_written), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscriptions(e, ALICE, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_subscriptions(e, "not a uri", &not_written), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_engine_subscriptions(e, "sip:\xc3\x28@x", &not_written),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(not_written == (impp_subscription_list *)(uintptr_t)0x1);
    CHECK(impp_subscription_list_count(NULL) == 0);
    uint64_t id = 0;
    CHECK_FAILS(impp_subscription_list_id(NULL, 0, &id), IMPP_ERR_INVALID_ARGUMENT);
    impp_subscription_list_free(NULL);
    CHECK_OK(impp_engine_free(e));
}

int main(void) {
    test_listing();
    return check_report("subscriptions_test");
}
