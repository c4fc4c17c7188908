/* egress.c — HTTP egress decisions for providers: may a profile fetch this
 * URL, may it connect to this resolved address.  URLs are parsed with
 * libcurl's URL API (the same parser the http provider's requests go
 * through), addresses with inet_pton.  Private, loopback, link-local and
 * other non-public ranges are denied unless a rule lists the address (IP
 * literal or CIDR) explicitly. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy_int.h"
#include "util.h"

/* ---- addresses ------------------------------------------------------------ */

int cm_egress_parse_ip(const char *text, egress_rule *r)
{
    char buf[64];
    if (strlen(text) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", text);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(r->net, 0, sizeof r->net);
    if (inet_pton(AF_INET, buf, r->net) == 1)
        r->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, r->net) == 1)
        r->family = AF_INET6;
    else
        return -1;
    int bits = r->family == AF_INET ? 32 : 128;
    r->prefix = bits;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || p < 0 || p > bits)
            return -1;
        r->prefix = (int)p;
    }
    r->is_ip = true;
    return 0;
}

static bool prefix_match(const unsigned char *a, const unsigned char *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

/* Non-public ranges (RFC 6890 special-purpose, the ones that reach inside). */
static const char *const PRIVATE_V4[] = {"0.0.0.0/8",    "10.0.0.0/8",     "100.64.0.0/10",
                                         "127.0.0.0/8",  "169.254.0.0/16", "172.16.0.0/12",
                                         "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15",
                                         "224.0.0.0/4",  "240.0.0.0/4"};
static const char *const PRIVATE_V6[] = {"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8"};

static bool in_ranges(int family, const unsigned char *addr, const char *const *ranges, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        egress_rule r = {0};
        if (cm_egress_parse_ip(ranges[i], &r) == 0 && r.family == family &&
            prefix_match(addr, r.net, r.prefix))
            return true;
    }
    return false;
}

bool cm_egress_is_private(int family, const unsigned char *addr)
{
    if (family == AF_INET)
        return in_ranges(AF_INET, addr, PRIVATE_V4, sizeof PRIVATE_V4 / sizeof *PRIVATE_V4);
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(addr, v4mapped, 12))
        return cm_egress_is_private(AF_INET, addr + 12);
    return in_ranges(AF_INET6, addr, PRIVATE_V6, sizeof PRIVATE_V6 / sizeof *PRIVATE_V6);
}

/* Is the address listed by some IP/CIDR rule (then private is fine)? */
static const egress_rule *listed_ip(const cm_policy_profile *prof, int family,
                                    const unsigned char *addr)
{
    for (size_t i = 0; i < prof->negress; i++) {
        const egress_rule *r = &prof->egress[i];
        if (r->is_ip && r->family == family && prefix_match(addr, r->net, r->prefix))
            return r;
    }
    return NULL;
}

