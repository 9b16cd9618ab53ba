"""dcm.store."""
