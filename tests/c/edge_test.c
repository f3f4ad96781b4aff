/* Presence at the edge from C, under ASan/UBSan (and valgrind): the account options of a
 * device that serves its own address of record (impp_account_set_serve, _set_keepalive,
 * _set_xcap) with their defaults, getters and bad input; then a stack with such an account
 * registering over TCP at a registrar this program plays on a loopback socket, which reads
 * the REGISTER as sent: its Contact carries the feature tag events="presence", the RFC 5626
 * instance and reg-id, and the request says Supported: outbound. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "impp.h"
#include "check.h"

#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

#define ALICE "sip:alice@b.test"

static void options(void) {
    impp_account *a = NULL;
    CHECK_OK(impp_account_new(ALICE, "alice-pw", "tcp:127.0.0.1:5060", &a));
    /* Defaults: not serving, 30 s keep-alives, no XCAP root. */
    CHECK(!impp_account_serve(a));
    CHECK(impp_account_keepalive(a) == 30);
    CHECK(impp_account_xcap(a) == NULL);

    CHECK_OK(impp_account_set_serve(a, true));
    CHECK_OK(impp_account_set_keepalive(a, 2));
    CHECK_OK(impp_account_set_xcap(a, "http://127.0.0.1:8080/xcap-root"));
    CHECK(impp_account_serve(a));
    CHECK(impp_account_keepalive(a) == 2);
    CHECK_STR(impp_account_xcap(a), "http://127.0.0.1:8080/xcap-root");

    /* Bad values are refused and change nothing. */
    CHECK_FAILS(impp_account_set_xcap(a, "ftp://127.0.0.1/"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_xcap(a, "http://"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_xcap(a, "http://\xff/"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STR(impp_account_xcap(a), "http://127.0.0.1:8080/xcap-root");
    CHECK_FAILS(impp_account_set_serve(NULL, true), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_keepalive(NULL, 2), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_account_set_xcap(NULL, "http://h/"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(!impp_account_serve(NULL));
    CHECK(impp_account_keepalive(NULL) == 0);
    CHECK(impp_account_xcap(NULL) == NULL);

    /* NULL removes the root; serving off again. */
    CHECK_OK(impp_account_set_xcap(a, NULL));
    CHECK(impp_account_xcap(a) == NULL);
    CHECK_OK(impp_account_set_serve(a, false));
    CHECK(!impp_account_serve(a));
    impp_account_free(a);
}

/* A TCP socket listening on a free loopback port; its port in `port`. */
static int listen_loopback(unsigned *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(listen(fd, 4) == 0);
    socklen_t len = sizeof addr;
    CHECK(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Accepts one connection within 10 s and reads until the end of a message head (or 10 s);
 * the text read, NUL-terminated, in `buf`. */
static void read_register(int listener, char *buf, size_t size) {
    struct pollfd p = {.fd = listener, .events = POLLIN};
    CHECK(poll(&p, 1, 10000) == 1);
    int conn = accept(listener, NULL, NULL);
    CHECK(conn >= 0);
    size_t used = 0;
    buf[0] = '\0';
    while (used + 1 < size && strstr(buf, "\r\n\r\n") == NULL) {
        struct pollfd c = {.fd = conn, .events = POLLIN};
        if (poll(&c, 1, 10000) != 1) {
            break;
        }
        ssize_t n = read(conn, buf + used, size - 1 - used);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
        buf[used] = '\0';
    }
    close(conn);
}

static void registers_with_the_tag(void) {
    unsigned port = 0;
    int listener = listen_loopback(&port);
    char registrar[64];
    snprintf(registrar, sizeof registrar, "tcp:127.0.0.1:%u", port);

    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 1));
    CHECK_OK(impp_config_add_domain(config, "device.test"));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));

    impp_account *account = NULL;
    CHECK_OK(impp_account_new(ALICE, "alice-pw", registrar, &account));
    CHECK_OK(impp_account_set_serve(account, true));
    CHECK_OK(impp_account_set_keepalive(account, 2));
    impp_sip_config *sip_config = NULL;
    CHECK_OK(impp_sip_config_new(&sip_config));
    CHECK_OK(impp_sip_config_add_listen(sip_config, "tcp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_account(sip_config, account));
    impp_account_free(account);
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, sip_config, &sip));

    char text[8192];
    read_register(listener, text, sizeof text);
    CHECK(strncmp(text, "REGISTER sip:b.test SIP/2.0\r\n", 29) == 0);
    const char *contact = strstr(text, "\r\nContact: ");
    CHECK(contact != NULL);
    if (contact != NULL) {
        const char *end = strstr(contact + 2, "\r\n");
        CHECK(end != NULL);
        size_t len = end == NULL ? 0 : (size_t)(end - contact);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)len, contact);
        CHECK(strstr(line, ";transport=tcp>") != NULL);
        CHECK(strstr(line, "events=\"presence\"") != NULL);
        CHECK(strstr(line, "+sip.instance=\"<urn:uuid:") != NULL);
        CHECK(strstr(line, "reg-id=1") != NULL);
    }
    CHECK(strstr(text, "\r\nSupported: outbound\r\n") != NULL);

    CHECK_OK(impp_sip_free(sip));
    CHECK_OK(impp_engine_free(engine));
    close(listener);
}

int main(void) {
    options();
    registers_with_the_tag();
    return check_report("edge_test");
}
