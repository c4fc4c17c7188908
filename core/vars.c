/* vars.c — UTCP variable resolution (see vars.h).
 *
 * Why it exists: call templates name secrets and settings as `${VAR}`; their
 * values live only on the host (config `variables`, dotenv files, the
 * engine's environment) and are substituted here, right before a provider
 * runs, so they never reach a sandbox.  Everything is read once in
 * cm_vars_new (the environment is snapshotted) so lookups are read-only and
 * safe from any number of worker threads. */
#include "vars.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

extern char **environ;

/* One source of values: config variables, one dotenv file, or the
 * environment snapshot.  `values` is an object of strings. */
typedef struct vars_source {
    cJSON *values;
} vars_source;

struct cm_vars {
    vars_source *sources; /* in lookup order */
    size_t nsources;
    char *where; /* "config variables, a.env, environment": for error messages */
};

static bool is_ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Length of the identifier at s ([A-Za-z_][A-Za-z0-9_]*), 0 if none. */
static size_t ident_len(const char *s)
{
    if (!is_ident_start(s[0]))
        return 0;
    size_t n = 1;
    while (is_ident_char(s[n]))
        n++;
    return n;
}

/* True for CMD_<digits>_OUTPUT (the cli provider's step outputs). */
static bool is_cmd_output_name(const char *s, size_t len)
{
    static const char prefix[] = "CMD_", suffix[] = "_OUTPUT";
    size_t pl = sizeof prefix - 1, sl = sizeof suffix - 1;
    if (len <= pl + sl || strncmp(s, prefix, pl) != 0 || strncmp(s + len - sl, suffix, sl) != 0)
        return false;
    for (size_t i = pl; i < len - sl; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* `<manual with '_' doubled>_<name>`; caller frees. */
static char *namespaced_key(const char *manual_name, const char *name)
{
    size_t n = 0;
    for (const char *p = manual_name; *p; p++)
        n += (*p == '_') ? 2 : 1;
    char *key = cm_xmalloc(n + 1 + strlen(name) + 1);
    char *q = key;
    for (const char *p = manual_name; *p; p++) {
        *q++ = *p;
        if (*p == '_')
            *q++ = '_';
    }
    *q++ = '_';
    strcpy(q, name);
    return key;
}

/* ---- sources ---------------------------------------------------------- */

static void source_set(cJSON *values, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(values, key);
    cJSON_AddItemToObject(values, key, cJSON_CreateString(value));
}

static int source_from_config(const cJSON *variables, cJSON **out, cm_error *err)
{
    cm_autojson cJSON *values = cJSON_CreateObject();
    if (variables && !cJSON_IsNull(variables)) {
        if (!cJSON_IsObject(variables))
            return cm_error_set(err, CM_ERR_CONFIG, "variables: must be an object");
        const cJSON *it;
        cJSON_ArrayForEach(it, variables)
        {
            if (cJSON_IsString(it)) {
                source_set(values, it->string, it->valuestring);
            } else if (cJSON_IsNumber(it) || cJSON_IsBool(it)) {
                cm_autofree char *s = cm_json_print(it);
                source_set(values, it->string, s);
            } else {
                return cm_error_set(err, CM_ERR_CONFIG,
                                    "variables.%s: must be a string, number or boolean",
                                    it->string);
            }
        }
    }
    *out = cm_steal_ptr(&values);
    return 0;
}

static cJSON *source_from_environ(void)
{
    cJSON *values = cJSON_CreateObject();
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            continue;
        cm_autofree char *key = strndup(*e, (size_t)(eq - *e));
        if (!key)
            abort();
        source_set(values, key, eq + 1);
    }
    return values;
}

/* ---- dotenv parsing --------------------------------------------------- */

typedef struct dotenv_parser {
    const char *path;
    const char *p;
    int line;
} dotenv_parser;

static int dotenv_fail(dotenv_parser *dp, cm_error *err, const char *what)
{
    return cm_error_set(err, CM_ERR_CONFIG, "%s:%d: %s", dp->path, dp->line, what);
}

static void dotenv_skip_blanks(dotenv_parser *dp)
{
    while (*dp->p == ' ' || *dp->p == '\t')
        dp->p++;
}

/* After a value: only blanks and an optional comment may remain on the line. */
static int dotenv_finish_line(dotenv_parser *dp, cm_error *err)
{
    dotenv_skip_blanks(dp);
    if (*dp->p == '#')
        while (*dp->p && *dp->p != '\n')
            dp->p++;
    if (*dp->p == '\r')
        dp->p++;
    if (*dp->p && *dp->p != '\n')
        return dotenv_fail(dp, err, "unexpected text after quoted value");
    return 0;
}

static int dotenv_single_quoted(dotenv_parser *dp, cm_buf *val, cm_error *err)
{
    int start_line = dp->line;
    dp->p++; /* opening quote */
    while (*dp->p && *dp->p != '\'') {
        if (*dp->p == '\n')
            dp->line++;
        if (cm_buf_append(val, dp->p++, 1, err) < 0)
            return -1;
    }
    if (!*dp->p) {
        dp->line = start_line;
        return dotenv_fail(dp, err, "unterminated single-quoted value");
    }
    dp->p++;
    return dotenv_finish_line(dp, err);
}

static char dotenv_unescape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    default:
        return c;
    }
}

