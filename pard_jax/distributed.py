"""Joining a multi-host run: the `distributed` config section of training and generation alike.

Every host runs the same command with `distributed.enabled=true`; `jax.distributed.initialize` then makes
the devices of all hosts one global device list, which the mesh is built over.
"""

from __future__ import annotations

import dataclasses

import jax


@dataclasses.dataclass
class DistributedSection:
    """`jax.distributed.initialize()`; leave the fields empty on a TPU pod / SLURM (read from the environment)."""

    enabled: bool = False
    coordinator_address: str | None = None  # host:port of process 0
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: list[int] | None = None


def initialize(d: DistributedSection) -> None:
    """Join the other processes when `d.enabled` (once per process); a no-op otherwise."""
    if not d.enabled:
        return
    kwargs = {k: v for k, v in dict(coordinator_address=d.coordinator_address, num_processes=d.num_processes,
                                    process_id=d.process_id, local_device_ids=d.local_device_ids).items()
              if v is not None}
    jax.distributed.initialize(**kwargs)


def is_main() -> bool:
    """Process 0 writes the output (metrics, checkpoints' metadata, generated text)."""
    return jax.process_index() == 0
