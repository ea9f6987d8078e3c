"""What an installed toolkit needs at run time comes from the package or from the user, never from a checkout:
data locations (core.data.paths) from $LAST_SHARED / $LAST_DATA or the current directory, with one clear error;
the experiment configs shipped as package data (configs.resolve_config); the backend registry (core.runtime) that
the runtimes, the benchmark and the tests' markers all ask. scripts/check_install builds and installs the wheel."""
from __future__ import annotations

import configparser
import platform
from pathlib import Path

import pytest

from configs import CONFIG_DIR, list_configs, resolve_config
from core import runtime
from core.data import paths

REPO = Path(__file__).resolve().parents[1]


def test_shared_data_comes_from_the_environment_or_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.SHARED_ENV, raising=False)
    deep = tmp_path / "project" / "work" / "here"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    # nothing around the current directory: the error says how to point at the data, though the checkout has one
    with pytest.raises(FileNotFoundError, match="LAST_SHARED"):
        paths.shared_root()
    (tmp_path / "project" / "shared" / "data").mkdir(parents=True)
    assert paths.shared_root() == tmp_path / "project" / "shared"  # found from a subfolder, as ../shared is
    other = tmp_path / "elsewhere"
    (other / "data").mkdir(parents=True)
    monkeypatch.setenv(paths.SHARED_ENV, str(other))
    assert paths.shared_root() == other
    monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"\$LAST_SHARED=.*nope: no such folder"):
        paths.shared_root()


def test_built_data_lives_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.data_root().resolve() == tmp_path / "runs" / "data"
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "sets"))
    assert paths.data_root() == tmp_path / "sets"


def test_a_missing_data_set_names_the_environment_variable(tmp_path, monkeypatch):
    from core.data import load_split
    monkeypatch.delenv(paths.SHARED_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="LAST_SHARED"):
        load_split("nw_ucla", "test")


def test_configs_resolve_to_the_shipped_copy_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = CONFIG_DIR / "synthetic.yaml"
    assert resolve_config("configs/synthetic.yaml") == shipped
    assert resolve_config("synthetic") == resolve_config("synthetic.yaml") == shipped
    assert resolve_config("configs/nope.yaml") == Path("configs/nope.yaml")  # the caller's error names it
    mine = tmp_path / "configs" / "synthetic.yaml"
    mine.parent.mkdir()
    mine.write_text("model: {variant: last_small}\n")
    assert resolve_config("configs/synthetic.yaml") == Path("configs/synthetic.yaml")  # a file here wins
    assert "configs/synthetic.yaml" in list_configs()


def test_train_config_loads_a_shipped_config_outside_the_checkout(tmp_path, monkeypatch):
    from train.config import load_config
    monkeypatch.chdir(tmp_path)
    cfg = load_config("configs/nw_ucla_last_small.yaml")  # its _base_ resolves beside the shipped file
    assert cfg["data"]["name"] == "nw_ucla" and cfg["data"]["frames"] == 52


def test_package_data_ships_what_runs_need():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    include = cfg["options.packages.find"]["include"].split()
    assert "configs" in include and not any(p.startswith(("experiments", "tests", "scripts")) for p in include)
    data = cfg["options.package_data"]
    assert data["devices"].strip() == "*.yaml" and "_base_/*.yaml" in data["configs"]


def test_one_backend_registry():
    assert runtime.backend_available("pytorch") and runtime.backend_missing("pytorch") == ""
    with pytest.raises(KeyError, match="unknown backend 'tensorflow'"):
        runtime.backend_missing("tensorflow")
    if platform.system() != "Darwin":
        assert "needs macOS" in runtime.backend_missing("coreml")
    # every runtime class is a backend of the registry (the benchmark asks by runtime_kind)
    assert {cls.name for cls in set(runtime.RUNTIMES.values())} <= set(runtime.BACKENDS)
    from converters.formats import FORMATS
    assert {f.runtime for f in FORMATS.values()} <= set(runtime.BACKENDS)
