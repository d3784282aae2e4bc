"""pytest plugin: the ``local_simulator`` fixture for users' own tests (filled in later)."""
