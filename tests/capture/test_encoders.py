"""Checkpoints holding several encoders: the intended one is loaded, said, and choosable."""

from dataclasses import replace

import pytest
import timm
import torch

from repcompare.capture.checkpoint import load_checkpoint_into
from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_spec
from repcompare.cli import main
from repcompare.errors import InputError

ARCH = "test_vit"


def seeded_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(ARCH).state_dict()


BASE, MOMENTUM = seeded_state(1), seeded_state(2)
IMAGES = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))


def features(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The pre-logits features of ``ARCH`` with ``state``: what an encoder's weights compute."""
    model = timm.create_model(ARCH)
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval().forward_head(model.forward_features(IMAGES), pre_logits=True)


def loaded_features(path, **options) -> tuple[torch.Tensor, object]:
    loaded = load_model(replace(parse_spec(f"timm:{ARCH}@{path}"), **options))
    with torch.no_grad():
        module = loaded.module
        return module.forward_head(module.forward_features(IMAGES), pre_logits=True), loaded


def prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items() if not k.startswith("head.")}


def moco_v3(momentum_first: bool) -> dict:
    """MoCo v3's layout: one DDP state dict holding both encoders (with projector heads)."""
    parts = [
        prefixed(BASE, "module.base_encoder."),
        prefixed(MOMENTUM, "module.momentum_encoder."),
    ]
    parts[0]["module.base_encoder.head.0.weight"] = torch.randn(256, 32)
    parts[1]["module.momentum_encoder.head.0.weight"] = torch.randn(256, 32)
    predictor = {"module.predictor.0.weight": torch.randn(64, 256)}
    state = {**parts[1], **parts[0]} if momentum_first else {**parts[0], **parts[1]}
    return {"epoch": 300, "arch": "vit_small", "state_dict": state | predictor}


def dino(student_first: bool) -> dict:
    """DINO's layout: teacher and student state dicts (student under DDP's module.)."""
    teacher = prefixed(BASE, "backbone.") | {"head.last_layer.weight_v": torch.randn(99, 32)}
    student = prefixed(MOMENTUM, "module.backbone.")
    pairs = [("teacher", teacher), ("student", student)]
    return {"epoch": 100, **dict(pairs[::-1] if student_first else pairs)}


@pytest.mark.parametrize("other_first", [False, True])
def test_moco_v3_takes_the_base_encoder_by_default_and_momentum_when_asked(tmp_path, other_first):
    path = tmp_path / "moco_v3.pth"
    torch.save(moco_v3(other_first), path)
    got, loaded = loaded_features(path)
    torch.testing.assert_close(got, features(BASE), rtol=0, atol=0)
    lines = loaded.load_report.lines()
    assert (
        "encoder: base (the default; choose with --encoder); "
        "the checkpoint also holds momentum, not loaded"
    ) in lines
    assert str(loaded.spec).endswith("[encoder=base]")
    got, loaded = loaded_features(path, encoder="momentum")
    torch.testing.assert_close(got, features(MOMENTUM), rtol=0, atol=0)
    assert "encoder: momentum (as asked)" in loaded.load_report.lines()[1]
    got, _ = loaded_features(path, key="state_dict.module.momentum_encoder")
    torch.testing.assert_close(got, features(MOMENTUM), rtol=0, atol=0)


@pytest.mark.parametrize("student_first", [False, True])
def test_dino_takes_the_teacher_by_default_and_the_student_when_asked(tmp_path, student_first):
    path = tmp_path / "dino.pth"
    torch.save(dino(student_first), path)
    got, loaded = loaded_features(path)
    torch.testing.assert_close(got, features(BASE), rtol=0, atol=0)
    assert loaded.load_report.container == ("teacher",)
    assert "encoder: teacher (the default" in loaded.load_report.lines()[1]
    for options in ({"encoder": "student"}, {"key": "student"}):
        got, loaded = loaded_features(path, **options)
        torch.testing.assert_close(got, features(MOMENTUM), rtol=0, atol=0)
        assert loaded.load_report.container == ("student",)


