"""Run the one-port server in the foreground (``openmaker server``).

The server records its address in ``<home>/server.json`` while it runs, so the SDK and
``openmaker status`` can find it; SIGINT and SIGTERM stop it cleanly (in-flight requests
finish, the record is removed).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from openmaker.config import ConfigError, Settings, replace


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_allowed(settings: Settings) -> None:
    """Without access keys anyone could call the server, so it only listens on loopback."""
    if not settings.auth_enabled and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host} without access keys: anyone who can reach "
            "it could use it. Set OPENMAKER_ACCESS_KEY_ID and OPENMAKER_SECRET_ACCESS_KEY (or "
            "[auth] keys in openmaker.toml), or listen on 127.0.0.1."
        )


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def write_server_info(settings: Settings) -> None:
    info = {"pid": os.getpid(), "url": settings.url, "host": settings.host,
            "port": settings.port, "home": str(settings.home), "started": time.time()}
    path = settings.server_info_path
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(info))
    os.replace(temporary, path)


def read_server_info(home: Path) -> dict | None:
    """The record of the server running on ``home``, or None (stale records are ignored)."""
    try:
        info = json.loads((home / "server.json").read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def _remove_server_info(settings: Settings) -> None:
    try:
        info = json.loads(settings.server_info_path.read_text())
        if info.get("pid") == os.getpid():
            settings.server_info_path.unlink()
    except (OSError, ValueError):
        pass


class _Stopped(Exception):
    """Raised by the signal handler once uvicorn has shut down."""


def _stop_after_drain(signum: int, frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


def serve(settings: Settings, log_level: str = "warning") -> None:
    """Serve every API on ``settings.host:settings.port`` until SIGINT/SIGTERM."""
    import uvicorn

    from openmaker.api.app import OpenmakerApp
    from openmaker.core.platform import Platform

    check_bind_allowed(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    running = read_server_info(settings.home)
    if running is not None and running.get("pid") != os.getpid():
        raise ConfigError(
            f"a server is already running on home {settings.home} at {running['url']} "
            f"(pid {running['pid']}); stop it first or use another --home"
        )
    sock = bind_socket(settings.host, settings.port)
    settings = replace(settings, port=sock.getsockname()[1])
    platform = Platform(settings)
    # open the stores before accepting requests, so configuration errors show at once
    _ = platform.objects, platform.resources
    from openmaker.training.service import recover_interrupted_jobs

    recover_interrupted_jobs(platform)  # jobs the previous server left running are failed
    from openmaker.tuning.service import resume_tuning_jobs

    resume_tuning_jobs(platform)  # tuning jobs go on, rerunning the jobs the restart cut off
    from openmaker.processing.service import recover_interrupted_jobs as recover_processing
    from openmaker.transform.service import recover_interrupted_jobs as recover_transform

    recover_processing(platform)  # processing and transform jobs left running are failed
    recover_transform(platform)
    from openmaker.hosting.endpoints import recover_endpoints

    recover_endpoints(platform)  # endpoints the previous server served are built again
    from openmaker.hosting.async_inference import resume_async_inference

    resume_async_inference(platform)  # queued asynchronous requests go on being processed
    from openmaker.autoscaling.scaler import resume_scaling

    resume_scaling(platform)  # scalable targets registered before go on being scaled
    app = OpenmakerApp(platform)
    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, server_header=False, lifespan="on",
        proxy_headers=False,  # clients talk to us directly; no X-Forwarded-* rewriting
        timeout_keep_alive=75, timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # uvicorn drains requests on SIGINT/SIGTERM, then re-raises the signal to the handler
    # that was installed before it: make that handler end the process normally (status 0,
    # server.json removed) rather than die from the signal.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_after_drain)
    write_server_info(settings)
    print(f"openmaker server listening on {settings.url} (home: {settings.home})", flush=True)
    try:
        server.run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        _remove_server_info(settings)
        platform.close()
        sock.close()
        print("openmaker server stopped", file=sys.stderr, flush=True)
