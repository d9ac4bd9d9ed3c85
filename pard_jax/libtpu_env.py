"""Keep libtpu quiet on machines without a TPU.

libtpu (the `tpu` extra, which compiles programs for TPU topologies on any machine: `--dry-run --topology`) is
loaded by jax at its first backend start even where no TPU is attached; it then looks for the TPU VM's metadata,
prints warnings about what it cannot find, writes log files under /tmp/tpu_logs and takes a lock that keeps
other processes from loading it. Where no
TPU chip is attached, the values it looks for are given here (any do: they describe no chip, and a dry run names
its topology itself), so that CPU and GPU runs stay as quiet as without libtpu. On a TPU VM nothing is set.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path

GOOGLE_PCI_VENDOR = "0x1ae0"  # jax._src.hardware_utils' TPU check

NO_CHIP_ENV = {
    "TPU_SKIP_MDS_QUERY": "1",  # no metadata server to ask
    "TPU_ACCELERATOR_TYPE": "v5litepod-1",  # else: "could not determine TPU accelerator type"
    "TPU_WORKER_HOSTNAMES": "localhost",  # else: "unexpected worker hostname" (an error line, harmless)
    "TPU_LOG_DIR": "disabled",  # else: a log file per process under /tmp/tpu_logs
    # else: one process at a time (/tmp/libtpu_lockfile, which guards chips there are none of here); a second
    # dry run, or a test, fails with "Internal error when accessing libtpu multi-process lockfile"
    "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
}


def tpu_chips() -> int:
    """TPU chips attached to this machine: PCI devices of Google's vendor id, as jax counts them (read here
    without importing jax, so that `import pard_jax` stays light)."""
    return sum(Path(p).read_text().strip() == GOOGLE_PCI_VENDOR for p in glob.glob("/sys/bus/pci/devices/*/vendor"))


def quiet_without_chips(environ=os.environ) -> None:
    """Set NO_CHIP_ENV's variables not set already, when libtpu is installed and no TPU chip is attached. Call
    before jax starts a backend (`pard_jax` does on import)."""
    if importlib.util.find_spec("libtpu") is None or tpu_chips():
        return
    for name, value in NO_CHIP_ENV.items():
        environ.setdefault(name, value)
