/* jsonrpc.h — answer shapes (jsonrpc.c).  Each takes ownership of the
 * cJSON it is given and returns a new object the caller sends or frees. */
#ifndef CM_JSONRPC_H
#define CM_JSONRPC_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

/* {"jsonrpc":"2.0","id":id,"error":{code,message}} (id NULL → null). */
cJSON *cm_rpc_error(const cJSON *id, int code, const char *message);
/* {"jsonrpc":"2.0","id":id,"result":result}. */
cJSON *cm_rpc_result(const cJSON *id, cJSON *result);
/* MCP tool result: {content:[{type:"text", text:<json>}], structuredContent, isError}. */
cJSON *cm_tool_result(cJSON *structured, bool is_error);
/* {success:false, error:{kind, message}} as an isError tool result. */
cJSON *cm_tool_result_error(cm_errkind kind, const char *message);

#endif
