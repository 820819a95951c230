/*
 * loadgen: a small epoll load generator for SCGI (and HTTP/1.1 with
 * "Connection: close"), one connection per request.
 *
 * Built by bench/run.py with `cc -O2 -o bench/out/loadgen bench/loadgen.c`.
 *
 *   loadgen --target unix:/tmp/s.sock --path /hello -c 32 -d 3
 *   loadgen --target tcp:127.0.0.1:4000 --method POST --path /post --body 1048576 -c 8 -n 500
 *   loadgen --proto http --target tcp:127.0.0.1:8080 --path /hello -c 32 -d 3
 *
 * It keeps C connections busy: each one connects, sends one request (built
 * once: an nginx-like SCGI netstring or an HTTP/1.1 request, then the body),
 * reads until the server closes, records the latency from connect() to EOF,
 * and is replaced by a new connection.  It never half-closes its side (nginx
 * does not either).  It stops starting requests once the duration has passed
 * or the request count is reached, waits for the ones in flight (each bounded
 * by --timeout), and prints one JSON object on stdout.
 *
 * A response is "ok" when its status is 200: for SCGI the "Status:" header
 * (CGI's default 200 when there is none, or an "HTTP/1.x 200" status line
 * as uWSGI may send), for HTTP the status line.  The body length (bytes after
 * the blank line) of ok responses is reported as min/max so that the caller
 * can check it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEAD_KEEP 4096
#define READ_BUF (256 * 1024)

enum { ST_FREE = 0, ST_CONNECTING, ST_SENDING, ST_READING };

struct conn {
    int fd;
    int state;
    size_t sent;
    uint64_t start_ns;
    size_t head_len;
    uint64_t bytes;
    char head[HEAD_KEEP];
};

static struct {
    /* options */
    int proto_http;
    const char *target;
    const char *method;
    const char *path;
    size_t body;
    int concurrency;
    double duration;
    uint64_t max_requests;
    double timeout;
    /* target address */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
    /* the request, built once */
    char *req;
    size_t req_len;
    /* results */
    uint64_t started;
    uint64_t completed;
    uint64_t ok;
    uint64_t non200;
    uint64_t bad_head;
    uint64_t err_connect;
    uint64_t err_reset;
    uint64_t err_timeout;
    uint64_t err_other;
    uint64_t connect_retries;
    uint64_t bytes_read;
    int64_t body_min;
    int64_t body_max;
    double *lat_ms;
    size_t lat_len;
    size_t lat_cap;
    uint64_t last_done_ns;
} g;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg) {
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --target tcp:HOST:PORT|unix:PATH [--proto scgi|http]\n"
            "               [--method GET] [--path /hello] [--body BYTES]\n"
            "               [-c CONCURRENCY] [-d SECONDS] [-n REQUESTS] "
            "[--timeout SECONDS]\n");
    exit(2);
}

/* --- building the request --------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_put(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) die("out of memory");
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_str(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void scgi_var(struct buf *b, const char *name, const char *value) {
    buf_put(b, name, strlen(name) + 1);   /* with its NUL */
    buf_put(b, value, strlen(value) + 1); /* with its NUL */
}