static int dotenv_double_quoted(dotenv_parser *dp, cm_buf *val, cm_error *err)
{
    int start_line = dp->line;
    dp->p++;
    while (*dp->p && *dp->p != '"') {
        char c = *dp->p++;
        if (c == '\\' && *dp->p) {
            char e = *dp->p++;
            if (strchr("nrt\"\\$", e)) {
                c = dotenv_unescape(e);
            } else { /* unknown escape: kept as written */
                if (cm_buf_append(val, "\\", 1, err) < 0)
                    return -1;
                c = e;
            }
        }
        if (c == '\n')
            dp->line++;
        if (cm_buf_append(val, &c, 1, err) < 0)
            return -1;
    }
    if (!*dp->p) {
        dp->line = start_line;
        return dotenv_fail(dp, err, "unterminated double-quoted value");
    }
    dp->p++;
    return dotenv_finish_line(dp, err);
}

/* Unquoted: up to end of line, an inline comment (" #") cut, blanks trimmed. */
static int dotenv_unquoted(dotenv_parser *dp, cm_buf *val, cm_error *err)
{
    const char *start = dp->p;
    const char *end = start;
    while (*end && *end != '\n') {
        if (*end == '#' && (end == start || end[-1] == ' ' || end[-1] == '\t'))
            break;
        end++;
    }
    dp->p = end;
    while (*dp->p && *dp->p != '\n')
        dp->p++;
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    return cm_buf_append(val, start, (size_t)(end - start), err);
}

static size_t dotenv_key_len(const char *s)
{
    if (!is_ident_start(*s))
        return 0;
    size_t n = 1;
    while (is_ident_char(s[n]) || s[n] == '.' || s[n] == '-')
        n++;
    return n;
}

/* Parses one `[export] KEY=value` entry starting at dp->p (blanks skipped). */
static int dotenv_entry(dotenv_parser *dp, cJSON *values, cm_error *err)
{
    if (strncmp(dp->p, "export", 6) == 0 && (dp->p[6] == ' ' || dp->p[6] == '\t')) {
        dp->p += 6;
        dotenv_skip_blanks(dp);
    }
    size_t klen = dotenv_key_len(dp->p);
    if (klen == 0)
        return dotenv_fail(dp, err, "expected KEY=value");
    cm_autofree char *key = strndup(dp->p, klen);
    if (!key)
        abort();
    dp->p += klen;
    dotenv_skip_blanks(dp);
    if (*dp->p != '=')
        return dotenv_fail(dp, err, "expected '=' after the key");
    dp->p++;
    dotenv_skip_blanks(dp);
    cm_buf val = {0};
    int rc;
    if (*dp->p == '\'')
        rc = dotenv_single_quoted(dp, &val, err);
    else if (*dp->p == '"')
        rc = dotenv_double_quoted(dp, &val, err);
    else
        rc = dotenv_unquoted(dp, &val, err);
    if (rc == 0)
        source_set(values, key, val.data ? val.data : "");
    cm_buf_free(&val);
    return rc;
}

