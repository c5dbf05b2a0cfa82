"""Reports of a run: the terminal table of tests by guarantees, JSON (and HTML) files per test."""

from pytest_stateful.report.files import report_name, write_reports
from pytest_stateful.report.table import guarantee_table

__all__ = ["guarantee_table", "report_name", "write_reports"]
