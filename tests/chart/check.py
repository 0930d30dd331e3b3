#!/usr/bin/env python3
"""Checks the Helm chart in charts/baler without a cluster or a `helm` binary.

Helm's own Go library (PyPI helm-python-sdk) lints and renders the chart and checks values
against values.schema.json; every rendered manifest is validated with kubernetes-validate in
strict mode (misspelled fields fail) for the oldest and the newest Kubernetes the chart takes.
Then the wiring is checked across manifests, and against baler's own source where it can be:
the routes the probes ask are read from src/, the variables baler reads from src/config/.

Run from anywhere: `python3 tests/chart/check.py`. It stops at the first failure with a
message and exit status 1, and prints one line per rendering when everything holds.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ left in the work tree by importing cases
from cases import DATABASE, REFUSED, RENDERINGS, TRICKY_CONFIG  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "baler"
PINNED = "helm-python-sdk==0.2.2 kubernetes-validate==1.37.0"
# Chart.yaml's kubeVersion is >=1.27; 1.37 is the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.27.0", "1.37.0"]
RELEASE = {"name": "baler-test", "namespace": "releases"}

if sys.version_info < (3, 11):
    sys.exit("chart check: needs Python 3.11 or newer (for tomllib)")
import tomllib  # noqa: E402

try:
    import helm_python
    import kubernetes_validate
    import yaml  # comes with kubernetes-validate
except ImportError as missing:
    sys.exit(
        f"chart check: the Python module {missing.name!r} is missing. Run .ci/run, or "
        f"`pip install {PINNED}`."
    )


class CheckFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ---------------------------------------------------------------------------------------------
# What baler's source says: its routes and the variables it reads.

# Filled by check_source(): route -> the file that defines it.
ROUTES: dict[str, Path] = {}


def check_source() -> str:
    for file in sorted((ROOT / "src").rglob("*.rs")):
        for route in re.findall(r'\.route\(\s*"(/[^"]*)"', file.read_text()):
            ROUTES.setdefault(route, file.relative_to(ROOT))
    check(ROUTES, 'no `.route("/…"` under src/: has the router moved?')
    wanted = ["/healthz", "/readyz", "/metrics"]
    missing = [route for route in wanted if route not in ROUTES]
    check(not missing, f'the chart probes or scrapes {missing}, but no `.route("…"` under src/ serves it')

    config_source = "".join(f.read_text() for f in sorted((ROOT / "src" / "config").glob("*.rs")))
    for variable in ("BALER_DATABASE_URL", "BALER_ADMIN_TOKEN"):
        check(f'"{variable}"' in config_source, f"src/config/ does not read {variable}, which the chart sets")
    return ", ".join(f"{route} in {ROUTES[route]}" for route in wanted)


# ---------------------------------------------------------------------------------------------
# Reading manifests.


def same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (3 is not 3.0: baler refuses 3.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def parse(path: str, text: str) -> list[dict]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as error:
        raise CheckFailed(f"{path} renders as invalid YAML: {error}\n{text}")


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict | None:
    return next((doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name), None)


def one(docs: list[dict], kind: str, component: str) -> dict:
    found = [
        doc
        for doc in of_kind(docs, kind)
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    check(len(found) == 1, f"expected one {kind} for {component}, found {len(found)}")
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def main_container(workload: dict) -> dict:
    return pod_spec(workload)["containers"][0]


def containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def where(workload: dict, container: dict) -> str:
    return f"{workload['metadata']['name']}/{container['name']}"


def hook_of(doc: dict) -> tuple[set[str], int] | None:
    annotations = doc["metadata"].get("annotations") or {}
    if "helm.sh/hook" not in annotations:
        return None
    events = {event.strip() for event in annotations["helm.sh/hook"].split(",")}
    return events, int(annotations.get("helm.sh/hook-weight", "0"))


def port_number(container: dict, port: int | str) -> int:
    """A probe's or a Service's port (a name or a number) as the container's port number."""
    ports = container.get("ports", [])
    if isinstance(port, int):
        check(any(p["containerPort"] == port for p in ports), f"{container['name']}: no container port {port}")
        return port
    matching = [p["containerPort"] for p in ports if p.get("name") == port]
    check(matching, f"{container['name']}: no container port named {port!r}")
    return matching[0]


