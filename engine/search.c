/* search.c — the text side of `search_tools` (see search.h): tools and
 * queries become terms.  The reference libraries score plain word overlap;
 * an agent's words are rarely the API's ("create a branch" is GitHub's
 * git/create-ref, "close an issue" is issues/update), so a query also asks
 * for the API vocabulary its words imply, at a lower weight, and a light
 * suffix stemmer lets "requests", "requested" and "request" meet.  Names
 * split at snake/kebab/camelCase and '/'.  Deterministic and stateless;
 * documents are indexed once, when a manual is registered. */
#include "search.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define MAX_TOKEN 64
/* A word a query only implies counts this much of one it says. */
#define IMPLIED 0.5

static const char *const STOPWORDS[] = {
    "a",    "an",   "and", "are",  "as",  "at",   "be", "by",   "for",   "from", "i",
    "in",   "into", "is",  "it",   "its", "me",   "my", "of",   "on",    "or",   "please",
    "so",   "that", "the", "this", "to",  "want", "we", "what", "which", "with", "you",
    "your", "some", "all", "our",  "can", "how",  "do", "does", "using", "via",  "one",
};

/* Abbreviations: a word also stands for its expansion, in tools and
 * queries alike ("PR" finds "pull request" and "pull request" finds a tool
 * that says "PR"). */
static const struct {
    const char *word, *expansion;
} ABBREVIATIONS[] = {
    {"pr", "pull request"},
    {"prs", "pull request"},
    {"mr", "merge request"},
    {"repo", "repository"},
    {"repos", "repository"},
    {"msg", "message"},
    {"db", "database"},
    {"auth", "authentication"},
    {"config", "configuration"},
    {"cfg", "configuration"},
    {"env", "environment"},
    {"dir", "directory"},
    {"doc", "document"},
    {"docs", "document"},
    {"info", "information"},
    {"num", "number"},
    {"img", "image"},
    {"pic", "image"},
    {"k8s", "kubernetes"},
    {"calc", "calculate"},
    {"del", "delete"},
    {"rm", "remove"},
    {"ls", "list"},
    {"mkdir", "create directory"},
    {"mv", "move"},
    {"cp", "copy"},
    {"stats", "statistics"},
    {"addr", "address"},
    {"usr", "user"},
    {"qty", "quantity"},
    {"desc", "description"},
    {"id", "identifier"},
    {"ci", "continuous integration"},
    {"dm", "direct message"},
    {"sha", "commit"},
    {"readme", "readme"},
};

/* API vocabulary: what a query's word implies (query side only, at
 * IMPLIED weight): the verbs REST APIs name their operations with, and the
 * nouns they use for everyday words. */
static const struct {
    const char *word, *implies;
} IMPLIES[] = {
    /* reading */
    {"fetch", "get"},
    {"retrieve", "get"},
    {"obtain", "get"},
    {"read", "get list"},
    {"view", "get"},
    {"show", "get list"},
    {"see", "get list"},
    {"detail", "get"},
    {"details", "get"},
    {"information", "get info"},
    {"lookup", "get find search"},
    {"look", "get find"},
    {"find", "search get"},
    {"search", "find list"},
    {"which", "list"},
    {"who", "list user"},
    {"every", "list"},
    {"enumerate", "list"},
    {"list", "get"},
    {"get", "list"},
    {"download", "get download"},
    {"check", "get list"},
    /* writing */
    {"add", "create"},
    {"new", "create"},
    {"make", "create"},
    {"open", "create"},
    {"file", "create content"},
    {"publish", "create"},
    {"write", "create update"},
    {"post", "create send"},
    {"send", "post create"},
    {"submit", "create"},
    {"register", "create add"},
    {"store", "create update set"},
    {"save", "create update"},
    {"commit", "create update ref"},
    {"create", "add"},
    {"start", "create"},
    {"trigger", "create dispatch run"},
    {"run", "create"},
    {"upload", "create"},
    {"set", "update"},
    {"edit", "update"},
    {"change", "update"},
    {"modify", "update"},
    {"rename", "update"},
    {"close", "update"},
    {"reopen", "update"},
    {"mark", "update set"},
    {"update", "set edit"},
    {"remove", "delete"},
    {"erase", "delete"},
    {"drop", "delete"},
    {"destroy", "delete"},
    {"delete", "remove"},
    {"cancel", "delete stop"},
    {"approve", "review create"},
    {"comment", "create"},
    {"reply", "create comment"},
    {"assign", "assignee"},
    {"invite", "add"},
    {"ask", "request"},
    {"follow", "following"},
    {"protect", "update"},
    {"contributed", "contributor"},
    {"contribute", "contributor"},
    /* nouns */
    {"branch", "ref reference"},
    {"tag", "ref"},
    {"ticket", "issue"},
    {"bug", "issue"},
    {"mail", "email"},
    {"email", "mail"},
    {"weather", "forecast"},
    {"forecast", "weather"},
    {"song", "track"},
    {"music", "playback track"},
    {"playing", "playback"},
    {"volume", "playback"},
    {"library", "saved"},
    {"chat", "message conversation"},
    {"channel", "conversation"},
    {"thread", "replies conversation"},
    {"history", "list"},
    {"me", "authenticated"},
    {"mine", "authenticated"},
    {"logs", "log"},
    {"workflow", "actions"},
    {"ci", "actions workflow"},
    {"sum", "add"},
    {"total", "sum"},
};

