"""Settings, split per concern. Pick a module with DJANGO_SETTINGS_MODULE:
``local`` (dev stack, the default), ``test`` (the test stack) or ``production``."""
