"""Let a killed training run continue from its last completed epoch.

Keras' ``BackupAndRestore`` brings back the weights, optimizer and epoch
number, but not the early-stopping and learning-rate counters, the best epoch
so far or the history, and it overwrites its file in place, so a kill during
the write leaves a corrupt backup. :class:`EpochBackup` does its job plus
those: after every epoch it writes new weight files, then commits a small
``state.json`` naming them, each atomically. Whatever moment the process dies,
the state names complete files from one finished epoch.

Backups live in ``.laterality/backup/<fingerprint>/``, outside the DVC outputs,
keyed by a hash of the data and every setting, so a rerun with other params
starts afresh instead of resuming someone else's run. A finished phase leaves
its weights and history there, so a run killed while fine-tuning does not
redo the frozen phase. The folder is removed once the model is saved.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from tasks import atomic

BACKUP_ROOT = Path(".laterality/backup")
# Counters each callback resets in on_train_begin and needs back after a restart.
_CALLBACK_STATE = {
    "early_stopping": ("wait", "best", "best_epoch"),
    "reduce_lr": ("wait", "best", "cooldown_counter"),
}


def run_folder(root: Path, fingerprint: dict[str, Any]) -> Path:
    """Return the backup folder of the run that ``fingerprint`` identifies."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return root / hashlib.sha256(text.encode()).hexdigest()[:16]


class EpochBackup(keras.callbacks.Callback):
    """Back up each completed epoch and restore it on the next ``fit``.

    Put it last in the callback list: it saves the counters the other
    callbacks updated for the epoch, and restores them after they reset.
    It also keeps the weights of the epoch with the lowest ``val_loss``, which
    :meth:`restore_best` loads once fitting ends.

    Args:
        folder: this phase's backup folder.
        callbacks: the early-stopping and learning-rate callbacks of the same
            ``fit``, by the names ``early_stopping`` and ``reduce_lr``.
        clock: seconds since the run started, written into the history.
    """

    def __init__(
        self,
        folder: Path,
        callbacks: dict[str, keras.callbacks.Callback],
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self.folder, self.callbacks, self.clock = folder, callbacks, clock
        self.state = self._read_state()

    def _read_state(self) -> dict[str, Any] | None:
        path = self.folder / "state.json"
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def completed_epochs(self) -> int:
        """Epochs finished by earlier runs of this phase: where ``fit`` resumes."""
        return self.state["epoch"] if self.state else 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.state:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.folder / self.state["latest"])
        for name, attributes in _CALLBACK_STATE.items():
            for attribute in attributes:
                value = self.state["callbacks"][name][attribute]
                setattr(self.callbacks[name], attribute, value)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["elapsed_seconds"] = round(self.clock(), 3)
        state = self.state or {"history": [], "best": math.inf, "best_file": None}
        if row["val_loss"] < state["best"]:
            state["best"] = row["val_loss"]
            state["best_file"] = self._save(epoch, "best")
        state.update(
            epoch=epoch + 1,
            latest=self._save(epoch, "latest"),
            history=[*state["history"], row],
            callbacks=self._callback_state(),
        )
        atomic.write_json(self.folder / "state.json", state)
        self.state = state
        self._remove_unreferenced()

    def _save(self, epoch: int, kind: str) -> str:
        name = f"{kind}-{epoch + 1:04d}.weights.h5"
        with atomic.atomic_path(self.folder / name, suffix=".weights.h5") as temporary:
            self.model.save_weights(temporary)
        return name

    def _callback_state(self) -> dict[str, dict[str, float]]:
        return {
            name: {a: _plain(getattr(self.callbacks[name], a)) for a in attributes}
            for name, attributes in _CALLBACK_STATE.items()
        }

    def _remove_unreferenced(self) -> None:
        keep = {"state.json", self.state["latest"], self.state["best_file"]}
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def restore_best(self) -> None:
        """Load the weights of the epoch with the lowest validation loss."""
        if self.state and self.state["best_file"]:
            self.model.load_weights(self.folder / self.state["best_file"])

    def history(self) -> pd.DataFrame:
        """Return every epoch of this phase, including those of earlier runs."""
        return pd.DataFrame(self.state["history"] if self.state else [])


def _plain(value: Any) -> Any:
    """Turn NumPy scalars into JSON numbers; ``None`` and ints pass through."""
    return value.item() if isinstance(value, np.generic) else value


def finished_phase(folder: Path, phase: str, model: keras.Model) -> pd.DataFrame | None:
    """Load a phase an earlier run finished into ``model``; return its history."""
    weights, history = folder / f"{phase}.done.npz", folder / f"{phase}.history.csv"
    if not (weights.is_file() and history.is_file()):
        return None
    with np.load(weights) as stored:
        model.set_weights([stored[f"w{i}"] for i in range(len(stored.files))])
    return pd.read_csv(history)


def record_phase(
    folder: Path, phase: str, model: keras.Model, history: pd.DataFrame
) -> None:
    """Keep a finished phase's weights and history; drop its epoch backups."""
    arrays = {f"w{i}": value for i, value in enumerate(model.get_weights())}
    with atomic.atomic_path(folder / f"{phase}.done.npz", suffix=".npz") as temporary:
        np.savez(temporary, **arrays)
    atomic.write_csv(folder / f"{phase}.history.csv", history)
    shutil.rmtree(folder / phase, ignore_errors=True)


def discard(folder: Path) -> None:
    """Remove a run's backups once its model is safely saved."""
    shutil.rmtree(folder, ignore_errors=True)
