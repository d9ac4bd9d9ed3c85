"""Run by tests/test_api.py: `import pard_jax` and one look at its exports import no JAX; one RESULT line."""

import json
import sys

import pard_jax

names = dir(pard_jax)
print("RESULT " + json.dumps({"jax": "jax" in sys.modules, "exports": all(n in names for n in pard_jax.__all__)}))
