/* redact.c — substituted variable values out of tool results (redact.h).
 *
 * Why it exists: variables (API keys, tokens, passwords) are substituted on
 * the host right before a provider runs, but what the provider then returns
 * can carry them back: curl's error text quotes the URL (measured: a failing
 * call whose URL template held ${SECRET} returned the secret to the chain),
 * a status error quotes URL and body, a CLI error quotes the command's
 * output, an MCP server can print its env, an HTTP server can echo a header.
 * The one place a tool call's answer leaves the engine for the sandbox is
 * its result frame (engine/chain.c); every frame of a call whose template
 * substitutes values passes through cm_redact_frame there.
 *
 * Successful results are redacted too: a server echoing the Authorization
 * header (or a CLI printing its argument) would otherwise hand the secret to
 * the chain in an ordinary result.  A tool whose purpose is to show the
 * value of a variable cannot exist under this rule, on purpose. */
#include "redact.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct pattern {
    char *text;
    size_t len;
    char *name; /* the variable's name as written in the template */
} pattern;

struct cm_redactor {
    pattern *p;
    size_t n, cap;
    bool first[256];           /* first bytes of the patterns: the scan's quick filter */
    const cJSON *public_names; /* building only: names never redacted */
};

/* ---- building ------------------------------------------------------------ */

static void add_pattern(cm_redactor *r, const char *text, size_t len, const char *name)
{
    if (len < CM_REDACT_MIN_LEN)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->p[i].len == len && memcmp(r->p[i].text, text, len) == 0)
            return;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->p = realloc(r->p, r->cap * sizeof *r->p);
        if (!r->p)
            abort();
    }
    char *copy = cm_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    r->p[r->n++] = (pattern){.text = copy, .len = len, .name = cm_xstrdup(name)};
    r->first[(unsigned char)text[0]] = true;
}

static void add_owned(cm_redactor *r, char *text, const char *name)
{
    if (text)
        add_pattern(r, text, strlen(text), name);
    free(text);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 3986 percent-encoding (what the providers and curl produce), with
 * lower- or upper-case hex, optionally `+` for space (forms). */
static char *percent_encoded(const char *s, bool lower, bool plus)
{
    const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
    char *out = cm_xmalloc(3 * strlen(s) + 1), *q = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            *q++ = (char)*p;
        } else if (plus && *p == ' ') {
            *q++ = '+';
        } else {
            *q++ = '%';
            *q++ = hex[*p >> 4];
            *q++ = hex[*p & 15];
        }
    }
    *q = '\0';
    return out;
}

/* The value as it appears inside a JSON string literal (no quotes). */
static char *json_escaped(const char *s)
{
    cm_autojson cJSON *str = cJSON_CreateString(s);
    cm_autofree char *printed = cJSON_PrintUnformatted(str);
    if (!printed)
        abort();
    size_t len = strlen(printed);
    return strndup(printed + 1, len - 2);
}

static char *base64(const unsigned char *in, size_t len, bool url)
{
    const char *alpha = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                            : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = cm_xmalloc(4 * ((len + 2) / 3) + 1), *q = out;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *q++ = alpha[(v >> 18) & 63];
        *q++ = alpha[(v >> 12) & 63];
        *q++ = i + 1 < len ? alpha[(v >> 6) & 63] : '=';
        *q++ = i + 2 < len ? alpha[v & 63] : '=';
    }
    *q = '\0';
    return out;
}

/* The value inside any base64 text (a Basic credential "user:secret", a
 * token blob): for each of the 3 byte offsets it may start at, the base64
 * characters that depend on the value's bytes alone (whole 3-byte groups).
 * Kept only when 8 characters or more, so short values do not match at
 * random. */
static void add_base64_cores(cm_redactor *r, const char *value, const char *name)
{
    size_t len = strlen(value);
    unsigned char *buf = cm_xmalloc(len + 2);
    for (size_t k = 0; k < 3; k++) {
        memset(buf, 0, k);
        memcpy(buf + k, value, len);
        size_t g0 = (k + 2) / 3, g1 = (k + len) / 3; /* groups inside the value */
        if (g1 <= g0 || 4 * (g1 - g0) < 8)
            continue;
        for (int url = 0; url < 2; url++) {
            cm_autofree char *enc = base64(buf, k + len, url);
            add_pattern(r, enc + 4 * g0, 4 * (g1 - g0), name);
        }
    }
    free(buf);
}

static bool is_public(const cm_redactor *r, const char *name)
{
    const cJSON *n;
    cJSON_ArrayForEach(n, r->public_names)
    {
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return true;
    }
    return false;
}

static void add_value(void *arg, const char *name, const char *value)
{
    cm_redactor *r = arg;
    if (strlen(value) < CM_REDACT_MIN_LEN || is_public(r, name))
        return;
    add_pattern(r, value, strlen(value), name);
    add_owned(r, json_escaped(value), name);
    add_owned(r, percent_encoded(value, false, false), name);
    add_owned(r, percent_encoded(value, true, false), name);
    add_owned(r, percent_encoded(value, false, true), name);
    add_base64_cores(r, value, name);
}

/* `auth_type: basic`: the exact `Authorization: Basic` credential. */
static void add_basic_credential(cm_redactor *r, const cm_vars *v, const char *manual,
                                 const cJSON *tmpl)
{
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(tmpl, "auth");
    const char *type = cm_json_str(auth, "auth_type");
    if (!type || strcmp(type, "basic") != 0)
        return;
    cm_error err;
    cm_autojson cJSON *sub = NULL;
    if (cm_vars_substitute(v, manual, auth, &sub, &err) < 0)
        return; /* the call fails the same way before sending anything */
    const char *user = cm_json_str(sub, "username"), *pass = cm_json_str(sub, "password");
    cm_autojson cJSON *names = cJSON_CreateArray();
    cm_vars_required(auth, names);
    if (!user || !pass || cJSON_GetArraySize(names) == 0)
        return;
    cm_autofree char *cred = NULL;
    if (asprintf(&cred, "%s:%s", user, pass) < 0)
        abort();
    cm_autofree char *enc = base64((const unsigned char *)cred, strlen(cred), false);
    add_pattern(r, enc, strlen(enc), cJSON_GetArrayItem(names, 0)->valuestring);
}

