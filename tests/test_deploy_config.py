"""The deployment files say what the code means: a schema passes a file with a setting
misspelt or a command that does not exist; these checks do not.

Every variable a hirestream container gets is a real setting, and the settings classes
accept each container's whole configuration; commands are `hirestream` commands; the Kafka
image is the version the project's own broker runs; the scaling limits follow the partition
count; probes hit the scoring service's real paths and ports.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from infra import settings_doc
from infra.broker import kafka_version
from infra.cli import main as cli
from serving.online.scorer import VLLM_URL_ENV
from serving.online.settings import ServingSettings
from streams.settings import ENV_FILE_ENV, Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "infra" / "deploy"
K8S = DEPLOY / "k8s"
# Kubernetes fills these from the pod itself; they exist to build HIRESTREAM_WEB_HOST.
POD_FIELDS = {"POD_NAME": "hirestream-worker-0", "POD_IP": "10.0.0.7"}
FAKE_SECRET = "a-test-token-of-some-length"


def setting_names() -> set[str]:
    names = {settings_doc.env_name(cls, n, f) for cls in settings_doc.settings_classes()
             for n, f in cls.model_fields.items() if not f.exclude}  # exclude: retired names
    return names | {VLLM_URL_ENV, ENV_FILE_ENV}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def manifests() -> list[dict]:
    return [d for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in yaml.safe_load_all(p.read_text()) if d]


def of_kind(kind: str, name: str | None = None) -> list[dict]:
    return [d for d in manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def pod_specs() -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in manifests() if d["kind"] in ("StatefulSet", "Deployment")]


def hirestream_compose_services() -> dict[str, dict]:
    return {n: s for n, s in compose()["services"].items() if s.get("image", "").startswith("hirestream:")}


def hirestream_containers() -> list[dict]:
    return [c for spec in pod_specs() for c in spec.get("initContainers", []) + spec["containers"]
            if c["image"] == "hirestream"]


def container_env(container: dict) -> dict[str, str]:
    """What the container's process sees: ConfigMaps in order, then `env` (Secrets and
    pod fields by stand-ins), with Kubernetes' $(VAR) expansion."""
    configmaps = {d["metadata"]["name"]: d["data"] for d in of_kind("ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            value = FAKE_SECRET
        elif "configMapKeyRef" in ref:
            value = configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif "fieldRef" in ref:
            value = POD_FIELDS[var["name"]]
        else:
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
        env[var["name"]] = value
    return env


def compose_env(service: dict) -> dict[str, str]:
    """A compose service's environment, with `${NAME:?...}` / `${NAME:-default}` filled in."""
    def fill(value: object) -> str:
        return re.sub(r"\$\{(\w+):[?-]([^}]*)\}",
                      lambda m: FAKE_SECRET if m.group(1) == "HIRESTREAM_TOKEN" else m.group(2), str(value))
    return {k: fill(v) for k, v in (service.get("environment") or {}).items()}


def all_hirestream_envs() -> dict[str, dict[str, str]]:
    envs = {f"compose {n}": compose_env(s) for n, s in hirestream_compose_services().items()}
    envs |= {f"k8s {c['name']} ({' '.join(c['args'][:2])})": container_env(c) for c in hirestream_containers()}
    return envs


def test_every_variable_a_hirestream_container_gets_is_a_setting():
    known = setting_names() | set(POD_FIELDS)
    dockerfile_env = set(re.findall(r"\b(HIRESTREAM_\w+)=", (REPO / "Dockerfile").read_text()))
    wrong = {where: sorted(set(env) - known) for where, env in all_hirestream_envs().items()}
    wrong["Dockerfile"] = sorted(dockerfile_env - known)
    assert not any(wrong.values()), {k: v for k, v in wrong.items() if v}
    configmap_keys = {k for d in of_kind("ConfigMap") for k in d["data"]}
    assert configmap_keys <= known, configmap_keys - known


@pytest.mark.parametrize("where", sorted(all_hirestream_envs()))
def test_the_settings_accept_each_containers_configuration(where, monkeypatch):
    for name in setting_names() - {ENV_FILE_ENV}:
        monkeypatch.delenv(name, raising=False)
    for name, value in all_hirestream_envs()[where].items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # raises on a bad value, a retired name, or a bind beyond loopback without a token
    ServingSettings()
    assert settings.kafka_bootstrap, f"{where}: no KAFKA_BOOTSTRAP, so it would start a broker of its own"
    assert settings.replication_factor == 3


def test_commands_are_hirestream_commands():
    commands = [s["command"] for s in hirestream_compose_services().values()]
    commands += [c["args"] for c in hirestream_containers()]
    for argv in commands:
        words = [w for w in argv if not w.startswith("-")][:2]
        group = cli.commands[words[0]]
        if hasattr(group, "commands"):  # `broker create-topics`
            assert words[1] in group.commands, argv
        assert CliRunner().invoke(cli, [*words, "--help"]).exit_code == 0, argv
    assert {a[0] for a in commands} == {"worker", "serve", "broker"}


def test_the_kafka_image_is_the_brokers_version():
    images = {s["image"] for n, s in compose()["services"].items() if n.startswith("kafka-")}
    images |= {c["image"] for spec in pod_specs() for c in spec["containers"] if "kafka" in c["image"]}
    assert images == {f"apache/kafka:{kafka_version()}"}


def test_compose_names_its_services_and_their_dependencies():
    services = compose()["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "topics", "worker-1", "worker-2", "scoring", "vllm"} <= set(services)
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
    declared = set(compose()["volumes"])
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named == declared
    workers = {n: compose_env(s) for n, s in services.items() if s.get("command", [None])[0] == "worker"}
    assert len({e["HIRESTREAM_WEB_HOST"] for e in workers.values()}) == len(workers)  # each its own name
    assert all(e["HIRESTREAM_WEB_HOST"] == services[n]["hostname"] for n, e in workers.items())
    assert compose_env(services["scoring"])["HIRESTREAM_APP_ID"] != Settings.model_fields["app_id"].default


def test_workers_scale_up_to_the_partition_count():
    partitions = int(of_kind("ConfigMap", "hirestream")[0]["data"]["HIRESTREAM_MEMBER_PARTITIONS"])
    assert partitions == int(compose_env(compose()["services"]["worker-1"])["HIRESTREAM_MEMBER_PARTITIONS"])
    workers = of_kind("StatefulSet", "hirestream-worker")[0]
    hpa = of_kind("HorizontalPodAutoscaler", "hirestream-worker")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "hirestream-worker"
    assert workers["spec"]["replicas"] <= hpa["spec"]["maxReplicas"] == partitions
    claim = workers["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in workers["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[claim] == "/var/lib/hirestream"  # the image's HIRESTREAM_DATA_DIR: RocksDB on the volume
    assert "HIRESTREAM_DATA_DIR=/var/lib/hirestream" in (REPO / "Dockerfile").read_text()


def test_the_scoring_service_is_ready_on_readyz_at_its_http_port():
    deployment = of_kind("Deployment", "hirestream-scoring")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz"
    assert ports[probe["port"]] == ServingSettings.model_fields["http_port"].default
    assert ports["web"] == Settings.model_fields["web_port"].default
    assert container_env(container)["HIRESTREAM_APP_ID"] == "hirestream-scoring"
    assert "/readyz" in " ".join(compose()["services"]["scoring"]["healthcheck"]["test"])


def test_pods_take_no_service_links_and_the_token_from_the_secret():
    # A Service's links (NAME_PORT=tcp://...) would reach the settings or Kafka's KAFKA_* properties.
    assert all(spec["enableServiceLinks"] is False for spec in pod_specs())
    refs = [v["valueFrom"]["secretKeyRef"] for c in hirestream_containers() for v in c.get("env", [])
            if "secretKeyRef" in v.get("valueFrom", {})]
    assert refs and all(r == {"name": "hirestream", "key": "token"} for r in refs)
    assert not of_kind("Secret"), "the token is made by hand (docs/DEPLOYMENT.md), never committed"


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_the_dockerfile_copies_what_exists_and_runs_as_a_user():
    text = (REPO / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), line
    assert "-c constraints.txt" in text
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    runtime = [s for s in stages if re.match(r"\S+ AS (runtime|vllm)\n", s)]
    assert len(runtime) == 2 and all(re.search(r"^USER 10001", s, re.M) for s in runtime)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".cache", "artifacts", ".git"} <= set(ignored)
