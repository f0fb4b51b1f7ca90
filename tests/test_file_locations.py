"""Where hirestream writes its files: the checkout when run from one, else the working
directory; and every model file the training pipeline makes goes where the settings say."""
import subprocess
import sys
from pathlib import Path

from streams.settings import REPO_ROOT, default_home


def test_a_checkout_keeps_its_files_in_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_home(REPO_ROOT) == REPO_ROOT


def test_an_installed_package_keeps_its_files_in_the_working_directory(tmp_path, monkeypatch):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert default_home(site.parent) == tmp_path


def test_settings_of_a_package_installed_without_the_checkout_point_at_the_working_directory(tmp_path):
    """The real path: the package copied out of the checkout (as a wheel install lays it
    out), imported in a fresh interpreter from another directory."""
    site, work = tmp_path / "site", tmp_path / "work"
    (site / "streams").mkdir(parents=True)
    work.mkdir()
    for name in ("__init__.py", "settings.py"):
        (site / "streams" / name).write_bytes((REPO_ROOT / "streams" / name).read_bytes())
    code = ("import streams.settings as s; from pathlib import Path; "
            "assert Path(s.__file__).is_relative_to(Path(r'%s')), s.__file__; "
            "c = s.Settings(); print(c.artifacts_dir, c.data_dir, c.cache_dir, sep='\\n')" % site)
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env={"PYTHONPATH": str(site), "HIRESTREAM_ENV_FILE": ""},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(work / "artifacts"), str(work / ".hirestream"), str(work / ".cache")]


def test_the_training_pipeline_keeps_base_weights_in_the_settings_artifacts(tmp_path, monkeypatch):
    import serving.training.ranker_pipeline as pipeline
    from models.ranker import Ranker
    from streams.settings import get_settings

    asked = []
    monkeypatch.setattr(Ranker, "teacher", classmethod(lambda cls, *a, **kw: asked.append(kw.get("artifacts"))))
    monkeypatch.setattr(Ranker, "student", classmethod(lambda cls, *a, **kw: asked.append(kw.get("artifacts"))))
    monkeypatch.setenv("HIRESTREAM_ARTIFACTS_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        for kind in pipeline.PRESETS:
            pipeline.new_ranker(kind)
    finally:
        get_settings.cache_clear()
    assert asked == [tmp_path] * len(pipeline.PRESETS)
