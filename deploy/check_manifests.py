"""Offline check of the Kubernetes manifests in deploy/kubernetes (no cluster
is reachable where `make test` runs): every document parses, has the fields
its kind requires, and the pieces reference each other consistently
(selector ↔ labels, volumeMounts ↔ volumes, ConfigMap names, probe commands,
ports).  Exit 0 when clean, 1 with one line per problem otherwise.

Usage: python3 deploy/check_manifests.py DIR"""
import os
import sys

import yaml

REQUIRED = {
    "Namespace": [],
    "ConfigMap": ["data"],
    "DaemonSet": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                  "spec.template.spec.containers"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
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


def check_configmap(where, doc, problems):
    text = doc["data"].get("codemode.yaml")
    if text is None:
        return
    try:
        cfg = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        problems.append(f"{where}: codemode.yaml does not parse: {e}")
        return
    unknown = set(cfg) - ENGINE_CONFIG_KEYS
    if unknown:
        problems.append(f"{where}: codemode.yaml: unknown keys {sorted(unknown)}")


def check(directory):
    problems, docs = [], []
    for name in sorted(os.listdir(directory)):
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
        problems.append(f"{directory}: no manifests found")
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
    return problems, len(docs)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems, n = check(sys.argv[1])
    for p in problems:
        print(p)
    if not problems:
        print(f"deploy-check: {n} manifests OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