static void build_request(void) {
    struct buf head = {0};
    char tmp[64];
    char host[128] = "localhost";
    char port[16] = "80";
    char query[1024] = "";
    char docuri[1024];
    const char *q = strchr(g.path, '?');
    size_t pathlen = q ? (size_t)(q - g.path) : strlen(g.path);
    if (pathlen >= sizeof docuri || (q && strlen(q + 1) >= sizeof query))
        die("path too long");
    memcpy(docuri, g.path, pathlen);
    docuri[pathlen] = 0;
    if (q) strcpy(query, q + 1);
    if (g.family != AF_UNIX) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&g.addr;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(port, sizeof port, "%u", ntohs(sin->sin_port));
    }
    if (g.proto_http) {
        buf_str(&head, g.method);
        buf_str(&head, " ");
        buf_str(&head, g.path);
        buf_str(&head, " HTTP/1.1\r\nHost: ");
        buf_str(&head, host);
        if (g.family != AF_UNIX) {
            buf_str(&head, ":");
            buf_str(&head, port);
        }
        buf_str(&head, "\r\nUser-Agent: loadgen\r\nAccept: */*\r\nConnection: close\r\n");
        if (g.body || strcmp(g.method, "POST") == 0 || strcmp(g.method, "PUT") == 0) {
            snprintf(tmp, sizeof tmp, "Content-Length: %zu\r\n", g.body);
            buf_str(&head, tmp);
            buf_str(&head, "Content-Type: application/octet-stream\r\n");
        }
        buf_str(&head, "\r\n");
    } else {
        /* The variables nginx sends with the stock scgi_params, in its order
         * (CONTENT_LENGTH first, as SCGI requires). */
        struct buf vars = {0};
        snprintf(tmp, sizeof tmp, "%zu", g.body);
        scgi_var(&vars, "CONTENT_LENGTH", tmp);
        scgi_var(&vars, "REQUEST_METHOD", g.method);
        scgi_var(&vars, "REQUEST_URI", g.path);
        scgi_var(&vars, "QUERY_STRING", query);
        scgi_var(&vars, "CONTENT_TYPE", g.body ? "application/octet-stream" : "");
        scgi_var(&vars, "DOCUMENT_URI", docuri);
        scgi_var(&vars, "DOCUMENT_ROOT", "/usr/share/nginx/html");
        scgi_var(&vars, "SCGI", "1");
        scgi_var(&vars, "SERVER_PROTOCOL", "HTTP/1.1");
        scgi_var(&vars, "REQUEST_SCHEME", "http");
        scgi_var(&vars, "REMOTE_ADDR", "127.0.0.1");
        scgi_var(&vars, "REMOTE_PORT", "54321");
        scgi_var(&vars, "SERVER_PORT", port);
        scgi_var(&vars, "SERVER_NAME", host);
        scgi_var(&vars, "HTTP_HOST", host);
        scgi_var(&vars, "HTTP_USER_AGENT", "loadgen");
        scgi_var(&vars, "HTTP_ACCEPT", "*/*");
        if (g.body) scgi_var(&vars, "HTTP_CONTENT_LENGTH", tmp);
        snprintf(tmp, sizeof tmp, "%zu:", vars.len);
        buf_str(&head, tmp);
        buf_put(&head, vars.p, vars.len);
        buf_str(&head, ",");
        free(vars.p);
    }
    g.req_len = head.len + g.body;
    g.req = malloc(g.req_len ? g.req_len : 1);
    if (!g.req) die("out of memory for the request body");
    memcpy(g.req, head.p, head.len);
    memset(g.req + head.len, 'x', g.body);
    free(head.p);
}

/* --- target ------------------------------------------------------------ */

static void parse_target(void) {
    const char *t = g.target;
    memset(&g.addr, 0, sizeof g.addr);
    if (strncmp(t, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&g.addr;
        if (strlen(t + 5) >= sizeof sun->sun_path) die("unix socket path too long");
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, t + 5);
        g.addrlen = sizeof *sun;
        g.family = AF_UNIX;
    } else if (strncmp(t, "tcp:", 4) == 0) {
        char host[128];
        const char *colon = strrchr(t + 4, ':');
        struct sockaddr_in *sin = (struct sockaddr_in *)&g.addr;
        if (!colon || (size_t)(colon - (t + 4)) >= sizeof host) die("bad tcp target");
        memcpy(host, t + 4, (size_t)(colon - (t + 4)));
        host[colon - (t + 4)] = 0;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) die("bad IPv4 address");
        g.addrlen = sizeof *sin;
        g.family = AF_INET;
    } else {
        die("target must be tcp:HOST:PORT or unix:PATH");
    }
}

/* --- results ----------------------------------------------------------- */

static void record_latency(double ms) {
    if (g.lat_len == g.lat_cap) {
        g.lat_cap = g.lat_cap ? g.lat_cap * 2 : 65536;
        g.lat_ms = realloc(g.lat_ms, g.lat_cap * sizeof(double));
        if (!g.lat_ms) die("out of memory for latencies");
    }
    g.lat_ms[g.lat_len++] = ms;
}

/* Return the status code of a response head, 200 for a CGI head without a
 * Status header, or -1 if the head is unreadable.  Sets *hdr_end to the
 * offset of the body, or -1 if the blank line is not in the first bytes. */
static int parse_status(const char *h, size_t n, long *hdr_end) {
    *hdr_end = -1;
    for (size_t i = 0; i + 1 < n; i++) {
        if (h[i] == '\n' && h[i + 1] == '\n') { *hdr_end = (long)i + 2; break; }
        if (i + 3 < n && h[i] == '\r' && h[i + 1] == '\n' && h[i + 2] == '\r' &&
            h[i + 3] == '\n') {
            *hdr_end = (long)i + 4;
            break;
        }
    }
    if (n >= 12 && strncmp(h, "HTTP/1.", 7) == 0) return atoi(h + 9);
    if (g.proto_http) return -1;
    if (*hdr_end < 0) return -1;
    /* CGI head: look for a Status header line. */
    const char *p = h, *end = h + *hdr_end;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break;
        if (eol - p >= 7 && strncasecmp(p, "Status:", 7) == 0) {
            const char *v = p + 7;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            return atoi(v);
        }
        p = eol + 1;
    }
    return 200;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double p) {
    if (!g.lat_len) return 0.0;
    size_t idx = (size_t)(p / 100.0 * (double)(g.lat_len - 1) + 0.5);
    if (idx >= g.lat_len) idx = g.lat_len - 1;
    return g.lat_ms[idx];
}

