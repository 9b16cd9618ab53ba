"""The ``dcm`` command line."""
