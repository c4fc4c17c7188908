/* chain_calls.c — a chain's tool calls: each `call` frame from the sandbox
 * is checked against the protocol (chain_check.c: its id, its tool), the call budget and the
 * in-flight memory budget (chain_budget.h), then runs on the providers' I/O loop (http, mcp) or on
 * its own thread, and its result frame goes back to the sandbox.  Split from
 * chain.c (sandbox and control frames) to keep both readable. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "chain_int.h"
#include "jsonschema.h"
#include "tools.h"

/* ---- tool calls (worker threads) -------------------------------------- */

cJSON *cm_chain_result_frame(double id, cJSON *value, const cm_error *err)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "t", "result");
    cJSON_AddNumberToObject(f, "id", id);
    cJSON_AddBoolToObject(f, "ok", err == NULL);
    if (err) {
        cJSON *e = cJSON_AddObjectToObject(f, "error");
        cJSON_AddStringToObject(e, "kind", cm_errkind_name(err->kind));
        cJSON_AddStringToObject(e, "message", err->message);
    } else {
        cJSON_AddItemToObject(f, "value", value ? value : cJSON_CreateNull());
    }
    return f;
}

/* The one way a tool call's answer goes back to the sandbox: redacted. */
static cJSON *call_result_frame(const tool_call *tc, cJSON *value, const cm_error *err)
{
    if (err)
        cm_chain_returned(tc->ch, err->kind);
    return cm_redact_frame(tc->redact, cm_chain_result_frame(tc->id, value, err));
}

/* The call's result frame, encoded outside the chain's lock; one over
 * engine.max_call_result_mb becomes a tool_error naming the sizes. */
static void encode_result(chain *ch, const tool_call *tc, cJSON *frame, cm_buf *out)
{
    cm_error err;
    if (cm_frame_encode(frame, out, &err) < 0)
        cm_log("error", "chain: cannot encode tool result: %s", err.message);
    cJSON_Delete(frame);
    size_t cap = ch->eng->cfg.max_call_result_bytes;
    if (out->len <= cap + 4)
        return;
    cm_error big = {.kind = CM_ERR_TOOL_ERROR};
    snprintf(big.message, sizeof big.message,
             "%s: result of %zu bytes exceeds the limit of %zu bytes for one tool result "
             "(engine.max_call_result_mb)",
             tc->tool, out->len - 4, cap);
    cm_buf_free(out);
    frame = call_result_frame(tc, NULL, &big);
    if (cm_frame_encode(frame, out, &err) < 0)
        cm_log("error", "chain: cannot encode tool result: %s", err.message);
    cJSON_Delete(frame);
}

/* Under the chain's lock: the encoded result joins the frames for the
 * sandbox; the call's arguments leave the budget and its result enters it
 * until sent (it exists already, so it is counted even over the budget). */
static void queue_result(chain *ch, tool_call *tc, cm_buf *enc)
{
    cm_error err;
    size_t n = enc->len;
    if (!ch->finished_calls.len) {
        cm_buf_free(&ch->finished_calls);
        ch->finished_calls = *enc; /* taken, not copied */
        *enc = (cm_buf){0};
    } else if (cm_buf_append(&ch->finished_calls, enc->data, enc->len, &err) < 0) {
        cm_log("error", "chain: cannot queue tool result: %s", err.message);
        n = 0;
    }
    cm_budget_release(ch->eng, &ch->budget, tc->arg_bytes);
    tc->arg_bytes = 0;
    cm_budget_charge(ch->eng, &ch->budget, n);
    ch->results_queued += n;
}

static void post_result(chain *ch, tool_call *tc, cJSON *frame)
{
    cm_buf enc = {0};
    encode_result(ch, tc, frame, &enc);
    pthread_mutex_lock(&ch->lock);
    queue_result(ch, tc, &enc);
    ch->inflight--;
    pthread_mutex_unlock(&ch->lock);
    cm_buf_free(&enc);
    uint64_t one = 1;
    (void)!write(ch->wake_fd, &one, sizeof one);
}

/* The call's audit line; arguments and result are printed (to measure
 * them) only when the policy keeps an audit log, not on every call. */
static void audit_call(chain *ch, const char *qualified, const cJSON *args, const cm_decision *d,
                       int64_t t0_us, const cJSON *value, const cm_error *e)
{
    if (!cm_policy_chain_audits(ch->pc))
        return;
    cm_autofree char *in = cm_json_print(args);
    cm_autofree char *out = value ? cm_json_print(value) : NULL;
    cm_policy_chain_audit_call(ch->pc, qualified, args, d, cm_now_us() - t0_us, strlen(in),
                               out ? strlen(out) : 0, e);
}

