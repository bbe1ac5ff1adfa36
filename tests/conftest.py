"""Shared pytest fixtures for the qnn_ext test suite.

``isa``: runs a test once per kernel level that this build and CPU offer
(``qnn_ext.build_info()["isas_available"]``), switching with ``qnn_ext._core.set_isa`` and
restoring the previous level afterwards, so results can be compared across levels.

qnn_ext is imported lazily: test modules that do not need the extension (for example the pure
Python string-parser tests) must still collect when the extension is missing or broken.
"""

import pytest


def _available_isas():
    try:
        import qnn_ext

        isas = list(qnn_ext.build_info()["isas_available"])
    except Exception:  # extension not built yet: tests using the fixture fail on import anyway
        isas = []
    return isas or ["ref"]


@pytest.fixture(params=_available_isas())
def isa(request):
    import qnn_ext

    previous = qnn_ext.build_info()["isa"]
    qnn_ext._core.set_isa(request.param)
    try:
        yield request.param
    finally:
        qnn_ext._core.set_isa(previous)