def test_wrong_encoder_choices_are_one_sentence(tmp_path):
    path = tmp_path / "dino.pth"
    torch.save(dino(False), path)
    with pytest.raises(
        InputError, match="holds no momentum encoder \\(it holds teacher, student\\)"
    ):
        loaded_features(path, encoder="momentum")
    with pytest.raises(InputError, match="unknown --encoder 'decoder'; use teacher, student, "):
        loaded_features(path, encoder="decoder")
    with pytest.raises(InputError, match="holds no ema encoder \\(it holds teacher, student\\)"):
        loaded_features(path, encoder="ema")
    with pytest.raises(InputError, match=r"no tensors under --key 'teacher\.neck'"):
        loaded_features(path, key="teacher.neck")
    single = tmp_path / "plain.pth"
    torch.save(BASE, single)
    with pytest.raises(InputError, match="holds a single model"):
        loaded_features(single, encoder="teacher")
    with pytest.raises(InputError, match="names none"):
        load_model(replace(parse_spec(f"timm:{ARCH}"), encoder="base"))


def test_the_cli_takes_encoder_and_key_and_prints_the_choice(tmp_path, capsys):
    path = tmp_path / "moco_v3.pth"
    torch.save(moco_v3(True), path)
    common = ["layers", f"timm:{ARCH}@{path}", "--layers", "blocks.0"]
    assert main(common) == 0
    assert "encoder: base (the default; choose with --encoder)" in capsys.readouterr().err
    assert main([*common, "--encoder", "momentum"]) == 0
    assert "encoder: momentum (as asked)" in capsys.readouterr().err
    assert main([*common, "--key", "state_dict.module.momentum_encoder"]) == 0
    assert "encoder: --key state_dict.module.momentum_encoder" in capsys.readouterr().err
    assert main([*common, "--encoder", "teacher"]) == 2
    assert "holds no teacher encoder (it holds base, momentum)" in capsys.readouterr().err


# Two-encoder layouts recognised by name, whatever the key order and the wrapper. Each builds
# a checkpoint from the encoder to load by default (``d``), the other one (``o``) and whether
# the other one comes first; then the default role, the other role, and the --key of each.
def both(default: dict, other: dict, other_first: bool) -> dict:
    return {**other, **default} if other_first else {**default, **other}


