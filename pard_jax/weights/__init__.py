"""Model weights in and out: the HF <-> params table, HF directories, GGUF files, the on-disk cache, model
SPECs and aliases, HF export, and tokenizers."""
