"""The MCP conformance suite's client under test: a codemode engine whose
MCP client talks to the suite's test server.

Usage (the suite appends the server URL): mcp_client.py URL
Starts an engine (CODEMODE_BIN, default build/codemode) with one `mcp` manual
pointing at URL over streamable HTTP -- registration runs initialize,
notifications/initialized and tools/list -- then runs a chain:
  initialize: `return 1` (the handshake is what the suite checks)
  tools_call: add_numbers(a=17, b=25) through the chain, result checked.
  elicitation-sep1034-client-defaults: with `elicitation: accept_defaults`
             on the server entry, the schema's defaults are the answer.
  sse-retry: test_reconnection, whose answer stream the server closes early:
             the client resumes it (GET, Last-Event-ID, after `retry`).
  auth/*:    the server entry gets an `oauth` object (see oauth_config) and
             the chain calls test-tool: every request needs a token the
             engine obtains on the host.  The scenario's credentials
             (MCP_CONFORMANCE_CONTEXT) become config `variables`, referenced
             as ${VAR} (secrets, redacted from what a chain sees).  For
             REFUSED scenarios success is the engine refusing (an
             `authorization:` error, in the chain's error or, when it came
             at registration, the engine log), which the suite's checks then judge.
Ends with the line `codemode verdict (<scenario>): ok|FAILED` on stdout;
exits 0 on success, 1 with a message otherwise."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.integration.engine import Engine  # noqa: E402


# the scenarios whose server must be refused (the chain fails, by design)
REFUSED = {"auth/resource-mismatch": "the PRM names another resource",
           "auth/scope-retry-limit": "403 insufficient_scope for scopes the token has"}
# conformance context key -> (oauth key, config variable holding the value)
SECRETS = {"client_secret": ("client_secret", "OAUTH_CLIENT_SECRET"),
           "private_key_pem": ("private_key", "OAUTH_PRIVATE_KEY"),
           "idp_id_token": ("idp_id_token", "OAUTH_IDP_ID_TOKEN")}
SETTINGS = {"client_id": "client_id", "signing_algorithm": "signing_algorithm",
            "idp_client_id": "idp_client_id", "idp_token_endpoint": "idp_token_endpoint"}


def oauth_config(scenario, variables):
    """The server entry's `oauth` for an auth scenario: the grant its
    authorization server offers, the credentials the suite hands the client."""
    ctx = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    oauth = {}
    if scenario.startswith("auth/client-credentials-"):
        oauth["grant_type"] = "client_credentials"
    elif scenario == "auth/cross-app-access-complete-flow":
        oauth["grant_type"] = "jwt_bearer"
    elif scenario == "auth/basic-cimd":
        oauth["client_metadata_url"] = "https://conformance-test.local/client-metadata.json"
    for key, name in SETTINGS.items():
        if key in ctx:
            oauth[name] = ctx[key]
    for key, (name, var) in SECRETS.items():
        if key in ctx:
            variables[var] = ctx[key]
            oauth[name] = "${%s}" % var
    return oauth


def main():
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    server = {"url": url}
    variables = {}
    if scenario == "elicitation-sep1034-client-defaults":
        server["elicitation"] = "accept_defaults"  # the configured elicitation policy
    if scenario.startswith("auth/"):
        server["oauth"] = oauth_config(scenario, variables)
    cfg = {"variables": variables,
           "manual_call_templates": [{"name": "conf", "call_template_type": "mcp", "config": {
               "mcpServers": {"suite": server}}}]}
    engine = Engine(json.dumps(cfg), "config.json")
    try:
        engine.start()
        client = engine.client()
        try:
            if scenario == "tools_call":
                r = client.chain("return await conf.suite_add_numbers(a=17, b=25)")
                ok = r["error"] is None and "42" in json.dumps(r["result"])
            elif scenario == "elicitation-sep1034-client-defaults":
                r = client.chain("return await conf.suite_test_client_elicitation_defaults()")
                ok = r["error"] is None and "completed" in json.dumps(r["result"])
            elif scenario == "sse-retry":
                r = client.chain("return await conf.suite_test_reconnection()")
                ok = r["error"] is None and "successfully" in json.dumps(r["result"])
            elif scenario in REFUSED:
                r = client.chain("return await conf.suite_test_tool()")
                # refused at registration (no tool: the log says why) or at the call
                ok = r["error"] is not None and any(
                    "authorization: " in t for t in (json.dumps(r["error"]), engine.read_log()))
            elif scenario.startswith("auth/"):
                r = client.chain("return await conf.suite_test_tool()")
                ok = r["error"] is None and r["result"] == "test"
            else:
                r = client.chain("return 1")
                ok = r["error"] is None and r["result"] == 1
            leaked = [v for v in variables.values() if v in json.dumps(r)]
            ok = ok and not leaked  # secrets stay on the host, even in errors
            print("codemode chain (%s): %s%s" % (scenario or "?", json.dumps(r)[:500],
                                                 " (a secret leaked)" if leaked else ""))
        finally:
            client.close()
    except Exception as e:  # engine failed to start or to register the manual
        print("codemode: %s" % e, file=sys.stderr)
        ok = False
    finally:
        rc = engine.stop()
        log = engine.read_log()
        engine.cleanup()
    if rc != 0 or any(s in log for s in ("AddressSanitizer", "LeakSanitizer", "runtime error:")):
        print("codemode: engine exited with %s or reported a sanitizer error" % rc, file=sys.stderr)
        ok = False
    if not ok:
        print(log[-3000:], file=sys.stderr)
    # the verdict run.py reads: the suite ignores the exit status of the
    # scenarios that expect a refusal
    print("codemode verdict (%s): %s" % (scenario or "?", "ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
