"""Script mode's ``requirements.txt``: installed into a per-job environment before the
entry point runs, as the sagemaker-training toolkit does with ``pip install -r
requirements.txt`` in ``/opt/ml/code``.

The job environment is a virtual environment that sees every package the server's own
interpreter sees, so requirements the server already satisfies are not downloaded, and
what pip does install goes into the job environment only, shadowing (never replacing)
the server's packages.

``python -m venv --system-site-packages`` alone is not enough for that: when the server
itself runs in a virtual environment (the usual case), "system" means the base
interpreter's site-packages, not the server's. So the job environment gets a ``.pth``
file that adds the server's site directories with ``site.addsitedir`` (which also
processes their own ``.pth`` files, such as editable installs); ``--system-site-packages``
is used only when the server runs in its base interpreter, where the two agree.

Local packages (``./mypkg`` lines, local wheels) work because pip runs with the code
directory as its working directory. Build isolation is on by default, as in the toolkit:
building a local source package then fetches its build requirements (``setuptools`` ...)
from the configured index. ``build_isolation=False`` builds with the packages the job
environment already sees instead, for servers with no index at all.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import queue
import re
import signal
import site
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Callable
from pathlib import Path

REQUIREMENTS_FILE = "requirements.txt"
SERVER_SITE_PTH = "_openmaker_server_site.pth"
MAX_MESSAGE = 900  # FailureReason holds 1024; leave room for a prefix
TAIL_LINES = 40
STOP_GRACE_SECONDS = 2.0
DRAIN_SECONDS = 2.0  # how long pip's output may take to drain once pip has exited
POLL_SECONDS = 0.1

# Dropped from the server's environment before pip runs: the server's own credentials and
# settings, and variables that would make pip's interpreter see a different sys.path
# than the job's process will.
_DROPPED_NAMES = frozenset({"PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV",
                            "__PYVENV_LAUNCHER__"})
_DROPPED_PREFIXES = ("AWS_", "OPENMAKER_")
_SECRET_WORDS = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|API_?KEY", re.IGNORECASE)


class RequirementsError(Exception):
    """``requirements.txt`` could not be installed; the message is the job's
    FailureReason, in the toolkit's ``InstallRequirementsError:`` form."""

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class RequirementsTimeout(RequirementsError):
    """pip ran past ``timeout_seconds`` and was killed."""


class RequirementsStopped(Exception):
    """``should_stop`` became true while pip ran; pip was killed. Not a failure: the job
    is being stopped."""


def pip_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment pip runs with: the server's (``environ``, default ``os.environ``)
    without ``AWS_*``/``OPENMAKER_*`` variables, without names that look like secrets
    (``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*`` ...) unless they are pip's own ``PIP_*``
    settings, and without ``PYTHONHOME``/``PYTHONPATH``/``VIRTUAL_ENV``. ``PATH``, ``HOME``
    (pip's user config and cache), ``XDG_*`` (pip's global config), proxies, certificate
    settings and every ``PIP_*`` index setting are kept."""
    source = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for name, value in source.items():
        upper = name.upper()
        if name in _DROPPED_NAMES or upper.startswith(_DROPPED_PREFIXES):
            continue
        if _SECRET_WORDS.search(upper) and not upper.startswith("PIP_"):
            continue
        env[name] = value
    env["PYTHONUNBUFFERED"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def server_site_dirs() -> list[str]:
    """The site directories this interpreter reads packages from (its site-packages and,
    where enabled, the user site)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    seen: list[str] = []
    for directory in dirs:
        if os.path.isdir(directory) and directory not in seen:
            seen.append(directory)
    return seen


def _in_virtual_env() -> bool:
    return sys.prefix != sys.base_prefix


