/* search.h — internal to the registry: the tool-search ranking (tokenizer,
 * light stemmer, BM25 over name/tags/description).  Split out of registry.c
 * so the ranking can be read and tuned on its own; holds no state. */
#ifndef CM_SEARCH_H
#define CM_SEARCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum { CM_FIELD_NAME, CM_FIELD_TAGS, CM_FIELD_DESC, CM_FIELD__COUNT };

typedef struct cm_term {
    char *term;
    unsigned count;
} cm_term;

/* One field's bag of stemmed terms, sorted by term (binary-searchable). */
typedef struct cm_field_index {
    cm_term *terms;
    size_t nterms;
    size_t length; /* tokens in the field, duplicates included */
} cm_field_index;

typedef struct cm_search_doc {
    cm_field_index field[CM_FIELD__COUNT];
} cm_search_doc;

/* Indexes one tool: tags is an array of strings (may be NULL). */
void cm_search_doc_build(cm_search_doc *d, const char *name, const cJSON *tags,
                         const char *description);
void cm_search_doc_free(cm_search_doc *d);

/* Distinct stemmed query terms; returns the count, *terms freed with
 * cm_search_terms_free. */
size_t cm_search_query_terms(const char *query, char ***terms);
void cm_search_terms_free(char **terms, size_t n);

/* BM25F-style scores of docs[0..n) for the terms, written to scores[]. */
void cm_search_score(const cm_search_doc *const *docs, size_t n, char *const *terms, size_t nterms,
                     double *scores);

/* Inverted index over docs[0..n) (term strings borrowed from the docs:
 * rebuild after any document changes). */
typedef struct cm_search_index cm_search_index;
cm_search_index *cm_search_index_build(const cm_search_doc *const *docs, size_t n);
void cm_search_index_free(cm_search_index *x);
/* Adds each document's BM25F score to scores[doc] (all zero on entry,
 * n entries) and lists the documents that got a positive score in touched
 * (room for n); returns how many.  Same ranking as cm_search_score. */
size_t cm_search_index_score(const cm_search_index *x, char *const *terms, size_t nterms,
                             double *scores, uint32_t *touched);

#endif
