"""Map ``/opt/ml/...`` container paths to a processing job's own tree inside its Python
processes.

SageMaker processing scripts use literal container paths (``/opt/ml/processing/input``).
openmaker runs no container, so the runner puts this directory first on the job's
``PYTHONPATH`` and sets ``OPENMAKER_OPT_ML_ROOT`` to the real directory that stands for
``/opt/ml``. Python imports ``sitecustomize`` at start-up; this one rewrites a leading
``/opt/ml`` in the paths given to ``open`` (``builtins``, ``io``) and to the ``os`` and
``os.path`` functions that take paths, which covers ``pathlib``, ``shutil``, ``glob``,
pandas, numpy and joblib, since they call those. Code that opens files in C (pyarrow's
own file system, xgboost's ``DMatrix(path)``) is not mapped: pass such libraries a file
object or a path from ``os.environ`` instead. Then it runs the file named by
``OPENMAKER_CHAINED_SITECUSTOMIZE`` (the training area's host-name mapping), since only one
``sitecustomize`` module is imported.
"""

import builtins
import io
import os
import sys

_ROOT = os.environ.get("OPENMAKER_OPT_ML_ROOT")
_CONTAINER = "/opt/ml"


def _install(root):
    root_bytes = os.fsencode(root)

    def mapped(path):
        if isinstance(path, int):
            return path
        try:
            value = os.fspath(path)
        except TypeError:
            return path
        if isinstance(value, bytes):
            if value == b"/opt/ml" or value.startswith(b"/opt/ml/"):
                return root_bytes + value[7:]
            return path
        if value == _CONTAINER or value.startswith("/opt/ml/"):
            return root + value[7:]
        return path

    def one(function):
        def patched(path, *args, **kwargs):
            return function(mapped(path), *args, **kwargs)

        patched.__name__ = getattr(function, "__name__", "patched")
        patched.__doc__ = getattr(function, "__doc__", None)
        patched.__wrapped__ = function
        return patched

    def two(function):
        def patched(source, destination, *args, **kwargs):
            return function(mapped(source), mapped(destination), *args, **kwargs)

        patched.__name__ = getattr(function, "__name__", "patched")
        patched.__wrapped__ = function
        return patched

    def listing(function):
        def patched(path=".", *args, **kwargs):
            return function(mapped(path), *args, **kwargs)

        patched.__name__ = getattr(function, "__name__", "patched")
        patched.__wrapped__ = function
        return patched

    builtins.open = one(builtins.open)
    io.open = builtins.open
    for name in ("open", "stat", "lstat", "mkdir", "makedirs", "remove", "unlink", "rmdir",
                 "removedirs", "chdir", "access", "chmod", "utime", "truncate", "readlink",
                 "statvfs", "mkfifo"):
        if hasattr(os, name):
            setattr(os, name, one(getattr(os, name)))
    for name in ("listdir", "scandir"):
        setattr(os, name, listing(getattr(os, name)))
    for name in ("rename", "replace", "link", "symlink"):
        setattr(os, name, two(getattr(os, name)))
    for name in ("exists", "lexists", "isfile", "isdir", "islink", "getsize", "getmtime",
                 "getatime", "getctime", "ismount", "realpath"):
        if hasattr(os.path, name):
            setattr(os.path, name, one(getattr(os.path, name)))


if _ROOT:
    _install(_ROOT)

_chained = os.environ.get("OPENMAKER_CHAINED_SITECUSTOMIZE")
if _chained:
    try:
        with open(_chained, encoding="utf-8") as _handle:
            exec(compile(_handle.read(), _chained, "exec"), {"__name__": "sitecustomize"})
    except OSError as _exc:
        print(f"openmaker: could not load {_chained}: {_exc}", file=sys.stderr)
