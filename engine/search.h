/* search.h — internal to the registry: the tool-search ranking.  search.c
 * turns text into terms (tokenizer, light stemmer, API synonyms),
 * search_index.c ranks documents by BM25F over their fields.  Split out of
 * registry.c so the ranking can be read and tuned on its own (the
 * evaluation: tests/eval); holds no state. */
#ifndef CM_SEARCH_H
#define CM_SEARCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* A tool's fields.  EXACT holds the unstemmed words of its name and
 * summary (marked with a leading '='), so "pull requests" prefers "List
 * pull requests" to "Get a pull request" where stems tie. */
enum {
    CM_FIELD_NAME,
    CM_FIELD_SUMMARY,
    CM_FIELD_TAGS,
    CM_FIELD_PATH,
    CM_FIELD_PARAMS,
    CM_FIELD_EXACT,
    CM_FIELD_VERB, /* what the tool does: "@list", "@get", "@create", "@update", "@delete" */
    CM_FIELD__COUNT
};

typedef struct cm_term {
    char *term;
    unsigned count;
} cm_term;

/* One field's bag of terms, sorted by term. */
typedef struct cm_field_index {
    cm_term *terms;
    size_t nterms;
    size_t length; /* tokens in the field, duplicates included */
} cm_field_index;

typedef struct cm_search_doc {
    cm_field_index field[CM_FIELD__COUNT];
} cm_search_doc;

/* What a tool is found by; any part may be NULL.  path: the URL path of an
 * HTTP tool ("/repos/{owner}/{repo}/pulls": its literal segments count,
 * the {params} are in params); params: the inputs' properties object. */
typedef struct cm_search_text {
    const char *name; /* qualified UTCP name "manual.tool" */
    const cJSON *tags;
    const char *description;
    const char *path;
    const cJSON *params;
} cm_search_text;

void cm_search_doc_build(cm_search_doc *d, const cm_search_text *text);
void cm_search_doc_free(cm_search_doc *d);

/* A query term with its weight: 1 for the query's own words, less for a
 * synonym it implies ("fetch" → get). */
typedef struct cm_query_term {
    char *term;
    double weight;
} cm_query_term;

/* Distinct query terms; returns the count, *terms freed with
 * cm_search_terms_free. */
size_t cm_search_query_terms(const char *query, cm_query_term **terms);
void cm_search_terms_free(cm_query_term *terms, size_t n);

/* Inverted index over docs[0..n) (term strings borrowed from the docs:
 * rebuild after any document changes). */
typedef struct cm_search_index cm_search_index;
cm_search_index *cm_search_index_build(const cm_search_doc *const *docs, size_t n);
void cm_search_index_free(cm_search_index *x);
/* Adds each document's BM25F score to scores[doc] (all zero on entry,
 * n entries) and lists the documents that got a positive score in touched
 * (room for n); returns how many. */
size_t cm_search_index_score(const cm_search_index *x, const cm_query_term *terms, size_t nterms,
                             double *scores, uint32_t *touched);

#endif