static int dotenv_parse(const char *path, const char *text, cJSON *values, cm_error *err)
{
    dotenv_parser dp = {.path = path, .p = text, .line = 1};
    while (*dp.p) {
        while (*dp.p == ' ' || *dp.p == '\t' || *dp.p == '\r')
            dp.p++;
        if (*dp.p == '#') {
            while (*dp.p && *dp.p != '\n')
                dp.p++;
        } else if (*dp.p && *dp.p != '\n') {
            if (dotenv_entry(&dp, values, err) < 0)
                return -1;
        }
        if (*dp.p == '\n') {
            dp.p++;
            dp.line++;
        }
    }
    return 0;
}

static char *resolve_path(const char *base_dir, const char *path)
{
    if (path[0] == '/' || !base_dir || !*base_dir)
        return cm_xstrdup(path);
    char *full = NULL;
    if (asprintf(&full, "%s/%s", base_dir, path) < 0)
        abort();
    return full;
}

static int source_from_dotenv(const cJSON *loader, size_t index, const char *base_dir, cJSON **out,
                              char **shown_path, cm_error *err)
{
    const char *type = cm_json_str(loader, "variable_loader_type");
    const char *path = cm_json_str(loader, "env_file_path");
    if (!type || strcmp(type, "dotenv") != 0)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "load_variables_from[%zu]: variable_loader_type must be \"dotenv\"",
                            index);
    if (!path || !*path)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "load_variables_from[%zu]: env_file_path must be a non-empty string",
                            index);
    cm_autofree char *full = resolve_path(base_dir, path);
    cm_autofree char *text = NULL;
    if (cm_read_file(full, 1 << 20, &text, NULL, err) < 0) {
        err->kind = CM_ERR_CONFIG;
        return cm_error_prefix(err, "dotenv file '%s'", full);
    }
    cm_autojson cJSON *values = cJSON_CreateObject();
    if (dotenv_parse(full, text, values, err) < 0)
        return -1;
    *out = cm_steal_ptr(&values);
    *shown_path = cm_xstrdup(path);
    return 0;
}

/* ---- public API ------------------------------------------------------- */

static void vars_add_source(cm_vars *v, cJSON *values)
{
    v->sources[v->nsources++].values = values;
}

int cm_vars_new(cm_vars **out, const cJSON *variables, const cJSON *loaders, const char *base_dir,
                cm_error *err)
{
    if (loaders && !cJSON_IsNull(loaders) && !cJSON_IsArray(loaders))
        return cm_error_set(err, CM_ERR_CONFIG, "load_variables_from: must be an array");
    size_t nloaders = cJSON_IsArray(loaders) ? (size_t)cJSON_GetArraySize(loaders) : 0;
    cm_vars *v = cm_xcalloc(1, sizeof *v);
    v->sources = cm_xcalloc(nloaders + 2, sizeof *v->sources);
    cm_buf where = {0};
    cJSON *values = NULL;
    if (source_from_config(variables, &values, err) < 0)
        goto fail;
    vars_add_source(v, values);
    if (cm_buf_printf(&where, err, "config variables") < 0)
        goto fail;
    for (size_t i = 0; i < nloaders; i++) {
        cm_autofree char *shown = NULL;
        if (source_from_dotenv(cJSON_GetArrayItem(loaders, (int)i), i, base_dir, &values, &shown,
                               err) < 0)
            goto fail;
        vars_add_source(v, values);
        if (cm_buf_printf(&where, err, ", %s", shown) < 0)
            goto fail;
    }
    vars_add_source(v, source_from_environ());
    if (cm_buf_printf(&where, err, ", environment") < 0)
        goto fail;
    v->where = where.data;
    *out = v;
    return 0;
fail:
    cm_buf_free(&where);
    cm_vars_free(v);
    return -1;
}

