"""``python -m openmaker.algorithms <name>``: run one training instance of a built-in
algorithm under the SageMaker container contract.

The environment is the instance's (``SAGEMAKER_BASE_DIR``, ``SM_INPUT_CONFIG_DIR``,
``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``MASTER_ADDR``/``MASTER_PORT`` for several
hosts). On failure the reason goes to ``<opt/ml>/output/failure`` -- ``ClientError: ...``
when the job's data or configuration is at fault, ``AlgorithmError: ...`` otherwise -- and
the exit status is 2 (client) or 1 (algorithm).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

MAX_FAILURE = 1024  # what FailureReason keeps


def _write_failure(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text[:MAX_FAILURE])
        os.replace(temporary, path)
    except OSError as error:
        print(f"could not write {path}: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from openmaker.algorithms import (
        AlgorithmError,
        ClientError,
        TrainingEnvironment,
        algorithm_names,
        find_algorithm,
    )

    argv = sys.argv[1:] if argv is None else argv
    try:
        env = TrainingEnvironment.from_environ()
    except ClientError as error:
        root = Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
        _write_failure(root / "output" / "failure", f"ClientError: {error}")
        print(f"ClientError: {error}", file=sys.stderr)
        return 2
    if len(argv) != 1 or find_algorithm(argv[0]) is None:
        message = (f"AlgorithmError: usage: python -m openmaker.algorithms <name>, with a name "
                   f"among {', '.join(algorithm_names())}; got {' '.join(argv) or 'none'}")
        _write_failure(env.failure_file, message)
        print(message, file=sys.stderr)
        return 1
    algorithm = find_algorithm(argv[0])
    assert algorithm is not None
    try:
        algorithm.train(env)
    except ClientError as error:
        message = f"ClientError: {error}"
        _write_failure(env.failure_file, message)
        print(message, file=sys.stderr, flush=True)
        return 2
    except Exception as error:  # noqa: BLE001 -- any other failure is the algorithm's
        traceback.print_exc()
        detail = str(error) if isinstance(error, AlgorithmError) else \
            f"{type(error).__name__}: {error}"
        message = f"AlgorithmError: {detail}"
        _write_failure(env.failure_file, message)
        print(message, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything the instance produces is on disk, so leave without the interpreter's
    # teardown: it costs a tenth of a second with xgboost, pandas and scikit-learn loaded,
    # and after a failed distributed run the collective's native threads can crash it.
    os._exit(code)
