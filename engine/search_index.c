/* search_index.c — ranks tools for `search_tools` (see search.h): BM25F
 * over the fields search.c fills, through an inverted index so a query
 * touches only the documents sharing a term with it (10,000 tools in well
 * under 5 ms).  The field weights were tuned on the evaluation in
 * tests/eval (GitHub's 1,223 operations, Slack's and Spotify's): the name
 * and the summary say what a tool does, the path and the parameters what
 * it works on, the exact words break ties between "list" and "get" forms. */
#include "search.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define BM25_K1 1.2

/* Length normalisation per field: a long name ("get-users-with-access-to-
 * protected-branch") is not less about its words than a short one. */
static const double FIELD_B[CM_FIELD__COUNT] = {
    [CM_FIELD_NAME] = 0.75, [CM_FIELD_SUMMARY] = 0.5, [CM_FIELD_TAGS] = 0.75,
    [CM_FIELD_PATH] = 0.5, [CM_FIELD_PARAMS] = 0.75, [CM_FIELD_EXACT] = 0.5,
    [CM_FIELD_VERB] = 0,
};

static const double FIELD_WEIGHT[CM_FIELD__COUNT] = {
    [CM_FIELD_NAME] = 3.0,   [CM_FIELD_SUMMARY] = 1.5, [CM_FIELD_TAGS] = 1.0, [CM_FIELD_PATH] = 1.0,
    [CM_FIELD_PARAMS] = 0.5, [CM_FIELD_EXACT] = 2.0,   [CM_FIELD_VERB] = 6.0,
};

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

static void average_lengths(const cm_search_doc *const *docs, size_t n, double *avg)
{
    for (int f = 0; f < CM_FIELD__COUNT; f++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += (double)docs[i]->field[f].length;
        avg[f] = n && total > 0 ? total / (double)n : 1.0;
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

size_t cm_search_index_score(const cm_search_index *x, const cm_query_term *terms, size_t nterms,
                             double *scores, uint32_t *touched)
{
    size_t ntouched = 0;
    for (size_t q = 0; q < nterms; q++) {
        const term_slot *s = index_slot((cm_search_index *)x, terms[q].term);
        if (!s->term)
            continue;
        double w = terms[q].weight * ln_positive(1.0 + ((double)x->ndocs - (double)s->n + 0.5) /
                                                           ((double)s->n + 0.5));
        for (size_t k = 0; k < s->n; k++) {
            const posting *p = &s->p[k];
            double ts = 0;
            for (int f = 0; f < CM_FIELD__COUNT; f++) {
                if (!p->tf[f])
                    continue;
                double norm = 1.0 - FIELD_B[f] + FIELD_B[f] * (double)x->len[p->doc][f] / x->avg[f];
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
