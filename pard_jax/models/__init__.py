"""The decoder: its config (HF config.json round trip), the Flax modules, the KV cache and attention masks."""