/* The kind of operation a word asks for (a query's first such word) or a
 * tool performs (its summary's first word): REST APIs name nearly every
 * operation with one of a few verbs, and the agent's verb is the strongest
 * hint which of a resource's operations it wants.  Two kinds: either. */
static const struct {
    const char *word, *kinds;
} VERBS[] = {
    {"list", "list"},
    {"lists", "list"},
    {"show", "list get"},
    {"enumerate", "list"},
    {"which", "list"},
    {"who", "list"},
    {"get", "get"},
    {"gets", "get"},
    {"fetch", "get"},
    {"fetches", "get"},
    {"retrieve", "get"},
    {"retrieves", "get"},
    {"read", "get list"},
    {"view", "get"},
    {"look", "get"},
    {"lookup", "get"},
    {"find", "get search"},
    {"check", "get"},
    {"checks", "get"},
    {"download", "get"},
    {"what", "get"},
    {"create", "create"},
    {"creates", "create"},
    {"add", "create"},
    {"adds", "create"},
    {"new", "create"},
    {"make", "create"},
    {"open", "create"},
    {"file", "create"},
    {"publish", "create"},
    {"post", "create"},
    {"send", "create"},
    {"sends", "create"},
    {"submit", "create"},
    {"register", "create"},
    {"registers", "create"},
    {"start", "create"},
    {"trigger", "create"},
    {"upload", "create"},
    {"uploads", "create"},
    {"initiates", "create"},
    {"invite", "create"},
    {"invites", "create"},
    {"approve", "create"},
    {"comment", "create"},
    {"schedule", "create"},
    {"schedules", "create"},
    {"star", "create"},
    {"save", "create update"},
    {"commit", "create update"},
    {"update", "update"},
    {"updates", "update"},
    {"set", "update"},
    {"sets", "update"},
    {"edit", "update"},
    {"change", "update"},
    {"modify", "update"},
    {"rename", "update"},
    {"renames", "update"},
    {"close", "update"},
    {"reopen", "update"},
    {"mark", "update"},
    {"marks", "update"},
    {"protect", "update"},
    {"replace", "update"},
    {"assign", "create update"},
    {"lock", "update"},
    {"pause", "update"},
    {"skip", "update"},
    {"toggle", "update"},
    {"delete", "delete"},
    {"deletes", "delete"},
    {"remove", "delete"},
    {"removes", "delete"},
    {"erase", "delete"},
    {"drop", "delete"},
    {"destroy", "delete"},
    {"cancel", "delete update"},
    {"search", "search list"},
    {"searches", "search list"},
};

typedef struct tokens {
    cm_query_term *v;
    size_t n, cap;
} tokens;

static void tokens_push(tokens *t, const char *s, double weight)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
        if (!t->v)
            abort();
    }
    t->v[t->n++] = (cm_query_term){.term = cm_xstrdup(s), .weight = weight};
}

