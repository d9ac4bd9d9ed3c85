"""Running test programs as separate processes: N simulated CPU devices, or two processes joined with
`jax.distributed` on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# XLA's LLVM backend at -O0: about half the compile time of a tiny model's training step, for slower code that a
# few steps do not notice. Only for tests whose compared runs are all compiled this way.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def device_env(devices: int, fast_compile: bool = False) -> dict:
    flags = f"--xla_force_host_platform_device_count={devices}" + (f" {FAST_COMPILE}" if fast_compile else "")
    return dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")


def result_of(stdout: str) -> dict:
    """The JSON of the last `RESULT {...}` line a test program printed."""
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])


def run_joined(code: str, argv: list[str], devices: int, processes: int = 2, timeout: int = 240,
               fast_compile: bool = False) -> list[str]:
    """Run `python -c code *argv` as `processes` processes of `devices` CPU devices each, joined by the
    `distributed.*` config keys on a free loopback port; their stdouts, in process order."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [*argv, "distributed.enabled=true", f"distributed.coordinator_address=127.0.0.1:{port}",
            f"distributed.num_processes={processes}"]
    procs = [subprocess.Popen([sys.executable, "-c", code, *argv, f"distributed.process_id={i}"],
                              env=device_env(devices, fast_compile), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(processes)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-4000:]
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs
