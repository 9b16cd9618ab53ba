"""dcm.simulate."""
