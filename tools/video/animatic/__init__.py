"""Parts of the animatic renderer (tools/video_animatic.py): staging, sets, lips, life, sprites."""
