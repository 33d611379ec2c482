"""The ingest summary's counts add up: kept + dropped Child elements = Child elements, per return and in all."""

from __future__ import annotations

from pathlib import Path

from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml

OPEN = episode_xml("2023-05-01")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_duplicated_la_child_id_drops_two_elements_and_counts_two(tmp_path: Path) -> None:
    path = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1"), child_xml("C1"), child_xml("C2")))
    summary = ingest([path]).summary()
    assert (summary["children"], summary["child_elements"]) == (1, 3)
    assert (summary["child_elements_kept"], summary["child_elements_dropped"]) == (1, 2)
    assert summary["returns"] == [{"file": "cin_2024.xml", "child_elements": 3, "kept": 1, "dropped": 2}]


def test_counts_add_up_per_return_across_years_a_broken_file_and_an_unusable_one(tmp_path: Path) -> None:
    closed = episode_xml("2023-05-01", closure="2024-02-01", reason="RC7")
    first = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", OPEN), child_xml("C2", OPEN), year=2024))
    broken = census_xml(child_xml("C1", closed), child_xml("C3", OPEN), child_xml("C4", OPEN), year=2025)
    broken = broken.replace("<LAchildID>C3</LAchildID>", "<LAchildID>C3</LAchild>")  # a broken tag in one child
    second = _write(tmp_path, "cin_2025.xml", broken)
    unusable = _write(tmp_path, "notes.xml", "<Notes/>")
    result = ingest([first, second, unusable])
    summary = result.summary()
    assert summary["returns"] == [
        {"file": "cin_2024.xml", "child_elements": 2, "kept": 2, "dropped": 0},
        {"file": "cin_2025.xml", "child_elements": 3, "kept": 2, "dropped": 1},  # C3 could not be read
    ]
    assert (summary["child_elements"], summary["child_elements_kept"], summary["child_elements_dropped"]) == (5, 4, 1)
    assert sorted(r.la_child_id for r in result.records) == ["C1", "C2", "C4"]


def test_a_child_dropped_for_an_error_in_a_later_return_drops_its_earlier_elements_too(tmp_path: Path) -> None:
    first = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", OPEN), year=2024))
    second = _write(tmp_path, "cin_2025.xml", census_xml(child_xml("C1", episode_xml(source="XX")), year=2025))
    result = ingest([first, second])
    assert [(r.kept, r.dropped) for r in result.returns] == [(0, 1), (0, 1)]
    assert (result.summary()["children"], result.summary()["children_with_problems"]) == (0, 1)


def test_a_superseded_copy_is_counted_in_its_own_return_past_an_unusable_one(tmp_path: Path) -> None:
    bad = episode_xml("2023-05-01", modules="<Assessments><AssessmentActualStartDate>x</AssessmentActualStartDate>"
                      "</Assessments>")  # fmt: skip
    first = _write(tmp_path, "cin_2024.xml", census_xml(child_xml("C1", bad), child_xml("C2", OPEN), year=2024))
    no_children = census_xml(year=2025).replace("<Children></Children>", "")  # its header reads; the file does not
    middle = _write(tmp_path, "cin_2025.xml", no_children)
    last = _write(tmp_path, "cin_2026.xml", census_xml(child_xml("C1", OPEN), child_xml("C2", OPEN), year=2026))
    result = ingest([first, middle, last])
    assert result.unusable_files == ["cin_2025.xml"]
    assert [(r.source, r.child_elements, r.kept) for r in result.returns] == [
        ("cin_2024.xml", 2, 2),
        ("cin_2026.xml", 2, 2),
    ]


def test_a_break_in_the_last_child_counts_that_child_as_dropped(tmp_path: Path) -> None:
    text = census_xml(child_xml("C1", OPEN), child_xml("C2", OPEN), year=2024)
    path = _write(tmp_path, "cin_2024.xml", text.replace("<LAchildID>C2</LAchildID>", "<LAchildID>C2</LAchild>"))
    result = ingest([path])
    assert [(r.child_elements, r.kept, r.dropped) for r in result.returns] == [(2, 1, 1)]
