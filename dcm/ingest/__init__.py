"""dcm.ingest."""
