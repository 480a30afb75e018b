"""Make a job's host names (``algo-1`` ... ``algo-N``) resolve inside its Python processes.

On SageMaker every instance is a container whose peers resolve by host name. openmaker's
local backend runs all instances on one machine, so the runner puts this directory first
on the job's ``PYTHONPATH`` and sets ``OPENMAKER_HOST_ADDRESSES`` to a JSON object of
host name -> address (all ``127.0.0.1`` locally). Python imports ``sitecustomize`` at
start-up; this one answers those names in the ``socket`` module's look-ups, and passes
them as addresses to the libraries that resolve host names in C++ where Python cannot see
it: ``torch.distributed``'s TCP store (``init_process_group`` with ``tcp://algo-1:port``
or ``MASTER_ADDR=algo-1``) and xgboost's tracker and collective. Nothing here runs unless
the variable is set.
"""

import importlib.abc
import importlib.machinery
import json
import os
import socket
import sys


def _install(addresses):
    def address(host):
        return addresses.get(host, host) if isinstance(host, str) else host

    getaddrinfo, gethostbyname = socket.getaddrinfo, socket.gethostbyname
    gethostbyname_ex = socket.gethostbyname_ex

    def patched_getaddrinfo(host, *args, **kwargs):
        return getaddrinfo(address(host), *args, **kwargs)

    def patched_gethostbyname(host):
        return gethostbyname(address(host))

    def patched_gethostbyname_ex(host):
        if host in addresses:
            return host, [], [addresses[host]]
        return gethostbyname_ex(host)

    socket.getaddrinfo = patched_getaddrinfo
    socket.gethostbyname = patched_gethostbyname
    socket.gethostbyname_ex = patched_gethostbyname_ex
    if "MASTER_ADDR" in os.environ:
        os.environ["MASTER_ADDR"] = address(os.environ["MASTER_ADDR"])

    def patch_torch_rendezvous(module):
        create_store = module._create_c10d_store

        def patched(hostname, *args, **kwargs):
            return create_store(address(hostname), *args, **kwargs)

        # The tcp:// and env:// handlers look the store factory up at call time, so a
        # MASTER_ADDR the script sets itself (to its hosts[0], say) is mapped as well.
        module._create_c10d_store = patched

    def patch_xgboost_collective(module):
        init = module.init

        def patched_init(**args):
            for key in ("dmlc_tracker_uri", "DMLC_TRACKER_URI"):
                if key in args:
                    args[key] = address(args[key])
            return init(**args)

        module.init = patched_init

    def patch_xgboost_tracker(module):
        tracker = module.RabitTracker
        original = tracker.__init__

        def patched(self, n_workers, host_ip, *args, **kwargs):
            original(self, n_workers, address(host_ip), *args, **kwargs)

        tracker.__init__ = patched

    patches = {
        "torch.distributed.rendezvous": patch_torch_rendezvous,
        "xgboost.collective": patch_xgboost_collective,
        "xgboost.tracker": patch_xgboost_tracker,
    }

    patch_on_import(patches, "map host names")


def patch_on_import(patches, what):
    """Run ``patches[name](module)`` right after module ``name`` is first executed (a
    failing patch prints ``could not <what> in <name>`` and the job goes on). The
    processing area's path mapping uses this too."""

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            patch = patches.get(name)
            if patch is None:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            exec_module = loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                try:
                    patch(module)
                except Exception as exc:  # a changed library must not break the job
                    print(f"openmaker: could not {what} in {name}: {exc}", file=sys.stderr)

            loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, Finder())


_addresses = os.environ.get("OPENMAKER_HOST_ADDRESSES")
if _addresses:
    try:
        _install(json.loads(_addresses))
    except ValueError:
        print("openmaker: OPENMAKER_HOST_ADDRESSES is not a JSON object; host names of the "
              "job's instances will not resolve", file=sys.stderr)