def address_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def env_names(container: dict) -> set[str]:
    return {env["name"] for env in container.get("env", [])}


def volume_at(workload: dict, container: dict, path: str) -> dict:
    """The pod volume mounted at `path` in `container`."""
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == path]
    check(mounts, f"{where(workload, container)}: nothing is mounted at {path}")
    claims = {t["metadata"]["name"]: t for t in workload["spec"].get("volumeClaimTemplates", [])}
    if mounts[0]["name"] in claims:
        return {"name": mounts[0]["name"], "claimTemplate": claims[mounts[0]["name"]]}
    return next(v for v in pod_spec(workload)["volumes"] if v["name"] == mounts[0]["name"])


def config_mount(workload: dict, container: dict) -> tuple[str, str]:
    """The ConfigMap and the file that the container's `--config` names."""
    args = container.get("args", [])
    check("--config" in args, f"{where(workload, container)}: args {args} carry no --config")
    path = args[args.index("--config") + 1]
    volume = volume_at(workload, container, path.rsplit("/", 1)[0])
    check("configMap" in volume, f"{where(workload, container)}: {path} is not in a ConfigMap")
    return volume["configMap"]["name"], path


# ---------------------------------------------------------------------------------------------
# One rendering.


@dataclass
class Rendering:
    values: dict  # the chart's defaults with the case's values over them
    docs: list[dict]
    web: dict
    worker: dict
    job: dict | None  # the migration hook, unless migrate.enabled is false
    config_path: str
    config_text: str
    toml: dict

    @property
    def workloads(self) -> list[dict]:
        return [w for w in (self.web, self.worker, self.job) if w is not None]


