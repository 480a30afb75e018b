"""The interface every built-in algorithm implements, and the pieces they share.

An :class:`Algorithm` declares its hyperparameters (:class:`HyperparameterSpec`), its
channels (:class:`ChannelDefinition`) and its metrics (:class:`MetricDefinition`) with
SageMaker's names; the training service validates a CreateTrainingJob request against
them, and each instance runs ``python -m openmaker.algorithms <name>``, which builds a
:class:`TrainingEnvironment` from the instance's ``opt/ml`` tree and calls
:meth:`Algorithm.train`. Hosting calls :meth:`Algorithm.load` for a :class:`Predictor`.

Training failures are :class:`ClientError` (the data or configuration is at fault; the
failure file says ``ClientError: ...``) or anything else (``AlgorithmError: ...``).
Inference failures are :class:`InferenceError` subclasses carrying the HTTP status the
SageMaker containers answer with.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmaker.core.errors import ValidationException

# Keys the SageMaker SDK and tuning add to every job's hyperparameters; algorithms accept
# and ignore them (contract.SAGEMAKER_HYPERPARAMETERS plus the sagemaker_ prefix).
RESERVED_PREFIX = "sagemaker_"
TUNING_OBJECTIVE = "_tuning_objective_metric"
INPUT_MODES = ("File", "Pipe", "FastFile")


# -- errors ---------------------------------------------------------------------------------
class ClientError(Exception):
    """Training cannot proceed because of the job's data or configuration."""


class AlgorithmError(Exception):
    """Training failed for a reason that is not the caller's to fix."""


class InferenceError(Exception):
    """An inference request that cannot be answered; ``status`` is the HTTP status."""

    status = 400


class UnsupportedContentType(InferenceError):
    status = 415


class NotAcceptable(InferenceError):
    status = 406


class EmptyRequest(InferenceError):
    """The request has no records; SageMaker's XGBoost answers 204 No Content."""

    status = 204


