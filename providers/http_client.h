/* http_client.h — one HTTP exchange over libcurl with the provider-side
 * security rules: only https, or http to a loopback host; redirects followed
 * by hand (at most 5 hops), each hop re-checked, and a cross-origin hop drops
 * credentials (custom headers, basic auth), query-borne secrets are the
 * caller's business; a response size cap; the call's deadline and cancel
 * flag abort the transfer.  Connections are reused through the providers'
 * curl share. */
#ifndef CM_PROVIDERS_HTTP_CLIENT_H
#define CM_PROVIDERS_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egress.h"
#include "error.h"
#include "pctx.h"
#include "util.h"

#define CM_HTTP_MAX_REDIRECTS 5

typedef struct cm_http_req {
    const char *method; /* GET POST PUT PATCH DELETE */
    const char *url;
    const struct curl_slist *headers; /* "Name: value" lines (may be NULL) */
    const char *body;                 /* may be NULL */
    size_t body_len;
    const char *username, *password; /* basic auth (same origin only) */
    size_t max_bytes;                /* response cap (0 = 16 MiB) */
    int64_t deadline_ms;             /* absolute cm_now_ms(); 0 = 30 s from now */
    const atomic_bool *cancel;       /* may be NULL */
    const char *capture_header;      /* response header to capture (may be NULL) */
    const cm_egress *egress;         /* the caller's egress rules, NULL = built-in rule */
    bool no_redirects;               /* a redirect is the answer (resp.location), not followed */
    /* called on the transfer's thread after each piece of body arrives, with
       everything received so far (a streaming reader, e.g. SSE); true ends
       the transfer there, as a success (the reader has what it waited for);
       may be NULL */
    bool (*on_data)(void *arg, const cm_buf *body);
    void *on_data_arg;
} cm_http_req;

typedef struct cm_http_resp {
    long status;
    char *content_type;     /* may be NULL */
    char *captured;         /* value of capture_header (may be NULL) */
    char *www_authenticate; /* the WWW-Authenticate header (may be NULL) */
    char *location;         /* a redirect's absolute target with no_redirects (may be NULL) */
    cm_buf body;
} cm_http_resp;

void cm_http_resp_free(cm_http_resp *r);

/* Performs the request.  Transport failures are CM_ERR_TOOL_ERROR (or
 * CM_ERR_TIMEOUT) naming the URL without its query; any status is a success
 * here (the caller maps >= 400). */
int cm_http_perform(cm_providers *p, const cm_http_req *req, cm_http_resp *resp, cm_error *err);

/* ---- one request driven step by step (blocking or from a curl multi) ----
 * The same hop logic serves cm_http_perform and the multi loop
 * (http_loop.c): new → start (an easy handle for the current hop, URL and
 * policy re-checked) → run it → finish (1: a redirect, start again; 0: *resp
 * is final; -1: err) → free.  The request's pointers must outlive the xfer. */
typedef struct cm_http_xfer cm_http_xfer;
/* NULL with err when the request's headers are invalid. */
cm_http_xfer *cm_http_xfer_new(const cm_http_req *req, cm_http_resp *resp, cm_error *err);
CURL *cm_http_xfer_start(cm_providers *p, cm_http_xfer *x, cm_error *err);
int cm_http_xfer_finish(cm_http_xfer *x, CURLcode rc, cm_error *err);
/* True once the caller cancelled or the deadline passed. */
bool cm_http_xfer_should_abort(const cm_http_xfer *x);
/* Drops the current hop (already removed from any multi); err says why. */
int cm_http_xfer_abort(cm_http_xfer *x, cm_error *err);
void cm_http_xfer_free(cm_http_xfer *x);
/* The current hop's easy handle (NULL between hops). */
CURL *cm_http_xfer_easy(const cm_http_xfer *x);

/* 0 when the URL is https, or http to a loopback host; else
 * CM_ERR_POLICY_DENIED saying why. */
int cm_http_check_url(const char *url, cm_error *err);
/* "scheme://host:port" of a URL (caller frees), NULL when it does not parse. */
char *cm_http_origin(const char *url);
/* URL without query and fragment, for messages (caller frees). */
char *cm_http_url_for_message(const char *url);
/* Appends s percent-encoded (curl_easy_escape). */
void cm_http_append_escaped(cm_buf *b, const char *s);
/* Appends key=value to a form body or query string, both percent-encoded,
 * after an '&' when b is not empty. */
void cm_http_form_add(cm_buf *b, const char *key, const char *value);
/* True for a Content-Type naming JSON (application/json, +json). */
bool cm_http_is_json_type(const char *content_type);

#endif
