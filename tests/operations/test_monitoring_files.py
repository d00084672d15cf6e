"""The monitoring profile (docker/monitoring/, docs/monitoring.md), checked without Docker:
the Grafana dashboard against a JSON schema of the parts Sluice relies on and its
provisioning against the Compose mounts; every PromQL expression of the dashboard and the
alerting rules parsed (promql-parser, a real PromQL parser), and each metric name, label
and label value it selects checked against the live /metrics of the test stack; each
alert's `for`, severity, summary, action and runbook link; Prometheus's config against the
Compose wiring; and, where promtool is installed, `promtool check config`, `check rules`
and the rules' unit tests (docker/monitoring/prometheus/alerts.test.yml)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml
from celery import states as celery_states
from prometheus_client.parser import text_string_to_metric_families

from apps.documents.models import Document
from apps.operations import metrics as metrics_registry
from apps.operations.overload.admission import Route
from apps.operations.overload.breaker import STATES as BREAKER_STATES
from apps.replicas.gauges import REPLICA_STATES
from tests.helpers import wait_document
from tests.operations.test_deployment_files import compose_schema_errors, load_compose
from workers.queues import PriorityClass, Queue

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "docker" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "sluice.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = MONITORING / "grafana" / "provisioning" / "dashboards" / "sluice.yml"
PROMETHEUS = MONITORING / "prometheus" / "prometheus.yml"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
ALERT_TESTS = MONITORING / "prometheus" / "alerts.test.yml"
DOC = ROOT / "docs" / "monitoring.md"

# Grafana's interval variables, replaced by a duration before parsing; any other `$` in an
# expression is an error (the dashboard has no template variables).
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# Series Prometheus makes itself for each target, not in any /metrics.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Families the test stack declares but cannot fill: it runs without a generation backend
# (no breaker) and no client gives up on a task. Their labels come from their declarations.
EMPTY_ON_TEST_STACK = {"sluice_breaker_state", "sluice_breaker_transitions", "sluice_tasks_dropped"}

# The alerts the deployment promises (docs/monitoring.md explains each).
REQUIRED_ALERTS = {
    "SluiceMetricsDown", "SluiceQueueNoWorkers", "SluiceQueueOldestMessage", "SluiceQueueWaitHigh",
    "SluiceIngestionQueueWaitHigh", "SluiceDeadLetters", "SluiceSheddingSustained",
    "SluiceBatchSheddingSustained", "SluiceGenerationBreakerOpen", "SluiceHttp5xxRate",
    "SluiceReplicaLagging", "SluiceReplicaDown", "SluiceDocumentsStuck", "SluiceDocumentsFailing",
    "SluiceTasksFailing",
}
# What the dashboard must show, by the series that carry it.
DASHBOARD_TOPICS = {
    "request rate and latency per endpoint": "sluice_http_request_duration_seconds_bucket",
    "requests and shed rate per class": "sluice_admissions_total",
    "served_by mix": "sluice_answers_served_total",
    "queue depth": "sluice_queue_depth",
    "queue depth per priority list": "sluice_queue_priority_depth",
    "oldest waiting message": "sluice_queue_oldest_age_seconds",
    "live workers": "sluice_queue_workers",
    "time queued": "sluice_task_queue_wait_seconds_bucket",
    "task latency": "sluice_task_duration_seconds_bucket",
    "breaker state": "sluice_breaker_state",
    "replica lag": "sluice_replica_lag_seconds",
    "ingestion throughput": "sluice_chunks_embedded_total",
    "documents by status (failed among them)": "sluice_documents",
    "stuck documents": "sluice_documents_stuck",
    "dead-letter messages": "sluice_dead_letter_messages",
}

# -- the dashboard's schema: the parts Grafana needs and the checks below rely on ----------

_DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "prometheus"}, "uid": {"type": "string", "minLength": 1}},
}
_GRID = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "minimum": 1},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": {"type": "integer", "minimum": 0},
    },
}
_TARGET = {
    "type": "object",
    "required": ["refId", "expr", "datasource"],
    "properties": {
        "refId": {"type": "string", "pattern": "^[A-Z]$"},
        "expr": {"type": "string", "minLength": 1},
        "legendFormat": {"type": "string"},
        "datasource": _DATASOURCE,
    },
}
DASHBOARD_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time", "refresh", "editable"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        # Grafana migrates older dashboards on load; below 36 datasources were names.
        "schemaVersion": {"type": "integer", "minimum": 36},
        "editable": {"const": False},  # provisioned: edit the file, not the UI
        "refresh": {"type": "string"},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {"type": "object", "properties": {"list": {"type": "array", "maxItems": 0}}},
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {"enum": ["row", "timeseries", "state-timeline", "stat", "text"]},
                    "title": {"type": "string", "minLength": 1},
                    "gridPos": _GRID,
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": "row"}}},
                        "then": {
                            "required": ["collapsed", "panels"],
                            "properties": {"collapsed": {"const": False}, "panels": {"maxItems": 0},
                                           "gridPos": {"properties": {"h": {"const": 1}, "w": {"const": 24}}}},
                            "not": {"required": ["targets"]},
                        },
                    },
                    {
                        "if": {"properties": {"type": {"const": "text"}}},
                        "then": {
                            "required": ["options"],
                            "properties": {"options": {"required": ["mode", "content"],
                                                       "properties": {"mode": {"const": "markdown"}}}},
                            "not": {"required": ["targets"]},
                        },
                    },
                    {
                        "if": {"properties": {"type": {"enum": ["timeseries", "state-timeline", "stat"]}}},
                        "then": {
                            "required": ["datasource", "targets", "fieldConfig", "description"],
                            "properties": {
                                "datasource": _DATASOURCE,
                                "targets": {"type": "array", "minItems": 1, "items": _TARGET},
                                "fieldConfig": {"type": "object", "required": ["defaults"],
                                                "properties": {"defaults": {"type": "object", "required": ["unit"]}}},
                                "description": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                ],
            },
        },
    },
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(DASHBOARD_SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every dashboard target."""
    return [(f"panel {p['title']!r}", t["expr"]) for p in dashboard()["panels"] for t in p.get("targets", [])]


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every dashboard target and every rule."""
    return dashboard_expressions() + [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]


def parse(expr: str) -> promql_parser.Expr:
    for variable, duration in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, duration)
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return promql_parser.parse(expr)


def nodes(expr: promql_parser.Expr, kind) -> list:
    found = []
    promql_parser.walk(expr, pre_visit=lambda node: found.append(node) if isinstance(node, kind) else None)
    return found


def metric_name(selector: promql_parser.VectorSelector) -> str:
    """The selector's metric name, written either way (`x{...}` or `{__name__="x"}`)."""
    if selector.name:
        return selector.name
    names = [m.value for m in selector.matchers.matchers if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal]
    assert len(names) == 1, f"selector {selector} does not name one metric"
    return names[0]


