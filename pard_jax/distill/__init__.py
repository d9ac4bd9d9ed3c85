"""Distillation data: generated prompts (code, math, general) and the target's own answers to them."""
