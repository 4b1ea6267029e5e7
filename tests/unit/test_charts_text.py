"""views/_charts.py text: long class names wrap instead of being cut, user text stays escaped, the legend never
sits on an axis title, and a multi-task run's epochs give one accuracy line per task (issue 9, text + major 3)."""
from __future__ import annotations

from views import _charts

LONG = "ASIAN GREEN BEE-EATER"


def test_long_class_names_wrap_in_the_confusion_matrix_and_top_k():
    assert _charts.wrapped(LONG) == "ASIAN GREEN<br>BEE-EATER"
    assert _charts.wrapped("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    figure = _charts.confusion([[3, 1], [0, 4]], [LONG, "CROW"])
    assert list(figure.data[0].x) == ["ASIAN GREEN<br>BEE-EATER", "CROW"]
    assert figure.data[0].customdata[0][1][1] == "CROW" and figure.data[0].customdata[0][0][0] == LONG
    assert figure.layout.yaxis.automargin and figure.layout.xaxis.automargin
    bars = _charts.top_k([(LONG, 0.7), ("CROW", 0.3)])
    assert LONG.replace(" ", "") not in "".join(bars.data[0].y) and bars.layout.yaxis.automargin


def test_curves_have_no_axis_title_under_the_legend():
    rows = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10, "val_loss": 1.2 / e, "val_accuracy": 0.5}
            for e in (1, 2, 3)]
    figure = _charts.training_curves(rows, None, 3)
    assert figure.layout.xaxis.title.text is None and figure.layout.xaxis2.title.text is None
    assert "per epoch" in figure.layout.annotations[0].text
    assert {t.name for t in figure.data} == {"training loss", "validation loss", "training accuracy",
                                             "validation accuracy"}


def test_task_accuracies_from_multitask_epochs():
    rows = [{"epoch": 1, "loss": 1.0, "accuracy": None, "colour_accuracy": 0.5, "val_colour_accuracy": 0.4,
             "bright_accuracy": 0.6}]
    assert _charts.task_accuracies(rows) == ["colour", "bright"]
    assert _charts.task_accuracies([{"epoch": 1, "accuracy": 0.5, "val_accuracy": 0.5}]) == []
    names = {t.name for t in _charts.training_curves(rows, None, 2).data}
    assert {"training colour accuracy", "validation colour accuracy", "training bright accuracy"} <= names
