"""Speculative decoding: the four steps (draft, verify, accept, commit), the on-device loop, the host-side
generator, the inference config and its setup."""
