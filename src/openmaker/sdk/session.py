"""``openmaker.Session``: boto3 clients bound to an openmaker server, and storage helpers.

The server is the one named by ``OPENMAKER_URL`` (or ``AWS_ENDPOINT_URL``); failing that,
the one running on this home (``<home>/server.json``); failing that, a server the session
starts in the background, saying where.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from openmaker.api.server import read_server_info
from openmaker.config import Settings, load_settings
from openmaker.storage.uri import S3Uri

SERVER_START_TIMEOUT = 60.0
DUMMY_CREDENTIALS = ("openmaker", "openmaker")  # any key works when the server has no keys


@dataclass(frozen=True)
class StorageEntry:
    """One line of a listing: an object, or (``is_prefix``) a common prefix."""

    uri: str
    size: int = 0
    last_modified: datetime | None = None
    etag: str | None = None
    is_prefix: bool = False


class ServerStartError(RuntimeError):
    """A background server could not be started; the message includes its log's tail."""


def start_background_server(settings: Settings, port: int | None = None) -> str:
    """Start ``openmaker server`` detached from this process; returns its URL."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "server.log"
    for candidate in dict.fromkeys([settings.port if port is None else port, 0]):
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "openmaker", "server", "--home", str(settings.home),
                 "--host", settings.host, "--port", str(candidate)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            info = read_server_info(settings.home)
            if info is not None and info.get("pid") == process.pid:
                return info["url"]
            if process.poll() is not None:
                break
            time.sleep(0.05)
        else:
            process.kill()
            raise ServerStartError(f"openmaker server did not start within "
                                   f"{SERVER_START_TIMEOUT:.0f} s; see {log_path}")
    tail = log_path.read_text(errors="replace")[-2000:]
    raise ServerStartError(f"openmaker server failed to start; {log_path} ends with:\n{tail}")


def find_or_start_server(settings: Settings) -> tuple[str, bool]:
    """The URL of the server on this home, starting one if none runs; True if started.
    A lock file makes concurrent callers share one server rather than start several."""
    import fcntl

    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / ".server-start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = read_server_info(settings.home)
        if info is not None:
            return info["url"], False
        return start_background_server(settings), True


class Session:
    """A connection to an openmaker server.

    >>> session = openmaker.Session()
    >>> session.upload("data/", "s3://my-bucket/data/")
    >>> session.sagemaker.list_training_jobs()
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        home: str | os.PathLike | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        start_server: bool = True,
    ) -> None:
        import boto3

        self.settings = load_settings(home)
        self.region = region or self.settings.region
        self.url = url or os.environ.get("OPENMAKER_URL") or os.environ.get("AWS_ENDPOINT_URL")
        self.started_server = False
        if not self.url:
            info = read_server_info(self.settings.home)
            if info is not None:
                self.url = info["url"]
            elif start_server:
                self.url, self.started_server = find_or_start_server(self.settings)
                if self.started_server:
                    print(f"openmaker: started a server at {self.url} (home "
                          f"{self.settings.home}; stop it with `kill` on the pid in "
                          "server.json)", file=sys.stderr)
            else:
                raise ServerStartError(
                    "no openmaker server: set OPENMAKER_URL, or run `openmaker server`"
                )
        self.url = self.url.rstrip("/")
        key_id, secret = access_key_id, secret_access_key
        if not key_id and self.settings.access_keys:
            key_id, secret = next(iter(self.settings.access_keys.items()))
        self._boto = boto3.session.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=self.region
        )
        if self._boto.get_credentials() is None:
            self._boto = boto3.session.Session(
                aws_access_key_id=DUMMY_CREDENTIALS[0],
                aws_secret_access_key=DUMMY_CREDENTIALS[1], region_name=self.region,
            )
        self._clients: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"Session(url={self.url!r}, region={self.region!r})"

    # -- clients --------------------------------------------------------------------------
    def client(self, service: str):
        """A boto3 client for ``service`` bound to the server (cached per service)."""
        if service not in self._clients:
            from botocore.config import Config

            config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
            self._clients[service] = self._boto.client(
                service, endpoint_url=self.url, config=config
            )
        return self._clients[service]

    @property
    def s3(self):
        return self.client("s3")

    @property
    def sagemaker(self):
        return self.client("sagemaker")

    @property
    def sts(self):
        return self.client("sts")

    @property
    def account_id(self) -> str:
        return self.sts.get_caller_identity()["Account"]

    # -- admin operations -----------------------------------------------------------------
    def interrupt_training_job(self, job_name: str) -> None:
        """Reclaim a running managed-spot training job's instances, as EC2 does when it
        takes spot capacity back; the job resumes from its checkpoints."""
        from urllib.parse import quote

        self._admin(f"/_openmaker/training-jobs/{quote(job_name, safe='')}/spot-interruption",
                    "InterruptTrainingJob")

    def _admin(self, path: str, operation: str) -> dict:
        """POST one of the server's admin operations (``api/admin.py``), SigV4-signed for the
        service ``openmaker``; its errors raise botocore's ``ClientError`` like any call."""
        import json
        import urllib.error
        import urllib.request

        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import ClientError

        request = AWSRequest("POST", f"{self.url}{path}", data=b"",
                             headers={"content-type": "application/json"})
        SigV4Auth(self._boto.get_credentials(), "openmaker", self.region).add_auth(request)
        prepared = request.prepare()
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    prepared.url, data=b"", headers=dict(prepared.headers), method="POST"),
                    timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())
            except ValueError:
                error = {"__type": f"HTTP{exc.code}", "message": str(exc)}
            raise ClientError({"Error": {"Code": error.get("__type", f"HTTP{exc.code}"),
                                         "Message": error.get("message", "")},
                               "ResponseMetadata": {"HTTPStatusCode": exc.code}},
                              operation) from None

    # -- storage --------------------------------------------------------------------------
    def make_bucket(self, bucket: str, exist_ok: bool = True) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if not (exist_ok and exc.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"):
                raise

    def upload(self, local_path: str | os.PathLike, uri: str) -> list[str]:
        """Upload a file, or a directory recursively (``uri`` is then its prefix).
        Large files go up in parallel multipart uploads. Returns the URIs written."""
        source = Path(local_path)
        target = S3Uri.parse(uri)
        if source.is_dir():
            written = []
            prefix = target.key if not target.key or target.key.endswith("/") else target.key + "/"
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                key = prefix + path.relative_to(source).as_posix()
                self.s3.upload_file(str(path), target.bucket, key)
                written.append(str(S3Uri(target.bucket, key)))
            return written
        if not source.is_file():
            raise FileNotFoundError(f"no such file or directory: {source}")
        key = target.key
        if not key or key.endswith("/"):
            key += source.name
        self.s3.upload_file(str(source), target.bucket, key)
        return [str(S3Uri(target.bucket, key))]

    def download(self, uri: str, local_path: str | os.PathLike,
                 recursive: bool = False) -> list[Path]:
        """Download an object (to a file, or into a directory), or with ``recursive`` every
        object under a prefix, keeping the key layout. Returns the files written."""
        source = S3Uri.parse(uri)
        target = Path(local_path)
        if not recursive:
            if target.is_dir() or str(local_path).endswith(os.sep):
                target = target / Path(source.key).name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(source.bucket, source.key, str(target))
            return [target]
        written = []
        prefix = source.key if not source.key or source.key.endswith("/") else source.key + "/"
        for entry in self.list(str(S3Uri(source.bucket, prefix)), recursive=True):
            key = S3Uri.parse(entry.uri).key
            relative = key[len(prefix):]
            if not relative or relative.endswith("/"):
                continue  # folder markers hold no data
            path = target.joinpath(*relative.split("/"))
            if not path.resolve().is_relative_to(target.resolve()):
                raise ValueError(f"refusing to write {key!r} outside {target}")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(source.bucket, key, str(path))
            written.append(path)
        return written

    def list(self, uri: str = "s3://", recursive: bool = False) -> list[StorageEntry]:
        """Buckets (for ``s3://``), or the objects under a prefix; without ``recursive``,
        deeper keys are rolled up into their next ``/`` prefix, as ``aws s3 ls`` shows."""
        if uri.rstrip("/") in ("s3:", "s3:/"):
            return [StorageEntry(uri=f"s3://{b['Name']}/", last_modified=b["CreationDate"],
                                 is_prefix=True)
                    for b in self.s3.list_buckets()["Buckets"]]
        location = S3Uri.parse(uri)
        arguments = {"Bucket": location.bucket, "Prefix": location.key}
        if not recursive:
            arguments["Delimiter"] = "/"
        entries = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(**arguments):
            entries.extend(StorageEntry(uri=f"s3://{location.bucket}/{p['Prefix']}",
                                        is_prefix=True)
                           for p in page.get("CommonPrefixes", []))
            entries.extend(StorageEntry(uri=f"s3://{location.bucket}/{o['Key']}", size=o["Size"],
                                        last_modified=o["LastModified"], etag=o["ETag"])
                           for o in page.get("Contents", []))
        return sorted(entries, key=lambda e: e.uri)

    def remove(self, uri: str, recursive: bool = False) -> list[str]:
        """Delete an object, or with ``recursive`` every object under a prefix, taken as a
        folder as ``download`` does: ``s3://b/data`` removes ``data/...``, not ``database.csv``."""
        location = S3Uri.parse(uri)
        if not recursive:
            self.s3.delete_object(Bucket=location.bucket, Key=location.key)
            return [uri]
        prefix = location.key if location.is_prefix else location.key + "/"
        listing = self.list(str(S3Uri(location.bucket, prefix)), recursive=True)
        keys = [S3Uri.parse(e.uri).key for e in listing]
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            self.s3.delete_objects(Bucket=location.bucket,
                                   Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        return [str(S3Uri(location.bucket, k)) for k in keys]
