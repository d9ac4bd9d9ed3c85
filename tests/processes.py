"""Running the test programs (tests/programs/*.py) as separate processes: on N simulated CPU devices, or as two
processes joined with `jax.distributed` on loopback. A program prints its findings as one `RESULT {json}` line
for the test to assert on."""

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


def device_env(devices: int | None, fast_compile: bool = False) -> dict:
    """The environment of a program on the CPU with `devices` simulated devices (None: XLA's own flags, none
    inherited), importing this checkout's `pard_jax` whatever is installed."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([REPO, *filter(None, [os.environ.get("PYTHONPATH")])]))
    if devices is None:
        env.pop("XLA_FLAGS", None)
    else:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}" + (
            f" {FAST_COMPILE}" if fast_compile else "")
    return env


def command(program: str, argv) -> list[str]:
    """`python PROGRAM ARGV`: a name under tests/programs/ (without .py), or a script's path in the checkout."""
    path = program if program.endswith(".py") else os.path.join("tests", "programs", f"{program}.py")
    return [sys.executable, os.path.join(REPO, path), *map(str, argv)]


def result_of(stdout: str) -> dict:
    """The JSON of the last `RESULT {...}` line a test program printed."""
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])


def run_program(program: str, argv=(), devices: int | None = 1, timeout: int = 300, fast_compile: bool = False):
    """Run a test program (`command`) to its end on `devices` CPU devices; the JSON of its RESULT line. It must
    exit with status 0 (else the test fails with the end of its stderr)."""
    proc = subprocess.run(command(program, argv), env=device_env(devices, fast_compile), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return result_of(proc.stdout)


def run_joined(program: str, argv: list[str], devices: int, processes: int = 2, timeout: int = 240,
               fast_compile: bool = False) -> list[str]:
    """Run a program (`command`) as `processes` processes of `devices` CPU devices each, joined by the
    `distributed.*` config keys on a free loopback port; their stdouts, in process order."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [*argv, "distributed.enabled=true", f"distributed.coordinator_address=127.0.0.1:{port}",
            f"distributed.num_processes={processes}"]
    procs = [subprocess.Popen(command(program, [*argv, f"distributed.process_id={i}"]),
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
