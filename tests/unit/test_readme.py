"""The README tells the truth about configuration: its tables match the settings classes."""

from tests.settings_reference import README, rendered_readme


def test_readme_configuration_tables_match_the_code() -> None:
    assert README.read_text() == rendered_readme(), "README is stale: run `make docs`"
