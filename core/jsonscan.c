/* jsonscan.c — raw-text scans of already-validated JSON (see jsonscan.h).
 * Small on purpose: a position walks strings (honouring escapes) and
 * nested brackets; no values are built.  The input parsed with cJSON
 * first, so the scans need not report syntax errors. */
#include "jsonscan.h"

#include <string.h>

static size_t skip_ws(const char *t, size_t len, size_t i)
{
    while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
        i++;
    return i;
}

/* i at the opening quote → index just past the closing quote. */
static size_t skip_string(const char *t, size_t len, size_t i)
{
    for (i++; i < len && t[i] != '"'; i++)
        if (t[i] == '\\')
            i++;
    return i < len ? i + 1 : len;
}

/* i at a value's first character → index just past it. */
static size_t skip_value(const char *t, size_t len, size_t i)
{
    if (i < len && t[i] == '"')
        return skip_string(t, len, i);
    int depth = 0;
    for (; i < len; i++) {
        char c = t[i];
        if (c == '"') {
            i = skip_string(t, len, i) - 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
    }
    return i;
}

bool cm_json_member_span(const char *t, size_t len, const char *key, const char **start, size_t *n)
{
    size_t klen = strlen(key);
    size_t i = skip_ws(t, len, 0);
    if (i >= len || t[i] != '{')
        return false;
    for (i = skip_ws(t, len, i + 1); i < len && t[i] == '"';) {
        size_t kend = skip_string(t, len, i);
        bool match = kend - i == klen + 2 && !memcmp(t + i + 1, key, klen);
        i = skip_ws(t, len, kend);
        if (i >= len || t[i] != ':')
            return false;
        i = skip_ws(t, len, i + 1);
        size_t vend = skip_value(t, len, i);
        if (match) {
            *start = t + i;
            *n = vend - i;
            return true;
        }
        i = skip_ws(t, len, vend);
        if (i >= len || t[i] != ',')
            return false;
        i = skip_ws(t, len, i + 1);
    }
    return false;
}

bool cm_json_has_nul_escape(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '"')
            continue;
        for (i++; i < len && t[i] != '"'; i++) {
            if (t[i] != '\\')
                continue;
            if (i + 5 < len && t[i + 1] == 'u' && !memcmp(t + i + 2, "0000", 4))
                return true;
            i++;
        }
    }
    return false;
}