/* Deadlines nest: a provider call ends (each provider takes the earlier of
 * this and its own timeout) a margin before the chain's deadline, so a
 * stalled tool is a ToolError of kind timeout the chain can catch and
 * answer, not the chain killed.  Margin: a tenth of the chain's timeout,
 * at least 200 ms, at most 1 s. */
static int64_t call_deadline(const chain *ch)
{
    int64_t margin = (int64_t)(ch->timeout_s * 100.0);
    margin = margin < 200 ? 200 : margin > 1000 ? 1000 : margin;
    return ch->deadline_ms - margin;
}

/* A timeout that came from the chain's deadline says so. */
static void explain_timeout(const chain *ch, const cm_call_ctx *ctx, cm_error *err)
{
    if (err->kind != CM_ERR_TIMEOUT || cm_now_ms() < ctx->deadline_ms - 50)
        return;
    size_t n = strlen(err->message);
    snprintf(err->message + n, sizeof err->message - n,
             " (stopped before the chain's timeout of %gs, which leaves no more time for it)",
             ch->timeout_s);
}

/* cm_call_ctx.note: a provider's line about call tc (any thread), kept
 * for the chain thread, which logs it (collect_notes). */
static void tool_note(void *arg, const char *line)
{
    tool_call *tc = arg;
    chain *ch = tc->ch;
    char text[640];
    snprintf(text, sizeof text, "[%s] %s", tc->tool, line);
    size_t n = strlen(text) + 1;
    pthread_mutex_lock(&ch->lock);
    if (ch->tool_note_bytes + n <= (size_t)ch->lim->max_output_bytes) {
        if (!ch->tool_notes)
            ch->tool_notes = cJSON_CreateArray();
        cJSON_AddItemToArray(ch->tool_notes, cJSON_CreateString(text));
        ch->tool_note_bytes += n;
        uint64_t one = 1;
        (void)!write(ch->wake_fd, &one, sizeof one);
    }
    pthread_mutex_unlock(&ch->lock);
}

static void collect_notes(chain *ch)
{
    pthread_mutex_lock(&ch->lock);
    cJSON *notes = ch->tool_notes;
    ch->tool_notes = NULL;
    ch->tool_note_bytes = 0;
    pthread_mutex_unlock(&ch->lock);
    const cJSON *line;
    cJSON_ArrayForEach(line, notes) cm_chain_note(ch, line->valuestring);
    cJSON_Delete(notes);
}

/* What a provider call of this chain may use: variables, deadline, cancel
 * flag, output cap, the profile's egress rules, the note hook. */
static cm_call_ctx call_ctx(chain *ch, tool_call *tc, const char *manual)
{
    return (cm_call_ctx){
        .vars = ch->eng->vars,
        .manual_name = manual,
        .base_dir = ch->eng->cfg.base_dir,
        .deadline_ms = call_deadline(ch),
        .cancel = &ch->cancel,
        .max_output_bytes = ch->eng->cfg.max_tool_output_bytes,
        .providers = ch->eng->providers,
        .egress = ch->egress.rules ? &ch->egress : NULL,
        .note = tool_note,
        .note_arg = tc,
        .note_group = ch,
    };
}

/* The call's arguments against the tool's `inputs` schema, before policy
 * and provider: a typo or a missing argument is an invalid_arguments
 * ToolError naming the argument and the signature, not a wrong answer. */
static int check_arguments(const cJSON *def, const tool_call *tc, cm_error *err)
{
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(def, "inputs");
    if (!inputs || cm_schema_check_args(inputs, tc->args, err) == 0)
        return 0;
    const char *access = cm_json_str(def, "access_name"); /* the name the chain calls */
    cm_autofree char *sig = cm_schema_signature(access ? access : tc->tool, inputs);
    char what[sizeof err->message];
    snprintf(what, sizeof what, "%s", err->message);
    return cm_error_set(err, CM_ERR_INVALID_ARGUMENTS, "%s: %s; signature: %s", tc->tool, what,
                        sig);
}

