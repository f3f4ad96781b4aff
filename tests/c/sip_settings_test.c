/* The SIP stack's TLS, connection, rate and digest settings and its counters from C, under
 * ASan/UBSan (and valgrind): a TLS listener on the PEM files tests/c_api.rs made (C cannot
 * make certificates; their paths come in IMPP_TEST_TLS_CERT, _KEY and _CA), a bad file
 * refused with a message naming it and the configuration unchanged, every setter's bad
 * values refused, and impp_sip_stat reading counters that move: a request over the rate
 * limit answered 503 (on a manual clock, so that a slow run cannot refill the bucket), a
 * connection over the per-address bound refused, and a TLS handshake that never came closed
 * in time. Trust between domains: a MESSAGE "from" another domain's user, sent by hand over
 * UDP from 127.0.0.1, is refused 403 and counted as IMPP_SIP_STAT_UNTRUSTED unless
 * 127.0.0.1 is listed as a peer of that domain (impp_sip_config_add_peer) or federation is
 * open; a peer for the engine's own domain, or a publisher for another, is refused by
 * impp_sip_start. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
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

/* The last error mentions `needle`. */
#define CHECK_ERROR_MENTIONS(needle)                                                 \
    do {                                                                             \
        const char *check_m_ = impp_last_error();                                    \
        if (check_m_ == NULL || strstr(check_m_, (needle)) == NULL) {                \
            fprintf(stderr, "%s:%d: last error \"%s\" does not mention \"%s\"\n",    \
                    __FILE__, __LINE__, check_m_ ? check_m_ : "(none)", (needle));   \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

static const char *cert_path;
static const char *key_path;
static const char *ca_path;

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Waits up to 10 s for counter `which` of `sip` to be `expected`; returns its value. */
static uint64_t wait_stat(const impp_sip *sip, impp_sip_counter which, uint64_t expected) {
    uint64_t value = 0;
    for (int i = 0; i < 200; i++) {
        value = impp_sip_stat(sip, which);
        if (value == expected) {
            break;
        }
        sleep_ms(50);
    }
    return value;
}

/* A file's contents, NUL-terminated (free with free()). */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc((size_t)size + 1, 1);
    CHECK(text != NULL && fread(text, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    return text;
}

/* The port of the first address of `proto` ("udp:127.0.0.1:PORT"). */
static int port_of(const impp_sip *sip, const char *proto) {
    char *address = NULL;
    CHECK_OK(impp_sip_local_address(sip, proto, &address));
    if (address == NULL) {
        return 0;
    }
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s:127.0.0.1:", proto);
    CHECK(strncmp(address, prefix, strlen(prefix)) == 0);
    int port = atoi(strrchr(address, ':') + 1);
    impp_string_free(address);
    CHECK(port > 0);
    return port;
}

/* A TCP connection to 127.0.0.1:`port` (the descriptor). */
static int connect_tcp(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    CHECK(connect(fd, (struct sockaddr *)&to, sizeof to) == 0);
    return fd;
}

/* An engine for example.test; `manual_clock`: on a clock that moves only when told. */
static impp_engine *start_engine(bool manual_clock) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    if (manual_clock) {
        CHECK_OK(impp_config_use_manual_clock(config));
    }
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* A TLS file that cannot be read, or does not hold what it should, is refused with a
 * message naming it, and changes nothing: without an earlier setting a TLS listener still
 * has no certificate; after a good one, the good one stays. */
static void bad_tls_files_change_nothing(impp_engine *engine) {
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "tls:127.0.0.1:0"));
    CHECK_FAILS(impp_sip_config_set_tls_files(config, "/nonexistent/impp.crt", key_path, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("/nonexistent/impp.crt");
    CHECK_FAILS(impp_sip_config_set_tls_files(config, cert_path, "/nonexistent/impp.key", NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("/nonexistent/impp.key");
    CHECK_FAILS(impp_sip_config_set_tls_files(config, cert_path, key_path, "/nonexistent/ca.pem"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("/nonexistent/ca.pem");
    /* A key where the certificate should be, a certificate where the key should be. */
    CHECK_FAILS(impp_sip_config_set_tls_files(config, key_path, key_path, ca_path),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_files(config, cert_path, cert_path, ca_path),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_files(config, NULL, key_path, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_files(config, cert_path, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_files(NULL, cert_path, key_path, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_pem(config, "not PEM", "not PEM", NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_pem(config, NULL, "not PEM", NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    /* Nothing was set: the TLS listener has no certificate (the configuration is consumed). */
    impp_sip *sip = NULL;
    CHECK_FAILS(impp_sip_start(engine, config, &sip), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("TLS");
    CHECK(sip == NULL);

    /* A good setting, then a bad one: the good one stays. */
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "tls:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_set_tls_files(config, cert_path, key_path, ca_path));
    CHECK_FAILS(impp_sip_config_set_tls_files(config, "/nonexistent/impp.crt", key_path, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    CHECK(port_of(sip, "tls") > 0);
    char *address = NULL;
    CHECK_FAILS(impp_sip_local_address(sip, "udp", &address), IMPP_ERR_NOT_FOUND);
    CHECK(address == NULL);
    CHECK_OK(impp_sip_free(sip));
}

/* The same certificate from PEM text in memory; a listener on TLS and TCP; a TCP connection
 * to the TLS port that never starts its handshake is closed after the handshake timeout and
 * counted, as is a second connection from one address over the per-address bound. */
static void tls_from_memory_and_connection_counters(impp_engine *engine) {
    char *cert = read_file(cert_path);
    char *key = read_file(key_path);
    char *ca = read_file(ca_path);
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "tls:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_listen(config, "tcp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_set_tls_pem(config, cert, key, ca));
    /* The key may be wiped and freed at once: the configuration keeps its own copy. */
    memset(key, 0, strlen(key));
    free(key);
    free(cert);
    free(ca);
    CHECK_OK(impp_sip_config_set_tls_handshake_timeout_ms(config, 300));
    CHECK_OK(impp_sip_config_set_max_connections_per_address(config, 1));
    CHECK_OK(impp_sip_config_set_max_connections(config, 16));
    CHECK_OK(impp_sip_config_set_idle_timeout_ms(config, 60000));
    CHECK_OK(impp_sip_config_set_list_batch_interval_ms(config, 250));
    CHECK_OK(impp_sip_config_set_unvouched_timeout_ms(config, 60000));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    if (sip == NULL) {
        return;
    }
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_OPEN_CONNECTIONS) == 0);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_CONNECTIONS_TIMED_OUT) == 0);

    /* Silence on the TLS port: open, then closed when the handshake is late. */
    int silent = connect_tcp(port_of(sip, "tls"));
    CHECK(wait_stat(sip, IMPP_SIP_STAT_CONNECTIONS_TIMED_OUT, 1) == 1);
    CHECK(wait_stat(sip, IMPP_SIP_STAT_OPEN_CONNECTIONS, 0) == 0);
    close(silent);

    /* One connection per address: the second is refused. */
    int tcp = port_of(sip, "tcp");
    int first = connect_tcp(tcp);
    CHECK(wait_stat(sip, IMPP_SIP_STAT_OPEN_CONNECTIONS, 1) == 1);
    int second = connect_tcp(tcp);
    CHECK(wait_stat(sip, IMPP_SIP_STAT_CONNECTIONS_REFUSED, 1) == 1);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_OPEN_CONNECTIONS) == 1);
    close(second);
    close(first);
    CHECK_OK(impp_sip_free(sip));
}

/* Every setter refuses its bad values with a message and changes nothing (the stack still
 * starts, with the good values set before). */
static void bad_values_are_refused(impp_engine *engine) {
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_FAILS(impp_sip_config_set_max_connections(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_max_connections_per_address(config, 0),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_idle_timeout_ms(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_idle_timeout_ms(config, 86400001), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_list_batch_interval_ms(config, 60001),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_handshake_timeout_ms(config, 99),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_tls_handshake_timeout_ms(config, 600001),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_unvouched_timeout_ms(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_rate_limit(config, 100, 99), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("99");
    CHECK_FAILS(impp_sip_config_set_nonce_lifetime_ms(config, 999), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("999");
    CHECK_FAILS(impp_sip_config_set_nc_window(config, 65), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_auth_failure_window_ms(config, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_auth_block_ms(config, UINT32_MAX), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_max_auth_failures(NULL, 3), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_rate_limit(NULL, 0, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_auth_proxy(config, "proxy.example"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("proxy.example");
    CHECK_FAILS(impp_sip_config_add_auth_proxy(config, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_peer(config, "other.test"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("DOMAIN=ADDR");
    /* Neither an address nor a host name (a name is fine: "other.test=peer.other.test"). */
    CHECK_FAILS(impp_sip_config_add_peer(config, "other.test=peer_other.test"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("peer_other.test");
    CHECK_FAILS(impp_sip_config_add_peer(config, "other.test=192.0.2.0/33"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_peer(config, "*=192.0.2.1"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_peer(config, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_peer(NULL, "other.test=192.0.2.1"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_federation(config, (impp_federation)0),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_federation(config, (impp_federation)99),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("99");
    CHECK_FAILS(impp_sip_config_set_federation(NULL, IMPP_FEDERATION_OPEN),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_migration(config, (impp_migration)0),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_set_migration(config, (impp_migration)4),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("impp_migration");
    CHECK_FAILS(impp_sip_config_set_migration(NULL, IMPP_MIGRATION_PROXY),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_publisher(config, "192.0.2.20"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_publisher(config, "192.0.2.0/40=example.test"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_publisher(config, "sip:example.test=example.test"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_publisher(config, "192.0.2.20="), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_publisher(config, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_ws_origin(config, "phone.example.test"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("phone.example.test");
    CHECK_FAILS(impp_sip_config_add_ws_origin(config, "https://a.test/page"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_ws_origin(config, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_ws_origin(NULL, "*"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_sip_config_add_route(config, "*=ws:127.0.0.1:9"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("WebSocket");
    /* The good values at their bounds. */
    CHECK_OK(impp_sip_config_set_max_connections(config, UINT32_MAX));
    CHECK_OK(impp_sip_config_set_max_connections_per_address(config, 1));
    CHECK_OK(impp_sip_config_set_idle_timeout_ms(config, 86400000));
    CHECK_OK(impp_sip_config_set_tls_handshake_timeout_ms(config, 100));
    CHECK_OK(impp_sip_config_set_unvouched_timeout_ms(config, 100));
    CHECK_OK(impp_sip_config_set_rate_limit(config, 0, 0)); /* off: burst ignored */
    CHECK_OK(impp_sip_config_set_rate_limit(config, 100, 100));
    CHECK_OK(impp_sip_config_set_nonce_lifetime_ms(config, 1000));
    CHECK_OK(impp_sip_config_set_nc_window(config, 0));
    CHECK_OK(impp_sip_config_set_nc_window(config, 64));
    CHECK_OK(impp_sip_config_set_list_batch_interval_ms(config, 0));
    CHECK_OK(impp_sip_config_set_list_batch_interval_ms(config, 60000));
    CHECK_OK(impp_sip_config_set_max_auth_failures(config, 0)); /* off */
    CHECK_OK(impp_sip_config_set_max_auth_failures(config, 3));
    CHECK_OK(impp_sip_config_add_ws_origin(config, "https://phone.example.test"));
    CHECK_OK(impp_sip_config_add_ws_origin(config, "*"));
    CHECK_OK(impp_sip_config_add_listen(config, "ws:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_set_auth_failure_window_ms(config, 1000));
    CHECK_OK(impp_sip_config_set_auth_block_ms(config, 86400000));
    CHECK_OK(impp_sip_config_add_auth_proxy(config, "192.0.2.1"));
    CHECK_OK(impp_sip_config_add_auth_proxy(config, "2001:db8::1"));
    CHECK_OK(impp_sip_config_add_peer(config, "other.test=192.0.2.0/24"));
    CHECK_OK(impp_sip_config_add_peer(config, "other.test=2001:db8::/64"));
    CHECK_OK(impp_sip_config_set_federation(config, IMPP_FEDERATION_OPEN));
    CHECK_OK(impp_sip_config_set_federation(config, IMPP_FEDERATION_TRUSTED));
    CHECK_OK(impp_sip_config_set_migration(config, IMPP_MIGRATION_REDIRECT));
    CHECK_OK(impp_sip_config_set_migration(config, IMPP_MIGRATION_PROXY));
    CHECK_OK(impp_sip_config_add_publisher(config, "192.0.2.20=example.test"));
    CHECK_OK(impp_sip_config_add_publisher(config, "sip:voicemail@example.test=example.test"));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    CHECK_OK(impp_sip_free(sip));
}

/* A UDP socket on 127.0.0.1, any free port; its port in `*port_out`. */
static int udp_socket(int *port_out) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = {0};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&local, sizeof local) == 0);
    socklen_t len = sizeof local;
    CHECK(getsockname(fd, (struct sockaddr *)&local, &len) == 0);
    *port_out = ntohs(local.sin_port);
    /* Generous: under valgrind on a loaded machine an answer may take seconds. */
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends `count` OPTIONS at once from `fd` (bound to `here`) to 127.0.0.1:`port`. */
static void send_options(int fd, int here, int port, int count) {
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    for (int i = 0; i < count; i++) {
        char request[1024];
        int n = snprintf(request, sizeof request,
                         "OPTIONS sip:example.test SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKc-rate-%d;rport\r\n"
                         "Max-Forwards: 70\r\n"
                         "From: <sip:probe@example.test>;tag=r%d\r\n"
                         "To: <sip:example.test>\r\n"
                         "Call-ID: c-rate-%d\r\n"
                         "CSeq: 1 OPTIONS\r\n"
                         "Content-Length: 0\r\n\r\n",
                         here, i, i, i);
        CHECK(sendto(fd, request, (size_t)n, 0, (struct sockaddr *)&to, sizeof to) == n);
    }
}

/* Reads `count` answers from `fd` and counts the 200s and 503s among them. */
static void read_answers(int fd, int count, int *ok, int *unavailable) {
    *ok = 0;
    *unavailable = 0;
    char answer[4096];
    for (int i = 0; i < count; i++) {
        ssize_t n = recv(fd, answer, sizeof answer - 1, 0);
        CHECK(n > 0);
        if (n <= 0) {
            break;
        }
        answer[n] = '\0';
        if (strncmp(answer, "SIP/2.0 200", 11) == 0) {
            (*ok)++;
        } else if (strncmp(answer, "SIP/2.0 503", 11) == 0) {
            CHECK(strstr(answer, "Retry-After:") != NULL);
            (*unavailable)++;
        }
    }
}

/* A rate of 1 a second in bursts of 1, on an engine whose clock stands still (so the
 * bucket never refills, however slowly the requests are read): of three requests the first
 * is answered, the second refused with 503 and the third dropped; the counters say so. */
static void the_rate_limit_is_counted(void) {
    impp_engine *engine = start_engine(true);
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_set_rate_limit(config, 1, 1));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    if (sip == NULL) {
        CHECK_OK(impp_engine_free(engine));
        return;
    }
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_RATE_REFUSED) == 0);
    int here = 0;
    int fd = udp_socket(&here);
    send_options(fd, here, port_of(sip, "udp"), 3);
    int ok = 0;
    int unavailable = 0;
    read_answers(fd, 2, &ok, &unavailable);
    close(fd);
    CHECK(ok == 1);
    CHECK(unavailable == 1);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_RATE_REFUSED) == 1);
    /* Counted on the I/O thread as it reads the third request. */
    CHECK(wait_stat(sip, IMPP_SIP_STAT_RATE_DROPPED, 1) == 1);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_AUTH_FAILURES) == 0);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_QUEUE_DROPPED) == 0);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_AUTH_THROTTLED) == 0);
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_NONCE_REPLAYS) == 0);
    /* A counter this library does not know, and no stack: 0. */
    CHECK(impp_sip_stat(sip, (impp_sip_counter)999) == 0);
    CHECK(impp_sip_stat(sip, (impp_sip_counter)-1) == 0);
    CHECK(impp_sip_stat(NULL, IMPP_SIP_STAT_RATE_REFUSED) == 0);
    CHECK_OK(impp_sip_free(sip));
    CHECK_OK(impp_engine_free(engine));
}

/* Sends a MESSAGE "from" `from` to sip:alice@example.test over UDP from 127.0.0.1 to
 * 127.0.0.1:`port`, and returns the status code of the final answer (0: none came). */
static int message_from(int port, const char *from, int call) {
    int here = 0;
    int fd = udp_socket(&here);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    const char *body = "hello alice";
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "MESSAGE sip:alice@example.test SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKc-trust-%d;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <%s>;tag=t%d\r\n"
                     "To: <sip:alice@example.test>\r\n"
                     "Call-ID: c-trust-%d\r\n"
                     "CSeq: 1 MESSAGE\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     here, call, from, call, call, strlen(body), body);
    CHECK(n > 0 && (size_t)n < sizeof request);
    CHECK(sendto(fd, request, (size_t)n, 0, (struct sockaddr *)&to, sizeof to) == n);
    int code = 0;
    char answer[4096];
    for (;;) {
        ssize_t got = recv(fd, answer, sizeof answer - 1, 0);
        if (got <= 0) {
            break;
        }
        answer[got] = '\0';
        if (strncmp(answer, "SIP/2.0 ", 8) == 0 && answer[8] != '1') {
            code = atoi(answer + 8);
            break;
        }
    }
    close(fd);
    return code;
}

/* A stack for example.test on UDP, with the peer `peer` (NULL: none) and federation
 * `federation`; the MESSAGE "from" sip:x@other.test sent from 127.0.0.1 gets `expected`
 * (2: any 2xx) and moves IMPP_SIP_STAT_UNTRUSTED by `untrusted`. */
static void message_from_other_test(impp_engine *engine, const char *peer,
                                    impp_federation federation, int expected,
                                    uint64_t untrusted, int call) {
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    if (peer != NULL) {
        CHECK_OK(impp_sip_config_add_peer(config, peer));
    }
    CHECK_OK(impp_sip_config_set_federation(config, federation));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    if (sip == NULL) {
        return;
    }
    int code = message_from(port_of(sip, "udp"), "sip:x@other.test", call);
    bool as_expected = expected == 2 ? code / 100 == 2 : code == expected;
    CHECK(as_expected);
    if (!as_expected) {
        fprintf(stderr, "sip_settings_test: MESSAGE from other.test (peer %s): %d\n",
                peer ? peer : "none", code);
    }
    CHECK(impp_sip_stat(sip, IMPP_SIP_STAT_UNTRUSTED) == untrusted);
    CHECK_OK(impp_sip_free(sip));
}

/* Trust between domains: a peer listed for other.test at 127.0.0.1 is believed, nobody else
 * is (403, counted) unless federation is open; impp_sip_start refuses a peer for the
 * engine's own domain and a publisher for a domain (or an account) not its own, with
 * IMPP_ERR_INVALID_ARGUMENT and a message naming it, consuming the configuration. */
static void trust_between_domains(void) {
    impp_engine *engine = start_engine(false);
    uint64_t stored = impp_engine_stat(engine, IMPP_STAT_MESSAGES_WAITING);
    /* No peer: refused and counted; nothing stored for alice. */
    message_from_other_test(engine, NULL, IMPP_FEDERATION_TRUSTED, 403, 1, 1);
    CHECK(impp_engine_stat(engine, IMPP_STAT_MESSAGES_WAITING) == stored);
    /* A peer for another address (or another domain) does not vouch for 127.0.0.1. */
    message_from_other_test(engine, "other.test=192.0.2.0/24", IMPP_FEDERATION_TRUSTED, 403, 1,
                            2);
    message_from_other_test(engine, "third.test=127.0.0.1", IMPP_FEDERATION_TRUSTED, 403, 1, 3);
    /* Listed: believed (alice is offline: the message is stored). */
    message_from_other_test(engine, "other.test=127.0.0.1", IMPP_FEDERATION_TRUSTED, 2, 0, 4);
    message_from_other_test(engine, "other.test=127.0.0.0/8", IMPP_FEDERATION_TRUSTED, 2, 0, 5);
    /* Open federation: believed without a peer. */
    message_from_other_test(engine, NULL, IMPP_FEDERATION_OPEN, 2, 0, 6);
    CHECK(impp_engine_stat(engine, IMPP_STAT_MESSAGES_WAITING) == stored + 3);

    /* Checked against the engine's domains at start. */
    impp_sip_config *config = NULL;
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_peer(config, "Example.test=127.0.0.1"));
    CHECK_FAILS(impp_sip_start(engine, config, &sip), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("example.test is a domain of this server");
    CHECK(sip == NULL);
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_publisher(config, "127.0.0.3=other.test"));
    CHECK_FAILS(impp_sip_start(engine, config, &sip), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("other.test is not a domain of this server");
    CHECK(sip == NULL);
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_publisher(config, "sip:voicemail@other.test=example.test"));
    CHECK_FAILS(impp_sip_start(engine, config, &sip), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("not a user of this server");
    CHECK(sip == NULL);
    /* Nothing was left running: the same settings for the right domains start. */
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_peer(config, "other.test=127.0.0.1"));
    CHECK_OK(impp_sip_config_add_publisher(config, "127.0.0.3=example.test"));
    CHECK_OK(impp_sip_config_add_publisher(config, "sip:voicemail@example.test=example.test"));
    CHECK_OK(impp_sip_start(engine, config, &sip));
    CHECK(sip != NULL);
    CHECK_OK(impp_sip_free(sip));
    CHECK_OK(impp_engine_free(engine));
}

/* A running stack takes a new configuration: what may change without a restart changes, the
 * rest is named; a configuration that could not start a stack changes nothing. */
static void a_running_stack_is_reconfigured(impp_engine *engine) {
    impp_sip_config *config = NULL;
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_route(config, "b.test=udp:127.0.0.1:5999"));
    impp_sip *sip = NULL;
    CHECK_OK(impp_sip_start(engine, config, &sip));
    if (sip == NULL) {
        return;
    }
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_route(config, "b.test=udp:127.0.0.1:5998"));
    CHECK_OK(impp_sip_config_set_migration(config, IMPP_MIGRATION_PROXY));
    CHECK_OK(impp_sip_config_set_federate(config, false));
    CHECK_OK(impp_sip_config_set_flow_timeout_ms(config, 6000));
    CHECK_FAILS(impp_sip_config_set_flow_timeout_ms(NULL, 6000), IMPP_ERR_INVALID_ARGUMENT);
    char *changed = NULL, *restart = NULL;
    CHECK_OK(impp_sip_reconfigure(sip, config, &changed, &restart));
    CHECK_STR(changed, "routes, flow timeout, migration");
    CHECK_STR(restart, "federate");
    impp_string_free(changed);
    impp_string_free(restart);

    /* Refused whole (a peer of the engine's own domain); the outputs are untouched. */
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_peer(config, "example.test=127.0.0.1"));
    changed = (char *)(uintptr_t)0x1;
    CHECK_FAILS(impp_sip_reconfigure(sip, config, &changed, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("example.test");
    CHECK(changed == (char *)(uintptr_t)0x1);
    /* The outputs are optional; NULL arguments are refused (the configuration consumed). */
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_OK(impp_sip_config_add_listen(config, "udp:127.0.0.1:0"));
    CHECK_OK(impp_sip_config_add_route(config, "b.test=udp:127.0.0.1:5998"));
    CHECK_OK(impp_sip_config_set_migration(config, IMPP_MIGRATION_PROXY));
    CHECK_OK(impp_sip_config_set_federate(config, false));
    CHECK_OK(impp_sip_config_set_flow_timeout_ms(config, 6000));
    CHECK_OK(impp_sip_reconfigure(sip, config, NULL, NULL));
    CHECK_FAILS(impp_sip_reconfigure(sip, NULL, NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_sip_config_new(&config));
    CHECK_FAILS(impp_sip_reconfigure(NULL, config, NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_sip_free(sip));
}

int main(void) {
    cert_path = getenv("IMPP_TEST_TLS_CERT");
    key_path = getenv("IMPP_TEST_TLS_KEY");
    ca_path = getenv("IMPP_TEST_TLS_CA");
    if (cert_path == NULL || key_path == NULL || ca_path == NULL) {
        fprintf(stderr, "sip_settings_test: IMPP_TEST_TLS_CERT, _KEY and _CA name PEM files "
                        "(cargo test --test c_api makes them)\n");
        return 1;
    }
    impp_engine *engine = start_engine(false);
    bad_tls_files_change_nothing(engine);
    tls_from_memory_and_connection_counters(engine);
    bad_values_are_refused(engine);
    a_running_stack_is_reconfigured(engine);
    CHECK_OK(impp_engine_free(engine));
    the_rate_limit_is_counted();
    trust_between_domains();
    return check_report("sip_settings_test");
}