def p(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


OPTIMIZER = {"state": {}, "param_groups": [{"lr": 0.1}]}
LAYOUTS = {
    "lightning_momentum_backbone": (
        lambda d, o, f: {
            "epoch": 9,
            "state_dict": both(p(d, "model.backbone."), p(o, "model.momentum_backbone."), f),
            "optimizer_states": [OPTIMIZER],
            "hyper_parameters": {"lr": 0.1},
        },
        ("base", "momentum", "state_dict.model.backbone", "state_dict.model.momentum_backbone"),
    ),
    "lightly_backbone_momentum_ddp": (
        lambda d, o, f: (
            both(p(d, "module.backbone."), p(o, "module.backbone_momentum."), f)
            | {"module.projection_head.0.weight": torch.randn(8, 32)}
        ),
        ("base", "momentum", "module.backbone", "module.backbone_momentum"),
    ),
    "moco_v2_query_key": (
        lambda d, o, f: {
            "arch": "resnet50",
            "state_dict": both(p(d, "module.encoder_q."), p(o, "module.encoder_k."), f)
            | {"module.queue": torch.randn(8, 16)},
        },
        ("base", "momentum", "state_dict.module.encoder_q", "state_dict.module.encoder_k"),
    ),
    "byol_online_target_dicts": (
        lambda d, o, f: (
            both({"online_network": d}, {"target_network": o}, f) | {"optimizer": OPTIMIZER}
        ),
        ("online", "target", "online_network", "target_network"),
    ),
    "byol_online_target_prefixes": (
        lambda d, o, f: (
            both(p(d, "online_encoder.net."), p(o, "target_encoder.net."), f)
            | {"online_predictor.net.0.weight": torch.randn(8, 32)}
        ),
        ("online", "target", "online_encoder", "target_encoder"),
    ),
    "ijepa": (
        lambda d, o, f: (
            both({"target_encoder": p(d, "module.")}, {"encoder": p(o, "module.")}, f)
            | {
                "predictor": {"module.predictor_embed.weight": torch.randn(8, 32)},
                "opt": OPTIMIZER,
                "scaler": {"scale": 1024.0},
                "epoch": 300,
                "loss": 0.1,
            }
        ),
        ("target", "online", "target_encoder", "encoder"),
    ),
    "msn": (
        lambda d, o, f: (
            {"prototypes": torch.randn(16, 32), "epoch": 100}
            | both({"target_encoder": p(d, "module.")}, {"encoder": p(o, "module.")}, f)
        ),
        ("target", "online", "target_encoder", "encoder"),
    ),
    "dino_under_lightning": (
        lambda d, o, f: {
            "state_dict": both(p(d, "model.teacher.backbone."), p(o, "model.student.backbone."), f)
        },
        ("teacher", "student", "state_dict.model.teacher", "state_dict.model.student"),
    ),
    "timm_state_dict_ema": (
        lambda d, o, f: (
            {"epoch": 3, "arch": ARCH, "optimizer": OPTIMIZER}
            | both({"state_dict": d}, {"state_dict_ema": o}, f)
        ),
        ("model", "ema", "state_dict", "state_dict_ema"),
    ),
    "deit_model_ema": (
        lambda d, o, f: both({"model": d}, {"model_ema": o}, f) | {"optimizer": OPTIMIZER},
        ("model", "ema", "model", "model_ema"),
    ),
    "lightning_model_ema": (
        lambda d, o, f: {"state_dict": both(p(d, "model."), p(o, "model_ema.module."), f)},
        ("model", "ema", "state_dict.model", "state_dict.model_ema"),
    ),
    "ema_model_beside_net": (
        lambda d, o, f: {"state_dict": both(p(d, "net."), p(o, "ema_model."), f)},
        ("model", "ema", "state_dict.net", "state_dict.ema_model"),
    ),
    "bare_ema": (
        lambda d, o, f: both({"model": d}, {"ema": p(o, "module.")}, f),
        ("model", "ema", "model", "ema"),
    ),
    "ddp_module_ema": (
        lambda d, o, f: both({"module": d}, {"module_ema": o}, f),
        ("model", "ema", "module", "module_ema"),
    ),
}


@pytest.fixture(scope="module")
def target() -> torch.nn.Module:
    return timm.create_model(ARCH)


def load_into(model: torch.nn.Module, path, **options):
    """Load ``path`` into ``model`` (zeroed first, so nothing of an earlier load survives)."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.zero_()
    return load_checkpoint_into(model, path, **options)


def assert_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize("other_first", [False, True], ids=["other_last", "other_first"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_encoders_are_told_apart_by_name_in_any_order(tmp_path, target, layout, other_first):
    build, (default, other, default_key, other_key) = LAYOUTS[layout]
    path = tmp_path / f"{layout}.ckpt"
    torch.save(build(BASE, MOMENTUM, other_first), path)
    report = load_into(target, path)
    assert_weights(target, BASE)
    lines = report.lines()
    assert lines[1] == (
        f"encoder: {default} (the default; choose with --encoder); "
        f"the checkpoint also holds {other}, not loaded"
    )
    assert f": loaded {default_key}, not {other_key}; the " in lines[2]
    report = load_into(target, path, encoder=other)
    assert_weights(target, MOMENTUM)
    assert report.lines()[1].startswith(f"encoder: {other} (as asked); the checkpoint also holds")
    load_into(target, path, key=other_key)
    assert_weights(target, MOMENTUM)


def test_the_defaults_say_why(tmp_path, target):
    """Each pair's default comes with the reason, in the load report."""
    why = {
        "lightning_momentum_backbone": "the base (query, online) encoder is the default, "
        "the one MoCo and BYOL evaluate",
        "byol_online_target_dicts": "the online encoder is the default, the one BYOL evaluates",
        "ijepa": "the target encoder is the default, the one I-JEPA and MSN evaluate",
        "dino_under_lightning": "the teacher is the default, the network DINO evaluates",
        "timm_state_dict_ema": "the model as trained is the default, not its exponential "
        "moving average (as timm's validate.py without --use-ema)",
    }
    for layout, reason in why.items():
        path = tmp_path / f"{layout}.ckpt"
        torch.save(LAYOUTS[layout][0](BASE, MOMENTUM, True), path)
        assert load_into(target, path).lines()[2].endswith(reason)


def test_the_lightning_momentum_checkpoint_of_the_issue_through_the_cli(tmp_path, capsys):
    """The reported case: ``model.backbone.*`` and ``model.momentum_backbone.*``, momentum
    keys first, loaded the momentum encoder with exit 0 (both orders of this layout are in
    ``LAYOUTS``)."""
    online, momentum = (seeded_torchvision(seed) for seed in (1, 2))
    path = tmp_path / "byol.ckpt"
    state = both(p(online, "model.backbone."), p(momentum, "model.momentum_backbone."), True)
    torch.save({"epoch": 9, "state_dict": state, "optimizer_states": [OPTIMIZER]}, path)
    spec = f"torchvision:resnet18@{path}"
    assert main(["layers", spec, "--layers", "layer1.0"]) == 0
    err = capsys.readouterr().err
    assert "encoder: base (the default; choose with --encoder); " in err
    assert "loaded state_dict.model.backbone, not state_dict.model.momentum_backbone" in err
    assert main(["layers", spec, "--layers", "layer1.0", "--encoder", "momentum"]) == 0
    assert "encoder: momentum (as asked)" in capsys.readouterr().err
    for encoder, expected in ((None, online), ("momentum", momentum)):
        loaded = load_model(replace(parse_spec(spec), encoder=encoder))
        assert_weights(loaded.module, expected)
        assert str(loaded.spec).endswith(f"[encoder={encoder or 'base'}]")


def seeded_torchvision(seed: int) -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.resnet18().state_dict()


EMA_ONLY = {
    "deit": (lambda s: {"model_ema": s, "epoch": 3, "optimizer": OPTIMIZER}, "model_ema"),
    "timm": (lambda s: {"state_dict_ema": s, "epoch": 3}, "state_dict_ema"),
    "lightning": (lambda s: {"state_dict": p(s, "model_ema.module.")}, "state_dict.model_ema"),
}


@pytest.mark.parametrize("layout", EMA_ONLY)
def test_a_checkpoint_of_only_an_ema_copy_needs_encoder_ema(tmp_path, capsys, target, layout):
    build, key = EMA_ONLY[layout]
    path = tmp_path / "ema_only.pth"
    torch.save(build(BASE), path)
    with pytest.raises(InputError) as caught:
        load_into(target, path)
    message = str(caught.value)
    assert message == (
        f"{path} holds only an exponential-moving-average copy of the weights ({key}), "
        f"not the model it averages; pass --encoder ema (or --key {key}) to load it"
    )
    assert main(["layers", f"timm:{ARCH}@{path}", "--layers", "blocks.0"]) == 2
    assert message in capsys.readouterr().err
    report = load_into(target, path, encoder="ema")
    assert_weights(target, BASE)
    assert f"encoder: ema ({key})" in report.lines()
    load_into(target, path, key=key)
    assert_weights(target, BASE)


def test_unknown_sub_dicts_or_two_copies_under_unknown_prefixes_are_refused(
    tmp_path, capsys, target
):
    named = tmp_path / "named.pth"
    torch.save({"rgb": BASE, "depth": MOMENTUM, "epoch": 1}, named)
    common = ["layers", f"timm:{ARCH}@{named}", "--layers", "blocks.0"]
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "holds several state dicts (rgb, depth) under names that are neither a known " in err
    assert "nor a known encoder; choose one with --key rgb or --key depth" in err
    assert main([*common, "--key", "depth"]) == 0
    load_into(target, named, key="depth")
    assert_weights(target, MOMENTUM)
    one = tmp_path / "one.pth"
    torch.save({"weights": BASE, "epoch": 1}, one)
    with pytest.raises(InputError, match="holds its tensors under 'weights', which is neither"):
        load_into(target, one)
    load_into(target, one, key="weights")
    assert_weights(target, BASE)
    for other_first in (False, True):
        state = both(p(BASE, "model.net1."), p(MOMENTUM, "model.net2."), other_first)
        flat = tmp_path / "flat.ckpt"
        torch.save({"state_dict": state}, flat)
        with pytest.raises(InputError) as caught:
            load_into(target, flat)
        message = str(caught.value)
        assert "holds two copies of this model's weights, under model.net" in message
        assert "--key state_dict.model.net1" in message
        assert "--key state_dict.model.net2" in message
        assert "\n" not in message and caught.value.exit_code == 2
        load_into(target, flat, key="state_dict.model.net2")
        assert_weights(target, MOMENTUM)


def test_an_ema_of_a_momentum_trainer_takes_a_default_at_each_level(tmp_path, target):
    torch.manual_seed(3)
    ema_base = timm.create_model(ARCH).state_dict()
    state = (
        p(MOMENTUM, "model.momentum_backbone.")
        | p(ema_base, "model_ema.module.backbone.")
        | p(BASE, "model.backbone.")
        | p(MOMENTUM, "model_ema.module.momentum_backbone.")
    )
    path = tmp_path / "nested.ckpt"
    torch.save({"state_dict": state}, path)
    report = load_into(target, path)
    assert_weights(target, BASE)
    assert (report.encoder, report.other_encoders) == ("model/base", ("ema", "momentum"))
    assert (
        "loaded state_dict.model.backbone, not state_dict.model.momentum_backbone"
        in (report.lines()[4])
    )
    report = load_into(target, path, encoder="ema")
    assert_weights(target, ema_base)
    assert report.lines()[1].startswith("encoder: ema (as asked)")
    assert report.lines()[3].startswith("encoder: base (the default")