def validate_manifests(docs: list[dict]) -> int:
    """Validates every manifest; returns how many kubernetes-validate checked."""
    custom = 0
    for doc in docs:
        what = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            # A custom resource kubernetes-validate has no schema for: a minimal check instead
            # (and check_service_monitor checks what it selects and scrapes).
            check(doc["kind"] == "ServiceMonitor", f"{what}: an unexpected custom resource")
            spec = doc["spec"]
            check(set(spec) <= {"selector", "endpoints", "namespaceSelector"}, f"{what}: unknown keys in {set(spec)}")
            check(spec["selector"].get("matchLabels"), f"{what}: selects nothing")
            for endpoint in spec["endpoints"]:
                check(set(endpoint) <= {"port", "path", "interval", "scheme"}, f"{what}: unknown keys in {endpoint}")
                check(endpoint.get("port") and endpoint.get("path"), f"{what}: an endpoint without port or path")
            custom += 1
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                location = ".".join(str(p) for p in error.path)
                raise CheckFailed(f"{what} is invalid for Kubernetes {version} at {location}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                raise CheckFailed(f"{what}: {error.message}")
    return len(docs) - custom


def render(chart, overrides: dict) -> tuple[Rendering, int]:
    try:
        chart.validate_schema(overrides)
    except helm_python.HelmError as error:
        raise CheckFailed(f"the schema refuses good values: {error}")
    report = helm_python.lint(CHART, overrides, strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    check(not problems, f"helm lint: {problems}")

    rendered = chart.render(overrides, is_install=True, **RELEASE)
    check(rendered.pop("baler/templates/NOTES.txt", "").strip(), "NOTES.txt renders empty")
    docs = [doc for path, text in rendered.items() for doc in parse(path, text)]
    count = validate_manifests(docs)

    web, worker = one(docs, "Deployment", "web"), one(docs, "StatefulSet", "worker")
    configmap_name, config_path = config_mount(web, main_container(web))
    configmap = named(docs, "ConfigMap", configmap_name)
    check(configmap, f"ConfigMap {configmap_name} is not rendered")
    file = config_path.rsplit("/", 1)[1]
    check(file in configmap["data"], f"ConfigMap {configmap_name} has no {file}")
    text = configmap["data"][file]
    try:
        toml = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CheckFailed(f"baler.toml does not parse: {error}\n{text}")
    rendering = Rendering(
        values=chart.merge_values(overrides),
        docs=docs,
        web=web,
        worker=worker,
        job=one(docs, "Job", "migrate") if of_kind(docs, "Job") else None,
        config_path=config_path,
        config_text=text,
        toml=toml,
    )
    return rendering, count


def check_commands_and_config(r: Rendering) -> None:
    web_c, worker_c = main_container(r.web), main_container(r.worker)
    check(web_c["args"][:2] == ["serve", "--no-worker"], f"web pods run {web_c['args']}")
    check(worker_c["args"][0] == "worker", f"worker pods run {worker_c['args']}")
    # One config for both, at one path, named by --config.
    web_config, worker_config = config_mount(r.web, web_c), config_mount(r.worker, worker_c)
    check(web_config == worker_config, f"web pods read {web_config}, workers {worker_config}")
    digest = hashlib.sha256(r.config_text.rstrip("\n").encode()).hexdigest()
    for workload in (r.web, r.worker):
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("checksum/config") == digest, f"{workload['metadata']['name']}: checksum/config does not follow baler.toml")

    # The chart's own settings are what the pods are built around; the rest is `config`.
    check(port_number(web_c, "http") == address_port(r.toml["listen"]), "web's http port is not baler.toml's listen")
    check(
        port_number(worker_c, "metrics") == address_port(r.toml["metrics_listen"]),
        "the workers' metrics port is not baler.toml's metrics_listen",
    )
    for key, value in r.values["config"].items():
        check(same(r.toml.get(key), value), f"baler.toml has {key} = {r.toml.get(key)!r}, the values {value!r}")
    storage, wanted = r.toml["storage"], r.values["storage"]
    check(storage["kind"] == wanted["kind"], f"baler.toml's storage kind is {storage['kind']}")
    if wanted["kind"] == "s3":
        for key in ("bucket", "endpoint", "region", "prefix", "downloads"):
            if wanted["s3"][key]:
                check(storage.get(key) == wanted["s3"][key], f"baler.toml's storage.{key} is {storage.get(key)!r}")


def check_volumes(r: Rendering) -> None:
    """data_dir is a volume in web and worker pods; each worker's mirrors are its own claim."""
    data_dir = r.toml["data_dir"]
    web_data = volume_at(r.web, main_container(r.web), data_dir)
    worker_data = volume_at(r.worker, main_container(r.worker), data_dir)
    mirrors = volume_at(r.worker, main_container(r.worker), f"{data_dir}/mirrors")
    check("claimTemplate" in mirrors, "the workers' mirrors are not a claim per pod (volumeClaimTemplate)")
    size = mirrors["claimTemplate"]["spec"]["resources"]["requests"]["storage"]
    check(size == r.values["worker"]["mirrors"]["size"], f"mirror claims of {size}")
    if r.values["storage"]["kind"] == "local":
        claims = {v.get("persistentVolumeClaim", {}).get("claimName") for v in (web_data, worker_data)}
        check(len(claims) == 1 and None not in claims, f"local storage: web and workers must share one claim, not {claims}")
        claim = claims.pop()
        check(
            claim == r.values["persistence"]["existingClaim"] or named(r.docs, "PersistentVolumeClaim", claim),
            f"claim {claim} is neither rendered nor the existingClaim",
        )
    else:
        check("emptyDir" in web_data and "emptyDir" in worker_data, "with S3, data_dir is scratch space")
        check(not of_kind(r.docs, "PersistentVolumeClaim"), "with S3, no shared claim is needed")


def check_probe(workload: dict, kind: str, route: str) -> None:
    """`route` is the path the probe must ask, or "tcp" for a socket probe."""
    container = main_container(workload)
    probe = container.get(kind)
    check(probe, f"{where(workload, container)}: no {kind}")
    if route == "tcp":
        check("tcpSocket" in probe, f"{where(workload, container)}: {kind} is not a TCP probe")
        port_number(container, probe["tcpSocket"]["port"])
        return
    check("httpGet" in probe, f"{where(workload, container)}: {kind} is not an HTTP probe")
    path = probe["httpGet"]["path"]
    check(path == route, f"{where(workload, container)}: {kind} asks {path}, not {route}")
    check(path in ROUTES, f'{where(workload, container)}: {kind} asks {path}: no `.route("{path}"` under src/')
    port_number(container, probe["httpGet"]["port"])


def check_probes(r: Rendering) -> None:
    for kind, route in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        check_probe(r.web, kind, route)
    # Workers have no web listener: metrics_listen's port.
    for kind, route in [("startupProbe", "tcp"), ("livenessProbe", "tcp"), ("readinessProbe", "/metrics")]:
        check_probe(r.worker, kind, route)


def existing_secrets(values: dict) -> set[str]:
    """The Secrets the values say exist outside the chart."""
    names = {
        values["database"]["existingSecret"],
        values["adminToken"]["existingSecret"],
        values["storage"]["s3"]["existingSecret"],
        values["webhookSecrets"]["existingSecret"],
        values["signing"]["existingSecret"],
    }
    names |= {s["secretRef"]["name"] for s in values["extraEnvFrom"] if "secretRef" in s}
    names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in values["extraEnv"] if "secretKeyRef" in e.get("valueFrom", {})}
    return names - {""}