int cm_policy_check_egress_addr(const cm_policy_profile *prof, const struct sockaddr *addr,
                                cm_error *err)
{
    const unsigned char *a;
    int family = addr->sa_family;
    if (family == AF_INET)
        a = (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
    else if (family == AF_INET6)
        a = (const unsigned char *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
    else
        return cm_error_set(err, CM_ERR_POLICY_DENIED, "egress: address family %d not allowed",
                            family);
    if (!cm_egress_is_private(family, a) || listed_ip(prof, family, a))
        return 0;
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, a, text, sizeof text);
    return cm_error_set(err, CM_ERR_POLICY_DENIED,
                        "egress: %s is a private or link-local address not listed in profile "
                        "'%s' http rules",
                        text, prof->name);
}

/* ---- URLs ------------------------------------------------------------------ */

static bool host_matches(const egress_rule *r, const char *host)
{
    if (r->wildcard) {
        const char *domain = r->host + 1; /* ".example.com" */
        size_t hl = strlen(host), dl = strlen(domain);
        return hl > dl && !strcasecmp(host + hl - dl, domain);
    }
    if (r->is_ip) {
        egress_rule ip = {0};
        return cm_egress_parse_ip(host, &ip) == 0 && ip.family == r->family &&
               prefix_match(ip.net, r->net, r->prefix);
    }
    return !strcasecmp(r->host, host);
}

static bool scheme_ok(const egress_rule *r, const char *scheme)
{
    for (size_t i = 0; i < r->nschemes; i++)
        if (!strcasecmp(r->schemes[i], scheme))
            return true;
    return false;
}

static bool port_ok(const egress_rule *r, long port, long default_port)
{
    if (!r->ports)
        return port == default_port;
    for (size_t i = 0; i < r->nports; i++)
        if (r->ports[i] == port)
            return true;
    return false;
}

typedef struct url_parts {
    char *scheme, *host, *port;
} url_parts;

static void free_parts(url_parts *u)
{
    curl_free(u->scheme);
    curl_free(u->host);
    curl_free(u->port);
}

static int split_url(const char *url, url_parts *u, cm_error *err)
{
    CURLU *h = curl_url();
    if (!h)
        return cm_error_set(err, CM_ERR_INTERNAL, "egress: out of memory");
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(h, CURLUPART_HOST, &u->host, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(h, CURLUPART_PORT, &u->port, CURLU_DEFAULT_PORT);
    curl_url_cleanup(h);
    if (rc != CURLUE_OK)
        return cm_error_set(err, CM_ERR_POLICY_DENIED, "egress: cannot parse URL '%.200s': %s", url,
                            curl_url_strerror(rc));
    /* IPv6 literals come back as "[::1]" */
    size_t n = strlen(u->host);
    if (n > 2 && u->host[0] == '[' && u->host[n - 1] == ']') {
        memmove(u->host, u->host + 1, n - 2);
        u->host[n - 2] = '\0';
    }
    return 0;
}

static int check_parts(const cm_policy_profile *prof, const url_parts *u, cm_error *err)
{
    if (strcasecmp(u->scheme, "http") && strcasecmp(u->scheme, "https"))
        return cm_error_set(err, CM_ERR_POLICY_DENIED, "egress: scheme '%s' is not allowed",
                            u->scheme);
    long port = strtol(u->port, NULL, 10);
    long default_port = strcasecmp(u->scheme, "https") ? 80 : 443;
    egress_rule ip = {0};
    bool literal = cm_egress_parse_ip(u->host, &ip) == 0;
    if (literal && cm_egress_is_private(ip.family, ip.net) && !listed_ip(prof, ip.family, ip.net))
        return cm_error_set(err, CM_ERR_POLICY_DENIED,
                            "egress: %s is a private or link-local address not listed in profile "
                            "'%s' http rules",
                            u->host, prof->name);
    for (size_t i = 0; i < prof->negress; i++) {
        const egress_rule *r = &prof->egress[i];
        if (host_matches(r, u->host) && scheme_ok(r, u->scheme) && port_ok(r, port, default_port))
            return 0;
    }
    return cm_error_set(err, CM_ERR_POLICY_DENIED,
                        "egress: %s://%s:%ld is not allowed by profile '%s' http rules", u->scheme,
                        u->host, port, prof->name);
}

int cm_policy_check_egress(const cm_policy_profile *prof, const char *url, cm_error *err)
{
    url_parts u = {0};
    int rc = split_url(url, &u, err);
    if (rc == 0)
        rc = check_parts(prof, &u, err);
    free_parts(&u);
    return rc;
}

static int check_url(const void *rules, const char *url, cm_error *err)
{
    return cm_policy_check_egress(rules, url, err);
}

static int check_addr(const void *rules, const struct sockaddr *addr, cm_error *err)
{
    return cm_policy_check_egress_addr(rules, addr, err);
}

cm_egress cm_policy_egress(const cm_policy_profile *prof)
{
    return (cm_egress){.rules = prof, .check_url = check_url, .check_addr = check_addr};
}
