"""How production serves the portal's static files (WhiteNoise, compressed and hashed).

Two things the stock manifest storage gets wrong for our front end:

* The pages' ES modules import each other by relative path (`./api.js`): those imports
  are rewritten to the hashed names too (`support_js_module_import_aggregation`), so a
  page and every module it pulls in are one consistent, long-cacheable version.
* Monaco (`vendor/monaco/`) is a prebuilt AMD build of 25 MB that loads its own modules
  and workers by their plain paths and points at source maps it does not ship: it
  keeps its names and contents (it is only compressed), so a reference the build leaves
  dangling cannot fail `collectstatic`, and its size does not go through the hashing
  passes. Pages reach it by `STATIC_URL` + `MONACO` (`monaco_url()`), never `static()`.
"""

from __future__ import annotations

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage

MONACO = "vendor/monaco/vs"


def monaco_url() -> str:
    """Where Monaco's AMD loader finds its modules (`<base>/loader.js`, `<base>/editor/…`)."""
    return f"{settings.STATIC_URL.rstrip('/')}/{MONACO}"


class PortalStaticStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True

    def post_process(self, paths, dry_run=False, **options):
        vendored = [path for path in paths if path.startswith(MONACO + "/")]
        hashed = {path: value for path, value in paths.items() if path not in set(vendored)}
        yield from super().post_process(hashed, dry_run=dry_run, **options)
        if not dry_run:
            for name, compressed_name in self.compress_files(vendored):
                yield name, compressed_name, True
