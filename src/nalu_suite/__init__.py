"""nalu-suite: neural arithmetic units and the NALU paper's tasks (Trask et al., NeurIPS 2018)."""

__version__ = "0.1.0"
