"""Learned lesion segmentation and artifact flags (small networks trained in this repository)."""
