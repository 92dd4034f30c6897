"""pytest plugins of the Kenshin suite (loaded through pytest_plugins in the root conftest.py)."""
