"""The ``openmaker`` command. Heavy modules are imported inside each command so that
``openmaker --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openmaker.cli.jobs import add_job_actions, job_action, print_listing
from openmaker.cli.processing import add_processing_parser, processing_action
from openmaker.cli.transform import add_transform_parser, transform_action
from openmaker.cli.tuning import add_tuning_parser, tuning_action

EPILOG = """examples:
  openmaker server --port 7777              serve every API on one port (foreground)
  openmaker storage cp data/ s3://bucket/data/ --recursive
  openmaker storage ls s3://bucket/data/
  openmaker training list
  openmaker training logs my-job --follow
  openmaker tuning create --cli-input-json file://tuning.json --wait
  openmaker tuning jobs my-tuning-job --sort-by FinalObjectiveMetricValue
  openmaker processing logs my-processing-job --follow
  openmaker endpoints list
  openmaker invoke my-endpoint --body "5.1,3.5,1.4,0.2" --content-type text/csv
  openmaker status
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openmaker",
        description="A local-first ML platform that speaks the SageMaker and AWS APIs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    server = commands.add_parser("server", help="run the server in the foreground",
                                 description="Serve every API on one port until Ctrl-C.")
    server.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    server.add_argument("--port", type=int, help="port to listen on (default 7777; 0 = any)")
    server.add_argument("--home", help="home directory (default $OPENMAKER_HOME or "
                                       "~/.openmaker)")
    server.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug"])

    storage = commands.add_parser("storage", help="copy, list and remove objects",
                                  description="Objects in the server's object store.")
    storage.add_argument("--url", help="server URL (default $OPENMAKER_URL, else the "
                                       "server on this home, else a new one)")
    storage.add_argument("--home", help="home directory")
    actions = storage.add_subparsers(dest="action", metavar="ACTION", required=True)
    cp = actions.add_parser("cp", help="copy local <-> s3:// (or s3:// -> s3://)")
    cp.add_argument("source")
    cp.add_argument("destination")
    cp.add_argument("-r", "--recursive", action="store_true", help="copy a directory/prefix")
    ls = actions.add_parser("ls", help="list buckets, or objects under an s3:// prefix")
    ls.add_argument("uri", nargs="?", default="s3://")
    ls.add_argument("-r", "--recursive", action="store_true", help="list every key below")
    rm = actions.add_parser("rm", help="remove an object, or a prefix with --recursive")
    rm.add_argument("uri")
    rm.add_argument("-r", "--recursive", action="store_true")
    mb = actions.add_parser("mb", help="make a bucket")
    mb.add_argument("uri")
    rb = actions.add_parser("rb", help="remove an empty bucket")
    rb.add_argument("uri")

    training = commands.add_parser("training", help="list, describe, tail and stop "
                                   "training jobs", description="Training jobs on the server.")
    training.add_argument("--url", help="server URL (default $OPENMAKER_URL, else the "
                                        "server on this home, else a new one)")
    training.add_argument("--home", help="home directory")
    jobs = training.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_job_actions(jobs, "TrainingJob", "training job")
    logs = jobs.add_parser("logs", help="the job's log lines, every instance's stream")
    logs.add_argument("job")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing new lines until the job ends")
    interrupt = jobs.add_parser(
        "interrupt", help="reclaim a running spot job's instances (it resumes from its "
                          "checkpoints), as EC2 does when it takes spot capacity back")
    interrupt.add_argument("job")

    add_tuning_parser(commands, _server_options)
    add_processing_parser(commands, _server_options)
    add_transform_parser(commands, _server_options)

    endpoints = commands.add_parser("endpoints", help="list, describe and delete endpoints",
                                    description="Endpoints on the server.")
    endpoints.add_argument("--url", help="server URL (default $OPENMAKER_URL, else the "
                                         "server on this home, else a new one)")
    endpoints.add_argument("--home", help="home directory")
    endpoint_actions = endpoints.add_subparsers(dest="action", metavar="ACTION",
                                                required=True)
    endpoint_list = endpoint_actions.add_parser("list", help="every endpoint: name, status, "
                                                "created")
    endpoint_list.add_argument("--page-size", type=int, help="endpoints per ListEndpoints "
                                                             "request (default: the server's)")
    endpoint_describe = endpoint_actions.add_parser(
        "describe", help="DescribeEndpoint as JSON, then each variant's last hour",
        description="Print DescribeEndpoint as JSON on stdout, then (on stderr, so the JSON "
                    "stays parseable) a table of each variant's last hour from CloudWatch: "
                    "invocations, 4xx and 5xx errors, model latency p50/p99 and average "
                    "CPU and memory utilization.")
    endpoint_describe.add_argument("endpoint")
    endpoint_describe.add_argument("--json", action="store_true",
                                   help="print the JSON only (no metrics table)")
    endpoint_delete = endpoint_actions.add_parser("delete", help="delete an endpoint (its "
                                                  "config and model are kept)")
    endpoint_delete.add_argument("endpoint")

    invoke = commands.add_parser(
        "invoke", help="send one request to an endpoint and print the answer",
        description="InvokeEndpoint: print the response body to stdout and the variant that "
                    "served it to stderr.")
    invoke.add_argument("endpoint")
    invoke.add_argument("--body", required=True,
                        help="the request body, or @FILE to read it from a file (@- for stdin)")
    invoke.add_argument("--content-type", default="text/csv",
                        help="the body's MIME type (default text/csv)")
    invoke.add_argument("--accept", help="the MIME type to answer in (default: the model's)")
    invoke.add_argument("--target-variant", help="the production variant to send it to")
    invoke.add_argument("--custom-attributes", help="opaque value passed to the model")
    invoke.add_argument("--url", help="server URL (default $OPENMAKER_URL, else the server on "
                                      "this home, else a new one)")
    invoke.add_argument("--home", help="home directory")

    status = commands.add_parser("status", help="what is running, where the home is")
    status.add_argument("--home", help="home directory")
    status.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL (default $OPENMAKER_URL, else the "
                                      "server on this home, else a new one)")
    parser.add_argument("--home", help="home directory")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from openmaker import __version__

        print(f"openmaker {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from openmaker.config import ConfigError

    try:
        return {"server": run_server, "storage": run_storage, "training": run_training,
                "tuning": run_tuning, "processing": run_processing,
                "transform": lambda a: _with_session(a, transform_action),
                "endpoints": run_endpoints, "invoke": run_invoke,
                "status": run_status}[
            args.command](args)
    except ConfigError as exc:
        print(f"openmaker: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_server(args: argparse.Namespace) -> int:
    from openmaker.api.server import serve
    from openmaker.config import load_settings

    settings = load_settings(args.home, host=args.host, port=args.port)
    serve(settings, log_level=args.log_level)
    return 0


def run_storage(args: argparse.Namespace) -> int:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    from openmaker.sdk import ServerStartError, Session

    try:
        session = Session(args.url, home=args.home)
        return _storage_action(session, args)
    except ClientError as exc:
        print(_client_error_line(exc), file=sys.stderr)
    except Boto3Error as exc:
        # upload_file/download_file wrap the server's error; report the AWS code it carried
        cause = exc.__cause__ or exc.__context__
        line = _client_error_line(cause) if isinstance(cause, ClientError) else None
        print(line or f"openmaker: {exc}", file=sys.stderr)
    except (BotoCoreError, OSError, ValueError, ServerStartError) as exc:
        print(f"openmaker: {exc}", file=sys.stderr)
    return 1


def _client_error_line(exc) -> str:
    error = exc.response.get("Error", {})
    return f"openmaker: {error.get('Code')}: {error.get('Message')}"


def _storage_action(session, args: argparse.Namespace) -> int:
    from openmaker.storage.uri import S3Uri

    if args.action == "ls":
        for entry in session.list(args.uri, recursive=args.recursive):
            if entry.is_prefix:
                print(f"{'PRE':>30} {entry.uri}")
            else:
                when = entry.last_modified.strftime("%Y-%m-%d %H:%M:%S")
                print(f"{when} {entry.size:>10} {entry.uri}")
        return 0
    if args.action == "mb":
        session.make_bucket(S3Uri.parse(args.uri).bucket, exist_ok=False)
        print(f"make_bucket: {args.uri}")
        return 0
    if args.action == "rb":
        session.s3.delete_bucket(Bucket=S3Uri.parse(args.uri).bucket)
        print(f"remove_bucket: {args.uri}")
        return 0
    if args.action == "rm":
        for uri in session.remove(args.uri, recursive=args.recursive):
            print(f"delete: {uri}")
        return 0
    source_remote = args.source.startswith("s3://")
    target_remote = args.destination.startswith("s3://")
    if source_remote and target_remote:
        for source, target in _s3_copy_pairs(session, args):
            session.s3.copy({"Bucket": source.bucket, "Key": source.key},
                            target.bucket, target.key)
            print(f"copy: {source} to {target}")
    elif target_remote:
        if Path(args.source).is_dir() and not args.recursive:
            print(f"openmaker: {args.source} is a directory: add --recursive to upload it",
                  file=sys.stderr)
            return 2
        for uri in session.upload(args.source, args.destination):
            print(f"upload: {uri}")
    elif source_remote:
        for path in session.download(args.source, args.destination, recursive=args.recursive):
            print(f"download: {path}")
    else:
        print("openmaker: one of source and destination must be an s3:// URI", file=sys.stderr)
        return 2
    return 0


def _s3_copy_pairs(session, args: argparse.Namespace) -> list:
    """(source, target) S3Uris for an s3:// -> s3:// copy: one object (into a "folder" when
    the destination ends in ``/``), or with --recursive every object under the prefix."""
    from openmaker.storage.uri import S3Uri

    source, target = S3Uri.parse(args.source), S3Uri.parse(args.destination)
    if not args.recursive:
        if target.is_prefix:
            target = target.join(source.key.rsplit("/", 1)[-1])
        return [(source, target)]
    prefix = source.key if source.is_prefix else source.key + "/"
    pairs = []
    for entry in session.list(str(S3Uri(source.bucket, prefix)), recursive=True):
        key = S3Uri.parse(entry.uri).key
        pairs.append((S3Uri(source.bucket, key), target.join(key[len(prefix):])))
    return pairs


def run_training(args: argparse.Namespace) -> int:
    return _with_session(args, _training_action)


def run_tuning(args: argparse.Namespace) -> int:
    return _with_session(args, tuning_action)


def run_processing(args: argparse.Namespace) -> int:
    return _with_session(args, processing_action)


def _training_action(session, args: argparse.Namespace) -> int:
    from openmaker.sdk.estimator import follow_training_job

    done = job_action(session.sagemaker, "TrainingJob", args)
    if done is not None:
        return done
    if args.action == "logs":
        job = follow_training_job(session, args.job, follow=args.follow)
        if args.follow:
            print(f"openmaker: {args.job} ended {job['TrainingJobStatus']}", file=sys.stderr)
        return 0
    session.interrupt_training_job(args.job)
    print(f"interrupted: {args.job}")
    return 0


def run_endpoints(args: argparse.Namespace) -> int:
    return _with_session(args, _endpoints_action)


def run_invoke(args: argparse.Namespace) -> int:
    return _with_session(args, _invoke_action)


def _with_session(args: argparse.Namespace, action) -> int:
    """Run ``action(session, args)``; AWS and connection errors become one line on stderr
    and exit status 1."""
    from botocore.exceptions import BotoCoreError, ClientError

    from openmaker.sdk import ServerStartError, Session

    try:
        session = Session(args.url, home=args.home)
        return action(session, args)
    except ClientError as exc:
        print(_client_error_line(exc), file=sys.stderr)
    except (BotoCoreError, OSError, ValueError, ServerStartError) as exc:
        print(f"openmaker: {exc}", file=sys.stderr)
    return 1


def _endpoints_action(session, args: argparse.Namespace) -> int:
    client = session.sagemaker
    if args.action == "list":
        rows = [(endpoint["EndpointName"], endpoint["EndpointStatus"],
                 endpoint["CreationTime"].strftime("%Y-%m-%d %H:%M:%S"))
                for page in client.get_paginator("list_endpoints").paginate(
                    PaginationConfig={"PageSize": args.page_size} if args.page_size else {})
                for endpoint in page["Endpoints"]]
        print_listing(rows)
        return 0
    if args.action == "describe":
        endpoint = client.describe_endpoint(EndpointName=args.endpoint)
        endpoint.pop("ResponseMetadata", None)
        print(json.dumps(endpoint, indent=2, default=str))
        if not args.json:
            sys.stdout.flush()
            _print_variant_metrics(session, endpoint)
        return 0
    client.delete_endpoint(EndpointName=args.endpoint)
    print(f"deleted: {args.endpoint}")
    return 0


# (column, namespace, metric, statistic, scale) of the describe table; a percentile is read
# through ExtendedStatistics. ModelLatency is kept in microseconds, shown in milliseconds.
_VARIANT_COLUMNS = (
    ("INVOCATIONS", "AWS/SageMaker", "Invocations", "Sum", 1.0),
    ("4XX", "AWS/SageMaker", "Invocation4XXErrors", "Sum", 1.0),
    ("5XX", "AWS/SageMaker", "Invocation5XXErrors", "Sum", 1.0),
    ("P50_MS", "AWS/SageMaker", "ModelLatency", "p50", 1e-3),
    ("P99_MS", "AWS/SageMaker", "ModelLatency", "p99", 1e-3),
    ("CPU%", "/aws/sagemaker/Endpoints", "CPUUtilization", "Average", 1.0),
    ("MEM%", "/aws/sagemaker/Endpoints", "MemoryUtilization", "Average", 1.0),
)


def variant_metrics(cloudwatch, endpoint: str, variants: list[str], now) -> dict:
    """Per variant, each ``_VARIANT_COLUMNS`` column's value over the hour before ``now``
    (None without data), read with GetMetricStatistics: one request per metric (the
    percentiles of ModelLatency together). CloudWatch rounds the start down to the
    minute, so one 61-minute period holds the whole window in one datapoint."""
    from datetime import timedelta

    requests: dict[tuple[str, str], list[str]] = {}
    for _, namespace, metric, stat, _ in _VARIANT_COLUMNS:
        requests.setdefault((namespace, metric), []).append(stat)
    table: dict[str, dict[str, float | None]] = {}
    for variant in variants:
        dimensions = [{"Name": "EndpointName", "Value": endpoint},
                      {"Name": "VariantName", "Value": variant}]
        found: dict[tuple[str, str, str], float] = {}
        for (namespace, metric), stats in requests.items():
            percentiles = stats[0].startswith("p")  # a metric's stats are of one kind here
            response = cloudwatch.get_metric_statistics(
                Namespace=namespace, MetricName=metric, Dimensions=dimensions,
                StartTime=now - timedelta(hours=1), EndTime=now, Period=3660,
                **{"ExtendedStatistics" if percentiles else "Statistics": stats})
            for point in response["Datapoints"][:1]:
                for stat in stats:
                    found[namespace, metric, stat] = (
                        point["ExtendedStatistics"][stat] if percentiles else point[stat])
        table[variant] = {
            column: found[key] * scale if (key := (namespace, metric, stat)) in found
            else None for column, namespace, metric, stat, scale in _VARIANT_COLUMNS}
    return table


def _print_variant_metrics(session, endpoint: dict) -> None:
    """The describe table, on stderr; a CloudWatch failure is one line, not a failure."""
    from datetime import UTC, datetime

    from botocore.exceptions import BotoCoreError, ClientError

    variants = [variant["VariantName"] for key in ("ProductionVariants",
                                                   "ShadowProductionVariants")
                for variant in endpoint.get(key) or []]
    try:
        table = variant_metrics(session.client("cloudwatch"), endpoint["EndpointName"],
                                variants, datetime.now(UTC))
    except (ClientError, BotoCoreError) as exc:
        print(f"openmaker: no metrics from CloudWatch: {exc}", file=sys.stderr)
        return
    width = max([len(name) for name in variants] + [len("VARIANT")])
    headers = [column for column, *_ in _VARIANT_COLUMNS]
    print("\nlast hour:", file=sys.stderr)
    print(f"{'VARIANT':<{width}}  " + "  ".join(f"{h:>11}" for h in headers),
          file=sys.stderr)
    for variant, values in table.items():
        cells = [_metric_cell(values[h], integer=h in ("INVOCATIONS", "4XX", "5XX"))
                 for h in headers]
        print(f"{variant:<{width}}  " + "  ".join(f"{c:>11}" for c in cells),
              file=sys.stderr)


def _metric_cell(value: float | None, *, integer: bool) -> str:
    if value is None:  # no datapoint: no invocation, or no usage sample
        return "0" if integer else "-"
    return f"{value:.0f}" if integer else f"{value:.2f}"


def _request_body(value: str) -> bytes:
    """``--body``: the text itself, or ``@FILE``'s bytes (``@-``: stdin)."""
    if not value.startswith("@"):
        return value.encode()
    if value == "@-":
        return sys.stdin.buffer.read()
    return Path(value[1:]).read_bytes()


def _invoke_action(session, args: argparse.Namespace) -> int:
    request = {"EndpointName": args.endpoint, "Body": _request_body(args.body),
               "ContentType": args.content_type}
    for key, value in (("Accept", args.accept), ("TargetVariant", args.target_variant),
                       ("CustomAttributes", args.custom_attributes)):
        if value is not None:
            request[key] = value
    response = session.client("sagemaker-runtime").invoke_endpoint(**request)
    body = response["Body"].read()
    sys.stdout.buffer.write(body)
    if body and not body.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    print(f"openmaker: answered by variant {response.get('InvokedProductionVariant')} "
          f"({response.get('ContentType')})", file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from openmaker.api.server import read_server_info
    from openmaker.config import CONFIG_FILE_NAME, load_settings

    settings = load_settings(args.home)
    server = read_server_info(settings.home)
    config_file = settings.home / CONFIG_FILE_NAME
    status = {
        "home": str(settings.home),
        "config_file": str(config_file) if config_file.exists() else None,
        "storage": (str(settings.storage_dir) if settings.storage_backend == "local"
                    else f"s3 at {settings.s3_endpoint_url or 'AWS'}"),
        "database": settings.resolved_database_url,
        "auth": "SigV4 with configured keys" if settings.auth_enabled else "none (loopback only)",
        "server": ({"url": server["url"], "pid": server["pid"]} if server else None),
    }
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"home:      {status['home']}")
    print(f"config:    {status['config_file'] or '(none; defaults and OPENMAKER_* variables)'}")
    print(f"storage:   {status['storage']}")
    print(f"database:  {status['database']}")
    print(f"auth:      {status['auth']}")
    if server:
        print(f"server:    running at {server['url']} (pid {server['pid']})")
    else:
        print("server:    not running (start one with `openmaker server`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
