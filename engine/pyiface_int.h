/* pyiface_int.h — internal to the interface generator (pyiface.c renders
 * schemas, pyiface_manual.c shares classes across a manual's tools,
 * pyiface_text.c writes signatures, stubs and the assembled text).
 *
 * While one tool is rendered, every class it defines is a *block*: its text
 * names classes by placeholders ("\x01<n>\x02", the tool-local block n), so
 * the manual can decide afterwards which blocks are new and which are the
 * same as a class another tool already has (then that class is referenced
 * and the block dropped).  Placeholders cannot occur in real text: string
 * literals escape control bytes and comments turn them into spaces. */
#ifndef CM_PYIFACE_INT_H
#define CM_PYIFACE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "pyiface.h"
#include "util.h"

#include <cjson/cJSON.h>

#define PH_OPEN '\x01'
#define PH_CLOSE '\x02'

typedef struct pi_block {
    char *stem; /* preferred class name */
    char *text; /* "class <ph>(TypedDict):\n...\n\n" with placeholders */
    bool root;  /* the tool's Input/Output class: never shared */
    bool named; /* a `$ref`'d definition's class (named after it), not an inline object */
} pi_block;

typedef struct pi_field {
    char *name, *expr; /* a top-level input field and its type (placeholders) */
    bool required;
} pi_field;

/* What rendering one tool produced (placeholders still in). */
typedef struct pi_tool {
    pi_block *blocks;
    size_t nblocks;
    char *in_expr, *out_expr;
    bool in_td;
    pi_field *fields; /* the inputs' top-level fields, for the signature */
    size_t nfields;
    bool fields_known; /* fields[] are the inputs' (else the signature says "...") */
} pi_tool;

/* Renders def's inputs and outputs into t (pyiface.c). */
void pi_render_tool(const char *access_manual, const char *access_tool, const cJSON *def, bool full,
                    pi_tool *t);
void pi_tool_free(pi_tool *t);

/* Output helpers (pyiface.c). */
void pi_put(cm_buf *b, const char *s);
void pi_putn(cm_buf *b, const char *s, size_t n);
void pi_put_pystr(cm_buf *b, const char *s);
void pi_put_comment_text(cm_buf *b, const char *s, size_t max);
void pi_put_pascal(cm_buf *b, const char *s, const char *fallback);
bool pi_plain_field_name(const char *s);
const cJSON *pi_props_of(const cJSON *s);
/* The first sentence of s (at most max bytes, cut at a word), one line. */
void pi_put_sentence(cm_buf *b, const char *s, size_t max);

/* A set of strings (copies), open addressing (pyiface_manual.c). */
typedef struct pi_strset {
    char **slots;
    size_t cap, n;
} pi_strset;
void pi_strset_init(pi_strset *set);
void pi_strset_free(pi_strset *set);
bool pi_strset_has(const pi_strset *set, const char *s);
void pi_strset_add(pi_strset *set, const char *s);

/* Text with every placeholder replaced by names[n] (pyiface_manual.c). */
char *pi_substitute(const char *text, char *const *names, size_t nnames);

/* The stub method, signature line and summary of a tool, class names
 * final once names[] are substituted; named[i]: block i's class is a
 * definition's (pyiface_text.c). */
void pi_tool_texts(const char *access_manual, const char *access_tool, const cJSON *def,
                   const pi_tool *t, char *const *names, const bool *named, bool full,
                   cm_pyiface_tool_text *out);

#endif
