/* openapi_auth.c — auth and headers of the tools converted from an OpenAPI
 * document.
 *
 * Why it exists: a description says how its API authenticates
 * (securitySchemes) or, like GitHub's, says nothing; either way the user
 * must be able to give the credential once, on the manual, and have every
 * tool send it.  This is the one place that decides, per operation, which
 * of the document's schemes or the manual's own `auth_tools` / `auth` /
 * `headers` a tool's call template carries (rules in openapi_auth.h). */
#include "openapi_auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_client.h"
#include "util.h"

static const cJSON *security_schemes(const cJSON *doc)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(doc, "components");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "securitySchemes");
    return s ? s : cJSON_GetObjectItemCaseSensitive(doc, "securityDefinitions");
}

static int scheme_index(const cJSON *schemes, const char *name)
{
    int i = 1;
    const cJSON *s;
    cJSON_ArrayForEach(s, schemes)
    {
        if (!strcmp(s->string, name))
            return i;
        i++;
    }
    return 0;
}

static cJSON *var_ref(const char *prefix, const char *base, int n)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s${%s_%d}", prefix, base, n);
    return cJSON_CreateString(buf);
}

static cJSON *auth_for_scheme(const cJSON *sch, int n)
{
    const char *type = cm_json_str(sch, "type");
    const char *scheme = cm_json_str(sch, "scheme");
    cJSON *a = cJSON_CreateObject();
    if (type && !strcmp(type, "apiKey")) {
        cJSON_AddStringToObject(a, "auth_type", "api_key");
        cJSON_AddItemToObject(a, "api_key", var_ref("", "API_KEY", n));
        const char *name = cm_json_str(sch, "name");
        cJSON_AddStringToObject(a, "var_name", name ? name : "X-Api-Key");
        const char *in = cm_json_str(sch, "in");
        cJSON_AddStringToObject(a, "location", in ? in : "header");
    } else if (type && ((!strcmp(type, "http") && scheme && !strcasecmp(scheme, "basic")) ||
                        !strcmp(type, "basic"))) {
        cJSON_AddStringToObject(a, "auth_type", "basic");
        cJSON_AddItemToObject(a, "username", var_ref("", "USERNAME", n));
        cJSON_AddItemToObject(a, "password", var_ref("", "PASSWORD", n));
    } else if (type && !strcmp(type, "http") && scheme && !strcasecmp(scheme, "bearer")) {
        cJSON_AddStringToObject(a, "auth_type", "api_key");
        cJSON_AddItemToObject(a, "api_key", var_ref("Bearer ", "API_KEY", n));
        cJSON_AddStringToObject(a, "var_name", "Authorization");
        cJSON_AddStringToObject(a, "location", "header");
    } else if (type && !strcmp(type, "oauth2")) {
        const cJSON *flows = cJSON_GetObjectItemCaseSensitive(sch, "flows");
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(flows, "clientCredentials");
        const char *tok = cm_json_str(cc, "tokenUrl");
        const char *flow = cm_json_str(sch, "flow"); /* Swagger 2 */
        if (!tok && flow && !strcmp(flow, "application"))
            tok = cm_json_str(sch, "tokenUrl");
        if (!tok) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddStringToObject(a, "auth_type", "oauth2");
        cJSON_AddStringToObject(a, "token_url", tok);
        cJSON_AddItemToObject(a, "client_id", var_ref("", "CLIENT_ID", n));
        cJSON_AddItemToObject(a, "client_secret", var_ref("", "CLIENT_SECRET", n));
    } else {
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

static bool same_origin(const char *a, const char *b)
{
    cm_autofree char *oa = cm_http_origin(a);
    cm_autofree char *ob = cm_http_origin(b);
    return oa && ob && !strcmp(oa, ob);
}

void cm_oa_auth_init(cm_oa_auth *a, const cJSON *doc, const cJSON *manual_tmpl,
                     const char *spec_url, const char *base)
{
    *a = (cm_oa_auth){.doc = doc, .schemes = security_schemes(doc)};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(manual_tmpl, "auth_tools");
    a->tools_auth = cJSON_IsObject(t) ? t : NULL;
    if (spec_url && !same_origin(spec_url, base))
        return;
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(manual_tmpl, "auth");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(manual_tmpl, "headers");
    a->manual_auth = cJSON_IsObject(au) ? au : NULL;
    a->manual_headers = cJSON_IsObject(h) && h->child ? h : NULL;
}

/* The first requirement of `sec` naming a scheme we can express. */
static cJSON *declared_auth(const cm_oa_auth *a, const cJSON *sec)
{
    const cJSON *req;
    cJSON_ArrayForEach(req, sec)
    {
        const cJSON *name;
        cJSON_ArrayForEach(name, req)
        {
            const cJSON *sch = cJSON_GetObjectItemCaseSensitive(a->schemes, name->string);
            cJSON *au = sch ? auth_for_scheme(sch, scheme_index(a->schemes, name->string)) : NULL;
            if (au)
                return au;
        }
    }
    return NULL;
}

void cm_oa_auth_apply(const cm_oa_auth *a, const cJSON *op, cJSON *t)
{
    if (a->manual_headers)
        cJSON_AddItemToObject(t, "headers", cJSON_Duplicate(a->manual_headers, 1));
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
    if (!sec)
        sec = cJSON_GetObjectItemCaseSensitive(a->doc, "security");
    if (cJSON_IsArray(sec) && !sec->child)
        return; /* `security: []`: a public operation */
    cJSON *declared = declared_auth(a, sec);
    const cJSON *manual = a->tools_auth ? a->tools_auth : declared ? NULL : a->manual_auth;
    if (manual) {
        cJSON_Delete(declared);
        cJSON_AddItemToObject(t, "auth", cJSON_Duplicate(manual, 1));
    } else if (declared) {
        cJSON_AddItemToObject(t, "auth", declared);
    }
}