def matchers(selector: promql_parser.VectorSelector) -> list[promql_parser.Matcher]:
    found = [m for m in selector.matchers.matchers if m.name != "__name__"]
    return found + [m for group in selector.matchers.or_matchers for m in group if m.name != "__name__"]


def doc_anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", path.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def promtool() -> str | None:
    """Debian's promtool (package `prometheus`), on PATH or beside this Python."""
    return shutil.which("promtool", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


# -- the dashboard and its provisioning ------------------------------------------------------

def test_dashboard_matches_its_schema():
    board = dashboard()
    assert dashboard_schema_errors(board) == []
    # The schema rejects what would break: a target without an expression, a panel with
    # another datasource, a row that hides panels.
    broken = json.loads(json.dumps(board))
    graph = next(p for p in broken["panels"] if p["type"] == "timeseries")
    del graph["targets"][0]["expr"]
    broken["panels"][0]["collapsed"] = True
    next(p for p in broken["panels"] if p["type"] == "timeseries" and p is not graph)["datasource"]["type"] = "loki"
    errors = dashboard_schema_errors(broken)
    assert any("'expr' is a required property" in e for e in errors)
    assert any("False was expected" in e for e in errors)
    assert any("'prometheus' was expected" in e for e in errors)


def test_dashboard_layout_and_datasource():
    board = dashboard()
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    cells = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uids = {p["datasource"]["uid"] for p in panels if "datasource" in p}
    uids |= {t["datasource"]["uid"] for p in panels for t in p.get("targets", [])}
    assert uids == {datasource["uid"]}
    used = {metric_name(s) for _, expr in dashboard_expressions() for s in nodes(parse(expr), promql_parser.VectorSelector)}
    missing = {topic for topic, series in DASHBOARD_TOPICS.items() if series not in used}
    assert missing == set(), f"the dashboard lacks {missing}"


def test_grafana_provisioning_matches_the_compose_service():
    compose, _ = load_compose()
    grafana, prometheus = compose["services"]["grafana"], compose["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert (ROOT / "docker" / mounts["/etc/grafana/provisioning"]).resolve() == (MONITORING / "grafana" / "provisioning")
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    dashboards_dir = provider["options"]["path"]
    assert (ROOT / "docker" / mounts[dashboards_dir]).resolve() == DASHBOARD.parent
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent.as_posix() == dashboards_dir and (DASHBOARD.parent / Path(home).name).is_file()
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert any(p.endswith(":9090") for p in prometheus["ports"])
    # $__rate_interval needs Grafana to know the scrape interval.
    assert datasource["jsonData"]["timeInterval"] == yaml.safe_load(PROMETHEUS.read_text())["global"]["scrape_interval"]


# -- Compose ------------------------------------------------------------------------------

def test_monitoring_profile_in_compose():
    compose, _ = load_compose()
    assert compose_schema_errors(compose) == []
    services = compose["services"]
    monitoring = {n for n, s in services.items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana"}
    for name in monitoring:
        service = services[name]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), f"{name}: pin an exact image tag"
        assert all(p.startswith("127.0.0.1:") for p in service["ports"]), f"{name} is published beyond this host"
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / "docker" / source).exists(), f"{name} mounts a missing {source}"
        # A secret it needs is checked before the process starts: never a default.
        for secret in service["secrets"]:
            assert f"test -s /run/secrets/{secret}" in " ".join(service["entrypoint"])
    secrets = compose["secrets"]
    assert secrets["sluice_metrics_token"] == {"environment": "SLUICE_METRICS_TOKEN"}
    assert secrets["grafana_admin_password"] == {"environment": "GRAFANA_ADMIN_PASSWORD"}
    grafana = services["grafana"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_prometheus_config_matches_the_compose_wiring():
    config = yaml.safe_load(PROMETHEUS.read_text())
    compose, _ = load_compose()
    prometheus = compose["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config_path = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    assert (ROOT / "docker" / mounts[config_path]).resolve() == PROMETHEUS
    for rule_file in config["rule_files"]:
        mounted = str(Path(config_path).parent / rule_file)
        assert (ROOT / "docker" / mounts[mounted]).resolve() == (PROMETHEUS.parent / rule_file)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sluice = jobs["sluice"]
    # One target for the whole deployment: every web replica reports the same totals.
    (static,) = sluice["static_configs"]
    (target,) = static["targets"]
    host, port = target.split(":")
    assert host == "web" and compose["services"]["web"]["expose"] == [port]
    assert sluice["metrics_path"] == "/metrics"
    token_file = sluice["authorization"]["credentials_file"]
    assert token_file == f"/run/secrets/{prometheus['secrets'][0]}"
    # The alerts' `up{job=...}` names a real job.
    ups = [m.value for _, expr in expressions() for s in nodes(parse(expr), promql_parser.VectorSelector)
           if metric_name(s) == "up" for m in matchers(s) if m.name == "job"]
    assert ups and set(ups) <= set(jobs)


# -- alert rules ------------------------------------------------------------------------------

def test_alert_rules_are_complete_and_documented():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    # One alert may have a rule per severity (SluiceQueueOldestMessage: critical on the
    # query path, warning on background queues), never two of the same.
    keys = [(r["alert"], r["labels"]["severity"]) for r in rules]
    assert len(keys) == len(set(keys))
    assert REQUIRED_ALERTS <= set(names)
    doc = DOC.read_text()
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, name
        parse(rule["expr"])
        assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0, name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and len(annotations["description"]) > 40, name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page.startswith("docs/") and (ROOT / page).is_file(), f"{name}: {page}"
        assert anchor in doc_anchors(ROOT / page), f"{name}: no section #{anchor} in {page}"
        assert f"`{name}`" in doc, f"{name} is not in docs/monitoring.md"


# -- every series the dashboard and the alerts select exists in the live /metrics ------------

def exposition(families: list) -> dict[str, dict[str, set[str]]]:
    """Each series name the exposition has (for a family without samples: the names its
    type implies), with each of its labels and the values seen."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    # The registry the web tier renders from, for the labels of a family without samples.
    declared = {**metrics_registry._metrics, **metrics_registry._gauges}
    series: dict[str, dict[str, set[str]]] = {}
    for family in families:
        assert family.type in suffixes, f"{family.name}: unexpected type {family.type}"
        if family.samples:
            for sample in family.samples:
                labels = series.setdefault(sample.name, {})
                for label, value in sample.labels.items():
                    labels.setdefault(label, set()).add(value)
            continue
        assert family.name in declared, f"{family.name} has no samples and no declaration in this process"
        labels = {label: set() for label in declared[family.name].labels}
        for suffix in suffixes[family.type]:
            series[family.name + suffix] = {**labels, **({"le": set()} if suffix == "_bucket" else {})}
    return series


def known_values(name: str, label: str) -> set[str]:
    """Values a label can take that the test stack may not have produced: from the code."""
    if label == "queue":
        return {q.value for q in Queue}
    if label == "priority_class":
        return set(PriorityClass.values)
    if name == "sluice_admissions_total" and label == "route":
        return {str(r) for r in Route}
    if name == "sluice_documents" and label == "status":
        return set(Document.Status.values)
    if name == "sluice_replica_state" and label == "state":
        return set(REPLICA_STATES)
    if name == "sluice_breaker_transitions_total" and label == "to":
        return set(BREAKER_STATES)
    if name.startswith("sluice_http_request_duration_seconds") and label == "status":
        return {f"{n}xx" for n in range(1, 6)}
    if name.startswith("sluice_task_duration_seconds") and label == "outcome":
        return {s.lower() for s in celery_states.ALL_STATES}
    if name == "up" and label == "job":
        return {job["job_name"] for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]}
    return set()


@pytest.mark.stack
def test_every_selected_series_exists_in_the_live_metrics(api, client, collection):
    # Traffic that records what the test stack can: an ingested document, a search, a
    # query and the same query again (an exact-cache hit).
    response = client.post(f"/collections/{collection['id']}/documents/",
                           json={"title": "Volcanoes", "text": "Volcanoes erupt molten lava and ash when magma rises."})
    assert response.is_success, response.text
    assert wait_document(client, response.json()["documents"][0]["id"])["status"] == "ready"
    assert client.post("/search/", json={"query": "lava", "collection": collection["id"]}).status_code == 200
    for _ in range(2):
        assert client.post("/query/", json={"query": "What erupts?", "collection": collection["id"]}).status_code == 200

    # Every family an expression selects has samples, but those the test stack cannot fill
    # (replica reads reach /metrics within a second or so: each process flushes its counts).
    used = {metric_name(s) for _, expr in expressions() for s in nodes(parse(expr), promql_parser.VectorSelector)}
    deadline = time.monotonic() + 30
    while True:
        response = api.get("/metrics")
        assert response.status_code == 200
        families = list(text_string_to_metric_families(response.text))
        empty = {f.name for f in families if not f.samples
                 and any(f.name + suffix in used for suffix in ("", "_total", "_bucket", "_sum", "_count"))}
        empty -= EMPTY_ON_TEST_STACK
        if not empty:
            break
        assert time.monotonic() < deadline, f"no samples of {sorted(empty)} after the test's traffic"
        time.sleep(0.5)
    live = exposition(families)
    live.update({name: {label: set() for label in labels} for name, labels in PROMETHEUS_SERIES.items()})

    problems = []
    for where, expr in expressions():
        tree = parse(expr)
        selectors = nodes(tree, promql_parser.VectorSelector)
        for selector in selectors:
            name = metric_name(selector)
            if name not in live:
                problems.append(f"{where}: {name} is not in /metrics")
                continue
            labels = live[name]
            for matcher in matchers(selector):
                if matcher.name not in labels and matcher.name not in TARGET_LABELS:
                    problems.append(f"{where}: {name} has no label {matcher.name!r} (has {sorted(labels)})")
                    continue
                if matcher.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.NotEqual):
                    values = [matcher.value]
                elif re.fullmatch(r"[\w|]+", matcher.value):  # a plain alternation: check each
                    values = matcher.value.split("|")
                else:
                    continue
                possible = labels.get(matcher.name, set()) | known_values(name, matcher.name)
                for value in values:
                    if value not in possible:
                        problems.append(f"{where}: {name}{{{matcher.name}={value!r}}} never occurs (seen {sorted(possible)})")
        # Grouping and matching labels (by, without, on, ignoring) name labels the selected
        # series have; otherwise the breakdown silently collapses.
        groupings = [(n.modifier.labels, n) for n in nodes(tree, promql_parser.AggregateExpr) if n.modifier]
        groupings += [(n.modifier.matching.labels, n) for n in nodes(tree, promql_parser.BinaryExpr)
                      if n.modifier and n.modifier.matching]
        for grouping, node in groupings:
            names = {metric_name(s) for s in nodes(node, promql_parser.VectorSelector)}
            available = TARGET_LABELS.union(*(live.get(n, {}).keys() for n in names))
            for label in grouping:
                if label not in available:
                    problems.append(f"{where}: groups by {label!r}, which none of {sorted(names)} has")
    assert problems == [], "\n".join(problems)


# -- promtool, where installed ---------------------------------------------------------------

# `make test` installs promtool; in CI (CI=true) its absence is a failure, not a skip.
@pytest.mark.skipif(promtool() is None and not os.environ.get("CI"),
                    reason="promtool is not installed (`make .venv/bin/promtool`)")
def test_promtool_checks_the_config_and_runs_the_rule_tests(tmp_path):
    tool = promtool()
    assert tool, "promtool is missing: `make test` installs it from Debian's prometheus package"
    for name in (PROMETHEUS, ALERTS, ALERT_TESTS):
        shutil.copy(name, tmp_path / name.name)
    # The scrape token is a Compose secret; promtool wants the file to exist.
    token = tmp_path / "token"
    token.write_text("example-token\n")
    config = tmp_path / PROMETHEUS.name
    config.write_text(config.read_text().replace("/run/secrets/sluice_metrics_token", str(token)))
    for command in (["check", "config", config.name], ["check", "rules", ALERTS.name], ["test", "rules", ALERT_TESTS.name]):
        result = subprocess.run([tool, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    # Each rule (an alert at one severity) has a unit test in which it fires.
    fired = {(case["alertname"], alert["exp_labels"]["severity"])
             for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", []) for alert in case.get("exp_alerts") or []}
    assert {(r["alert"], r["labels"]["severity"]) for r in alert_rules()} - fired == set()
