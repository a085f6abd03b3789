"""Production static files: collectstatic succeeds, modules import their hashed siblings,
Monaco keeps its plain names."""

import re

from django.core.management import call_command
from django.test import override_settings

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "core.storage.PortalStaticStorage"},
}


def test_collectstatic_hashes_the_modules_and_leaves_monaco_alone(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=PRODUCTION_STORAGES):
        call_command("collectstatic", interactive=False, verbosity=0)
    (editor,) = [p for p in (tmp_path / "js").glob("editor.*.js") if p.suffix == ".js"]
    imports = re.findall(r'from "(\./[^"]+)"', editor.read_text())
    assert imports and all(re.fullmatch(r"\./[a-z]+\.[0-9a-f]{12}\.js", i) for i in imports)
    for name in imports:
        assert (tmp_path / "js" / name[2:]).exists()
    monaco = tmp_path / "vendor" / "monaco" / "vs"
    assert (monaco / "loader.js").exists() and (monaco / "loader.js.gz").exists()
    assert not list(monaco.glob("loader.*.js"))  # no hashed copies of Monaco
