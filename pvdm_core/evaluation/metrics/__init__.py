"""Measures of videos besides FVD: I3D's weight files (i3d_weights), the shape judge
(shape_judge), the jump at a clip boundary (continuity). Part of the evaluation layer.
"""
