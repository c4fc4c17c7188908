/* pyiface.h — Python 3.11 TypedDict interfaces generated from a tool's JSON
 * Schemas (inputs/outputs).  The output compiles and imports with `typing`
 * alone: class names are namespaced by the manual's access name, keys that
 * are not identifiers (or are keywords, or would be name-mangled) use the
 * functional TypedDict form, `$ref` cycles become forward references.
 * Pure functions: the registry caches the per-tool parts per manual. */
#ifndef CM_PYIFACE_H
#define CM_PYIFACE_H

#include <cjson/cJSON.h>

/* The import line every interface text starts with. */
extern const char CM_PYIFACE_HEADER[];

/* The class names already used in one manual (so two tools' classes never
 * collide); one per manual, shared by its tools' generations. */
typedef struct cm_pyiface_names cm_pyiface_names;
cm_pyiface_names *cm_pyiface_names_new(void);
void cm_pyiface_names_free(cm_pyiface_names *s);

/* Generates one tool's parts: *classes (TypedDicts for its input and
 * output) and *method (a stub method for the manual's namespace class, with
 * the access form in its docstring).  def: the registered tool definition
 * (name, description, inputs, outputs).  Caller frees both. */
void cm_pyiface_tool(const char *access_manual, const char *access_tool, const cJSON *def,
                     cm_pyiface_names *names, char **classes, char **method);

/* Assembles interface text from chain tool entries [{name, access_manual,
 * access_tool, iface_classes, iface_method}] in order, grouping tools by
 * manual under `# namespace <manual>` with one `<Manual>Namespace` class
 * each.  only: NULL for all tools, else the UTCP or access name of the one
 * tool to include (NULL returned when it is not among them).  Caller frees. */
char *cm_pyiface_assemble(const cJSON *tools, const char *only);

#endif
