/* search.c — ranks tools for `search_tools`.  The reference libraries score
 * plain word overlap; agents find tools faster with a real ranking, so this
 * is BM25 over three weighted fields (name 3, tags 2, description 1) with a
 * tokenizer that splits snake/kebab/camelCase names and a light suffix
 * stemmer.  Deterministic and stateless; documents are indexed once, when a
 * manual is registered. */
#include "search.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BM25_K1 1.2
#define BM25_B 0.75
#define MAX_TOKEN 64

static const double FIELD_WEIGHT[CM_FIELD__COUNT] = {3.0, 2.0, 1.0};

static const char *const STOPWORDS[] = {
    "a",    "an",   "and", "are",  "as", "at",   "be",    "by",   "for", "from",   "i",  "in",
    "into", "is",   "it",  "its",  "me", "my",   "of",    "on",   "or",  "please", "so", "that",
    "the",  "this", "to",  "want", "we", "what", "which", "with", "you", "your",
};

/* Abbreviations and synonyms: a word also emits its expansion (documents
 * and queries alike), so "pull request" finds "PR" and "PR" finds "pull
 * request".  Expansions are stemmed like any word. */
static const struct {
    const char *word, *expansion;
} SYNONYMS[] = {
    {"pr", "pull request"},
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
    {"photo", "image"},
    {"k8s", "kubernetes"},
    {"calc", "calculate"},
    {"del", "delete"},
    {"rm", "remove"},
    {"ls", "list"},
    {"mkdir", "create directory"},
    {"mv", "move"},
    {"cp", "copy"},
    {"stats", "statistics"},
    {"url", "link"},
    {"addr", "address"},
    {"usr", "user"},
    {"tmp", "temporary"},
    {"temp", "temperature"},
    {"qty", "quantity"},
    {"desc", "description"},
    {"id", "identifier"},
    {"ci", "continuous integration"},
    {"fetch", "get"},
    {"retrieve", "get"},
    {"obtain", "get"},
    {"lookup", "find search"},
    {"search", "find"},
    {"find", "search"},
    {"remove", "delete"},
    {"erase", "delete"},
    {"make", "create"},
    {"add", "create"},
    {"new", "create"},
    {"send", "post"},
    {"ticket", "issue"},
    {"bug", "issue"},
    {"mail", "email"},
    {"email", "mail"},
    {"weather", "forecast"},
    {"forecast", "weather"},
    {"sum", "add"},
    {"total", "sum"},
};

typedef struct tokens {
    char **v;
    size_t n, cap;
} tokens;

static void tokens_push(tokens *t, char *s)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
        if (!t->v)
            abort();
    }
    t->v[t->n++] = s;
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
    }
    if (n > 3 && w[n - 1] == 'e')
        w[n - 1] = '\0';
}

static void emit_plain(tokens *t, const char *s, size_t len);

static void emit_word(tokens *t, const char *s, size_t len)
{
    emit_plain(t, s, len);
    if (len == 0 || len > 16)
        return;
    char w[17];
    for (size_t i = 0; i < len; i++)
        w[i] = (char)tolower((unsigned char)s[i]);
    w[len] = '\0';
    for (size_t i = 0; i < sizeof SYNONYMS / sizeof SYNONYMS[0]; i++)
        if (!strcmp(SYNONYMS[i].word, w)) {
            const char *e = SYNONYMS[i].expansion;
            while (*e) { /* expansions are plain lower-case words: no recursion */
                const char *sp = strchr(e, ' ');
                size_t n = sp ? (size_t)(sp - e) : strlen(e);
                emit_plain(t, e, n);
                e += n + (sp ? 1 : 0);
            }
            return;
        }
}

static void emit_plain(tokens *t, const char *s, size_t len)
{
    if (len == 0)
        return;
    if (len > MAX_TOKEN)
        len = MAX_TOKEN;
    char w[MAX_TOKEN + 1];
    for (size_t i = 0; i < len; i++)
        w[i] = (char)tolower((unsigned char)s[i]);
    w[len] = '\0';
    if (is_stopword(w))
        return;
    stem(w);
    if (w[0])
        tokens_push(t, cm_xstrdup(w));
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
static void emit_run(tokens *t, const char *s, size_t len)
{
    emit_word(t, s, len);
    size_t start = 0, parts = 0;
    for (size_t i = 1; i < len; i++) {
        if (camel_boundary(s, i, len)) {
            emit_word(t, s + start, i - start);
            start = i;
            parts++;
        }
    }
    if (parts > 0)
        emit_word(t, s + start, len - start);
}

static void tokenize(tokens *t, const char *s)
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
        emit_run(t, s + start, i - start);
    }
}

