"""Running test programs as separate processes: N simulated CPU devices, or two processes joined with
`jax.distributed` on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def device_env(devices: int) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")


def result_of(stdout: str) -> dict:
    """The JSON of the last `RESULT {...}` line a test program printed."""
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])


def run_joined(code: str, argv: list[str], devices: int, processes: int = 2, timeout: int = 240) -> list[str]:
    """Run `python -c code *argv` as `processes` processes of `devices` CPU devices each, joined by the
    `distributed.*` config keys on a free loopback port; their stdouts, in process order."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [*argv, "distributed.enabled=true", f"distributed.coordinator_address=127.0.0.1:{port}",
            f"distributed.num_processes={processes}"]
    procs = [subprocess.Popen([sys.executable, "-c", code, *argv, f"distributed.process_id={i}"],
                              env=device_env(devices), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(processes)]
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
