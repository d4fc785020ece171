"""The model variants: each a function from plain typed settings to a `SequenceModel` (a network, an output
distribution and a representation). Hydra instantiates them (`conf/model/*.yaml`: `_target_:
musicrnn.training.models.note_lstm`), and a checkpoint stores the function's name and arguments, so
`load_module` rebuilds any variant from the checkpoint alone. A new variant is a function here (and its
config), built from a representation and an output distribution that may be new or existing."""

from __future__ import annotations

from collections.abc import Callable

from musicrnn.nets.heads import BernoulliKeys, NADEKeys, NoteHeads
from musicrnn.nets.note_lstm import NoteLSTM, NoteLSTMConfig
from musicrnn.nets.pianoroll_rnn import PianoRollRNN, PianoRollRNNConfig
from musicrnn.representations.notes import VELOCITY_BINS, NoteEvents
from musicrnn.representations.pianoroll import PIANO_KEYS, PIANO_LOWEST_PITCH, PianoRoll
from musicrnn.training.module import OptimizerSettings, SequenceModel


def note_lstm(
    hidden_size: int = 128,
    num_layers: int = 3,
    dropout: float = 0.3,
    dense_size: int = 256,
    train_positions: str = "all",
    pitch_loss_weight: float = 0.05,
    step_loss_weight: float = 1.0,
    duration_loss_weight: float = 1.0,
    negative_penalty: float = 10.0,
    learning_rate: float = 1e-3,
    time_unit: str = "seconds",
    pitch_embedding_dim: int = 0,
    timing_input: str = "linear",
    timing_head: str = "regression",
    timing_classes: int = 101,
    timing_resolution: float = 0.02,
    velocity: bool = False,
    velocity_bins: int = VELOCITY_BINS,
    velocity_loss_weight: float = 1.0,
    velocity_embedding_dim: int = 0,
) -> SequenceModel:
    """Next-note model over (pitch, step, duration[, velocity]) events: `NoteLSTM` with `NoteHeads`. A batch
    is (batch, seq_len + 1, features) windows: rows 0..seq_len-1 are read, rows 1..seq_len are the targets.
    `velocity` defaults to False here, so that checkpoints written before it existed rebuild as they were;
    `conf/model/note_lstm.yaml` turns it on."""
    settings = dict(locals())
    representation = NoteEvents(time_unit, velocity)
    head = NoteHeads(
        pitch_loss_weight, step_loss_weight, duration_loss_weight, negative_penalty, train_positions,
        timing_head, timing_classes, timing_resolution, velocity, velocity_bins, velocity_loss_weight,
    )  # fmt: skip
    net = NoteLSTM(
        NoteLSTMConfig(
            hidden_size, num_layers, dropout, dense_size,
            pitch_embedding_dim=pitch_embedding_dim, timing_input=timing_input, timing_head=timing_head,
            timing_classes=timing_classes, timing_resolution=timing_resolution, velocity=velocity,
            velocity_bins=velocity_bins, velocity_embedding_dim=velocity_embedding_dim,
        )
    )  # fmt: skip
    return SequenceModel("note_lstm", settings, net, head, representation, OptimizerSettings(learning_rate))


def pianoroll_lstm(
    num_keys: int = PIANO_KEYS,
    lowest_pitch: int = PIANO_LOWEST_PITCH,
    steps_per_quarter: int = 1,
    hidden_size: int = 128,
    num_layers: int = 3,
    dropout: float = 0.3,
    input_dropout: float = 0.0,
    weight_dropout: float = 0.0,
    cell: str = "lstm",
    dense_size: int = 0,
    input_skip: bool = False,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    lr_schedule: str | None = None,
    lr_factor: float = 0.5,
    lr_patience: int = 5,
    init_output_bias: bool = True,
    output: str = "bernoulli",
    nade_hidden: int = 150,
) -> SequenceModel:
    """Next-frame model over piano rolls: `PianoRollRNN` with `BernoulliKeys`. A batch is `(rolls, lengths)`
    from `pad_rolls`: the model reads frames 0..L-2 of each item and is scored on frames 1..L-1; padding never
    counts. `output="nade"` replaces the independent keys (`BernoulliKeys`) by a NADE over each frame's keys
    (`NADEKeys`, RNN-NADE). `lowest_pitch` and `steps_per_quarter` are not used by the network; they are
    stored so that a checkpoint alone can turn generated frames back into MIDI."""
    settings = dict(locals())
    representation = PianoRoll(steps_per_quarter, lowest_pitch, num_keys)
    optimizer = OptimizerSettings(learning_rate, weight_decay, lr_schedule, lr_factor, lr_patience)
    net = PianoRollRNN(
        PianoRollRNNConfig(
            num_keys, hidden_size, num_layers, dropout, input_dropout, weight_dropout, cell, dense_size, input_skip,
            output, nade_hidden,
        )
    )  # fmt: skip
    head = (NADEKeys if output == "nade" else BernoulliKeys)(num_keys, init_output_bias)
    return SequenceModel("pianoroll_lstm", settings, net, head, representation, optimizer)


# The builder a checkpoint's "model" names.
MODELS: dict[str, Callable[..., SequenceModel]] = {"note_lstm": note_lstm, "pianoroll_lstm": pianoroll_lstm}
# Which representation each builder's models read (checked against the data config before anything is built).
REPRESENTATIONS = {"note_lstm": NoteEvents.name, "pianoroll_lstm": PianoRoll.name}