static bool is_stopword(const char *w)
{
    for (size_t i = 0; i < sizeof STOPWORDS / sizeof STOPWORDS[0]; i++)
        if (!strcmp(STOPWORDS[i], w))
            return true;
    return false;
}

static bool ends_with(const char *w, size_t n, const char *suf)
{
    size_t m = strlen(suf);
    return n >= m && !memcmp(w + n - m, suf, m);
}

/* Simple suffix rules, applied identically to documents and queries so
 * "requests", "requested", "requesting" and "request" meet. */
static void stem(char *w)
{
    size_t n = strlen(w);
    if (n > 6 && (ends_with(w, n, "ers") || ends_with(w, n, "tions"))) {
        w[--n] = '\0'; /* reviewers → reviewer, protections → protection (below: review, protect) */
    }
    if (n > 4 && ends_with(w, n, "ies")) {
        strcpy(w + n - 3, "y");
        return;
    }
    if (n > 4 && ends_with(w, n, "sses")) {
        w[n - 2] = '\0';
        return;
    }
    if (n > 3 && (ends_with(w, n, "xes") || ends_with(w, n, "ches") || ends_with(w, n, "shes") ||
                  ends_with(w, n, "zes"))) {
        w[n - 2] = '\0';
        n -= 2;
    } else if (n > 3 && w[n - 1] == 's' && !ends_with(w, n, "ss") && !ends_with(w, n, "us") &&
               !ends_with(w, n, "is")) {
        w[--n] = '\0';
    } else if (n > 5 && ends_with(w, n, "ing")) {
        n -= 3;
        w[n] = '\0';
    } else if (n > 4 && ends_with(w, n, "ed")) {
        n -= 2;
        w[n] = '\0';
    } else if (n > 6 && ends_with(w, n, "tion")) { /* protection → protect */
        n -= 3;
        w[n] = '\0';
        return;
    } else if (n > 6 && ends_with(w, n, "er")) {
        n -= 2;
        w[n] = '\0';
        return;
    }
    if (n > 5 && ends_with(w, n, "ee")) { /* assignee → assign */
        w[n - 2] = '\0';
        return;
    }
    if (n > 3 && w[n - 1] == 'e')
        w[n - 1] = '\0';
}

/* How a word becomes terms: in a tool or in a query (which also asks for
 * what its words imply), and whether the unstemmed form is wanted too. */
typedef struct emit_mode {
    bool query;
    bool exact;    /* also "=<word>" (the EXACT field) */
    double weight; /* of the words emitted now */
} emit_mode;

static void lower_copy(char *w, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        w[i] = (char)tolower((unsigned char)s[i]);
    w[len] = '\0';
}

static void emit_plain(tokens *t, const char *s, size_t len, const emit_mode *m)
{
    if (len == 0)
        return;
    if (len > MAX_TOKEN)
        len = MAX_TOKEN;
    char w[MAX_TOKEN + 2];
    lower_copy(w + 1, s, len);
    if (is_stopword(w + 1))
        return;
    if (m->exact) {
        w[0] = '=';
        tokens_push(t, w, m->weight);
    }
    stem(w + 1);
    if (w[1])
        tokens_push(t, w + 1, m->weight);
}

/* Each word of a space-separated expansion, at weight w. */
static void emit_words(tokens *t, const char *e, double weight, const emit_mode *m)
{
    emit_mode sub = {.query = m->query, .exact = false, .weight = weight};
    while (*e) {
        const char *sp = strchr(e, ' ');
        size_t n = sp ? (size_t)(sp - e) : strlen(e);
        emit_plain(t, e, n, &sub);
        e += n + (sp ? 1 : 0);
    }
}

static bool is_abbreviation(const char *w)
{
    for (size_t i = 0; i < sizeof ABBREVIATIONS / sizeof *ABBREVIATIONS; i++)
        if (!strcmp(ABBREVIATIONS[i].word, w))
            return true;
    return false;
}

/* A word emits itself and what it stands for.  In a query an abbreviation
 * itself counts as implied: "PR" means pull request, and the few tools
 * whose names hold the letters "pr" must not outrank those. */
