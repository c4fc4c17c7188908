"""The conformance suite's server scenarios against codemode: every scenario
of `conformance list` is either run (and must pass: its required checks
SUCCESS, none FAILURE) or listed out of scope with the reason; none is
dropped silently.  Two targets: `codemode serve --http` directly (no
gateway), and `codemode mcp` (stdio) through supergateway, which serves a
stdio server as streamable HTTP.  Used by run.py."""
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from tests.integration.engine import BIN, Engine, stop_process, wait_port  # noqa: E402
from tests.integration.test_mcp_conformance import NPM, free_port, node_env  # noqa: E402

SUITE = os.path.join(NPM, ".bin", "conformance")
GATEWAY = os.path.join(NPM, ".bin", "supergateway")

# scenario -> checks that must be SUCCESS (every other check must not be FAILURE)
IN_SCOPE = {
    "server-initialize": ["server-initialize"],
    "ping": ["ping"],
    "logging-set-level": ["logging-set-level"],
    "tools-list": ["tools-list"],
    # the suite calls its fixture tool test_error_handling; here that is an
    # unknown tool, which codemode answers as a tool error (isError + message):
    # the error shape the scenario checks is ours
    "tools-call-error": ["tools-call-error"],
    "server-sse-multiple-streams": ["server-accepts-multiple-post-streams"],
    # runs; its priming/resume checks need the suite's test_reconnection tool,
    # so they report INFO here (our resumption: tests/integration/test_http_transport.py)
    "server-sse-polling": [],
    "dns-rebinding-protection": ["localhost-host-rebinding-rejected",
                                 "localhost-host-valid-accepted"],
}
FIXTURE = ("calls a fixture tool of the suite's reference server (%s); codemode's tools are "
           "call_tool_chain and its discovery tools")
OUT_OF_SCOPE = {
    "completion-complete": "codemode has no prompts or resource templates, so it declares no "
                           "completions capability",
    "tools-call-simple-text": FIXTURE % "test_simple_text",
    "tools-call-image": FIXTURE % "test_image_content",
    "tools-call-audio": FIXTURE % "test_audio_content",
    "tools-call-embedded-resource": FIXTURE % "test_embedded_resource",
    "tools-call-mixed-content": FIXTURE % "test_multiple_content_types",
    "tools-call-with-logging": FIXTURE % "test_tool_with_logging" +
                               " (chain logs as notifications/message: test_http_transport.py)",
    "tools-call-with-progress": FIXTURE % "test_tool_with_progress" +
                                " (chain progress over SSE: test_http_transport.py)",
    "tools-call-sampling": FIXTURE % "test_sampling" + "; codemode never asks its client to sample",
    "tools-call-elicitation": FIXTURE % "test_elicitation" +
                              "; codemode never elicits from its client",
    "elicitation-sep1034-defaults": FIXTURE % "test_elicitation_sep1034_defaults",
    "elicitation-sep1330-enums": FIXTURE % "test_elicitation_sep1330_enums",
    "json-schema-2020-12": FIXTURE % "json_schema_2020_12_tool",
    "resources-list": "codemode declares no resources capability",
    "resources-read-text": "codemode declares no resources capability",
    "resources-read-binary": "codemode declares no resources capability",
    "resources-templates-read": "codemode declares no resources capability",
    "resources-subscribe": "codemode declares no resources capability",
    "resources-unsubscribe": "codemode declares no resources capability",
    "prompts-list": "codemode declares no prompts capability (its prompt is the agent_prompt tool)",
    "prompts-get-simple": "codemode declares no prompts capability",
    "prompts-get-with-args": "codemode declares no prompts capability",
    "prompts-get-embedded-resource": "codemode declares no prompts capability",
    "prompts-get-with-image": "codemode declares no prompts capability",
}
# through the stdio gateway, these test the gateway's HTTP side, not codemode
GATEWAY_ONLY_HTTP = {
    "dns-rebinding-protection": "Host/Origin checks belong to an HTTP server; over stdio they "
                                "would test supergateway (codemode's own: the --http target)",
    "server-sse-polling": "SSE stream handling would be supergateway's, not codemode's",
    "server-sse-multiple-streams": "SSE streams would be supergateway's, not codemode's",
}


