"""Compiled programs are kept on disk for the whole suite, as the command-line programs keep them
(`pard_jax.cli.enable_compilation_cache`): a warm run skips most compilation, in this process from its first
test on and in the programs the tests start."""

import os

import jax

from pard_jax.cli import enable_compilation_cache

enable_compilation_cache()
os.environ["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