static void emit_word(tokens *t, const char *s, size_t len, const emit_mode *m)
{
    if (len == 0 || len > 16) {
        emit_plain(t, s, len, m);
        return;
    }
    char w[17];
    lower_copy(w, s, len);
    emit_mode self = *m;
    if (m->query && is_abbreviation(w))
        self.weight *= IMPLIED;
    emit_plain(t, s, len, &self);
    for (size_t i = 0; i < sizeof ABBREVIATIONS / sizeof *ABBREVIATIONS; i++)
        if (!strcmp(ABBREVIATIONS[i].word, w))
            emit_words(t, ABBREVIATIONS[i].expansion, m->weight, m);
    if (!m->query)
        return;
    for (size_t i = 0; i < sizeof IMPLIES / sizeof *IMPLIES; i++)
        if (!strcmp(IMPLIES[i].word, w))
            emit_words(t, IMPLIES[i].implies, m->weight * IMPLIED, m);
}

static bool word_byte(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}

static bool camel_boundary(const char *s, size_t i, size_t len)
{
    unsigned char prev = (unsigned char)s[i - 1], cur = (unsigned char)s[i];
    if (!isupper(cur))
        return false;
    if (islower(prev) || isdigit(prev))
        return true;                                                         /* fooBar, v2Api */
    return isupper(prev) && i + 1 < len && islower((unsigned char)s[i + 1]); /* HTTPServer */
}

/* A word emits itself and, when it is camelCase, each of its parts, so both
 * "github" and "git hub" find "GitHub". */
static void emit_run(tokens *t, const char *s, size_t len, const emit_mode *m)
{
    size_t parts = 0, start = 0;
    for (size_t i = 1; i < len; i++)
        parts += camel_boundary(s, i, len);
    if (!parts) {
        emit_word(t, s, len, m);
        return;
    }
    emit_mode whole = *m;
    whole.exact = false; /* the parts are the words */
    emit_word(t, s, len, &whole);
    for (size_t i = 1; i < len; i++)
        if (camel_boundary(s, i, len)) {
            emit_word(t, s + start, i - start, m);
            start = i;
        }
    emit_word(t, s + start, len - start, m);
}

static void tokenize(tokens *t, const char *s, const emit_mode *m)
{
    if (!s)
        return;
    size_t i = 0;
    while (s[i]) {
        while (s[i] && !word_byte((unsigned char)s[i]))
            i++;
        size_t start = i;
        while (s[i] && word_byte((unsigned char)s[i]))
            i++;
        emit_run(t, s + start, i - start, m);
    }
}

/* "@<kind>" for the first word of s that names an operation (query), or
 * for s's first word only (a tool's summary). */
static void emit_verb(tokens *t, const char *s, bool first_only)
{
    char w[24];
    for (const char *p = s ? s : ""; *p;) {
        while (*p && !isalpha((unsigned char)*p))
            p++;
        size_t n = 0;
        while (isalpha((unsigned char)p[n]))
            n++;
        if (!n)
            return;
        lower_copy(w, p, n < sizeof w ? n : sizeof w - 1);
        p += n;
        if (!strcmp(w, "set") && !strncasecmp(p, " up", 3) && !isalpha((unsigned char)p[3]))
            strcpy(w, "setup"); /* "set up a webhook": create */
        for (size_t i = 0; i < sizeof VERBS / sizeof *VERBS; i++) {
            if (strcmp(VERBS[i].word, w))
                continue;
            const char *two = strchr(VERBS[i].kinds, ' ');
            size_t k = two ? (size_t)(two - VERBS[i].kinds) : strlen(VERBS[i].kinds);
            char kind[24] = "@";
            memcpy(kind + 1, VERBS[i].kinds, k);
            kind[k + 1] = '\0';
            tokens_push(t, kind, two ? IMPLIED : 1);
            if (two) {
                snprintf(kind, sizeof kind, "@%s", two + 1);
                tokens_push(t, kind, IMPLIED);
            }
            return;
        }
        if (first_only)
            return;
    }
}

static int compare_term(const void *a, const void *b)
{
    return strcmp(((const cm_query_term *)a)->term, ((const cm_query_term *)b)->term);
}

