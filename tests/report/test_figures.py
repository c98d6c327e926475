"""Every kind of picture reads without zooming: no text outside the canvas, no two labels on
top of each other (tight bounding boxes from the renderer), bounded canvases, block outputs
and residual branches as separate series, grouped ticks on long sides."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import repcompare
from repcompare.report.atlas import alias_names
from repcompare.report.baselines import baselines_report
from repcompare.report.curves import draw_curves
from repcompare.report.heatmap import GROUPED_ABOVE, MAX_INCHES, draw_heatmap
from repcompare.report.model import report_figures
from repcompare.results.curves import LayerCurve
from tests.support.layout import text_problems
from tests.support.results import cka_result, class_fit_result, invariance_result

DATA = {"data": "builtin:48:32", "image_size": 32, "crop_pct": 1.0, "workers": 0}


def paper_layers(blocks: int) -> tuple[list[str], list[str]]:
    """The paper preset of a ResNet with ``blocks`` blocks: names and roles, in depth order."""
    names, roles = [], []
    for b in range(blocks):
        block = f"layer{b // 2 + 1}.{b % 2}"
        names += [f"{block}.bn2", block]
        roles += ["residual", "block"]
    return names, roles


@pytest.fixture(scope="module")
def atlas():
    models = ("timm:resnet18", "torchvision:resnet18", "timm:resnet34", "timm:resnet10t")
    return repcompare.atlas(*models, layers="blocks", reduce="avgpool", reference="1", **DATA)


def _figures():
    paper = cka_result()
    names, roles = paper_layers(8)
    curve = LayerCurve(
        "a model with a long name", "", names, np.linspace(0.2, 0.9, 16), roles=roles
    )
    yield "cka", report_figures(paper.report())
    yield "invariance", report_figures(invariance_result().report())
    yield "class fit", report_figures(class_fit_result().report())
    yield "baselines", report_figures(baselines_report(paper, {"timm:resnet18": paper}))
    yield "paper curve", [draw_curves([curve], "CKA", "a title " * 12, (0, 1))]


@pytest.mark.parametrize(("kind", "figures"), list(_figures()), ids=lambda v: str(v)[:12])
def test_every_text_is_inside_the_canvas_and_no_two_overlap(kind, figures):
    for figure in figures:
        assert text_problems(figure) == [], f"{kind}: {figure.get_label()}"


def test_the_atlas_pictures_read_without_zooming(atlas):
    figures = report_figures(atlas.report())
    assert {f.get_label() for f in figures} >= {"atlas_cka_models", "atlas_cka_mds"}
    for figure in figures:
        assert text_problems(figure) == [], figure.get_label()
    mds = next(f for f in figures if f.get_label() == "atlas_cka_mds")
    (ax,) = mds.axes
    assert sorted(t.get_text() for t in ax.texts) == ["M1", "M2", "M3", "M4"]
    legend = [t.get_text() for t in mds.legends[0].get_texts()]
    assert legend[0] == f"M1: {atlas.models[0]}"


def test_block_outputs_and_residual_branches_are_separate_series():
    names, roles = paper_layers(8)
    values = np.tile([1.3, 0.25], 8)  # a line through both kinds would swing at every tick
    figure = draw_curves([LayerCurve("SL", "", names, values, roles=roles)], "inter", "t")
    block, residual = figure.axes[0].get_lines()
    np.testing.assert_array_equal(block.get_ydata(), np.full(8, 0.25))
    np.testing.assert_array_equal(residual.get_ydata(), np.full(8, 1.3))
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "SL (block outputs)",
        "SL (residual branches)",
    ]
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == [n for n, r in zip(names, roles, strict=True) if r == "block"]


def test_a_long_side_gets_one_tick_label_per_block():
    names, _ = paper_layers(36)  # 72 layers, as a ResNet-50's paper preset with its stem
    assert len(names) > GROUPED_ABOVE
    values = np.random.default_rng(0).uniform(0, 1, (72, 72))
    figure = draw_heatmap(values, names, names, "A", "B", "CKA A vs B: a title")
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == list(dict.fromkeys(n.rsplit(".bn2", 1)[0] for n in names))
    assert len(ax.lines) == 2 * (len(labels) - 1)  # a separator between blocks, each axis
    assert text_problems(figure) == []


DRAW_HUGE = """
import resource, sys
from pathlib import Path
import numpy as np
from repcompare.report.files import save_figure
from repcompare.report.heatmap import draw_heatmap

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

out = Path(sys.argv[1])
save_figure(draw_heatmap(np.eye(3), list("abc"), list("abc"), "r", "c", "t"), out / "warm")
before = peak()
names = [f"m{m}.blocks.{b}.{p}" for m in range(12) for b in range(12) for p in "abcdef"]
values = np.random.default_rng(0).uniform(0, 1, (len(names), len(names)))  # 864 x 864
figure = draw_heatmap(values, names, names, "layers", "layers", "12 models")
save_figure(figure, out / "huge")
print(peak() - before, max(figure.get_size_inches()))
"""


def test_a_huge_heatmap_stays_within_a_few_thousand_pixels_and_draws_in_little_memory(tmp_path):
    """864 layers (12 ViT-tiny-sized models, sublayers): the canvas is bounded and drawing
    it, PNG and SVG, adds little to the process's peak resident memory (measured in a
    process of its own, the Agg buffers included)."""
    done = subprocess.run(
        [sys.executable, "-c", DRAW_HUGE, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    grown, inches = map(float, done.stdout.split())
    assert inches <= MAX_INCHES and grown < 300e6  # measured: 88 MB
    assert max(Image.open(tmp_path / "huge.png").size) <= 3000


def test_a_model_keeps_its_colour_across_variants():
    curves = [replace(c, model=m) for c, m in zip(invariance_result().curves, "ABAB", strict=True)]
    figure = draw_curves(curves, "CKA", "t")
    colours = {line.get_label(): line.get_color() for line in figure.axes[0].get_lines()}
    assert colours["A (simclr)"] == colours["A (flip)"] != colours["B (simclr)"]


def test_atlas_ticks_name_models_by_short_aliases_explained_in_the_title(atlas):
    heatmap = next(f for f in report_figures(atlas.report()) if f.get_label() == "atlas_cka")
    ax = heatmap.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[0] == f"M1 {atlas.layers[0][0]}" and ticks[-1].startswith("M4 ")
    assert all(f"M{k}: {m}" in ax.get_title().replace("\n", " ") for k, m in [(1, atlas.models[0])])
    many = replace(atlas, layers=[[f"blocks.{i}.x{j}" for i in range(80) for j in "ab"]] * 4)
    assert sorted(set(alias_names(many))) == ["M1", "M2", "M3", "M4"]  # one label per model
