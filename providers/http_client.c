/* http_client.c — the one place that drives libcurl (see http_client.h).
 *
 * Why it exists: the http provider, OpenAPI discovery, OAuth2 token fetches
 * and the MCP streamable-HTTP transport all need the same careful exchange:
 * scheme/host checks, hand-followed redirects that shed credentials when the
 * origin changes, size caps, deadlines and cancellation. */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>

#define DEFAULT_MAX_BYTES ((size_t)16 << 20)
#define DEFAULT_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 10000

void cm_http_resp_free(cm_http_resp *r)
{
    free(r->content_type);
    free(r->captured);
    free(r->www_authenticate);
    free(r->location);
    cm_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

static bool is_loopback_host(const char *host)
{
    if (!strcasecmp(host, "localhost") || !strcmp(host, "::1") || !strcmp(host, "[::1]"))
        return true;
    return strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == strlen(host);
}

/* Parsed scheme, host and port of a URL (curl's URL API, not ours). */
typedef struct url_parts {
    char *scheme, *host, *port;
} url_parts;

static void url_parts_free(url_parts *u)
{
    curl_free(u->scheme);
    curl_free(u->host);
    curl_free(u->port);
}

static int url_split(const char *url, url_parts *u)
{
    memset(u, 0, sizeof *u);
    CURLU *h = curl_url();
    int rc = -1;
    if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_HOST, &u->host, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_PORT, &u->port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        rc = 0;
    curl_url_cleanup(h);
    if (rc < 0)
        url_parts_free(u);
    return rc;
}

int cm_http_check_url(const char *url, cm_error *err)
{
    url_parts u;
    if (url_split(url, &u) < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "invalid URL '%.200s'", url);
    int rc = 0;
    if (!strcasecmp(u.scheme, "http")) {
        if (!is_loopback_host(u.host))
            rc = cm_error_set(err, CM_ERR_POLICY_DENIED,
                              "plain http is only allowed to loopback hosts (got host '%s'); "
                              "use https",
                              u.host);
    } else if (strcasecmp(u.scheme, "https")) {
        rc = cm_error_set(err, CM_ERR_POLICY_DENIED, "URL scheme '%s' is not allowed (https only)",
                          u.scheme);
    }
    url_parts_free(&u);
    return rc;
}

char *cm_http_origin(const char *url)
{
    url_parts u;
    if (url_split(url, &u) < 0)
        return NULL;
    char *o = NULL;
    if (asprintf(&o, "%s://%s:%s", u.scheme, u.host, u.port) < 0)
        abort();
    url_parts_free(&u);
    return o;
}

char *cm_http_url_for_message(const char *url)
{
    size_t n = strcspn(url, "?#");
    char *s = cm_xmalloc(n + 1);
    memcpy(s, url, n);
    s[n] = '\0';
    return s;
}

void cm_http_append_escaped(cm_buf *b, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    cm_error ignored;
    cm_buf_append(b, e, strlen(e), &ignored);
    curl_free(e);
}

void cm_http_form_add(cm_buf *b, const char *key, const char *value)
{
    cm_error ignored;
    if (b->len)
        cm_buf_append(b, "&", 1, &ignored);
    cm_http_append_escaped(b, key);
    cm_buf_append(b, "=", 1, &ignored);
    cm_http_append_escaped(b, value);
}

bool cm_http_is_json_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strcspn(ct, ";");
    for (size_t i = 0; i + 4 <= n; i++)
        if (!strncasecmp(ct + i, "json", 4))
            return true;
    return false;
}

/* ---- one transfer ------------------------------------------------------ */

/* Resolved-address check against the policy: a host name that resolves to a
 * private address is refused like the address itself.  OPENSOCKET covers
 * new connections (before connect), PREREQ also reused ones (the shared
 * connection cache may hold a connection opened for another profile). */
typedef struct egress_guard {
    const cm_egress *egress;
    cm_error err;
    bool denied;
} egress_guard;

typedef struct hop {
    const char *url;
    const char *method;
    const char *body;
    size_t body_len;
    bool same_origin;
} hop;

