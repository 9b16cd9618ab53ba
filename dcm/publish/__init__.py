"""dcm.publish."""