/* --- the event loop ---------------------------------------------------- */

static int epfd;
static struct conn *conns;
static uint64_t deadline_ns;
static int stopping;

static void conn_close(struct conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = ST_FREE;
}

static void conn_fail(struct conn *c, uint64_t *counter) {
    (*counter)++;
    g.completed++;
    g.last_done_ns = now_ns();
    conn_close(c);
}

static void conn_done(struct conn *c) {
    uint64_t t = now_ns();
    long hdr_end;
    int status = parse_status(c->head, c->head_len, &hdr_end);
    g.completed++;
    g.last_done_ns = t;
    g.bytes_read += c->bytes;
    record_latency((double)(t - c->start_ns) / 1e6);
    if (status < 0 || c->bytes == 0) {
        g.bad_head++;
    } else if (status == 200) {
        g.ok++;
        if (hdr_end >= 0) {
            int64_t body = (int64_t)c->bytes - hdr_end;
            if (g.body_min < 0 || body < g.body_min) g.body_min = body;
            if (body > g.body_max) g.body_max = body;
        }
    } else {
        g.non200++;
    }
    conn_close(c);
}

static int may_start(void) {
    if (stopping) return 0;
    if (g.max_requests && g.started >= g.max_requests) return 0;
    if (g.duration > 0 && now_ns() >= deadline_ns) return 0;
    return 1;
}

static void conn_send(struct conn *c);

static void conn_start(struct conn *c) {
    int fd = socket(g.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket() failed");
    if (g.family == AF_INET) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->fd = fd;
    c->sent = 0;
    c->head_len = 0;
    c->bytes = 0;
    c->start_ns = now_ns();
    g.started++;
    /* Edge-triggered, registered once: no epoll_ctl per state change.  Every
     * handler reads or writes until EAGAIN. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (connect(fd, (struct sockaddr *)&g.addr, g.addrlen) == 0) {
        c->state = ST_SENDING;
    } else if (errno == EINPROGRESS) {
        c->state = ST_CONNECTING;
    } else if (errno == EAGAIN) {
        /* A unix socket whose backlog is full: try again on the next turn. */
        g.connect_retries++;
        g.started--;
        close(fd);
        c->fd = -1;
        c->state = ST_FREE;
        return;
    } else {
        conn_fail(c, &g.err_connect);
        return;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD failed");
    if (c->state == ST_SENDING) conn_send(c);
}

static void conn_send(struct conn *c) {
    while (c->sent < g.req_len) {
        ssize_t n = send(c->fd, g.req + c->sent, g.req_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            conn_fail(c, (errno == ECONNRESET || errno == EPIPE) ? &g.err_reset
                                                                 : &g.err_other);
            return;
        }
    }
    c->state = ST_READING;
}

static char rbuf[READ_BUF];

static void conn_read(struct conn *c) {
    for (;;) {
        ssize_t n = read(c->fd, rbuf, sizeof rbuf);
        if (n > 0) {
            if (c->head_len < HEAD_KEEP) {
                size_t k = HEAD_KEEP - c->head_len;
                if ((size_t)n < k) k = (size_t)n;
                memcpy(c->head + c->head_len, rbuf, k);
                c->head_len += k;
            }
            c->bytes += (uint64_t)n;
        } else if (n == 0) {
            /* The server closed: the response is complete (possibly an early
             * answer sent before the whole request body was read). */
            conn_done(c);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            return;
        } else {
            conn_fail(c, errno == ECONNRESET ? &g.err_reset : &g.err_other);
            return;
        }
    }
}

static void handle(struct conn *c, uint32_t events) {
    if (c->state == ST_CONNECTING) {
        if (events & EPOLLERR) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                conn_fail(c, &g.err_connect);
                return;
            }
        }
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        c->state = ST_SENDING;
    }
    if ((events & (EPOLLOUT | EPOLLERR)) && c->state == ST_SENDING) conn_send(c);
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && c->state != ST_FREE)
        conn_read(c);
}

