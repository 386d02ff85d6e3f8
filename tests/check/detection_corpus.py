"""The detection corpus: every mutation, registered by importing the modules that define them.

See tests/check/detection_base.py for what a mutation is and docs/checks-detection.md for the
method and the measured rate.
"""

from __future__ import annotations

from . import detection_mesh, detection_workloads
from .detection_base import BENIGN, CLASSES, DEFECTS, PORTABLE, Doc, Mutation

MODULES = (detection_mesh, detection_workloads)  # imported for their registrations
__all__ = ["BENIGN", "CLASSES", "DEFECTS", "MODULES", "PORTABLE", "Doc", "Mutation"]
