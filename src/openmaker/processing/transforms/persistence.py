"""Saving a fitted transform or pipeline with a model, and loading it back for serving.

``save(obj, model_dir)`` writes ``model.joblib`` (the pickled object) and then
``manifest.json`` (the library versions, the class, the fitted input schema, the output
column names and the SHA-256 of ``model.joblib``), each to a temporary file in
``model_dir`` renamed over the final name, so a reader sees whole files only; the manifest
is written last, so its presence means the save finished. ``load(model_dir)`` checks the
digest and unpickles. A pickle runs code when loaded: load only models you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from openmaker.processing.transforms._base import fitted_schema

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
FORMAT = "openmaker-transforms"
FORMAT_VERSION = 1


def _write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def save(obj: Any, model_dir: str | os.PathLike[str]) -> Path:
    """Save a fitted transform, Pipeline or ColumnTransformer into ``model_dir`` (created
    when missing); returns the path of ``model.joblib``."""
    import joblib
    import sklearn
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from openmaker import __version__

    try:
        check_is_fitted(obj)
    except NotFittedError:
        raise ValueError(f"save: {type(obj).__name__} is not fitted; call fit before "
                         "saving it") from None
    except TypeError as error:
        raise ValueError(f"save: {type(obj).__name__} is not a scikit-learn estimator "
                         f"({error})") from None
    directory = Path(model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    _write_atomic(model_path, lambda handle: joblib.dump(obj, handle))
    schema = fitted_schema(obj)
    names_out = None
    if hasattr(obj, "get_feature_names_out"):
        try:
            names_out = [str(name) for name in obj.get_feature_names_out()]
        except (AttributeError, ValueError, TypeError):
            names_out = None  # a step that cannot name its outputs (a final predictor)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "openmaker_version": __version__,
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "schema": ([{"name": name, "kind": kind} for name, kind in schema.items()]
                   if schema is not None else None),
        "feature_names_out": names_out,
        "model_file": MODEL_FILE,
        "sha256": _digest(model_path),
    }
    body = json.dumps(manifest, indent=2).encode()
    _write_atomic(directory / MANIFEST_FILE, lambda handle: handle.write(body))
    return model_path


def read_manifest(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest ``save`` wrote into ``model_dir``."""
    path = Path(model_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{model_dir} holds no saved transform: {MANIFEST_FILE} is "
                                "missing (save it with openmaker.processing.transforms."
                                "persistence.save)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an {FORMAT} manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {manifest.get('format_version')}; this "
                         f"openmaker reads version {FORMAT_VERSION} and older (upgrade it)")
    return manifest


def load(model_dir: str | os.PathLike[str]) -> Any:
    """The transform or pipeline ``save`` wrote into ``model_dir``."""
    import joblib

    manifest = read_manifest(model_dir)
    model_path = Path(model_dir) / manifest.get("model_file", MODEL_FILE)
    if not model_path.exists():
        raise FileNotFoundError(f"{model_dir}: {model_path.name} is missing")
    digest = _digest(model_path)
    if digest != manifest.get("sha256"):
        raise ValueError(f"{model_path} does not match its manifest (SHA-256 {digest}, "
                         f"manifest says {manifest.get('sha256')}): it is damaged or was "
                         "replaced; save the transform again")
    return joblib.load(model_path)
