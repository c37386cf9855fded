"""GPU video model: audio-conditioned, character-customised Wan (see models/README.md)."""
