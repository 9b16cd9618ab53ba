"""dcm.analysis."""
