"""Test settings: the production module with fast hashing and a throw-away var dir."""

import os
import tempfile

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="enclave-test-"))

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