/* Sorts the tokens and folds them into (term, count) pairs. */
static void field_from_tokens(cm_field_index *f, tokens *t)
{
    f->length = t->n;
    f->terms = cm_xcalloc(t->n ? t->n : 1, sizeof *f->terms);
    if (t->n)
        qsort(t->v, t->n, sizeof *t->v, compare_term);
    for (size_t i = 0; i < t->n; i++) {
        if (f->nterms && !strcmp(f->terms[f->nterms - 1].term, t->v[i].term)) {
            f->terms[f->nterms - 1].count++;
            free(t->v[i].term);
            continue;
        }
        f->terms[f->nterms].term = t->v[i].term;
        f->terms[f->nterms].count = 1;
        f->nterms++;
    }
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

/* The literal segments of a URL path ("{owner}" segments are parameters). */
static void tokenize_path(tokens *t, const char *path, const emit_mode *m)
{
    if (!path)
        return;
    const char *p = strstr(path, "://");
    p = p ? strchr(p + 3, '/') : path; /* the host is the manual's, not the tool's */
    while (p && *p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n && p[0] != '{') {
            cm_autofree char *seg = cm_xcalloc(n + 1, 1);
            memcpy(seg, p, n);
            tokenize(t, seg, m);
        }
        p = end ? end + 1 : NULL;
    }
}

void cm_search_doc_build(cm_search_doc *d, const cm_search_text *x)
{
    tokens t = {0};
    emit_mode plain = {.weight = 1}, exact = {.exact = true, .weight = 1};
    memset(d, 0, sizeof *d);
    tokenize(&t, x->name, &plain);
    field_from_tokens(&d->field[CM_FIELD_NAME], &t);
    tokenize(&t, x->description, &plain);
    field_from_tokens(&d->field[CM_FIELD_SUMMARY], &t);
    const cJSON *e;
    cJSON_ArrayForEach(e, x->tags)
    {
        if (cJSON_IsString(e))
            tokenize(&t, e->valuestring, &plain);
    }
    field_from_tokens(&d->field[CM_FIELD_TAGS], &t);
    tokenize_path(&t, x->path, &plain);
    field_from_tokens(&d->field[CM_FIELD_PATH], &t);
    cJSON_ArrayForEach(e, x->params) /* names, and the values of an enum ("open") */
    {
        tokenize(&t, e->string, &plain);
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(e, "enum"))
        {
            if (cJSON_IsString(v))
                tokenize(&t, v->valuestring, &plain);
        }
    }
    field_from_tokens(&d->field[CM_FIELD_PARAMS], &t);
    /* EXACT: the words as written, only those (not their stems) */
    tokens both = {0};
    tokenize(&both, x->name, &exact);
    tokenize(&both, x->description, &exact);
    for (size_t i = 0; i < both.n; i++) {
        if (both.v[i].term[0] == '=')
            tokens_push(&t, both.v[i].term, 1);
        free(both.v[i].term);
    }
    free(both.v);
    field_from_tokens(&d->field[CM_FIELD_EXACT], &t);
    emit_verb(&t, x->description, true);
    field_from_tokens(&d->field[CM_FIELD_VERB], &t);
}

void cm_search_doc_free(cm_search_doc *d)
{
    for (int f = 0; f < CM_FIELD__COUNT; f++) {
        for (size_t i = 0; i < d->field[f].nterms; i++)
            free(d->field[f].terms[i].term);
        free(d->field[f].terms);
        d->field[f].terms = NULL;
        d->field[f].nterms = 0;
    }
}

size_t cm_search_query_terms(const char *query, cm_query_term **terms)
{
    tokens t = {0};
    emit_mode m = {.query = true, .exact = true, .weight = 1};
    tokenize(&t, query, &m);
    emit_verb(&t, query, false);
    if (t.n)
        qsort(t.v, t.n, sizeof *t.v, compare_term);
    size_t n = 0; /* one entry per term: what asks for it adds up, to at most 1 */
    for (size_t i = 0; i < t.n; i++) {
        if (n && !strcmp(t.v[n - 1].term, t.v[i].term)) {
            t.v[n - 1].weight += t.v[i].weight;
            if (t.v[n - 1].weight > 1)
                t.v[n - 1].weight = 1;
            free(t.v[i].term);
            continue;
        }
        t.v[n++] = t.v[i];
    }
    *terms = t.v;
    return n;
}

void cm_search_terms_free(cm_query_term *terms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(terms[i].term);
    free(terms);
}
