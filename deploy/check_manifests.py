"""Offline check of the Kubernetes manifests in deploy/kubernetes and
deploy/kubernetes-service (tests/deploy/ also plays them with podman): every
document parses, has the fields its kind requires, and the pieces reference
each other consistently across the directories given (selector ↔ labels,
volumeMounts ↔ volumes, ConfigMap names, probe commands, ports, a Service's
selector and targetPort, an HPA's target, a PDB's selector, an HTTP
transport's listen port being a containerPort), and the ConfigMap's
configs (codemode*.yaml) name files it holds, the service form's differs
from the node form's only in engine.http, and its policy.yaml is
policies/examples/kubernetes.yaml verbatim (the policy tests/policy/ tests).
Exit 0 when clean, 1 with one line per problem otherwise.

Usage: python3 deploy/check_manifests.py DIR..."""
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_POLICY = os.path.join(ROOT, "policies", "examples", "kubernetes.yaml")

REQUIRED = {
    "Namespace": [],
    "ConfigMap": ["data"],
    "DaemonSet": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                  "spec.template.spec.containers"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
    "Service": ["spec.selector", "spec.ports"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef.name", "spec.maxReplicas", "spec.metrics"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
}
ENGINE_CONFIG_KEYS = {"manual_call_templates", "variables", "load_variables_from", "engine",
                      "tool_repository", "tool_search_strategy", "post_processing"}


def get(doc, path):
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def check_workload(where, doc, configmaps, problems):
    spec = doc["spec"]["template"]["spec"]
    selector = doc["spec"]["selector"]["matchLabels"]
    labels = doc["spec"]["template"]["metadata"]["labels"]
    for k, v in selector.items():
        if labels.get(k) != v:
            problems.append(f"{where}: selector {k}={v} does not match the pod labels")
    volumes = {v.get("name"): v for v in spec.get("volumes", [])}
    for v in volumes.values():
        cm = get(v, "configMap.name")
        if cm and cm not in configmaps:
            problems.append(f"{where}: volume {v['name']} references unknown ConfigMap {cm}")
    for c in spec["containers"]:
        cname = c.get("name", "?")
        for field in ("name", "image"):
            if not c.get(field):
                problems.append(f"{where}: container {cname}: missing {field}")
        for m in c.get("volumeMounts", []):
            if m.get("name") not in volumes:
                problems.append(f"{where}: container {cname}: mount {m.get('name')} has no volume")
            if not str(m.get("mountPath", "")).startswith("/"):
                problems.append(f"{where}: container {cname}: mountPath must be absolute")
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = get(c, probe + ".exec.command")
            if cmd is not None and (not cmd or cmd[0] != "codemode" or "health" not in cmd):
                problems.append(f"{where}: container {cname}: {probe} must run `codemode health`")
        if not get(c, "readinessProbe"):
            problems.append(f"{where}: container {cname}: no readinessProbe")
        for p in c.get("ports", []):
            if not isinstance(p.get("containerPort"), int) or not 0 < p["containerPort"] < 65536:
                problems.append(f"{where}: container {cname}: bad containerPort")


def engine_configs(data):
    """{key: parsed config} of a ConfigMap's engine configs (codemode*.yaml),
    or {key: YAMLError}."""
    out = {}
    for key in sorted(k for k in data if k.startswith("codemode") and k.endswith(".yaml")):
        try:
            out[key] = yaml.safe_load(data[key]) or {}
        except yaml.YAMLError as e:
            out[key] = e
    return out


def without_http(cfg):
    engine = {k: v for k, v in (cfg.get("engine") or {}).items() if k != "http"}
    return dict(cfg, engine=engine)


def check_config(where, key, cfg, data, problems):
    unknown = set(cfg) - ENGINE_CONFIG_KEYS
    if unknown:
        problems.append(f"{where}: {key}: unknown keys {sorted(unknown)}")
    # files the config names must be in the ConfigMap (it is all of /etc/codemode)
    named = [m.get("file_path") for m in cfg.get("manual_call_templates") or []]
    policy = get(cfg, "engine.policy.file")
    for f in [n for n in named if n] + ([policy] if policy else []):
        if f not in data:
            problems.append(f"{where}: {key} names {f}, which the ConfigMap does not hold")
    if policy and policy in data:
        with open(SHIPPED_POLICY) as f:
            if data[policy] != f.read():
                problems.append(f"{where}: {policy} differs from policies/examples/kubernetes.yaml "
                                "(the policy tests/policy/kubernetes.yaml tests): copy it verbatim")


def check_configmap(where, doc, problems):
    data = doc["data"]
    configs = engine_configs(data)
    for key, cfg in configs.items():
        if isinstance(cfg, yaml.YAMLError):
            problems.append(f"{where}: {key} does not parse: {cfg}")
        else:
            check_config(where, key, cfg, data, problems)
    # the service form's config is the node form's plus engine.http
    base = configs.get("codemode.yaml")
    for key, cfg in configs.items():
        if key != "codemode.yaml" and isinstance(cfg, dict) and isinstance(base, dict) and \
                without_http(cfg) != without_http(base):
            problems.append(f"{where}: {key} differs from codemode.yaml in more than engine.http")


def check_http_port(where, doc, data_by_key, problems):
    """A workload's engine.http.listen port must be one of its containerPorts."""
    for c in get(doc, "spec.template.spec.containers") or []:
        args = c.get("args") or []
        if "--config" not in args or args.index("--config") + 1 >= len(args):
            continue
        cfg = data_by_key.get(os.path.basename(args[args.index("--config") + 1]))
        listen = get(cfg, "engine.http.listen") if isinstance(cfg, dict) else None
        if "--http" in args and args.index("--http") + 1 < len(args):
            listen = args[args.index("--http") + 1]
        if not listen:
            continue
        port = int(str(listen).rsplit(":", 1)[-1])
        if port not in [p.get("containerPort") for p in c.get("ports", [])]:
            problems.append(f"{where}: container {c.get('name')}: HTTP transport on {listen}, "
                            "which no containerPort names")


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_refs(docs, problems):
    """Service → pods and port names, HPA → Deployment, PDB → pods."""
    pods = [(get(d, "spec.template.metadata.labels") or {}, get(d, "spec.template.spec") or {})
            for _, d in docs if d.get("kind") in ("DaemonSet", "Deployment")]
    deployments = {get(d, "metadata.name") for _, d in docs if d.get("kind") == "Deployment"}
    for where, doc in docs:
        kind = doc.get("kind")
        if kind == "Service":
            sel = get(doc, "spec.selector") or {}
            target = [spec for labels, spec in pods if matches(sel, labels)]
            if not target:
                problems.append(f"{where}: Service selector {sel} matches no workload's pods")
            names = {p.get("name") for spec in target for c in spec.get("containers", [])
                     for p in c.get("ports", [])}
            for p in get(doc, "spec.ports") or []:
                tp = p.get("targetPort")
                if isinstance(tp, str) and target and tp not in names:
                    problems.append(f"{where}: targetPort {tp} is no containerPort name")
        elif kind == "HorizontalPodAutoscaler":
            ref = get(doc, "spec.scaleTargetRef") or {}
            if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
                problems.append(f"{where}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} "
                                "is no Deployment here")
        elif kind == "PodDisruptionBudget":
            sel = get(doc, "spec.selector.matchLabels") or {}
            if not any(matches(sel, labels) for labels, _ in pods):
                problems.append(f"{where}: PodDisruptionBudget selector {sel} matches no pods")


def check(*directories):
    problems, docs = [], []
    files = [(d, n) for d in directories for n in sorted(os.listdir(d))]
    for directory, name in files:
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                for i, doc in enumerate(yaml.safe_load_all(f)):
                    if doc is not None:
                        docs.append((f"{name}#{i}", doc))
        except yaml.YAMLError as e:
            problems.append(f"{name}: does not parse: {e}")
    if not docs:
        problems.append(f"{' '.join(directories)}: no manifests found")
    configmaps = {get(d, "metadata.name") for _, d in docs if d.get("kind") == "ConfigMap"}
    for where, doc in docs:
        kind = doc.get("kind")
        for field in ("apiVersion", "kind", "metadata.name"):
            if not get(doc, field):
                problems.append(f"{where}: missing {field}")
        if kind not in REQUIRED:
            problems.append(f"{where}: unexpected kind {kind!r}")
            continue
        missing = [p for p in REQUIRED[kind] if get(doc, p) in (None, [], {})]
        for p in missing:
            problems.append(f"{where}: {kind} missing {p}")
        if missing:
            continue
        if kind in ("DaemonSet", "Deployment"):
            check_workload(where, doc, configmaps, problems)
        if kind == "ConfigMap":
            check_configmap(where, doc, problems)
    check_refs([(w, d) for w, d in docs if d.get("kind") in REQUIRED], problems)
    data_by_key = {}
    for _, d in docs:
        if d.get("kind") == "ConfigMap" and isinstance(d.get("data"), dict):
            data_by_key.update(engine_configs(d["data"]))
    for where, d in docs:
        if d.get("kind") in ("DaemonSet", "Deployment") and get(d, "spec.template.spec"):
            check_http_port(where, d, data_by_key, problems)
    return problems, len(docs)


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems, n = check(*sys.argv[1:])
    for p in problems:
        print(p)
    if not problems:
        print(f"deploy-check: {n} manifests OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