static int compare_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the tokens and folds them into (term, count) pairs. */
static void field_from_tokens(cm_field_index *f, tokens *t)
{
    f->length = t->n;
    f->terms = cm_xcalloc(t->n ? t->n : 1, sizeof *f->terms);
    if (t->n)
        qsort(t->v, t->n, sizeof *t->v, compare_str_ptr);
    for (size_t i = 0; i < t->n; i++) {
        if (f->nterms && !strcmp(f->terms[f->nterms - 1].term, t->v[i])) {
            f->terms[f->nterms - 1].count++;
            free(t->v[i]);
            continue;
        }
        f->terms[f->nterms].term = t->v[i];
        f->terms[f->nterms].count = 1;
        f->nterms++;
    }
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

void cm_search_doc_build(cm_search_doc *d, const char *name, const cJSON *tags,
                         const char *description)
{
    tokens t = {0};
    memset(d, 0, sizeof *d);
    tokenize(&t, name);
    field_from_tokens(&d->field[CM_FIELD_NAME], &t);
    const cJSON *tag;
    cJSON_ArrayForEach(tag, tags)
    {
        if (cJSON_IsString(tag))
            tokenize(&t, tag->valuestring);
    }
    field_from_tokens(&d->field[CM_FIELD_TAGS], &t);
    tokenize(&t, description);
    field_from_tokens(&d->field[CM_FIELD_DESC], &t);
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

size_t cm_search_query_terms(const char *query, char ***terms)
{
    tokens t = {0};
    tokenize(&t, query);
    if (t.n)
        qsort(t.v, t.n, sizeof *t.v, compare_str_ptr);
    size_t n = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (n && !strcmp(t.v[n - 1], t.v[i])) {
            free(t.v[i]);
            continue;
        }
        t.v[n++] = t.v[i];
    }
    *terms = t.v;
    return n;
}

void cm_search_terms_free(char **terms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(terms[i]);
    free(terms);
}

static int compare_term_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const cm_term *)elem)->term);
}

static unsigned term_count(const cm_field_index *f, const char *term)
{
    const cm_term *hit =
        f->nterms ? bsearch(term, f->terms, f->nterms, sizeof *f->terms, compare_term_key) : NULL;
    return hit ? hit->count : 0;
}

static bool doc_has_term(const cm_search_doc *d, const char *term)
{
    for (int f = 0; f < CM_FIELD__COUNT; f++)
        if (term_count(&d->field[f], term))
            return true;
    return false;
}

/* Natural log for x > 0 without libm (the build links no -lm): split x into
 * m·2^e with m in [1,2), then ln m = 2·atanh((m-1)/(m+1)) by its series. */
static double ln_positive(double x)
{
    int e = 0;
    while (x >= 2.0) {
        x /= 2.0;
        e++;
    }
    while (x < 1.0) {
        x *= 2.0;
        e--;
    }
    double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, sum = 0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= z2;
    }
    return 2.0 * sum + e * 0.69314718055994530942;
}

static double idf(const cm_search_doc *const *docs, size_t n, const char *term)
{
    size_t df = 0;
    for (size_t i = 0; i < n; i++)
        df += doc_has_term(docs[i], term);
    return ln_positive(1.0 + ((double)n - (double)df + 0.5) / ((double)df + 0.5));
}

static void average_lengths(const cm_search_doc *const *docs, size_t n, double *avg)
{
    for (int f = 0; f < CM_FIELD__COUNT; f++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += (double)docs[i]->field[f].length;
        avg[f] = n && total > 0 ? total / (double)n : 1.0;
    }
}

static double term_score(const cm_search_doc *d, const char *term, const double *avg)
{
    double s = 0;
    for (int f = 0; f < CM_FIELD__COUNT; f++) {
        unsigned tf = term_count(&d->field[f], term);
        if (!tf)
            continue;
        double norm = 1.0 - BM25_B + BM25_B * (double)d->field[f].length / avg[f];
        s += FIELD_WEIGHT[f] * (double)tf * (BM25_K1 + 1.0) / ((double)tf + BM25_K1 * norm);
    }
    return s;
}

void cm_search_score(const cm_search_doc *const *docs, size_t n, char *const *terms, size_t nterms,
                     double *scores)
{
    double avg[CM_FIELD__COUNT];
    average_lengths(docs, n, avg);
    for (size_t i = 0; i < n; i++)
        scores[i] = 0;
    for (size_t q = 0; q < nterms; q++) {
        double w = idf(docs, n, terms[q]);
        for (size_t i = 0; i < n; i++)
            scores[i] += w * term_score(docs[i], terms[q], avg);
    }
}