void cm_vars_free(cm_vars *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->nsources; i++)
        cJSON_Delete(v->sources[i].values);
    free(v->sources);
    free(v->where);
    free(v);
}

static const char *source_get(const vars_source *s, const char *key)
{
    const char *val = cm_json_str(s->values, key);
    return (val && *val) ? val : NULL;
}

const char *cm_vars_lookup(const cm_vars *v, const char *manual_name, const char *name)
{
    if (!v || !name || !*name)
        return NULL;
    cm_autofree char *ns = (manual_name && *manual_name) ? namespaced_key(manual_name, name) : NULL;
    for (size_t i = 0; i < v->nsources; i++) {
        const char *val = ns ? source_get(&v->sources[i], ns) : NULL;
        if (!val)
            val = source_get(&v->sources[i], name);
        if (val)
            return val;
    }
    return NULL;
}

static int missing_var_error(const cm_vars *v, const char *manual_name, const char *name,
                             cm_error *err)
{
    const char *where = v ? v->where : "no variable sources";
    if (manual_name && *manual_name) {
        cm_autofree char *ns = namespaced_key(manual_name, name);
        return cm_error_set(err, CM_ERR_CONFIG,
                            "variable '%s' is not set (looked up as '%s' and '%s' in %s)", name, ns,
                            name, where);
    }
    return cm_error_set(err, CM_ERR_CONFIG, "variable '%s' is not set (looked up as '%s' in %s)",
                        name, name, where);
}

/* Handles a `$` at s[0]; appends the replacement to out and returns how many
 * input bytes were consumed, or 0 on error. */
static size_t substitute_dollar(const cm_vars *v, const char *manual_name, const char *s,
                                cm_buf *out, cm_error *err)
{
    if (s[1] == '{') {
        size_t n = ident_len(s + 2);
        if (n > 0 && s[2 + n] == '}' && !is_cmd_output_name(s + 2, n)) {
            cm_autofree char *name = strndup(s + 2, n);
            if (!name)
                abort();
            const char *val = cm_vars_lookup(v, manual_name, name);
            if (!val) {
                missing_var_error(v, manual_name, name, err);
                return 0;
            }
            return cm_buf_append(out, val, strlen(val), err) < 0 ? 0 : n + 3;
        }
    } else if (s[1] == '$') {
        return cm_buf_append(out, "$$", 2, err) < 0 ? 0 : 2;
    } else {
        size_t n = ident_len(s + 1);
        if (n > 0 && !is_cmd_output_name(s + 1, n)) {
            cm_autofree char *name = strndup(s + 1, n);
            if (!name)
                abort();
            const char *val = cm_vars_lookup(v, manual_name, name);
            if (val)
                return cm_buf_append(out, val, strlen(val), err) < 0 ? 0 : n + 1;
            return cm_buf_append(out, s, n + 1, err) < 0 ? 0 : n + 1;
        }
    }
    return cm_buf_append(out, "$", 1, err) < 0 ? 0 : 1;
}

static int substitute_string(const cm_vars *v, const char *manual_name, const char *in, char **out,
                             cm_error *err)
{
    if (strstr(in, "$ref") || !strchr(in, '$')) {
        *out = cm_xstrdup(in);
        return 0;
    }
    cm_buf b = {0};
    for (const char *p = in; *p;) {
        const char *dollar = strchr(p, '$');
        size_t lit = dollar ? (size_t)(dollar - p) : strlen(p);
        if (cm_buf_append(&b, p, lit, err) < 0)
            goto fail;
        p += lit;
        if (!dollar)
            break;
        size_t used = substitute_dollar(v, manual_name, p, &b, err);
        if (used == 0)
            goto fail;
        p += used;
    }
    if (!b.data && cm_buf_append(&b, "", 0, err) < 0)
        goto fail;
    *out = b.data;
    return 0;
fail:
    cm_buf_free(&b);
    return -1;
}

