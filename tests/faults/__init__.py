import pytest

# The scenarios' shared verdicts (scenario.assert_exactly_once) explain their
# failures like asserts written in the test modules do.
pytest.register_assert_rewrite("tests.faults.scenario")
