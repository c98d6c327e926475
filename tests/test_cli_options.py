"""Every option is declared once (``repcompare.options.option``) and each command's flag,
default, help and ``--help`` panel come from that declaration; a default a command
changes is written once (``COMMAND_DEFAULTS``) and both the CLI and the API read it."""

from dataclasses import fields

import pytest
import typer.main
from typer.testing import CliRunner

from repcompare.analyses.study import StudyOptions
from repcompare.cli import PANELS, app
from repcompare.errors import InputError
from repcompare.options import (
    COMMAND_DEFAULTS,
    STUDY_EXCLUDES,
    AtlasOptions,
    CKAOptions,
    ClassFitOptions,
    DataOptions,
    LayerOptions,
    ModelOptions,
    RunOptions,
    ViewOptions,
    option_fields,
    options_of,
    split_options,
)

COMMANDS = typer.main.get_command(app).commands
GROUPS = {
    "layers": (ModelOptions, LayerOptions),
    "extract": (ModelOptions, LayerOptions, DataOptions, ViewOptions, RunOptions),
    "cka": (CKAOptions, ModelOptions, LayerOptions, DataOptions, RunOptions),
    "invariance": (ModelOptions, LayerOptions, DataOptions, ViewOptions, RunOptions),
    "class-fit": (ClassFitOptions, ModelOptions, LayerOptions, DataOptions, RunOptions),
    "atlas": (AtlasOptions, ModelOptions, LayerOptions, DataOptions, RunOptions),
    "study": (
        CKAOptions,
        ClassFitOptions,
        ModelOptions,
        LayerOptions,
        DataOptions,
        ViewOptions,
        RunOptions,
    ),
    "demo": (DataOptions,),
}
NOT_ON = {  # options a command does not offer, and why
    "token_cap": {"extract", "class-fit", "atlas", "study"},  # --reduce tokens is refused there
    "bootstrap": {"extract", "atlas"},  # nothing to resample
    "layers": {"cka"},  # --layers-a and --layers-b instead
} | {name: {"study"} for name in STUDY_EXCLUDES if name != "token_cap"}
ONLY = {"demo": {"device"}}  # the demo fixes its data and models


def offered(command: str, name: str) -> bool:
    return command not in NOT_ON.get(name, ()) and name in ONLY.get(command, {name})


@pytest.mark.parametrize("command", sorted(GROUPS))
def test_each_command_offers_the_declared_options_with_their_defaults_help_and_panel(command):
    params = {p.name: p for p in COMMANDS[command].params}
    defaults = COMMAND_DEFAULTS.get(command.replace("-", "_"), {})
    for group in GROUPS[command]:
        for declared in option_fields(group):
            if not offered(command, declared.name):
                assert declared.name not in params
                continue
            param = params[declared.name]
            assert param.opts == [declared.metadata["flag"]], declared.name
            assert param.help == declared.metadata["help"], declared.name
            assert param.default == defaults.get(declared.name, declared.default), declared.name
            assert param.rich_help_panel == group.panel


@pytest.mark.parametrize("command", sorted(GROUPS))
def test_help_lists_options_panel_by_panel_with_examples_and_flags_take_no_value(command):
    params = [p for p in COMMANDS[command].params if p.param_type_name == "option"]
    ranks = [PANELS.index(p.rich_help_panel) for p in params]
    assert ranks == sorted(ranks)
    for param in params:
        assert param.metavar == ("" if param.is_flag else param.metavar.upper()), param.name
    shown = CliRunner().invoke(app, [command, "--help"], terminal_width=200).output
    assert shown.count("$ repcompare ") == 2
    assert "<bool>" not in shown and "<int>" not in shown


def test_the_api_and_the_cli_read_a_command_default_from_one_place():
    _, layer, view, run = options_of(
        "study", {}, ModelOptions, LayerOptions, ViewOptions, RunOptions
    )
    study = {p.name: p.default for p in COMMANDS["study"].params}
    assert (layer.layers, view.views, run.bootstrap) == (("paper",), 2, 100)
    assert (study["layers"], study["views"], study["bootstrap"]) == (["paper"], 2, 100)
    _, run = options_of("cka", {"bootstrap": None}, ModelOptions, RunOptions)
    assert run.bootstrap == 0  # None is the default, here the field's
    (view,) = options_of("study", {"views": None}, ViewOptions)
    assert view.views == 2  # and here the command's


def test_names_are_taken_as_one_string_or_several_comma_separated_without_repeats():
    assert LayerOptions("layer1,layer2").layers == ("layer1,layer2",)  # select_layers splits
    assert LayerOptions(["blocks", "blocks"]).layers == ("blocks",)
    assert ViewOptions(["crop,color", "crop"]).augment == ("crop", "color")
    assert AtlasOptions("cka,procrustes").measure == ("cka", "procrustes")
    assert AtlasOptions([]).measure == ("cka",)
    assert ViewOptions([]).augment is None
    with pytest.raises(InputError, match="--augment ',' names nothing"):
        ViewOptions([","])


def test_options_without_a_flag_are_not_offered_twice():
    """``bootstrap`` and ``seed`` of ``ClassFitOptions`` and ``CKAOptions`` come from the
    command's ``--bootstrap`` and the data's ``--seed``: one parameter each."""
    for command in GROUPS:
        names = [p.name for p in COMMANDS[command].params]
        assert len(names) == len(set(names))
    for group in (ClassFitOptions, CKAOptions):
        assert {f.name for f in fields(group)} - {f.name for f in option_fields(group)} == {
            "bootstrap",
            "seed",
        }


def test_the_api_takes_every_declared_option_by_name_and_refuses_others():
    model, data, fit = split_options(
        "class_fit",
        {"knn_k": 5, "seed": 3, "image_size": 32},
        ModelOptions,
        DataOptions,
        ClassFitOptions,
    )
    assert (model, data, fit) == ({"image_size": 32}, {"seed": 3}, {"knn_k": 5})
    with pytest.raises(TypeError, match="'tokens'"):
        split_options("study", {"tokens": True}, ClassFitOptions, exclude=("tokens",))
    with pytest.raises(TypeError, match="'bootstrap'"):  # not an option of these groups
        split_options("class_fit", {"bootstrap": 3}, ClassFitOptions)


@pytest.mark.parametrize(
    ("group", "given", "sentence"),
    [
        (RunOptions, {"batch_size": 0}, "--batch-size 0 must be 1 or more"),
        (RunOptions, {"bootstrap": -1}, "--bootstrap -1 must be 0"),
        (AtlasOptions, {"sample": 5}, "--sample 5 is too small"),
    ],
)
def test_each_group_checks_its_own_values(group, given, sentence):
    with pytest.raises(InputError, match=sentence):
        group(**given)


def test_a_study_runs_the_declared_options_with_its_own_bootstrap_and_seed():
    study = StudyOptions(bootstrap=7, cka_options=CKAOptions(kernel="rbf"))
    assert study.fit(seed=3) == ClassFitOptions(bootstrap=7, seed=3)
    assert study.cka(seed=3, bootstrap=0) == CKAOptions(kernel="rbf", seed=3)
