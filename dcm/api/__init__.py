"""dcm.api."""