int main(int argc, char **argv) {
    g.method = "GET";
    g.path = "/hello";
    g.concurrency = 1;
    g.timeout = 30.0;
    g.body_min = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--proto") && v) {
            if (!strcmp(v, "http")) g.proto_http = 1;
            else if (strcmp(v, "scgi")) usage();
            i++;
        } else if (!strcmp(a, "--target") && v) { g.target = v; i++; }
        else if (!strcmp(a, "--method") && v) { g.method = v; i++; }
        else if (!strcmp(a, "--path") && v) { g.path = v; i++; }
        else if (!strcmp(a, "--body") && v) { g.body = (size_t)strtoull(v, NULL, 10); i++; }
        else if (!strcmp(a, "-c") && v) { g.concurrency = atoi(v); i++; }
        else if (!strcmp(a, "-d") && v) { g.duration = atof(v); i++; }
        else if (!strcmp(a, "-n") && v) { g.max_requests = strtoull(v, NULL, 10); i++; }
        else if (!strcmp(a, "--timeout") && v) { g.timeout = atof(v); i++; }
        else usage();
    }
    if (!g.target || g.concurrency < 1) usage();
    if (g.duration <= 0 && !g.max_requests) die("give -d SECONDS or -n REQUESTS");
    signal(SIGPIPE, SIG_IGN);
    parse_target();
    build_request();

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1 failed");
    conns = calloc((size_t)g.concurrency, sizeof *conns);
    if (!conns) die("out of memory");
    for (int i = 0; i < g.concurrency; i++) conns[i].fd = -1;

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = now_ns();
    deadline_ns = t0 + (uint64_t)(g.duration * 1e9);
    uint64_t timeout_ns = (uint64_t)(g.timeout * 1e9);
    g.last_done_ns = t0;
    struct epoll_event events[256];

    for (;;) {
        int active = 0;
        int want_retry = 0;
        for (int i = 0; i < g.concurrency; i++) {
            struct conn *c = &conns[i];
            if (c->state == ST_FREE && may_start()) {
                conn_start(c);
                if (c->state == ST_FREE) want_retry = 1;
            }
            if (c->state != ST_FREE) active++;
        }
        if (!active && !want_retry) break;
        int n = epoll_wait(epfd, events, 256, want_retry ? 1 : 100);
        if (n < 0 && errno != EINTR) die("epoll_wait failed");
        for (int k = 0; k < n; k++) handle(events[k].data.ptr, events[k].events);
        uint64_t t = now_ns();
        if (g.duration > 0 && t >= deadline_ns + timeout_ns) stopping = 1;
        for (int i = 0; i < g.concurrency; i++) {
            struct conn *c = &conns[i];
            if (c->state != ST_FREE && (t - c->start_ns > timeout_ns || stopping))
                conn_fail(c, &g.err_timeout);
        }
    }
    getrusage(RUSAGE_SELF, &ru1);
    double elapsed = (double)(g.last_done_ns - t0) / 1e9;
    if (elapsed <= 0) elapsed = 1e-9;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    double mean = 0;
    for (size_t i = 0; i < g.lat_len; i++) mean += g.lat_ms[i];
    if (g.lat_len) mean /= (double)g.lat_len;
    qsort(g.lat_ms, g.lat_len, sizeof(double), cmp_double);
    uint64_t errors = g.err_connect + g.err_reset + g.err_timeout + g.err_other;
    printf("{\"tool\": \"loadgen\", \"proto\": \"%s\", \"target\": \"%s\", "
           "\"method\": \"%s\", \"path\": \"%s\", \"body\": %zu, \"concurrency\": %d, "
           "\"requests\": %llu, \"ok\": %llu, \"non200\": %llu, \"bad_head\": %llu, "
           "\"errors\": %llu, \"errors_by_kind\": {\"connect\": %llu, \"reset\": %llu, "
           "\"timeout\": %llu, \"other\": %llu}, \"connect_retries\": %llu, "
           "\"duration_s\": %.6f, \"rps\": %.2f, "
           "\"latency_ms\": {\"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, "
           "\"max\": %.4f, \"mean\": %.4f}, "
           "\"bytes_read\": %llu, \"body_len_min\": %lld, \"body_len_max\": %lld, "
           "\"client_cpu_s\": %.6f}\n",
           g.proto_http ? "http" : "scgi", g.target, g.method, g.path, g.body,
           g.concurrency, (unsigned long long)g.completed, (unsigned long long)g.ok,
           (unsigned long long)g.non200, (unsigned long long)g.bad_head,
           (unsigned long long)errors, (unsigned long long)g.err_connect,
           (unsigned long long)g.err_reset, (unsigned long long)g.err_timeout,
           (unsigned long long)g.err_other, (unsigned long long)g.connect_retries,
           elapsed, (double)g.ok / elapsed, percentile(50), percentile(90),
           percentile(99), g.lat_len ? g.lat_ms[g.lat_len - 1] : 0.0, mean,
           (unsigned long long)g.bytes_read, (long long)g.body_min,
           (long long)g.body_max, cpu);
    return 0;
}
