"""Serve's speed flags: set where Ray starts, and an operator's own choice wins."""

import pytest

from deployments.serve_env import SERVE_ENV, with_serve_env


def test_the_flags_are_added_to_an_environment_without_them():
    environ = {"PATH": "/usr/bin"}
    assert with_serve_env(environ) == {"PATH": "/usr/bin", **SERVE_ENV}
    assert environ == {"PATH": "/usr/bin"}  # a new mapping: the caller's is left alone


@pytest.mark.parametrize("name", sorted(SERVE_ENV))
def test_a_flag_the_operator_set_is_kept(name):
    assert with_serve_env({name: "0"})[name] == "0"