static int run_provider(chain *ch, tool_call *tc, cJSON **value, cm_error *err)
{
    cm_autojson cJSON *def = NULL;
    cm_autofree char *manual = NULL, *owner = NULL;
    if (cm_agent_lookup(ch->eng, cm_policy_chain_profile(ch->pc), tc->tool, &def, &manual, &owner,
                        err) < 0)
        return -1;
    tc->manual = cm_xstrdup(manual);
    cm_call_ctx ctx = call_ctx(ch, tc, manual);
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(def, "tool_call_template");
    tc->redact = cm_redactor_for_call(ch->eng->vars, manual, tmpl, ch->eng->cfg.public_variables);
    const char *qualified = cm_json_str(def, "name") ? cm_json_str(def, "name") : tc->tool;
    cm_decision d;
    if (check_arguments(def, tc, err) < 0)
        return -1;
    if (cm_policy_chain_authorize(ch->pc, qualified, manual, owner, tmpl, tc->args, &d, err) < 0)
        return -1;
    int64_t t0 = cm_now_us();
    int rc = cm_provider_call(tmpl, tc->args, &ctx, value, err);
    audit_call(ch, qualified, tc->args, &d, t0, rc == 0 ? *value : NULL, rc < 0 ? err : NULL);
    if (rc < 0) {
        explain_timeout(ch, &ctx, err);
        return cm_error_prefix(err, "%s", tc->tool);
    }
    return 0;
}

static void *tool_call_main(void *arg)
{
    tool_call *tc = arg;
    cm_error err;
    cJSON *value = NULL;
    int rc = run_provider(tc->ch, tc, &value, &err);
    cJSON_Delete(tc->args); /* only this thread uses them */
    tc->args = NULL;
    const char *decision = rc == 0 ? "ok" : err.kind == CM_ERR_POLICY_DENIED ? "denied" : "error";
    cm_metrics_tool_call(tc->ch->eng->metrics, tc->manual, decision);
    if (rc < 0)
        post_result(tc->ch, tc, call_result_frame(tc, NULL, &err));
    else
        post_result(tc->ch, tc, call_result_frame(tc, value, NULL));
    return NULL;
}

/* ---- tool calls on the providers' I/O loop (http: curl multi) --------- */

/* Like post_result, but the eventfd write happens under the lock: once
 * inflight reaches 0 the chain may close, and the loop thread must not
 * touch it after unlocking. */
static void post_async_result(chain *ch, tool_call *tc, cJSON *frame)
{
    cm_buf enc = {0};
    encode_result(ch, tc, frame, &enc);
    pthread_mutex_lock(&ch->lock);
    queue_result(ch, tc, &enc);
    uint64_t one = 1;
    (void)!write(ch->wake_fd, &one, sizeof one);
    ch->inflight--;
    pthread_cond_broadcast(&ch->calls_done);
    pthread_mutex_unlock(&ch->lock);
    cm_buf_free(&enc);
}

/* Runs on the loop thread: audit, metrics and the result frame, as
 * tool_call_main does for threaded calls. */
static void async_call_done(void *arg, cJSON *value, const cm_error *e)
{
    tool_call *tc = arg;
    chain *ch = tc->ch;
    audit_call(ch, tc->qualified, tc->args, &tc->d, tc->t0, e ? NULL : value, e);
    cm_metrics_tool_call(ch->eng->metrics, tc->manual,
                         !e                                ? "ok"
                         : e->kind == CM_ERR_POLICY_DENIED ? "denied"
                                                           : "error");
    if (!e) {
        post_async_result(ch, tc, call_result_frame(tc, value, NULL));
        return;
    }
    cm_error err = *e;
    explain_timeout(ch, &tc->ctx, &err);
    cm_error_prefix(&err, "%s", tc->tool);
    post_async_result(ch, tc, call_result_frame(tc, NULL, &err));
}

/* Starts the call without a thread when its provider can (http); false
 * when it must take the thread path. */
static bool start_async_call(chain *ch, tool_call *tc)
{
    cm_autojson cJSON *def = NULL;
    cm_autofree char *manual = NULL, *owner = NULL;
    cm_error err;
    if (cm_agent_lookup(ch->eng, cm_policy_chain_profile(ch->pc), tc->tool, &def, &manual, &owner,
                        &err) < 0)
        return false; /* the thread path reports it */
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(def, "tool_call_template");
    if (!cm_provider_async_capable(tmpl))
        return false;
    tc->async = true;
    tc->manual = cm_xstrdup(manual);
    tc->redact = cm_redactor_for_call(ch->eng->vars, manual, tmpl, ch->eng->cfg.public_variables);
    tc->qualified = cm_xstrdup(cm_json_str(def, "name") ? cm_json_str(def, "name") : tc->tool);
    tc->ctx = call_ctx(ch, tc, tc->manual);
    if (check_arguments(def, tc, &err) < 0 ||
        cm_policy_chain_authorize(ch->pc, tc->qualified, manual, owner, tmpl, tc->args, &tc->d,
                                  &err) < 0) {
        cm_metrics_tool_call(ch->eng->metrics, tc->manual,
                             err.kind == CM_ERR_POLICY_DENIED ? "denied" : "error");
        post_async_result(ch, tc, call_result_frame(tc, NULL, &err));
        return true;
    }
    tc->t0 = cm_now_us();
    cm_provider_call_async(tmpl, tc->args, &tc->ctx, async_call_done, tc);
    if (!cm_policy_chain_audits(ch->pc)) { /* the provider has its own copy */
        cJSON_Delete(tc->args);
        tc->args = NULL;
    }
    return true;
}

