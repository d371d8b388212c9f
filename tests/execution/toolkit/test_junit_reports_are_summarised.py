from __future__ import annotations

from pathlib import Path

import pytest

from shoal.execution._toolkit._junit import JUnitError, summarize

REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="all" time="9.5">
  <testsuite name="s1" tests="4">
    <testcase name="ok" classname="c" time="1.25"/>
    <testcase name="bad" classname="c" time="0.5"><failure message="boom">trace</failure></testcase>
    <testcase name="skip" classname="c"><skipped/></testcase>
    <testcase name="err" classname="c" time="0.25"><error message="x"/></testcase>
  </testsuite>
  <testsuite name="s2"><testcase name="ok2" time="1"/></testsuite>
</testsuites>
"""


def test_summary_counts_each_outcome_and_sums_case_times(tmp_path: Path) -> None:
    f = tmp_path / "r.xml"
    f.write_text(REPORT)
    s = summarize(f)
    assert s is not None
    assert s.to_dict() == {"tests": 5, "passed": 2, "failed": 1, "skipped": 1, "errored": 1, "duration": 3000}


def test_single_testsuite_root_with_namespace_is_a_report(tmp_path: Path) -> None:
    f = tmp_path / "r.xml"
    f.write_text('<testsuite xmlns="urn:x" time="2"><testcase name="a"/></testsuite>')
    s = summarize(f)
    assert s is not None
    assert (s.tests, s.passed, s.duration) == (1, 1, 2000)


def test_other_xml_is_not_a_report(tmp_path: Path) -> None:
    f = tmp_path / "pom.xml"
    f.write_text("<project><testsuite/></project>")
    assert summarize(f) is None


def test_doctype_is_refused_without_expanding_entities(tmp_path: Path) -> None:
    f = tmp_path / "evil.xml"
    f.write_text(
        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<testsuite><testcase name='&b;'/></testsuite>"
    )
    with pytest.raises(JUnitError, match="DOCTYPE"):
        summarize(f)


def test_size_cap_refuses_large_reports(tmp_path: Path) -> None:
    f = tmp_path / "big.xml"
    f.write_text(REPORT)
    with pytest.raises(JUnitError, match="cap"):
        summarize(f, max_bytes=100)


def test_malformed_report_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "broken.xml"
    f.write_text("<testsuite><testcase></testsuite>")
    with pytest.raises(JUnitError, match="well-formed"):
        summarize(f)
