from tests.bad_input.support import ws  # noqa: F401 - the shared workspace fixture
