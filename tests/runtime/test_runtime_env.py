"""runtime_env for tasks, actors and the job on a real embedded cluster: working_dir, py_modules, pip,
excludes and env_vars, each in workers of their own, with clear errors for what cannot be applied."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.exceptions import RuntimeEnvSetupError


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("job_wd")
    (d / "job_helper.py").write_text("WHO = 'the job'\n")
    return d


@pytest.fixture(scope="module", autouse=True)
def cluster(job_dir: Path) -> Iterator[None]:
    spindle.init(num_cpus=2, runtime_env={"working_dir": str(job_dir), "env_vars": {"JOB_LEVEL": "yes"}})
    try:
        yield
    finally:
        spindle.shutdown()


@pytest.fixture()
def work_dir(tmp_path: Path) -> Path:
    (tmp_path / "task_helper.py").write_text("def greet():\n    return 'hello from working_dir'\n")
    (tmp_path / "data.txt").write_text("42")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "weights.bin").write_bytes(b"x" * 1000)
    return tmp_path


@spindle.remote
def probe() -> dict[str, object]:
    import importlib

    out: dict[str, object] = {"cwd": os.getcwd(), "env": os.environ.get("JOB_LEVEL")}
    for name in ("task_helper", "job_helper", "mypkg"):
        try:
            out[name] = importlib.import_module(name).__name__
        except ImportError:
            out[name] = None
    out["data"] = Path("data.txt").read_text() if Path("data.txt").exists() else None
    out["big"] = Path("big/weights.bin").exists()
    return out


def test_the_jobs_working_dir_is_every_tasks_working_directory_and_import_path() -> None:
    got = spindle.get(probe.remote())
    assert got["job_helper"] == "job_helper" and got["env"] == "yes"
    assert got["task_helper"] is None


def test_a_tasks_working_dir_replaces_the_jobs_and_is_importable(work_dir: Path) -> None:
    got = spindle.get(probe.options(runtime_env={"working_dir": str(work_dir)}).remote())
    assert got["task_helper"] == "task_helper" and got["data"] == "42" and got["big"] is True
    assert got["job_helper"] is None  # the task's working_dir replaces the job's
    assert got["env"] == "yes"  # env_vars still come from the job


def test_excludes_leave_files_out_of_the_package(work_dir: Path) -> None:
    got = spindle.get(probe.options(runtime_env={"working_dir": str(work_dir), "excludes": ["big/"]}).remote())
    assert got["data"] == "42" and got["big"] is False


def test_py_modules_put_a_package_on_the_path(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 7\n")
    got = spindle.get(probe.options(runtime_env={"py_modules": [str(pkg)]}).remote())
    assert got["mypkg"] == "mypkg" and got["job_helper"] == "job_helper"


def test_nested_tasks_inherit_their_workers_runtime_env(work_dir: Path) -> None:
    @spindle.remote
    def outer() -> dict[str, object]:
        return spindle.get(probe.remote())

    got = spindle.get(outer.options(runtime_env={"working_dir": str(work_dir)}).remote())
    assert got["task_helper"] == "task_helper"


def test_nested_tasks_and_an_actor_s_tasks_inherit_the_env_vars_of_their_parent() -> None:
    @spindle.remote
    def leaf() -> str | None:
        return os.environ.get("SPINDLE_TEST_INHERITED")

    @spindle.remote
    def parent() -> str | None:
        return spindle.get(leaf.remote())

    @spindle.remote
    class Spawner:
        def spawn(self) -> str | None:
            return spindle.get(leaf.remote())

    env = {"env_vars": {"SPINDLE_TEST_INHERITED": "from the parent"}}
    assert spindle.get(parent.options(runtime_env=env).remote()) == "from the parent"
    assert spindle.get(Spawner.options(runtime_env=env).remote().spawn.remote()) == "from the parent"
    assert spindle.get(parent.remote()) is None  # a later task without them does not see them


def test_an_actor_runs_in_its_runtime_env(work_dir: Path) -> None:
    @spindle.remote
    class Reader:
        def read(self) -> str:
            import task_helper

            return f"{task_helper.greet()} {Path('data.txt').read_text()}"

    actor = Reader.options(runtime_env={"working_dir": str(work_dir)}).remote()
    assert spindle.get(actor.read.remote()) == "hello from working_dir 42"


def _wheel(directory: Path, name: str, version: str, module: str, source: str) -> Path:
    """A minimal pure-Python wheel, so pip installs it with no index."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{module}.py": source.encode(),
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n"
        for p, b in files.items()) + f"{dist}/RECORD,,\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, b in files.items():
            zf.writestr(p, b)
        zf.writestr(f"{dist}/RECORD", record)
    return path


def test_pip_installs_requirements_for_the_task_only(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "spindle_rtenv_probe", "1.0", "spindle_rtenv_probe", "ANSWER = 41 + 1\n")

    @spindle.remote
    def answer() -> int:
        import spindle_rtenv_probe

        return int(spindle_rtenv_probe.ANSWER)

    assert spindle.get(answer.options(runtime_env={"pip": [str(wheel)]}).remote()) == 42
    with pytest.raises(Exception, match="spindle_rtenv_probe"):
        spindle.get(answer.remote())


def test_a_pip_requirement_that_cannot_be_installed_fails_the_task_with_pips_reason(tmp_path: Path) -> None:
    @spindle.remote
    def never() -> int:
        return 1

    missing = tmp_path / "no_such_package-1.0-py3-none-any.whl"
    with pytest.raises(RuntimeEnvSetupError, match="pip install .*no_such_package"):
        spindle.get(never.options(runtime_env={"pip": [str(missing)]}).remote(), timeout=300)


def test_bad_runtime_envs_are_refused_where_they_are_written() -> None:
    with pytest.raises(ValueError, match="'conda' is not supported"):
        probe.options(runtime_env={"conda": "env.yaml"})
    with pytest.raises(ValueError, match="unknown runtime_env field 'workdir'"):
        probe.options(runtime_env={"workdir": "."})
    with pytest.raises(ValueError, match="env_vars"):
        probe.options(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match="'pip' as a requirements file path is not supported"):
        probe.options(runtime_env={"pip": "requirements.txt"})
    with pytest.raises(ValueError, match="is not a directory"):
        probe.options(runtime_env={"working_dir": "/nonexistent/dir"}).remote()
