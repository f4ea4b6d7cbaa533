from __future__ import annotations

from pathlib import Path

import pytest

from spooler.core.errors import ConfigError
from spooler.core.settings import find_config, load_settings
from tests.conftest import init_tree


def test_init_writes_a_complete_valid_configuration(tmp_path: Path) -> None:
    settings = init_tree(tmp_path / "x", "fermions")
    assert settings.backend == "fermions"
    assert settings.folders.dump == tmp_path / "x" / "dump"
    for path in settings.folders.as_dict().values():
        assert path.is_dir()
    assert settings.apparatus.header.is_file()
    assert settings.limits.job_file_max_bytes == 1 << 20
    assert settings.limits.instructions_per_experiment_max == 10_000


def test_relative_folders_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "labspool.yaml"
    config.parent.mkdir()
    config.write_text("backend: nali\nfolders:\n  dump: ../spool/in\n  sds: /mnt/sds\n")
    settings = load_settings(config)
    assert settings.folders.dump == tmp_path / "etc" / ".." / "spool" / "in"
    assert settings.folders.sds == Path("/mnt/sds")
    assert settings.folders.status == tmp_path / "etc" / "status"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("backend: singlequdit\nintake:\n  rescan_interval: 3\n", "intake: Additional properties"),
        ("backend: singlequdit\nlimits:\n  job_file_max_bytes: big\n", "limits.job_file_max_bytes"),
        ("backend: quantumtoaster\n", "backend: 'quantumtoaster' is not one of"),
        ("folders: {}\n", "'backend' is a required property"),
        ("backend: [unclosed\n", "not valid YAML"),
        ("- a list\n", "(top level)"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(config) in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_settings(tmp_path / "nope.yaml")


def test_settings_are_frozen(tree: object) -> None:
    with pytest.raises(AttributeError):
        tree.backend = "nali"  # type: ignore[attr-defined]


def test_config_comes_from_flag_then_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABSPOOL_CONFIG", str(tmp_path / "env.yaml"))
    assert find_config(str(tmp_path / "flag.yaml")) == tmp_path / "flag.yaml"
    assert find_config(None) == tmp_path / "env.yaml"
    monkeypatch.delenv("LABSPOOL_CONFIG")
    with pytest.raises(ConfigError, match="LABSPOOL_CONFIG"):
        find_config(None)


@pytest.mark.parametrize(
    ("executor", "fragment"),
    [
        ("{kind: threads}", "result.executor.kind: 'threads' is not one of"),
        ("{workers: 2}", "'kind' is a required property"),
        ("{kind: dask, scheduler: 'tcp://h:8786', workers: 2}", "result.executor"),
        ("{kind: dask, scheduler: 'h:8786'}", "result.executor.scheduler"),
        ("{kind: processes, workers: 0}", "result.executor.workers"),
    ],
)
def test_a_wrong_executor_is_named(tmp_path: Path, executor: str, fragment: str) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text(f"backend: singlequdit\nresult:\n  executor: {executor}\n")
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        load_settings(config)


def test_the_executor_defaults_to_a_worker_per_core(tmp_path: Path) -> None:
    import os

    config = tmp_path / "labspool.yaml"
    config.write_text("backend: singlequdit\n")
    executor = load_settings(config).result.executor
    assert executor.kind == "processes"
    assert executor.worker_count() == len(os.sched_getaffinity(0))
    config.write_text("backend: singlequdit\nresult: {executor: {kind: dask, workers: 3}}\n")
    dask = load_settings(config).result.executor
    assert (dask.kind, dask.scheduler, dask.worker_count()) == ("dask", None, 3)


@pytest.mark.parametrize(
    "routine",
    ["draw_job", "result.routines.picture.draw_job", "result/picture:draw_job", "m:f()", "1m:f"],
)
def test_a_malformed_multishot_routine_is_refused(tmp_path: Path, routine: str) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text(f"backend: singlequdit\nresult:\n  multishot_routines: [{routine!r}]\n")
    with pytest.raises(ConfigError, match=r"result\.multishot_routines\.0: .* does not match"):
        load_settings(config)


def test_the_multishot_routines_default_to_the_picture_and_may_be_none(tmp_path: Path) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text("backend: singlequdit\n")
    assert load_settings(config).result.multishot_routines == ("result.routines.picture:draw_job",)
    config.write_text("backend: singlequdit\nresult:\n  multishot_routines: [a.b:c, d:e]\n")
    assert load_settings(config).result.multishot_routines == ("a.b:c", "d:e")
    config.write_text("backend: singlequdit\nresult:\n  multishot_routines: []\n")
    assert load_settings(config).result.multishot_routines == ()


def test_the_gateway_section_defaults(tmp_path: Path) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text("backend: nali\nlimits:\n  job_file_max_bytes: 4096\n")
    gateway = load_settings(config).gateway
    assert gateway.listen == "127.0.0.1:8090" and gateway.address == ("127.0.0.1", 8090)
    assert gateway.backend_name == "nali"  # the backend's own name
    assert gateway.body_max_bytes == 2 << 20
    assert (gateway.queued_jobs_max, gateway.requests_per_s) == (100, 20.0)
    assert gateway.job_bytes_max == 4096  # limits.job_file_max_bytes
    shipped = init_tree(tmp_path / "x", "fermions").gateway  # config/labspool.yaml
    assert (shipped.listen, shipped.backend_name, shipped.job_bytes_max) == (
        "127.0.0.1:8090",
        "fermions",
        1 << 20,
    )


def test_the_gateway_section_as_given(tmp_path: Path) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text(
        "backend: singlequdit\ngateway:\n  listen: '[::1]:9000'\n"
        "  backend_name: mylab_singlequdit_machine\n  body_max_bytes: 65536\n"
        "  queued_jobs_max: 5\n  requests_per_s: 2\n  job_bytes_max: 8192\n"
    )
    gateway = load_settings(config).gateway
    assert gateway.address == ("::1", 9000)
    assert gateway.backend_name == "mylab_singlequdit_machine"
    assert (gateway.body_max_bytes, gateway.queued_jobs_max, gateway.job_bytes_max) == (
        65536,
        5,
        8192,
    )
    assert gateway.requests_per_s == 2.0 and isinstance(gateway.requests_per_s, float)


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ("{listen: 8090}", "gateway.listen: 8090 is not of type 'string'"),
        ("{listen: localhost}", "gateway.listen: 'localhost' does not match"),
        ("{listen: 'localhost:70000'}", "gateway.listen: port 70000 is not 1 to 65535"),
        ("{body_max_bytes: big}", "gateway.body_max_bytes: 'big' is not of type 'integer'"),
        ("{body_max_bytes: 10}", "gateway.body_max_bytes: 10 is less than the minimum of 1024"),
        ("{queued_jobs_max: 1.5}", "gateway.queued_jobs_max: 1.5 is not of type 'integer'"),
        ("{requests_per_s: fast}", "gateway.requests_per_s: 'fast' is not of type 'number'"),
        ("{requests_per_s: 0}", "gateway.requests_per_s: 0 is less than or equal to the minimum"),
        ("{backend_name: 'my lab'}", "gateway.backend_name: 'my lab' does not match"),
        ("{job_bytes_max: [1]}", "gateway.job_bytes_max: [1] is not of type 'integer'"),
        ("{job_bytes_max: 2097152}", "gateway.job_bytes_max: 2097152 is above limits.job_file"),
        ("{port: 8090}", "gateway: Additional properties are not allowed ('port' was unexpected)"),
        ("[]", "gateway: [] is not of type 'object'"),
    ],
)
def test_a_wrong_gateway_section_is_named(tmp_path: Path, section: str, fragment: str) -> None:
    config = tmp_path / "labspool.yaml"
    config.write_text(f"backend: singlequdit\ngateway: {section}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(config) in str(caught.value)
    assert fragment in str(caught.value)