/* One request across its redirect hops (see cm_http_xfer_new). */
struct cm_http_xfer {
    cm_http_req req; /* the caller's request, deadline filled in */
    cm_http_resp *resp;
    char *url; /* current hop's URL */
    hop h;
    int hops;
    CURL *easy;              /* current hop's handle (NULL between hops) */
    struct curl_slist *hdrs; /* current hop's headers */
    char *location;          /* current hop's redirect target */
    size_t max_bytes;
    bool too_big;
    bool cancelled;
    bool stopped; /* the streaming reader ended the transfer (req.on_data) */
    egress_guard guard;
};

typedef cm_http_xfer xfer;

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    xfer *x = userp;
    size_t len = size * n;
    if (x->resp->body.len + len > x->max_bytes) {
        x->too_big = true;
        return 0;
    }
    cm_error e;
    if (cm_buf_append(&x->resp->body, data, len, &e) < 0)
        return 0;
    if (x->req.on_data && x->req.on_data(x->req.on_data_arg, &x->resp->body)) {
        x->stopped = true;
        return 0; /* CURLE_WRITE_ERROR, taken as the end (hop_result) */
    }
    return len;
}

/* The value of header `name` in the header line data (len bytes), or NULL. */
static char *header_value(const char *data, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(data, name, nl) || data[nl] != ':')
        return NULL;
    const char *v = data + nl + 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return strndup(v, (size_t)(end - v));
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    xfer *x = userp;
    size_t len = size * n;
    char *v;
    if (x->req.capture_header && (v = header_value(data, len, x->req.capture_header))) {
        free(x->resp->captured);
        x->resp->captured = v;
    } else if ((v = header_value(data, len, "WWW-Authenticate"))) {
        free(x->resp->www_authenticate);
        x->resp->www_authenticate = v;
    }
    return len;
}

static int on_progress(void *userp, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    xfer *x = userp;
    if (x->req.cancel && atomic_load(x->req.cancel)) {
        x->cancelled = true;
        return 1;
    }
    return 0;
}

static bool has_header(const struct curl_slist *h, const char *name)
{
    size_t n = strlen(name);
    for (; h; h = h->next)
        if (!strncasecmp(h->data, name, n) && (h->data[n] == ':' || h->data[n] == ';'))
            return true;
    return false;
}

/* Header list for one hop: cross-origin hops keep only non-credential
 * headers (Accept, Content-Type). */
static struct curl_slist *hop_headers(const struct curl_slist *h, bool same_origin)
{
    struct curl_slist *out = NULL;
    for (; h; h = h->next) {
        if (!same_origin && strncasecmp(h->data, "Accept:", 7) &&
            strncasecmp(h->data, "Content-Type:", 13))
            continue;
        out = curl_slist_append(out, h->data);
    }
    /* no "Expect: 100-continue" round trip before large bodies (servers
     * that ignore it cost a 1 s wait); a caller's own Expect header stays */
    if (!has_header(out, "Expect"))
        out = curl_slist_append(out, "Expect:");
    return out;
}

