/* jsonrpc.c — the JSON shapes of every answer the engine gives: JSON-RPC
 * results and errors, and MCP tool results (content + structuredContent +
 * isError).  Pure constructors in a leaf file: the transport, the RPC layer,
 * the worker pool and every handler build answers here, and none of them
 * needs another to do it. */
#include "jsonrpc.h"

#include <stdlib.h>

#include "util.h"

cJSON *cm_rpc_error(const cJSON *id, int code, const char *message)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    return r;
}

cJSON *cm_rpc_result(const cJSON *id, cJSON *result)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, 1));
    cJSON_AddItemToObject(r, "result", result);
    return r;
}

cJSON *cm_tool_result(cJSON *structured, bool is_error)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(r, "content");
    cJSON *text = cJSON_CreateObject();
    cJSON_AddStringToObject(text, "type", "text");
    char *s = cm_json_print(structured);
    cJSON_AddStringToObject(text, "text", s);
    free(s);
    cJSON_AddItemToArray(content, text);
    cJSON_AddItemToObject(r, "structuredContent", structured);
    cJSON_AddBoolToObject(r, "isError", is_error);
    return r;
}

cJSON *cm_tool_result_error(cm_errkind kind, const char *message)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddBoolToObject(s, "success", 0);
    cJSON *e = cJSON_AddObjectToObject(s, "error");
    cJSON_AddStringToObject(e, "kind", cm_errkind_name(kind));
    cJSON_AddStringToObject(e, "message", message);
    return cm_tool_result(s, true);
}