def check_secrets(r: Rendering) -> None:
    """Every Secret a container reads is rendered (with the key read) or said to exist; the
    variables baler and the config name are set."""
    rendered = {doc["metadata"]["name"]: doc for doc in of_kind(r.docs, "Secret")}
    outside = existing_secrets(r.values)
    for workload in r.workloads:
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] in rendered:
                    check(
                        ref["key"] in rendered[ref["name"]].get("data", {}),
                        f"{where(workload, container)}: {env['name']} reads key {ref['key']!r}, which Secret {ref['name']} lacks",
                    )
                elif ref:
                    check(ref["name"] in outside, f"{where(workload, container)}: {env['name']} reads Secret {ref['name']}, which nothing makes")
            for source in container.get("envFrom", []):
                name = source.get("secretRef", {}).get("name")
                check(name is None or name in rendered or name in outside, f"{where(workload, container)}: envFrom Secret {name}, which nothing makes")

    web_env, worker_env = env_names(main_container(r.web)), env_names(main_container(r.worker))
    job_env = env_names(main_container(r.job)) if r.job else web_env & worker_env
    check("BALER_DATABASE_URL" in web_env & worker_env & job_env, "BALER_DATABASE_URL is not set everywhere")
    admin = bool(r.values["adminToken"]["value"] or r.values["adminToken"]["existingSecret"])
    check(("BALER_ADMIN_TOKEN" in web_env) == admin, "web's BALER_ADMIN_TOKEN does not follow adminToken")
    check("BALER_ADMIN_TOKEN" not in worker_env | job_env, "only web pods need the admin token")
    s3 = r.values["storage"]
    if s3["kind"] == "s3" and (s3["s3"]["existingSecret"] or s3["s3"]["accessKeyId"]):
        keys = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        check(keys <= web_env & worker_env, "the S3 keys are not passed to web and worker pods")
        check(not (r.job and keys & job_env), "the migration Job needs no S3 keys")
    # baler checks the whole config at start (migrate too): the variables projects name must be
    # there, set one by one or possibly by an envFrom source.
    named_variables = {
        project[field]
        for project in r.values["config"].get("projects", [])
        for field in ("secret_env", "token_env", "ssh_passphrase_env")
        if field in project
    }
    for workload in r.workloads:
        container = main_container(workload)
        for variable in named_variables:
            check(
                variable in env_names(container) or container.get("envFrom"),
                f"{where(workload, container)}: the config names {variable}, which nothing in the pod sets",
            )