static void set_method(CURL *c, const hop *h)
{
    if (!strcmp(h->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (!strcmp(h->method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, h->method);
    if (h->body || strcmp(h->method, "DELETE")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->body ? h->body : "");
    }
}

static int64_t remaining_ms(const cm_http_req *req)
{
    return req->deadline_ms - cm_now_ms();
}

static int transfer_error(CURLcode rc, const xfer *x, const char *url, cm_error *err)
{
    cm_autofree char *u = cm_http_url_for_message(url);
    if (x->cancelled)
        return cm_error_set(err, CM_ERR_TIMEOUT, "%s: cancelled: the caller gave up", u);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return cm_error_set(err, CM_ERR_TIMEOUT, "%s: timed out", u);
    if (x->too_big) {
        cm_error_set(err, CM_ERR_TOOL_ERROR, "%s: response larger than %zu bytes", u, x->max_bytes);
        err->sys_errno = EFBIG; /* callers that name their own limit (discovery) test this */
        return -1;
    }
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "%s: %s", u, curl_easy_strerror(rc));
}

/* The caller's policy decides when there is one; else the built-in rule. */
static int check_egress_url(const cm_http_req *req, const char *url, cm_error *err)
{
    if (req->egress)
        return req->egress->check_url(req->egress->rules, url, err);
    return cm_http_check_url(url, err);
}

static curl_socket_t open_checked_socket(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *addr)
{
    egress_guard *g = clientp;
    (void)purpose;
    if (g->egress->check_addr(g->egress->rules, &addr->addr, &g->err) < 0) {
        g->denied = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static int prereq_checked(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                          int local_port)
{
    egress_guard *g = clientp;
    (void)local_ip;
    (void)local_port;
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, primary_ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)primary_port);
    } else if (inet_pton(AF_INET6, primary_ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)primary_port);
    } else {
        cm_error_set(&g->err, CM_ERR_POLICY_DENIED, "egress: unknown peer address '%s'",
                     primary_ip);
        g->denied = true;
        return CURL_PREREQFUNC_ABORT;
    }
    if (g->egress->check_addr(g->egress->rules, (struct sockaddr *)&ss, &g->err) < 0) {
        g->denied = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Easy handle for the current hop (x->url, x->h). */
static int hop_begin(cm_providers *p, xfer *x, cm_error *err)
{
    if (check_egress_url(&x->req, x->url, err) < 0)
        return x->hops ? cm_error_prefix(err, "redirect") : -1;
    int64_t left = remaining_ms(&x->req);
    if (left <= 0) {
        cm_autofree char *u = cm_http_url_for_message(x->url);
        return cm_error_set(err, CM_ERR_TIMEOUT, "%s: timed out", u);
    }
    CURL *c = curl_easy_init();
    if (!c)
        return cm_error_set(err, CM_ERR_INTERNAL, "curl_easy_init failed");
    const hop *h = &x->h;
    cm_http_resp_free(x->resp);
    x->too_big = x->cancelled = false;
    x->guard = (egress_guard){.egress = x->req.egress};
    x->hdrs = hop_headers(x->req.headers, h->same_origin);
    curl_easy_setopt(c, CURLOPT_SHARE, p->share);
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(left < CONNECT_TIMEOUT_MS ? left : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "codemode/0.1");
    if (h->same_origin && x->req.username) {
        curl_easy_setopt(c, CURLOPT_USERNAME, x->req.username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, x->req.password ? x->req.password : "");
    }
    set_method(c, h);
    if (x->req.egress) {
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked_socket);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &x->guard);
        curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, prereq_checked);
        curl_easy_setopt(c, CURLOPT_PREREQDATA, &x->guard);
    }
    x->easy = c;
    return 0;
}

/* Frees the current hop's handle and headers. */
static void hop_end(xfer *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
}

/* Takes the outcome of the hop that just ran; x->location = its redirect. */
static int hop_result(xfer *x, CURLcode rc, cm_error *err)
{
    free(x->location);
    x->location = NULL;
    if (x->guard.denied) {
        *err = x->guard.err;
        return -1;
    }
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && x->stopped))
        return transfer_error(rc, x, x->h.url, err);
    char *ct = NULL, *loc = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp->status);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
    x->resp->content_type = ct ? cm_xstrdup(ct) : NULL;
    x->location = loc ? cm_xstrdup(loc) : NULL;
    return 0;
}

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static bool same_origin(const char *a, const char *b)
{
    cm_autofree char *oa = cm_http_origin(a);
    cm_autofree char *ob = cm_http_origin(b);
    return oa && ob && !strcasecmp(oa, ob);
}

static int check_header_names(const struct curl_slist *h, cm_error *err)
{
    for (; h; h = h->next) {
        size_t n = strcspn(h->data, ":");
        if (strcspn(h->data, "\r\n") < strlen(h->data) || n == 0)
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "header '%.*s': CR/LF or empty name rejected",
                                (int)(n > 60 ? 60 : n), h->data);
    }
    return 0;
}

