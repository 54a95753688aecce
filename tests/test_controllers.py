"""The ζ controller (docs/science.md §5) and ADAPO's ε_high controller (docs/science.md §6, step rule ours)."""

import dataclasses
import json

import pytest
import torch

import entropy_rl_lite as erl


def zc(zeta: float) -> erl.ZetaController:
    return erl.ZetaController(zeta=zeta, zeta_min=1e-4, zeta_max=0.05, target_entropy=1.0)


LOW, HIGH = 0.5, 1.5  # measured entropies below / above the target 1.0


@pytest.mark.parametrize(
    ("start", "entropy", "expected"),
    [
        (1e-3, LOW, 2e-3),  # too little entropy, ζ > 0: double
        (0.04, LOW, 0.05),  # ... capped at ζ_max
        (0.0, LOW, 1e-4),  # ... from 0 to ζ_min
        (-1e-3, LOW, -5e-4),  # ζ < 0: halve toward zero
        (-1.5e-4, LOW, 1e-4),  # ... and once above -ζ_min flip to +ζ_min
        (1e-3, HIGH, 5e-4),  # too much entropy, ζ > 0: halve
        (1.5e-4, HIGH, -1e-4),  # ... and once below ζ_min flip to -ζ_min
        (-1e-3, HIGH, -2e-3),  # ζ < 0: double the magnitude
        (-0.04, HIGH, -0.05),  # ... capped at -ζ_max
        (0.0, HIGH, -1e-4),  # from 0 to -ζ_min [ours: the symmetric case the paper leaves open]
        (1e-3, 1.0, 1e-3),  # on target: unchanged
    ],
)
def test_zeta_controller_rule(start, entropy, expected):
    c = zc(start)
    assert c.update(entropy) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert c.value == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_target_none_records_first_entropy_and_keeps_value():
    c = erl.ZetaController(zeta=1e-3)
    assert c.target_entropy is None
    assert c.update(2.3) == 1e-3
    assert c.target_entropy == pytest.approx(2.3)
    assert c.update(2.0) == pytest.approx(2e-3)


def test_zeta_controller_holds_a_long_run_inside_bounds_and_flips_back():
    c = zc(1e-3)
    values = [c.update(h) for h in [0.5] * 20 + [1.5] * 20]
    assert max(values[:20]) == 0.05
    assert values[-1] == -0.05
    assert all(1e-4 <= abs(v) <= 0.05 for v in values)


def test_per_seed_controller_steers_each_seed_by_its_own_entropy():
    c = erl.ZetaController(zeta=torch.full((3,), 1e-3), target_entropy=torch.tensor([1.0, 1.0, 1.0]))
    out = c.update(torch.tensor([0.5, 1.5, 1.0]))
    torch.testing.assert_close(out, torch.tensor([2e-3, 5e-4, 1e-3], dtype=torch.float64))


@pytest.mark.parametrize(
    "make",
    [
        lambda: erl.ZetaController(zeta=1e-3, zeta_min=1e-4, zeta_max=0.05),
        lambda: erl.EpsHighController(eps_high=0.28),
        lambda: erl.ZetaController(zeta=torch.full((4,), 1e-3)),
    ],
)
def test_state_dict_round_trip_through_json(make):
    a = make()
    for h in (1.0, 0.7, 0.8, 1.3):
        a.update(h if isinstance(a.value, float) else torch.full((4,), h))
    state = json.loads(json.dumps(a.state_dict()))
    b = make()
    b.load_state_dict(state)
    assert b.state_dict() == a.state_dict()
    h = 0.9 if isinstance(a.value, float) else torch.full((4,), 0.9)
    va, vb = a.update(h), b.update(h)
    assert torch.equal(torch.as_tensor(va), torch.as_tensor(vb))


def test_load_state_dict_refuses_a_different_controller():
    with pytest.raises(ValueError, match="kind"):
        erl.ZetaController().load_state_dict(erl.EpsHighController().state_dict())
    with pytest.raises(ValueError, match="zeta_max"):
        erl.ZetaController(zeta_max=0.1).load_state_dict(erl.ZetaController(zeta_max=0.05).state_dict())


