"""How the instances of a training job talk: as one group of processes over torch.distributed
(gloo) at the ``MASTER_ADDR``/``MASTER_PORT`` the training runner sets (a stand-in when the
job has one instance), or with length-prefixed messages over plain sockets for the
built-ins that need no torch (Random Cut Forest, LightGBM's port exchange)."""

from __future__ import annotations

import socket
import struct
from datetime import timedelta
from typing import Any

from openmaker.algorithms.base import AlgorithmError, ClientError, TrainingEnvironment

DEFAULT_TIMEOUT_S = 600.0


class HostGroup:
    """The hosts of a job, one process each; rank is the host's place in ``SM_HOSTS``."""

    def __init__(self, env: TrainingEnvironment, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.hosts = list(env.hosts)
        self.rank = self.hosts.index(env.current_host) if env.current_host in self.hosts else 0
        self.size = len(self.hosts)
        self.joined = False
        if self.size == 1:
            return
        if not env.master_addr or not env.master_port:
            raise AlgorithmError(f"training over {self.size} hosts needs MASTER_ADDR and "
                                 "MASTER_PORT in the environment")
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://{env.master_addr}:{env.master_port}",
                                rank=self.rank, world_size=self.size,
                                timeout=timedelta(seconds=timeout_s))
        self.joined = True

    @classmethod
    def alone(cls, host: str = "algo-1") -> HostGroup:
        """A group of one host, without a training environment (training in-process)."""
        group = cls.__new__(cls)
        group.hosts, group.rank, group.size, group.joined = [host], 0, 1, False
        return group

    def gather(self, value: Any) -> list[Any]:
        """Every host's ``value`` (picklable), in host order, on every host."""
        if not self.joined:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """The first host's ``value`` on every host."""
        if not self.joined:
            return value
        import torch.distributed as dist

        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, tensor: Any) -> Any:
        """``tensor`` (a torch tensor) summed over the hosts, in place; returned."""
        if self.joined:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def agree(self, error: Exception | None) -> None:
        """Raise the first failing host's error (by rank) on every host, so that all stop
        together: a ClientError as one, anything else as an AlgorithmError; another host's
        message is prefixed with its name."""
        if error is not None and not isinstance(error, ClientError | AlgorithmError):
            error = AlgorithmError(f"{type(error).__name__}: {error}")
        if not self.joined:
            if error is not None:
                raise error
            return
        reports = self.gather(None if error is None
                              else (isinstance(error, ClientError), str(error)))
        for host, report in zip(self.hosts, reports, strict=True):
            if report is not None:
                client, message = report
                if host != self.hosts[self.rank]:
                    message = f"{host}: {message}"
                raise ClientError(message) if client else AlgorithmError(message)

    def close(self) -> None:
        if self.joined:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.joined = False


def send_blob(sock: socket.socket, blob: bytes) -> None:
    """One message: its length (8 bytes, little-endian), then its bytes."""
    sock.sendall(struct.pack("<Q", len(blob)) + blob)


def receive_blob(sock: socket.socket) -> bytes:
    """One message sent by :func:`send_blob`; AlgorithmError when the peer closes first."""
    def exactly(count: int) -> bytes:
        parts, left = [], count
        while left:
            part = sock.recv(min(left, 1 << 20))
            if not part:
                raise AlgorithmError("another host closed its connection before its message "
                                     "was complete")
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    (length,) = struct.unpack("<Q", exactly(8))
    return exactly(length)
