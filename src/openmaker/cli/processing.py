"""``openmaker processing``: processing jobs on the server. Only argparse and the standard
library are imported here; boto3 comes in with the session."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")


def add_processing_parser(commands, server_options) -> None:
    """The ``processing`` command and its actions; ``server_options(parser)`` adds
    --url/--home."""
    processing = commands.add_parser(
        "processing", help="list, describe, stop and read the logs of processing jobs",
        description="Processing jobs on the server.")
    server_options(processing)
    actions = processing.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every processing job: name, status, created")
    listing.add_argument("--status", choices=STATUSES, help="only jobs in this status")
    listing.add_argument("--name-contains", help="only jobs whose name contains this")
    listing.add_argument("--page-size", type=int, help="jobs per ListProcessingJobs request "
                                                       "(default: the server's)")

    describe = actions.add_parser("describe", help="DescribeProcessingJob as JSON")
    describe.add_argument("job")

    stop = actions.add_parser("stop", help="stop a running processing job")
    stop.add_argument("job")

    logs = actions.add_parser(
        "logs", help="print the job's log lines (every instance, prefixed by host when the "
                     "job has several)")
    logs.add_argument("job")
    logs.add_argument("--follow", "-f", action="store_true",
                      help="keep printing new lines until the job ends")


def processing_action(session, args: argparse.Namespace) -> int:
    client = session.sagemaker
    if args.action == "list":
        return _list(client, args)
    if args.action == "describe":
        job = client.describe_processing_job(ProcessingJobName=args.job)
        job.pop("ResponseMetadata", None)
        print(json.dumps(job, indent=2, default=str))
        return 0
    if args.action == "logs":
        return _logs(session, args)
    client.stop_processing_job(ProcessingJobName=args.job)
    print(f"stopping: {args.job}")
    return 0


def _list(client, args: argparse.Namespace) -> int:
    from openmaker.cli.main import _print_listing

    arguments: dict[str, Any] = {}
    if args.status:
        arguments["StatusEquals"] = args.status
    if args.name_contains:
        arguments["NameContains"] = args.name_contains
    if args.page_size:
        arguments["PaginationConfig"] = {"PageSize": args.page_size}
    rows = [(job["ProcessingJobName"], job["ProcessingJobStatus"],
             job["CreationTime"].strftime("%Y-%m-%d %H:%M:%S"))
            for page in client.get_paginator("list_processing_jobs").paginate(**arguments)
            for job in page["ProcessingJobSummaries"]]
    _print_listing(rows)
    return 0


def _logs(session, args: argparse.Namespace) -> int:
    from openmaker.sdk.processing import follow_processing_job

    job = follow_processing_job(session, args.job, follow=args.follow)
    status = job["ProcessingJobStatus"]
    if args.follow:
        line = f"openmaker: {args.job} ended {status}"
        if job.get("FailureReason"):
            line += f": {job['FailureReason']}"
        print(line, file=sys.stderr)
        return 0 if status == "Completed" else 1
    return 0
