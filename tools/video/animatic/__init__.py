"""Parts of the animatic renderer (`renderer.py`): staging, sets, lips, life, sprites."""
