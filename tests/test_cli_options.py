"""Every shared option is declared once (``repcompare.options.option``) and each command's
flag, default and help come from that declaration; the API's defaults read the same fields."""

import inspect
from dataclasses import fields

import pytest
import typer.main

from repcompare import api
from repcompare.analyses.study import StudyOptions
from repcompare.cli import app
from repcompare.options import ClassFitOptions, DataOptions, ModelOptions, option_fields

COMMANDS = typer.main.get_command(app).commands
GROUPS = {
    "layers": (ModelOptions,),
    "extract": (ModelOptions, DataOptions),
    "cka": (ModelOptions, DataOptions),
    "invariance": (ModelOptions, DataOptions),
    "class-fit": (ClassFitOptions, ModelOptions, DataOptions),
    "atlas": (ModelOptions, DataOptions),
    "study": (ClassFitOptions, ModelOptions, DataOptions),
    "demo": (DataOptions,),
}
NOT_ON = {  # options a command does not offer, and why
    "token_cap": {"extract", "class-fit", "atlas", "study"},  # --reduce tokens is refused there
    "tokens": {"study"},  # a study's class fit pools every layer
}
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


@pytest.mark.parametrize("function", [api.class_fit, api.study])
def test_the_api_reads_its_defaults_from_the_declarations(function):
    parameters = inspect.signature(function).parameters
    for declared in option_fields(ClassFitOptions):
        if declared.name in parameters:
            assert parameters[declared.name].default == declared.default


def test_a_study_class_fit_defaults_to_the_class_fit_options():
    study, fit = StudyOptions(), ClassFitOptions()
    assert (study.knn_k, study.test_fraction, study.probe_l2) == (
        fit.knn_k,
        fit.test_fraction,
        fit.probe_l2,
    )
