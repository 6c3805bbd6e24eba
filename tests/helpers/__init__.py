"""Support code the tests share: plain functions, classes and constants.

Tests import from here, never from another test module; fixtures stay in the
conftest.py files (tests/unit/test_test_imports.py keeps it so).
"""
