"""requirements.txt in the source directory: a job environment that sees the server's
packages, pip's output streamed, failures in the toolkit's words, stop and timeout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from openmaker.training.requirements import (
    MAX_MESSAGE,
    RequirementsError,
    RequirementsStopped,
    RequirementsTimeout,
    failure_message,
    install_requirements,
    pip_environment,
)

UNKNOWN = "openmaker-no-such-package-0xdeadbeef"


def code_dir(tmp_path: Path, requirements: str) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text(requirements)
    (code / "helper.py").write_text("ANSWER = 42\n")
    return code


def run_python(python: Path, source: str, cwd: Path) -> str:
    done = subprocess.run([str(python), "-c", source], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_no_requirements_file_means_the_server_python(tmp_path: Path) -> None:
    lines: list[str] = []
    assert install_requirements(tmp_path, tmp_path / "env", on_output=lines.append) is None
    assert not (tmp_path / "env").exists()
    assert lines == []


def test_requirement_the_server_satisfies_is_not_downloaded(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "numpy\n")
    lines: list[str] = []
    python = install_requirements(code, tmp_path / "env", on_output=lines.append)
    assert python is not None and python.is_file()
    output = "\n".join(lines)
    assert "Requirement already satisfied: numpy" in output
    assert "Downloading" not in output and "Collecting" not in output
    imported = run_python(python, "import numpy, helper, openmaker; print(helper.ANSWER)", code)
    assert imported == "42"
    # The job's environment is its own: nothing was installed next to the server's numpy.
    assert run_python(python, "import sys; print(sys.prefix)", code) == str(tmp_path / "env")


def test_local_package_in_the_source_directory_is_installed(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "./localpkg\n")
    package = code / "localpkg"
    (package / "localpkg").mkdir(parents=True)
    (package / "localpkg" / "__init__.py").write_text("VALUE = 'from localpkg'\n")
    (package / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "localpkg"
        version = "0.1"
        """))
    lines: list[str] = []
    # Without build isolation the build uses the setuptools the server has: no index needed.
    python = install_requirements(code, tmp_path / "env", on_output=lines.append,
                                  build_isolation=False)
    assert python is not None
    assert any("Successfully installed localpkg" in line for line in lines), lines
    assert run_python(python, "import localpkg; print(localpkg.VALUE)", tmp_path) == \
        "from localpkg"
    # Installed into the job environment, not into the server's.
    check = subprocess.run([sys.executable, "-c", "import localpkg"], cwd=tmp_path,
                           capture_output=True)
    assert check.returncode != 0


def test_unknown_package_fails_promptly_with_its_name(tmp_path: Path) -> None:
    code = code_dir(tmp_path, f"{UNKNOWN}\n")
    started = time.monotonic()
    with pytest.raises(RequirementsError) as caught:
        install_requirements(code, tmp_path / "env", on_output=lambda line: None)
    assert time.monotonic() - started < 60
    message = caught.value.message
    assert message.startswith("InstallRequirementsError:")
    assert "ExitCode 1" in message
    assert UNKNOWN in message
    assert len(message) <= MAX_MESSAGE
    assert caught.value.exit_code == 1


def test_should_stop_kills_pip(tmp_path: Path) -> None:
    # A local package whose build sleeps keeps pip busy until it is stopped.
    code = code_dir(tmp_path, "./slowpkg\n")
    package = code / "slowpkg"
    package.mkdir()
    (package / "setup.py").write_text(
        "import time\ntime.sleep(120)\nfrom setuptools import setup\nsetup(name='slowpkg')\n")
    stop = threading.Event()
    lines: list[str] = []

    def output(line: str) -> None:
        lines.append(line)
        if "slowpkg" in line:
            stop.set()

    fallback = threading.Timer(20, stop.set)  # in case pip says nothing about slowpkg
    fallback.daemon = True
    fallback.start()
    started = time.monotonic()
    try:
        with pytest.raises(RequirementsStopped):
            install_requirements(code, tmp_path / "env", on_output=output,
                                 should_stop=stop.is_set, build_isolation=False)
    finally:
        fallback.cancel()
    assert time.monotonic() - started < 60


def test_timeout_kills_pip(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "./slowpkg\n")
    package = code / "slowpkg"
    package.mkdir()
    (package / "setup.py").write_text("import time\ntime.sleep(120)\n")
    started = time.monotonic()
    with pytest.raises(RequirementsTimeout) as caught:
        install_requirements(code, tmp_path / "env", on_output=lambda line: None,
                             timeout_seconds=3, build_isolation=False)
    assert time.monotonic() - started < 30
    assert caught.value.message.startswith("InstallRequirementsError:")
    assert "did not finish within 3 seconds" in caught.value.message


def test_pip_environment_drops_server_secrets_and_keeps_pip_settings() -> None:
    env = pip_environment({
        "PATH": "/usr/bin", "HOME": "/root", "HTTPS_PROXY": "http://proxy:3128",
        "PIP_INDEX_URL": "https://user:pw@index/simple", "PIP_EXTRA_INDEX_URL": "file:///x",
        "PIP_FIND_LINKS": "/opt/wheels", "XDG_CONFIG_DIRS": "/etc/xdg",
        "AWS_SECRET_ACCESS_KEY": "s", "AWS_ACCESS_KEY_ID": "k",
        "OPENMAKER_S3_SECRET_ACCESS_KEY": "s", "GITHUB_TOKEN": "t", "PYTHONPATH": "/elsewhere",
    })
    assert set(env) == {"PATH", "HOME", "HTTPS_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                        "PIP_FIND_LINKS", "XDG_CONFIG_DIRS", "PYTHONUNBUFFERED", "PIP_NO_INPUT"}


def test_failure_message_keeps_the_last_lines_within_the_limit() -> None:
    tail = [f"line {n} " + "x" * 50 for n in range(100)] + ["ERROR: the real reason"]
    message = failure_message(2, tail)
    assert len(message) <= MAX_MESSAGE
    assert message.startswith("InstallRequirementsError:\nExitCode 2\nErrorMessage \"")
    assert "ERROR: the real reason" in message
    assert "line 0 " not in message
    assert message.endswith('Command "python -m pip install -r requirements.txt"')
