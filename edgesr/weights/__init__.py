"""Weights shipped inside the package, so the main job runs offline (see ``NOTICE.md``)."""
