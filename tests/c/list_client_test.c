/* The list client (RFC 4662, subscriber side) from C, under ASan/UBSan (and valgrind): two
 * engines in one program. a.test serves the resource list sip:buddies@a.test (alice and
 * carol) on its SIP stack; b.test has the account sip:bob@a.test, which declares the list
 * (impp_account_add_list), so its stack subscribes to it at start. dave@b.test watches
 * alice with an ordinary impp_engine_subscribe and is told her state, which came through
 * the list. The list is then ended and made again at run time (impp_sip_unsubscribe_list,
 * impp_sip_subscribe_list); bad arguments to all three are refused with a message and
 * change nothing, and a declared list of b.test's own domain stops impp_sip_start. */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impp.h"
#include "check.h"

#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

#define LIST "sip:buddies@a.test"
#define ALICE "sip:alice@a.test"
#define DAVE "sip:dave@b.test"

static const char ALICE_PIDF[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@a.test\">"
    "<tuple id=\"t1\"><status><basic>open</basic></status><note>at her desk</note></tuple>"
    "</presence>";

static impp_engine *start_engine(const char *domain) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_config_add_domain(config, domain));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* a.test: users alice, carol and bob (the account's user), the list of alice and carol,
 * alice's state published, and a stack on UDP loopback sending each change at once. */
static impp_sip *serve_the_list(impp_engine *a) {
    CHECK_OK(impp_engine_set_user_password(a, ALICE, "alice-pw"));
    CHECK_OK(impp_engine_set_user_password(a, "sip:carol@a.test", "carol-pw"));
    CHECK_OK(impp_engine_set_user_password(a, "sip:bob@a.test", "bob-pw"));
    impp_resource_list *list = NULL;
    CHECK_OK(impp_resource_list_new(LIST, &list));
    CHECK_OK(impp_resource_list_add_entry(list, ALICE, NULL));
    CHECK_OK(impp_resource_list_add_entry(list, "sip:carol@a.test", NULL));
    CHECK_OK(impp_engine_set_list(a, list));
    impp_resource_list_free(list);
    char *etag = NULL;
    CHECK_OK(impp_engine_publish(a, ALICE, "presence", ALICE_PIDF, strlen(ALICE_PIDF),
                                 IMPP_EXPIRES_DEFAULT, &etag));
    impp_string_free(etag);
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_set_list_batch_interval_ms(config, 0));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(a, config, &sip));
    CHECK(sip != NULL);
    return sip;
}

/* Waits up to 20 s for a notification of `sub` whose body contains `text` (`shown`), or
 * does not (`!shown`: the state is gone, with no body or a neutral one); false when none
 * came. Other events are dropped. */
static bool wait_notification(impp_engine *engine, uint64_t sub, const char *text, bool shown) {
    /* Up to a minute of quiet: under valgrind on a busy machine, the list subscription's
       first NOTIFY once took longer than 20 s. */
    for (int i = 0; i < 600; i++) {
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(engine, 100, &ev));
        if (ev == NULL) {
            continue;
        }
        bool found = false;
        if (impp_event_kind(ev) == IMPP_EVENT_NOTIFICATION && impp_event_subscription(ev) == sub) {
            const char *body = NULL;
            size_t len = 0;
            bool has = impp_event_body(ev, &body, &len) == IMPP_OK && body != NULL &&
                       strstr(body, text) != NULL;
            found = has == shown;
        }
        impp_event_free(ev);
        if (found) {
            return true;
        }
    }
    return false;
}

