"""``openmaker processing``: processing jobs on the server. Only argparse and the standard
library are imported here; boto3 comes in with the session."""

from __future__ import annotations

import argparse
import sys

from openmaker.cli.jobs import add_job_actions, job_action


def add_processing_parser(commands, server_options) -> None:
    """The ``processing`` command and its actions; ``server_options(parser)`` adds
    --url/--home."""
    processing = commands.add_parser(
        "processing", help="list, describe, stop and read the logs of processing jobs",
        description="Processing jobs on the server.")
    server_options(processing)
    actions = processing.add_subparsers(dest="action", metavar="ACTION", required=True)

    add_job_actions(actions, "ProcessingJob", "processing job")

    logs = actions.add_parser(
        "logs", help="print the job's log lines (every instance, prefixed by host when the "
                     "job has several)")
    logs.add_argument("job")
    logs.add_argument("--follow", "-f", action="store_true",
                      help="keep printing new lines until the job ends")


def processing_action(session, args: argparse.Namespace) -> int:
    if args.action == "logs":
        return _logs(session, args)
    done = job_action(session.sagemaker, "ProcessingJob", args)
    assert done is not None, args.action
    return done


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
