"""The deployment kit agrees with the code: Dockerfile, docker-compose.yml, Prometheus
config and alert rules (promtool), Grafana dashboard (against a real /metrics scrape).

Docker itself cannot run here; the files' content is checked against the CLI's
parser, the settings loader and the metrics the proxy and collectors really export.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from proxy import cli
from proxy.admin import admin_app
from proxy.stream.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
# Added on the hard-ops branch (entries trimmed unread, counted via XAUTOCLAIM);
# the alert already uses it, next to the trim-gap gauge that exists today.
PENDING_METRICS = {"footfall_collector_entries_trimmed_total"}
_METRIC = re.compile(r"\bfootfall_[a-z0-9_]+")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


# --- Prometheus -------------------------------------------------------------------------


def test_prometheus_config_and_alert_rules_are_valid() -> None:
    checked = _promtool("check", "config", str(CONFIG / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = _promtool("check", "rules", str(CONFIG / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = _promtool("test", "rules", str(CONFIG / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((CONFIG / "alerts.test.yml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])
              if t.get("exp_alerts")}  # fmt: skip
    assert alerts == tested
    assert {"FootfallEventsDropped", "FootfallSpoolGrowing", "FootfallStreamLag",
            "FootfallEntriesTrimmedUnread", "FootfallHigh5xxRate", "FootfallApdexLow"} <= alerts  # fmt: skip


# --- a real scrape of the proxy alone, and of the collectors ----------------------------------


def _names(exposition: str) -> set[str]:
    """Metric names a PromQL query can use, from the text exposition (incl. empty families)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            elif kind == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _get(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body: str = resp.read().decode()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """``{"proxy": names, "collectors": names}`` from real `footfall proxy` and `footfall collect`."""
    data = tmp_path_factory.mktemp("deploy")
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text("<html>hi</html>")
    up, port, admin, cadmin = free_port(), free_port(), free_port(), free_port()
    footfall = [sys.executable, "-m", "proxy.cli"]
    procs = [subprocess.Popen([sys.executable, "-m", "http.server", str(up), "--bind", "127.0.0.1"],
                              cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        procs.append(subprocess.Popen(
            [*footfall, "proxy", "--upstream", f"http://127.0.0.1:{up}", "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", str(data)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        _get(f"http://127.0.0.1:{admin}/readyz")
        procs.append(subprocess.Popen(
            [*footfall, "collect", "all", "--admin-listen", f"127.0.0.1:{cadmin}", "--data-dir", str(data)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        for path in ("/", "/missing", "/"):  # labelled series appear once observed
            with contextlib.suppress(urllib.error.HTTPError):  # the 404 is an event too
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).close()
        collectors = ""
        deadline = time.monotonic() + 30
        while 'footfall_collector_events_processed_total{group="performance"} 3.0' not in collectors:
            assert time.monotonic() < deadline, "collectors never processed the events"
            time.sleep(0.2)
            collectors = _get(f"http://127.0.0.1:{cadmin}/metrics")
        yield {"proxy": _names(_get(f"http://127.0.0.1:{admin}/metrics")), "collectors": _names(collectors)}
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)


def test_alert_rules_use_exported_metrics(scraped: dict[str, set[str]]) -> None:
    text = (CONFIG / "alerts.yml").read_text()
    used = set(_METRIC.findall("\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))))
    exported = scraped["proxy"] | scraped["collectors"] | PENDING_METRICS
    assert used - exported == set()
    proxy_rules = yaml.safe_load(text)["groups"][0]
    assert proxy_rules["name"] == "footfall-proxy"
    # The proxy's rules work against the proxy alone.
    assert set(_METRIC.findall(json.dumps(proxy_rules["rules"]))) <= scraped["proxy"]


# --- Grafana ------------------------------------------------------------------------------


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads((CONFIG / "grafana-dashboard.json").read_text())["panels"]
    return panels


def test_dashboard_panels_query_exported_metrics(scraped: dict[str, set[str]]) -> None:
    exported = scraped["proxy"] | scraped["collectors"]
    for panel in _panels():
        for target in panel["targets"]:
            unknown = set(_METRIC.findall(target["expr"])) - exported
            assert not unknown, f"panel {panel['title']!r} queries {unknown}"


def test_dashboard_has_panels_that_work_with_the_proxy_alone(scraped: dict[str, set[str]]) -> None:
    alone = [p for p in _panels()
             if all(set(_METRIC.findall(t["expr"])) <= scraped["proxy"] for t in p["targets"])]  # fmt: skip
    used = {m for p in alone for t in p["targets"] for m in _METRIC.findall(t["expr"])}
    for metric in ("footfall_spool_bytes", "footfall_events_dropped_total", "footfall_event_buffer_depth",
                   "footfall_redis_errors_total", "footfall_http_request_duration_seconds_bucket"):  # fmt: skip
        assert metric in used, f"no proxy-alone panel shows {metric}"
    assert len(alone) >= 6


def test_dashboard_legends_are_set_and_percentile_panels_have_both_queries() -> None:
    for panel in _panels():
        for target in panel["targets"]:
            legend = target.get("legendFormat", "")
            assert legend.strip(), f"panel {panel['title']!r}: empty legend"
            assert "__name__" not in legend or "by (" not in target["expr"], panel["title"]
        if "p50/p95" in panel["title"]:
            exprs = " ".join(t["expr"] for t in panel["targets"])
            quantiles = sorted(re.findall(r"histogram_quantile\((0\.\d+)", exprs))
            assert quantiles == ["0.5", "0.95"], panel["title"]
    ids = [p["id"] for p in _panels()]
    assert len(ids) == len(set(ids))


# --- Dockerfile ---------------------------------------------------------------------------


def _env_lines(dockerfile: str) -> dict[str, str]:
    block = re.search(r"^ENV (.+?)(?=^\S)", dockerfile, flags=re.M | re.S)
    assert block
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1)))


def test_dockerfile_runs_footfall_run_with_a_readyz_healthcheck(monkeypatch: pytest.MonkeyPatch) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["/app/.venv/bin/footfall"\]$', dockerfile, flags=re.M)
    assert re.search(r'^CMD \["run"\]$', dockerfile, flags=re.M)
    env = _env_lines(dockerfile)
    listen, admin = env["FOOTFALL_LISTEN"], env["FOOTFALL_ADMIN_LISTEN"]
    health = re.search(r"^HEALTHCHECK .*?CMD (.+)$", dockerfile, flags=re.M | re.S)
    assert health
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", health.group(1))
    assert url and url.group(1) == admin.rsplit(":", 1)[1] and url.group(2) == "/readyz"
    routes = {r.resource.canonical for r in admin_app([], lambda: True).router.routes() if r.resource}
    assert "/readyz" in routes
    exposed = set(re.search(r"^EXPOSE (.+)$", dockerfile, flags=re.M).group(1).split())  # type: ignore[union-attr]
    assert {listen.rsplit(":", 1)[1], admin.rsplit(":", 1)[1]} <= exposed
    assert env["FOOTFALL_DATA_DIR"] == "/data" and 'VOLUME ["/data"]' in dockerfile
    # The default command with the image's environment (plus the user's upstream) is a
    # valid configuration, listening where EXPOSE and the health check say.
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("FOOTFALL_UPSTREAM", "http://site:80")
    monkeypatch.setenv("FOOTFALL_ADMIN_TOKEN", "a-test-token-0123456789")  # required: admin on 0.0.0.0
    settings = cli.load_settings(cli.build_parser().parse_args(["run"]))
    assert str(settings.listen.port) in exposed and settings.admin_listen.port == int(url.group(1))
    assert str(settings.data_dir) == "/data"


# --- docker-compose.yml -------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def _substituted(value: str) -> str:
    """Compose's ${VAR:?msg} / ${VAR:-default} with VAR unset: a test upstream / the default."""
    value = re.sub(r"\$\{FOOTFALL_UPSTREAM:\?[^}]*\}", "http://10.0.0.5:8000", value)
    value = re.sub(r"\$\{FOOTFALL_ADMIN_TOKEN:\?[^}]*\}", "a-test-token-0123456789", value)
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _footfall_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _compose()["services"].items() if s.get("build") == "."}


def _published(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def test_compose_footfall_commands_parse_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _footfall_services()
    assert {"footfall", "collectors"} <= services.keys()
    for name, service in services.items():
        for var, value in service["environment"].items():
            monkeypatch.setenv(var, _substituted(str(value)))
        args = cli.build_parser().parse_args(service["command"])
        settings = cli.load_settings(args)  # raises ConfigError on any bad flag or env value
        assert settings.redis.url == "redis://redis:6379/0", name
        assert "redis" in _compose()["services"]


def test_compose_ports_match_the_flags_and_the_scrape_config(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _compose()["services"]
    proxy, collectors, prometheus = services["footfall"], services["collectors"], services["prometheus"]
    for var, value in proxy["environment"].items():
        monkeypatch.setenv(var, _substituted(str(value)))
    settings = cli.load_settings(cli.build_parser().parse_args(proxy["command"]))
    cargs = cli.build_parser().parse_args(collectors["command"])
    collector_admin = int(cargs.admin_listen.rsplit(":", 1)[1])
    published = _published(proxy)
    # The namespace owner publishes the proxy, its admin, and its namespace-mates' ports.
    assert collectors["network_mode"] == prometheus["network_mode"] == "service:footfall"
    web = next(a for a in prometheus["command"] if a.startswith("--web.listen-address="))
    assert {settings.listen.port, settings.admin_listen.port, collector_admin, int(web.rsplit(":", 1)[1])} <= published
    scrape = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"127.0.0.1:{settings.admin_listen.port}", f"127.0.0.1:{collector_admin}"}
    # Prometheus reads the mounted config and finds the rules next to it.
    mounts = {PurePosixPath(v.split(":")[1]): v.split(":")[0] for v in prometheus["volumes"] if v.startswith("./")}
    flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_file = PurePosixPath(flag.split("=", 1)[1])
    assert mounts[config_file] == "./config/prometheus.yml"
    for rule_file in scrape["rule_files"]:
        assert mounts[config_file.parent / rule_file] == f"./config/{rule_file}"


def test_compose_grafana_is_provisioned_with_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = {v.split(":")[0]: PurePosixPath(v.split(":")[1]) for v in grafana["volumes"] if v.startswith("./")}
    provider = yaml.safe_load((CONFIG / "grafana" / "dashboards.yml").read_text())["providers"][0]
    assert mounts["./config/grafana-dashboard.json"].parent == PurePosixPath(provider["options"]["path"])
    assert mounts["./config/grafana/dashboards.yml"].parent == PurePosixPath("/etc/grafana/provisioning/dashboards")
    assert mounts["./config/grafana/datasources.yml"].parent == PurePosixPath("/etc/grafana/provisioning/datasources")
    source = yaml.safe_load((CONFIG / "grafana" / "datasources.yml").read_text())["datasources"][0]
    web = next(a for a in _compose()["services"]["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert source["type"] == "prometheus" and source["url"] == f"http://footfall:{web.rsplit(':', 1)[1]}"


def test_compose_files_exist_redis_persists_and_clickhouse_is_optional() -> None:
    compose = _compose()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), source
            else:
                assert source in compose["volumes"], source
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert compose["services"]["clickhouse"]["profiles"] == ["clickhouse"]
    assert compose["services"]["footfall"]["depends_on"]["redis"]["condition"] == "service_healthy"
