"""avdit: Wan (diffusers) + audio cross-attention + appearance LoRA + router masks + audio CFG."""
