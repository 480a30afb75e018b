"""``openmaker tuning``: hyperparameter tuning jobs on the server. Only argparse and the
standard library are imported here; boto3 comes in with the session."""

from __future__ import annotations

import argparse
import json
import sys

from openmaker.cli.jobs import JOB_STATUSES, add_job_actions, job_action, read_request

TUNING_STATUSES = ("Completed", "InProgress", "Failed", "Stopped", "Stopping")
SORT_KEYS = ("FinalObjectiveMetricValue", "Name", "CreationTime", "Status")


def add_tuning_parser(commands, server_options) -> None:
    """The ``tuning`` command and its actions; ``server_options(parser)`` adds --url/--home."""
    tuning = commands.add_parser(
        "tuning", help="create, list, describe and stop hyperparameter tuning jobs",
        description="Hyperparameter tuning jobs on the server.")
    server_options(tuning)
    actions = tuning.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create", help="CreateHyperParameterTuningJob from a JSON request",
        description="Send CreateHyperParameterTuningJob with the request in --cli-input-json "
                    "(the aws CLI's form: the parameters of create-hyper-parameter-tuning-job "
                    "as one JSON object).")
    create.add_argument("--cli-input-json", required=True, metavar="JSON",
                        help="the request: file://PATH, a path, - for stdin, or the JSON "
                             "text itself")
    create.add_argument("--name", help="the HyperParameterTuningJobName (overrides the "
                                       "request's)")
    create.add_argument("--wait", action="store_true",
                        help="block until the tuning job ends, then print its best job")

    add_job_actions(actions, "HyperParameterTuningJob", "tuning job", TUNING_STATUSES)

    jobs = actions.add_parser(
        "jobs", help="the tuning job's training jobs: name, status, objective, "
                     "hyperparameters",
        description="ListTrainingJobsForHyperParameterTuningJob, every page, as a table.")
    jobs.add_argument("job")
    jobs.add_argument("--status", choices=JOB_STATUSES,
                      help="only training jobs in this status")
    jobs.add_argument("--sort-by", choices=SORT_KEYS, help="the server's order (default: "
                                                           "CreationTime)")
    jobs.add_argument("--sort-order", choices=("Ascending", "Descending"))
    jobs.add_argument("--page-size", type=int, help="jobs per request (default: the server's)")

    best = actions.add_parser(
        "best", help="the best training job's name",
        description="Print the best training job's name on stdout and its objective value "
                    "and hyperparameters on stderr (so the name can be captured), or with "
                    "--json its BestTrainingJob summary.")
    best.add_argument("job")
    best.add_argument("--json", action="store_true", help="print BestTrainingJob as JSON")


def tuning_action(session, args: argparse.Namespace) -> int:
    client = session.sagemaker
    if args.action == "create":
        return _create(session, args)
    if args.action == "jobs":
        return _jobs(client, args)
    if args.action == "best":
        return _best(client, args)
    done = job_action(client, "HyperParameterTuningJob", args)
    assert done is not None, args.action
    return done


def _create(session, args: argparse.Namespace) -> int:
    from openmaker.sdk.tuner import wait_for_tuning_job

    request = read_request(args.cli_input_json)
    if args.name:
        request["HyperParameterTuningJobName"] = args.name
    name = request.get("HyperParameterTuningJobName")
    if not name:
        raise ValueError("the request names no HyperParameterTuningJobName (add --name)")
    response = session.sagemaker.create_hyper_parameter_tuning_job(**request)
    print(f"created: {name} ({response['HyperParameterTuningJobArn']})")
    if not args.wait:
        return 0
    sys.stdout.flush()
    job = wait_for_tuning_job(session, name)
    status = job["HyperParameterTuningJobStatus"]
    line = f"openmaker: {name} ended {status}"
    if job.get("FailureReason"):
        line += f": {job['FailureReason']}"
    print(line, file=sys.stderr)
    if job.get("BestTrainingJob"):
        _print_best(job["BestTrainingJob"])
    return 0 if status == "Completed" else 1


def _objective_cell(summary: dict) -> str:
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
    return "-" if not metric else f"{metric['Value']:.6g}"


def _hyperparameter_cell(summary: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(summary.get("TunedHyperParameters",
                                                              {}).items()))


def _jobs(client, args: argparse.Namespace) -> int:
    arguments: dict = {"HyperParameterTuningJobName": args.job}
    for key, value in (("StatusEquals", args.status), ("SortBy", args.sort_by),
                       ("SortOrder", args.sort_order)):
        if value:
            arguments[key] = value
    if args.page_size:
        arguments["PaginationConfig"] = {"PageSize": args.page_size}
    paginator = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    rows = [(job["TrainingJobName"], job["TrainingJobStatus"], _objective_cell(job),
             _hyperparameter_cell(job))
            for page in paginator.paginate(**arguments) for job in page["TrainingJobSummaries"]]
    width = max([len(name) for name, *_ in rows] + [4])
    print(f"{'NAME':<{width}}  {'STATUS':<10}  {'OBJECTIVE':>12}  HYPERPARAMETERS")
    for name, status, objective, hyperparameters in rows:
        print(f"{name:<{width}}  {status:<10}  {objective:>12}  {hyperparameters}")
    return 0


def _print_best(best: dict) -> None:
    """The name on stdout; the objective and hyperparameters on stderr."""
    print(best["TrainingJobName"])
    sys.stdout.flush()
    metric = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    if metric:
        print(f"openmaker: {metric.get('MetricName')} = {metric.get('Value')}",
              file=sys.stderr)
    print(f"openmaker: hyperparameters {_hyperparameter_cell(best) or '(none)'}",
          file=sys.stderr)


def _best(client, args: argparse.Namespace) -> int:
    job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=args.job)
    best = job.get("BestTrainingJob")
    if not best:
        print(f"openmaker: tuning job {args.job} has no best training job yet (status "
              f"{job['HyperParameterTuningJobStatus']}; no training job has reported its "
              "objective metric)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(best, indent=2, default=str))
    else:
        _print_best(best)
    return 0
