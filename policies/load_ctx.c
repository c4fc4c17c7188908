/* load_ctx.c — the policy loader's validation context (load_int.h): the
 * key path being read, errors as FILE:LINE:COL: key.path: message, and the
 * small type checks every section shares.  A file of its own so that the
 * loader and the sections it delegates to (grants.c) both build on it and
 * neither calls back into the other. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "load_int.h"
#include "policy_int.h"

void pv_push_key(vctx *v, const char *key)
{
    if (v->depth < MAX_DEPTH)
        v->segs[v->depth] = key;
    v->depth++;
}

void pv_push_idx(vctx *v, int i)
{
    if (v->depth < MAX_DEPTH) {
        v->segs[v->depth] = NULL;
        v->idx[v->depth] = i;
    }
    v->depth++;
}

void pv_pop(vctx *v)
{
    v->depth--;
}

static void format_path(const vctx *v, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < v->depth && i < MAX_DEPTH && used < size; i++) {
        if (v->segs[i])
            used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "." : "", v->segs[i]);
        else
            used += (size_t)snprintf(buf + used, size - used, "[%d]", v->idx[i]);
    }
}

int pv_err(vctx *v, const char *fmt, ...)
{
    char msg[512], path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    format_path(v, path, sizeof path);
    size_t line = 1, col = 1;
    int depth = v->depth < MAX_DEPTH ? v->depth : MAX_DEPTH;
    cm_yaml_locate(v->text, v->len, v->segs, v->idx, depth, &line, &col);
    return cm_error_set(v->err, CM_ERR_CONFIG, "%s:%zu:%zu: %s%s%s", v->name, line, col, path,
                        path[0] ? ": " : "", msg);
}

/* Fails on the first key of obj not in the NULL-terminated list. */
int pv_check_keys(vctx *v, const cJSON *obj, const char *const *allowed)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, it->string);
        if (!ok) {
            pv_push_key(v, it->string);
            int rc = pv_err(v, "unknown key");
            pv_pop(v);
            return rc;
        }
    }
    return 0;
}

bool pv_is_int(const cJSON *j)
{
    return cJSON_IsNumber(j) && j->valuedouble >= -9e15 && j->valuedouble <= 9e15 &&
           j->valuedouble == (double)(long long)j->valuedouble;
}

static bool is_identifier(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

int pv_string_list(vctx *v, const cJSON *j, bool identifiers, const char *what)
{
    if (!cJSON_IsArray(j))
        return pv_err(v, "must be `all` or a list of %s", what);
    int i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        if (!cJSON_IsString(it) || !it->valuestring[0] ||
            (identifiers && !is_identifier(it->valuestring))) {
            pv_push_idx(v, i);
            int rc = pv_err(v, "must be a %s", identifiers ? "Python module name" : "string");
            pv_pop(v);
            return rc;
        }
    }
    return 0;
}

int pv_bool(vctx *v, const cJSON *j, bool *out)
{
    if (!cJSON_IsBool(j))
        return pv_err(v, "must be true or false");
    *out = cJSON_IsTrue(j);
    return 0;
}