def listed_scenarios(section="Server scenarios"):
    """The scenario names `conformance list` prints in one section."""
    p = subprocess.run([SUITE, "list"], env=node_env(), capture_output=True, text=True,
                       timeout=60)
    out, names = p.stdout, []
    out = out.split(section, 1)[1] if section in out else ""
    out = out.split("scenarios (", 1)[0] if section.startswith("Server") else out
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("- "):
            names.append(line[2:].split(" ")[0])
    return names


def run_scenario(url, scenario, out):
    before = set(glob.glob(os.path.join(out, "server-%s-*" % scenario)))
    p = subprocess.run([SUITE, "server", "--url", url, "--scenario", scenario, "-o", out],
                       env=node_env(), capture_output=True, text=True, timeout=180)
    new = sorted(set(glob.glob(os.path.join(out, "server-%s-*" % scenario))) - before)
    if not new:
        return ["no results (suite exited %d): %s" % (p.returncode, (p.stdout + p.stderr)[-800:])]
    with open(os.path.join(new[-1], "checks.json")) as f:
        checks = json.load(f)
    status = {c["id"]: c["status"] for c in checks}
    problems = ["check %s: %s" % (cid, status.get(cid, "missing"))
                for cid in IN_SCOPE[scenario] if status.get(cid) != "SUCCESS"]
    problems += ["check %s: FAILURE (%s)" % (c["id"], c.get("errorMessage"))
                 for c in checks if c["status"] == "FAILURE"]
    if p.returncode != 0 and not problems:
        problems.append("suite exited with %d" % p.returncode)
    return problems


def run_target(name, url, out, skip):
    """Runs every scenario on url; returns (passed, failed, out_of_scope) counts."""
    passed = failed = oos = 0
    for scenario in listed_scenarios():
        reason = skip.get(scenario) or OUT_OF_SCOPE.get(scenario)
        if scenario not in IN_SCOPE and not reason:
            reason = "new in this suite version: not yet classified"
            failed += 1  # a scenario we have not looked at is a failure, not a skip
            print("FAIL %-30s [%s] %s" % (scenario, name, reason))
            continue
        if reason:
            oos += 1
            print("out  %-30s [%s] %s" % (scenario, name, reason))
            continue
        problems = run_scenario(url, scenario, out)
        if problems:
            failed += 1
            print("FAIL %-30s [%s] %s" % (scenario, name, "; ".join(problems)))
        else:
            passed += 1
            print("ok   %-30s [%s]" % (scenario, name))
    return passed, failed, oos


CONFIG = json.dumps({"manual_call_templates": [], "engine": {"http": {"anonymous": True}}})


def run_http(out):
    port = free_port()
    eng = Engine(CONFIG, "config.json", args=["--http", "127.0.0.1:%d" % port])
    result = (0, 1, 0)
    try:
        eng.start()
        wait_port(port, eng.proc, "codemode serve --http")
        result = run_target("serve --http", "http://127.0.0.1:%d/mcp" % port, out, {})
    finally:
        rc = eng.stop()
        log = eng.read_log()
        eng.cleanup()
    if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
        print("FAIL engine (serve --http) exited %s:\n%s" % (rc, log[-3000:]))
        result = (result[0], result[1] + 1, result[2])
    return result


def run_stdio(out):
    port = free_port()
    eng = Engine(json.dumps({"manual_call_templates": []}), "config.json")
    gw_log = tempfile.TemporaryFile()
    gw = None
    try:
        eng.start()
        cmd = "%s mcp --socket %s" % (BIN, eng.socket)
        gw = subprocess.Popen([GATEWAY, "--stdio", cmd, "--outputTransport", "streamableHttp",
                               "--stateful", "--port", str(port)], stdout=gw_log,
                              stderr=subprocess.STDOUT, env=node_env())
        wait_port(port, gw, "supergateway")
        return run_target("mcp (stdio)", "http://127.0.0.1:%d/mcp" % port, out, GATEWAY_ONLY_HTTP)
    finally:
        if gw:
            stop_process(gw)
        gw_log.close()
        eng.stop()
        eng.cleanup()
