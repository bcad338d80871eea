"""Running independent jobs (dataset shards, world generation) in parallel on Ray, or in this process.

Ray is the optional extra ``scale`` and is imported only when a job asks for workers. A local Ray
started here binds to 127.0.0.1 only, with no dashboard and no usage reporting; ``address``
joins an existing cluster instead (``ray start --head`` on the head node; workers need lyra_sim
installed). Results travel back to this process, which writes every output itself (atomically),
so a cluster needs no shared file system and an interrupted run resumes from what was written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

from lyra_sim.errors import LyraSimError

LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # results are small and fetched at once; keep shared memory modest


class ScaleError(LyraSimError):
    """Ray is missing or cannot be started / reached."""


def _ray():
    # Before Ray's first import: a local Ray then takes the loopback address as its node address
    # (it otherwise swaps 127.0.0.1 for the machine's network address).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports over the network
    try:
        import ray
    except ImportError as exc:
        raise ScaleError("parallel runs need Ray: pip install 'lyra-sim[scale]' (or run with --workers 1)") from exc
    return ray


def _check_loopback_only() -> None:
    """Refuse to start a local Ray that would listen on the network (ray was imported before ``_ray`` set it up)."""
    from ray._private import ray_constants  # private: the one place Ray records it (read at import)

    if ray_constants.ENABLE_RAY_CLUSTER:
        raise ScaleError("ray was imported before lyra_sim.scale, so a local Ray would listen on the network; "
                         "set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing ray")


def init_ray(workers: int | None = None, address: str | None = None):
    """Connect to Ray: the cluster at ``address``, the one already initialised, or a new local one (localhost only)."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            _check_loopback_only()
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1", object_store_memory=LOCAL_OBJECT_STORE_BYTES)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ScaleError(f"cannot start Ray ({'address ' + address if address else 'local'}): {exc}") from exc
    return ray


def parallel_map(fn: Callable[..., Any], jobs: Iterable[tuple], workers: int = 1, address: str | None = None,
                 desc: str = "jobs", progress: bool = True) -> Iterator[tuple[int, Any]]:  # fmt: skip
    """Yield ``(index, fn(*job))`` for every job, in completion order.

    With ``workers`` 1 and no ``address`` the jobs run here one after another; otherwise each is a
    Ray task (one CPU each). An exception in a job is raised here, after the finished results were
    yielded, so callers that write as they go keep everything completed before it.
    """
    jobs = list(jobs)
    if workers < 1:
        raise ScaleError(f"workers: expected an integer >= 1, got {workers}")
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress)
    try:
        if workers == 1 and not address:
            for i, job in enumerate(jobs):
                yield i, fn(*job)
                bar.update()
            return
        ray = init_ray(workers, address)
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = {remote.remote(*job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                for ref in pending:
                    ray.cancel(ref)
                raise exc.as_instanceof_cause() from None
            yield index, result
            bar.update()
    finally:
        bar.close()