static void refuse_call(chain *ch, double id, cm_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse_call(chain *ch, double id, cm_errkind kind, const char *fmt, ...)
{
    cm_error err = {.kind = kind};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    cm_chain_returned(ch, kind);
    cm_chain_queue(ch, cm_chain_result_frame(id, NULL, &err));
}

/* Starts tc, counted in ch->inflight already: on the providers' loop when
 * its provider can, else on its own thread. */
static void launch_call(chain *ch, tool_call *tc)
{
    if (start_async_call(ch, tc)) {
        tc->next = ch->calls;
        ch->calls = tc;
        return;
    }
    int rc = pthread_create(&tc->thread, NULL, tool_call_main, tc);
    if (rc != 0) {
        pthread_mutex_lock(&ch->lock);
        ch->inflight--;
        cm_budget_release(ch->eng, &ch->budget, tc->arg_bytes);
        pthread_mutex_unlock(&ch->lock);
        refuse_call(ch, tc->id, CM_ERR_TOOL_ERROR, "cannot start tool call: %s", strerror(rc));
        free(tc->tool);
        cJSON_Delete(tc->args);
        free(tc);
        return;
    }
    tc->next = ch->calls;
    ch->calls = tc;
}

/* Calls beyond engine.max_inflight_calls wait in arrival order (their
 * frames count in the chain's memory budget, their number is bounded by
 * the chain's max_tool_calls) and start as running ones finish; chain
 * thread only. */
static void start_waiting(chain *ch)
{
    for (;;) {
        pthread_mutex_lock(&ch->lock);
        tool_call *tc = NULL;
        if (ch->waiting && ch->inflight < ch->eng->cfg.max_inflight_calls &&
            !atomic_load(&ch->cancel)) {
            tc = ch->waiting;
            ch->waiting = tc->next;
            tc->next = NULL;
            ch->inflight++;
        }
        pthread_mutex_unlock(&ch->lock);
        if (!tc)
            return;
        launch_call(ch, tc);
    }
}

void cm_chain_start_call(chain *ch, cJSON *msg, size_t frame_len)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const char *tool = cm_json_str(msg, "tool");
    cJSON *args = cJSON_GetObjectItemCaseSensitive(msg, "args");
    if (!cm_chain_take_id(ch, id, "call"))
        return;
    if (!tool) {
        cm_chain_broke(ch, "call frame without a string tool");
        return;
    }
    if (!cm_chain_tool_known(ch, tool))
        return;
    if (!cJSON_IsObject(args)) {
        cm_chain_broke(ch, "call arguments are not an object");
        return;
    }
    atomic_fetch_add(&ch->eng->stats.tool_calls, 1);
    if (++ch->ncalls > ch->lim->max_tool_calls) {
        refuse_call(ch, id->valuedouble, CM_ERR_TOOL_ERROR,
                    "tool call budget of %ld calls per chain exhausted", ch->lim->max_tool_calls);
        return;
    }
    cm_error err;
    pthread_mutex_lock(&ch->lock);
    int over = cm_budget_reserve(ch->eng, &ch->budget, frame_len, &err);
    bool now = over == 0 && !ch->waiting && ch->inflight < ch->eng->cfg.max_inflight_calls;
    if (now)
        ch->inflight++;
    pthread_mutex_unlock(&ch->lock);
    if (over < 0) {
        refuse_call(ch, id->valuedouble, CM_ERR_TOOL_ERROR, "%.60s: %s", tool, err.message);
        return;
    }
    tool_call *tc = cm_xcalloc(1, sizeof *tc);
    tc->ch = ch;
    tc->id = id->valuedouble;
    tc->tool = cm_xstrdup(tool);
    tc->arg_bytes = frame_len;
    /* taken from the frame, not copied */
    tc->args = args ? cJSON_DetachItemViaPointer(msg, args) : cJSON_CreateObject();
    if (now) {
        launch_call(ch, tc);
        return;
    }
    tool_call **tail = &ch->waiting;
    while (*tail)
        tail = &(*tail)->next;
    *tail = tc;
}