@pytest.mark.parametrize(
    ("start", "entropy", "expected"),
    [
        (0.28, 0.5, 0.42),  # too little entropy: let more entropy-raising updates through
        (0.9, 0.5, 1.0),  # ... capped at eps_high_max
        (0.42, 1.5, 0.28),  # too much: tighten
        (0.25, 1.5, 0.2),  # ... floored at eps_high_min
        (0.28, 1.0, 0.28),  # on target: unchanged
    ],
)
def test_eps_high_controller_rule(start, entropy, expected):
    c = erl.EpsHighController(eps_high=start, eps_high_min=0.2, eps_high_max=1.0, adapo_factor=1.5, target_entropy=1.0)
    assert c.update(entropy) == pytest.approx(expected)


def test_entropy_coef_controller_is_dual_ascent_clamped_at_zero():
    c = erl.EntropyCoefController(entropy_coef=0.1, entropy_coef_rate=0.5, target_entropy=1.0)
    assert c.update(0.8) == pytest.approx(0.2)  # too little entropy: 0.1 + 0.5 · 0.2
    assert c.update(1.5) == pytest.approx(0.0)  # too much: 0.2 - 0.25, clamped at 0
    assert c.update(1.0) == 0.0  # on target: unchanged
    state = json.loads(json.dumps(c.state_dict()))
    d = erl.EntropyCoefController(entropy_coef_rate=0.5)
    d.load_state_dict(state)
    assert d.update(0.5) == c.update(0.5) == pytest.approx(0.25)


# -- one declaration of the entropy-control fields, one controller bundle ---------------------------------


def test_configs_share_one_declaration_of_the_entropy_control_fields():
    """BanditConfig, TrainConfig and TRL's EntropyControl take the fields, defaults and checks from one class."""
    from entropy_rl_lite.entropy_control import EntropyControlFields
    from entropy_rl_lite.llm import TrainConfig

    names = [f.name for f in dataclasses.fields(EntropyControlFields)]
    defaults = EntropyControlFields().control_fields()
    for cfg in (erl.bandit.BanditConfig(), TrainConfig()):
        assert isinstance(cfg, EntropyControlFields) and cfg.control_fields() == defaults, type(cfg).__name__
    assert "eps_high_min" in names and "entropy_coef_rate" in names and "target_entropy" in names
    for make in (erl.bandit.BanditConfig, TrainConfig):  # the same validator refuses the same bad value
        with pytest.raises(ValueError, match="zeta_control=True needs repo"):
            make(zeta_control=True)


@pytest.mark.parametrize("advantage", ["grpo", "rloo", "dr_grpo"])
def test_a_group_baseline_needs_two_samples_in_every_config(advantage):
    """A baseline from the other samples of a group needs G >= 2: refused when the config is made, not mid-run."""
    from entropy_rl_lite.llm import TrainConfig

    for make in (erl.bandit.BanditConfig, TrainConfig):
        with pytest.raises(ValueError, match="group_size must be >= 2"):
            make(advantage=advantage, group_size=1, **({"pass_k": 1} if make is TrainConfig else {}))
    assert erl.bandit.BanditConfig(advantage="none", group_size=1).group_size == 1


def test_entropy_controls_build_update_and_restore_what_the_config_asks_for():
    from entropy_rl_lite.entropy_control import EntropyControls

    cfg = erl.bandit.BanditConfig(
        repo="repo_r", zeta=1e-3, zeta_control=True, adapo=True, eps_high=0.28, target_entropy=1.0
    )
    controls = EntropyControls.from_config(cfg)
    assert set(controls.controllers) == {"zeta", "eps_high"} and controls.entropy_coef == 0.0
    zeta, eps_high, coef = controls.update(0.5)  # entropy below target: ζ doubles, ε_high grows by adapo_factor
    assert (zeta, eps_high, coef) == (2e-3, pytest.approx(0.28 * 1.5), 0.0)
    restored = EntropyControls.from_config(cfg)
    restored.load_state_dict(json.loads(json.dumps(controls.state_dict())))
    assert (restored.zeta, restored.eps_high) == (controls.zeta, controls.eps_high)
    with pytest.raises(ValueError, match="saved controllers"):
        EntropyControls.from_config(cfg.replace(adapo=False)).load_state_dict(controls.state_dict())
    per_seed = EntropyControls.from_config(cfg, seeds=3)  # the bandit engine: one value per seed
    zeta, _, coef = per_seed.update(torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64))
    assert zeta.tolist() == [2e-3, 1e-3, 5e-4] and coef.tolist() == [0.0, 0.0, 0.0]
