"""``openmaker transform``: batch transform jobs on the server. Only argparse and the
standard library are imported here; boto3 comes in with the session."""

from __future__ import annotations

import argparse
import sys

from openmaker.cli.jobs import add_job_actions, job_action, read_request


def add_transform_parser(commands, server_options) -> None:
    """The ``transform`` command and its actions; ``server_options(parser)`` adds
    --url/--home."""
    transform = commands.add_parser(
        "transform", help="create, list, describe and stop batch transform jobs",
        description="Batch transform jobs on the server.")
    server_options(transform)
    actions = transform.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create", help="CreateTransformJob from a JSON request",
        description="Send CreateTransformJob with the request in --cli-input-json (the aws "
                    "CLI's form: the parameters of create-transform-job as one JSON object).")
    create.add_argument("--cli-input-json", required=True, metavar="JSON",
                        help="the request: file://PATH, a path, - for stdin, or the JSON "
                             "text itself")
    create.add_argument("--name", help="the TransformJobName (overrides the request's)")
    create.add_argument("--wait", action="store_true",
                        help="block until the job ends; exit 1 unless it Completed")

    add_job_actions(actions, "TransformJob", "transform job")


def transform_action(session, args: argparse.Namespace) -> int:
    if args.action == "create":
        return _create(session, args)
    done = job_action(session.sagemaker, "TransformJob", args)
    assert done is not None, args.action
    return done


def _create(session, args: argparse.Namespace) -> int:
    import io

    from openmaker.sdk.transformer import TransformJobFailedError, wait_for_transform_job

    request = read_request(args.cli_input_json)
    if args.name:
        request["TransformJobName"] = args.name
    name = request.get("TransformJobName")
    if not name:
        raise ValueError("the request names no TransformJobName (add --name)")
    response = session.sagemaker.create_transform_job(**request)
    print(f"created: {name} ({response['TransformJobArn']})")
    if not args.wait:
        return 0
    sys.stdout.flush()
    try:
        job = wait_for_transform_job(session, name, out=io.StringIO())
    except TransformJobFailedError as error:
        print(f"openmaker: {name} ended Failed: {error.failure_reason}", file=sys.stderr)
        return 1
    status = job["TransformJobStatus"]
    print(f"openmaker: {name} ended {status}; output in "
          f"{job['TransformOutput']['S3OutputPath']}", file=sys.stderr)
    return 0 if status == "Completed" else 1