# -- hyperparameters ------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A numeric range; ``None`` bounds are open to infinity."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None
                    and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        low = "-inf" if self.low is None else _number_text(self.low)
        high = "inf" if self.high is None else _number_text(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{low}, {high}{right}"


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


_TRUE = {"1", "true", "yes", "t", "y"}
_FALSE = {"0", "false", "no", "f", "n"}


def _unquote(raw: str) -> str:
    # The SDK's framework estimators JSON-encode values ('"binary:logistic"'); the toolkit
    # json.loads them, so a JSON string is taken for its content.
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: SageMaker's name, its kind, default, valid range or choices.

    ``kind`` is ``int``, ``float``, ``bool``, ``str`` (one of ``choices`` when given),
    ``list`` (comma-separated, each in ``choices`` when given) or ``text`` (free form,
    checked by ``check``). ``description`` says in words what a valid value is, for
    error messages; it is derived from the kind and range when left empty.
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False
    range: Interval | None = None
    choices: Sequence[str] | None = None
    aliases: Sequence[str] = ()
    check: Callable[[str], Any] | None = None
    description: str = ""

    def describe(self) -> str:
        if self.description:
            return self.description
        if self.kind == "int":
            text = "an integer"
        elif self.kind == "float":
            text = "a float"
        elif self.kind == "bool":
            return "a boolean (true/false or 1/0)"
        elif self.kind == "list":
            listed = f" of {', '.join(self.choices)}" if self.choices else ""
            return f"a comma-separated list{listed}"
        elif self.choices:
            return f"one of {', '.join(self.choices)}"
        else:
            return "a string"
        return f"{text} in {self.range}" if self.range else text

    def parse(self, raw: str) -> Any:
        """The value of ``raw`` (a string, as the API carries it); ValidationException when
        it is not valid."""
        text = _unquote(str(raw))
        field_name = f"HyperParameters.{self.name}"
        if self.kind in ("int", "float"):
            try:
                number = float(text)
                if not math.isfinite(number):
                    raise ValueError
                if self.kind == "int":
                    if not number.is_integer():
                        raise ValueError
                    value: Any = int(number)
                else:
                    value = number
            except ValueError:
                raise ValidationException(
                    f"{field_name}: {raw!r} is not valid; {self.name} must be {self.describe()}"
                ) from None
            if self.range is not None and value not in self.range:
                raise ValidationException(
                    f"{field_name}: {text} is out of range; {self.name} must be "
                    f"{self.describe()}")
            return value
        if self.kind == "bool":
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValidationException(
                f"{field_name}: {raw!r} is not valid; {self.name} must be {self.describe()}")
        if self.kind == "list":
            items = [item.strip() for item in text.strip("[]").split(",") if item.strip()]
            items = [_unquote(item) for item in items]
            if not items:
                raise ValidationException(
                    f"{field_name}: the list is empty; {self.name} must be {self.describe()}")
            if self.check is not None:
                for item in items:
                    self._checked(item, raw)
            elif self.choices is not None:
                for item in items:
                    if item not in self.choices:
                        raise ValidationException(
                            f"{field_name}: {item!r} is not valid; {self.name} must be "
                            f"{self.describe()}")
            return items
        if self.choices is not None and text not in self.choices:
            raise ValidationException(
                f"{field_name}: {text!r} is not valid; {self.name} must be {self.describe()}")
        if self.check is not None:
            return self._checked(text, raw)
        return text

    def _checked(self, text: str, raw: str) -> Any:
        assert self.check is not None
        try:
            result = self.check(text)
        except (ValueError, TypeError) as error:
            detail = f" ({error})" if str(error) else ""
            raise ValidationException(
                f"HyperParameters.{self.name}: {raw!r} is not valid{detail}; {self.name} must "
                f"be {self.describe()}") from None
        return text if result is None else result


@dataclass(frozen=True)
class HyperparameterSpec:
    """An algorithm's hyperparameters, looked up by name or alias."""

    algorithm: str
    parameters: Sequence[Hyperparameter]

    def __post_init__(self) -> None:
        by_name: dict[str, Hyperparameter] = {}
        for parameter in self.parameters:
            for name in (parameter.name, *parameter.aliases):
                by_name[name] = parameter
        object.__setattr__(self, "_by_name", by_name)

    def __getitem__(self, name: str) -> Hyperparameter:
        return self._by_name[name]  # type: ignore[attr-defined]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    @property
    def names(self) -> list[str]:
        return [parameter.name for parameter in self.parameters]

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Parse the job's string hyperparameters: unknown names refused (the reserved
        ``sagemaker_*`` / ``_tuning_objective_metric`` keys are kept as strings), aliases
        folded onto SageMaker's main name, required ones checked. Defaults are not filled
        in: the result holds what the job set."""
        values: dict[str, Any] = {}
        for name, value in raw.items():
            name = str(name)
            if name.startswith(RESERVED_PREFIX) or name == TUNING_OBJECTIVE:
                values[name] = _unquote(str(value))
                continue
            if name not in self:
                close = difflib.get_close_matches(name, list(self._by_name), n=1)  # type: ignore[attr-defined]
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValidationException(
                    f"HyperParameters.{name} is not a hyperparameter of {self.algorithm}{hint} "
                    f"Valid names: {', '.join(sorted(self.names))}")
            parameter = self[name]
            if parameter.name in values:
                raise ValidationException(
                    f"HyperParameters.{name}: {parameter.name} is given twice (by name and by "
                    f"its alias {', '.join(parameter.aliases)}); give it once")
            values[parameter.name] = parameter.parse(value)
        for parameter in self.parameters:
            if parameter.required and parameter.name not in values:
                raise ValidationException(
                    f"HyperParameters.{parameter.name} is required for {self.algorithm} "
                    f"({parameter.describe()})")
        return values


# -- channels and metrics -------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelDefinition:
    """A channel an algorithm reads: its content types (lower-case media types; the first
    is what SageMaker assumes when the channel has none) and the input modes per type."""

    name: str
    required: bool = False
    content_types: Sequence[str] = ()
    default_content_type: str | None = None
    input_modes: Sequence[str] = INPUT_MODES
    # media type -> input modes it can be read in, where narrower than input_modes
    mode_limits: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricDefinition:
    """A metric the algorithm prints: SageMaker's name, the regex that finds its value in
    an output line, and whether tuning should maximise it."""

    name: str
    regex: str
    direction: str = "Minimize"  # or "Maximize"

    def as_api(self) -> dict[str, str]:
        """The ``AlgorithmSpecification.MetricDefinitions`` entry."""
        return {"Name": self.name, "Regex": self.regex}


# -- the training environment ---------------------------------------------------------------
@dataclass
class TrainingEnvironment:
    """What one training instance knows: its ``opt/ml`` tree, the job's config files, its
    host and the cluster, and the distribution rendezvous when there is one."""

    root: Path
    hyperparameters: dict[str, str]
    input_data_config: dict[str, dict[str, Any]]
    resource_config: dict[str, Any]
    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    input_config_dir: Path
    channel_dirs: dict[str, Path]
    checkpoint_dir: Path | None = None
    master_addr: str | None = None
    master_port: int | None = None
    num_cpus: int | None = None

    @property
    def input_data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def current_host(self) -> str:
        return str(self.resource_config.get("current_host", "algo-1"))

    @property
    def hosts(self) -> list[str]:
        return sorted(self.resource_config.get("hosts") or [self.current_host])

    @property
    def is_master(self) -> bool:
        return self.current_host == self.hosts[0]

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def input_mode(self, channel: str) -> str:
        return str(self.input_data_config.get(channel, {}).get("TrainingInputMode", "File"))

    def content_type(self, channel: str) -> str | None:
        return self.input_data_config.get(channel, {}).get("ContentType")

    def channel_dir(self, channel: str) -> Path:
        return self.channel_dirs.get(channel, self.input_data_dir / channel)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TrainingEnvironment:
        """Build from the SM_* environment a training instance runs under
        (``SAGEMAKER_BASE_DIR`` or the parent of ``SM_INPUT_CONFIG_DIR``'s ``input``)."""
        environ = os.environ if environ is None else environ
        if environ.get("SAGEMAKER_BASE_DIR"):
            root = Path(environ["SAGEMAKER_BASE_DIR"])
        elif environ.get("SM_INPUT_CONFIG_DIR"):
            root = Path(environ["SM_INPUT_CONFIG_DIR"]).parent.parent
        else:
            root = Path("/opt/ml")
        config_dir = Path(environ.get("SM_INPUT_CONFIG_DIR") or root / "input" / "config")
        env = cls.from_root(root, config_dir=config_dir)
        if environ.get("SM_MODEL_DIR"):
            env.model_dir = Path(environ["SM_MODEL_DIR"])
        if environ.get("SM_OUTPUT_DATA_DIR"):
            env.output_data_dir = Path(environ["SM_OUTPUT_DATA_DIR"])
        for name in env.input_data_config:
            value = environ.get(f"SM_CHANNEL_{name.upper()}")
            if value:
                env.channel_dirs[name] = Path(value)
        env.master_addr = environ.get("MASTER_ADDR") or None
        port = environ.get("MASTER_PORT")
        env.master_port = int(port) if port else None
        cpus = environ.get("SM_NUM_CPUS")
        env.num_cpus = int(cpus) if cpus and cpus.isdigit() else None
        return env

    @classmethod
    def from_root(cls, root: str | os.PathLike, *,
                  config_dir: str | os.PathLike | None = None) -> TrainingEnvironment:
        """Build from an ``opt/ml`` tree alone (its ``input/config`` files)."""
        root = Path(root)
        config = Path(config_dir) if config_dir is not None else root / "input" / "config"
        hyperparameters = _read_json(config / "hyperparameters.json", {})
        input_data_config = _read_json(config / "inputdataconfig.json", {})
        resource_config = _read_json(config / "resourceconfig.json", {})
        checkpoint = _read_json(config / "checkpointconfig.json", None)
        checkpoint_dir = None
        if isinstance(checkpoint, dict):
            checkpoint_dir = Path(checkpoint.get("LocalPath") or root / "checkpoints")
        data_dir = root / "input" / "data"
        return cls(
            root=root,
            hyperparameters={str(k): v if isinstance(v, str) else json.dumps(v)
                             for k, v in hyperparameters.items()},
            input_data_config=input_data_config,
            resource_config=resource_config,
            model_dir=root / "model",
            output_dir=root / "output",
            output_data_dir=root / "output" / "data",
            input_config_dir=config,
            channel_dirs={name: data_dir / name for name in input_data_config},
            checkpoint_dir=checkpoint_dir,
        )


def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ClientError(f"{path.name} is not valid JSON: {error}") from None


# -- the interface --------------------------------------------------------------------------
class Predictor:
    """A loaded model answering inference requests."""

    content_types: Sequence[str] = ()
    accepts: Sequence[str] = ()

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Answer one request: ``(response body, response content type)``; raises an
        :class:`InferenceError` for a request it cannot answer."""
        raise NotImplementedError


class Algorithm:
    """A built-in algorithm: its declared interface plus training and loading."""

    name: str = ""
    repositories: Sequence[str] = ()  # image repository names that select it
    hyperparameters: HyperparameterSpec
    channels: Sequence[ChannelDefinition] = ()
    metrics: Sequence[MetricDefinition] = ()

    @property
    def metric_definitions(self) -> list[dict[str, str]]:
        """``MetricDefinitions`` for every metric the algorithm can print."""
        return [metric.as_api() for metric in self.metrics]

    def objective_metrics(self) -> dict[str, str]:
        """Metric name -> ``Maximize``/``Minimize``, for the metrics tuning may optimise."""
        return {metric.name: metric.direction for metric in self.metrics}

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The job's hyperparameters parsed and checked; ValidationException naming the
        field and the valid values otherwise."""
        return self.hyperparameters.parse(raw)

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        """Check ``InputDataConfig`` entries against the declared channels."""
        validate_channels(self.name, self.channels, channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        raise NotImplementedError

    def load(self, model_dir: str | os.PathLike) -> Predictor:
        raise NotImplementedError


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def media_parameters(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``"text/csv; label_size=1"`` -> ``("text/csv", {"label_size": "1"})``: the media
    type and its parameters, lower-cased names, quotes stripped."""
    media, *items = (content_type or "").split(";")
    parameters = {}
    for item in items:
        key, _, value = item.partition("=")
        parameters[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parameters


def negotiate_accept(accept: str | None, accepts: Sequence[str], default: str) -> str:
    """The response type for an ``Accept`` header (a comma-separated list): the first
    listed type in ``accepts``, ``default`` for an absent or ``*/*`` one, else
    NotAcceptable naming the types answered."""
    for option in (accept or "").split(","):
        media = _media_type(option)
        if media in ("", "*/*"):
            return default
        if media in accepts:
            return media
    raise NotAcceptable(f"accept type {accept!r} is not supported; use {', '.join(accepts)}")


def require_one_label_column(algorithm: str, channels: Sequence[Mapping[str, Any]],
                             skip: Sequence[str] = ()) -> None:
    """ValidationException for a channel whose ContentType gives a CSV ``label_size`` other
    than 1 (or does not parse): ``algorithm`` reads exactly one label column. Channels
    named in ``skip`` (a model channel, say) are not checked."""
    from openmaker.formats.content_types import parse_content_type

    for index, channel in enumerate(channels, start=1):
        content_type = channel.get("ContentType")
        if channel.get("ChannelName") in skip or not content_type:
            continue
        try:
            parsed = parse_content_type(content_type)
            label_size = parsed.label_size if parsed.format == "csv" else 1
        except ValueError as error:
            raise ValidationException(f"InputDataConfig.{index}.ContentType: {error}") from None
        if label_size != 1:
            raise ValidationException(
                f"InputDataConfig.{index}.ContentType: {content_type!r}: {algorithm} reads "
                "exactly one label column (label_size=1)")


def validate_channels(algorithm: str, definitions: Sequence[ChannelDefinition],
                      channels: Iterable[Mapping[str, Any]], input_mode: str = "File") -> None:
    """ValidationException for a missing required channel, an unknown channel, an
    unsupported content type or input mode (naming the channel and what is accepted)."""
    by_name = {definition.name: definition for definition in definitions}
    seen = set()
    for index, channel in enumerate(channels, start=1):
        name = str(channel.get("ChannelName") or "")
        seen.add(name)
        definition = by_name.get(name)
        if definition is None:
            raise ValidationException(
                f"InputDataConfig.{index}.ChannelName: {algorithm} does not read a channel "
                f"{name!r}; its channels are {', '.join(by_name)}")
        mode = channel.get("InputMode") or input_mode or "File"
        if mode not in definition.input_modes:
            raise ValidationException(
                f"InputDataConfig.{index}.InputMode: channel {name!r} of {algorithm} cannot be "
                f"read in {mode} mode; use {' or '.join(definition.input_modes)}")
        content_type = channel.get("ContentType") or definition.default_content_type
        if content_type is None or not definition.content_types:
            continue
        media = _media_type(content_type)
        if media not in definition.content_types:
            raise ValidationException(
                f"InputDataConfig.{index}.ContentType: {content_type!r} is not supported for "
                f"channel {name!r} of {algorithm}; accepted: "
                f"{', '.join(definition.content_types)}")
        limits = definition.mode_limits.get(media)
        if limits is not None and mode not in limits:
            raise ValidationException(
                f"InputDataConfig.{index}: channel {name!r} of {algorithm} cannot read "
                f"{content_type} in {mode} mode; use {' or '.join(limits)} mode, or another "
                "content type")
    for definition in definitions:
        if definition.required and definition.name not in seen:
            raise ValidationException(
                f"InputDataConfig: {algorithm} needs a {definition.name!r} channel")
