"""Progress to a log (stderr not a terminal) is a line every few seconds and one at the end,
with the count and the rate; never blank lines or a bar's control codes."""

from repcompare import progress
from repcompare.progress import Feedback, LogLines


def test_progress_to_a_log_is_a_line_every_few_seconds_and_at_the_end(capsys, monkeypatch):
    with Feedback(True).bar("cka") as bar:
        assert isinstance(bar, LogLines)  # pytest's stderr is no terminal
        for _ in range(3):
            bar(10, 40)  # within LOG_SECONDS: nothing yet
        assert capsys.readouterr().err == ""
        bar.info = "3 MB"
        bar(10, 40)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cka: 40/40 images, ")
    assert lines[0].endswith(" images/s, 3 MB")
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)
    with Feedback(True).bar("extract", completed=5) as bar:
        bar(5, 20)
        bar(5, 20)
    assert [line.split(",")[0] for line in capsys.readouterr().err.splitlines()] == [
        "extract: 10/20 images",
        "extract: 15/20 images",
    ]


def test_nothing_is_shown_unless_asked(capsys):
    with Feedback(False).bar("cka") as bar:
        assert bar is None
    assert capsys.readouterr().err == ""