/* The declaration's bad input: refused with a message, nothing added. */
static void declarations_refuse_bad_input(impp_account *account) {
    CHECK_FAILS(impp_account_add_list(NULL, LIST, "presence"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_add_list(account, NULL, "presence"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_add_list(account, LIST, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_add_list(account, "not a uri", "presence"), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_account_add_list(account, "sip:\xff@a.test", "presence"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_add_list(account, LIST, "bogus"), IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_FAILS(impp_account_add_list(account, LIST, "presence.winfo"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_account_list_count(account) == 0);
    CHECK(impp_account_list_count(NULL) == 0);
    CHECK(impp_account_list_uri(account, 0) == NULL);
    CHECK(impp_account_list_package(account, 0) == NULL);
    CHECK(impp_account_list_uri(NULL, 0) == NULL);
    CHECK(impp_account_list_package(NULL, 0) == NULL);
}

/* Run-time bad input: refused with a message, no list subscription made or ended. */
static void run_time_calls_refuse_bad_input(const impp_sip *sip) {
    bool ended = true;
    CHECK_FAILS(impp_sip_subscribe_list(NULL, 0, LIST, "presence"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, NULL, "presence"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, LIST, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 1, LIST, "presence"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, "sip:mine@b.test", "presence"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, LIST, "presence.winfo"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, "not a uri", "presence"), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, "sip:\xff@a.test", "presence"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_subscribe_list(sip, 0, LIST, "bogus"), IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_FAILS(impp_sip_unsubscribe_list(NULL, 0, LIST, "presence", &ended),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_unsubscribe_list(sip, 7, LIST, "presence", &ended),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_unsubscribe_list(sip, 0, "sip:mine@b.test", "presence", &ended),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_unsubscribe_list(sip, 0, "not a uri", "presence", &ended),
                IMPP_ERR_INVALID_URI);
    CHECK(ended); /* written only on success */
    /* A list never subscribed: nothing to end. */
    CHECK_OK(impp_sip_unsubscribe_list(sip, 0, LIST, "dialog", &ended));
    CHECK(!ended);
}

int main(void) {
    impp_engine *a = start_engine("a.test");
    impp_sip *a_sip = serve_the_list(a);
    char *registrar = NULL;
    CHECK_OK(impp_sip_local_address(a_sip, "udp", &registrar));

    impp_engine *b = start_engine("b.test");
    impp_account *account = NULL;
    CHECK_OK(impp_account_new("sip:bob@a.test", "bob-pw", registrar, &account));
    declarations_refuse_bad_input(account);
    CHECK_OK(impp_account_add_list(account, LIST, "presence"));
    CHECK_OK(impp_account_add_list(account, "pres:buddies@a.test", "presence")); /* the same */
    CHECK(impp_account_list_count(account) == 1);
    CHECK_STR(impp_account_list_uri(account, 0), LIST);
    CHECK_STR(impp_account_list_package(account, 0), "presence");
    CHECK(impp_account_list_uri(account, 1) == NULL);

    /* A declared list of b.test itself: the stack does not start. */
    impp_account *own = NULL;
    CHECK_OK(impp_account_new("sip:bob@a.test", "bob-pw", registrar, &own));
    CHECK_OK(impp_account_add_list(own, "sip:mine@b.test", "presence"));
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_account(config, own));
    impp_account_free(own);
    impp_sip *b_sip = NULL;
    CHECK_FAILS(impp_sip_start(b, config, &b_sip), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(b_sip == NULL);
    CHECK(strstr(impp_last_error(), "sip:mine@b.test") != NULL);

    /* dave watches alice before the stack runs: nothing is known of her yet. */
    uint64_t alice = 0;
    CHECK_OK(impp_engine_subscribe(b, DAVE, ALICE, "presence", NULL, &alice));

    /* The stack subscribes to the declared list as it starts; dave is told alice's state. */
    config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_account(config, account));
    impp_account_free(account); /* the configuration keeps its own copy */
    CHECK_OK(impp_sip_start(b, config, &b_sip));
    CHECK(wait_notification(b, alice, "at her desk", true));

    run_time_calls_refuse_bad_input(b_sip);

    /* Ended at run time: alice's mirrored state goes, and dave is told. */
    bool ended = false;
    CHECK_OK(impp_sip_unsubscribe_list(b_sip, 0, LIST, "presence", &ended));
    CHECK(ended);
    CHECK(wait_notification(b, alice, "at her desk", false));
    CHECK_OK(impp_sip_unsubscribe_list(b_sip, 0, LIST, "presence", &ended));
    CHECK(!ended);

    /* Subscribed again at run time: dave sees her again. */
    CHECK_OK(impp_sip_subscribe_list(b_sip, 0, LIST, "presence"));
    CHECK_OK(impp_sip_subscribe_list(b_sip, 0, LIST, "presence")); /* a no-op */
    CHECK(wait_notification(b, alice, "at her desk", true));

    CHECK_OK(impp_sip_free(b_sip));
    CHECK_OK(impp_engine_free(b));
    impp_string_free(registrar);
    CHECK_OK(impp_sip_free(a_sip));
    CHECK_OK(impp_engine_free(a));
    return check_report("list_client_test");
}
