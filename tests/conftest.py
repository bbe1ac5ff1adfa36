"""Shared pytest fixtures for the qnn_ext test suite.

``isa``: runs a test once per kernel level that this build and CPU offer
(``qnn_ext.build_info()["isas_available"]``), switching with ``qnn_ext._core.set_isa`` and
restoring the previous level afterwards, so results can be compared across levels.

Hypothesis profiles "ci" (default) and "fuzz": see below.

``_reset_global_state`` (autouse): every test starts and ends in inference mode with the default
hard internal sigmoid, whatever a failing test left behind.

qnn_ext is imported lazily: test modules that do not need the extension (for example the pure
Python string-parser tests) must still collect when the extension is missing or broken.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles: "ci" (the default) keeps the property and fuzz tests to a few seconds in
# all and derandomized, so a CI failure reproduces; python/fuzz.py runs the same tests under
# "fuzz" (random, many examples) for a time budget. HYPOTHESIS_PROFILE=fuzz pytest ... also works.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("fuzz", max_examples=100, deadline=None, derandomize=False,
                          database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(autouse=True)
def _reset_global_state():
    try:
        from qnn_ext import backend, quantizers
    except Exception:  # the parser tests run without the extension
        yield
        return
    backend.set_learning_phase(0)
    quantizers.set_internal_sigmoid("hard")
    backend.set_conv_algorithm("auto")
    yield
    backend.set_learning_phase(0)
    quantizers.set_internal_sigmoid("hard")
    backend.set_conv_algorithm("auto")


@pytest.fixture
def num_threads():
    """Sets the kernels' OpenMP thread count: ``num_threads(n)``; the previous count is restored
    after the test, whatever it did."""
    from qnn_ext import _core

    previous = _core.get_num_threads()
    yield _core.set_num_threads
    _core.set_num_threads(previous)