/* After a hop: 0 = the response is final, 1 = x is set up for the next hop
 * (a redirect: re-checked, credentials dropped across origins). */
static int next_hop(xfer *x, cm_error *err)
{
    if (!is_redirect(x->resp->status) || !x->location)
        return 0;
    if (x->req.no_redirects) {
        x->resp->location = cm_steal_ptr(&x->location);
        return 0;
    }
    if (x->hops >= CM_HTTP_MAX_REDIRECTS) {
        cm_autofree char *u = cm_http_url_for_message(x->req.url);
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "%s: more than %d redirects", u,
                            CM_HTTP_MAX_REDIRECTS);
    }
    bool keep_method = x->resp->status == 307 || x->resp->status == 308;
    free(x->url);
    x->url = cm_steal_ptr(&x->location);
    x->hops++;
    x->h.url = x->url;
    if (!same_origin(x->req.url, x->url))
        x->h.same_origin = false;
    if (!keep_method || !x->h.same_origin) {
        if (strcmp(x->h.method, "HEAD"))
            x->h.method = "GET";
        x->h.body = NULL;
        x->h.body_len = 0;
    }
    return 1;
}

cm_http_xfer *cm_http_xfer_new(const cm_http_req *req, cm_http_resp *resp, cm_error *err)
{
    if (check_header_names(req->headers, err) < 0)
        return NULL;
    xfer *x = cm_xcalloc(1, sizeof *x);
    x->req = *req;
    if (!x->req.deadline_ms)
        x->req.deadline_ms = cm_now_ms() + DEFAULT_TIMEOUT_MS;
    x->resp = resp;
    memset(resp, 0, sizeof *resp);
    x->max_bytes = req->max_bytes ? req->max_bytes : DEFAULT_MAX_BYTES;
    x->url = cm_xstrdup(req->url);
    x->h = (hop){.url = x->url,
                 .method = req->method,
                 .body = req->body,
                 .body_len = req->body_len,
                 .same_origin = true};
    return x;
}

CURL *cm_http_xfer_start(cm_providers *p, cm_http_xfer *x, cm_error *err)
{
    hop_end(x);
    return hop_begin(p, x, err) < 0 ? NULL : x->easy;
}

int cm_http_xfer_finish(cm_http_xfer *x, CURLcode rc, cm_error *err)
{
    int r = hop_result(x, rc, err);
    hop_end(x);
    return r < 0 ? -1 : next_hop(x, err);
}

int cm_http_xfer_abort(cm_http_xfer *x, cm_error *err)
{
    hop_end(x);
    cm_autofree char *u = cm_http_url_for_message(x->url);
    if (x->req.cancel && atomic_load(x->req.cancel))
        return cm_error_set(err, CM_ERR_TIMEOUT, "%s: cancelled: the caller gave up", u);
    return cm_error_set(err, CM_ERR_TIMEOUT, "%s: timed out", u);
}

bool cm_http_xfer_should_abort(const cm_http_xfer *x)
{
    return (x->req.cancel && atomic_load(x->req.cancel)) || cm_now_ms() >= x->req.deadline_ms;
}

CURL *cm_http_xfer_easy(const cm_http_xfer *x)
{
    return x->easy;
}

void cm_http_xfer_free(cm_http_xfer *x)
{
    if (!x)
        return;
    hop_end(x);
    free(x->url);
    free(x->location);
    free(x);
}

int cm_http_perform(cm_providers *p, const cm_http_req *req, cm_http_resp *resp, cm_error *err)
{
    cm_http_xfer *x = cm_http_xfer_new(req, resp, err);
    if (!x)
        return -1;
    int r;
    do {
        CURL *c = cm_http_xfer_start(p, x, err);
        r = c ? cm_http_xfer_finish(x, curl_easy_perform(c), err) : -1;
    } while (r == 1);
    cm_http_xfer_free(x);
    if (r < 0)
        cm_http_resp_free(resp); /* nothing to hand back on failure */
    return r < 0 ? -1 : 0;
}
