/* The SIP stack as a C program starts it over its engine, under ASan/UBSan (and valgrind):
 * configuration errors that change nothing, a stack on loopback answering OPTIONS and
 * challenging an unauthenticated REGISTER, a MESSAGE arriving over SIP that the
 * application receives through its own event polling while the stack runs, an address in
 * use refused as a network error, and impp_sip_free refused from inside an event callback. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "impp.h"
#include "check.h"

#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

static impp_engine *start_engine(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* A stack on UDP and TCP loopback, any free port. */
static impp_sip *start_stack(impp_engine *engine, bool authenticate) {
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_listen(config, "tcp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_set_authenticate(config, authenticate));
    CHECK_OK(impp_sip_config_set_t1_ms(config, 100));
    CHECK_OK(impp_sip_config_add_route(config, "other.test=udp:127.0.0.1:9"));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    return sip;
}

/* The stack's UDP port. */
static int udp_port(const impp_sip *sip) {
    char *address = NULL;
    CHECK_OK(impp_sip_local_address(sip, "udp", &address));
    if (address == NULL) {
        return 0;
    }
    CHECK(strncmp(address, "udp:127.0.0.1:", 14) == 0);
    int port = atoi(strrchr(address, ':') + 1);
    impp_string_free(address);
    CHECK(port > 0);
    return port;
}

/* Sends `request` over UDP to 127.0.0.1:`port` and returns the first answer that is not a
 * provisional one (into `answer`), or an empty string after 5 s. */
static void exchange(int port, const char *request, char *answer, size_t size) {
    answer[0] = '\0';
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = {0};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    local.sin_port = htons(45060);
    CHECK(bind(fd, (struct sockaddr *)&local, sizeof local) == 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    CHECK(sendto(fd, request, strlen(request), 0, (struct sockaddr *)&to, sizeof to) ==
          (ssize_t)strlen(request));
    for (;;) {
        ssize_t n = recv(fd, answer, size - 1, 0);
        if (n <= 0) {
            answer[0] = '\0';
            break;
        }
        answer[n] = '\0';
        if (strncmp(answer, "SIP/2.0 1", 9) != 0) {
            break;
        }
    }
    close(fd);
}

static void configuration_errors_change_nothing(impp_engine *engine) {
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_FAILS(impp_sip_config_add_listen(config, "sctp:127.0.0.1:5060"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_listen(config, "udp:localhost:5060"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_listen(config, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_route(config, "b.test"), IMPP_ERR_INVALID_ARGUMENT);
    /* A host name is a route target (resolved by DNS, RFC 3263), but one without a dot is
       refused, and so is a transport that is no next hop. */
    CHECK_FAILS(impp_sip_config_add_route(config, "b.test=udp:nowhere:5060"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_route(config, "b.test=ws:127.0.0.1:5060"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_sip_config_add_route(config, "c.test=udp:sip.c.test:5060"));
    CHECK_FAILS(impp_sip_config_set_t1_ms(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_workers(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_authenticate(NULL, true), IMPP_ERR_INVALID_ARGUMENT);
    /* Nothing to listen on: refused, and the configuration is consumed anyway. */
    impp_sip *sip = NULL;
    CHECK_FAILS(impp_sip_start(engine, config, &sip), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(sip == NULL);
    CHECK_FAILS(impp_sip_start(engine, NULL, &sip), IMPP_ERR_INVALID_ARGUMENT);
    impp_sip_config_free(NULL);
    CHECK_OK(impp_sip_free(NULL));
}

static void answers_and_challenges(impp_engine *engine) {
    CHECK_OK(impp_engine_set_user_password(engine, "sip:alice@example.test", "secret"));
    impp_sip *sip = start_stack(engine, true);
    char *address = NULL;
    CHECK_FAILS(impp_sip_local_address(sip, "sctp", &address), IMPP_ERR_INVALID_ARGUMENT);
    int port = udp_port(sip);
    char answer[4096];
    exchange(port,
             "OPTIONS sip:example.test SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:45060;branch=z9hG4bKc-options-1;rport\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:probe@example.test>;tag=1\r\n"
             "To: <sip:example.test>\r\n"
             "Call-ID: c-options-1\r\n"
             "CSeq: 1 OPTIONS\r\n"
             "Content-Length: 0\r\n\r\n",
             answer, sizeof answer);
    CHECK(strncmp(answer, "SIP/2.0 200", 11) == 0);
    CHECK(strstr(answer, "Allow-Events: presence") != NULL);

    exchange(port,
             "REGISTER sip:example.test SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:45060;branch=z9hG4bKc-register-1;rport\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:alice@example.test>;tag=2\r\n"
             "To: <sip:alice@example.test>\r\n"
             "Call-ID: c-register-1\r\n"
             "CSeq: 1 REGISTER\r\n"
             "Contact: <sip:alice@127.0.0.1:45060>\r\n"
             "Expires: 600\r\n"
             "Content-Length: 0\r\n\r\n",
             answer, sizeof answer);
    CHECK(strncmp(answer, "SIP/2.0 401", 11) == 0);
    CHECK(strstr(answer, "WWW-Authenticate: Digest") != NULL);
    CHECK_OK(impp_sip_free(sip));
}

static void messages_over_sip_reach_the_application(impp_engine *engine) {
    impp_sip *sip = start_stack(engine, false);
    int port = udp_port(sip);
    /* The directory has users (alice): bob must be one too to receive messages. */
    CHECK_OK(impp_engine_set_user_password(engine, "sip:bob@example.test", "bob-secret"));
    CHECK_OK(impp_engine_login(engine, "sip:bob@example.test", "app", IMPP_EXPIRES_DEFAULT,
                               NULL));
    char answer[4096];
    exchange(port,
             "MESSAGE sip:bob@example.test SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:45060;branch=z9hG4bKc-message-1;rport\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:carol@example.test>;tag=3\r\n"
             "To: <sip:bob@example.test>\r\n"
             "Call-ID: c-message-1\r\n"
             "CSeq: 1 MESSAGE\r\n"
             "Content-Type: text/plain\r\n"
             "Content-Length: 5\r\n\r\n"
             "hello",
             answer, sizeof answer);
    if (strncmp(answer, "SIP/2.0 200", 11) != 0) {
        fprintf(stderr, "MESSAGE answered: %s\n", answer);
        check_failures++;
    }

    /* The application polls as without the stack and finds the message. */
    bool found = false;
    for (int i = 0; i < 50 && !found; i++) {
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(engine, 100, &ev));
        if (ev == NULL) {
            continue;
        }
        if (impp_event_kind(ev) == IMPP_EVENT_MESSAGE) {
            const uint8_t *body = NULL;
            size_t len = 0;
            CHECK_OK(impp_event_message_body(ev, &body, &len));
            CHECK(len == 5 && memcmp(body, "hello", 5) == 0);
            CHECK_STR(impp_event_sender(ev), "sip:carol@example.test");
            found = true;
        }
        impp_event_free(ev);
    }
    CHECK(found);
    CHECK_OK(impp_sip_free(sip));
}

/* Waits up to 10 s for an event of `kind` on `engine`; returns it (owned) or NULL. */
static impp_event *wait_event(impp_engine *engine, impp_event_type kind) {
    for (int i = 0; i < 100; i++) {
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(engine, 100, &ev));
        if (ev != NULL && impp_event_kind(ev) == kind) {
            return ev;
        }
        impp_event_free(ev);
    }
    return NULL;
}

/* The user-agent role: a second engine (client.test) with the account alice@example.test at
 * the first engine's stack (digest authentication on) sends as alice and receives for her. */
static void an_account_sends_and_receives(impp_engine *server) {
    impp_sip *server_sip = start_stack(server, true);
    char *registrar = NULL;
    CHECK_OK(impp_sip_local_address(server_sip, "udp", &registrar));

    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_add_domain(config, "client.test"));
    impp_engine *client = NULL;
    CHECK_OK(impp_engine_new(config, &client));
    impp_sip_config *sip_config = NULL;
    CHECK_OK(impp_sip_config_new(&sip_config));
    CHECK_OK(impp_sip_config_add_listen(sip_config, "udp:127.0.0.1:0"));
    impp_account *account = NULL;
    CHECK_FAILS(impp_account_new("not a uri", "secret", registrar, &account),
                IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_account_new("sip:alice@example.test", "secret", "udp:nowhere", &account),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(account == NULL);
    /* An AOR without a user part needs a user name. */
    CHECK_OK(impp_account_new("sip:example.test", "secret", registrar, &account));
    CHECK_FAILS(impp_sip_config_add_account(sip_config, account), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_account(sip_config, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_account(NULL, account), IMPP_ERR_INVALID_ARGUMENT);
    impp_account_free(account);
    account = NULL;
    CHECK_OK(impp_account_new("sip:alice@example.test", "secret", registrar, &account));
    CHECK_OK(impp_account_set_expires(account, 600));
    CHECK_OK(impp_sip_config_add_account(sip_config, account));
    impp_account_free(account); /* the configuration keeps its own copy */
    impp_sip *client_sip = NULL;
    CHECK_OK(impp_sip_start(client, sip_config, &client_sip));

    uint64_t id = 0;
    /* alice -> bob (logged in at the server's application): delivered through the account. */
    CHECK_OK(impp_engine_login(server, "sip:bob@example.test", "app2", IMPP_EXPIRES_DEFAULT,
                               NULL));
    CHECK_OK(impp_engine_send_message(client, "sip:alice@example.test", "sip:bob@example.test",
                                      "text/plain", (const uint8_t *)"hi bob", 6, NULL,
                                      &id));
    impp_event *ev = wait_event(client, IMPP_EVENT_DELIVERY);
    CHECK(ev != NULL && impp_event_delivery_outcome(ev) == IMPP_DELIVERY_DELIVERED);
    impp_event_free(ev);
    ev = wait_event(server, IMPP_EVENT_MESSAGE);
    CHECK(ev != NULL);
    if (ev != NULL) {
        CHECK_STR(impp_event_sender(ev), "sip:alice@example.test");
    }
    impp_event_free(ev);

    /* bob -> alice: relayed to the contact the account registered (stored until then). */
    CHECK_OK(impp_engine_send_message(server, "sip:bob@example.test", "sip:alice@example.test",
                                      "text/plain", (const uint8_t *)"hi alice", 8, NULL,
                                      &id));
    ev = wait_event(client, IMPP_EVENT_MESSAGE);
    CHECK(ev != NULL);
    if (ev != NULL) {
        const uint8_t *body = NULL;
        size_t len = 0;
        CHECK_OK(impp_event_message_body(ev, &body, &len));
        CHECK(len == 8 && memcmp(body, "hi alice", 8) == 0);
    }
    impp_event_free(ev);

    CHECK_OK(impp_sip_free(client_sip));
    CHECK_OK(impp_engine_free(client));
    impp_string_free(registrar);
    CHECK_OK(impp_sip_free(server_sip));
}

/* A listen address another socket holds is a network failure, not a storage one. */
static void an_address_in_use_is_a_network_error(impp_engine *engine) {
    impp_sip *first = start_stack(engine, false);
    char *address = NULL;
    CHECK_OK(impp_sip_local_address(first, "udp", &address));
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, address));
    impp_sip *second = NULL;
    CHECK_FAILS(impp_sip_start(engine, config, &second), IMPP_ERR_NETWORK);
    CHECK(second == NULL);
    CHECK_STR(impp_status_name(IMPP_ERR_NETWORK), "IMPP_ERR_NETWORK");
    impp_string_free(address);
    CHECK_OK(impp_sip_free(first));
}

/* What the event callback of freeing_inside_a_callback_is_refused saw. */
struct free_inside {
    pthread_mutex_t lock;
    pthread_cond_t done;
    impp_sip *sip;
    bool ran;
    impp_status status;
};

static void free_the_stack(const impp_event *ev, void *user_data) {
    (void)ev;
    struct free_inside *f = user_data;
    pthread_mutex_lock(&f->lock);
    if (!f->ran) {
        f->status = impp_sip_free(f->sip);
        f->ran = true;
        pthread_cond_signal(&f->done);
    }
    pthread_mutex_unlock(&f->lock);
}

/* impp_sip_free from inside an event callback is refused as impp_engine_free is: nothing is
 * stopped, the stack keeps answering, and it frees normally afterwards. */
static void freeing_inside_a_callback_is_refused(impp_engine *engine) {
    struct free_inside f;
    memset(&f, 0, sizeof f);
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.done, NULL);
    f.sip = start_stack(engine, false);
    CHECK_OK(impp_engine_set_event_callback(engine, free_the_stack, &f, NULL));
    /* A watcher of the application (not over SIP): its notification reaches the callback. */
    uint64_t sub = 0;
    CHECK_OK(impp_engine_subscribe(engine, "sip:carol@example.test", "sip:dave@example.test",
                                   "presence", NULL, &sub));
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&f.lock);
    int rc = 0;
    while (!f.ran && rc == 0) {
        rc = pthread_cond_timedwait(&f.done, &f.lock, &deadline);
    }
    bool ran = f.ran;
    impp_status status = f.status;
    pthread_mutex_unlock(&f.lock);
    CHECK(ran);
    CHECK(status == IMPP_ERR_IN_CALLBACK);
    CHECK_OK(impp_engine_set_event_callback(engine, NULL, NULL, NULL));

    char answer[4096];
    exchange(udp_port(f.sip),
             "OPTIONS sip:example.test SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:45060;branch=z9hG4bKc-options-2;rport\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:probe@example.test>;tag=4\r\n"
             "To: <sip:example.test>\r\n"
             "Call-ID: c-options-2\r\n"
             "CSeq: 1 OPTIONS\r\n"
             "Content-Length: 0\r\n\r\n",
             answer, sizeof answer);
    CHECK(strncmp(answer, "SIP/2.0 200", 11) == 0);
    CHECK_OK(impp_engine_unsubscribe(engine, sub));
    CHECK_OK(impp_sip_free(f.sip));
    pthread_cond_destroy(&f.done);
    pthread_mutex_destroy(&f.lock);
}

int main(void) {
    impp_engine *engine = start_engine();
    configuration_errors_change_nothing(engine);
    answers_and_challenges(engine);
    messages_over_sip_reach_the_application(engine);
    an_account_sends_and_receives(engine);
    an_address_in_use_is_a_network_error(engine);
    freeing_inside_a_callback_is_refused(engine);
    CHECK_OK(impp_engine_free(engine));
    return check_report("sip_test");
}
