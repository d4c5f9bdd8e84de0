"""deploy/compose.yaml and deploy/nginx.conf describe one deployment: the names, ports and
database URL in one must match the other and the Dockerfile. (The nginx file itself runs in
tests/browser/test_replicas_browser.py; Docker cannot run on the test machine.)"""

from __future__ import annotations

import re

import yaml
from sqlalchemy.engine import make_url

from bench.common import ROOT

DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def upstreams() -> list[tuple[str, int]]:
    text = (DEPLOY / "nginx.conf").read_text()
    block = re.search(r"upstream primer \{(.*?)\}", text, re.S).group(1)
    return [(host, int(port)) for host, port in re.findall(r"^\s*server\s+([\w.-]+):(\d+);", block, re.M)]


def test_nginx_sends_to_exactly_the_app_services_on_the_port_the_image_exposes():
    services = compose()["services"]
    apps = sorted(name for name, service in services.items() if "build" in service)
    assert len(apps) >= 2, "several replicas"
    assert sorted(host for host, _ in upstreams()) == apps
    exposed = int(re.search(r"^EXPOSE (\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    assert {port for _, port in upstreams()} == {exposed}


def test_every_replica_uses_the_one_postgresql_service_with_its_user_and_database():
    services = compose()["services"]
    db = services["db"]
    assert db["image"].startswith("postgres:")
    for name, service in services.items():
        if "build" not in service:
            continue
        url = make_url(
            service["environment"]["PRIMER_DATABASE_URL"].replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "x")
        )
        assert url.drivername == "postgresql+psycopg", name  # the driver requirements.txt installs
        assert (url.host, url.port) == ("db", 5432), name
        assert url.username == db["environment"]["POSTGRES_USER"] and url.database == db["environment"]["POSTGRES_DB"]
        assert "db" in service["depends_on"], name


def test_the_proxy_mounts_this_nginx_conf_and_publishes_its_listen_port():
    proxy = compose()["services"]["nginx"]
    mount = next(v for v in proxy["volumes"] if v.endswith(":/etc/nginx/nginx.conf:ro"))
    assert (DEPLOY / mount.split(":")[0]).resolve() == (DEPLOY / "nginx.conf").resolve()
    listen = int(re.search(r"^\s*listen (\d+);", (DEPLOY / "nginx.conf").read_text(), re.M).group(1))
    assert any(port.endswith(f":{listen}") for port in proxy["ports"])
