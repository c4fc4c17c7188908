/* pyiface.h — Python 3.11 TypedDict interfaces generated from a tool's JSON
 * Schemas (inputs/outputs).  The output compiles and imports with `typing`
 * alone: class names are namespaced by the manual's access name, keys that
 * are not identifiers (or are keywords, or would be name-mangled) use the
 * functional TypedDict form, `$ref` cycles become forward references.
 *
 * Compact (issue 20: an agent reads these): a class used by several tools
 * of a manual (a `$ref`'d definition, or any structurally identical one) is
 * one class; outputs are their fields to one level (deeper objects are
 * Dict[str, Any]); descriptions are one sentence.  The whole of a tool
 * (every level, every word) is cm_pyiface_tool_full.  The registry caches
 * the per-tool parts per manual. */
#ifndef CM_PYIFACE_H
#define CM_PYIFACE_H

#include <cjson/cJSON.h>

/* The import line every interface text starts with. */
extern const char CM_PYIFACE_HEADER[];

/* One manual's classes while its tools are generated: the names taken and
 * the classes already written, so a class two tools need is written once
 * and both reference it.  One per manual, shared by its tools' generations. */
typedef struct cm_pyiface_manual cm_pyiface_manual;
cm_pyiface_manual *cm_pyiface_manual_new(const char *access_manual);
void cm_pyiface_manual_free(cm_pyiface_manual *m);

/* One tool's interface parts; every string owned. */
typedef struct cm_pyiface_tool_text {
    char *classes;   /* the TypedDicts it uses, shared ones included: compiles on its own */
    char *method;    /* stub method for the manual's namespace class */
    char *signature; /* one line: github.pulls_list(owner: str, repo: str, ...) ->
                        list[PullRequestSimple] */
    char *summary;   /* the description's first sentence; "" when it only repeats the name */
} cm_pyiface_tool_text;
void cm_pyiface_tool_text_free(cm_pyiface_tool_text *t);

/* Generates one tool's parts.  def: the registered tool definition (name,
 * description, inputs, outputs). */
void cm_pyiface_tool(cm_pyiface_manual *m, const char *access_tool, const cJSON *def,
                     cm_pyiface_tool_text *out);
/* The same, not compact: every nested type, whole descriptions (classes
 * named as in a manual of this tool alone). */
void cm_pyiface_tool_full(const char *access_manual, const char *access_tool, const cJSON *def,
                          cm_pyiface_tool_text *out);

/* Assembles interface text from chain tool entries [{name, access_manual,
 * access_tool, iface_classes, iface_method}] in order, grouping tools by
 * manual under `# namespace <manual>` with one `<Manual>Namespace` class
 * each; a class several tools share is written once.  only: NULL for all
 * tools, else the UTCP or access name of the one tool to include (NULL
 * returned when it is not among them).  Caller frees. */
char *cm_pyiface_assemble(const cJSON *tools, const char *only);
/* The index of the same entries (iface_signature, iface_summary): a
 * comment line per tool under `# namespace <manual>`, what an agent reads
 * to choose a tool before it asks for one tool's interface.  Valid Python
 * (comments only).  Caller frees. */
char *cm_pyiface_index(const cJSON *tools);

#endif
