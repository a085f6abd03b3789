"""Test settings: the production module with fast hashing and a throw-away var dir."""

import os
import tempfile

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="enclave-test-"))

from portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

# A file-backed test database (not SQLite's shared-cache in-memory one, whose table locks
# ignore the busy timeout): concurrency tests then see the WAL behaviour production has.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.mkdtemp(prefix="enclave-testdb-"), "test.sqlite3")
    }
