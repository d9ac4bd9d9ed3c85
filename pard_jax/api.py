"""The Python API (exported from `pard_jax`): load a target and draft, generate for a batch of prompts, stream one.

A thin layer over what the programs use: `speculative.setup.build` turns an `InferConfig` into a `Pipeline`
(generator, tokenizer, config), and `Generator.generate` decodes token ids. Those who hold their own params make a
`Generator` from a `DecodeLoop` directly; those who build their own loop use the four steps
(`speculative.steps`), which `pard_jax` exports too.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Iterator, Sequence

from pard_jax import distributed
from pard_jax.config_io import from_dict, load_yaml
from pard_jax.speculative.config import DEFAULT_CONFIG, InferConfig
from pard_jax.speculative.generator import Result
from pard_jax.speculative.setup import Pipeline, build
from pard_jax.weights.tokenizer import encode_prompt

Prompt = str | Sequence[int]


def load(config: InferConfig | str | None = None, **settings) -> Pipeline:
    """Load a target (and its draft) and make their generator.

    `config` is an `InferConfig` or a YAML file of one (default: the packaged config, SmolLM2-135M-Instruct with
    the shipped draft); `settings` override its keys, e.g. `target=`, `draft=`, `mode=` ("ar", "sd",
    "pard"), `k=`, `max_new_tokens=`, `temperature=`, `batch_size=`, `dtype=`, `mesh={"tensor": 2}`. Another
    target needs its own `draft=` (or `mode="ar"`). In a multi-host run (`distributed.enabled`) every process calls
    this, then generates the same prompts.
    """
    data = dataclasses.asdict(config) if isinstance(config, InferConfig) else load_yaml(config or DEFAULT_CONFIG)
    cfg = from_dict(InferConfig, {**data, **settings})
    distributed.initialize(cfg.distributed)
    return build(cfg)


def encode(pipeline: Pipeline, prompt: Prompt) -> list[int]:
    """A prompt's token ids: text goes through the chat template (unless the config's `chat_template` is off);
    token ids are taken as they are."""
    if isinstance(prompt, str):
        return encode_prompt(pipeline.tokenizer, prompt, pipeline.config.chat_template)
    return [int(t) for t in prompt]


@dataclasses.dataclass
class Completion(Result):
    """A `Result` (generated `token_ids`, target calls, acceptance, timings) and its decoded `text`."""

    text: str = ""


def generate(pipeline: Pipeline, prompts: Sequence[Prompt], seed: int | None = None) -> list[Completion]:
    """Generate for each prompt (text or token ids), batched by the config's `batch_size`; results in prompt
    order. `seed` (default: the config's) matters only when sampling."""
    ids = [encode(pipeline, p) for p in prompts]
    results = pipeline.generator.generate(ids, seed=pipeline.config.seed if seed is None else seed)
    return [Completion(**vars(r), text=_decode(pipeline, r.token_ids)) for r in results]


def stream(pipeline: Pipeline, prompt: Prompt, seed: int | None = None, every: int | None = None) -> Iterator[str]:
    """The text generated for one prompt, in pieces as the decoding loop commits tokens: the host reads the
    loop's state every `every` iterations (default: the config's `stream_every`). Generation runs in a thread;
    leaving the loop early stops it at its next piece."""
    ids = encode(pipeline, prompt)
    gen = pipeline.generator
    pieces: queue.Queue = queue.Queue()
    stop = threading.Event()
    end = object()
    text = _Text(pipeline)

    def on_tokens(_index: int, new_ids: list[int], finished: bool) -> None:
        if stop.is_set():
            raise _Stopped
        piece = text.add(new_ids, finished)
        if piece:
            pieces.put(piece)

    def work() -> None:
        try:
            gen.generate([ids], seed=pipeline.config.seed if seed is None else seed, on_tokens=on_tokens)
        except _Stopped:
            pass
        except BaseException as e:  # raised again in the caller's thread
            pieces.put(e)
        finally:
            pieces.put(end)

    saved, gen.chunk_iterations = gen.chunk_iterations, every or pipeline.config.stream_every
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while (item := pieces.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
        gen.chunk_iterations = saved


class _Stopped(Exception):
    """Raised in the generation thread when the caller stopped reading a stream."""


def _decode(pipeline: Pipeline, ids: list[int]) -> str:
    return pipeline.tokenizer.decode(ids, skip_special_tokens=True)


class _Text:
    """The new text of a growing list of token ids; a piece that ends inside a multi-byte character waits for
    the rest of it."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline, self.ids, self.shown = pipeline, [], ""

    def add(self, new_ids: list[int], finished: bool) -> str:
        self.ids += new_ids
        text = _decode(self.pipeline, self.ids)
        if not finished and text.endswith("\ufffd"):
            return ""
        piece, self.shown = text[len(self.shown):], text
        return piece