def check_signing(r: Rendering) -> bool:
    """With signing.existingSecret, worker pods find the key where [signing] says, from that
    Secret, readable by their group, and web pods (internet-facing; they never load it) do not
    have it; every pod has the password variable [signing] names (baler checks the config at
    start, migrate too). Without it, [signing] is not set."""
    wanted = r.values["signing"]
    if not wanted["existingSecret"]:
        check("signing" not in r.toml, f"signing is off, yet baler.toml has {r.toml.get('signing')}")
        return False
    signing = r.toml.get("signing", {})
    key_file = signing.get("minisign_key_file", "")
    directory, file = key_file.rsplit("/", 1) if "/" in key_file else ("", key_file)
    secret_volumes = [v for v in pod_spec(r.web)["volumes"] if v.get("secret", {}).get("secretName") == wanted["existingSecret"]]
    check(not secret_volumes, f"web pods mount the signing key: {secret_volumes}")
    for workload in (r.worker,):
        container = main_container(workload)
        volume = volume_at(workload, container, directory)
        secret = volume.get("secret", {})
        check(secret.get("secretName") == wanted["existingSecret"], f"{where(workload, container)}: {directory} is not Secret {wanted['existingSecret']}")
        items = {item["key"]: item["path"] for item in secret.get("items", [])}
        check(items.get(wanted["keyKey"]) == file, f"{where(workload, container)}: {key_file} is not the Secret's {wanted['keyKey']}: {items}")
        check(secret.get("defaultMode", 0o644) & 0o040, f"{where(workload, container)}: the key is not readable by the pod's group")
        check(not secret.get("defaultMode", 0o644) & 0o007, f"{where(workload, container)}: the key is readable by anyone")
    if wanted["passwordKey"]:
        variable = signing.get("password_env")
        check(variable, "the key has a password, but [signing] names no password_env")
        for workload in r.workloads:
            container = main_container(workload)
            env = [e for e in container.get("env", []) if e["name"] == variable]
            check(env, f"{where(workload, container)}: [signing] names {variable}, which the pod does not set")
            ref = env[0]["valueFrom"]["secretKeyRef"]
            check(
                (ref["name"], ref["key"]) == (wanted["existingSecret"], wanted["passwordKey"]),
                f"{where(workload, container)}: {variable} reads {ref}",
            )
    else:
        check("password_env" not in signing, "a key without a password, yet [signing] names a password_env")
    return True


def check_services(r: Rendering) -> tuple[dict, dict]:
    web_c, worker_c = main_container(r.web), main_container(r.worker)
    service = named(r.docs, "Service", r.web["metadata"]["name"].removesuffix("-web"))
    check(service, "no web Service")
    check(service["spec"]["selector"].items() <= pod_labels(r.web).items(), "the Service does not select web pods")
    http = next((p for p in service["spec"]["ports"] if p["name"] == "http"), None)
    check(http and http["port"] == 80, "the Service does not listen on 80")
    check(port_number(web_c, http["targetPort"]) == address_port(r.toml["listen"]), "the Service does not lead to listen's port")
    headless = named(r.docs, "Service", r.worker["spec"]["serviceName"])
    check(headless and headless["spec"].get("clusterIP") == "None", "the workers' serviceName is no headless Service")
    check(headless["spec"]["selector"].items() <= pod_labels(r.worker).items(), "the headless Service does not select workers")
    for port in headless["spec"]["ports"]:
        port_number(worker_c, port["targetPort"])
    for workload in r.workloads:
        selector = workload["spec"].get("selector", {}).get("matchLabels")
        if selector is not None:
            check(selector.items() <= pod_labels(workload).items(), f"{workload['metadata']['name']}: its selector misses its pods")
    budgets = of_kind(r.docs, "PodDisruptionBudget")
    for workload, part in ((r.web, "web"), (r.worker, "worker")):
        covered = any(b["spec"]["selector"]["matchLabels"].items() <= pod_labels(workload).items() for b in budgets)
        wanted = r.values[part]["pdb"]["enabled"]
        check(covered == wanted, f"{workload['metadata']['name']}: PodDisruptionBudget {'missing' if wanted else 'not asked for'}")
    return service, headless


