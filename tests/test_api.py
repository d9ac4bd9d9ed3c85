"""The Python API (`pard_jax.load`, `generate`, `stream`): the README's example runs as shown, on the default pair
(SmolLM2-135M-Instruct and the shipped draft); a stream is the text `generate` gives, and can be left early;
`import pard_jax` imports no JAX. (That PARD gives plain decoding's tokens is tested in test_decoding, test_cli.)"""

from __future__ import annotations

import os
import re

import pytest

import pard_jax
from pard_jax.errors import UserError
from processes import REPO, run_program

README = os.path.join(REPO, "README.md")


def readme_example() -> str:
    """The fenced python block of the README's "Python API" section."""
    with open(README, encoding="utf-8") as f:
        section = f.read().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section shows one python example"
    return blocks[0]


def test_the_readme_example_runs_as_shown(capsys):
    namespace: dict = {}
    exec(compile(readme_example(), README, "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    pipe = namespace["pipe"]
    assert pipe.config.mode == "pard" and pipe.config.max_new_tokens == 24
    assert all(re.fullmatch(r"'.+': (\d+) tokens, \d\.\d\d per target call", ln) for ln in out[:2]), out
    assert any(float(ln.split(", ")[-1].split()[0]) > 1 for ln in out[:2])  # the draft's tokens were accepted

    # The streamed pieces make the text that `generate` gives for the same prompt as token ids.
    ids = pard_jax.encode(pipe, "Write a haiku about the sea.")
    whole = pard_jax.generate(pipe, [ids])[0]
    assert "\n".join(out[2:]) == whole.text and 0 < whole.num_generated <= 24
    # A stream left early stops, and leaves the generator as it was; an error reaches the caller.
    pieces = pard_jax.stream(pipe, ids, every=1)
    first = next(pieces)
    pieces.close()
    assert whole.text.startswith(first) and len(first) < len(whole.text)
    assert pipe.generator.chunk_iterations == 0
    with pytest.raises(UserError, match="a prompt is empty"):
        list(pard_jax.stream(pipe, []))


def test_load_builds_the_config_it_is_given_with_the_settings_over_it(monkeypatch, tmp_path):
    from pard_jax import api

    monkeypatch.setattr(api, "build", lambda cfg: cfg)  # what setup.build would be given
    default = pard_jax.load(k=3, mesh={"tensor": 2})
    assert (default.target, default.draft, default.mode, default.k, default.mesh.tensor) == \
        ("smollm2-135m-instruct", "smollm2-135m-pard", "pard", 3, 2)
    given = pard_jax.InferConfig(target="t", mode="ar", max_new_tokens=7)
    assert pard_jax.load(given, temperature=0.5) == pard_jax.InferConfig(target="t", max_new_tokens=7,
                                                                         temperature=0.5)
    (tmp_path / "c.yaml").write_text("target: t\nmode: ar\nbatch_size: 4\n")
    assert pard_jax.load(str(tmp_path / "c.yaml"), batch_size=2) == pard_jax.InferConfig(target="t", batch_size=2)
    with pytest.raises(UserError, match="unknown config key 'max_new'"):
        pard_jax.load(max_new=3)


def test_import_pard_jax_imports_no_jax():
    assert run_program("import_light", devices=None, timeout=60) == {"jax": False, "exports": True}
