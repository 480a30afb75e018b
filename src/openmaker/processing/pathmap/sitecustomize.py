"""Map ``/opt/ml/...`` container paths to a processing job's own tree inside its Python
processes.

SageMaker processing scripts use literal container paths (``/opt/ml/processing/input``).
openmaker runs no container, so the runner puts this directory first on the job's
``PYTHONPATH`` and sets ``OPENMAKER_OPT_ML_ROOT`` to the real directory that stands for
``/opt/ml``. Python imports ``sitecustomize`` at start-up; this one rewrites a leading
``/opt/ml`` in the paths given to ``open`` (``builtins``, ``io``) and to the ``os`` and
``os.path`` functions that take paths, which covers ``pathlib``, ``shutil``, ``glob``,
pandas, numpy and joblib, since they call those. pyarrow's Python entry points to its C++ file
access are mapped too (``to_parquet``/``read_parquet``, ``pyarrow.parquet``,
``pyarrow.dataset``); other code that opens files in C (xgboost's ``DMatrix(path)``,
``pyarrow.csv``) is not: pass such libraries a file object or an already mapped path. It
also runs the training area's host-name mapping (``training/hostnames``).
"""

import builtins
import io
import os
import sys

_ROOT = os.environ.get("OPENMAKER_OPT_ML_ROOT")
_CONTAINER = "/opt/ml"


def _one(function, mapped):
    def patched(path, *args, **kwargs):
        return function(mapped(path), *args, **kwargs)

    patched.__name__ = getattr(function, "__name__", "patched")
    patched.__doc__ = getattr(function, "__doc__", None)
    patched.__wrapped__ = function
    return patched


def _install(root):
    """Patch ``open`` and the ``os`` path functions; the mapping function."""
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
        return _one(function, mapped)

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
    return mapped


def _pyarrow_patches(mapped):
    """pyarrow opens local files in C++: map the paths its Python layer hands over
    (``pyarrow.OSFile``, used by pandas' ``to_parquet``, and the path resolution behind
    ``pyarrow.parquet``/``pyarrow.dataset``, used by ``read_parquet``)."""

    def patch_pyarrow(module):
        native = module.OSFile

        class OSFile(native):
            def __new__(cls, path, *args, **kwargs):
                return native.__new__(cls, mapped(path), *args, **kwargs)

        module.OSFile = OSFile
        for name in ("memory_map", "input_stream", "output_stream"):
            function = getattr(module, name, None)
            if function is not None:
                setattr(module, name, _one(function, mapped))

    def patch_pyarrow_fs(module):
        resolve = module._resolve_filesystem_and_path

        def patched(path, filesystem=None, *args, **kwargs):
            if filesystem is None or isinstance(filesystem, module.LocalFileSystem):
                path = mapped(path)
            return resolve(path, filesystem, *args, **kwargs)

        module._resolve_filesystem_and_path = patched

    return {"pyarrow": patch_pyarrow, "pyarrow.fs": patch_pyarrow_fs}


# The training area's host-name mapping is a sitecustomize as well, and only one module of
# that name is imported: run it from here, and borrow its import hook.
_hostnames = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "training", "hostnames", "sitecustomize.py")
_namespace = {"__name__": "openmaker_hostnames", "__file__": _hostnames}
try:
    with open(_hostnames, encoding="utf-8") as _handle:
        exec(compile(_handle.read(), _hostnames, "exec"), _namespace)
except OSError as _exc:
    print(f"openmaker: could not load {_hostnames}: {_exc}", file=sys.stderr)

if _ROOT:
    _mapped = _install(_ROOT)
    if "patch_on_import" in _namespace:
        _namespace["patch_on_import"](_pyarrow_patches(_mapped), "map /opt/ml paths")