def check_migration(r: Rendering) -> None:
    """`baler migrate` runs before install and upgrade, and on a fresh install everything it
    reads exists by then: hooks of lower weight, or Secrets made outside the chart."""
    if not r.values["migrate"]["enabled"]:
        check(r.job is None, "a migration Job that was not asked for")
        return
    check(r.job, "no migration Job")
    job, container = r.job, main_container(r.job)
    job_hook = hook_of(job)
    check(job_hook and job_hook[0] == {"pre-install", "pre-upgrade"}, f"the Job's hook is {job_hook}")
    policy = set(job["metadata"]["annotations"].get("helm.sh/hook-delete-policy", "").split(","))
    check({"before-hook-creation", "hook-succeeded"} <= policy, f"the Job's delete policy is {policy}")
    check(container["args"][0] == "migrate", f"the Job runs {container['args']}")
    check(pod_spec(job)["restartPolicy"] == "Never", "the Job's pods restart in place")
    configmap, path = config_mount(job, container)
    check(path == r.config_path, f"the Job reads {path}, the pods {r.config_path}")
    copy = named(r.docs, "ConfigMap", configmap)
    check(copy and copy["data"][path.rsplit("/", 1)[1]] == r.config_text, "the Job's baler.toml differs from the pods'")
    reads = [("ConfigMap", configmap)]
    reads += [("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    reads += [("Secret", s["secretRef"]["name"]) for s in container.get("envFrom", []) if "secretRef" in s]
    for kind, name in reads:
        doc = named(r.docs, kind, name)
        if doc is None:
            continue  # made outside the chart, before the install (check_secrets knows it)
        hook = hook_of(doc)
        check(
            hook and job_hook[0] <= hook[0] and hook[1] < job_hook[1],
            f"the migration Job reads {kind} {name}, which a fresh install has not made yet "
            f"(it must be a pre-install hook of a lower weight)",
        )


def check_security(r: Rendering) -> None:
    for workload in r.workloads:
        name = workload["metadata"]["name"]
        check(pod_spec(workload).get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: the pod is not runAsNonRoot")
        check(pod_spec(workload).get("automountServiceAccountToken") is False, f"{name}: mounts a service account token")
        for container in containers(workload):
            what, context = where(workload, container), container.get("securityContext", {})
            check(context.get("runAsNonRoot") is True, f"{what}: not runAsNonRoot")
            check(context.get("runAsUser") == 10001, f"{what}: runAsUser is not the image's 10001")
            check(context.get("readOnlyRootFilesystem") is True, f"{what}: the root filesystem is writable")
            check(context.get("allowPrivilegeEscalation") is False, f"{what}: allows privilege escalation")
            check("ALL" in context.get("capabilities", {}).get("drop", []), f"{what}: keeps capabilities")
            check(context.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{what}: no RuntimeDefault seccomp")
            # A read-only root needs somewhere to write temporary files.
            check("emptyDir" in volume_at(workload, container, "/tmp"), f"{what}: /tmp is not an emptyDir")


def check_ingress(r: Rendering, service: dict) -> bool:
    ingresses, wanted = of_kind(r.docs, "Ingress"), r.values["web"]["ingress"]
    if not wanted["enabled"]:
        check(not ingresses, "an Ingress that was not asked for")
        return False
    check(len(ingresses) == 1, "the ingress is enabled, but there is no Ingress")
    rule = ingresses[0]["spec"]["rules"][0]
    check(rule["host"] == wanted["host"], f"the Ingress host is {rule['host']}")
    backend = rule["http"]["paths"][0]["backend"]["service"]
    check(backend["name"] == service["metadata"]["name"], "the Ingress does not lead to the web Service")
    check(backend["port"].get("name") in {p["name"] for p in service["spec"]["ports"]}, "the Ingress names no port of the Service")
    tls = ingresses[0]["spec"].get("tls", [])
    check(all(rule["host"] in t["hosts"] for t in tls), "TLS does not cover the host")
    if "public_url" not in r.values["config"]:
        url = f"{'https' if tls else 'http'}://{rule['host']}"
        check(r.toml.get("public_url") == url, f"public_url is {r.toml.get('public_url')!r}, not the Ingress's {url}")
    return True


def check_service_monitor(r: Rendering, service: dict, headless: dict) -> bool:
    """Scrapes web and worker pods at a real route on a port their Service has."""
    monitors = of_kind(r.docs, "ServiceMonitor")
    if not r.values["metrics"]["serviceMonitor"]["enabled"]:
        check(not monitors, "a ServiceMonitor that was not asked for")
        return False
    check(len(monitors) == 1, "no ServiceMonitor")
    spec = monitors[0]["spec"]
    selected = [s for s in of_kind(r.docs, "Service") if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    scraped = set()
    for endpoint in spec["endpoints"]:
        check(endpoint["path"] in ROUTES, f"the ServiceMonitor scrapes {endpoint['path']}, which is no route of baler's")
        scraped |= {s["metadata"]["name"] for s in selected if endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}}
    both = {service["metadata"]["name"], headless["metadata"]["name"]}
    check(both <= scraped, f"the ServiceMonitor scrapes {sorted(scraped)}, not both {sorted(both)}")
    return True


def check_rendering(chart, overrides: dict) -> str:
    r, count = render(chart, overrides)
    check_commands_and_config(r)
    check_volumes(r)
    check_probes(r)
    check_secrets(r)
    signed = check_signing(r)
    service, headless = check_services(r)
    check_migration(r)
    check_security(r)
    web_replicas, worker_replicas = r.web["spec"]["replicas"], r.worker["spec"]["replicas"]
    check(web_replicas == r.values["web"]["replicas"], f"{web_replicas} web replicas")
    check(worker_replicas == r.values["worker"]["replicas"], f"{worker_replicas} worker replicas")
    extras = [name for name, present in [
        ("Ingress", check_ingress(r, service)),
        ("ServiceMonitor (a CRD: checked here, not by kubernetes-validate)", check_service_monitor(r, service, headless)),
        ("signing", signed),
    ] if present]
    versions = " and ".join(v.rsplit(".", 1)[0] for v in KUBERNETES_VERSIONS)
    return (
        f"{count} manifests valid (strict; Kubernetes {versions}); web x{web_replicas}, "
        f"workers x{worker_replicas}, storage {r.toml['storage']['kind']}"
        f"{''.join(', ' + e for e in extras)}; lint, wiring, hook order and security hold"
    )


# ---------------------------------------------------------------------------------------------
# Values on their own.


def check_schema(chart) -> str:
    for label, overrides in REFUSED.items():
        try:
            chart.validate_schema(overrides)
        except helm_python.HelmError:
            continue
        raise CheckFailed(f"the schema accepts bad values ({label}): {overrides}")
    return f"{len(REFUSED)} kinds of bad values refused (each rendering below checks its good ones are taken)"


def check_toml_writer(chart) -> str:
    rendered = chart.render({"database": DATABASE, "config": TRICKY_CONFIG}, **RELEASE)
    path = "baler/templates/configmap.yaml"
    text = parse(path, rendered[path])[0]["data"]["baler.toml"]
    try:
        toml = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CheckFailed(f"the TOML writer wrote what does not parse: {error}\n{text}")
    kept = {key: value for key, value in TRICKY_CONFIG.items() if value is not None}
    for key, value in kept.items():
        check(same(toml.get(key), value), f"the TOML writer turned {key} = {value!r} into {toml.get(key)!r}\n{text}")
    check("gone" not in toml, "a null setting was written")
    return f"{len(kept)} tricky settings written as TOML and read back exactly"


def main() -> int:
    chart = helm_python.Chart.load(CHART)
    step = "source"
    try:
        check(chart.metadata.get("apiVersion") == "v2" and chart.name == "baler", "Chart.yaml is not apiVersion v2, name baler")
        print(f"chart routes: {check_source()}")
        step = "schema"
        print(f"chart {step}: {check_schema(chart)}")
        step = "toml"
        print(f"chart {step}: {check_toml_writer(chart)}")
        for step, overrides in RENDERINGS.items():
            print(f"chart {step}: {check_rendering(chart, overrides)}")
    except (CheckFailed, helm_python.HelmError) as failure:
        print(f"chart check FAILED ({step}): {failure}", file=sys.stderr)
        return 1
    finally:
        chart.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
