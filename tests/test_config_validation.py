"""Validated configs: each rule stops the run before any work, with one line naming the key, the value and
what is allowed. Every rule on the composed config (Hydra's compose, in process); the CLIs end to end once each."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import (
    ConfigError,
    type_allows,
    validate_generation,
    validate_known_keys,
    validate_run_config,
)
from tests.helpers import cli, composed, train_args


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.hidden_size=abc", "model.hidden_size='abc': allowed: int"),  # a wrong type
        ("model.dropout=[0.1]", "model.dropout=[0.1]: allowed: float"),
        (
            "+model.hiden_size=64",
            "model.hiden_size=64: not a setting of note_lstm (its settings: hidden_size,",
        ),  # an unknown key
        ("+data.batchsize=8", "data.batchsize=8: not a setting of NoteSequenceDataModule"),
        ("+trainer.max_epoch=3", "trainer.max_epoch=3: not a setting of Trainer"),
        ("model.dropout=1.0", "model.dropout=1.0: allowed: a number in [0, 1)"),  # out of range
        ("model.dropout=-0.1", "model.dropout=-0.1: allowed: a number in [0, 1)"),
        ("model.hidden_size=0", "model.hidden_size=0: allowed: an integer >= 1"),
        ("model.num_layers=0", "model.num_layers=0: allowed: an integer >= 1"),
        ("model.learning_rate=0", "model.learning_rate=0: allowed: a number > 0"),
        ("data.seq_len=0", "data.seq_len=0: allowed: an integer >= 1"),
        ("sample.temperature=0", "sample.temperature=0: allowed: a number > 0"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': allowed: Optional[int]"),
        ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5: allowed: Optional[int]"),
        ("seed=abc", "seed='abc': allowed: an integer, or null"),
    ],
)
def test_each_training_config_rule(override, expected, tmp_path):
    cfg = composed("train", ["data=midi_dir", f"data.path={tmp_path}", f"paths.output_dir={tmp_path}", override])
    with pytest.raises(ConfigError) as error:
        validate_run_config(cfg)
    assert str(error.value).startswith(expected)


@pytest.mark.slow
def test_a_bad_training_config_stops_the_cli_before_any_work(session_corpus, tmp_path):
    result = cli(
        "musicrnn-train", *train_args(session_corpus, tmp_path / "logs", "model.dropout=1.0"), cwd=tmp_path, check=False
    )
    expected = "model.dropout=1.0: allowed: a number in [0, 1)"
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"musicrnn-train: error: {expected}"), last
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("logs/train/runs/*/checkpoints")), "work started before the config was checked"


@pytest.mark.slow
def test_a_seq_len_longer_than_every_piece_names_the_longest(session_corpus, tmp_path):
    result = cli(
        "musicrnn-train",
        *train_args(session_corpus, tmp_path / "logs", "data.seq_len=100000"),
        cwd=tmp_path,
        check=False,
    )
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last.startswith("musicrnn-train: error: data.seq_len=100000: no training window")
    assert "allowed: data.seq_len <= " in last and "(the longest has " in last


@pytest.mark.parametrize(
    "override, expected",
    [
        ("temperature=0", "temperature=0: allowed: a number > 0 (greedy decoding: greedy=true)"),
        ("temperature=-1.5", "temperature=-1.5: allowed: a number > 0"),
        ("top_p=0", "top_p=0: allowed: a number in (0, 1], or null"),
        ("top_p=1.5", "top_p=1.5: allowed: a number in (0, 1], or null"),
        ("num_notes=0", "num_notes=0: allowed: an integer >= 1"),
        ("num_samples=0", "num_samples=0: allowed: an integer >= 1"),
        ("top_k=0", "top_k=0: allowed: an integer >= 1"),
        ("temperature=warm", "temperature='warm': allowed: a number > 0"),
        ("repetition_penalty=0", "repetition_penalty=0: allowed: a number > 0 (1 = no penalty"),
        ("repetition_window=0", "repetition_window=0: allowed: an integer >= 1"),
        ("no_repeat_ngram=-1", "no_repeat_ngram=-1: allowed: an integer >= 0"),
        ("beam_size=0", "beam_size=0: allowed: an integer >= 1"),
        ("branch_factor=1.5", "branch_factor=1.5: allowed: an integer >= 1"),
        ("steps_per_iteration=0", "steps_per_iteration=0: allowed: an integer >= 1"),
        ("velocity_temperature=0", "velocity_temperature=0: allowed: a number > 0, or null"),
    ],
)
def test_each_generation_rule(override, expected, tmp_path):
    for config_name in ("generate", "evaluate"):
        cfg = composed(config_name, [f"ckpt_path={tmp_path / 'missing.ckpt'}", override])
        with pytest.raises(ConfigError) as error:
            validate_generation(OmegaConf.to_container(cfg, resolve=False))
        assert str(error.value).startswith(expected)


@pytest.mark.slow
def test_bad_generation_settings_stop_the_clis_before_the_checkpoint_is_read(tmp_path):
    # The checkpoint does not exist: the settings are checked first, so the error is about them.
    for command in ("musicrnn-generate", "musicrnn-evaluate"):
        result = cli(command, f"ckpt_path={tmp_path / 'missing.ckpt'}", "top_p=1.5", cwd=tmp_path, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert (
            result.stderr.strip().splitlines()[-1]
            == f"{command}: error: top_p=1.5: allowed: a number in (0, 1], or null"
        )


@pytest.mark.slow
def test_greedy_is_its_own_switch(tmp_path, session_corpus):
    cli(
        "musicrnn-train",
        *train_args(
            session_corpus, tmp_path / "logs", "trainer.max_epochs=1", "logger=none", "test=false", "sample.num_notes=0"
        ),
        cwd=tmp_path,
    )
    (best,) = tmp_path.glob("logs/train/runs/*/checkpoints/best.ckpt")
    cli(
        "musicrnn-generate",
        f"ckpt_path={best}",
        "greedy=true",
        "num_notes=30",
        "num_samples=2",
        "seed=1",
        "output=g.mid",
        cwd=tmp_path,
    )
    assert (tmp_path / "g_00.mid").read_bytes() == (tmp_path / "g_01.mid").read_bytes()  # greedy: no randomness


def test_greedy_needs_no_temperature():
    validate_generation({"greedy": True, "temperature": 0})
    with pytest.raises(ConfigError, match="temperature=0"):
        validate_generation({"greedy": False, "temperature": 0})


def test_type_rules():
    assert type_allows(3, int) and not type_allows(True, int) and not type_allows("3", int)
    assert type_allows(3, float) and type_allows(None, int | None) and not type_allows("x", float | None)
    assert type_allows([1, 2], list[int] | None) and not type_allows(1, list[int] | None)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model=seed_paper"],
        ["model=tf_tutorial"],
        ["data=pop909"],
        ["data=jsb_chorales", "model=pianoroll_lstm"],
        ["data=pianoroll_midi", "data.path=/x", "model=pianoroll_lstm"],
        ["data=pianoroll_pickle", "data.path=/x.pickle", "model=pianoroll_lstm"],
        *([f"experiment={p.stem}"] for p in sorted((CONFIG_DIR / "experiment").glob("*.yaml"))),
        ["trainer=gpu"],
        ["trainer=ddp"],
        ["trainer=cpu"],
    ],
)
def test_every_shipped_config_passes(overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICRNN_POP909", "/data/POP909")
    monkeypatch.setenv("MUSICRNN_JSB_CHORALES", "/data/JSB Chorales.pickle")
    validate_run_config(composed("train", [*overrides, f"paths.output_dir={tmp_path}"]))
    generate = composed("generate", ["ckpt_path=x.ckpt"])
    validate_known_keys(generate, CONFIG_DIR / "generate.yaml", "musicrnn-generate")
    validate_generation(OmegaConf.to_container(generate, resolve=False))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.hiden_size=3", "model.hiden_size: no such setting (did you mean model.hidden_size?)"),
        ("xyzzy=3", "xyzzy: no such setting (to append to your config use +xyzzy=3)"),
        (
            "model=foo",
            "In 'train': Could not find 'model/foo' (Available options in 'model': "
            + ", ".join(sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")))  # the shipped model configs
            + ")",
        ),
        (
            "model.hidden_size=[",
            "model.hidden_size=[: not an override Hydra can parse (no viable alternative at input '['",
        ),
    ],
)
def test_hydras_own_errors_become_one_line(override, expected):
    """What the CLIs print for errors Hydra raises while composing (`cli.errors.run_hydra_cli`), from the real
    exceptions."""
    from hydra.errors import HydraException

    from musicrnn.cli.errors import hydra_error_line

    with pytest.raises(HydraException) as error:
        composed("train", [override])
    line = hydra_error_line(error.value)
    assert line.startswith(expected) and "\n" not in line


def test_a_required_value_left_unset_is_named_before_any_work(tmp_path):
    from musicrnn.errors import MusicrnnError

    with pytest.raises(MusicrnnError) as error:
        validate_run_config(composed("train", ["data=midi_dir", f"paths.output_dir={tmp_path}"]))
    assert str(error.value) == "Missing mandatory value: data.path (set it on the command line: data.path=...)"


def test_single_file_commands_refuse_a_setting_they_do_not_have():
    for name in ("generate", "plot"):
        overrides = ["ckpt_path=x.ckpt"] if name == "generate" else []
        validate_known_keys(composed(name, overrides), CONFIG_DIR / f"{name}.yaml", f"musicrnn-{name}")
        with pytest.raises(ConfigError, match=rf"^foo=1: not a setting of musicrnn-{name} \(its settings: "):
            validate_known_keys(composed(name, [*overrides, "+foo=1"]), CONFIG_DIR / f"{name}.yaml", f"musicrnn-{name}")