/* ---- inverted index ------------------------------------------------------
 * Scoring every document per query term is too slow at 10,000 tools; the
 * index maps each term to its postings (document, per-field term counts),
 * so a query touches only documents sharing a term with it.  Built from the
 * documents in one pass; term strings are borrowed from the documents, so
 * the owner rebuilds it whenever the documents change. */

typedef struct posting {
    uint32_t doc;
    uint16_t tf[CM_FIELD__COUNT];
} posting;

typedef struct term_slot {
    const char *term;
    posting *p;
    size_t n, cap;
} term_slot;

struct cm_search_index {
    term_slot *slots;
    size_t cap, nterms, ndocs;
    double avg[CM_FIELD__COUNT];
    uint32_t (*len)[CM_FIELD__COUNT];
};

static uint64_t term_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static term_slot *index_slot(cm_search_index *x, const char *term)
{
    size_t i = term_hash(term) & (x->cap - 1);
    while (x->slots[i].term && strcmp(x->slots[i].term, term))
        i = (i + 1) & (x->cap - 1);
    return &x->slots[i];
}

static void index_grow(cm_search_index *x)
{
    term_slot *old = x->slots;
    size_t oldcap = x->cap;
    x->cap = oldcap ? oldcap * 2 : 1024;
    x->slots = cm_xcalloc(x->cap, sizeof *x->slots);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].term)
            *index_slot(x, old[i].term) = old[i];
    free(old);
}

static void index_add(cm_search_index *x, const char *term, uint32_t doc, int field, unsigned count)
{
    if (2 * (x->nterms + 1) > x->cap)
        index_grow(x);
    term_slot *s = index_slot(x, term);
    if (!s->term) {
        s->term = term;
        x->nterms++;
    }
    if (!s->n || s->p[s->n - 1].doc != doc) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 4;
            s->p = realloc(s->p, s->cap * sizeof *s->p);
            if (!s->p)
                abort();
        }
        memset(&s->p[s->n], 0, sizeof *s->p);
        s->p[s->n++].doc = doc;
    }
    s->p[s->n - 1].tf[field] = (uint16_t)(count > 65535 ? 65535 : count);
}

cm_search_index *cm_search_index_build(const cm_search_doc *const *docs, size_t n)
{
    cm_search_index *x = cm_xcalloc(1, sizeof *x);
    x->ndocs = n;
    x->len = cm_xcalloc(n ? n : 1, sizeof *x->len);
    index_grow(x);
    average_lengths(docs, n, x->avg);
    for (size_t d = 0; d < n; d++)
        for (int f = 0; f < CM_FIELD__COUNT; f++) {
            const cm_field_index *fi = &docs[d]->field[f];
            x->len[d][f] = (uint32_t)fi->length;
            for (size_t k = 0; k < fi->nterms; k++)
                index_add(x, fi->terms[k].term, (uint32_t)d, f, fi->terms[k].count);
        }
    return x;
}

void cm_search_index_free(cm_search_index *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->cap; i++)
        free(x->slots[i].p);
    free(x->slots);
    free(x->len);
    free(x);
}

size_t cm_search_index_score(const cm_search_index *x, char *const *terms, size_t nterms,
                             double *scores, uint32_t *touched)
{
    size_t ntouched = 0;
    for (size_t q = 0; q < nterms; q++) {
        const term_slot *s = index_slot((cm_search_index *)x, terms[q]);
        if (!s->term)
            continue;
        double w =
            ln_positive(1.0 + ((double)x->ndocs - (double)s->n + 0.5) / ((double)s->n + 0.5));
        for (size_t k = 0; k < s->n; k++) {
            const posting *p = &s->p[k];
            double ts = 0;
            for (int f = 0; f < CM_FIELD__COUNT; f++) {
                if (!p->tf[f])
                    continue;
                double norm = 1.0 - BM25_B + BM25_B * (double)x->len[p->doc][f] / x->avg[f];
                ts += FIELD_WEIGHT[f] * (double)p->tf[f] * (BM25_K1 + 1.0) /
                      ((double)p->tf[f] + BM25_K1 * norm);
            }
            if (scores[p->doc] == 0)
                touched[ntouched++] = p->doc;
            scores[p->doc] += w * ts;
        }
    }
    return ntouched;
}