static int longest_first(const void *a, const void *b)
{
    const pattern *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

cm_redactor *cm_redactor_for_call(const cm_vars *v, const char *manual, const cJSON *tmpl,
                                  const cJSON *public_names)
{
    if (!v || !tmpl)
        return NULL;
    cm_redactor *r = cm_xcalloc(1, sizeof *r);
    r->public_names = public_names;
    cm_vars_used(v, manual, tmpl, add_value, r);
    add_basic_credential(r, v, manual, tmpl);
    if (r->n == 0) {
        cm_redactor_free(r);
        return NULL;
    }
    qsort(r->p, r->n, sizeof *r->p, longest_first);
    return r;
}

void cm_redactor_free(cm_redactor *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->p[i].text);
        free(r->p[i].name);
    }
    free(r->p);
    free(r);
}

/* ---- applying --------------------------------------------------------------- */

/* The longest pattern starting at s (n bytes left), or NULL. */
static const pattern *match_at(const cm_redactor *r, const char *s, size_t n)
{
    if (!r->first[(unsigned char)*s])
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (r->p[i].len <= n && memcmp(s, r->p[i].text, r->p[i].len) == 0)
            return &r->p[i];
    return NULL;
}

static bool contains_any(const cm_redactor *r, const char *s, size_t n)
{
    for (size_t i = 0; i < r->n; i++)
        if (memmem(s, n, r->p[i].text, r->p[i].len))
            return true;
    return false;
}

static void append(cm_buf *b, const char *s, size_t n)
{
    cm_error err;
    if (cm_buf_append(b, s, n, &err) < 0)
        abort();
}

static void append_marker(cm_buf *b, const char *name)
{
    append(b, "[redacted:", 10);
    append(b, name, strlen(name));
    append(b, "]", 1);
}

char *cm_redact_string(const cm_redactor *r, const char *s)
{
    size_t n = strlen(s);
    if (!r || !contains_any(r, s, n))
        return NULL;
    cm_buf b = {0};
    for (size_t i = 0; i < n;) {
        const pattern *p = match_at(r, s + i, n - i);
        if (p) {
            append_marker(&b, p->name);
            i += p->len;
        } else {
            append(&b, s + i, 1);
            i++;
        }
    }
    append(&b, "", 0);
    return b.data;
}

/* A message cut by a length cap may end inside a value: the longest value
 * prefix (CM_REDACT_MIN_LEN bytes or more) at its very end. */
static const pattern *cut_at_end(const cm_redactor *r, const char *s, size_t n, size_t *cut)
{
    for (size_t i = 0; i < r->n; i++) {
        const pattern *p = &r->p[i];
        for (size_t k = p->len - 1; k >= CM_REDACT_MIN_LEN; k--) {
            if (k <= n && memcmp(s + n - k, p->text, k) == 0) {
                *cut = k;
                return p;
            }
        }
    }
    return NULL;
}

/* cm_redact_string, then a value cut off at the end; always a new string. */
static char *redact_message(const cm_redactor *r, const char *s)
{
    char *full = cm_redact_string(r, s);
    char *text = full ? full : cm_xstrdup(s);
    size_t n = strlen(text), cut = 0;
    const pattern *p = cut_at_end(r, text, n, &cut);
    if (!p)
        return text;
    cm_buf b = {0};
    append(&b, text, n - cut);
    append_marker(&b, p->name);
    append(&b, "", 0);
    free(text);
    return b.data;
}

void cm_redact_message(const cm_redactor *r, char *msg, size_t cap)
{
    if (!r || cap == 0)
        return;
    cm_autofree char *out = redact_message(r, msg);
    size_t n = strlen(out);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
    }
    memcpy(msg, out, n);
    msg[n] = '\0';
}

static char *cjson_copy(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = cJSON_malloc(n);
    if (!c)
        abort();
    memcpy(c, s, n);
    return c;
}

void cm_redact_json(const cm_redactor *r, cJSON *item)
{
    if (!r || !item)
        return;
    if (item->string) {
        cm_autofree char *key = cm_redact_string(r, item->string);
        if (key) {
            if (!(item->type & cJSON_StringIsConst))
                cJSON_free(item->string);
            item->string = cjson_copy(key);
            item->type &= ~cJSON_StringIsConst;
        }
    }
    if (cJSON_IsString(item) && item->valuestring) {
        cm_autofree char *val = cm_redact_string(r, item->valuestring);
        if (val) {
            cJSON_free(item->valuestring);
            item->valuestring = cjson_copy(val);
        }
    }
    for (cJSON *c = item->child; c; c = c->next)
        cm_redact_json(r, c);
}

cJSON *cm_redact_frame(const cm_redactor *r, cJSON *frame)
{
    if (!r || !frame)
        return frame;
    cm_redact_json(r, cJSON_GetObjectItemCaseSensitive(frame, "value"));
    cJSON *e = cJSON_GetObjectItemCaseSensitive(frame, "error");
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(msg) && msg->valuestring) {
        cm_autofree char *out = redact_message(r, msg->valuestring);
        cJSON_free(msg->valuestring);
        msg->valuestring = cjson_copy(out);
    }
    return frame;
}