def create_job_environment(env_dir: Path) -> Path:
    """(Re)create the job environment at ``env_dir`` and return its python."""
    env_dir = Path(env_dir)
    try:
        builder = venv.EnvBuilder(system_site_packages=not _in_virtual_env(), clear=True,
                                  symlinks=os.name != "nt", with_pip=False)
        builder.create(env_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RequirementsError(
            f"InstallRequirementsError: could not create the job environment at {env_dir}: "
            f"{exc}"
        ) from exc
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if _in_virtual_env():
        site_packages = _site_packages(env_dir)
        lines = [f"import site; site.addsitedir({directory!r})\n"
                 for directory in server_site_dirs()]
        (site_packages / SERVER_SITE_PTH).write_text("".join(lines))
    return python


def _site_packages(env_dir: Path) -> Path:
    if os.name == "nt":
        return env_dir / "Lib" / "site-packages"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return env_dir / "lib" / version / "site-packages"


def failure_message(exit_code: int, tail: list[str], *, extra: str | None = None) -> str:
    """The toolkit's InstallRequirementsError text, cut to ``MAX_MESSAGE`` characters by
    dropping the oldest output lines first."""
    head = f"InstallRequirementsError:\nExitCode {exit_code}\n"
    info = f'\nExtraInfo "{extra}"' if extra else ""
    end = f'"{info}\nCommand "python -m pip install -r {REQUIREMENTS_FILE}"'
    room = MAX_MESSAGE - len(head) - len('ErrorMessage "') - len(end)
    lines = [line for line in tail if line.strip()]
    while len(lines) > 1 and len("\n".join(lines)) > room:
        lines.pop(0)
    text = "\n".join(lines)
    if len(text) > room:  # one line longer than the room: keep its end
        text = "..." + text[len(text) - room + 3:] if room > 3 else ""
    return f'{head}ErrorMessage "{text}{end}'[:MAX_MESSAGE]


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_lines(stream, lines: queue.Queue[str | None]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    finally:
        stream.close()
        lines.put(None)


def install_requirements(
    code_dir: Path,
    env_dir: Path,
    *,
    on_output: Callable[[str], None],
    should_stop: Callable[[], bool] = lambda: False,
    timeout_seconds: float | None = None,
    build_isolation: bool = True,
) -> Path | None:
    """Install ``code_dir/requirements.txt`` into a job environment created at ``env_dir``
    and return that environment's python; ``None`` (use ``sys.executable``) when there is
    no ``requirements.txt``.

    pip's output lines go to ``on_output`` as they come, called from this thread. Raises
    :class:`RequirementsError` when pip fails (:class:`RequirementsTimeout` past
    ``timeout_seconds``) and :class:`RequirementsStopped` when ``should_stop`` returns
    true; in both of the last cases pip's whole process group is killed first.
    """
    code_dir = Path(code_dir)
    if not (code_dir / REQUIREMENTS_FILE).is_file():
        return None
    if importlib.util.find_spec("pip") is None:
        raise RequirementsError(
            "InstallRequirementsError: pip is not installed in the server's Python "
            f"({sys.executable}); install it (python -m ensurepip) to use {REQUIREMENTS_FILE}"
        )
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    python = create_job_environment(Path(env_dir))
    argv = [sys.executable, "-m", "pip", "--python", str(python), "install",
            "-r", REQUIREMENTS_FILE, "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off"]
    if not build_isolation:
        argv.append("--no-build-isolation")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: queue.Queue[str | None] = queue.Queue()
    process = subprocess.Popen(argv, cwd=code_dir, env=pip_environment(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines),
                              name="openmaker-pip-output", daemon=True)
    reader.start()
    ended: str | None = None  # "stopped" or "timeout" when we killed pip
    drain_until: float | None = None
    try:
        while True:
            try:
                line = lines.get(timeout=POLL_SECONDS)
            except queue.Empty:
                line = ""
            else:
                if line is None:
                    break
                tail.append(line)
                on_output(line)
            if process.poll() is not None:
                # pip is gone; what it left in its group must not hold the pipe open.
                _kill_group(process, signal.SIGKILL)
                drain_until = drain_until or time.monotonic() + DRAIN_SECONDS
                if time.monotonic() > drain_until:
                    break
            elif should_stop():
                ended = "stopped"
                break
            elif deadline is not None and time.monotonic() > deadline:
                ended = "timeout"
                break
    finally:
        if process.poll() is None:
            _kill_group(process, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(process, signal.SIGKILL)
                process.wait()
        _kill_group(process, signal.SIGKILL)
        reader.join(DRAIN_SECONDS)
    code = process.returncode
    if ended == "stopped":
        raise RequirementsStopped(f"installing {REQUIREMENTS_FILE} was stopped")
    if ended == "timeout":
        raise RequirementsTimeout(
            failure_message(code, list(tail),
                            extra=f"pip did not finish within {timeout_seconds:g} seconds"),
            exit_code=code,
        )
    if code != 0:
        raise RequirementsError(failure_message(code, list(tail)), exit_code=code)
    return python