/* The head the runner writes for a call, {"t":"call","id":N,"tool":"...",
 * "args":...: its id and tool, or false. */
static bool call_head(const char *head, double *id, char *tool, size_t cap)
{
    int n = 0;
    long long v;
    if (sscanf(head, "{\"t\":\"call\",\"id\":%lld,\"tool\":%n", &v, &n) != 1 || !n ||
        head[n] != '"')
        return false;
    const char *p = head + n + 1;
    while (*p && *p != '"')
        p += (*p == '\\' && p[1]) ? 2 : 1;
    if (*p != '"' || strncmp(p + 1, ",\"args\":", 8) != 0)
        return false;
    cm_autojson cJSON *name = cJSON_ParseWithLength(head + n, (size_t)(p + 1 - (head + n)));
    if (!cJSON_IsString(name))
        return false;
    snprintf(tool, cap, "%s", name->valuestring);
    *id = (double)v;
    return true;
}

void cm_chain_oversized_frame(chain *ch, const char *head, size_t frame_len)
{
    double id;
    char tool[512];
    if (!call_head(head, &id, tool, sizeof tool)) {
        cm_chain_errorf(ch, CM_ERR_OUTPUT_LIMIT,
                        "control frame of %zu bytes exceeds the limit of %zu bytes "
                        "(engine.max_call_mb for a tool call, max_result_bytes and "
                        "max_output_bytes for the answer)",
                        frame_len, ch->reader.max_frame);
        return;
    }
    cm_autojson cJSON *idj = cJSON_CreateNumber(id);
    if (!cm_chain_take_id(ch, idj, "call") || !cm_chain_tool_known(ch, tool))
        return;
    atomic_fetch_add(&ch->eng->stats.tool_calls, 1);
    ++ch->ncalls;
    refuse_call(ch, id, CM_ERR_TOOL_ERROR,
                "%s: tool call of %zu bytes exceeds the limit of %zu bytes for one call "
                "(engine.max_call_mb)",
                tool, frame_len, ch->eng->cfg.max_call_bytes);
}

void cm_chain_join_calls(chain *ch)
{
    atomic_store(&ch->cancel, true);
    while (ch->waiting) { /* never started: nothing to wait for */
        tool_call *tc = ch->waiting;
        ch->waiting = tc->next;
        pthread_mutex_lock(&ch->lock);
        cm_budget_release(ch->eng, &ch->budget, tc->arg_bytes);
        pthread_mutex_unlock(&ch->lock);
        free(tc->tool);
        cJSON_Delete(tc->args);
        free(tc);
    }
    cm_providers_wakeup(ch->eng->providers); /* async calls see the cancel now */
    for (tool_call *tc = ch->calls; tc; tc = tc->next)
        if (!tc->async)
            pthread_join(tc->thread, NULL);
    pthread_mutex_lock(&ch->lock);
    while (ch->inflight > 0)
        pthread_cond_wait(&ch->calls_done, &ch->lock);
    pthread_mutex_unlock(&ch->lock);
    cJSON_Delete(ch->tool_notes); /* every call is over: no more notes */
    ch->tool_notes = NULL;
    while (ch->calls) {
        tool_call *tc = ch->calls;
        ch->calls = tc->next;
        cm_redactor_free(tc->redact);
        free(tc->qualified);
        free(tc->manual);
        free(tc->tool);
        cJSON_Delete(tc->args);
        free(tc);
    }
}

void cm_chain_collect_calls(chain *ch)
{
    uint64_t v;
    (void)!read(ch->wake_fd, &v, sizeof v);
    cm_error err;
    pthread_mutex_lock(&ch->lock);
    if (!ch->to_sandbox.len) { /* taken, not copied */
        cm_buf t = ch->to_sandbox;
        ch->to_sandbox = ch->finished_calls;
        ch->finished_calls = t;
    } else if (ch->finished_calls.len) {
        cm_buf_append(&ch->to_sandbox, ch->finished_calls.data, ch->finished_calls.len, &err);
    }
    cm_buf_consume(&ch->finished_calls, ch->finished_calls.len);
    pthread_mutex_unlock(&ch->lock);
    collect_notes(ch);
    start_waiting(ch);
}

void cm_chain_sent(chain *ch, size_t n)
{
    pthread_mutex_lock(&ch->lock);
    if (n > ch->results_queued)
        n = ch->results_queued;
    ch->results_queued -= n;
    cm_budget_release(ch->eng, &ch->budget, n);
    pthread_mutex_unlock(&ch->lock);
}
