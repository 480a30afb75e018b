"""What the job commands (``training``, ``tuning``, ``transform``, ``processing``) share:
their ``list`` / ``describe`` / ``stop`` actions, the listing they print, and reading a
``--cli-input-json`` request. Only argparse and the standard library are imported here.

A job kind is named by its API noun (``"TransformJob"``, ``"HyperParameterTuningJob"``):
the operations (``list_transform_jobs``, ``describe_transform_job``), the members
(``TransformJobName``, ``TransformJobStatus``) and the summaries key follow from it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

JOB_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")


def _snake(noun: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", noun).lower()


def add_job_actions(actions, noun: str, what: str,
                    statuses: tuple[str, ...] = JOB_STATUSES) -> None:
    """The ``list`` (``--status``, ``--name-contains``, ``--page-size``), ``describe JOB``
    and ``stop JOB`` actions for jobs of ``noun``; ``what`` names them in the help."""
    listing = actions.add_parser("list", help=f"every {what}: name, status, created")
    listing.add_argument("--status", choices=statuses, help="only jobs in this status")
    listing.add_argument("--name-contains", help="only jobs whose name contains this")
    listing.add_argument("--page-size", type=int,
                         help=f"jobs per List{noun}s request (default: the server's)")
    describe = actions.add_parser("describe", help=f"Describe{noun} as JSON")
    describe.add_argument("job")
    stop = actions.add_parser("stop", help=f"stop a running {what}")
    stop.add_argument("job")


def print_listing(rows: list[tuple[str, str, str]]) -> None:
    """NAME, STATUS and CREATED columns, as ``list`` prints them."""
    width = max([len(name) for name, _, _ in rows] + [4])
    print(f"{'NAME':<{width}}  {'STATUS':<10}  CREATED")
    for name, status, created in rows:
        print(f"{name:<{width}}  {status:<10}  {created}")


def job_action(client, noun: str, args: argparse.Namespace) -> int | None:
    """Run ``args.action`` when it is ``list``, ``describe`` or ``stop`` (exit status 0);
    None for any other action, which the command handles itself."""
    if args.action == "list":
        arguments: dict = {}
        if getattr(args, "status", None):
            arguments["StatusEquals"] = args.status
        if getattr(args, "name_contains", None):
            arguments["NameContains"] = args.name_contains
        if args.page_size:
            arguments["PaginationConfig"] = {"PageSize": args.page_size}
        pages = client.get_paginator(f"list_{_snake(noun)}s").paginate(**arguments)
        print_listing([(job[f"{noun}Name"], job[f"{noun}Status"],
                        job["CreationTime"].strftime("%Y-%m-%d %H:%M:%S"))
                       for page in pages for job in page[f"{noun}Summaries"]])
        return 0
    if args.action == "describe":
        job = getattr(client, f"describe_{_snake(noun)}")(**{f"{noun}Name": args.job})
        job.pop("ResponseMetadata", None)
        print(json.dumps(job, indent=2, default=str))
        return 0
    if args.action == "stop":
        getattr(client, f"stop_{_snake(noun)}")(**{f"{noun}Name": args.job})
        print(f"stopping: {args.job}")
        return 0
    return None


def read_request(value: str) -> dict:
    """``--cli-input-json``: ``file://PATH``, ``-`` (stdin), a path, or JSON text."""
    if value.startswith("file://"):
        text = Path(value[len("file://"):]).read_text()
    elif value == "-":
        text = sys.stdin.read()
    elif value.lstrip().startswith("{"):
        text = value
    else:
        text = Path(value).read_text()
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--cli-input-json is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ValueError("--cli-input-json must be a JSON object of the request's parameters")
    return request