static cJSON *substitute_value(const cm_vars *v, const char *manual_name, const cJSON *in,
                               cm_error *err)
{
    if (cJSON_IsString(in)) {
        cm_autofree char *s = NULL;
        if (substitute_string(v, manual_name, in->valuestring, &s, err) < 0)
            return NULL;
        return cJSON_CreateString(s);
    }
    if (cJSON_IsArray(in) || cJSON_IsObject(in)) {
        cm_autojson cJSON *copy = cJSON_IsArray(in) ? cJSON_CreateArray() : cJSON_CreateObject();
        const cJSON *it;
        cJSON_ArrayForEach(it, in)
        {
            cJSON *sub = substitute_value(v, manual_name, it, err);
            if (!sub)
                return NULL;
            if (cJSON_IsArray(in))
                cJSON_AddItemToArray(copy, sub);
            else
                cJSON_AddItemToObject(copy, it->string, sub);
        }
        return cm_steal_ptr(&copy);
    }
    return cJSON_Duplicate(in, 1);
}

int cm_vars_substitute(const cm_vars *v, const char *manual_name, const cJSON *in, cJSON **out,
                       cm_error *err)
{
    if (!in)
        return cm_error_set(err, CM_ERR_INTERNAL, "cm_vars_substitute: no input");
    cJSON *res = substitute_value(v, manual_name, in, err);
    if (!res)
        return -1;
    *out = res;
    return 0;
}

static bool names_contain(const cJSON *names, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, names)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, name) == 0)
            return true;
    }
    return false;
}

static void required_in_string(const char *s, cJSON *names)
{
    if (strstr(s, "$ref"))
        return;
    for (const char *p = strchr(s, '$'); p; p = strchr(p + 1, '$')) {
        if (p[1] == '$') {
            p++;
            continue;
        }
        if (p[1] != '{')
            continue;
        size_t n = ident_len(p + 2);
        if (n == 0 || p[2 + n] != '}' || is_cmd_output_name(p + 2, n))
            continue;
        cm_autofree char *name = strndup(p + 2, n);
        if (!name)
            abort();
        if (!names_contain(names, name))
            cJSON_AddItemToArray(names, cJSON_CreateString(name));
    }
}

void cm_vars_required(const cJSON *tmpl, cJSON *names)
{
    if (!tmpl || !names)
        return;
    if (cJSON_IsString(tmpl)) {
        required_in_string(tmpl->valuestring, names);
        return;
    }
    const cJSON *it;
    if (cJSON_IsArray(tmpl) || cJSON_IsObject(tmpl))
        cJSON_ArrayForEach(it, tmpl) cm_vars_required(it, names);
}

/* ---- values a template uses (for redaction, engine/redact.c) ------------ */

static void used_in_string(const cm_vars *v, const char *manual_name, const char *s,
                           cm_vars_used_fn fn, void *arg)
{
    if (strstr(s, "$ref")) /* cm_vars_substitute leaves these alone */
        return;
    for (const char *p = strchr(s, '$'); p; p = strchr(p, '$')) {
        bool braced = p[1] == '{';
        if (p[1] == '$') {
            p += 2;
            continue;
        }
        const char *id = p + (braced ? 2 : 1);
        size_t n = ident_len(id);
        if (n == 0 || (braced && id[n] != '}') || is_cmd_output_name(id, n)) {
            p++;
            continue;
        }
        cm_autofree char *name = strndup(id, n);
        if (!name)
            abort();
        const char *val = cm_vars_lookup(v, manual_name, name);
        if (val)
            fn(arg, name, val);
        p = id + n + (braced ? 1 : 0);
    }
}

void cm_vars_used(const cm_vars *v, const char *manual_name, const cJSON *tmpl, cm_vars_used_fn fn,
                  void *arg)
{
    if (!v || !tmpl)
        return;
    if (cJSON_IsString(tmpl)) {
        used_in_string(v, manual_name, tmpl->valuestring, fn, arg);
        return;
    }
    const cJSON *it;
    if (cJSON_IsArray(tmpl) || cJSON_IsObject(tmpl))
        cJSON_ArrayForEach(it, tmpl) cm_vars_used(v, manual_name, it, fn, arg);
}
