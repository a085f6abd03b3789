"""The benchmarks are not run by the suite, but what they ask the portal to do must work.

Each benchmark tunes the organisation's limits through `manage.py shell -c <snippet>`;
a snippet that no longer imports (a model moved) would break `make bench` unnoticed.
"""

import importlib.util
from pathlib import Path

import pytest

from core.models import OrganizationSettings

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("script", "snippet"), [("discovery", "_RAISE_LIMITS"), ("terminal", "_LIMITS")]
)
def test_the_settings_snippet_of_each_benchmark_runs(script, snippet):
    exec(getattr(_module(script), snippet), {})  # noqa: S102 - the benchmark's own code
    assert OrganizationSettings.load().api_rate_per_minute == 100000
