"""Supervised training of a VDSR teacher on a folder of HR images (``edgesr teacher train``).

The package ships a teacher that edgesr trained itself, so that distillation works offline
and without anyone else's weights; this is the code that makes it.
"""
