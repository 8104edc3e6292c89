"""Running a sweep's runs as Ray tasks (``backend="ray"`` of :func:`usfkit.sweep.run_sweep`).

Install with ``pip install "usfkit[cluster]"`` (Ray core).  Nothing here is imported unless a sweep asks for
Ray, so the default backend (local processes) needs no extra dependency.

How a sweep runs on Ray:

- every pending run is one task with declared resources (``num_cpus=1`` for a CPU run; for a GPU run a share of
  one GPU, so one GPU holds several small runs: see :func:`usfkit.gpuplan.gpu_fraction`);
- a task *returns* its result; the driver (the process that called ``run_sweep``) writes the run record
  atomically the moment the result arrives, so the driver is the only writer of records and a cluster needs
  no shared results folder;
- a task whose node or worker process dies is retried on another node (``max_retries``); an exception raised
  by the run itself (a data fault) is not retried: it stops the sweep and is raised again in the driver as
  the original exception; a diverged model is a failed-run record, as with the local backend;
- the data folder, feature cache and weights folder settings (``USFKIT_*`` variables) of the driver are
  passed to every worker; on a cluster without shared storage point them at node-local copies.

``connect`` joins a running cluster (``address``, else ``$RAY_ADDRESS``) or starts a local one.  Ray's usage
statistics are switched off unless ``RAY_USAGE_STATS_ENABLED`` is set, and no dashboard is started.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["FORWARDED_ENV", "MAX_RETRIES", "ClusterUnavailable", "connect", "describe", "run_tasks",
           "gpu_memory_gb", "per_run"]

FORWARDED_ENV = ("USFKIT_DATA", "USFKIT_FEATURE_CACHE", "USFKIT_WEIGHTS", "USFKIT_PROFILE")
MAX_RETRIES = 3  # a task whose node dies is tried again this many times, elsewhere when possible


class ClusterUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def _ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine unless the user says so
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable('backend "ray" needs Ray: pip install "usfkit[cluster]" (or pip install ray), '
                                 'or use the default backend "local"') from None
    return ray


def connect(address: str | None = None):
    """The ``ray`` module, connected: to ``address`` (``"auto"``, ``"host:port"``, ``"ray://..."``), else to
    ``$RAY_ADDRESS``, else to a new local Ray instance with this machine's cores.  Reuses a connection this
    process already has."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env["OMP_NUM_THREADS"] = "1"  # one torch thread per task, as with the local backend
    kwargs: dict[str, Any] = dict(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                                  runtime_env={"env_vars": env}, log_to_driver=False, configure_logging=False)
    if kwargs["address"] is None or kwargs["address"].startswith(("127.0.0.1", "localhost")):
        kwargs["_node_ip_address"] = "127.0.0.1"  # a cluster on this machine stays on loopback
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {kwargs['address']!r}: {err}. Start it first "
                                 "(ray start --head on the head node) or leave --address out for a local one") from None
    return ray


def describe() -> str:
    """One line on the connected cluster: nodes, CPUs, GPUs."""
    ray = _ray()
    total = ray.cluster_resources()
    nodes = sum(n["Alive"] for n in ray.nodes())
    return f"Ray cluster: {nodes} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"


def _call(run_fn: Callable, spec: dict, timed: Callable):
    """A task's body: one torch thread, then the sweep's timed call of ``run_fn``."""
    import torch

    torch.set_num_threads(1)
    return timed(run_fn, spec)


def run_tasks(run_fn: Callable[[dict], Any], items: Iterable[tuple[int, dict]], timed: Callable, *,
              resources: Callable[[dict], dict] | None = None, address: str | None = None,
              max_retries: int = MAX_RETRIES) -> Iterator[tuple[int, Any]]:
    """Submit ``timed(run_fn, spec)`` for every ``(index, spec)`` of ``items`` as a Ray task and yield
    ``(index, result)`` as each task finishes, in finishing order.

    ``resources(spec)`` gives a task's Ray resources (default ``{"num_cpus": 1}``).  An exception raised by
    a run is raised here as itself (not retried); tasks not finished then are cancelled.  A node that dies
    makes Ray retry its tasks, up to ``max_retries`` times."""
    ray = connect(address)
    remote = ray.remote(_call)
    fn_ref = ray.put(run_fn)  # shipped to the object store once, not once per task
    pending = {}
    for i, spec in items:
        opts = {"num_cpus": 1, **(resources(spec) if resources else {})}
        ref = remote.options(**opts, max_retries=max_retries, retry_exceptions=False).remote(fn_ref, spec, timed)
        pending[ref] = i
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            i = pending.pop(ref)
            try:
                out = ray.get(ref)
            except ray.exceptions.RayTaskError as err:  # the run raised: give the driver the run's own exception
                cause = getattr(err, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            yield i, out
    finally:
        for ref in pending:  # an error or Ctrl-C in the driver: stop what is still running
            ray.cancel(ref, force=True)


def gpu_memory_gb() -> float | None:
    """The memory of one GPU of the cluster in GiB (asked of a GPU node by a task holding 1 % of a GPU), or
    ``None`` when the cluster has no GPU."""
    ray = _ray()
    if not ray.cluster_resources().get("GPU"):
        return None

    def probe() -> float:
        import torch

        return torch.cuda.get_device_properties(0).total_memory / 2**30
    return ray.get(ray.remote(num_gpus=0.01, num_cpus=0)(probe).remote())


def per_run(share: Callable[[dict, float], float]) -> Callable[[dict], dict]:
    """Ray resources of a run (for :func:`run_tasks`): one CPU, and where the cluster has GPUs the share of
    one GPU that ``share(spec, gpu_memory_gb)`` gives, so one GPU trains several small runs at once
    (:func:`usfkit.gpuplan.gpu_fraction` turns the dry run's measured memory into such a share)."""
    memory: list[float | None] = []

    def resources(spec: dict) -> dict:
        if not memory:
            memory.append(gpu_memory_gb())
        return {"num_cpus": 1} if memory[0] is None else {"num_cpus": 1, "num_gpus": share(spec, memory[0])}
    return resources
