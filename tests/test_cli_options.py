"""Every shared option is declared once (``repcompare.options.option``) and each command's
flag, default and help come from that declaration; the API's defaults read the same fields."""

from dataclasses import fields

import pytest
import typer.main

from repcompare.analyses.study import StudyOptions
from repcompare.cli import app
from repcompare.options import (
    STUDY_EXCLUDES,
    CKAOptions,
    ClassFitOptions,
    DataOptions,
    ModelOptions,
    option_fields,
    split_options,
)

COMMANDS = typer.main.get_command(app).commands
GROUPS = {
    "layers": (ModelOptions,),
    "extract": (ModelOptions, DataOptions),
    "cka": (CKAOptions, ModelOptions, DataOptions),
    "invariance": (ModelOptions, DataOptions),
    "class-fit": (ClassFitOptions, ModelOptions, DataOptions),
    "atlas": (ModelOptions, DataOptions),
    "study": (CKAOptions, ClassFitOptions, ModelOptions, DataOptions),
    "demo": (DataOptions,),
}
NOT_ON = {  # options a command does not offer, and why
    "token_cap": {"extract", "class-fit", "atlas", "study"},  # --reduce tokens is refused there
} | {name: {"study"} for name in STUDY_EXCLUDES if name != "token_cap"}
ONLY = {"demo": {"device"}}  # the demo fixes its data and models


@pytest.mark.parametrize("command", sorted(GROUPS))
def test_each_command_offers_the_declared_options_with_their_defaults_and_help(command):
    params = {p.name: p for p in COMMANDS[command].params}
    for group in GROUPS[command]:
        for declared in option_fields(group):
            if command in NOT_ON.get(declared.name, ()) or declared.name not in ONLY.get(
                command, {declared.name}
            ):
                assert declared.name not in params
                continue
            param = params[declared.name]
            assert param.opts == [declared.metadata["flag"]], declared.name
            assert param.help == declared.metadata["help"], declared.name
            assert param.default == declared.default, declared.name


def test_options_without_a_flag_are_not_offered_twice():
    """``bootstrap`` and ``seed`` of ``ClassFitOptions`` come from the command's own
    ``--bootstrap`` and the data's ``--seed``: one parameter each."""
    for command in ("class-fit", "study"):
        names = [p.name for p in COMMANDS[command].params]
        assert len(names) == len(set(names))
    assert {f.name for f in fields(ClassFitOptions)} - {
        f.name for f in option_fields(ClassFitOptions)
    } == {"bootstrap", "seed"}


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
    with pytest.raises(TypeError, match="'bootstrap'"):  # the command's own keyword
        split_options("class_fit", {"bootstrap": 3}, ClassFitOptions)


def test_a_study_runs_the_declared_options_with_its_own_bootstrap_and_seed():
    study = StudyOptions(bootstrap=7, cka_options=CKAOptions(kernel="rbf"))
    assert study.fit(seed=3) == ClassFitOptions(bootstrap=7, seed=3)
    assert study.cka(seed=3, bootstrap=0) == CKAOptions(kernel="rbf", seed=3)
