"""docs/SETTINGS.md is current, every setting is described, and .env / one-name rules hold."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from infra import settings_doc
from infra.cli import main
from serving.online.settings import ServingSettings
from streams.settings import Settings


def test_the_settings_reference_is_current():
    expected = settings_doc.render()
    have = settings_doc.DOC_PATH.read_text() if settings_doc.DOC_PATH.is_file() else ""
    assert have == expected, (f"{settings_doc.DOC_PATH} is stale: run `{settings_doc.REGENERATE}` "
                              "(or `.venv/bin/python -m infra.cli settings doc`) and commit it")


def test_the_command_writes_the_reference_and_its_check_notices_staleness(tmp_path):
    out = tmp_path / "SETTINGS.md"
    runner = CliRunner()
    assert runner.invoke(main, ["settings", "doc", "--check", "--out", str(out)]).exit_code == 1
    assert runner.invoke(main, ["settings", "doc", "--out", str(out)]).exit_code == 0
    assert out.read_text() == settings_doc.render()
    assert runner.invoke(main, ["settings", "doc", "--check", "--out", str(out)]).exit_code == 0


def test_every_setting_has_a_description_and_one_variable():
    for cls in settings_doc.settings_classes():
        names = [settings_doc.env_name(cls, n, f) for n, f in cls.model_fields.items()]
        assert len(names) == len(set(names)), cls
        assert all(f.description for f in cls.model_fields.values()), cls


def test_env_file_is_read_and_the_environment_wins_over_it(tmp_path, monkeypatch):
    env = tmp_path / "my.env"
    env.write_text("HIRESTREAM_APP_ID=from-file\nHIRESTREAM_WEB_PORT=7000\n"
                   "KAFKA_BOOTSTRAP=file-host:9092\nHIRESTREAM_SERVING_MAX_BATCH=4\n")
    monkeypatch.setenv("HIRESTREAM_ENV_FILE", str(env))
    monkeypatch.setenv("HIRESTREAM_WEB_PORT", "7001")
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    s = Settings()
    assert (s.app_id, s.web_port, s.bootstrap) == ("from-file", 7001, "file-host:9092")
    assert ServingSettings().max_batch == 4
    monkeypatch.setenv("HIRESTREAM_ENV_FILE", "")
    assert Settings().app_id == "hirestream"


def test_the_suite_reads_no_dot_env(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("HIRESTREAM_APP_ID=leaked\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().app_id == "hirestream"  # conftest sets HIRESTREAM_ENV_FILE empty
    monkeypatch.delenv("HIRESTREAM_ENV_FILE")
    assert Settings().app_id == "leaked"  # outside the suite, ./.env is read


def test_bootstrap_is_the_cluster_named_or_our_own_broker(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("HIRESTREAM_BROKER_LISTEN", "127.0.0.1:29092")
    s = Settings()
    assert (s.kafka_bootstrap, s.bootstrap) == (None, "127.0.0.1:29092")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "h1:9092,h2:9092")
    assert Settings().bootstrap == "h1:9092,h2:9092"


def test_the_retired_name_is_refused_with_the_two_names_to_use(monkeypatch):
    monkeypatch.setenv("HIRESTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
    with pytest.raises(ValidationError, match="KAFKA_BOOTSTRAP.*HIRESTREAM_BROKER_LISTEN"):
        Settings()
